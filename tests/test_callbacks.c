/* SPDX-License-Identifier: MIT */
/*
 * Where callbacks run (ptmon.h, ptmon_monitor_set_event_callback()): only
 * from ptmon_monitor_dispatch() and ptmon_monitor_run(), never inside
 * ptmon_task_start(), _cancel() or _kill(), and a callback may call
 * ptmon_task_cancel() and ptmon_task_kill() without a callback running
 * inside it.  Public API only, real processes, the procfs backend (no
 * privilege needed for it; a cgroup is not asked for).
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
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "ptmon.h"

struct seen {
	struct ptmon_task *t;
	int inside;         /* > 0 while the test is inside a ptmon_task_* call */
	int depth;          /* callbacks running now */
	unsigned misplaced; /* callbacks that ran inside a ptmon_task_* call */
	unsigned nested;    /* callbacks that ran inside another callback */
	unsigned starts, signals, exits, dones, notices;
	uint64_t last_mono;
	bool out_of_order;
	/* t_reentrant: what the callback does */
	bool act;
	int cancels, kills;   /* calls made from callbacks */
	int kill_result;      /* the first ptmon_task_kill() from a callback */
	char start_argv0[32]; /* ev->process as START saw it */
};

static void enter(struct seen *s)
{
	s->misplaced += s->inside > 0;
	s->nested += s->depth > 0;
	s->depth++;
}

/* Act from inside the callback: each call would have delivered its
 * SIGNAL events right here, nested, before callbacks ran from dispatch
 * only. */
static void act(struct seen *s, const struct ptmon_event *ev)
{
	if (ev->type == PTMON_EVENT_START) {
		s->kill_result = ptmon_task_kill(s->t, ev->pid, SIGCONT, 0);
		s->kills++;
		assert_int_equal(
			ptmon_task_cancel(s->t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_GRACEFUL), 0);
		s->cancels++;
	} else if (ev->type == PTMON_EVENT_SIGNAL && ev->signal == SIGTERM && s->cancels == 1) {
		/* A second cancel, now: straight to SIGKILL. */
		assert_int_equal(ptmon_task_cancel(s->t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_NOW),
				 0);
		s->cancels++;
	}
}

static void on_event(const struct ptmon_event *ev, void *ud)
{
	struct seen *s = ud;
	enter(s);
	if (ev->mono_ns < s->last_mono)
		s->out_of_order = true;
	s->last_mono = ev->mono_ns;
	switch (ev->type) {
	case PTMON_EVENT_START: {
		struct ptmon_process_info p = {.size = sizeof(p)};
		s->starts++;
		if (ptmon_process_get_info(ev->process, &p) == 0 && p.argv)
			snprintf(s->start_argv0, sizeof(s->start_argv0), "%s", p.argv);
		break;
	}
	case PTMON_EVENT_SIGNAL:
		s->signals++;
		break;
	case PTMON_EVENT_EXIT:
		s->exits++;
		break;
	case PTMON_EVENT_DONE:
		s->dones++;
		break;
	default:
		break;
	}
	if (s->act)
		act(s, ev);
	s->depth--;
}

static void on_notice(struct ptmon_task *t, enum ptmon_notice_kind kind, const char *text, void *ud)
{
	struct seen *s = ud;
	(void)t;
	(void)kind;
	(void)text;
	enter(s);
	s->notices++;
	s->depth--;
}

static struct ptmon_monitor *monitor(struct seen *s)
{
	struct ptmon_monitor *m = NULL;
	int r = ptmon_monitor_new(&m, PTMON_BACKEND_PROCFS, 0);
	if (r < 0) {
		print_message("no monitor: %s\n", strerror(-r));
		skip();
	}
	ptmon_monitor_set_event_callback(m, on_event, s);
	ptmon_monitor_set_notice(m, on_notice, s);
	return m;
}

/* A root with two children, so that a cancel signals three processes;
 * it says "ready" on @out_fd once both are forked. */
