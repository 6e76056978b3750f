/* SPDX-License-Identifier: MIT */
/* Parsing of the command line's values: durations and signals. */
#ifndef PTMON_PARSE_H
#define PTMON_PARSE_H

#include <stdint.h>

/* The largest duration parse_duration() takes, as it is written. */
#define PARSE_DURATION_MAX_TEXT "18446744073.709551615s"

/*
 * Parse a duration: a non-negative decimal number with an optional fraction
 * and an optional unit: "ns", "us", "ms", "s", "m", "h", "d"; no unit means
 * seconds ("250ms", "1.5s", "2m", "10", "0.25").  No sign, no spaces, no
 * exponent, no empty number ("s", ".s"), no trailing garbage.  The integer
 * part may be left out before a fraction (".5" is half a second, as coreutils'
 * timeout takes it), but a point must be followed by a digit ("1." is
 * malformed).  Units are lower case only (there is no "M").  Any number of
 * fraction digits; the result is rounded to the nearest nanosecond, a tie
 * away from zero ("0.5ns" is 1ns).
 * Returns 0 and sets *ret_ns, -EINVAL for a malformed string, -ERANGE when
 * the value does not fit in uint64_t nanoseconds (above
 * 18446744073.709551615s, about 584 years) or when a non-zero value rounds
 * to 0ns ("0.4ns": 0 means "none" to the options, which it does not ask
 * for).  *ret_ns is untouched on failure.
 */
int parse_duration(const char *s, uint64_t *ret_ns);

/*
 * Parse a signal: a name with or without "SIG" in any case ("TERM", "sigkill",
 * "SIGRTMIN+2", "RTMAX-1") or a number from 1 to SIGRTMAX ("9").
 * Returns 0 and sets *ret_sig, or -EINVAL.
 */
int parse_signal(const char *s, int *ret_sig);

/* The canonical name of a signal without "SIG" ("TERM", "RTMIN+2"), or
 * NULL for an invalid number.  Static storage for the named ones; RT names
 * are written into @buf (at least 16 bytes).  Real-time signals up to half
 * the range are "RTMIN+n", the rest "RTMAX-n", as bash names them.  The two
 * below SIGRTMIN that glibc keeps for itself (32, 33) have no name: they are
 * written as the bare number, which parse_signal() takes back. */
const char *signal_name(int sig, char *buf, unsigned buflen);

/* Format @ns for humans: "250ms", "1.5s", "2m30s", "1d2h", "0s".  Exact:
 * fractions are written without trailing zeros and never rounded, so what
 * has one component (below a minute, whole minutes below an hour, whole
 * hours below a day, whole days) parses back to itself.  Writes into @buf (32 bytes hold any value;
 * shorter buffers truncate) and returns it. */
const char *format_duration(uint64_t ns, char *buf, unsigned buflen);

#endif
