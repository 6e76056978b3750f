/* SPDX-License-Identifier: MIT */
/* Layer "tree": the nodes, their pid index and their argv buffers (tree.h). */
#include "tree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TREE_MIN_BUCKETS 256u

static size_t bucket_of(const struct tree *t, pid_t pid)
{
	/* Fibonacci hashing: pids are dense and sequential, so spread them. */
	uint64_t h = (uint64_t)(uint32_t)pid * 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 32) & (t->nbuckets - 1);
}

int tree_init(struct tree *t)
{
	*t = (struct tree){0};
	t->buckets = calloc(TREE_MIN_BUCKETS, sizeof(*t->buckets));
	if (!t->buckets)
		return -ENOMEM;
	t->nbuckets = TREE_MIN_BUCKETS;
	return 0;
}

struct argv_buf *argv_buf_new(const char *data, size_t len, bool truncated)
{
	struct argv_buf *a = malloc(sizeof(*a) + len);
	if (!a)
		return NULL;
	a->refs = 1;
	a->len = (uint32_t)len;
	a->truncated = truncated;
	memcpy(a->data, data, len);
	return a;
}

struct argv_buf *argv_buf_ref(struct argv_buf *a)
{
	if (a)
		a->refs++;
	return a;
}

struct argv_buf *argv_buf_unref(struct argv_buf *a)
{
	if (a && --a->refs == 0)
		free(a);
	return NULL;
}

void tree_fini(struct tree *t)
{
	struct node *n = t->first;
	while (n) {
		struct node *next = n->next;
		argv_buf_unref(n->argv);
		free(n);
		n = next;
	}
	free(t->buckets);
	*t = (struct tree){0};
}

struct node *tree_lookup(const struct tree *t, pid_t pid)
{
	if (!t->buckets)
		return NULL;
	for (struct node *n = t->buckets[bucket_of(t, pid)]; n; n = n->hnext)
		if (n->pid == pid)
			return n;
	return NULL;
}

static void tree_grow(struct tree *t)
{
	size_t nb = t->nbuckets * 2;
	struct node **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	struct node **old = t->buckets;
	size_t oldn = t->nbuckets;
	t->buckets = b;
	t->nbuckets = nb;
	for (size_t i = 0; i < oldn; i++) {
		struct node *n = old[i];
		while (n) {
			struct node *next = n->hnext;
			size_t k = bucket_of(t, n->pid);
			n->hnext = b[k];
			b[k] = n;
			n = next;
		}
	}
	free(old);
}

void tree_unindex(struct tree *t, struct node *n)
{
	if (!(n->flags & NODE_INDEXED))
		return;
	struct node **p = &t->buckets[bucket_of(t, n->pid)];
	while (*p && *p != n)
		p = &(*p)->hnext;
	if (*p)
		*p = n->hnext;
	n->hnext = NULL;
	n->flags &= ~NODE_INDEXED;
	t->indexed--;
}

struct node *tree_add(struct tree *t, pid_t pid)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->pid = pid;
	n->pidfd = -1;
	struct node *old = tree_lookup(t, pid);
	if (old)
		tree_unindex(t, old);
	if (t->indexed >= t->nbuckets)
		tree_grow(t);
	size_t k = bucket_of(t, pid);
	n->hnext = t->buckets[k];
	t->buckets[k] = n;
	n->flags |= NODE_INDEXED;
	t->indexed++;
	if (t->last)
		t->last->next = n;
	else
		t->first = n;
	t->last = n;
	t->nodes++;
	t->kept++;
	n->id = t->nodes;
	return n;
}

void tree_drop(struct tree *t, struct node *prev, struct node *n)
{
	tree_unindex(t, n);
	if (prev)
		prev->next = n->next;
	else
		t->first = n->next;
	if (t->last == n)
		t->last = prev;
	t->kept--;
	argv_buf_unref(n->argv);
	free(n);
}

void node_list_add(struct node_list *l, struct node *n)
{
	n->live_prev = NULL;
	n->live_next = l->head;
	if (l->head)
		l->head->live_prev = n;
	else
		l->tail = n;
	l->head = n;
	if (++l->count > l->max)
		l->max = l->count;
}

void node_list_del(struct node_list *l, struct node *n)
{
	if (n->live_prev)
		n->live_prev->live_next = n->live_next;
	else if (l->head == n)
		l->head = n->live_next;
	else
		return; /* not in the list */
	if (n->live_next)
		n->live_next->live_prev = n->live_prev;
	else
		l->tail = n->live_prev;
	n->live_prev = n->live_next = NULL;
	l->count--;
}
