/* SPDX-License-Identifier: MIT */
/*
 * ptmon killed: the process the caller started (the front, src/front.c) is
 * SIGKILLed mid-run, once the task's tree is all there; nothing of the task
 * may survive, ptmon's worker must go too, and whoever reads ptmon's stdout
 * and stderr must get EOF.  Every shape of the scenario suite, as root and
 * as uid 65534 (no cgroup delegation: ptmon cannot make cgroups).  Also: the
 * worker killed alone (the front kills what it left), signals sent to the
 * whole process group (counted once), stdin passed through.
 *
 * Survivors are found independently of ptmon: every run happens in a cgroup
 * of this test's; the front, the worker and the task are all in it.  The
 * times from the front's death to an empty tree, to EOF and to the worker's
 * end are measured (1 ms polling of cgroup.procs) and printed; the checks
 * are bounded generously (BOUND_MS) and end on "populated 0" in
 * cgroup.events.  Needs root (cgroups, setresuid); skips visibly otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
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
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#ifndef PTMON_BIN
#error "PTMON_BIN must name the ptmon binary"
#endif
#ifndef PTMON_HELPER
#error "PTMON_HELPER must name ptmon-testhelper"
#endif

#define H PTMON_HELPER
#define SUBJECT "guardian" /* cgroups are ptmon-guardian.PID.N */
#define BOUND_MS 5000	    /* front's death to an empty cgroup, EOF, worker gone */
#define READY_BOUND_S 60.0 /* the tree being built */
#define NOBODY 65534

/* ---- the test's cgroup ------------------------------------------------------ */

struct ctx {
	char cg[384];
};

static void cg_file(const struct ctx *c, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", c->cg, name);
}

static int cg_list(const struct ctx *c, pid_t *pids, int max)
{
	return cg_list_dir(c->cg, pids, 0, max);
}

/* Cgroups below the test's: the task's own, while ptmon has one. */
static int cg_children(const struct ctx *c)
{
	DIR *d = opendir(c->cg);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)))
		n += de->d_type == DT_DIR && de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static bool cg_populated(const struct ctx *c)
{
	return cg_populated_at(c->cg);
}

static void cg_kill(const struct ctx *c)
{
	cg_kill_at(c->cg);
}

static int group_setup(void **state)
{
	char why[256];

	(void)state;
	if (geteuid() != 0) {
		snprintf(why, sizeof(why), "not root");
		cg_mount[0] = '\0';
	} else if (cg_setup(SUBJECT, why, sizeof(why))) {
		cg_remove_stale(SUBJECT);
		return 0;
	}
	print_error("%s: every test will skip\n", why);
	return 0;
}

static int setup(void **state)
{
	struct ctx *c;

	if (!cg_mount[0])
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	if (cg_make(SUBJECT, NULL, c->cg, sizeof(c->cg)) < 0) {
		free(c);
		return -1;
	}
	*state = c;
	return 0;
}

