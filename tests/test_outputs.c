/* SPDX-License-Identifier: MIT */
/*
 * What ptmon writes, when the other end does not cooperate: a reader that
 * never reads (pipes and FIFOs the test holds and leaves full), a
 * destination that fails (/dev/full, a 64 KiB tmpfs).  ptmon must return
 * within its bounds, with the documented status, and say what it lost.
 *
 * A stalled reader is made deterministic by holding the read end without
 * reading: ptmon fills it and must not wait for it.  ptmon's exit is waited
 * for on its pidfd with a generous bound (STUCK_S): a ptmon that blocks in
 * write(2) never exits, so only a hang can fail that check, never a slow
 * machine.  Every run is in the test's cgroup (tests/harness_run.h, one run a
 * test), which must be empty once ptmon is gone (the task's tree did not
 * survive).
 *
 * Needs root (cgroups; the shared-pipe case runs ptmon as uid 65534; the
 * full-filesystem cases mount a tmpfs).  Skips visibly otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness_run.h"

#define STUCK_S 20.0 /* ptmon not gone by then: it hangs */
#define NOBODY 65534

/* A tmpfs of 64 KiB mounted at "fs" in the test's directory: unmounted by
 * teardown, whatever the test did. */
static void small_fs_gone(struct ctx *c)
{
	const char *fs = tpath(c, "fs");

	umount2(fs, MNT_DETACH);
	rmdir(fs);
}

const struct harness_suite harness_suite = {
	.subject = "outputs",
	.tmpdir = true,
	.root = true,
	.teardown = small_fs_gone,
};

/* Fill the pipe whose write end is @fd, so that nothing more goes in. */
static void fill_pipe(int fd)
{
	static char junk[65536];
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	while (write(fd, junk, sizeof(junk)) > 0 || errno == EINTR)
		;
	assert_int_equal(errno, EAGAIN);
	fcntl(fd, F_SETFL, fl);
}

/* ---- blocking writes (issue 9, item 2) ------------------------------------ */

/*
 * ptmon's stdout and stderr are one pipe (2>&1) that nobody reads, full
 * before ptmon starts.  Its notices (-v), the task's output and --summary
 * all go there: the timeout must still fire and ptmon return.
 */
static void t_stderr_stalled(void **state)
{
	struct ctx *c = begin(state);
	struct run *r = new_run(c);
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fill_pipe(p[1]);
	struct opts o = {.out_fd = p[1], .err_fd = p[1]};
	run_start(c, r, &o, "-v", "--summary", "--no-control", "--timeout", "1s", "--grace",
		  "300ms", "--drain", "500ms", "--", "sh", "-c", "yes & sleep 1000; true", NULL);
	close(p[1]);
	run_wait(c, r, STUCK_S);
	close(p[0]);
	assert_status(r, 124);
	finish(c);
	print_message("    ptmon returned after %.2fs with its stderr stalled\n",
		      r->t_exit - r->t_start);
}

/*
 * ptmon as another user than the creator of its stdout pipe cannot reopen
 * it (/proc/self/fd/1: EACCES) and writes the shared, blocking description.
 * The reader never reads: ptmon must return at the timeout plus the drain
 * bound, and say what it dropped.  An anonymous pipe takes RWF_NOWAIT
 * (Linux 6.4+); a FIFO refuses it, and the poll() path writes.
 */
static void stdout_shared_stalled(void **state, bool fifo)
{
	struct ctx *c = begin(state);
	struct run *r = new_run(c);
	int out[2];

	if (fifo) {
		const char *path = tpath(c, "out");

		assert_int_equal(mkfifo(path, 0600), 0);
		out[0] = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		out[1] = open(path, O_WRONLY | O_CLOEXEC);
		assert_true(out[0] >= 0 && out[1] >= 0);
		unlink(path);
	} else {
		assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	}
	struct opts o = {.out_fd = out[1], .uid = NOBODY};
	run_start(c, r, &o, "--no-control", "--timeout", "1s", "--grace", "300ms", "--drain",
		  "500ms", "--", "yes", NULL);
	close(out[1]);
	run_wait(c, r, STUCK_S);
	close(out[0]);
	/* The harness's child says "test: exec" when execv() fails. */
	if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 120 &&
	    buf_has(&r->e, "test: exec ")) {
		print_message("uid %d cannot execute %s\n", NOBODY, PTMON_BIN);
		skip();
	}
	assert_status(r, 124);
	assert_stderr_has(r, "could not be written");
	finish(c);
	print_message("    ptmon as uid %d returned after %.2fs\n", NOBODY, r->t_exit - r->t_start);
}

