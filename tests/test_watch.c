/* SPDX-License-Identifier: MIT */
/*
 * `ptmon watch PID` against real trees that the test starts, not ptmon, on
 * both backends.  Each tree starts in the test's cgroup, so survivors are
 * counted from outside ptmon (cgroup.procs); ptmon and its clients stay
 * outside it, in the test program's cgroup.  A bystander (a child of this
 * test outside the tree) must be alive after every test.
 *
 * Synchronisation: the tree writes lines on its stdout ("READY"), ptmon's
 * event stream is read for its "start" line; the only waits with a clock
 * are bounds (a run that does not end in RUN_BOUND_MS fails).
 *
 * The test cgroups (ptmon-watch.PID.N), the bystander, the runs of ptmon
 * and the tree (a run of sh) with their streams are the shared harness's
 * (tests/harness_run.h); what is a watch's own (the tree started by the
 * test, ptmon attached to it) is here.
 * Needs root (cgroup directories, setuid to 65534); skips visibly without.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness_run.h"

#define RUN_BOUND_MS 30000

const struct harness_suite harness_suite = {
	.subject = "watch",
	.tmpdir = true,
	.root = true,
};

/* ---- a watch's own helpers, on tests/harness_run.h -------------------------- */

struct tctx {
	struct ctx *h;  /* the harness's: cgroup, directory, runs */
	const char *cg; /* the test's cgroup, where the tree is */
	const char *backend;
	struct run *tree;  /* sh -c SCRIPT: its lines on stdout, stdin a pipe */
	struct run *ptmon; /* the last ptmon watch */
	char control[PATH_MAX];
};

/* The test's context (skips visibly without root, cgroup2 or the backend). */
static struct tctx tbegin(void **state)
{
	struct tctx c = {.h = begin(state)};

	c.cg = c.h->cg;
	c.backend = c.h->backend;
	snprintf(c.control, sizeof(c.control), "%s", tpath(c.h, "sock"));
	return c;
}

/* Start `sh -c SCRIPT` in the test's cgroup; it writes its lines on stdout,
 * and its stdin is a pipe that tree_go() closes. */
static void tree_start(struct tctx *c, const char *script)
{
	struct opts o = {.prog = "/bin/sh", .stdin_pipe = true};

	c->tree = new_run(c->h);
	run_start(c->h, c->tree, &o, "-c", script, NULL);
}

/* Scripts that `read x` first wait here: for the watch to have begun. */
static void tree_go(struct tctx *c)
{
	close(c->tree->in);
	c->tree->in = -1;
}

static void tree_wait_line(struct tctx *c, const char *needle)
{
	run_until(c->h, c->tree, needle);
}

/* Run `ptmon watch --backend B --events FIFO --control SOCK [ARGS] PID`,
 * as @uid (0: ours). */
static void watch_start_as(struct tctx *c, pid_t pid, uid_t uid, const char *const *args)
{
	struct opts o = {.raw = true, .outside_cg = true, .uid = uid};
	char evname[16], pidtext[16];
	const char *argv[32];
	int n = 0;

	c->ptmon = new_run(c->h);
	argv[n++] = "watch";
	argv[n++] = "--backend";
	argv[n++] = c->backend;
	if (!uid) { /* another user cannot open a FIFO in our directory */
		snprintf(evname, sizeof(evname), "ev%d", (int)(c->ptmon - c->h->runs));
		follow_events(c->h, c->ptmon, evname);
		argv[n++] = "--events";
		argv[n++] = tpath(c->h, evname);
	}
	if (uid) {
		argv[n++] = "--no-control";
	} else {
		argv[n++] = "--control";
		argv[n++] = c->control;
	}
	for (int i = 0; args && args[i] && n < 30; i++)
		argv[n++] = args[i];
	snprintf(pidtext, sizeof(pidtext), "%d", (int)pid);
	if (pid) /* 0: --cgroup is among @args */
		argv[n++] = pidtext;
	argv[n] = NULL;
	run_start_argv(c->h, c->ptmon, &o, argv);
}

