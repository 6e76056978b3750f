/* SPDX-License-Identifier: MIT */
/*
 * Tracking on crafted connector events: a monitor (procfs backend, so that
 * no real event interferes) runs a task whose root sleeps; the test makes
 * real processes of its own (children of the monitor's process, so ours)
 * and hands track_handle_event() the events about them in the order that
 * a late reader of the connector sees them.  Each case fixes the moment at
 * which ptmon learns of a process, so each is deterministic.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "cnproc.h"
#include "internal.h"

struct fixture {
	struct ptmon_monitor *m;
	struct ptmon_task *t;
	pid_t root;
};

static int setup(void **state)
{
	static struct fixture f;
	static char *const argv[] = {"sleep", "1000", NULL};
	struct ptmon_task_config cfg;
	f = (struct fixture){0};
	if (ptmon_monitor_new(&f.m, PTMON_BACKEND_PROCFS, 0) < 0)
		return -1;
	ptmon_task_config_init(&cfg, sizeof(cfg));
	cfg.argv = argv;
	if (ptmon_task_start(f.m, &cfg, 0, &f.t) < 0)
		return -1;
	f.root = ptmon_task_root_pid(f.t);
	*state = &f;
	return 0;
}

/* The same, without a cgroup of the task's own. */
static int setup_no_cgroup(void **state)
{
	static struct fixture f;
	static char *const argv[] = {"sleep", "1000", NULL};
	struct ptmon_task_config cfg;
	f = (struct fixture){0};
	if (ptmon_monitor_new(&f.m, PTMON_BACKEND_PROCFS, 0) < 0)
		return -1;
	ptmon_task_config_init(&cfg, sizeof(cfg));
	cfg.argv = argv;
	cfg.cgroup = PTMON_CGROUP_OFF;
	if (ptmon_task_start(f.m, &cfg, 0, &f.t) < 0)
		return -1;
	f.root = ptmon_task_root_pid(f.t);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	/* Kills the task's tree (and every child of ours) and reaps them. */
	f->m = ptmon_monitor_free(f->m);
	return 0;
}

static void event(struct ptmon_monitor *m, enum cnproc_kind kind, pid_t parent, pid_t pid)
{
	struct cnproc_event ev = {.kind = kind, .pid = pid, .tgid = pid};
	if (kind == CNPROC_FORK) {
		ev.parent_pid = ev.parent_tgid = parent;
		ev.timestamp_ns = util_now_ns();
	}
	assert_int_equal(track_handle_event(&ev, m->track), 0);
}

/* Fork a child that runs @argv (pdeath-signalled) and return its pid. */
static pid_t spawn(char *const *argv)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* The same, with stdin a pipe never written and stdout a pipe: returns
 * once the child has written a line, so it has exec'd and runs. */
static pid_t spawn_ready(char *const *argv)
{
	static int keep_in = -1;
	int in[2], out[2];
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	if (keep_in >= 0)
		close(keep_in);
	keep_in = in[1]; /* the child blocks on its stdin until it is killed */
	char c;
	assert_int_equal(read(out[0], &c, 1), 1);
	close(out[0]);
	return pid;
}

/* Wait until @pid is a zombie, without reaping it. */
static void wait_zombie(pid_t pid)
{
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
}

static struct ptmon_process_info info_of(struct fixture *f, pid_t pid)
{
	struct ptmon_process_info p = {.size = sizeof(p)};
	const struct ptmon_process *proc = ptmon_task_find_process(f->t, pid);
	assert_non_null(proc);
	assert_int_equal(ptmon_process_get_info(proc, &p), 0);
	return p;
}

static bool argv_is(const struct ptmon_process_info *p, const char *want, size_t len)
{
	return p->argv && p->argv_len == len && memcmp(p->argv, want, len) == 0;
}

/* Read every taskstats record now queued (a record is queued before its
 * process becomes a zombie). */
static void drain_taskstats(struct ptmon_monitor *m)
{
	struct pollfd pfd = {.fd = acct_taskstats_fd(m->acct), .events = POLLIN};
	do
		acct_drain_taskstats(m->acct);
	while (poll(&pfd, 1, 0) > 0);
}

