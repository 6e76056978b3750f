/* SPDX-License-Identifier: MIT */
/*
 * `ptmon timeout` against coreutils' timeout(1), side by side: every case
 * runs `/usr/bin/timeout ARGS` and `ptmon timeout ARGS` and checks that both
 * end with the status timeout(1) documents for it (as a shell sees it: 128+N
 * for a death by signal N).  Then what ptmon does on purpose otherwise: it
 * kills the whole tree, a process that left the process group included.
 *
 * Timing: a case that must time out runs a command that never ends by
 * itself (sleep 1000); one that must not runs a command that ends at once
 * under a timeout of 1000 s.  Only a machine stalled for minutes could turn
 * one into the other.  Runs where ptmon is signalled wait for the command's
 * "ready" on a pipe first.  Each run is in a cgroup of its own (when there
 * is a writable cgroup2), emptied and removed after it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef PTMON_BIN
#error "PTMON_BIN must name the ptmon binary"
#endif
#define COREUTILS_TIMEOUT "/usr/bin/timeout"
#define MAX_ARGS 16

struct outcome {
	int status;       /* as a shell's $? */
	char out[4096];   /* stdout */
	char err[4096];   /* stderr */
	char cg[384];     /* its cgroup, "" without one */
};

/* A fresh cgroup for one run, or "" when none can be made. */
static void cg_fresh(char *cg, size_t size)
{
	cg[0] = '\0';
	if (cg_mount[0] && cg_make("timeout", NULL, cg, size) < 0)
		cg[0] = '\0';
}

/* Kill whatever is left (coreutils leaves the escaped ones) and remove. */
static void cg_drop(const char *cg)
{
	if (cg[0])
		cg_remove(cg);
}

static void slurp(int fd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	lseek(fd, 0, SEEK_SET);
	while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
}

static int shell_status(int ws)
{
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* Start `PROG [timeout] ARGS` in its own cgroup, stdin /dev/null, stdout to
 * @out_fd, stderr to a temporary file (*ret_err). */
static pid_t start(bool ptmon, char *const args[], int out_fd, int *ret_err, struct outcome *o)
{
	char *argv[MAX_ARGS + 3];
	int n = 0;
	argv[n++] = ptmon ? PTMON_BIN : COREUTILS_TIMEOUT;
	if (ptmon)
		argv[n++] = "timeout";
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	cg_fresh(o->cg, sizeof(o->cg));
	char tmpl[] = "/tmp/ptmon-timeout-err.XXXXXX";
	int err = mkostemp(tmpl, O_CLOEXEC);
	assert_true(err >= 0);
	unlink(tmpl);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		char path[512];
		snprintf(path, sizeof(path), "%s/cgroup.procs", o->cg);
		int fd = o->cg[0] ? open(path, O_WRONLY) : -1;
		if (fd >= 0 && write(fd, "0", 1) < 0)
			_exit(99);
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(out_fd, 1);
		dup2(err, 2);
		execv(argv[0], argv);
		_exit(98);
	}
	*ret_err = err;
	return pid;
}

/* Run to the end; the run's cgroup is left for the caller to look at. */
static void run(bool ptmon, char *const args[], struct outcome *o)
{
	char tmpl[] = "/tmp/ptmon-timeout-out.XXXXXX";
	int out = mkostemp(tmpl, O_CLOEXEC), err, ws;
	assert_true(out >= 0);
	unlink(tmpl);
	pid_t pid = start(ptmon, args, out, &err, o);
	while (waitpid(pid, &ws, 0) < 0)
		assert_int_equal(errno, EINTR);
	o->status = shell_status(ws);
	slurp(out, o->out, sizeof(o->out));
	slurp(err, o->err, sizeof(o->err));
}

static void describe(char *buf, size_t size, char *const args[])
{
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; args[i] && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s'%s'", i ? " " : "", args[i]);
}

