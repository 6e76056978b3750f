/* SPDX-License-Identifier: MIT */
/*
 * Output streams: the task's stdout or stderr pipe, forwarded unchanged to
 * a destination.  At most STREAM_BUF bytes wait in memory: while they do, the
 * pipe is not read, so a slow destination slows the task (as it would
 * without ptmon) instead of growing our buffer.  The destination is written
 * without blocking, so a stuck reader never stops the loop, the timeout or
 * a cancellation.
 */
#include "loop.h"
#include "monitor.h"
#include "procfs.h"
#include "sink.h"
#include "stream.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int stream_init(struct stream *s, struct ptmon_task *t, const char *name, int pipe_rfd_take,
		int dest_fd)
{
	*s = (struct stream){
		.in_watch = {WATCH_PIPE},
		.out_watch = {WATCH_OUTPUT},
		.task = t,
		.name = name,
		.in_fd = pipe_rfd_take,
	};
	struct stat st;
	if (fstat(pipe_rfd_take, &st) == 0)
		s->ino = (unsigned long)st.st_ino;
	/* Our own non-blocking description of the destination where we may
	 * open one; see nbwrite.h. */
	int r = nbw_open(&s->dest, dest_fd);
	if (r < 0) {
		s->out_broken = true; /* nowhere to write: read, discard, count */
		s->out_error = -r;
	}
	return 0;
}

int stream_start(struct ptmon_monitor *m, struct stream *s)
{
	s->buf = malloc(STREAM_BUF);
	if (!s->buf)
		return -ENOMEM;
	if (s->out_error)
		sink_notice(&m->sink, s->task, PTMON_NOTICE_WARNING,
			       "cannot write the task's %s: %s; it is discarded", s->name,
			       strerror(s->out_error));
	int r = util_set_nonblock(s->in_fd);
	if (r == 0)
		r = loop_watch_add(&m->loop, s->in_fd, EPOLLIN, &s->in_watch);
	return r;
}

static void close_input(struct ptmon_monitor *m, struct stream *s)
{
	if (s->in_fd < 0)
		return;
	/* What the task wrote that we never read is lost too: count it. */
	int unread = 0;
	if (ioctl(s->in_fd, FIONREAD, &unread) == 0 && unread > 0)
		s->dropped += (uint64_t)unread;
	s->in_fd = util_close(s->in_fd); /* also leaves epoll */
	s->eof = true;
}

