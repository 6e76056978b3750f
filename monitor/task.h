/* SPDX-License-Identifier: MIT */
/*
 * Layer "task" (task.c): a task's spawn and its way through the phases
 * RUNNING -> TERM (first signal, grace) -> KILL (SIGKILL sweeps until the
 * tree is empty) -> DRAIN (waiting for EOF) -> DONE.  task_step() is its
 * whole state machine: the monitor calls it after every batch of events
 * and when the timer fires, and it returns when it is due again.  It asks
 * tracking to walk and signal (through its group, tree.h), its streams for
 * their state, acct for the root's status.  struct ptmon_task is private
 * to task.c.
 */
#ifndef PTMON_TASK_H
#define PTMON_TASK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ptmon.h"

struct acct;
struct group;
struct loop;
struct sink;
struct tasks;
struct track;
struct tree;
struct watch;

/* The monitor's counters a task keeps from when it was done. */
struct task_counters {
	uint64_t events_lost, resyncs, foreign, pids_reused, pidfd_failures;
	uint64_t events_received;
};

/* What the monitor above does for its tasks, called with @ctx. */
struct task_services {
	void *ctx;
	/* Read the connector until every event queued before now has been
	 * handled (a tree found empty, a task about to close its record). */
	void (*read_events)(void *ctx);
	/* Arm the timer again: a call from outside the loop changed a task. */
	void (*rearm)(void *ctx);
	/* The monitor's counters now. */
	void (*counters)(void *ctx, struct task_counters *ret);
};

/* What the task layer is handed (tasks_new()). */
struct tasks_env {
	struct loop *loop;
	struct sink *sink;
	struct tree *tree;
	struct track *track;
	struct acct *acct;
	struct ptmon_monitor *monitor; /* opaque: only handed back (task_monitor()) */
	pid_t self;
	/* PTMON_MONITOR_RAISE_NOFILE: the limit a task's root gets back. */
	bool restore_nofile;
	uint64_t nofile_cur, nofile_max;
	struct task_services svc;
};

/* struct tasks (every task's shared state) and struct ptmon_task are
 * private to task.c. */
int tasks_new(struct tasks **ret, const struct tasks_env *env);
struct tasks *tasks_free(struct tasks *ts);
/* Tasks not done. */
unsigned tasks_running(const struct tasks *ts);
/* Why the last task went without a cgroup, NULL: it had one. */
const char *tasks_cgroup_unavailable(const struct tasks *ts);
/* ptmon_task_start() and ptmon_task_attach() (the monitor checks @ts). */
int task_start(struct tasks *ts, const struct ptmon_task_config *cfg, unsigned flags,
	       struct ptmon_task **ret);
int task_attach(struct tasks *ts, const struct ptmon_attach_config *cfg, unsigned flags,
		struct ptmon_task **ret);

/* Advance @t as far as it can go at @now: its deadlines, its root's exit,
 * an empty tree, its output read.  Returns its next deadline
 * (CLOCK_MONOTONIC ns), 0: none (waiting for events only, or done). */
uint64_t task_step(struct ptmon_task *t, uint64_t now);
/* What a handler of this batch saw (g->touched): act on the tree's and the
 * output's state now, before this round's reaping, signals and deadlines
 * (no deadline is looked at). */
void task_progress(struct ptmon_task *t);
/* The same deadline, without a step (for arming the timer from a call
 * outside the loop). */
uint64_t task_next_deadline(const struct ptmon_task *t);
/* ptmon got @signo (one of the monitor's cancel signals): a graceful
 * cancel the first time, at once the second. */
void task_cancel_for_signal(struct ptmon_task *t, int signo);
/* The front process (ptmon_monitor_set_front()) is gone: kill now. */
void task_front_died(struct ptmon_task *t, pid_t front);
/* The task's share of the tree. */
struct group *task_group(struct ptmon_task *t);
const struct group *task_group_const(const struct ptmon_task *t);
struct ptmon_monitor *task_monitor(const struct ptmon_task *t);
/* The cancel's first signal (the config's), and when the cancel began
 * (0: none), for what the process records say. */
int task_cancel_signal(const struct ptmon_task *t);
uint64_t task_cancel_ns(const struct ptmon_task *t);
/* ptmon_task_hold_records() is in force: its records are not dropped. */
bool task_holds_records(const struct ptmon_task *t);
/* The watched cgroup's cgroup.events fired (WATCH_CGROUP): acknowledge
 * it; the next step looks at "populated". */
void task_cgroup_event(struct watch *w);
/* Out of the monitor's list; then task_free() frees it. */
void task_unlink(struct ptmon_task *t);
void task_free(struct ptmon_task *t);

#endif
