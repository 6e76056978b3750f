/* SPDX-License-Identifier: MIT */
/* Layer "sys": the system calls and pidfd checks below every other layer
 * (sys.h). */
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Our headers are Linux 6.1's: define what came later (the pidfd system
 * calls themselves: pidfd.h). */
/* PIDFD_GET_INFO, Linux 6.13.  The ioctl number encodes the size of the
 * first version of the structure (64 bytes); later kernels accept it. */
struct util_pidfd_info {
	uint64_t mask;
	uint64_t cgroupid;
	uint32_t pid;
	uint32_t tgid;
	uint32_t ppid;
	uint32_t ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	/* spare0 on 6.13/6.14; the wait status from 6.15 (PIDFD_INFO_EXIT) */
	int32_t exit_code;
};
_Static_assert(sizeof(struct util_pidfd_info) == 64, "PIDFD_INFO_SIZE_VER0");
#define UTIL_PIDFS_IOCTL_MAGIC 0xFF
#define UTIL_PIDFD_GET_INFO _IOWR(UTIL_PIDFS_IOCTL_MAGIC, 11, struct util_pidfd_info)
#define UTIL_PIDFD_INFO_PID (1ull << 0)
#define UTIL_PIDFD_INFO_EXIT (1ull << 3) /* Linux 6.15 */

uint64_t util_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int util_pidfd_exited(int pidfd)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	for (;;) {
		int r = poll(&p, 1, 0);
		if (r >= 0)
			return r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : 0;
		if (errno != EINTR)
			return -errno;
	}
}

int util_pidfd_ppid(int pidfd, pid_t *ret_ppid)
{
	struct util_pidfd_info info = {.mask = UTIL_PIDFD_INFO_PID};
	if (ioctl(pidfd, UTIL_PIDFD_GET_INFO, &info) < 0)
		return -errno;
	*ret_ppid = (pid_t)info.ppid;
	return 0;
}

int util_pidfd_exit_status(int pidfd, int *ret_status)
{
	struct util_pidfd_info info = {.mask = UTIL_PIDFD_INFO_EXIT};
	if (ioctl(pidfd, UTIL_PIDFD_GET_INFO, &info) < 0)
		return -errno;
	/* Before 6.15 the bit is not known; from 6.15 it is set only once
	 * the process has been reaped (by its parent, for one not ours). */
	if (!(info.mask & UTIL_PIDFD_INFO_EXIT))
		return -ENODATA;
	*ret_status = info.exit_code;
	return 0;
}

int util_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}
