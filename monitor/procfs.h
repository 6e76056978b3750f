/* SPDX-License-Identifier: MIT */
/*
 * Layer "procfs" (procfs.c): reading /proc.  Parsers are pure (tested on
 * byte buffers); readers return what the kernel said, -errno otherwise.
 * Knows no tree and no task.  Below it: sys.
 */
#ifndef PTMON_PROCFS_H
#define PTMON_PROCFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct argv_buf;

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

#endif