static void watch_start(struct tctx *c, pid_t pid, const char *const *args)
{
	watch_start_as(c, pid, 0, args);
}

static void events_until(struct tctx *c, const char *needle)
{
	run_until_events(c->h, c->ptmon, needle, 1, RUN_DEADLINE_S);
}

/* What ptmon wrote on stderr so far. */
static const char *err_text(const struct tctx *c)
{
	return c->ptmon->e.p ? c->ptmon->e.p : "";
}

/* ptmon's exit status, within the bound (else it is killed and fails),
 * once its output has ended. */
static int watch_wait(struct tctx *c)
{
	struct run *r = c->ptmon;

	if (!run_reaped(r, RUN_BOUND_MS))
		run_abort(c->h, r, "ptmon watch did not end");
	run_wait(c->h, r, now_s() - r->t_start + RUN_BOUND_MS / 1000.0);
	return run_shell_status(r);
}

/* Nothing left in the tree's cgroup, the bystander alive; what ptmon said
 * when something is left. */
static void assert_clean(struct tctx *c)
{
	if (!cg_wait_empty(c->h, EMPTY_BOUND_MS) && c->ptmon)
		dump_run(c->ptmon);
	finish(c->h);
}

/* Reap the tree's root (its parent's duty: ptmon learns the status from
 * its EXIT event, or its pidfd once reaped): its wait status. */
static int tree_reap(struct tctx *c)
{
	if (!run_reaped(c->tree, RUN_BOUND_MS))
		run_abort(c->h, c->tree, "the tree's root did not end");
	return c->tree->status;
}

/* `ptmon ARGS`, a client of the watch's socket, to its end: its status. */
static int run_client(struct tctx *c, const char *const *args)
{
	struct opts o = {.raw = true, .outside_cg = true};
	struct run *r = new_run(c->h);

	run_start_argv(c->h, r, &o, args);
	run_wait(c->h, r, RUN_DEADLINE_S);
	return run_shell_status(r);
}

/* ---- tests ------------------------------------------------------------------ */

/* A chain 20 deep and 30 wide started before the watch, cancelled by the
 * timeout: everything goes, 124. */
static void t_deep_wide(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	tree_start(c, "d() { if [ $1 -gt 0 ]; then d $(($1 - 1)) & wait; else echo READY; "
		      "sleep 1000; fi; }; i=0; while [ $i -lt 30 ]; do sleep 1000 & i=$((i+1)); "
		      "done; d 20 & wait");
	tree_wait_line(c, "READY");
	const char *args[] = {"--timeout", "300ms", "--grace", "200ms", NULL};
	watch_start(c, c->tree->pid, args);
	assert_int_equal(watch_wait(c), 124);
	tree_reap(c);
	assert_clean(c);
}

/* A double-fork daemon born after the watch began is in the tree and goes
 * with a cancel; the report marks it reparented. */
static void t_double_fork_after(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	tree_start(c, "read x <&0; (sleep 1000 & echo D$!) ; echo READY; sleep 1000");
	/* The script waits for a line on stdin: it gets EOF once ptmon began. */
	const char *args[] = {"--timeout", "2s", "--grace", "200ms", NULL};
	watch_start(c, c->tree->pid, args);
	events_until(c, "\"type\":\"start\"");
	/* ptmon stopped while the middle process forks and exits: it reads
	 * the FORK only once the child is an orphan of init's (no race). */
	run_signal(c->ptmon, SIGSTOP);
	tree_go(c);
	tree_wait_line(c, "READY");
	run_signal(c->ptmon, SIGCONT);
	assert_int_equal(watch_wait(c), 124);
	tree_reap(c);
	assert_clean(c);
}

/* A process whose parent exits stays tracked; the watch ends when it is
 * gone too, with the root's status. */
