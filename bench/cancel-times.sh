#!/usr/bin/env bash
# Cancel-to-return times of ptmon on the scenarios of issue 2: the seed bug,
# 500 wide, a fork loop and a double-fork daemon.  Each runs with a 1 s
# timeout (and --leftovers wait, so that the timeout is what cancels).
# Printed: ptmon's own figures (-v: cancel to empty tree, cancel to EOF) and
# the wall time past the timeout (which includes ptmon's start-up), each the
# median of N runs.
# Usage: bench/cancel-times.sh BUILD_DIR [N]
set -euo pipefail
build=${1:?build dir}
n=${2:-5}
ptmon=$build/ptmon
helper=$build/tests/ptmon-testhelper

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
to_ms() { # "1.5ms" / "2.1s" / "800us" -> milliseconds
	awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) }
	       else if (v ~ /ns$/) { sub(/ns$/, "", v); v /= 1e6 } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
	       printf "%.3f\n", v }'
}

run_case() {
	local name=$1 grace=$2; shift 2
	local empty=() eof=() past=()
	for _ in $(seq "$n"); do
		local t0 t1 log
		t0=$(date +%s%N)
		log=$("$ptmon" run -v --timeout 1s --grace "$grace" --leftovers wait -- "$@" 2>&1 >/dev/null) || true
		t1=$(date +%s%N)
		empty+=("$(sed -n 's/.*cancel to empty tree \([^,]*\),.*/\1/p' <<<"$log" | to_ms)")
		eof+=("$(sed -n 's/.*to EOF \(.*\)$/\1/p' <<<"$log" | to_ms)")
		past+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 - 1000 }')")
	done
	printf '%-28s %-6s %12s %12s %14s\n' "$name" "$grace" \
		"$(printf '%s\n' "${empty[@]}" | median)" "$(printf '%s\n' "${eof[@]}" | median)" \
		"$(printf '%s\n' "${past[@]}" | median)"
}

printf '%-28s %-6s %12s %12s %14s\n' scenario grace "to-empty ms" "to-EOF ms" "wall-1s ms"
for g in 5s 0; do
	run_case "seed: bash -c 'sleep;true'" "$g" bash -c 'echo x; sleep 1000; true'
	run_case "wide 500" "$g" "$helper" wide 500
	run_case "forkloop" "$g" "$helper" forkloop
	run_case "daemon (double fork)" "$g" "$helper" daemon
done
echo "(median of $n runs; $(uname -r); $(date -u +%Y-%m-%d))"