/* A child that exec'd and exited before ptmon handled its FORK: it is
 * recorded from the FORK with its parent's argv and comm, marked as
 * inherited; its EXEC event, which comes after, must not be dropped
 * because it is gone: its argv becomes unknown, never the parent's; its
 * comm comes from its taskstats record. */
static void test_exec_of_zombie_learned_late(void **state)
{
	struct fixture *f = *state;
	static char *const argv[] = {"/bin/true", "child-arg", NULL};
	pid_t c = spawn(argv);
	wait_zombie(c);

	event(f->m, CNPROC_FORK, f->root, c);
	struct ptmon_process_info p = info_of(f, c);
	assert_true(p.short_lived);
	assert_true(argv_is(&p,
			    "sleep\0"
			    "1000",
			    11));
	assert_int_equal(p.argv_source, PTMON_ARGV_INHERITED);

	event(f->m, CNPROC_EXEC, 0, c);
	p = info_of(f, c);
	assert_null(p.argv);
	assert_int_equal(p.argv_source, PTMON_ARGV_UNKNOWN);

	if (acct_taskstats_fd(f->m->acct) < 0) {
		skip(); /* comm from the exit record: needs taskstats */
		return;
	}
	drain_taskstats(f->m);
	p = info_of(f, c);
	assert_int_equal(p.acct, PTMON_ACCT_TASKSTATS);
	assert_string_equal(p.comm, "true");
}

/* The same, for a child already reaped (by the process that forked it)
 * when ptmon handles its FORK: no pidfd can be had at all. */
static void test_exec_of_reaped_learned_late(void **state)
{
	struct fixture *f = *state;
	static char *const argv[] = {"/bin/true", "child-arg", NULL};
	pid_t c = spawn(argv);
	assert_int_equal(waitpid(c, NULL, 0), c);

	event(f->m, CNPROC_FORK, f->root, c);
	struct ptmon_process_info p = info_of(f, c);
	assert_true(p.short_lived);
	assert_int_equal(p.argv_source, PTMON_ARGV_INHERITED);
	event(f->m, CNPROC_EXEC, 0, c);
	p = info_of(f, c);
	assert_null(p.argv);
	assert_int_equal(p.argv_source, PTMON_ARGV_UNKNOWN);
	/* Its EXIT: an EXEC after it is a later owner's, and changes nothing. */
	struct cnproc_event ex = {.kind = CNPROC_EXIT, .pid = c, .tgid = c};
	assert_int_equal(track_handle_event(&ex, f->m->track), 0);
	const struct ptmon_process *proc = ptmon_task_find_process(f->t, c);
	((struct node *)proc)->argv_src = PTMON_ARGV_INHERITED;
	event(f->m, CNPROC_EXEC, 0, c);
	assert_int_equal(info_of(f, c).argv_source, PTMON_ARGV_INHERITED);
}

/* A child that exec'd while ptmon was behind, and whose EXEC event was
 * lost: after the loss, a live one gets its own argv (read fresh), a gone
 * one an unknown argv, never the parent's. */
static void test_lost_exec(void **state)
{
	struct fixture *f = *state;
	static char *const live_argv[] = {"/bin/sh", "-c", "echo ready; read x", "live", NULL};
	static const char live_cmdline[] = "/bin/sh\0-c\0echo ready; read x\0live";
	static char *const dead_argv[] = {"/bin/true", "gone", NULL};
	pid_t live = spawn_ready(live_argv), dead = spawn(dead_argv);
	wait_zombie(dead);
	event(f->m, CNPROC_FORK, f->root, live);
	event(f->m, CNPROC_FORK, f->root, dead);
	assert_int_equal(info_of(f, live).argv_source, PTMON_ARGV_INHERITED);
	assert_int_equal(info_of(f, dead).argv_source, PTMON_ARGV_INHERITED);

	f->m->argv_doubt = true; /* as handle_netlink() sets on a loss */
	track_doubt_argv(f->m->track);
	struct ptmon_process_info p = info_of(f, live);
	assert_int_equal(p.argv_source, PTMON_ARGV_OWN);
	assert_true(argv_is(&p, live_cmdline, sizeof(live_cmdline)));
	assert_string_equal(p.comm, "sh");
	p = info_of(f, dead);
	assert_null(p.argv);
	assert_int_equal(p.argv_source, PTMON_ARGV_UNKNOWN);
	/* The root's own argv is not in doubt. */
	p = info_of(f, f->root);
	assert_int_equal(p.argv_source, PTMON_ARGV_OWN);
	assert_true(argv_is(&p,
			    "sleep\0"
			    "1000",
			    11));
}

