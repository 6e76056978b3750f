/* SPDX-License-Identifier: MIT */
/*
 * Layer "acct" (acct.c): taskstats accounting, and the one place where the
 * facts of a process's exit are merged: the connector's EXIT event, our
 * wait4(), the taskstats record and the pidfd.  It decides when a dead
 * process's exit is reported (to the sink) and what it says.  It reads and
 * writes nodes (tree) and reports through the sink; it calls neither
 * tracking nor tasks.
 */
#ifndef PTMON_ACCT_H
#define PTMON_ACCT_H

#include <stdbool.h>
#include <stdint.h>

struct node;
struct ptmon_monitor;
struct ptmon_task;
struct rusage;

/* Open the taskstats socket and watch it (PTMON_FEATURE_TASKSTATS), or say
 * why not in ptmon_monitor_taskstats_unavailable(). */
void acct_start(struct ptmon_monitor *m);
/* Read what taskstats has queued, so that exit records are in before the
 * exits they describe are reported. */
void acct_drain_taskstats(struct ptmon_monitor *m);
/* Fill @n's accounting from a record that came before @n was known. */
void acct_taskstats_lookup(struct ptmon_monitor *m, struct node *n);
/* The connector has been read empty: give the records that waited for
 * their process's FORK to the processes now known.  (Also for tests.) */
void acct_taskstats_settle(struct ptmon_monitor *m);

/* The facts, one source each.  None reports anything: the caller then
 * marks the node dead (track) and asks acct_report_exit(). */
/* The connector's EXIT event for @n (sets NODE_EXIT_EVENT; the status
 * when none is known). */
void acct_fact_exit_event(struct node *n, int exit_code);
/* Our wait4() of @n: its status, and its rusage unless taskstats gave
 * better.  Reads taskstats first, so that its record wins. */
void acct_fact_wait(struct ptmon_monitor *m, struct node *n, int status, const struct rusage *ru);
/* An attached root's status through its kept pidfd (PIDFD_INFO_EXIT),
 * when none is known.  -ENODATA while not reaped or before 6.15. */
int acct_fact_pidfd(struct node *n, int pidfd);
/* A wait status as ptmon_task_result() gives it: CLD_* and its value. */
void acct_status_code(int status, int *ret_code, int *ret_value);

/* Deliver @n's exit event when its facts are in (or now, when @force);
 * until then it waits on m->pending, at most 100 ms. */
void acct_report_exit(struct ptmon_monitor *m, struct node *n, bool force);
/* Force the exits waiting too long, or all of task @only's. */
void acct_flush_pending(struct ptmon_monitor *m, uint64_t now, struct ptmon_task *only);
/* When the first waiting exit is due, 0: none waits. */
uint64_t acct_pending_deadline(const struct ptmon_monitor *m);

#endif
