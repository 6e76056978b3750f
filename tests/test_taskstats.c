/* SPDX-License-Identifier: MIT */
/*
 * Tests of netlink/taskstats: the decoder on datagrams built here, byte by
 * byte, and live tests on the kernel's taskstats family that skip when it
 * is not available or registration is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/acct.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>

#include "taskstats.h"

/* Any id the kernel could give the family; the decoder is told it. */
#define FAM 27

/* ---- datagram builder ---------------------------------------------------- */

struct dgram {
	alignas(8) uint8_t b[8192];
	size_t len;
};

static void put_bytes(struct dgram *d, const void *data, size_t len)
{
	assert_true(d->len + len <= sizeof(d->b));
	if (len)
		memcpy(d->b + d->len, data, len);
	d->len += len;
}

/* Zero padding up to the next 4-byte boundary (NLA_ALIGNTO == NLMSG_ALIGNTO). */
static void pad(struct dgram *d)
{
	static const uint8_t zero[4];

	put_bytes(d, zero, NLA_ALIGN(d->len) - d->len);
}

/* Start a message: nlmsghdr of @type, then a genlmsghdr with @cmd.  Returns its offset. */
static size_t msg_begin(struct dgram *d, uint16_t type, uint8_t cmd)
{
	struct nlmsghdr nh = {.nlmsg_type = type, .nlmsg_seq = 5};
	struct genlmsghdr g = {.cmd = cmd, .version = TASKSTATS_GENL_VERSION};
	size_t off = d->len;

	put_bytes(d, &nh, sizeof(nh));
	put_bytes(d, &g, sizeof(g));
	return off;
}

/* nlmsg_len covers everything written since msg_begin(). */
static void msg_end(struct dgram *d, size_t off)
{
	uint32_t len = (uint32_t)(d->len - off);

	memcpy(d->b + off + offsetof(struct nlmsghdr, nlmsg_len), &len, sizeof(len));
}

static void put_attr(struct dgram *d, uint16_t type, const void *data, size_t len)
{
	struct nlattr na = {.nla_len = (uint16_t)(NLA_HDRLEN + len), .nla_type = type};

	put_bytes(d, &na, sizeof(na));
	/* An empty attribute has no data (NULL): gcc -O3 would see memcpy(NULL). */
	if (len)
		put_bytes(d, data, len);
	pad(d);
}

static size_t nest_begin(struct dgram *d, uint16_t type)
{
	size_t off = d->len;

	put_attr(d, type, NULL, 0);
	return off;
}

static void nest_end(struct dgram *d, size_t off)
{
	uint16_t len = (uint16_t)(d->len - off);

	memcpy(d->b + off, &len, sizeof(len));
}

/* A container as mk_reply() builds it: id attribute, then @slen bytes of STATS. */
static void put_aggr(struct dgram *d, bool tgid, uint32_t id, const void *stats, size_t slen)
{
	size_t n = nest_begin(d, tgid ? TASKSTATS_TYPE_AGGR_TGID : TASKSTATS_TYPE_AGGR_PID);

	put_attr(d, tgid ? TASKSTATS_TYPE_TGID : TASKSTATS_TYPE_PID, &id, sizeof(id));
	put_attr(d, TASKSTATS_TYPE_STATS, stats, slen);
	nest_end(d, n);
}

/* One exit message: the task's record, and the group's when @group is not NULL. */
static void put_exit(struct dgram *d, const struct taskstats *task, const struct taskstats *group)
{
	size_t m = msg_begin(d, FAM, TASKSTATS_CMD_NEW);

	put_aggr(d, false, task->ac_pid, task, sizeof(*task));
	if (group)
		put_aggr(d, true, task->ac_tgid, group, sizeof(*group));
	msg_end(d, m);
}

/* A task's structure as fill_stats() would fill it. */
static struct taskstats mk_task(uint32_t pid, uint32_t tgid)
{
	struct taskstats ts;

	memset(&ts, 0, sizeof(ts));
	ts.version = TASKSTATS_VERSION;
	ts.ac_exitcode = 7 << 8;
	ts.ac_flag = AFORK | AGROUP;
	ts.cpu_run_real_total = 1234567890ull;
	ts.cpu_run_virtual_total = 1111111111ull;
	snprintf(ts.ac_comm, sizeof(ts.ac_comm), "worker-%u", pid);
	ts.ac_pid = pid;
	ts.ac_ppid = 1;
	ts.ac_btime = 1700000000u;
	ts.ac_etime = 2500000;
	ts.ac_utime = 700000;
	ts.ac_stime = 300000;
	ts.hiwater_rss = 4096;
	ts.hiwater_vm = 8192;
	ts.read_char = 10240;
	ts.write_char = 20480;
	ts.read_bytes = 4096;
	ts.write_bytes = 8192;
	ts.ac_btime64 = 1700000000ull;
	ts.ac_tgid = tgid;
	return ts;
}

/* The group's structure as taskstats_exit() copies it: delay accounting only. */
static struct taskstats mk_group(void)
{
	struct taskstats ts;

	memset(&ts, 0, sizeof(ts));
	ts.cpu_count = 12;
	ts.cpu_run_real_total = 987654321ull;
	return ts;
}

/* ---- record sink ----------------------------------------------------------- */

#define SINK_MAX 16
struct sink {
	struct tstats_record rec[SINK_MAX];
	int n;
	int stop_at; /* return -ECANCELED on the stop_at-th record; 0: never */
};

