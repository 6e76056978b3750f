/* SPDX-License-Identifier: MIT */
/*
 * Layer "acct": accounting, and the merge of the facts of an exit.  A
 * process's end is told by up to four sources, in no fixed order: the
 * connector's EXIT event (its status), our own wait4() (status and rusage,
 * for the children we reap), its taskstats record (accounting, and the
 * status when nothing else said it) and, for an attached root, its pidfd
 * (PIDFD_INFO_EXIT, 6.15+).  This file alone decides what a process's
 * record says about its end, and when its PTMON_EVENT_EXIT goes to the
 * sink: once the facts are in, or when waiting longer is pointless.
 */
#include "acct.h"
#include "loop.h"
#include "sink.h"
#include "sys.h"
#include "taskstats.h"
#include "tree.h"
#include "watch.h"
#include "cnproc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* ---- the state ----------------------------------------------------------------- */

#define TS_RING 256
#define TS_PARK 1024

struct acct {
	struct acct_env env;
	struct tstats *ts;     /* NULL: taskstats is not read */
	struct tstats *ts_off; /* acct_test_taskstats_off() keeps it here */
	struct watch ts_watch;
	const char *ts_unavailable;    /* acct_taskstats_unavailable() */
	struct tstats_record *ts_ring; /* records that came before their process */
	size_t ts_ring_next;
	struct tstats_record *ts_park; /* records of no known process, see park_record() */
	size_t ts_park_next;
	struct node_list pending; /* dead processes whose exit waits for its facts */
	uint64_t lost;            /* reads that found records dropped, untaken */
	uint64_t exits;           /* exits reported, untaken */
};

/* ---- taskstats ------------------------------------------------------------------ */

#define TASKSTATS_RCVBUF (4u * 1024u * 1024u)

#define TS_AGROUP 0x20 /* <linux/acct.h>: the last task of its thread group */

/* The process a per-task record belongs to (records before version 12
 * carry no tgid: then the task is taken for its process). */
static pid_t record_tgid(const struct tstats_record *r)
{
	return r->ac_tgid ? r->ac_tgid : r->pid;
}

/*
 * A record's CPU time, split into user and system.  ac_utime and ac_stime
 * are samples taken at the scheduler tick: under contention a process
 * that ran 300 ms was seen credited with 36 ms.  The record also carries
 * the exact time the task ran (cpu_run_virtual_ns, the scheduler's
 * sum_exec_runtime); as getrusage() does (cputime_adjust()), the samples
 * then only say how that time splits.  Without it (a kernel without delay
 * accounting) the samples are all there is.
 */
static void record_cpu(const struct tstats_record *r, uint64_t *user_us, uint64_t *sys_us)
{
	uint64_t run = r->cpu_run_virtual_ns / 1000, u = r->utime_us, s = r->stime_us;
	if (!r->cpu_run_virtual_ns) {
		*user_us = u;
		*sys_us = s;
		return;
	}
	uint64_t sys = 0;
	if (u == 0 && s > 0)
		sys = run;
	else if (s > 0)
		sys = (uint64_t)((long double)s * (long double)run / (long double)(u + s));
	if (sys > run)
		sys = run;
	*sys_us = sys;
	*user_us = run - sys;
}

/*
 * A process's figures are the sum of its tasks' records: each thread's
 * exit sends one.  The group record (AGGR_TGID) is not used: it carries no
 * exit code, memory or I/O, and CPU times only on recent kernels.  The
 * record of the group's last task (AGROUP) completes the process and says
 * how it ended.
 */
