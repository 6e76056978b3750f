/* SPDX-License-Identifier: MIT */
/*
 * libptmon: run tasks, track every process each one starts, cancel a task's
 * whole tree through pidfds, and drain its output pipes to EOF.
 *
 * One monitor object owns one epoll fd (ptmon_monitor_get_fd()) that a caller
 * may put in its own event loop, calling ptmon_monitor_dispatch() when it is
 * readable; or the caller calls ptmon_monitor_run(), which loops until every
 * task is done.  A monitor makes the calling process a child subreaper and
 * reaps all of its children: a process embeds at most one monitor and reaps
 * no children of its own while it exists.
 *
 * Functions return 0 or more on success and -errno on failure.  The library
 * never prints and never exits.
 *
 * Structs that grow.  Every struct a caller allocates and the library reads
 * or fills (ptmon_task_config, ptmon_attach_config, ptmon_task_result,
 * ptmon_process_info) begins with `size_t size`: the caller's sizeof of it,
 * set by ptmon_task_config_init() and ptmon_attach_config_init() (which take
 * it as an argument) or by the caller (`struct ptmon_task_result r =
 * {.size = sizeof(r)};`).  New fields are only ever appended, each version
 * ending without tail padding, and a new field's zero means what the older
 * versions did.  The library reads and writes only the caller's `size`
 * bytes, so a program built against an older ptmon.h runs with a newer
 * library.
 *
 * In a config, fields past the caller's size take their zero value.  A
 * caller newer than the library may pass a larger config, whose fields the
 * library does not know must then be zero: else -E2BIG, it asked for
 * something this library cannot do.  Of a result or info, only the caller's
 * size is written, its `size` is left as it was, and fields this library
 * does not know (a caller newer than it) read as zero.  A size smaller than
 * the first published layout (the *_SIZE_VER0 constants; 0 when the caller
 * forgot to set it) is refused with -EINVAL; so is one past 4096 (no layout
 * will be that large: a size never set), with -E2BIG for a config.
 * struct ptmon_event, which the library allocates, says in its own `size`
 * how much of it is there.  struct ptmon_holder is the stride of an array
 * and never grows.
 *
 * Flags.  Constructors take flags (ptmon_monitor_new(), ptmon_task_start(),
 * ptmon_task_attach()), and so does ptmon_task_cancel(); a bit this library
 * does not know is refused with -EINVAL, never ignored.
 */
#ifndef PTMON_H
#define PTMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#if defined(PTMON_BUILDING_LIBRARY)
#define PTMON_EXPORT __attribute__((visibility("default")))
#else
#define PTMON_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct ptmon_monitor;
struct ptmon_task;

enum ptmon_backend {
	PTMON_BACKEND_AUTO = 0,  /* connector if it works, else procfs */
	PTMON_BACKEND_CONNECTOR, /* proc connector events, required */
	PTMON_BACKEND_PROCFS,    /* subreaper and /proc walks only */
};

/* What the monitor found on this kernel; see ptmon_monitor_features(). */
#define PTMON_FEATURE_CONNECTOR (1u << 0)       /* events arrive */
#define PTMON_FEATURE_CONNECTOR_INPUT (1u << 1) /* 6.6+ proc_input subscribe taken */
#define PTMON_FEATURE_PIDFD_INFO (1u << 2)      /* PIDFD_GET_INFO ioctl (6.13+) */
#define PTMON_FEATURE_TASKSTATS (1u << 3)       /* per-process exit accounting */
#define PTMON_FEATURE_THREAD_FILTER (1u << 4)   /* thread events dropped in the kernel */
#define PTMON_FEATURE_TREE_FILTER (1u << 5)     /* eBPF: only the tree's events reach ptmon */

/* Flags of ptmon_monitor_new(): which socket filter the connector gets.
 * By default the eBPF tree filter where it loads (CAP_BPF), else the
 * classic one. */
#define PTMON_MONITOR_FILTER_CLASSIC (1u << 0) /* the classic filter only */
#define PTMON_MONITOR_FILTER_TREE (1u << 1)    /* the tree filter, or fail */
/* Raise the calling process's RLIMIT_NOFILE soft limit to its hard limit
 * (tasks still start with the original), for a process that wants every
 * tracked process's pidfd: with the common soft limit of 1024 a tree of a
 * few hundred processes exhausts it (the result's pidfd_failures counts
 * those).  A process-wide change, so the caller's choice: the ptmon command
 * makes it.  Not undone by ptmon_monitor_free(). */
#define PTMON_MONITOR_RAISE_NOFILE (1u << 2)

