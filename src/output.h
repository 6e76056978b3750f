/* SPDX-License-Identifier: MIT */
/* What the command writes for tools and people: the NDJSON event stream,
 * the JSON report, and the summary tree.  Schema: docs/schema.md. */
#ifndef PTMON_OUTPUT_H
#define PTMON_OUTPUT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "ptmon.h"

#define PTMON_SCHEMA_VERSION 1

/* ---- jsonutil.c ---- */
bool utf8_valid(const char *s, size_t n);
/*
 * @s (@n bytes, NULs included) as text that cannot act on a terminal: C0
 * controls and DEL become \xHH (ESC is \x1b), C1 controls U+0080..U+009F
 * \u00HH, each byte that is not UTF-8 \xHH; the rest is kept.  Writes at
 * most @size - 1 bytes and a NUL, never half an escape or character;
 * returns the bytes written before the NUL.
 */
size_t text_escape(const char *s, size_t n, char *out, size_t size);
/* The same, whole, malloc'd; NULL when out of memory. */
char *text_escape_dup(const char *s, size_t n);
/* A JSON string of @s: as is when valid UTF-8, else with U+FFFD for each
 * invalid byte. */
struct json_object *json_bytes(const char *s, size_t n);
struct json_object *json_base64(const char *s, size_t n);
/* "argv": [...], plus "argv_base64" when an argument is not UTF-8, and
 * "argv_truncated": true when cut. */
void json_add_argv(struct json_object *obj, const char *argv, size_t len, bool truncated);
/* @unix_ns (CLOCK_REALTIME nanoseconds) as RFC 3339 in UTC with nanoseconds,
 * "2026-03-01T12:00:00.123456789Z"; writes at most @size bytes, NUL included
 * (31 are needed). */
void rfc3339_ns(uint64_t unix_ns, char *out, size_t size);
/* Add "@key": the RFC 3339 string of @unix_ns to @obj. */
void json_add_time(struct json_object *obj, const char *key, uint64_t unix_ns);

/* ---- output.c ---- */

/* What the command knows that the library does not. */
struct run_info {
	char *const *argv;
	const char *cwd;
	const char *backend;
	unsigned features;
	const char *fallback_reason;
	const char *taskstats_unavailable;
	const char *task_id;      /* the control socket's task id, or NULL */
	const char *name;         /* `run --name`, default CMD's basename */
	int exit_status;          /* set before the report is written */
	pid_t watch_pid;          /* `ptmon watch PID`, 0: a run */
	const char *watch_cgroup; /* `ptmon watch --cgroup PATH`, NULL: not */
};

/* The event stream: one JSON object a line, written without blocking.  A
 * reader that does not keep up costs events, never the task: at most
 * EVW_BUFFER bytes wait; beyond that events are dropped and counted, and a
 * "lost" line says how many once there is room.  A reader that goes away
 * (EPIPE) ends the stream. */
#define EVW_BUFFER (1u << 20)
struct evwriter;

/* Open @path for writing (a FIFO waits for its reader, as a shell
 * redirection would).  Returns 0 or -errno. */
int evwriter_open(struct evwriter **ret, const char *path);
void evwriter_event(struct evwriter *w, const struct ptmon_event *ev, const struct run_info *ri);
/* The JSON object of one event, as the stream writes it (the caller owns
 * it); and the same as one NDJSON line, malloc'd, *ret_len bytes including
 * the newline, or NULL on allocation failure. */
struct json_object *event_json(const struct ptmon_event *ev, const struct run_info *ri);
char *event_line(const struct ptmon_event *ev, const struct run_info *ri, size_t *ret_len);

/* The fd to poll for POLLOUT while bytes wait, else -1. */
int evwriter_wait_fd(const struct evwriter *w);
/* Write what waits; give up after @timeout_ms (-1: only what goes now). */
void evwriter_flush(struct evwriter *w, int timeout_ms);
uint64_t evwriter_dropped(const struct evwriter *w);
/* What the stream could not deliver, as it stands (call before free). */
struct evwriter_status {
	int error;          /* the errno that ended the stream (EPIPE: the reader left), 0 */
	uint64_t dropped;   /* events dropped for a slow reader and not yet told in a "lost" line */
	uint64_t unwritten; /* events not written: after the end, or still waiting */
	bool half_line;     /* the destination ends inside a line */
};
void evwriter_status(const struct evwriter *w, struct evwriter_status *ret);
struct evwriter *evwriter_free(struct evwriter *w);

/*
 * ptmon's own messages on stderr, never blocking: a line that stderr does
 * not take now waits (NOTES_BUFFER bytes at most, whole lines); beyond that
 * lines are dropped and counted.  notes_open() makes our own non-blocking
 * description of @fd (nbwrite.h); notes_line() opens fd 2 if not yet done.
 */
void notes_open(int fd);
void notes_line(const char *line, size_t n);
/* One message "PREFIX: TEXT\n" through notes_line(), TEXT printf-formatted
 * (cut at 1023 bytes) and escaped with text_escape(). */
void notes_say(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void notes_vsay(const char *prefix, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* The fd to poll for POLLOUT while lines wait, else -1. */
int notes_wait_fd(void);
/* Write what waits; give up after @timeout_ms (0: only what goes now). */
void notes_flush(int timeout_ms);
/* Write @text, whole lines, after what waits; wait for a slow stderr as long
 * as it takes something every @stall_ms.  0, or -EAGAIN when cut. */
int notes_write_all(const char *text, size_t len, int stall_ms);
uint64_t notes_dropped(void);
/* The last @timeout_ms for what waits, then a line with the count of lines
 * dropped (if it goes), and close. */
void notes_close(int timeout_ms);

/* Write the whole report of @t to @fd, which is non-blocking: a reader that
 * takes nothing for @stall_ms ends it.  *ret_written and *ret_total are the
 * bytes written and the report's size.  Returns 0, -ETIMEDOUT (the reader
 * stalled) or the write's -errno (EPIPE, ENOSPC...). */
int report_write(int fd, const struct ptmon_task *t, const struct run_info *ri, int stall_ms,
		 size_t *ret_written, size_t *ret_total);

/* Print the tree of @t to @f: aligned columns, colour when @colour. */
void summary_print(FILE *f, const struct ptmon_task *t, bool colour);

/* What `ptmon tree` shows of a live process beside the summary's tree. */
struct summary_live {
	char state; /* from /proc/PID/stat: R S D Z T ...; '?' unknown */
	uint64_t age_ns;
	double cpu_s; /* utime + stime */
	uint64_t rss_bytes;
};

/* Print @n live processes in the summary's layout, with the columns PID,
 * STATE, AGE, CPU and RSS.  @v[i] needs id, parent_id, pid, argv and comm;
 * ids need not be sorted. */
void summary_print_live(FILE *f, const struct ptmon_process_info *v,
			const struct summary_live *live, size_t n, bool colour);

#endif