static void t_parent_exits(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	tree_start(c, "read x; (sleep 1000 & echo O$!); echo READY; exit 7");
	watch_start(c, c->tree->pid, NULL);
	events_until(c, "\"type\":\"start\"");
	/* ptmon stopped while the middle process forks and exits: it reads
	 * the FORK only once the child is an orphan of init's (no race). */
	run_signal(c->ptmon, SIGSTOP);
	tree_go(c);
	tree_wait_line(c, "READY");
	run_signal(c->ptmon, SIGCONT);
	assert_int_equal(WEXITSTATUS(tree_reap(c)), 7);
	/* The orphan is in the tree: ptmon is still watching it. */
	assert_false(pidfd_dead(c->ptmon->pidfd, 0));
	assert_int_equal(cg_count_at(c->cg), 1);
	/* The orphan is named as it runs, sleep, once it has exec'd: the
	 * subshell wrote its pid right after the fork, and on a loaded
	 * machine the exec may come after everything above, or a cancel
	 * now would kill it as "sh".  ptmon has seen the exec (an exec
	 * line, or the fork line of an orphan proven after it). */
	events_until(c, "\"comm\":\"sleep\"");
	const char *cancel[] = {"cancel", c->control, "--now", NULL};
	assert_int_equal(run_client(c, cancel), 0);
	assert_int_equal(watch_wait(c), 124);
	events_until(c, "\"type\":\"done\"");
	/* The orphan: forked after the watch began, by a process now gone. */
	assert_non_null(strstr(c->ptmon->evb.p, "\"type\":\"fork\""));
	assert_clean(c);
}

/* A fork loop, cancelled: the SIGKILL sweeps converge. */
static void t_fork_loop(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	tree_start(c, "echo READY; while :; do sleep 1000 & done");
	tree_wait_line(c, "READY");
	const char *args[] = {"--timeout", "300ms", "--grace", "100ms", NULL};
	watch_start(c, c->tree->pid, args);
	int st = watch_wait(c);
	if (st != 124)
		fail_msg("ptmon watch ended %d, not 124; it said: %s", st, err_text(c));
	tree_reap(c);
	assert_clean(c);
}

/* `ptmon kill ID PID` from another process ends that one process only. */
static void t_kill_one(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	tree_start(c, "sleep 1000 & echo A$!; sleep 1000 & echo B$!.; wait");
	tree_wait_line(c, ".");
	const char *lines = c->tree->o.p;
	int a = 0, b = 0;
	assert_int_equal(sscanf(strchr(lines, 'A'), "A%d", &a), 1);
	assert_int_equal(sscanf(strchr(lines, 'B'), "B%d", &b), 1);
	int afd = sys_pidfd_open(a), bfd = sys_pidfd_open(b);
	watch_start(c, c->tree->pid, NULL);
	events_until(c, "\"type\":\"start\"");
	/* The walk runs before the socket is served; its fork lines follow. */
	char pa[16];
	snprintf(pa, sizeof(pa), "%d", a);
	const char *killa[] = {"kill", c->control, pa, "-s", "KILL", NULL};
	assert_int_equal(run_client(c, killa), 0);
	assert_true(pidfd_dead(afd, RUN_BOUND_MS));
	assert_false(pidfd_dead(bfd, 0));
	const char *cancel[] = {"cancel", c->control, "--now", NULL};
	assert_int_equal(run_client(c, cancel), 0);
	assert_int_equal(watch_wait(c), 124);
	assert_true(pidfd_dead(bfd, RUN_BOUND_MS));
	tree_reap(c);
	close(afd);
	close(bfd);
	assert_clean(c);
}

