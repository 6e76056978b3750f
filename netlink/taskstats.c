/* SPDX-License-Identifier: MIT */
/*
 * tstats: a client of the kernel's taskstats family.  See taskstats.h.
 *
 * Wire format of one exit datagram, as taskstats_exit() builds it: struct
 * nlmsghdr (type = the family id, pid 0, seq from a per-CPU counter), struct
 * genlmsghdr (cmd TASKSTATS_CMD_NEW), then the attribute AGGR_PID holding
 * PID (u32) and STATS (struct taskstats), optionally followed by AGGR_TGID
 * holding TGID and STATS.  On architectures without efficient unaligned
 * access a TASKSTATS_TYPE_NULL attribute may pad before STATS (current
 * kernels, nla_reserve_64bit()) or before the container (older ones).  On
 * x86-64 STATS starts 36 bytes into the datagram, so its u64 fields are not
 * 8-aligned: everything is read with memcpy() into local structs, and the
 * decoder walks the attributes itself rather than through libmnl, which
 * dereferences struct nlattr in place.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <libmnl/libmnl.h>

#include "nlutil.h"
#include "fdclose.h"
#include "taskstats.h"

/* Far larger than an exit datagram (under 1.5 KiB with both records). */
#define TSTATS_RECV_BUF (64u * 1024u)
/* How long tstats_open() waits for each answer from the kernel. */
#define TSTATS_REPLY_MS 1000
#define CPU_POSSIBLE_PATH "/sys/devices/system/cpu/possible"

static_assert(offsetof(struct taskstats, ac_minflt) == TSTATS_MIN_STATS_LEN,
	      "TSTATS_MIN_STATS_LEN must end with ac_stime");
static_assert(sizeof(struct taskstats) >= offsetof(struct taskstats, ac_tgid) + 4,
	      "headers older than taskstats version 12");

struct tstats {
	struct mnl_socket *nl;
	uint16_t family_id;
	uint32_t req_seq;
	bool registered;
	struct tstats_stats stats;
	char cpus[4096]; /* the cpulist registered, for deregistration */
	alignas(struct nlmsghdr) uint8_t buf[TSTATS_RECV_BUF];
};

/* What a decoded message is handed to. */
struct sink {
	struct tstats_stats *stats;
	uint16_t family_id;
	tstats_record_cb cb;
	void *userdata;
};

/* One attribute, located inside the caller's buffer. */
struct attr {
	uint16_t type;
	const uint8_t *data;
	size_t len;
};

/*
 * Step to the next attribute of [*p, *p + *rem).  Returns 1 and fills @a,
 * 0 at the end, -1 when the lengths are inconsistent.  The last attribute
 * may lack its alignment padding.
 */
static int attr_next(const uint8_t **p, size_t *rem, struct attr *a)
{
	struct nlattr na;
	size_t step;

	if (*rem == 0)
		return 0;
	if (*rem < NLA_HDRLEN)
		return -1;
	memcpy(&na, *p, sizeof(na));
	if (na.nla_len < NLA_HDRLEN || na.nla_len > *rem)
		return -1;
	a->type = na.nla_type & NLA_TYPE_MASK;
	a->data = *p + NLA_HDRLEN;
	a->len = na.nla_len - NLA_HDRLEN;
	step = NLA_ALIGN(na.nla_len);
	if (step >= *rem) {
		*rem = 0;
	} else {
		*p += step;
		*rem -= step;
	}
	return 1;
}

/*
 * Linux 6.14.0-6.14.8 sent version 15, which inserted *_delay_max/min pairs
 * after each delay pair (commits 658eb5ab916d, f65c64f311ee); version 16
 * (0bf2d838de1f, also in 6.14.9) moved them to the end.  Each row: a range
 * of the version-13 layout we decode and how far it lies further on in
 * version 15.  Everything from ac_comm to cancelled_write_bytes moved by 48.
 */
#define TS_OFF(f) offsetof(struct taskstats, f)
static const struct v15_range {
	size_t start, end, shift;
} v15_map[] = {
	{0, TS_OFF(blkio_count), 0},
	{TS_OFF(blkio_count), TS_OFF(swapin_count), 16},
	{TS_OFF(swapin_count), TS_OFF(cpu_run_real_total), 32},
	{TS_OFF(cpu_run_real_total), TS_OFF(thrashing_count), 48},
	{TS_OFF(thrashing_count), TS_OFF(ac_btime64), 64},
	{TS_OFF(ac_btime64), TS_OFF(ac_tgid), 80},
	{TS_OFF(ac_tgid), sizeof(struct taskstats), 96},
};

