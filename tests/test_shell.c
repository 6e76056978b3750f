/* SPDX-License-Identifier: MIT */
/*
 * What a shell user meets: --quiet, -C/--chdir, and the summary's colour
 * (--color, NO_COLOR, TERM=dumb, a terminal or not) and tree glyphs (the
 * locale's charset).  Each run's task ends by itself at once; stderr is a
 * pipe, or a pseudo-terminal for --color=auto.  ptmon runs with a bare
 * environment, in the test's cgroup (tests/harness_run.h): nothing may be
 * left there after it.  Skips visibly without a writable cgroup2.
 */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness_run.h"

const struct harness_suite harness_suite = {
	.subject = "shell",
	.tmpdir = true,
};

struct result {
	int status;
	char out[8192];
	char err[8192];
};

/* Run ptmon with @env (NULL-terminated "NAME=value" set on top of a bare
 * environment) and @args, to its end; stderr on a pseudo-terminal when @tty. */
static void run(struct ctx *c, bool tty, const char *const env[], const char *const args[],
		struct result *res)
{
	const char *envp[16] = {"PATH=/usr/bin:/bin"};
	struct opts o = {.raw = true, .envp = envp};
	struct run *r = new_run(c);
	int n = 1, master = -1;
	for (int i = 0; env && env[i]; i++)
		envp[n++] = env[i];
	envp[n] = NULL;
	if (tty) {
		master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		assert_true(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
		o.err_fd = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
		assert_true(o.err_fd >= 0);
	}
	run_start_argv(c, r, &o, args);
	if (tty)
		close(o.err_fd);
	run_wait(c, r, RUN_DEADLINE_S);
	if (tty) {
		/* What ptmon wrote waits in the terminal's buffer; then EIO. */
		fcntl(master, F_SETFL, O_NONBLOCK);
		drain_fd(&master, &r->e);
		if (master >= 0)
			close(master);
	}
	res->status = run_shell_status(r);
	snprintf(res->out, sizeof(res->out), "%s", r->o.p ? r->o.p : "");
	snprintf(res->err, sizeof(res->err), "%s", r->e.p ? r->e.p : "");
}

/* In a test body, whose context is c. */
#define RUN(tty, r, env, ...) run(c, tty, env, (const char *const[]){__VA_ARGS__, NULL}, r)
#define LEAVES "sh", "-c", "sleep 1000 & exit 0" /* a leftover, and its notice */

static void t_quiet(void **state)
{
	struct ctx *c = begin(state);
	struct result r;
	RUN(false, &r, NULL, "run", "--no-control", "--", LEAVES);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "remaining"));
	RUN(false, &r, NULL, "run", "--no-control", "-q", "--", LEAVES);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.err, "");
	RUN(false, &r, NULL, "run", "--no-control", "--quiet", "--", LEAVES);
	assert_string_equal(r.err, "");
	/* Errors are still said. */
	RUN(false, &r, NULL, "run", "--no-control", "-q", "--", "/nonexistent/cmd");
	assert_int_equal(r.status, 127);
	assert_non_null(strstr(r.err, "/nonexistent/cmd"));
	finish(c);
}

static void t_chdir(void **state)
{
	struct ctx *c = begin(state);
	const char *dir = c->dir;
	char path[128];
	struct result r;
	RUN(false, &r, NULL, "run", "--no-control", "-C", dir, "--", "pwd");
	assert_int_equal(r.status, 0);
	snprintf(path, sizeof(path), "%s\n", dir);
	assert_string_equal(r.out, path);
	/* Relative paths of ptmon's own are taken there too. */
	RUN(false, &r, NULL, "run", "--no-control", "--chdir", dir, "--report", "r.json", "--",
	    "true");
	assert_int_equal(r.status, 0);
	snprintf(path, sizeof(path), "%s/r.json", dir);
	assert_int_equal(access(path, R_OK), 0);
	RUN(false, &r, NULL, "run", "--no-control", "-C", "/nonexistent/dir", "--", "true");
	assert_int_equal(r.status, 125);
	assert_non_null(strstr(r.err, "/nonexistent/dir"));
	finish(c);
}

static bool has_colour(const struct result *r)
{
	return strstr(r->err, "\033[") != NULL;
}

#define SUMMARY "run", "--no-control", "--summary"

