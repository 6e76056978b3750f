/* SPDX-License-Identifier: MIT */
/*
 * Layer "task" (task.c): a task's spawn and its way through the phases
 * RUNNING -> TERM (first signal, grace) -> KILL (SIGKILL sweeps until the
 * tree is empty) -> DRAIN (waiting for EOF) -> DONE, with its deadlines.
 * It asks tracking to walk and signal, streams for their state, acct for
 * the root's status; the monitor calls it after every batch.
 */
#ifndef PTMON_TASK_H
#define PTMON_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include "cgroup.h"
#include "ptmon.h"
#include "stream.h"
#include "tree.h"

enum task_phase {
	PHASE_RUNNING,  /* nothing asked */
	PHASE_TERM,     /* first signal sent, grace running */
	PHASE_KILL,     /* SIGKILL sweeps until the tree is empty */
	PHASE_DRAIN,    /* tree empty, waiting for EOF */
	PHASE_DONE,
};

struct ptmon_task {
	struct ptmon_monitor *monitor;
	struct ptmon_task *next;
	struct ptmon_task_config cfg;
	char **argv;             /* our copy */
	enum task_phase phase;
	struct node *root;
	struct node_list live;   /* processes of this task not known dead */
	bool root_reaped;
	int root_code;           /* CLD_* */
	int root_value;
	enum ptmon_cancel_reason cancel_reason;
	int cancel_signal;
	uint64_t started_ns;
	uint64_t cancel_ns;
	uint64_t empty_ns;
	uint64_t eof_ns;
	uint64_t deadline_timeout;
	uint64_t deadline_grace;
	uint64_t deadline_drain;
	uint64_t deadline_sweep;
	uint64_t deadline_giveup;  /* the end of the kill phase's bound */
	uint64_t sweep_interval;
	unsigned blind_sweeps;     /* kill sweeps that found no live process, yet children */
	uint64_t survivors;        /* alive when the kill phase gave up */
	unsigned record_holds;     /* ptmon_task_hold_records() minus releases */
	uint64_t processes;
	uint64_t signalled;
	uint64_t killed;
	bool drain_timed_out;
	bool leftovers_noticed;
	/* The monitor's counters when the task was done, for its result. */
	struct {
		uint64_t events_lost, resyncs, foreign, pids_reused, pidfd_failures;
		uint64_t events_received;
	} final;
	struct stream out;
	struct stream err;
	struct task_cgroup cg;
	/* ptmon_task_attach(): a tree ptmon did not start.  No subreaper,
	 * no output; the root's status comes from its EXIT event or from
	 * root_exit_fd (a pidfd kept for PIDFD_INFO_EXIT). */
	bool attached;
	int root_exit_fd;
	/* `watch --cgroup`: cg is the user's (cg.borrowed) and defines the
	 * tree; cgroup.events says when "populated" changes. */
	int cg_events_fd;
	struct watch cg_watch;
};

int task_spawn(struct ptmon_monitor *m, struct ptmon_task *t);
/* A watched cgroup's processes not tracked yet join the tree (a resync's
 * part).  Returns how many joined, or -errno. */
int task_cgroup_scan(struct ptmon_task *t, bool first);
/* Signal @n as its task's phase requires; called for every newly adopted
 * process and by sweeps.  (Called by track.c on adoption: the one arrow
 * that still points up; see docs/internals.md.) */
void task_signal_node(struct ptmon_task *t, struct node *n);
/* Re-evaluate a task after something happened to it. */
void task_update(struct ptmon_task *t);
void task_on_deadlines(struct ptmon_task *t, uint64_t now);
uint64_t task_next_deadline(const struct ptmon_task *t);
void task_free(struct ptmon_task *t);

#endif
