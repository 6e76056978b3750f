/* SPDX-License-Identifier: MIT */
/*
 * Layer "track" (track.c): which processes belong to the tree, proven by
 * pidfds; connector events, /proc walks and our own wait4() feed it.  It
 * adds and marks nodes (tree), reads /proc (procfs), merges exits through
 * acct and reports through the sink.  It does not run the task's state
 * machine: it keeps each task's share of the tree (struct group, tree.h)
 * and gives a newly adopted process the signal its group's cancel set;
 * the monitor steps the task after it.  It never sees a task.
 */
#ifndef PTMON_TRACK_H
#define PTMON_TRACK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <stddef.h>

struct acct;
struct cnproc;
struct cnproc_event;
struct group;
struct loop;
struct node;
struct sink;
struct track;
struct tree;

/* What tracking is handed by the monitor that owns it.  @cn and @features
 * point at the monitor's own (the connector may come and go while the
 * monitor starts; a feature may turn out missing). */
struct track_env {
	struct tree *tree;
	struct loop *loop;
	struct sink *sink;
	struct cnproc *const *cn;
	unsigned *features;
	pid_t self;
	int sigfd;
};

struct track_stats {
	uint64_t resyncs;        /* walks of /proc */
	uint64_t pids_reused;    /* events about a pid that had changed hands */
	uint64_t pidfd_failures; /* processes kept without a pidfd (fd limit) */
};

/* struct track is private to track.c. */
int track_new(struct track **ret, const struct track_env *env);
struct track *track_free(struct track *tr);
/* Exits go to @a from now on (acct is created after tracking). */
void track_set_acct(struct track *tr, struct acct *a);
/* The groups, linked by g->next; a task adds its own before its first
 * process and removes it before it is freed. */
struct group *track_groups(const struct track *tr);
void track_add_group(struct track *tr, struct group *g);
void track_remove_group(struct track *tr, struct group *g);
/* wait4() said ECHILD since the last child was started. */
bool track_no_children(const struct track *tr);
void track_child_started(struct track *tr);
/* Live processes no task could claim. */
size_t track_unowned(const struct track *tr);
const struct track_stats *track_get_stats(const struct track *tr);
/* Events were lost: a resync is owed until one has run. */
void track_events_lost(struct track *tr);
bool track_resync_owed(const struct track *tr);
uint64_t track_last_resync(const struct track *tr);
/* Live provisional nodes (see track_settle_provisional()). */
size_t track_provisional(const struct track *tr);
/* @n (after @prev in the tree's list) is about to be dropped (records.c). */
void track_node_dropping(struct track *tr, struct node *n, struct node *prev);
/* The eBPF tree filter is in use. */
bool track_tree_filtered(const struct track *tr);
/* @pid was seen dead: out of the tree filter's map (when it is its). */
void track_filter_dead(struct track *tr, pid_t pid);

/* Adopt @pid as a process of the tree if, right now, it is alive and its
 * parent is ptmon or a live tracked process.  @hint is the parent an event
 * named, or NULL.  Returns the node (alive, or recorded dead when it was
 * already gone), or NULL when it is not ours. */
struct node *track_adopt(struct track *tr, pid_t pid, struct node *hint, uint64_t event_ns);
/* Record every process descended from ptmon now as foreign (at creation).
 * On failure, any orphan of unknown lineage is taken for foreign. */
int track_scan_foreign(struct track *tr);
/* Can an orphan of unknown origin be a foreign process's? */
bool track_foreign_possible(const struct track *tr);
/* Track @g's root, a child that ptmon just spawned to run @argv. */
int track_add_root(struct track *tr, struct group *g, pid_t pid, char *const *argv);
/* Track @pid, a process ptmon did not start, as the root of the attached
 * group @g; *@ret_exit_fd gets a pidfd of it kept for PIDFD_INFO_EXIT (or
 * -errno).  -ESRCH when it is gone (or a zombie), -EINVAL for a thread. */
int track_attach_root(struct track *tr, struct group *g, pid_t pid, int *ret_exit_fd);
/* May @pid be the top of an attached tree?  -EPERM for init (the whole
 * system), -ELOOP for ptmon and its ancestors (a cancel would kill ptmon
 * halfway), -EINVAL for no pid. */
int track_check_top(pid_t pid);
/* Every process in @g's watched cgroup not tracked yet joins @g as one of
 * its tops (the first becomes its root; with @first, its START event).
 * Returns how many joined, or -errno. */
int track_cgroup_scan(struct track *tr, struct group *g, bool first);
/* Read @n's argv and comm again from /proc, kept only when its pidfd
 * proves them its own: what it runs now, when no EXEC event may have said
 * (the procfs backend sees none). */
void track_read_own(struct track *tr, struct node *n);
/* Give @n, alive, what its group's cancel sends (g->cancel_signal), once;
 * a stopped process gets SIGCONT after a first signal that is not
 * SIGKILL.  Counted in the group. */
void track_cancel_signal(struct track *tr, struct node *n);
/* The same for every live process of @g, oldest first (the root, and each
 * process before the children ptmon learned of after it); SIGKILL newest
 * first. */
void track_cancel_signal_all(struct track *tr, struct group *g);
/* The connector has been read empty since the provisional adoptions (a
 * child of an attached tree, orphaned before ptmon could prove its parent)
 * were made: without a loss, no EXIT said their pids changed hands, so the
 * pidfds are theirs; with a loss, nothing proves it and they are dropped. */
void track_settle_provisional(struct track *tr, bool lost);
/* SIGKILL every process of every task and reap until none is left. */
void track_kill_all_blocking(struct track *tr);
/* @n is dead (pidfd readable, reaped, or no longer there): it leaves the
 * live lists and the filter, and its exit goes to acct. */
void track_node_dead(struct track *tr, struct node *n);
int track_handle_event(const struct cnproc_event *ev, void *userdata);
/* Events were lost (the monitor's argv_doubt): an exec may have gone unseen.  Every
 * process whose argv is its parent's and whose EXIT was not seen gets its
 * own, read now, or unknown. */
void track_doubt_argv(struct track *tr);
/* Walk /proc and adopt every descendant not yet tracked.  Returns the
 * number of processes found that were not tracked, or -errno. */
int track_resync(struct track *tr, const char *why);
/* Reap every child that has exited (ECHILD: track_no_children()). */
void track_reap(struct track *tr);
/* Send @sig to @n through its pidfd, or a transient verified one. */
int track_signal(struct track *tr, struct node *n, int sig);

#endif
