/* SPDX-License-Identifier: MIT */
/* libptmon's private structures and the functions its files share. */
#ifndef PTMON_INTERNAL_H
#define PTMON_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nbwrite.h"
#include "cgroup.h"
#include "fdclose.h"
#include "pidfd.h"
#include "ptmon.h"
#include "taskstats.h"
#include "tree.h"

struct cnproc;
struct cnproc_event;

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- util.c ---------------------------------------------------------------- */

uint64_t util_now_ns(void);
/* @now + @d, or UINT64_MAX ("never") when that does not fit: a duration too
 * long to end before the clock wraps must not wrap to the past. */
static inline uint64_t util_deadline(uint64_t now, uint64_t d)
{
	return d > UINT64_MAX - now ? UINT64_MAX : now + d;
}
/* util_pidfd_open(), util_pidfd_send_signal(): pidfd.h */
/* 1 when the pidfd says the process has exited, 0 when it lives, -errno. */
int util_pidfd_exited(int pidfd);
/* The parent of the process behind @pidfd, through PIDFD_GET_INFO (6.13+).
 * -ENOTTY/-EINVAL when the kernel lacks it, -ESRCH once it has been reaped. */
int util_pidfd_ppid(int pidfd, pid_t *ret_ppid);
/* The wait status of the process behind @pidfd through PIDFD_INFO_EXIT
 * (6.15+): -ENODATA while it has not been reaped (or before 6.15),
 * -ENOTTY/-EINVAL before 6.13. */
int util_pidfd_exit_status(int pidfd, int *ret_status);
int util_set_nonblock(int fd);

/* ---- procfs.c -------------------------------------------------------------- */

struct procfs_stat {
	pid_t pid;
	pid_t ppid;
	char state;
	char comm[16];
	uint64_t starttime; /* clock ticks after boot */
};

/* Parse the text of /proc/PID/stat.  Pure; -EINVAL on malformed text. */
int procfs_parse_stat(const char *buf, size_t len, struct procfs_stat *ret);
/* One read of @path (relative to @dirfd, a /proc/PID directory, or
 * AT_FDCWD) into @buf, NUL-terminated: the bytes read, -ESRCH when it is
 * gone, or -errno. */
int procfs_read_small_at(int dirfd, const char *path, char *buf, size_t size);
/* Read and parse /proc/PID/stat.  -ESRCH when it is gone. */
int procfs_read_stat(pid_t pid, struct procfs_stat *ret);
/* Read /proc/PID/cmdline to its end, at most PTMON_ARGV_MAX bytes (more is
 * cut and marked).  NULL when it cannot be read or is empty (a kernel
 * thread, a zombie). */
struct argv_buf *procfs_read_argv(pid_t pid);
/* Read /proc/PID/comm into @comm (16 bytes), without the newline. */
int procfs_read_comm(pid_t pid, char comm[16]);

struct procfs_entry {
	pid_t pid;
	pid_t ppid;
	char state;
};
/* Every process on the system with its parent, sorted by ppid.  *ret is
 * malloc'd.  Returns the count or -errno. */
int procfs_scan(struct procfs_entry **ret);

typedef void (*procfs_holder_fn)(pid_t pid, int fd, void *userdata);
/* Call @fn for every fd of every process (but @self) that refers to the pipe
 * with inode @ino.  Returns the number found or -errno. */
int procfs_find_pipe_holders(unsigned long ino, pid_t self, procfs_holder_fn fn, void *userdata);

/* ---- watches --------------------------------------------------------------- */

int monitor_watch_add(struct ptmon_monitor *m, int fd, uint32_t events, struct watch *w);
int monitor_watch_mod(struct ptmon_monitor *m, int fd, uint32_t events, struct watch *w);
void monitor_watch_del(struct ptmon_monitor *m, int fd);

/* ---- output streams (stream.c) ------------------------------------------- */

#define STREAM_BUF (64u * 1024u)

