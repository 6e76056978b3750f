/* SPDX-License-Identifier: MIT */
/* /proc/PID/stat parsing on crafted lines, and a live look at ourselves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"

#define TAIL " 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5555 1000 10"

static int parse(const char *s, struct procfs_stat *st)
{
	return procfs_parse_stat(s, strlen(s), st);
}

static void test_plain(void **state)
{
	struct procfs_stat st;
	assert_int_equal(parse("123 (sleep) S 45" TAIL, &st), 0);
	assert_int_equal(st.pid, 123);
	assert_int_equal(st.ppid, 45);
	assert_int_equal(st.state, 'S');
	assert_string_equal(st.comm, "sleep");
	assert_int_equal(st.starttime, 5555);
}

/* A comm may hold ')', '(' and spaces: only the last ')' ends it. */
static void test_hostile_comm(void **state)
{
	struct procfs_stat st;
	assert_int_equal(parse("9 (a) b) (c) Z 8" TAIL, &st), 0);
	assert_int_equal(st.ppid, 8);
	assert_int_equal(st.state, 'Z');
	assert_string_equal(st.comm, "a) b) (c");
	assert_int_equal(parse("9 () R 1" TAIL, &st), 0);
	assert_string_equal(st.comm, "");
	/* Longer than 15 bytes is cut, not overflowed. */
	assert_int_equal(parse("9 (0123456789abcdefghij) R 1" TAIL, &st), 0);
	assert_string_equal(st.comm, "0123456789abcde");
}

static void test_malformed(void **state)
{
	struct procfs_stat st = {.pid = 77};
	const char *bad[] = {
		"",
		"123",
		"123 (x",
		"x (sleep) S 1" TAIL,
		"123 (sleep)",
		"123 (sleep) S",
		"123 (sleep) S x" TAIL,
		"123 (sleep) S 1 2 3", /* cut before starttime */
		"-5 (sleep) S 1" TAIL,
		"99999999999999999999 (s) S 1" TAIL,
		")( S 1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], &st), -EINVAL);
	assert_int_equal(st.pid, 77); /* untouched on failure */
}

/* Not NUL-terminated: the length is what counts. */
static void test_length_bound(void **state)
{
	char buf[128];
	const char *line = "5 (sh) S 4" TAIL;
	size_t n = strlen(line);
	memcpy(buf, line, n);
	memset(buf + n, '7', sizeof(buf) - n);
	struct procfs_stat st;
	assert_int_equal(procfs_parse_stat(buf, n, &st), 0);
	assert_int_equal(st.starttime, 5555);
	assert_int_equal(procfs_parse_stat(buf, n - strlen(TAIL) + 4, &st), -EINVAL);
}

static void test_self(void **state)
{
	struct procfs_stat st;
	assert_int_equal(procfs_read_stat(getpid(), &st), 0);
	assert_int_equal(st.pid, getpid());
	assert_int_equal(st.ppid, getppid());
	char comm[16];
	assert_int_equal(procfs_read_comm(getpid(), comm), 0);
	assert_string_equal(comm, st.comm);
	struct procfs_entry *v = NULL;
	int n = procfs_scan(&v);
	assert_true(n > 0);
	int found = 0;
	for (int i = 0; i < n; i++) {
		if (i)
			assert_true(v[i - 1].ppid <= v[i].ppid);
		if (v[i].pid == getpid() && v[i].ppid == getppid())
			found = 1;
	}
	assert_true(found);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),     cmocka_unit_test(test_hostile_comm),
		cmocka_unit_test(test_malformed), cmocka_unit_test(test_length_bound),
		cmocka_unit_test(test_self),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
