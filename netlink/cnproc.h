/* SPDX-License-Identifier: MIT */
/*
 * cnproc: a client of the kernel's proc connector (NETLINK_CONNECTOR,
 * CN_IDX_PROC).  It opens and subscribes the socket, receives datagrams with
 * recvmsg() so that the sender can be checked, and decodes them into plain
 * events.  It knows nothing of process trees.
 *
 * All functions return 0 or more on success and -errno on failure.
 */
#ifndef PTMON_CNPROC_H
#define PTMON_CNPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cnfilter.h"

/* The kernel's event bits (PROC_EVENT_*), for cnproc_subscribe's mask. */
#define CNPROC_MASK_FORK 0x00000001u
#define CNPROC_MASK_EXEC 0x00000002u
#define CNPROC_MASK_COMM 0x00000200u
#define CNPROC_MASK_EXIT 0x80000000u

/* Event kinds, independent of the kernel's bit values. */
enum cnproc_kind {
	CNPROC_ACK,  /* PROC_EVENT_NONE: reply to a subscribe request */
	CNPROC_FORK, /* new task; a thread when child_pid != child_tgid */
	CNPROC_EXEC,
	CNPROC_UID,
	CNPROC_GID,
	CNPROC_SID,
	CNPROC_PTRACE,
	CNPROC_COMM,
	CNPROC_COREDUMP,
	CNPROC_EXIT,
	CNPROC_UNKNOWN, /* a well-formed event of a kind this code does not know */
};

struct cnproc_event {
	enum cnproc_kind kind;
	uint32_t cpu;
	uint64_t timestamp_ns; /* CLOCK_MONOTONIC, from the kernel */
	pid_t pid;             /* subject task; the child for FORK */
	pid_t tgid;            /* subject's thread group; the child's for FORK */
	pid_t parent_pid;      /* FORK, EXIT, COREDUMP: the parent; else 0 */
	pid_t parent_tgid;
	uint32_t exit_code;   /* EXIT: wait status as the kernel encodes it */
	uint32_t exit_signal; /* EXIT: signal sent to the parent (SIGCHLD) */
	uint32_t ack_err;     /* ACK: error code carried by the reply */
	uint32_t raw_what;    /* the kernel's 'what' value, for UNKNOWN */
	char comm[16];        /* COMM: NUL-terminated */
};

/* Counters kept by the decoder; all only ever grow. */
struct cnproc_stats {
	uint64_t datagrams;   /* datagrams received */
	uint64_t events;      /* events decoded and delivered */
	uint64_t foreign;     /* dropped: not from the kernel, or not the proc connector */
	uint64_t malformed;   /* dropped: truncated, oversized or inconsistent lengths */
	uint64_t overruns;    /* ENOBUFS seen: the kernel dropped events */
	uint64_t seq_gaps;    /* per-CPU sequence gaps seen */
	uint64_t seq_missing; /* events missing by sequence numbers (sum of gap sizes) */
};

/*
 * Per-CPU sequence tracking.  The proc connector numbers its messages per CPU;
 * a jump in one CPU's numbers means messages were dropped.  Only meaningful
 * when the subscription has no kernel-side event filter (a filter makes gaps
 * normal), so it can be disabled.  Subscription replies (CNPROC_ACK) take
 * their number from the same per-CPU counter (cn_proc_ack() goes through
 * send_msg(), checked in 4.9 and 6.x) and are tracked like events; the ACKs
 * of older kernels carry cpu = (u32)-1 and fall outside the table.  Messages
 * whose cpu is >= CNPROC_MAX_CPUS are not tracked.
 *
 * A gap is a message whose seq is ahead of the one expected on its CPU (the
 * previous seq + 1, modulo 2^32; "ahead" means by less than 2^31).  Its size,
 * added to seq_missing, is the count of numbers skipped: after seq 10, seq 15
 * is one gap of 4 (11..14).  A seq behind the expected one resynchronises
 * without counting.
 */
#define CNPROC_MAX_CPUS 1024
struct cnproc_seq {
	bool enabled;
	uint32_t next[CNPROC_MAX_CPUS]; /* expected next seq per CPU */
	uint8_t seen[CNPROC_MAX_CPUS];  /* 1 once a CPU's first message is seen */
};

/* Called once per decoded event; return 0 to go on, negative to stop. */
typedef int (*cnproc_event_cb)(const struct cnproc_event *ev, void *userdata);

/*
 * Decode one received datagram.  @buf/@len is the whole datagram, @sender is
 * the nl_pid of the sender address (0 for the kernel).  Every netlink message
 * in it that is from the kernel and carries a proc-connector cn_msg with a
 * proc_event is decoded and passed to @cb.  Messages from another sender or
 * connector are counted in stats->foreign and skipped; messages whose lengths
 * are inconsistent or too short/long are counted in stats->malformed and
 * skipped.  @seq may be NULL.
 *
 * Returns the number of events delivered, or the callback's negative value.
 * Pure: no system calls, safe on any bytes.
 */
int cnproc_decode(const void *buf, size_t len, uint32_t sender, struct cnproc_stats *stats,
		  struct cnproc_seq *seq, cnproc_event_cb cb, void *userdata);

struct cnproc;

/* Flags for cnproc_open(). */
#define CNPROC_OPEN_DEFAULT 0u

