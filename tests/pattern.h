/* SPDX-License-Identifier: MIT */
/* The bytes `ptmon-testhelper write N` writes (tests/testhelper.c), byte @i
 * of its stdout and of its stderr, for the tests that check them through
 * ptmon.  The patterns differ in period, so a shifted or mixed stream
 * cannot match. */
#ifndef PTMON_TEST_PATTERN_H
#define PTMON_TEST_PATTERN_H

#include <stddef.h>

static inline unsigned char pattern_out(size_t i)
{
	return (unsigned char)(i % 251);
}

static inline unsigned char pattern_err(size_t i)
{
	return (unsigned char)(255 - i % 253);
}

#endif
