/* SPDX-License-Identifier: MIT */
/*
 * Tests of netlink/cnproc: the decoder on datagrams built here, byte by byte,
 * and two live tests on the real proc connector that skip when it is not
 * available.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>

#include "cnproc.h"

/* ---- datagram builder ---------------------------------------------------- */

struct dgram {
	alignas(8) uint8_t b[4096];
	size_t len;
};

static const struct cb_id proc_id = {CN_IDX_PROC, CN_VAL_PROC};

/*
 * Append one netlink message: nlmsghdr of @type, cn_msg with @id, @seq and
 * @cn_len, then @dlen bytes of @data.  nlmsg_len covers exactly what is
 * written; the datagram is padded to NLMSG_ALIGNTO as the kernel does.
 */
static void put_raw(struct dgram *d, uint16_t type, struct cb_id id, uint32_t seq, uint16_t cn_len,
		    const void *data, size_t dlen)
{
	struct nlmsghdr nh = {
		.nlmsg_len = (uint32_t)(NLMSG_HDRLEN + sizeof(struct cn_msg) + dlen),
		.nlmsg_type = type,
		.nlmsg_seq = seq,
	};
	struct cn_msg cn = {.id = id, .seq = seq, .len = cn_len};

	assert_true(d->len + NLMSG_ALIGN(nh.nlmsg_len) <= sizeof(d->b));
	memset(d->b + d->len, 0, NLMSG_ALIGN(nh.nlmsg_len));
	memcpy(d->b + d->len, &nh, sizeof(nh));
	memcpy(d->b + d->len + NLMSG_HDRLEN, &cn, sizeof(cn));
	if (dlen)
		memcpy(d->b + d->len + NLMSG_HDRLEN + sizeof(cn), data, dlen);
	d->len += NLMSG_ALIGN(nh.nlmsg_len);
}

/* A well-formed event message, as the kernel sends it. */
static void put_event(struct dgram *d, const struct proc_event *pe, uint32_t seq)
{
	put_raw(d, NLMSG_DONE, proc_id, seq, sizeof(*pe), pe, sizeof(*pe));
}

static struct proc_event mk(uint32_t what, uint32_t cpu)
{
	struct proc_event pe;

	memset(&pe, 0, sizeof(pe));
	pe.what = what;
	pe.cpu = cpu;
	pe.timestamp_ns = 123456789ull;
	return pe;
}

static struct proc_event mk_fork(pid_t ppid, pid_t ptgid, pid_t pid, pid_t tgid)
{
	struct proc_event pe = mk(PROC_EVENT_FORK, 1);

	pe.event_data.fork.parent_pid = ppid;
	pe.event_data.fork.parent_tgid = ptgid;
	pe.event_data.fork.child_pid = pid;
	pe.event_data.fork.child_tgid = tgid;
	return pe;
}

/* ---- event sink ------------------------------------------------------------ */

#define SINK_MAX 16
struct sink {
	struct cnproc_event ev[SINK_MAX];
	int n;
	int stop_at; /* return -ECANCELED on the stop_at-th event; 0: never */
};

static int sink_cb(const struct cnproc_event *ev, void *userdata)
{
	struct sink *s = userdata;

	if (s->n < SINK_MAX)
		s->ev[s->n] = *ev;
	s->n++;
	if (s->stop_at && s->n >= s->stop_at)
		return -ECANCELED;
	return 0;
}

struct run {
	struct cnproc_stats st;
	struct sink sink;
	int r;
};

static void decode(struct run *x, const void *buf, size_t len, uint32_t sender)
{
	x->r = cnproc_decode(buf, len, sender, &x->st, NULL, sink_cb, &x->sink);
}

/* One well-formed event in, one event out, nothing counted against it. */
static struct cnproc_event decode_one(const struct proc_event *pe)
{
	struct dgram d = {0};
	struct run x = {0};

	put_event(&d, pe, 7);
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, 1);
	assert_int_equal(x.sink.n, 1);
	assert_int_equal(x.st.datagrams, 1);
	assert_int_equal(x.st.events, 1);
	assert_int_equal(x.st.malformed, 0);
	assert_int_equal(x.st.foreign, 0);
	return x.sink.ev[0];
}

/* A datagram that must be dropped whole: nothing delivered, one count. */
static void expect_dropped(const void *buf, size_t len, uint32_t sender, bool foreign)
{
	struct run x = {0};

	decode(&x, buf, len, sender);
	assert_int_equal(x.r, 0);
	assert_int_equal(x.sink.n, 0);
	assert_int_equal(x.st.events, 0);
	assert_int_equal(x.st.foreign, foreign ? 1 : 0);
	assert_int_equal(x.st.malformed, foreign ? 0 : 1);
}

/* ---- decoding well-formed events ------------------------------------------- */

static void test_fork_process(void **state)
{
	struct proc_event pe = mk_fork(100, 100, 200, 200);
	struct cnproc_event ev = decode_one(&pe);

	assert_int_equal(ev.kind, CNPROC_FORK);
	assert_int_equal(ev.cpu, 1);
	assert_int_equal(ev.timestamp_ns, 123456789ull);
	assert_int_equal(ev.pid, 200);
	assert_int_equal(ev.tgid, 200);
	assert_int_equal(ev.parent_pid, 100);
	assert_int_equal(ev.parent_tgid, 100);
	assert_int_equal(ev.raw_what, PROC_EVENT_FORK);
}

static void test_fork_thread(void **state)
{
	struct proc_event pe = mk_fork(100, 100, 201, 200);
	struct cnproc_event ev = decode_one(&pe);

	assert_int_equal(ev.kind, CNPROC_FORK);
	assert_int_equal(ev.pid, 201);
	assert_int_equal(ev.tgid, 200);
	assert_int_not_equal(ev.pid, ev.tgid);
}