static void t_colour(void **state)
{
	struct ctx *c = begin(state);
	struct result r;
	RUN(false, &r, NULL, SUMMARY, "--", "true");
	assert_non_null(strstr(r.err, "exit 0"));
	assert_false(has_colour(&r)); /* auto, not a terminal */
	RUN(false, &r, NULL, SUMMARY, "--color=always", "--", "true");
	assert_true(has_colour(&r));
	RUN(false, &r, ((const char *const[]){"NO_COLOR=1", NULL}), SUMMARY, "--color", "always",
	    "--", "true");
	assert_true(has_colour(&r)); /* asked for */
	RUN(true, &r, NULL, SUMMARY, "--", "true");
	assert_non_null(strstr(r.err, "exit 0"));
	assert_true(has_colour(&r)); /* auto, a terminal */
	RUN(true, &r, NULL, SUMMARY, "--color=never", "--", "true");
	assert_false(has_colour(&r));
	RUN(true, &r, ((const char *const[]){"NO_COLOR=1", NULL}), SUMMARY, "--", "true");
	assert_false(has_colour(&r));
	RUN(true, &r, ((const char *const[]){"NO_COLOR=", NULL}), SUMMARY, "--", "true");
	assert_true(has_colour(&r)); /* empty: not set, says no-color.org */
	RUN(true, &r, ((const char *const[]){"TERM=dumb", NULL}), SUMMARY, "--", "true");
	assert_false(has_colour(&r));
	RUN(false, &r, NULL, SUMMARY, "--color=sometimes", "--", "true");
	assert_int_equal(r.status, 125);
	assert_non_null(strstr(r.err, "--color"));
	finish(c);
}

static void t_locale(void **state)
{
	struct ctx *c = begin(state);
	struct result r;
	RUN(false, &r, ((const char *const[]){"LC_ALL=C", NULL}), SUMMARY, "--", "sh", "-c",
	    "sh -c true; true");
	assert_non_null(strstr(r.err, "`- "));
	for (const char *ch = r.err; *ch; ch++)
		assert_true((unsigned char)*ch < 0x80); /* nothing but ASCII */
	locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (!l)
		skip(); /* no C.UTF-8 here */
	freelocale(l);
	RUN(false, &r, ((const char *const[]){"LC_ALL=C.UTF-8", NULL}), SUMMARY, "--", "sh", "-c",
	    "sh -c true; true");
	assert_non_null(strstr(r.err, "└─ "));
	RUN(false, &r, ((const char *const[]){"LANG=C.UTF-8", "LC_CTYPE=C", NULL}), SUMMARY, "--",
	    "sh", "-c", "sh -c true; true");
	assert_non_null(strstr(r.err, "`- "));
	finish(c);
}

static size_t longest_line(const char *s)
{
	size_t longest = 0;
	while (*s) {
		size_t n = strcspn(s, "\n");
		longest = n > longest ? n : longest;
		s += n + (s[n] == '\n');
	}
	return longest;
}

static void t_width(void **state)
{
	struct ctx *c = begin(state);
	struct result r;
	/* The terminal's width (COLUMNS) is kept, killed processes included. */
	RUN(false, &r, ((const char *const[]){"LC_ALL=C", "COLUMNS=80", NULL}), SUMMARY, "-q", "--",
	    "sh", "-c", "sh -c 'sleep 1000 & true'; true");
	assert_non_null(strstr(r.err, "killed by ptmon (TERM)"));
	print_message("    COLUMNS=80: longest line %zu\n", longest_line(r.err));
	assert_true(longest_line(r.err) <= 80);
	/* No terminal, no COLUMNS: the full layout (the header is 89 wide). */
	RUN(false, &r, ((const char *const[]){"LC_ALL=C", NULL}), SUMMARY, "--", "true");
	assert_int_equal(strcspn(r.err, "\n"), 89);
	RUN(false, &r, ((const char *const[]){"LC_ALL=C", "COLUMNS=junk", NULL}), SUMMARY, "--",
	    "true");
	assert_int_equal(strcspn(r.err, "\n"), 89);
	finish(c);
}

/* clang-format off */
#define ENTRY(f) {#f, f, setup, teardown, (void *)backend_none}
/* clang-format on */

int main(void)
{
	const struct CMUnitTest tests[] = {
		ENTRY(t_quiet), ENTRY(t_chdir), ENTRY(t_colour), ENTRY(t_locale), ENTRY(t_width),
	};
	if (getenv("PTMON_TEST_FILTER"))
		cmocka_set_test_filter(getenv("PTMON_TEST_FILTER"));
	return cmocka_run_group_tests_name("shell", tests, group_setup, group_teardown);
}