/* Both must end with @expect; ptmon must leave nothing of the tree. */
static void same(int expect, char *const args[], struct outcome *ret_c, struct outcome *ret_p)
{
	struct outcome c, p;
	char what[512];
	describe(what, sizeof(what), args);
	run(false, args, &c);
	cg_drop(c.cg);
	run(true, args, &p);
	int left = p.cg[0] ? cg_count_at(p.cg) : 0;
	cg_drop(p.cg);
	print_message("    timeout %s: coreutils %d, ptmon %d\n", what, c.status, p.status);
	if (c.status != expect)
		fail_msg("coreutils timeout %s: %d, the test expects %d (stderr: %s)", what, c.status,
			 expect, c.err);
	if (p.status != expect)
		fail_msg("ptmon timeout %s: %d, coreutils says %d (stderr: %s)", what, p.status, expect,
			 p.err);
	if (left > 0)
		fail_msg("ptmon timeout %s left %d processes", what, left);
	if (ret_c)
		*ret_c = c;
	if (ret_p)
		*ret_p = p;
}

#define SAME(expect, ...)                                                                    \
	do {                                                                                 \
		char *const a_[] = {__VA_ARGS__, NULL};                                      \
		same(expect, a_, NULL, NULL);                                                \
	} while (0)

/* A command that ignores TERM, and whose sleep does too (SIG_IGN is
 * inherited across exec): only KILL ends it. */
#define DEAF "sh", "-c", "trap '' TERM; sleep 1000"

