/* SPDX-License-Identifier: MIT */
/*
 * cnfilter: the in-kernel eBPF filter of a proc connector socket that
 * passes only the events of one process tree (see cnfilter.bpf.c).  The
 * tree's tgids live in a hash map of the socket's own: the filter adds the
 * children of the processes in it, user space adds what a resync finds and
 * removes what it has seen die.
 *
 * Needs libbpf at build time (else every call returns -EOPNOTSUPP) and
 * CAP_BPF (or CAP_SYS_ADMIN) at run time.  Functions return 0 or -errno.
 */
#ifndef PTMON_CNFILTER_H
#define PTMON_CNFILTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct cnfilter;

/*
 * Load the filter and attach it to the socket @fd (SO_ATTACH_BPF, which
 * replaces any filter attached before).  Returns 0 and sets *ret, or
 * -EOPNOTSUPP (built without eBPF), -EPERM (no CAP_BPF), -ENOMEM or
 * another -errno of loading.
 */
int cnfilter_attach(int fd, struct cnfilter **ret);

/* Attach the filter's second program to the taskstats socket @fd: exit
 * records of processes outside the tree are dropped there too, with the
 * same map.  Returns 0 or -errno. */
int cnfilter_attach_taskstats(struct cnfilter *f, int fd);

/* Free the maps (the socket keeps the program and the maps it uses until
 * it is closed).  Accepts NULL; returns NULL; preserves errno. */
struct cnfilter *cnfilter_free(struct cnfilter *f);

/* Put @tgid in the tree (1: it was not in it, 0: it was), or take it out
 * (0, also when it was not in it).  -E2BIG when the map is full: the
 * filter then passes every process's events. */
int cnfilter_add(struct cnfilter *f, pid_t tgid);
int cnfilter_remove(struct cnfilter *f, pid_t tgid);

/* Whether the map holds @tgid: 1, 0, or -errno. */
int cnfilter_contains(struct cnfilter *f, pid_t tgid);

/* What the filter counted: sequence gaps, the events they miss, children
 * a full map could not take; read from memory shared with the kernel. */
struct cnfilter_counts {
	uint64_t gaps;
	uint64_t missing;
	uint64_t map_full;
	bool pass_all;
};
void cnfilter_get_counts(const struct cnfilter *f, struct cnfilter_counts *ret);

#endif