/* @ts is zeroed; copy what the version-15 attribute of @len bytes holds. */
static bool load_v15(struct taskstats *ts, const uint8_t *p, size_t len)
{
	if (len < TSTATS_MIN_STATS_LEN + 48)
		return false;
	for (size_t i = 0; i < sizeof(v15_map) / sizeof(v15_map[0]); i++) {
		const struct v15_range *m = &v15_map[i];
		size_t src = m->start + m->shift, n = m->end - m->start;

		if (src >= len)
			break;
		if (n > len - src)
			n = len - src;
		memcpy((uint8_t *)ts + m->start, p + src, n);
	}
	return true;
}

/* The STATS attribute into @ts, zero beyond what it carries. */
static bool load_stats(struct taskstats *ts, const struct attr *a)
{
	uint16_t version;

	memset(ts, 0, sizeof(*ts));
	if (a->len < sizeof(version))
		return false;
	memcpy(&version, a->data, sizeof(version));
	if (version == 15)
		return load_v15(ts, a->data, a->len);
	if (a->len < TSTATS_MIN_STATS_LEN)
		return false;
	memcpy(ts, a->data, a->len < sizeof(*ts) ? a->len : sizeof(*ts));
	return true;
}

static void fill_record(struct tstats_record *rec, const struct taskstats *ts)
{
	rec->ac_pid = (pid_t)ts->ac_pid;
	rec->ac_ppid = (pid_t)ts->ac_ppid;
	rec->ac_tgid = (pid_t)ts->ac_tgid;
	rec->exitcode = ts->ac_exitcode;
	rec->flag = ts->ac_flag;
	/* ac_btime saturates in 2106; ac_btime64 (version 10) does not. */
	rec->btime_s = ts->ac_btime64 ? ts->ac_btime64 : ts->ac_btime;
	rec->etime_us = ts->ac_etime;
	rec->utime_us = ts->ac_utime;
	rec->stime_us = ts->ac_stime;
	rec->cpu_run_real_ns = ts->cpu_run_real_total;
	rec->cpu_run_virtual_ns = ts->cpu_run_virtual_total;
	rec->hiwater_rss_kb = ts->hiwater_rss;
	rec->hiwater_vm_kb = ts->hiwater_vm;
	rec->read_char = ts->read_char;
	rec->write_char = ts->write_char;
	rec->read_bytes = ts->read_bytes;
	rec->write_bytes = ts->write_bytes;
	rec->version = ts->version;
	memcpy(rec->comm, ts->ac_comm, sizeof(ts->ac_comm));
	rec->comm[sizeof(rec->comm) - 1] = '\0';
}

static_assert(sizeof(((struct tstats_record *)NULL)->comm) == TS_COMM_LEN + 1, "comm size");

/* One AGGR_PID / AGGR_TGID container.  Returns 1, 0 (dropped) or the callback's value. */
static int decode_aggr(const struct sink *k, const struct attr *aggr)
{
	bool is_tgid = aggr->type == TASKSTATS_TYPE_AGGR_TGID;
	uint16_t id_type = is_tgid ? TASKSTATS_TYPE_TGID : TASKSTATS_TYPE_PID;
	struct attr a, stats = {0};
	const uint8_t *p = aggr->data;
	size_t rem = aggr->len;
	struct tstats_record rec = {0};
	struct taskstats ts;
	bool have_id = false;
	uint32_t id = 0;
	int r;

	while ((r = attr_next(&p, &rem, &a)) > 0) {
		if (a.type == id_type && a.len >= sizeof(id)) {
			memcpy(&id, a.data, sizeof(id));
			have_id = true;
		} else if (a.type == TASKSTATS_TYPE_STATS) {
			stats = a;
		}
	}
	if (r < 0 || !have_id || !stats.data || !load_stats(&ts, &stats)) {
		k->stats->malformed++;
		return 0;
	}
	rec.is_tgid = is_tgid;
	rec.pid = (pid_t)id;
	fill_record(&rec, &ts);
	k->stats->records++;
	if (k->cb) {
		r = k->cb(&rec, k->userdata);
		if (r < 0)
			return r;
	}
	return 1;
}

