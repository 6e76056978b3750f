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
 * machine.  Every run is in a cgroup of its own, which must be empty once
 * ptmon is gone (the task's tree did not survive).
 *
 * Needs root (cgroups; the shared-pipe case runs ptmon as uid 65534; the
 * full-filesystem cases mount a tmpfs).  Skips visibly otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#ifndef PTMON_BIN
#error "PTMON_BIN must name the ptmon binary"
#endif

#define STUCK_S 20 /* ptmon not gone by then: it hangs */
#define SUBJECT "outputs" /* cgroups are ptmon-outputs.PID.N */
#define NOBODY 65534

struct run {
	char cg[384];
	pid_t pid;
	int pidfd;
	int status;
	double took;
	char err[65536]; /* ptmon's stderr, when the test gave it a pipe */
	size_t err_len;
};

static bool cg_wait_empty(const struct run *r, double bound_s)
{
	return cg_wait_empty_at(r->cg, (int)(bound_s * 1000));
}

static void cg_kill(const struct run *r)
{
	cg_kill_at(r->cg);
}

struct spawn {
	int out, err; /* ptmon's stdout and stderr */
	bool nobody;  /* run ptmon as uid/gid 65534 */
};

/* Start ptmon with @argv (after "ptmon"), in a new cgroup, stdin
 * /dev/null. */
static void run_start(struct run *r, const struct spawn *sp, const char *const *argv)
{
	char procs[512], pidtext[32];
	const char *args[32] = {PTMON_BIN};
	int n = 1, fd;
	pid_t parent = getpid();

	for (; *argv; argv++)
		args[n++] = *argv;
	args[n] = NULL;
	memset(r, 0, sizeof(*r));
	assert_int_equal(cg_make(SUBJECT, NULL, r->cg, sizeof(r->cg)), 0);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", r->cg);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	r->took = now_s();
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		snprintf(pidtext, sizeof(pidtext), "%d", getpid());
		if (write(fd, pidtext, strlen(pidtext)) < 0)
			_exit(91);
		if (null < 0 || dup2(null, 0) < 0 || dup2(sp->out, 1) < 0 || dup2(sp->err, 2) < 0)
			_exit(92);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(93);
		if (sp->nobody && (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
				   setresuid(NOBODY, NOBODY, NOBODY) < 0))
			_exit(94);
		execv(PTMON_BIN, (char **)args);
		_exit(90);
	}
	close(fd);
	r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
	assert_true(r->pidfd >= 0);
}

/* Wait for ptmon on its pidfd, STUCK_S at most; then kill it, and fail.
 * The tree must be gone with it. */
static void run_wait(struct run *r)
{
	struct pollfd p = {.fd = r->pidfd, .events = POLLIN};
	int k;

	do
		k = poll(&p, 1, STUCK_S * 1000);
	while (k < 0 && errno == EINTR);
	if (k == 0) {
		char path[64], sys[256] = "";

		snprintf(path, sizeof(path), "/proc/%d/wchan", r->pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, sys, sizeof(sys) - 1);
			sys[n > 0 ? n : 0] = '\0';
			close(fd);
		}
		syscall(SYS_pidfd_send_signal, r->pidfd, SIGKILL, NULL, 0);
		waitpid(r->pid, NULL, 0);
		cg_kill(r);
		cg_wait_empty(r, 5);
		rmdir(r->cg);
		close(r->pidfd);
		fail_msg("ptmon did not return within %ds (waiting in %s)", STUCK_S, sys);
	}
	r->took = now_s() - r->took;
	while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR)
		;
	close(r->pidfd);
	if (!cg_wait_empty(r, 5)) {
		cg_kill(r);
		cg_wait_empty(r, 5);
		rmdir(r->cg);
		fail_msg("the task's tree survived ptmon");
	}
	rmdir(r->cg);
}

/* Take what ptmon wrote to the stderr pipe @fd (ptmon has exited). */
static void take_stderr(struct run *r, int fd)
{
	ssize_t n;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	while ((n = read(fd, r->err + r->err_len, sizeof(r->err) - 1 - r->err_len)) > 0)
		r->err_len += (size_t)n;
	r->err[r->err_len] = '\0';
}

