/* SPDX-License-Identifier: MIT */
/*
 * The merge of an exit's facts (monitor/acct.c) on crafted input: a node
 * for a pid no process can have (above pid_max), the facts handed to acct
 * in each order a loaded machine produces them (the connector's EXIT event,
 * our wait4(), the taskstats record, an attached root's pidfd), and the
 * PTMON_EVENT_EXIT that the sink delivers, checked once the queue is
 * flushed.  The monitor is a real one (procfs backend) whose backend field
 * is then set to the connector's, so that an exit waits for its status.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"
#include "taskstats.h"

#define FAKE_PID 0x7ffffff0 /* above any pid_max: no record names it */
#define TS_AGROUP 0x20

struct fixture {
	struct ptmon_monitor *m;
	struct node *n;
	unsigned exits;
	struct ptmon_process_info last; /* as the last EXIT event said */
};

static void on_event(const struct ptmon_event *ev, void *ud)
{
	struct fixture *f = ud;
	if (ev->type != PTMON_EVENT_EXIT)
		return;
	f->exits++;
	f->last.size = sizeof(f->last);
	assert_int_equal(ptmon_process_get_info(ev->process, &f->last), 0);
}

static int setup(void **state)
{
	static struct fixture f;
	f = (struct fixture){0};
	if (ptmon_monitor_new(&f.m, PTMON_BACKEND_PROCFS, 0) < 0)
		return -1;
	ptmon_monitor_set_event_callback(f.m, on_event, &f);
	f.m->backend = PTMON_BACKEND_CONNECTOR; /* an exit waits for its status */
	f.n = tree_add(&f.m->tree, FAKE_PID);
	if (!f.n)
		return -1;
	f.n->pidfd = -1;
	f.n->start_ns = util_now_ns();
	f.n->end_ns = f.n->start_ns;
	f.n->argv_src = PTMON_ARGV_UNKNOWN;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	f->m->backend = PTMON_BACKEND_PROCFS;
	f->m = ptmon_monitor_free(f->m);
	return 0;
}

/* The tests that give a taskstats record need the socket open. */
static void need_taskstats(struct fixture *f)
{
	if (!(ptmon_monitor_features(f->m) & PTMON_FEATURE_TASKSTATS)) {
		print_message("taskstats unavailable: %s\n",
			      ptmon_monitor_taskstats_unavailable(f->m));
		skip();
	}
}

/* The record of @n's last task: exit @code, @utime_us of CPU. */
static struct tstats_record record(struct fixture *f, int code, uint64_t utime_us)
{
	struct tstats_record r = {
		.pid = f->n->pid,
		.ac_pid = f->n->pid,
		.ac_tgid = f->n->pid,
		.exitcode = (uint32_t)W_EXITCODE(code, 0),
		.flag = TS_AGROUP,
		.btime_s = (f->n->start_ns + f->m->wall_offset_ns) / 1000000000ull,
		.utime_us = utime_us,
		.read_char = 4096,
		.version = 12,
	};
	memcpy(r.comm, "crafted", 8);
	return r;
}

/* A record that came before its process was known: parked until the
 * connector has been read empty (acct_taskstats_settle()). */
static void park(struct fixture *f, const struct tstats_record *r)
{
	acct_test_park(f->m->acct, r);
}

static void deliver(struct fixture *f)
{
	sink_flush(f->m->sink);
}

/* @r read once the connector has been read empty, and what follows
 * delivered. */
static void settle(struct fixture *f, const struct tstats_record *r)
{
	park(f, r);
	acct_taskstats_settle(f->m->acct);
	deliver(f);
}

/* @n alive to ptmon: a live pidfd (ours) stands for the process not dead
 * yet; its parent @ppid.  dies() then does what track_node_dead() does
 * when that pidfd turns readable, and asks for the exit. */
static void alive(struct fixture *f, pid_t ppid)
{
	f->n->pidfd = util_pidfd_open(getpid(), 0);
	assert_true(f->n->pidfd >= 0);
	f->n->flags |= NODE_ALIVE;
	f->n->ppid = ppid;
}