static void t_stdout_shared_stalled(void **state)
{
	stdout_shared_stalled(state, false);
}

static void t_stdout_shared_fifo_stalled(void **state)
{
	stdout_shared_stalled(state, true);
}

/* A FIFO at @name in the test's directory, its read end held open (and
 * never read) in c->hold until teardown: ptmon's open for writing does not
 * wait, and its writes fill it. */
static const char *fifo_held(struct ctx *c, const char *name)
{
	const char *path = tpath(c, name);

	assert_int_equal(mkfifo(path, 0600), 0);
	c->hold = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(c->hold >= 0);
	return path;
}

/*
 * --report into a FIFO whose reader never reads: the report (more than a
 * pipe holds) cannot go; ptmon says so and fails the run.
 */
static void t_report_fifo_stalled(void **state)
{
	struct ctx *c = begin(state);
	struct run *r = new_run(c);

	run_start(c, r, NULL, "--no-control", "--report", fifo_held(c, "report"), "--", "sh", "-c",
		  "for i in $(seq 400); do /bin/true; done", NULL);
	run_wait(c, r, STUCK_S);
	assert_status(r, 125);
	assert_stderr_has(r, "the report is incomplete");
	finish(c);
}

/*
 * --events into a FIFO whose reader never reads: bounded already (the
 * writer never blocks, the end waits one second); what was not written is
 * said.
 */
static void t_events_fifo_stalled(void **state)
{
	struct ctx *c = begin(state);
	struct run *r = new_run(c);

	run_start(c, r, NULL, "--no-control", "--events", fifo_held(c, "events"), "--", "sh", "-c",
		  "for i in $(seq 400); do /bin/true; done", NULL);
	run_wait(c, r, STUCK_S);
	assert_status(r, 0); /* a slow reader costs events, not the run */
	assert_stderr_has(r, "events not written: the reader did not take them in time");
	finish(c);
}

/* ---- destinations that fail (items 7 and 8) -------------------------------- */

