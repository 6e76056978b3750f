/* SPDX-License-Identifier: MIT */
/*
 * The pidfd system calls, in one place for the library (monitor/) and the
 * command (src/front.c), as fdclose.h is for close: header only, since the
 * command links the shared library, which exports none of this.  Our
 * headers are Linux 6.1's; the numbers are the same on every architecture
 * (the unified syscall table, from Linux 5.1/5.3).
 */
#ifndef PTMON_PIDFD_H
#define PTMON_PIDFD_H

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif

/* A pidfd of @pid (O_CLOEXEC, always: pidfd_open sets it), or -errno:
 * -ENOSYS before Linux 5.3, -ESRCH, -EMFILE... */
static inline int util_pidfd_open(pid_t pid, unsigned flags)
{
	long r = syscall(__NR_pidfd_open, pid, flags);
	return r < 0 ? -errno : (int)r;
}

/* @sig with @info (NULL: as kill(2) would fill it) to the process behind
 * @pidfd: 0 or -errno (-ESRCH once it has exited). */
static inline int util_pidfd_send_siginfo(int pidfd, int sig, siginfo_t *info)
{
	return syscall(__NR_pidfd_send_signal, pidfd, sig, info, 0) < 0 ? -errno : 0;
}

static inline int util_pidfd_send_signal(int pidfd, int sig)
{
	return util_pidfd_send_siginfo(pidfd, sig, NULL);
}

#endif