static void apply_record(struct node *n, const struct tstats_record *r)
{
	/* wait4's figures were taken for want of a record (a node born at
	 * its reaping, whose record waited in the ring or the park): the
	 * record replaces them, it is not added to them. */
	if (n->acct == PTMON_ACCT_RUSAGE)
		n->utime_us = n->stime_us = n->maxrss_kb = 0;
	n->acct = PTMON_ACCT_TASKSTATS;
	/* Threads are counted here, from their exit records: the connector's
	 * thread events are filtered out in the kernel. */
	if (r->pid != record_tgid(r))
		n->threads++;
	else if (r->comm[0])
		/* The main thread's name as it died: the process's last name,
		 * true even where ptmon saw neither its exec nor its renaming
		 * (a fork learned of late copies the parent's). */
		snprintf(n->comm, sizeof(n->comm), "%.15s", r->comm);
	uint64_t user_us, sys_us;
	record_cpu(r, &user_us, &sys_us);
	n->utime_us += user_us;
	n->stime_us += sys_us;
	n->rchar += r->read_char;
	n->wchar += r->write_char;
	if (r->hiwater_rss_kb > n->maxrss_kb)
		n->maxrss_kb = r->hiwater_rss_kb;
	if (!(r->flag & TS_AGROUP))
		return;
	n->flags |= NODE_ACCT_DONE;
	if (!(n->flags & NODE_EXIT_KNOWN)) {
		n->status = (int)r->exitcode;
		n->flags |= NODE_EXIT_KNOWN;
	}
}

/* Is @r, a record for @n's pid, about @n and not about another owner of
 * the number?  Its start must be close to when ptmon learned of @n (a
 * walk learns of a process any time after its start). */
static bool record_fits(const struct acct *a, const struct node *n, const struct tstats_record *r)
{
	uint64_t start_s = (n->start_ns + a->env.wall_offset_ns) / 1000000000ull;
	if (r->btime_s > start_s + 2)
		return false;
	return (n->flags & NODE_WALKED) || r->btime_s + 2 >= start_s;
}

/* A record whose process is ours but not in the tree yet (its FORK event
 * still queued, or lost): keep recent ones whose parent is ours, for a
 * node born late (an orphan ptmon reaps) to find. */
static void keep_record(struct acct *a, const struct tstats_record *r)
{
	struct node *p = tree_lookup(a->env.tree, r->ac_ppid);
	if (r->ac_ppid != a->env.self && !p)
		return;
	a->ts_ring[a->ts_ring_next++ % TS_RING] = *r;
}

void acct_taskstats_lookup(struct acct *a, struct node *n)
{
	if (!a->ts || (n->flags & NODE_ACCT_DONE))
		return;
	size_t count = a->ts_ring_next < TS_RING ? a->ts_ring_next : TS_RING;
	for (size_t i = 1; i <= count; i++) {
		const struct tstats_record *r = &a->ts_ring[(a->ts_ring_next - i) % TS_RING];
		if (record_tgid(r) == n->pid && (r->flag & TS_AGROUP) && record_fits(a, n, r)) {
			apply_record(n, r);
			return;
		}
	}
}

/*
 * A record is read from its own socket, in no order with the connector's.
 * The kernel queues a process's FORK event (copy_process()) before its
 * exit record (do_exit()), and its parent's FORK before its own: so a
 * record that names no process ptmon knows, and a parent it does not know
 * either, may be of a process whose FORK (or whose parent's) is still in
 * the connector's queue.  It waits here until the connector has been read
 * empty once after it came; by then that FORK has been handled.  Records of
 * the rest of the machine pass through too, so the wait is bounded:
 * TS_PARK records, the oldest dropped first.
 */
static void park_record(struct acct *a, const struct tstats_record *r)
{
	if (!a->ts_park || *a->env.backend != PTMON_BACKEND_CONNECTOR) {
		keep_record(a, r);
		return;
	}
	a->ts_park[a->ts_park_next++ % TS_PARK] = *r;
}