static void dies(struct fixture *f)
{
	f->n->flags &= ~NODE_ALIVE;
	f->n->pidfd = util_close(f->n->pidfd);
	acct_report_exit(f->m->acct, f->n, false);
	deliver(f);
}

static struct rusage rusage_of(uint64_t utime_us)
{
	struct rusage ru = {0};
	ru.ru_utime.tv_sec = (time_t)(utime_us / 1000000u);
	ru.ru_utime.tv_usec = (suseconds_t)(utime_us % 1000000u);
	ru.ru_maxrss = 1000;
	return ru;
}

/* EXIT event, then our wait4, then the record: reported once all are in,
 * with the record's accounting. */
static void t_exit_event_then_wait_then_record(void **state)
{
	struct fixture *f = *state;
	need_taskstats(f);
	acct_fact_exit_event(f->n, W_EXITCODE(3, 0));
	acct_report_exit(f->m->acct, f->n, false);
	deliver(f);
	assert_int_equal(f->exits, 0); /* the accounting is not in */
	assert_true(f->n->flags & NODE_EXIT_PENDING);
	struct rusage ru = rusage_of(5000);
	acct_fact_wait(f->m->acct, f->n, W_EXITCODE(3, 0), &ru);
	acct_report_exit(f->m->acct, f->n, false);
	deliver(f);
	assert_int_equal(f->exits, 0);
	struct tstats_record r = record(f, 3, 2000);
	settle(f, &r);
	assert_int_equal(f->exits, 1);
	assert_int_equal(f->last.end, PTMON_END_EXITED);
	assert_int_equal(f->last.exit_code, 3);
	assert_int_equal(f->last.acct, PTMON_ACCT_TASKSTATS);
	/* The record replaces wait4's figures; it is not added to them. */
	assert_int_equal(f->last.utime_us, 2000);
	assert_int_equal(f->last.read_bytes, 4096);
	assert_false(f->n->flags & NODE_EXIT_PENDING);
}

/* A node born late (an orphan ptmon reaped whose FORK it never saw): the
 * record that came first waits in the ring; wait4's rusage comes next, and
 * the report takes the record. */
static void t_wait_then_ring_record(void **state)
{
	struct fixture *f = *state;
	need_taskstats(f);
	struct tstats_record r = record(f, 0, 700);
	acct_test_ring(f->m->acct, &r);
	struct rusage ru = rusage_of(9000);
	acct_fact_wait(f->m->acct, f->n, W_EXITCODE(0, 0), &ru);
	acct_report_exit(f->m->acct, f->n, false);
	deliver(f);
	assert_int_equal(f->exits, 1);
	assert_int_equal(f->last.acct, PTMON_ACCT_TASKSTATS);
	assert_int_equal(f->last.utime_us, 700);
	assert_int_equal(f->last.exit_code, 0);
}

/* The record before the EXIT event: it says the status and completes the
 * exit, reported at once; the EXIT event that follows changes nothing but
 * its mark (on_fork() relies on it). */
static void t_record_then_exit_event(void **state)
{
	struct fixture *f = *state;
	need_taskstats(f);
	struct tstats_record r = record(f, 9, 100);
	settle(f, &r);
	assert_int_equal(f->exits, 1);
	assert_int_equal(f->last.exit_code, 9);
	acct_fact_exit_event(f->n, W_EXITCODE(1, 0));
	assert_true(f->n->flags & NODE_EXIT_EVENT);
	assert_int_equal(WEXITSTATUS(f->n->status), 9);
	acct_report_exit(f->m->acct, f->n, false);
	deliver(f);
	assert_int_equal(f->exits, 1); /* once */
}

/* The record's CPU times are the kernel's tick samples; its exact run
 * time (cpu_run_virtual_ns) is what the process used, split between user
 * and system as the samples are.  A record without it keeps the samples. */
