/* SPDX-License-Identifier: MIT */
/*
 * ptmon_process_sample() (monitor/sample.c), through libptmon on a task of
 * its own: the figures of a live process are its own (/proc, the same
 * moment), and a process that has exited reads as gone (-ESRCH) even while
 * the monitor has not learned of it yet and /proc still shows its pid (a
 * zombie): the pidfd, not the pid, says whose figures they are.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ptmon.h"

#define BOUND_MS 30000

struct fixture {
	struct ptmon_monitor *m;
	struct ptmon_task *t;
	int out[2]; /* the task's stdout, forwarded by the monitor */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Dispatch until the task's stdout has said @needle, within the bound. */
static void until_output(struct fixture *f, const char *needle)
{
	char seen[256] = "";
	size_t len = 0;
	double end = now_s() + BOUND_MS / 1000.0;
	while (!strstr(seen, needle)) {
		struct pollfd p[2] = {{.fd = ptmon_monitor_get_fd(f->m), .events = POLLIN},
				      {.fd = f->out[0], .events = POLLIN}};
		if (now_s() > end)
			fail_msg("'%s' not seen; got '%s'", needle, seen);
		if (poll(p, 2, 100) < 0)
			continue;
		if (p[0].revents)
			assert_true(ptmon_monitor_dispatch(f->m) >= 0);
		if (p[1].revents) {
			ssize_t n = read(f->out[0], seen + len, sizeof(seen) - 1 - len);
			assert_true(n > 0);
			len += (size_t)n;
			seen[len] = '\0';
		}
	}
}

static int setup(void **state)
{
	static struct fixture f;
	/* Busy for a moment (CPU time to see), then asleep, exec'd: the root is
	 * the one process of the task. */
	static char *const argv[] = {
		"sh", "-c",
		"i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo BUSY; exec sleep 1000",
		NULL};
	struct ptmon_task_config cfg;
	memset(&f, 0, sizeof(f));
	if (pipe2(f.out, O_CLOEXEC) < 0 || ptmon_monitor_new(&f.m, PTMON_BACKEND_PROCFS, 0) < 0)
		return -1;
	ptmon_task_config_init(&cfg, sizeof(cfg));
	cfg.argv = argv;
	cfg.stdout_fd = f.out[1];
	cfg.cgroup = PTMON_CGROUP_OFF;
	if (ptmon_task_start(f.m, &cfg, 0, &f.t) < 0)
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pid_t root = ptmon_task_root_pid(f->t);
	double end = now_s() + BOUND_MS / 1000.0;
	kill(root, SIGKILL); /* by pid: our own child, not reaped yet */
	while (!ptmon_task_done(f->t) && now_s() < end) {
		struct pollfd p = {.fd = ptmon_monitor_get_fd(f->m), .events = POLLIN};
		if (poll(&p, 1, 100) > 0)
			ptmon_monitor_dispatch(f->m);
	}
	ptmon_monitor_free(f->m);
	close(f->out[0]);
	close(f->out[1]);
	return 0;
}

/* The figures of a live process are those /proc shows for it. */
static void t_live(void **state)
{
	struct fixture *f = *state;
	until_output(f, "BUSY");
	pid_t root = ptmon_task_root_pid(f->t);
	const struct ptmon_process *p = ptmon_task_find_process(f->t, root);
	assert_non_null(p);
	struct ptmon_process_sample s = {.size = sizeof(s)};
	assert_int_equal(ptmon_process_sample(p, &s), 0);
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)root);
	FILE *fp = fopen(path, "re");
	assert_non_null(fp);
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	unsigned long ut, st;
	char state_now;
	assert_int_equal(sscanf(strrchr(buf, ')') + 1,
				" %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &state_now,
				&ut, &st),
			 3);
	assert_true(s.state == 'S' || s.state == 'R');
	/* 100,000 rounds of the shell's loop: more than one clock tick. */
	assert_true(s.cpu_us > 0);
	assert_true(s.cpu_us <= (ut + st) * 1000000u / (unsigned long)sysconf(_SC_CLK_TCK));
	assert_true(s.rss_bytes > 0);
	assert_int_equal(ptmon_process_sample(NULL, &s), -EINVAL);
}

/* Exited but not reaped (the monitor has not dispatched since): /proc
 * still has the pid, as a zombie; the pidfd says it has exited. */
static void t_exited_not_yet_known(void **state)
{
	struct fixture *f = *state;
	until_output(f, "BUSY");
	pid_t root = ptmon_task_root_pid(f->t);
	const struct ptmon_process *p = ptmon_task_find_process(f->t, root);
	assert_non_null(p);
	assert_int_equal(kill(root, SIGKILL), 0);
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)root, &si, WEXITED | WNOWAIT), 0);
	struct ptmon_process_sample s = {.size = sizeof(s), .state = 'x', .cpu_us = 7};
	assert_int_equal(ptmon_process_sample(p, &s), -ESRCH);
	assert_true(s.state == 'x' && s.cpu_us == 7); /* untouched */
	/* /proc does still show it: only the pidfd told. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)root);
	assert_int_equal(access(path, R_OK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(t_live, setup, teardown),
		cmocka_unit_test_setup_teardown(t_exited_not_yet_known, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
