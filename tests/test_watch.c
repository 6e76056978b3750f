/* SPDX-License-Identifier: MIT */
/*
 * `ptmon watch PID` against real trees that the test starts, not ptmon, on
 * both backends.  Each tree starts in a cgroup v2 directory of this test,
 * so survivors are counted from outside ptmon (cgroup.procs); teardown
 * writes cgroup.kill and removes it.  A bystander (a child of this test
 * outside the tree) must be alive after every test.
 *
 * Synchronisation: the tree writes lines on a pipe ("READY"), ptmon's
 * event stream is read for its "start" line; the only waits with a clock
 * are bounds (a run that does not end in RUN_BOUND_MS fails).
 *
 * The test cgroups (ptmon-watch.PID.N), the bystander, pidfds and files
 * are the shared harness's (tests/harness.h); what is a watch's own (the
 * tree started by the test, ptmon attached to it) is here.
 * Needs root (cgroup directories, setuid to 65534).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#ifndef PTMON_BIN
#error "PTMON_BIN must name the ptmon binary"
#endif

#define RUN_BOUND_MS 30000
#define EMPTY_BOUND_MS 3000

/* ---- a watch's own helpers, on tests/harness.h ------------------------------ */

static unsigned serial; /* names the test's files */

struct tctx {
	char cg[PATH_MAX];
	pid_t tree;           /* the tree's root, our child */
	int tree_fd;          /* its pidfd */
	int ready_r;          /* lines the tree writes */
	int go_w;             /* the tree's stdin: closed to let it go on */
	pid_t ptmon;
	int ptmon_fd;
	int events_r;         /* ptmon's --events */
	char err_path[PATH_MAX];
	char control[PATH_MAX];
	const char *backend;
	char seen[65536];     /* what was read from events_r */
	size_t seen_len;
};

/* Exiting processes leave the cgroup a little after their pidfds say so:
 * what is still in it once it is empty or the bound has passed. */
static int cg_wait_empty(const struct tctx *c)
{
	cg_wait_empty_at(c->cg, EMPTY_BOUND_MS);
	return cg_count_at(c->cg);
}

static int setup(void **state)
{
	struct tctx *c = calloc(1, sizeof(*c));
	c->tree = c->ptmon = -1;
	c->tree_fd = c->ptmon_fd = c->ready_r = c->events_r = c->go_w = -1;
	c->backend = *state ? *state : "connector";
	if (cg_make("watch", NULL, c->cg, sizeof(c->cg)) < 0) {
		free(c);
		return -1;
	}
	serial++;
	snprintf(c->err_path, sizeof(c->err_path), "/tmp/ptmon-watch-test.%d.%u.err", (int)getpid(),
		 serial);
	snprintf(c->control, sizeof(c->control), "/tmp/ptmon-watch-test.%d.%u.sock", (int)getpid(),
		 serial);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *c = *state;
	char path[PATH_MAX + 32];
	cg_kill_at(c->cg);
	if (c->ptmon > 0) {
		kill(c->ptmon, SIGKILL);
		waitpid(c->ptmon, NULL, 0);
	}
	if (c->tree > 0)
		waitpid(c->tree, NULL, 0);
	cg_wait_empty(c);
	snprintf(path, sizeof(path), "%s/sub", c->cg); /* t_cgroup_cancel's */
	rmdir(path);
	cg_remove(c->cg);
	unlink(c->err_path);
	unlink(c->control);
	close(c->tree_fd);
	close(c->ptmon_fd);
	close(c->ready_r);
	close(c->events_r);
	close(c->go_w);
	free(c);
	return 0;
}

/* Start `sh -c SCRIPT` in the test's cgroup, as @uid (0: ours); fd 3 is a
 * pipe the script writes its lines to. */
