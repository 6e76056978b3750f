/* SPDX-License-Identifier: MIT */
/*
 * Tracking: which processes belong to the tree.  A process is adopted only
 * with proof: a pidfd is opened for it, and while that pidfd still refers to
 * a live process, its parent is ptmon (the subreaper: only our own
 * descendants are ever reparented to us) or a tracked process whose own
 * pidfd says it is still alive.  A pid that changed hands between an event
 * and our look is therefore never adopted, whatever the event said.
 *
 * Not every descendant of ptmon is the task's: a shell that exec'd ptmon
 * leaves its background jobs as ptmon's children.  Those, found at creation,
 * and what they fork are "foreign" nodes, proven the same way and never
 * signalled, counted or reported.  The lineage decides: a process forked by
 * a task's process is the task's, one forked by a foreign one is foreign.
 * An orphan reparented to ptmon whose parent ptmon never saw (events lost,
 * or the procfs backend) has no provable lineage: it is the task's when no
 * foreign lineage exists (no foreign process alive, and none died since the
 * last walk began); otherwise it is taken for foreign (NODE_GUESSED) until
 * its fork event, if one comes, names a task's process as its parent.
 */
#include "acct.h"
#include "cgroup.h"
#include "loop.h"
#include "ptmon.h"
#include "tree.h"
#include "procfs.h"
#include "sink.h"
#include "sys.h"
#include "track.h"
#include "cnproc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

struct track {
	/* Handed over by the monitor (track_new(), track_set_acct()). */
	struct tree *tree;
	struct loop *loop;
	struct sink *sink;
	struct acct *acct;
	struct cnproc *const *cn; /* the monitor's connector, NULL: none (yet) */
	unsigned *features;       /* the monitor's PTMON_FEATURE_*: parent_of() may
				     learn PIDFD_GET_INFO is missing after all */
	pid_t self;
	int sigfd; /* the monitor's signalfd, SIGCHLD among its signals */
	/* Its own. */
	struct group *groups;     /* every task's share of the tree */
	struct node_list unowned; /* live processes no task could claim */
	/* Processes that are not any task's: ptmon's children from before the
	 * monitor (a shell's background jobs, when the shell exec'd ptmon)
	 * and their descendants.  Reaped, never signalled, counted or
	 * reported. */
	struct node_list foreign;
	bool foreign_dirty;        /* a foreign process died: its orphans may be ours to see */
	uint64_t foreign_death_ns; /* when the last foreign death was noticed */
	bool no_children;          /* wait4 said ECHILD */
	bool events_lost;          /* a resync is owed */
	uint32_t resync_gen;
	uint64_t last_resync_ns;
	struct track_stats stats;
	size_t nprovisional;       /* live NODE_PROVISIONAL nodes */
	struct node *argv_checked; /* track_doubt_argv() settled the tree up to here */
};

int track_new(struct track **ret, const struct track_env *env)
{
	struct track *tr = calloc(1, sizeof(*tr));
	if (!tr)
		return -ENOMEM;
	*tr = (struct track){
		.tree = env->tree,
		.loop = env->loop,
		.sink = env->sink,
		.cn = env->cn,
		.features = env->features,
		.self = env->self,
		.sigfd = env->sigfd,
	};
	*ret = tr;
	return 0;
}

struct track *track_free(struct track *tr)
{
	free(tr);
	return NULL;
}

void track_set_acct(struct track *tr, struct acct *a)
{
	tr->acct = a;
}

struct group *track_groups(const struct track *tr)
{
	return tr->groups;
}

void track_add_group(struct track *tr, struct group *g)
{
	g->next = tr->groups;
	tr->groups = g;
}

void track_remove_group(struct track *tr, struct group *g)
{
	for (struct group **pp = &tr->groups; *pp; pp = &(*pp)->next)
		if (*pp == g) {
			*pp = g->next;
			return;
		}
}

bool track_no_children(const struct track *tr)
{
	return tr->no_children;
}

void track_child_started(struct track *tr)
{
	tr->no_children = false;
}

size_t track_unowned(const struct track *tr)
{
	return tr->unowned.count;
}

const struct track_stats *track_get_stats(const struct track *tr)
{
	return &tr->stats;
}

void track_events_lost(struct track *tr)
{
	tr->events_lost = true;
}

bool track_resync_owed(const struct track *tr)
{
	return tr->events_lost;
}

uint64_t track_last_resync(const struct track *tr)
{
	return tr->last_resync_ns;
}

size_t track_provisional(const struct track *tr)
{
	return tr->nprovisional;
}

void track_node_dropping(struct track *tr, struct node *n, struct node *prev)
{
	if (tr->argv_checked == n)
		tr->argv_checked = prev; /* track_doubt_argv() goes on after its cursor */
}

/* ---- the tree filter's map ---------------------------------------------------- */

bool track_tree_filtered(const struct track *tr)
{
	return *tr->cn && cnproc_tree_filtered(*tr->cn);
}

/* A walk found @pid.  If the filter did not have it, its children forked
 * before now were dropped, and those still alive are for the next walk to
 * find: walks repeat until one finds nothing the filter missed. */
static void filter_add(struct track *tr, pid_t pid)
{
	if (track_tree_filtered(tr) && cnproc_tree_add(*tr->cn, pid) > 0)
		tr->events_lost = true;
}

/*
 * Whether the process that holds @pid now may be the tree's: it has not
 * exited, and its parent is ptmon or in the filter's map.  Every live
 * process of the tree has such a parent: the filter adds the children of
 * the processes in the map, and a process leaves the map only dead (its
 * children reparented to us by then) or through this test.  A stranger
 * that got a number the map still held fails it.  Runs while the filter
 * still passes @pid's events (cnfilter_remove()).
 */
static bool holder_may_be_ours(pid_t pid, void *userdata)
{
	struct track *tr = userdata;
	int fd = util_pidfd_open(pid, 0);
	if (fd < 0)
		return false;
	pid_t ppid = 0;
	int r = util_pidfd_exited(fd) == 0 ? 0 : -ESRCH;
	if (r == 0 && (*tr->features & PTMON_FEATURE_PIDFD_INFO))
		r = util_pidfd_ppid(fd, &ppid);
	else if (r == 0) {
		struct procfs_stat st;
		r = procfs_read_stat(pid, &st);
		ppid = st.ppid;
		/* Read before it exited: the number was still its own. */
		if (r == 0 && util_pidfd_exited(fd) != 0)
			r = -ESRCH;
	}
	util_close(fd);
	/* A failed look cannot clear it: keep it (a stranger costs only). */
	if (r < 0)
		return r != -ESRCH;
	return ppid == tr->self || cnproc_tree_contains(*tr->cn, ppid) != 0;
}