/* @p/@len: the payload of one message of our family. */
static int decode_genl(const struct sink *k, const uint8_t *p, size_t len)
{
	struct genlmsghdr g;
	struct attr a;
	int delivered = 0, containers = 0, r;

	if (len < GENL_HDRLEN) {
		k->stats->malformed++;
		return 0;
	}
	memcpy(&g, p, sizeof(g));
	if (g.cmd != TASKSTATS_CMD_NEW) {
		k->stats->foreign++;
		return 0;
	}
	p += GENL_HDRLEN;
	len -= GENL_HDRLEN;
	while ((r = attr_next(&p, &len, &a)) > 0) {
		if (a.type != TASKSTATS_TYPE_AGGR_PID && a.type != TASKSTATS_TYPE_AGGR_TGID)
			continue; /* TASKSTATS_TYPE_NULL padding, or newer */
		containers++;
		r = decode_aggr(k, &a);
		if (r < 0)
			return r;
		delivered += r;
	}
	if (r < 0 || containers == 0)
		k->stats->malformed++;
	return delivered;
}

static int decode_msg(const struct sink *k, const struct nlmsghdr *hdr, const uint8_t *payload)
{
	size_t plen = hdr->nlmsg_len - NLMSG_HDRLEN;
	int32_t error;

	switch (hdr->nlmsg_type) {
	case NLMSG_NOOP:
	case NLMSG_DONE:
		return 0;
	case NLMSG_ERROR:
		/* An ACK (error 0) of a request of ours is harmless; a failure is no record. */
		if (plen < sizeof(error)) {
			k->stats->malformed++;
			return 0;
		}
		memcpy(&error, payload, sizeof(error));
		if (error != 0)
			k->stats->malformed++;
		return 0;
	default:
		if (hdr->nlmsg_type != k->family_id || hdr->nlmsg_type < NLMSG_MIN_TYPE) {
			k->stats->foreign++;
			return 0;
		}
		return decode_genl(k, payload, plen);
	}
}

static int walk_msg(const void *ctx, const struct nlmsghdr *hdr, const uint8_t *payload)
{
	return decode_msg(ctx, hdr, payload);
}

int tstats_decode(const void *buf, size_t len, uint32_t sender, uint16_t family_id,
		  struct tstats_stats *stats, tstats_record_cb cb, void *userdata)
{
	const struct sink k = {stats, family_id, cb, userdata};

	assert(stats);
	stats->datagrams++;
	if (sender != 0) {
		stats->foreign++;
		return 0;
	}
	if (!buf || len == 0 || len > INT_MAX) {
		stats->malformed++;
		return 0;
	}
	return nl_walk(buf, len, &stats->malformed, walk_msg, &k);
}

/* ---- the socket --------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One datagram into t->buf (@flags: MSG_PEEK or 0).  Returns its length or -errno. */
static ssize_t recv_one(struct tstats *t, int flags, uint32_t *ret_sender, bool *ret_trunc)
{
	return nl_recv(mnl_socket_get_fd(t->nl), t->buf, sizeof(t->buf), flags, ret_sender,
		       ret_trunc);
}

/* Wait until the socket is readable.  Returns 0, -ETIMEDOUT or -errno. */
static int wait_readable(struct tstats *t, int64_t deadline)
{
	struct pollfd pfd = {.fd = mnl_socket_get_fd(t->nl), .events = POLLIN};

	for (;;) {
		int64_t left = deadline - now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/*
 * The next datagram that is not plainly junk, left in t->buf: consumed,
 * or only peeked when @peek.  Datagrams from other senders and truncated
 * ones are consumed and counted on the way.  Returns its length or -errno.
 */
static ssize_t recv_reply(struct tstats *t, int64_t deadline, bool peek)
{
	for (;;) {
		uint32_t sender = UINT32_MAX;
		bool trunc = false;
		ssize_t n = recv_one(t, peek ? MSG_PEEK : 0, &sender, &trunc);

		if (n == -EAGAIN || n == -EINTR) {
			int r = wait_readable(t, deadline);

			if (r < 0)
				return r;
			continue;
		}
		if (n == -ENOBUFS) {
			t->stats.overruns++;
			continue;
		}
		if (n < 0)
			return n;
		if (sender == 0 && !trunc)
			return n;
		if (peek) {
			n = recv_one(t, 0, &sender, &trunc);
			if (n < 0)
				return n;
		}
		t->stats.datagrams++;
		if (sender != 0)
			t->stats.foreign++;
		else
			t->stats.malformed++;
	}
}

/* A request header for the generic family @type. */
static struct nlmsghdr *put_genl(struct tstats *t, uint16_t type, uint16_t flags, uint8_t cmd,
				 uint8_t version)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(t->buf);
	struct genlmsghdr *g;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++t->req_seq;
	nlh->nlmsg_pid = mnl_socket_get_portid(t->nl);
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = version;
	return nlh;
}

static int send_request(struct tstats *t, const struct nlmsghdr *nlh)
{
	if (mnl_socket_sendto(t->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	return 0;
}

/* The error of an NLMSG_ERROR answering our last request, in @nlh (fits). */
static bool is_our_error(const struct tstats *t, const struct nlmsghdr *nlh, int *ret_err)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq != t->req_seq)
		return false;
	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(e->error))
		return false;
	*ret_err = e->error > 0 ? -e->error : e->error;
	return true;
}

