/* SPDX-License-Identifier: MIT */
/*
 * Output streams: the task's stdout or stderr pipe, forwarded unchanged to
 * a destination.  At most STREAM_BUF bytes wait in memory: while they do, the
 * pipe is not read, so a slow destination slows the task (as it would
 * without ptmon) instead of growing our buffer.  The destination is written
 * without blocking, so a stuck reader never stops the loop, the timeout or
 * a cancellation.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Our own open file description of the destination, so that O_NONBLOCK on
 * it changes nothing for the other processes that share the caller's fd (a
 * terminal, a pipe to a pager).  Reopening through /proc works for pipes,
 * FIFOs and terminals; sockets take MSG_DONTWAIT instead; a regular file
 * never blocks for long, so a duplicate does.
 */
static int open_destination(int fd, bool *ret_socket)
{
	struct stat st;
	*ret_socket = false;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		int r = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (r >= 0)
			return r;
	}
	*ret_socket = S_ISSOCK(st.st_mode);
	int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return r < 0 ? -errno : r;
}

int stream_init(struct stream *s, struct ptmon_task *t, const char *name, int pipe_rfd_take,
		int dest_fd)
{
	*s = (struct stream){
		.in_watch = {WATCH_PIPE},
		.out_watch = {WATCH_OUTPUT},
		.task = t,
		.name = name,
		.in_fd = pipe_rfd_take,
		.out_fd = -1,
	};
	struct stat st;
	if (fstat(pipe_rfd_take, &st) == 0)
		s->ino = (unsigned long)st.st_ino;
	int r = open_destination(dest_fd, &s->out_is_socket);
	if (r < 0)
		s->out_broken = true; /* nowhere to write: read and discard */
	else
		s->out_fd = r;
	return 0;
}

int stream_start(struct ptmon_monitor *m, struct stream *s)
{
	s->buf = malloc(STREAM_BUF);
	if (!s->buf)
		return -ENOMEM;
	int r = util_set_nonblock(s->in_fd);
	if (r == 0)
		r = monitor_watch_add(m, s->in_fd, EPOLLIN, &s->in_watch);
	return r;
}

static void close_input(struct ptmon_monitor *m, struct stream *s)
{
	if (s->in_fd < 0)
		return;
	s->in_fd = util_close(s->in_fd); /* also leaves epoll */
	s->eof = true;
}

static void drop_buffer(struct ptmon_monitor *m, struct stream *s)
{
	s->dropped += s->len;
	s->len = 0;
	if (s->out_waiting) {
		monitor_watch_del(m, s->out_fd);
		s->out_waiting = false;
	}
}

/* Discard a SIGPIPE we caused: it is blocked, so it would stay pending. */
static void clear_sigpipe(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	struct timespec zero = {0, 0};
	while (sigtimedwait(&set, NULL, &zero) == SIGPIPE)
		;
}

/* Write what is buffered.  0 when all of it went, 1 when the destination
 * is full, or -errno when it is gone. */