/* The root's own status when it ends by itself. */
static void t_root_status(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	tree_start(c, "read x; sleep 0.1 & wait; exit 42");
	watch_start(c, c->tree->pid, NULL);
	events_until(c, "\"type\":\"start\"");
	tree_go(c);
	assert_int_equal(WEXITSTATUS(tree_reap(c)), 42);
	int st = watch_wait(c);
	/* Without events, only PIDFD_INFO_EXIT can tell, once the root is
	 * reaped: ptmon may look before this test reaped it. */
	if (!strcmp(c->backend, "procfs") && st == 125)
		assert_non_null(strstr(err_text(c), "is unknown"));
	else
		assert_int_equal(st, 42);
	assert_clean(c);
}

/* The root exits while ptmon attaches: either it is gone before (125, no
 * such process) or its status is the watch's; never a hang. */
static void t_exits_during_walk(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	tree_start(c, "sleep 0 & sleep 0 & exit 9");
	watch_start(c, c->tree->pid, NULL);
	tree_reap(c);
	int st = watch_wait(c);
	if (st == 125)
		assert_non_null(strstr(err_text(c), "no such process"));
	else
		assert_int_equal(st, 9);
	assert_clean(c);
}

static void t_refused(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	watch_start(c, 1, NULL);
	assert_int_equal(watch_wait(c), 125);
	assert_non_null(strstr(err_text(c), "init's tree"));
	watch_start(c, getpid(), NULL); /* ptmon's parent */
	assert_int_equal(watch_wait(c), 125);
	assert_non_null(strstr(err_text(c), "ancestors"));
	/* A pid that exists no more: our reaped child's. */
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	watch_start(c, p, NULL);
	assert_int_equal(watch_wait(c), 125);
	assert_non_null(strstr(err_text(c), "no such process"));
}

/* ptmon as uid 65534 watches root's tree: watching works, every signal
 * is refused with a message, and the cancel gives up on them (125). */
static void t_other_user(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	tree_start(c, "sleep 1000 & echo READY; wait");
	tree_wait_line(c, "READY");
	const char *args[] = {"--timeout", "200ms", "--grace", "100ms", NULL};
	watch_start_as(c, c->tree->pid, 65534, args);
	assert_int_equal(watch_wait(c), 125);
	const char *err = err_text(c);
	if (!strstr(err, "not permitted to signal it (EPERM)"))
		fail_msg("no EPERM message in: %s", err);
	/* Nothing of root's was harmed. */
	assert_false(pidfd_dead(c->tree->pidfd, 0));
	assert_int_equal(cg_count_at(c->cg), 2);
}

/* @path's text without blanks (a pretty-printed report, compacted). */
static char *file_text(const char *path)
{
	static struct buf b;
	size_t k = 0;

	b.len = 0;
	buf_add_file(&b, path);
	for (size_t i = 0; i < b.len; i++)
		if (b.p[i] != ' ' && b.p[i] != '\n')
			b.p[k++] = b.p[i];
	b.p[k] = '\0';
	b.len = k;
	return b.p;
}

/* `ptmon kill ID PID --subtree` kills that process and every descendant
 * ptmon tracks below it; its sibling and the root live (checked through
 * pidfds of the test's, not ptmon's word). */