static int family_id_cb(const struct nlattr *attr, void *data)
{
	uint16_t *id = data;

	if (mnl_attr_get_type(attr) == CTRL_ATTR_FAMILY_ID &&
	    mnl_attr_validate(attr, MNL_TYPE_U16) == 0)
		*id = mnl_attr_get_u16(attr);
	return MNL_CB_OK;
}

/*
 * Look in the reply datagram (in t->buf, aligned, @n bytes) for the answer
 * to our GETFAMILY.  Returns 1 with t->family_id set, 0 if not there, or
 * the kernel's -errno.  libmnl is safe here: the buffer is ours and aligned,
 * and every nlmsg_len was bounded against @n first.
 */
static int parse_family_reply(struct tstats *t, size_t n)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)t->buf;
	int rem = (int)n, err;

	for (; nl_msg_fits(nlh, rem); nlh = mnl_nlmsg_next(nlh, &rem)) {
		const struct genlmsghdr *g = mnl_nlmsg_get_payload(nlh);
		uint16_t id = 0;

		if (is_our_error(t, nlh, &err)) {
			if (err < 0)
				return err;
			continue;
		}
		if (nlh->nlmsg_type != GENL_ID_CTRL || nlh->nlmsg_seq != t->req_seq ||
		    mnl_nlmsg_get_payload_len(nlh) < GENL_HDRLEN || g->cmd != CTRL_CMD_NEWFAMILY)
			continue;
		mnl_attr_parse(nlh, GENL_HDRLEN, family_id_cb, &id);
		if (id < NLMSG_MIN_TYPE)
			return -EPROTO;
		t->family_id = id;
		return 1;
	}
	return 0;
}

static int resolve_family(struct tstats *t)
{
	int64_t deadline = now_ms() + TSTATS_REPLY_MS;
	struct nlmsghdr *nlh = put_genl(t, GENL_ID_CTRL, 0, CTRL_CMD_GETFAMILY, 1);
	int r;

	/* The policy is NLA_NUL_STRING: the terminating NUL is required. */
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, TASKSTATS_GENL_NAME);
	r = send_request(t, nlh);
	while (r == 0) {
		ssize_t n = recv_reply(t, deadline, false);

		if (n < 0)
			return (int)n;
		r = parse_family_reply(t, (size_t)n);
	}
	return r < 0 ? r : 0;
}

/*
 * The possible CPUs as a cpulist ("0-3"), which cpulist_parse() in the
 * kernel reads.  Registering a CPU outside cpu_possible_mask is -EINVAL,
 * and possible (not online) CPUs are what a task may exit on after hotplug.
 */
static int read_cpus(char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(CPU_POSSIBLE_PATH, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		long cpus = sysconf(_SC_NPROCESSORS_CONF);

		/* No sysfs: glibc's count of configured CPUs is the next best. */
		if (cpus < 1)
			return -ENOTSUP;
		snprintf(buf, size, "0-%ld", cpus - 1);
		return 0;
	}
	do
		n = read(fd, buf, size);
	while (n < 0 && errno == EINTR);
	n = n < 0 ? -errno : n;
	fd = util_close(fd);
	if (n < 0)
		return (int)n;
	if ((size_t)n >= size)
		return -E2BIG;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf[0] ? 0 : -EINVAL;
}

/*
 * send_cpu_listeners() unicasts in init_net whatever the registering
 * socket's namespace, so from another network namespace the kernel accepts
 * the registration but the records go to whichever init_net socket has our
 * port id, or nowhere.  Refuse that before registering.  The reference is
 * kthreadd (pid 2, a kernel thread: always in init_net), else pid 1; where
 * neither can be inspected (no /proc, no CAP_SYS_PTRACE) the registration
 * goes ahead.  From 6.18 init_net has a fixed inode number, which settles it
 * at once.
 */
#define NET_INIT_INO 0xEFFFFFF9u
static int check_init_netns(void)
{
	static const char *const refs[] = {"/proc/2/ns/net", "/proc/1/ns/net"};
	struct stat self, ref;

	if (stat("/proc/self/ns/net", &self) < 0 || self.st_ino == NET_INIT_INO)
		return 0;
	for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
		if (stat(refs[i], &ref) < 0)
			continue;
		if (self.st_dev != ref.st_dev || self.st_ino != ref.st_ino)
			return -EINVAL;
		return 0;
	}
	return 0;
}

