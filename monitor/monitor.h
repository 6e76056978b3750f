/* SPDX-License-Identifier: MIT */
/*
 * Layer "monitor" (monitor.c, with events.c: the process record, and
 * records.c: dropping delivered records): the top.  struct ptmon_monitor
 * owns every other layer's state (the loop, the sink, the tree, the
 * connector socket, acct's handle, the tasks), runs the loop and turns
 * what the layers below return into the next step: a pidfd that fired is
 * a death for track, then an update for its task; a stream that is done
 * is an update for its task.  The services it offers below (the tree
 * filter's map, reading the connector) take the monitor because they use
 * its sockets.  See docs/internals.md.
 */
#ifndef PTMON_MONITOR_H
#define PTMON_MONITOR_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ptmon.h"
#include "tree.h"
#include "watch.h"

struct acct;
struct loop;
struct sink;
struct track;
struct tasks;
struct cnproc;

struct ptmon_monitor {
	struct loop *loop; /* epoll, timer, fd reserve */
	struct sink *sink; /* the caller's callbacks */
	int sigfd;
	struct watch sig_watch;
	struct watch nl_watch;
	pid_t self;
	enum ptmon_backend backend;
	unsigned features;
	unsigned flags;        /* PTMON_MONITOR_* */
	int tree_filter_error; /* see ptmon_monitor_tree_filter_error() */
	const char *fallback_reason;
	struct cnproc *cn;
	sigset_t cancel_set;
	pid_t front_pid;  /* ptmon_monitor_set_front(), 0: none */
	int front_signal; /* what it forwards signals as */
	int front_fd;     /* its pidfd, -1 once it has exited */
	struct watch front_watch;
	sigset_t old_mask;
	bool mask_saved;
	struct sigaction old_chld; /* the caller's SIGCHLD action, restored at free */
	bool chld_saved;
	int old_subreaper; /* PR_GET_CHILD_SUBREAPER before us, -1: not set by us */
	uint64_t events_lost_count;
	uint64_t next_resync; /* when a resync is due, 0: none */
	struct rlimit_pair {
		uint64_t cur, max;
	} nofile_orig;
	struct tree tree;
	struct track *track; /* which processes are the tasks' (track.c) */
	struct tasks *tasks; /* the tasks (task.c) */
	/* Start of the last read of the connector that emptied it: every
	 * event queued before then has been handled. */
	uint64_t events_read_ns;
	uint64_t wall_offset_ns;  /* CLOCK_REALTIME - CLOCK_MONOTONIC at creation */
	struct acct *acct;        /* taskstats, and the exits waiting for their facts */
	bool argv_doubt;          /* events were lost: inherited argvs may be stale */
	uint64_t exits_unswept;   /* exits delivered since the last records_sweep() */
	uint64_t records_dropped; /* records of exited processes freed (records.c) */
	uint64_t newest_event_ns; /* the latest kernel stamp of a connector event read */
};

/* Free the records of exited processes whose exit has been delivered, of
 * tasks that hold none, when enough have piled up since the last sweep
 * that its walk of the tree costs O(1) per exit.  Only from the end of
 * dispatch: no caller holds a record pointer there. */
void records_sweep(struct ptmon_monitor *m);

/* Arm the loop's timer for the earliest deadline of any task, of a
 * waiting exit and of a resync. */
void monitor_rearm(struct ptmon_monitor *m);
/* Read the connector until it is empty: every event queued before now
 * has been handled (a no-op without the connector). */
void monitor_read_connector(struct ptmon_monitor *m);

#endif