static void test_exec(void **state)
{
	struct proc_event pe = mk(PROC_EVENT_EXEC, 0);
	struct cnproc_event ev;

	pe.event_data.exec.process_pid = 301;
	pe.event_data.exec.process_tgid = 300;
	ev = decode_one(&pe);
	assert_int_equal(ev.kind, CNPROC_EXEC);
	assert_int_equal(ev.pid, 301);
	assert_int_equal(ev.tgid, 300);
	assert_int_equal(ev.parent_pid, 0);
}

static void test_exit(void **state)
{
	struct proc_event pe = mk(PROC_EVENT_EXIT, 0);
	struct cnproc_event ev;

	pe.event_data.exit.process_pid = 400;
	pe.event_data.exit.process_tgid = 400;
	pe.event_data.exit.exit_code = 0x0900; /* exited with status 9 */
	pe.event_data.exit.exit_signal = SIGCHLD;
	pe.event_data.exit.parent_pid = 10;
	pe.event_data.exit.parent_tgid = 11;
	ev = decode_one(&pe);
	assert_int_equal(ev.kind, CNPROC_EXIT);
	assert_int_equal(ev.pid, 400);
	assert_int_equal(ev.tgid, 400);
	assert_int_equal(ev.exit_code, 0x0900);
	assert_int_equal(ev.exit_signal, SIGCHLD);
	assert_int_equal(ev.parent_pid, 10);
	assert_int_equal(ev.parent_tgid, 11);
}

/* An EXIT without the parent fields (older layout): parents read as 0. */
static void test_exit_without_parents(void **state)
{
	struct proc_event pe = mk(PROC_EVENT_EXIT, 0);
	size_t len = offsetof(struct proc_event, event_data.exit.parent_pid);
	struct dgram d = {0};
	struct run x = {0};

	pe.event_data.exit.process_pid = 401;
	pe.event_data.exit.process_tgid = 401;
	pe.event_data.exit.exit_code = 9; /* killed by SIGKILL */
	pe.event_data.exit.exit_signal = SIGCHLD;
	pe.event_data.exit.parent_pid = 99; /* not sent */
	put_raw(&d, NLMSG_DONE, proc_id, 1, (uint16_t)len, &pe, len);
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, 1);
	assert_int_equal(x.sink.ev[0].exit_code, 9);
	assert_int_equal(x.sink.ev[0].exit_signal, SIGCHLD);
	assert_int_equal(x.sink.ev[0].parent_pid, 0);
	assert_int_equal(x.sink.ev[0].parent_tgid, 0);
}

static void test_comm_unterminated(void **state)
{
	struct proc_event pe = mk(PROC_EVENT_COMM, 0);
	struct cnproc_event ev;

	pe.event_data.comm.process_pid = 500;
	pe.event_data.comm.process_tgid = 500;
	memset(pe.event_data.comm.comm, 'A', sizeof(pe.event_data.comm.comm));
	ev = decode_one(&pe);
	assert_int_equal(ev.kind, CNPROC_COMM);
	assert_int_equal(ev.pid, 500);
	assert_int_equal(strlen(ev.comm), 15);
	assert_string_equal(ev.comm, "AAAAAAAAAAAAAAA");
}

static void test_comm_short_name(void **state)
{
	struct proc_event pe = mk(PROC_EVENT_COMM, 0);

	strcpy(pe.event_data.comm.comm, "bash");
	assert_string_equal(decode_one(&pe).comm, "bash");
}

static void test_ack(void **state)
{
	struct proc_event pe = mk(PROC_EVENT_NONE, 0);
	struct cnproc_event ev;

	pe.event_data.ack.err = EPERM;
	ev = decode_one(&pe);
	assert_int_equal(ev.kind, CNPROC_ACK);
	assert_int_equal(ev.ack_err, EPERM);
	assert_int_equal(ev.pid, 0);
}

static void test_other_known_kinds(void **state)
{
	static const struct {
		uint32_t what;
		enum cnproc_kind kind;
	} cases[] = {
		{PROC_EVENT_UID, CNPROC_UID},           {PROC_EVENT_GID, CNPROC_GID},
		{PROC_EVENT_SID, CNPROC_SID},           {PROC_EVENT_PTRACE, CNPROC_PTRACE},
		{PROC_EVENT_COREDUMP, CNPROC_COREDUMP},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct proc_event pe = mk(cases[i].what, 0);
		struct cnproc_event ev;

		/* process_pid/tgid lead every one of these union members */
		pe.event_data.id.process_pid = 600 + (pid_t)i;
		pe.event_data.id.process_tgid = 700 + (pid_t)i;
		ev = decode_one(&pe);
		assert_int_equal(ev.kind, cases[i].kind);
		assert_int_equal(ev.pid, 600 + (pid_t)i);
		assert_int_equal(ev.tgid, 700 + (pid_t)i);
	}
}

static void test_unknown_what(void **state)
{
	struct proc_event pe = mk(0x400, 3);
	struct cnproc_event ev = decode_one(&pe);
	struct dgram d = {0};
	struct run x = {0};

	assert_int_equal(ev.kind, CNPROC_UNKNOWN);
	assert_int_equal(ev.raw_what, 0x400);
	assert_int_equal(ev.cpu, 3);

	/* The fixed header alone is enough for a kind we do not know. */
	put_raw(&d, NLMSG_DONE, proc_id, 1, 16, &pe, 16);
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, 1);
	assert_int_equal(x.sink.ev[0].kind, CNPROC_UNKNOWN);
}

/* A future kernel may grow proc_event; the extra bytes are ignored. */
static void test_longer_event_accepted(void **state)
{
	uint8_t big[sizeof(struct proc_event) + 8] = {0};
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct dgram d = {0};
	struct run x = {0};

	memcpy(big, &pe, sizeof(pe));
	put_raw(&d, NLMSG_DONE, proc_id, 1, sizeof(big), big, sizeof(big));
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, 1);
	assert_int_equal(x.sink.ev[0].pid, 2);
}