/* A grandchild's exit record read before ptmon knew its parent: the
 * record waits until the connector has been read, when both FORKs have
 * been handled, and then counts. */
static void test_record_before_parent(void **state)
{
	struct fixture *f = *state;
	if (acct_taskstats_fd(f->m->acct) < 0) {
		skip();
		return;
	}
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t a = fork();
	assert_true(a >= 0);
	if (a == 0) {
		pid_t b = fork();
		if (b == 0)
			_exit(3);
		waitpid(b, NULL, 0);
		(void)!write(pfd[1], &b, sizeof(b));
		_exit(0);
	}
	close(pfd[1]);
	pid_t b = 0;
	assert_int_equal(read(pfd[0], &b, sizeof(b)), (ssize_t)sizeof(b));
	close(pfd[0]);
	wait_zombie(a);

	/* The records come first; the events are still "queued". */
	f->m->backend = PTMON_BACKEND_CONNECTOR;
	drain_taskstats(f->m);
	event(f->m, CNPROC_FORK, f->root, a);
	event(f->m, CNPROC_FORK, a, b);
	/* The connector has been read empty. */
	acct_taskstats_settle(f->m->acct);
	f->m->backend = PTMON_BACKEND_PROCFS;

	struct ptmon_process_info p = info_of(f, b);
	assert_int_equal(p.acct, PTMON_ACCT_TASKSTATS);
	assert_int_equal(p.end, PTMON_END_EXITED);
	assert_int_equal(p.exit_code, 3);
	assert_int_equal(info_of(f, a).acct, PTMON_ACCT_TASKSTATS);
}

/* util_pidfd_ppid() as the library calls it (linked with
 * --wrap=util_pidfd_ppid): armed, it ends the process it read as the
 * parent right after the read, and returns once that one's pidfd says
 * so.  That fixes the window between reading a ppid and proving that
 * parent alive. */
static pid_t end_after_read;
static int end_after_read_pidfd = -1;

int __real_util_pidfd_ppid(int pidfd, pid_t *ret_ppid);
int __wrap_util_pidfd_ppid(int pidfd, pid_t *ret_ppid);
int __wrap_util_pidfd_ppid(int pidfd, pid_t *ret_ppid)
{
	int r = __real_util_pidfd_ppid(pidfd, ret_ppid);
	if (r == 0 && end_after_read && *ret_ppid == end_after_read) {
		end_after_read = 0;
		if (util_pidfd_send_signal(end_after_read_pidfd, SIGKILL) == 0) {
			struct pollfd p = {.fd = end_after_read_pidfd, .events = POLLIN};
			while (poll(&p, 1, -1) < 0 && errno == EINTR)
				;
		}
	}
	return r;
}

/* A process of the task forks and dies while ptmon reads the child's
 * parent: the read names the parent, whose pidfd then says it exited.
 * The child was reparented to ptmon (the subreaper) before that, so it
 * is still the task's, and must be tracked: dropped, a fork loop that
 * moves this way would go on unseen and unsignalled. */