static bool cg_wait_empty(const struct ctx *c, int ms)
{
	return cg_wait_empty_at(c->cg, ms);
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	int ret = 0;

	if (!cg_mount[0] || !c)
		return 0;
	cg_kill(c);
	if (!cg_wait_empty(c, 5000)) {
		print_error("cgroup %s does not empty after cgroup.kill\n", c->cg);
		ret = -1;
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	if (rmdir(c->cg) < 0) {
		print_error("rmdir %s: %s\n", c->cg, strerror(errno));
		ret = -1;
	}
	free(c);
	return ret;
}

static struct ctx *begin(void **state)
{
	if (!cg_mount[0]) {
		print_message("needs root and a cgroup2 mount with cgroup.kill: skipped\n");
		skip();
	}
	return *state;
}

/* ---- a run of ptmon --------------------------------------------------------- */

struct run {
	pid_t pid; /* the front */
	int pidfd;
	int out, err, in; /* our ends; -1 when closed */
	char o[65536], e[65536];
	size_t olen, elen;
	int status;
};

struct how {
	uid_t uid;	 /* 0: as root */
	bool own_pgrp;	 /* ptmon leads a process group of its own */
	bool stdin_pipe; /* ptmon's stdin is a pipe from us (r->in) */
};

static _Noreturn void child(const struct ctx *c, const struct how *how, int outw, int errw,
			    int inr, pid_t parent, char **argv)
{
	char path[PATH_MAX], text[32];
	sigset_t none;
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	cg_file(c, "cgroup.procs", path, sizeof(path));
	snprintf(text, sizeof(text), "%d", getpid());
	if (write_file(path, text) < 0)
		_exit(121);
	if (null < 0 || dup2(how->stdin_pipe ? inr : null, 0) < 0 || dup2(outw, 1) < 0 ||
	    dup2(errw, 2) < 0)
		_exit(122);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (how->own_pgrp && setpgid(0, 0) < 0)
		_exit(123);
	if (how->uid && (setgroups(0, NULL) < 0 || setresgid(how->uid, how->uid, how->uid) < 0 ||
			 setresuid(how->uid, how->uid, how->uid) < 0))
		_exit(124);
	/* After the change of credentials, which clears it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(125);
	execv(PTMON_BIN, argv);
	_exit(127);
}

static void start(struct ctx *c, struct run *r, const struct how *how, const char *const *args)
{
	char *argv[32];
	int n = 0, outp[2], errp[2], inp[2] = {-1, -1};
	pid_t parent = getpid();

	argv[n++] = (char *)PTMON_BIN;
	argv[n++] = (char *)"run";
	argv[n++] = (char *)"--no-control";
	if (getenv("PTMON_TEST_VERBOSE"))
		argv[n++] = (char *)"-v";
	for (; *args; args++) {
		assert_true(n < 31);
		argv[n++] = (char *)*args;
	}
	argv[n] = NULL;
	memset(r, 0, sizeof(*r));
	assert_int_equal(pipe2(outp, O_CLOEXEC), 0);
	assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
	if (how->stdin_pipe)
		assert_int_equal(pipe2(inp, O_CLOEXEC), 0);
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0)
		child(c, how, outp[1], errp[1], inp[0], parent, argv);
	close(outp[1]);
	close(errp[1]);
	if (inp[0] >= 0)
		close(inp[0]);
	r->out = outp[0];
	r->err = errp[0];
	r->in = inp[1];
	fcntl(r->out, F_SETFL, O_NONBLOCK);
	fcntl(r->err, F_SETFL, O_NONBLOCK);
	r->pidfd = sys_pidfd_open(r->pid);
	assert_true(r->pidfd >= 0);
}

static void take(int *fd, char *buf, size_t *len, size_t cap)
{
	while (*fd >= 0) {
		char chunk[4096];
		ssize_t n = read(*fd, chunk, sizeof(chunk));

		if (n > 0) {
			size_t k = (size_t)n < cap - 1 - *len ? (size_t)n : cap - 1 - *len;

			memcpy(buf + *len, chunk, k);
			*len += k;
			buf[*len] = '\0';
			continue;
		}
		if (n < 0 && (errno == EINTR))
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close(*fd);
		*fd = -1;
	}
}

/* Read what is there within @ms. */
static void pump(struct run *r, int ms)
{
	struct pollfd p[2] = {{.fd = r->out, .events = POLLIN}, {.fd = r->err, .events = POLLIN}};

	if (r->out < 0 && r->err < 0) {
		usleep((useconds_t)ms * 1000);
		return;
	}
	poll(p, 2, ms);
	take(&r->out, r->o, &r->olen, sizeof(r->o));
	take(&r->err, r->e, &r->elen, sizeof(r->e));
}

static void dump(const struct run *r)
{
	print_error("--- ptmon's stdout (%zu bytes):\n%.2000s\n--- stderr (%zu bytes):\n%.4000s\n---\n",
		    r->olen, r->o, r->elen, r->e);
}

/* Wait for "READY\n" on ptmon's stdout. */
static void wait_ready(struct run *r)
{
	double end = now_s() + READY_BOUND_S;

	while (!strstr(r->o, "READY\n")) {
		if (now_s() > end || (r->out < 0 && r->err < 0)) {
			dump(r);
			fail_msg("no READY from the task");
		}
		pump(r, 100);
	}
}

/* Wait until the cgroup holds a process named @comm. */
static void wait_comm(struct ctx *c, struct run *r, const char *comm)
{
	double end = now_s() + READY_BOUND_S;

	for (;;) {
		pid_t pids[64];
		int n = cg_list(c, pids, 64);

		for (int i = 0; i < n && i < 64; i++) {
			char name[64];

			comm_of(pids[i], name, sizeof(name));
			if (strcmp(name, comm) == 0)
				return;
		}
		if (now_s() > end) {
			dump(r);
			fail_msg("no %s in the task's tree", comm);
		}
		pump(r, 1);
	}
}

static pid_t worker_of(struct ctx *c, struct run *r)
{
	pid_t w = front_worker(r->pid);

	if (w > 0)
		return w;
	dump(r);
	fail_msg("ptmon (pid %d) has no worker", r->pid);
	return -1;
}

static int wait_front(struct run *r, int ms)
{
	struct pollfd p = {.fd = r->pidfd, .events = POLLIN};

	if (poll(&p, 1, ms) != 1)
		return -1;
	assert_int_equal(waitpid(r->pid, &r->status, 0), r->pid);
	close(r->pidfd);
	r->pidfd = -1;
	return 0;
}

static void run_close(struct run *r)
{
	if (r->out >= 0)
		close(r->out);
	if (r->err >= 0)
		close(r->err);
	if (r->in >= 0)
		close(r->in);
	if (r->pidfd >= 0) {
		sys_pidfd_send_signal(r->pidfd, SIGKILL);
		waitpid(r->pid, NULL, 0);
		close(r->pidfd);
	}
}

/* ---- ptmon's front killed ------------------------------------------------------ */

struct shape {
	const char *name;
	const char *args[12]; /* after "run --no-control" */
	const char *ready_comm; /* NULL: wait for READY on stdout */
};

static const struct shape shapes[] = {
	{"seed", {"--grace", "300ms", "--", "bash", "-c", "sleep 1000; true", NULL}, "sleep"},
	{"setsid", {"--grace", "300ms", "--", H, "setsid", NULL}, NULL},
	{"daemon", {"--grace", "300ms", "--leftovers", "wait", "--", H, "daemon", NULL}, NULL},
	{"daemon-null",
	 {"--grace", "300ms", "--leftovers", "wait", "--", H, "daemon-null", NULL},
	 NULL},
	{"forkloop", {"--grace", "300ms", "--leftovers", "wait", "--", H, "forkloop", NULL}, NULL},
	{"wide 500", {"--grace", "300ms", "--", H, "wide", "500", NULL}, NULL},
	{"deep 150", {"--grace", "300ms", "--", H, "deep", "150", NULL}, NULL},
};

/* Processes in the test's cgroup other than ptmon's worker and guardian. */
static int task_left(const struct ctx *c, pid_t worker)
{
	pid_t left[64];
	int n = cg_list(c, left, 64), k = 0;

	for (int i = 0; i < n && i < 64; i++) {
		char name[64];

		comm_of(left[i], name, sizeof(name));
		k += left[i] != worker && strcmp(name, "ptmon-guard") != 0;
	}
	return n > 64 ? n : k;
}

/* Milliseconds since @t0, or -1 when it has not happened. */
struct times {
	double tree_empty, eof, all_gone;
};

static void front_killed(struct ctx *c, const struct shape *s, uid_t uid)
{
	struct how how = {.uid = uid};
	struct run r;
	struct times t = {-1, -1, -1};
	pid_t worker, pids[1];
	int workerfd, procs;
	double t0, end;

	start(c, &r, &how, s->args);
	if (s->ready_comm)
		wait_comm(c, &r, s->ready_comm);
	else
		wait_ready(&r);
	worker = worker_of(c, &r);
	workerfd = sys_pidfd_open(worker);
	assert_true(workerfd >= 0);
	procs = cg_list(c, pids, 0);

	t0 = now_s();
	assert_int_equal(sys_pidfd_send_signal(r.pidfd, SIGKILL), 0);
	assert_int_equal(wait_front(&r, BOUND_MS), 0);
	assert_true(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGKILL);
	/* Poll at 1 ms for the figures; the check is the bound. */
	end = t0 + BOUND_MS / 1000.0;
	while (now_s() < end && (t.tree_empty < 0 || t.eof < 0 || t.all_gone < 0)) {
		double ms = (now_s() - t0) * 1000;

		if (t.tree_empty < 0 && task_left(c, worker) == 0)
			t.tree_empty = ms;
		if (t.eof < 0 && r.out < 0 && r.err < 0)
			t.eof = ms;
		if (t.all_gone < 0 && !cg_populated(c))
			t.all_gone = ms;
		pump(&r, 1);
	}
	print_message("    [%-11s uid %5u] %4d processes; front SIGKILLed -> task gone %7.1f ms, "
		      "EOF %7.1f ms, worker gone %7.1f ms\n",
		      s->name, (unsigned)uid, procs, t.tree_empty, t.eof, t.all_gone);
	if (t.all_gone < 0) {
		pid_t left[16];
		int n = cg_list(c, left, 16);

		for (int i = 0; i < n && i < 16; i++) {
			char name[64];

			comm_of(left[i], name, sizeof(name));
			print_error("survivor: pid %d ppid %d %s%s\n", left[i], ppid_of(left[i]),
				    name, left[i] == worker ? " (ptmon's worker)" : "");
		}
		dump(&r);
		fail_msg("%d process(es) survived ptmon's SIGKILL by %d ms", n, BOUND_MS);
	}
	if (t.eof < 0) {
		dump(&r);
		fail_msg("ptmon's stdout/stderr did not reach EOF within %d ms", BOUND_MS);
	}
	{
		struct pollfd p = {.fd = workerfd, .events = POLLIN};

		assert_int_equal(poll(&p, 1, 0), 1); /* the worker is gone (in the cgroup) */
	}
	assert_int_equal(cg_children(c), 0); /* the task's own cgroup was removed */
	close(workerfd);
	run_close(&r);
}

/* ---- the front and the worker killed at once -------------------------------- */

/* How many fds PID holds. */
static int fds_of(pid_t pid)
{
	char path[64];
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	assert_non_null(d);
	for (struct dirent *de; (de = readdir(d));)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Find ptmon's guardian in the test's cgroup. */
static pid_t guardian_of(const struct ctx *c)
{
	pid_t pids[64];
	int n = cg_list(c, pids, 64);

	for (int i = 0; i < n && i < 64; i++) {
		char name[64];

		comm_of(pids[i], name, sizeof(name));
		if (strcmp(name, "ptmon-guard") == 0)
			return pids[i];
	}
	return -1;
}

/* The worker is stopped first, so that it cannot act on the front's death:
 * then both are SIGKILLed, and only the guardian is left to end the task's
 * cgroup.  Nothing of the task may survive, the task's cgroup must go, and
 * the guardian too. */
static void both_killed(struct ctx *c, const struct shape *s)
{
	const char *args[16] = {"--cgroup", "on"};
	struct how how = {0};
	struct run r;
	pid_t worker, guardian;
	int wfd, gfd, procs;
	double t0, gone = -1;
	size_t n = 2;

	for (size_t i = 0; s->args[i] && n < 15; i++)
		args[n++] = s->args[i];
	args[n] = NULL;
	start(c, &r, &how, args);
	if (s->ready_comm)
		wait_comm(c, &r, s->ready_comm);
	else
		wait_ready(&r);
	worker = worker_of(c, &r);
	guardian = guardian_of(c);
	assert_true(guardian > 0);
	/* It outlives the front: stdio (/dev/null), its pipe from the front and
	 * the worker's pidfd, nothing else (no pipe a caller waits on); it closes
	 * the rest before it takes its name, by which guardian_of() found it. */
	assert_int_equal(fds_of(guardian), 5);
	wfd = sys_pidfd_open(worker);
	gfd = sys_pidfd_open(guardian);
	assert_true(wfd >= 0 && gfd >= 0);
	procs = task_left(c, worker);
	assert_int_equal(sys_pidfd_send_signal(wfd, SIGSTOP), 0);
	t0 = now_s();
	assert_int_equal(sys_pidfd_send_signal(r.pidfd, SIGKILL), 0);
	assert_int_equal(sys_pidfd_send_signal(wfd, SIGKILL), 0);
	assert_int_equal(wait_front(&r, BOUND_MS), 0);
	for (double end = t0 + BOUND_MS / 1000.0; now_s() < end && gone < 0;) {
		if (!cg_populated(c))
			gone = (now_s() - t0) * 1000;
		pump(&r, 1);
	}
	print_message("    [%-11s] %4d processes; front and worker SIGKILLed -> all gone "
		      "(the guardian's work) %7.1f ms\n",
		      s->name, procs, gone);
	if (gone < 0) {
		pid_t left[16];
		int k = cg_list(c, left, 16);

		for (int i = 0; i < k && i < 16; i++) {
			char name[64];

			comm_of(left[i], name, sizeof(name));
			print_error("survivor: pid %d ppid %d %s\n", left[i], ppid_of(left[i]), name);
		}
		dump(&r);
		fail_msg("%d process(es) survived the front's and the worker's SIGKILL by %d ms", k,
			 BOUND_MS);
	}
	{
		struct pollfd p = {.fd = gfd, .events = POLLIN};

		assert_int_equal(poll(&p, 1, 0), 1); /* the guardian is gone */
	}
	assert_int_equal(cg_children(c), 0); /* the task's cgroup was removed */
	close(wfd);
	close(gfd);
	run_close(&r);
}

static void t_both_killed(void **state)
{
	struct ctx *c = begin(state);

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		both_killed(c, &shapes[i]);
}

static void t_front_killed(void **state)
{
	struct ctx *c = begin(state);

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		front_killed(c, &shapes[i], 0);
}

static void t_front_killed_nobody(void **state)
{
	struct ctx *c = begin(state);

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		front_killed(c, &shapes[i], NOBODY);
}

/* ---- the worker killed alone ------------------------------------------------------ */

/* An OOM kill of the worker: the task's orphans come to the front (a child
 * subreaper), which kills them and exits 125 saying why. */
static void t_worker_killed(void **state)
{
	struct ctx *c = begin(state);
	const char *const args[] = {"--grace", "300ms", "--", H, "wide", "50", NULL};
	struct how how = {0};
	struct run r;
	double t0;
	int wfd;

	start(c, &r, &how, args);
	wait_ready(&r);
	wfd = sys_pidfd_open(worker_of(c, &r));
	assert_true(wfd >= 0);
	t0 = now_s();
	assert_int_equal(sys_pidfd_send_signal(wfd, SIGKILL), 0);
	close(wfd);
	if (wait_front(&r, BOUND_MS) < 0) {
		dump(&r);
		fail_msg("ptmon did not return within %d ms of its worker's death", BOUND_MS);
	}
	while (r.err >= 0 || r.out >= 0)
		pump(&r, 100);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 125 ||
	    !strstr(r.e, "died of signal KILL")) {
		dump(&r);
		fail_msg("expected status 125 and \"died of signal KILL\", got 0x%x", r.status);
	}
	assert_int_equal(cg_children(c), 0); /* the front removed the task's cgroup */
	/* The front returned after its rounds: nothing may be left. */
	if (cg_populated(c)) {
		dump(&r);
		fail_msg("%d process(es) of the task survived its worker's death",
			 cg_list(c, NULL, 0));
	}
	print_message("    worker SIGKILLed -> ptmon returned, tree empty, in %.1f ms\n",
		      (now_s() - t0) * 1000);
	run_close(&r);
}

/* ---- signals to the whole process group ------------------------------------------- */

/* "kill -TERM -PGID" (a shell's "kill %1"; systemd signals every process of a
 * unit alike) reaches the front and the worker: it must count once, so the
 * grace period is kept, not skipped as a second signal would. */
static void t_group_signal_once(void **state)
{
	struct ctx *c = begin(state);
	const char *const args[] = {"--grace", "2s", "--", H, "report-term", NULL};
	struct how how = {.own_pgrp = true};
	struct run r;
	double t0, took;

	start(c, &r, &how, args);
	wait_ready(&r);
	t0 = now_s();
	assert_int_equal(kill(-r.pid, SIGTERM), 0);
	if (wait_front(&r, 30000) < 0)
		fail_msg("ptmon did not return");
	took = now_s() - t0;
	while (r.err >= 0 || r.out >= 0)
		pump(&r, 100);
	print_message("    group SIGTERM -> ptmon returned after %.3f s (grace 2 s)\n", took);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 143) {
		dump(&r);
		fail_msg("expected status 143, got 0x%x", r.status);
	}
	if (took < 1.9) {
		dump(&r);
		fail_msg("ptmon skipped the grace period: the group's SIGTERM counted twice");
	}
	if (!cg_wait_empty(c, BOUND_MS))
		fail_msg("the task survived the cancel");
	run_close(&r);
}

/* ---- stdin -------------------------------------------------------------------------- */

/* The task reads ptmon's stdin; the front never touches it. */
static void t_stdin(void **state)
{
	struct ctx *c = begin(state);
	const char *const args[] = {"--", "cat", NULL};
	struct how how = {.stdin_pipe = true};
	struct run r;
	static const char text[] = "line one\nline two\n";

	start(c, &r, &how, args);
	assert_int_equal(write(r.in, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(r.in);
	r.in = -1;
	while (r.out >= 0 || r.err >= 0)
		pump(&r, 100);
	assert_int_equal(wait_front(&r, BOUND_MS), 0);
	assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	assert_string_equal(r.o, text);
	run_close(&r);
}

/* ---- --cgroup ------------------------------------------------------------------------ */

/* Run ptmon on "cat /proc/self/cgroup" as @uid with --cgroup @mode; its
 * status, and what the task said its cgroup was in *out. */
static int cgroup_run(struct ctx *c, uid_t uid, const char *mode, struct run *r)
{
	struct how how = {.uid = uid};
	const char *const args[] = {"-v", "--cgroup", mode, "--", "cat", "/proc/self/cgroup", NULL};

	start(c, r, &how, args);
	while (r->out >= 0 || r->err >= 0)
		pump(r, 100);
	assert_int_equal(wait_front(r, BOUND_MS), 0);
	return WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
}

static void t_cgroup_modes(void **state)
{
	struct ctx *c = begin(state);
	const char *rel = c->cg + strlen(cg_mount);
	char want[512];
	struct run r;

	/* As root, auto: the task is in a cgroup of its own below ptmon's,
	 * from its first instruction (cat reads its own), removed after. */
	snprintf(want, sizeof(want), "0::%s/ptmon-", rel);
	assert_int_equal(cgroup_run(c, 0, "auto", &r), 0);
	if (!strstr(r.o, want) || !strstr(r.e, "task cgroup ")) {
		dump(&r);
		fail_msg("the task is not in a cgroup of its own (%s...)", want);
	}
	assert_int_equal(cg_children(c), 0);
	run_close(&r);
	assert_int_equal(cgroup_run(c, 0, "on", &r), 0);
	assert_non_null(strstr(r.o, want));
	run_close(&r);
	/* off: in ptmon's own. */
	snprintf(want, sizeof(want), "0::%s\n", rel);
	assert_int_equal(cgroup_run(c, 0, "off", &r), 0);
	if (!strstr(r.o, want) || !strstr(r.e, "no cgroup for the task (--cgroup off)")) {
		dump(&r);
		fail_msg("--cgroup off: the task is not in ptmon's cgroup");
	}
	run_close(&r);
	/* uid 65534 in root's cgroup: no delegation.  auto goes on, says so. */
	assert_int_equal(cgroup_run(c, NOBODY, "auto", &r), 0);
	if (!strstr(r.o, want) || !strstr(r.e, "no cgroup for the task (cannot create")) {
		dump(&r);
		fail_msg("--cgroup auto as uid 65534: expected no cgroup, said so");
	}
	run_close(&r);
	/* on: a clear error, status 125, and nothing ran. */
	assert_int_equal(cgroup_run(c, NOBODY, "on", &r), 125);
	if (!strstr(r.e, "ptmon: --cgroup on: cannot create a cgroup") || r.olen) {
		dump(&r);
		fail_msg("--cgroup on as uid 65534: expected a clear error");
	}
	run_close(&r);
	/* A cancel ends with cgroup.kill; "populated 0" is the second proof;
	 * the report says so, with the task's CPU time. */
	{
		char rep[PATH_MAX], text[65536], *q, *w;
		struct how how = {0};
		const char *args[] = {"--timeout", "300ms", "--grace", "100ms", "--report", rep,
				      "--", H, "wide", "3", NULL};

		snprintf(rep, sizeof(rep), "/tmp/ptmon-guardian.%d.json", getpid());
		start(c, &r, &how, args);
		while (r.out >= 0 || r.err >= 0)
			pump(&r, 100);
		assert_int_equal(wait_front(&r, BOUND_MS), 0);
		assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 124);
		assert_true(read_file(rep, text, sizeof(text)) > 0);
		unlink(rep);
		for (q = w = text; *q; q++) /* the JSON without blanks */
			if (*q != ' ' && *q != '\n')
				*w++ = *q;
		*w = '\0';
		if (!strstr(text, "\"killed\":true,\"empty_proof\":true,\"escaped_killed\":false,"
				  "\"removed\":true,\"cpu_usage_us\":")) {
			print_error("%s\n", text);
			fail_msg("the report does not carry the cgroup's proof");
		}
		run_close(&r);
	}
	/* A bad value. */
	assert_int_equal(cgroup_run(c, 0, "maybe", &r), 125);
	assert_non_null(strstr(r.e, "--cgroup: invalid value 'maybe'"));
	run_close(&r);
}

/* ---- a Go caller: exec.CommandContext ---------------------------------------------- */

#ifdef PTMON_GO_SRC
static const char *find_go(void)
{
	static const char *const where[] = {"/usr/bin/go", "/usr/lib/go/bin/go",
					    "/usr/local/go/bin/go", NULL};

	for (int i = 0; where[i]; i++)
		if (access(where[i], X_OK) == 0)
			return where[i];
	return NULL;
}

/* tests/go/ctx.go under ptmon, in the test's cgroup: Wait returns and the
 * cgroup empties within the bound. */
static void go_run(struct ctx *c, const char *shape, const char *const *args)
{
	char path[PATH_MAX], text[32];
	const char *argv[16];
	int outp[2], n = 0;
	pid_t pid;
	struct run r = {.err = -1, .in = -1, .pidfd = -1};
	double t0 = now_s();

	argv[n++] = PTMON_GO_BIN;
	argv[n++] = PTMON_BIN;
	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	assert_int_equal(pipe2(outp, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		cg_file(c, "cgroup.procs", path, sizeof(path));
		snprintf(text, sizeof(text), "%d", getpid());
		if (write_file(path, text) < 0 || dup2(outp[1], 1) < 0 || dup2(outp[1], 2) < 0)
			_exit(121);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(PTMON_GO_BIN, (char **)argv);
		_exit(127);
	}
	close(outp[1]);
	r.out = outp[0];
	fcntl(r.out, F_SETFL, O_NONBLOCK);
	r.pidfd = sys_pidfd_open(pid);
	assert_true(r.pidfd >= 0);
	r.pid = pid;
	/* Bounded: without the guarantee, Wait never returns (the seed bug). */
	while (r.out >= 0 && now_s() < t0 + 1 + BOUND_MS / 1000.0)
		pump(&r, 100);
	if (wait_front(&r, r.out < 0 ? BOUND_MS : 0) < 0) {
		dump(&r);
		run_close(&r);
		fail_msg("the Go program's Wait did not return within %d ms of its timeout",
			 BOUND_MS);
	}
	print_message("    [go %s] %s", shape, r.o);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0 || now_s() > t0 + 1 + BOUND_MS / 1000.0) {
		dump(&r);
		fail_msg("the Go program failed or took too long (status 0x%x)", r.status);
	}
	if (!cg_wait_empty(c, BOUND_MS)) {
		pid_t left[16];
		int k = cg_list(c, left, 16);

		for (int i = 0; i < k && i < 16; i++) {
			char name[64];

			comm_of(left[i], name, sizeof(name));
			print_error("survivor: pid %d %s\n", left[i], name);
		}
		fail_msg("%d process(es) survived the Go caller's timeout", k);
	}
	run_close(&r);
}

static void t_go_command_context(void **state)
{
	struct ctx *c = begin(state);
	const char *go = find_go();
	char cmd[3 * PATH_MAX];

	if (!go) {
		print_message("no Go toolchain (apt-get install golang-go): skipped\n");
		skip();
	}
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && GOCACHE='%s/gocache' GOPATH='%s/gopath' "
		 "'%s' build -o '%s' '%s'",
		 PTMON_GO_WORK, PTMON_GO_WORK, PTMON_GO_WORK, go, PTMON_GO_BIN, PTMON_GO_SRC);
	if (system(cmd) != 0)
		fail_msg("cannot build %s", PTMON_GO_SRC);
	go_run(c, "seed", (const char *const[]){"--", "bash", "-c", "sleep 1000; true", NULL});
	go_run(c, "daemon",
	       (const char *const[]){"--leftovers", "wait", "--", H, "daemon", NULL});
	go_run(c, "wide 200", (const char *const[]){"--", H, "wide", "200", NULL});
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(t_front_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(t_front_killed_nobody, setup, teardown),
		cmocka_unit_test_setup_teardown(t_worker_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(t_both_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(t_group_signal_once, setup, teardown),
		cmocka_unit_test_setup_teardown(t_stdin, setup, teardown),
		cmocka_unit_test_setup_teardown(t_cgroup_modes, setup, teardown),
#ifdef PTMON_GO_SRC
		cmocka_unit_test_setup_teardown(t_go_command_context, setup, teardown),
#endif
	};

	if (getenv("PTMON_TEST_FILTER"))
		cmocka_set_test_filter(getenv("PTMON_TEST_FILTER"));
	return cmocka_run_group_tests_name("guardian", tests, group_setup, NULL);
}