static void test_several_in_one_datagram(void **state)
{
	struct proc_event f = mk_fork(1, 1, 2, 2), e = mk(PROC_EVENT_EXEC, 0),
			  x_ = mk(PROC_EVENT_EXIT, 0);
	struct dgram d = {0};
	struct run x = {0};

	e.event_data.exec.process_pid = 2;
	x_.event_data.exit.process_pid = 2;
	put_event(&d, &f, 1);
	put_event(&d, &e, 2);
	put_event(&d, &x_, 3);
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, 3);
	assert_int_equal(x.sink.n, 3);
	assert_int_equal(x.sink.ev[0].kind, CNPROC_FORK);
	assert_int_equal(x.sink.ev[1].kind, CNPROC_EXEC);
	assert_int_equal(x.sink.ev[2].kind, CNPROC_EXIT);
	assert_int_equal(x.st.datagrams, 1);
	assert_int_equal(x.st.events, 3);
}

static void test_noop_skipped(void **state)
{
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct dgram d = {0};
	struct run x = {0};

	put_raw(&d, NLMSG_NOOP, proc_id, 1, 0, NULL, 0);
	put_event(&d, &pe, 2);
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, 1);
	assert_int_equal(x.st.malformed, 0);
}

/* The connector never sends NLMSG_ERROR; it is counted, later messages still decode. */
static void test_error_type_counted(void **state)
{
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct dgram d = {0};
	struct run x = {0};

	put_raw(&d, NLMSG_ERROR, proc_id, 1, 0, NULL, 0);
	put_event(&d, &pe, 2);
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, 1);
	assert_int_equal(x.st.malformed, 1);
}

/* ---- what is not ours -------------------------------------------------------- */

static void test_wrong_sender(void **state)
{
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct dgram d = {0};

	put_event(&d, &pe, 1);
	put_event(&d, &pe, 2);
	expect_dropped(d.b, d.len, 4242, true);
	expect_dropped(d.b, d.len, UINT32_MAX, true);
}

static void test_wrong_connector_id(void **state)
{
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct dgram d1 = {0}, d2 = {0}, d3 = {0};
	struct run x = {0};

	put_raw(&d1, NLMSG_DONE, (struct cb_id){CN_IDX_PROC + 1, CN_VAL_PROC}, 1, sizeof(pe), &pe,
		sizeof(pe));
	expect_dropped(d1.b, d1.len, 0, true);
	put_raw(&d2, NLMSG_DONE, (struct cb_id){CN_IDX_PROC, CN_VAL_PROC + 1}, 1, sizeof(pe), &pe,
		sizeof(pe));
	expect_dropped(d2.b, d2.len, 0, true);

	/* A foreign message does not hide the proc messages next to it. */
	memcpy(d3.b, d1.b, d1.len);
	d3.len = d1.len;
	put_event(&d3, &pe, 2);
	decode(&x, d3.b, d3.len, 0);
	assert_int_equal(x.r, 1);
	assert_int_equal(x.st.foreign, 1);
}

/* ---- broken lengths ------------------------------------------------------------ */

static void test_truncated_nlmsghdr(void **state)
{
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct dgram d = {0};

	put_event(&d, &pe, 1);
	for (size_t len = 1; len < NLMSG_HDRLEN; len++)
		expect_dropped(d.b, len, 0, false);
}

static void test_truncated_cn_msg(void **state)
{
	struct dgram d = {0};
	struct nlmsghdr nh = {.nlmsg_len = NLMSG_HDRLEN + 10, .nlmsg_type = NLMSG_DONE};

	memcpy(d.b, &nh, sizeof(nh));
	memcpy(d.b + NLMSG_HDRLEN, &proc_id, sizeof(proc_id));
	expect_dropped(d.b, NLMSG_ALIGN(nh.nlmsg_len), 0, false);
}

static void test_cn_len_beyond_buffer(void **state)
{
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct dgram d = {0};

	put_raw(&d, NLMSG_DONE, proc_id, 1, sizeof(pe) + 1, &pe, sizeof(pe));
	expect_dropped(d.b, d.len, 0, false);
	d.len = 0;
	put_raw(&d, NLMSG_DONE, proc_id, 1, UINT16_MAX, &pe, sizeof(pe));
	expect_dropped(d.b, d.len, 0, false);
}

static void test_event_shorter_than_member(void **state)
{
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct proc_event comm = mk(PROC_EVENT_COMM, 0);
	struct proc_event ack = mk(PROC_EVENT_NONE, 0);
	struct dgram d = {0};

	/* FORK needs 16 bytes of event_data; send 8. */
	put_raw(&d, NLMSG_DONE, proc_id, 1, 16 + 8, &pe, 16 + 8);
	expect_dropped(d.b, d.len, 0, false);
	/* COMM needs all 24. */
	d.len = 0;
	put_raw(&d, NLMSG_DONE, proc_id, 1, 16 + 23, &comm, 16 + 23);
	expect_dropped(d.b, d.len, 0, false);
	/* Less than the fixed header, even for the 4-byte ACK. */
	d.len = 0;
	put_raw(&d, NLMSG_DONE, proc_id, 1, 15, &ack, 15);
	expect_dropped(d.b, d.len, 0, false);
	/* cn_msg.len short although the buffer holds the whole event. */
	d.len = 0;
	put_raw(&d, NLMSG_DONE, proc_id, 1, 16 + 8, &pe, sizeof(pe));
	expect_dropped(d.b, d.len, 0, false);
}