static void assert_exit(const struct run *r, int code)
{
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != code)
		fail_msg("ptmon: status 0x%x, want exit %d; stderr:\n%s", r->status, code, r->err);
}

static void assert_said(const struct run *r, const char *needle)
{
	if (!strstr(r->err, needle))
		fail_msg("ptmon's stderr lacks \"%s\":\n%s", needle, r->err);
}

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

static size_t slurp_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n;

	assert_true(fd >= 0);
	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
	return len;
}

static void need_root(void)
{
	if (!cg_mount[0]) {
		print_message("no cgroup2 mount: cannot check the tree independently\n");
		skip();
	}
	if (geteuid() != 0) {
		print_message("not root\n");
		skip();
	}
}

/* ---- blocking writes (issue 9, item 2) ------------------------------------ */

/*
 * ptmon's stdout and stderr are one pipe (2>&1) that nobody reads, full
 * before ptmon starts.  Its notices (-v), the task's output and --summary
 * all go there: the timeout must still fire and ptmon return.
 */
static void t_stderr_stalled(void **state)
{
	struct run r;
	int p[2];

	need_root();
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fill_pipe(p[1]);
	struct spawn sp = {.out = p[1], .err = p[1]};
	const char *argv[] = {"run",	 "-v",	   "--summary", "--no-control", "--timeout",
			      "1s",	 "--grace", "300ms",     "--drain",	     "500ms",
			      "--",	 "sh",	   "-c",	"yes & sleep 1000; true", NULL};
	run_start(&r, &sp, argv);
	close(p[1]);
	run_wait(&r);
	close(p[0]);
	assert_exit(&r, 124);
	print_message("    ptmon returned after %.2fs with its stderr stalled\n", r.took);
}

/*
 * ptmon as another user than the creator of its stdout pipe cannot reopen
 * it (/proc/self/fd/1: EACCES) and writes the shared, blocking description.
 * The reader never reads: ptmon must return at the timeout plus the drain
 * bound, and say what it dropped.  An anonymous pipe takes RWF_NOWAIT
 * (Linux 6.4+); a FIFO refuses it, and the poll() path writes.
 */
static void stdout_shared_stalled(bool fifo)
{
	struct run r;
	char dir[] = "/tmp/ptmon-outputs.XXXXXX", path[64];
	int out[2], err[2];

	need_root();
	if (fifo) {
		assert_non_null(mkdtemp(dir));
		snprintf(path, sizeof(path), "%s/out", dir);
		assert_int_equal(mkfifo(path, 0600), 0);
		out[0] = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		out[1] = open(path, O_WRONLY | O_CLOEXEC);
		assert_true(out[0] >= 0 && out[1] >= 0);
		unlink(path);
		rmdir(dir);
	} else {
		assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	}
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	struct spawn sp = {.out = out[1], .err = err[1], .nobody = true};
	const char *argv[] = {"run",   "--no-control", "--timeout", "1s", "--grace", "300ms",
			      "--drain", "500ms",	 "--",	      "yes", NULL};
	run_start(&r, &sp, argv);
	close(out[1]);
	close(err[1]);
	run_wait(&r);
	take_stderr(&r, err[0]);
	close(out[0]);
	close(err[0]);
	if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 90) {
		print_message("uid %d cannot execute %s\n", NOBODY, PTMON_BIN);
		skip();
	}
	assert_exit(&r, 124);
	assert_said(&r, "could not be written");
	print_message("    ptmon as uid %d returned after %.2fs\n", NOBODY, r.took);
}

static void t_stdout_shared_stalled(void **state)
{
	stdout_shared_stalled(false);
}

static void t_stdout_shared_fifo_stalled(void **state)
{
	stdout_shared_stalled(true);
}

/*
 * --report into a FIFO whose reader never reads: the report (more than a
 * pipe holds) cannot go; ptmon says so and fails the run.
 */
