/* SPDX-License-Identifier: MIT */
/*
 * libptmon's ABI as it grows (ptmon.h, "Structs that grow" and "Flags"):
 * a caller built against the first published layouts (local copies of them
 * here, truncated where those layouts end) runs with this library, which
 * writes nothing past the caller's size (canary bytes follow each struct);
 * a caller newer than the library is told -E2BIG when it sets a field the
 * library does not know, and reads zero from those it fills; a size below
 * the first layout, an unknown flag or cancel mode is -EINVAL; and the
 * process-wide RLIMIT_NOFILE is raised only when the caller asks, and the
 * subreaper role ends with the monitor.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ptmon.h"

#define CANARY 0xA5
#define SEC 1000000000ull

/* ---- the first published layouts, as an old caller has them --------------- */

struct old_task_config {
	size_t size;
	char *const *argv;
	uint64_t timeout_ns;
	uint64_t grace_ns;
	uint64_t drain_ns;
	int signal;
	enum ptmon_leftovers leftovers;
	int stdout_fd;
	int stderr_fd;
};

struct old_task_result {
	size_t size;
	pid_t root_pid;
	int root_status;
	int root_value;
	enum ptmon_cancel_reason cancel_reason;
	int cancel_signal;
	bool drain_timed_out;
	uint64_t processes;
	uint64_t signalled;
	uint64_t killed;
	uint64_t events_lost;
	uint64_t resyncs;
	uint64_t foreign_dropped;
	uint64_t pids_reused;
	uint64_t pidfd_failures;
	uint64_t cancel_to_empty_ns;
	uint64_t cancel_to_eof_ns;
	uint64_t bytes_out, bytes_err;
};

struct old_process_info {
	size_t size;
	uint64_t id;
	uint64_t parent_id;
	pid_t pid;
	pid_t ppid;
	const char *argv;
	size_t argv_len;
	char comm[16];
	uint64_t start_mono_ns;
	uint64_t end_mono_ns;
	uint64_t start_wall_ns;
	uint64_t end_wall_ns;
	enum ptmon_process_end end;
	int exit_code;
	int term_signal;
	int signal_sent;
	uint32_t threads;
	enum ptmon_acct_source acct;
	bool root;
	bool argv_truncated;
	bool core_dumped;
	bool short_lived;
	bool killed_by_ptmon;
	uint64_t utime_us;
	uint64_t stime_us;
	uint64_t maxrss_kb;
	uint64_t read_bytes;
	uint64_t write_bytes;
};

/* The copies are the prefixes the header promises. */
_Static_assert(sizeof(struct old_task_config) == PTMON_TASK_CONFIG_SIZE_VER0, "config VER0");
_Static_assert(offsetof(struct old_task_config, stderr_fd) ==
		       offsetof(struct ptmon_task_config, stderr_fd),
	       "config prefix");
_Static_assert(sizeof(struct old_task_result) == PTMON_TASK_RESULT_SIZE_VER0, "result VER0");
_Static_assert(offsetof(struct old_task_result, bytes_err) ==
		       offsetof(struct ptmon_task_result, bytes_err),
	       "result prefix");
_Static_assert(sizeof(struct old_process_info) == PTMON_PROCESS_INFO_SIZE_VER0, "info VER0");
_Static_assert(offsetof(struct old_process_info, write_bytes) ==
		       offsetof(struct ptmon_process_info, write_bytes),
	       "info prefix");

/* Each old struct with canary bytes right after it. */
struct old_cfg_buf {
	struct old_task_config cfg;
	unsigned char canary[64];
};
struct old_res_buf {
	struct old_task_result r;
	unsigned char canary[192];
};
struct old_info_buf {
	struct old_process_info p;
	unsigned char canary[64];
};

static void assert_canary(const unsigned char *c, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (c[i] != CANARY)
			fail_msg("%s: byte %zu past the caller's size was written (0x%02x)", what,
				 i, c[i]);
}

static struct ptmon_monitor *monitor(unsigned flags)
{
	struct ptmon_monitor *m = NULL;
	int r = ptmon_monitor_new(&m, PTMON_BACKEND_PROCFS, flags);
	if (r < 0)
		fail_msg("ptmon_monitor_new: %s", strerror(-r));
	return m;
}

/* ---- sized structs ------------------------------------------------------------ */

/* A caller with the first layouts: init, start, result and info work, and
 * write nothing past its structs.  The config's canary, read as the fields
 * that follow in this library's layout, would be an unknown cgroup mode and
 * huge limits: a library reading past cfg.size refuses the task. */