struct stream {
	struct watch in_watch;  /* the task's pipe */
	struct watch out_watch; /* where it goes */
	struct ptmon_task *task;
	const char *name;       /* "stdout" or "stderr" */
	int in_fd;              /* read end of the task's pipe, -1 after EOF */
	struct nbw dest;        /* where it goes, written without blocking */
	bool out_broken;        /* the destination is gone or failed: discard */
	int out_error;          /* errno of the write that failed, 0: none */
	bool out_waiting;       /* registered for EPOLLOUT */
	bool eof;
	unsigned long ino;      /* the pipe's inode, to name its holders */
	size_t len;             /* bytes buffered in buf */
	uint64_t bytes;         /* bytes read from the task */
	uint64_t dropped;       /* bytes never written */
	char *buf;
};

int stream_init(struct stream *s, struct ptmon_task *t, const char *name, int pipe_rfd_take,
		int dest_fd);
/* Register the stream's pipe with the monitor's epoll. */
int stream_start(struct ptmon_monitor *m, struct stream *s);
int stream_handle_in(struct ptmon_monitor *m, struct stream *s);
int stream_handle_out(struct ptmon_monitor *m, struct stream *s);
/* Give up on the stream: name its holders, drop what is left, close. */
void stream_abandon(struct ptmon_monitor *m, struct stream *s);
/* All read, and all written (or the destination is gone). */
static inline bool stream_done(const struct stream *s)
{
	return s->eof && s->len == 0;
}
void stream_fini(struct ptmon_monitor *m, struct stream *s);

/* ---- tasks (task.c) ------------------------------------------------------ */

enum task_phase {
	PHASE_RUNNING,  /* nothing asked */
	PHASE_TERM,     /* first signal sent, grace running */
	PHASE_KILL,     /* SIGKILL sweeps until the tree is empty */
	PHASE_DRAIN,    /* tree empty, waiting for EOF */
	PHASE_DONE,
};

struct ptmon_task {
	struct ptmon_monitor *monitor;
	struct ptmon_task *next;
	struct ptmon_task_config cfg;
	char **argv;             /* our copy */
	enum task_phase phase;
	struct node *root;
	struct node_list live;   /* processes of this task not known dead */
	bool root_reaped;
	int root_code;           /* CLD_* */
	int root_value;
	enum ptmon_cancel_reason cancel_reason;
	int cancel_signal;
	uint64_t started_ns;
	uint64_t cancel_ns;
	uint64_t empty_ns;
	uint64_t eof_ns;
	uint64_t deadline_timeout;
	uint64_t deadline_grace;
	uint64_t deadline_drain;
	uint64_t deadline_sweep;
	uint64_t deadline_giveup;  /* the end of the kill phase's bound */
	uint64_t sweep_interval;
	unsigned blind_sweeps;     /* kill sweeps that found no live process, yet children */
	uint64_t survivors;        /* alive when the kill phase gave up */
	unsigned record_holds;     /* ptmon_task_hold_records() minus releases */
	uint64_t processes;
	uint64_t signalled;
	uint64_t killed;
	bool drain_timed_out;
	bool leftovers_noticed;
	/* The monitor's counters when the task was done, for its result. */
	struct {
		uint64_t events_lost, resyncs, foreign, pids_reused, pidfd_failures;
		uint64_t events_received;
	} final;
	struct stream out;
	struct stream err;
	struct task_cgroup cg;
	/* ptmon_task_attach(): a tree ptmon did not start.  No subreaper,
	 * no output; the root's status comes from its EXIT event or from
	 * root_exit_fd (a pidfd kept for PIDFD_INFO_EXIT). */
	bool attached;
	int root_exit_fd;
	/* `watch --cgroup`: cg is the user's (cg.borrowed) and defines the
	 * tree; cgroup.events says when "populated" changes. */
	int cg_events_fd;
	struct watch cg_watch;
};

int task_spawn(struct ptmon_monitor *m, struct ptmon_task *t);
/* A watched cgroup's processes not tracked yet join the tree (a resync's
 * part).  Returns how many joined, or -errno. */
int task_cgroup_scan(struct ptmon_task *t, bool first);
/* Signal @n as its task's phase requires; called for every newly adopted
 * process and by sweeps. */
void task_signal_node(struct ptmon_task *t, struct node *n);
/* Re-evaluate a task after something happened to it. */
void task_update(struct ptmon_task *t);
void task_on_deadlines(struct ptmon_task *t, uint64_t now);
uint64_t task_next_deadline(const struct ptmon_task *t);
void task_free(struct ptmon_task *t);

/* ---- tracking (track.c) -------------------------------------------------- */

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
/* Track a task's root, a child that ptmon just spawned. */
int track_add_root(struct ptmon_monitor *m, struct ptmon_task *t, pid_t pid);
/* Track @pid, a process ptmon did not start, as the root of the attached
 * task @t.  -ESRCH when it is gone (or a zombie), -EINVAL for a thread. */
int track_attach_root(struct ptmon_monitor *m, struct ptmon_task *t, pid_t pid);
/* Track @pid, found in the watched cgroup of @t, as one of its tops (the
 * first becomes t->root).  -ESRCH when it is gone or no longer in it. */
int track_attach_member(struct ptmon_monitor *m, struct ptmon_task *t, pid_t pid);
/* The connector has been read empty since the provisional adoptions (a
 * child of an attached tree, orphaned before ptmon could prove its parent)
 * were made: without a loss, no EXIT said their pids changed hands, so the
 * pidfds are theirs; with a loss, nothing proves it and they are dropped. */
void track_settle_provisional(struct ptmon_monitor *m, bool lost);
/* SIGKILL every process of every task and reap until none is left. */
void track_kill_all_blocking(struct ptmon_monitor *m);
void track_node_dead(struct ptmon_monitor *m, struct node *n);
/* Deliver @n's exit event when its facts are in (or now, when @force). */
void track_report_exit(struct ptmon_monitor *m, struct node *n, bool force);
/* Force the exits waiting too long, or all of task @only's. */
void track_flush_pending(struct ptmon_monitor *m, uint64_t now, struct ptmon_task *only);
uint64_t track_pending_deadline(const struct ptmon_monitor *m);
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

/* ---- the monitor (monitor.c) ---------------------------------------------- */

struct ptmon_monitor {
	int epfd;
	int sigfd;
	int timerfd;
	int reserve_fd[2];       /* held so that fds are free when we must have them */
	struct watch sig_watch;
	struct watch timer_watch;
	struct watch nl_watch;
	pid_t self;
	enum ptmon_backend backend;
	unsigned features;
	unsigned flags;          /* PTMON_MONITOR_* */
	int tree_filter_error;   /* see ptmon_monitor_tree_filter_error() */
	const char *fallback_reason;
	struct cnproc *cn;
	sigset_t cancel_set;
	pid_t front_pid;         /* ptmon_monitor_set_front(), 0: none */
	int front_signal;        /* what it forwards signals as */
	int front_fd;            /* its pidfd, -1 once it has exited */
	struct watch front_watch;
	sigset_t old_mask;
	bool mask_saved;
	struct sigaction old_chld; /* the caller's SIGCHLD action, restored at free */
	bool chld_saved;
	bool no_children;        /* wait4 said ECHILD */
	bool events_lost;        /* a resync is owed */
	uint64_t events_lost_count;
	uint64_t resyncs;
	uint64_t pids_reused;
	uint64_t pidfd_failures;
	uint64_t next_resync;    /* when a resync is due, 0: none */
	uint64_t armed_ns;       /* what the timerfd is armed for, 0: nothing */
	struct rlimit_pair {
		uint64_t cur, max;
	} nofile_orig;
	struct tree tree;
	struct node_list unowned; /* live processes no task could claim */
	/* Processes that are not any task's: ptmon's children from before the
	 * monitor (a shell's background jobs, when the shell exec'd ptmon)
	 * and their descendants.  Reaped, never signalled, counted or
	 * reported. */
	struct node_list foreign;
	bool foreign_dirty;       /* a foreign process died: its orphans may be ours to see */
	uint64_t foreign_death_ns; /* when the last foreign death was noticed */
	struct node_list pending; /* dead processes whose exit waits for its facts */
	uint32_t resync_gen;
	uint64_t last_resync_ns;
	/* Start of the last read of the connector that emptied it: every
	 * event queued before then has been handled. */
	uint64_t events_read_ns;
	struct ptmon_task *tasks;
	unsigned ntasks_running;
	ptmon_notice_fn notice;
	void *notice_data;
	ptmon_event_fn event_fn;
	void *event_data;
	uint64_t wall_offset_ns;  /* CLOCK_REALTIME - CLOCK_MONOTONIC at creation */
	struct tstats *ts;
	struct watch ts_watch;
#define TS_RING 256
	struct tstats_record *ts_ring; /* records that came before their process */
	size_t ts_ring_next;
#define TS_PARK 1024
	struct tstats_record *ts_park; /* records of no known process, see park_record() */
	size_t ts_park_next;
	bool argv_doubt;          /* events were lost: inherited argvs may be stale */
	struct node *argv_checked; /* track_doubt_argv() settled the tree up to here */
	const char *ts_unavailable;
	const char *cgroup_why;   /* ptmon_monitor_cgroup_unavailable() */
	char cgroup_why_buf[320]; /* a limit's reason, with its controller named */
	unsigned cgroup_serial;
	uint64_t exits_unswept;   /* exits delivered since the last records_sweep() */
	uint64_t records_dropped; /* records of exited processes freed (records.c) */
	size_t nprovisional;      /* live NODE_PROVISIONAL nodes */
	uint64_t newest_event_ns; /* the latest kernel stamp of a connector event read */
};

/* ---- records.c: dropping what was delivered ------------------------------- */

/* Free the records of exited processes whose exit has been delivered, of
 * tasks that hold none, when enough have piled up since the last sweep
 * that its walk of the tree costs O(1) per exit.  Only from the end of
 * dispatch: no caller holds a record pointer there. */
void records_sweep(struct ptmon_monitor *m);

/* ---- events.c -------------------------------------------------------------- */

void event_emit(struct ptmon_monitor *m, struct ptmon_event *ev);
void event_node(struct ptmon_monitor *m, enum ptmon_event_type type, struct node *n);
/* The EXIT event of @n, once. */
void event_exit(struct ptmon_monitor *m, struct node *n);
void event_signal(struct ptmon_monitor *m, struct node *n, int sig, int err);
void event_count(struct ptmon_monitor *m, struct ptmon_task *t, enum ptmon_event_type type,
		 uint64_t count, const char *reason);
/* Read what taskstats has queued, so that exit records are in before the
 * exits they describe are reported. */
void monitor_drain_taskstats(struct ptmon_monitor *m);
/* Fill @n's accounting from a record that came before @n was known. */
void monitor_taskstats_lookup(struct ptmon_monitor *m, struct node *n);
/* The connector has been read empty: give the records that waited for
 * their process's FORK to the processes now known.  (Also for tests.) */
void monitor_taskstats_settle(struct ptmon_monitor *m);

/* Read and handle the events queued on the connector socket, until it is
 * empty (bounded): once a tree is empty, each of its events is queued. */
void monitor_drain_events(struct ptmon_monitor *m);
/* Arm the timerfd for the earliest deadline of any task. */
void monitor_rearm(struct ptmon_monitor *m);
uint64_t monitor_foreign_dropped(const struct ptmon_monitor *m);
uint64_t monitor_events_received(const struct ptmon_monitor *m);
/* The tree filter's map (a no-op without it): a process found by a walk
 * joins it; one seen dead leaves it; one the monitor does not know, that
 * an event named, leaves it. */
void monitor_filter_add(struct ptmon_monitor *m, pid_t pid);
void monitor_filter_dead(struct ptmon_monitor *m, pid_t pid);
void monitor_filter_stranger(struct ptmon_monitor *m, pid_t pid);
/* Whether the tree filter holds @pid for the tree's (false without it,
 * or when it passes every process's events). */
bool monitor_filter_holds(struct ptmon_monitor *m, pid_t pid);
void monitor_notice(struct ptmon_monitor *m, struct ptmon_task *t, enum ptmon_notice_kind kind,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Release the reserved fds so that the next two opens succeed; re-take
 * them with monitor_reserve_fd().  Around the work that must not fail for
 * lack of fds: resyncs, transient pidfds, the pipe-holder search. */
void monitor_release_reserve(struct ptmon_monitor *m);
void monitor_reserve_fd(struct ptmon_monitor *m);
/* Read the connector until it is empty: every event queued before now
 * has been handled (a no-op without the connector). */
void monitor_read_connector(struct ptmon_monitor *m);

#endif
