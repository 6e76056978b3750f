/* SPDX-License-Identifier: MIT */
/*
 * Layer "acct" (acct.c): taskstats accounting, and the one place where the
 * facts of a process's exit are merged: the connector's EXIT event, our
 * wait4(), the taskstats record and the pidfd.  It decides when a dead
 * process's exit is reported (to the sink) and what it says.
 *
 * Its state (struct acct: the taskstats socket, the records that came
 * before their process, the exits that wait for their facts) is its own,
 * made by acct_new() from what it uses of the layers below (loop, sink,
 * tree, the connector's tree filter).  It reads and writes nodes (tree)
 * and reports through the sink; it calls neither tracking, nor tasks, nor
 * the monitor: what the monitor must act on (records dropped, exits
 * reported) it takes from acct_take_lost() and acct_take_exits().
 */
#ifndef PTMON_ACCT_H
#define PTMON_ACCT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ptmon.h"

struct acct;
struct cnproc;
struct loop;
struct node;
struct ptmon_task;
struct rusage;
struct sink;
struct tree;
struct tstats_record;

/* What acct uses of the layers below, for as long as it lives. */
struct acct_env {
	struct loop *loop; /* watches the taskstats socket */
	struct sink *sink; /* where exits are reported */
	struct tree *tree; /* the processes records are matched to */
	/* The connector whose eBPF tree filter the taskstats socket shares,
	 * NULL: none (then every exit record of the machine is read). */
	struct cnproc *tree_filter;
	/* The monitor's backend, read where it matters: fixed once the
	 * monitor is made (the unit tests switch it). */
	const enum ptmon_backend *backend;
	pid_t self;              /* ptmon: a record whose parent is it is ours */
	uint64_t wall_offset_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC */
};

/* Make the acct state and open the taskstats socket and watch it, or say
 * why not in acct_taskstats_unavailable().  -ENOMEM only: taskstats
 * missing is no error. */
int acct_new(struct acct **ret, const struct acct_env *env);
struct acct *acct_free(struct acct *a);
/* Why taskstats is not read, NULL: it is (PTMON_FEATURE_TASKSTATS). */
const char *acct_taskstats_unavailable(const struct acct *a);

/* Read what taskstats has queued, so that exit records are in before the
 * exits they describe are reported. */
void acct_drain_taskstats(struct acct *a);
/* Fill @n's accounting from a record that came before @n was known. */
void acct_taskstats_lookup(struct acct *a, struct node *n);
/* The connector has been read empty: give the records that waited for
 * their process's FORK to the processes now known.  (Also for tests.) */
void acct_taskstats_settle(struct acct *a);
/* How many reads of taskstats found records dropped (ENOBUFS) since the
 * last call: the monitor tells each running task of each. */
uint64_t acct_take_lost(struct acct *a);

/* The facts, one source each.  None reports anything: the caller then
 * marks the node dead (track) and asks acct_report_exit(). */
/* The connector's EXIT event for @n (sets NODE_EXIT_EVENT; the status
 * when none is known). */
void acct_fact_exit_event(struct node *n, int exit_code);
/* Our wait4() of @n: its status, and its rusage unless taskstats gave
 * better.  Reads taskstats first, so that its record wins. */
void acct_fact_wait(struct acct *a, struct node *n, int status, const struct rusage *ru);
/* An attached root's status through its kept pidfd (PIDFD_INFO_EXIT),
 * when none is known.  -ENODATA while not reaped or before 6.15. */
int acct_fact_pidfd(struct node *n, int pidfd);
/* A wait status as ptmon_task_result() gives it: CLD_* and its value. */
void acct_status_code(int status, int *ret_code, int *ret_value);

/* Deliver @n's exit event when its facts are in (or now, when @force);
 * until then it waits on acct's pending list, at most 100 ms. */
void acct_report_exit(struct acct *a, struct node *n, bool force);
/* Force the exits waiting too long, or all of task @only's, after reading
 * the taskstats socket to its end (bounded by what it can hold). */
void acct_flush_pending(struct acct *a, uint64_t now, const struct ptmon_task *only);
/* When the first waiting exit is due, 0: none waits. */
uint64_t acct_pending_deadline(const struct acct *a);
/* @n is no longer the tree's (a provisional node dropped): its exit, if
 * it waits, is never to be reported. */
void acct_forget(struct acct *a, struct node *n);
/* How many exits were reported since the last call (records_sweep()
 * counts them). */
uint64_t acct_take_exits(struct acct *a);

/* For the unit tests: the taskstats socket's fd, -1 without one; a record
 * put where one goes that came before its process (the ring) or that
 * names no process known yet (the park, see acct_taskstats_settle());
 * taskstats taken away (@off) and given back, as on a kernel without it. */
int acct_taskstats_fd(const struct acct *a);
void acct_test_ring(struct acct *a, const struct tstats_record *r);
void acct_test_park(struct acct *a, const struct tstats_record *r);
void acct_test_taskstats_off(struct acct *a, bool off);

#endif