static int sink_cb(const struct tstats_record *rec, void *userdata)
{
	struct sink *s = userdata;

	if (s->n < SINK_MAX)
		s->rec[s->n] = *rec;
	s->n++;
	if (s->stop_at && s->n >= s->stop_at)
		return -ECANCELED;
	return 0;
}

struct run {
	struct tstats_stats st;
	struct sink sink;
	int r;
};

static void decode(struct run *x, const void *buf, size_t len, uint32_t sender)
{
	x->r = tstats_decode(buf, len, sender, FAM, &x->st, sink_cb, &x->sink);
}

/* Expect @n records delivered and nothing counted against the datagram. */
static void expect_clean(const struct run *x, int n)
{
	assert_int_equal(x->r, n);
	assert_int_equal(x->sink.n, n);
	assert_int_equal(x->st.datagrams, 1);
	assert_int_equal(x->st.records, n);
	assert_int_equal(x->st.malformed, 0);
	assert_int_equal(x->st.foreign, 0);
}

/* Nothing delivered; exactly one foreign or one malformed count. */
static void expect_dropped(const void *buf, size_t len, uint32_t sender, bool foreign)
{
	struct run x = {0};

	decode(&x, buf, len, sender);
	assert_int_equal(x.r, 0);
	assert_int_equal(x.sink.n, 0);
	assert_int_equal(x.st.records, 0);
	assert_int_equal(x.st.foreign, foreign ? 1 : 0);
	assert_int_equal(x.st.malformed, foreign ? 0 : 1);
}

static void check_task(const struct tstats_record *r, const struct taskstats *ts)
{
	assert_false(r->is_tgid);
	assert_int_equal(r->pid, ts->ac_pid);
	assert_int_equal(r->ac_pid, ts->ac_pid);
	assert_int_equal(r->ac_ppid, ts->ac_ppid);
	assert_int_equal(r->ac_tgid, ts->ac_tgid);
	assert_int_equal(r->exitcode, ts->ac_exitcode);
	assert_int_equal(r->flag, ts->ac_flag);
	assert_int_equal(r->btime_s, ts->ac_btime64);
	assert_int_equal(r->etime_us, ts->ac_etime);
	assert_int_equal(r->utime_us, ts->ac_utime);
	assert_int_equal(r->stime_us, ts->ac_stime);
	assert_int_equal(r->cpu_run_real_ns, ts->cpu_run_real_total);
	assert_int_equal(r->cpu_run_virtual_ns, ts->cpu_run_virtual_total);
	assert_int_equal(r->hiwater_rss_kb, ts->hiwater_rss);
	assert_int_equal(r->hiwater_vm_kb, ts->hiwater_vm);
	assert_int_equal(r->read_char, ts->read_char);
	assert_int_equal(r->write_char, ts->write_char);
	assert_int_equal(r->read_bytes, ts->read_bytes);
	assert_int_equal(r->write_bytes, ts->write_bytes);
	assert_int_equal(r->version, ts->version);
	assert_string_equal(r->comm, ts->ac_comm);
}

/* ---- well-formed records --------------------------------------------------- */

static void test_aggr_pid(void **state)
{
	struct taskstats ts = mk_task(4242, 4242);
	struct dgram d = {0};
	struct run x = {0};

	put_exit(&d, &ts, NULL);
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 1);
	check_task(&x.sink.rec[0], &ts);
	assert_string_equal(x.sink.rec[0].comm, "worker-4242");
}

/* The last thread of a group: its own record, then the group's, in one message. */
static void test_aggr_tgid(void **state)
{
	struct taskstats ts = mk_task(501, 500), grp = mk_group();
	struct dgram d = {0};
	struct run x = {0};
	const struct tstats_record *g;

	put_exit(&d, &ts, &grp);
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 2);
	check_task(&x.sink.rec[0], &ts);
	g = &x.sink.rec[1];
	assert_true(g->is_tgid);
	assert_int_equal(g->pid, 500);
	assert_int_equal(g->version, 0);
	assert_int_equal(g->ac_pid, 0);
	assert_int_equal(g->utime_us, 0);
	assert_int_equal(g->cpu_run_real_ns, 987654321ull);
	assert_string_equal(g->comm, "");
}

static void test_several_in_one_datagram(void **state)
{
	struct taskstats a = mk_task(10, 10), b = mk_task(11, 10), c = mk_task(12, 12);
	struct taskstats grp = mk_group();
	struct dgram d = {0};
	struct run x = {0};

	put_exit(&d, &a, NULL);
	put_exit(&d, &b, &grp);
	put_exit(&d, &c, NULL);
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 4);
	assert_int_equal(x.sink.rec[0].pid, 10);
	assert_int_equal(x.sink.rec[1].pid, 11);
	assert_true(x.sink.rec[2].is_tgid);
	assert_int_equal(x.sink.rec[2].pid, 10);
	assert_int_equal(x.sink.rec[3].pid, 12);
}

static void test_comm_unterminated(void **state)
{
	struct taskstats ts = mk_task(7, 7);
	struct dgram d = {0};
	struct run x = {0};

	memset(ts.ac_comm, 'A', sizeof(ts.ac_comm));
	put_exit(&d, &ts, NULL);
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 1);
	assert_int_equal(strlen(x.sink.rec[0].comm), TS_COMM_LEN);
	assert_int_equal(x.sink.rec[0].comm[0], 'A');
}

