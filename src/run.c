/* SPDX-License-Identifier: MIT */
/* `ptmon run`'s run-time (run.h): the monitor, the control socket, the
 * event stream and the report around one task, in the worker; the exit
 * status from the task's result. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "control.h"
#include "fdclose.h"
#include "front.h"
#include "output.h"
#include "parse.h"
#include "ptmon.h"
#include "run.h"
#include "timeout.h"
#include "watch.h"

#define msg(...) notes_say("ptmon", __VA_ARGS__)

/* What a run holds while it runs: made from its options, never parsed. */
struct run {
	const struct run_options *o;
	struct control *control;
	char task_id[CONTROL_ID_MAX];
	struct evwriter *events;
	int report_fd;
	struct run_info info;
};

static void on_notice(struct ptmon_task *t, enum ptmon_notice_kind kind, const char *text,
		      void *userdata)
{
	const struct run_options *o = ((const struct run *)userdata)->o;
	if ((kind == PTMON_NOTICE_INFO && o->verbose < 1) || o->quiet)
		return;
	msg("%s", text);
}

static int status_of(const struct ptmon_task_result *r)
{
	if (r->attached && r->cgroup && !r->cancel_reason)
		return 0; /* `watch --cgroup`: it emptied by itself */
	if (r->attached && !r->cancel_reason && !r->root_status) {
		msg("the exit status of pid %d is unknown (its EXIT event was not seen, and its "
		    "pidfd could not tell); exit status %d",
		    (int)r->root_pid, EXIT_PTMON_FAILED);
		return EXIT_PTMON_FAILED;
	}
	switch (r->cancel_reason) {
	case PTMON_CANCEL_TIMEOUT:
	case PTMON_CANCEL_REQUEST: /* `ptmon cancel`: not a success either */
		return EXIT_TIMEOUT;
	case PTMON_CANCEL_SIGNAL:
		return 128 + r->cancel_signal;
	default:
		break;
	}
	if (r->root_status == CLD_EXITED)
		return r->root_value;
	return 128 + r->root_value;
}

static void say_backend(struct ptmon_monitor *m)
{
	const char *why = ptmon_monitor_fallback_reason(m);
	unsigned f = ptmon_monitor_features(m);
	if (why)
		msg("backend procfs (%s): short-lived processes may go unseen", why);
	else
		msg("backend connector (%s subscription%s)",
		    (f & PTMON_FEATURE_CONNECTOR_INPUT) ? "proc_input" : "classic",
		    (f & PTMON_FEATURE_PIDFD_INFO) ? ", PIDFD_GET_INFO" : "");
	if (why)
		return;
	int err = ptmon_monitor_tree_filter_error(m);
	if (f & PTMON_FEATURE_TREE_FILTER)
		msg("filter ebpf: only the task's events reach ptmon");
	else if (err == -ECANCELED)
		msg("filter classic (asked for): every process's events reach ptmon");
	else
		msg("filter classic (eBPF: %s): every process's events reach ptmon",
		    err == -EPERM ? "no CAP_BPF" : strerror(-err));
}

/* Which guarantees this run has, beyond the pidfd path. */
static void say_cgroup(struct ptmon_monitor *m, struct ptmon_task *t)
{
	const char *path = ptmon_task_cgroup_path(t);
	const char *why = ptmon_monitor_cgroup_unavailable(m);
	if (path)
		msg("task cgroup %s: cgroup.kill ends a cancel and 'populated 0' proves the "
		    "tree empty; if ptmon and its worker are killed at once, cgroup.kill there "
		    "ends what is left",
		    path);
	else
		msg("no cgroup for the task (%s): if ptmon and its worker are killed at once, "
		    "what the task started survives",
		    why ? why : "--cgroup off");
}