static void t_old_caller(void **state)
{
	static char *const argv[] = {"sh", "-c", "exit 3", NULL};
	struct old_cfg_buf cb;
	struct old_res_buf rb;
	struct old_info_buf ib;
	struct ptmon_task *t = NULL;
	struct ptmon_monitor *m = monitor(0);

	(void)state;
	memset(&cb, CANARY, sizeof(cb));
	assert_int_equal(
		ptmon_task_config_init((struct ptmon_task_config *)&cb.cfg, sizeof(cb.cfg)), 0);
	assert_canary(cb.canary, sizeof(cb.canary), "ptmon_task_config_init");
	assert_int_equal(cb.cfg.size, sizeof(cb.cfg));
	assert_int_equal(cb.cfg.signal, SIGTERM);
	assert_int_equal(cb.cfg.grace_ns, PTMON_DEFAULT_GRACE_NS);
	assert_int_equal(cb.cfg.drain_ns, PTMON_DEFAULT_DRAIN_NS);
	assert_int_equal(cb.cfg.timeout_ns, 0);
	assert_int_equal(cb.cfg.leftovers, PTMON_LEFTOVERS_KILL);
	assert_int_equal(cb.cfg.stdout_fd, 1);
	assert_int_equal(cb.cfg.stderr_fd, 2);
	cb.cfg.argv = argv;
	cb.cfg.timeout_ns = 60 * SEC;
	int r = ptmon_task_start(m, (const struct ptmon_task_config *)&cb.cfg, 0, &t);
	if (r < 0)
		fail_msg("ptmon_task_start with the first layout: %s", strerror(-r));
	assert_int_equal(ptmon_monitor_run(m), 0);

	memset(&rb, CANARY, sizeof(rb));
	rb.r.size = sizeof(rb.r);
	assert_int_equal(ptmon_task_result(t, (struct ptmon_task_result *)&rb.r), 0);
	assert_canary(rb.canary, sizeof(rb.canary), "ptmon_task_result");
	assert_int_equal(rb.r.size, sizeof(rb.r));
	assert_int_equal(rb.r.root_status, CLD_EXITED);
	assert_int_equal(rb.r.root_value, 3);
	assert_int_equal(rb.r.cancel_reason, PTMON_CANCEL_NONE);
	assert_true(rb.r.processes >= 1);
	assert_int_equal(rb.r.root_pid, ptmon_task_root_pid(t));

	const struct ptmon_process *root = ptmon_task_find_process(t, rb.r.root_pid);
	assert_non_null(root);
	memset(&ib, CANARY, sizeof(ib));
	ib.p.size = sizeof(ib.p);
	assert_int_equal(ptmon_process_get_info(root, (struct ptmon_process_info *)&ib.p), 0);
	assert_canary(ib.canary, sizeof(ib.canary), "ptmon_process_get_info");
	assert_int_equal(ib.p.size, sizeof(ib.p));
	assert_int_equal(ib.p.pid, rb.r.root_pid);
	assert_true(ib.p.root);
	assert_int_equal(ib.p.end, PTMON_END_EXITED);
	assert_int_equal(ib.p.exit_code, 3);
	assert_int_equal(ib.p.id, 1);
	ptmon_monitor_free(m);
}

/* Sizes below the first layouts (0: the caller forgot) are refused, and
 * init writes only the size field it was told of. */
