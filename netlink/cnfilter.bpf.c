// SPDX-License-Identifier: MIT
/*
 * The proc connector socket's filter: pass only the events of one process
 * tree, keeping the tree's tgids in a map that this program updates itself.
 *
 * It runs in the sending task, synchronously, for each message sent to our
 * socket (netlink_broadcast -> do_one_broadcast -> sk_filter), after the
 * 6.6+ proc_input mask.  The kernel sends FORK from copy_process() before
 * the child is woken, so a child whose parent is in the map is in the map
 * itself before it can run, let alone fork.
 *
 * It is a cost filter, never a safety check: user space still proves every
 * process through its pidfd.  What it must never do is drop silently an
 * event of the tree: a gap in a CPU's sequence numbers (an event the kernel
 * could not allocate never reaches any filter) or a full map are counted in
 * the shared page, and the event at hand is passed so that user space wakes
 * up, reads the count and resyncs.
 *
 * Built by clang (-target bpf) at build time, loaded by cnfilter.c.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "cnfilter_shared.h"

/* The proc_event kinds we look at (<linux/cn_proc.h>). */
#define EV_NONE 0x00000000u
#define EV_FORK 0x00000001u
#define EV_EXEC 0x00000002u
#define EV_COMM 0x00000200u
#define EV_EXIT 0x80000000u

/* The message from the cn_msg's seq on: offset 16 (after the nlmsghdr) +
 * 8 (the cn_msg's id).  Every event's data starts with pid, tgid; FORK's
 * with parent pid, parent tgid, child pid, child tgid. */
#define MSG_OFFSET 24
struct msg {
	__u32 seq;
	__u32 ack;
	__u16 len;
	__u16 flags;
	__u32 what;
	__u32 cpu;
	__u32 timestamp[2];
	__u32 data[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CNF_MAX_TGIDS);
	/* Allocated as the tree grows: an idle instance costs next to nothing. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u32);
} tgids SEC(".maps");

struct cpu_seq {
	__u32 next;
	__u32 seen;
};

/* One CPU's messages reach the filter in order: send_msg() numbers them
 * from a per-CPU counter and sends them under a local lock. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_seq);
} seqs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct cnf_shared);
} shared SEC(".maps");

/* The number of messages missing before @seqno on this CPU, 0: none. */
static __u32 seq_gap(__u32 seqno)
{
	__u32 zero = 0, diff = 0;
	struct cpu_seq *s = bpf_map_lookup_elem(&seqs, &zero);

	if (!s)
		return 0;
	if (s->seen) {
		diff = seqno - s->next;
		/* Behind: a restarted stream, or a message forged by root. */
		if (diff >= 0x80000000u)
			diff = 0;
	}
	s->seen = 1;
	s->next = seqno + 1;
	return diff;
}

static int in_tree(__u32 tgid)
{
	return bpf_map_lookup_elem(&tgids, &tgid) != 0;
}

/* A FORK: a new process whose parent is in the tree joins it.  Threads
 * are not tracked (their creator is in the map already). */
static int on_fork(struct cnf_shared *sh, const struct msg *m)
{
	__u32 parent_tgid = m->data[1], child_pid = m->data[2], child_tgid = m->data[3];
	__u32 one = 1;

	if (child_pid != child_tgid)
		return 0;
	if (!in_tree(parent_tgid))
		return sh->pass_all;
	if (bpf_map_update_elem(&tgids, &child_tgid, &one, BPF_ANY) < 0) {
		/* Full: from now on the map cannot answer for the tree. */
		sh->pass_all = 1;
		__sync_fetch_and_add(&sh->map_full, 1);
	}
	return 1;
}

static int wanted(struct cnf_shared *sh, const struct msg *m)
{
	__u32 pid = m->data[0], tgid = m->data[1];

	switch (m->what) {
	case EV_NONE:
		return 1; /* the reply to our subscription */
	case EV_FORK:
		return on_fork(sh, m);
	case EV_EXEC:
		return sh->pass_all || in_tree(tgid);
	case EV_COMM:
	case EV_EXIT:
		if (pid != tgid)
			return 0; /* a thread's */
		return sh->pass_all || in_tree(tgid);
	default:
		return 0;
	}
}

SEC("socket")
int cnfilter(struct __sk_buff *skb)
{
	struct msg m;
	__u32 zero = 0, gap;
	struct cnf_shared *sh = bpf_map_lookup_elem(&shared, &zero);

	/* Too short for an event: not ours to judge, user space counts it. */
	if (!sh || bpf_skb_load_bytes(skb, MSG_OFFSET, &m, sizeof(m)) < 0)
		return skb->len;
	gap = seq_gap(m.seq);
	if (gap) {
		__sync_fetch_and_add(&sh->gaps, 1);
		__sync_fetch_and_add(&sh->missing, gap);
	}
	if (wanted(sh, &m) || gap)
		return skb->len;
	return 0;
}

/*
 * The taskstats socket's filter, with the same map (read only): an exit
 * record passes when its task's pid or tgid is in the tree.  The record is
 * sent by the exiting task itself, before its pidfd can say it is dead, so
 * the tree's processes are still in the map.  Anything else (replies to our
 * requests, group records of other processes' threads) is judged as
 * before: replies pass, records of others do not.
 *
 * Layout (mk_reply() in kernel/taskstats.c): nlmsghdr (16), genlmsghdr (4),
 * then the nest AGGR_PID or AGGR_TGID holding PID or TGID (a u32) first,
 * then STATS, which a NULL pad attribute may precede (nla_reserve_64bit).
 */
#define TS_TYPE_STATS 3
#define TS_TYPE_AGGR_PID 4
#define TS_TYPE_AGGR_TGID 5
#define TS_TYPE_NULL 6
#define TS_ATTRS 20

struct nla {
	__u16 len;
	__u16 type;
};

SEC("socket")
int tsfilter(struct __sk_buff *skb)
{
	__u32 zero = 0, id, tgid, off = TS_ATTRS + 12;
	struct cnf_shared *sh = bpf_map_lookup_elem(&shared, &zero);
	struct nla outer, stats;

	if (!sh || sh->pass_all || bpf_skb_load_bytes(skb, TS_ATTRS, &outer, sizeof(outer)) < 0)
		return skb->len;
	if (outer.type != TS_TYPE_AGGR_PID && outer.type != TS_TYPE_AGGR_TGID)
		return skb->len;
	if (bpf_skb_load_bytes(skb, TS_ATTRS + 8, &id, sizeof(id)) < 0)
		return skb->len;
	if (in_tree(id))
		return skb->len;
	if (outer.type == TS_TYPE_AGGR_TGID)
		return 0;
	/* A thread's record: its process's tgid is in the statistics. */
	if (bpf_skb_load_bytes(skb, off, &stats, sizeof(stats)) < 0)
		return skb->len;
	if (stats.type == TS_TYPE_NULL) {
		off += 4;
		if (bpf_skb_load_bytes(skb, off, &stats, sizeof(stats)) < 0)
			return skb->len;
	}
	if (stats.type != TS_TYPE_STATS)
		return skb->len;
	/* Too short: a record older than version 12, without a tgid. */
	if (bpf_skb_load_bytes(skb, off + 4 + CNF_TS_AC_TGID, &tgid, sizeof(tgid)) < 0)
		return skb->len;
	return in_tree(tgid) ? skb->len : 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
