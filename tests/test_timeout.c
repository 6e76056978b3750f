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
 * "ready" on its stdout first.
 *
 * Every run is a run of the shared harness (tests/harness_run.h) in the
 * test's cgroup: what a run leaves there is counted, then killed, before
 * the next run starts.  Skips visibly without a writable cgroup2.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness_run.h"

#define COREUTILS_TIMEOUT "/usr/bin/timeout"
#define MAX_ARGS 16

const struct harness_suite harness_suite = {
	.subject = "timeout",
};

struct outcome {
	int status;     /* as a shell's $? */
	char out[4096]; /* stdout */
	char err[4096]; /* stderr */
	int left;       /* processes of the run's tree that outlived it */
};

/* The processes of the test's cgroup that survive: a process signalled a
 * moment ago is still listed in cgroup.procs until it has run its exit, so
 * a count taken at once can include the dying.  Each listed process gets a
 * pidfd, and the count waits for them to exit until at most @expect are
 * left (or a bound of 10 s, against a hang only: a survivor never exits,
 * and one too many then fails the caller's assertion). */
static int cg_survivors(const struct ctx *c, int expect)
{
	pid_t pids[64];
	int n = cg_list(c, pids, 64);
	struct pollfd fds[64];
	int alive = 0;
	for (int i = 0; i < n; i++) {
		fds[alive].fd = sys_pidfd_open(pids[i]);
		fds[alive].events = POLLIN;
		if (fds[alive].fd >= 0)
			alive++;
	}
	double end = now_s() + 10;
	for (;;) {
		int left = 0;
		for (int i = 0; i < alive; i++)
			left += !pidfd_dead(fds[i].fd, 0);
		double wait = end - now_s();
		if (left <= expect || wait <= 0) {
			for (int i = 0; i < alive; i++)
				close(fds[i].fd);
			return left;
		}
		poll(fds, alive, (int)(wait * 1000) + 1);
	}
}

/* Start `PROG [timeout] ARGS` in the test's cgroup, stdin /dev/null. */
static struct run *start(struct ctx *c, bool ptmon, char *const args[])
{
	const char *argv[MAX_ARGS + 2];
	struct opts o = {.raw = true, .prog = ptmon ? NULL : COREUTILS_TIMEOUT};
	struct run *r = new_run(c);
	int n = 0;
	if (ptmon)
		argv[n++] = "timeout";
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	run_start_argv(c, r, &o, argv);
	return r;
}

/* The end of a run that has exited: its status, what it left in the
 * cgroup (waiting down to @expect_left), then the cgroup emptied for the
 * next run and the run's output read to its end. */
static void end_run(struct ctx *c, struct run *r, int expect_left, struct outcome *o)
{
	o->status = run_shell_status(r);
	o->left = cg_survivors(c, expect_left);
	/* coreutils leaves the escaped ones: they would hold its stdout. */
	cg_kill(c);
	if (!cg_wait_empty(c, EMPTY_BOUND_MS))
		fail_msg("the cgroup does not empty after cgroup.kill");
	run_wait(c, r, RUN_DEADLINE_S);
	snprintf(o->out, sizeof(o->out), "%s", r->o.p ? r->o.p : "");
	snprintf(o->err, sizeof(o->err), "%s", r->e.p ? r->e.p : "");
	runs_reap_all(c);
}

/* Run to the end; what it left is counted (down to @expect_left) and
 * killed. */
static void run(struct ctx *c, bool ptmon, char *const args[], int expect_left, struct outcome *o)
{
	struct run *r = start(c, ptmon, args);
	if (!run_reaped(r, (int)(RUN_DEADLINE_S * 1000)))
		run_abort(c, r, "timeout did not return");
	end_run(c, r, expect_left, o);
}

static void describe(char *buf, size_t size, char *const args[])
{
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; args[i] && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s'%s'", i ? " " : "", args[i]);
}