static void t_too_small(void **state)
{
	static char *const argv[] = {"true", NULL};
	struct ptmon_monitor *m = monitor(0);
	struct ptmon_task *t = NULL;
	struct old_cfg_buf cb;
	struct ptmon_attach_config ac;

	(void)state;
	memset(&cb, CANARY, sizeof(cb));
	assert_int_equal(ptmon_task_config_init((struct ptmon_task_config *)&cb.cfg,
						PTMON_TASK_CONFIG_SIZE_VER0 - 8),
			 -EINVAL);
	assert_int_equal(cb.cfg.size, PTMON_TASK_CONFIG_SIZE_VER0 - 8);
	assert_canary((const unsigned char *)&cb + sizeof(size_t), sizeof(cb) - sizeof(size_t),
		      "ptmon_task_config_init of a too small size");
	assert_int_equal(ptmon_task_config_init(NULL, sizeof(struct ptmon_task_config)), -EINVAL);

	struct ptmon_task_config cfg;
	assert_int_equal(ptmon_task_config_init(&cfg, sizeof(cfg)), 0);
	cfg.argv = argv;
	for (size_t bad = 0; bad < PTMON_TASK_CONFIG_SIZE_VER0; bad += 8) {
		cfg.size = bad;
		assert_int_equal(ptmon_task_start(m, &cfg, 0, &t), -EINVAL);
	}
	cfg.size = PTMON_TASK_CONFIG_SIZE_VER0 - 1;
	assert_int_equal(ptmon_task_start(m, &cfg, 0, &t), -EINVAL);
	assert_null(t);

	assert_int_equal(ptmon_attach_config_init(&ac, sizeof(ac)), 0);
	assert_int_equal(ac.size, sizeof(ac));
	assert_int_equal(ac.signal, SIGTERM);
	ac.pid = getpid();
	ac.size = PTMON_ATTACH_CONFIG_SIZE_VER0 - 8;
	assert_int_equal(ptmon_task_attach(m, &ac, 0, &t), -EINVAL);
	ac.size = 0;
	assert_int_equal(ptmon_task_attach(m, &ac, 0, &t), -EINVAL);

	/* A finished task, for the outputs. */
	cfg.size = sizeof(cfg);
	cfg.cgroup = PTMON_CGROUP_OFF;
	assert_int_equal(ptmon_task_start(m, &cfg, 0, &t), 0);
	assert_int_equal(ptmon_monitor_run(m), 0);
	struct old_res_buf rb;
	memset(&rb, CANARY, sizeof(rb));
	rb.r.size = PTMON_TASK_RESULT_SIZE_VER0 - 8;
	assert_int_equal(ptmon_task_result(t, (struct ptmon_task_result *)&rb.r), -EINVAL);
	assert_canary((const unsigned char *)&rb + sizeof(size_t), sizeof(rb) - sizeof(size_t),
		      "ptmon_task_result of a too small size");
	struct ptmon_task_result res = {.size = 0};
	assert_int_equal(ptmon_task_result(t, &res), -EINVAL);
	/* A size never set: neither scanned nor cleared that far. */
	res.size = (size_t)-1;
	assert_int_equal(ptmon_task_result(t, &res), -EINVAL);
	cfg.size = 4097;
	assert_int_equal(ptmon_task_start(m, &cfg, 0, &t), -E2BIG);
	struct old_info_buf ib;
	memset(&ib, CANARY, sizeof(ib));
	ib.p.size = PTMON_PROCESS_INFO_SIZE_VER0 - 1;
	const struct ptmon_process *root = ptmon_task_find_process(t, ptmon_task_root_pid(t));
	assert_non_null(root);
	assert_int_equal(ptmon_process_get_info(root, (struct ptmon_process_info *)&ib.p), -EINVAL);
	assert_canary((const unsigned char *)&ib + sizeof(size_t), sizeof(ib) - sizeof(size_t),
		      "ptmon_process_get_info of a too small size");
	ptmon_monitor_free(m);
}

/* A caller built against a newer ptmon.h: what it sets in a field this
 * library does not know is refused; what it reads there is zero. */
static void t_newer_caller(void **state)
{
	static char *const argv[] = {"sh", "-c", "exit 4", NULL};
	struct {
		struct ptmon_task_config cfg;
		uint64_t future;
	} nc;
	struct {
		struct ptmon_task_result r;
		uint64_t future;
	} nr;
	struct {
		struct ptmon_process_info p;
		uint64_t future;
	} ni;
	struct ptmon_monitor *m = monitor(0);
	struct ptmon_task *t = NULL;

	(void)state;
	memset(&nc, CANARY, sizeof(nc));
	assert_int_equal(ptmon_task_config_init(&nc.cfg, sizeof(nc)), 0);
	assert_int_equal(nc.cfg.size, sizeof(nc));
	assert_int_equal(nc.future, 0); /* unknown to this library: zero */
	nc.cfg.argv = argv;
	nc.cfg.cgroup = PTMON_CGROUP_OFF;
	nc.future = 1;
	assert_int_equal(ptmon_task_start(m, &nc.cfg, 0, &t), -E2BIG);
	assert_null(t);
	nc.future = 0;
	assert_int_equal(ptmon_task_start(m, &nc.cfg, 0, &t), 0);
	assert_int_equal(ptmon_monitor_run(m), 0);

	memset(&nr, CANARY, sizeof(nr));
	nr.r.size = sizeof(nr);
	assert_int_equal(ptmon_task_result(t, &nr.r), 0);
	assert_int_equal(nr.r.size, sizeof(nr));
	assert_int_equal(nr.r.root_value, 4);
	assert_int_equal(nr.future, 0);

	memset(&ni, CANARY, sizeof(ni));
	ni.p.size = sizeof(ni);
	assert_int_equal(ptmon_process_get_info(ptmon_task_find_process(t, nr.r.root_pid), &ni.p),
			 0);
	assert_int_equal(ni.p.size, sizeof(ni));
	assert_int_equal(ni.p.exit_code, 4);
	assert_null(ni.p.survived);
	assert_int_equal(ni.future, 0);
	ptmon_monitor_free(m);
}