static int on_record(struct acct *a, const struct tstats_record *r, bool settle)
{
	if (r->is_tgid)
		return 0;
	struct node *n = tree_lookup(a->env.tree, record_tgid(r));
	/* A record for a dead process of ours, or for a thread of a live
	 * one; a live process that is not the record's is a later owner of
	 * the number. */
	bool thread = r->pid != record_tgid(r) && !(r->flag & TS_AGROUP);
	/* A dead node's pid may be a stranger's by now (a storm past
	 * pid_max): the record's start must match. */
	bool stranger = n && !thread && !(n->flags & NODE_ALIVE) && !record_fits(a, n, r);
	if (!n && !settle) {
		park_record(a, r);
		return 0;
	}
	if (!n || stranger || (n->flags & NODE_EXIT_EMITTED)) {
		keep_record(a, r);
		return 0;
	}
	if (!thread && (n->flags & NODE_ALIVE) && n->pidfd >= 0 &&
	    util_pidfd_exited(n->pidfd) == 0) {
		/* About an earlier owner of the pid, or about this process
		 * between its record and its death: do_exit() sends the
		 * record before exit_notify() makes the pidfd readable, and a
		 * ptmon that reads it in between sees the process alive.
		 * Kept for the lookup at its death when its start fits and it
		 * names the parent ptmon knows, even one that is not ours (an
		 * attached root's); an earlier owner of the pid, read late
		 * (a storm past pid_max), would also fit a walked node. */
		if (record_fits(a, n, r) && r->ac_ppid == node_parent_pid(n))
			a->ts_ring[a->ts_ring_next++ % TS_RING] = *r;
		else
			keep_record(a, r);
		return 0;
	}
	apply_record(n, r);
	acct_report_exit(a, n, false);
	return 0;
}

static int on_taskstats(const struct tstats_record *r, void *userdata)
{
	return on_record(userdata, r, false);
}

void acct_taskstats_settle(struct acct *a)
{
	if (!a->ts_park)
		return;
	size_t count = a->ts_park_next < TS_PARK ? a->ts_park_next : TS_PARK;
	for (size_t i = count; i > 0; i--)
		on_record(a, &a->ts_park[(a->ts_park_next - i) % TS_PARK], true);
	a->ts_park_next = 0;
}

void acct_drain_taskstats(struct acct *a)
{
	bool lost = false;
	if (!a->ts)
		return;
	tstats_receive(a->ts, on_taskstats, a, &lost);
	/* Accounting only: tracking does not depend on it.  Which tasks to
	 * tell is the monitor's to know (acct_take_lost()). */
	if (lost)
		a->lost++;
}

/*
 * Read the socket to its end, not one batch: for an exit about to be
 * reported without its record.  That record, if the kernel sent it, is
 * queued already (do_exit() sends it before exit_notify()), but without
 * the tree filter (the procfs backend; no eBPF) the socket also queues
 * every other exit of the machine, and under an exit storm elsewhere more
 * than a batch of them can be ahead of it.  Records keep coming meanwhile,
 * so the bound is what the socket can hold: the kernel doubles the size
 * asked (TASKSTATS_RCVBUF) and charges each queued record at least 512
 * bytes (struct taskstats alone is over 300), so once that many have been
 * read, every record queued before this call has been.
 */
#define TS_QUEUE_MAX (2u * TASKSTATS_RCVBUF / 512u + TSTATS_RECEIVE_BATCH)

static void drain_queued(struct acct *a)
{
	if (!a->ts)
		return;
	/* With the connector, a record of no process known yet is parked
	 * until the connector has been read empty (park_record()): a deep
	 * read here would push the machine's records through the park's
	 * TS_PARK slots and drop ours.  One batch, as every round reads. */
	if (*a->env.backend == PTMON_BACKEND_CONNECTOR) {
		acct_drain_taskstats(a);
		return;
	}
	/* At most a batch a read: TS_QUEUE_MAX records at most. */
	const struct tstats_stats *st = tstats_get_stats(a->ts);
	for (unsigned i = 0; i < TS_QUEUE_MAX / TSTATS_RECEIVE_BATCH; i++) {
		uint64_t before = st->datagrams + st->overruns, lost = a->lost;
		acct_drain_taskstats(a);
		/* Fewer than a batch: it stopped at EAGAIN, or at an
		 * overrun (ENOBUFS ends a batch early; the records queued
		 * after it are still to be read). */
		if (st->datagrams + st->overruns - before < TSTATS_RECEIVE_BATCH && a->lost == lost)
			return;
	}
}

