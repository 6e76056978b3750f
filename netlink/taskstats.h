/* SPDX-License-Identifier: MIT */
/*
 * tstats: a client of the kernel's taskstats generic-netlink family.  After
 * registering a CPU mask, the kernel sends one record for every task that
 * exits on those CPUs (system-wide), with its accounting: CPU time, memory
 * high-water mark, I/O.  It knows nothing of process trees.
 *
 * All functions return 0 or more on success and -errno on failure.
 *
 * What the kernel sends (kernel/taskstats.c, taskstats_exit(), do_exit()):
 *  - every exiting task (thread) gets one TASKSTATS_TYPE_AGGR_PID record,
 *    pid = its thread id, filled from that one thread (utime/stime are the
 *    thread's own, not the process's);
 *  - the same datagram also carries a TASKSTATS_TYPE_AGGR_TGID record when
 *    the task is the last of its thread group to exit AND some thread of
 *    the group exited while another was alive (the kernel allocates the
 *    per-group structure only then).  A process that never had a second
 *    thread gets no TGID record.  The TGID record is NOT a full structure:
 *    it is signal->stats, summed from each exiting thread.  Always 0 in it:
 *    ac_pid, ac_ppid, ac_tgid, ac_exitcode, ac_flag, ac_comm, ac_btime,
 *    hiwater_* and the I/O counters.  Its CPU figure is cpu_run_real_ns
 *    (delay accounting's cpu part, filled even with kernel.task_delayacct=0).
 *    Older kernels leave version at 0; the 2026 stable fixes "taskstats: set
 *    version in TGID exit notifications" and "taskstats: retain dead thread
 *    stats in TGID queries" (both in 6.18.44) add the version and sums of
 *    utime, stime and etime (thread lifetimes added up, not wall time).
 *    For per-process totals that work everywhere, add up the AGGR_PID
 *    records that share an ac_tgid.
 *  - The record is queued on the socket from do_exit() before exit_mm() and
 *    before exit_notify(): by the time the task is a zombie, its parent got
 *    SIGCHLD/waitid()/pidfd readiness, or the proc connector sent its EXIT
 *    event, the record is already in this socket's queue (unless it was
 *    dropped: see overruns).  The two sockets are separate queues, so an
 *    event loop may still *read* the connector's EXIT first: drain this
 *    socket before concluding that a task's record is missing.
 *  - Pids are in the initial PID namespace (registration is only allowed
 *    from there).
 */
#ifndef PTMON_TASKSTATS_H
#define PTMON_TASKSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * One exit record, decoded from struct taskstats (any version the kernel
 * sends: fields a shorter, older structure lacks are 0).  The version-15
 * layout of Linux 6.14.0-6.14.8, which inserted fields in the middle, is
 * recognised by its version number and read at its own offsets.
 */
struct tstats_record {
	/* An aggregate of a whole thread group (TASKSTATS_TYPE_AGGR_TGID); else one task. */
	bool is_tgid;
	pid_t pid;     /* the task (AGGR_PID) or the thread group (AGGR_TGID) */
	pid_t ac_pid;  /* as the kernel filled it in the structure */
	pid_t ac_ppid; /* tgid of the real parent */
	pid_t ac_tgid; /* the task's thread group; 0 before version 12 */
	/* ac_exitcode: the code given to do_exit(), a wait status: exit(7) gives 7 << 8. */
	uint32_t exitcode;
	/* ac_flag: AFORK, ASU, ACORE, AXSIG; AGROUP (version 12): last thread of its group. */
	uint8_t flag;
	/* Start, seconds since the epoch: ac_btime64 when sent, else ac_btime. */
	uint64_t btime_s;
	uint64_t etime_us; /* ac_etime: elapsed */
	uint64_t utime_us; /* ac_utime */
	uint64_t stime_us; /* ac_stime */
	/* cpu_run_real_total (delay accounting): utime + stime in ns; summed in TGID records. */
	uint64_t cpu_run_real_ns;
	/* cpu_run_virtual_total (delay accounting's cpu part, filled even with
	   kernel.task_delayacct=0; 0 without CONFIG_TASK_DELAY_ACCT): the time
	   the task ran, in ns, exact (the scheduler's sum_exec_runtime), where
	   utime and stime are samples taken at the tick. */
	uint64_t cpu_run_virtual_ns;
	uint64_t hiwater_rss_kb;
	uint64_t hiwater_vm_kb;
	/* Bytes read through read() and friends.  The kernel rounds the four I/O counters
	   down to a multiple of 1024. */
	uint64_t read_char;
	uint64_t write_char;
	uint64_t read_bytes; /* bytes the storage layer read for it */
	uint64_t write_bytes;
	/* The structure's version (0 in TGID records of older kernels, see above). */
	uint16_t version;
	char comm[33]; /* ac_comm, NUL-terminated */
};