/* A tmpfs of 64 KiB at "fs" in the test's directory (its path), or skip. */
static const char *small_fs(struct ctx *c)
{
	const char *fs = tpath(c, "fs");

	assert_int_equal(mkdir(fs, 0700), 0);
	if (mount("none", fs, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") < 0) {
		print_message("mount tmpfs: %s\n", strerror(errno));
		skip();
	}
	return fs;
}

/* A field of the "done" line of an NDJSON text: its integer value, or -1
 * when absent. */
static long long done_field(const struct buf *events, const char *key)
{
	const char *done = strstr(events->p, "{\"type\":\"done\"");
	char pat[64];

	assert_non_null(done);
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *v = strstr(done, pat);
	return v ? strtoll(v + strlen(pat), NULL, 10) : -1;
}

/*
 * The task's stdout to /dev/full: the task is not cut off (it used to get
 * SIGPIPE, silently), the loss is said, counted in the done event, and the
 * run fails.
 */
static void t_stdout_dev_full(void **state)
{
	struct ctx *c = begin(state);
	struct run *r = new_run(c);
	struct buf events = {0};
	int full = open("/dev/full", O_WRONLY | O_CLOEXEC);

	assert_true(full >= 0);
	struct opts o = {.out_fd = full};
	run_start(c, r, &o, "--no-control", "--events", tpath(c, "events"), "--", "sh", "-c",
		  "head -c 200000 /dev/zero; echo \"head $?\" >&2", NULL);
	close(full);
	run_wait(c, r, STUCK_S);
	buf_add_file(&events, tpath(c, "events"));
	assert_status(r, 125);
	assert_stderr_has(r, "head 0\n"); /* head was not cut off by SIGPIPE */
	assert_stderr_has(r, "No space left on device");
	assert_true(buf_has(&events, "\"stdout_error\":\"No space left on device\""));
	assert_int_equal(done_field(&events, "stdout_dropped_bytes"), 200000);
	finish(c);
	buf_free(&events);
}

/* The same on a full filesystem: what was written and what was dropped add
 * up to what the task wrote. */
static void t_stdout_full_fs(void **state)
{
	struct ctx *c = begin(state);
	struct run *r = new_run(c);
	struct buf events = {0};
	char path[PATH_MAX];
	struct stat st;
	int out;

	snprintf(path, sizeof(path), "%s/out", small_fs(c));
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(out >= 0);
	struct opts o = {.out_fd = out};
	run_start(c, r, &o, "--no-control", "--events", tpath(c, "events"), "--", "sh", "-c",
		  "head -c 300000 /dev/zero", NULL);
	run_wait(c, r, STUCK_S);
	assert_int_equal(fstat(out, &st), 0);
	close(out);
	buf_add_file(&events, tpath(c, "events"));
	assert_status(r, 125);
	assert_stderr_has(r, "No space left on device");
	assert_int_equal(done_field(&events, "stdout_bytes"), 300000);
	assert_int_equal(done_field(&events, "stdout_dropped_bytes") + st.st_size, 300000);
	finish(c);
	buf_free(&events);
}

/* --events to /dev/full: said, and the run fails. */
static void t_events_dev_full(void **state)
{
	struct ctx *c = begin(state);
	struct run *r = new_run(c);

	run_start(c, r, NULL, "--no-control", "--events", "/dev/full", "--", "true", NULL);
	run_wait(c, r, STUCK_S);
	assert_status(r, 125);
	assert_stderr_has(r, "--events: cannot write '/dev/full': No space left on device");
	finish(c);
}

/*
 * --events on a full filesystem: the file ends with a whole line (the half
 * line the last write left is cut off again), the loss is said, the run
 * fails.  --report there too.
 */
static void t_events_full_fs(void **state)
{
	struct ctx *c = begin(state);
	struct run *r = new_run(c);
	struct buf events = {0};
	char evpath[PATH_MAX], rpath[PATH_MAX];
	const char *fs = small_fs(c);

	snprintf(evpath, sizeof(evpath), "%s/events", fs);
	snprintf(rpath, sizeof(rpath), "%s/report", fs);
	run_start(c, r, NULL, "--no-control", "--events", evpath, "--report", rpath, "--", "sh",
		  "-c", "for i in $(seq 400); do /bin/true; done", NULL);
	run_wait(c, r, STUCK_S);
	buf_add_file(&events, evpath);
	assert_status(r, 125);
	assert_stderr_has(r, "--events: cannot write");
	assert_stderr_has(r, "events not written");
	assert_stderr_has(r, "--report: cannot write");
	assert_true(events.len > 0);
	if (events.p[events.len - 1] != '\n')
		fail_msg("the events file ends inside a line: ...%s",
			 events.p + (events.len > 80 ? events.len - 80 : 0));
	finish(c);
	buf_free(&events);
}

/* clang-format off */
#define ENTRY(f) {#f, f, setup, teardown, (void *)backend_none}
/* clang-format on */

int main(void)
{
	const struct CMUnitTest tests[] = {
		ENTRY(t_stderr_stalled),
		ENTRY(t_stdout_shared_stalled),
		ENTRY(t_stdout_shared_fifo_stalled),
		ENTRY(t_report_fifo_stalled),
		ENTRY(t_events_fifo_stalled),
		ENTRY(t_stdout_dev_full),
		ENTRY(t_stdout_full_fs),
		ENTRY(t_events_dev_full),
		ENTRY(t_events_full_fs),
	};

	/* Writes to the pipes the tests leave full answer EPIPE, not death. */
	signal(SIGPIPE, SIG_IGN);
	if (getenv("PTMON_TEST_FILTER"))
		cmocka_set_test_filter(getenv("PTMON_TEST_FILTER"));
	return cmocka_run_group_tests_name("outputs", tests, group_setup, group_teardown);
}