/*
 * Create a monitor: an epoll fd, a signalfd for SIGCHLD and a timerfd, and
 * the event backend.  Changes to the calling process, for as long as the
 * monitor lives:
 *   - it becomes a child subreaper (ptmon_monitor_free() makes it none
 *     again, unless it was one before);
 *   - SIGCHLD's action is set to SIG_DFL without flags (an inherited SIG_IGN
 *     or SA_NOCLDWAIT would have the kernel reap the task unseen), and
 *     SIGCHLD and SIGPIPE are blocked; ptmon_monitor_free() restores the
 *     caller's SIGCHLD action and signal mask (the caller must not rely on
 *     SIGCHLD otherwise).
 * RLIMIT_NOFILE is left alone unless PTMON_MONITOR_RAISE_NOFILE asks.
 * Tasks start with an empty signal mask and with their first cancel signal
 * not ignored, whatever the caller blocked or ignored; other ignored signals
 * stay ignored (as nohup means them).
 * Children the caller has at this point, and their descendants, are no
 * task's: the monitor reaps them when they end (it reaps every child) but
 * never signals, counts, reports or waits for them.  An orphan reparented
 * to the caller whose parent was never seen is taken for theirs while they
 * (or the orphans they left) live.  @flags: at most one
 * PTMON_MONITOR_FILTER_*, and PTMON_MONITOR_RAISE_NOFILE.
 *
 * Returns 0 and sets *ret, or -EINVAL (an unknown flag, both filters, an
 * unknown backend), -ENOMEM, -ENOSYS (no pidfd support),
 * -EPROTONOSUPPORT/-EPERM (BACKEND_CONNECTOR asked for but unavailable),
 * the tree filter's error (FILTER_TREE asked for but it cannot be loaded:
 * -EPERM without CAP_BPF, -EOPNOTSUPP when built without it) or another
 * -errno from the system calls involved.
 */
PTMON_EXPORT int ptmon_monitor_new(struct ptmon_monitor **ret, enum ptmon_backend backend,
				   unsigned flags);

/* Cancel nothing, close everything, free.  Tasks still running are killed
 * with SIGKILL first (through their pidfds).  Accepts NULL; returns NULL. */
PTMON_EXPORT struct ptmon_monitor *ptmon_monitor_free(struct ptmon_monitor *m);

/* The fd to poll for readability.  Owned by the monitor. */
PTMON_EXPORT int ptmon_monitor_get_fd(const struct ptmon_monitor *m);

/* Handle whatever is ready without blocking, then deliver the events and
 * notices queued (the only place, with ptmon_monitor_run(), where callbacks
 * run).  Returns the number of tasks still not done, or -errno. */
PTMON_EXPORT int ptmon_monitor_dispatch(struct ptmon_monitor *m);

/* Loop until every task is done.  Returns 0 or -errno. */
PTMON_EXPORT int ptmon_monitor_run(struct ptmon_monitor *m);

/*
 * Have the monitor receive the signals in @set (through its signalfd; they
 * are blocked for the calling thread) and cancel every running task when one
 * arrives, with PTMON_CANCEL_SIGNAL and that signal recorded.  A second
 * signal from the set skips the grace period.  They stay blocked after
 * ptmon_monitor_free(), so that one arriving late cannot strike the caller
 * on its way out.  Returns 0 or -errno.
 */
#ifdef _POSIX_C_SOURCE /* sigset_t is POSIX: strict ISO C (-std=c11 alone) lacks it */
PTMON_EXPORT int ptmon_monitor_cancel_on_signals(struct ptmon_monitor *m, const sigset_t *set);
#endif

/*
 * Serve a front: the process a caller started (and may SIGKILL), which
 * runs this monitor in a child of its own and forwards to it the signals
 * it receives (the ptmon command does, see src/front.c).  From then on:
 * - signals come only from the front: it sends each signal S it received
 *   as @fwd_sig (a real-time signal, so that copies queue instead of
 *   merging) with si_code SI_QUEUE and sival_int S, through
 *   pidfd_send_signal().  S counts as if this process had received it: it
 *   cancels when it is in the set of ptmon_monitor_cancel_on_signals(), and
 *   is ignored otherwise.  Signals of that set sent to this process directly
 *   are ignored: a kill(2) of the process group, a terminal's ^C, or
 *   systemd's SIGTERM to every process of a unit reach the front too, and
 *   must count once.
 * - when the process behind @pidfd exits, every running task is cancelled
 *   at once (SIGKILL sweeps, no grace), with PTMON_CANCEL_FRONT_DIED.
 * @fwd_sig is blocked and taken through the monitor's signalfd.  @pidfd is
 * duplicated; the caller keeps its own.  Returns 0, -EINVAL, or the -errno
 * of dup/epoll/signalfd.
 */
PTMON_EXPORT int ptmon_monitor_set_front(struct ptmon_monitor *m, pid_t pid, int pidfd,
					 int fwd_sig);

/* The backend in use: "connector" or "procfs". */
PTMON_EXPORT const char *ptmon_monitor_backend(const struct ptmon_monitor *m);

/* PTMON_FEATURE_* bits found at ptmon_monitor_new(). */
PTMON_EXPORT unsigned ptmon_monitor_features(const struct ptmon_monitor *m);

/* Why the connector backend is not in use (a static string), or NULL. */
PTMON_EXPORT const char *ptmon_monitor_fallback_reason(const struct ptmon_monitor *m);

/* Why the eBPF tree filter is not in use: the -errno of loading it
 * (-EPERM: no CAP_BPF; -EOPNOTSUPP: built without it), -ECANCELED when the
 * classic filter was asked for, 0 when it is in use or no connector is. */
