/* SPDX-License-Identifier: MIT */
/* The process tree's index and lists, on crafted pids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tree.h"

static int setup(void **state)
{
	static struct tree t;
	if (tree_init(&t) < 0)
		return -1;
	*state = &t;
	return 0;
}

static int teardown(void **state)
{
	tree_fini(*state);
	return 0;
}

static void test_add_lookup(void **state)
{
	struct tree *t = *state;
	assert_null(tree_lookup(t, 42));
	struct node *a = tree_add(t, 42);
	assert_non_null(a);
	assert_int_equal(a->pid, 42);
	assert_int_equal(a->pidfd, -1);
	assert_ptr_equal(tree_lookup(t, 42), a);
	assert_null(tree_lookup(t, 43));
	assert_int_equal(t->nodes, 1);
	assert_int_equal(t->indexed, 1);
}

/* A reused pid: the newest process is found, the old record is kept. */
static void test_reuse_keeps_record(void **state)
{
	struct tree *t = *state;
	struct node *old = tree_add(t, 7);
	struct node *young = tree_add(t, 7);
	assert_ptr_not_equal(old, young);
	assert_ptr_equal(tree_lookup(t, 7), young);
	assert_false(old->flags & NODE_INDEXED);
	assert_true(young->flags & NODE_INDEXED);
	assert_int_equal(t->nodes, 2);
	assert_int_equal(t->indexed, 1);
	/* Creation order survives. */
	assert_ptr_equal(t->first, old);
	assert_ptr_equal(old->next, young);
	assert_ptr_equal(t->last, young);
}

/* Enough pids to grow the table several times, wrapping around a small
 * pid_max as a fork storm does. */
static void test_grow_and_wrap(void **state)
{
	struct tree *t = *state;
	const int pid_max = 4096, total = 3 * 4096;
	for (int i = 0; i < total; i++)
		assert_non_null(tree_add(t, 300 + i % (pid_max - 300)));
	assert_int_equal(t->nodes, total);
	assert_int_equal(t->indexed, pid_max - 300);
	for (int pid = 300; pid < pid_max; pid++) {
		struct node *n = tree_lookup(t, pid);
		assert_non_null(n);
		assert_int_equal(n->pid, pid);
	}
	assert_true(t->nbuckets >= t->indexed);
	size_t count = 0;
	for (struct node *n = t->first; n; n = n->next)
		count++;
	assert_int_equal(count, total);
}

static void test_unindex(void **state)
{
	struct tree *t = *state;
	struct node *a = tree_add(t, 10);
	struct node *b = tree_add(t, 10 + 256); /* same bucket in a small table? either way */
	tree_unindex(t, a);
	assert_null(tree_lookup(t, 10));
	assert_ptr_equal(tree_lookup(t, 266), b);
	tree_unindex(t, a); /* twice is harmless */
	assert_int_equal(t->indexed, 1);
}

static void test_live_list(void **state)
{
	struct tree *t = *state;
	struct node_list l = {0};
	struct node *a = tree_add(t, 1), *b = tree_add(t, 2), *c = tree_add(t, 3);
	node_list_add(&l, a);
	node_list_add(&l, b);
	node_list_add(&l, c);
	assert_int_equal(l.count, 3);
	node_list_del(&l, b); /* middle */
	assert_int_equal(l.count, 2);
	assert_ptr_equal(l.head, c);
	assert_ptr_equal(c->live_next, a);
	node_list_del(&l, c); /* head */
	assert_ptr_equal(l.head, a);
	node_list_del(&l, b); /* not in the list: no change */
	assert_int_equal(l.count, 1);
	node_list_del(&l, a);
	assert_null(l.head);
	assert_int_equal(l.count, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuse_keeps_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grow_and_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unindex, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_list, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