/* A version-8 kernel (2.6.3x) sent a structure ending with freepages_delay_total. */
static void test_stats_shorter_older_kernel(void **state)
{
	struct taskstats ts = mk_task(300, 300);
	size_t len = offsetof(struct taskstats, thrashing_count);
	struct dgram d = {0};
	struct run x = {0};
	size_t m;

	ts.version = 8;
	ts.ac_btime = 1600000000u; /* ac_btime64 and ac_tgid are beyond the end: not sent */
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_aggr(&d, false, 300, &ts, len);
	msg_end(&d, m);
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 1);
	assert_int_equal(x.sink.rec[0].version, 8);
	assert_int_equal(x.sink.rec[0].btime_s, 1600000000u);
	assert_int_equal(x.sink.rec[0].ac_tgid, 0);
	assert_int_equal(x.sink.rec[0].utime_us, ts.ac_utime);
	assert_int_equal(x.sink.rec[0].write_bytes, ts.write_bytes);
}

/* Exactly the minimum is accepted, with everything after ac_stime 0; one byte less is not. */
static void test_stats_minimum_length(void **state)
{
	struct taskstats ts = mk_task(301, 301);
	static const size_t bad[] = {0, 1, 2, 80, TSTATS_MIN_STATS_LEN - 1};
	struct dgram d = {0};
	struct run x = {0};
	size_t m;

	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_aggr(&d, false, 301, &ts, TSTATS_MIN_STATS_LEN);
	msg_end(&d, m);
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 1);
	assert_int_equal(x.sink.rec[0].stime_us, ts.ac_stime);
	assert_int_equal(x.sink.rec[0].hiwater_rss_kb, 0);
	assert_int_equal(x.sink.rec[0].btime_s, ts.ac_btime);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d.len = 0;
		m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
		put_aggr(&d, false, 301, &ts, bad[i]);
		msg_end(&d, m);
		expect_dropped(d.b, d.len, 0, false);
	}
}

/* A newer kernel (6.18 sends version 16, 560 bytes): the extra bytes are ignored. */
static void test_stats_longer_newer_kernel(void **state)
{
	uint8_t big[sizeof(struct taskstats) + 144];
	struct taskstats ts = mk_task(302, 302);
	struct dgram d = {0};
	struct run x = {0};
	size_t m;

	ts.version = 16;
	memset(big, 0xaa, sizeof(big));
	memcpy(big, &ts, sizeof(ts));
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_aggr(&d, false, 302, big, sizeof(big));
	msg_end(&d, m);
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 1);
	check_task(&x.sink.rec[0], &ts);
}

/*
 * Version 15 (Linux 6.14.0-6.14.8) inserted a max/min pair after each
 * delay pair.  Build it from the version-13 structure: each range moves by
 * its shift, and the inserted pairs hold garbage.
 */
static size_t mk_v15(uint8_t *out, size_t size, const struct taskstats *ts)
{
#define OFF(f) offsetof(struct taskstats, f)
	static const struct {
		size_t start, end, shift;
	} map[] = {
		{0, OFF(blkio_count), 0},
		{OFF(blkio_count), OFF(swapin_count), 16},
		{OFF(swapin_count), OFF(cpu_run_real_total), 32},
		{OFF(cpu_run_real_total), OFF(thrashing_count), 48},
		{OFF(thrashing_count), OFF(ac_btime64), 64},
		{OFF(ac_btime64), OFF(ac_tgid), 80},
		{OFF(ac_tgid), sizeof(struct taskstats), 96},
	};
#undef OFF
	size_t len = sizeof(*ts) + 96 + 16 + 32; /* + wpcopy and irq pairs */

	assert_true(len <= size);
	memset(out, 0xee, len);
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		memcpy(out + map[i].start + map[i].shift, (const uint8_t *)ts + map[i].start,
		       map[i].end - map[i].start);
	return len;
}

static void test_stats_version_15(void **state)
{
	uint8_t v15[1024];
	struct taskstats ts = mk_task(303, 300);
	struct dgram d = {0};
	struct run x = {0};
	size_t len, m;

	ts.version = 15;
	ts.ac_btime64 = 5000000000ull; /* after 2106: only ac_btime64 holds it */
	len = mk_v15(v15, sizeof(v15), &ts);
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_aggr(&d, false, 303, v15, len);
	msg_end(&d, m);
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 1);
	check_task(&x.sink.rec[0], &ts);

	/* Its minimum is 48 bytes further on. */
	d.len = 0;
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_aggr(&d, false, 303, v15, TSTATS_MIN_STATS_LEN + 47);
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, false);
	d.len = 0;
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_aggr(&d, false, 303, v15, TSTATS_MIN_STATS_LEN + 48);
	msg_end(&d, m);
	memset(&x, 0, sizeof(x));
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 1);
	assert_int_equal(x.sink.rec[0].stime_us, ts.ac_stime);
	assert_string_equal(x.sink.rec[0].comm, ts.ac_comm);
	assert_int_equal(x.sink.rec[0].hiwater_rss_kb, 0);
}

/*
 * TASKSTATS_TYPE_NULL padding: before the container (older kernels on
 * strict-alignment architectures) and before STATS (nla_reserve_64bit()).
 * Unknown attribute types are skipped too.
 */