static void t_kill_subtree(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	tree_start(c, "sleep 1000 & echo B$!; "
		      "sh -c 'sleep 1000 & echo a$!; sleep 1000 & echo a$!; "
		      "echo A$$.; wait' & wait");
	tree_wait_line(c, ".");
	const char *lines = c->tree->o.p;
	int b = 0, a = 0, a1 = 0, a2 = 0;
	char *first_a = strchr(lines, 'a');
	assert_non_null(first_a);
	assert_int_equal(sscanf(strchr(lines, 'B'), "B%d", &b), 1);
	assert_int_equal(sscanf(strchr(lines, 'A'), "A%d", &a), 1);
	assert_int_equal(sscanf(first_a, "a%d", &a1), 1);
	assert_int_equal(sscanf(strchr(first_a + 1, 'a'), "a%d", &a2), 1);
	int fa = sys_pidfd_open(a), fa1 = sys_pidfd_open(a1), fa2 = sys_pidfd_open(a2);
	int fb = sys_pidfd_open(b);
	assert_true(fa >= 0 && fa1 >= 0 && fa2 >= 0 && fb >= 0);
	watch_start(c, c->tree->pid, NULL);
	events_until(c, "\"type\":\"start\"");
	char pa[16];
	snprintf(pa, sizeof(pa), "%d", a);
	const char *kill_a[] = {"kill", c->control, pa, "--subtree", "-s", "KILL", NULL};
	assert_int_equal(run_client(c, kill_a), 0);
	assert_true(pidfd_dead(fa, RUN_BOUND_MS));
	assert_true(pidfd_dead(fa1, RUN_BOUND_MS));
	assert_true(pidfd_dead(fa2, RUN_BOUND_MS));
	assert_false(pidfd_dead(fb, 0));
	assert_false(pidfd_dead(c->tree->pidfd, 0));
	assert_int_equal(cg_count_at(c->cg), 2); /* sh and B, once A's three have left */
	const char *cancel[] = {"cancel", c->control, "--now", NULL};
	assert_int_equal(run_client(c, cancel), 0);
	assert_int_equal(watch_wait(c), 124);
	assert_true(pidfd_dead(fb, RUN_BOUND_MS));
	tree_reap(c);
	close(fa);
	close(fa1);
	close(fa2);
	close(fb);
	assert_clean(c);
}

/* The report marks a process whose parent exited while it lived (and only
 * it) "reparented": its parent, proven by the walk, exits after the watch
 * began; the root and the other child keep theirs. */
static void t_reparented(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	char report[PATH_MAX + 8];
	snprintf(report, sizeof(report), "%s", tpath(c->h, "report.json"));
	/* The subshell reads the test's pipe on fd 4 (a background list's
	 * stdin is /dev/null). */
	tree_start(c, "exec 4<&0; (sleep 1000 & echo O$!,; read x <&4) & "
		      "sleep 1000 & echo READY.; wait");
	tree_wait_line(c, ".");
	tree_wait_line(c, ",");
	const char *lines = c->tree->o.p;
	int orphan = 0;
	assert_int_equal(sscanf(strchr(lines, 'O'), "O%d", &orphan), 1);
	const char *args[] = {"--report", report, NULL};
	watch_start(c, c->tree->pid, args);
	char needle[48];
	snprintf(needle, sizeof(needle), "\"pid\":%d,", orphan);
	events_until(c, needle); /* the walk proved it and its parent */
	tree_go(c);
	/* Its parent's exit: the subshell is the only process that exits. */
	events_until(c, "\"type\":\"exit\"");
	const char *cancel[] = {"cancel", c->control, "--now", NULL};
	assert_int_equal(run_client(c, cancel), 0);
	assert_int_equal(watch_wait(c), 124);
	tree_reap(c);
	const char *rep = file_text(report);
	unlink(report);
	const char *at = strstr(rep, needle);
	assert_non_null(at);
	const char *next = strstr(at + 1, "\"pid\":");
	const char *mark = strstr(rep, "\"reparented\":true");
	if (!mark || mark < at || (next && mark > next))
		fail_msg("pid %d not marked reparented: %s", orphan, rep);
	if (strstr(mark + 1, "\"reparented\":true"))
		fail_msg("more than one process marked reparented: %s", rep);
	assert_clean(c);
}

/* ---- PIDs wrapping --------------------------------------------------------- */

/* The watched tree's root: fork short-lived children at full speed, for
 * ever; say "W" on @fd once the pid space has gone round once and more. */
