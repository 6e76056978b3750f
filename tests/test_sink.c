/* SPDX-License-Identifier: MIT */
/*
 * The sink (monitor/sink.c) on crafted input: the order of delivery, what
 * callbacks queue while it delivers, and what it could not queue for want
 * of memory.  It includes sink.c itself, to reach the private count of
 * what was dropped (which only a failed allocation raises).
 */
#include "../monitor/sink.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

struct seen {
	struct sink *s;
	char text[8][128];
	size_t n;          /* delivered; the first 8 in text */
	char last[2][128]; /* the last two delivered */
	bool requeue;      /* the "lost" notice's callback queues one more */
};

static void on_notice(struct ptmon_task *t, enum ptmon_notice_kind kind, const char *text,
		      void *userdata)
{
	struct seen *x = userdata;
	(void)t;
	(void)kind;
	if (x->n < 8)
		snprintf(x->text[x->n], sizeof(x->text[0]), "%s", text);
	x->n++;
	memcpy(x->last[0], x->last[1], sizeof(x->last[0]));
	snprintf(x->last[1], sizeof(x->last[1]), "%s", text);
	if (x->requeue && strstr(text, "were lost")) {
		x->requeue = false;
		sink_notice(x->s, NULL, PTMON_NOTICE_INFO, "from the callback");
	}
}

static void t_order(void **state)
{
	struct seen x = {0};
	(void)state;
	x.s = sink_new();
	assert_non_null(x.s);
	sink_set_notice_fn(x.s, on_notice, &x);
	sink_notice(x.s, NULL, PTMON_NOTICE_INFO, "one");
	sink_notice(x.s, NULL, PTMON_NOTICE_INFO, "two");
	assert_int_equal(x.n, 0); /* nothing before the flush */
	assert_true(sink_pending(x.s));
	sink_flush(x.s);
	assert_int_equal(x.n, 2);
	assert_string_equal(x.text[0], "one");
	assert_string_equal(x.text[1], "two");
	assert_false(sink_pending(x.s));
	sink_free(x.s);
}

/* What could not be queued is said once, at the next flush, after what
 * was queued. */
static void t_dropped_told(void **state)
{
	struct seen x = {0};
	(void)state;
	x.s = sink_new();
	sink_set_notice_fn(x.s, on_notice, &x);
	sink_notice(x.s, NULL, PTMON_NOTICE_INFO, "kept");
	x.s->dropped = 3; /* as three failed allocations would leave it */
	assert_true(sink_pending(x.s));
	sink_flush(x.s);
	assert_int_equal(x.n, 2);
	assert_string_equal(x.text[0], "kept");
	assert_non_null(strstr(x.text[1], "3 events or notices were lost"));
	assert_false(sink_pending(x.s));
	sink_flush(x.s);
	assert_int_equal(x.n, 2); /* said once */
	sink_free(x.s);
}

/* A callback of that notice may call back into the library: what it
 * queues is delivered in the same flush, also when the queue had grown
 * past what is kept (SINK_KEEP) and is freed at the end. */
static void t_dropped_callback_queues(void **state)
{
	struct seen x = {.requeue = true};
	(void)state;
	x.s = sink_new();
	sink_set_notice_fn(x.s, on_notice, &x);
	for (int i = 0; i < SINK_KEEP + 10; i++)
		sink_notice(x.s, NULL, PTMON_NOTICE_INFO, "before %d", i);
	assert_true(x.s->cap > SINK_KEEP); /* freed at the end of this flush */
	x.s->dropped = 1;
	sink_flush(x.s);
	assert_int_equal(x.n, SINK_KEEP + 10 + 2);
	assert_non_null(strstr(x.last[0], "1 events or notices were lost"));
	assert_string_equal(x.last[1], "from the callback");
	assert_int_equal(x.s->len, 0);
	assert_false(sink_pending(x.s));
	sink_notice(x.s, NULL, PTMON_NOTICE_INFO, "after");
	sink_flush(x.s);
	assert_int_equal(x.n, SINK_KEEP + 10 + 3);
	assert_string_equal(x.last[1], "after");
	sink_free(x.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_order),
		cmocka_unit_test(t_dropped_told),
		cmocka_unit_test(t_dropped_callback_queues),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