static void test_null_padding_and_unknown(void **state)
{
	struct taskstats ts = mk_task(304, 304);
	uint32_t id = 304, junk = 0xdeadbeef;
	struct dgram d = {0};
	struct run x = {0};
	size_t m, n;

	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_attr(&d, TASKSTATS_TYPE_NULL, NULL, 0);
	put_attr(&d, 99, &junk, sizeof(junk));
	n = nest_begin(&d, TASKSTATS_TYPE_AGGR_PID);
	put_attr(&d, TASKSTATS_TYPE_PID, &id, sizeof(id));
	put_attr(&d, TASKSTATS_TYPE_NULL, NULL, 0);
	put_attr(&d, 77, &junk, 3);
	put_attr(&d, TASKSTATS_TYPE_STATS, &ts, sizeof(ts));
	nest_end(&d, n);
	msg_end(&d, m);
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 1);
	check_task(&x.sink.rec[0], &ts);
}

/* ---- broken containers ------------------------------------------------------- */

static void test_missing_attributes(void **state)
{
	struct taskstats ts = mk_task(305, 305);
	uint32_t id = 305;
	uint16_t short_id = 305;
	struct dgram d = {0};
	size_t m, n;

	/* No PID. */
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	n = nest_begin(&d, TASKSTATS_TYPE_AGGR_PID);
	put_attr(&d, TASKSTATS_TYPE_STATS, &ts, sizeof(ts));
	nest_end(&d, n);
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, false);

	/* No STATS. */
	d.len = 0;
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	n = nest_begin(&d, TASKSTATS_TYPE_AGGR_PID);
	put_attr(&d, TASKSTATS_TYPE_PID, &id, sizeof(id));
	nest_end(&d, n);
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, false);

	/* A TGID where the PID belongs. */
	d.len = 0;
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	n = nest_begin(&d, TASKSTATS_TYPE_AGGR_PID);
	put_attr(&d, TASKSTATS_TYPE_TGID, &id, sizeof(id));
	put_attr(&d, TASKSTATS_TYPE_STATS, &ts, sizeof(ts));
	nest_end(&d, n);
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, false);

	/* A PID of two bytes. */
	d.len = 0;
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	n = nest_begin(&d, TASKSTATS_TYPE_AGGR_PID);
	put_attr(&d, TASKSTATS_TYPE_PID, &short_id, sizeof(short_id));
	put_attr(&d, TASKSTATS_TYPE_STATS, &ts, sizeof(ts));
	nest_end(&d, n);
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, false);
}

/* One broken container does not hide the good one next to it. */
static void test_bad_container_next_to_good(void **state)
{
	struct taskstats ts = mk_task(306, 306), grp = mk_group();
	struct dgram d = {0};
	struct run x = {0};
	size_t m, n;

	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	n = nest_begin(&d, TASKSTATS_TYPE_AGGR_PID);
	put_attr(&d, TASKSTATS_TYPE_STATS, &ts, sizeof(ts));
	nest_end(&d, n);
	put_aggr(&d, true, 306, &grp, sizeof(grp));
	msg_end(&d, m);
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, 1);
	assert_true(x.sink.rec[0].is_tgid);
	assert_int_equal(x.st.malformed, 1);
}

static void test_nested_len_beyond_container(void **state)
{
	struct taskstats ts = mk_task(307, 307);
	struct dgram d = {0};
	size_t m, pid_attr;
	uint16_t len;

	/* STATS claims 8 bytes more than its container holds (the message has them). */
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_aggr(&d, false, 307, &ts, sizeof(ts));
	memcpy(&len, d.b + m + 20 + 4 + 8, sizeof(len));
	len += 8;
	memcpy(d.b + m + 20 + 4 + 8, &len, sizeof(len));
	put_attr(&d, TASKSTATS_TYPE_NULL, &ts, 8);
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, false);

	/* The container claims more than the message. */
	d.len = 0;
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_aggr(&d, false, 307, &ts, sizeof(ts));
	memcpy(&len, d.b + m + 20, sizeof(len));
	len += 4;
	memcpy(d.b + m + 20, &len, sizeof(len));
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, false);

	/* An attribute shorter than its own header, inside the container. */
	d.len = 0;
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_aggr(&d, false, 307, &ts, sizeof(ts));
	pid_attr = m + 20 + 4;
	len = 2;
	memcpy(d.b + pid_attr, &len, sizeof(len));
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, false);

	/* Three stray bytes after the last container. */
	d.len = 0;
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_aggr(&d, false, 307, &ts, sizeof(ts));
	put_bytes(&d, "abc", 3);
	msg_end(&d, m);
	{
		struct run x = {0};

		decode(&x, d.b, d.len, 0);
		assert_int_equal(x.r, 1);
		assert_int_equal(x.st.malformed, 1);
	}
}

static void test_message_without_records(void **state)
{
	struct dgram d = {0};
	size_t m;

	/* CMD_NEW with no container at all. */
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	put_attr(&d, TASKSTATS_TYPE_NULL, NULL, 0);
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, false);

	/* Shorter than a genlmsghdr. */
	d.len = 0;
	m = msg_begin(&d, FAM, TASKSTATS_CMD_NEW);
	d.len -= 2;
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, false);

	/* Another command of the family (a cgroupstats reply, say). */
	d.len = 0;
	m = msg_begin(&d, FAM, 4);
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, true);
}

/* ---- what is not ours -------------------------------------------------------- */

