/* SPDX-License-Identifier: MIT */
/*
 * The task state machine (monitor/task.c) on crafted times: a real task,
 * small `sh -c` trees, and task_step(t, now) called with the `now` the test
 * chooses, each a deadline the task itself returned (or one nanosecond
 * before it).  The configured bounds are long (an hour, half an hour, a
 * quarter of an hour) and different from each other and from the kill
 * bound, so that no real time reaches them while the test runs, the
 * dispatches that carry the task's events never step it past one, and each
 * deadline says which bound it came from.
 *
 * A phase's bound runs from when the phase began, read from the clock by
 * the library (the start, the cancel, the kill phase, "empty"): the test
 * reads the clock just before and just after the call that began it, and
 * the deadline must lie exactly that bound after a moment between the two.
 *
 * Public API (monitor/ptmon.h) plus task_step() and task_next_deadline()
 * (task.h) and util_now_ns() (sys.h); the procfs backend (no connector
 * traffic) and no cgroup, as the other unit tests of the library.  The
 * test waits on pipes and the monitor's fd, never on the clock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "ptmon.h"
#include "sys.h"
#include "task.h"

#define SEC 1000000000ull
#define TIMEOUT (3600 * SEC)
#define GRACE (1800 * SEC)
#define DRAIN (900 * SEC)
/* How long the test waits for what it expects before it calls the run
 * stuck: a bound on a failure, never a pause.  (The monitor's fd turns
 * readable every 100 ms with the procfs backend, so it is a bound on the
 * whole wait, not on one poll.) */
#define STUCK_MS 20000
#define STUCK_NS (STUCK_MS * 1000000ull)

#define MAX_SIGNALS 64

/*
 * The tree: a root and its child, each a `sleep` in the end.  The child
 * says "armed" once it runs a shell of its own, whose signal dispositions
 * are then the ones it keeps (a signal caught by its parent's trap would
 * be the default again, an ignored one stays ignored through exec).  The
 * root does not wait for the child, so that its status is the signal it
 * got and never the exit of a shell whose child was killed first.
 */
#define TREE "sh -c 'echo armed; exec sleep 1000' & exec sleep 1000"

struct fixture {
	struct ptmon_monitor *m;
	struct ptmon_task *t;
	int out_r, out_w; /* the task's stdout, as ptmon forwards it */
	int in_w;         /* the write end of the task's stdin, when the test gives one */
	int held;         /* a second writer of the task's stdout pipe, -1: none */
	uint64_t drain;   /* the drain bound of the next start */
	char out[4096];   /* what came through so far */
	size_t out_len;
	/* What the events said. */
	struct {
		pid_t pid;
		pid_t ppid; /* its parent, as ptmon knew it */
		int signal;
		int error;
	} signals[MAX_SIGNALS];
	unsigned nsignals;
	unsigned eofs, drain_timeouts, dones;
	bool drain_timeout_stdout;
};

static void on_event(const struct ptmon_event *ev, void *ud)
{
	struct fixture *f = ud;
	switch (ev->type) {
	case PTMON_EVENT_SIGNAL: {
		struct ptmon_process_info info = {.size = sizeof(info)};
		assert_true(f->nsignals < MAX_SIGNALS);
		assert_int_equal(ptmon_process_get_info(ev->process, &info), 0);
		f->signals[f->nsignals].pid = ev->pid;
		f->signals[f->nsignals].ppid = info.ppid;
		f->signals[f->nsignals].signal = ev->signal;
		f->signals[f->nsignals].error = ev->error;
		f->nsignals++;
		break;
	}
	case PTMON_EVENT_EOF:
		f->eofs++;
		break;
	case PTMON_EVENT_DRAIN_TIMEOUT:
		f->drain_timeouts++;
		f->drain_timeout_stdout |= strcmp(ev->stream, "stdout") == 0;
		break;
	case PTMON_EVENT_DONE:
		f->dones++;
		break;
	default:
		break;
	}
}

static int setup(void **state)
{
	static struct fixture f;
	int p[2];
	f = (struct fixture){.out_r = -1, .out_w = -1, .in_w = -1, .held = -1, .drain = DRAIN};
	if (ptmon_monitor_new(&f.m, PTMON_BACKEND_PROCFS, 0) < 0)
		return -1;
	ptmon_monitor_set_event_callback(f.m, on_event, &f);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	f.out_r = p[0];
	f.out_w = p[1];
	*state = &f;
	return 0;
}

