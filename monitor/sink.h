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

struct sink {
	ptmon_event_fn event_fn;
	void *event_data;
	ptmon_notice_fn notice_fn;
	void *notice_data;
	struct sink_item *items;  /* queued, in order */
	size_t len, cap;
	size_t next;              /* sink_flush(): the next to deliver */
	bool delivering;          /* in sink_flush(): a nested flush does nothing */
	const struct node *cur;   /* the node of the event being delivered, */
	const struct node *cur_view; /* and its record as it was when it happened */
	uint64_t dropped;         /* not queued for want of memory */
};

/* Stamp @ev (mono_ns, wall_ns; pid and ppid from its process) and queue
 * it, with a copy of its process's record and of its holders. */
void event_emit(struct sink *s, struct ptmon_event *ev);
/* The event @type about process @n (none for a foreign process). */
void event_node(struct sink *s, enum ptmon_event_type type, struct node *n);
void event_signal(struct sink *s, struct node *n, int sig, int err);
void event_count(struct sink *s, struct ptmon_task *t, enum ptmon_event_type type, uint64_t count,
		 const char *reason);
void sink_notice(struct sink *s, struct ptmon_task *t, enum ptmon_notice_kind kind,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Deliver what is queued, in order, with what the callbacks queue
 * meanwhile.  Only from the monitor's loop. */
void sink_flush(struct sink *s);
static inline bool sink_pending(const struct sink *s)
{
	return s->len != 0;
}
/* Drop what is queued about task @t (it is being freed). */
void sink_forget_task(struct sink *s, const struct ptmon_task *t);
/* Drop everything queued and free the queue. */
void sink_fini(struct sink *s);
/* The record of @n as the event being delivered saw it: @n itself, but
 * during the callback of an event about @n, its copy from then. */
static inline const struct node *sink_view(const struct sink *s, const struct node *n)
{
	return s->cur == n ? s->cur_view : n;
}

#endif