static void t_report_fifo_stalled(void **state)
{
	struct run r;
	char dir[] = "/tmp/ptmon-outputs.XXXXXX", fifo[64];
	int err[2], null = open("/dev/null", O_WRONLY | O_CLOEXEC), rd;

	need_root();
	assert_non_null(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/report", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	rd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* held, never read */
	assert_true(rd >= 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	struct spawn sp = {.out = null, .err = err[1]};
	const char *argv[] = {"run", "--no-control", "--report", fifo, "--", "sh", "-c",
			      "for i in $(seq 400); do /bin/true; done", NULL};
	run_start(&r, &sp, argv);
	close(err[1]);
	run_wait(&r);
	take_stderr(&r, err[0]);
	close(err[0]);
	close(rd);
	close(null);
	unlink(fifo);
	rmdir(dir);
	assert_exit(&r, 125);
	assert_said(&r, "the report is incomplete");
}

/*
 * --events into a FIFO whose reader never reads: bounded already (the
 * writer never blocks, the end waits one second); what was not written is
 * said.
 */
static void t_events_fifo_stalled(void **state)
{
	struct run r;
	char dir[] = "/tmp/ptmon-outputs.XXXXXX", fifo[64];
	int err[2], null = open("/dev/null", O_WRONLY | O_CLOEXEC), rd;

	need_root();
	assert_non_null(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/events", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	rd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(rd >= 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	struct spawn sp = {.out = null, .err = err[1]};
	const char *argv[] = {"run", "--no-control", "--events", fifo, "--", "sh", "-c",
			      "for i in $(seq 400); do /bin/true; done", NULL};
	run_start(&r, &sp, argv);
	close(err[1]);
	run_wait(&r);
	take_stderr(&r, err[0]);
	close(err[0]);
	close(rd);
	close(null);
	unlink(fifo);
	rmdir(dir);
	assert_exit(&r, 0); /* a slow reader costs events, not the run */
	assert_said(&r, "events not written: the reader did not take them in time");
}

/* ---- destinations that fail (items 7 and 8) -------------------------------- */

/* A tmpfs of 64 KiB in a private directory, or skip. */
static void small_fs(char *dir)
{
	assert_non_null(mkdtemp(dir));
	if (mount("none", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") < 0) {
		print_message("mount tmpfs: %s\n", strerror(errno));
		rmdir(dir);
		skip();
	}
}

static void small_fs_gone(const char *dir)
{
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

/* A field of the "done" line of an NDJSON file: its integer value, or -1
 * when absent. */
static long long done_field(const char *events, const char *key)
{
	const char *done = strstr(events, "{\"type\":\"done\"");
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
	struct run r;
	char dir[] = "/tmp/ptmon-outputs.XXXXXX", evpath[64];
	static char events[1 << 20];
	int err[2], full = open("/dev/full", O_WRONLY | O_CLOEXEC);

	need_root();
	assert_true(full >= 0);
	assert_non_null(mkdtemp(dir));
	snprintf(evpath, sizeof(evpath), "%s/events", dir);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	struct spawn sp = {.out = full, .err = err[1]};
	const char *argv[] = {"run", "--no-control", "--events", evpath, "--", "sh", "-c",
			      "head -c 200000 /dev/zero; echo \"head $?\" >&2", NULL};
	run_start(&r, &sp, argv);
	close(err[1]);
	run_wait(&r);
	take_stderr(&r, err[0]);
	close(err[0]);
	close(full);
	slurp_file(evpath, events, sizeof(events));
	unlink(evpath);
	rmdir(dir);
	assert_exit(&r, 125);
	assert_said(&r, "head 0\n"); /* head was not cut off by SIGPIPE */
	assert_said(&r, "No space left on device");
	assert_non_null(strstr(events, "\"stdout_error\":\"No space left on device\""));
	assert_int_equal(done_field(events, "stdout_dropped_bytes"), 200000);
}

/* The same on a full filesystem: what was written and what was dropped add
 * up to what the task wrote. */
static void t_stdout_full_fs(void **state)
{
	struct run r;
	char dir[] = "/tmp/ptmon-outputs.XXXXXX", path[64], evpath[] = "/tmp/ptmon-outputs-ev.XXXXXX";
	static char events[1 << 20];
	int err[2], out, evfd;
	struct stat st;

	need_root();
	small_fs(dir);
	snprintf(path, sizeof(path), "%s/out", dir);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(out >= 0);
	evfd = mkstemp(evpath);
	assert_true(evfd >= 0);
	close(evfd);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	struct spawn sp = {.out = out, .err = err[1]};
	const char *argv[] = {"run", "--no-control", "--events", evpath, "--", "sh", "-c",
			      "head -c 300000 /dev/zero", NULL};
	run_start(&r, &sp, argv);
	close(err[1]);
	run_wait(&r);
	take_stderr(&r, err[0]);
	close(err[0]);
	assert_int_equal(fstat(out, &st), 0);
	close(out);
	slurp_file(evpath, events, sizeof(events));
	unlink(evpath);
	small_fs_gone(dir);
	assert_exit(&r, 125);
	assert_said(&r, "No space left on device");
	assert_int_equal(done_field(events, "stdout_bytes"), 300000);
	assert_int_equal(done_field(events, "stdout_dropped_bytes") + st.st_size, 300000);
}

/* --events to /dev/full: said, and the run fails. */
static void t_events_dev_full(void **state)
{
	struct run r;
	int err[2], null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	need_root();
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	struct spawn sp = {.out = null, .err = err[1]};
	const char *argv[] = {"run", "--no-control", "--events", "/dev/full", "--", "true", NULL};
	run_start(&r, &sp, argv);
	close(err[1]);
	run_wait(&r);
	take_stderr(&r, err[0]);
	close(err[0]);
	close(null);
	assert_exit(&r, 125);
	assert_said(&r, "--events: cannot write '/dev/full': No space left on device");
}

/*
 * --events on a full filesystem: the file ends with a whole line (the half
 * line the last write left is cut off again), the loss is said, the run
 * fails.  --report there too.
 */
static void t_events_full_fs(void **state)
{
	struct run r;
	char dir[] = "/tmp/ptmon-outputs.XXXXXX", evpath[64], rpath[64];
	static char events[1 << 20];
	int err[2], null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	size_t len;

	need_root();
	small_fs(dir);
	snprintf(evpath, sizeof(evpath), "%s/events", dir);
	snprintf(rpath, sizeof(rpath), "%s/report", dir);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	struct spawn sp = {.out = null, .err = err[1]};
	const char *argv[] = {"run", "--no-control", "--events", evpath, "--report", rpath, "--",
			      "sh", "-c", "for i in $(seq 400); do /bin/true; done", NULL};
	run_start(&r, &sp, argv);
	close(err[1]);
	run_wait(&r);
	take_stderr(&r, err[0]);
	close(err[0]);
	close(null);
	len = slurp_file(evpath, events, sizeof(events));
	small_fs_gone(dir);
	assert_exit(&r, 125);
	assert_said(&r, "--events: cannot write");
	assert_said(&r, "events not written");
	assert_said(&r, "--report: cannot write");
	assert_true(len > 0);
	if (events[len - 1] != '\n')
		fail_msg("the events file ends inside a line: ...%s", events + (len > 80 ? len - 80 : 0));
}

/* ---- setup ---------------------------------------------------------------------- */

static int group_setup(void **state)
{
	char why[256];

	(void)state;
	if (cg_setup(SUBJECT, why, sizeof(why)))
		cg_remove_stale(SUBJECT);
	else
		print_error("%s: every test will skip\n", why);
	/* Writes to the pipes we leave full answer EPIPE, not death. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_stderr_stalled),
		cmocka_unit_test(t_stdout_shared_stalled),
		cmocka_unit_test(t_stdout_shared_fifo_stalled),
		cmocka_unit_test(t_report_fifo_stalled),
		cmocka_unit_test(t_events_fifo_stalled),
		cmocka_unit_test(t_stdout_dev_full),
		cmocka_unit_test(t_stdout_full_fs),
		cmocka_unit_test(t_events_dev_full),
		cmocka_unit_test(t_events_full_fs),
	};

	if (getenv("PTMON_TEST_FILTER"))
		cmocka_set_test_filter(getenv("PTMON_TEST_FILTER"));
	return cmocka_run_group_tests_name("outputs", tests, group_setup, NULL);
}