/*
 * Wait for the acknowledgement of the registration.  Records of tasks that
 * exit meanwhile can overtake it (the kernel adds the listener, then acks);
 * a record at the head of the queue shows that the registration is in
 * effect, so it is left there for tstats_receive() and the ACK behind it
 * will be skipped by the decoder.
 */
static int wait_ack(struct tstats *t, int64_t deadline)
{
	for (;;) {
		ssize_t n = recv_reply(t, deadline, true);
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)t->buf;
		uint32_t sender;
		bool trunc;
		int err;

		if (n < 0)
			return (int)n;
		if (nl_msg_fits(nlh, (int)n) && nlh->nlmsg_type == t->family_id)
			return 0;
		/* Anything else is consumed: our ACK, or something to skip. */
		n = recv_one(t, 0, &sender, &trunc);
		if (n < 0)
			return (int)n;
		if (nl_msg_fits(nlh, (int)n) && is_our_error(t, nlh, &err))
			return err;
		t->stats.datagrams++;
		t->stats.foreign++;
	}
}

static int request_cpus(struct tstats *t, uint16_t attr_type, uint16_t flags)
{
	struct nlmsghdr *nlh =
		put_genl(t, t->family_id, flags, TASKSTATS_CMD_GET, TASKSTATS_GENL_VERSION);

	if (!mnl_attr_put_strz_check(nlh, sizeof(t->buf), attr_type, t->cpus))
		return -E2BIG;
	return send_request(t, nlh);
}

static int register_cpus(struct tstats *t)
{
	int64_t deadline = now_ms() + TSTATS_REPLY_MS;
	int r;

	r = read_cpus(t->cpus, sizeof(t->cpus));
	if (r < 0)
		return r;
	r = request_cpus(t, TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, NLM_F_ACK);
	if (r < 0)
		return r;
	/* From here the kernel may hold our port id; deregister even if the ack is lost. */
	t->registered = true;
	return wait_ack(t, deadline);
}

int tstats_open(struct tstats **ret, size_t rcvbuf, unsigned flags)
{
	struct tstats *t = NULL;
	int r;

	assert(ret);
	if (flags & ~TSTATS_OPEN_DEFAULT)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	r = nl_open(NETLINK_GENERIC, 0, rcvbuf, &t->nl);
	if (r < 0)
		goto out;
	r = resolve_family(t);
	if (r < 0)
		goto out;
	r = check_init_netns();
	if (r < 0)
		goto out;
	r = register_cpus(t);
	if (r < 0)
		goto out;
	*ret = t;
	t = NULL;
	r = 0;
out:
	tstats_free(t);
	return r;
}

struct tstats *tstats_free(struct tstats *t)
{
	int saved_errno = errno;

	if (t) {
		if (t->nl) {
			/*
			 * The kernel drops a listener only when a send to it fails
			 * with ECONNREFUSED; until then a new socket given the same
			 * port id would receive our records.
			 */
			if (t->registered)
				(void)request_cpus(t, TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK, 0);
			mnl_socket_close(t->nl);
		}
		free(t);
	}
	errno = saved_errno;
	return NULL;
}

int tstats_get_fd(const struct tstats *t)
{
	assert(t);
	return mnl_socket_get_fd(t->nl);
}

const struct tstats_stats *tstats_get_stats(const struct tstats *t)
{
	assert(t);
	return &t->stats;
}

struct receive_ctx {
	struct tstats *t;
	tstats_record_cb cb;
	void *userdata;
};

static int receive_datagram(void *ctx, const void *buf, size_t len, uint32_t sender)
{
	struct receive_ctx *x = ctx;
	return tstats_decode(buf, len, sender, x->t->family_id, &x->t->stats, x->cb, x->userdata);
}

int tstats_receive(struct tstats *t, tstats_record_cb cb, void *userdata, bool *ret_lost)
{
	struct receive_ctx x = {t, cb, userdata};
	bool overrun = false;
	int r;

	assert(t);
	r = nl_receive(mnl_socket_get_fd(t->nl), t->buf, sizeof(t->buf), TSTATS_RECEIVE_BATCH,
		       &t->stats.datagrams, &t->stats.malformed, &t->stats.overruns,
		       receive_datagram, &x, &overrun);
	if (ret_lost)
		*ret_lost = overrun;
	return r;
}
