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
 * Survivors are found independently of ptmon: every run happens in the
 * test's cgroup (tests/harness_run.h); the front, the worker and the task are
 * all in it.  The
 * times from the front's death to an empty tree, to EOF and to the worker's
 * end are measured (1 ms polling of cgroup.procs) and printed; the checks
 * are bounded generously (BOUND_MS) and end on "populated 0" in
 * cgroup.events.  Needs root (cgroups, setresuid); skips visibly otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness_run.h"

#define BOUND_MS 5000 /* front's death to an empty cgroup, EOF, worker gone */
#define NOBODY 65534

const struct harness_suite harness_suite = {
	.subject = "guardian",
	.tmpdir = true,
	.root = true,
};

/* Starts "ptmon run --no-control @args" (the control socket is not what
 * these tests are about). */
static struct run *start(struct ctx *c, const struct opts *o, const char *const *args)
{
	const char *argv[32] = {"--no-control"};
	size_t n = 1;
	struct run *r = new_run(c);

	for (; *args; args++) {
		assert_true(n < ARRAY_SIZE(argv) - 1);
		argv[n++] = *args;
	}
	argv[n] = NULL;
	run_start_argv(c, r, o, argv);
	return r;
}

/* ---- ptmon's front killed ------------------------------------------------------ */

