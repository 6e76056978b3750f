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

struct task_cgroup {
	int fd;               /* O_PATH of the directory, -1: none */
	char path[512];       /* absolute, under the cgroup2 mount */
	bool killed;          /* cgroup.kill written */
	bool empty_proof;     /* "populated 0" read at the end */
	bool escaped;         /* "populated 1" instead: what lived was killed */
	bool removed;
	bool have_cpu;
	uint64_t usage_usec, user_usec, system_usec; /* cpu.stat at the end */
	/* `ptmon watch --cgroup`: the user's cgroup, not ptmon's; never
	 * removed, killed only by a cancel. */
	bool borrowed;
	char rel[512];        /* its path as /proc/PID/cgroup says it ("/a/b") */
};

void cgroup_init(struct task_cgroup *cg);

/*
 * Make <the caller's cgroup>/<name> and open it.  Returns 0, or -errno with
 * *why set to a static reason: -ENOENT (no cgroup2 mount, or not in one),
 * -EACCES/-EPERM/-EROFS (no right to make one there: no delegation),
 * -EOPNOTSUPP (no cgroup.kill: Linux < 5.14).
 */
int cgroup_create(struct task_cgroup *cg, const char *name, const char **why);

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

/* Write cgroup.kill.  Returns 0 or -errno. */
int cgroup_kill(struct task_cgroup *cg);

/* 1 when "populated 1", 0 when "populated 0", or -errno. */
int cgroup_populated(const struct task_cgroup *cg);

/* The end of a task: kill what is left when @kill (or anything that
 * escaped the pidfd path, which the proof finds), read the proof and the
 * CPU figures, close and remove the directory. */
void cgroup_finish(struct task_cgroup *cg, bool kill);

#endif
