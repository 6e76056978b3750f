/* SPDX-License-Identifier: MIT */
/*
 * cnproc: a client of the kernel's proc connector.  See cnproc.h.
 *
 * Wire format of one event datagram, as the kernel builds it in
 * cn_netlink_send_mult(): struct nlmsghdr (type NLMSG_DONE, pid 0), then
 * struct cn_msg (20 bytes), then cn_msg.len bytes of struct proc_event.
 * The proc_event therefore starts 36 bytes into the datagram and its u64
 * timestamp is not 8-aligned: everything is read with memcpy() into local
 * structs.
 */
#include <assert.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <libmnl/libmnl.h>

#include "cnfilter.h"
#include "cnproc.h"
#include "nlutil.h"

/* Large enough for any datagram the connector sends, with room to spare. */
#define CNPROC_RECV_BUF (64u * 1024u)

/* The part of struct proc_event every kind carries: what, cpu, timestamp. */
#define PE_HDR_LEN offsetof(struct proc_event, event_data)
#define PE_DATA_SIZE(member) sizeof(((struct proc_event *)NULL)->event_data.member)

static_assert(sizeof(struct cn_msg) == 20, "cn_msg layout");
static_assert(PE_HDR_LEN == 16, "proc_event layout");

/*
 * struct proc_input of Linux 6.6+, which the 6.1 headers lack.  Kernels
 * before 6.6 accept only a request of exactly sizeof(enum proc_cn_mcast_op)
 * bytes and drop this one without a reply (cn_proc_mcast_ctl()).
 */
struct cnproc_input {
	uint32_t mcast_op;
	uint32_t event_type;
};

struct cnproc {
	struct mnl_socket *nl;
	uint32_t req_seq;
	unsigned op_listens;              /* LISTENs sent in the OP form, less IGNOREs */
	bool input_listening;             /* the last INPUT-form request was a LISTEN */
	bool thread_filter;               /* a socket filter drops thread events */
	struct cnfilter *tree;            /* the eBPF tree filter, or NULL */
	struct cnfilter_counts tree_seen; /* its counts, as last reported */
	struct cnproc_stats stats;
	struct cnproc_seq seq;
	alignas(struct nlmsghdr) uint8_t buf[CNPROC_RECV_BUF];
};

/* What a decoded message is handed to. */
struct sink {
	struct cnproc_stats *stats;
	struct cnproc_seq *seq;
	cnproc_event_cb cb;
	void *userdata;
};

/*
 * How many bytes of event_data each known kind must carry.  The parent
 * fields of EXIT and COREDUMP are newer than the rest (4.9 does not have
 * them), so only the older prefix is required and absent parents read as 0.
 */
static const struct what_info {
	uint32_t what;
	enum cnproc_kind kind;
	size_t need;
} what_table[] = {
	{PROC_EVENT_NONE, CNPROC_ACK, PE_DATA_SIZE(ack)},
	{PROC_EVENT_FORK, CNPROC_FORK, PE_DATA_SIZE(fork)},
	{PROC_EVENT_EXEC, CNPROC_EXEC, PE_DATA_SIZE(exec)},
	{PROC_EVENT_UID, CNPROC_UID, PE_DATA_SIZE(id)},
	{PROC_EVENT_GID, CNPROC_GID, PE_DATA_SIZE(id)},
	{PROC_EVENT_SID, CNPROC_SID, PE_DATA_SIZE(sid)},
	{PROC_EVENT_PTRACE, CNPROC_PTRACE, PE_DATA_SIZE(ptrace)},
	{PROC_EVENT_COMM, CNPROC_COMM, PE_DATA_SIZE(comm)},
	{PROC_EVENT_COREDUMP, CNPROC_COREDUMP, offsetof(struct coredump_proc_event, parent_pid)},
	{(uint32_t)PROC_EVENT_EXIT, CNPROC_EXIT, offsetof(struct exit_proc_event, parent_pid)},
};

static const struct what_info *what_lookup(uint32_t what)
{
	static const struct what_info unknown = {0, CNPROC_UNKNOWN, 0};

	for (size_t i = 0; i < sizeof(what_table) / sizeof(what_table[0]); i++)
		if (what_table[i].what == what)
			return &what_table[i];
	return &unknown;
}