/* An event says how much of it there is. */
static void on_event(const struct ptmon_event *ev, void *ud)
{
	size_t *sizes = ud;
	sizes[ev->size == sizeof(*ev)]++;
}

static void t_event_size(void **state)
{
	static char *const argv[] = {"true", NULL};
	struct ptmon_monitor *m = monitor(0);
	struct ptmon_task_config cfg;
	struct ptmon_task *t = NULL;
	size_t sizes[2] = {0, 0};

	(void)state;
	ptmon_monitor_set_event_callback(m, on_event, sizes);
	assert_int_equal(ptmon_task_config_init(&cfg, sizeof(cfg)), 0);
	cfg.argv = argv;
	cfg.cgroup = PTMON_CGROUP_OFF;
	assert_int_equal(ptmon_task_start(m, &cfg, 0, &t), 0);
	assert_int_equal(ptmon_monitor_run(m), 0);
	assert_int_equal(sizes[0], 0);
	assert_true(sizes[1] >= 2); /* START, EXIT, DONE at least */
	ptmon_monitor_free(m);
}

/* ---- flags -------------------------------------------------------------------- */

static void t_unknown_flags(void **state)
{
	static char *const argv[] = {"sleep", "1000", NULL};
	struct ptmon_monitor *m = NULL;
	struct ptmon_task_config cfg;
	struct ptmon_attach_config ac;
	struct ptmon_task *t = NULL;

	(void)state;
	for (unsigned bit = 3; bit < 32; bit++)
		assert_int_equal(ptmon_monitor_new(&m, PTMON_BACKEND_PROCFS, 1u << bit), -EINVAL);
	assert_int_equal(
		ptmon_monitor_new(&m, PTMON_BACKEND_PROCFS,
				  PTMON_MONITOR_FILTER_CLASSIC | PTMON_MONITOR_FILTER_TREE),
		-EINVAL);
	assert_null(m);
	m = monitor(0);
	assert_int_equal(ptmon_task_config_init(&cfg, sizeof(cfg)), 0);
	cfg.argv = argv;
	cfg.cgroup = PTMON_CGROUP_OFF;
	for (unsigned bit = 0; bit < 32; bit++)
		assert_int_equal(ptmon_task_start(m, &cfg, 1u << bit, &t), -EINVAL);
	assert_null(t);
	assert_int_equal(ptmon_attach_config_init(&ac, sizeof(ac)), 0);
	ac.pid = getpid();
	for (unsigned bit = 0; bit < 32; bit++)
		assert_int_equal(ptmon_task_attach(m, &ac, 1u << bit, &t), -EINVAL);
	assert_null(t);

	assert_int_equal(ptmon_task_start(m, &cfg, 0, &t), 0);
	for (unsigned bit = 1; bit < 32; bit++)
		assert_int_equal(ptmon_task_cancel(t, PTMON_CANCEL_REQUEST, 1u << bit), -EINVAL);
	assert_int_equal(ptmon_task_cancel(t, PTMON_CANCEL_NONE, PTMON_CANCEL_NOW), -EINVAL);
	assert_int_equal(ptmon_task_cancel(t, (enum ptmon_cancel_reason)99, PTMON_CANCEL_NOW),
			 -EINVAL);
	assert_int_equal(ptmon_task_cancel(NULL, PTMON_CANCEL_REQUEST, PTMON_CANCEL_NOW), -EINVAL);
	/* None of those cancelled it. */
	assert_int_equal(ptmon_monitor_dispatch(m), 1);
	assert_false(ptmon_task_done(t));
	assert_int_equal(ptmon_task_cancel(t, PTMON_CANCEL_REQUEST, PTMON_CANCEL_NOW), 0);
	assert_int_equal(ptmon_monitor_run(m), 0);
	struct ptmon_task_result res = {.size = sizeof(res)};
	assert_int_equal(ptmon_task_result(t, &res), 0);
	assert_int_equal(res.cancel_reason, PTMON_CANCEL_REQUEST);
	ptmon_monitor_free(m);
}

