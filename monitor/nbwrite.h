/* SPDX-License-Identifier: MIT */
/*
 * Writing to a destination someone else gave us (the caller's stdout or
 * stderr) without ever blocking.  Header-only, because both libptmon (the
 * task's output) and the command (its own messages) need it and neither may
 * reach the other's private symbols.
 *
 * The best case is an open file description of our own with O_NONBLOCK,
 * reopened through /proc/self/fd, so that the flag changes nothing for the
 * other processes that share the caller's description (a terminal, a pipe
 * to a pager).  That reopen fails when we may not open the inode (ptmon run
 * under another uid than the pipe's creator); then the shared, blocking
 * description is all we have, and setting O_NONBLOCK on it would make its
 * other writers fail with EAGAIN.  So each write asks for no waiting itself:
 * pwritev2(RWF_NOWAIT), which anonymous pipes honour since Linux 6.4; where
 * it is refused (older kernels, FIFOs, terminals), poll() says whether one
 * pipe buffer (a page, PIPE_BUF bytes) is free, and at most PIPE_BUF bytes
 * are written: pipe_write() fills a free buffer without waiting.  Only a
 * second writer racing us between the poll and the write could still make
 * such a write wait, for as long as the reader takes to read one page.
 */
#ifndef PTMON_NBWRITE_H
#define PTMON_NBWRITE_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

enum nbw_kind {
	NBW_OWN,    /* our own O_NONBLOCK description, or a regular file */
	NBW_SOCKET, /* send(MSG_DONTWAIT) */
	NBW_SHARED, /* the caller's blocking description of a pipe or terminal */
};

struct nbw {
	int fd;
	enum nbw_kind kind;
	bool no_rwf_nowait; /* pwritev2(RWF_NOWAIT) refused once: poll instead */
};

/*
 * Open @w on the destination @fd (not taken: @w gets its own fd, close-on-
 * exec, at 3 or above).  Returns 0, or -errno when not even a duplicate can
 * be made (EMFILE).
 */
static inline int nbw_open(struct nbw *w, int fd)
{
	struct stat st;
	*w = (struct nbw){.fd = -1, .kind = NBW_OWN};
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		int r = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (r >= 0) {
			w->fd = r;
			return 0;
		}
	}
	int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (r < 0)
		return -errno;
	w->fd = r;
	int fl = fcntl(r, F_GETFL);
	if (S_ISSOCK(st.st_mode))
		w->kind = NBW_SOCKET;
	else if ((S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) && fl >= 0 && !(fl & O_NONBLOCK))
		w->kind = NBW_SHARED;
	return 0;
}

static inline ssize_t nbw_write_shared(struct nbw *w, const void *buf, size_t len)
{
	if (!w->no_rwf_nowait) {
		struct iovec iov = {(void *)buf, len};
		ssize_t n = pwritev2(w->fd, &iov, 1, -1, RWF_NOWAIT);
		if (n >= 0 || (errno != EOPNOTSUPP && errno != EINVAL && errno != ENOSYS))
			return n;
		w->no_rwf_nowait = true;
	}
	struct pollfd p = {.fd = w->fd, .events = POLLOUT};
	int r = poll(&p, 1, 0);
	if (r < 0)
		return -1;
	if (r == 0) {
		errno = EAGAIN;
		return -1;
	}
	/* POLLERR (no reader) falls through: the write says EPIPE at once. */
	return write(w->fd, buf, len < PIPE_BUF ? len : PIPE_BUF);
}

/*
 * Write up to @len bytes of @buf without waiting.  Returns the count written
 * or -1 with errno, as write(2): EAGAIN when the destination is full, EPIPE
 * when its reader is gone (SIGPIPE is raised for pipes, as by write(2);
 * never for sockets), or the destination's own error (ENOSPC, EIO, ...).
 */
static inline ssize_t nbw_write(struct nbw *w, const void *buf, size_t len)
{
	switch (w->kind) {
	case NBW_SOCKET:
		return send(w->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	case NBW_SHARED:
		return nbw_write_shared(w, buf, len);
	default:
		return write(w->fd, buf, len);
	}
}

#endif