static void test_wrong_sender(void **state)
{
	struct taskstats ts = mk_task(308, 308);
	struct dgram d = {0};

	put_exit(&d, &ts, NULL);
	put_exit(&d, &ts, NULL);
	expect_dropped(d.b, d.len, 4242, true);
	expect_dropped(d.b, d.len, UINT32_MAX, true);
}

static void test_wrong_family(void **state)
{
	struct taskstats ts = mk_task(309, 309);
	struct dgram d = {0};
	struct run x = {0};
	size_t m;

	m = msg_begin(&d, FAM + 1, TASKSTATS_CMD_NEW);
	put_aggr(&d, false, 309, &ts, sizeof(ts));
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, true);

	/* nlctrl, and a reserved control type. */
	d.len = 0;
	m = msg_begin(&d, GENL_ID_CTRL, CTRL_CMD_NEWFAMILY);
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, true);
	d.len = 0;
	m = msg_begin(&d, NLMSG_OVERRUN, 0);
	msg_end(&d, m);
	expect_dropped(d.b, d.len, 0, true);

	/* A foreign message does not hide the record next to it. */
	d.len = 0;
	m = msg_begin(&d, FAM + 1, TASKSTATS_CMD_NEW);
	msg_end(&d, m);
	put_exit(&d, &ts, NULL);
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, 1);
	assert_int_equal(x.st.foreign, 1);
	assert_int_equal(x.st.malformed, 0);
}

static void put_error(struct dgram *d, int32_t error, size_t plen)
{
	struct nlmsghdr nh = {
		.nlmsg_len = (uint32_t)(NLMSG_HDRLEN + plen),
		.nlmsg_type = NLMSG_ERROR,
	};
	struct nlmsgerr e = {.error = error};

	put_bytes(d, &nh, sizeof(nh));
	put_bytes(d, &e, plen);
	pad(d);
}

/* An ACK is skipped silently, an error report is counted, neither is a record. */
static void test_nlmsg_error(void **state)
{
	struct taskstats ts = mk_task(310, 310);
	struct dgram d = {0};
	struct run x = {0};
	size_t m;

	put_error(&d, 0, sizeof(struct nlmsgerr));
	put_exit(&d, &ts, NULL);
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 1);

	d.len = 0;
	put_error(&d, -EPERM, sizeof(struct nlmsgerr));
	expect_dropped(d.b, d.len, 0, false);
	d.len = 0;
	put_error(&d, 0, 2);
	expect_dropped(d.b, d.len, 0, false);

	/* NOOP and DONE carry nothing and are not errors. */
	d.len = 0;
	m = msg_begin(&d, NLMSG_NOOP, 0);
	msg_end(&d, m);
	m = msg_begin(&d, NLMSG_DONE, 0);
	msg_end(&d, m);
	put_exit(&d, &ts, NULL);
	memset(&x, 0, sizeof(x));
	decode(&x, d.b, d.len, 0);
	expect_clean(&x, 1);
}

/* ---- broken message lengths -------------------------------------------------- */

static void test_nlmsg_len_beyond_buffer(void **state)
{
	/* 0x80000000 and up pass libmnl 1.0.4's own check (it compares as int). */
	static const uint32_t lens[] = {
		453, 456, 4096, 0x7fffffff, 0x80000000, 0xfffffff0, 0xfffffffd, 0xffffffff,
	};
	struct taskstats ts = mk_task(311, 311);

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct dgram d = {0};

		put_exit(&d, &ts, NULL);
		assert_int_equal(d.len, 452);
		memcpy(d.b, &lens[i], sizeof(lens[i]));
		expect_dropped(d.b, d.len, 0, false);
	}
}

static void test_nlmsg_len_too_small(void **state)
{
	static const uint32_t lens[] = {0, 1, 15};
	struct taskstats ts = mk_task(312, 312);

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct dgram d = {0};

		put_exit(&d, &ts, NULL);
		memcpy(d.b, &lens[i], sizeof(lens[i])); /* 0 would loop forever if believed */
		expect_dropped(d.b, d.len, 0, false);
	}
}

static void test_zero_length(void **state)
{
	struct dgram d = {0};

	expect_dropped(d.b, 0, 0, false);
	expect_dropped(NULL, 0, 0, false);
	expect_dropped(NULL, 100, 0, false);
}

/* Every prefix of a good datagram: no crash, only whole messages decoded, one count. */
static void test_every_truncation(void **state)
{
	struct taskstats a = mk_task(20, 21), b = mk_task(22, 22), grp = mk_group();
	struct dgram d = {0};
	size_t first;

	put_exit(&d, &a, &grp);
	first = d.len;
	put_exit(&d, &b, NULL);
	for (size_t len = 0; len <= d.len; len++) {
		struct run x = {0};
		int whole = (len >= first ? 2 : 0) + (len >= d.len ? 1 : 0);

		decode(&x, d.b, len, 0);
		assert_int_equal(x.r, whole);
		assert_int_equal(x.st.records, whole);
		assert_int_equal(x.st.malformed, (len == first || len == d.len) ? 0 : 1);
		assert_int_equal(x.st.foreign, 0);
	}
}