/* Counters kept by the decoder; all only ever grow. */
struct tstats_stats {
	uint64_t datagrams;
	uint64_t records;   /* delivered */
	uint64_t foreign;   /* dropped: not from the kernel, another family or command */
	uint64_t malformed; /* dropped: bad lengths, missing attributes, error replies */
	/* ENOBUFS: the kernel dropped records.  One count per episode: once the queue
	   overflows, every record is dropped until the queue has been read empty. */
	uint64_t overruns;
};

/* Called once per record; return 0 to go on, negative to stop. */
typedef int (*tstats_record_cb)(const struct tstats_record *rec, void *userdata);

/*
 * Shortest STATS attribute accepted: the structure up to and including
 * ac_stime (version 2 onwards; version 1 held delay accounting only).
 * Fields beyond the attribute's length read as 0; bytes beyond what this
 * code knows (newer kernels) are ignored.
 */
#define TSTATS_MIN_STATS_LEN 168u

/*
 * Decode one datagram received from the taskstats family @family_id.
 * Pure, safe on any bytes (any alignment); @sender is the nl_pid of the
 * sender (0: kernel).  Every TASKSTATS_CMD_NEW message is walked and each
 * AGGR_PID / AGGR_TGID container that holds its PID (resp. TGID) attribute
 * and a STATS attribute of at least TSTATS_MIN_STATS_LEN bytes becomes one
 * record passed to @cb (may be NULL), in the kernel's order (the PID record
 * before the TGID record of the same exit).  Counted and skipped:
 * a datagram from a sender other than the kernel, a message of another type
 * or command (foreign); inconsistent lengths, a container without its
 * attributes, a CMD_NEW without any container, an NLMSG_ERROR carrying an
 * error (malformed; one count per dropped container or message).
 * NLMSG_NOOP, NLMSG_DONE and acknowledgements (NLMSG_ERROR with error 0) are
 * skipped silently; TASKSTATS_TYPE_NULL padding and unknown attributes are
 * ignored.  @stats must not be NULL.
 *
 * Returns the number of records delivered or the callback's negative value.
 */
int tstats_decode(const void *buf, size_t len, uint32_t sender, uint16_t family_id,
		  struct tstats_stats *stats, tstats_record_cb cb, void *userdata);

struct tstats;

/* Flags for tstats_open(). */
#define TSTATS_OPEN_DEFAULT 0u

/*
 * Open a non-blocking, close-on-exec NETLINK_GENERIC socket, enlarge the
 * receive buffer to @rcvbuf (0: leave it; SO_RCVBUFFORCE where permitted,
 * else as far as SO_RCVBUF allows), resolve the "TASKSTATS" family, and
 * register for exit records of every possible CPU (the list in
 * /sys/devices/system/cpu/possible).  Both requests are answered
 * synchronously: each waits at most 1 s.
 *
 * Returns 0 and sets *ret, or -errno; *ret is untouched on failure:
 *   -ENOENT     the kernel has no taskstats family (CONFIG_TASKSTATS=n)
 *   -EPERM      registration refused: needs CAP_NET_ADMIN in the initial user
 *               namespace, both when the socket is opened and when sending
 *   -EINVAL     registration refused: the caller is not in the initial user
 *               and PID namespaces, or the CPU list is not a subset of the
 *               possible CPUs; or the caller is in another network namespace
 *               than kthreadd (the kernel would accept, but unicasts the
 *               records in the initial one: they would never arrive; checked
 *               where /proc allows); unknown @flags
 *   -ETIMEDOUT  no answer within 1 s
 *   -ENOMEM, or a socket error
 * Records of tasks that exit while tstats_open() waits for the kernel's
 * acknowledgement stay queued for tstats_receive().
 */
int tstats_open(struct tstats **ret, size_t rcvbuf, unsigned flags);

/*
 * Deregister (best effort: the kernel otherwise keeps the registration
 * until a send to the closed port fails, and a later socket that gets the
 * same port id would receive the records), close, free.  Accepts NULL;
 * returns NULL.  Preserves errno.
 */
struct tstats *tstats_free(struct tstats *t);

/* The socket, for epoll.  Owned by @t. */
int tstats_get_fd(const struct tstats *t);

/*
 * Read the datagrams now queued (until EAGAIN, or TSTATS_RECEIVE_BATCH of
 * them, so that an exit storm cannot hold the caller: the rest stays
 * readable) and decode each with tstats_decode(), calling @cb per record.
 * ENOBUFS (the kernel dropped records) is counted in stats.overruns and
 * reading goes on; *ret_lost (if not NULL) says whether that happened in
 * this call, and is written on every return, errors included.  A datagram
 * longer than its 4 KiB slot (nl_receive()) is counted in stats.malformed.
 *
 * Returns the number of records delivered, the callback's negative value,
 * or -errno for a socket error other than EAGAIN/EINTR/ENOBUFS.
 */
#define TSTATS_RECEIVE_BATCH 256u
int tstats_receive(struct tstats *t, tstats_record_cb cb, void *userdata, bool *ret_lost);

/* The decoder's counters for this socket. */
const struct tstats_stats *tstats_get_stats(const struct tstats *t);

#endif
