#!/usr/bin/env bash
# The cost of `ptmon watch PID` on a busy tree next to `strace -f -p PID -o
# /dev/null` on the same kind of tree (issue 11), and the time from cancel to
# an empty tree for a watched tree of about 2,000 processes.
#
# Usage: bench/watch-cost.sh [BUILD_DIR] [ROUNDS] [FORKS]
#   BUILD_DIR  the CMake build directory (default: build/; ptmon and loadgen
#              are built there if needed)
#   ROUNDS     rounds of the comparison (default 5)
#   FORKS      children the busy tree forks, each reaped before the next
#              (default 20000)
#
# Each round runs the three sides, bare / ptmon watch / strace, one after the
# other, the order rotating each round, after a warm-up round.  The tree is
# `sh -c 'read go; loadgen storm FORKS'`: the watcher attaches to the waiting
# sh first (ptmon: once it says "watching"; strace: once it says "attached"),
# then the tree is let go.  Printed per side: the tree's wall time from go to
# its end (the tree measures it itself), the watcher's user+system CPU (from
# time(1) over the watcher alone), and the median over the rounds of
# the pairwise ratios to the bare run of the same round.
# Then: ptmon watch on a tree of ~2,000 sleepers (and a chain 50 deep), with
# `ptmon cancel` from outside: ptmon's own "cancel to empty tree" (-v), the
# median of ROUNDS runs.
# Needs root only for strace -p on another user's processes; run it as root.
# Everything it starts runs in a cgroup ptmon-bench-watch.PID, killed with
# cgroup.kill and removed at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${1:-$repo/build}
rounds=${2:-5}
forks=${3:-20000}
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j2 --target ptmon_cli loadgen >/dev/null
ptmon=$build/ptmon
lg=$build/bench/loadgen
command -v strace >/dev/null || { echo "watch-cost: strace is needed" >&2; exit 1; }

cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
self_cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
bcg=$cg2${self_cg%/}/ptmon-bench-watch.$$
mkdir "$bcg"
tmp=$(mktemp -d /tmp/ptmon-bench-watch.XXXXXX)
cleanup() {
	echo 1 >"$bcg/cgroup.kill" 2>/dev/null || true
	for _ in $(seq 100); do [ -s "$bcg/cgroup.procs" ] || break; sleep 0.05; done
	rmdir "$bcg" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# A tree (in the bench cgroup) that waits on a fifo, then storms; it writes
# its storm's wall ms.
start_tree() { # $1: fifo, $2: out file; sets tree_pid
	sh -c 'echo $$ >"$5/cgroup.procs"; read x <"$1"; t0=$(date +%s%N);
	       "$3" storm "$4" >/dev/null; t1=$(date +%s%N);
	       echo $(((t1 - t0) / 1000000)) >"$2"' sh "$1" "$2" "$lg" "$forks" "$bcg" &
	tree_pid=$!
}

wait_for() { # file pattern: bounded wait for a line
	for _ in $(seq 400); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.025; done
	echo "watch-cost: '$2' not seen in $1" >&2
	cat "$1" >&2
	return 1
}

one() { # side -> "wall_ms cpu_s"
	local side=$1 fifo=$tmp/go out=$tmp/out err=$tmp/err w=
	rm -f "$fifo" "$out" "$err"
	mkfifo "$fifo"
	start_tree "$fifo" "$out"
	echo "0 0" >"$tmp/cpu"
	# The watcher's own CPU (user+system) by time(1): neither has children.
	case $side in
	bare) ;;
	ptmon)
		/usr/bin/time -f '%U %S' -o "$tmp/cpu" \
			"$ptmon" watch -v --no-control "$tree_pid" 2>"$err" >/dev/null &
		w=$!
		wait_for "$err" "watching" && sleep 0.1 ;;
	strace)
		/usr/bin/time -f '%U %S' -o "$tmp/cpu" \
			strace -f -p "$tree_pid" -o /dev/null 2>"$err" &
		w=$!
		wait_for "$err" "attached" ;;
	esac
	echo go >"$fifo"
	wait "$tree_pid" || true
	[ -z "$w" ] || wait "$w" || true
	echo "$(cat "$out") $(awk '{ printf "%.2f", $1 + $2 }' "$tmp/cpu")"
}

sides=(bare ptmon strace)
one bare >/dev/null # warm-up
one ptmon >/dev/null
one strace >/dev/null
declare -A wall cpu
for r in $(seq "$rounds"); do
	for i in 0 1 2; do
		s=${sides[$(((i + r) % 3))]}
		read -r wall[$s,$r] cpu[$s,$r] < <(one "$s")
	done
done
printf '%-8s %10s %14s %12s\n' side "wall ms" "wall/bare" "watcher cpu s"
for s in "${sides[@]}"; do
	walls=() ratios=() cpus=()
	for r in $(seq "$rounds"); do
		walls+=("${wall[$s,$r]}")
		cpus+=("${cpu[$s,$r]}")
		ratios+=("$(awk -v a="${wall[$s,$r]}" -v b="${wall[bare,$r]}" 'BEGIN { printf "%.3f", a / b }')")
	done
	printf '%-8s %10s %8s [%s..%s] %8s\n' "$s" "$(printf '%s\n' "${walls[@]}" | median)" \
		"$(printf '%s\n' "${ratios[@]}" | median)" \
		"$(printf '%s\n' "${ratios[@]}" | sort -g | head -1)" \
		"$(printf '%s\n' "${ratios[@]}" | sort -g | tail -1)" \
		"$(printf '%s\n' "${cpus[@]}" | median)"
done
echo "($forks forks per tree, $rounds rounds; CPU of the bare side is the tree's wait only: 0)"

# ---- cancel to empty: a watched tree of ~2,000 ---------------------------------
empties=()
for r in $(seq "$rounds"); do
	rm -f "$tmp/ready" "$tmp/err"
	sh -c 'echo $$ >"$2/cgroup.procs"; i=0; while [ $i -lt 1950 ]; do sleep 1000 & i=$((i+1)); done
	       d() { if [ $1 -gt 0 ]; then d $(($1 - 1)) "$2" & wait; else echo ready >"$2"; sleep 1000; fi; }
	       d 50 "$1" & wait' sh "$tmp/ready" "$bcg" &
	t=$!
	wait_for "$tmp/ready" ready
	sock=$tmp/ctl
	"$ptmon" watch -v --control "$sock" "$t" 2>"$tmp/err" >/dev/null &
	w=$!
	for _ in $(seq 400); do "$ptmon" tree "$sock" >/dev/null 2>&1 && break; sleep 0.025; done
	"$ptmon" cancel "$sock" --now >/dev/null
	wait "$w" || true
	wait "$t" 2>/dev/null || true # killed by the cancel
	empties+=("$(sed -n 's/.*cancel to empty tree \([0-9.]*\)ms.*/\1/p' "$tmp/err")")
	n=$(sed -n 's/.*ended; \([0-9]*\) processes.*/\1/p' "$tmp/err")
done
echo "cancel --now to empty, watched tree of $n processes: $(printf '%s\n' "${empties[@]}" | median) ms" \
	"(median of $rounds; each: ${empties[*]})"
