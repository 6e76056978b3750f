/* SPDX-License-Identifier: MIT */
/*
 * Layer "sys" (util.c): system calls and pidfds, nothing else.  The bottom
 * of libptmon: it knows no tree, no task, no monitor.  See
 * docs/internals.md for the layers above it.
 */
#ifndef PTMON_SYS_H
#define PTMON_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fdclose.h"
#include "pidfd.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

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

#endif
