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

struct cnproc_event;
struct node;
struct ptmon_monitor;
struct group;

/* Adopt @pid as a process of the tree if, right now, it is alive and its
 * parent is ptmon or a live tracked process.  @hint is the parent an event
 * named, or NULL.  Returns the node (alive, or recorded dead when it was
 * already gone), or NULL when it is not ours. */
struct node *track_adopt(struct ptmon_monitor *m, pid_t pid, struct node *hint,
			 uint64_t event_ns);
/* Record every process descended from ptmon now as foreign (at creation). */
int track_scan_foreign(struct ptmon_monitor *m);
/* Can an orphan of unknown origin be a foreign process's? */
bool track_foreign_possible(const struct ptmon_monitor *m);
/* Track @g's root, a child that ptmon just spawned to run @argv. */
int track_add_root(struct ptmon_monitor *m, struct group *g, pid_t pid, char *const *argv);
/* Track @pid, a process ptmon did not start, as the root of the attached
 * group @g; *@ret_exit_fd gets a pidfd of it kept for PIDFD_INFO_EXIT (or
 * -errno).  -ESRCH when it is gone (or a zombie), -EINVAL for a thread. */
int track_attach_root(struct ptmon_monitor *m, struct group *g, pid_t pid, int *ret_exit_fd);
/* May @pid be the top of an attached tree?  -EPERM for init (the whole
 * system), -ELOOP for ptmon and its ancestors (a cancel would kill ptmon
 * halfway), -EINVAL for no pid. */
int track_check_top(pid_t pid);
/* Every process in @g's watched cgroup not tracked yet joins @g as one of
 * its tops (the first becomes its root; with @first, its START event).
 * Returns how many joined, or -errno. */
int track_cgroup_scan(struct ptmon_monitor *m, struct group *g, bool first);
/* Give @n, alive, what its group's cancel sends (g->cancel_signal), once;
 * a stopped process gets SIGCONT after a first signal that is not
 * SIGKILL.  Counted in the group. */
void track_cancel_signal(struct ptmon_monitor *m, struct node *n);
/* The same for every live process of @g. */
void track_cancel_signal_all(struct ptmon_monitor *m, struct group *g);
/* The connector has been read empty since the provisional adoptions (a
 * child of an attached tree, orphaned before ptmon could prove its parent)
 * were made: without a loss, no EXIT said their pids changed hands, so the
 * pidfds are theirs; with a loss, nothing proves it and they are dropped. */
void track_settle_provisional(struct ptmon_monitor *m, bool lost);
/* SIGKILL every process of every task and reap until none is left. */
void track_kill_all_blocking(struct ptmon_monitor *m);
/* @n is dead (pidfd readable, reaped, or no longer there): it leaves the
 * live lists and the filter, and its exit goes to acct. */
void track_node_dead(struct ptmon_monitor *m, struct node *n);
int track_handle_event(const struct cnproc_event *ev, void *userdata);
/* Events were lost (m->argv_doubt): an exec may have gone unseen.  Every
 * process whose argv is its parent's and whose EXIT was not seen gets its
 * own, read now, or unknown. */
void track_doubt_argv(struct ptmon_monitor *m);
/* Walk /proc and adopt every descendant not yet tracked.  Returns the
 * number of processes found that were not tracked, or -errno. */
int track_resync(struct ptmon_monitor *m, const char *why);
/* Reap every child that has exited.  Sets m->no_children on ECHILD. */
void track_reap(struct ptmon_monitor *m);
/* Send @sig to @n through its pidfd, or a transient verified one. */
int track_signal(struct ptmon_monitor *m, struct node *n, int sig);

#endif
