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
};

void cgroup_init(struct task_cgroup *cg);

/*
 * Make <the caller's cgroup>/<name> and open it.  Returns 0, or -errno with
 * *why set to a static reason: -ENOENT (no cgroup2 mount, or not in one),
 * -EACCES/-EPERM/-EROFS (no right to make one there: no delegation),
 * -EOPNOTSUPP (no cgroup.kill: Linux < 5.14).
 */
int cgroup_create(struct task_cgroup *cg, const char *name, const char **why);

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
