/* SPDX-License-Identifier: MIT */
/* Layer "monitor": the public handle.  It owns every layer below, chooses
 * the event backend (the connector and its filter, or /proc walks), takes
 * signals and the front, and runs each round of the loop (monitor.h). */
#include "acct.h"
#include "loop.h"
#include "monitor.h"
#include "procfs.h"
#include "sink.h"
#include "stream.h"
#include "sys.h"
#include "task.h"
#include "track.h"
#include "cnproc.h"
#include "nlutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONNECTOR_RCVBUF (8u * 1024u * 1024u)
#define PROBE_TIMEOUT_MS 2000
/* Without events, the tree is learned by walking /proc this often. */
#define PROCFS_INTERVAL_NS (100ull * 1000000ull)
/* After lost events, walk at most this often. */
#define LOST_RESYNC_MIN_NS (20ull * 1000000ull)

/* ---- small services ------------------------------------------------------- */

static bool monitor_tree_filtered(const struct ptmon_monitor *m)
{
	return m->cn && cnproc_tree_filtered(m->cn);
}

void monitor_rearm(struct ptmon_monitor *m)
{
	/* Without events, walks on a timer are all there is: from the
	 * moment a task runs. */
	if (m->backend == PTMON_BACKEND_PROCFS && tasks_running(m->tasks) && !m->next_resync)
		m->next_resync = util_now_ns() + PROCFS_INTERVAL_NS;
	uint64_t next = m->next_resync;
	/* Queued outside the loop (ptmon_task_start(), _cancel(), _kill()):
	 * the caller's poll must return for them to be delivered. */
	if (sink_pending(m->sink))
		next = 1;
	uint64_t p = acct_pending_deadline(m->acct);
	if (p && (!next || p < next))
		next = p;
	for (struct group *g = track_groups(m->track); g; g = g->next) {
		uint64_t d = task_next_deadline(g->owner);
		if (d && (!next || d < next))
			next = d;
	}
	loop_arm(m->loop, next, util_now_ns());
}

/* ---- the connector backend ------------------------------------------------- */

struct probe {
	pid_t self;
	pid_t child;
	bool seen;
	uint32_t ack_err;
};

static int probe_event(const struct cnproc_event *ev, void *userdata)
{
	struct probe *p = userdata;
	if (ev->kind == CNPROC_FORK && ev->tgid == p->child && ev->parent_tgid == p->self)
		p->seen = true;
	if (ev->kind == CNPROC_ACK && ev->ack_err)
		p->ack_err = ev->ack_err;
	return 0;
}

/* Subscribing can fail without a word (an old kernel ignores a request of
 * the wrong size, any kernel ignores one from outside the initial
 * namespaces): believe in events only after seeing one for a child we made. */
static int probe_connector(struct ptmon_monitor *m, struct probe *p)
{
	p->seen = false;
	p->child = fork();
	if (p->child < 0)
		return -errno;
	if (p->child == 0)
		_exit(0);
	uint64_t deadline = util_now_ns() + PROBE_TIMEOUT_MS * 1000000ull;
	struct pollfd pfd = {.fd = cnproc_get_fd(m->cn), .events = POLLIN};
	while (!p->seen) {
		uint64_t now = util_now_ns();
		if (now >= deadline)
			break;
		int r = poll(&pfd, 1, (int)((deadline - now) / 1000000ull) + 1);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0 && cnproc_receive(m->cn, probe_event, p, NULL) < 0)
			break;
	}
	waitpid(p->child, NULL, 0);
	/* The tree filter took it in as our child: a stranger that gets
	 * its number would pass until its first event. */
	track_filter_dead(m->track, p->child);
	return p->seen ? 0 : -ENOMSG;
}

static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;
	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

/*
 * Filter in the kernel what the monitor would throw away.  Each event
 * costs a wake-up and a copy, and the socket gets those of the whole
 * machine.  Best: the eBPF tree filter, which passes only the tree's
 * events (needs CAP_BPF).  Else a classic filter that drops the events of
 * threads, with the 6.6+ event-type mask for the kinds not used.
 */
static int choose_filter(struct ptmon_monitor *m)
{
	m->tree_filter_error = -ECANCELED;
	if (!(m->flags & PTMON_MONITOR_FILTER_CLASSIC)) {
		m->tree_filter_error = cnproc_filter_tree(m->cn, m->self);
		if (m->tree_filter_error == 0) {
			m->features |= PTMON_FEATURE_TREE_FILTER | PTMON_FEATURE_THREAD_FILTER;
			return 0;
		}
		if (m->flags & PTMON_MONITOR_FILTER_TREE) {
			m->fallback_reason = "the eBPF tree filter cannot be loaded";
			return m->tree_filter_error;
		}
	}
	if (cnproc_drop_thread_events(m->cn) == 0)
		m->features |= PTMON_FEATURE_THREAD_FILTER;
	return 0;
}

/* The socket is m->cn from the moment it opens, not a local moved out at
 * the end: the probe's child is taken out of the tree filter by track.c,
 * which reaches the socket through m->cn.  So only a failure gives it back. */
static int connector_start(struct ptmon_monitor *m)
{
	int r = cnproc_open(&m->cn, CONNECTOR_RCVBUF, CNPROC_OPEN_DEFAULT);
	if (r < 0) {
		m->fallback_reason = "cannot open the proc connector socket";
		goto out;
	}
	r = choose_filter(m);
	if (r < 0)
		goto out;
	struct probe p = {.self = m->self};
	/* The tree filter must see every event's sequence number. */
	const uint32_t mask =
		(m->features & PTMON_FEATURE_TREE_FILTER)
			? CNPROC_EVENTS_ALL
			: CNPROC_MASK_FORK | CNPROC_MASK_EXEC | CNPROC_MASK_COMM | CNPROC_MASK_EXIT;
	/* The 6.6+ form first where the kernel should take it. */
	if (kernel_at_least(6, 6) && cnproc_subscribe(m->cn, CNPROC_FORM_INPUT, true, mask) == 0 &&
	    probe_connector(m, &p) == 0) {
		m->features |= PTMON_FEATURE_CONNECTOR | PTMON_FEATURE_CONNECTOR_INPUT;
		r = 0;
		goto out;
	}
	if (cnproc_subscribe(m->cn, CNPROC_FORM_OP, true, CNPROC_EVENTS_ALL) == 0 &&
	    probe_connector(m, &p) == 0) {
		m->features |= PTMON_FEATURE_CONNECTOR;
		r = 0;
		goto out;
	}
	m->fallback_reason = p.ack_err ? "the kernel refused the proc connector subscription"
				       : "no proc connector events arrive (namespace or kernel)";
	r = p.ack_err ? -(int)p.ack_err : -EPROTONOSUPPORT;
out:
	if (r < 0)
		m->cn = cnproc_free(m->cn);
	return r;
}

const char *ptmon_monitor_taskstats_unavailable(const struct ptmon_monitor *m)
{
	return m ? acct_taskstats_unavailable(m->acct) : NULL;
}

/* ---- creation ---------------------------------------------------------------- */

/* acct's state, given what it uses of the layers below: once the backend
 * is chosen, as the taskstats socket shares the connector's tree filter. */
/* The services the monitor gives its tasks (task.h). */
static void svc_read_events(void *ctx)
{
	monitor_read_connector(ctx);
}

static void svc_rearm(void *ctx)
{
	monitor_rearm(ctx);
}

static void svc_counters(void *ctx, struct task_counters *ret)
{
	struct ptmon_monitor *m = ctx;
	const struct track_stats *st = track_get_stats(m->track);
	*ret = (struct task_counters){
		.events_lost = m->events_lost_count,
		.resyncs = st->resyncs,
		.foreign = m->cn ? cnproc_get_stats(m->cn)->foreign : 0,
		.pids_reused = st->pids_reused,
		.pidfd_failures = st->pidfd_failures,
		.events_received = m->cn ? cnproc_get_stats(m->cn)->events : 0,
	};
}

/* Accounting, then the tasks, which take it. */
static int start_acct(struct ptmon_monitor *m)
{
	const struct acct_env env = {
		.loop = m->loop,
		.sink = m->sink,
		.tree = &m->tree,
		.tree_filter = monitor_tree_filtered(m) ? m->cn : NULL,
		.backend = &m->backend,
		.self = m->self,
		.wall_offset_ns = m->wall_offset_ns,
	};
	int r = acct_new(&m->acct, &env);
	if (r < 0)
		return r;
	track_set_acct(m->track, m->acct);
	const struct tasks_env tenv = {
		.loop = m->loop,
		.sink = m->sink,
		.tree = &m->tree,
		.track = m->track,
		.acct = m->acct,
		.monitor = m,
		.self = m->self,
		.restore_nofile = (m->flags & PTMON_MONITOR_RAISE_NOFILE) != 0,
		.nofile_cur = m->nofile_orig.cur,
		.nofile_max = m->nofile_orig.max,
		.svc = {.ctx = m,
			.read_events = svc_read_events,
			.rearm = svc_rearm,
			.counters = svc_counters},
	};
	r = tasks_new(&m->tasks, &tenv);
	if (r < 0)
		return r;
	if (!acct_taskstats_unavailable(m->acct))
		m->features |= PTMON_FEATURE_TASKSTATS;
	return 0;
}

/* Only when asked (PTMON_MONITOR_RAISE_NOFILE): a limit is the whole
 * process's, and its owner's to change. */
static void raise_nofile(struct ptmon_monitor *m)
{
	struct rlimit rl;
	if (!(m->flags & PTMON_MONITOR_RAISE_NOFILE) || getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	m->nofile_orig.cur = rl.rlim_cur;
	m->nofile_orig.max = rl.rlim_max;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int check_pidfd(struct ptmon_monitor *m)
{
	int fd = util_pidfd_open(m->self, 0);
	if (fd < 0)
		return fd == -ENOSYS ? -ENOSYS : fd;
	pid_t ppid;
	if (util_pidfd_ppid(fd, &ppid) == 0 && ppid == getppid())
		m->features |= PTMON_FEATURE_PIDFD_INFO;
	util_close(fd);
	return 0;
}

/* For as long as the monitor lives (ptmon_monitor_new()): a caller that was
 * a subreaper before stays one after. */
static int become_subreaper(struct ptmon_monitor *m)
{
	int old = 0;
	if (prctl(PR_GET_CHILD_SUBREAPER, &old) < 0 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return -errno;
	m->old_subreaper = old;
	return 0;
}

/* A SIGCHLD ignored (SIG_IGN, or SA_NOCLDWAIT) makes the kernel reap our
 * children itself: wait4() would never report the root, and "done" would
 * never come.  Exec keeps an ignored disposition, so a caller that set it
 * (a Python or Node service) hands it on: take the default back, with no
 * flags, for as long as the monitor lives. */
static int restore_sigchld(struct ptmon_monitor *m)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigemptyset(&dfl.sa_mask);
	if (sigaction(SIGCHLD, &dfl, &m->old_chld) < 0)
		return -errno;
	m->chld_saved = true;
	return 0;
}

static int setup_fds(struct ptmon_monitor *m)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &set, &m->old_mask) < 0)
		return -errno;
	m->mask_saved = true;
	sigdelset(&set, SIGPIPE);
	int r = loop_open(m->loop);
	if (r < 0)
		return r;
	m->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m->sigfd < 0)
		return -errno;
	m->sig_watch.kind = WATCH_SIGNAL;
	return loop_watch_add(m->loop, m->sigfd, EPOLLIN, &m->sig_watch);
}

static int choose_backend(struct ptmon_monitor *m, enum ptmon_backend backend)
{
	if (backend == PTMON_BACKEND_PROCFS) {
		m->backend = PTMON_BACKEND_PROCFS;
		m->fallback_reason = "procfs backend requested";
		return 0;
	}
	int r = connector_start(m);
	if (r < 0) {
		if (backend == PTMON_BACKEND_CONNECTOR || (m->flags & PTMON_MONITOR_FILTER_TREE))
			return r;
		m->backend = PTMON_BACKEND_PROCFS;
		return 0;
	}
	m->backend = PTMON_BACKEND_CONNECTOR;
	m->nl_watch.kind = WATCH_NETLINK;
	return loop_watch_add(m->loop, cnproc_get_fd(m->cn), EPOLLIN, &m->nl_watch);
}

int ptmon_monitor_new(struct ptmon_monitor **ret, enum ptmon_backend backend, unsigned flags)
{
	const unsigned filters = PTMON_MONITOR_FILTER_CLASSIC | PTMON_MONITOR_FILTER_TREE;
	if (!ret || (flags & ~(filters | PTMON_MONITOR_RAISE_NOFILE)) ||
	    (flags & filters) == filters || backend > PTMON_BACKEND_PROCFS)
		return -EINVAL;
	struct ptmon_monitor *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	/* Empty before anything can fail: ptmon_monitor_free() releases
	 * what it finds, and a partly built monitor is its to undo. */
	m->sigfd = -1;
	m->front_fd = -1;
	m->old_subreaper = -1;
	int r = -ENOMEM;
	m->loop = loop_new();
	m->sink = sink_new();
	if (!m->loop || !m->sink)
		goto out;
	m->flags = flags;
	sigemptyset(&m->cancel_set);
	m->self = getpid();
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	m->wall_offset_ns =
		(uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec - util_now_ns();
	raise_nofile(m);
	r = tree_init(&m->tree);
	if (r < 0)
		goto out;
	r = check_pidfd(m);
	if (r < 0)
		goto out;
	r = setup_fds(m);
	if (r < 0)
		goto out;
	const struct track_env env = {
		.tree = &m->tree,
		.loop = m->loop,
		.sink = m->sink,
		.cn = &m->cn,
		.features = &m->features,
		.self = m->self,
		.sigfd = m->sigfd,
	};
	r = track_new(&m->track, &env);
	if (r < 0)
		goto out;
	r = become_subreaper(m);
	if (r < 0)
		goto out;
	r = restore_sigchld(m);
	if (r < 0)
		goto out;
	/* Children from before us (a shell's background jobs, when it
	 * exec'd ptmon) are not any task's.  Without /proc to tell, take
	 * every orphan of unknown lineage for theirs. */
	(void)track_scan_foreign(m->track); /* failing, it says so itself */
	r = choose_backend(m, backend);
	if (r < 0)
		goto out;
	r = start_acct(m);
	if (r < 0)
		goto out;
	loop_reserve_fd(m->loop);
	*ret = m;
	m = NULL;
out:
	ptmon_monitor_free(m);
	return r;
}

/* ---- the loop --------------------------------------------------------------- */

static void cancel_all(struct ptmon_monitor *m, int signo)
{
	for (struct group *g = track_groups(m->track); g; g = g->next)
		task_cancel_for_signal(g->owner, signo);
}

/* A signal the front received, forwarded as m->front_signal with the
 * signal's number as its value (ptmon_monitor_set_front()). */
static void on_forwarded(struct ptmon_monitor *m, const struct signalfd_siginfo *si)
{
	int sig = si->ssi_int;
	if (si->ssi_code != SI_QUEUE || (pid_t)si->ssi_pid != m->front_pid || sig <= 0 ||
	    sig >= NSIG)
		return;
	if (sigismember(&m->cancel_set, sig) == 1)
		cancel_all(m, sig);
}

/* The front is gone: whoever started ptmon killed it (or it crashed).
 * Nobody waits for a graceful end any more; the caller wants it all gone.
 * Checked on every round: a task started after the front died goes too. */
static void front_check(struct ptmon_monitor *m)
{
	if (!m->front_pid || m->front_fd >= 0)
		return;
	for (struct group *g = track_groups(m->track); g; g = g->next)
		task_front_died(g->owner, m->front_pid);
}

static bool handle_signals(struct ptmon_monitor *m)
{
	bool child = false;
	struct signalfd_siginfo si;
	for (;;) {
		ssize_t n = read(m->sigfd, &si, sizeof(si));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si))
			break;
		if (si.ssi_signo == SIGCHLD)
			child = true;
		else if (m->front_pid && (int)si.ssi_signo == m->front_signal)
			on_forwarded(m, &si);
		else if (!m->front_pid)
			cancel_all(m, (int)si.ssi_signo);
		/* else sent here directly: the front got its copy, and forwards
		 * it (a group's kill, a terminal's ^C). */
	}
	return child;
}

static int on_connector_event(const struct cnproc_event *ev, void *userdata)
{
	struct ptmon_monitor *m = userdata;
	if (ev->timestamp_ns > m->newest_event_ns)
		m->newest_event_ns = ev->timestamp_ns;
	return track_handle_event(ev, m->track);
}