static void test_unaligned_buffer(void **state)
{
	struct taskstats a = mk_task(30, 30), b = mk_task(31, 30), grp = mk_group();
	struct dgram d = {0};

	put_exit(&d, &a, NULL);
	put_exit(&d, &b, &grp);
	for (size_t off = 1; off < 8; off++) {
		uint8_t *raw = malloc(d.len + off);
		struct run x = {0};

		assert_non_null(raw);
		memcpy(raw + off, d.b, d.len);
		decode(&x, raw + off, d.len, 0);
		free(raw);
		expect_clean(&x, 3);
		check_task(&x.sink.rec[0], &a);
		check_task(&x.sink.rec[1], &b);
		assert_int_equal(x.sink.rec[2].cpu_run_real_ns, grp.cpu_run_real_total);
	}
}

static void test_callback_stops(void **state)
{
	struct taskstats a = mk_task(40, 40), b = mk_task(41, 41), grp = mk_group();
	struct dgram d = {0};
	struct run x = {0};

	put_exit(&d, &a, &grp);
	put_exit(&d, &b, NULL);
	x.sink.stop_at = 2;
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, -ECANCELED);
	assert_int_equal(x.sink.n, 2);
	assert_int_equal(x.st.records, 2);

	/* Stopping on the first container of a message skips the second. */
	memset(&x, 0, sizeof(x));
	x.sink.stop_at = 1;
	decode(&x, d.b, d.len, 0);
	assert_int_equal(x.r, -ECANCELED);
	assert_int_equal(x.sink.n, 1);
	assert_false(x.sink.rec[0].is_tgid);
}

static void test_null_callback(void **state)
{
	struct taskstats a = mk_task(50, 50);
	struct tstats_stats st = {0};
	struct dgram d = {0};

	put_exit(&d, &a, NULL);
	assert_int_equal(tstats_decode(d.b, d.len, 0, FAM, &st, NULL, NULL), 1);
	assert_int_equal(st.records, 1);
}

static void test_open_bad_flags(void **state)
{
	struct tstats *t = (struct tstats *)(uintptr_t)1;

	assert_int_equal(tstats_open(&t, 0, 0x80), -EINVAL);
	assert_ptr_equal(t, (struct tstats *)(uintptr_t)1); /* untouched */
	errno = EBADF;
	assert_null(tstats_free(NULL));
	assert_int_equal(errno, EBADF);
}

/* ---- the real taskstats family -------------------------------------------- */

#define LIVE_MAX 8
struct live {
	struct tstats *t;
	pid_t child;                        /* to kill and reap in teardown; -1 once reaped */
	pid_t want;                         /* the process whose records are kept */
	pid_t want_tid;                     /* and one of its threads */
	struct tstats_record rec[LIVE_MAX]; /* in the order received */
	int n;
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
	tstats_free(l->t);
	free(l);
	return 0;
}

/* Keep the records of the process we want: its tasks' and its group's. */
static int live_cb(const struct tstats_record *rec, void *userdata)
{
	struct live *l = userdata;
	bool ours = rec->pid == l->want || (l->want_tid > 0 && rec->pid == l->want_tid);

	if (l->want > 0 && ours && l->n < LIVE_MAX)
		l->rec[l->n++] = *rec;
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read what is queued now, without waiting. */
static void live_drain(struct live *l)
{
	int r;

	do {
		bool lost = false;

		r = tstats_receive(l->t, live_cb, l, &lost);
		assert_true(r >= 0);
	} while (r > 0);
}

static const struct tstats_record *live_find(const struct live *l, pid_t pid, bool tgid)
{
	for (int i = 0; i < l->n; i++)
		if (l->rec[i].pid == pid && l->rec[i].is_tgid == tgid)
			return &l->rec[i];
	return NULL;
}

/* Poll and receive until the record is there or 5 s have passed. */
static const struct tstats_record *live_wait(struct live *l, pid_t pid, bool tgid)
{
	struct pollfd pfd = {.fd = tstats_get_fd(l->t), .events = POLLIN};
	int64_t deadline = now_ms() + 5000;

	while (!live_find(l, pid, tgid) && now_ms() < deadline) {
		int r = poll(&pfd, 1, (int)(deadline - now_ms()));

		if (r < 0 && errno == EINTR)
			continue;
		assert_true(r >= 0);
		if (r > 0)
			live_drain(l);
	}
	return live_find(l, pid, tgid);
}

/* Open, or skip visibly where taskstats is missing or registration is not allowed. */
static void live_open(struct live *l)
{
	int r = tstats_open(&l->t, 1 << 20, TSTATS_OPEN_DEFAULT);

	if (r == -EPERM || r == -ENOENT || r == -EINVAL) {
		print_message("taskstats not available here: %s; skipping\n", strerror(-r));
		skip();
	}
	assert_int_equal(r, 0);
}

static void burn_cpu_ms(long ms)
{
	struct timespec ts;

	do
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	while (ts.tv_sec * 1000 + ts.tv_nsec / 1000000 < ms);
}

/* Under a storm of exits elsewhere the kernel may drop ours: that is no failure. */
static void live_skip_if_lost(struct live *l)
{
	uint64_t overruns = tstats_get_stats(l->t)->overruns;

	if (overruns > 0) {
		print_message("the kernel dropped records (%llu overruns): the machine is too busy "
			      "with exits; skipping\n",
			      (unsigned long long)overruns);
		skip();
	}
}

/*
 * Reap the child, reading the socket meanwhile so that other exits on the
 * machine cannot fill it.  Returns whether the child's record was queued by
 * the time waitpid() returned.
 */
static bool live_reap(struct live *l, int want_status)
{
	struct pollfd pfd = {.fd = tstats_get_fd(l->t), .events = POLLIN};
	int64_t deadline = now_ms() + 5000;
	int status = 0;
	pid_t r;

	for (;;) {
		live_drain(l);
		r = waitpid(l->child, &status, WNOHANG);
		if (r == l->child)
			break;
		assert_true(r == 0 || errno == EINTR);
		assert_true(now_ms() < deadline);
		(void)poll(&pfd, 1, 10);
	}
	l->child = -1; /* reaped: the teardown must not signal a recycled pid */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), want_status);
	live_drain(l);
	if (live_find(l, l->want, false))
		return true;
	live_skip_if_lost(l);
	print_message("record of %d not queued at reap\n", l->want);
	return false;
}