static int start(struct ptmon_monitor *m, struct seen *s, int out_fd)
{
	static char *const argv[] = {"sh", "-c", "sleep 1000 & sleep 1000 & echo ready; wait",
				     NULL};
	struct ptmon_task_config cfg;
	ptmon_task_config_init(&cfg, sizeof(cfg));
	cfg.argv = argv;
	cfg.cgroup = PTMON_CGROUP_OFF;
	cfg.stdout_fd = out_fd;
	cfg.stderr_fd = -1; /* nowhere: read and discarded */
	s->inside++;
	int r = ptmon_task_start(m, &cfg, 0, &s->t);
	s->inside--;
	return r;
}

/* Dispatch until the task's "ready" comes through ptmon to @rfd. */
static void wait_ready(struct ptmon_monitor *m, int rfd)
{
	char buf[16];
	struct pollfd p[2] = {
		{.fd = ptmon_monitor_get_fd(m), .events = POLLIN},
		{.fd = rfd, .events = POLLIN},
	};
	for (;;) {
		assert_true(poll(p, 2, 30000) > 0);
		if (p[1].revents) {
			assert_true(read(rfd, buf, sizeof(buf)) > 0);
			return;
		}
		assert_true(ptmon_monitor_dispatch(m) >= 0);
	}
}

/* Nothing runs inside ptmon_task_start(), _kill() or _cancel(): what they
 * cause is queued, the monitor's fd turns readable, and the next dispatch
 * delivers it. */
static void t_not_inside_calls(void **state)
{
	struct seen s = {0};
	struct ptmon_monitor *m = monitor(&s);
	int out[2];
	(void)state;
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(start(m, &s, out[1]), 0);
	close(out[1]);
	assert_int_equal(s.starts, 0); /* queued, not delivered inside */
	struct pollfd p = {.fd = ptmon_monitor_get_fd(m), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 10000), 1); /* the loop was woken for it */
	assert_true(ptmon_monitor_dispatch(m) >= 0);
	assert_int_equal(s.starts, 1);
	assert_string_equal(s.start_argv0, "sh");
	wait_ready(m, out[0]);

	s.inside++;
	int r = ptmon_task_kill(s.t, ptmon_task_root_pid(s.t), SIGCONT, 0);
	s.inside--;
	assert_int_equal(r, 1);
	assert_int_equal(s.signals, 0);
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_true(ptmon_monitor_dispatch(m) >= 0);
	assert_int_equal(s.signals, 1);

	s.inside++;
	assert_int_equal(ptmon_task_cancel(s.t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_GRACEFUL), 0);
	s.inside--;
	assert_int_equal(s.signals, 1);
	assert_int_equal(ptmon_monitor_run(m), 0);
	assert_true(ptmon_task_done(s.t));
	/* The cancel signalled the root and its two children. */
	assert_true(s.signals >= 1 + 3);
	assert_int_equal(s.dones, 1);
	assert_true(s.exits >= 3);
	assert_int_equal(s.misplaced, 0);
	assert_int_equal(s.nested, 0);
	assert_false(s.out_of_order);
	m = ptmon_monitor_free(m);
	close(out[0]);
}

/* A callback that kills and cancels: no callback runs inside the one that
 * calls, the calls take effect, and the task ends as cancelled. */
static void t_reentrant(void **state)
{
	struct seen s = {.act = true};
	struct ptmon_monitor *m = monitor(&s);
	struct ptmon_task_result res = {.size = sizeof(res)};
	(void)state;
	assert_int_equal(start(m, &s, -1), 0);
	assert_int_equal(ptmon_monitor_run(m), 0);
	assert_true(ptmon_task_done(s.t));
	assert_int_equal(s.nested, 0);
	assert_int_equal(s.misplaced, 0);
	assert_int_equal(s.kills, 1);
	assert_int_equal(s.kill_result, 1);
	assert_int_equal(s.cancels, 2);
	assert_false(s.out_of_order);
	assert_int_equal(ptmon_task_result(s.t, &res), 0);
	assert_int_equal(res.cancel_reason, PTMON_CANCEL_REQUEST);
	assert_true(res.signalled >= 1);
	assert_int_equal(res.survivors, 0);
	assert_int_equal(s.dones, 1);
	m = ptmon_monitor_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_not_inside_calls),
		cmocka_unit_test(t_reentrant),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
