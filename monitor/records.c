/* SPDX-License-Identifier: MIT */
/*
 * Bounded memory over long runs: the records of exited processes are freed
 * once their exit has been delivered, unless their task holds them
 * (ptmon_task_hold_records(), for a report or a summary that walks them at
 * the end), and all of a task's with the task (ptmon_task_free()).
 *
 * A dropped record may still be some node's parent: those nodes are linked
 * to the nearest kept ancestor, so that a subtree is still found below a
 * live ancestor, and remember who their parent was (NODE_PARENT_GONE) for
 * the parent_id and ppid they report.
 */
#include <errno.h>
#include <stdlib.h>

#include "acct.h"
#include "monitor.h"
#include "task.h"
#include "track.h"
#include "tree.h"

/* Exits delivered between sweeps, at least: a sweep walks every record. */
#define SWEEP_MIN 256

/* A process's events are all queued by the time ptmon learns it is dead
 * (its pidfd, our wait4, a failed pidfd_open: each after its EXIT was
 * sent), but maybe not yet read: its FORK of a child still to come needs
 * the record as the parent, or the child would be taken for a stranger's
 * and a fork loop that moves on through it lost. */
static bool events_read(const struct ptmon_monitor *m, const struct node *n)
{
	uint64_t known = n->end_ns > n->start_ns ? n->end_ns : n->start_ns;
	return m->backend != PTMON_BACKEND_CONNECTOR || known < m->events_read_ns;
}

static bool droppable(const struct ptmon_monitor *m, const struct node *n, const struct group *only)
{
	if (!n->group || (n->flags & (NODE_ALIVE | NODE_EXIT_PENDING | NODE_FOREIGN)) ||
	    !(n->flags & NODE_EXIT_EMITTED) || n->pidfd >= 0)
		return false;
	if (only)
		return n->group == only;
	/* The root's record stays for ptmon_task_find_process(root pid). */
	return !(n->flags & NODE_ROOT) && !task_holds_records(n->group->owner) && events_read(m, n);
}

/* Nodes whose parent is to be dropped get the nearest kept ancestor. */
static void relink_children(struct ptmon_monitor *m)
{
	for (struct node *n = m->tree.first; n; n = n->next) {
		struct node *p = n->parent;
		if (!p || !(p->flags & NODE_DROP))
			continue;
		if (!(n->flags & NODE_PARENT_GONE)) {
			n->parent_id = p->id;
			n->parent_pid = p->pid;
			n->flags |= NODE_PARENT_GONE;
		}
		while (p && (p->flags & NODE_DROP))
			p = p->parent;
		n->parent = p;
	}
}

/* Drop the records droppable() chooses; returns how many. */
static size_t drop(struct ptmon_monitor *m, const struct group *only)
{
	size_t marked = 0, dropped = 0;
	for (struct node *n = m->tree.first; n; n = n->next)
		if (droppable(m, n, only)) {
			n->flags |= NODE_DROP;
			marked++;
		}
	if (!marked)
		return 0;
	relink_children(m);
	struct node *prev = NULL, *n = m->tree.first;
	while (n) {
		struct node *next = n->next;
		if (!(n->flags & NODE_DROP)) {
			prev = n;
		} else {
			track_node_dropping(m->track, n, prev);
			tree_drop(&m->tree, prev, n);
			dropped++;
		}
		n = next;
	}
	m->records_dropped += dropped;
	return dropped;
}

void records_sweep(struct ptmon_monitor *m)
{
	m->exits_unswept += acct_take_exits(m->acct);
	if (m->exits_unswept < SWEEP_MIN || m->exits_unswept < m->tree.kept / 2)
		return;
	m->exits_unswept = 0;
	drop(m, NULL);
}

struct ptmon_task *ptmon_task_free(struct ptmon_task *t)
{
	if (!t)
		return NULL;
	const struct group *g = task_group(t);
	if (!g->done || g->live.count)
		return t;
	drop(task_monitor(t), g);
	task_unlink(t);
	task_free(t);
	return NULL;
}

uint64_t ptmon_monitor_records(const struct ptmon_monitor *m)
{
	return m ? m->tree.kept : 0;
}
