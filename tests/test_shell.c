/* SPDX-License-Identifier: MIT */
/*
 * What a shell user meets: --quiet, -C/--chdir, and the summary's colour
 * (--color, NO_COLOR, TERM=dumb, a terminal or not) and tree glyphs (the
 * locale's charset).  Each run's task ends by itself at once; stderr is a
 * file, or a pseudo-terminal for --color=auto.
 */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#ifndef PTMON_BIN
#error "PTMON_BIN must name the ptmon binary"
#endif

struct result {
	int status;
	char out[8192];
	char err[8192];
};

static int memfile(void)
{
	char tmpl[] = "/tmp/ptmon-shell.XXXXXX";
	int fd = mkostemp(tmpl, O_CLOEXEC);
	assert_true(fd >= 0);
	unlink(tmpl);
	return fd;
}

static void slurp(int fd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	lseek(fd, 0, SEEK_SET);
	while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
}

/* Run ptmon with @env (NULL-terminated "NAME=value" set on top of a bare
 * environment) and @args; stderr on a pseudo-terminal when @tty. */
static void run(bool tty, const char *const env[], const char *const args[], struct result *r)
{
	char *argv[32], *envp[16];
	int n = 0, e = 0, ws, out = memfile(), err = -1, master = -1;
	argv[n++] = PTMON_BIN;
	for (int i = 0; args[i]; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	envp[e++] = "PATH=/usr/bin:/bin";
	for (int i = 0; env && env[i]; i++)
		envp[e++] = (char *)env[i];
	envp[e] = NULL;
	if (tty) {
		master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		assert_true(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
		err = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
	} else {
		err = memfile();
	}
	assert_true(err >= 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(out, 1);
		dup2(err, 2);
		execve(argv[0], argv, envp);
		_exit(98);
	}
	while (waitpid(pid, &ws, 0) < 0)
		assert_int_equal(errno, EINTR);
	r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	slurp(out, r->out, sizeof(r->out));
	close(out);
	if (tty) {
		/* What the child wrote waits in the terminal's buffer. */
		fcntl(master, F_SETFL, O_NONBLOCK);
		ssize_t k = read(master, r->err, sizeof(r->err) - 1);
		r->err[k > 0 ? k : 0] = '\0';
		close(master);
	} else {
		slurp(err, r->err, sizeof(r->err));
	}
	close(err);
}

#define RUN(tty, r, env, ...) run(tty, env, (const char *const[]){__VA_ARGS__, NULL}, r)
#define LEAVES "sh", "-c", "sleep 1000 & exit 0" /* a leftover, and its notice */

static void t_quiet(void **state)
{
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
}

static void t_chdir(void **state)
{
	char dir[] = "/tmp/ptmon-chdir.XXXXXX", path[64];
	struct result r;
	assert_non_null(mkdtemp(dir));
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
	unlink(path);
	rmdir(dir);
	RUN(false, &r, NULL, "run", "--no-control", "-C", "/nonexistent/dir", "--", "true");
	assert_int_equal(r.status, 125);
	assert_non_null(strstr(r.err, "/nonexistent/dir"));
}

static bool has_colour(const struct result *r)
{
	return strstr(r->err, "\033[") != NULL;
}

#define SUMMARY "run", "--no-control", "--summary"

static void t_colour(void **state)
{
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
}

static void t_locale(void **state)
{
	struct result r;
	RUN(false, &r, ((const char *const[]){"LC_ALL=C", NULL}), SUMMARY, "--", "sh", "-c",
	    "sh -c true; true");
	assert_non_null(strstr(r.err, "`- "));
	for (const char *c = r.err; *c; c++)
		assert_true((unsigned char)*c < 0x80); /* nothing but ASCII */
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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_quiet),
		cmocka_unit_test(t_chdir),
		cmocka_unit_test(t_colour),
		cmocka_unit_test(t_locale),
		cmocka_unit_test(t_width),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