PTMON_EXPORT int ptmon_monitor_tree_filter_error(const struct ptmon_monitor *m);

/* Resize the connector socket's receive buffer to @bytes (forced past
 * rmem_max with CAP_NET_ADMIN; the kernel doubles it), which is 8 MiB from
 * ptmon_monitor_new().  Smaller makes overflow, and the loss and resync it
 * causes, easy to provoke: a knob for tests.  Returns 0, -EINVAL (@bytes
 * 0), -ENOTCONN (no connector: the procfs backend) or setsockopt's -errno. */
PTMON_EXPORT int ptmon_monitor_set_rcvbuf(struct ptmon_monitor *m, size_t bytes);

enum ptmon_leftovers {
	PTMON_LEFTOVERS_KILL = 0, /* root exited: cancel what remains */
	PTMON_LEFTOVERS_WAIT,     /* root exited: wait for what remains */
};

/* Defaults, in nanoseconds. */
#define PTMON_DEFAULT_GRACE_NS (5ull * 1000000000ull)
#define PTMON_DEFAULT_DRAIN_NS (2ull * 1000000000ull)
/* How long SIGKILL sweeps go on before a cancel gives up on what survives
 * them (a process ptmon may not signal, EPERM; one in uninterruptible
 * sleep): those are then named (PTMON_NOTICE_WARNING, the process's
 * `survived`, the result's `survivors`) and the task goes on to drain. */
#define PTMON_KILL_BOUND_NS (5ull * 1000000000ull)

enum ptmon_cgroup_mode {
	PTMON_CGROUP_AUTO = 0, /* a cgroup of the task's own where one can be made */
	PTMON_CGROUP_ON,       /* required: ptmon_task_start() fails without */
	PTMON_CGROUP_OFF,
};

/* Durations are in nanoseconds; a deadline that would lie past the
 * clock's range (UINT64_MAX ns of CLOCK_MONOTONIC) is "never", not a wrap
 * into the past.  A sized struct: see the top of this header. */
struct ptmon_task_config {
	size_t size;         /* sizeof: ptmon_task_config_init() sets it */
	char *const *argv;   /* argv[0] is looked up in PATH */
	uint64_t timeout_ns; /* 0: none */
	uint64_t grace_ns;   /* between the first signal and SIGKILL */
	uint64_t drain_ns;   /* wait for EOF after the tree is empty */
	int signal;          /* first signal of a cancel; 0: SIGTERM */
	enum ptmon_leftovers leftovers;
	int stdout_fd; /* where the task's stdout goes; not owned */
	int stderr_fd; /* where the task's stderr goes; not owned */

	/* PTMON_TASK_CONFIG_SIZE_VER0 ends here. */
	/* A cgroup v2 of the task's own, a child of the caller's, that the
	 * root starts in (clone3 CLONE_INTO_CGROUP): cgroup.kill ends every
	 * cancel after the pidfd sweeps, "populated 0" proves it empty a
	 * second time, and it is removed at the end. */
	enum ptmon_cgroup_mode cgroup;
	/* Limits written into that cgroup before the root starts; 0: none.
	 * Any of them needs the cgroup (AUTO then acts as ON; OFF: -EINVAL)
	 * and its controller: ptmon_task_start() fails with -EOPNOTSUPP or
	 * -EBUSY, and ptmon_monitor_cgroup_unavailable() says why. */
	uint64_t memory_max; /* bytes: memory.max */
	uint64_t pids_max;   /* pids.max */
	uint64_t cpu_max_us; /* CPU time per 100 ms: cpu.max (150000: 1.5 CPUs) */

	/* PTMON_TASK_CONFIG_SIZE_VER1 ends here. */
};
#define PTMON_TASK_CONFIG_SIZE_VER0 56 /* argv .. stderr_fd: the first layout */
#define PTMON_TASK_CONFIG_SIZE_VER1 88 /* the cgroup and its limits */

/* Initialise @cfg, of @size bytes (the caller's sizeof(*cfg)), with the
 * defaults (SIGTERM, grace, drain, leftovers kill, output to fds 1 and 2,
 * zero for the rest) and set cfg->size to @size.  Returns 0, or -EINVAL
 * (@size below PTMON_TASK_CONFIG_SIZE_VER0: then only cfg->size is set, if
 * it fits, and ptmon_task_start() refuses @cfg). */
PTMON_EXPORT int ptmon_task_config_init(struct ptmon_task_config *cfg, size_t size);

/*
 * Start a task.  Its stdout and stderr are pipes that the monitor forwards
 * to cfg->stdout_fd/stderr_fd; stdin is inherited.  @flags: 0 (none is
 * defined yet; an argument rather than a field of @cfg so that a flag may
 * one day say how @cfg is to be read, and so that a call site shows it).
 * Returns 0 and sets *ret (owned by the monitor, valid until
 * ptmon_task_free() or ptmon_monitor_free()), or -errno:
 * -EINVAL (bad @cfg or its size, an unknown flag), -E2BIG (@cfg sets a
 * field this library does not know, or its size is past 4096), -ENOENT and -EACCES/-ENOEXEC etc.
 * when the command cannot be executed (the child's execvp() errno, reported through a close-on-exec
 * pipe), -EMFILE, -EAGAIN, ...
 */
