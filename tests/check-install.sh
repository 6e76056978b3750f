#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the build into a prefix other than the configured one and use it
# as a packager or a user would: the command runs from there, pkg-config and
# find_package(ptmon) build a program against the installed library, the
# header stands alone under strict ISO C, the docs, man pages and the bash
# completion are in place.  Usage: check-install.sh BUILD_DIR [PREFIX]
set -eu
build=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/ptmon-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=${2:-$work/prefix}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; exit 1; }
libdir=$(dirname "$(find "$prefix" -name 'libptmon.so' | head -1)")
[ -d "$libdir" ] || { echo "FAIL: no libptmon.so under $prefix"; exit 1; }

# 1. The command runs from the prefix, no LD_LIBRARY_PATH, no ldconfig, and
# cancels a small tree: 124 at the timeout.
out=$(env -u LD_LIBRARY_PATH "$prefix/bin/ptmon" --version) || fail "installed ptmon does not start"
[ "$out" = "ptmon $(sed -n 's/^Version: //p' "$libdir/pkgconfig/ptmon.pc")" ] || fail "--version says '$out'"
readelf -d "$prefix/bin/ptmon" | grep -q 'RUNPATH.*\$ORIGIN' || fail "no \$ORIGIN RUNPATH"
st=0
env -u LD_LIBRARY_PATH "$prefix/bin/ptmon" run --no-control -t 200ms -g 1s -- \
	sh -c 'sleep 100 & sleep 100' || st=$?
[ "$st" = 124 ] || fail "installed ptmon run: status $st, expected 124"

# 2. ptmon.pc names the install prefix and builds a program that runs a task.
cat >"$work/prog.c" <<'PROG'
#include <ptmon.h>
#include <stdio.h>
int main(void)
{
	struct ptmon_monitor *m = NULL;
	struct ptmon_task *t = NULL;
	struct ptmon_task_config cfg;
	struct ptmon_task_result r = {.size = sizeof(r)};
	char *const argv[] = {"sh", "-c", "exit 7", NULL};
	if (ptmon_monitor_new(&m, PTMON_BACKEND_AUTO, 0) < 0)
		return 100;
	ptmon_task_config_init(&cfg, sizeof(cfg));
	cfg.argv = argv;
	if (ptmon_task_start(m, &cfg, 0, &t) < 0 || ptmon_monitor_run(m) < 0 ||
	    ptmon_task_result(t, &r) < 0)
		return 101;
	printf("exit %d\n", r.root_value);
	ptmon_monitor_free(m);
	return 0;
}
PROG
export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ "$(pkg-config --variable=prefix ptmon)" = "$prefix" ] || fail "ptmon.pc: prefix=$(pkg-config --variable=prefix ptmon), not $prefix"
# shellcheck disable=SC2046 # the flags are words
if cc -std=c11 -pedantic -Wall -Wextra -Werror "$work/prog.c" -o "$work/prog" \
	$(pkg-config --cflags --libs ptmon); then
	out=$(LD_LIBRARY_PATH="$libdir" "$work/prog") || true
	[ "$out" = "exit 7" ] || fail "the pkg-config program said '$out'"
else
	fail "pkg-config --cflags --libs ptmon does not build a program"
fi

# 3. The header alone, strict ISO C, with gcc and (when there) clang.
for cc in cc clang; do
	command -v $cc >/dev/null || continue
	echo '#include <ptmon.h>' >"$work/alone.c"
	$cc -std=c11 -pedantic -Wall -Wextra -Werror -I"$prefix/include" -c "$work/alone.c" \
		-o "$work/alone.o" || fail "ptmon.h alone under $cc -std=c11 -pedantic"
done

# 4. find_package(ptmon) and the imported target ptmon::ptmon.
mkdir "$work/fp"
cp "$work/prog.c" "$work/fp/"
cat >"$work/fp/CMakeLists.txt" <<'CML'
cmake_minimum_required(VERSION 3.18)
project(prog C)
find_package(ptmon 0.1 REQUIRED)
add_executable(prog prog.c)
target_link_libraries(prog PRIVATE ptmon::ptmon)
CML
if cmake -S "$work/fp" -B "$work/fp/build" -DCMAKE_PREFIX_PATH="$prefix" >"$work/fp.log" 2>&1 &&
	cmake --build "$work/fp/build" >>"$work/fp.log" 2>&1; then
	# CMake gives a program from outside its tree a RUNPATH to the library.
	out=$("$work/fp/build/prog") || true
	[ "$out" = "exit 7" ] || fail "the find_package program said '$out'"
else
	cat "$work/fp.log"; fail "find_package(ptmon) does not build a program"
fi

# 5. Docs, man pages, completion.
for f in share/doc/ptmon/README.md share/doc/ptmon/LICENSE share/doc/ptmon/schema.md \
	share/doc/ptmon/control.md share/bash-completion/completions/ptmon \
	share/man/man1/ptmon.1 share/man/man3/libptmon.3; do
	[ -s "$prefix/$f" ] || fail "$f not installed"
done
for page in man1/ptmon.1 man3/libptmon.3; do
	if command -v man >/dev/null; then
		w=$(MANWIDTH=80 man --warnings -l "$prefix/share/man/$page" 2>&1 >/dev/null)
		[ -z "$w" ] || fail "man $page: $w"
	fi
done
# ptmon(1) has every subcommand of the usage, libptmon(3) every function.
for cmd in $("$prefix/bin/ptmon" --help | sed -n 's/^\(Usage:\)\{0,1\} *ptmon \([a-z]*\).*/\2/p'); do
	grep -q "^\\\\fBptmon\\\\fR $cmd" "$prefix/share/man/man1/ptmon.1" || fail "ptmon(1) lacks $cmd"
done
for fn in $(sed -n 's/.*PTMON_EXPORT [^(]*[ *]\(ptmon_[a-z_]*\)(.*/\1/p' "$prefix/include/ptmon.h"); do
	grep -q "$fn" "$prefix/share/man/man3/libptmon.3" || fail "libptmon(3) lacks $fn"
done

# 6. The completion knows every subcommand and long option the help texts name.
comp="$prefix/share/bash-completion/completions/ptmon"
helps=$("$prefix/bin/ptmon" --help; "$prefix/bin/ptmon" timeout --help 2>/dev/null || true
	"$prefix/bin/ptmon" watch --help 2>/dev/null || true)
for word in $(printf '%s\n' "$helps" | grep -o -- '--[a-z][a-z-]*' | sort -u) \
	$("$prefix/bin/ptmon" --help | sed -n 's/^\(Usage:\)\{0,1\} *ptmon \([a-z]*\).*/\2/p'); do
	grep -q -- "$word\\b" "$comp" || fail "the completion lacks $word"
done
bash -c ". '$comp' && complete -p ptmon" >/dev/null || fail "the completion does not load"

# 7. DESTDIR, as packagers install: the .pc names the prefix, not DESTDIR.
DESTDIR="$work/destdir" cmake --install "$build" --prefix /opt/ptmon-test >/dev/null
pc=$(find "$work/destdir" -name ptmon.pc)
grep -qx 'prefix=/opt/ptmon-test' "$pc" || fail "DESTDIR install: $(grep prefix= "$pc")"

[ "$fails" = 0 ] || exit 1
echo "install into '$prefix': the command runs, pkg-config and find_package build, header, docs, man, completion"