static void say_result(const struct ptmon_task_result *r, int status)
{
	char a[32], b[32];
	msg("root %d ended; %" PRIu64 " processes, %" PRIu64 " signalled, %" PRIu64
	    " killed, %" PRIu64 " events lost, %" PRIu64 " resyncs, %" PRIu64
	    " events received; exit status %d",
	    (int)r->root_pid, r->processes, r->signalled, r->killed, r->events_lost, r->resyncs,
	    r->events_received, status);
	if (r->cancel_reason != PTMON_CANCEL_NONE)
		msg("cancel to empty tree %s, to EOF %s",
		    format_duration(r->cancel_to_empty_ns, a, sizeof(a)),
		    format_duration(r->cancel_to_eof_ns, b, sizeof(b)));
	/* The worker's own (not its children's): what tracking cost, start
	 * and end included; bench/run divides it by the forks. */
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		uint64_t us =
			(uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
			(uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
		msg("worker CPU %s", format_duration(us * 1000u, a, sizeof(a)));
	}
}

static int start_failed(const char *cmd, int r)
{
	if (r == -ENOENT) {
		msg("cannot run '%s': %s", cmd, strerror(-r));
		return EXIT_NOT_FOUND;
	}
	if (r == -EACCES || r == -ENOEXEC || r == -EISDIR || r == -ENOTDIR || r == -ELOOP ||
	    r == -ENAMETOOLONG || r == -E2BIG || r == -ETXTBSY || r == -EPERM) {
		msg("cannot execute '%s': %s", cmd, strerror(-r));
		return EXIT_CANNOT_EXECUTE;
	}
	msg("cannot start '%s': %s", cmd, strerror(-r));
	return EXIT_PTMON_FAILED;
}

static void on_event(const struct ptmon_event *ev, void *userdata)
{
	struct run *rn = userdata;
	evwriter_event(rn->events, ev, &rn->info);
	control_event(rn->control, ev);
}

/* Open the output files before anything starts, so that a bad path fails
 * the run at once (125) instead of losing the record at the end. */
static int open_outputs(struct run *rn)
{
	const struct run_options *o = rn->o;
	rn->report_fd = -1;
	if (o->events_path) {
		int r = evwriter_open(&rn->events, o->events_path);
		if (r < 0) {
			msg("--events: cannot open '%s': %s", o->events_path, strerror(-r));
			return -1;
		}
	}
	if (o->report_path) {
		rn->report_fd = open(o->report_path,
				     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
		if (rn->report_fd < 0) {
			msg("--report: cannot open '%s': %s", o->report_path, strerror(errno));
			return -1;
		}
		/* Our own description: a FIFO's stalled reader must not hold
		 * ptmon (report_write() bounds the wait). */
		int fl = fcntl(rn->report_fd, F_GETFL);
		if (fl >= 0)
			fcntl(rn->report_fd, F_SETFL, fl | O_NONBLOCK);
	}
	return 0;
}

/* Would signal @s end ptmon if left at its default action? */
static bool ends_ptmon(int s)
{
	switch (s) {
	case SIGCHLD:
	case SIGCONT:
	case SIGURG:
	case SIGWINCH: /* ignored */
	case SIGSTOP:
	case SIGTSTP:
	case SIGTTIN:
	case SIGTTOU: /* stop */
		return false;
	default:
		return true;
	}
}

/* Every catchable signal whose default action would end ptmon cancels the
 * task, as SIGTERM does, so that none can leave the tree running; but for
 * SIGPIPE and SIGXFSZ, which ptmon's own writes raise (a reader gone, a file
 * size limit): those are ignored, and the write fails with EPIPE or EFBIG.
 * Faults of ptmon's own (SIGSEGV...) still end it: the kernel forces them
 * through any mask. */
static void cancel_signals(sigset_t *set)
{
	sigemptyset(set);
	for (int s = 1; s <= SIGRTMAX; s++)
		if (ends_ptmon(s) && s != SIGKILL && s != SIGPIPE && s != SIGXFSZ)
			sigaddset(set, s); /* refuses 32 and 33: see hold_libc_signals() */
}

static void ignore_signal(int sig)
{
	(void)sig;
}

/* A handler, not SIG_IGN: exec resets handlers, so the task gets these at
 * their default, whereas it would inherit SIG_IGN. */
static void ignore_write_signals(void)
{
	struct sigaction sa = {.sa_handler = ignore_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGXFSZ, &sa, NULL);
}

/* Signals 32 and 33 are the C library's own (SIGCANCEL, SIGSETXID): its
 * sigprocmask() and sigaction() refuse them, yet their default action ends
 * a process.  ptmon has no threads: it holds them blocked (ignored) through
 * the kernel's call, and lets go of any pending one at the end.  The task
 * gets them unblocked: the C library's sigprocmask() in the child clears
 * them from the mask it restores. */
static void hold_libc_signals(bool hold)
{
	uint64_t set = (1ull << (32 - 1)) | (1ull << (33 - 1));
	struct timespec zero = {0, 0};
	if (hold) {
		syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, sizeof(set));
		return;
	}
	while (syscall(SYS_rt_sigtimedwait, &set, NULL, &zero, sizeof(set)) > 0)
		;
}

/* The monitor's fd and, while events wait for a slow reader, the event
 * stream's: one loop, so that neither can stall the other. */
static int loop(struct ptmon_monitor *m, struct ptmon_task *t, struct run *rn)
{
	while (!ptmon_task_done(t)) {
		struct pollfd p[4] = {
			{.fd = ptmon_monitor_get_fd(m), .events = POLLIN},
			{.fd = rn->control ? control_get_fd(rn->control) : -1, .events = POLLIN},
			{.fd = evwriter_wait_fd(rn->events), .events = POLLOUT},
			{.fd = notes_wait_fd(), .events = POLLOUT},
		};
		/* A negative fd is skipped by poll(). */
		if (poll(p, 4, -1) < 0 && errno != EINTR)
			return -errno;
		if (p[2].fd >= 0 && p[2].revents)
			evwriter_flush(rn->events, -1);
		if (p[3].fd >= 0 && p[3].revents)
			notes_flush(0);
		if (p[1].fd >= 0 && p[1].revents) {
			int cr = control_dispatch(rn->control);
			if (cr < 0)
				msg("control socket failed: %s", strerror(-cr));
		}
		int r = ptmon_monitor_dispatch(m);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Through the messages' non-blocking path: a stalled stderr gets a second
 * without progress, then the rest is dropped (and counted). */
static bool use_colour(int mode)
{
	const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
	if (mode != COLOUR_AUTO)
		return mode == COLOUR_ALWAYS;
	return isatty(STDERR_FILENO) && !(nc && *nc) && !(term && !strcmp(term, "dumb"));
}

static void write_summary(struct ptmon_task *t, int colour)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f) {
		msg("--summary: %s", strerror(errno));
		return;
	}
	summary_print(f, t, use_colour(colour));
	if (fclose(f) == 0 && notes_write_all(text, len, 1000) < 0)
		msg("--summary: cut: stderr did not take it");
	free(text);
}

/* A record the user asked for is incomplete for a reason other than its
 * reader leaving: a run that would have exited 0 exits 125 instead; any
 * other status already says that something failed, and stays. */
static int failed_delivery(int status)
{
	return status == 0 ? EXIT_PTMON_FAILED : status;
}

/* The task's output that a failed destination (ENOSPC, EIO...) did not
 * take; a reader that left (EPIPE) is the task's business, as without us. */
static int check_task_output(const struct ptmon_task_result *r, int status)
{
	const char *name[2] = {"stdout", "stderr"};
	const uint64_t dropped[2] = {r->dropped_out, r->dropped_err};
	const int error[2] = {r->error_out, r->error_err};
	for (int i = 0; i < 2; i++) {
		if (!error[i] || error[i] == EPIPE)
			continue;
		msg("the task's %s: %" PRIu64 " bytes not written: %s", name[i], dropped[i],
		    strerror(error[i]));
		status = failed_delivery(status);
	}
	return status;
}

/* The event stream's last second, and what it could not deliver. */
static int finish_events(struct run *rn, int status)
{
	const struct run_options *o = rn->o;
	struct evwriter_status st;
	if (!rn->events)
		return status;
	/* The reader had its chance all along; give it a last second. */
	evwriter_flush(rn->events, 1000);
	evwriter_status(rn->events, &st);
	rn->events = evwriter_free(rn->events);
	if (st.dropped)
		msg("--events: %" PRIu64 " events dropped: the reader did not keep up", st.dropped);
	if (st.error && st.error != EPIPE) {
		msg("--events: cannot write '%s': %s; %" PRIu64 " events not written%s",
		    o->events_path, strerror(st.error), st.unwritten,
		    st.half_line ? "; the last line is incomplete" : "");
		return failed_delivery(status);
	}
	if (st.unwritten || st.half_line)
		msg("--events: %" PRIu64 " events not written: %s%s", st.unwritten,
		    st.error ? "the reader went away" : "the reader did not take them in time",
		    st.half_line ? "; the last line is incomplete" : "");
	return status;
}

/* The report, bounded: a reader that takes nothing for a second ends it. */
static int finish_report(struct run *rn, struct ptmon_task *t, int status)
{
	const struct run_options *o = rn->o;
	size_t written, total;
	if (rn->report_fd < 0)
		return status;
	rn->info.exit_status = status;
	int r = report_write(rn->report_fd, t, &rn->info, 1000, &written, &total);
	rn->report_fd = util_close(rn->report_fd);
	rn->report_fd = -1;
	if (r == 0)
		return status;
	msg("--report: cannot write '%s': %s (%zu of %zu bytes written): the report is incomplete",
	    o->report_path, r == -ETIMEDOUT ? "the reader took nothing for 1s" : strerror(-r),
	    written, total);
	return failed_delivery(status);
}

/* Returns the final exit status: @status, or 125 for a record lost. */
static int finish_outputs(struct run *rn, struct ptmon_task *t, int status)
{
	status = finish_events(rn, status);
	status = finish_report(rn, t, status);
	if (rn->o->summary)
		write_summary(t, rn->o->colour);
	return status;
}

static const char *control_error(int r)
{
	switch (r) {
	case -EADDRINUSE:
		return "another ptmon is listening there";
	case -EEXIST:
		return "exists and is not a socket";
	default:
		return strerror(-r);
	}
}

/* The control socket is up before the task starts, so that a bad path or
 * an unsafe directory fails the run (125) before anything runs. */
static int open_control(struct run *rn)
{
	const struct run_options *o = rn->o;
	char dir[256], path[320];
	const char *why = NULL, *control_path = o->control_path;
	int r = control_make_id(rn->task_id, sizeof(rn->task_id));
	if (r < 0) {
		msg("cannot make a task id: %s", strerror(-r));
		return -1;
	}
	rn->info.task_id = rn->task_id;
	if (o->no_control)
		return 0;
	if (!control_path) {
		r = control_default_dir(dir, sizeof(dir));
		if (r == 0)
			r = control_prepare_dir(dir, &why);
		if (r < 0) {
			msg("control directory '%s': %s", dir, why ? why : strerror(-r));
			return -1;
		}
		int n = snprintf(path, sizeof(path), "%s/%s.sock", dir, rn->task_id);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			msg("control directory '%s': name too long", dir);
			return -1;
		}
		control_path = path;
	}
	r = control_open(&rn->control, control_path, rn->task_id);
	if (r < 0) {
		msg("--control: cannot listen on '%s': %s", control_path, control_error(r));
		return -1;
	}
	if (o->verbose)
		msg("task id %s, control socket %s", rn->task_id, control_path);
	return 0;
}

