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
#include "nbwrite.h"
#include "procfs.h"
#include "sink.h"
#include "stream.h"
#include "sys.h"
#include "watch.h"

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

#define STREAM_BUF (64u * 1024u)

struct stream {
	struct watch in_watch;  /* the task's pipe */
	struct watch out_watch; /* where it goes */
	struct loop *loop;
	struct sink *sink;
	pid_t self;              /* ptmon, left out when naming holders */
	struct ptmon_task *task; /* opaque: the task events are about */
	const char *name;        /* "stdout" or "stderr" */
	int in_fd;               /* read end of the task's pipe, -1 after EOF */
	struct nbw dest;         /* where it goes, written without blocking */
	bool out_broken;         /* the destination is gone or failed: discard */
	int out_error;           /* errno of the write that failed, 0: none */
	bool out_waiting;        /* registered for EPOLLOUT */
	bool eof;
	unsigned long ino; /* the pipe's inode, to name its holders */
	size_t len;        /* bytes buffered in buf */
	uint64_t bytes;    /* bytes read from the task */
	uint64_t dropped;  /* bytes never written */
	char *buf;         /* STREAM_BUF bytes from stream_start() to stream_close() */
};

struct stream *stream_new(const struct stream_ctx *ctx, struct ptmon_task *t, const char *name,
			  int pipe_rfd_take, int dest_fd)
{
	struct stream *s = malloc(sizeof(*s));
	if (!s) {
		util_close(pipe_rfd_take);
		return NULL;
	}
	*s = (struct stream){
		.in_watch = {WATCH_PIPE},
		.out_watch = {WATCH_OUTPUT},
		.loop = ctx->loop,
		.sink = ctx->sink,
		.self = ctx->self,
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
	return s;
}

int stream_start(struct stream *s)
{
	s->buf = malloc(STREAM_BUF);
	if (!s->buf)
		return -ENOMEM;
	if (s->out_error)
		sink_notice(s->sink, s->task, PTMON_NOTICE_WARNING,
			    "cannot write the task's %s: %s; it is discarded", s->name,
			    strerror(s->out_error));
	int r = util_set_nonblock(s->in_fd);
	if (r == 0)
		r = loop_watch_add(s->loop, s->in_fd, EPOLLIN, &s->in_watch);
	return r;
}

static void close_input(struct stream *s)
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

static void drop_buffer(struct stream *s)
{
	s->dropped += s->len;
	s->len = 0;
	if (s->out_waiting) {
		loop_watch_del(s->loop, s->dest.fd);
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
		r = (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ? 1
									 : (n < 0 ? -errno : -EIO);
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
static void dest_failed(struct stream *s, int err)
{
	s->out_broken = true;
	s->out_error = err;
	drop_buffer(s);
	if (err == EPIPE) {
		clear_sigpipe();
		close_input(s); /* done now: stream_handle_*() says so */
		return;
	}
	sink_notice(s->sink, s->task, PTMON_NOTICE_WARNING,
		    "cannot write the task's %s: %s; what it writes there from now on is discarded",
		    s->name, strerror(err));
}

/* Push buffered bytes out and pick what to wait for next. */
static int pump(struct stream *s)
{
	int r = s->out_broken ? 0 : flush(s);
	if (s->out_broken)
		s->dropped += s->len, s->len = 0;
	if (r < 0) {
		dest_failed(s, -r);
		return 0;
	}
	if (r == 1 && !s->out_waiting) {
		if (loop_watch_add(s->loop, s->dest.fd, EPOLLOUT, &s->out_watch) < 0)
			return -errno;
		s->out_waiting = true;
	} else if (r == 0 && s->out_waiting) {
		loop_watch_del(s->loop, s->dest.fd);
		s->out_waiting = false;
	}
	/* Read more only when there is room. */
	if (s->in_fd >= 0)
		loop_watch_mod(s->loop, s->in_fd, s->len < STREAM_BUF ? EPOLLIN : 0, &s->in_watch);
	return 0;
}

static int handle_in(struct stream *s)
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
		close_input(s);
		struct ptmon_event ev = {
			.type = PTMON_EVENT_EOF, .task = s->task, .stream = s->name};
		event_emit(s->sink, &ev);
		break;
	}
	return pump(s);
}

struct ptmon_task *stream_handle(struct watch *w)
{
	struct stream *s = w->kind == WATCH_PIPE ? container_of(w, struct stream, in_watch)
						 : container_of(w, struct stream, out_watch);
	int r = w->kind == WATCH_PIPE ? handle_in(s) : pump(s);
	if (r < 0)
		sink_notice(s->sink, s->task, PTMON_NOTICE_WARNING,
			    "cannot watch the task's %s destination: %s", s->name, strerror(-r));
	return s->task;
}

bool stream_done(const struct stream *s)
{
	return !s || (s->eof && s->len == 0);
}

void stream_counts(const struct stream *s, uint64_t *ret_bytes, uint64_t *ret_dropped,
		   int *ret_error)
{
	*ret_bytes = s ? s->bytes : 0;
	*ret_dropped = s ? s->dropped : 0;
	*ret_error = s ? s->out_error : 0;
}

#define MAX_HOLDERS 64

struct holder_ctx {
	struct stream *s;
	size_t n;
	struct ptmon_holder h[MAX_HOLDERS];
};

static void name_holder(pid_t pid, int fd, void *userdata)
{
	struct holder_ctx *c = userdata;
	char comm[16] = "?";
	procfs_read_comm(pid, comm);
	sink_notice(c->s->sink, c->s->task, PTMON_NOTICE_PIPE_HOLDER,
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
static void flush_last(struct stream *s)
{
	int r = s->len && !s->out_broken ? flush(s) : 0;
	if (r == -EPIPE) {
		clear_sigpipe();
		s->out_error = EPIPE;
	} else if (r < 0) {
		dest_failed(s, -r);
	}
}

/* Read what the pipe holds, also when the destination takes none of it:
 * what cannot be written is counted as dropped, so that only a pipe that
 * is really held open is taken for one.  Bounded, against a holder outside
 * the tree that keeps writing. */
static void read_rest(struct stream *s)
{
	for (int i = 0; i < 16 && s->in_fd >= 0; i++) {
		handle_in(s);
		if (s->len < STREAM_BUF)
			return;
		flush_last(s);
		s->dropped += s->len;
		s->len = 0;
	}
}

void stream_abandon(struct stream *s)
{
	if (!s)
		return;
	uint64_t dropped = s->dropped;
	bool broken = s->out_broken;
	read_rest(s);
	if (s->in_fd >= 0) {
		struct holder_ctx c = {.s = s};
		loop_release_reserve(s->loop);
		int found = procfs_find_pipe_holders(s->ino, s->self, name_holder, &c);
		loop_reserve_fd(s->loop);
		if (found <= 0)
			sink_notice(s->sink, s->task, PTMON_NOTICE_PIPE_HOLDER,
				    "%s pipe still open after the drain bound; no holder found in "
				    "/proc",
				    s->name);
		struct ptmon_event ev = {
			.type = PTMON_EVENT_DRAIN_TIMEOUT,
			.task = s->task,
			.stream = s->name,
			.nholders = c.n,
			.holders = c.h,
		};
		event_emit(s->sink, &ev);
		close_input(s);
	}
	flush_last(s);
	drop_buffer(s);
	if (s->dropped > dropped && !broken && s->out_error != EPIPE)
		sink_notice(s->sink, s->task, PTMON_NOTICE_WARNING,
			    "%s: %" PRIu64 " bytes of the task's output could not be written: "
			    "the destination did not take them within the drain bound",
			    s->name, s->dropped - dropped);
}

void stream_close(struct stream *s)
{
	if (!s)
		return;
	close_input(s);
	if (s->out_waiting)
		loop_watch_del(s->loop, s->dest.fd);
	s->out_waiting = false;
	s->dest.fd = util_close(s->dest.fd);
	free(s->buf);
	s->buf = NULL;
}

void stream_free(struct stream *s)
{
	stream_close(s);
	free(s);
}
