/* SPDX-License-Identifier: MIT */
/*
 * The process tree: every process a monitor has seen, in creation order,
 * indexed by pid.  A pid names at most one node in the index at a time; when
 * a new process takes a pid that an older node had, the older node leaves
 * the index and stays in the list, so the record of what happened is kept
 * while lookups find the process that has the pid now.
 */
#ifndef PTMON_TREE_H
#define PTMON_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "watch.h"

struct ptmon_task;
struct task_cgroup;

/* An argv as read from /proc/PID/cmdline, shared by a parent and the
 * children it forks without exec. */
struct argv_buf {
	uint32_t refs;
	uint32_t len;
	bool truncated;
	char data[];
};
struct argv_buf *argv_buf_new(const char *data, size_t len, bool truncated);
struct argv_buf *argv_buf_ref(struct argv_buf *a);
struct argv_buf *argv_buf_unref(struct argv_buf *a);

/* Node flags */
#define NODE_ALIVE (1u << 0)      /* not known to have exited */
#define NODE_NOPIDFD (1u << 1)    /* alive, but no pidfd could be opened (fd limit) */
#define NODE_EXIT_KNOWN (1u << 2) /* status holds the exit status */
#define NODE_REAPED (1u << 3)     /* ptmon reaped it itself */
#define NODE_SIGNALLED (1u << 4)  /* ptmon sent it a signal */
#define NODE_KILLED (1u << 5)     /* ptmon sent it SIGKILL */
#define NODE_SHORT (1u << 6)      /* gone before a pidfd could be opened */
#define NODE_ROOT (1u << 7)
#define NODE_INDEXED (1u << 8)
#define NODE_FORK_SEEN (1u << 9)     /* its FORK event has been handled */
#define NODE_EXIT_EMITTED (1u << 10) /* its exit event has been delivered */
#define NODE_EXIT_PENDING (1u << 11) /* dead, its exit waits for facts (on acct's list) */
#define NODE_ACCT_DONE (1u << 12)    /* the taskstats record of its last task is in */
#define NODE_EXIT_EVENT (1u << 13)   /* its connector EXIT event has been read */
#define NODE_CANCEL_SENT (1u << 14)  /* a cancel's first signal has been sent to it */
#define NODE_EXECED (1u << 15)       /* an EXEC event of it has been handled */
#define NODE_WALKED (1u << 16)       /* a /proc walk found it: it started before start_ns */
#define NODE_FOREIGN                                                                               \
	(1u << 17) /* not the task's: a child ptmon had before the task,                           \
		      or its descendant (on m->foreign while alive) */
#define NODE_GUESSED                                                                               \
	(1u << 18) /* foreign for want of proof: an orphan of unknown                              \
		      lineage while foreign lineages exist */
#define NODE_PARENT_GONE                                                                           \
	(1u << 19)           /* its parent's record was dropped (records.c):                       \
				parent_id/parent_pid hold who it was */
#define NODE_DROP (1u << 20) /* records.c: to be dropped by the sweep under way */
#define NODE_PROVISIONAL                                                                           \
	(1u << 21) /* attached tree: adopted after its parent died, on                             \
		      the FORK event's word; proven once the connector                             \
		      has been read empty without an EXIT for its pid */

enum node_survived {
	SURVIVED_NO = 0,
	SURVIVED_EPERM,
	SURVIVED_DSTATE,
	SURVIVED_UNKNOWN,
};

