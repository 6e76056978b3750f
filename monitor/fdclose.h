/* SPDX-License-Identifier: MIT */
/*
 * The one way ptmon closes a file descriptor, in the library (monitor/,
 * netlink/) and in the command (src/):  `fd = util_close(fd);`
 */
#ifndef PTMON_FDCLOSE_H
#define PTMON_FDCLOSE_H

#include <errno.h>
#include <unistd.h>

/* Closes @fd when it is one (>= 0), keeping errno, and returns -1.  Linux
 * releases the fd even when close() reports EINTR: retrying could close
 * someone else's new fd, so the result is not looked at. */
static inline int util_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		(void)close(fd);
		errno = saved;
	}
	return -1;
}

#endif
