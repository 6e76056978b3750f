/* SPDX-License-Identifier: MIT */
/* Layer "task": a task's spawn, and its way from running to cancelled to
 * empty to drained, one task_step() at a time (task.h). */
#include "acct.h"
#include "cgroup.h"
#include "loop.h"
#include "procfs.h"
#include "sink.h"
#include "stream.h"
#include "sys.h"
#include "task.h"
#include "track.h"
#include "tree.h"
#include "watch.h"
#include "sized.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SWEEP_FIRST_NS (5ull * 1000000ull)
#define SWEEP_MAX_NS (200ull * 1000000ull)

enum task_phase {
	PHASE_RUNNING, /* nothing asked */
	PHASE_TERM,    /* first signal sent, grace running */
	PHASE_KILL,    /* SIGKILL sweeps until the tree is empty */
	PHASE_DRAIN,   /* tree empty, waiting for EOF */
	PHASE_DONE,
};

/* What every task shares: the layers below, the monitor's services, the
 * count of tasks running and why the last cgroup could not be had. */
struct tasks {
	struct loop *loop;
	struct sink *sink;
	struct tree *tree;
	struct track *track;
	struct acct *acct;
	struct ptmon_monitor *monitor; /* opaque: for task_monitor() only */
	pid_t self;
	bool restore_nofile;
	uint64_t nofile_cur, nofile_max;
	struct task_services svc;
	unsigned ntasks_running;  /* tasks not done */
	const char *cgroup_why;   /* ptmon_monitor_cgroup_unavailable() */
	char cgroup_why_buf[320]; /* a limit's reason, with its controller named */
	unsigned cgroup_serial;
};

int tasks_new(struct tasks **ret, const struct tasks_env *env)
{
	struct tasks *ts = calloc(1, sizeof(*ts));
	if (!ts)
		return -ENOMEM;
	*ts = (struct tasks){
		.loop = env->loop,
		.sink = env->sink,
		.tree = env->tree,
		.track = env->track,
		.acct = env->acct,
		.monitor = env->monitor,
		.self = env->self,
		.restore_nofile = env->restore_nofile,
		.nofile_cur = env->nofile_cur,
		.nofile_max = env->nofile_max,
		.svc = env->svc,
	};
	*ret = ts;
	return 0;
}

struct tasks *tasks_free(struct tasks *ts)
{
	free(ts);
	return NULL;
}

unsigned tasks_running(const struct tasks *ts)
{
	return ts ? ts->ntasks_running : 0;
}

/* The monitor's services (task_services). */
static void svc_rearm(struct tasks *ts)
{
	ts->svc.rearm(ts->svc.ctx);
}

static void svc_read_events(struct tasks *ts)
{
	ts->svc.read_events(ts->svc.ctx);
}

static void svc_counters(struct tasks *ts, struct task_counters *ret)
{
	ts->svc.counters(ts->svc.ctx, ret);
}

/*
 * The deadlines are not stored: each follows from the phase and the time
 * it began (task_next_deadline()).  The one schedule kept is sweep_at, the
 * next walk: the kill phase's sweeps back off, and a task whose tree
 * looks empty while ptmon still has children walks until it finds them.
 */
struct ptmon_task {
	struct tasks *tasks; /* the task layer's state, shared by every task */
	struct group g;      /* its processes, kept by track (tree.h) */
	struct ptmon_task_config cfg;
	char **argv; /* our copy */
	enum task_phase phase;
	int root_code; /* CLD_*, 0: unknown */
	int root_value;
	enum ptmon_cancel_reason cancel_reason;
	int cancel_signal;
	uint64_t started_ns;
	uint64_t cancel_ns; /* the cancel began (TERM or KILL), 0: none */
	uint64_t kill_ns;   /* the kill phase began */
	uint64_t empty_ns;  /* the tree was found empty (DRAIN) */
	uint64_t eof_ns;    /* done */
	uint64_t sweep_at;  /* the next walk, 0: none due */
	uint64_t sweep_interval;
	unsigned blind_sweeps; /* kill sweeps that found no live process, yet children */
	uint64_t survivors;    /* alive when the kill phase gave up */
	unsigned record_holds; /* ptmon_task_hold_records() minus releases */
	bool drain_timed_out;
	bool leftovers_noticed;
	struct task_counters final; /* the monitor's counters when it was done */
	struct stream *out;         /* NULL: none (an attached tree) */
	struct stream *err;
	struct task_cgroup *cg; /* never NULL once started (cgroup.h) */
	/* ptmon_task_attach(): a tree ptmon did not start (g.attached).  No
	 * subreaper, no output; the root's status comes from its EXIT event
	 * or from root_exit_fd (a pidfd kept for PIDFD_INFO_EXIT). */
	int root_exit_fd;
	/* `watch --cgroup`: cg is the user's (cgroup_borrowed()) and defines the
	 * tree; cgroup.events says when "populated" changes. */
	int cg_events_fd;
	struct watch cg_watch;
};

/* ---- spawn ----------------------------------------------------------------- */

static void move_fd(int from, int to)
{
	if (from == to)
		fcntl(to, F_SETFD, 0); /* keep it across exec */
	else
		dup2(from, to);
}

/* Runs in the child, which is a copy of a single-threaded process, so any
 * function is safe; it leaves only through exec or _exit(). */
