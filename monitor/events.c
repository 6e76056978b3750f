/* SPDX-License-Identifier: MIT */
/* The record of every process, as the caller reads it (struct
 * ptmon_process): part of the monitor layer.  Events are the sink's. */
#include "monitor.h"
#include "sink.h"
#include "task.h"
#include "tree.h"
#include "sized.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

/* ---- the process record ------------------------------------------------------ */

static void fill_end(const struct node *n, struct ptmon_process_info *p)
{
	if (n->flags & NODE_ALIVE) {
		p->end = PTMON_END_RUNNING;
		return;
	}
	if (!(n->flags & NODE_EXIT_KNOWN)) {
		p->end = PTMON_END_UNKNOWN;
		return;
	}
	if (WIFEXITED(n->status)) {
		p->end = PTMON_END_EXITED;
		p->exit_code = WEXITSTATUS(n->status);
		return;
	}
	p->end = PTMON_END_SIGNALED;
	p->term_signal = WTERMSIG(n->status);
	p->core_dumped = WCOREDUMP(n->status);
	p->killed_by_ptmon = (n->flags & NODE_SIGNALLED) &&
			     (p->term_signal == n->signal_sent ||
			      (p->term_signal == SIGKILL && (n->flags & NODE_KILLED)) ||
			      (n->group && p->term_signal == task_cancel_signal(n->group->owner)));
}

/* The published layouts (ptmon.h, "Structs that grow"). */
_Static_assert(offsetof(struct ptmon_process_info, write_bytes) + sizeof(uint64_t) ==
		       PTMON_PROCESS_INFO_SIZE_VER0,
	       "ptmon_process_info VER0");
_Static_assert(sizeof(struct ptmon_process_info) == PTMON_PROCESS_INFO_SIZE_VER1,
	       "ptmon_process_info VER1");

int ptmon_process_get_info(const struct ptmon_process *proc, struct ptmon_process_info *ret)
{
	if (!proc || !ret)
		return -EINVAL;
	const struct node *n = (const struct node *)proc;
	const struct ptmon_monitor *m = n->group ? task_monitor(n->group->owner) : NULL;
	/* During an event's callback: the record as the event saw it. */
	if (m)
		n = sink_view(m->sink, n);
	uint64_t off = m ? m->wall_offset_ns : 0;
	struct ptmon_process_info p = {
		.size = sizeof(p),
		.id = n->id,
		.parent_id = node_parent_id(n),
		.pid = n->pid,
		.ppid = node_parent_pid(n),
		.root = (n->flags & NODE_ROOT) != 0,
		.argv = n->argv ? n->argv->data : NULL,
		.argv_len = n->argv ? n->argv->len : 0,
		.argv_truncated = n->argv && n->argv->truncated,
		.start_mono_ns = n->start_ns,
		.end_mono_ns = (n->flags & NODE_ALIVE) ? 0 : n->end_ns,
		.short_lived = (n->flags & NODE_SHORT) != 0,
		.signal_sent = n->signal_sent,
		.threads = n->threads,
		.acct = n->acct,
		.utime_us = n->utime_us,
		.stime_us = n->stime_us,
		.maxrss_kb = n->maxrss_kb,
		.read_bytes = n->rchar,
		.write_bytes = n->wchar,
		.argv_source = (enum ptmon_argv_source)n->argv_src,
	};
	memcpy(p.comm, n->comm, sizeof(p.comm));
	p.start_wall_ns = p.start_mono_ns ? p.start_mono_ns + off : 0;
	p.end_wall_ns = p.end_mono_ns ? p.end_mono_ns + off : 0;
	fill_end(n, &p);
	static const char *const survived[] = {
		[SURVIVED_EPERM] = "not permitted",
		[SURVIVED_DSTATE] = "uninterruptible sleep",
		[SURVIVED_UNKNOWN] = "unknown",
	};
	if (n->survived && n->survived < sizeof(survived) / sizeof(survived[0]))
		p.survived = survived[n->survived];
	/* No subreaper above an attached tree: a process whose parent died
	 * while it lived went to init or another subreaper.  A cancel's
	 * sweeps orphan children for an instant as they kill parents first:
	 * not a fact about the tree, so not said. */
	const struct node *up = n->parent;
	const struct group *g = n->group;
	uint64_t cancel_ns = g ? task_cancel_ns(g->owner) : 0;
	p.reparented = g && g->attached && up &&
		       ((n->ppid && n->ppid != up->pid) ||
			(!(up->flags & NODE_ALIVE) && (!cancel_ns || up->end_ns < cancel_ns) &&
			 ((n->flags & NODE_ALIVE) || up->end_ns < n->end_ns)));
	return sized_copy_out(ret, &p, sizeof(p), PTMON_PROCESS_INFO_SIZE_VER0);
}

int ptmon_task_foreach_process(const struct ptmon_task *t,
			       int (*fn)(const struct ptmon_process *p, void *ud), void *ud)
{
	if (!t || !fn)
		return -EINVAL;
	const struct group *g = task_group_const(t);
	for (struct node *n = task_monitor(t)->tree.first; n; n = n->next) {
		if (n->group != g)
			continue;
		int r = fn((const struct ptmon_process *)n, ud);
		if (r < 0)
			return r;
	}
	return 0;
}

const struct ptmon_process *ptmon_task_next_process(const struct ptmon_task *t,
						    const struct ptmon_process *p)
{
	if (!t)
		return NULL;
	const struct group *g = task_group_const(t);
	const struct node *n = p ? ((const struct node *)p)->next : task_monitor(t)->tree.first;
	while (n && n->group != g)
		n = n->next;
	return (const struct ptmon_process *)n;
}

uint64_t ptmon_task_max_alive(const struct ptmon_task *t)
{
	return t ? task_group_const(t)->live.max : 0;
}

void ptmon_monitor_set_event_callback(struct ptmon_monitor *m, ptmon_event_fn fn, void *userdata)
{
	if (!m)
		return;
	sink_set_event_fn(m->sink, fn, userdata);
}