/* GRACEFUL sends the task's first signal, NOW goes straight to SIGKILL. */
static int root_death(unsigned how)
{
	static char *const argv[] = {"sleep", "1000", NULL};
	struct ptmon_monitor *m = monitor(0);
	struct ptmon_task_config cfg;
	struct ptmon_task *t = NULL;
	struct ptmon_process_info p = {.size = sizeof(p)};

	assert_int_equal(ptmon_task_config_init(&cfg, sizeof(cfg)), 0);
	cfg.argv = argv;
	cfg.cgroup = PTMON_CGROUP_OFF;
	cfg.signal = SIGUSR1;
	cfg.grace_ns = 60 * SEC;
	assert_int_equal(ptmon_task_start(m, &cfg, 0, &t), 0);
	assert_int_equal(ptmon_task_cancel(t, PTMON_CANCEL_REQUEST, how), 0);
	assert_int_equal(ptmon_monitor_run(m), 0);
	assert_int_equal(
		ptmon_process_get_info(ptmon_task_find_process(t, ptmon_task_root_pid(t)), &p), 0);
	assert_int_equal(p.end, PTMON_END_SIGNALED);
	ptmon_monitor_free(m);
	return p.term_signal;
}

static void t_cancel_modes(void **state)
{
	(void)state;
	assert_int_equal(root_death(PTMON_CANCEL_GRACEFUL), SIGUSR1);
	assert_int_equal(root_death(PTMON_CANCEL_NOW), SIGKILL);
}

/* ---- process-wide policy --------------------------------------------------------- */

/* The soft limit `sh -c 'ulimit -n'` sees as a task of @m. */
static long task_nofile(struct ptmon_monitor *m)
{
	static char *const argv[] = {"sh", "-c", "ulimit -n", NULL};
	struct ptmon_task_config cfg;
	struct ptmon_task *t = NULL;
	int p[2];
	char buf[64] = "";

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(ptmon_task_config_init(&cfg, sizeof(cfg)), 0);
	cfg.argv = argv;
	cfg.cgroup = PTMON_CGROUP_OFF;
	cfg.stdout_fd = p[1];
	assert_int_equal(ptmon_task_start(m, &cfg, 0, &t), 0);
	assert_int_equal(ptmon_monitor_run(m), 0);
	close(p[1]);
	ssize_t n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	assert_true(n > 0);
	return strtol(buf, NULL, 10);
}

/* RLIMIT_NOFILE belongs to the process: the library raises it only when
 * asked (PTMON_MONITOR_RAISE_NOFILE), and its tasks start with the limit
 * the caller had either way. */
static void t_nofile_opt_in(void **state)
{
	struct rlimit orig, low, now;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &orig), 0);
	if (orig.rlim_max != RLIM_INFINITY && orig.rlim_max < 128)
		skip();
	low = orig;
	low.rlim_cur = 100;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

	struct ptmon_monitor *m = monitor(0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
	assert_int_equal(now.rlim_cur, 100);
	assert_int_equal(task_nofile(m), 100);
	ptmon_monitor_free(m);

	m = monitor(PTMON_MONITOR_RAISE_NOFILE);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
	assert_true(now.rlim_cur == low.rlim_max);
	assert_int_equal(task_nofile(m), 100);
	ptmon_monitor_free(m);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &orig), 0);
}

/* The subreaper role lasts as long as the monitor, as the header says; a
 * caller that was a subreaper before stays one. */
static void t_subreaper_restored(void **state)
{
	int on = -1;

	(void)state;
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
	struct ptmon_monitor *m = monitor(0);
	assert_int_equal(prctl(PR_GET_CHILD_SUBREAPER, &on), 0);
	assert_int_equal(on, 1);
	ptmon_monitor_free(m);
	assert_int_equal(prctl(PR_GET_CHILD_SUBREAPER, &on), 0);
	assert_int_equal(on, 0);

	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	ptmon_monitor_free(monitor(0));
	assert_int_equal(prctl(PR_GET_CHILD_SUBREAPER, &on), 0);
	assert_int_equal(on, 1);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_old_caller),    cmocka_unit_test(t_too_small),
		cmocka_unit_test(t_newer_caller),  cmocka_unit_test(t_event_size),
		cmocka_unit_test(t_unknown_flags), cmocka_unit_test(t_cancel_modes),
		cmocka_unit_test(t_nofile_opt_in), cmocka_unit_test(t_subreaper_restored),
	};

	if (getenv("PTMON_TEST_FILTER"))
		cmocka_set_test_filter(getenv("PTMON_TEST_FILTER"));
	return cmocka_run_group_tests_name("abi", tests, NULL, NULL);
}