_Noreturn static void storm(int fd)
{
	pid_t start = 0, last = 0;
	bool wrapped = false, circled = false, said = false;
	long past = 0;
	for (;;) {
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		if (p < 0)
			continue;
		waitpid(p, NULL, 0);
		if (!start)
			start = p;
		wrapped |= p < last;
		last = p;
		/* Round once (back at the first pid), then 4,000 pids on:
		 * those the FORK events queued while ptmon was stopped name
		 * now belong to others (bystanders among them) or to no one.
		 * (Not "start + 4000": with start above pid_max - 4000 that
		 * number never comes.) */
		circled |= wrapped && p >= start;
		if (circled && ++past >= 4000 && !said)
			said = write(fd, "W\n", 2) == 2;
	}
}

/* Outside the tree: a sleeper forked every millisecond or so while the
 * pids go round, so that they take numbers the tree's children had.  On
 * EOF on @stop it writes how many of them died (none may) on @out, kills
 * them (its own unreaped children: no pid reuse) and exits. */
_Noreturn static void spawner(int stop, int out)
{
	static pid_t kids[4096];
	size_t n = 0;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Only its two pipe ends: EOF on @stop must come when the test
	 * closes its end. */
	for (int fd = 3; fd < 1024; fd++)
		if (fd != stop && fd != out)
			close(fd);
	for (;;) {
		struct pollfd p = {.fd = stop, .events = POLLIN};
		if (poll(&p, 1, 1) > 0)
			break;
		if (n < sizeof(kids) / sizeof(kids[0])) {
			pid_t k = fork();
			if (k == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL); /* never left behind */
				if (getppid() == 1)
					_exit(0);
				for (;;)
					pause();
			}
			if (k > 0)
				kids[n++] = k;
		}
	}
	int dead = 0;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		dead++;
	dprintf(out, "%d of %zu\n", dead, n);
	for (size_t i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	while (wait(NULL) > 0)
		;
	_exit(0);
}