PTMON_EXPORT int ptmon_task_start(struct ptmon_monitor *m, const struct ptmon_task_config *cfg,
				  unsigned flags, struct ptmon_task **ret);

/* ---- attaching to a tree ptmon did not start ----------------------------- */

/* A sized struct: see the top of this header. */
struct ptmon_attach_config {
	size_t size; /* sizeof: ptmon_attach_config_init() sets it */
	pid_t pid;   /* the root: a process (thread-group leader) */
	int signal;  /* first signal of a cancel; 0: SIGTERM */
	/* Instead of pid (which is then 0): a cgroup v2 directory; every
	 * process in it and in the cgroups below it is a top of the tree. */
	const char *cgroup;
	uint64_t timeout_ns; /* 0: none */
	uint64_t grace_ns;   /* between the first signal and SIGKILL */

	/* PTMON_ATTACH_CONFIG_SIZE_VER0 ends here. */
};
#define PTMON_ATTACH_CONFIG_SIZE_VER0 40

/* Initialise @cfg, of @size bytes (the caller's sizeof(*cfg)), with the
 * defaults (no pid, SIGTERM, the default grace) and set cfg->size to @size.
 * Returns 0 or -EINVAL, as ptmon_task_config_init(). */
PTMON_EXPORT int ptmon_attach_config_init(struct ptmon_attach_config *cfg, size_t size);

/*
 * Watch a running process, cfg->pid, and its descendants as a task, as if
 * ptmon had started it: the monitor is subscribed already; the root gets a
 * pidfd (from then on it names that process, whatever its pid does), then
 * /proc is walked for its descendants, each proven as a fork is (pidfd
 * first, parent proven alive and tracked while both live), then events
 * and pidfds follow the tree.  ptmon is no subreaper of it: a process
 * whose parent exits is reparented elsewhere (init), stays tracked (its
 * pidfd keeps it exact) and is reported `reparented`.  A child whose
 * parent exits before ptmon could prove the parent (a double fork) is
 * adopted on its FORK event's word and proven once the connector has been
 * read empty without an EXIT for its pid; after lost events it is dropped
 * (a warning says so).  What left the tree before the attach (a daemon
 * that double-forked earlier) cannot be found by lineage.
 *
 * The task has no output (its streams count 0 bytes) and ends when the
 * root and every tracked process are gone (leftovers: wait); its result's
 * root_status is the root's, from its connector EXIT event or, on Linux
 * 6.15+, PIDFD_INFO_EXIT once its parent reaped it; 0 when neither told.
 * ptmon_task_cancel() works as for a started task: first signal, grace,
 * SIGKILL sweeps; a process ptmon may not signal (another user's) gets a
 * PTMON_EVENT_SIGNAL with error EPERM and the rest go on.  The monitor's
 * subreaper role is not used.
 *
 * @flags: 0 (none is defined yet), as for ptmon_task_start().
 *
 * Returns 0 and sets *ret, or -EINVAL (bad config or its size, an unknown
 * flag, pid <= 0, or pid is a thread, not a process), -E2BIG (@cfg sets a
 * field this library does not know, or its size is past 4096), -EPERM (pid 1: its tree is the
 * system), -ELOOP (pid is the calling process or one of its ancestors: a cancel would kill the
 * caller), -ESRCH (no such process, or it has exited), -ENOMEM, or the -errno of pidfd_open.
 *
 * With cfg->cgroup (cfg->pid 0): every process in that cgroup v2 directory
 * and in the cgroups below it is a top of the tree, each proven a member
 * (pidfd first, /proc/PID/cgroup read while it lives), including what left
 * a lineage before the attach; their descendants follow as above, and a
 * process moved into the cgroup later joins at the next resync (every
 * cancel and kill sweep makes one).  It ends when nothing tracked lives
 * and the cgroup reads "populated 0" (cgroup.events is watched); root_pid
 * is the first member found and root_status stays 0.  A cancel signals
 * through pidfds as above; when the cgroup is still populated after the
 * SIGKILL sweeps, cgroup.kill of the directory is the last resort
 * (result.cgroup_killed).  The directory is never removed.  Errors also:
 * -ENOENT/-ENOTDIR/-EACCES (see ptmon_monitor_cgroup_unavailable() for
 * why), -ESRCH (no process in it), -EPERM/-ELOOP (init, the caller or its
 * ancestors are in it).
 */
PTMON_EXPORT int ptmon_task_attach(struct ptmon_monitor *m, const struct ptmon_attach_config *cfg,
				   unsigned flags, struct ptmon_task **ret);

/* Whether @t was made by ptmon_task_attach(). */
PTMON_EXPORT bool ptmon_task_attached(const struct ptmon_task *t);

/* Why a task was cancelled. */
enum ptmon_cancel_reason {
	PTMON_CANCEL_NONE = 0,
	PTMON_CANCEL_TIMEOUT,
	PTMON_CANCEL_SIGNAL,     /* the caller asked, on a signal it received */
	PTMON_CANCEL_REQUEST,    /* the caller asked */
	PTMON_CANCEL_LEFTOVERS,  /* the root exited and leftovers=kill */
	PTMON_CANCEL_FRONT_DIED, /* the front exited: ptmon_monitor_set_front() */
};