static void test_nlmsg_len_beyond_buffer(void **state)
{
	/* 0x80000000 and up pass libmnl 1.0.4's own check (it compares as int). */
	static const uint32_t lens[] = {
		77, 80, 4096, 0x7fffffff, 0x80000000, 0xfffffff0, 0xfffffffd, 0xffffffff,
	};
	struct proc_event pe = mk_fork(1, 1, 2, 2);

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct dgram d = {0};
		struct nlmsghdr nh;

		put_event(&d, &pe, 1);
		memcpy(&nh, d.b, sizeof(nh));
		nh.nlmsg_len = lens[i];
		memcpy(d.b, &nh, sizeof(nh));
		expect_dropped(d.b, d.len, 0, false);
	}
}

static void test_nlmsg_len_too_small(void **state)
{
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct dgram d = {0};
	struct nlmsghdr nh;

	put_event(&d, &pe, 1);
	memcpy(&nh, d.b, sizeof(nh));
	nh.nlmsg_len = 0; /* would loop forever if taken at face value */
	memcpy(d.b, &nh, sizeof(nh));
	expect_dropped(d.b, d.len, 0, false);
}

static void test_zero_length(void **state)
{
	struct dgram d = {0};

	expect_dropped(d.b, 0, 0, false);
	expect_dropped(NULL, 0, 0, false);
}

/* An event is delivered; a stub too short for a header after it is counted. */
static void test_trailing_bytes(void **state)
{
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct dgram d = {0};
	struct run x = {0};

	put_event(&d, &pe, 1);
	d.len += 8;
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, 1);
	assert_int_equal(x.st.malformed, 1);
}

/* The last message without its alignment padding is still whole. */
static void test_unpadded_last_message(void **state)
{
	struct proc_event pe = mk(PROC_EVENT_COMM, 0);
	size_t len = offsetof(struct proc_event, event_data.comm.comm) + 15;
	struct dgram d = {0};
	struct run x = {0};

	/* COMM needs its 16 name bytes; with 15 the message is short (malformed). */
	put_raw(&d, NLMSG_DONE, proc_id, 1, (uint16_t)len, &pe, len);
	decode(&x, d.b, NLMSG_HDRLEN + sizeof(struct cn_msg) + len, 0);
	assert_int_equal(x.st.malformed, 1);

	pe = mk_fork(1, 1, 2, 2);
	memset(&x, 0, sizeof(x));
	d.len = 0;
	put_raw(&d, NLMSG_DONE, proc_id, 1, 16 + 16, &pe, 16 + 16 + 3); /* nlmsg_len 71 */
	decode(&x, d.b, NLMSG_HDRLEN + sizeof(struct cn_msg) + 16 + 16 + 3, 0);
	assert_int_equal(x.r, 1);
	assert_int_equal(x.st.malformed, 0);
}

/* Every prefix of a good datagram is handled without a crash or a false event. */
static void test_every_truncation(void **state)
{
	struct proc_event a = mk_fork(1, 1, 2, 2), b = mk(PROC_EVENT_EXIT, 0);
	struct dgram d = {0};

	put_event(&d, &a, 1);
	put_event(&d, &b, 2);
	for (size_t len = 0; len <= d.len; len++) {
		struct run x = {0};
		int whole = (len >= 76) + (len >= 152);

		decode(&x, d.b, len, 0);
		assert_int_equal(x.r, whole);
		assert_int_equal(x.st.malformed, (len == 76 || len == 152) ? 0 : 1);
	}
}

static void test_unaligned_buffer(void **state)
{
	struct proc_event pe = mk(PROC_EVENT_EXIT, 2);
	struct dgram d = {0};
	struct run x = {0};
	uint8_t *raw;

	pe.event_data.exit.process_pid = 77;
	pe.event_data.exit.exit_code = 256;
	put_event(&d, &pe, 1);
	put_event(&d, &pe, 2);
	for (size_t off = 1; off < 8; off++) {
		raw = malloc(d.len + off);
		assert_non_null(raw);
		memcpy(raw + off, d.b, d.len);
		memset(&x, 0, sizeof(x));
		decode(&x, raw + off, d.len, 0);
		free(raw);
		assert_int_equal(x.r, 2);
		assert_int_equal(x.sink.ev[1].pid, 77);
		assert_int_equal(x.sink.ev[1].exit_code, 256);
		assert_int_equal(x.sink.ev[1].timestamp_ns, 123456789ull);
	}
}

static void test_callback_stops(void **state)
{
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct dgram d = {0};
	struct run x = {0};

	put_event(&d, &pe, 1);
	put_event(&d, &pe, 2);
	put_event(&d, &pe, 3);
	x.sink.stop_at = 2;
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, -ECANCELED);
	assert_int_equal(x.sink.n, 2);
	assert_int_equal(x.st.events, 2);
}

static void test_null_callback(void **state)
{
	struct proc_event pe = mk_fork(1, 1, 2, 2);
	struct cnproc_stats st = {0};
	struct dgram d = {0};

	put_event(&d, &pe, 1);
	assert_int_equal(cnproc_decode(d.b, d.len, 0, &st, NULL, NULL, NULL), 1);
	assert_int_equal(st.events, 1);
}

/* ---- per-CPU sequence numbers ------------------------------------------------ */

struct seqrun {
	struct cnproc_stats st;
	struct cnproc_seq seq;
	struct sink sink;
};

static struct seqrun *seqrun_new(bool enabled)
{
	struct seqrun *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->seq.enabled = enabled;
	return s;
}

static void feed(struct seqrun *s, uint32_t what, uint32_t cpu, uint32_t seqno)
{
	struct proc_event pe = mk(what, cpu);
	struct dgram d = {0};

	put_event(&d, &pe, seqno);
	assert_int_equal(cnproc_decode(d.b, d.len, 0, &s->st, &s->seq, sink_cb, &s->sink), 1);
}

