#!/bin/sh
# SPDX-License-Identifier: MIT
# libptmon(3) on stdout, made from ptmon.h: the header's doc comments become
# the text, its declarations the code, in the header's order, so that the
# page cannot say other than the header does.
# Usage: header2man.sh ptmon.h VERSION
set -eu
header=$1
version=$2
cat <<HEAD
.\\" Made by man/header2man.sh from ptmon.h: edit the header, not this page.
.TH LIBPTMON 3 "" "ptmon $version" "Library Functions Manual"
.SH NAME
libptmon \\- run tasks, track every process each one starts, cancel and drain them
.SH SYNOPSIS
.nf
.B #include <ptmon.h>
.PP
cc prog.c \$(pkg-config \\-\\-cflags \\-\\-libs ptmon)
(CMake: find_package(ptmon) and target_link_libraries(prog ptmon::ptmon))
.fi
HEAD
awk '
function esc(s) {
	gsub(/\\/, "\\e", s)
	gsub(/-/, "\\-", s)
	if (s ~ /^[.'"'"']/) s = "\\&" s
	return s
}
function code_on() { if (!incode) { print ".PP"; print ".nf"; incode = 1 } }
function code_off() { if (incode) { print ".fi"; incode = 0 } }
/SPDX-License-Identifier/ { next }
# The first comment is the description; its end starts the reference.
!started && /^\/\*/ { print ".SH DESCRIPTION"; print ".PP"; incomment = 1; next }
!started && incomment && /\*\// { incomment = 0; started = 1; print ".SH REFERENCE"; next }
!started && incomment { sub(/^ \* ?/, ""); print (length($0) ? esc($0) : ".PP"); next }
!started { next }
# A section rule: /* ---- name ---- */
/^\/\* -+ .* -+ \*\/$/ {
	code_off(); s = $0; sub(/^\/\* -+ /, "", s); sub(/ -+ \*\/$/, "", s)
	print ".SS \"" esc(s) "\""; next
}
# A doc comment at the start of a line is text.
/^\/\*/ && /\*\/$/ {
	code_off(); s = $0; sub(/^\/\* ?/, "", s); sub(/ *\*\/$/, "", s)
	print ".PP"; print esc(s); next
}
/^\/\*/ {
	code_off(); print ".PP"; incomment = 1
	s = $0; sub(/^\/\* ?/, "", s); if (length(s)) print esc(s); next
}
incomment && /\*\// {
	s = $0; sub(/ *\*\/$/, "", s); sub(/^ *\* ?/, "", s); if (length(s)) print esc(s)
	incomment = 0; next
}
incomment { s = $0; sub(/^ \* ?/, ""); print (length($0) ? esc($0) : ".PP"); next }
# The header s machinery is not API.
/^#(if|ifdef|ifndef|else|endif|include)/ || /^#define PTMON_(H|EXPORT)/ { next }
/^extern "C"/ || /^}$/ { next }
/^$/ { code_off(); next }
# Declarations lose the export macro, and their continuation lines its width.
{
	code_on(); s = $0; gsub(/\t/, "        ", s)
	if (cont && s ~ /^             /) s = substr(s, 14)
	if (sub(/PTMON_EXPORT /, "", s)) cont = 1
	if (s ~ /;/) cont = 0
	print esc(s)
}
END { code_off() }
' "$header"
cat <<'TAIL'
.SH "SEE ALSO"
.BR ptmon (1)
TAIL
