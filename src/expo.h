/* SPDX-License-Identifier: MIT */
/*
 * Writing metrics in the Prometheus text format 0.0.4 and in OpenMetrics
 * 1.0, which differ in how a counter is named: OpenMetrics names the
 * family without "_total" and its samples with it; the text format (and
 * promtool, which parses it) names family and samples alike, "_total"
 * included.  Used by the control socket's `metrics` and by `ptmon serve`.
 */
#ifndef PTMON_EXPO_H
#define PTMON_EXPO_H

#include <stdbool.h>
#include <stdio.h>

/* # HELP and # TYPE of the family @base ("ptmon_forks"; a counter's
 * samples are @base "_total"), for @om (OpenMetrics) or not. */
void expo_family(FILE *f, const char *base, const char *type, const char *help, bool om);

/* A label value escaped for both formats: backslash, double quote and
 * newline as \\, \" and \n; bytes that are not UTF-8 as U+FFFD (both
 * formats require UTF-8).  Writes at most @size - 1 bytes and a NUL. */
void expo_label_value(const char *s, char *out, size_t size);

/* The end of an exposition: "# EOF" for OpenMetrics, nothing else. */
void expo_end(FILE *f, bool om);

#endif