static void __attribute__((noreturn))
child_exec(struct tasks *ts, struct ptmon_task *t, int out_w, int err_w, int report_w, pid_t parent,
	   bool migrate)
{
	/* "Alive": a child the kernel killed at birth never says it (see
	 * spawn_fork()). */
	int e = 0;
	ssize_t n;
	do
		n = write(report_w, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	/* Into the task's cgroup before exec: not one instruction of CMD
	 * runs outside it. */
	if (migrate && cgroup_enter(t->cg) < 0) {
		e = errno;
		do
			n = write(report_w, &e, sizeof(e));
		while (n < 0 && errno == EINTR);
		_exit(125);
	}
	/* The task must receive the signals a cancel sends: an empty mask
	 * (whatever ptmon's caller blocked), and the first signal not
	 * ignored (exec keeps SIG_IGN; handlers it resets).  SIGCHLD is at
	 * its default already (restore_sigchld()).  Other ignored signals
	 * stay ignored, as nohup means them. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	struct sigaction cur;
	if (sigaction(t->cfg.signal, NULL, &cur) == 0 && cur.sa_handler == SIG_IGN)
		signal(t->cfg.signal, SIG_DFL);
	/* If ptmon dies, the root dies with it; what it started is then on
	 * its own (README: "If ptmon is killed"). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(125);
	if (ts->restore_nofile) {
		struct rlimit rl = {.rlim_cur = ts->nofile_cur, .rlim_max = ts->nofile_max};
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	move_fd(out_w, STDOUT_FILENO);
	move_fd(err_w, STDERR_FILENO);
	execvp(t->argv[0], t->argv);
	e = errno;
	do
		n = write(report_w, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

/* 0 when the child exec'd, or its exec errno, negated. */
static int read_exec_result(int report_r, bool *ret_started)
{
	int e = 0;
	ssize_t n;
	*ret_started = false;
	do
		n = read(report_r, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(e))
		return 0; /* died before its first word */
	*ret_started = true;
	do
		n = read(report_r, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(e) ? -e : 0;
}

static void close_pair(int p[2])
{
	p[0] = util_close(p[0]);
	p[1] = util_close(p[1]);
}

/* The task's own cgroup, before the root exists.  Without one (AUTO),
 * the run goes on and says why. */
static int make_cgroup(struct tasks *ts, struct ptmon_task *t)
{
	char name[64];
	const char *why = NULL;
	struct cgroup_limits lim = {
		.memory_max = t->cfg.memory_max,
		.pids_max = t->cfg.pids_max,
		.cpu_quota_us = t->cfg.cpu_max_us,
	};
	bool limits = lim.memory_max || lim.pids_max || lim.cpu_quota_us;
	ts->cgroup_why = NULL;
	if (t->cfg.cgroup == PTMON_CGROUP_OFF)
		return limits ? -EINVAL : 0;
	snprintf(name, sizeof(name), "ptmon-%d-%u", (int)ts->self, ++ts->cgroup_serial);
	int r = cgroup_create(t->cg, name, &why);
	const char *controller = NULL;
	if (r == 0 && limits && (r = cgroup_set_limits(t->cg, &lim, &why, &controller)) < 0) {
		cgroup_finish(t->cg, false);
		cgroup_reset(t->cg);
		snprintf(ts->cgroup_why_buf, sizeof(ts->cgroup_why_buf), "the %s controller %s",
			 controller, why);
		why = ts->cgroup_why_buf;
	}
	if (r < 0)
		ts->cgroup_why = why;
	return t->cfg.cgroup == PTMON_CGROUP_ON || limits ? r : 0;
}

/* fork(), into the task's cgroup when there is one: clone3 puts it there,
 * or with @migrate a plain fork() and the child moves itself before exec.
 * (Linux 6.18 kills at birth whatever clone3 starts in a new child of a
 * cgroup once cgroup.kill'ed: task_spawn() then tries again so.) */
static pid_t spawn_fork(struct tasks *ts, struct ptmon_task *t, bool migrate)
{
	if (!cgroup_is_open(t->cg) || migrate) {
		pid_t pid = fork();
		return pid < 0 ? -errno : pid;
	}
	pid_t pid = cgroup_fork_into(t->cg);
	if ((pid == -ENOSYS || pid == -E2BIG || pid == -EINVAL) &&
	    t->cfg.cgroup == PTMON_CGROUP_AUTO) {
		ts->cgroup_why = "clone3 cannot start a process in a cgroup (Linux 5.7 is needed)";
		cgroup_finish(t->cg, false);
		cgroup_reset(t->cg);
		pid = fork();
		return pid < 0 ? -errno : pid;
	}
	if (pid < 0 && t->cfg.cgroup == PTMON_CGROUP_ON)
		ts->cgroup_why = "clone3 cannot start a process in a cgroup";
	return pid;
}

static int task_spawn(struct tasks *ts, struct ptmon_task *t)
{
	int out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
	int r = make_cgroup(ts, t);
	if (r < 0)
		return r;
	pid_t self = getpid(), pid = -1;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool started;
		if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
		    pipe2(rep, O_CLOEXEC) < 0) {
			r = -errno;
			goto out;
		}
		pid = spawn_fork(ts, t, attempt > 0);
		if (pid < 0) {
			r = pid;
			goto out;
		}
		if (pid == 0)
			child_exec(ts, t, out[1], err[1], rep[1], self, attempt > 0);
		out[1] = util_close(out[1]);
		err[1] = util_close(err[1]);
		rep[1] = util_close(rep[1]);
		r = read_exec_result(rep[0], &started);
		if (r < 0) {
			waitpid(pid, NULL, 0);
			goto out;
		}
		if (started)
			break;
		/* Killed before its first instruction: only the kernel does
		 * that (see spawn_fork()).  Once more, moving itself. */
		waitpid(pid, NULL, 0);
		pid = -1;
		close_pair(out);
		close_pair(err);
		close_pair(rep);
		if (!cgroup_is_open(t->cg))
			break;
	}
	if (pid < 0) {
		r = -ECHILD;
		goto out;
	}
	track_child_started(ts->track);
	r = track_add_root(ts->track, &t->g, pid, t->argv);
	if (r < 0)
		goto out;
	const struct stream_ctx ctx = {.loop = ts->loop, .sink = ts->sink, .self = ts->self};
	t->out = stream_new(&ctx, t, "stdout", out[0], t->cfg.stdout_fd);
	t->err = stream_new(&ctx, t, "stderr", err[0], t->cfg.stderr_fd);
	out[0] = err[0] = -1;
	r = t->out && t->err ? stream_start(t->out) : -ENOMEM;
	if (r < 0)
		goto out;
	r = stream_start(t->err);
out:
	close_pair(out);
	close_pair(err);
	close_pair(rep);
	return r;
}

/* ---- signals ----------------------------------------------------------------- */

/* What every process of the tree gets from now on, those adopted later
 * included: track sends it as it adopts them. */
static void set_phase(struct ptmon_task *t, enum task_phase phase)
{
	t->phase = phase;
	t->g.cancel_signal = phase == PHASE_TERM   ? t->cfg.signal
			     : phase == PHASE_KILL ? SIGKILL
						   : 0;
	t->g.draining = phase >= PHASE_DRAIN;
	t->g.done = phase == PHASE_DONE;
}

static void signal_all(struct ptmon_task *t)
{
	track_cancel_signal_all(t->tasks->track, &t->g);
}

/* Signal what ptmon holds, then walk /proc for what it does not (each
 * process the walk adopts is signalled at once), then what is left.  The
 * walk takes milliseconds on a big tree (25 ms for 2,000 processes): the
 * processes already proven must not wait for it. */
static void signal_and_walk(struct ptmon_task *t, const char *why)
{
	signal_all(t);
	track_resync(t->tasks->track, why);
	signal_all(t);
}

/* Kill sweeps that found nothing alive while ptmon still had children,
 * before the task's cgroup ends what they cannot see.  (Early or late,
 * cgroup.kill ends a cancel: every process in the cgroup is the task's.) */
#define BLIND_SWEEPS_MAX 2

/* After a reap: a process of @t that no walk found lives (with one task
 * and no foreign lineage, every child of ptmon is the task's).  Never for
 * an attached tree: ptmon is not its subreaper, and its own children (it
 * has none, but it never reaps to know) say nothing of it. */
static bool unseen_alive(struct ptmon_task *t)
{
	struct tasks *ts = t->tasks;
	return !t->g.attached && !t->g.live.count && !track_no_children(ts->track) &&
	       ts->ntasks_running == 1 && !track_foreign_possible(ts->track);
}

/* A fork loop whose every process forks and exits moves on faster than a
 * walk of /proc (the procfs backend, or the connector after a loss): each
 * walk finds only the dead.  The sweeps would go on blind to the kill
 * bound; the task's cgroup ends it now. */
static void sweep_blind(struct ptmon_task *t)
{
	struct tasks *ts = t->tasks;
	track_reap(ts->track);
	if (!unseen_alive(t) || ++t->blind_sweeps < BLIND_SWEEPS_MAX || !cgroup_is_open(t->cg) ||
	    cgroup_totals(t->cg)->killed)
		return;
	if (cgroup_kill(t->cg) == 0)
		sink_notice(ts->sink, t, PTMON_NOTICE_WARNING,
			    "processes of the task live that %u walks of /proc did not find (a "
			    "fork loop outrunning them): killed with cgroup.kill",
			    t->blind_sweeps);
}

static void sweep(struct ptmon_task *t)
{
	signal_and_walk(t, "kill sweep");
	sweep_blind(t);
	t->sweep_interval = t->sweep_interval ? t->sweep_interval * 2 : SWEEP_FIRST_NS;
	if (t->sweep_interval > SWEEP_MAX_NS)
		t->sweep_interval = SWEEP_MAX_NS;
	t->sweep_at = util_now_ns() + t->sweep_interval;
}

/* SIGKILL cannot end everything (a process that became root while ptmon
 * runs as a user; uninterruptible sleep): the kill phase is bounded
 * (PTMON_KILL_BOUND_NS from kill_ns), or sweeping would be a hang that
 * says nothing. */
static void enter_kill(struct ptmon_task *t)
{
	set_phase(t, PHASE_KILL);
	t->kill_ns = util_now_ns();
	t->sweep_interval = 0;
	sweep(t);
}

int ptmon_task_cancel(struct ptmon_task *t, enum ptmon_cancel_reason reason, unsigned flags)
{
	if (!t || reason == PTMON_CANCEL_NONE || reason > PTMON_CANCEL_FRONT_DIED ||
	    (flags & ~PTMON_CANCEL_NOW))
		return -EINVAL;
	bool now = flags & PTMON_CANCEL_NOW;
	if (t->phase >= PHASE_DRAIN)
		return 0;
	if (t->cancel_reason == PTMON_CANCEL_NONE) {
		t->cancel_reason = reason;
		t->cancel_ns = util_now_ns();
	}
	if (t->phase == PHASE_RUNNING && !now && t->cfg.signal != SIGKILL && t->cfg.grace_ns) {
		/* A grace period follows: walk first, so that the record
		 * knows every process alive as the cancel began.  Before the
		 * phase changes: what the walk adopts is not signalled as it
		 * is found, ahead of its parent, but by signal_all() in its
		 * order, the root first and each parent before its children. */
		track_resync(t->tasks->track, "cancel");
		set_phase(t, PHASE_TERM);
		signal_all(t);
	} else if (t->phase != PHASE_KILL) {
		enter_kill(t);
	}
	/* A caller outside the loop may cancel: its deadlines must be armed. */
	svc_rearm(t->tasks);
	return 0;
}

void task_cancel_for_signal(struct ptmon_task *t, int signo)
{
	if (t->phase >= PHASE_DRAIN)
		return;
	bool again = t->cancel_reason != PTMON_CANCEL_NONE;
	if (!again)
		t->cancel_signal = signo;
	ptmon_task_cancel(t, PTMON_CANCEL_SIGNAL, again ? PTMON_CANCEL_NOW : PTMON_CANCEL_GRACEFUL);
}

void task_front_died(struct ptmon_task *t, pid_t front)
{
	if (t->phase >= PHASE_KILL)
		return;
	sink_notice(t->tasks->sink, t, PTMON_NOTICE_INFO,
		    "the front (pid %d) exited: killing the task's processes", (int)front);
	ptmon_task_cancel(t, PTMON_CANCEL_FRONT_DIED, PTMON_CANCEL_NOW);
}

/* ---- progress -------------------------------------------------------------- */

static void enter_drain(struct ptmon_task *t)
{
	set_phase(t, PHASE_DRAIN);
	t->empty_ns = util_now_ns();
	t->sweep_at = 0;
}

/* Why SIGKILL has not ended @n. */
static enum node_survived why_alive(struct tasks *ts, struct node *n, uid_t *ret_uid)
{
	char path[32];
	struct stat st;
	snprintf(path, sizeof(path), "/proc/%d", (int)n->pid);
	*ret_uid = stat(path, &st) == 0 ? st.st_uid : (uid_t)-1;
	if (track_signal(ts->track, n, 0) == -EPERM)
		return SURVIVED_EPERM;
	struct procfs_stat ps;
	if (procfs_read_stat(n->pid, &ps) == 0 && ps.state == 'D')
		return SURVIVED_DSTATE;
	return SURVIVED_UNKNOWN;
}

/* The kill phase's bound has passed: name what is still alive, and go on
 * to drain (bounded too) instead of sweeping for ever. */
static void give_up(struct ptmon_task *t)
{
	struct tasks *ts = t->tasks;
	static const char *const why[] = {
		[SURVIVED_EPERM] = "not permitted to signal it (EPERM)",
		[SURVIVED_DSTATE] = "in uninterruptible sleep (D state)",
		[SURVIVED_UNKNOWN] = "still alive after SIGKILL",
	};
	track_resync(ts->track, "kill bound");
	signal_all(t); /* a last try, and what the walk found */
	track_reap(ts->track);
	struct node *n = t->g.live.head;
	while (n) {
		uid_t uid;
		if (n->survived != SURVIVED_NO) {
			n = n->live_next; /* named already */
			continue;
		}
		/* Dead, and its pidfd's news not handled yet: a ptmon short
		 * of CPU reaches the bound with a batch of deaths behind it,
		 * and a zombie ptmon cannot reap (an attached tree's) takes
		 * signals without an error and stays in /proc. */
		if (n->pidfd >= 0 && util_pidfd_exited(n->pidfd) == 1) {
			struct node *next = n->live_next;
			track_node_dead(ts->track, n);
			n = next;
			continue;
		}
		/* Named as it runs now: a walk may have found it between its
		 * fork and its exec, and the procfs backend sees no EXEC. */
		track_read_own(ts->track, n);
		n->survived = (uint8_t)why_alive(ts, n, &uid);
		t->survivors++;
		sink_notice(ts->sink, t, PTMON_NOTICE_WARNING,
			    "process %d (%s, uid %d) survived %llu s of SIGKILL sweeps: %s; "
			    "giving up on it",
			    (int)n->pid, n->comm, (int)uid,
			    (unsigned long long)(PTMON_KILL_BOUND_NS / 1000000000ull),
			    why[n->survived]);
		/* why_alive() may have found another process dead (a parent,
		 * proving a pid without a pidfd) and taken it off the list:
		 * go on from @n while it is listed, else from the start. */
		n = (n->flags & NODE_ALIVE) ? n->live_next : t->g.live.head;
	}
	if (unseen_alive(t)) {
		/* Not an empty tree: what lives was never seen to be signalled. */
		bool cg = cgroup_is_open(t->cg) && cgroup_kill(t->cg) == 0;
		if (!cg)
			t->survivors++; /* one at least: how many, no walk could tell */
		sink_notice(ts->sink, t, PTMON_NOTICE_WARNING,
			    "processes of the task still live after %llu s of SIGKILL sweeps, "
			    "found by no walk of /proc; %s",
			    (unsigned long long)(PTMON_KILL_BOUND_NS / 1000000000ull),
			    cg ? "killed with cgroup.kill" : "giving up on them");
	}
	enter_drain(t);
}

/* An attached tree has no subreaper to say "no children": it is empty
 * when its root and every process it tracks are dead, and no FORK of
 * theirs waits unread (each was queued before its parent's death). */
static bool attached_empty(struct ptmon_task *t)
{
	if (!t->g.root_reaped || t->g.live.count)
		return false;
	svc_read_events(t->tasks);
	return !t->g.live.count;
}

/* A watched cgroup's tree is empty when nothing tracked lives and the
 * cgroup says "populated 0".  Populated with nothing tracked: a process
 * moved in from outside (a scan finds it), one that is exiting, or one
 * ptmon cannot follow; cgroup.events wakes us when that changes.  In the
 * kill phase, cgroup.kill is the last resort for what the pidfds missed. */
static bool cgroup_watch_empty(struct ptmon_task *t)
{
	if (t->g.live.count)
		return false;
	svc_read_events(t->tasks);
	if (t->g.live.count)
		return false;
	if (cgroup_populated(t->cg) != 1)
		return true; /* "populated 0", or the cgroup is gone */
	if (track_cgroup_scan(t->tasks->track, &t->g, false) > 0)
		return false;
	if (t->phase == PHASE_KILL && !cgroup_totals(t->cg)->killed)
		cgroup_kill(t->cg);
	return false;
}

static bool tree_empty(struct ptmon_task *t)
{
	struct tasks *ts = t->tasks;
	if (cgroup_borrowed(t->cg))
		return cgroup_watch_empty(t);
	if (t->g.attached)
		return attached_empty(t);
	if (!t->g.root_reaped || t->g.live.count)
		return false;
	/* With one task, "no children" is the ground truth (we are the
	 * subreaper); with several, the tracked set has to do, and a live
	 * orphan no task could claim may be this task's. */
	if (track_no_children(ts->track) || (ts->ntasks_running > 1 && !track_unowned(ts->track)))
		return true;
	/* Foreign children keep ECHILD away: a walk classifies every child
	 * of ours instead; when it finds none of the task's, none is left
	 * (its processes are all dead, so no new one can appear). */
	if (ts->ntasks_running == 1 && track_foreign_possible(ts->track)) {
		track_resync(ts->track, "pre-existing children");
		return !t->g.live.count;
	}
	return false;
}

static void on_root_exit(struct ptmon_task *t)
{
	struct tasks *ts = t->tasks;
	if (t->leftovers_noticed || t->phase != PHASE_RUNNING)
		return;
	if (!t->g.live.count && !track_no_children(ts->track))
		track_resync(ts->track, "root exited"); /* find what it left behind */
	if (!t->g.live.count)
		return;
	t->leftovers_noticed = true;
	if (t->cfg.leftovers == PTMON_LEFTOVERS_WAIT) {
		sink_notice(ts->sink, t, PTMON_NOTICE_LEFTOVERS,
			    "task's root %d exited; waiting for %zu remaining processes",
			    (int)t->g.root->pid, t->g.live.count);
		return;
	}
	sink_notice(ts->sink, t, PTMON_NOTICE_LEFTOVERS,
		    "task's root %d exited; cancelling %zu remaining processes",
		    (int)t->g.root->pid, t->g.live.count);
	ptmon_task_cancel(t, PTMON_CANCEL_LEFTOVERS, PTMON_CANCEL_GRACEFUL);
}

/* The root of an attached tree is not ours to reap: its status is its
 * EXIT event's or, on 6.15+, PIDFD_INFO_EXIT's once its parent reaped it.
 * root_code 0: unknown. */
static void attached_root_status(struct ptmon_task *t)
{
	if (t->root_exit_fd >= 0)
		(void)acct_fact_pidfd(t->g.root, t->root_exit_fd);
	t->root_exit_fd = util_close(t->root_exit_fd);
	if (!(t->g.root->flags & NODE_EXIT_KNOWN)) {
		t->root_code = 0;
		return;
	}
	acct_status_code(t->g.root->status, &t->root_code, &t->root_value);
}

static void finish(struct ptmon_task *t)
{
	struct tasks *ts = t->tasks;
	if (t->phase == PHASE_DONE)
		return; /* abandoning a stream can reach EOF and finish first */
	/* The tree is empty, so each of its events has been queued, but
	 * ptmon may lag behind them (a loaded machine, a burst of short-lived
	 * processes): the record closes only once they are read. */
	svc_read_events(ts);
	set_phase(t, PHASE_DONE);
	t->eof_ns = util_now_ns();
	ts->ntasks_running--;
	svc_counters(ts, &t->final);
	if (t->g.attached && !cgroup_borrowed(t->cg))
		attached_root_status(t);
	else if (!t->g.attached && (t->g.root->flags & NODE_REAPED))
		acct_status_code(t->g.root->status, &t->root_code, &t->root_value);
	/* Exits still waiting for facts (an EXIT event lost, a taskstats
	 * record late): report what is known now, once the taskstats socket
	 * has been read. */
	acct_flush_pending(ts->acct, 0, t);
	for (struct node *n = ts->tree->first; n; n = n->next)
		if (n->group == &t->g && !(n->flags & NODE_ALIVE))
			acct_report_exit(ts->acct, n, true);
	/* Our descriptions of the destinations go now, not at
	 * ptmon_monitor_free(): a reader waiting for EOF (a Go caller that
	 * killed ptmon's front) must not wait for the report and the rest. */
	stream_close(t->out);
	stream_close(t->err);
	/* After the pidfd sweeps: the cgroup's own kill and proof. */
	cgroup_finish(t->cg, t->cancel_reason != PTMON_CANCEL_NONE);
	const struct cgroup_totals *cgt = cgroup_totals(t->cg);
	if (cgt->escaped)
		sink_notice(ts->sink, t, PTMON_NOTICE_WARNING,
			    "the task's cgroup still held processes once its tree was empty: "
			    "killed with cgroup.kill");
	if (cgt->oom_kills)
		sink_notice(ts->sink, t, PTMON_NOTICE_WARNING,
			    "the kernel's OOM killer killed %" PRIu64 " processes of the task (its "
			    "cgroup's memory.max)",
			    cgt->oom_kills);
	struct ptmon_event ev = {.type = PTMON_EVENT_DONE, .task = t};
	event_emit(ts->sink, &ev);
}

/* Where the tree stands now: its root gone, its tree empty, its output
 * read. */
static void update(struct ptmon_task *t)
{
	struct tasks *ts = t->tasks;
	if (t->g.root_reaped && !cgroup_borrowed(t->cg)) /* a cgroup's first member is no root */
		on_root_exit(t);
	if (t->phase < PHASE_DRAIN && t->g.root_reaped && !t->g.live.count &&
	    !track_no_children(ts->track) && ts->ntasks_running == 1 && !t->sweep_at)
		t->sweep_at = util_now_ns() + SWEEP_FIRST_NS; /* something untracked lives */
	if (t->phase < PHASE_DRAIN && tree_empty(t))
		enter_drain(t);
	if (t->phase == PHASE_DRAIN && stream_done(t->out) && stream_done(t->err))
		finish(t);
}

void task_progress(struct ptmon_task *t)
{
	t->g.touched = false;
	if (t->phase != PHASE_DONE)
		update(t);
}

/* When the phase under way ends by itself: its bound, from when it began. */
static uint64_t phase_deadline(const struct ptmon_task *t)
{
	switch (t->phase) {
	case PHASE_RUNNING:
		return t->cfg.timeout_ns ? util_deadline(t->started_ns, t->cfg.timeout_ns) : 0;
	case PHASE_TERM:
		return util_deadline(t->cancel_ns, t->cfg.grace_ns);
	case PHASE_KILL:
		return util_deadline(t->kill_ns, PTMON_KILL_BOUND_NS);
	case PHASE_DRAIN:
		return util_deadline(t->empty_ns, t->cfg.drain_ns);
	case PHASE_DONE:
		break;
	}
	return 0;
}

uint64_t task_next_deadline(const struct ptmon_task *t)
{
	uint64_t d = phase_deadline(t);
	if (t->sweep_at && t->phase < PHASE_DRAIN && (!d || t->sweep_at < d))
		d = t->sweep_at;
	return d;
}

uint64_t task_step(struct ptmon_task *t, uint64_t now)
{
	if (t->phase == PHASE_DONE)
		return 0;
	uint64_t end = phase_deadline(t);
	if (end && now >= end) {
		if (t->phase == PHASE_RUNNING)
			ptmon_task_cancel(t, PTMON_CANCEL_TIMEOUT, PTMON_CANCEL_GRACEFUL);
		else if (t->phase == PHASE_TERM)
			enter_kill(t);
		else if (t->phase == PHASE_KILL)
			give_up(t);
	}
	if (t->sweep_at && now >= t->sweep_at) {
		t->sweep_at = 0;
		if (t->phase == PHASE_KILL)
			sweep(t);
		else if (t->phase < PHASE_DRAIN)
			track_resync(t->tasks->track, "untracked children");
	}
	if (t->phase == PHASE_DRAIN && now >= phase_deadline(t)) {
		t->drain_timed_out = true;
		stream_abandon(t->out);
		stream_abandon(t->err);
		finish(t);
	}
	if (t->phase != PHASE_DONE)
		update(t);
	return task_next_deadline(t);
}

/* ---- public ---------------------------------------------------------------- */

/* The published layouts (ptmon.h, "Structs that grow"): each version ends
 * where its constant says, without tail padding that a later field could
 * fall into. */
#define offsetofend(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
_Static_assert(offsetofend(struct ptmon_task_config, stderr_fd) == PTMON_TASK_CONFIG_SIZE_VER0,
	       "ptmon_task_config VER0");
_Static_assert(sizeof(struct ptmon_task_config) == PTMON_TASK_CONFIG_SIZE_VER1,
	       "ptmon_task_config VER1");
_Static_assert(offsetofend(struct ptmon_attach_config, grace_ns) == PTMON_ATTACH_CONFIG_SIZE_VER0 &&
		       sizeof(struct ptmon_attach_config) == PTMON_ATTACH_CONFIG_SIZE_VER0,
	       "ptmon_attach_config VER0");
_Static_assert(offsetofend(struct ptmon_task_result, bytes_err) == PTMON_TASK_RESULT_SIZE_VER0,
	       "ptmon_task_result VER0");
_Static_assert(sizeof(struct ptmon_task_result) == PTMON_TASK_RESULT_SIZE_VER1,
	       "ptmon_task_result VER1");

/* The defaults, copied out as far as the caller's @size: its struct may be
 * older and smaller than ours. */
int ptmon_task_config_init(struct ptmon_task_config *cfg, size_t size)
{
	struct ptmon_task_config d = {
		.size = sizeof(d),
		.signal = SIGTERM,
		.grace_ns = PTMON_DEFAULT_GRACE_NS,
		.drain_ns = PTMON_DEFAULT_DRAIN_NS,
		.leftovers = PTMON_LEFTOVERS_KILL,
		.stdout_fd = STDOUT_FILENO,
		.stderr_fd = STDERR_FILENO,
		.cgroup = PTMON_CGROUP_AUTO,
	};
	if (!cfg || size < sizeof(cfg->size))
		return -EINVAL;
	cfg->size = size;
	return sized_copy_out(cfg, &d, sizeof(d), PTMON_TASK_CONFIG_SIZE_VER0);
}

static void abort_root(struct tasks *ts, struct ptmon_task *t)
{
	struct node *root = t->g.root;
	track_signal(ts->track, root, SIGKILL);
	waitpid(root->pid, NULL, __WALL);
	track_node_dead(ts->track, root);
	root->group = NULL;
}

static char **copy_argv(char *const *argv)
{
	size_t n = 0;
	while (argv[n])
		n++;
	char **v = calloc(n + 1, sizeof(*v));
	for (size_t i = 0; v && i < n; i++) {
		v[i] = strdup(argv[i]);
		if (!v[i]) {
			while (i--)
				free(v[i]);
			free(v);
			return NULL;
		}
	}
	return v;
}

void task_free(struct ptmon_task *t)
{
	if (!t)
		return;
	sink_forget_task(t->tasks->sink, t);
	stream_free(t->out);
	stream_free(t->err);
	/* A watched cgroup is the user's: never killed by a mere free. */
	if (t->cg)
		cgroup_finish(t->cg, !cgroup_borrowed(t->cg));
	t->cg = cgroup_free(t->cg);
	if (t->g.attached) {
		util_close(t->root_exit_fd);
		if (t->cg_events_fd >= 0)
			loop_watch_del(t->tasks->loop, t->cg_events_fd);
		util_close(t->cg_events_fd);
	}
	for (size_t i = 0; t->argv && t->argv[i]; i++)
		free(t->argv[i]);
	free(t->argv);
	free(t);
}

int task_start(struct tasks *ts, const struct ptmon_task_config *ucfg, unsigned flags,
	       struct ptmon_task **ret)
{
	if (!ts || !ucfg || !ret || flags)
		return -EINVAL;
	struct ptmon_task_config c = {0}, *cfg = &c;
	int r = sized_copy_in(&c, sizeof(c), ucfg, PTMON_TASK_CONFIG_SIZE_VER0);
	if (r < 0)
		return r;
	if (!cfg->argv || !cfg->argv[0] || cfg->signal < 0 || cfg->signal >= NSIG ||
	    cfg->leftovers > PTMON_LEFTOVERS_WAIT || cfg->cgroup > PTMON_CGROUP_OFF)
		return -EINVAL;
	struct ptmon_task *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->tasks = ts;
	t->g.owner = t;
	t->cfg = *cfg;
	if (!t->cfg.signal)
		t->cfg.signal = SIGTERM;
	t->root_exit_fd = t->cg_events_fd = -1;
	t->cg = cgroup_new();
	t->argv = copy_argv(cfg->argv);
	if (!t->argv || !t->cg) {
		r = -ENOMEM;
		goto out;
	}
	t->cfg.argv = t->argv;
	t->started_ns = util_now_ns();
	r = task_spawn(ts, t);
	if (r < 0) {
		if (t->g.root) /* spawned, but its output could not be set up */
			abort_root(ts, t);
		goto out;
	}
	track_add_group(ts->track, &t->g);
	ts->ntasks_running++;
	event_node(ts->sink, PTMON_EVENT_START, t->g.root);
	svc_rearm(ts);
	*ret = t;
	t = NULL;
	r = 0;
out:
	task_free(t);
	return r;
}

/* ---- attach ------------------------------------------------------------------ */

int ptmon_attach_config_init(struct ptmon_attach_config *cfg, size_t size)
{
	struct ptmon_attach_config d = {
		.size = sizeof(d),
		.signal = SIGTERM,
		.grace_ns = PTMON_DEFAULT_GRACE_NS,
	};
	if (!cfg || size < sizeof(cfg->size))
		return -EINVAL;
	cfg->size = size;
	return sized_copy_out(cfg, &d, sizeof(d), PTMON_ATTACH_CONFIG_SIZE_VER0);
}

/* Refused before anything is adopted: a failed attach leaves no node. */
static int check_members(struct ptmon_task *t)
{
	pid_t *pids = NULL;
	int n = cgroup_read_procs(t->cg, &pids);
	int r = n < 0 ? n : 0;
	for (int i = 0; i < n && r == 0; i++)
		r = track_check_top(pids[i]);
	free(pids);
	return r;
}

/* `ptmon watch --cgroup`: every process in the cgroup (and the cgroups
 * below it) is a top of the tree; their descendants follow by lineage. */
static int attach_cgroup(struct tasks *ts, struct ptmon_task *t, const char *path)
{
	const char *why = NULL;
	int fd = -1;
	int r = cgroup_open_existing(t->cg, path, &why);
	if (r < 0) {
		ts->cgroup_why = why;
		goto out;
	}
	ts->cgroup_why = NULL;
	r = check_members(t);
	if (r < 0)
		goto out;
	r = cgroup_events_open(t->cg);
	if (r < 0) {
		ts->cgroup_why = "cannot open its cgroup.events (the root cgroup has none)";
		goto out;
	}
	fd = r;
	t->g.watched = t->cg;
	t->cg_watch.kind = WATCH_CGROUP;
	r = loop_watch_add(ts->loop, fd, EPOLLPRI, &t->cg_watch);
	if (r < 0)
		goto out;
	t->cg_events_fd = fd;
	fd = -1;
	r = track_cgroup_scan(ts->track, &t->g, true);
	if (r == 0 || !t->g.root) {
		ts->cgroup_why = "it holds no process";
		r = r < 0 ? r : -ESRCH;
		goto out;
	}
	r = r < 0 ? r : 0;
out:
	util_close(fd);
	return r;
}

void task_unlink(struct ptmon_task *t)
{
	track_remove_group(t->tasks->track, &t->g);
}

int task_attach(struct tasks *ts, const struct ptmon_attach_config *ucfg, unsigned flags,
		struct ptmon_task **ret)
{
	if (!ts || !ucfg || !ret || flags)
		return -EINVAL;
	struct ptmon_attach_config c = {0}, *cfg = &c;
	int r = sized_copy_in(&c, sizeof(c), ucfg, PTMON_ATTACH_CONFIG_SIZE_VER0);
	if (r < 0)
		return r;
	if (cfg->signal < 0 || cfg->signal >= NSIG || (cfg->cgroup && cfg->pid))
		return -EINVAL;
	r = cfg->cgroup ? 0 : track_check_top(cfg->pid);
	if (r < 0)
		return r;
	struct ptmon_task *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->tasks = ts;
	t->g.owner = t;
	ptmon_task_config_init(&t->cfg, sizeof(t->cfg));
	t->cfg.signal = cfg->signal ? cfg->signal : SIGTERM;
	t->cfg.grace_ns = cfg->grace_ns;
	t->cfg.timeout_ns = cfg->timeout_ns;
	t->cfg.leftovers = PTMON_LEFTOVERS_WAIT; /* the end: when all of it is gone */
	t->cfg.cgroup = PTMON_CGROUP_OFF;
	t->cfg.drain_ns = 0;
	/* No output to drain: t->out and t->err stay NULL. */
	t->g.attached = true;
	t->root_exit_fd = t->cg_events_fd = -1;
	t->cg = cgroup_new();
	if (!t->cg) {
		r = -ENOMEM;
		goto out;
	}
	t->started_ns = util_now_ns();
	/* In the list before the walk: what it finds is this task's. */
	track_add_group(ts->track, &t->g);
	ts->ntasks_running++;
	r = cfg->cgroup ? attach_cgroup(ts, t, cfg->cgroup)
			: track_attach_root(ts->track, &t->g, cfg->pid, &t->root_exit_fd);
	if (r < 0) {
		/* Out of the list again, before task_free() below. */
		task_unlink(t);
		ts->ntasks_running--;
		goto out;
	}
	if (!cfg->cgroup)
		event_node(ts->sink, PTMON_EVENT_START, t->g.root);
	track_resync(ts->track, "attach");
	svc_rearm(ts);
	*ret = t;
	t = NULL;
	r = 0;
out:
	task_free(t);
	return r;
}

bool ptmon_task_attached(const struct ptmon_task *t)
{
	return t && t->g.attached;
}

bool ptmon_task_done(const struct ptmon_task *t)
{
	return t && t->phase == PHASE_DONE;
}

pid_t ptmon_task_root_pid(const struct ptmon_task *t)
{
	return t && t->g.root ? t->g.root->pid : 0;
}

const char *ptmon_task_cgroup_path(const struct ptmon_task *t)
{
	return t && t->cg && cgroup_path(t->cg)[0] ? cgroup_path(t->cg) : NULL;
}

const char *tasks_cgroup_unavailable(const struct tasks *ts)
{
	return ts->cgroup_why;
}

int ptmon_task_result(const struct ptmon_task *t, struct ptmon_task_result *ret)
{
	if (!t || !ret)
		return -EINVAL;
	if (t->phase != PHASE_DONE)
		return -EBUSY;
	const struct cgroup_totals *cgt = cgroup_totals(t->cg);
	struct ptmon_task_result r = {
		.size = sizeof(r),
		.root_pid = t->g.root ? t->g.root->pid : 0,
		.root_status = t->root_code,
		.root_value = t->root_value,
		.cancel_reason = t->cancel_reason,
		.cancel_signal = t->cancel_signal,
		.processes = t->g.processes,
		.signalled = t->g.signalled,
		.killed = t->g.killed,
		.events_lost = t->final.events_lost,
		.resyncs = t->final.resyncs,
		.foreign_dropped = t->final.foreign,
		.pids_reused = t->final.pids_reused,
		.pidfd_failures = t->final.pidfd_failures,
		.drain_timed_out = t->drain_timed_out,
		.cgroup = cgroup_path(t->cg)[0] != '\0',
		.cgroup_killed = cgt->killed,
		.cgroup_empty_proof = cgt->empty_proof,
		.cgroup_escaped = cgt->escaped,
		.cgroup_removed = cgt->removed,
		.cgroup_have_cpu = cgt->have_cpu,
		.cgroup_cpu_usec = cgt->usage_usec,
		.cgroup_user_usec = cgt->user_usec,
		.cgroup_system_usec = cgt->system_usec,
		.cgroup_have_memory_peak = cgt->have_memory_peak,
		.cgroup_have_pids_peak = cgt->have_pids_peak,
		.cgroup_have_io = cgt->have_io,
		.cgroup_have_oom = cgt->have_oom,
		.cgroup_memory_peak = cgt->memory_peak,
		.cgroup_pids_peak = cgt->pids_peak,
		.cgroup_io_rbytes = cgt->io_rbytes,
		.cgroup_io_wbytes = cgt->io_wbytes,
		.cgroup_oom_kills = cgt->oom_kills,
		.survivors = t->survivors,
		.events_received = t->final.events_received,
		.attached = t->g.attached,
	};
	stream_counts(t->out, &r.bytes_out, &r.dropped_out, &r.error_out);
	stream_counts(t->err, &r.bytes_err, &r.dropped_err, &r.error_err);
	if (t->cancel_ns) {
		r.cancel_to_empty_ns = t->empty_ns - t->cancel_ns;
		r.cancel_to_eof_ns = t->eof_ns - t->cancel_ns;
	}
	return sized_copy_out(ret, &r, sizeof(r), PTMON_TASK_RESULT_SIZE_VER0);
}

/* ---- acting on one process --------------------------------------------------- */

const struct ptmon_process *ptmon_task_find_process(const struct ptmon_task *t, pid_t pid)
{
	if (!t || pid <= 0)
		return NULL;
	struct node *n = tree_lookup(t->tasks->tree, pid);
	if (n && n->group == &t->g)
		return (const struct ptmon_process *)n;
	/* Not the current owner of the pid: the latest of ours that had it. */
	const struct node *found = NULL;
	for (const struct node *x = t->tasks->tree->first; x; x = x->next)
		if (x->pid == pid && x->group == &t->g)
			found = x;
	return (const struct ptmon_process *)found;
}

/* A signal asked for by the caller, counted like those of a cancel. */
static int kill_one(struct ptmon_task *t, struct node *n, int sig)
{
	bool first = !(n->flags & NODE_SIGNALLED);
	int r = track_signal(t->tasks->track, n, sig);
	if (r == 0 && sig) {
		t->g.signalled += first;
		t->g.killed += sig == SIGKILL;
	}
	return r;
}

static bool below(const struct node *x, const struct node *top)
{
	for (; x; x = x->parent)
		if (x == top)
			return true;
	return false;
}

static int kill_tree(struct ptmon_task *t, pid_t pid, int sig, unsigned flags)
{
	struct tasks *ts = t->tasks;
	struct node *n = tree_lookup(ts->tree, pid);
	if (!n || n->group != &t->g)
		return ptmon_task_find_process(t, pid) ? -ESRCH : -ENOENT;
	if (!(n->flags & NODE_ALIVE) || (n->pidfd >= 0 && util_pidfd_exited(n->pidfd) == 1))
		return -ESRCH;
	int r = kill_one(t, n, sig);
	if (r < 0)
		return r;
	int count = 1;
	if (!(flags & PTMON_KILL_SUBTREE))
		return count;
	struct node *x = t->g.live.head;
	while (x) {
		struct node *next = x->live_next;
		if (x != n && below(x, n) && kill_one(t, x, sig) == 0)
			count++;
		x = next;
	}
	return count;
}

int ptmon_task_kill(struct ptmon_task *t, pid_t pid, int sig, unsigned flags)
{
	if (!t || sig < 0 || sig >= NSIG || (flags & ~PTMON_KILL_SUBTREE))
		return -EINVAL;
	int r = kill_tree(t, pid, sig, flags);
	/* Its SIGNAL events wait for the next dispatch: make it come. */
	svc_rearm(t->tasks);
	return r;
}

/* ---- for the monitor ------------------------------------------------------- */

struct group *task_group(struct ptmon_task *t)
{
	return &t->g;
}

const struct group *task_group_const(const struct ptmon_task *t)
{
	return &t->g;
}

struct ptmon_monitor *task_monitor(const struct ptmon_task *t)
{
	return t->tasks->monitor;
}

int task_cancel_signal(const struct ptmon_task *t)
{
	return t->cfg.signal;
}

uint64_t task_cancel_ns(const struct ptmon_task *t)
{
	return t->cancel_ns;
}

bool task_holds_records(const struct ptmon_task *t)
{
	return t->record_holds > 0;
}

void ptmon_task_hold_records(struct ptmon_task *t)
{
	if (t)
		t->record_holds++;
}

void ptmon_task_release_records(struct ptmon_task *t)
{
	if (t && t->record_holds)
		t->record_holds--;
}

void task_cgroup_event(struct watch *w)
{
	cgroup_events_ack(container_of(w, struct ptmon_task, cg_watch)->cg_events_fd);
}
