/* SPDX-License-Identifier: MIT */
/* Events and notices, to the caller's callbacks: see sink.h. */
#include "sink.h"
#include "sys.h"
#include "tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static uint64_t wall_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void event_emit(struct sink *s, struct ptmon_event *ev)
{
	if (!s->event_fn)
		return;
	ev->mono_ns = util_now_ns();
	ev->wall_ns = wall_now_ns();
	if (ev->process && !ev->pid) {
		const struct node *n = (const struct node *)ev->process;
		ev->pid = n->pid;
		ev->ppid = node_parent_pid(n);
	}
	s->event_fn(ev, s->event_data);
}

void event_node(struct sink *s, enum ptmon_event_type type, struct node *n)
{
	if (n->flags & NODE_FOREIGN)
		return; /* not any task's: never reported */
	struct ptmon_event ev = {
		.type = type,
		.task = n->task,
		.process = (const struct ptmon_process *)n,
	};
	event_emit(s, &ev);
}

void event_signal(struct sink *s, struct node *n, int sig, int err)
{
	struct ptmon_event ev = {
		.type = PTMON_EVENT_SIGNAL,
		.task = n->task,
		.process = (const struct ptmon_process *)n,
		.signal = sig,
		.error = err,
	};
	event_emit(s, &ev);
}

void event_count(struct sink *s, struct ptmon_task *t, enum ptmon_event_type type,
		 uint64_t count, const char *reason)
{
	struct ptmon_event ev = {.type = type, .task = t, .count = count, .reason = reason};
	event_emit(s, &ev);
}

void sink_notice(struct sink *s, struct ptmon_task *t, enum ptmon_notice_kind kind,
		 const char *fmt, ...)
{
	if (!s->notice_fn)
		return;
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	s->notice_fn(t, kind, text, s->notice_data);
}