/* How ptmon_task_cancel() goes about it (flags). */
#define PTMON_CANCEL_GRACEFUL 0u   /* the first signal, then the grace period */
#define PTMON_CANCEL_NOW (1u << 0) /* SIGKILL at once, no grace period */

/*
 * Cancel a task: the first signal to every live process of its tree, then
 * SIGKILL after the grace period (at once with PTMON_CANCEL_NOW in @flags,
 * or when the task is already past its first signal).  @reason is recorded
 * by the first cancel.  Idempotent.  Returns 0, or -EINVAL (@t NULL,
 * @reason PTMON_CANCEL_NONE or unknown, an unknown flag).
 */
PTMON_EXPORT int ptmon_task_cancel(struct ptmon_task *t, enum ptmon_cancel_reason reason,
				   unsigned flags);

/* How a task went; valid once ptmon_task_done() is true.  A sized struct:
 * see the top of this header. */
struct ptmon_task_result {
	size_t size; /* the caller's sizeof, set before the call */
	pid_t root_pid;
	int root_status; /* waitid si_code: CLD_EXITED/KILLED/DUMPED;
			    0: unknown (an attached root, see
			    ptmon_task_attach()) */
	int root_value;  /* exit code or signal number */
	enum ptmon_cancel_reason cancel_reason;
	int cancel_signal;           /* the signal ptmon received, for _SIGNAL */
	bool drain_timed_out;        /* a pipe was still open at the drain bound */
	uint64_t processes;          /* processes of the tree seen, root included */
	uint64_t signalled;          /* processes ptmon sent a signal to */
	uint64_t killed;             /* processes ptmon sent SIGKILL to */
	uint64_t events_lost;        /* connector overruns plus sequence gaps */
	uint64_t resyncs;            /* /proc walks */
	uint64_t foreign_dropped;    /* netlink messages dropped as forged */
	uint64_t pids_reused;        /* announced pids that belonged to another process */
	uint64_t pidfd_failures;     /* pidfds that could not be opened (fd limit) */
	uint64_t cancel_to_empty_ns; /* 0 when never cancelled */
	uint64_t cancel_to_eof_ns;
	uint64_t bytes_out, bytes_err;

	/* PTMON_TASK_RESULT_SIZE_VER0 ends here. */
	/* The task's output that never reached stdout_fd/stderr_fd, in bytes:
	 * its reader left, a write failed, or the drain bound passed. */
	uint64_t dropped_out, dropped_err;
	/* The errno of the write that failed there (EPIPE: the reader left;
	 * ENOSPC, EIO, ...: the destination failed), 0: none. */
	int error_out, error_err;
	/* The task's own cgroup (ptmon_task_config.cgroup), when it had one. */
	bool cgroup;
	bool cgroup_killed;      /* cgroup.kill was written */
	bool cgroup_empty_proof; /* "populated 0" at the end, as the pidfds said */
	bool cgroup_escaped;     /* "populated 1" instead: those were killed */
	bool cgroup_removed;
	bool cgroup_have_cpu; /* cpu.stat was read */
	/* The cgroup's other totals, where its controller was enabled. */
	bool cgroup_have_memory_peak, cgroup_have_pids_peak, cgroup_have_io, cgroup_have_oom;
	bool attached; /* made by ptmon_task_attach() */
	uint64_t cgroup_cpu_usec, cgroup_user_usec, cgroup_system_usec;
	uint64_t cgroup_memory_peak;                 /* memory.peak, bytes */
	uint64_t cgroup_pids_peak;                   /* pids.peak */
	uint64_t cgroup_io_rbytes, cgroup_io_wbytes; /* io.stat, all devices */
	uint64_t cgroup_oom_kills; /* memory.events oom_kill: the kernel's OOM kills */
	uint64_t survivors;        /* processes alive when the cancel gave up
				      (PTMON_KILL_BOUND_NS of SIGKILL sweeps) */
	/* Connector events that reached ptmon's socket, for all the monitor's
	 * tasks: with the tree filter, only the tree's. */
	uint64_t events_received;

	/* PTMON_TASK_RESULT_SIZE_VER1 ends here. */
};
#define PTMON_TASK_RESULT_SIZE_VER0 128 /* root_pid .. bytes_err: the first layout */
#define PTMON_TASK_RESULT_SIZE_VER1 248

PTMON_EXPORT bool ptmon_task_done(const struct ptmon_task *t);

/*
 * Release a task and every record of its processes (struct ptmon_process),
 * its root's included, with its argv copy and what is left of its output
 * streams and cgroup.  For a program that runs many tasks in one monitor:
 * without it, a task and its root's record live until ptmon_monitor_free().
 * It may be called once ptmon_task_done(@t) is true and no process of its
 * tree is alive (survivors of a cancel that gave up are; see
 * ptmon_task_result().survivors), outside the monitor's callbacks (not
 * from a ptmon_event_fn or ptmon_notice_fn).  Then it returns NULL and @t
 * and every ptmon_process pointer of it are invalid.  Otherwise it does
 * nothing and returns @t.  Accepts NULL (returns NULL).
 */