/*
 * The kernel numbers messages from a per-CPU counter (send_msg(): seq =
 * __this_cpu_inc_return(...) - 1) and sends them with preemption off, so one
 * CPU's messages reach us in order and a skipped number is a lost message.
 */
static void seq_track(struct cnproc_seq *s, struct cnproc_stats *stats, uint32_t cpu,
		      uint32_t seqno)
{
	uint32_t diff;

	if (!s || !s->enabled || cpu >= CNPROC_MAX_CPUS)
		return;
	if (s->seen[cpu]) {
		diff = seqno - s->next[cpu];
		/* Behind (diff >= 2^31): a restarted or reordered stream; resync only. */
		if (diff != 0 && diff < UINT32_C(0x80000000)) {
			stats->seq_gaps++;
			stats->seq_missing += diff;
		}
	}
	s->seen[cpu] = 1;
	s->next[cpu] = seqno + 1;
}

static void set_task(struct cnproc_event *ev, pid_t pid, pid_t tgid)
{
	ev->pid = pid;
	ev->tgid = tgid;
}

static void set_parent(struct cnproc_event *ev, pid_t pid, pid_t tgid)
{
	ev->parent_pid = pid;
	ev->parent_tgid = tgid;
}

/* @pe is zero beyond what the message carried. */
static void fill_data(struct cnproc_event *ev, const struct proc_event *pe)
{
	const __typeof__(pe->event_data) *d = &pe->event_data;

	switch (ev->kind) {
	case CNPROC_ACK:
		ev->ack_err = d->ack.err;
		break;
	case CNPROC_FORK:
		set_task(ev, d->fork.child_pid, d->fork.child_tgid);
		set_parent(ev, d->fork.parent_pid, d->fork.parent_tgid);
		break;
	case CNPROC_EXEC:
		set_task(ev, d->exec.process_pid, d->exec.process_tgid);
		break;
	case CNPROC_UID:
	case CNPROC_GID:
		set_task(ev, d->id.process_pid, d->id.process_tgid);
		break;
	case CNPROC_SID:
		set_task(ev, d->sid.process_pid, d->sid.process_tgid);
		break;
	case CNPROC_PTRACE:
		set_task(ev, d->ptrace.process_pid, d->ptrace.process_tgid);
		break;
	case CNPROC_COMM:
		set_task(ev, d->comm.process_pid, d->comm.process_tgid);
		memcpy(ev->comm, d->comm.comm, sizeof(ev->comm));
		ev->comm[sizeof(ev->comm) - 1] = '\0';
		break;
	case CNPROC_COREDUMP:
		set_task(ev, d->coredump.process_pid, d->coredump.process_tgid);
		set_parent(ev, d->coredump.parent_pid, d->coredump.parent_tgid);
		break;
	case CNPROC_EXIT:
		set_task(ev, d->exit.process_pid, d->exit.process_tgid);
		set_parent(ev, d->exit.parent_pid, d->exit.parent_tgid);
		ev->exit_code = d->exit.exit_code;
		ev->exit_signal = d->exit.exit_signal;
		break;
	case CNPROC_UNKNOWN:
		break;
	}
}

/* @data/@len: the cn_msg payload, len already checked against the buffer. */
static int decode_event(const struct sink *k, const uint8_t *data, size_t len, uint32_t seqno)
{
	const struct what_info *wi;
	struct cnproc_event ev = {0};
	struct proc_event pe;
	uint32_t what;

	if (len < PE_HDR_LEN) {
		k->stats->malformed++;
		return 0;
	}
	/* 'what' is read as a plain u32: the enum has no value for unknown kinds. */
	memcpy(&what, data, sizeof(what));
	wi = what_lookup(what);
	if (len - PE_HDR_LEN < wi->need) {
		k->stats->malformed++;
		return 0;
	}
	memset(&pe, 0, sizeof(pe));
	memcpy(&pe, data, len < sizeof(pe) ? len : sizeof(pe));

	ev.kind = wi->kind;
	ev.raw_what = what;
	ev.cpu = pe.cpu;
	ev.timestamp_ns = pe.timestamp_ns;
	fill_data(&ev, &pe);

	/* ACKs too: cn_proc_ack() numbers them with send_msg() like events. */
	seq_track(k->seq, k->stats, ev.cpu, seqno);
	k->stats->events++;
	if (k->cb) {
		int r = k->cb(&ev, k->userdata);
		if (r < 0)
			return r;
	}
	return 1;
}