/* Returns whether the socket was read empty. */
static bool handle_netlink(struct ptmon_monitor *m)
{
	bool lost = false;
	const struct cnproc_stats *st = cnproc_get_stats(m->cn);
	uint64_t reads = st->datagrams + st->overruns;
	uint64_t start = util_now_ns();
	int r = cnproc_receive(m->cn, on_connector_event, m, &lost);
	if (r < 0 && r != -EAGAIN)
		lost = true;
	/* Fewer reads than the batch: it stopped at EAGAIN, every event
	 * queued before this call has been handled. */
	bool drained = r >= 0 && st->datagrams + st->overruns - reads < CNPROC_RECEIVE_BATCH;
	if (lost)
		m->argv_doubt = true;
	if (m->argv_doubt)
		track_doubt_argv(m->track);
	if (drained) {
		m->events_read_ns = start;
		acct_taskstats_settle(m->acct);
		if (!lost)
			m->argv_doubt = false;
	}
	if (track_provisional(m->track) && (drained || lost))
		track_settle_provisional(m->track, lost);
	if (lost) {
		uint64_t total = st->overruns + st->seq_missing;
		uint64_t delta = total - m->events_lost_count;
		track_events_lost(m->track);
		m->events_lost_count = total;
		for (struct group *g = track_groups(m->track); g; g = g->next)
			if (!g->done)
				event_count(m->sink, g->owner, PTMON_EVENT_LOST, delta,
					    st->overruns ? "socket overrun (ENOBUFS)"
							 : "sequence gap");
	}
	return drained || r < 0;
}

/*
 * Bounded under a storm that never lets the socket read empty (the classic
 * filter passes the whole machine's forks): the kernel stamps an event
 * (CLOCK_MONOTONIC, ktime_get_ns()) before it queues it, and the socket is
 * a FIFO, so once an event stamped after @since has been read, every event
 * queued before this call has been handled, which is all the callers need
 * (a FORK of a dead parent was queued before its death, which they saw).
 * Provisional nodes still settle only on an empty read or a loss, in
 * handle_netlink(), as before.  MAX_READ_BATCHES is a backstop for a
 * clock that does not move.
 */
#define MAX_READ_BATCHES 4096
void monitor_read_connector(struct ptmon_monitor *m)
{
	if (m->backend != PTMON_BACKEND_CONNECTOR || !m->cn)
		return;
	uint64_t since = util_now_ns();
	for (int i = 0; i < MAX_READ_BATCHES && !handle_netlink(m); i++)
		if (m->newest_event_ns > since)
			break;
}

/* What each layer's watch is for.  No task is stepped here: every task
 * is, once, after the whole batch (monitor_poll()). */
static void handle(struct ptmon_monitor *m, struct watch *w, bool *reap)
{
	switch (w->kind) {
	case WATCH_NETLINK:
		handle_netlink(m);
		break;
	case WATCH_TASKSTATS:
		acct_drain_taskstats(m->acct);
		break;
	case WATCH_SIGNAL:
		*reap |= handle_signals(m);
		break;
	case WATCH_TIMER:
		loop_timer_ack(m->loop);
		break;
	case WATCH_PIDFD: {
		struct node *n = container_of(w, struct node, w);
		track_node_dead(m->track, n);
		if (n->group)
			n->group->touched = true;
		break;
	}
	case WATCH_PIPE:
	case WATCH_OUTPUT:
		task_group(stream_handle(w))->touched = true;
		break;
	case WATCH_FRONT:
		loop_watch_del(m->loop, m->front_fd);
		m->front_fd = util_close(m->front_fd);
		break;
	case WATCH_CGROUP: /* "populated" changed: task_step() looks */
		task_cgroup_event(w);
		break;
	}
}

/* Resyncs owed: after lost events, and all the time without events. */
static void maybe_resync(struct ptmon_monitor *m, uint64_t now)
{
	bool procfs = m->backend == PTMON_BACKEND_PROCFS && tasks_running(m->tasks);
	bool due = m->next_resync && now >= m->next_resync;
	bool lost = track_resync_owed(m->track);
	if (lost && now >= track_last_resync(m->track) + LOST_RESYNC_MIN_NS)
		due = true;
	if (due)
		track_resync(m->track, lost ? "events lost" : "periodic");
	if (procfs)
		m->next_resync = track_last_resync(m->track) + PROCFS_INTERVAL_NS;
	else if (track_resync_owed(m->track))
		m->next_resync = track_last_resync(m->track) + LOST_RESYNC_MIN_NS;
	else
		m->next_resync = 0;
}