uint64_t acct_take_lost(struct acct *a)
{
	uint64_t lost = a->lost;
	a->lost = 0;
	return lost;
}

static void start_taskstats(struct acct *a)
{
	a->ts_ring = calloc(TS_RING, sizeof(*a->ts_ring));
	a->ts_park = calloc(TS_PARK, sizeof(*a->ts_park));
	if (!a->ts_ring || !a->ts_park) {
		a->ts_unavailable = "out of memory";
		return;
	}
	int r = tstats_open(&a->ts, TASKSTATS_RCVBUF, 0);
	if (r < 0) {
		a->ts_unavailable = r == -ENOENT ? "the kernel has no taskstats"
						 : "taskstats registration refused";
		return;
	}
	/* The exit records of the whole machine, unless the tree filter
	 * drops the others' (an idle ptmon would wake on each). */
	if (a->env.tree_filter)
		(void)cnproc_tree_filter_taskstats(a->env.tree_filter, tstats_get_fd(a->ts));
	a->ts_watch.kind = WATCH_TASKSTATS;
	if (loop_watch_add(a->env.loop, tstats_get_fd(a->ts), EPOLLIN, &a->ts_watch) < 0) {
		a->ts = tstats_free(a->ts);
		a->ts_unavailable = "cannot watch the taskstats socket";
		return;
	}
}

int acct_new(struct acct **ret, const struct acct_env *env)
{
	struct acct *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->env = *env;
	start_taskstats(a);
	*ret = a;
	return 0;
}

struct acct *acct_free(struct acct *a)
{
	if (!a)
		return NULL;
	/* Closing the socket takes it out of the epoll set. */
	tstats_free(a->ts);
	tstats_free(a->ts_off);
	free(a->ts_ring);
	free(a->ts_park);
	free(a);
	return NULL;
}

const char *acct_taskstats_unavailable(const struct acct *a)
{
	return a->ts_unavailable;
}

int acct_taskstats_fd(const struct acct *a)
{
	return a->ts ? tstats_get_fd(a->ts) : -1;
}

void acct_test_ring(struct acct *a, const struct tstats_record *r)
{
	a->ts_ring[a->ts_ring_next++ % TS_RING] = *r;
}

void acct_test_park(struct acct *a, const struct tstats_record *r)
{
	a->ts_park[a->ts_park_next++ % TS_PARK] = *r;
}

void acct_test_taskstats_off(struct acct *a, bool off)
{
	if (off && a->ts) {
		a->ts_off = a->ts;
		a->ts = NULL;
	} else if (!off && a->ts_off) {
		a->ts = a->ts_off;
		a->ts_off = NULL;
	}
}

/* ---- the facts, one source each ------------------------------------------------ */

/* The EXIT event's status counts when nothing earlier said it (wait4's is
 * the same; taskstats' came from the same task_struct). */
void acct_fact_exit_event(struct node *n, int exit_code)
{
	/* Even when its exit was already reported (taskstats came first):
	 * on_fork() relies on this mark. */
	n->flags |= NODE_EXIT_EVENT;
	if (n->flags & (NODE_EXIT_EMITTED | NODE_EXIT_KNOWN))
		return;
	n->status = exit_code;
	n->flags |= NODE_EXIT_KNOWN;
}

void acct_fact_wait(struct acct *a, struct node *n, int status, const struct rusage *ru)
{
	n->flags |= NODE_REAPED | NODE_EXIT_KNOWN;
	n->status = status;
	acct_drain_taskstats(a);
	if (ru && n->acct == PTMON_ACCT_NONE) {
		n->acct = PTMON_ACCT_RUSAGE;
		n->utime_us =
			(uint64_t)ru->ru_utime.tv_sec * 1000000u + (uint64_t)ru->ru_utime.tv_usec;
		n->stime_us =
			(uint64_t)ru->ru_stime.tv_sec * 1000000u + (uint64_t)ru->ru_stime.tv_usec;
		n->maxrss_kb = (uint64_t)ru->ru_maxrss;
	}
}