static int flush(struct stream *s)
{
	size_t off = 0;
	int r = 0;
	while (off < s->len) {
		ssize_t n = s->out_is_socket
				    ? send(s->out_fd, s->buf + off, s->len - off, MSG_DONTWAIT | MSG_NOSIGNAL)
				    : write(s->out_fd, s->buf + off, s->len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		r = (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ? 1 : (n < 0 ? -errno : -EIO);
		break;
	}
	memmove(s->buf, s->buf + off, s->len - off);
	s->len -= off;
	return r;
}

/* Push buffered bytes out and pick what to wait for next. */
static int pump(struct ptmon_monitor *m, struct stream *s)
{
	int r = s->out_broken ? 0 : flush(s);
	if (s->out_broken)
		s->dropped += s->len, s->len = 0;
	if (r < 0) {
		if (r == -EPIPE)
			clear_sigpipe();
		/* The reader of our output is gone.  Close the task's pipe
		 * too, so the task sees EPIPE as it would have without us. */
		s->out_broken = true;
		drop_buffer(m, s);
		close_input(m, s);
		task_update(s->task);
		return 0;
	}
	if (r == 1 && !s->out_waiting) {
		if (monitor_watch_add(m, s->out_fd, EPOLLOUT, &s->out_watch) < 0)
			return -errno;
		s->out_waiting = true;
	} else if (r == 0 && s->out_waiting) {
		monitor_watch_del(m, s->out_fd);
		s->out_waiting = false;
	}
	/* Read more only when there is room. */
	if (s->in_fd >= 0)
		monitor_watch_mod(m, s->in_fd, s->len < STREAM_BUF ? EPOLLIN : 0, &s->in_watch);
	return 0;
}

int stream_handle_in(struct ptmon_monitor *m, struct stream *s)
{
	while (s->in_fd >= 0 && s->len < STREAM_BUF) {
		ssize_t n = read(s->in_fd, s->buf + s->len, STREAM_BUF - s->len);
		if (n > 0) {
			s->len += (size_t)n;
			s->bytes += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		/* EOF (or a read error, which ends the stream the same way).
		 * EPOLLHUP alone never gets here: only read() returning 0. */
		close_input(m, s);
		struct ptmon_event ev = {.type = PTMON_EVENT_EOF, .task = s->task, .stream = s->name};
		event_emit(m, &ev);
		break;
	}
	int r = pump(m, s);
	if (stream_done(s))
		task_update(s->task);
	return r;
}

int stream_handle_out(struct ptmon_monitor *m, struct stream *s)
{
	int r = pump(m, s);
	if (stream_done(s))
		task_update(s->task);
	return r;
}

#define MAX_HOLDERS 64

struct holder_ctx {
	struct ptmon_monitor *m;
	struct stream *s;
	size_t n;
	struct ptmon_holder h[MAX_HOLDERS];
};

static void name_holder(pid_t pid, int fd, void *userdata)
{
	struct holder_ctx *c = userdata;
	char comm[16] = "?";
	procfs_read_comm(pid, comm);
	monitor_notice(c->m, c->s->task, PTMON_NOTICE_PIPE_HOLDER,
		       "%s pipe still open after the drain bound: held by pid %d (%s) as fd %d",
		       c->s->name, (int)pid, comm, fd);
	if (c->n < MAX_HOLDERS) {
		struct ptmon_holder *h = &c->h[c->n++];
		h->pid = pid;
		h->fd = fd;
		memcpy(h->comm, comm, sizeof(h->comm));
	}
}

void stream_abandon(struct ptmon_monitor *m, struct stream *s)
{
	if (s->in_fd >= 0) {
		/* Whatever is already in the pipe still comes through. */
		stream_handle_in(m, s);
	}
	if (s->in_fd >= 0) {
		struct holder_ctx c = {.m = m, .s = s};
		monitor_release_reserve(m);
		int found = procfs_find_pipe_holders(s->ino, m->self, name_holder, &c);
		monitor_reserve_fd(m);
		if (found <= 0)
			monitor_notice(m, s->task, PTMON_NOTICE_PIPE_HOLDER,
				       "%s pipe still open after the drain bound; no holder found in /proc",
				       s->name);
		struct ptmon_event ev = {
			.type = PTMON_EVENT_DRAIN_TIMEOUT,
			.task = s->task,
			.stream = s->name,
			.nholders = c.n,
			.holders = c.h,
		};
		event_emit(m, &ev);
		close_input(m, s);
	}
	if (s->len && !s->out_broken)
		flush(s);
	if (s->len) {
		monitor_notice(m, s->task, PTMON_NOTICE_WARNING,
			       "%s: %zu bytes could not be written: the destination does not take them",
			       s->name, s->len);
		drop_buffer(m, s);
	}
}

void stream_fini(struct ptmon_monitor *m, struct stream *s)
{
	close_input(m, s);
	if (s->out_waiting)
		monitor_watch_del(m, s->out_fd);
	s->out_waiting = false;
	s->out_fd = util_close(s->out_fd);
	free(s->buf);
	s->buf = NULL;
}