static void test_live_exit(void **state)
{
	struct live *l = *state;
	const struct tstats_record *rec;
	bool queued;
	pid_t pid;

	live_open(l);
	l->child = fork();
	assert_true(l->child >= 0);
	if (l->child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		burn_cpu_ms(50);
		_exit(7);
	}
	pid = l->want = l->child;
	/* taskstats_exit() runs before exit_notify(): reaped means queued. */
	queued = live_reap(l, 7);
	rec = live_wait(l, pid, false);
	if (!rec)
		live_skip_if_lost(l);
	assert_non_null(rec);
	print_message("version %u; utime %llu us, stime %llu us, cpu_run_real %llu ns, "
		      "cpu_run_virtual %llu ns, hiwater_rss %llu KB, comm '%s', flag 0x%x\n",
		      rec->version, (unsigned long long)rec->utime_us,
		      (unsigned long long)rec->stime_us, (unsigned long long)rec->cpu_run_real_ns,
		      (unsigned long long)rec->cpu_run_virtual_ns,
		      (unsigned long long)rec->hiwater_rss_kb, rec->comm, rec->flag);
	assert_true(queued);
	assert_false(rec->is_tgid);
	assert_int_equal(rec->ac_pid, pid);
	assert_int_equal(rec->ac_ppid, getpid());
	assert_int_equal(rec->exitcode, 7 << 8);
	/* Tick-sampled and scaled: under load the figure was seen at 20 ms
	 * for a 50 ms burn.  It must not be nothing. */
	assert_true(rec->utime_us + rec->stime_us > 0);
	/* The run time is exact: at least the 50 ms the child's CPU clock
	 * counted (0 only on a kernel without delay accounting). */
	if (rec->cpu_run_virtual_ns)
		assert_true(rec->cpu_run_virtual_ns >= 50000000ull);
	assert_true(rec->hiwater_rss_kb > 0);
	assert_true(rec->etime_us >= 40000);
	assert_true(rec->btime_s > 1500000000u);
	if (rec->version >= 12) {
		assert_int_equal(rec->ac_tgid, pid);
		assert_true(rec->flag & AGROUP);
	}
	/* A single-threaded process gets no group record. */
	assert_null(live_find(l, pid, true));
	assert_int_equal(tstats_get_stats(l->t)->foreign, 0);
	assert_int_equal(tstats_get_stats(l->t)->malformed, 0);
}

static void *thread_burn(void *arg)
{
	pid_t *tid = arg;

	*tid = (pid_t)syscall(SYS_gettid);
	burn_cpu_ms(30);
	return NULL;
}

/* The child runs a thread that exits first, then exits itself with 3. */
static void live_threaded_child(int fd)
{
	pthread_t th;
	pid_t tid = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (pthread_create(&th, NULL, thread_burn, &tid) != 0 || pthread_join(th, NULL) != 0)
		_exit(100);
	if (write(fd, &tid, sizeof(tid)) != sizeof(tid))
		_exit(101);
	burn_cpu_ms(60); /* this thread's own clock: the other thread's 30 ms are not in it */
	_exit(3);
}

static void test_live_thread_group(void **state)
{
	struct live *l = *state;
	const struct tstats_record *leader, *thread, *group;
	pid_t pid, tid = 0;
	int pfd[2];

	live_open(l);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	l->child = fork();
	assert_true(l->child >= 0);
	if (l->child == 0) {
		close(pfd[0]);
		live_threaded_child(pfd[1]);
	}
	close(pfd[1]);
	pid = l->want = l->child;
	assert_int_equal(read(pfd[0], &tid, sizeof(tid)), sizeof(tid));
	close(pfd[0]);
	l->want_tid = tid;
	assert_true(live_reap(l, 3));
	group = live_wait(l, pid, true);
	leader = live_find(l, pid, false);
	thread = live_find(l, tid, false);
	if (!group || !leader || !thread)
		live_skip_if_lost(l);
	assert_non_null(leader);
	assert_non_null(thread);
	assert_non_null(group);
	print_message("group record: version %u, utime+stime %llu us, cpu_run_real %llu ns; "
		      "thread cpu_run_real %llu ns, leader %llu ns\n",
		      group->version, (unsigned long long)(group->utime_us + group->stime_us),
		      (unsigned long long)group->cpu_run_real_ns,
		      (unsigned long long)thread->cpu_run_real_ns,
		      (unsigned long long)leader->cpu_run_real_ns);
	/* In the kernel's order: the thread's exit, then the leader's with the group's. */
	assert_true(thread < leader && leader < group);
	assert_ptr_equal(group, leader + 1);
	assert_int_equal(thread->exitcode, 0);
	assert_int_equal(leader->exitcode, 3 << 8);
	assert_true(thread->utime_us + thread->stime_us + leader->utime_us + leader->stime_us > 0);
	if (leader->version >= 12) {
		assert_int_equal(thread->ac_tgid, pid);
		assert_false(thread->flag & AGROUP);
		assert_true(leader->flag & AGROUP);
	}
	/*
	 * The group record holds sums only (see taskstats.h); utime/stime only
	 * on kernels with the 2026 fix.  90 ms were burnt in all, but utime and
	 * stime are sampled at ticks: allow for a busy machine.
	 */
	assert_int_equal(group->ac_pid, 0);
	assert_int_equal(group->exitcode, 0);
	assert_string_equal(group->comm, "");
	assert_int_equal(group->hiwater_rss_kb, 0);
	if (group->utime_us + group->stime_us != 0)
		assert_true(group->utime_us + group->stime_us >= 60000);
	if (group->cpu_run_real_ns != 0)
		assert_true(group->cpu_run_real_ns >= 60000000ull);
}