int acct_fact_pidfd(struct node *n, int pidfd)
{
	int status = 0;
	if (n->flags & NODE_EXIT_KNOWN)
		return 0;
	int r = util_pidfd_exit_status(pidfd, &status);
	if (r < 0)
		return r;
	n->status = status;
	n->flags |= NODE_EXIT_KNOWN;
	return 0;
}

void acct_status_code(int status, int *ret_code, int *ret_value)
{
	if (WIFEXITED(status)) {
		*ret_code = CLD_EXITED;
		*ret_value = WEXITSTATUS(status);
	} else {
		*ret_code = WCOREDUMP(status) ? CLD_DUMPED : CLD_KILLED;
		*ret_value = WTERMSIG(status);
	}
}

/* ---- the exit event, once ------------------------------------------------------ */

static void emit_exit(struct acct *a, struct node *n)
{
	if (n->flags & NODE_EXIT_EMITTED)
		return;
	n->flags |= NODE_EXIT_EMITTED;
	a->exits++;
	event_node(a->env.sink, PTMON_EVENT_EXIT, n);
}

uint64_t acct_take_exits(struct acct *a)
{
	uint64_t exits = a->exits;
	a->exits = 0;
	return exits;
}

/* Report the end of @n once what there is to know has come in: its status
 * (the EXIT event, our wait4, or taskstats), and its taskstats record.
 * The two arrive on different sockets, in no fixed order with the pidfd
 * turning readable: until both are in, the exit waits on a->pending, at
 * most EXIT_WAIT_NS, and the end of the task flushes what still waits. */
#define EXIT_WAIT_NS (100ull * 1000000ull)

static bool exit_complete(const struct acct *a, const struct node *n)
{
	bool status = (n->flags & NODE_EXIT_KNOWN) || *a->env.backend != PTMON_BACKEND_CONNECTOR;
	bool acct = (n->flags & NODE_ACCT_DONE) || !a->ts;
	return status && acct;
}

void acct_forget(struct acct *a, struct node *n)
{
	if (n->flags & NODE_EXIT_PENDING) {
		n->flags &= ~NODE_EXIT_PENDING;
		node_list_del(&a->pending, n);
	}
}

void acct_report_exit(struct acct *a, struct node *n, bool force)
{
	if (n->flags & (NODE_ALIVE | NODE_EXIT_EMITTED | NODE_FOREIGN | NODE_PROVISIONAL))
		return;
	acct_taskstats_lookup(a, n);
	if (!force && !exit_complete(a, n)) {
		if (!(n->flags & NODE_EXIT_PENDING)) {
			n->flags |= NODE_EXIT_PENDING;
			node_list_add(&a->pending, n);
		}
		return;
	}
	acct_forget(a, n);
	emit_exit(a, n);
}

void acct_flush_pending(struct acct *a, uint64_t now, const struct ptmon_task *only)
{
	/* A record is queued before its process's pidfd turns readable
	 * (do_exit() sends it ahead of exit_notify()): an exit that waited
	 * past the bound because ptmon itself did not run may have it in the
	 * socket, behind others.  Read them all before reporting without it. */
	uint64_t due = acct_pending_deadline(a);
	if (only || (due && due <= now))
		drain_queued(a);
	struct node *n = a->pending.head;
	while (n) {
		struct node *next = n->live_next;
		if ((only && node_task(n) == only) || (!only && n->end_ns + EXIT_WAIT_NS <= now))
			acct_report_exit(a, n, true);
		n = next;
	}
}

uint64_t acct_pending_deadline(const struct acct *a)
{
	uint64_t d = 0;
	for (const struct node *n = a->pending.head; n; n = n->live_next)
		if (!d || n->end_ns + EXIT_WAIT_NS < d)
			d = n->end_ns + EXIT_WAIT_NS;
	return d;
}