/* Both must end with @expect; ptmon must leave nothing of the tree. */
static void same(struct ctx *c, int expect, char *const args[], struct outcome *ret_c,
		 struct outcome *ret_p)
{
	struct outcome oc, p;
	char what[512];
	describe(what, sizeof(what), args);
	/* A command that sets a trap says "armed" once it has: a run whose
	 * first signal came before that (a machine too loaded to start sh
	 * within the duration) proves nothing, and is run again. */
	bool armed = strstr(what, "echo armed") != NULL;
	/* What coreutils leaves (--foreground) is not counted, only killed. */
	for (int try = 0; try < 5; try++) {
		run(c, false, args, INT_MAX, &oc);
		if (!armed || strstr(oc.out, "armed"))
			break;
		print_message("    (coreutils signalled before the trap was set; again)\n");
	}
	for (int try = 0; try < 5; try++) {
		run(c, true, args, 0, &p);
		if (!armed || strstr(p.out, "armed"))
			break;
		print_message("    (ptmon signalled before the trap was set; again)\n");
	}
	print_message("    timeout %s: coreutils %d, ptmon %d\n", what, oc.status, p.status);
	if (oc.status != expect)
		fail_msg("coreutils timeout %s: %d, the test expects %d (stderr: %s)", what,
			 oc.status, expect, oc.err);
	if (p.status != expect)
		fail_msg("ptmon timeout %s: %d, coreutils says %d (stderr: %s)", what, p.status,
			 expect, p.err);
	if (p.left > 0)
		fail_msg("ptmon timeout %s left %d processes", what, p.left);
	if (ret_c)
		*ret_c = oc;
	if (ret_p)
		*ret_p = p;
}

/* In a test body, whose context is c. */
#define SAME(expect, ...)                                                                          \
	do {                                                                                       \
		char *const a_[] = {__VA_ARGS__, NULL};                                            \
		same(c, expect, a_, NULL, NULL);                                                   \
	} while (0)

/* A command that ignores TERM, and whose sleep does too (SIG_IGN is
 * inherited across exec): only KILL ends it. */
#define DEAF "sh", "-c", "trap '' TERM; echo armed; sleep 1000"

