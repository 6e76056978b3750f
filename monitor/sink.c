/* SPDX-License-Identifier: MIT */
/* Events and notices, to the caller's callbacks: see sink.h. */
#include "sink.h"
#include "sys.h"
#include "tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A queue grown past this by a burst is freed once delivered: what a long
 * run keeps stays small. */
#define SINK_KEEP 256

struct sink_item {
	struct ptmon_event ev;
	bool notice;
	bool dead; /* sink_forget_task(): not delivered */
	bool has_view;
	enum ptmon_notice_kind kind;  /* notice */
	char *text;                   /* notice */
	struct ptmon_holder *holders; /* DRAIN_TIMEOUT: our copy */
	struct node view;             /* the process's record when it happened */
};

struct sink {
	ptmon_event_fn event_fn;
	void *event_data;
	ptmon_notice_fn notice_fn;
	void *notice_data;
	struct sink_item *items; /* queued, in order */
	size_t len, cap;
	size_t next;                 /* sink_flush(): the next to deliver */
	bool delivering;             /* in sink_flush(): a nested flush does nothing */
	const struct node *cur;      /* the node of the event being delivered, */
	const struct node *cur_view; /* and its record as it was when it happened */
	uint64_t dropped;            /* not queued for want of memory */
	uint64_t dropped_told;       /* of which the caller has been told */
};

struct sink *sink_new(void)
{
	return calloc(1, sizeof(struct sink));
}

void sink_set_event_fn(struct sink *s, ptmon_event_fn fn, void *userdata)
{
	s->event_fn = fn;
	s->event_data = userdata;
}

void sink_set_notice_fn(struct sink *s, ptmon_notice_fn fn, void *userdata)
{
	s->notice_fn = fn;
	s->notice_data = userdata;
}

bool sink_pending(const struct sink *s)
{
	return s->len != 0 || s->dropped != s->dropped_told;
}

const struct node *sink_view(const struct sink *s, const struct node *n)
{
	return s->cur == n ? s->cur_view : n;
}

static void item_release(struct sink_item *it)
{
	if (it->has_view)
		it->view.argv = argv_buf_unref(it->view.argv);
	it->has_view = false;
	free(it->text);
	free(it->holders);
	it->text = NULL;
	it->holders = NULL;
}

static struct sink_item *item_new(struct sink *s)
{
	if (s->len == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct sink_item *v = realloc(s->items, cap * sizeof(*v));
		if (!v) {
			s->dropped++;
			return NULL;
		}
		s->items = v;
		s->cap = cap;
	}
	struct sink_item *it = &s->items[s->len++];
	memset(it, 0, offsetof(struct sink_item, view));
	return it;
}

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
	ev->size = sizeof(*ev);
	ev->mono_ns = util_now_ns();
	ev->wall_ns = wall_now_ns();
	if (ev->process && !ev->pid) {
		const struct node *n = (const struct node *)ev->process;
		ev->pid = n->pid;
		ev->ppid = node_parent_pid(n);
	}
	struct ptmon_holder *holders = NULL;
	if (ev->nholders) {
		holders = malloc(ev->nholders * sizeof(*holders));
		if (!holders) {
			s->dropped++;
			return;
		}
		memcpy(holders, ev->holders, ev->nholders * sizeof(*holders));
	}
	struct sink_item *it = item_new(s);
	if (!it) {
		free(holders);
		return;
	}
	it->ev = *ev;
	it->holders = holders;
	if (ev->process) {
		it->view = *(const struct node *)ev->process;
		argv_buf_ref(it->view.argv);
		it->has_view = true;
	}
}

void event_node(struct sink *s, enum ptmon_event_type type, struct node *n)
{
	if (n->flags & NODE_FOREIGN)
		return; /* not any task's: never reported */
	struct ptmon_event ev = {
		.type = type,
		.task = node_task(n),
		.process = (const struct ptmon_process *)n,
	};
	event_emit(s, &ev);
}

void event_signal(struct sink *s, struct node *n, int sig, int err)
{
	struct ptmon_event ev = {
		.type = PTMON_EVENT_SIGNAL,
		.task = node_task(n),
		.process = (const struct ptmon_process *)n,
		.signal = sig,
		.error = err,
	};
	event_emit(s, &ev);
}

void event_count(struct sink *s, struct ptmon_task *t, enum ptmon_event_type type, uint64_t count,
		 const char *reason)
{
	struct ptmon_event ev = {.type = type, .task = t, .count = count, .reason = reason};
	event_emit(s, &ev);
}

void sink_notice(struct sink *s, struct ptmon_task *t, enum ptmon_notice_kind kind, const char *fmt,
		 ...)
{
	if (!s->notice_fn)
		return;
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	char *copy = strdup(text);
	struct sink_item *it = copy ? item_new(s) : NULL;
	if (!it) {
		s->dropped += !copy;
		free(copy);
		return;
	}
	it->notice = true;
	it->ev.task = t;
	it->kind = kind;
	it->text = copy;
}

static void deliver(struct sink *s, struct sink_item *it)
{
	if (it->notice) {
		if (s->notice_fn)
			s->notice_fn(it->ev.task, it->kind, it->text, s->notice_data);
		return;
	}
	if (!s->event_fn)
		return;
	it->ev.holders = it->holders;
	if (it->has_view) {
		s->cur = (const struct node *)it->ev.process;
		s->cur_view = &it->view;
	}
	s->event_fn(&it->ev, s->event_data);
	s->cur = s->cur_view = NULL;
}

/* What could not be queued for want of memory, said where nothing else
 * must be allocated to say it.  Returns whether a notice went out. */
static bool tell_dropped(struct sink *s)
{
	if (s->dropped == s->dropped_told)
		return false;
	uint64_t n = s->dropped - s->dropped_told;
	s->dropped_told = s->dropped;
	if (!s->notice_fn)
		return false;
	char text[128];
	snprintf(text, sizeof(text), "%llu events or notices were lost: no memory to queue them",
		 (unsigned long long)n);
	s->notice_fn(NULL, PTMON_NOTICE_WARNING, text, s->notice_data);
	return true;
}

void sink_flush(struct sink *s)
{
	if (s->delivering)
		return;
	s->delivering = true;
	/* Until nothing is left: what a callback queues is delivered in this
	 * flush, after what was queued before it. */
	do {
		for (s->next = 0; s->next < s->len;) {
			/* A copy: what the callback queues may move the array. */
			struct sink_item it = s->items[s->next++];
			if (!it.dead)
				deliver(s, &it);
			item_release(&it);
		}
		s->len = s->next = 0;
	} while (tell_dropped(s) && s->len);
	s->delivering = false;
	if (s->cap > SINK_KEEP) {
		free(s->items);
		s->items = NULL;
		s->cap = 0;
	}
}

void sink_forget_task(struct sink *s, const struct ptmon_task *t)
{
	for (size_t i = s->next; i < s->len; i++) {
		struct sink_item *it = &s->items[i];
		if (it->ev.task == t && !it->dead) {
			it->dead = true;
			item_release(it);
		}
	}
}

struct sink *sink_free(struct sink *s)
{
	if (!s)
		return NULL;
	for (size_t i = s->next; i < s->len; i++)
		if (!s->items[i].dead)
			item_release(&s->items[i]);
	free(s->items);
	free(s);
	return NULL;
}