static void test_parent_dies_during_adopt(void **state)
{
	struct fixture *f = *state;
	if (!(f->m->features & PTMON_FEATURE_PIDFD_INFO)) {
		skip(); /* the hook is on the PIDFD_GET_INFO read */
		return;
	}
	int hold[2], report[2];
	assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
	assert_int_equal(pipe2(report, O_CLOEXEC), 0);
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(hold[1]);
		pid_t c = fork();
		if (c == 0) {
			char x;
			/* Outlives its parent; ends when the test's end closes
			 * the pipe (or the test dies). */
			while (read(hold[0], &x, 1) < 0 && errno == EINTR)
				;
			_exit(0);
		}
		(void)!write(report[1], &c, sizeof(c));
		for (;;)
			pause();
	}
	close(hold[0]);
	close(report[1]);
	pid_t c = 0;
	assert_int_equal(read(report[0], &c, sizeof(c)), (ssize_t)sizeof(c));
	close(report[0]);

	event(f->m, CNPROC_FORK, f->root, p);
	struct node *pn = tree_lookup(&f->m->tree, p);
	assert_non_null(pn);
	assert_true(pn->flags & NODE_ALIVE);

	end_after_read_pidfd = util_pidfd_open(p, 0);
	assert_true(end_after_read_pidfd >= 0);
	end_after_read = p;
	event(f->m, CNPROC_FORK, p, c);
	assert_int_equal(end_after_read, 0); /* the hook ended the parent */
	end_after_read_pidfd = util_close(end_after_read_pidfd);

	struct node *cn = tree_lookup(&f->m->tree, c);
	assert_non_null(cn);
	assert_true(cn->flags & NODE_ALIVE);
	assert_ptr_equal(node_task(cn), f->t);
	assert_int_equal(track_get_stats(f->m->track)->pids_reused, 0);
	close(hold[1]);
}

/* A process of the task forked and died, and ptmon reaped it before
 * reading the connector: its FORK of the child is still queued.  The
 * record of the dead one must outlast that read, or the FORK names a
 * parent ptmon no longer knows, the child is taken for a stranger's (and
 * the tree filter drops its line): a fork loop moving on through it goes
 * on unseen.  Once the connector has been read empty, it may go. */
static void test_record_kept_until_events_read(void **state)
{
	struct fixture *f = *state;
	int hold[2], report[2];
	assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
	assert_int_equal(pipe2(report, O_CLOEXEC), 0);
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		close(hold[1]);
		pid_t c = fork();
		if (c == 0) {
			char x;
			while (read(hold[0], &x, 1) < 0 && errno == EINTR)
				;
			_exit(0);
		}
		(void)!write(report[1], &c, sizeof(c));
		_exit(0);
	}
	close(hold[0]);
	close(report[1]);
	pid_t c = 0;
	assert_int_equal(read(report[0], &c, sizeof(c)), (ssize_t)sizeof(c));
	close(report[0]);

	f->m->backend = PTMON_BACKEND_CONNECTOR; /* exits wait for the connector */
	event(f->m, CNPROC_FORK, f->root, p);
	wait_zombie(p);
	if (acct_taskstats_fd(f->m->acct) >= 0)
		drain_taskstats(f->m);
	track_reap(f->m->track);
	acct_flush_pending(f->m->acct, UINT64_MAX, NULL);
	struct node *pn = tree_lookup(&f->m->tree, p);
	assert_non_null(pn);
	assert_true(pn->flags & NODE_EXIT_EMITTED);

	f->m->exits_unswept = UINT64_MAX / 4; /* a sweep is due */
	records_sweep(f->m);
	assert_ptr_equal(tree_lookup(&f->m->tree, p), pn);

	event(f->m, CNPROC_FORK, p, c);
	struct node *cn = tree_lookup(&f->m->tree, c);
	assert_non_null(cn);
	assert_true(cn->flags & NODE_ALIVE);
	assert_ptr_equal(node_task(cn), f->t);

	/* The connector read empty since: the record goes. */
	f->m->events_read_ns = util_now_ns();
	f->m->exits_unswept = UINT64_MAX / 4;
	records_sweep(f->m);
	assert_null(tree_lookup(&f->m->tree, p));
	f->m->backend = PTMON_BACKEND_PROCFS;
	close(hold[1]);
}

/* procfs_scan() as the library calls it (--wrap=procfs_scan): blind, it
 * finds nothing, as every walk does against a fork loop whose processes
 * have all forked and exited by the time the walk looks at them. */
static bool walks_blind;

int __real_procfs_scan(struct procfs_entry **ret);
int __wrap_procfs_scan(struct procfs_entry **ret);
int __wrap_procfs_scan(struct procfs_entry **ret)
{
	if (!walks_blind)
		return __real_procfs_scan(ret);
	*ret = NULL;
	return 0;
}

/* A process of the task that no walk can find lives on (ptmon still has
 * a child) once the tracked ones are dead: the kill sweeps are blind, and
 * the task's cgroup must end it well before the kill phase's bound, with
 * a notice; the bound then found an "empty" tree that was not. */
