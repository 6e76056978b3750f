/* SPDX-License-Identifier: MIT */
/*
 * Layer "stream" (stream.c): one output stream of a task, its stdout or
 * stderr pipe forwarded to a destination without blocking and with a
 * bounded buffer.  It registers its fds with the loop and tells the sink
 * (EOF, holders); it returns its state (stream_done()) and calls no task
 * code.  Below it: loop, sink, procfs, sys.
 */
#ifndef PTMON_STREAM_H
#define PTMON_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nbwrite.h"
#include "watch.h"

struct ptmon_monitor;
struct ptmon_task;

#define STREAM_BUF (64u * 1024u)

struct stream {
	struct watch in_watch;  /* the task's pipe */
	struct watch out_watch; /* where it goes */
	struct ptmon_task *task;
	const char *name;       /* "stdout" or "stderr" */
	int in_fd;              /* read end of the task's pipe, -1 after EOF */
	struct nbw dest;        /* where it goes, written without blocking */
	bool out_broken;        /* the destination is gone or failed: discard */
	int out_error;          /* errno of the write that failed, 0: none */
	bool out_waiting;       /* registered for EPOLLOUT */
	bool eof;
	unsigned long ino;      /* the pipe's inode, to name its holders */
	size_t len;             /* bytes buffered in buf */
	uint64_t bytes;         /* bytes read from the task */
	uint64_t dropped;       /* bytes never written */
	char *buf;
};

int stream_init(struct stream *s, struct ptmon_task *t, const char *name, int pipe_rfd_take,
		int dest_fd);
/* Register the stream's pipe with the monitor's epoll. */
int stream_start(struct ptmon_monitor *m, struct stream *s);
/* Read the task's pipe (WATCH_PIPE fired) or write the destination
 * (WATCH_OUTPUT fired).  Return 1 when the stream is done (stream_done():
 * its task may finish), 0 when not, or -errno.  They never call the task:
 * the monitor acts on what they return. */
int stream_handle_in(struct ptmon_monitor *m, struct stream *s);
int stream_handle_out(struct ptmon_monitor *m, struct stream *s);
/* Give up on the stream: name its holders, drop what is left, close. */
void stream_abandon(struct ptmon_monitor *m, struct stream *s);
/* All read, and all written (or the destination is gone). */
static inline bool stream_done(const struct stream *s)
{
	return s->eof && s->len == 0;
}
void stream_fini(struct ptmon_monitor *m, struct stream *s);

#endif
