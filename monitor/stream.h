/* SPDX-License-Identifier: MIT */
/*
 * Layer "stream" (stream.c): one output stream of a task, its stdout or
 * stderr pipe forwarded to a destination without blocking and with a
 * bounded buffer.  It registers its fds with the loop and tells the sink
 * (EOF, holders); the task asks its state (stream_done(), stream_counts()).
 * It calls no task code and holds the task only as the sink's tag.  Below
 * it: loop, sink, procfs, sys.  struct stream is private to stream.c.
 */
#ifndef PTMON_STREAM_H
#define PTMON_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;
struct sink;
struct ptmon_task;
struct stream;
struct watch;

/* What a stream needs of the layers below it. */
struct stream_ctx {
	struct loop *loop;
	struct sink *sink;
	pid_t self; /* ptmon: not named as a holder of the pipe */
};

/* A stream reading @pipe_rfd_take (taken: closed on failure too) into
 * @dest_fd (duplicated, see nbwrite.h), about task @t.  NULL: no memory. */
struct stream *stream_new(const struct stream_ctx *ctx, struct ptmon_task *t, const char *name,
			  int pipe_rfd_take, int dest_fd);
/* Register the stream's pipe with the loop. */
int stream_start(struct stream *s);
/* A watch of a stream fired (WATCH_PIPE: read the task's pipe;
 * WATCH_OUTPUT: write the destination).  Returns the stream's task, whose
 * state may have changed (a failure to register with the loop is said as
 * a notice). */
struct ptmon_task *stream_handle(struct watch *w);
/* All read and all written (or the destination is gone); true for NULL,
 * the stream of a task that has none. */
bool stream_done(const struct stream *s);
/* Bytes read from the task, bytes never written, the destination's errno
 * (0: none).  Zeros for NULL. */
void stream_counts(const struct stream *s, uint64_t *ret_bytes, uint64_t *ret_dropped,
		   int *ret_error);
/* Give up on the stream: name its holders, drop what is left, close. */
void stream_abandon(struct stream *s);
/* Close its descriptors and free its buffer (its counts stay);
 * stream_free() also frees it.
 * Both take NULL. */
void stream_close(struct stream *s);
void stream_free(struct stream *s);

#endif