static void tree_start_as(struct tctx *c, const char *script, uid_t uid)
{
	int p[2], go[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	pid_t self = getpid();
	c->tree = fork();
	assert_true(c->tree >= 0);
	if (c->tree == 0) {
		char path[PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/cgroup.procs", c->cg);
		if (write_file(path, "0") < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
		    getppid() != self)
			_exit(120);
		dup2(p[1], 3);
		dup2(go[0], 0);
		if (uid && (setgid(uid) < 0 || setuid(uid) < 0))
			_exit(121);
		execl("/bin/sh", "sh", "-c", script, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	close(go[0]);
	c->ready_r = p[0];
	c->go_w = go[1];
	c->tree_fd = sys_pidfd_open(c->tree);
}

/* Scripts that `read x` first wait here: for the watch to have begun. */
static void tree_go(struct tctx *c)
{
	close(c->go_w);
	c->go_w = -1;
}

static void tree_start(struct tctx *c, const char *script)
{
	tree_start_as(c, script, 0);
}

/* Read @fd until @needle has been seen (in *seen, appended), or fail. */
static int read_bound_ms = RUN_BOUND_MS;

static void read_until(int fd, char *seen, size_t *len, size_t cap, const char *needle)
{
	double end = now_s() + read_bound_ms / 1000.0;
	for (;;) {
		seen[*len] = '\0';
		if (strstr(seen, needle))
			return;
		int left = (int)((end - now_s()) * 1000);
		if (left <= 0 || *len + 1 >= cap)
			fail_msg("'%s' not seen in: %s", needle, seen);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, left) <= 0)
			continue;
		ssize_t n = read(fd, seen + *len, cap - 1 - *len);
		if (n <= 0)
			fail_msg("EOF before '%s' in: %s", needle, seen);
		*len += (size_t)n;
	}
}

static void tree_wait_line(struct tctx *c, const char *needle)
{
	static char buf[4096];
	size_t len = 0;
	read_until(c->ready_r, buf, &len, sizeof(buf), needle);
}

/* Run `ptmon watch --backend B --events PIPE --control SOCK [ARGS] PID`,
 * as @uid (0: ours), stderr to a file. */
static void watch_start_as(struct tctx *c, pid_t pid, uid_t uid, const char *const *args)
{
	int ev[2];
	close(c->events_r);
	c->seen_len = 0;
	c->seen[0] = '\0';
	assert_int_equal(pipe2(ev, 0), 0);
	fcntl(ev[0], F_SETFD, FD_CLOEXEC);
	c->ptmon = fork();
	assert_true(c->ptmon >= 0);
	if (c->ptmon == 0) {
		char evpath[32], pidtext[16];
		const char *argv[32];
		int n = 0;
		snprintf(evpath, sizeof(evpath), "/dev/fd/%d", ev[1]);
		snprintf(pidtext, sizeof(pidtext), "%d", (int)pid);
		argv[n++] = PTMON_BIN;
		argv[n++] = "watch";
		argv[n++] = "--backend";
		argv[n++] = c->backend;
		if (!uid) { /* another user cannot open our pipe by its /dev/fd path */
			argv[n++] = "--events";
			argv[n++] = evpath;
		}
		if (uid) {
			argv[n++] = "--no-control";
		} else {
			argv[n++] = "--control";
			argv[n++] = c->control;
		}
		for (int i = 0; args && args[i] && n < 30; i++)
			argv[n++] = args[i];
		if (pid) /* 0: --cgroup is among @args */
			argv[n++] = pidtext;
		argv[n] = NULL;
		int fd = open(c->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || dup2(fd, 2) < 0 || fchown(fd, uid, uid) < 0)
			_exit(122);
		if (uid && (setgid(uid) < 0 || setuid(uid) < 0))
			_exit(123);
		execv(PTMON_BIN, (char **)argv);
		_exit(127);
	}
	close(ev[1]);
	c->events_r = ev[0];
	c->ptmon_fd = sys_pidfd_open(c->ptmon);
}

static void watch_start(struct tctx *c, pid_t pid, const char *const *args)
{
	watch_start_as(c, pid, 0, args);
}

static void events_until(struct tctx *c, const char *needle)
{
	read_until(c->events_r, c->seen, &c->seen_len, sizeof(c->seen), needle);
}

static char *err_text(const struct tctx *c)
{
	static char buf[16384];
	int fd = open(c->err_path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	return buf;
}

/* ptmon's exit status, within the bound (else it is killed and fails). */
static int watch_wait(struct tctx *c)
{
	if (!pidfd_dead(c->ptmon_fd, RUN_BOUND_MS)) {
		kill(c->ptmon, SIGKILL);
		fail_msg("ptmon watch did not end; stderr: %s", err_text(c));
	}
	int st = 0;
	waitpid(c->ptmon, &st, 0);
	c->ptmon = -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Nothing left in the tree's cgroup, the bystander alive. */
static void assert_clean(struct tctx *c)
{
	int left = cg_wait_empty(c);
	if (left != 0)
		fail_msg("%d processes of the tree survived; ptmon said: %s", left, err_text(c));
	assert_true(bystander_alive());
}

/* Reap the tree's root (its parent's duty: ptmon learns the status from
 * its EXIT event, or its pidfd once reaped). */
static int tree_reap(struct tctx *c)
{
	int st = 0;
	waitpid(c->tree, &st, 0);
	c->tree = -1;
	return st;
}

static int run_client(const char *const *args)
{
	pid_t p = fork();
	if (p == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		execv(PTMON_BIN, (char **)args);
		_exit(127);
	}
	int st = 0;
	waitpid(p, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- tests ------------------------------------------------------------------ */

/* A chain 20 deep and 30 wide started before the watch, cancelled by the
 * timeout: everything goes, 124. */
static void t_deep_wide(void **state)
{
	struct tctx *c = *state;
	tree_start(c, "d() { if [ $1 -gt 0 ]; then d $(($1 - 1)) & wait; else echo READY >&3; "
		      "sleep 1000; fi; }; i=0; while [ $i -lt 30 ]; do sleep 1000 & i=$((i+1)); "
		      "done; d 20 & wait");
	tree_wait_line(c, "READY");
	const char *args[] = {"--timeout", "300ms", "--grace", "200ms", NULL};
	watch_start(c, c->tree, args);
	assert_int_equal(watch_wait(c), 124);
	tree_reap(c);
	assert_clean(c);
}

/* A double-fork daemon born after the watch began is in the tree and goes
 * with a cancel; the report marks it reparented. */
static void t_double_fork_after(void **state)
{
	struct tctx *c = *state;
	tree_start(c, "read x <&0; (sleep 1000 & echo D$! >&3) ; echo READY >&3; sleep 1000");
	/* The script waits for a line on stdin: it gets EOF once ptmon began. */
	const char *args[] = {"--timeout", "2s", "--grace", "200ms", NULL};
	watch_start(c, c->tree, args);
	events_until(c, "\"type\":\"start\"");
	/* ptmon stopped while the middle process forks and exits: it reads
	 * the FORK only once the child is an orphan of init's (no race). */
	kill(c->ptmon, SIGSTOP);
	tree_go(c);
	tree_wait_line(c, "READY");
	kill(c->ptmon, SIGCONT);
	assert_int_equal(watch_wait(c), 124);
	tree_reap(c);
	assert_clean(c);
}

/* A process whose parent exits stays tracked; the watch ends when it is
 * gone too, with the root's status. */
static void t_parent_exits(void **state)
{
	struct tctx *c = *state;
	tree_start(c, "read x; (sleep 1000 & echo O$! >&3); echo READY >&3; exit 7");
	watch_start(c, c->tree, NULL);
	events_until(c, "\"type\":\"start\"");
	/* ptmon stopped while the middle process forks and exits: it reads
	 * the FORK only once the child is an orphan of init's (no race). */
	kill(c->ptmon, SIGSTOP);
	tree_go(c);
	tree_wait_line(c, "READY");
	kill(c->ptmon, SIGCONT);
	assert_int_equal(WEXITSTATUS(tree_reap(c)), 7);
	/* The orphan is in the tree: ptmon is still watching it. */
	assert_false(pidfd_dead(c->ptmon_fd, 0));
	assert_int_equal(cg_count_at(c->cg), 1);
	const char *cancel[] = {PTMON_BIN, "cancel", c->control, "--now", NULL};
	assert_int_equal(run_client(cancel), 0);
	assert_int_equal(watch_wait(c), 124);
	events_until(c, "\"type\":\"done\"");
	/* The orphan: forked after the watch began, by a process now gone. */
	assert_non_null(strstr(c->seen, "\"type\":\"fork\""));
	assert_non_null(strstr(c->seen, "\"comm\":\"sleep\""));
	assert_clean(c);
}

/* A fork loop, cancelled: the SIGKILL sweeps converge. */
static void t_fork_loop(void **state)
{
	struct tctx *c = *state;
	tree_start(c, "echo READY >&3; while :; do sleep 1000 & done");
	tree_wait_line(c, "READY");
	const char *args[] = {"--timeout", "300ms", "--grace", "100ms", NULL};
	watch_start(c, c->tree, args);
	int st = watch_wait(c);
	if (st != 124)
		fail_msg("ptmon watch ended %d, not 124; it said: %s", st, err_text(c));
	tree_reap(c);
	assert_clean(c);
}

/* `ptmon kill ID PID` from another process ends that one process only. */
static void t_kill_one(void **state)
{
	struct tctx *c = *state;
	tree_start(c, "sleep 1000 & echo A$! >&3; sleep 1000 & echo B$!. >&3; wait");
	static char lines[256];
	size_t len = 0;
	read_until(c->ready_r, lines, &len, sizeof(lines), ".");
	int a = 0, b = 0;
	assert_int_equal(sscanf(strchr(lines, 'A'), "A%d", &a), 1);
	assert_int_equal(sscanf(strchr(lines, 'B'), "B%d", &b), 1);
	int afd = sys_pidfd_open(a), bfd = sys_pidfd_open(b);
	watch_start(c, c->tree, NULL);
	events_until(c, "\"type\":\"start\"");
	/* The walk runs before the socket is served; its fork lines follow. */
	char pa[16];
	snprintf(pa, sizeof(pa), "%d", a);
	const char *killa[] = {PTMON_BIN, "kill", c->control, pa, "-s", "KILL", NULL};
	assert_int_equal(run_client(killa), 0);
	assert_true(pidfd_dead(afd, RUN_BOUND_MS));
	assert_false(pidfd_dead(bfd, 0));
	const char *cancel[] = {PTMON_BIN, "cancel", c->control, "--now", NULL};
	assert_int_equal(run_client(cancel), 0);
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
	struct tctx *c = *state;
	tree_start(c, "read x; sleep 0.1 & wait; exit 42");
	watch_start(c, c->tree, NULL);
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
	struct tctx *c = *state;
	tree_start(c, "sleep 0 & sleep 0 & exit 9");
	watch_start(c, c->tree, NULL);
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
	struct tctx *c = *state;
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
	struct tctx *c = *state;
	tree_start(c, "sleep 1000 & echo READY >&3; wait");
	tree_wait_line(c, "READY");
	const char *args[] = {"--timeout", "200ms", "--grace", "100ms", NULL};
	watch_start_as(c, c->tree, 65534, args);
	assert_int_equal(watch_wait(c), 125);
	const char *err = err_text(c);
	if (!strstr(err, "not permitted to signal it (EPERM)"))
		fail_msg("no EPERM message in: %s", err);
	/* Nothing of root's was harmed. */
	assert_false(pidfd_dead(c->tree_fd, 0));
	assert_int_equal(cg_count_at(c->cg), 2);
}

/* @path's text without blanks (a pretty-printed report, compacted). */
static char *file_text(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
	size_t k = 0;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] != ' ' && buf[i] != '\n')
			buf[k++] = buf[i];
	buf[k] = '\0';
	if (fd >= 0)
		close(fd);
	return buf;
}

/* `ptmon kill ID PID --subtree` kills that process and every descendant
 * ptmon tracks below it; its sibling and the root live (checked through
 * pidfds of the test's, not ptmon's word). */
static void t_kill_subtree(void **state)
{
	struct tctx *c = *state;
	tree_start(c, "sleep 1000 & echo B$! >&3; "
		      "sh -c 'sleep 1000 & echo a$! >&3; sleep 1000 & echo a$! >&3; "
		      "echo A$$. >&3; wait' & wait");
	static char lines[256];
	size_t len = 0;
	read_until(c->ready_r, lines, &len, sizeof(lines), ".");
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
	watch_start(c, c->tree, NULL);
	events_until(c, "\"type\":\"start\"");
	char pa[16];
	snprintf(pa, sizeof(pa), "%d", a);
	const char *kill_a[] = {PTMON_BIN, "kill", c->control, pa, "--subtree", "-s", "KILL", NULL};
	assert_int_equal(run_client(kill_a), 0);
	assert_true(pidfd_dead(fa, RUN_BOUND_MS));
	assert_true(pidfd_dead(fa1, RUN_BOUND_MS));
	assert_true(pidfd_dead(fa2, RUN_BOUND_MS));
	assert_false(pidfd_dead(fb, 0));
	assert_false(pidfd_dead(c->tree_fd, 0));
	assert_int_equal(cg_count_at(c->cg), 2); /* sh and B, once A's three have left */
	const char *cancel[] = {PTMON_BIN, "cancel", c->control, "--now", NULL};
	assert_int_equal(run_client(cancel), 0);
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
	struct tctx *c = *state;
	char report[PATH_MAX + 8];
	snprintf(report, sizeof(report), "%s.json", c->err_path);
	/* The subshell reads the test's pipe on fd 4 (a background list's
	 * stdin is /dev/null). */
	tree_start(c, "exec 4<&0; (sleep 1000 & echo O$!, >&3; read x <&4) & "
		      "sleep 1000 & echo READY. >&3; wait");
	static char lines[128];
	size_t len = 0;
	read_until(c->ready_r, lines, &len, sizeof(lines), ".");
	if (!strchr(lines, ','))
		read_until(c->ready_r, lines, &len, sizeof(lines), ",");
	int orphan = 0;
	assert_int_equal(sscanf(strchr(lines, 'O'), "O%d", &orphan), 1);
	const char *args[] = {"--report", report, NULL};
	watch_start(c, c->tree, args);
	char needle[48];
	snprintf(needle, sizeof(needle), "\"pid\":%d,", orphan);
	events_until(c, needle); /* the walk proved it and its parent */
	tree_go(c);
	/* Its parent's exit: the subshell is the only process that exits. */
	events_until(c, "\"type\":\"exit\"");
	const char *cancel[] = {PTMON_BIN, "cancel", c->control, "--now", NULL};
	assert_int_equal(run_client(cancel), 0);
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
	struct tctx *c = *state;
	long max = pid_max();
	if (max <= 0 || max > 65536) {
		printf("kernel.pid_max is %ld: one round of pids takes too long here\n", max);
		skip();
	}
	int ready[2], stop[2], out[2];
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	pid_t self = getpid();
	c->tree = fork();
	assert_true(c->tree >= 0);
	if (c->tree == 0) {
		char path[PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/cgroup.procs", c->cg);
		if (write_file(path, "0") < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
		    getppid() != self)
			_exit(120);
		for (int fd = 3; fd < 1024; fd++)
			if (fd != ready[1])
				close(fd);
		storm(ready[1]);
	}
	c->tree_fd = sys_pidfd_open(c->tree);
	c->ready_r = ready[0];
	close(ready[1]);
	pid_t sp = fork();
	assert_true(sp >= 0);
	if (sp == 0)
		spawner(stop[0], out[1]);
	close(stop[0]);
	close(out[1]);
	const char *args[] = {"--grace", "100ms", NULL};
	watch_start(c, c->tree, args);
	events_until(c, "\"type\":\"start\"");
	kill(c->ptmon, SIGSTOP);
	/* 40,000 forks while a spawner forks too: seconds here, but CI once
	 * took over 2 minutes; the bound is only against a hang. */
	read_bound_ms = 12 * RUN_BOUND_MS;
	tree_wait_line(c, "W");
	read_bound_ms = RUN_BOUND_MS;
	kill(c->ptmon, SIGCONT);
	const char *cancel[] = {PTMON_BIN, "cancel", c->control, NULL};
	assert_int_equal(run_client(cancel), 0);
	assert_int_equal(watch_wait(c), 124);
	tree_reap(c);
	close(stop[1]);
	char text[64] = "";
	if (!pidfd_dead(out[0], RUN_BOUND_MS)) /* readable: its line, or EOF */
		fail_msg("the bystanders' spawner did not answer");
	ssize_t n = read(out[0], text, sizeof(text) - 1);
	close(out[0]);
	waitpid(sp, NULL, 0);
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

/* A sleeper of the test's, not in the tree by lineage, moved into @cg. */
static pid_t sleeper_in(const char *cg)
{
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		/* Holding no pipe of the test's (the tree's stdin above all). */
		syscall(SYS_close_range, 3, ~0u, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	char path[PATH_MAX + 32], text[16];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	snprintf(text, sizeof(text), "%d", (int)p);
	assert_int_equal(write_file(path, text), 0);
	return p;
}

/* The cgroup is the tree: a daemon that double-forked before the watch
 * (no lineage leads to it), a member of a cgroup below, what forks after
 * the watch began, and a process moved in from outside afterwards all go
 * with a cancel, through pidfds (cgroup.kill not needed); the bystander
 * lives. */
static void t_cgroup_cancel(void **state)
{
	struct tctx *c = *state;
	char sub[PATH_MAX + 8], report[PATH_MAX + 8];
	snprintf(sub, sizeof(sub), "%s/sub", c->cg);
	snprintf(report, sizeof(report), "%s.json", c->err_path);
	assert_int_equal(mkdir(sub, 0755), 0);
	tree_start(c, "(sleep 1000 &); sleep 1000 & echo READY >&3; read x; "
		      "(sleep 1000 & echo D$! >&3); echo GO >&3; wait");
	tree_wait_line(c, "READY");
	pid_t below = sleeper_in(sub);
	int below_fd = sys_pidfd_open(below);
	const char *args[] = {"--cgroup", c->cg, "--grace", "2s", "--report", report, NULL};
	watch_start(c, 0, args);
	events_until(c, "\"type\":\"start\"");
	tree_go(c);
	tree_wait_line(c, "GO");
	pid_t moved = sleeper_in(c->cg);
	int moved_fd = sys_pidfd_open(moved);
	/* 5 by lineage or membership: sh, 2 sleeps, the new daemon, below. */
	assert_int_equal(cg_count_at(c->cg), 5);
	const char *cancel[] = {PTMON_BIN, "cancel", c->control, NULL};
	assert_int_equal(run_client(cancel), 0);
	assert_int_equal(watch_wait(c), 124);
	assert_true(pidfd_dead(below_fd, 0));
	assert_true(pidfd_dead(moved_fd, 0));
	waitpid(below, NULL, 0);
	waitpid(moved, NULL, 0);
	close(below_fd);
	close(moved_fd);
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
	struct tctx *c = *state;
	tree_start(c, "(sleep 1000 & echo O$!. >&3); read x; exit 5");
	static char lines[64];
	size_t len = 0;
	read_until(c->ready_r, lines, &len, sizeof(lines), ".");
	int orphan = 0;
	assert_int_equal(sscanf(strchr(lines, 'O'), "O%d", &orphan), 1);
	int ofd = sys_pidfd_open(orphan);
	const char *args[] = {"--cgroup", c->cg, NULL};
	watch_start(c, 0, args);
	events_until(c, "\"type\":\"start\"");
	tree_go(c);
	assert_int_equal(WEXITSTATUS(tree_reap(c)), 5);
	events_until(c, "\"type\":\"exit\"");
	assert_false(pidfd_dead(c->ptmon_fd, 0)); /* the orphan holds it */
	pid_t moved = sleeper_in(c->cg);
	int moved_fd = sys_pidfd_open(moved);
	assert_int_equal(sys_pidfd_send_signal(ofd, SIGKILL), 0);
	/* The orphan's end leaves nothing tracked: "populated 1" makes ptmon
	 * look, and the moved process joins. */
	char needle[32];
	snprintf(needle, sizeof(needle), "\"pid\":%d,", (int)moved);
	events_until(c, needle);
	assert_false(pidfd_dead(c->ptmon_fd, 0));
	assert_int_equal(sys_pidfd_send_signal(moved_fd, SIGKILL), 0);
	waitpid(moved, NULL, 0);
	assert_int_equal(watch_wait(c), 0);
	assert_int_equal(cg_count_at(c->cg), 0); /* it ended once the cgroup was empty */
	events_until(c, "\"type\":\"done\"");
	snprintf(needle, sizeof(needle), "\"pid\":%d,", orphan);
	assert_non_null(strstr(c->seen, needle));
	close(ofd);
	close(moved_fd);
	assert_clean(c);
}

/* Bad cgroups: 125 with a message each. */
static void t_cgroup_refused(void **state)
{
	struct tctx *c = *state;
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

static int group_setup(void **state)
{
	(void)state;
	if (!find_cgroup2())
		return -1;
	cg_remove_stale("watch");
	bystander_start();
	return bystander_fd < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	bystander_stop();
	return 0;
}

#define BOTH(t)                                                                   \
	cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, "connector"), \
		cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, "procfs")

#define CONNECTOR(t) cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, "connector")

int main(void)
{
	if (geteuid() != 0 || access("/proc/self/mounts", R_OK) < 0) {
		printf("test_watch needs root (cgroups, setuid): skipped\n");
		return 77;
	}
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
		cmocka_unit_test_prestate_setup_teardown(t_refused, setup, teardown, "connector"),
		cmocka_unit_test_prestate_setup_teardown(t_other_user, setup, teardown, "connector"),
		BOTH(t_kill_subtree),
		CONNECTOR(t_reparented),
		BOTH(t_pid_wrap),
		BOTH(t_cgroup_cancel),
		BOTH(t_cgroup_end),
		CONNECTOR(t_cgroup_refused),
	};
	if (getenv("PTMON_TEST_FILTER"))
		cmocka_set_test_filter(getenv("PTMON_TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