static void test_blind_sweeps_kill_the_cgroup(void **state)
{
	struct fixture *f = *state;
	const char *cg = ptmon_task_cgroup_path(f->t);
	if (!cg) {
		skip(); /* no cgroup of the task's own here */
		return;
	}
	int go[2];
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	pid_t hidden = fork();
	assert_true(hidden >= 0);
	if (hidden == 0) {
		char x;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(go[1]);
		while (read(go[0], &x, 1) < 0 && errno == EINTR)
			;
		for (;;)
			pause();
	}
	close(go[0]);
	char path[600], num[16];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	int len = snprintf(num, sizeof(num), "%d", (int)hidden);
	assert_int_equal(write(fd, num, (size_t)len), len);
	close(fd);
	close(go[1]); /* it is in the cgroup: let it block for good */

	int hidden_fd = util_pidfd_open(hidden, 0);
	assert_true(hidden_fd >= 0);
	walks_blind = true;
	assert_int_equal(ptmon_task_cancel(f->t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_NOW), 0);
	assert_int_equal(ptmon_monitor_run(f->m), 0);
	walks_blind = false;

	struct ptmon_task_result r = {.size = sizeof(r)};
	assert_int_equal(ptmon_task_result(f->t, &r), 0);
	assert_true(r.cgroup_killed);
	assert_true(r.cancel_to_empty_ns < PTMON_KILL_BOUND_NS / 2);
	/* Dead, and reaped by the monitor (ptmon's wait4 proved it empty). */
	assert_int_equal(util_pidfd_exited(hidden_fd), 1);
	util_close(hidden_fd);
}

/* Without a cgroup, nothing ends what no walk finds: at the kill bound
 * ptmon must not take the tree for empty, but count it as a survivor. */