struct shape {
	const char *name;
	const char *args[12];   /* after "run --no-control" */
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

/* Waits for the task's tree to be all there: "READY\n" from the helper, or
 * a process named ready_comm for a task that says nothing. */
static void wait_tree(struct ctx *c, struct run *r, const struct shape *s)
{
	if (s->ready_comm)
		run_until_comm(c, r, s->ready_comm);
	else
		run_until(c, r, "READY\n");
}

/* Processes in the test's cgroup other than ptmon's worker and guardian
 * (all of them, when there are more than it looks at). */
static int task_left(const struct ctx *c, pid_t worker)
{
	pid_t left[64];
	int n = cg_list_dir(c->cg, left, 0, 64), k = 0;

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
	struct opts o = {.uid = uid};
	struct run *r = start(c, &o, s->args);
	struct times t = {-1, -1, -1};
	pid_t worker;
	int workerfd, procs;
	double t0, end;

	wait_tree(c, r, s);
	worker = worker_of(c, r);
	workerfd = sys_pidfd_open(worker);
	assert_true(workerfd >= 0);
	procs = cg_list_dir(c->cg, NULL, 0, 0);

	t0 = now_s();
	assert_int_equal(sys_pidfd_send_signal(r->pidfd, SIGKILL), 0);
	assert_true(run_reaped(r, BOUND_MS));
	assert_true(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGKILL);
	/* Poll at 1 ms for the figures; the check is the bound. */
	end = t0 + BOUND_MS / 1000.0;
	while (now_s() < end && (t.tree_empty < 0 || t.eof < 0 || t.all_gone < 0)) {
		double ms = (now_s() - t0) * 1000;

		if (t.tree_empty < 0 && task_left(c, worker) == 0)
			t.tree_empty = ms;
		if (t.eof < 0 && r->out < 0 && r->err < 0)
			t.eof = ms;
		if (t.all_gone < 0 && !cg_populated(c))
			t.all_gone = ms;
		pump(r, 1);
	}
	print_message("    [%-11s uid %5u] %4d processes; front SIGKILLed -> task gone %7.1f ms, "
		      "EOF %7.1f ms, worker gone %7.1f ms\n",
		      s->name, (unsigned)uid, procs, t.tree_empty, t.eof, t.all_gone);
	if (t.all_gone < 0) {
		int n;

		print_error("ptmon's worker was pid %d\n", worker);
		n = cg_dump_survivors(c);
		dump_run(r);
		fail_msg("%d process(es) survived ptmon's SIGKILL by %d ms", n, BOUND_MS);
	}
	if (t.eof < 0) {
		dump_run(r);
		fail_msg("ptmon's stdout/stderr did not reach EOF within %d ms", BOUND_MS);
	}
	assert_true(pidfd_dead(workerfd, 0)); /* the worker is gone (in the cgroup) */
	assert_int_equal(cg_children(c), 0);  /* the task's own cgroup was removed */
	close(workerfd);
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

/* The worker is stopped first, so that it cannot act on the front's death:
 * then both are SIGKILLed, and only the guardian is left to end the task's
 * cgroup.  Nothing of the task may survive, the task's cgroup must go, and
 * the guardian too. */
static void both_killed(struct ctx *c, const struct shape *s)
{
	const char *args[16] = {"--cgroup", "on"};
	struct run *r;
	pid_t worker, guardian;
	int wfd, gfd, procs;
	double t0, gone = -1;
	size_t n = 2;

	for (size_t i = 0; s->args[i] && n < 15; i++)
		args[n++] = s->args[i];
	args[n] = NULL;
	r = start(c, NULL, args);
	wait_tree(c, r, s);
	worker = worker_of(c, r);
	guardian = cg_find_comm(c, "ptmon-guard");
	assert_true(guardian > 0);
	/* It outlives the front: stdio (/dev/null), its pipe from the front and
	 * the worker's pidfd, nothing else (no pipe a caller waits on); it closes
	 * the rest before it takes its name, by which cg_find_comm() found it. */
	assert_int_equal(fds_of(guardian), 5);
	wfd = sys_pidfd_open(worker);
	gfd = sys_pidfd_open(guardian);
	assert_true(wfd >= 0 && gfd >= 0);
	procs = task_left(c, worker);
	assert_int_equal(sys_pidfd_send_signal(wfd, SIGSTOP), 0);
	t0 = now_s();
	assert_int_equal(sys_pidfd_send_signal(r->pidfd, SIGKILL), 0);
	assert_int_equal(sys_pidfd_send_signal(wfd, SIGKILL), 0);
	assert_true(run_reaped(r, BOUND_MS));
	for (double end = t0 + BOUND_MS / 1000.0; now_s() < end && gone < 0;) {
		if (!cg_populated(c))
			gone = (now_s() - t0) * 1000;
		pump(r, 1);
	}
	print_message("    [%-11s] %4d processes; front and worker SIGKILLed -> all gone "
		      "(the guardian's work) %7.1f ms\n",
		      s->name, procs, gone);
	if (gone < 0) {
		int k = cg_dump_survivors(c);

		dump_run(r);
		fail_msg("%d process(es) survived the front's and the worker's SIGKILL by %d ms", k,
			 BOUND_MS);
	}
	assert_true(pidfd_dead(gfd, 0));     /* the guardian is gone */
	assert_int_equal(cg_children(c), 0); /* the task's cgroup was removed */
	close(wfd);
	close(gfd);
}

static void t_both_killed(void **state)
{
	struct ctx *c = begin(state);

	for (size_t i = 0; i < ARRAY_SIZE(shapes); i++)
		both_killed(c, &shapes[i]);
	finish(c);
}

static void t_front_killed(void **state)
{
	struct ctx *c = begin(state);

	for (size_t i = 0; i < ARRAY_SIZE(shapes); i++)
		front_killed(c, &shapes[i], 0);
	finish(c);
}

static void t_front_killed_nobody(void **state)
{
	struct ctx *c = begin(state);

	for (size_t i = 0; i < ARRAY_SIZE(shapes); i++)
		front_killed(c, &shapes[i], NOBODY);
	finish(c);
}

/* ---- the worker killed alone ------------------------------------------------------ */

/* An OOM kill of the worker: the task's orphans come to the front (a child
 * subreaper), which kills them and exits 125 saying why. */
static void t_worker_killed(void **state)
{
	struct ctx *c = begin(state);
	const char *const args[] = {"--grace", "300ms", "--", H, "wide", "50", NULL};
	struct run *r = start(c, NULL, args);
	double t0;
	int wfd;

	run_until(c, r, "READY\n");
	wfd = sys_pidfd_open(worker_of(c, r));
	assert_true(wfd >= 0);
	t0 = now_s();
	assert_int_equal(sys_pidfd_send_signal(wfd, SIGKILL), 0);
	close(wfd);
	if (!run_reaped(r, BOUND_MS)) {
		dump_run(r);
		fail_msg("ptmon did not return within %d ms of its worker's death", BOUND_MS);
	}
	run_wait(c, r, RUN_DEADLINE_S);
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 125 ||
	    !buf_has(&r->e, "died of signal KILL")) {
		dump_run(r);
		fail_msg("expected status 125 and \"died of signal KILL\", got 0x%x", r->status);
	}
	assert_int_equal(cg_children(c), 0); /* the front removed the task's cgroup */
	/* The front returned after its rounds: nothing may be left. */
	if (cg_populated(c)) {
		dump_run(r);
		fail_msg("%d process(es) of the task survived its worker's death",
			 cg_list_dir(c->cg, NULL, 0, 0));
	}
	print_message("    worker SIGKILLed -> ptmon returned, tree empty, in %.1f ms\n",
		      (now_s() - t0) * 1000);
	finish(c);
}

/* ---- signals to the whole process group ------------------------------------------- */

/* "kill -TERM -PGID" (a shell's "kill %1"; systemd signals every process of a
 * unit alike) reaches the front and the worker: it must count once, so the
 * grace period is kept, not skipped as a second signal would. */
static void t_group_signal_once(void **state)
{
	struct ctx *c = begin(state);
	const char *const args[] = {"--grace", "2s", "--", H, "report-term", NULL};
	struct opts o = {.own_pgrp = true};
	struct run *r = start(c, &o, args);
	double t0, took;

	run_until(c, r, "READY\n");
	t0 = now_s();
	assert_int_equal(kill(-r->pid, SIGTERM), 0);
	if (!run_reaped(r, 30000))
		fail_msg("ptmon did not return");
	took = r->t_exit - t0;
	run_wait(c, r, RUN_DEADLINE_S);
	print_message("    group SIGTERM -> ptmon returned after %.3f s (grace 2 s)\n", took);
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 143) {
		dump_run(r);
		fail_msg("expected status 143, got 0x%x", r->status);
	}
	if (took < 1.9) {
		dump_run(r);
		fail_msg("ptmon skipped the grace period: the group's SIGTERM counted twice");
	}
	if (!cg_wait_empty(c, BOUND_MS))
		fail_msg("the task survived the cancel");
	finish(c);
}

/* ---- stdin -------------------------------------------------------------------------- */

/* The task reads ptmon's stdin; the front never touches it. */
static void t_stdin(void **state)
{
	struct ctx *c = begin(state);
	const char *const args[] = {"--", "cat", NULL};
	struct opts o = {.stdin_pipe = true};
	struct run *r = start(c, &o, args);
	static const char text[] = "line one\nline two\n";

	assert_int_equal(write(r->in, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(r->in);
	r->in = -1;
	run_wait(c, r, RUN_DEADLINE_S);
	assert_status(r, 0);
	assert_string_equal(r->o.p ? r->o.p : "", text);
	finish(c);
}

/* ---- --cgroup ------------------------------------------------------------------------ */

/* Runs ptmon on "cat /proc/self/cgroup" as @uid with --cgroup @mode to its
 * end: what the task said its cgroup was is on the run's stdout. */
static struct run *cgroup_run(struct ctx *c, uid_t uid, const char *mode)
{
	struct opts o = {.uid = uid};
	const char *const args[] = {"-v", "--cgroup", mode, "--", "cat", "/proc/self/cgroup", NULL};
	struct run *r = start(c, &o, args);

	run_wait(c, r, RUN_DEADLINE_S);
	return r;
}

static void t_cgroup_modes(void **state)
{
	struct ctx *c = begin(state);
	const char *rel = c->cg + strlen(cg_mount);
	char want[512];
	struct run *r;

	/* As root, auto: the task is in a cgroup of its own below ptmon's,
	 * from its first instruction (cat reads its own), removed after. */
	snprintf(want, sizeof(want), "0::%s/ptmon-", rel);
	r = cgroup_run(c, 0, "auto");
	assert_status(r, 0);
	if (!buf_has(&r->o, want) || !buf_has(&r->e, "task cgroup ")) {
		dump_run(r);
		fail_msg("the task is not in a cgroup of its own (%s...)", want);
	}
	assert_int_equal(cg_children(c), 0);
	r = cgroup_run(c, 0, "on");
	assert_status(r, 0);
	assert_true(buf_has(&r->o, want));
	/* off: in ptmon's own. */
	snprintf(want, sizeof(want), "0::%s\n", rel);
	r = cgroup_run(c, 0, "off");
	assert_status(r, 0);
	if (!buf_has(&r->o, want) || !buf_has(&r->e, "no cgroup for the task (--cgroup off)")) {
		dump_run(r);
		fail_msg("--cgroup off: the task is not in ptmon's cgroup");
	}
	/* uid 65534 in root's cgroup: no delegation.  auto goes on, says so. */
	r = cgroup_run(c, NOBODY, "auto");
	assert_status(r, 0);
	if (!buf_has(&r->o, want) || !buf_has(&r->e, "no cgroup for the task (cannot create")) {
		dump_run(r);
		fail_msg("--cgroup auto as uid 65534: expected no cgroup, said so");
	}
	/* on: a clear error, status 125, and nothing ran. */
	r = cgroup_run(c, NOBODY, "on");
	assert_status(r, 125);
	if (!buf_has(&r->e, "ptmon: --cgroup on: cannot create a cgroup") || r->o.len) {
		dump_run(r);
		fail_msg("--cgroup on as uid 65534: expected a clear error");
	}
	/* A cancel ends with cgroup.kill; "populated 0" is the second proof;
	 * the report says so, with the task's CPU time. */
	{
		const char *rep = tpath(c, "report.json");
		const char *args[] = {"--timeout", "300ms", "--grace", "100ms", "--report", rep,
				      "--",        H,       "wide",    "3",     NULL};
		char text[65536], *q, *w;

		r = start(c, NULL, args);
		run_wait(c, r, RUN_DEADLINE_S);
		assert_status(r, 124);
		assert_true(read_file(rep, text, sizeof(text)) > 0);
		for (q = w = text; *q; q++) /* the JSON without blanks */
			if (*q != ' ' && *q != '\n')
				*w++ = *q;
		*w = '\0';
		if (!strstr(text, "\"killed\":true,\"empty_proof\":true,\"escaped_killed\":false,"
				  "\"removed\":true,\"cpu_usage_us\":")) {
			print_error("%s\n", text);
			fail_msg("the report does not carry the cgroup's proof");
		}
	}
	/* A bad value. */
	r = cgroup_run(c, 0, "maybe");
	assert_status(r, 125);
	assert_stderr_has(r, "--cgroup: invalid value 'maybe'");
	finish(c);
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
	const char *argv[16] = {PTMON_BIN};
	struct opts o = {.prog = PTMON_GO_BIN};
	struct run *r = new_run(c);
	double end = now_s() + 1 + BOUND_MS / 1000.0;
	size_t n = 1;

	for (; *args; args++) {
		assert_true(n < ARRAY_SIZE(argv) - 1);
		argv[n++] = *args;
	}
	argv[n] = NULL;
	run_start_argv(c, r, &o, argv);
	/* Bounded: without the guarantee, Wait never returns (the seed bug). */
	while ((r->out >= 0 || r->err >= 0) && now_s() < end)
		pump(r, 100);
	if (!run_reaped(r, r->out < 0 && r->err < 0 ? BOUND_MS : 0)) {
		dump_run(r);
		fail_msg("the Go program's Wait did not return within %d ms of its timeout",
			 BOUND_MS);
	}
	print_message("    [go %s] %s%s", shape, r->o.p ? r->o.p : "", r->e.p ? r->e.p : "");
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0 || now_s() > end) {
		dump_run(r);
		fail_msg("the Go program failed or took too long (status 0x%x)", r->status);
	}
	if (!cg_wait_empty(c, BOUND_MS))
		fail_msg("%d process(es) survived the Go caller's timeout", cg_dump_survivors(c));
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
	go_run(c, "daemon", (const char *const[]){"--leftovers", "wait", "--", H, "daemon", NULL});
	go_run(c, "wide 200", (const char *const[]){"--", H, "wide", "200", NULL});
	finish(c);
}
#endif

/* clang-format off */
#define ENTRY(f) {#f, f, setup, teardown, (void *)backend_none}
/* clang-format on */

int main(void)
{
	const struct CMUnitTest tests[] = {
		ENTRY(t_front_killed),       ENTRY(t_front_killed_nobody), ENTRY(t_worker_killed),
		ENTRY(t_both_killed),        ENTRY(t_group_signal_once),   ENTRY(t_stdin),
		ENTRY(t_cgroup_modes),
#ifdef PTMON_GO_SRC
		ENTRY(t_go_command_context),
#endif
	};

	if (getenv("PTMON_TEST_FILTER"))
		cmocka_set_test_filter(getenv("PTMON_TEST_FILTER"));
	return cmocka_run_group_tests_name("guardian", tests, group_setup, group_teardown);
}
