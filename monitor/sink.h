/* SPDX-License-Identifier: MIT */
/*
 * Layer "sink" (sink.c): what the monitor tells its caller, events
 * (struct ptmon_event) and notices (diagnostic sentences), through the
 * caller's two callbacks.  Every layer above the tree reports through it;
 * it calls no other layer (it reads a node to name its pid).
 *
 * Nothing is delivered where it happens: events and notices are queued,
 * each with a copy of its process's record as it was then, and
 * sink_flush() delivers them in order from the monitor's loop only, where
 * no layer is halfway through a change.  So a callback may call back into
 * the library (ptmon.h says what it may call), and no callback ever runs
 * inside ptmon_task_start(), _cancel(), _kill() or _attach().
 */
#ifndef PTMON_SINK_H
#define PTMON_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ptmon.h"

struct node;

struct sink_item;

/* struct sink is private to sink.c. */
struct sink;

/* An empty sink with no callbacks; NULL: no memory. */
struct sink *sink_new(void);
/* Drop everything queued (nothing is delivered) and free it; takes NULL. */
struct sink *sink_free(struct sink *s);
/* The caller's callbacks (ptmon_monitor_set_event_callback() and
 * _notice_callback()); NULL @fn: none. */
void sink_set_event_fn(struct sink *s, ptmon_event_fn fn, void *userdata);
void sink_set_notice_fn(struct sink *s, ptmon_notice_fn fn, void *userdata);

/* Stamp @ev (mono_ns, wall_ns; pid and ppid from its process) and queue
 * it, with a copy of its process's record and of its holders. */
void event_emit(struct sink *s, struct ptmon_event *ev);
/* The event @type about process @n (none for a foreign process). */
void event_node(struct sink *s, enum ptmon_event_type type, struct node *n);
void event_signal(struct sink *s, struct node *n, int sig, int err);
void event_count(struct sink *s, struct ptmon_task *t, enum ptmon_event_type type, uint64_t count,
		 const char *reason);
void sink_notice(struct sink *s, struct ptmon_task *t, enum ptmon_notice_kind kind, const char *fmt,
		 ...) __attribute__((format(printf, 4, 5)));

/* Deliver what is queued, in order, with what the callbacks queue
 * meanwhile.  Only from the monitor's loop. */
void sink_flush(struct sink *s);
bool sink_pending(const struct sink *s);
/* Drop what is queued about task @t (it is being freed). */
void sink_forget_task(struct sink *s, const struct ptmon_task *t);
/* The record of @n as the event being delivered saw it: @n itself, but
 * during the callback of an event about @n, its copy from then. */
const struct node *sink_view(const struct sink *s, const struct node *n);

#endif