static void run_end(struct run *rn, struct ptmon_monitor *m)
{
	/* Followers get what waits, the "done" event included, for a second
	 * at most, as the event stream's reader does. */
	rn->control = control_free(rn->control, 1000);
	/* Freeing the monitor restores the mask through the C library, which
	 * unblocks 32 and 33: drop what is pending first, and hold them again
	 * for the way out. */
	hold_libc_signals(false);
	ptmon_monitor_free(m);
	hold_libc_signals(true);
}

/* PTMON_RCVBUF=BYTES: the connector socket's receive buffer, for tests that
 * provoke its overflow (test_scenarios); not a documented option. */
static void test_knobs(struct ptmon_monitor *m)
{
	const char *e = getenv("PTMON_RCVBUF");
	char *end;
	if (!e || !*e)
		return;
	unsigned long v = strtoul(e, &end, 10);
	if (!*end && v > 0)
		(void)ptmon_monitor_set_rcvbuf(m, v);
}

static int run(struct run *rn)
{
	const struct run_options *o = rn->o;
	struct ptmon_monitor *m = NULL;
	ignore_write_signals();
	hold_libc_signals(true);
	if (o->chdir && chdir(o->chdir) < 0) {
		msg("--chdir: cannot change to '%s': %s", o->chdir, strerror(errno));
		return EXIT_PTMON_FAILED;
	}
	if (open_outputs(rn) < 0)
		return EXIT_PTMON_FAILED;
	if (open_control(rn) < 0) {
		rn->events = evwriter_free(rn->events);
		return EXIT_PTMON_FAILED;
	}
	/* ptmon holds a pidfd per live process of the tree: every fd the
	 * hard limit allows (the task gets the limits ptmon was given). */
	int r = ptmon_monitor_new(&m, o->backend, o->monitor_flags | PTMON_MONITOR_RAISE_NOFILE);
	if (r < 0) {
		rn->control = control_free(rn->control, 0);
		if (r == -ENOSYS)
			msg("this kernel has no pidfds (Linux 5.3 or later is needed)");
		else if (o->monitor_flags & PTMON_MONITOR_FILTER_TREE)
			msg("cannot start the monitor with --filter ebpf: %s",
			    r == -EPERM ? "no CAP_BPF" : strerror(-r));
		else
			msg("cannot start the monitor: %s", strerror(-r));
		return EXIT_PTMON_FAILED;
	}
	test_knobs(m);
	ptmon_monitor_set_notice(m, on_notice, rn);
	char cwd[4096];
	rn->info = (struct run_info){
		.argv = o->task.argv,
		.name = o->name,
		.cwd = getcwd(cwd, sizeof(cwd)),
		.backend = ptmon_monitor_backend(m),
		.features = ptmon_monitor_features(m),
		.fallback_reason = ptmon_monitor_fallback_reason(m),
		.taskstats_unavailable = ptmon_monitor_taskstats_unavailable(m),
		.task_id = rn->task_id,
		.watch_pid = o->watch ? o->attach.pid : 0,
		.watch_cgroup = o->watch ? o->attach.cgroup : NULL,
	};
	if (rn->events || rn->control)
		ptmon_monitor_set_event_callback(m, on_event, rn);
	sigset_t cancel;
	cancel_signals(&cancel);
	r = ptmon_monitor_cancel_on_signals(m, &cancel);
	if (r == 0)
		r = front_attach(m);
	if (o->verbose)
		say_backend(m);
	struct ptmon_task *t = NULL;
	/* The start event is formatted for followers (control.c) as it happens. */
	if (rn->control)
		control_attach(rn->control, NULL, &rn->info);
	if (r == 0 && o->watch) {
		if (o->verbose && !o->attach.cgroup)
			msg("watching pid %d: %s", (int)o->attach.pid, WATCH_LIMITS);
		r = ptmon_task_attach(m, &o->attach, 0, &t);
		if (r < 0) {
			char why[512];
			msg("%s", o->attach.cgroup
					  ? watch_cgroup_error(r, o->attach.cgroup,
							       ptmon_monitor_cgroup_unavailable(m),
							       why, sizeof(why))
					  : watch_attach_error(r, o->attach.pid, why, sizeof(why)));
			r = -ECANCELED; /* said; 125 */
		} else if (o->verbose && o->attach.cgroup) {
			msg("watching cgroup %s (first process found: %d)", o->attach.cgroup,
			    (int)ptmon_task_root_pid(t));
		}
	} else if (r == 0) {
		r = ptmon_task_start(m, &o->task, 0, &t);
	}
	if (r < 0 && o->task.cgroup == PTMON_CGROUP_ON && ptmon_monitor_cgroup_unavailable(m)) {
		bool limits = o->task.memory_max || o->task.pids_max || o->task.cpu_max_us;
		msg("%s: %s: %s", limits ? "cannot set the task's limits" : "--cgroup on",
		    ptmon_monitor_cgroup_unavailable(m), strerror(-r));
		r = -ECANCELED; /* said; 125 */
	}
	if (r < 0) {
		int status = r == -ECANCELED ? EXIT_PTMON_FAILED : start_failed(o->task.argv[0], r);
		run_end(rn, m);
		rn->events = evwriter_free(rn->events);
		return status;
	}
	/* The report and the summary walk every record at the end; without
	 * them a long run keeps only the records of live processes.  Control
	 * clients (info, tree, metrics, kill) need no more: the ended
	 * processes' totals are counted from their events (src/control.c),
	 * and a walk holds the records only while it lasts. */
	if (o->report_path || o->summary)
		ptmon_task_hold_records(t);
	if (o->verbose && !o->watch)
		msg("task %d started: %s", (int)ptmon_task_root_pid(t), o->task.argv[0]);
	if (o->verbose && !o->watch)
		say_cgroup(m, t);
	if (rn->control)
		control_attach(rn->control, t, &rn->info);
	r = loop(m, t, rn);
	front_task_done();
	struct ptmon_task_result res = {.size = sizeof(res)};
	int status = EXIT_PTMON_FAILED;
	if (r < 0)
		msg("monitor failed: %s", strerror(-r));
	else if (ptmon_task_result(t, &res) == 0) {
		status = check_task_output(&res, timeout_status(t, &res, status_of(&res)));
		/* The promise "nothing it started is left" was not kept: a
		 * script must not take this run for a clean timeout. */
		if (res.survivors) {
			msg("%" PRIu64 " processes of the task survived the cancel; exit status %d",
			    res.survivors, EXIT_PTMON_FAILED);
			status = EXIT_PTMON_FAILED;
		}
		if (o->verbose)
			say_result(&res, status);
		status = finish_outputs(rn, t, status);
	}
	run_end(rn, m);
	return status;
}

int run_task(const struct run_options *o)
{
	struct run rn = {.o = o, .report_fd = -1};
	return run(&rn);
}

static int run_worker(void *o)
{
	return run_task(o);
}

int run_main(const struct run_options *o)
{
	/* The front too: a stray signal 32 or 33 must not end it (and with it,
	 * through the worker's watch, the task). */
	hold_libc_signals(true);
	return front_run(run_worker, (void *)o, o->verbose, o->task.cgroup != PTMON_CGROUP_OFF);
}