PTMON_EXPORT struct ptmon_task *ptmon_task_free(struct ptmon_task *t);
/* Fill the caller's *ret, as far as its ret->size, once ptmon_task_done(@t).
 * Returns 0, -EBUSY (not done yet) or -EINVAL (@t or @ret NULL, ret->size
 * below PTMON_TASK_RESULT_SIZE_VER0 or past 4096). */
PTMON_EXPORT int ptmon_task_result(const struct ptmon_task *t, struct ptmon_task_result *ret);
PTMON_EXPORT pid_t ptmon_task_root_pid(const struct ptmon_task *t);

/* The path of the task's own cgroup, or NULL without one. */
PTMON_EXPORT const char *ptmon_task_cgroup_path(const struct ptmon_task *t);

/* Why the last task started had, or the last ptmon_task_start() that
 * failed for PTMON_CGROUP_ON could get, no cgroup of its own (a static
 * string); NULL when it had one or none was asked for. */
PTMON_EXPORT const char *ptmon_monitor_cgroup_unavailable(const struct ptmon_monitor *m);

/*
 * Diagnostics for a caller to print, delivered from
 * ptmon_monitor_dispatch() and ptmon_monitor_run() only, in order with the
 * events (see ptmon_monitor_set_event_callback() for what a callback may
 * call).  @text is a complete sentence without newline.
 */
enum ptmon_notice_kind {
	PTMON_NOTICE_INFO,        /* verbose progress */
	PTMON_NOTICE_LEFTOVERS,   /* the root exited and these remain */
	PTMON_NOTICE_PIPE_HOLDER, /* a process outside the tree holds an output pipe */
	PTMON_NOTICE_WARNING,     /* something degraded; ptmon goes on */
};
typedef void (*ptmon_notice_fn)(struct ptmon_task *t, enum ptmon_notice_kind kind, const char *text,
				void *userdata);
PTMON_EXPORT void ptmon_monitor_set_notice(struct ptmon_monitor *m, ptmon_notice_fn fn,
					   void *userdata);

/* ---- observing: processes and events ------------------------------------ */

/*
 * A process of a task's tree: its record.  What a long run keeps is bounded:
 * once a process's PTMON_EVENT_EXIT has been delivered, its record may be
 * freed at the end of any later ptmon_monitor_dispatch() (never during a
 * callback, nor in other calls), unless its task holds its records
 * (ptmon_task_hold_records()).  The root's record is kept until
 * ptmon_task_free() or ptmon_monitor_free().  So a record is valid during
 * the callback that passes it, and after that only while its process lives
 * or its task holds records.
 */
struct ptmon_process;

enum ptmon_process_end {
	PTMON_END_RUNNING = 0, /* alive, as far as ptmon knows */
	PTMON_END_EXITED,      /* exit_code */
	PTMON_END_SIGNALED,    /* term_signal, core_dumped */
	PTMON_END_UNKNOWN,     /* gone; how, no source told */
};

/* Where a process's accounting figures came from. */
enum ptmon_acct_source {
	PTMON_ACCT_NONE = 0,
	PTMON_ACCT_TASKSTATS, /* the kernel's exit record, any process */
	PTMON_ACCT_RUSAGE,    /* wait4() of a process ptmon reaped itself */
};

/*
 * Longest argv kept, in bytes (NUL separators included); longer is cut.
 * 2 MiB: ARG_MAX under the default 8 MiB stack limit, so that every argv a
 * default system can exec is kept whole (a larger RLIMIT_STACK lets the
 * kernel take up to 6 MiB of arguments and environment; those are cut).
 * It used to be 4096: it is no size for a buffer on the stack.  An argv is
 * stored once and shared by a parent and the children it forks without
 * exec, so its cost is paid per exec, not per process.
 */
#define PTMON_ARGV_MAX (2u * 1024u * 1024u)

/* Whose argv ptmon_process_info.argv is. */
enum ptmon_argv_source {
	/* Read from the process itself: /proc/PID/cmdline after its exec or
	 * when a walk found it, or the argv ptmon exec'd the root with. */
	PTMON_ARGV_OWN = 0,
	/* Its parent's, copied at fork, and no exec of it was seen while
	 * ptmon followed its events without loss: what it runs as, unless
	 * it changed its own argv area. */
	PTMON_ARGV_INHERITED,
	/* Not known: it exec'd but was gone before /proc could be read, or
	 * events were lost during its life.  argv is NULL. */
	PTMON_ARGV_UNKNOWN,
};

