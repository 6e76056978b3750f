/* SPDX-License-Identifier: MIT */
/*
 * Layer "sink" (sink.c): what the monitor tells its caller, events
 * (struct ptmon_event) and notices (diagnostic sentences), through the
 * caller's two callbacks.  Every layer above the tree reports through it;
 * it calls no other layer (it reads a node to name its pid).
 */
#ifndef PTMON_SINK_H
#define PTMON_SINK_H

#include <stdint.h>

#include "ptmon.h"

struct node;

struct sink {
	ptmon_event_fn event_fn;
	void *event_data;
	ptmon_notice_fn notice_fn;
	void *notice_data;
};

/* Stamp @ev (mono_ns, wall_ns; pid and ppid from its process) and give it
 * to the caller. */
void event_emit(struct sink *s, struct ptmon_event *ev);
/* The event @type about process @n (none for a foreign process). */
void event_node(struct sink *s, enum ptmon_event_type type, struct node *n);
void event_signal(struct sink *s, struct node *n, int sig, int err);
void event_count(struct sink *s, struct ptmon_task *t, enum ptmon_event_type type, uint64_t count,
		 const char *reason);
void sink_notice(struct sink *s, struct ptmon_task *t, enum ptmon_notice_kind kind,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