static void t_record_cpu_is_the_run_time(void **state)
{
	struct fixture *f = *state;
	need_taskstats(f);
	struct tstats_record r = record(f, 0, 30000);
	r.stime_us = 10000;
	r.cpu_run_virtual_ns = 300000999; /* 300 ms and a fraction of a us */
	settle(f, &r);
	assert_int_equal(f->exits, 1);
	assert_int_equal(f->last.acct, PTMON_ACCT_TASKSTATS);
	assert_int_equal(f->last.utime_us, 225000);
	assert_int_equal(f->last.stime_us, 75000);
}

/* Only system time sampled (a process that lived in system calls), and a
 * process that ran less than a tick, sampled at nothing: the run time goes
 * to the side the samples name, and to user time when they name none, as
 * getrusage() does. */
static void t_record_cpu_one_side(void **state)
{
	struct fixture *f = *state;
	need_taskstats(f);
	struct tstats_record r = record(f, 0, 0);
	r.stime_us = 4000;
	r.cpu_run_virtual_ns = 7000000;
	r.flag = 0; /* a thread's record: summed, the process not complete */
	r.pid = FAKE_PID + 1;
	acct_fact_exit_event(f->n, W_EXITCODE(0, 0));
	park(f, &r);
	struct tstats_record last = record(f, 0, 0);
	last.cpu_run_virtual_ns = 500000; /* 0.5 ms, no tick */
	settle(f, &last);
	assert_int_equal(f->exits, 1);
	assert_int_equal(f->last.stime_us, 7000);
	assert_int_equal(f->last.utime_us, 500);
}

/* A record read while its process is alive to ptmon: do_exit() sends it
 * before exit_notify() makes the pidfd readable, and a loaded machine may
 * run ptmon in between.  Its parent is no process of ptmon's (an attached
 * root's, `ptmon watch`): the record waits all the same, and says the
 * status and the accounting at the death. */
static void t_record_before_the_death(void **state)
{
	struct fixture *f = *state;
	need_taskstats(f);
	alive(f, 1); /* its parent: neither ptmon nor in the tree */
	struct tstats_record r = record(f, 9, 100);
	r.ac_ppid = 1;
	settle(f, &r);
	assert_int_equal(f->exits, 0);
	assert_false(f->n->flags & NODE_EXIT_KNOWN);
	dies(f);
	assert_int_equal(f->exits, 1);
	assert_int_equal(f->last.end, PTMON_END_EXITED);
	assert_int_equal(f->last.exit_code, 9);
	assert_int_equal(f->last.acct, PTMON_ACCT_TASKSTATS);
	assert_int_equal(f->last.utime_us, 100);
}

/* The same record with another parent: an earlier owner of the pid, read
 * late (a storm past pid_max), whose start a walked node cannot tell from
 * its own.  It says nothing of this process at its death. */
static void t_stranger_record_before_the_death(void **state)
{
	struct fixture *f = *state;
	need_taskstats(f);
	alive(f, 1);
	f->n->flags |= NODE_WALKED;
	struct tstats_record r = record(f, 9, 100);
	r.ac_ppid = 4242;
	settle(f, &r);
	dies(f);
	assert_int_equal(f->exits, 0); /* waits for its own record */
	assert_false(f->n->flags & NODE_EXIT_KNOWN);
	assert_int_equal(f->n->acct, PTMON_ACCT_NONE);
}

/* Without taskstats, the EXIT event alone completes the exit; wait4 of a
 * process whose exit was reported adds no second event. */
static void t_exit_event_alone(void **state)
{
	struct fixture *f = *state;
	acct_test_taskstats_off(f->m->acct, true); /* as on a kernel without taskstats */
	acct_fact_exit_event(f->n, W_EXITCODE(0, SIGTERM) & 0x7f);
	acct_report_exit(f->m->acct, f->n, false);
	deliver(f);
	acct_test_taskstats_off(f->m->acct, false);
	assert_int_equal(f->exits, 1);
	assert_int_equal(f->last.end, PTMON_END_SIGNALED);
	assert_int_equal(f->last.term_signal, SIGTERM);
	assert_int_equal(f->last.acct, PTMON_ACCT_NONE);
}

/* Facts that never complete: the exit waits at most 100 ms, then is
 * reported with what is known (no status: "unknown"). */