static long pid_max(void)
{
	char buf[32] = "";
	int fd = open("/proc/sys/kernel/pid_max", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

/* A fork storm in the watched tree takes the pid space round while ptmon
 * is stopped (its queued FORK events then name pids that other processes
 * have now) and bystanders outside the tree get recycled pids; then a
 * cancel.  Not one bystander may be signalled, and nothing of the tree may
 * survive. */
static void t_pid_wrap(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	long max = pid_max();
	if (max <= 0 || max > 65536) {
		printf("kernel.pid_max is %ld: one round of pids takes too long here\n", max);
		skip();
	}
	int ready[2], stop[2], out[2];
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	struct outside *tree = outside_fork();
	if (!tree) {
		char path[PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/cgroup.procs", c->cg);
		if (write_file(path, "0") < 0)
			_exit(120);
		for (int fd = 3; fd < 1024; fd++)
			if (fd != ready[1])
				close(fd);
		storm(ready[1]);
	}
	close(ready[1]);
	struct outside *sp = outside_fork();
	if (!sp)
		spawner(stop[0], out[1]);
	close(stop[0]);
	close(out[1]);
	const char *args[] = {"--grace", "100ms", NULL};
	watch_start(c, tree->pid, args);
	events_until(c, "\"type\":\"start\"");
	run_signal(c->ptmon, SIGSTOP);
	/* 40,000 forks while a spawner forks too: seconds here, but CI once
	 * took over 2 minutes; the bound is only against a hang.  The storm
	 * writes nothing else: readable is its "W", or EOF if it died. */
	char w[4] = "";
	if (!pidfd_dead(ready[0], 12 * RUN_BOUND_MS) || read(ready[0], w, sizeof(w) - 1) <= 0 ||
	    w[0] != 'W')
		fail_msg("the storm did not take the pids round");
	close(ready[0]);
	run_signal(c->ptmon, SIGCONT);
	const char *cancel[] = {"cancel", c->control, NULL};
	assert_int_equal(run_client(c, cancel), 0);
	assert_int_equal(watch_wait(c), 124);
	outside_reap(tree, NULL);
	close(stop[1]);
	char text[64] = "";
	if (!pidfd_dead(out[0], RUN_BOUND_MS)) /* readable: its line, or EOF */
		fail_msg("the bystanders' spawner did not answer");
	ssize_t n = read(out[0], text, sizeof(text) - 1);
	close(out[0]);
	outside_reap(sp, NULL);
	assert_true(n > 0);
	text[n] = '\0';
	int dead = -1, total = 0;
	assert_int_equal(sscanf(text, "%d of %d", &dead, &total), 2);
	printf("pid wrap: %d bystanders born during the storm, %d died\n", total, dead);
	assert_true(total > 0);
	assert_int_equal(dead, 0);
	assert_clean(c);
}

/* ---- --cgroup ---------------------------------------------------------------- */

/* A sleeper of the test's, not in the tree by lineage, moved into @cg
 * (an outsider: teardown kills and reaps it if the test cannot). */
static struct outside *sleeper_in(const char *cg)
{
	struct outside *o = outside_fork();
	if (!o) {
		/* Holding no pipe of the test's (the tree's stdin above all). */
		syscall(SYS_close_range, 3, ~0u, 0);
		for (;;)
			pause();
	}
	char path[PATH_MAX + 32], text[16];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	snprintf(text, sizeof(text), "%d", (int)o->pid);
	assert_int_equal(write_file(path, text), 0);
	return o;
}

/* The cgroup is the tree: a daemon that double-forked before the watch
 * (no lineage leads to it), a member of a cgroup below, what forks after
 * the watch began, and a process moved in from outside afterwards all go
 * with a cancel, through pidfds (cgroup.kill not needed); the bystander
 * lives. */
static void t_cgroup_cancel(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	char sub[PATH_MAX + 8], report[PATH_MAX + 8];
	cg_path(c->h, "sub", sub, sizeof(sub));
	snprintf(report, sizeof(report), "%s", tpath(c->h, "report.json"));
	assert_int_equal(mkdir(sub, 0755), 0);
	tree_start(c, "(sleep 1000 &); sleep 1000 & echo READY; read x; "
		      "(sleep 1000 & echo D$!); echo GO; wait");
	tree_wait_line(c, "READY");
	struct outside *below = sleeper_in(sub);
	const char *args[] = {"--cgroup", c->cg, "--grace", "2s", "--report", report, NULL};
	watch_start(c, 0, args);
	events_until(c, "\"type\":\"start\"");
	tree_go(c);
	tree_wait_line(c, "GO");
	struct outside *moved = sleeper_in(c->cg);
	/* 5 by lineage or membership: sh, 2 sleeps, the new daemon, below. */
	assert_int_equal(cg_count_at(c->cg), 5);
	const char *cancel[] = {"cancel", c->control, NULL};
	assert_int_equal(run_client(c, cancel), 0);
	assert_int_equal(watch_wait(c), 124);
	assert_true(pidfd_dead(below->pidfd, 0));
	assert_true(pidfd_dead(moved->pidfd, 0));
	outside_reap(below, NULL);
	outside_reap(moved, NULL);
	tree_reap(c);
	const char *rep = file_text(report);
	unlink(report);
	if (!strstr(rep, "\"killed\":false") || !strstr(rep, "\"empty_proof\":true"))
		fail_msg("the pidfd path did not end the cgroup alone: %s", rep);
	assert_non_null(strstr(rep, "\"cgroup\":\"/"));
	assert_clean(c);
	assert_int_equal(cg_count_at(c->cg), 0);
}

/* Without a cancel the watch ends when the cgroup is empty: not when the
 * first process (the root of a PID watch) exits while an orphan from
 * before the watch lives on, nor when every tracked process is gone while
 * a process moved in from outside lives (the cgroup says "populated 1");
 * then 0. */
static void t_cgroup_end(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	tree_start(c, "(sleep 1000 & echo O$!.); read x; exit 5");
	tree_wait_line(c, ".");
	const char *lines = c->tree->o.p;
	int orphan = 0;
	assert_int_equal(sscanf(strchr(lines, 'O'), "O%d", &orphan), 1);
	int ofd = sys_pidfd_open(orphan);
	const char *args[] = {"--cgroup", c->cg, NULL};
	watch_start(c, 0, args);
	events_until(c, "\"type\":\"start\"");
	tree_go(c);
	assert_int_equal(WEXITSTATUS(tree_reap(c)), 5);
	events_until(c, "\"type\":\"exit\"");
	assert_false(pidfd_dead(c->ptmon->pidfd, 0)); /* the orphan holds it */
	struct outside *moved = sleeper_in(c->cg);
	assert_int_equal(sys_pidfd_send_signal(ofd, SIGKILL), 0);
	/* The orphan's end leaves nothing tracked: "populated 1" makes ptmon
	 * look, and the moved process joins. */
	char needle[32];
	snprintf(needle, sizeof(needle), "\"pid\":%d,", (int)moved->pid);
	events_until(c, needle);
	assert_false(pidfd_dead(c->ptmon->pidfd, 0));
	assert_int_equal(sys_pidfd_send_signal(moved->pidfd, SIGKILL), 0);
	outside_reap(moved, NULL);
	assert_int_equal(watch_wait(c), 0);
	assert_int_equal(cg_count_at(c->cg), 0); /* it ended once the cgroup was empty */
	events_until(c, "\"type\":\"done\"");
	snprintf(needle, sizeof(needle), "\"pid\":%d,", orphan);
	assert_non_null(strstr(c->ptmon->evb.p, needle));
	close(ofd);
	assert_clean(c);
}

/* Bad cgroups: 125 with a message each. */
static void t_cgroup_refused(void **state)
{
	struct tctx t = tbegin(state), *c = &t;
	const char *root[] = {"--cgroup", cg_mount, NULL};
	watch_start(c, 0, root);
	assert_int_equal(watch_wait(c), 125);
	assert_non_null(strstr(err_text(c), "init is in it"));
	const char *notcg[] = {"--cgroup", "/tmp", NULL};
	watch_start(c, 0, notcg);
	assert_int_equal(watch_wait(c), 125);
	assert_non_null(strstr(err_text(c), "not a cgroup v2 directory"));
	const char *empty[] = {"--cgroup", c->cg, NULL};
	watch_start(c, 0, empty);
	assert_int_equal(watch_wait(c), 125);
	assert_non_null(strstr(err_text(c), "holds no process"));
	const char *both[] = {"--cgroup", c->cg, NULL};
	watch_start(c, 1, both);
	assert_int_equal(watch_wait(c), 125);
	assert_non_null(strstr(err_text(c), "not both"));
}

/* clang-format off */
#define ENTRY(t, b) {#t "[" #b "]", t, setup, teardown, (void *)backend_##b}
/* clang-format on */
#define BOTH(t) ENTRY(t, connector), ENTRY(t, procfs)
#define CONNECTOR(t) ENTRY(t, connector)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(t_deep_wide),
		/* Without events, an orphan made between two walks cannot be
		 * found by lineage (README "ptmon watch"): connector only. */
		CONNECTOR(t_double_fork_after),
		CONNECTOR(t_parent_exits),
		CONNECTOR(t_fork_loop),
		BOTH(t_kill_one),
		BOTH(t_root_status),
		BOTH(t_exits_during_walk),
		CONNECTOR(t_refused),
		CONNECTOR(t_other_user),
		BOTH(t_kill_subtree),
		CONNECTOR(t_reparented),
		BOTH(t_pid_wrap),
		BOTH(t_cgroup_cancel),
		BOTH(t_cgroup_end),
		CONNECTOR(t_cgroup_refused),
	};
	if (getenv("PTMON_TEST_FILTER"))
		cmocka_set_test_filter(getenv("PTMON_TEST_FILTER"));
	return cmocka_run_group_tests_name("watch", tests, group_setup, group_teardown);
}