static void test_seq_consecutive(void **state)
{
	struct seqrun *s = seqrun_new(true);

	for (uint32_t i = 10; i < 20; i++) {
		feed(s, PROC_EVENT_FORK, 0, i);
		feed(s, PROC_EVENT_EXIT, 1, 1000 + i); /* CPUs count independently */
	}
	assert_int_equal(s->st.seq_gaps, 0);
	assert_int_equal(s->st.seq_missing, 0);
	free(s);
}

static void test_seq_gap(void **state)
{
	struct seqrun *s = seqrun_new(true);

	feed(s, PROC_EVENT_FORK, 0, 10);
	feed(s, PROC_EVENT_FORK, 0, 15); /* 11..14 lost */
	assert_int_equal(s->st.seq_gaps, 1);
	assert_int_equal(s->st.seq_missing, 4);
	feed(s, PROC_EVENT_FORK, 0, 16);
	assert_int_equal(s->st.seq_gaps, 1);
	feed(s, PROC_EVENT_FORK, 0, 18); /* 17 lost */
	assert_int_equal(s->st.seq_gaps, 2);
	assert_int_equal(s->st.seq_missing, 5);
	free(s);
}

static void test_seq_wraparound(void **state)
{
	struct seqrun *s = seqrun_new(true);

	feed(s, PROC_EVENT_FORK, 5, UINT32_MAX - 1);
	feed(s, PROC_EVENT_FORK, 5, UINT32_MAX);
	feed(s, PROC_EVENT_FORK, 5, 0);
	feed(s, PROC_EVENT_FORK, 5, 1);
	assert_int_equal(s->st.seq_gaps, 0);
	feed(s, PROC_EVENT_FORK, 6, UINT32_MAX);
	feed(s, PROC_EVENT_FORK, 6, 2); /* 0 and 1 lost across the wrap */
	assert_int_equal(s->st.seq_gaps, 1);
	assert_int_equal(s->st.seq_missing, 2);
	free(s);
}

static void test_seq_backwards_resyncs(void **state)
{
	struct seqrun *s = seqrun_new(true);

	feed(s, PROC_EVENT_FORK, 0, 100);
	feed(s, PROC_EVENT_FORK, 0, 50); /* behind: resync, not a gap */
	feed(s, PROC_EVENT_FORK, 0, 51);
	feed(s, PROC_EVENT_FORK, 0, 51); /* duplicate: behind */
	feed(s, PROC_EVENT_FORK, 0, 52);
	assert_int_equal(s->st.seq_gaps, 0);
	free(s);
}

static void test_seq_disabled(void **state)
{
	struct seqrun *s = seqrun_new(false);

	feed(s, PROC_EVENT_FORK, 0, 10);
	feed(s, PROC_EVENT_FORK, 0, 500);
	assert_int_equal(s->st.seq_gaps, 0);
	assert_int_equal(s->st.seq_missing, 0);
	free(s);
}

/*
 * ACKs.  Since cn_proc_ack() goes through send_msg() (4.9 and later), an ACK
 * takes the next number of its CPU's counter, like an event: skipping it
 * would turn every subscription on the system into a false gap.  Older
 * kernels sent it with cpu = -1 and seq = the request's: untracked.
 */
static void test_seq_ack(void **state)
{
	struct seqrun *s = seqrun_new(true);

	feed(s, PROC_EVENT_FORK, 0, 10);
	feed(s, PROC_EVENT_NONE, 0, 11); /* current kernels */
	feed(s, PROC_EVENT_FORK, 0, 12);
	assert_int_equal(s->st.seq_gaps, 0);
	feed(s, PROC_EVENT_NONE, UINT32_MAX, 999); /* old kernels */
	feed(s, PROC_EVENT_FORK, 0, 13);
	assert_int_equal(s->st.seq_gaps, 0);
	assert_int_equal(s->sink.ev[1].kind, CNPROC_ACK);
	free(s);
}

static void test_seq_cpu_out_of_range(void **state)
{
	struct seqrun *s = seqrun_new(true);

	feed(s, PROC_EVENT_FORK, CNPROC_MAX_CPUS, 1);
	feed(s, PROC_EVENT_FORK, CNPROC_MAX_CPUS, 100);
	feed(s, PROC_EVENT_FORK, UINT32_MAX, 7);
	feed(s, PROC_EVENT_FORK, CNPROC_MAX_CPUS - 1, 1);
	feed(s, PROC_EVENT_FORK, CNPROC_MAX_CPUS - 1, 3);
	assert_int_equal(s->st.seq_gaps, 1);
	assert_int_equal(s->sink.n, 5);
	free(s);
}

/* ---- small things ---------------------------------------------------------- */

static void test_kind_names(void **state)
{
	static const char *const want[] = {
		"ack",    "fork", "exec",     "uid",  "gid",     "sid",
		"ptrace", "comm", "coredump", "exit", "unknown",
	};

	for (int k = CNPROC_ACK; k <= CNPROC_UNKNOWN; k++)
		assert_string_equal(cnproc_kind_name((enum cnproc_kind)k), want[k]);
	assert_string_equal(cnproc_kind_name((enum cnproc_kind)99), "unknown");
}

static void test_open_bad_flags(void **state)
{
	struct cnproc *c = (struct cnproc *)(uintptr_t)1;

	assert_int_equal(cnproc_open(&c, 0, 0x80), -EINVAL);
	assert_ptr_equal(c, (struct cnproc *)(uintptr_t)1); /* untouched */
	assert_null(cnproc_free(NULL));
}

/* ---- the real connector ------------------------------------------------------- */

struct live {
	struct cnproc *c;
	pid_t child;
	pid_t want; /* the FORK event we wait for */
	bool got_fork;
	bool got_ack;
	int thread_forks; /* FORK events of threads of this process */
	int own_forks;    /* FORK events of this process's children */
	struct cnproc_event fork;
	pid_t want_parent; /* a FORK event whose parent this is */
	pid_t got_child;   /* ... and its child */
};