/* A datagram from another socket must be dropped, however well-formed. */
static void test_live_spoofed_sender(void **state)
{
	struct live *l = *state;
	struct taskstats ts = mk_task(4242, 4242);
	struct sockaddr_nl to = {.nl_family = AF_NETLINK};
	socklen_t tolen = sizeof(to);
	struct dgram d = {0};
	uint64_t foreign;
	int fd, r;

	live_open(l);
	live_drain(l);
	foreign = tstats_get_stats(l->t)->foreign;
	assert_int_equal(getsockname(tstats_get_fd(l->t), (struct sockaddr *)&to, &tolen), 0);
	put_exit(&d, &ts, NULL);
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
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
	live_drain(l);
	assert_int_equal(l->n, 0);
	assert_int_equal(tstats_get_stats(l->t)->foreign, foreign + 1);
}

/*
 * tstats_open() in a child that first moved to new namespaces (@flags for
 * unshare()); with CLONE_NEWPID only the child's child is inside.  Returns
 * the child's result, or 1 when unshare() itself was not allowed.
 */
static int open_in_namespaces(int flags)
{
	int status = 0;
	pid_t pid = fork(), r;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct tstats *t = NULL;
		int ret;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (unshare(flags) < 0)
			_exit(255);
		if (flags & CLONE_NEWPID) {
			pid_t inner = fork();

			if (inner < 0)
				_exit(254);
			if (inner > 0)
				_exit(waitpid(inner, &ret, 0) == inner && WIFEXITED(ret)
					      ? WEXITSTATUS(ret)
					      : 253);
		}
		ret = tstats_open(&t, 0, TSTATS_OPEN_DEFAULT);
		tstats_free(t);
		_exit(-ret & 0xff);
	}
	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	assert_int_equal(r, pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status) == 255 ? 1 : -WEXITSTATUS(status);
}

/* Outside the initial namespaces registration is refused, and says so. */
static void test_live_namespaces_refused(void **state)
{
	struct live *l = *state;
	int r;

	live_open(l); /* skips where even the initial namespaces are refused */
	l->t = tstats_free(l->t);
	r = open_in_namespaces(CLONE_NEWUSER);
	if (r == 1)
		print_message("cannot create a user namespace; not checked\n");
	else
		assert_int_equal(r, -EPERM); /* no CAP_NET_ADMIN in the initial one */
	r = open_in_namespaces(CLONE_NEWPID);
	if (r == 1)
		print_message("cannot create a PID namespace; not checked\n");
	else
		assert_int_equal(r, -EINVAL); /* add_del_listener() */
	r = open_in_namespaces(CLONE_NEWNET);
	if (r == 1)
		print_message("cannot create a network namespace; not checked\n");
	else
		assert_int_equal(r, -EINVAL); /* check_init_netns() */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aggr_pid),
		cmocka_unit_test(test_aggr_tgid),
		cmocka_unit_test(test_several_in_one_datagram),
		cmocka_unit_test(test_comm_unterminated),
		cmocka_unit_test(test_stats_shorter_older_kernel),
		cmocka_unit_test(test_stats_minimum_length),
		cmocka_unit_test(test_stats_longer_newer_kernel),
		cmocka_unit_test(test_stats_version_15),
		cmocka_unit_test(test_null_padding_and_unknown),
		cmocka_unit_test(test_missing_attributes),
		cmocka_unit_test(test_bad_container_next_to_good),
		cmocka_unit_test(test_nested_len_beyond_container),
		cmocka_unit_test(test_message_without_records),
		cmocka_unit_test(test_wrong_sender),
		cmocka_unit_test(test_wrong_family),
		cmocka_unit_test(test_nlmsg_error),
		cmocka_unit_test(test_nlmsg_len_beyond_buffer),
		cmocka_unit_test(test_nlmsg_len_too_small),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_unaligned_buffer),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_null_callback),
		cmocka_unit_test(test_open_bad_flags),
		cmocka_unit_test_setup_teardown(test_live_exit, live_setup, live_teardown),
		cmocka_unit_test_setup_teardown(test_live_thread_group, live_setup, live_teardown),
		cmocka_unit_test_setup_teardown(test_live_spoofed_sender, live_setup,
						live_teardown),
		cmocka_unit_test_setup_teardown(test_live_namespaces_refused, live_setup,
						live_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