static void t_pending_bound(void **state)
{
	struct fixture *f = *state;
	need_taskstats(f);
	acct_report_exit(f->m->acct, f->n, false);
	assert_int_equal(acct_pending_deadline(f->m->acct), f->n->end_ns + 100000000ull);
	acct_flush_pending(f->m->acct, f->n->end_ns + 99999999ull, NULL);
	deliver(f);
	assert_int_equal(f->exits, 0);
	acct_flush_pending(f->m->acct, f->n->end_ns + 100000000ull, NULL);
	deliver(f);
	assert_int_equal(f->exits, 1);
	assert_int_equal(f->last.end, PTMON_END_UNKNOWN);
	assert_int_equal(acct_pending_deadline(f->m->acct), 0);
}

/* The bound forces an exit only once the taskstats socket has been read:
 * a process's record is queued before its pidfd turns readable and before
 * its parent's wait4() returns (do_exit() sends it ahead of
 * exit_notify()), so a ptmon that was descheduled past the bound must
 * still find it there, not report the exit without its accounting. */
static void t_pending_bound_reads_the_socket(void **state)
{
	struct fixture *f = *state;
	need_taskstats(f);
	uint64_t start = util_now_ns();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(4);
	assert_int_equal(waitpid(pid, NULL, 0), pid); /* its record is queued */
	struct node *n = tree_add(&f->m->tree, pid);
	assert_non_null(n);
	n->pidfd = -1;
	n->start_ns = start;
	n->end_ns = util_now_ns();
	n->argv_src = PTMON_ARGV_UNKNOWN;
	acct_fact_exit_event(n, W_EXITCODE(4, 0));
	acct_report_exit(f->m->acct, n, false);
	deliver(f);
	assert_int_equal(f->exits, 0); /* the record is in the socket, unread */
	acct_flush_pending(f->m->acct, n->end_ns + 100000000ull, NULL);
	deliver(f);
	assert_int_equal(f->exits, 1);
	assert_int_equal(f->last.pid, pid);
	assert_int_equal(f->last.exit_code, 4);
	assert_int_equal(f->last.acct, PTMON_ACCT_TASKSTATS);
}

/* More exits than one read of the socket takes: every record of them is
 * queued before the process it waits for dies.  Without the tree filter
 * (the procfs backend, or no eBPF) the socket holds the exits of the whole
 * machine, and an exit storm elsewhere puts hundreds of them ahead of the
 * record that counts.  Here the storm is ours: children exit and are
 * reaped, and no node names them. */
static void exits_elsewhere(unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(0);
		assert_int_equal(waitpid(pid, NULL, 0), pid);
	}
}

/* The procfs backend: no record is parked waiting for the connector, and
 * the bound reads the socket to its end (one batch with the connector,
 * whose park would drop ours under such a read). */
static void as_procfs(struct fixture *f)
{
	f->m->backend = PTMON_BACKEND_PROCFS;
}

/* A child that exited with @code and was reaped by wait4 (its rusage in
 * @ru), and its node, dead; its record is queued, unread. */
static struct node *reaped_child(struct fixture *f, int code, int *status, struct rusage *ru)
{
	uint64_t start = util_now_ns();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(code);
	assert_int_equal(wait4(pid, status, 0, ru), pid);
	struct node *n = tree_add(&f->m->tree, pid);
	assert_non_null(n);
	n->pidfd = -1;
	n->start_ns = start;
	n->end_ns = util_now_ns();
	n->argv_src = PTMON_ARGV_UNKNOWN;
	return n;
}

/* The bound reads the socket to its end, not one batch: a child whose
 * record is queued behind those of three batches of exits elsewhere is
 * still reported with its status (the procfs backend knows it only from
 * the record) and its accounting.  The failure of
 * t_events_storm[procfs] under an exit storm elsewhere ("unknown" ends). */