/* @p/@len: the payload of one NLMSG_DONE message. */
static int decode_cn(const struct sink *k, const uint8_t *p, size_t len)
{
	struct cn_msg cn;

	if (len < sizeof(cn)) {
		k->stats->malformed++;
		return 0;
	}
	memcpy(&cn, p, sizeof(cn));
	if (cn.id.idx != CN_IDX_PROC || cn.id.val != CN_VAL_PROC) {
		k->stats->foreign++;
		return 0;
	}
	if (cn.len > len - sizeof(cn)) {
		k->stats->malformed++;
		return 0;
	}
	return decode_event(k, p + sizeof(cn), cn.len, cn.seq);
}

static int decode_msg(const struct sink *k, const struct nlmsghdr *hdr, const uint8_t *payload)
{
	switch (hdr->nlmsg_type) {
	case NLMSG_DONE:
		/* The connector marks every message DONE; it is not an end of stream. */
		return decode_cn(k, payload, hdr->nlmsg_len - NLMSG_HDRLEN);
	case NLMSG_NOOP:
		return 0;
	default:
		/* The connector sends nothing else, NLMSG_ERROR included. */
		k->stats->malformed++;
		return 0;
	}
}

static int walk_msg(const void *ctx, const struct nlmsghdr *hdr, const uint8_t *payload)
{
	return decode_msg(ctx, hdr, payload);
}

int cnproc_decode(const void *buf, size_t len, uint32_t sender, struct cnproc_stats *stats,
		  struct cnproc_seq *seq, cnproc_event_cb cb, void *userdata)
{
	const struct sink k = {stats, seq, cb, userdata};

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

int cnproc_open(struct cnproc **ret, size_t rcvbuf, unsigned flags)
{
	struct cnproc *c = NULL;
	int r;

	assert(ret);
	if (flags & ~CNPROC_OPEN_DEFAULT)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r = nl_open(NETLINK_CONNECTOR, CN_IDX_PROC, rcvbuf, &c->nl);
	if (r < 0)
		goto out;
	*ret = c;
	c = NULL;
	r = 0;
out:
	cnproc_free(c);
	return r;
}

/*
 * The kernel counts listeners globally and does not drop the count when a
 * socket closes (cn_release() frees only the 6.6+ filter), so a leaked count
 * keeps every fork on the machine generating events.  Undo each LISTEN in the
 * form it was sent: before 6.6 an OP-form IGNORE decrements unconditionally
 * (one too many would silence another listener) and an INPUT-form request
 * is dropped; from 6.6 state is per socket and extra IGNOREs are no-ops.
 */
static void unsubscribe_all(struct cnproc *c)
{
	if (c->input_listening)
		(void)cnproc_subscribe(c, CNPROC_FORM_INPUT, false, 0);
	while (c->op_listens > 0)
		if (cnproc_subscribe(c, CNPROC_FORM_OP, false, 0) < 0)
			break;
}

struct cnproc *cnproc_free(struct cnproc *c)
{
	int saved_errno = errno;

	if (c) {
		if (c->nl) {
			unsubscribe_all(c);
			mnl_socket_close(c->nl);
		}
		cnfilter_free(c->tree);
		free(c);
	}
	errno = saved_errno;
	return NULL;
}

int cnproc_get_fd(const struct cnproc *c)
{
	assert(c);
	return mnl_socket_get_fd(c->nl);
}

const struct cnproc_stats *cnproc_get_stats(const struct cnproc *c)
{
	assert(c);
	return &c->stats;
}

/* Gap detection restarts clean whenever it is turned on. */
static void seq_configure(struct cnproc_seq *s, bool enable)
{
	if (enable && !s->enabled)
		memset(s->seen, 0, sizeof(s->seen));
	s->enabled = enable;
}

/* What cnproc_free() must undo; see unsubscribe_all(). */
static void note_request(struct cnproc *c, enum cnproc_form form, bool listen)
{
	if (form == CNPROC_FORM_INPUT)
		c->input_listening = listen;
	else if (listen)
		c->op_listens++;
	else if (c->op_listens > 0)
		c->op_listens--;
}

/* The request: nlmsghdr, then cn_msg addressed to the proc connector, then @payload. */
static struct nlmsghdr *put_request(void *buf, uint32_t portid, uint32_t seqno, const void *payload,
				    size_t plen)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct cn_msg *cn;

