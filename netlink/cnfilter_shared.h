/* SPDX-License-Identifier: MIT */
/* What the tree filter (cnfilter.bpf.c) and its loader (cnfilter.c) share. */
#ifndef PTMON_CNFILTER_SHARED_H
#define PTMON_CNFILTER_SHARED_H

/* The most tgids the map holds: a tree larger than this makes the filter
 * pass every process's events (pass_all), as the classic filter does. */
#define CNF_MAX_TGIDS 65536

/* offsetof(struct taskstats, ac_tgid) (version 12 on); cnfilter.c checks
 * it against the header. */
#define CNF_TS_AC_TGID 368

/* One page, mapped by user space and read without a system call.  The
 * counters only grow. */
struct cnf_shared {
	__u64 gaps;     /* sequence gaps seen: events lost before the filter */
	__u64 missing;  /* events missing by those gaps */
	__u64 map_full; /* children the full map could not take */
	__u32 pass_all; /* 1: pass every process's events (set by either side) */
	/* User space takes a pid out of the map under this guard: del_seq
	 * is odd while it does, and del_pid is the pid (cnfilter_remove()). */
	__u32 del_seq;
	__u32 del_pid;
	__u32 pad;
};

#endif