/* acct read taskstats and found records dropped: each running task hears
 * of each such read, before the next callbacks. */
static void tell_taskstats_lost(struct ptmon_monitor *m)
{
	/* Accounting only: tracking does not depend on it. */
	for (uint64_t k = acct_take_lost(m->acct); k > 0; k--)
		for (struct group *g = track_groups(m->track); g; g = g->next)
			if (!g->done)
				event_count(m->sink, g->owner, PTMON_EVENT_LOST, 1,
					    "taskstats records dropped (ENOBUFS)");
}

static int monitor_poll(struct ptmon_monitor *m, int timeout_ms)
{
	struct epoll_event evs[64];
	int n = epoll_wait(loop_fd(m->loop), evs, 64, timeout_ms);
	if (n < 0 && errno != EINTR)
		return -errno;
	bool reap = false;
	for (int i = 0; i < n; i++)
		handle(m, evs[i].data.ptr, &reap);
	/* What the handlers saw of a task (a process's death, its output
	 * read) counts before anything this round does to it: a tree that
	 * emptied and drained in this batch is done, not timed out. */
	for (struct group *g = track_groups(m->track); g; g = g->next)
		if (g->touched)
			task_progress(g->owner);
	tell_taskstats_lost(m);
	if (reap) {
		track_reap(m->track);
		tell_taskstats_lost(m);
		if (m->backend == PTMON_BACKEND_PROCFS)
			m->next_resync = util_now_ns(); /* "on every exit" */
	}
	uint64_t now = util_now_ns();
	maybe_resync(m, now);
	acct_flush_pending(m->acct, now, NULL);
	front_check(m);
	for (struct group *g = track_groups(m->track); g; g = g->next)
		(void)task_step(g->owner, now); /* monitor_rearm() below asks again */
	/* And those of the reads since: a task's end, a deadline's reaping. */
	tell_taskstats_lost(m);
	/* The only place callbacks run: every layer is done with its step. */
	sink_flush(m->sink);
	records_sweep(m);
	monitor_rearm(m);
	return (int)tasks_running(m->tasks);
}

int ptmon_monitor_dispatch(struct ptmon_monitor *m)
{
	if (!m)
		return -EINVAL;
	return monitor_poll(m, 0);
}