static int live_setup(void **state)
{
	struct live *l = calloc(1, sizeof(*l));

	if (!l)
		return -1;
	l->child = -1;
	*state = l;
	return 0;
}

static int live_teardown(void **state)
{
	struct live *l = *state;

	if (l->child > 0) {
		kill(l->child, SIGKILL);
		while (waitpid(l->child, NULL, 0) < 0 && errno == EINTR)
			;
	}
	cnproc_free(l->c);
	free(l);
	return 0;
}

static int live_cb(const struct cnproc_event *ev, void *userdata)
{
	struct live *l = userdata;

	if (ev->kind == CNPROC_ACK)
		l->got_ack = true;
	if (ev->kind == CNPROC_FORK && ev->pid != ev->tgid && ev->tgid == getpid())
		l->thread_forks++;
	if (ev->kind == CNPROC_FORK && ev->pid == ev->tgid && ev->parent_tgid == getpid())
		l->own_forks++;
	if (ev->kind == CNPROC_FORK && ev->pid == ev->tgid && ev->parent_tgid == l->want_parent &&
	    l->want_parent)
		l->got_child = ev->tgid;
	if (ev->kind == CNPROC_FORK && ev->pid == l->want && ev->tgid == l->want) {
		l->fork = *ev;
		l->got_fork = true;
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll and receive until *flag is set or @deadline (ms, CLOCK_MONOTONIC) passes. */
static void live_wait(struct live *l, const bool *flag, int64_t deadline)
{
	struct pollfd pfd = {.fd = cnproc_get_fd(l->c), .events = POLLIN};

	while (!*flag && now_ms() < deadline) {
		int r = poll(&pfd, 1, (int)(deadline - now_ms()));
		bool lost;

		if (r < 0 && errno == EINTR)
			continue;
		assert_true(r >= 0);
		if (r > 0)
			assert_true(cnproc_receive(l->c, live_cb, l, &lost) >= 0);
	}
}

static bool skippable(int r)
{
	return r == -EPERM || r == -EACCES || r == -EPROTONOSUPPORT;
}

/*
 * Subscribe in the 6.6+ form; if no reply comes (an older kernel drops that
 * request silently) subscribe again in the old form, which every kernel takes.
 */
static int live_subscribe(struct live *l, int64_t deadline)
{
	int r = cnproc_subscribe(l->c, CNPROC_FORM_INPUT, true, CNPROC_EVENTS_ALL);

	if (r == 0)
		live_wait(l, &l->got_ack, now_ms() + 1000 < deadline ? now_ms() + 1000 : deadline);
	if (r < 0 || !l->got_ack)
		r = cnproc_subscribe(l->c, CNPROC_FORM_OP, true, 0);
	return r;
}

static void test_live_fork(void **state)
{
	struct live *l = *state;
	int64_t deadline = now_ms() + 5000;
	int r;

	r = cnproc_open(&l->c, 1 << 20, CNPROC_OPEN_DEFAULT);
	if (skippable(r)) {
		print_message("proc connector not available: %s; skipping\n", strerror(-r));
		skip();
	}
	assert_int_equal(r, 0);
	r = live_subscribe(l, deadline);
	if (skippable(r)) {
		print_message("subscribe not permitted: %s; skipping\n", strerror(-r));
		skip();
	}
	assert_int_equal(r, 0);

	l->child = fork();
	assert_true(l->child >= 0);
	if (l->child == 0)
		_exit(0);
	l->want = l->child;
	live_wait(l, &l->got_fork, deadline);
	if (!l->got_fork) {
		print_message("no FORK event within 5 s (other namespace?); skipping\n");
		skip();
	}
	assert_int_equal(l->fork.parent_tgid, getpid());
	assert_int_equal(cnproc_get_stats(l->c)->foreign, 0);
}

static void *thread_main(void *arg)
{
	return arg;
}

/* Start and join a thread, then fork a child and wait for the child's FORK:
 * the thread's FORK, queued before it, has been read by then. */
static void thread_then_child(struct live *l, int64_t deadline)
{
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, thread_main, NULL), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	l->got_fork = false;
	l->child = fork();
	assert_true(l->child >= 0);
	if (l->child == 0)
		_exit(0);
	l->want = l->child;
	live_wait(l, &l->got_fork, deadline);
	assert_int_equal(waitpid(l->child, NULL, 0), l->child);
	l->child = -1;
}

/* The socket filter drops thread events in the kernel; without it they come. */
static void test_live_thread_filter(void **state)
{
	struct live *l = *state;
	int64_t deadline = now_ms() + 5000;
	int r = cnproc_open(&l->c, 1 << 20, CNPROC_OPEN_DEFAULT);

	if (skippable(r))
		skip();
	assert_int_equal(r, 0);
	r = live_subscribe(l, deadline);
	if (skippable(r))
		skip();
	assert_int_equal(r, 0);
	thread_then_child(l, deadline);
	if (!l->got_fork)
		skip(); /* no events here (other namespace) */
	assert_true(l->thread_forks >= 1);

	assert_int_equal(cnproc_drop_thread_events(l->c), 0);
	l->thread_forks = 0;
	thread_then_child(l, deadline);
	assert_true(l->got_fork);
	assert_int_equal(l->thread_forks, 0);
}

/*
 * A root process can send to our port; such a datagram must be dropped.
 * Needs CAP_NET_ADMIN (the connector does not allow unprivileged sends).
 */
static void test_live_spoofed_sender(void **state)
{
	struct live *l = *state;
	struct proc_event pe = mk_fork(1, 1, 4242, 4242);
	struct sockaddr_nl to = {.nl_family = AF_NETLINK};
	struct dgram d = {0};
	socklen_t tolen = sizeof(to);
	int fd, r;

	r = cnproc_open(&l->c, 0, CNPROC_OPEN_DEFAULT);
	if (skippable(r))
		skip();
	assert_int_equal(r, 0);
	assert_int_equal(getsockname(cnproc_get_fd(l->c), (struct sockaddr *)&to, &tolen), 0);
	to.nl_groups = 0;
	put_event(&d, &pe, 1);

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	assert_true(fd >= 0);
	r = (int)sendto(fd, d.b, d.len, 0, (struct sockaddr *)&to, sizeof(to));
	r = r < 0 ? -errno : 0;
	close(fd);
	if (r == -EPERM) {
		print_message("cannot send to a netlink port here: %s; skipping\n", strerror(-r));
		skip();
	}
	assert_int_equal(r, 0);

	l->want = 4242;
	live_wait(l, &l->got_fork, now_ms() + 100);
	assert_false(l->got_fork);
	assert_int_equal(cnproc_get_stats(l->c)->foreign, 1);
}

/* The tree filter, attached to an open socket with @root as the tree;
 * subscribed for every kind (the filter must see every sequence number). */
static void tree_setup(struct live *l, pid_t root)
{
	/* valgrind 3.19 models neither bpf(2)'s attribute unions nor
	 * pidfds: CI runs these under ASan instead (.ci/run). */
	if (getenv("PTMON_TEST_NO_EBPF")) {
		print_message("PTMON_TEST_NO_EBPF set: the eBPF tree filter tests skip\n");
		skip();
	}
	int r = cnproc_open(&l->c, 1 << 20, CNPROC_OPEN_DEFAULT);

	if (skippable(r))
		skip();
	assert_int_equal(r, 0);
	r = cnproc_filter_tree(l->c, root);
	if (r == -EPERM || r == -EOPNOTSUPP) {
		print_message("no eBPF tree filter here: %s; skipping\n", strerror(-r));
		skip();
	}
	assert_int_equal(r, 0);
	r = cnproc_subscribe(l->c, CNPROC_FORM_OP, true, CNPROC_EVENTS_ALL);
	if (skippable(r))
		skip();
	assert_int_equal(r, 0);
}

/* A child that waits for a byte on @fd, then forks one child and reaps it. */
static pid_t fork_on_cue(int fd)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char b;

		if (read(fd, &b, 1) != 1)
			_exit(1);
		pid_t g = fork();
		if (g == 0)
			_exit(0);
		waitpid(g, NULL, 0);
		_exit(0);
	}
	return pid;
}