static void test_blind_sweeps_without_cgroup(void **state)
{
	struct fixture *f = *state;
	assert_null(ptmon_task_cgroup_path(f->t));
	pid_t hidden = fork();
	assert_true(hidden >= 0);
	if (hidden == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	int hidden_fd = util_pidfd_open(hidden, 0);
	assert_true(hidden_fd >= 0);
	walks_blind = true;
	assert_int_equal(ptmon_task_cancel(f->t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_NOW), 0);
	assert_int_equal(ptmon_monitor_run(f->m), 0);
	walks_blind = false;

	struct ptmon_task_result r = {.size = sizeof(r)};
	assert_int_equal(ptmon_task_result(f->t, &r), 0);
	assert_true(r.survivors >= 1);
	assert_int_equal(util_pidfd_exited(hidden_fd), 0); /* it lives on */
	assert_int_equal(util_pidfd_send_signal(hidden_fd, SIGKILL), 0);
	util_close(hidden_fd);
}

/* A walk found a child between its fork and its exec; no EXEC event
 * came (the procfs backend has none).  track_read_own() names it as it
 * runs now, as a cancel that gives up on it does. */
static void test_read_own_after_unseen_exec(void **state)
{
	struct fixture *f = *state;
	int go[2], execd[2];
	char b;
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(execd, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(go[1]);
		close(execd[0]);
		if (read(go[0], &b, 1) != 1)
			_exit(1);
		execl("/bin/sleep", "sleep", "1000", (char *)NULL);
		_exit(127);
	}
	close(go[0]);
	close(execd[1]);
	char comm[16] = "";
	assert_int_equal(procfs_read_comm(getpid(), comm), 0);
	assert_true(track_resync(f->m->track, "test") >= 1);
	struct node *n = tree_lookup(&f->m->tree, pid);
	assert_non_null(n);
	assert_string_equal(n->comm, comm); /* ours: it has not exec'd */
	assert_int_equal(write(go[1], "x", 1), 1);
	/* The write end closes at its exec (O_CLOEXEC): EOF. */
	assert_int_equal(read(execd[0], &b, 1), 0);
	close(go[1]);
	close(execd[0]);
	assert_string_equal(n->comm, comm); /* nothing said it exec'd */
	track_read_own(f->m->track, n);
	assert_string_equal(n->comm, "sleep");
	assert_int_equal(n->argv_src, PTMON_ARGV_OWN);
	assert_string_equal(n->argv->data, "sleep");
}

/* A of ours forks B, which exits once *ret_go is written; A reaps B and
 * says so (when @reap) or leaves it a zombie, then waits until *ret_hold
 * is closed.  Returns B's pid once the walk can find both. */
static pid_t spawn_pair(bool reap, int *ret_go, int *ret_hold, int *ret_reaped)
{
	int go[2], hold[2], out[2];
	char c;
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	pid_t a = fork();
	assert_true(a >= 0);
	if (a == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(go[1]);
		close(hold[1]);
		close(out[0]);
		pid_t b = fork();
		if (b == 0)
			_exit(read(go[0], &c, 1) == 1 ? 0 : 1);
		if (b < 0 || write(out[1], &b, sizeof(b)) != sizeof(b))
			_exit(1);
		if (reap && (waitpid(b, NULL, 0) != b || write(out[1], "r", 1) != 1))
			_exit(1);
		(void)!read(hold[0], &c, 1);
		_exit(0);
	}
	close(go[0]);
	close(hold[0]);
	close(out[1]);
	pid_t b = 0;
	assert_int_equal(read(out[0], &b, sizeof(b)), sizeof(b));
	*ret_go = go[1];
	*ret_hold = hold[1];
	*ret_reaped = out[0];
	return b;
}

/* A walk lists a process that ptmon already knows dead: the process ptmon
 * knows, not a new short-lived one.  A copy would be in the report twice,
 * and the taskstats record would go to the copy, leaving the first
 * without accounting.  Here B is a zombie, and its parent is read from
 * /proc (no PIDFD_GET_INFO), which says it has exited. */
static void test_walk_finds_known_zombie(void **state)
{
	struct fixture *f = *state;
	int go, hold, reaped;
	f->m->features &= ~PTMON_FEATURE_PIDFD_INFO;
	pid_t b = spawn_pair(false, &go, &hold, &reaped);
	assert_true(track_resync(f->m->track, "test") >= 2);
	struct node *nb = tree_lookup(&f->m->tree, b);
	assert_non_null(nb);
	assert_true(nb->flags & NODE_ALIVE);
	uint64_t processes = nb->group->processes;
	int pidfd = util_pidfd_open(b, 0);
	assert_true(pidfd >= 0);
	assert_int_equal(write(go, "x", 1), 1);
	struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, -1), 1); /* B has exited; A holds it */
	util_close(pidfd);
	track_node_dead(f->m->track, nb); /* as its pidfd's event would */
	track_resync(f->m->track, "test");
	assert_ptr_equal(tree_lookup(&f->m->tree, b), nb);
	assert_int_equal(nb->group->processes, processes);
	close(go);
	close(hold);
	close(reaped);
}

/* The same when B's parent reaped it between the walk's read of /proc and
 * its look at B: the pid is free (pidfd_open() fails). */
static void test_walk_lists_known_reaped(void **state)
{
	struct fixture *f = *state;
	int go, hold, reaped;
	char c;
	pid_t b = spawn_pair(true, &go, &hold, &reaped);
	assert_true(track_resync(f->m->track, "test") >= 2);
	struct node *nb = tree_lookup(&f->m->tree, b);
	assert_non_null(nb);
	struct node *na = nb->parent;
	assert_non_null(na);
	uint64_t processes = nb->group->processes;
	assert_int_equal(write(go, "x", 1), 1);
	assert_int_equal(read(reaped, &c, 1), 1); /* A reaped B */
	track_node_dead(f->m->track, nb);
	/* What walk() does with B, listed as A's child before the reaping. */
	struct node *n = track_adopt(f->m->track, b, na, 0);
	assert_true(n == nb || n == NULL);
	assert_ptr_equal(tree_lookup(&f->m->tree, b), nb);
	assert_int_equal(nb->group->processes, processes);
	close(go);
	close(hold);
	close(reaped);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exec_of_zombie_learned_late, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_of_reaped_learned_late, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_exec, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_own_after_unseen_exec, setup_no_cgroup,
						teardown),
		cmocka_unit_test_setup_teardown(test_walk_finds_known_zombie, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk_lists_known_reaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_before_parent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parent_dies_during_adopt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_kept_until_events_read, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_blind_sweeps_kill_the_cgroup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blind_sweeps_without_cgroup, setup_no_cgroup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