/* A sized struct: see the top of this header. */
struct ptmon_process_info {
	size_t size;        /* the caller's sizeof, set before the call */
	uint64_t id;        /* unique in the monitor, from 1, in the order seen */
	uint64_t parent_id; /* the process that forked it; 0 when unknown (root) */
	pid_t pid;
	pid_t ppid;       /* the parent's pid when ptmon learned of it */
	const char *argv; /* argv_len bytes, each argument NUL-terminated; NULL: unknown
			     (see argv_source) */
	size_t argv_len;
	char comm[16];
	uint64_t start_mono_ns; /* when ptmon learned of it (CLOCK_MONOTONIC) */
	uint64_t end_mono_ns;   /* when ptmon learned of its end; 0 while running */
	uint64_t start_wall_ns; /* the same on CLOCK_REALTIME */
	uint64_t end_wall_ns;
	enum ptmon_process_end end;
	int exit_code;
	int term_signal;
	int signal_sent;  /* the last signal ptmon sent it, 0: none */
	uint32_t threads; /* threads it had besides the main one (from taskstats) */
	enum ptmon_acct_source acct;
	bool root;
	bool argv_truncated; /* cut at PTMON_ARGV_MAX */
	bool core_dumped;
	bool short_lived;     /* gone before ptmon could hold a pidfd for it */
	bool killed_by_ptmon; /* it died of a signal ptmon sent */
	uint64_t utime_us;
	uint64_t stime_us;
	uint64_t maxrss_kb;  /* peak resident memory */
	uint64_t read_bytes; /* taskstats: bytes through read(); rusage: 0 */
	uint64_t write_bytes;

	/* PTMON_PROCESS_INFO_SIZE_VER0 ends here. */
	enum ptmon_argv_source argv_source;
	/* An attached task's process whose parent exited while it lived: it
	 * was reparented to init or another subreaper, and stayed tracked. */
	bool reparented;
	/* NULL, or why it was still alive when a cancel gave up on it:
	 * "not permitted" (EPERM: it runs as another user), "uninterruptible
	 * sleep" (D state), "unknown". */
	const char *survived;

	/* PTMON_PROCESS_INFO_SIZE_VER1 ends here. */
};
#define PTMON_PROCESS_INFO_SIZE_VER0 168 /* id .. write_bytes: the first layout */
#define PTMON_PROCESS_INFO_SIZE_VER1 184

/* Fill the caller's *ret, as far as its ret->size, with what ptmon knows of
 * @p now.  Returns 0 or -EINVAL (@p or @ret NULL, ret->size below
 * PTMON_PROCESS_INFO_SIZE_VER0 or past 4096). */
PTMON_EXPORT int ptmon_process_get_info(const struct ptmon_process *p,
					struct ptmon_process_info *ret);

/* What a live process looks like now (ptmon_process_sample()). */
struct ptmon_process_sample {
	size_t size;        /* sizeof(struct ptmon_process_sample), set by the caller */
	uint64_t cpu_us;    /* user + system CPU time so far (clock ticks' precision) */
	uint64_t rss_bytes; /* resident memory now */
	char state;         /* /proc/PID/stat's: R S D Z T t I ... */
			    /* PTMON_PROCESS_SAMPLE_SIZE_VER0 ends here (with padding). */
};
#define PTMON_PROCESS_SAMPLE_SIZE_VER0 32

/*
 * Read what @p, a process of a task that the monitor tracks as alive, looks
 * like now, from /proc/PID, and prove through its pidfd that what was read
 * is @p's, not that of a process that took its pid since.  For a `ptmon
 * tree` or a dashboard; the records keep the totals at exit
 * (ptmon_process_get_info()).  Returns 0 and fills *ret as far as its
 * ret->size, or -errno: -ESRCH when @p has exited (or is about to be
 * reaped), -EINVAL for NULL or a ret->size below
 * PTMON_PROCESS_SAMPLE_SIZE_VER0 or past 4096, -EIO for /proc text it
 * cannot parse; *ret is untouched on failure.
 */
PTMON_EXPORT int ptmon_process_sample(const struct ptmon_process *p,
				      struct ptmon_process_sample *ret);

/* Call @fn for every process of @t, in the order seen (parents before
 * children).  Stops at and returns @fn's first negative value; else 0. */
PTMON_EXPORT int ptmon_task_foreach_process(const struct ptmon_task *t,
					    int (*fn)(const struct ptmon_process *p, void *ud),
					    void *ud);

/* The process of @t seen after @p (NULL: the first), or NULL after the last.
 * Processes are appended, so a caller that holds the task's records can
 * walk them a few at a time across calls; those seen meanwhile come at the
 * end.  Without a hold, @p must not be kept across a dispatch. */
PTMON_EXPORT const struct ptmon_process *ptmon_task_next_process(const struct ptmon_task *t,
								 const struct ptmon_process *p);

/*
 * Keep the records of @t's exited processes (a count of holds: each hold
 * needs one release).  A caller that walks a task's processes after they
 * exit (a report or summary at the end, a tree walked across dispatches)
 * holds them from ptmon_task_start() on; records already dropped are not
 * brought back.  Without a hold, a record goes once its EXIT event has been
 * delivered and the walks (ptmon_task_foreach_process(),
 * ptmon_task_next_process(), ptmon_task_find_process()) see the root, the
 * live processes and the exited ones not yet dropped.
 */
PTMON_EXPORT void ptmon_task_hold_records(struct ptmon_task *t);
PTMON_EXPORT void ptmon_task_release_records(struct ptmon_task *t);

