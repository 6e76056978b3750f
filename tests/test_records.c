/* SPDX-License-Identifier: MIT */
/*
 * What a long run keeps (monitor/records.c): a task that starts thousands
 * of short-lived processes, through libptmon with the connector backend, so
 * that every one of them is seen and its exit delivered.  Without a hold,
 * the records of exited processes are dropped once delivered: the number
 * kept stays bounded during the run and after it; with a hold every record
 * stays for the walk at the end; ptmon_task_free() releases them all.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ptmon.h"

#define PROCS 2000
#define BOUND 1000 /* records kept at any time without a hold */

struct seen {
	struct ptmon_monitor *m;
	uint64_t exits;
	uint64_t max_records;
	uint64_t forks_bad_parent; /* a FORK whose parent id is 0 or unknown */
};

static void on_event(const struct ptmon_event *ev, void *ud)
{
	struct seen *s = ud;
	uint64_t kept = ptmon_monitor_records(s->m);

	if (kept > s->max_records)
		s->max_records = kept;
	if (ev->type == PTMON_EVENT_EXIT)
		s->exits++;
	if (ev->type == PTMON_EVENT_FORK) {
		struct ptmon_process_info p = {.size = sizeof(p)};

		assert_int_equal(ptmon_process_get_info(ev->process, &p), 0);
		s->forks_bad_parent += p.parent_id == 0;
	}
}

static char why[256];

/* A monitor with the connector backend, or skip (not root, no connector). */
static struct ptmon_monitor *monitor_or_skip(struct seen *s)
{
	struct ptmon_monitor *m = NULL;
	int r = ptmon_monitor_new(&m, PTMON_BACKEND_CONNECTOR, 0);

	if (r < 0) {
		snprintf(why, sizeof(why), "connector backend unavailable: %s", strerror(-r));
		print_message("%s\n", why);
		skip();
	}
	s->m = m;
	ptmon_monitor_set_event_callback(m, on_event, s);
	return m;
}

static struct ptmon_task *run_many(struct ptmon_monitor *m, bool hold)
{
	static char *const argv[] = {
		"sh", "-c", "i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done", NULL};
	struct ptmon_task_config cfg;
	struct ptmon_task *t = NULL;

	ptmon_task_config_init(&cfg, sizeof(cfg));
	cfg.argv = argv;
	cfg.timeout_ns = 120ull * 1000000000ull;
	assert_int_equal(ptmon_task_start(m, &cfg, 0, &t), 0);
	if (hold)
		ptmon_task_hold_records(t);
	assert_int_equal(ptmon_monitor_run(m), 0);
	assert_true(ptmon_task_done(t));
	return t;
}

static int count(const struct ptmon_process *p, void *ud)
{
	(void)p;
	(*(uint64_t *)ud)++;
	return 0;
}

static void t_dropped_once_delivered(void **state)
{
	struct seen s = {0};
	struct ptmon_monitor *m = monitor_or_skip(&s);
	struct ptmon_task *t = run_many(m, false);
	struct ptmon_task_result res = {.size = sizeof(res)};
	uint64_t walked = 0;

	(void)state;
	assert_int_equal(ptmon_task_result(t, &res), 0);
	assert_int_equal(res.root_status, CLD_EXITED);
	assert_int_equal(res.root_value, 0);
	assert_true(res.processes >= PROCS + 1);
	assert_true(s.exits >= PROCS + 1);
	print_message("    %" PRIu64 " processes, at most %" PRIu64 " records kept, %" PRIu64
		      " at the end\n",
		      res.processes, s.max_records, ptmon_monitor_records(m));
	if (s.max_records >= BOUND || ptmon_monitor_records(m) >= BOUND)
		fail_msg("%" PRIu64 " records kept (at most %" PRIu64 ") for %" PRIu64
			 " processes: exited ones are not dropped",
			 ptmon_monitor_records(m), s.max_records, res.processes);
	/* The root's record stays; the walk sees what is kept. */
	assert_non_null(ptmon_task_find_process(t, res.root_pid));
	assert_int_equal(ptmon_task_foreach_process(t, count, &walked), 0);
	assert_true(walked >= 1 && walked <= ptmon_monitor_records(m));
	assert_int_equal(s.forks_bad_parent, 0);
	assert_null(ptmon_task_free(t));
	assert_int_equal(ptmon_monitor_records(m), 0);
	ptmon_monitor_free(m);
}

static void t_held_for_the_end(void **state)
{
	struct seen s = {0};
	struct ptmon_monitor *m = monitor_or_skip(&s);
	struct ptmon_task *t = run_many(m, true);
	struct ptmon_task_result res = {.size = sizeof(res)};
	uint64_t walked = 0;

	(void)state;
	assert_int_equal(ptmon_task_result(t, &res), 0);
	assert_int_equal(ptmon_task_foreach_process(t, count, &walked), 0);
	assert_int_equal(walked, res.processes);
	assert_int_equal(ptmon_monitor_records(m), res.processes);
	/* Released after the run: the next sweep may drop them, not earlier
	 * than a dispatch. */
	ptmon_task_release_records(t);
	assert_int_equal(ptmon_monitor_records(m), res.processes);
	assert_null(ptmon_task_free(t));
	assert_int_equal(ptmon_monitor_records(m), 0);
	ptmon_monitor_free(m);
}

static void t_free_refuses_running(void **state)
{
	static char *const argv[] = {"sleep", "1000", NULL};
	struct ptmon_monitor *m = NULL;
	struct ptmon_task_config cfg;
	struct ptmon_task *t = NULL;

	(void)state;
	assert_null(ptmon_task_free(NULL));
	assert_int_equal(ptmon_monitor_new(&m, PTMON_BACKEND_PROCFS, 0), 0);
	ptmon_task_config_init(&cfg, sizeof(cfg));
	cfg.argv = argv;
	assert_int_equal(ptmon_task_start(m, &cfg, 0, &t), 0);
	assert_ptr_equal(ptmon_task_free(t), t);
	assert_int_equal(ptmon_task_cancel(t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_NOW), 0);
	assert_int_equal(ptmon_monitor_run(m), 0);
	assert_null(ptmon_task_free(t));
	ptmon_monitor_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_dropped_once_delivered),
		cmocka_unit_test(t_held_for_the_end),
		cmocka_unit_test(t_free_refuses_running),
	};

	return cmocka_run_group_tests_name("records", tests, NULL, NULL);
}