	nlh->nlmsg_type = NLMSG_DONE;
	nlh->nlmsg_pid = portid;
	nlh->nlmsg_seq = seqno;
	cn = mnl_nlmsg_put_extra_header(nlh, sizeof(*cn) + plen);
	cn->id.idx = CN_IDX_PROC;
	cn->id.val = CN_VAL_PROC;
	cn->seq = seqno;
	cn->ack = 0;
	cn->len = (uint16_t)plen;
	memcpy(cn->data, payload, plen);
	return nlh;
}

int cnproc_subscribe(struct cnproc *c, enum cnproc_form form, bool listen, uint32_t event_mask)
{
	enum { REQ_SIZE = NLMSG_SPACE(sizeof(struct cn_msg) + sizeof(struct cnproc_input)) };
	alignas(struct nlmsghdr) uint8_t buf[REQ_SIZE];
	uint32_t op = listen ? PROC_CN_MCAST_LISTEN : PROC_CN_MCAST_IGNORE;
	/* 6.6+ masks event_type with PROC_EVENT_ALL, so ~0 means "all". */
	struct cnproc_input in = {.mcast_op = op, .event_type = event_mask};
	struct nlmsghdr *nlh;

	assert(c);
	if (form == CNPROC_FORM_INPUT)
		nlh = put_request(buf, mnl_socket_get_portid(c->nl), ++c->req_seq, &in, sizeof(in));
	else if (form == CNPROC_FORM_OP)
		nlh = put_request(buf, mnl_socket_get_portid(c->nl), ++c->req_seq, &op, sizeof(op));
	else
		return -EINVAL;
	if (mnl_socket_sendto(c->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	note_request(c, form, listen);
	/* The OP form means "all events", also on 6.6+ after a filtered INPUT. */
	seq_configure(&c->seq, listen && !c->thread_filter &&
				       (form == CNPROC_FORM_OP || event_mask == CNPROC_EVENTS_ALL));
	return 0;
}

/* Offsets in a datagram of one proc-connector message: nlmsghdr (16),
 * cn_msg (20), then struct proc_event: what at 0, event_data at 16. */
#define OFF_WHAT 36u
#define OFF_FORK_CHILD_PID 60u
#define OFF_FORK_CHILD_TGID 64u
#define OFF_EXIT_PID 52u
#define OFF_EXIT_TGID 56u
_Static_assert(NLMSG_HDRLEN + sizeof(struct cn_msg) == OFF_WHAT, "cn_msg data offset");
_Static_assert(OFF_WHAT + offsetof(struct proc_event, event_data.fork.child_tgid) ==
		       OFF_FORK_CHILD_TGID,
	       "fork child_tgid offset");
_Static_assert(OFF_WHAT + offsetof(struct proc_event, event_data.exit.process_tgid) ==
		       OFF_EXIT_TGID,
	       "exit process_tgid offset");

/* Classic BPF loads words in network byte order; the kernel writes 'what'
 * in host order. */
static uint32_t as_loaded(uint32_t host)
{
	return ntohl(host);
}

int cnproc_drop_thread_events(struct cnproc *c)
{
	struct sock_filter prog[] = {
		/* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, OFF_WHAT),
		/* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, as_loaded(PROC_EVENT_FORK), 0, 4),
		/* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, OFF_FORK_CHILD_PID),
		/* 3 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
		/* 4 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, OFF_FORK_CHILD_TGID),
		/* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_X, 0, 5, 6),
		/* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, as_loaded(PROC_EVENT_EXIT), 0, 4),
		/* 7 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, OFF_EXIT_PID),
		/* 8 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
		/* 9 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, OFF_EXIT_TGID),
		/* 10 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_X, 0, 0, 1),
		/* 11 */ BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),
		/* 12 */ BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog fprog = {.len = sizeof(prog) / sizeof(prog[0]), .filter = prog};

	assert(c);
	if (setsockopt(mnl_socket_get_fd(c->nl), SOL_SOCKET, SO_ATTACH_FILTER, &fprog,
		       sizeof(fprog)) < 0)
		return -errno;
	/* Dropped events leave holes in the sequence numbers. */
	c->thread_filter = true;
	seq_configure(&c->seq, false);
	return 0;
}

int cnproc_filter_tree(struct cnproc *c, pid_t self)
{
	struct cnfilter *f = NULL;
	int r;

	assert(c && !c->tree);
	r = cnfilter_attach(mnl_socket_get_fd(c->nl), &f);
	if (r < 0)
		return r;
	r = cnfilter_add(f, self);
	if (r < 0) {
		/* Attached but empty: it would drop everything. */
		(void)setsockopt(mnl_socket_get_fd(c->nl), SOL_SOCKET, SO_DETACH_FILTER, NULL, 0);
		goto out;
	}
	c->tree = f;
	f = NULL;
	cnfilter_get_counts(c->tree, &c->tree_seen);
	/* It drops threads too; and user space sees too few events to judge
	 * the sequence numbers: the filter counts the gaps. */
	c->thread_filter = true;
	seq_configure(&c->seq, false);
	r = 0; /* cnfilter_add() says 1 for "added" */
out:
	cnfilter_free(f);
	return r;
}

int cnproc_tree_filter_taskstats(struct cnproc *c, int fd)
{
	return c->tree ? cnfilter_attach_taskstats(c->tree, fd) : -ENOTCONN;
}

bool cnproc_tree_filtered(const struct cnproc *c)
{
	return c->tree != NULL;
}

bool cnproc_tree_passing_all(const struct cnproc *c)
{
	struct cnfilter_counts n;

	if (!c->tree)
		return true;
	cnfilter_get_counts(c->tree, &n);
	return n.pass_all;
}

int cnproc_tree_add(struct cnproc *c, pid_t tgid)
{
	return c->tree ? cnfilter_add(c->tree, tgid) : 0;
}

int cnproc_tree_remove(struct cnproc *c, pid_t tgid, cnfilter_keep_fn keep, void *userdata)
{
	return c->tree ? cnfilter_remove(c->tree, tgid, keep, userdata) : 0;
}

int cnproc_tree_contains(struct cnproc *c, pid_t tgid)
{
	return c->tree ? cnfilter_contains(c->tree, tgid) : 0;
}

/* The gaps the tree filter counted since the last look, as ours. */
static bool tree_gaps(struct cnproc *c)
{
	struct cnfilter_counts n;

	if (!c->tree)
		return false;
	cnfilter_get_counts(c->tree, &n);
	if (n.gaps == c->tree_seen.gaps)
		return false;
	c->stats.seq_gaps += n.gaps - c->tree_seen.gaps;
	c->stats.seq_missing += n.missing - c->tree_seen.missing;
	c->tree_seen = n;
	return true;
}

struct receive_ctx {
	struct cnproc *c;
	cnproc_event_cb cb;
	void *userdata;
};

static int receive_datagram(void *ctx, const void *buf, size_t len, uint32_t sender)
{
	struct receive_ctx *x = ctx;
	return cnproc_decode(buf, len, sender, &x->c->stats, &x->c->seq, x->cb, x->userdata);
}

int cnproc_receive(struct cnproc *c, cnproc_event_cb cb, void *userdata, bool *ret_lost)
{
	struct receive_ctx x = {c, cb, userdata};
	bool overrun = false;
	uint64_t gaps_before;
	int r;

	assert(c);
	gaps_before = c->stats.seq_gaps;
	r = nl_receive(mnl_socket_get_fd(c->nl), c->buf, sizeof(c->buf), CNPROC_RECEIVE_BATCH,
		       &c->stats.datagrams, &c->stats.malformed, &c->stats.overruns,
		       receive_datagram, &x, &overrun);
	/* After the reading: the event that woke us may be the one that
	 * carried the news of a gap. */
	tree_gaps(c);
	if (ret_lost)
		*ret_lost = overrun || c->stats.seq_gaps != gaps_before;
	return r;
}

const char *cnproc_kind_name(enum cnproc_kind kind)
{
	static const char *const names[] = {
		[CNPROC_ACK] = "ack",           [CNPROC_FORK] = "fork",
		[CNPROC_EXEC] = "exec",         [CNPROC_UID] = "uid",
		[CNPROC_GID] = "gid",           [CNPROC_SID] = "sid",
		[CNPROC_PTRACE] = "ptrace",     [CNPROC_COMM] = "comm",
		[CNPROC_COREDUMP] = "coredump", [CNPROC_EXIT] = "exit",
		[CNPROC_UNKNOWN] = "unknown",
	};

	if ((unsigned)kind >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[kind];
}