static void drop_buffer(struct ptmon_monitor *m, struct stream *s)
{
	s->dropped += s->len;
	s->len = 0;
	if (s->out_waiting) {
		loop_watch_del(&m->loop, s->dest.fd);
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
		ssize_t n = nbw_write(&s->dest, s->buf + off, s->len - off);
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

/*
 * The destination refused a write.  A reader that is gone (EPIPE): close the
 * task's pipe too, so the task sees EPIPE as it would have without us.  Any
 * other error (ENOSPC, EIO, EFBIG, EDQUOT): the task cannot see it through
 * its pipe, and it is not its doing, so it is not signalled nor cut off;
 * what it writes from now on is read, discarded and counted, and the error
 * is said at once and in the result.
 */
static void dest_failed(struct ptmon_monitor *m, struct stream *s, int err)
{
	s->out_broken = true;
	s->out_error = err;
	drop_buffer(m, s);
	if (err == EPIPE) {
		clear_sigpipe();
		close_input(m, s); /* done now: stream_handle_*() says so */
		return;
	}
	sink_notice(&m->sink, s->task, PTMON_NOTICE_WARNING,
		       "cannot write the task's %s: %s; what it writes there from now on is discarded",
		       s->name, strerror(err));
}

/* Push buffered bytes out and pick what to wait for next. */
static int pump(struct ptmon_monitor *m, struct stream *s)
{
	int r = s->out_broken ? 0 : flush(s);
	if (s->out_broken)
		s->dropped += s->len, s->len = 0;
	if (r < 0) {
		dest_failed(m, s, -r);
		return 0;
	}
	if (r == 1 && !s->out_waiting) {
		if (loop_watch_add(&m->loop, s->dest.fd, EPOLLOUT, &s->out_watch) < 0)
			return -errno;
		s->out_waiting = true;
	} else if (r == 0 && s->out_waiting) {
		loop_watch_del(&m->loop, s->dest.fd);
		s->out_waiting = false;
	}
	/* Read more only when there is room. */
	if (s->in_fd >= 0)
		loop_watch_mod(&m->loop, s->in_fd, s->len < STREAM_BUF ? EPOLLIN : 0, &s->in_watch);
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
		event_emit(&m->sink, &ev);
		break;
	}
	int r = pump(m, s);
	return r < 0 ? r : stream_done(s);
}

int stream_handle_out(struct ptmon_monitor *m, struct stream *s)
{
	int r = pump(m, s);
	return r < 0 ? r : stream_done(s);
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
	sink_notice(&c->m->sink, c->s->task, PTMON_NOTICE_PIPE_HOLDER,
		       "%s pipe still open after the drain bound: held by pid %d (%s) as fd %d",
		       c->s->name, (int)pid, comm, fd);
	if (c->n < MAX_HOLDERS) {
		struct ptmon_holder *h = &c->h[c->n++];
		h->pid = pid;
		h->fd = fd;
		memcpy(h->comm, comm, sizeof(h->comm));
	}
}

/* The destination had the whole drain bound to take what waits: one last
 * try, then what is left is dropped. */
static void flush_last(struct ptmon_monitor *m, struct stream *s)
{
	int r = s->len && !s->out_broken ? flush(s) : 0;
	if (r == -EPIPE) {
		clear_sigpipe();
		s->out_error = EPIPE;
	} else if (r < 0) {
		dest_failed(m, s, -r);
	}
}

/* Read what the pipe holds, also when the destination takes none of it:
 * what cannot be written is counted as dropped, so that only a pipe that
 * is really held open is taken for one.  Bounded, against a holder outside
 * the tree that keeps writing. */
static void read_rest(struct ptmon_monitor *m, struct stream *s)
{
	for (int i = 0; i < 16 && s->in_fd >= 0; i++) {
		stream_handle_in(m, s);
		if (s->len < STREAM_BUF)
			return;
		flush_last(m, s);
		s->dropped += s->len;
		s->len = 0;
	}
}

void stream_abandon(struct ptmon_monitor *m, struct stream *s)
{
	uint64_t dropped = s->dropped;
	bool broken = s->out_broken;
	read_rest(m, s);
	if (s->in_fd >= 0) {
		struct holder_ctx c = {.m = m, .s = s};
		loop_release_reserve(&m->loop);
		int found = procfs_find_pipe_holders(s->ino, m->self, name_holder, &c);
		loop_reserve_fd(&m->loop);
		if (found <= 0)
			sink_notice(&m->sink, s->task, PTMON_NOTICE_PIPE_HOLDER,
				       "%s pipe still open after the drain bound; no holder found in /proc",
				       s->name);
		struct ptmon_event ev = {
			.type = PTMON_EVENT_DRAIN_TIMEOUT,
			.task = s->task,
			.stream = s->name,
			.nholders = c.n,
			.holders = c.h,
		};
		event_emit(&m->sink, &ev);
		close_input(m, s);
	}
	flush_last(m, s);
	drop_buffer(m, s);
	if (s->dropped > dropped && !broken && s->out_error != EPIPE)
		sink_notice(&m->sink, s->task, PTMON_NOTICE_WARNING,
			       "%s: %" PRIu64 " bytes of the task's output could not be written: "
			       "the destination did not take them within the drain bound",
			       s->name, s->dropped - dropped);
}

void stream_fini(struct ptmon_monitor *m, struct stream *s)
{
	close_input(m, s);
	if (s->out_waiting)
		loop_watch_del(&m->loop, s->dest.fd);
	s->out_waiting = false;
	s->dest.fd = util_close(s->dest.fd);
	free(s->buf);
	s->buf = NULL;
}