/* The process is our child, and a subreaper's: while the monitor lives,
 * every process a task left behind is a child of ours (or below one that
 * is).  None may be, alive or unreaped. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	siginfo_t si = {0};
	int r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
	bool left = r == 0 && si.si_pid != 0;
	if (left)
		print_message("process %d left behind\n", (int)si.si_pid);
	else if (r < 0 && errno != ECHILD)
		left = true;
	f->m = ptmon_monitor_free(f->m); /* kills what is left, if a test failed */
	close(f->out_r);
	close(f->out_w);
	if (f->in_w >= 0)
		close(f->in_w);
	if (f->held >= 0)
		close(f->held);
	return left ? -1 : 0;
}

/* Start @script with the test's bounds; @timeout 0: none; @in: the
 * task's stdin (-1: the test's own).  [*lo, *hi] holds the moment the
 * task's clock started. */
static void start_in(struct fixture *f, const char *script, uint64_t timeout, int signo, int in,
		     uint64_t *lo, uint64_t *hi)
{
	char *const argv[] = {"sh", "-c", (char *)script, NULL};
	struct ptmon_task_config cfg;
	assert_int_equal(ptmon_task_config_init(&cfg, sizeof(cfg)), 0);
	cfg.argv = argv;
	cfg.timeout_ns = timeout;
	cfg.grace_ns = GRACE;
	cfg.drain_ns = f->drain;
	cfg.signal = signo;
	cfg.cgroup = PTMON_CGROUP_OFF;
	cfg.stdout_fd = f->out_w;
	cfg.stderr_fd = -1; /* read and discarded */
	/* The task inherits the test's stdin: @in takes its place for the
	 * start only. */
	int saved = -1;
	if (in >= 0) {
		saved = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0);
		assert_true(saved >= 0);
		assert_int_equal(dup2(in, STDIN_FILENO), STDIN_FILENO);
	}
	*lo = util_now_ns();
	int r = ptmon_task_start(f->m, &cfg, 0, &f->t);
	*hi = util_now_ns();
	if (in >= 0) {
		assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
		close(saved);
	}
	assert_int_equal(r, 0);
}

static void start(struct fixture *f, const char *script, uint64_t timeout, int signo, uint64_t *lo,
		  uint64_t *hi)
{
	start_in(f, script, timeout, signo, -1, lo, hi);
}

/* Whether @word has come through the task's stdout. */
static bool said(const struct fixture *f, const char *word)
{
	return strstr(f->out, word) != NULL;
}

static bool done(const struct fixture *f)
{
	return ptmon_task_done(f->t);
}

/* Read what ptmon has forwarded of the task's stdout so far. */
static void read_out(struct fixture *f)
{
	struct pollfd p = {.fd = f->out_r, .events = POLLIN};
	while (poll(&p, 1, 0) > 0) {
		size_t room = sizeof(f->out) - 1 - f->out_len;
		assert_true(room > 0);
		ssize_t k = read(f->out_r, f->out + f->out_len, room);
		assert_true(k > 0);
		f->out_len += (size_t)k;
		f->out[f->out_len] = '\0';
	}
}

/* Dispatch, and wait for the monitor's fd or the task's output, until
 * @cond (with @word) holds.  Dispatch comes first: what a step of the test
 * queued is delivered by it, whether or not the fd is readable. */
static void pump(struct fixture *f, bool (*cond)(const struct fixture *f, const char *word),
		 const char *word)
{
	uint64_t stuck = util_now_ns() + STUCK_NS;
	for (;;) {
		assert_true(ptmon_monitor_dispatch(f->m) >= 0);
		read_out(f);
		if (cond(f, word))
			return;
		if (util_now_ns() >= stuck)
			fail_msg("waited %d ms for %s", STUCK_MS, word ? word : "the task's end");
		struct pollfd p[2] = {
			{.fd = ptmon_monitor_get_fd(f->m), .events = POLLIN},
			{.fd = f->out_r, .events = POLLIN},
		};
		int n = poll(p, 2, STUCK_MS);
		if (n == 0)
			fail_msg("nothing happened for %d ms", STUCK_MS);
		assert_true(n > 0);
	}
}

static bool cond_done(const struct fixture *f, const char *word)
{
	(void)word;
	return done(f);
}

/* SIGNAL events for @signo that reached their process. */
static unsigned sent(const struct fixture *f, int signo)
{
	unsigned n = 0;
	for (unsigned i = 0; i < f->nsignals; i++)
		n += f->signals[i].signal == signo && f->signals[i].error == 0;
	return n;
}

static void result(const struct fixture *f, struct ptmon_task_result *res)
{
	*res = (struct ptmon_task_result){.size = sizeof(*res)};
	assert_int_equal(ptmon_task_result(f->t, res), 0);
}

/* Done is for good: no deadline, a step at any time does nothing, and a
 * cancel changes nothing of the result, signals nothing. */
static void assert_done_for_good(struct fixture *f)
{
	struct ptmon_task_result before, after;
	unsigned nsignals = f->nsignals;
	assert_true(done(f));
	result(f, &before);
	assert_int_equal(task_next_deadline(f->t), 0);
	assert_int_equal(task_step(f->t, util_now_ns()), 0);
	assert_int_equal(task_step(f->t, UINT64_MAX), 0);
	assert_int_equal(ptmon_task_cancel(f->t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_NOW), 0);
	assert_int_equal(ptmon_task_cancel(f->t, PTMON_CANCEL_TIMEOUT, PTMON_CANCEL_GRACEFUL), 0);
	assert_true(ptmon_monitor_dispatch(f->m) >= 0);
	assert_true(done(f));
	assert_int_equal(task_next_deadline(f->t), 0);
	result(f, &after);
	assert_int_equal(after.cancel_reason, before.cancel_reason);
	assert_int_equal(after.signalled, before.signalled);
	assert_int_equal(after.killed, before.killed);
	assert_int_equal(after.cancel_to_eof_ns, before.cancel_to_eof_ns);
	assert_int_equal(f->nsignals, nsignals);
	assert_int_equal(f->dones, 1);
}

/*
 * The timeout: its deadline is the timeout after the start; a step one
 * nanosecond before it does nothing; a step at it cancels with reason
 * TIMEOUT and sends the configured first signal (SIGUSR1 here, not
 * SIGTERM) to every process, and the grace runs from that cancel.  The
 * processes end of it, so the grace never ends: no SIGKILL.
 */
static void t_timeout_sends_the_first_signal(void **state)
{
	struct fixture *f = *state;
	struct ptmon_task_result res;
	uint64_t lo, hi;
	start(f, TREE, TIMEOUT, SIGUSR1, &lo, &hi);
	uint64_t d0 = task_next_deadline(f->t);
	assert_in_range(d0, lo + TIMEOUT, hi + TIMEOUT);
	pump(f, said, "armed\n");
	/* The dispatches stepped it at real times: the deadline is where it was. */
	assert_int_equal(task_next_deadline(f->t), d0);

	assert_int_equal(task_step(f->t, d0 - 1), d0);
	assert_true(ptmon_monitor_dispatch(f->m) >= 0);
	assert_int_equal(f->nsignals, 0);
	assert_int_equal(task_next_deadline(f->t), d0);

	lo = util_now_ns();
	uint64_t d1 = task_step(f->t, d0);
	hi = util_now_ns();
	assert_in_range(d1, lo + GRACE, hi + GRACE);
	assert_int_equal(task_next_deadline(f->t), d1);
	assert_int_equal(task_step(f->t, d1 - 1), d1);

	pump(f, cond_done, NULL);
	assert_int_equal(sent(f, SIGUSR1), 2);
	assert_int_equal(sent(f, SIGTERM), 0);
	assert_int_equal(sent(f, SIGKILL), 0);
	result(f, &res);
	assert_int_equal(res.cancel_reason, PTMON_CANCEL_TIMEOUT);
	assert_int_equal(res.cancel_signal, 0); /* no signal of ptmon's own */
	assert_int_equal(res.processes, 2);
	assert_int_equal(res.signalled, 2);
	assert_int_equal(res.killed, 0);
	assert_int_equal(res.root_status, CLD_KILLED);
	assert_int_equal(res.root_value, SIGUSR1);
	assert_false(res.drain_timed_out);
	assert_int_equal(res.survivors, 0);
	assert_true(res.cancel_to_empty_ns > 0);
	assert_true(res.cancel_to_eof_ns >= res.cancel_to_empty_ns);
	assert_int_equal(f->eofs, 2);
	assert_done_for_good(f);
}

/*
 * A tree that ignores SIGTERM: the cancel's grace runs from the cancel; a
 * step before its end sends nothing more; a step at its end sends SIGKILL
 * to every process, which is how they end.  The step lands in the kill
 * phase, whose deadline (its next sweep) lies within the kill bound of
 * its start; or, when SIGKILL was quick enough for that step's own reap
 * to find the tree empty, in the drain phase, the drain bound from then.
 */
static void t_grace_ends_in_sigkill(void **state)
{
	struct fixture *f = *state;
	struct ptmon_task_result res;
	uint64_t lo, hi;
	start(f, "trap '' TERM; " TREE, 0, 0, &lo, &hi);
	assert_int_equal(task_next_deadline(f->t), 0); /* no timeout: no deadline */
	pump(f, said, "armed\n");

	lo = util_now_ns();
	assert_int_equal(ptmon_task_cancel(f->t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_GRACEFUL), 0);
	hi = util_now_ns();
	uint64_t d1 = task_next_deadline(f->t);
	assert_in_range(d1, lo + GRACE, hi + GRACE);
	assert_true(ptmon_monitor_dispatch(f->m) >= 0);
	assert_int_equal(sent(f, SIGTERM), 2);
	assert_int_equal(sent(f, SIGKILL), 0);

	assert_int_equal(task_step(f->t, d1 - 1), d1);
	assert_true(ptmon_monitor_dispatch(f->m) >= 0);
	assert_int_equal(sent(f, SIGKILL), 0);
	assert_false(done(f));
	assert_int_equal(task_next_deadline(f->t), d1);

	lo = util_now_ns();
	uint64_t d2 = task_step(f->t, d1);
	hi = util_now_ns();
	/* EOF is read by a dispatch only: not done yet. */
	assert_false(done(f));
	bool kill_phase = d2 < lo + DRAIN;
	print_message("    the step at the grace's end left the task %s\n",
		      kill_phase ? "sweeping" : "draining");
	if (kill_phase)
		assert_in_range(d2, lo + 1, hi + PTMON_KILL_BOUND_NS);
	else
		assert_in_range(d2, lo + DRAIN, hi + DRAIN);

	pump(f, cond_done, NULL);
	assert_int_equal(sent(f, SIGTERM), 2);
	assert_int_equal(sent(f, SIGKILL), 2);
	result(f, &res);
	assert_int_equal(res.cancel_reason, PTMON_CANCEL_REQUEST);
	assert_int_equal(res.processes, 2);
	assert_int_equal(res.signalled, 2);
	assert_int_equal(res.killed, 2);
	assert_int_equal(res.root_status, CLD_KILLED);
	assert_int_equal(res.root_value, SIGKILL);
	assert_int_equal(res.survivors, 0);
	assert_false(res.drain_timed_out);
	assert_int_equal(f->eofs, 2);
	assert_done_for_good(f);
}

/*
 * PTMON_CANCEL_NOW: no first signal and no grace; the kill phase begins
 * at the cancel, and the deadline is its next sweep, within the kill
 * bound of that moment and long before a grace would have ended.
 */
static void t_cancel_now_skips_the_grace(void **state)
{
	struct fixture *f = *state;
	struct ptmon_task_result res;
	uint64_t lo, hi;
	start(f, "trap '' TERM; " TREE, TIMEOUT, 0, &lo, &hi);
	pump(f, said, "armed\n");

	lo = util_now_ns();
	assert_int_equal(ptmon_task_cancel(f->t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_NOW), 0);
	hi = util_now_ns();
	/* No step since the cancel: the task is in its kill phase. */
	uint64_t d = task_next_deadline(f->t);
	assert_in_range(d, lo + 1, hi + PTMON_KILL_BOUND_NS);
	assert_true(d < lo + GRACE);

	pump(f, cond_done, NULL);
	assert_int_equal(sent(f, SIGTERM), 0);
	assert_int_equal(sent(f, SIGKILL), 2);
	result(f, &res);
	assert_int_equal(res.cancel_reason, PTMON_CANCEL_REQUEST);
	assert_int_equal(res.processes, 2);
	assert_int_equal(res.signalled, 2);
	assert_int_equal(res.killed, 2);
	assert_int_equal(res.root_status, CLD_KILLED);
	assert_int_equal(res.root_value, SIGKILL);
	assert_int_equal(res.survivors, 0);
	assert_int_equal(f->eofs, 2);
	assert_done_for_good(f);
}

/*
 * A cancel signals the root first, and each process before the children
 * it started.  A shell that waits for its child must have the signal
 * pending before the child can die of it and end the wait: else the
 * shell runs on past its trap and exits as if never signalled (0 after
 * `cmd & wait`, which `ptmon timeout` would report for a run it was told
 * to stop).  Three generations, each a shell that waits for the next;
 * the youngest may still be unknown to ptmon when the cancel comes (the
 * procfs backend walks every 100 ms): the cancel's walk finds it, and it
 * waits its turn.
 */
static void t_cancel_signals_parents_first(void **state)
{
	struct fixture *f = *state;
	uint64_t lo, hi;
	start(f, "sh -c 'sleep 1000 & echo armed; wait' & wait", 0, 0, &lo, &hi);
	pump(f, said, "armed\n");
	assert_int_equal(ptmon_task_cancel(f->t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_GRACEFUL), 0);
	pump(f, cond_done, NULL);
	assert_int_equal(sent(f, SIGTERM), 3);
	pid_t signalled[3];
	unsigned k = 0;
	for (unsigned i = 0; i < f->nsignals; i++) {
		if (f->signals[i].signal != SIGTERM || f->signals[i].error)
			continue;
		print_message("    SIGTERM %u: pid %d, parent %d\n", k + 1, (int)f->signals[i].pid,
			      (int)f->signals[i].ppid);
		bool parent_first = k == 0 && f->signals[i].pid == ptmon_task_root_pid(f->t);
		for (unsigned j = 0; j < k; j++)
			parent_first |= signalled[j] == f->signals[i].ppid;
		if (!parent_first)
			fail_msg("pid %d got SIGTERM before its parent %d", (int)f->signals[i].pid,
				 (int)f->signals[i].ppid);
		signalled[k++] = f->signals[i].pid;
	}
}

/*
 * Nobody cancels: the root exits, the tree is empty, the output is read to
 * EOF, done.  No deadline on the way (no timeout), none after.
 */
static void t_empty_tree_drains_to_eof(void **state)
{
	struct fixture *f = *state;
	struct ptmon_task_result res;
	uint64_t lo, hi;
	start(f, "echo armed; exit 7", 0, 0, &lo, &hi);
	assert_int_equal(task_next_deadline(f->t), 0);
	pump(f, cond_done, NULL);
	/* Done after EOF: all of the output came through first. */
	assert_string_equal(f->out, "armed\n");
	assert_int_equal(f->eofs, 2);
	assert_int_equal(f->drain_timeouts, 0);
	assert_int_equal(f->nsignals, 0);
	result(f, &res);
	assert_int_equal(res.cancel_reason, PTMON_CANCEL_NONE);
	assert_int_equal(res.processes, 1);
	assert_int_equal(res.signalled, 0);
	assert_int_equal(res.killed, 0);
	assert_int_equal(res.root_status, CLD_EXITED);
	assert_int_equal(res.root_value, 7);
	assert_false(res.drain_timed_out);
	assert_int_equal(res.bytes_out, 6);
	assert_int_equal(res.cancel_to_eof_ns, 0);
	/* A cancel after done is no cancel: the reason stays NONE. */
	assert_done_for_good(f);
	result(f, &res);
	assert_int_equal(res.cancel_reason, PTMON_CANCEL_NONE);
}

/*
 * A tree whose root exits 4 when the test closes its stdin, while a
 * writer outside the tree (f->held) keeps the task's stdout pipe open:
 * dispatch until the tree is found empty, when the deadline is the drain
 * bound's (f->drain, far from any sweep).  Returns it, with [*lo, *hi]
 * around the dispatch that found the tree empty.
 */
static uint64_t held_tree_found_empty(struct fixture *f, uint64_t *lo, uint64_t *hi)
{
	int in[2];
	char path[64];

	/* The root's stdin is a pipe of ours: it exits when we close it. */
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	f->in_w = in[1];
	start_in(f, "echo armed; read x; exit 4", 0, 0, in[0], lo, hi);
	close(in[0]);
	pump(f, said, "armed\n");

	snprintf(path, sizeof(path), "/proc/%d/fd/1", (int)ptmon_task_root_pid(f->t));
	f->held = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(f->held >= 0);
	close(f->in_w);
	f->in_w = -1;

	/* The dispatch that finds the tree empty starts the drain bound. */
	uint64_t d = 0, stuck = util_now_ns() + STUCK_NS;
	for (;;) {
		if (util_now_ns() >= stuck)
			fail_msg("the tree was not found empty within %d ms", STUCK_MS);
		*lo = util_now_ns();
		assert_true(ptmon_monitor_dispatch(f->m) >= 0);
		*hi = util_now_ns();
		assert_false(done(f));
		d = task_next_deadline(f->t);
		if (d >= *lo + f->drain / 2)
			return d;
		struct pollfd p = {.fd = ptmon_monitor_get_fd(f->m), .events = POLLIN};
		int n = poll(&p, 1, STUCK_MS);
		if (n == 0)
			fail_msg("the tree was not found empty within %d ms", STUCK_MS);
		assert_true(n > 0);
	}
}

/*
 * The tree is empty but its stdout is still open (the test holds a second
 * writer, opened through /proc, outside the tree): the drain bound runs
 * from the moment the tree was found empty; a step before its end leaves
 * the task draining; a step at it abandons the pipe and ends the task.
 */
static void t_drain_bound_from_empty(void **state)
{
	struct fixture *f = *state;
	struct ptmon_task_result res;
	uint64_t lo, hi;

	uint64_t d = held_tree_found_empty(f, &lo, &hi);
	assert_in_range(d, lo + DRAIN, hi + DRAIN);
	assert_int_equal(f->eofs, 1); /* stderr's; stdout is held open */

	assert_int_equal(task_step(f->t, d - 1), d);
	assert_true(ptmon_monitor_dispatch(f->m) >= 0);
	assert_false(done(f));
	assert_int_equal(f->drain_timeouts, 0);
	assert_int_equal(task_next_deadline(f->t), d);

	assert_int_equal(task_step(f->t, d), 0);
	assert_true(done(f));
	assert_true(ptmon_monitor_dispatch(f->m) >= 0); /* delivers what the step queued */
	assert_int_equal(f->drain_timeouts, 1);
	assert_true(f->drain_timeout_stdout);
	assert_int_equal(f->dones, 1);
	result(f, &res);
	assert_true(res.drain_timed_out);
	assert_int_equal(res.cancel_reason, PTMON_CANCEL_NONE);
	assert_int_equal(res.signalled, 0);
	assert_int_equal(res.root_status, CLD_EXITED);
	assert_int_equal(res.root_value, 4);
	assert_int_equal(res.bytes_out, 6);
	assert_done_for_good(f);
}

/*
 * What a batch's handlers saw counts before the round's deadlines: a
 * stream that reaches EOF in the dispatch that also finds the drain bound
 * passed ends the task in time, not by the bound (the caller came back
 * late, but nothing was left to wait for).
 */
static void t_eof_in_the_batch_past_the_bound(void **state)
{
	struct fixture *f = *state;
	struct ptmon_task_result res;
	uint64_t lo, hi;

	f->drain = SEC; /* sweeps (at most 200 ms apart) cannot be taken for it */
	uint64_t d = held_tree_found_empty(f, &lo, &hi);
	/* The caller comes back after the bound (no dispatch meanwhile), and
	 * the pipe's last writer is gone by then. */
	while (util_now_ns() <= d)
		poll(NULL, 0, (int)((d - util_now_ns()) / 1000000ull) + 1);
	close(f->held);
	f->held = -1;
	assert_true(ptmon_monitor_dispatch(f->m) >= 0);
	assert_true(done(f));
	assert_int_equal(f->drain_timeouts, 0);
	assert_int_equal(f->eofs, 2);
	result(f, &res);
	assert_false(res.drain_timed_out);
	assert_int_equal(res.root_value, 4);
	assert_done_for_good(f);
}

/*
 * A watched root R that is not ours: its parent P is no process of the
 * test's either (with one task, the monitor takes its own process's
 * children for its task's), but init's, double-forked while the test is
 * no subreaper.  R waits for EOF on @go (and then exits 7); P reaps R once
 * it reads a byte on @reap, and exits at EOF there.  Returns R's pid.
 */
static pid_t root_of_another_parent(int go[2], int reap[2])
{
	int said[2], was = 0;
	pid_t root = 0;
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(reap, O_CLOEXEC), 0);
	assert_int_equal(pipe2(said, O_CLOEXEC), 0);
	assert_int_equal(prctl(PR_GET_CHILD_SUBREAPER, &was), 0);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
	pid_t a = fork();
	assert_true(a >= 0);
	if (a == 0) {
		char c;
		close(go[1]);
		close(reap[1]);
		close(said[0]);
		if (fork() != 0)
			_exit(0); /* P is init's from now on */
		pid_t r = fork();
		if (r == 0) {
			while (read(go[0], &c, 1) > 0)
				;
			_exit(7);
		}
		close(go[0]);
		if (r < 0 || write(said[1], &r, sizeof(r)) != sizeof(r))
			_exit(1);
		close(said[1]);
		if (read(reap[0], &c, 1) == 1)
			waitpid(r, NULL, 0);
		while (read(reap[0], &c, 1) > 0)
			;
		_exit(0);
	}
	assert_int_equal(waitpid(a, NULL, 0), a);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, was), 0);
	close(go[0]);
	close(reap[0]);
	close(said[1]);
	assert_int_equal(read(said[0], &root, sizeof(root)), sizeof(root));
	close(said[0]);
	return root;
}

/*
 * The kill bound passes while a process's death is known to the kernel
 * but not yet handled by ptmon (a ptmon short of CPU, its batch of pidfd
 * news behind it; here no dispatch at all).  A watched root that its
 * parent has not reaped yet is a zombie: ptmon cannot reap it, signals
 * reach it without error, and it is still in /proc.  It is dead, not a
 * survivor: the cancel ends 124, not 125.
 */
static void t_kill_bound_spares_the_dead(void **state)
{
	struct fixture *f = *state;
	struct ptmon_task_result res;
	struct ptmon_attach_config cfg;
	int go[2], reap[2];
	pid_t root = root_of_another_parent(go, reap);
	int fd = util_pidfd_open(root, 0);
	assert_true(fd >= 0);
	assert_int_equal(ptmon_attach_config_init(&cfg, sizeof(cfg)), 0);
	cfg.pid = root;
	assert_int_equal(ptmon_task_attach(f->m, &cfg, 0, &f->t), 0);
	assert_true(ptmon_monitor_dispatch(f->m) >= 0);
	assert_false(done(f));

	assert_int_equal(ptmon_task_cancel(f->t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_NOW), 0);
	uint64_t hi = util_now_ns(); /* the kill phase began before */
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, STUCK_MS), 1); /* it died of the SIGKILL */

	/* The kill bound, with the death not handled. */
	(void)task_step(f->t, hi + PTMON_KILL_BOUND_NS);
	pump(f, cond_done, NULL);
	result(f, &res);
	assert_int_equal(res.cancel_reason, PTMON_CANCEL_REQUEST);
	assert_int_equal(res.survivors, 0);
	assert_int_equal(res.killed, 1);
	assert_done_for_good(f);
	assert_int_equal(write(reap[1], "r", 1), 1);
	close(reap[1]);
	close(go[1]);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(t_timeout_sends_the_first_signal, setup, teardown),
		cmocka_unit_test_setup_teardown(t_grace_ends_in_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(t_cancel_now_skips_the_grace, setup, teardown),
		cmocka_unit_test_setup_teardown(t_cancel_signals_parents_first, setup, teardown),
		cmocka_unit_test_setup_teardown(t_empty_tree_drains_to_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(t_drain_bound_from_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(t_eof_in_the_batch_past_the_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(t_kill_bound_spares_the_dead, setup, teardown),
	};
	return cmocka_run_group_tests_name("task", tests, NULL, NULL);
}
