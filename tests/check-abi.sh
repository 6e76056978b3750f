#!/bin/sh
# SPDX-License-Identifier: MIT
# The ABI that libptmon exports, checked against the list that says what it
# should be (monitor/libptmon.sym): a symbol exported by accident (a helper
# without `static`, a missing -fvisibility=hidden) or one removed or renamed
# fails here, as does a new public function whose list entry was forgotten.
# Adding a symbol is adding it to the list in the same commit.
# Usage: check-abi.sh LIBPTMON.so LIST
set -eu
lib=$1 list=$2
work=$(mktemp -d /tmp/ptmon-abi.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Every defined dynamic symbol, whatever its kind (T, D, B, R, W, ...).
nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 } NF == 2 { print $2 }' |
	sed 's/@.*//' | sort -u >"$work/have"
grep -v '^[[:space:]]*\(#\|$\|soname[[:space:]]\)' "$list" | sort -u >"$work/want"
# The soname the list names: a break of the ABI bumps both together.
want_soname=$(sed -n 's/^soname[[:space:]]\{1,\}//p' "$list")
have_soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
if [ "$want_soname" != "$have_soname" ]; then
	echo "FAIL: $lib has the soname '$have_soname', $list says '$want_soname'"
	exit 1
fi
if ! cmp -s "$work/want" "$work/have"; then
	echo "FAIL: the symbols $lib exports differ from $list:"
	comm -13 "$work/want" "$work/have" | sed 's/^/  exported, not in the list: /'
	comm -23 "$work/want" "$work/have" | sed 's/^/  in the list, not exported: /'
	exit 1
fi
echo "libptmon ($have_soname) exports the $(wc -l <"$work/have") symbols of $list"