/*
 * Only the tree's events reach the socket: a storm of this process's own
 * forks is dropped once this process is out of the tree; a process put in
 * the tree (as a resync would) has its child's FORK passed.
 */
static void test_live_tree_filter(void **state)
{
	struct live *l = *state;
	int64_t deadline = now_ms() + 5000;
	int cue[2];
	uint64_t before;

	tree_setup(l, getpid());
	l->child = fork(); /* ours: it must come */
	assert_true(l->child >= 0);
	if (l->child == 0)
		_exit(0);
	l->want = l->child;
	live_wait(l, &l->got_fork, deadline);
	if (!l->got_fork)
		skip(); /* no events here (other namespace) */
	assert_int_equal(waitpid(l->child, NULL, 0), l->child);
	l->child = -1;

	assert_int_equal(cnproc_tree_remove(l->c, getpid(), NULL, NULL), 0);
	{
		bool lost;
		(void)cnproc_receive(l->c, live_cb, l, &lost);
	}
	before = cnproc_get_stats(l->c)->events;
	l->own_forks = 0;
	assert_int_equal(pipe2(cue, O_CLOEXEC), 0);
	l->child = fork_on_cue(cue[0]);
	/* Not in the tree (its parent left it): dropped, so "added" is news. */
	assert_int_equal(cnproc_tree_add(l->c, l->child), 1);
	assert_int_equal(cnproc_tree_add(l->c, l->child), 0);
	for (int i = 0; i < 500; i++) {
		pid_t p = fork();
		assert_true(p >= 0);
		if (p == 0)
			_exit(0);
		assert_int_equal(waitpid(p, NULL, 0), p);
	}
	/* The grandchild's FORK: the first event since the storm that is the
	 * tree's.  Its parent is the child, found in the map. */
	l->got_fork = false;
	l->want = -1;
	assert_int_equal(write(cue[1], "x", 1), 1);
	struct pollfd pfd = {.fd = cnproc_get_fd(l->c), .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	{
		bool lost;
		assert_true(cnproc_receive(l->c, live_cb, l, &lost) >= 1);
	}
	print_message("    storm of 500 forks outside the tree: %" PRIu64
		      " events received since\n",
		      cnproc_get_stats(l->c)->events - before);
	/* Nothing of the storm (an event carrying a sequence gap would pass,
	 * but not 500 of them): the grandchild's FORK, maybe exits. */
	assert_int_equal(l->own_forks, 0);
	assert_true(cnproc_get_stats(l->c)->events - before < 50);
	assert_int_equal(waitpid(l->child, NULL, 0), l->child);
	l->child = -1;
	close(cue[0]);
	close(cue[1]);
}

struct removal {
	int cue;
	pid_t child;
	int calls;
};

/* Asked whether to keep the child's pid in the map, while it is out of it:
 * let the child fork, and wait until it has (it reaps its own child, then
 * exits).  So the child forks in the middle of the removal. */
static bool fork_during_removal(pid_t tgid, void *userdata)
{
	struct removal *x = userdata;
	int status = 0;

	x->calls++;
	assert_int_equal(tgid, x->child);
	assert_int_equal(write(x->cue, "x", 1), 1);
	assert_int_equal(waitpid(x->child, &status, 0), x->child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return false; /* dead by now: nothing of it to keep */
}

/*
 * Taking a pid out of the map races with its holder, which may be a new
 * process of the tree by then (pids wrap): a fork it makes between the
 * removal and the check of its holder must still pass, and its child
 * enter the map.  Here the child of the tree forks exactly then.
 */
static void test_live_tree_filter_removal(void **state)
{
	struct live *l = *state;
	int64_t deadline = now_ms() + 5000;
	int cue[2];
	struct removal x = {0};

	tree_setup(l, getpid());
	assert_int_equal(pipe2(cue, O_CLOEXEC), 0);
	l->child = fork_on_cue(cue[0]);
	l->want = l->child;
	live_wait(l, &l->got_fork, deadline);
	if (!l->got_fork)
		skip(); /* no events here (other namespace) */
	/* The filter put it in the map when it was forked. */
	assert_int_equal(cnproc_tree_contains(l->c, l->child), 1);

	x.cue = cue[1];
	x.child = l->child;
	l->want_parent = l->child;
	assert_int_equal(cnproc_tree_remove(l->c, l->child, fork_during_removal, &x), 0);
	assert_int_equal(x.calls, 1);
	l->child = -1;
	/* Its child's FORK, sent during the removal, came through. */
	for (int64_t end = now_ms() + 5000; !l->got_child && now_ms() < end;) {
		struct pollfd pfd = {.fd = cnproc_get_fd(l->c), .events = POLLIN};
		bool lost;
		if (poll(&pfd, 1, 100) > 0)
			assert_true(cnproc_receive(l->c, live_cb, l, &lost) >= 0);
	}
	assert_true(l->got_child > 0);
	assert_int_equal(cnproc_tree_contains(l->c, l->got_child), 1);
	assert_int_equal(cnproc_tree_contains(l->c, x.child), 0);
	close(cue[0]);
	close(cue[1]);
}

/* A sequence gap the filter sees is reported as a loss, though the event
 * that carried it is not the tree's; forged here by a send to our own port
 * (root only), which is also refused as forged. */
static void test_live_tree_filter_gap(void **state)
{
	struct live *l = *state;
	struct proc_event pe = mk_fork(1, 1, 4242, 4242);
	struct sockaddr_nl to = {.nl_family = AF_NETLINK};
	socklen_t tolen = sizeof(to);
	cpu_set_t one;
	bool lost = false;
	int fd;

	tree_setup(l, getpid());
	assert_int_equal(getsockname(cnproc_get_fd(l->c), (struct sockaddr *)&to, &tolen), 0);
	to.nl_groups = 0;
	/* On one CPU: the filter keeps the sequence per CPU. */
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	assert_true(fd >= 0);
	for (uint32_t seq = 1000; seq <= 1010; seq += 10) {
		struct dgram d = {0};

		put_event(&d, &pe, seq);
		if (sendto(fd, d.b, d.len, 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
			print_message("cannot send to a netlink port: %s; skipping\n",
				      strerror(errno));
			close(fd);
			skip();
		}
	}
	close(fd);
	/* Whatever the kernel's own numbers were, one of the two (1000 after
	 * them, or 1010 after 1000) is ahead of the one expected. */
	for (int64_t end = now_ms() + 5000; !lost && now_ms() < end;) {
		struct pollfd pfd = {.fd = cnproc_get_fd(l->c), .events = POLLIN};
		if (poll(&pfd, 1, 100) > 0)
			assert_true(cnproc_receive(l->c, live_cb, l, &lost) >= 0);
	}
	assert_true(lost);
	assert_true(cnproc_get_stats(l->c)->seq_gaps >= 1);
	assert_true(cnproc_get_stats(l->c)->foreign >= 1);
	l->want = 4242;
	assert_false(l->got_fork);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork_process),
		cmocka_unit_test(test_fork_thread),
		cmocka_unit_test(test_exec),
		cmocka_unit_test(test_exit),
		cmocka_unit_test(test_exit_without_parents),
		cmocka_unit_test(test_comm_unterminated),
		cmocka_unit_test(test_comm_short_name),
		cmocka_unit_test(test_ack),
		cmocka_unit_test(test_other_known_kinds),
		cmocka_unit_test(test_unknown_what),
		cmocka_unit_test(test_longer_event_accepted),
		cmocka_unit_test(test_several_in_one_datagram),
		cmocka_unit_test(test_noop_skipped),
		cmocka_unit_test(test_error_type_counted),
		cmocka_unit_test(test_wrong_sender),
		cmocka_unit_test(test_wrong_connector_id),
		cmocka_unit_test(test_truncated_nlmsghdr),
		cmocka_unit_test(test_truncated_cn_msg),
		cmocka_unit_test(test_cn_len_beyond_buffer),
		cmocka_unit_test(test_event_shorter_than_member),
		cmocka_unit_test(test_nlmsg_len_beyond_buffer),
		cmocka_unit_test(test_nlmsg_len_too_small),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_unpadded_last_message),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_unaligned_buffer),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_null_callback),
		cmocka_unit_test(test_seq_consecutive),
		cmocka_unit_test(test_seq_gap),
		cmocka_unit_test(test_seq_wraparound),
		cmocka_unit_test(test_seq_backwards_resyncs),
		cmocka_unit_test(test_seq_disabled),
		cmocka_unit_test(test_seq_ack),
		cmocka_unit_test(test_seq_cpu_out_of_range),
		cmocka_unit_test(test_kind_names),
		cmocka_unit_test(test_open_bad_flags),
		cmocka_unit_test_setup_teardown(test_live_fork, live_setup, live_teardown),
		cmocka_unit_test_setup_teardown(test_live_thread_filter, live_setup, live_teardown),
		cmocka_unit_test_setup_teardown(test_live_tree_filter, live_setup, live_teardown),
		cmocka_unit_test_setup_teardown(test_live_tree_filter_removal, live_setup,
						live_teardown),
		cmocka_unit_test_setup_teardown(test_live_tree_filter_gap, live_setup,
						live_teardown),
		cmocka_unit_test_setup_teardown(test_live_spoofed_sender, live_setup,
						live_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
