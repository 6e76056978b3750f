/* SPDX-License-Identifier: MIT */
/*
 * A cgroup v2 of the task's own, created beside nothing else: a child of
 * the cgroup ptmon runs in.  The task's root starts inside it (clone3 with
 * CLONE_INTO_CGROUP, Linux 5.7), so not one instruction of the task runs
 * outside it.  It adds to the pidfd path, which stays the primary
 * mechanism: cgroup.kill ends every cancel after the pidfd sweeps, and
 * "populated 0" in cgroup.events is a second, independent proof that the
 * tree is empty.  No controller is needed for either.
 */
#ifndef PTMON_CGROUP_H
#define PTMON_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* What a task's cgroup says of it at the end (cgroup_finish()). */
struct cgroup_totals {
	bool killed;      /* cgroup.kill written */
	bool empty_proof; /* "populated 0" read at the end */
	bool escaped;     /* "populated 1" instead: what lived was killed */
	bool removed;
	bool have_cpu;
	uint64_t usage_usec, user_usec, system_usec; /* cpu.stat at the end */
	/* The rest, read where the controller is enabled for the cgroup
	 * (have_*: the file was there). */
	bool have_memory_peak, have_pids_peak, have_io, have_oom;
	uint64_t memory_peak;          /* memory.peak, bytes (5.19+) */
	uint64_t pids_peak;            /* pids.peak (6.1+) */
	uint64_t io_rbytes, io_wbytes; /* io.stat, summed over devices */
	uint64_t oom_kills;            /* memory.events oom_kill */
};

/* struct task_cgroup is private to cgroup.c: a cgroup directory open (or
 * none), ptmon's own or, for `ptmon watch --cgroup`, the user's
 * ("borrowed": never removed, killed only by a cancel). */
struct task_cgroup;

/* One with no directory; NULL: no memory. */
struct task_cgroup *cgroup_new(void);
/* cgroup_finish() without a kill, and free; takes NULL. */
struct task_cgroup *cgroup_free(struct task_cgroup *cg);
/* Back to none, after a cgroup_finish(): the totals are forgotten. */
void cgroup_reset(struct task_cgroup *cg);
/* A directory is open (from cgroup_create() or _open_existing() until
 * cgroup_finish()). */
bool cgroup_is_open(const struct task_cgroup *cg);
/* The user's cgroup (cgroup_open_existing()). */
bool cgroup_borrowed(const struct task_cgroup *cg);
/* Its absolute path, "" when none was made. */
const char *cgroup_path(const struct task_cgroup *cg);
const struct cgroup_totals *cgroup_totals(const struct task_cgroup *cg);

/* Limits for a task's cgroup; 0: none. */
struct cgroup_limits {
	uint64_t memory_max;   /* bytes: memory.max */
	uint64_t pids_max;     /* pids.max */
	uint64_t cpu_quota_us; /* cpu.max "QUOTA PERIOD" */
	uint64_t cpu_period_us;
};

/*
 * Make <the caller's cgroup>/<name> and open it.  Returns 0, or -errno with
 * *why set to a static reason: -ENOENT (no cgroup2 mount, or not in one),
 * -EACCES/-EPERM/-EROFS (no right to make one there: no delegation),
 * -EOPNOTSUPP (no cgroup.kill: Linux < 5.14).
 */
int cgroup_create(struct task_cgroup *cg, const char *name, const char **why);

/*
 * Write @l's limits into @cg, before any process is in it.  A controller
 * the cgroup lacks is enabled in its parent's cgroup.subtree_control.
 * Returns 0, or -errno with *ret_controller naming the controller and *why
 * set to a static predicate for it ("is not available ..."): -EOPNOTSUPP
 * (the controller is not available to ptmon's cgroup), -EBUSY (ptmon's
 * cgroup holds processes, so cgroup v2 lets it enable no controller for
 * its children), or the write's error.
 */
int cgroup_set_limits(struct task_cgroup *cg, const struct cgroup_limits *l, const char **why,
		      const char **ret_controller);
/* The same for the cgroup directory @path, open at @dirfd (for tests). */
int cgroup_write_limits(int dirfd, const char *path, const struct cgroup_limits *l,
			const char **why, const char **ret_controller);

/* Parsers of the cgroup files, exposed for the unit tests.  The value of
 * "KEY VALUE" on a line of its own in @buf: 0, or -ENOENT. */
int cgroup_parse_key(const char *buf, const char *key, uint64_t *ret);
/* io.stat's rbytes= and wbytes=, summed over its devices' lines. */
void cgroup_parse_io(const char *buf, uint64_t *ret_rbytes, uint64_t *ret_wbytes);
/* Read the end-of-task totals of the cgroup open at @dirfd into @t. */
void cgroup_read_totals(struct cgroup_totals *t, int dirfd);

/*
 * Open @path, an existing cgroup v2 directory that ptmon did not make, for
 * `ptmon watch --cgroup`.  Returns 0, or -errno with *why set: -ENOENT,
 * -ENOTDIR (not a cgroup v2 directory), -EACCES, -ENAMETOOLONG.
 */
int cgroup_open_existing(struct task_cgroup *cg, const char *path, const char **why);

/* The processes (thread-group ids) in @cg and in the cgroups below it, in a
 * malloc'd *ret_pids.  Returns their number or -errno. */
int cgroup_read_procs(const struct task_cgroup *cg, pid_t **ret_pids);

/* 1 when /proc says @pid is in @cg or below it, 0 when not, or -errno
 * (-ESRCH: gone).  The caller proves the answer is about its process. */
int cgroup_holds(const struct task_cgroup *cg, pid_t pid);

/* An fd of @cg's cgroup.events for epoll (EPOLLPRI: "populated" changed),
 * or -errno.  Read it (cgroup_events_ack()) to clear the event. */
int cgroup_events_open(const struct task_cgroup *cg);
void cgroup_events_ack(int fd);

/* fork(), but the child starts in @cg (clone3 CLONE_INTO_CGROUP).
 * -ENOSYS, -E2BIG or -EINVAL where the kernel lacks it (< 5.7). */
pid_t cgroup_fork_into(const struct task_cgroup *cg);

/* Move the calling process into @cg (cgroup.procs).  Returns 0, or -1
 * with errno set. */
int cgroup_enter(const struct task_cgroup *cg);

/* Write cgroup.kill.  Returns 0 or -errno. */
int cgroup_kill(struct task_cgroup *cg);

/* 1 when "populated 1", 0 when "populated 0", or -errno. */
int cgroup_populated(const struct task_cgroup *cg);

/* The end of a task: kill what is left when @kill (or anything that
 * escaped the pidfd path, which the proof finds), read the proof and the
 * CPU figures, close and remove the directory. */
void cgroup_finish(struct task_cgroup *cg, bool kill);

#endif