/* The number of process records @m keeps now, of every task (ptmon's own
 * children from before the monitor included): what a long run costs. */
PTMON_EXPORT uint64_t ptmon_monitor_records(const struct ptmon_monitor *m);

/* The most processes of @t alive at once, as ptmon counted them. */
PTMON_EXPORT uint64_t ptmon_task_max_alive(const struct ptmon_task *t);

enum ptmon_event_type {
	PTMON_EVENT_START, /* the task started: process is its root */
	PTMON_EVENT_FORK,
	PTMON_EVENT_EXEC, /* argv read from /proc when ptmon saw it */
	PTMON_EVENT_COMM,
	PTMON_EVENT_EXIT,          /* with status and accounting, when known */
	PTMON_EVENT_SIGNAL,        /* ptmon sent signal to pid: error is the result */
	PTMON_EVENT_LOST,          /* count events lost, reason */
	PTMON_EVENT_RESYNC,        /* count processes a /proc walk found untracked */
	PTMON_EVENT_EOF,           /* stream reached EOF */
	PTMON_EVENT_DRAIN_TIMEOUT, /* stream still open at the drain bound: holders */
	PTMON_EVENT_DONE,          /* the task is done: ptmon_task_result() works */
};

/* An array's element (ptmon_event.holders): its layout is the stride, so it
 * never grows. */
struct ptmon_holder {
	pid_t pid;
	int fd;
	char comm[16];
};

/* Allocated by the library: @size is the number of bytes of it there are,
 * so a caller built against a newer ptmon.h reads a field appended later
 * only when size > offsetof(struct ptmon_event, field). */
struct ptmon_event {
	size_t size;
	enum ptmon_event_type type;
	struct ptmon_task *task;
	uint64_t mono_ns;
	uint64_t wall_ns;
	pid_t pid;                           /* the process concerned, 0: none */
	pid_t ppid;                          /* its parent */
	const struct ptmon_process *process; /* FORK EXEC COMM EXIT SIGNAL START */
	int signal;                          /* SIGNAL */
	int error;                           /* SIGNAL: 0 or the errno of the send */
	uint64_t count;                      /* LOST, RESYNC */
	const char *reason;                  /* LOST, RESYNC */
	const char *stream;                  /* EOF, DRAIN_TIMEOUT: "stdout" or "stderr" */
	size_t nholders;                     /* DRAIN_TIMEOUT */
	const struct ptmon_holder *holders;
};

typedef void (*ptmon_event_fn)(const struct ptmon_event *ev, void *userdata);

/*
 * Deliver events to @fn.  Callbacks (this one and the ptmon_notice_fn) run
 * only at the end of ptmon_monitor_dispatch() and inside
 * ptmon_monitor_run(), in the order the events happened: never inside
 * ptmon_task_start(), ptmon_task_attach(), ptmon_task_cancel(),
 * ptmon_task_kill() or ptmon_monitor_free() (which delivers nothing still
 * queued).  What those calls cause is queued, and the monitor's fd turns
 * readable so that the next dispatch delivers it.
 *
 * During a callback, ev->process reads (ptmon_process_get_info()) as the
 * process was when the event happened; the pointer is the process's
 * record, valid as struct ptmon_process says.
 *
 * A callback may call: ptmon_task_cancel(), ptmon_task_kill(),
 * ptmon_task_result(), ptmon_task_done(), ptmon_process_get_info(), the
 * walks and finds of processes, ptmon_task_hold_records() and _release_,
 * ptmon_task_start() and ptmon_task_attach() (their events come with the
 * next dispatch), and every getter.  It must not call
 * ptmon_monitor_dispatch(), ptmon_monitor_run() (a nested call delivers
 * nothing), ptmon_task_free() or ptmon_monitor_free().
 */
PTMON_EXPORT void ptmon_monitor_set_event_callback(struct ptmon_monitor *m, ptmon_event_fn fn,
						   void *userdata);

/* Why taskstats accounting is not in use (a static string), or NULL. */
PTMON_EXPORT const char *ptmon_monitor_taskstats_unavailable(const struct ptmon_monitor *m);

/* ---- acting on one process ------------------------------------------------ */

/* Find a process of @t by pid: the one that has the pid now, or the last
 * one that had it whose record is kept.  NULL when none is (no process of
 * @t had it, or its record was dropped: ptmon_task_hold_records()). */
PTMON_EXPORT const struct ptmon_process *ptmon_task_find_process(const struct ptmon_task *t,
								 pid_t pid);

#define PTMON_KILL_SUBTREE (1u << 0) /* and every live descendant of it in the tree */

/*
 * Send @sig (0 only checks) to the live process @pid of @t, through its
 * verified pidfd; with PTMON_KILL_SUBTREE to it and to every live process
 * below it in the tree.  Never signals a process outside the tree.
 * Returns the number of processes signalled, or -EINVAL (bad signal or
 * flags), -ENOENT (no process of the tree had @pid, as far as the records
 * kept say: not ours, or exited and dropped),
 * -ESRCH (it was ours but has exited), or the error of the send.
 */
PTMON_EXPORT int ptmon_task_kill(struct ptmon_task *t, pid_t pid, int sig, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif
