#!/usr/bin/env bash
# serve's cost (issue 10): 16 busy tasks (each a shell starting N /bin/true:
# a fork, an exec and an exit apiece) run at once, alternately with and
# without a `ptmon serve` following them, ROUNDS pairs.  Prints serve's own
# CPU per followed event and its peak RSS, and the tasks' ptmon CPU with and
# without serve (a follower makes ptmon write its events once more).
#
# Usage: bench/serve-cost.sh [--build DIR] [--rounds N] [--per-task N]
# Exit status: 0 when every round ran and nothing was left running.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${PTMON_BUILD:-$(dirname "$here")/build}
rounds=3 per_task=1000 tasks=16
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=${2:?--build DIR}; shift ;;
	--rounds) rounds=${2:?--rounds N}; shift ;;
	--per-task) per_task=${2:?--per-task N}; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench/serve-cost.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
	shift
done
ptmon=$build/ptmon
[ -x "$ptmon" ] || { echo "no $ptmon: build first" >&2; exit 1; }

dir=$(mktemp -d /tmp/ptmon-serve-cost.XXXXXX)
export XDG_RUNTIME_DIR=$dir
# serve run as root follows every user's tasks too: only the bench's here.
export PTMON_TEST_SCAN_ROOT=$dir
serve_pid=
cleanup() {
	[ -z "$serve_pid" ] || kill "$serve_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

# CPU ticks (user + system) of a process, children reaped included.
ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# The 16 tasks at once, to their end.
run_tasks() {
	local i pids=()
	for i in $(seq "$tasks"); do
		"$ptmon" run --quiet --name "busy$i" --report "$dir/r$i.json" -- \
			sh -c "i=0; while [ \$i -lt $per_task ]; do /bin/true; i=\$((i+1)); done" &
		pids+=($!)
	done
	wait "${pids[@]}"
}

metric() { # the value of a serve metric line
	curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

printf 'serve cost: %d tasks x %d processes, %d rounds (with / without serve, alternating)\n' \
	"$tasks" "$per_task" "$rounds"
with_s=() without_s=()
for r in $(seq "$rounds"); do
	for side in with without; do
		if [ $side = with ]; then
			"$ptmon" serve --listen 127.0.0.1:0 2>"$dir/serve.err" &
			serve_pid=$!
			until grep -q 'serving http' "$dir/serve.err"; do sleep 0.05; done
			port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\)\/metrics.*/\1/p' "$dir/serve.err")
			t0=$(ticks "$serve_pid")
		fi
		start=$(date +%s.%N)
		run_tasks
		wall=$(echo "$(date +%s.%N) - $start" | bc)
		if [ $side = with ]; then
			# serve has every done once /metrics counts them.
			until [ "$(curl -s "http://127.0.0.1:$port/metrics" |
				awk '/^ptmon_tasks_finished_total/ { n += $2 } END { print n + 0 }')" = "$tasks" ]; do
				sleep 0.05
			done
			t1=$(ticks "$serve_pid")
			ev=$(metric ptmon_serve_events_total)
			hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$serve_pid/status")
			kill "$serve_pid"; wait "$serve_pid" || true; serve_pid=
			us=$(echo "scale=2; ($t1 - $t0) * 1000000 / $hz / $ev" | bc)
			printf '  round %d with serve:    %6.2f s wall; serve: %d events, %s us CPU/event, peak RSS %d KiB\n' \
				"$r" "$wall" "$ev" "$us" "$hwm"
			with_s+=("$wall")
		else
			printf '  round %d without serve: %6.2f s wall\n' "$r" "$wall"
			without_s+=("$wall")
		fi
		rm -f "$dir"/r*.json
	done
done
printf 'wall with / without serve, per round:'
for i in $(seq 0 $((rounds - 1))); do
	printf ' %.3f' "$(echo "${with_s[$i]} / ${without_s[$i]}" | bc -l)"
done
echo