static void t_durations(void **state)
{
	struct ctx *c = begin(state);
	/* timeout(1)'s syntax: strtod's forms, one optional unit. */
	static const char *ok[] = {"1000.",    "1e3",   ".5e4", "0x1p10", " 1000", "+1000",
				   "1000s",    "20m",   "1h",   "1d",     "inf",   "INF",
				   "infinity", "1e400", "0",    "0.0",    "1e-400"};
	static const char *bad[] = {"nan", "1ss",  "1x", "",    "1,5", "s",  ".",
				    "1 ",  "10ms", "1e", "--1", "0x",  "1D", "1S"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		SAME(3, (char *)ok[i], "sh", "-c", "exit 3");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		SAME(125, (char *)bad[i], "sh", "-c", "exit 3");
	/* Far below a nanosecond, but not zero: it fires. */
	SAME(124, "1e-10", "sleep", "1000");
	SAME(124, "0.01", "sleep", "1000");
	SAME(124, "1.e-1", "sleep", "1000");
	finish(c);
}

static void t_statuses(void **state)
{
	struct ctx *c = begin(state);
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
	finish(c);
}

static void t_usage(void **state)
{
	struct ctx *c = begin(state);
	SAME(125, "1000");
	SAME(125, "--bogus", "1", "true");
	SAME(125, "-x", "1", "true");
	SAME(125, "-k");
	SAME(125, "-s");
	SAME(125, "-k", "1x", "1", "true");
	char *const none[] = {NULL};
	same(c, 125, none, NULL, NULL);
	struct outcome oc, p;
	char *const help[] = {"--help", NULL};
	same(c, 0, help, &oc, &p);
	assert_non_null(strstr(p.out, "DURATION COMMAND [ARG]..."));
	assert_non_null(strstr(p.out, "--kill-after"));
	char *const version[] = {"--version", NULL};
	same(c, 0, version, &oc, &p);
	assert_non_null(strstr(p.out, "timeout"));
	finish(c);
}

static void t_signals(void **state)
{
	struct ctx *c = begin(state);
	/* Names in any case, with or without SIG, numbers, exit statuses. */
	static const char *ok[] = {"term", "TERM", "SIGTERM", "sigterm", "15",   "143", "INT",
				   "2",    "HUP",  "RTMIN+1", "rtmin+1", "USR1", "64"};
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
	finish(c);
}

static void t_kill_after(void **state)
{
	struct ctx *c = begin(state);
	SAME(137, "-k", "0.2", "0.1", DEAF);
	SAME(137, "--kill-after=0.2", "0.1", DEAF);
	SAME(137, "-k0.2", "0.1", DEAF);
	SAME(137, "-k", "1e-1", "1e-1", DEAF);
	/* The first signal is enough: KILL is never sent. */
	SAME(124, "-k", "1000", "0.1", "sleep", "1000");
	SAME(124, "-k", "0", "0.1", "sleep", "1000");
	SAME(125, "-k", "nan", "0.1", "sleep", "1000");
	finish(c);
}

static void t_preserve_status(void **state)
{
	struct ctx *c = begin(state);
	SAME(128 + SIGTERM, "--preserve-status", "0.1", "sleep", "1000");
	SAME(128 + SIGINT, "--preserve-status", "-s", "INT", "0.1", "sleep", "1000");
	SAME(3, "--preserve-status", "1000", "sh", "-c", "exit 3");
	SAME(0, "--preserve-status", "1000", "true");
	/* The command catches the signal and exits with its own status.  Its
	 * sleep is in the foreground: both get the signal (the process group,
	 * the tree), and sh runs the trap once the sleep is gone.  (Both
	 * signal sh before its sleep, so `sleep & wait` works as well: see
	 * t_signal_to_timeout and test_task's t_cancel_signals_parents_first.) */
	SAME(5, "--preserve-status", "0.2", "sh", "-c",
	     "trap 'exit 5' TERM; echo armed; while :; do sleep 1000; done");
	SAME(124, "0.2", "sh", "-c",
	     "trap 'exit 5' TERM; echo armed; while :; do sleep 1000; done");
	SAME(137, "--preserve-status", "-k", "0.2", "0.1", DEAF);
	SAME(128 + SIGTERM, "--pres", "0.1", "sleep", "1000");
	finish(c);
}

static void t_foreground_verbose(void **state)
{
	struct ctx *c = begin(state);
	struct outcome oc, p;
	SAME(124, "--foreground", "0.1", "sleep", "1000");
	SAME(137, "--foreground", "-k", "0.2", "0.1", DEAF);
	SAME(3, "--foreground", "1000", "sh", "-c", "exit 3");
	char *const v[] = {"-v", "0.1", "sleep", "1000", NULL};
	same(c, 124, v, &oc, &p);
	/* Both name the signal and the command. */
	assert_non_null(strstr(oc.err, "signal TERM"));
	assert_non_null(strstr(p.err, "signal TERM"));
	assert_non_null(strstr(p.err, "'sleep'"));
	char *const vk[] = {"--verbose", "-k", "0.2", "0.1", DEAF, NULL};
	same(c, 137, vk, &oc, &p);
	assert_non_null(strstr(oc.err, "signal KILL"));
	assert_non_null(strstr(p.err, "signal KILL"));
	/* Quiet without -v. */
	char *const q[] = {"0.1", "sleep", "1000", NULL};
	same(c, 124, q, &oc, &p);
	assert_string_equal(p.err, "");
	finish(c);
}

/* coreutils' timeout (9.1) blocks the signals it passes on only once its
 * fork() has returned; before that, its handler takes itself for the child
 * and exits 128+N at once, and the command is never signalled.  On a loaded
 * machine the command can run and say "ready" before the fork returns in
 * timeout (seen under strace: SIGINT in that gap, timeout exits 130 and
 * leaves sh running).  So a signal for timeout(1) waits until timeout sits
 * in its wait for the command, sigsuspend(), which it enters after the fork
 * returned: /proc/PID/syscall names the call a sleeping process is in.
 * ptmon needs no such wait: its front blocks every signal before it forks
 * and passes on what it got once the worker is ready (src/front.c). */
static void until_coreutils_waits(struct ctx *c, struct run *r)
{
	char path[64];
	double end = r->t_start + RUN_DEADLINE_S;
	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)r->pid);
	for (;;) {
		char buf[64] = "";
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf) - 1);
			buf[n > 0 ? n : 0] = '\0';
			close(fd);
		}
		char *tail;
		long nr = strtol(buf, &tail, 10);
		if (tail != buf && *tail == ' ' && nr == SYS_rt_sigsuspend)
			return;
		if (r->exited)
			run_abort(c, r, "coreutils timeout ended before it was signalled");
		if (now_s() > end)
			run_abort(c, r, "coreutils timeout never waited for its command");
		/* 1 ms: a timeout that waits is found at once. */
		pump(r, 1);
	}
}