/*
 * @pid was seen dead (pidfd readable, or reaped), not on its leader's
 * EXIT, which other threads outlive: take it out of the filter's map.  By
 * now the number may belong to a new process of the tree (pids wrap; a
 * fork loop gets them back within a second), which the filter added when
 * it was forked: it stays.  Its events meanwhile were passed (the removal
 * is guarded), so no walk is owed.
 */
void track_filter_dead(struct track *tr, pid_t pid)
{
	if (!track_tree_filtered(tr) || cnproc_tree_passing_all(*tr->cn))
		return;
	cnproc_tree_remove(*tr->cn, pid, holder_may_be_ours, tr);
}

/* An event passed the filter for @pid that the monitor has no process
 * for: the filter added it as the child of one that is not ours (ptmon's
 * own probe child, a reused number the map still held), unless it is a
 * process of the tree that the monitor could not adopt. */
static void filter_stranger(struct track *tr, pid_t pid)
{
	if (pid != tr->self && track_tree_filtered(tr) && !cnproc_tree_passing_all(*tr->cn))
		cnproc_tree_remove(*tr->cn, pid, holder_may_be_ours, tr);
}

/* Whether the tree filter holds @pid for the tree's (false without it, or
 * when it passes every process's events). */
static bool filter_holds(struct track *tr, pid_t pid)
{
	return track_tree_filtered(tr) && !cnproc_tree_passing_all(*tr->cn) &&
	       cnproc_tree_contains(*tr->cn, pid) == 1;
}

/* ---- tracking ------------------------------------------------------------------- */

/* The one group not done, NULL when there are none or several. */
static struct group *sole_group(struct track *tr)
{
	struct group *found = NULL;
	for (struct group *g = tr->groups; g; g = g->next) {
		if (g->done)
			continue;
		if (found)
			return NULL;
		found = g;
	}
	return found;
}

static struct node_list *live_list(struct track *tr, struct node *n)
{
	if (n->flags & NODE_FOREIGN)
		return &tr->foreign;
	return n->group ? &n->group->live : &tr->unowned;
}

bool track_foreign_possible(const struct track *tr)
{
	return tr->foreign.count || tr->foreign_dirty;
}

static struct node *new_node(struct track *tr, pid_t pid, struct node *parent, struct group *g)
{
	struct node *n = tree_add(tr->tree, pid);
	if (!n)
		return NULL;
	n->w.kind = WATCH_PIDFD;
	n->parent = parent;
	n->group = g;
	n->start_ns = util_now_ns();
	n->argv_src = PTMON_ARGV_UNKNOWN;
	if (parent) {
		/* fork copies comm and argv: true until the child execs, and
		 * its EXEC event, queued after the FORK, says when it does. */
		memcpy(n->comm, parent->comm, sizeof(n->comm));
		n->argv = argv_buf_ref(parent->argv);
		if (n->argv)
			n->argv_src = PTMON_ARGV_INHERITED;
	}
	if (g)
		g->processes++;
	return n;
}

/* A process joined the record: say so. */
static struct node *born(struct track *tr, struct node *n)
{
	if (n && !(n->flags & NODE_FOREIGN))
		event_node(tr->sink, PTMON_EVENT_FORK, n);
	return n;
}

/* A live parent proven by its pidfd, or ptmon itself. */
static bool parent_is_ours(struct track *tr, pid_t ppid, struct node **ret)
{
	*ret = NULL;
	if (ppid == tr->self)
		return true;
	struct node *p = tree_lookup(tr->tree, ppid);
	if (!p || !(p->flags & NODE_ALIVE) || p->pidfd < 0)
		return false;
	if (util_pidfd_exited(p->pidfd) != 0)
		return false;
	*ret = p;
	return true;
}

/* The parent of the process behind @pidfd, read so that it belongs to that
 * very process: atomically through PIDFD_GET_INFO, or from /proc followed
 * by a check that the pidfd's process had not exited (so the pid was still
 * its own when /proc was read). */
static int parent_of(struct track *tr, int pidfd, pid_t pid, pid_t *ret)
{
	if (*tr->features & PTMON_FEATURE_PIDFD_INFO) {
		int r = util_pidfd_ppid(pidfd, ret);
		if (r != -ENOTTY && r != -EINVAL)
			return r;
		*tr->features &= ~PTMON_FEATURE_PIDFD_INFO;
	}
	struct procfs_stat st;
	int r = procfs_read_stat(pid, &st);
	if (r < 0)
		return r;
	if (util_pidfd_exited(pidfd) != 0)
		return -ESRCH;
	*ret = st.ppid;
	return 0;
}

/* parent_of(), proven as parent_is_ours() does.  A tracked parent may die
 * between the read and the look at its pidfd: its children were
 * reparented (to ptmon, or to a subreaper of the tree) before its pidfd
 * said so, so read again.  Its node is marked dead first, so that each
 * round needs a different dead parent; a pid a stranger took names no
 * live node of ours and fails.  -EPERM: not provably ours. */
static int proven_parent(struct track *tr, int pidfd, pid_t pid, pid_t *ret_ppid,
			 struct node **ret_parent)
{
	for (;;) {
		int r = parent_of(tr, pidfd, pid, ret_ppid);
		if (r < 0)
			return r;
		if (parent_is_ours(tr, *ret_ppid, ret_parent))
			return 0;
		struct node *p = tree_lookup(tr->tree, *ret_ppid);
		if (!p || !(p->flags & NODE_ALIVE) || p->pidfd < 0 ||
		    util_pidfd_exited(p->pidfd) != 1)
			return -EPERM;
		track_node_dead(tr, p);
	}
}

static struct node *record_gone(struct track *tr, pid_t pid, struct node *hint)
{
	if (!hint || (hint->flags & NODE_FOREIGN))
		return NULL;
	struct node *n = new_node(tr, pid, hint, hint->group);
	if (n) {
		n->flags |= NODE_SHORT;
		n->end_ns = n->start_ns;
		born(tr, n);
	}
	return n;
}

/* A walk reads /proc before it looks at each pid, so a pid it lists that
 * has exited (or is free by now), whose process ptmon already knows dead,
 * is that process, seen before its death or its parent's reaping: not a
 * new short-lived one, which would put it in the record twice.  But ptmon
 * reaps only between walks (track_reap()): a pid it reaped itself that a
 * walk lists is a newer process's, and an event always names a new one. */
static bool known_dead(const struct node *cur, uint64_t event_ns)
{
	return cur && !event_ns && !(cur->flags & (NODE_ALIVE | NODE_REAPED));
}

/* @pid has exited or is free. */
static struct node *gone(struct track *tr, pid_t pid, struct node *cur, struct node *hint,
			 uint64_t event_ns)
{
	if (known_dead(cur, event_ns))
		return cur;
	return record_gone(tr, pid, hint);
}

/* No pidfd to be had (fd limit): keep the pid, unverified, so that the
 * cancel sweeps reach it with a transient pidfd. */
static struct node *record_nopidfd(struct track *tr, pid_t pid, struct node *hint)
{
	tr->stats.pidfd_failures++;
	if (hint && (hint->flags & NODE_FOREIGN)) {
		/* Not followed: an orphan it leaves cannot be told apart. */
		tr->foreign_dirty = true;
		tr->foreign_death_ns = util_now_ns();
		return NULL;
	}
	if (!hint)
		return NULL;
	struct node *n = new_node(tr, pid, hint, hint->group);
	if (!n)
		return NULL;
	n->flags |= NODE_ALIVE | NODE_NOPIDFD;
	n->seen_gen = tr->resync_gen;
	node_list_add(live_list(tr, n), n);
	return born(tr, n);
}

static void set_argv(struct node *n, struct argv_buf *a, enum ptmon_argv_source src)
{
	argv_buf_unref(n->argv);
	n->argv = a;
	n->argv_src = (uint8_t)(a ? src : PTMON_ARGV_UNKNOWN);
}

/* Read @pid's argv and comm from /proc for @n, which @pidfd refers to.
 * What was read is @n's only if @pidfd's process still lived after the
 * read: the pid was its own then.  Returns false when nothing could be
 * proven (@n's argv and comm are then left alone). */
static bool read_own(struct node *n, pid_t pid, int pidfd)
{
	char comm[16] = "";
	struct argv_buf *a = procfs_read_argv(pid);
	bool comm_ok = procfs_read_comm(pid, comm) == 0;
	if (pidfd < 0 || util_pidfd_exited(pidfd) != 0) {
		argv_buf_unref(a);
		return false;
	}
	if (comm_ok)
		memcpy(n->comm, comm, sizeof(n->comm));
	if (!a)
		return false; /* empty: a zombie's (or a kernel thread's) */
	set_argv(n, a, PTMON_ARGV_OWN);
	return true;
}

static void attach_pidfd(struct track *tr, struct node *n, int pidfd)
{
	n->pidfd = pidfd;
	n->flags &= ~NODE_NOPIDFD;
	if (loop_watch_add(tr->loop, pidfd, EPOLLIN, &n->w) < 0) {
		/* Without the watch we would not see it die; the reaper and
		 * resyncs still would, so keep the pidfd for signals. */
		sink_notice(tr->sink, node_task(n), PTMON_NOTICE_WARNING,
			    "cannot watch pidfd of %d; relying on /proc", (int)n->pid);
	}
}

/* An attached tree has no subreaper: a child whose parent died before
 * ptmon could prove the parent is reparented elsewhere, and its ppid no
 * longer names the event's parent. */
static bool orphan_of_attached(const struct node *hint, uint64_t event_ns)
{
	if (!hint || !event_ns || !hint->group || !hint->group->attached ||
	    (hint->flags & NODE_FOREIGN))
		return false;
	return !(hint->flags & NODE_ALIVE) || hint->pidfd < 0 ||
	       util_pidfd_exited(hint->pidfd) != 0;
}

/*
 * Keep @pidfd for the child the FORK event named, on the event's word: the
 * pid may have changed hands since, but only after the child's EXIT event
 * was queued (the connector sends it in do_exit(), before the pid can be
 * freed), so before @pidfd was opened.  The connector read empty without
 * such an EXIT (track_settle_provisional()) proves the pidfd the child's.
 * Until then it is neither reported nor signalled.
 */
static struct node *adopt_provisional(struct track *tr, pid_t pid, struct node *hint, int pidfd,
				      pid_t ppid)
{
	struct node *n = NULL;
	if (util_pidfd_exited(pidfd) != 0) {
		n = record_gone(tr, pid, hint);
		goto out;
	}
	n = new_node(tr, pid, hint, hint->group);
	if (!n)
		goto out;
	n->ppid = ppid;
	n->seen_gen = tr->resync_gen;
	n->flags |= NODE_ALIVE | NODE_PROVISIONAL;
	tr->nprovisional++;
	node_list_add(&n->group->live, n);
	attach_pidfd(tr, n, pidfd);
	pidfd = -1;
out:
	util_close(pidfd);
	return n;
}

struct node *track_adopt(struct track *tr, pid_t pid, struct node *hint, uint64_t event_ns)
{
	struct node *cur = tree_lookup(tr->tree, pid);
	if (cur && (cur->flags & NODE_ALIVE) && !(cur->flags & NODE_NOPIDFD))
		return cur;
	int pidfd = util_pidfd_open(pid, 0);
	if (pidfd == -EMFILE || pidfd == -ENFILE) {
		if (cur && (cur->flags & NODE_ALIVE))
			return cur;
		return record_nopidfd(tr, pid, hint);
	}
	if (pidfd < 0) {
		if (cur && (cur->flags & NODE_ALIVE))
			return cur;
		return gone(tr, pid, cur, hint, event_ns);
	}

	struct node *res = NULL;
	pid_t ppid = 0;
	struct node *parent = NULL;
	int r = proven_parent(tr, pidfd, pid, &ppid, &parent);
	if (r < 0) {
		if (r == -EPERM && !cur && orphan_of_attached(hint, event_ns)) {
			res = adopt_provisional(tr, pid, hint, pidfd, ppid); /* takes the pidfd */
			pidfd = -1;
			goto out;
		}
		if (r == -ESRCH) {
			res = gone(tr, pid, cur, hint, event_ns);
			goto out;
		}
		if (hint)
			tr->stats.pids_reused++;
		goto out;
	}
	if (cur && (cur->flags & NODE_ALIVE)) {
		/* A pid kept without a pidfd (fd limit), now verified. */
		attach_pidfd(tr, cur, pidfd);
		pidfd = -1;
		res = cur;
		goto out;
	}
	bool zombie = util_pidfd_exited(pidfd) != 0;
	if (zombie && !event_ns && !cur) {
		/* A walk found one already dead: nothing to signal, and how it
		 * ended is for its parent's wait (or our reaper) to tell. */
		goto out;
	}
	if (zombie && known_dead(cur, event_ns)) {
		/* (Duplicates of one that a resync found first, named by a
		 * fork event, are caught in on_fork().) */
		res = cur;
		goto out;
	}
	/* The event's parent is the one that forked it; when it has died and
	 * the child was reparented to us, keep the original for the record. */
	struct node *tparent = (parent && parent != hint) ? parent : hint;
	/* The lineage decides; an orphan of unknown lineage is the task's
	 * only when no foreign lineage could have left it to us. */
	bool foreign = tparent ? (tparent->flags & NODE_FOREIGN) : track_foreign_possible(tr);
	struct group *g = foreign ? NULL : tparent ? tparent->group : sole_group(tr);
	struct node *n = new_node(tr, pid, tparent, g);
	if (!n)
		goto out;
	if (foreign)
		n->flags |= NODE_FOREIGN | (tparent ? 0 : NODE_GUESSED);
	n->ppid = ppid;
	n->seen_gen = tr->resync_gen;
	if (!event_ns) {
		/* Found by a walk: it may have exec'd unseen, and started
		 * before now. */
		n->flags |= NODE_WALKED;
		if (!read_own(n, pid, pidfd))
			set_argv(n, NULL, PTMON_ARGV_UNKNOWN);
	}
	if (zombie) {
		/* Ours, but already gone: nothing to signal. */
		n->flags |= NODE_SHORT;
		n->end_ns = n->start_ns;
		res = born(tr, n);
		goto out;
	}
	n->flags |= NODE_ALIVE;
	node_list_add(live_list(tr, n), n);
	attach_pidfd(tr, n, pidfd);
	pidfd = -1;
	res = n;
	if (!event_ns)
		filter_add(tr, pid);
	if (tparent && (tparent->flags & NODE_PROVISIONAL)) {
		/* Proven only as far as its parent is. */
		n->flags |= NODE_PROVISIONAL;
		tr->nprovisional++;
		goto out;
	}
	born(tr, n);
	track_cancel_signal(tr, n);
out:
	util_close(pidfd);
	return res;
}

static void confirm_provisional(struct track *tr, struct node *n)
{
	n->flags &= ~(NODE_PROVISIONAL | NODE_CANCEL_SENT);
	tr->nprovisional--;
	born(tr, n);
	if (n->flags & NODE_ALIVE)
		track_cancel_signal(tr, n);
	else
		acct_report_exit(tr->acct, n, false);
}

/* Not provably the process the event named: out of the task and of the
 * index, never reported or signalled. */
static void drop_provisional(struct track *tr, struct node *n, const char *why)
{
	struct group *g = n->group;
	n->flags &= ~NODE_PROVISIONAL;
	tr->nprovisional--;
	if (n->flags & NODE_ALIVE) {
		n->flags &= ~NODE_ALIVE;
		n->pidfd = util_close(n->pidfd);
		node_list_del(&g->live, n);
		track_filter_dead(tr, n->pid);
	}
	acct_forget(tr->acct, n);
	g->processes--;
	n->group = NULL;
	n->flags |= NODE_FOREIGN;
	tree_unindex(tr->tree, n);
	tr->stats.pids_reused++;
	sink_notice(tr->sink, g->owner, PTMON_NOTICE_WARNING,
		    "pid %d, forked by %d which exited at once: not followed (%s)", (int)n->pid,
		    n->parent ? (int)n->parent->pid : 0, why);
}

static bool dropped_below(const struct node *x)
{
	for (x = x->parent; x; x = x->parent)
		if (!x->group && (x->flags & NODE_FOREIGN))
			return true;
	return false;
}

void track_settle_provisional(struct track *tr, bool lost)
{
	/* Creation order: a parent is settled before its children. */
	for (struct node *n = tr->tree->first; n && tr->nprovisional; n = n->next) {
		if (!(n->flags & NODE_PROVISIONAL))
			continue;
		if (lost || dropped_below(n))
			drop_provisional(tr, n,
					 lost ? "events were lost: its pid is not proven its own"
					      : "its parent was not the process forked");
		else
			confirm_provisional(tr, n);
	}
}

static void maybe_report_exit(struct track *tr, struct node *n)
{
	acct_report_exit(tr->acct, n, false);
}

void track_node_dead(struct track *tr, struct node *n)
{
	if (!(n->flags & NODE_ALIVE))
		return;
	n->flags &= ~(NODE_ALIVE | NODE_NOPIDFD);
	n->end_ns = util_now_ns();
	if (n->flags & NODE_FOREIGN) {
		/* Its children are ours now (reparented before its pidfd said
		 * it had exited): until a walk has seen them, an orphan may
		 * be of its lineage. */
		tr->foreign_dirty = true;
		tr->foreign_death_ns = n->end_ns;
	}
	/* Closing the only fd of the pidfd also removes it from epoll. */
	n->pidfd = util_close(n->pidfd);
	node_list_del(live_list(tr, n), n);
	track_filter_dead(tr, n->pid);
	if ((n->flags & NODE_ROOT) && n->group && n->group->attached)
		n->group->root_reaped = true; /* its status: task.c, at the end */
	maybe_report_exit(tr, n);
}

static void claim_guessed(struct track *tr, struct node *n, struct node *parent)
{
	node_list_del(&tr->foreign, n);
	n->flags &= ~(NODE_FOREIGN | NODE_GUESSED);
	n->flags |= NODE_FORK_SEEN;
	n->parent = parent;
	n->group = parent->group;
	n->group->processes++;
	node_list_add(&n->group->live, n);
	born(tr, n);
	track_cancel_signal(tr, n);
}

static void on_fork(struct track *tr, const struct cnproc_event *ev)
{
	if (ev->pid != ev->tgid)
		return; /* a thread: not tracked (and filtered out in the kernel) */
	struct node *p = tree_lookup(tr->tree, ev->parent_tgid);
	if (!p && ev->parent_tgid != tr->self && filter_holds(tr, ev->parent_tgid)) {
		/* The filter holds the parent for the tree's, but its FORK was
		 * lost (or not provable then).  A walk would find both, but not
		 * in a fork loop, gone by the time it looks: the event names
		 * them now, to prove as a walk would. */
		p = track_adopt(tr, ev->parent_tgid, NULL, 0);
		if (!p) {
			struct node *n = track_adopt(tr, ev->tgid, NULL, ev->timestamp_ns);
			if (n) {
				n->flags |= NODE_FORK_SEEN;
				return;
			}
		}
	}
	if (!p) {
		/* Not a process of ours: the common case, system-wide, unless
		 * the tree filter let it through. */
		/* The parent first: its child's test looks for it. */
		filter_stranger(tr, ev->parent_tgid);
		if (!tree_lookup(tr->tree, ev->tgid))
			filter_stranger(tr, ev->tgid);
		return;
	}
	if (p->flags & NODE_EXIT_EVENT) {
		/* The socket keeps each process's events in order, and a pid
		 * is reused only after its owner's EXIT event was queued: a
		 * fork naming it after that is a stranger's. */
		tr->stats.pids_reused++;
		filter_stranger(tr, ev->parent_tgid);
		filter_stranger(tr, ev->tgid);
		return;
	}
	struct node *cur = tree_lookup(tr->tree, ev->tgid);
	if (cur && (cur->flags & NODE_GUESSED) && (cur->flags & NODE_ALIVE) && p->group &&
	    !(p->flags & NODE_FOREIGN)) {
		/* A walk found it orphaned before this event came: the event
		 * proves it the task's after all. */
		claim_guessed(tr, cur, p);
		return;
	}
	if (cur && cur->parent == p && !(cur->flags & (NODE_FORK_SEEN | NODE_ROOT))) {
		/* A resync found it before its event came: the same process,
		 * not a second one (once seen, a later fork of this parent
		 * that gets the same pid is a new process). */
		cur->flags |= NODE_FORK_SEEN;
		return;
	}
	struct node *n = track_adopt(tr, ev->tgid, p, ev->timestamp_ns);
	if (n)
		n->flags |= NODE_FORK_SEEN;
	if (!n || !(n->flags & NODE_ALIVE))
		track_filter_dead(tr, ev->tgid); /* gone already, or not ours */
}

static void on_exec(struct track *tr, const struct cnproc_event *ev)
{
	struct node *n = tree_lookup(tr->tree, ev->tgid);
	if (!n || (n->flags & (NODE_EXIT_EVENT | NODE_FOREIGN)))
		return; /* not ours, or about a later owner of the pid */
	/* Read now: the process may be gone by the time anyone asks.  One
	 * that ptmon learned of only once it was gone (its FORK handled
	 * late) is still this node: its events come in order, and the pid
	 * is not reused before its EXIT event. */
	bool first_root_exec = (n->flags & NODE_ROOT) && !(n->flags & NODE_EXECED);
	n->flags |= NODE_EXECED;
	if (!((n->flags & NODE_ALIVE) && read_own(n, ev->tgid, n->pidfd)) && !first_root_exec)
		/* Gone already: the argv is unknown, not the one before the
		 * exec (but for the root's first, the one ptmon exec'd). */
		set_argv(n, NULL, PTMON_ARGV_UNKNOWN);
	if (!(n->flags & NODE_EXIT_EMITTED))
		event_node(tr->sink, PTMON_EVENT_EXEC, n);
}

void track_doubt_argv(struct track *tr)
{
	struct node *n = tr->argv_checked ? tr->argv_checked->next : tr->tree->first;
	for (; n; n = n->next) {
		tr->argv_checked = n;
		if (n->argv_src != PTMON_ARGV_INHERITED || (n->flags & NODE_EXIT_EVENT))
			continue;
		/* Its EXEC event may have been among those lost. */
		if (!((n->flags & NODE_ALIVE) && read_own(n, n->pid, n->pidfd)))
			set_argv(n, NULL, PTMON_ARGV_UNKNOWN);
	}
}

static void on_exit_event(struct track *tr, const struct cnproc_event *ev)
{
	if (ev->pid != ev->tgid)
		return;
	struct node *n = tree_lookup(tr->tree, ev->tgid);
	if (!n)
		return;
	if (n->pidfd >= 0 && util_pidfd_exited(n->pidfd) == 0) {
		/* About an earlier owner of this pid; for a provisional node,
		 * the EXIT of the child its FORK named: the pidfd is a later
		 * owner's. */
		if (n->flags & NODE_PROVISIONAL)
			drop_provisional(tr, n, "it exited and its pid changed hands");
		return;
	}
	acct_fact_exit_event(n, (int)ev->exit_code);
	if (n->flags & NODE_EXIT_EMITTED)
		return;
	track_node_dead(tr, n);
	maybe_report_exit(tr, n);
}

int track_handle_event(const struct cnproc_event *ev, void *userdata)
{
	struct track *tr = userdata;
	struct node *n;
	if (ev->kind != CNPROC_FORK && ev->kind != CNPROC_ACK && ev->pid == ev->tgid &&
	    !tree_lookup(tr->tree, ev->tgid))
		filter_stranger(tr, ev->tgid);
	switch (ev->kind) {
	case CNPROC_FORK:
		on_fork(tr, ev);
		break;
	case CNPROC_EXEC:
		on_exec(tr, ev);
		break;
	case CNPROC_COMM:
		n = tree_lookup(tr->tree, ev->tgid);
		if (n && ev->pid == ev->tgid && (n->flags & NODE_ALIVE)) {
			memcpy(n->comm, ev->comm, sizeof(n->comm));
			event_node(tr->sink, PTMON_EVENT_COMM, n);
		}
		break;
	case CNPROC_EXIT:
		on_exit_event(tr, ev);
		break;
	default:
		break;
	}
	return 0;
}

/* The children of @ppid in a table sorted by ppid: [*ret_first, end). */
static size_t children_of(const struct procfs_entry *v, size_t n, pid_t ppid, size_t *ret_first)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid].ppid < ppid)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t end = lo;
	while (end < n && v[end].ppid == ppid)
		end++;
	*ret_first = lo;
	return end - lo;
}

/* Is the node we hold for this pid still the process that has it? */
static bool still_tracked(struct track *tr, struct node *n)
{
	if (!n || !(n->flags & NODE_ALIVE))
		return false;
	if (n->pidfd >= 0 && util_pidfd_exited(n->pidfd) != 0) {
		track_node_dead(tr, n);
		return false;
	}
	return !(n->flags & NODE_NOPIDFD);
}

/* Where the walk starts besides ptmon: for attached trees (no subreaper),
 * their roots and the processes whose parents have died. */
static size_t walk_seeds(struct track *tr, pid_t *queue, size_t tail)
{
	for (struct group *g = tr->groups; g; g = g->next) {
		if (!g->attached || g->done)
			continue;
		for (struct node *x = g->live.head; x; x = x->live_next)
			if (!x->parent || !(x->parent->flags & NODE_ALIVE))
				queue[tail++] = x->pid;
	}
	return tail;
}

static int imax(int a, int b)
{
	return a > b ? a : b;
}

static size_t attached_live(const struct track *tr)
{
	size_t c = 0;
	for (const struct group *g = tr->groups; g; g = g->next)
		if (g->attached && !g->done)
			c += g->live.count;
	return c;
}

static int walk(struct track *tr, const struct procfs_entry *v, size_t n)
{
	size_t cap = n + 1 + attached_live(tr);
	pid_t *queue = malloc(cap * sizeof(*queue));
	if (!queue)
		return -ENOMEM;
	size_t head = 0, tail = 0;
	int found = 0;
	queue[tail++] = tr->self;
	tail = walk_seeds(tr, queue, tail);
	while (head < tail) {
		pid_t p = queue[head++];
		size_t first, count = children_of(v, n, p, &first);
		for (size_t i = first; i < first + count && tail < cap; i++) {
			pid_t c = v[i].pid;
			/* State 'Z' is also a live process whose main thread
			 * exited: track_adopt() tells them apart by the pidfd. */
			struct node *cn = tree_lookup(tr->tree, c);
			if (!still_tracked(tr, cn)) {
				struct node *hint = p == tr->self ? NULL : tree_lookup(tr->tree, p);
				cn = track_adopt(tr, c, hint, 0);
				if (!cn || !(cn->flags & NODE_ALIVE)) {
					track_filter_dead(tr, c);
					continue;
				}
				found += !(cn->flags & NODE_FOREIGN);
			}
			cn->seen_gen = tr->resync_gen;
			queue[tail++] = c;
		}
	}
	free(queue);
	return found;
}

/* A process descended from ptmon before any task: foreign, with a pidfd
 * proven as in track_adopt() (its parent is @ppid, alive).  A zombie stays
 * in the index, dead, so that reaping it reports nothing. */
static struct node *adopt_foreign(struct track *tr, pid_t pid, pid_t ppid, struct node *parent)
{
	int pidfd = util_pidfd_open(pid, 0);
	if (pidfd < 0) {
		if (pidfd != -ESRCH) /* not followed: its orphans cannot be told apart */
			tr->foreign_dirty = true;
		return NULL;
	}
	struct node *n = NULL;
	pid_t real = 0;
	if (parent_of(tr, pidfd, pid, &real) < 0 || real != ppid ||
	    (parent && util_pidfd_exited(parent->pidfd) != 0))
		goto out;
	n = new_node(tr, pid, parent, NULL);
	if (!n) {
		tr->foreign_dirty = true;
		goto out;
	}
	n->flags |= NODE_FOREIGN;
	n->ppid = ppid;
	procfs_read_comm(pid, n->comm);
	if (util_pidfd_exited(pidfd) != 0)
		goto out; /* a zombie: in the index, dead, without a pidfd */
	n->flags |= NODE_ALIVE;
	node_list_add(&tr->foreign, n);
	attach_pidfd(tr, n, pidfd);
	pidfd = -1;
out:
	util_close(pidfd);
	return n;
}

static int scan_foreign(struct track *tr)
{
	struct procfs_entry *v = NULL;
	int r = -ENOMEM;
	int n = procfs_scan(&v);
	if (n < 0)
		return n;
	pid_t *queue = malloc(((size_t)n + 1) * sizeof(*queue));
	if (!queue)
		goto out;
	size_t head = 0, tail = 0;
	queue[tail++] = tr->self;
	while (head < tail) {
		pid_t p = queue[head++];
		struct node *pn = p == tr->self ? NULL : tree_lookup(tr->tree, p);
		size_t first, count = children_of(v, (size_t)n, p, &first);
		for (size_t i = first; i < first + count && tail <= (size_t)n; i++) {
			struct node *cn = adopt_foreign(tr, v[i].pid, p, pn);
			if (cn && (cn->flags & NODE_ALIVE))
				queue[tail++] = v[i].pid;
		}
	}
	r = 0;
out:
	free(queue);
	free(v);
	return r;
}

int track_scan_foreign(struct track *tr)
{
	int r = scan_foreign(tr);
	/* Without /proc to tell, every orphan of unknown lineage is
	 * taken for theirs. */
	if (r < 0)
		tr->foreign_dirty = true;
	return r;
}

/* Pids kept without a pidfd that the walk did not find are gone. */
static void forget_unseen(struct track *tr, struct node_list *l)
{
	struct node *n = l->head;
	while (n) {
		struct node *next = n->live_next;
		if ((n->flags & NODE_NOPIDFD) && n->seen_gen != tr->resync_gen)
			track_node_dead(tr, n);
		n = next;
	}
}

int track_resync(struct track *tr, const char *why)
{
	struct procfs_entry *v = NULL;
	uint64_t scan_start = util_now_ns();
	loop_release_reserve(tr->loop);
	int n = procfs_scan(&v);
	loop_reserve_fd(tr->loop);
	if (n < 0) {
		sink_notice(tr->sink, NULL, PTMON_NOTICE_WARNING, "resync (%s) failed: %s", why,
			    strerror(-n));
		return n;
	}
	tr->stats.resyncs++;
	tr->resync_gen++;
	tr->events_lost = false;
	tr->last_resync_ns = util_now_ns();
	int found = 0;
	/* A watched cgroup's members are tops of its tree: before the walk,
	 * which starts from them. */
	for (struct group *g = tr->groups; g; g = g->next)
		if (g->watched && !g->draining)
			found += imax(track_cgroup_scan(tr, g, false), 0);
	found += walk(tr, v, (size_t)n);
	free(v);
	for (struct group *g = tr->groups; g; g = g->next)
		forget_unseen(tr, &g->live);
	forget_unseen(tr, &tr->unowned);
	/* Every orphan a dead foreign process left was ours to see before
	 * this walk began, and is foreign now: with none alive, no orphan
	 * can come from their lineage any more. */
	if (!tr->foreign.count && tr->foreign_death_ns < scan_start)
		tr->foreign_dirty = false;
	if (found > 0) {
		sink_notice(tr->sink, NULL, PTMON_NOTICE_INFO,
			    "resync (%s) found %d untracked processes", why, found);
		struct group *g = sole_group(tr);
		event_count(tr->sink, g ? g->owner : NULL, PTMON_EVENT_RESYNC, (uint64_t)found,
			    why);
	}
	return found;
}

static void record_reaped(struct track *tr, pid_t pid, int status, const struct rusage *ru)
{
	struct node *n = tree_lookup(tr->tree, pid);
	if (!n || (n->flags & NODE_REAPED)) {
		/* An orphan of ours that was never seen alive: whose, no one
		 * can tell while a foreign lineage exists. */
		if (track_foreign_possible(tr))
			return;
		n = born(tr, new_node(tr, pid, NULL, sole_group(tr)));
		if (!n)
			return;
		n->flags |= NODE_SHORT;
	}
	acct_fact_wait(tr->acct, n, status, ru);
	track_node_dead(tr, n);
	maybe_report_exit(tr, n);
	/* Its status is on the node: task.c reads it at the end. */
	if ((n->flags & NODE_ROOT) && n->group)
		n->group->root_reaped = true;
}

void track_reap(struct track *tr)
{
	for (;;) {
		int status = 0;
		struct rusage ru;
		pid_t pid = wait4(-1, &status, WNOHANG | __WALL, &ru);
		if (pid > 0) {
			record_reaped(tr, pid, status, &ru);
			continue;
		}
		if (pid == 0) {
			tr->no_children = false;
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == ECHILD)
			tr->no_children = true;
		return;
	}
}

/* Signal a pid kept without a pidfd: open one now, prove it is still ours
 * as in track_adopt(), signal, close.  The reserve fd guarantees the open. */
static int signal_transient(struct track *tr, struct node *n, int sig)
{
	int pidfd = util_pidfd_open(n->pid, 0);
	if (pidfd == -EMFILE || pidfd == -ENFILE) {
		loop_release_reserve(tr->loop);
		pidfd = util_pidfd_open(n->pid, 0);
	}
	if (pidfd < 0) {
		loop_reserve_fd(tr->loop);
		if (pidfd == -ESRCH)
			track_node_dead(tr, n);
		return pidfd;
	}
	pid_t ppid = 0;
	struct node *parent;
	int r = proven_parent(tr, pidfd, n->pid, &ppid, &parent);
	if (r == -EPERM)
		r = -ESRCH; /* its parent is not provably ours (yet): a later sweep */
	if (r < 0)
		goto out;
	r = util_pidfd_send_signal(pidfd, sig);
out:
	util_close(pidfd);
	loop_reserve_fd(tr->loop);
	return r;
}

int track_signal(struct track *tr, struct node *n, int sig)
{
	int r;
	if (n->flags & NODE_PROVISIONAL)
		return -EAGAIN; /* not proven ours yet: confirm_provisional() signals */
	if (n->pidfd >= 0)
		r = util_pidfd_send_signal(n->pidfd, sig);
	else if (n->flags & NODE_NOPIDFD)
		r = signal_transient(tr, n, sig);
	else
		return -ESRCH;
	if (!sig)
		return r; /* only a check: nothing was sent */
	if (r == 0) {
		n->flags |= NODE_SIGNALLED;
		if (sig != SIGCONT)
			n->signal_sent = sig;
		if (sig == SIGKILL)
			n->flags |= NODE_KILLED;
	}
	event_signal(tr->sink, n, sig, r < 0 ? -r : 0);
	return r;
}

static struct argv_buf *argv_from_vector(char *const *argv)
{
	size_t len = 0;
	for (size_t i = 0; argv[i] && len <= PTMON_ARGV_MAX; i++)
		len += strlen(argv[i]) + 1;
	bool cut = len > PTMON_ARGV_MAX;
	if (cut)
		len = PTMON_ARGV_MAX;
	char *buf = malloc(len ? len : 1);
	if (!buf)
		return NULL;
	size_t off = 0;
	for (size_t i = 0; argv[i] && off < len; i++) {
		size_t l = strlen(argv[i]) + 1;
		if (l > len - off)
			l = len - off;
		memcpy(buf + off, argv[i], l);
		off += l;
		buf[off - 1] = '\0';
	}
	struct argv_buf *a = argv_buf_new(buf, len, cut);
	free(buf);
	return a;
}

int track_add_root(struct track *tr, struct group *g, pid_t pid, char *const *argv)
{
	/* An unreaped child of ours: its pid cannot change hands, so the
	 * pidfd is certainly the right one. */
	int pidfd = util_pidfd_open(pid, 0);
	if (pidfd == -EMFILE || pidfd == -ENFILE) {
		loop_release_reserve(tr->loop);
		pidfd = util_pidfd_open(pid, 0);
		loop_reserve_fd(tr->loop);
	}
	if (pidfd < 0)
		return pidfd;
	struct node *n = new_node(tr, pid, NULL, g);
	if (!n) {
		util_close(pidfd);
		return -ENOMEM;
	}
	const char *base = strrchr(argv[0], '/');
	snprintf(n->comm, sizeof(n->comm), "%s", base ? base + 1 : argv[0]);
	n->argv = procfs_read_argv(pid); /* after exec: what it runs as */
	if (!n->argv)
		n->argv = argv_from_vector(argv);
	n->argv_src = n->argv ? PTMON_ARGV_OWN : PTMON_ARGV_UNKNOWN;
	n->ppid = tr->self;
	n->flags |= NODE_ALIVE | NODE_ROOT;
	node_list_add(&g->live, n);
	attach_pidfd(tr, n, pidfd);
	g->root = n;
	return 0;
}

/* A pidfd for @pid, a process ptmon did not start, or -errno (-ESRCH for
 * a zombie: it has exited).  Into the tree filter first: what it forks
 * from now on reaches us, what it forked before, the walk that follows
 * finds. */
static int open_top(struct track *tr, pid_t pid)
{
	filter_add(tr, pid);
	int pidfd = util_pidfd_open(pid, 0);
	if (pidfd == -EMFILE || pidfd == -ENFILE) {
		loop_release_reserve(tr->loop);
		pidfd = util_pidfd_open(pid, 0);
		loop_reserve_fd(tr->loop);
	}
	if (pidfd >= 0 && util_pidfd_exited(pidfd) != 0) {
		util_close(pidfd);
		pidfd = -ESRCH;
	}
	return pidfd;
}

static int attach_member(struct track *tr, struct group *g, pid_t pid)
{
	int pidfd = open_top(tr, pid);
	int r = pidfd < 0 ? pidfd : cgroup_holds(g->watched, pid);
	/* Alive after /proc was read: the answer was this process's (its pid
	 * cannot change hands while it lives). */
	if (r == 0 || (r > 0 && util_pidfd_exited(pidfd) != 0))
		r = -ESRCH;
	pid_t ppid = 0;
	struct node *up = NULL;
	if (r > 0 && parent_of(tr, pidfd, pid, &ppid) == 0 && parent_is_ours(tr, ppid, &up) &&
	    (!up || up->group != g))
		up = NULL;
	struct node *n = r > 0 ? new_node(tr, pid, up, g) : NULL;
	if (!n) {
		util_close(pidfd);
		filter_stranger(tr, pid);
		return r > 0 ? -ENOMEM : r;
	}
	n->ppid = ppid;
	n->seen_gen = tr->resync_gen;
	if (!read_own(n, pid, pidfd) && !up)
		set_argv(n, NULL, PTMON_ARGV_UNKNOWN);
	n->flags |= NODE_ALIVE | NODE_WALKED;
	node_list_add(&g->live, n);
	attach_pidfd(tr, n, pidfd);
	if (!g->root) {
		n->flags |= NODE_ROOT;
		g->root = n;
		return 0;
	}
	born(tr, n);
	track_cancel_signal(tr, n);
	return 0;
}

int track_attach_root(struct track *tr, struct group *g, pid_t pid, int *ret_exit_fd)
{
	int pidfd = open_top(tr, pid);
	struct node *n = pidfd >= 0 ? new_node(tr, pid, NULL, g) : NULL;
	if (!n) {
		int r = pidfd >= 0 ? -ENOMEM : pidfd;
		util_close(pidfd);
		filter_stranger(tr, pid);
		return r;
	}
	/* From here on the pidfd names the process, whatever the pid does. */
	pid_t ppid = 0;
	if (parent_of(tr, pidfd, pid, &ppid) == 0)
		n->ppid = ppid;
	if (!read_own(n, pid, pidfd))
		set_argv(n, NULL, PTMON_ARGV_UNKNOWN);
	n->flags |= NODE_ALIVE | NODE_ROOT | NODE_WALKED;
	node_list_add(&g->live, n);
	attach_pidfd(tr, n, pidfd);
	g->root = n;
	/* Kept past its death for PIDFD_INFO_EXIT (6.15+), which answers once
	 * its parent has reaped it. */
	*ret_exit_fd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
	return 0;
}

static void kill_list(struct track *tr, struct node_list *l)
{
	struct node *n = l->head;
	while (n) {
		struct node *next = n->live_next;
		if (!(n->flags & NODE_KILLED))
			track_signal(tr, n, SIGKILL);
		n = next;
	}
}

static bool all_gone(struct track *tr)
{
	for (struct group *g = tr->groups; g; g = g->next)
		if (g->live.count)
			return false;
	/* Foreign children are not ours to wait for: the walk that began
	 * this round classified every child. */
	return !tr->unowned.count && (tr->no_children || track_foreign_possible(tr));
}

void track_kill_all_blocking(struct track *tr)
{
	/* As bounded as a cancel's kill phase: what SIGKILL cannot end
	 * (EPERM, D state) must not hold the caller for ever. */
	uint64_t bound = util_deadline(util_now_ns(), PTMON_KILL_BOUND_NS);
	for (;;) {
		track_resync(tr, "shutdown");
		for (struct group *g = tr->groups; g; g = g->next)
			kill_list(tr, &g->live);
		kill_list(tr, &tr->unowned);
		track_reap(tr);
		uint64_t now = util_now_ns();
		if (all_gone(tr) || now >= bound)
			break;
		/* Wait for the next child to go (SIGCHLD on the signalfd), a
		 * little at most: then look again for what was reparented to
		 * us meanwhile.  Whatever else is queued there is moot now. */
		struct pollfd p = {.fd = tr->sigfd, .events = POLLIN};
		if (poll(&p, 1, 10) > 0) {
			struct signalfd_siginfo si;
			while (read(tr->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				;
		}
	}
}

void track_read_own(struct track *tr, struct node *n)
{
	(void)tr;
	if ((n->flags & NODE_ALIVE) && n->pidfd >= 0)
		(void)read_own(n, n->pid, n->pidfd);
}

void track_cancel_signal(struct track *tr, struct node *n)
{
	struct group *g = n->group;
	int sig = g ? g->cancel_signal : 0;
	if (!sig || !(n->flags & NODE_ALIVE) ||
	    (n->flags & (sig == SIGKILL ? NODE_KILLED : NODE_CANCEL_SENT)))
		return;
	bool first = !(n->flags & NODE_SIGNALLED);
	/* Whatever a caller sent it before, a cancel's own signal is due. */
	n->flags |= NODE_CANCEL_SENT;
	if (track_signal(tr, n, sig) < 0)
		return;
	g->signalled += first;
	g->killed += sig == SIGKILL;
	if (sig != SIGKILL && sig != SIGCONT)
		/* A stopped process would keep the first signal pending
		 * forever; wake it as coreutils' timeout does. */
		track_signal(tr, n, SIGCONT);
}

void track_cancel_signal_all(struct track *tr, struct group *g)
{
	/* Oldest first: the root, then each process after the parent it had
	 * when ptmon learned of it (a parent is known before its children).
	 * A parent that waits for a child (a shell's `cmd & wait`, its
	 * foreground command) must have its signal pending before that
	 * child can die of its own and end the wait: else the shell runs on
	 * past its trap and may exit 0, as if never signalled.  (timeout(1)
	 * too signals its command before the command's process group.)
	 * SIGKILL cannot be caught, so order cannot change how anything
	 * ends, and newest first empties a tree faster (bench/run row 3:
	 * 2.37x cgroup.kill's time oldest first, 0.93x newest first).
	 * Signalling may discover a death and unlink the node: take the
	 * next one first. */
	bool kill = g->cancel_signal == SIGKILL;
	struct node *n = kill ? g->live.head : g->live.tail;
	while (n) {
		struct node *next = kill ? n->live_next : n->live_prev;
		track_cancel_signal(tr, n);
		n = next;
	}
}

int track_check_top(pid_t pid)
{
	if (pid <= 0)
		return -EINVAL;
	if (pid == 1)
		return -EPERM;
	for (pid_t p = getpid(); p > 0;) {
		if (p == pid)
			return -ELOOP;
		struct procfs_stat st;
		if (procfs_read_stat(p, &st) < 0)
			break;
		p = st.ppid;
	}
	return 0;
}

int track_cgroup_scan(struct track *tr, struct group *g, bool first)
{
	pid_t *pids = NULL;
	int n = cgroup_read_procs(g->watched, &pids);
	if (n < 0)
		return n;
	int found = 0;
	for (int i = 0; i < n; i++) {
		struct node *cur = tree_lookup(tr->tree, pids[i]);
		if (cur && (cur->flags & NODE_ALIVE))
			continue; /* tracked already (or another task's) */
		int refused = track_check_top(pids[i]);
		if (refused < 0) {
			sink_notice(tr->sink, g->owner, PTMON_NOTICE_WARNING,
				    "pid %d moved into the watched cgroup: not followed (%s)",
				    (int)pids[i],
				    refused == -EPERM ? "init" : "ptmon's own lineage");
		} else if (attach_member(tr, g, pids[i]) == 0) {
			found++;
			if (first && g->root && found == 1)
				event_node(tr->sink, PTMON_EVENT_START, g->root);
		}
	}
	free(pids);
	return found;
}