int ptmon_monitor_run(struct ptmon_monitor *m)
{
	if (!m)
		return -EINVAL;
	while (tasks_running(m->tasks)) {
		int r = monitor_poll(m, -1);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the rest of the public API ------------------------------------------- */

int ptmon_monitor_set_rcvbuf(struct ptmon_monitor *m, size_t bytes)
{
	if (!m || !bytes)
		return -EINVAL;
	if (!m->cn)
		return -ENOTCONN;
	return nl_set_rcvbuf(cnproc_get_fd(m->cn), bytes);
}

int ptmon_monitor_cancel_on_signals(struct ptmon_monitor *m, const sigset_t *set)
{
	if (!m || !set)
		return -EINVAL;
	sigset_t all = *set;
	sigaddset(&all, SIGCHLD);
	if (m->front_signal)
		sigaddset(&all, m->front_signal);
	if (sigprocmask(SIG_BLOCK, set, NULL) < 0)
		return -errno;
	if (signalfd(m->sigfd, &all, 0) < 0)
		return -errno;
	m->cancel_set = *set;
	return 0;
}

int ptmon_monitor_set_front(struct ptmon_monitor *m, pid_t pid, int pidfd, int fwd_sig)
{
	if (!m || pid <= 0 || pidfd < 0 || m->front_pid || fwd_sig <= 0 || fwd_sig >= NSIG ||
	    fwd_sig == SIGCHLD || fwd_sig == SIGKILL || fwd_sig == SIGSTOP)
		return -EINVAL;
	sigset_t one, all = m->cancel_set;
	sigemptyset(&one);
	sigaddset(&one, fwd_sig);
	sigaddset(&all, fwd_sig);
	sigaddset(&all, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &one, NULL) < 0 || signalfd(m->sigfd, &all, 0) < 0)
		return -errno;
	int fd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	m->front_watch.kind = WATCH_FRONT;
	/* A pidfd is readable once its process has exited: also at once, if
	 * it has already. */
	int r = loop_watch_add(m->loop, fd, EPOLLIN, &m->front_watch);
	if (r < 0)
		goto out;
	m->front_fd = fd;
	fd = -1;
	m->front_pid = pid;
	m->front_signal = fwd_sig;
out:
	util_close(fd);
	return r;
}

struct ptmon_monitor *ptmon_monitor_free(struct ptmon_monitor *m)
{
	if (!m)
		return NULL;
	if (tasks_running(m->tasks))
		track_kill_all_blocking(m->track);
	while (m->track && track_groups(m->track)) {
		struct ptmon_task *t = track_groups(m->track)->owner;
		task_unlink(t);
		task_free(t);
	}
	m->track = track_free(m->track);
	m->tasks = tasks_free(m->tasks);
	for (struct node *n = m->tree.first; n; n = n->next)
		n->pidfd = util_close(n->pidfd);
	tree_fini(&m->tree);
	/* Nothing is delivered from here (ptmon.h). */
	m->sink = sink_free(m->sink);
	m->cn = cnproc_free(m->cn);
	m->acct = acct_free(m->acct);
	util_close(m->sigfd);
	util_close(m->front_fd);
	m->loop = loop_free(m->loop);
	if (m->mask_saved) {
		/* A SIGPIPE raised while it was blocked (a write to a reader
		 * that left) would kill the caller once unblocked: it was
		 * answered by EPIPE already. */
		sigset_t pipe_set;
		sigemptyset(&pipe_set);
		sigaddset(&pipe_set, SIGPIPE);
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
			;
		/* The cancel signals stay blocked: one still pending would
		 * otherwise strike the caller on its way out. */
		sigset_t mask = m->old_mask;
		for (int s = 1; s < NSIG; s++)
			if (sigismember(&m->cancel_set, s) == 1)
				sigaddset(&mask, s);
		if (m->front_signal)
			sigaddset(&mask, m->front_signal);
		sigprocmask(SIG_SETMASK, &mask, NULL);
	}
	if (m->chld_saved)
		sigaction(SIGCHLD, &m->old_chld, NULL);
	if (m->old_subreaper == 0)
		prctl(PR_SET_CHILD_SUBREAPER, 0);
	free(m);
	return NULL;
}

int ptmon_monitor_get_fd(const struct ptmon_monitor *m)
{
	return m ? loop_fd(m->loop) : -EINVAL;
}

const char *ptmon_monitor_backend(const struct ptmon_monitor *m)
{
	return m && m->backend == PTMON_BACKEND_CONNECTOR ? "connector" : "procfs";
}

unsigned ptmon_monitor_features(const struct ptmon_monitor *m)
{
	return m ? m->features : 0;
}

int ptmon_monitor_tree_filter_error(const struct ptmon_monitor *m)
{
	if (!m)
		return -EINVAL;
	return m->backend == PTMON_BACKEND_CONNECTOR ? m->tree_filter_error : 0;
}

const char *ptmon_monitor_fallback_reason(const struct ptmon_monitor *m)
{
	return m && m->backend != PTMON_BACKEND_CONNECTOR ? m->fallback_reason : NULL;
}

void ptmon_monitor_set_notice(struct ptmon_monitor *m, ptmon_notice_fn fn, void *userdata)
{
	if (!m)
		return;
	sink_set_notice_fn(m->sink, fn, userdata);
}

/* ---- tasks -------------------------------------------------------------------- */

int ptmon_task_start(struct ptmon_monitor *m, const struct ptmon_task_config *cfg, unsigned flags,
		     struct ptmon_task **ret)
{
	return m ? task_start(m->tasks, cfg, flags, ret) : -EINVAL;
}

int ptmon_task_attach(struct ptmon_monitor *m, const struct ptmon_attach_config *cfg,
		      unsigned flags, struct ptmon_task **ret)
{
	return m ? task_attach(m->tasks, cfg, flags, ret) : -EINVAL;
}

const char *ptmon_monitor_cgroup_unavailable(const struct ptmon_monitor *m)
{
	return m && m->tasks ? tasks_cgroup_unavailable(m->tasks) : NULL;
}