struct node {
	struct watch w; /* the epoll tag for the pidfd (WATCH_PIDFD) */
	pid_t pid;
	pid_t ppid; /* the parent when it was adopted */
	int pidfd;  /* -1 when none */
	uint32_t flags;
	uint32_t threads;       /* threads started besides the main one */
	uint32_t seen_gen;      /* the last resync that found it */
	int status;             /* wait status, when NODE_EXIT_KNOWN */
	struct node *parent;    /* in the tree; NULL for a root */
	struct group *group;    /* its task's share of the tree, NULL: none */
	struct node *hnext;     /* hash chain */
	struct node *next;      /* creation order */
	struct node *live_prev; /* a task's live list, or acct's pending once dead */
	struct node *live_next;
	uint64_t start_ns; /* when ptmon learned of it */
	uint64_t end_ns;   /* when ptmon learned of its end */
	uint64_t id;       /* 1, 2, ... in the order seen */
	struct argv_buf *argv;
	int signal_sent;  /* the last signal ptmon sent */
	uint8_t acct;     /* enum ptmon_acct_source */
	uint8_t argv_src; /* enum ptmon_argv_source of argv */
	uint8_t survived; /* enum node_survived: why a cancel gave up on it */
	uint64_t utime_us;
	uint64_t stime_us;
	uint64_t maxrss_kb;
	uint64_t rchar;
	uint64_t wchar;
	char comm[16];
	uint64_t parent_id; /* NODE_PARENT_GONE: the parent's id and pid */
	pid_t parent_pid;
};

/* The parent's id and pid (0: none), whether its record is kept or not. */
static inline uint64_t node_parent_id(const struct node *n)
{
	if (n->flags & NODE_PARENT_GONE)
		return n->parent_id;
	return n->parent ? n->parent->id : 0;
}

static inline pid_t node_parent_pid(const struct node *n)
{
	if (n->flags & NODE_PARENT_GONE)
		return n->parent_pid;
	return n->parent ? n->parent->pid : n->ppid;
}

/* Newest first from head (live_next), oldest first from tail (live_prev). */
struct node_list {
	struct node *head;
	struct node *tail;
	size_t count;
	size_t max; /* the most it ever held */
};

/*
 * A task's share of the tree: its processes, as tracking keeps them.  The
 * task embeds one and fills in what it decides (the cancel's signal, the
 * phase marks); tracking adds, signals and marks its nodes.  No layer below
 * the task sees the task itself: @owner only goes to the sink, as the task
 * an event is about.
 */
struct group {
	struct group *next;       /* the monitor's list of every task's group */
	struct ptmon_task *owner; /* opaque below the task */
	struct node *root;
	struct node_list live; /* processes not known dead */
	uint64_t processes;    /* every process it ever had */
	uint64_t signalled;    /* processes ptmon signalled */
	uint64_t killed;       /* SIGKILLs ptmon sent */
	/* What a process gets as it joins (set by the task as it cancels):
	 * 0 none; the cancel's first signal, once (NODE_CANCEL_SENT);
	 * SIGKILL, once (NODE_KILLED). */
	int cancel_signal;
	bool attached;               /* a tree ptmon did not start: no subreaper */
	bool root_reaped;            /* the root is dead and its status on its node (when
					there is one to have) */
	bool draining;               /* found empty: its cgroup is not scanned any more */
	bool done;                   /* over: claims no orphan */
	bool touched;                /* the monitor's: a handler saw it change (task_progress()) */
	struct task_cgroup *watched; /* `watch --cgroup`: the cgroup whose members join */
};

/* The task @n belongs to, NULL: none (foreign, unowned or dropped). */
static inline struct ptmon_task *node_task(const struct node *n)
{
	return n->group ? n->group->owner : NULL;
}

struct tree {
	struct node **buckets;
	size_t nbuckets; /* a power of two */
	size_t indexed;
	struct node *first;
	struct node *last;
	size_t nodes; /* ever added: the last id given */
	size_t kept;  /* in the list now */
};

int tree_init(struct tree *t);
/* Free every node.  Does not close pidfds: the caller does that. */
void tree_fini(struct tree *t);
/* The node that has @pid now, or NULL. */
struct node *tree_lookup(const struct tree *t, pid_t pid);
/* A new node for @pid, appended and indexed; an older node with the same
 * pid leaves the index.  NULL on allocation failure. */
struct node *tree_add(struct tree *t, pid_t pid);
void tree_unindex(struct tree *t, struct node *n);
/* Unlink @n, which follows @prev in the list (NULL: it is the first), from
 * the list and the index, and free it with its share of its argv.  Its
 * pidfd must be closed and no other node may point at it. */
void tree_drop(struct tree *t, struct node *prev, struct node *n);

void node_list_add(struct node_list *l, struct node *n);
void node_list_del(struct node_list *l, struct node *n);

#endif