/*
 * Open a non-blocking, close-on-exec NETLINK_CONNECTOR socket bound to the
 * proc connector's group, with a receive buffer of @rcvbuf bytes (forced
 * with SO_RCVBUFFORCE where permitted, else as large as SO_RCVBUF allows).
 * Does not subscribe.  Returns 0 and sets *ret, or -errno (-EPROTONOSUPPORT
 * when the kernel has no connector, -EPERM/-EACCES when not allowed,
 * -ENOMEM).
 */
int cnproc_open(struct cnproc **ret, size_t rcvbuf, unsigned flags);

/*
 * Close the socket and free; accepts NULL; returns NULL.  A handle that
 * subscribed first sends the matching IGNORE requests (best effort): the
 * kernel does not drop a closed socket's listener count.  Preserves errno.
 */
struct cnproc *cnproc_free(struct cnproc *c);

/* The socket, for epoll.  Owned by @c. */
int cnproc_get_fd(const struct cnproc *c);

/* Subscription request forms. */
enum cnproc_form {
	CNPROC_FORM_INPUT, /* struct proc_input {op, event_type}, Linux 6.6+ */
	CNPROC_FORM_OP,    /* bare enum proc_cn_mcast_op, every kernel */
};

/*
 * Send a PROC_CN_MCAST_LISTEN (or _IGNORE when !listen) request in @form.
 * @event_mask is the kernel's PROC_EVENT_* bit set for the INPUT form
 * (CNPROC_EVENTS_ALL for no filter) and ignored for the OP form.  A kernel
 * that does not understand the request, or that ignores it (outside the
 * initial user/PID namespace), says nothing: success here does not prove
 * that events will arrive.  When the mask is not "all", sequence-gap
 * detection is turned off, because a filter makes gaps normal.
 */
#define CNPROC_EVENTS_ALL 0xffffffffu
int cnproc_subscribe(struct cnproc *c, enum cnproc_form form, bool listen, uint32_t event_mask);

/*
 * Attach a classic BPF socket filter that drops the events of threads (a
 * FORK whose child_pid != child_tgid, an EXIT whose pid != tgid) in the
 * kernel, before they are queued.  Turns off sequence-gap detection (the
 * dropped events leave holes); overruns are still reported.  Returns 0 or
 * -errno.
 */
int cnproc_drop_thread_events(struct cnproc *c);

/*
 * Attach the eBPF tree filter (cnfilter.h) in place of any other, with
 * @self in the tree: then only the events of @self's descendants, and of
 * processes added with cnproc_tree_add(), reach the socket.  The filter
 * counts sequence gaps itself (user space sees too few events to), and
 * cnproc_receive() reports them as seq_gaps/seq_missing and as a loss.
 * Subscribe with CNPROC_EVENTS_ALL: a 6.6+ event mask runs before the
 * filter and would hide the sequence numbers of the kinds it drops.
 * Returns 0, or -errno from cnfilter_attach() (the socket keeps what it
 * had then).
 */
int cnproc_filter_tree(struct cnproc *c, pid_t self);

/* Filter the taskstats socket @fd with the tree filter's map (records of
 * the tree's processes only).  -ENOTCONN without a tree filter. */
int cnproc_tree_filter_taskstats(struct cnproc *c, int fd);

/* Whether the tree filter is attached. */
bool cnproc_tree_filtered(const struct cnproc *c);

/* Whether the tree filter passes every process's events (its map filled
 * up): then removing pids is pointless. */
bool cnproc_tree_passing_all(const struct cnproc *c);

/* Add @tgid to the tree filter's map (1: it was not in it), or remove it
 * unless @keep says its holder may be the tree's (cnfilter_remove()).
 * 0 when no tree filter is attached; else 0, 1 (kept) or -errno. */
int cnproc_tree_add(struct cnproc *c, pid_t tgid);
int cnproc_tree_remove(struct cnproc *c, pid_t tgid, cnfilter_keep_fn keep, void *userdata);

/* Whether @tgid is in the tree filter's map: 1, 0, or -errno. */
int cnproc_tree_contains(struct cnproc *c, pid_t tgid);

/*
 * Read the datagrams now queued (until EAGAIN, or CNPROC_RECEIVE_BATCH of them,
 * so that a storm cannot hold the caller: the rest stays readable) and decode each with
 * cnproc_decode(), calling @cb per event.  ENOBUFS from the socket (the
 * kernel dropped events) is counted in stats.overruns and reading goes on;
 * *ret_lost (if not NULL) is set to true when that happened or a sequence
 * gap was seen during this call.
 *
 * Returns the number of events delivered, the callback's negative value, or
 * -errno for a socket error other than EAGAIN/EINTR/ENOBUFS.  *ret_lost is
 * written on every return, errors included, so that a loss seen before a
 * stop is not forgotten.  A datagram longer than its 4 KiB slot
 * (nl_receive()) is counted in stats.malformed.
 */
#define CNPROC_RECEIVE_BATCH 256u
int cnproc_receive(struct cnproc *c, cnproc_event_cb cb, void *userdata, bool *ret_lost);

/* The decoder's counters for this socket. */
const struct cnproc_stats *cnproc_get_stats(const struct cnproc *c);

/* A short name for a kind ("fork", "exec", ...). */
const char *cnproc_kind_name(enum cnproc_kind kind);

#endif
