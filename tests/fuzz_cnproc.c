/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for cnproc_decode().  The first input byte picks the
 * conditions, the rest is the datagram:
 *   bit 0: sender is not the kernel (everything must be dropped as foreign)
 *   bit 1: sequence tracking on
 *   bit 2: the callback stops at the third event
 * The datagram starts one byte into libFuzzer's buffer, so it is unaligned,
 * as a caller's buffer may be.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cnproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	int n;
	int stop_at;
};

static int check_event(const struct cnproc_event *ev, void *userdata)
{
	struct seen *s = userdata;

	if ((unsigned)ev->kind > CNPROC_UNKNOWN || !cnproc_kind_name(ev->kind))
		abort();
	if (memchr(ev->comm, '\0', sizeof(ev->comm)) == NULL)
		abort();
	s->n++;
	return s->stop_at && s->n >= s->stop_at ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cnproc_seq seq;
	struct cnproc_stats st = {0};
	struct seen s = {0};
	uint32_t sender;
	uint8_t ctl;
	int r;

	if (size < 1)
		return 0;
	ctl = data[0];
	sender = (ctl & 1) ? 1u + ctl : 0;
	memset(&seq, 0, sizeof(seq));
	seq.enabled = ctl & 2;
	s.stop_at = (ctl & 4) ? 3 : 0;

	r = cnproc_decode(data + 1, size - 1, sender, &st, &seq, check_event, &s);

	/* What the decoder reports must agree with what it did. */
	if (st.datagrams != 1 || st.events != (uint64_t)s.n)
		abort();
	if (r < 0 ? (r != -1 || s.n != s.stop_at) : r != s.n)
		abort();
	if (sender != 0 && (s.n != 0 || st.foreign != 1))
		abort();
	if (!seq.enabled && (st.seq_gaps || st.seq_missing))
		abort();
	if (st.seq_missing < st.seq_gaps)
		abort();
	return 0;
}