/* Signals to timeout itself go to the command; the status is the
 * command's.  The signal is sent once the command has said "ready" (and
 * coreutils' timeout waits for it, above). */
static int signalled(struct ctx *c, bool ptmon, int sig, const char *script)
{
	char *const args[] = {"1000", "sh", "-c", (char *)script, NULL};
	struct outcome o;
	struct run *r = start(c, ptmon, args);
	run_until(c, r, "ready");
	if (!ptmon)
		until_coreutils_waits(c, r);
	run_signal(r, sig);
	if (!run_reaped(r, (int)(RUN_DEADLINE_S * 1000)))
		run_abort(c, r, "timeout did not return after a signal");
	end_run(c, r, 0, &o);
	if (ptmon && o.left > 0)
		fail_msg("ptmon timeout left %d processes after a signal", o.left);
	return o.status;
}

static void t_signal_to_timeout(void **state)
{
	struct ctx *c = begin(state);
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
		int co = signalled(c, false, cases[i].sig, cases[i].script);
		int p = signalled(c, true, cases[i].sig, cases[i].script);
		print_message("    SIG%s to timeout running '%s': coreutils %d, ptmon %d\n",
			      sigabbrev_np(cases[i].sig), cases[i].script, co, p);
		assert_int_equal(co, cases[i].expect);
		assert_int_equal(p, cases[i].ptmon_expect);
	}
	finish(c);
}

/* Where ptmon differs on purpose: a process that left the process group
 * (setsid) survives timeout(1), not ptmon timeout. */
static void t_whole_tree(void **state)
{
	struct ctx *c = begin(state);
	char *const args[] = {"0.3", "sh", "-c", "setsid sleep 1000 & sleep 1000", NULL};
	struct outcome oc, p;
	run(c, false, args, 1, &oc);
	run(c, true, args, 0, &p);
	print_message("    escaped sleep: coreutils leaves %d, ptmon %d\n", oc.left, p.left);
	assert_int_equal(oc.status, 124);
	assert_int_equal(p.status, 124);
	assert_int_equal(oc.left, 1);
	assert_int_equal(p.left, 0);
	/* The command ended by itself and left one behind: timeout(1) returns
	 * and leaves it; ptmon ends it and returns the command's status. */
	char *const bg[] = {"1000", "sh", "-c", "sleep 1000 & exit 6", NULL};
	run(c, false, bg, 1, &oc);
	run(c, true, bg, 0, &p);
	assert_int_equal(oc.status, 6);
	assert_int_equal(p.status, 6);
	assert_int_equal(oc.left, 1);
	assert_int_equal(p.left, 0);
	finish(c);
}

/* Without timeout(1) there is nothing to compare with: every test fails. */
static int timeout_group_setup(void **state)
{
	if (access(COREUTILS_TIMEOUT, X_OK) < 0) {
		print_message("no %s to compare with\n", COREUTILS_TIMEOUT);
		return -1;
	}
	return group_setup(state);
}

/* clang-format off */
#define ENTRY(f) {#f, f, setup, teardown, (void *)backend_none}
/* clang-format on */

int main(void)
{
	const struct CMUnitTest tests[] = {
		ENTRY(t_durations),
		ENTRY(t_statuses),
		ENTRY(t_usage),
		ENTRY(t_signals),
		ENTRY(t_kill_after),
		ENTRY(t_preserve_status),
		ENTRY(t_foreground_verbose),
		ENTRY(t_signal_to_timeout),
		ENTRY(t_whole_tree),
	};
	if (getenv("PTMON_TEST_FILTER"))
		cmocka_set_test_filter(getenv("PTMON_TEST_FILTER"));
	return cmocka_run_group_tests_name("timeout", tests, timeout_group_setup, group_teardown);
}
