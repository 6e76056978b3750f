/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for tstats_decode().  The first input byte picks the
 * conditions, the rest is the datagram:
 *   bit 0: sender is not the kernel (everything must be dropped as foreign)
 *   bit 1: the callback stops at the second record
 *   bit 2: family id FUZZ_FAMILY + 1, so that the family's messages are foreign
 * The datagram starts one byte into libFuzzer's buffer, so it is unaligned,
 * as a caller's buffer may be.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "taskstats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The type the seeds use for their messages. */
#define FUZZ_FAMILY 27

struct seen {
	int n;
	int stop_at;
};

static int check_record(const struct tstats_record *rec, void *userdata)
{
	struct seen *s = userdata;

	if (memchr(rec->comm, '\0', sizeof(rec->comm)) == NULL)
		abort();
	if (rec->is_tgid != true && rec->is_tgid != false)
		abort();
	s->n++;
	return s->stop_at && s->n >= s->stop_at ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tstats_stats st = {0};
	struct seen s = {0};
	uint16_t family;
	uint32_t sender;
	uint8_t ctl;
	int r;

	if (size < 1)
		return 0;
	ctl = data[0];
	sender = (ctl & 1) ? 1u + ctl : 0;
	s.stop_at = (ctl & 2) ? 2 : 0;
	family = (ctl & 4) ? FUZZ_FAMILY + 1 : FUZZ_FAMILY;

	r = tstats_decode(data + 1, size - 1, sender, family, &st, check_record, &s);

	/* What the decoder reports must agree with what it did. */
	if (st.datagrams != 1 || st.records != (uint64_t)s.n || st.overruns != 0)
		abort();
	if (r < 0 ? (r != -1 || s.n != s.stop_at) : r != s.n)
		abort();
	if (sender != 0 && (s.n != 0 || st.foreign != 1 || st.malformed != 0))
		abort();
	return 0;
}