static void t_pending_bound_reads_past_others(void **state)
{
	struct fixture *f = *state;
	need_taskstats(f);
	as_procfs(f);
	exits_elsewhere(3 * TSTATS_RECEIVE_BATCH);
	int status = 0;
	struct rusage ru;
	struct node *n = reaped_child(f, 5, &status, &ru);
	acct_report_exit(f->m->acct, n, false);
	acct_flush_pending(f->m->acct, n->end_ns + 100000000ull, NULL);
	deliver(f);
	assert_int_equal(f->exits, 1);
	assert_int_equal(f->last.exit_code, 5);
	assert_int_equal(f->last.acct, PTMON_ACCT_TASKSTATS);
}

/* A child ptmon reaps itself (the root): wait4's rusage stands in until its
 * record is read, and the record must win even when the exits elsewhere
 * ahead of it fill more than the read in acct_fact_wait() and the one
 * before the forced report.  The failure of "accounting source rusage
 * while taskstats is in features" under an exit storm elsewhere. */
static void t_reaped_root_record_behind_others(void **state)
{
	struct fixture *f = *state;
	need_taskstats(f);
	as_procfs(f);
	exits_elsewhere(3 * TSTATS_RECEIVE_BATCH);
	int status = 0;
	struct rusage ru;
	struct node *n = reaped_child(f, 6, &status, &ru);
	acct_fact_wait(f->m->acct, n, status, &ru);
	acct_report_exit(f->m->acct, n, false);
	deliver(f);
	assert_int_equal(f->exits, 0); /* its record is not in yet */
	acct_flush_pending(f->m->acct, n->end_ns + 100000000ull, NULL);
	deliver(f);
	assert_int_equal(f->exits, 1);
	assert_int_equal(f->last.exit_code, 6);
	assert_int_equal(f->last.acct, PTMON_ACCT_TASKSTATS);
}

/* An attached root: its status through its pidfd once its parent reaped
 * it (PIDFD_INFO_EXIT, Linux 6.15+), unless a status is known already. */
static void t_pidfd_only(void **state)
{
	struct fixture *f = *state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(7);
	int pidfd = util_pidfd_open(pid, 0);
	assert_true(pidfd >= 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	int r = acct_fact_pidfd(f->n, pidfd);
	if (r == -ENOTTY || r == -EINVAL || r == -ENODATA) {
		util_close(pidfd);
		print_message("no PIDFD_INFO_EXIT: %s\n", strerror(-r));
		skip();
	}
	assert_int_equal(r, 0);
	assert_true(f->n->flags & NODE_EXIT_KNOWN);
	assert_true(WIFEXITED(f->n->status));
	assert_int_equal(WEXITSTATUS(f->n->status), 7);
	f->n->status = W_EXITCODE(1, 0); /* known: the pidfd does not override */
	assert_int_equal(acct_fact_pidfd(f->n, pidfd), 0);
	assert_int_equal(WEXITSTATUS(f->n->status), 1);
	int code = 0, value = 0;
	acct_status_code(W_EXITCODE(0, SIGKILL) & 0x7f, &code, &value);
	assert_int_equal(code, CLD_KILLED);
	assert_int_equal(value, SIGKILL);
	util_close(pidfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(t_exit_event_then_wait_then_record, setup,
						teardown),
		cmocka_unit_test_setup_teardown(t_wait_then_ring_record, setup, teardown),
		cmocka_unit_test_setup_teardown(t_record_then_exit_event, setup, teardown),
		cmocka_unit_test_setup_teardown(t_record_cpu_is_the_run_time, setup, teardown),
		cmocka_unit_test_setup_teardown(t_record_cpu_one_side, setup, teardown),
		cmocka_unit_test_setup_teardown(t_record_before_the_death, setup, teardown),
		cmocka_unit_test_setup_teardown(t_stranger_record_before_the_death, setup,
						teardown),
		cmocka_unit_test_setup_teardown(t_exit_event_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(t_pending_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(t_pending_bound_reads_the_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(t_pending_bound_reads_past_others, setup, teardown),
		cmocka_unit_test_setup_teardown(t_reaped_root_record_behind_others, setup,
						teardown),
		cmocka_unit_test_setup_teardown(t_pidfd_only, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