static void t_durations(void **state)
{
	/* timeout(1)'s syntax: strtod's forms, one optional unit. */
	static const char *ok[] = {"1000.", "1e3", ".5e4", "0x1p10", " 1000", "+1000", "1000s",
				   "20m", "1h", "1d", "inf", "INF", "infinity", "1e400",
				   "0",   "0.0", "1e-400"};
	static const char *bad[] = {"nan", "1ss", "1x", "", "1,5", "s", ".", "1 ", "10ms",
				    "1e", "--1", "0x", "1D", "1S"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		SAME(3, (char *)ok[i], "sh", "-c", "exit 3");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		SAME(125, (char *)bad[i], "sh", "-c", "exit 3");
	/* Far below a nanosecond, but not zero: it fires. */
	SAME(124, "1e-10", "sleep", "1000");
	SAME(124, "0.01", "sleep", "1000");
	SAME(124, "1.e-1", "sleep", "1000");
}

static void t_statuses(void **state)
{
	SAME(0, "1000", "true");
	SAME(1, "1000", "false");
	for (int v = 2; v < 256; v += 37) {
		char cmd[32];
		snprintf(cmd, sizeof(cmd), "exit %d", v);
		SAME(v, "1000", "sh", "-c", cmd);
	}
	SAME(124, "0.2", "sleep", "1000");
	SAME(127, "1000", "/nonexistent/command");
	SAME(127, "1000", "no-such-command-anywhere");
	SAME(126, "1000", "/etc/passwd"); /* not executable */
	SAME(126, "1000", "/");           /* a directory */
	/* A death by a signal of its own: 128+N, timeout or not. */
	SAME(128 + SIGUSR1, "1000", "sh", "-c", "kill -USR1 $$");
	SAME(128 + SIGKILL, "1000", "sh", "-c", "kill -KILL $$");
	/* Options after DURATION are the command's. */
	SAME(4, "1000", "sh", "-c", "exit 4", "-v");
	SAME(127, "0.1", "--", "sleep", "1"); /* "--" is the command here */
	SAME(124, "--", "0.2", "sleep", "1000");
}

static void t_usage(void **state)
{
	SAME(125, "1000");
	SAME(125, "--bogus", "1", "true");
	SAME(125, "-x", "1", "true");
	SAME(125, "-k");
	SAME(125, "-s");
	SAME(125, "-k", "1x", "1", "true");
	char *const none[] = {NULL};
	same(125, none, NULL, NULL);
	struct outcome c, p;
	char *const help[] = {"--help", NULL};
	same(0, help, &c, &p);
	assert_non_null(strstr(p.out, "DURATION COMMAND [ARG]..."));
	assert_non_null(strstr(p.out, "--kill-after"));
	char *const version[] = {"--version", NULL};
	same(0, version, &c, &p);
	assert_non_null(strstr(p.out, "timeout"));
}

static void t_signals(void **state)
{
	/* Names in any case, with or without SIG, numbers, exit statuses. */
	static const char *ok[] = {"term", "TERM", "SIGTERM", "sigterm", "15", "143", "INT", "2",
				   "HUP", "RTMIN+1", "rtmin+1", "USR1", "64"};
	static const char *bad[] = {"foo", "65", "-1", " 15", "15x", "SIG", ""};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		SAME(124, "-s", (char *)ok[i], "0.1", "sleep", "1000");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		SAME(125, "-s", (char *)bad[i], "0.1", "sleep", "1000");
	SAME(124, "--signal=INT", "0.1", "sleep", "1000");
	SAME(124, "--sig=INT", "0.1", "sleep", "1000"); /* getopt's abbreviations */
	SAME(124, "-sINT", "0.1", "sleep", "1000");
	/* KILL: 137, the command (and coreutils itself) killed. */
	SAME(137, "-s", "KILL", "0.1", "sleep", "1000");
	SAME(137, "-s", "9", "0.1", "sleep", "1000");
	/* 0 (EXIT) ends nothing; -k does. */
	SAME(137, "-s", "0", "-k", "0.2", "0.1", "sleep", "1000");
	SAME(137, "-s", "EXIT", "-k", "0.2", "0.1", "sleep", "1000");
}

static void t_kill_after(void **state)
{
	SAME(137, "-k", "0.2", "0.1", DEAF);
	SAME(137, "--kill-after=0.2", "0.1", DEAF);
	SAME(137, "-k0.2", "0.1", DEAF);
	SAME(137, "-k", "1e-1", "1e-1", DEAF);
	/* The first signal is enough: KILL is never sent. */
	SAME(124, "-k", "1000", "0.1", "sleep", "1000");
	SAME(124, "-k", "0", "0.1", "sleep", "1000");
	SAME(125, "-k", "nan", "0.1", "sleep", "1000");
}

static void t_preserve_status(void **state)
{
	SAME(128 + SIGTERM, "--preserve-status", "0.1", "sleep", "1000");
	SAME(128 + SIGINT, "--preserve-status", "-s", "INT", "0.1", "sleep", "1000");
	SAME(3, "--preserve-status", "1000", "sh", "-c", "exit 3");
	SAME(0, "--preserve-status", "1000", "true");
	/* The command catches the signal and exits with its own status. */
	SAME(5, "--preserve-status", "0.2", "sh", "-c", "trap 'exit 5' TERM; sleep 1000 & wait");
	SAME(124, "0.2", "sh", "-c", "trap 'exit 5' TERM; sleep 1000 & wait");
	SAME(137, "--preserve-status", "-k", "0.2", "0.1", DEAF);
	SAME(128 + SIGTERM, "--pres", "0.1", "sleep", "1000");
}

static void t_foreground_verbose(void **state)
{
	struct outcome c, p;
	SAME(124, "--foreground", "0.1", "sleep", "1000");
	SAME(137, "--foreground", "-k", "0.2", "0.1", DEAF);
	SAME(3, "--foreground", "1000", "sh", "-c", "exit 3");
	char *const v[] = {"-v", "0.1", "sleep", "1000", NULL};
	same(124, v, &c, &p);
	/* Both name the signal and the command. */
	assert_non_null(strstr(c.err, "signal TERM"));
	assert_non_null(strstr(p.err, "signal TERM"));
	assert_non_null(strstr(p.err, "'sleep'"));
	char *const vk[] = {"--verbose", "-k", "0.2", "0.1", DEAF, NULL};
	same(137, vk, &c, &p);
	assert_non_null(strstr(c.err, "signal KILL"));
	assert_non_null(strstr(p.err, "signal KILL"));
	/* Quiet without -v. */
	char *const q[] = {"0.1", "sleep", "1000", NULL};
	same(124, q, &c, &p);
	assert_string_equal(p.err, "");
}

/* Signals to timeout itself go to the command; the status is the
 * command's.  The signal is sent once the command has said "ready". */
static int signalled(bool ptmon, int sig, const char *script, struct outcome *o)
{
	char *const args[] = {"1000", "sh", "-c", (char *)script, NULL};
	int p[2], err, ws;
	char buf[16];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = start(ptmon, args, p[1], &err, o);
	close(p[1]);
	assert_true(read(p[0], buf, sizeof(buf)) > 0);
	kill(pid, sig);
	while (waitpid(pid, &ws, 0) < 0)
		assert_int_equal(errno, EINTR);
	close(p[0]);
	close(err);
	int left = o->cg[0] ? cg_count_at(o->cg) : 0;
	cg_drop(o->cg);
	if (ptmon && left > 0)
		fail_msg("ptmon timeout left %d processes after a signal", left);
	return shell_status(ws);
}

static void t_signal_to_timeout(void **state)
{
	static const struct {
		int sig;
		const char *script;
		int expect, ptmon_expect;
	} cases[] = {
		{SIGTERM, "echo ready; sleep 1000", 128 + SIGTERM, 128 + SIGTERM},
		{SIGINT, "trap 'exit 7' INT TERM; echo ready; sleep 1000 & wait", 7, 7},
		/* A difference on purpose: timeout(1) passes on the signal it
		 * got; ptmon cancels with its own (-s, TERM by default). */
		{SIGHUP, "echo ready; sleep 1000", 128 + SIGHUP, 128 + SIGTERM},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct outcome o;
		int c = signalled(false, cases[i].sig, cases[i].script, &o);
		int p = signalled(true, cases[i].sig, cases[i].script, &o);
		print_message("    SIG%s to timeout running '%s': coreutils %d, ptmon %d\n",
			      sigabbrev_np(cases[i].sig), cases[i].script, c, p);
		assert_int_equal(c, cases[i].expect);
		assert_int_equal(p, cases[i].ptmon_expect);
	}
}

/* Where ptmon differs on purpose: a process that left the process group
 * (setsid) survives timeout(1), not ptmon timeout. */
static void t_whole_tree(void **state)
{
	if (!cg_mount[0] || access(cg_mount, W_OK) < 0)
		skip();
	char *const args[] = {"0.3", "sh", "-c", "setsid sleep 1000 & sleep 1000", NULL};
	struct outcome c, p;
	run(false, args, &c);
	int c_left = cg_count_at(c.cg);
	cg_drop(c.cg);
	run(true, args, &p);
	int p_left = cg_count_at(p.cg);
	cg_drop(p.cg);
	print_message("    escaped sleep: coreutils leaves %d, ptmon %d\n", c_left, p_left);
	assert_int_equal(c.status, 124);
	assert_int_equal(p.status, 124);
	assert_int_equal(c_left, 1);
	assert_int_equal(p_left, 0);
	/* The command ended by itself and left one behind: timeout(1) returns
	 * and leaves it; ptmon ends it and returns the command's status. */
	char *const bg[] = {"1000", "sh", "-c", "sleep 1000 & exit 6", NULL};
	run(false, bg, &c);
	c_left = cg_count_at(c.cg);
	cg_drop(c.cg);
	run(true, bg, &p);
	p_left = cg_count_at(p.cg);
	cg_drop(p.cg);
	assert_int_equal(c.status, 6);
	assert_int_equal(p.status, 6);
	assert_int_equal(c_left, 1);
	assert_int_equal(p_left, 0);
}

static int setup(void **state)
{
	if (access(COREUTILS_TIMEOUT, X_OK) < 0) {
		print_message("no %s to compare with\n", COREUTILS_TIMEOUT);
		return -1;
	}
	if (!find_cgroup2() || geteuid() != 0)
		cg_mount[0] = '\0';
	return 0;
}

/* A failed check leaves its test at once: the cgroups of the runs it did
 * not get to remove are removed here, whatever is in them killed. */
static int teardown(void **state)
{
	char prefix[64], cg[sizeof(cg_mount) + 260];
	DIR *d = cg_mount[0] ? opendir(cg_mount) : NULL;
	struct dirent *e;
	snprintf(prefix, sizeof(prefix), "ptmon-timeout.%d.", (int)getpid());
	while (d && (e = readdir(d)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
			snprintf(cg, sizeof(cg), "%s/%s", cg_mount, e->d_name);
			cg_drop(cg);
		}
	if (d)
		closedir(d);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(t_durations, teardown),
		cmocka_unit_test_teardown(t_statuses, teardown),
		cmocka_unit_test_teardown(t_usage, teardown),
		cmocka_unit_test_teardown(t_signals, teardown),
		cmocka_unit_test_teardown(t_kill_after, teardown),
		cmocka_unit_test_teardown(t_preserve_status, teardown),
		cmocka_unit_test_teardown(t_foreground_verbose, teardown),
		cmocka_unit_test_teardown(t_signal_to_timeout, teardown),
		cmocka_unit_test_teardown(t_whole_tree, teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
