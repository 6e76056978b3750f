#!/bin/sh
# SPDX-License-Identifier: MIT
# ptmon(1) on stdout, made from the command's own --help (and `timeout
# --help`), so that the page cannot say other than the command does.
# Usage: help2man.sh PTMON VERSION
set -eu
bin=$1
version=$2

# roff for a help text: paragraphs split at blank lines; a paragraph that is
# one unindented line ending in ':' is a subsection heading; indented lines
# (options, examples) are kept as they are laid out; other lines are filled.
render() {
	awk '
	function esc(s) {
		gsub(/\\/, "\\e", s)
		gsub(/-/, "\\-", s)
		if (s ~ /^[.'"'"']/) s = "\\&" s
		return s
	}
	function flush(   i, nf) {
		if (n == 0) return
		if (n == 1 && line[1] !~ /^ / && line[1] ~ /:$/) {
			print ".SS \"" esc(substr(line[1], 1, length(line[1]) - 1)) "\""
			n = 0; return
		}
		print ".PP"
		nf = 0
		for (i = 1; i <= n; i++) {
			if (line[i] ~ /^ / && !nf) { print ".nf"; nf = 1 }
			if (line[i] !~ /^ / && nf) { print ".fi"; nf = 0 }
			print esc(line[i])
		}
		if (nf) print ".fi"
		n = 0
	}
	/^[ \t]*$/ { flush(); next }
	{ line[++n] = $0 }
	END { flush() }
	'
}

help=$("$bin" --help)
cat <<HEAD
.\\" Made by man/help2man.sh from \`ptmon --help\`: edit src/, not this page.
.TH PTMON 1 "" "ptmon $version" "User Commands"
.SH NAME
ptmon \\- run a command, track every process it starts, and make them all go away
.SH SYNOPSIS
.nf
HEAD
# The usage lines: from "Usage:" to the first blank line.
printf '%s\n' "$help" | awk 'NR == 1, /^$/' | sed -e '/^$/d' -e 's/^Usage: *//' -e 's/^ *//' \
	-e 's/\\/\\e/g' -e 's/-/\\-/g' -e 's/^ptmon/\\fBptmon\\fR/'
echo ".fi"
echo ".SH DESCRIPTION"
printf '%s\n' "$help" | awk 'f; /^$/ { f = 1 }' | render
if timeout_help=$("$bin" timeout --help 2>/dev/null); then
	echo ".SH \"PTMON TIMEOUT\""
	printf '%s\n' "$timeout_help" | render
fi
cat <<TAIL
.SH "SEE ALSO"
.BR timeout (1),
.BR libptmon (3).
The README, docs/schema.md (the event stream and the report) and docs/control.md (the control
socket) in /usr/share/doc/ptmon.
TAIL
