# SPDX-License-Identifier: MIT
# bash completion for ptmon.  tests/check-completion.sh checks that it knows
# every subcommand and option that `ptmon --help` and `ptmon timeout --help` name.

_ptmon_ids()
{
	ptmon ls 2>/dev/null | awk 'NR > 1 { print $1 }'
}

_ptmon()
{
	local cur prev words cword
	_init_completion 2>/dev/null || {
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD-1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	}
	local cmds="run timeout watch ls tree kill cancel events metrics serve --help --version"
	local signals="TERM INT HUP KILL QUIT USR1 USR2 ALRM CONT STOP"
	if ((cword == 1)); then
		COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
		return
	fi
	case ${words[1]} in
	run)
		case $prev in
		-s | --signal) COMPREPLY=($(compgen -W "$signals" -- "$cur")); return ;;
		--leftovers) COMPREPLY=($(compgen -W "kill wait" -- "$cur")); return ;;
		--backend) COMPREPLY=($(compgen -W "auto connector procfs" -- "$cur")); return ;;
		--cgroup) COMPREPLY=($(compgen -W "auto on off" -- "$cur")); return ;;
		--filter) COMPREPLY=($(compgen -W "auto ebpf classic" -- "$cur")); return ;;
		--events | --report | --control) COMPREPLY=($(compgen -f -- "$cur")); return ;;
		--name) return ;;
		-C | --chdir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
		--color) COMPREPLY=($(compgen -W "auto always never" -- "$cur")); return ;;
		-t | --timeout | -g | --grace | -d | --drain | --memory-max | --pids-max | --cpu-max) return ;;
		esac
		# Options end at the command; after it, complete the command's own.
		local i
		for ((i = 2; i < cword; i++)); do
			case ${words[i]} in
			-s | --signal | --leftovers | --backend | --cgroup | --filter | --memory-max | --pids-max | --cpu-max | --events | --report | --control | \
				-t | --timeout | -g | --grace | -d | --drain | -C | --chdir | --color | --name) ((i++)) ;;
			--) ((i++)); break ;;
			-*) ;;
			*) break ;;
			esac
		done
		if ((i < cword)); then
			COMPREPLY=($(compgen -c -- "$cur"))
		elif [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--timeout --signal --grace --drain --leftovers --backend
				--cgroup --memory-max --pids-max --cpu-max --filter --events --report --summary --control --no-control --name
				--chdir --color --quiet --verbose --help" -- "$cur"))
		else
			COMPREPLY=($(compgen -c -- "$cur"))
		fi
		;;
	timeout)
		case $prev in
		-s | --signal) COMPREPLY=($(compgen -W "$signals" -- "$cur")); return ;;
		-k | --kill-after) return ;;
		esac
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--signal --kill-after --preserve-status --foreground
				--verbose --help" -- "$cur"))
		elif ((cword > 2)) && [[ ${words[cword-1]} != -* ]]; then
			COMPREPLY=($(compgen -c -- "$cur"))
		fi
		;;
	watch)
		case $prev in
		-s | --signal) COMPREPLY=($(compgen -W "$signals" -- "$cur")); return ;;
		--backend) COMPREPLY=($(compgen -W "auto connector procfs" -- "$cur")); return ;;
		--filter) COMPREPLY=($(compgen -W "auto ebpf classic" -- "$cur")); return ;;
		--events | --report | --control) COMPREPLY=($(compgen -f -- "$cur")); return ;;
		--cgroup) COMPREPLY=($(compgen -d -- "$cur")); return ;;
		--color) COMPREPLY=($(compgen -W "auto always never" -- "$cur")); return ;;
		-t | --timeout | -g | --grace) return ;;
		esac
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--cgroup --timeout --signal --grace --backend --filter --events
				--report --summary --control --no-control --color --quiet --verbose --help" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$(ps -e -o pid= 2>/dev/null)" -- "$cur"))
		fi
		;;
	tree) COMPREPLY=($(compgen -W "$(_ptmon_ids) --json" -- "$cur")) ;;
	kill)
		case $prev in
		-s) COMPREPLY=($(compgen -W "$signals" -- "$cur")); return ;;
		esac
		if ((cword == 2)); then
			COMPREPLY=($(compgen -W "$(_ptmon_ids)" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "-s --subtree" -- "$cur"))
		fi
		;;
	cancel) COMPREPLY=($(compgen -W "$(_ptmon_ids) --now" -- "$cur")) ;;
	events) COMPREPLY=($(compgen -W "$(_ptmon_ids) --follow" -- "$cur")) ;;
	ls) COMPREPLY=($(compgen -W "--json --all-users" -- "$cur")) ;;
	metrics) COMPREPLY=($(compgen -W "$(_ptmon_ids) --openmetrics" -- "$cur")) ;;
	serve)
		case $prev in
		--listen) return ;;
		--token-file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
		esac
		COMPREPLY=($(compgen -W "--listen --allow-control --token-file --verbose --help" -- "$cur"))
		;;
	esac
}
complete -F _ptmon ptmon
