/* SPDX-License-Identifier: MIT */
/*
 * loadgen: the load of ptmon's benchmarks (bench/run), and the drivers that
 * time it from outside.
 *
 * Load modes build process trees and synchronise on pipes only: a process
 * that is in place writes one byte, the root counts bytes, then prints
 * "READY <live processes, root included>".  Nothing sleeps to "let things
 * settle".  Driver modes start a command, measure it (wall time, CPU time,
 * peak RSS, time from a kill request to an empty cgroup) and print one line
 * of key=value pairs.
 *
 * A bench tool, not part of libptmon: errors end the program with a message.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static const char usage_text[] =
	"Usage: loadgen [-C CGROUP_DIR] MODE ARGS...\n"
	"  -C DIR              move this process into the cgroup v2 DIR first\n"
	"Load (synchronised on pipes; READY <live processes> on stdout when in place):\n"
	"  storm N [P]         N fork+_exit, each reaped before the next, from P\n"
	"                      parallel workers (default 1); N=0: until SIGTERM/SIGINT\n"
	"  exec N [P]          the same with fork+execve(/bin/true)\n"
	"  wide N              N children that block; READY; block\n"
	"  tree W D K          W wide, a chain D deep, K double-fork daemons and a\n"
	"                      fork loop; READY; block\n"
	"  daemons K           K double-fork daemons (setsid); READY; exit\n"
	"  forkloop            READY, then fork forever, each parent exiting at once\n"
	"Drivers (one line of key=value results on stdout):\n"
	"  time [--floor LISTENER] [--timeout S] -- CMD...\n"
	"                      run CMD (SIGKILL after S seconds, default 600); with\n"
	"                      --floor, LISTENER runs beside it: started and READY\n"
	"                      before CMD, sent SIGTERM after it\n"
	"  kill ptmon|cgroup|pgroup CGROUP_DIR -- CMD...\n"
	"                      run CMD (its tree lives in CGROUP_DIR) until READY, then\n"
	"                      SIGTERM CMD (ptmon), write cgroup.kill, or SIGKILL CMD's\n"
	"                      process group; time until the cgroup is empty\n"
	"  mem -- CMD...       run CMD (ptmon) until READY n and until it holds n\n"
	"                      pidfds, read its VmHWM, then SIGTERM it\n";

static volatile sig_atomic_t stop_requested;

_Noreturn static void die(const char *what)
{
	dprintf(STDERR_FILENO, "loadgen: %s: %s\n", what, strerror(errno));
	_exit(2);
}

_Noreturn static void fail(const char *what)
{
	dprintf(STDERR_FILENO, "loadgen: %s\n", what);
	_exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long number(const char *s, long min, long max)
{
	char *end;

	errno = 0;
	long v = s ? strtol(s, &end, 10) : 0;
	if (!s || errno || end == s || *end || v < min || v > max) {
		dprintf(STDERR_FILENO, "loadgen: bad number '%s' (%ld..%ld)\n", s ? s : "", min,
			max);
		_exit(2);
	}
	return v;
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("write");
		p += n;
		len -= (size_t)n;
	}
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		die(path);
	write_all(fd, text, strlen(text));
	close(fd);
}

/* fork(), retried while the system is short of processes (pid_max). */
static pid_t xfork(void)
{
	for (;;) {
		pid_t pid = fork();

		if (pid >= 0)
			return pid;
		if (errno != EAGAIN && errno != ENOMEM)
			die("fork");
	}
}

static int reap(pid_t pid, int *ret_status, struct rusage *ret_ru)
{
	int status = 0;

	while (wait4(pid, &status, 0, ret_ru) < 0)
		if (errno != EINTR)
			return -errno;
	if (ret_status)
		*ret_status = status;
	return 0;
}

static int exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Wait up to @timeout_ms for our child @pid to exit, without reaping it;
 * SIGKILL it then (a hung command must not hang the bench).  Returns true
 * when it exited by itself. */
static bool await_exit(pid_t pid, int timeout_ms)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	bool in_time = true;

	if (fd >= 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r;
		while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
			;
		close(fd);
		if (r == 0) {
			dprintf(STDERR_FILENO, "loadgen: %d still runs after %d ms: SIGKILL\n",
				(int)pid, timeout_ms);
			kill(pid, SIGKILL); /* our unreaped child: the pid is its own */
			in_time = false;
		}
	}
	siginfo_t si;
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0)
		if (errno != EINTR)
			die("waitid");
	return in_time;
}

_Noreturn static void block_forever(void)
{
	for (;;)
		pause();
}

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* No SA_RESTART: a blocked read or wait returns EINTR and the loop looks. */
static void catch_stop_signals(void)
{
	struct sigaction sa = {.sa_handler = on_stop};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

/* ---- synchronisation: one byte per process in place ----------------------- */

struct sync {
	int rd, wr;
};

static struct sync sync_new(void)
{
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0)
		die("pipe2");
	return (struct sync){fds[0], fds[1]};
}

static void sync_post(struct sync s)
{
	write_all(s.wr, "x", 1);
}

/* The writers keep their ends open (they block forever), so EOF cannot be
 * the signal: count bytes. */
static void sync_wait(struct sync s, long count)
{
	char buf[4096];

	while (count > 0) {
		size_t want = count < (long)sizeof(buf) ? (size_t)count : sizeof(buf);
		ssize_t n = read(s.rd, buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read sync pipe");
		if (n == 0)
			fail("a process died before reporting in");
		count -= n;
	}
}

static void say_ready(long live)
{
	char line[64];
	int len = snprintf(line, sizeof(line), "READY %ld\n", live);

	write_all(STDOUT_FILENO, line, (size_t)len);
}

/* ---- storms --------------------------------------------------------------- */

/* Fork @n children (0: until asked to stop), each exiting at once or
 * exec'ing /bin/true, each reaped before the next.  Returns the count. */
static long storm_loop(long n, bool exec)
{
	char *const argv[] = {"/bin/true", NULL};
	long done = 0;

	while ((n == 0 || done < n) && !stop_requested) {
		pid_t pid = xfork();
		int status = 0;

		if (pid == 0) {
			if (exec)
				execve(argv[0], argv, environ);
			_exit(exec ? 127 : 0);
		}
		done++;
		if (reap(pid, &status, NULL) < 0)
			die("waitpid");
		/* A child that did not exit 0 was signalled by someone: a
		 * monitor must never touch a process that is not its own. */
		if (status != 0) {
			dprintf(STDERR_FILENO, "loadgen: child %d: status 0x%x\n", (int)pid,
				status);
			_exit(3);
		}
	}
	return done;
}

/* @p workers share @n forks; each reports its count through a pipe. */
static long storm_workers(long n, long p, bool exec)
{
	pid_t workers[64];
	int fds[2];
	long total = 0;

	if (pipe2(fds, O_CLOEXEC) < 0)
		die("pipe2");
	for (long i = 0; i < p; i++) {
		workers[i] = xfork();
		if (workers[i] == 0) {
			long done = storm_loop(n ? n / p + (i < n % p) : 0, exec);
			write_all(fds[1], &done, sizeof(done));
			_exit(0);
		}
	}
	close(fds[1]);
	bool forwarded = false;
	for (long got = 0; got < p;) {
		long done;
		ssize_t r = read(fds[0], &done, sizeof(done));

		if (r < 0 && errno == EINTR) {
			/* The workers are our unreaped children: their pids are theirs. */
			if (stop_requested && !forwarded)
				for (long i = 0; i < p; i++)
					kill(workers[i], SIGTERM);
			forwarded = stop_requested;
			continue;
		}
		if (r != (ssize_t)sizeof(done))
			fail("a storm worker died");
		total += done;
		got++;
	}
	close(fds[0]);
	for (long i = 0; i < p; i++)
		reap(workers[i], NULL, NULL);
	return total;
}

static int mode_storm(int argc, char **argv, bool exec)
{
	if (argc < 1)
		fail("storm/exec: N [P] expected");
	long n = number(argv[0], 0, LONG_MAX / 2);
	long p = argc > 1 ? number(argv[1], 1, 64) : 1;

	catch_stop_signals();
	uint64_t t0 = now_ns();
	long forks = p == 1 ? storm_loop(n, exec) : storm_workers(n, p, exec);
	double s = (double)(now_ns() - t0) / 1e9;
	long started = 1 + forks + (p > 1 ? p : 0);

	printf("STORM started=%ld forks=%ld seconds=%.3f forks_per_s=%.0f\n", started, forks, s,
	       s > 0 ? (double)forks / s : 0.0);
	return 0;
}

/* ---- trees ---------------------------------------------------------------- */

static void spawn_sleepers(long n, struct sync s)
{
	for (long i = 0; i < n; i++) {
		if (xfork() == 0) {
			sync_post(s);
			block_forever();
		}
	}
}

/* Each level exists before it forks the next: once the deepest reports,
 * the whole chain does. */
static void spawn_chain(long depth, struct sync s)
{
	if (depth <= 0 || xfork() > 0)
		return;
	for (long level = 1; level < depth; level++)
		if (xfork() > 0)
			block_forever();
	sync_post(s);
	block_forever();
}

/* The classic daemon: fork, setsid, fork, the middle one exits; the
 * grandchild is in no process group of ours. */
static void spawn_daemon(struct sync s)
{
	pid_t mid = xfork();

	if (mid == 0) {
		if (setsid() < 0)
			die("setsid");
		if (xfork() > 0)
			_exit(0);
		sync_post(s);
		block_forever();
	}
	reap(mid, NULL, NULL);
}

static void spawn_forkloop(struct sync s)
{
	if (xfork() > 0)
		return;
	sync_post(s);
	for (;;)
		if (xfork() > 0)
			_exit(0);
}

static int mode_wide(int argc, char **argv)
{
	long n = number(argc > 0 ? argv[0] : NULL, 0, 1000000);
	struct sync s = sync_new();

	spawn_sleepers(n, s);
	sync_wait(s, n);
	say_ready(1 + n);
	block_forever();
}

static int mode_tree(int argc, char **argv)
{
	if (argc < 3)
		fail("tree: W D K expected");
	long w = number(argv[0], 0, 1000000);
	long d = number(argv[1], 0, 1000000);
	long k = number(argv[2], 0, 1000000);
	struct sync s = sync_new();

	spawn_sleepers(w, s);
	spawn_chain(d, s);
	for (long i = 0; i < k; i++)
		spawn_daemon(s);
	spawn_forkloop(s);
	sync_wait(s, w + (d > 0) + k + 1);
	say_ready(1 + w + d + k + 1);
	block_forever();
}

static int mode_daemons(int argc, char **argv)
{
	long k = number(argc > 0 ? argv[0] : NULL, 0, 1000000);
	struct sync s = sync_new();

	for (long i = 0; i < k; i++)
		spawn_daemon(s);
	sync_wait(s, k);
	say_ready(1 + k);
	return 0;
}

static int mode_forkloop(int argc, char **argv)
{
	say_ready(1);
	for (;;)
		if (xfork() > 0)
			_exit(0);
}

/* ---- drivers: helpers ----------------------------------------------------- */

/* Start @argv with its stdout on a pipe (when @ret_out is not NULL) and in
 * its own process group. */
static pid_t spawn(char **argv, int *ret_out)
{
	int fds[2] = {-1, -1};

	if (ret_out && pipe2(fds, O_CLOEXEC) < 0)
		die("pipe2");
	pid_t pid = xfork();
	if (pid == 0) {
		setpgid(0, 0);
		if (ret_out && dup2(fds[1], STDOUT_FILENO) < 0)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(STDERR_FILENO, "loadgen: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (ret_out) {
		close(fds[1]);
		*ret_out = fds[0];
	}
	return pid;
}

/* Read @fd until a line "READY n"; other lines are copied to stdout.
 * Returns n, or -1 on EOF or after @timeout_ms. */
static long await_ready(int fd, int timeout_ms)
{
	char buf[4096];
	size_t len = 0;
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		char *nl;
		while ((nl = memchr(buf, '\n', len))) {
			*nl = '\0';
			if (!strncmp(buf, "READY", 5))
				return strtol(buf + 5, NULL, 10);
			printf("%s\n", buf);
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len);
		}
		if (len == sizeof(buf))
			len = 0;
		uint64_t now = now_ns();
		if (now >= deadline)
			return -1;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)((deadline - now) / 1000000ull) + 1) <= 0)
			continue;
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		len += (size_t)n;
	}
}

/* Copy what @fd still has to stdout, until EOF. */
static void copy_rest(int fd)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		fflush(stdout);
		write_all(STDOUT_FILENO, buf, (size_t)n);
	}
}

/* The thread's own CPU time in ns (schedstat), readable while it is a
 * zombie not yet reaped: unlike wait4's rusage it excludes the children it
 * reaped.  0 when unavailable. */
static uint64_t own_cpu_ns(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

static uint64_t tv_us(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000ull + (uint64_t)tv.tv_usec;
}

/* ---- driver: time --------------------------------------------------------- */

struct listener {
	pid_t pid;
	int out;
};

static void listener_start(struct listener *l, const char *path)
{
	char *argv[] = {(char *)path, NULL};

	l->pid = spawn(argv, &l->out);
	if (await_ready(l->out, 10000) < 0)
		fail("the floor listener did not get ready");
}

static void listener_stop(struct listener *l)
{
	kill(l->pid, SIGTERM);
	fflush(stdout);
	copy_rest(l->out);
	close(l->out);
	int status = 0;
	reap(l->pid, &status, NULL);
	if (status != 0)
		dprintf(STDERR_FILENO, "loadgen: floor listener status 0x%x\n", status);
}

static int driver_time(int argc, char **argv)
{
	const char *floor = NULL;
	int timeout_s = 600, i = 0;

	for (; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--floor") && i + 1 < argc)
			floor = argv[++i];
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout_s = (int)number(argv[++i], 1, 86400);
	}
	if (i + 1 >= argc)
		fail("time: -- CMD expected");
	struct listener fl = {.pid = -1};
	if (floor)
		listener_start(&fl, floor);
	fflush(stdout);
	uint64_t t0 = now_ns();
	pid_t pid = spawn(argv + i + 1, NULL);
	bool in_time = await_exit(pid, timeout_s * 1000);
	uint64_t wall = now_ns() - t0;
	uint64_t own = own_cpu_ns(pid);
	struct rusage ru;
	int status = 0;
	if (reap(pid, &status, &ru) < 0)
		die("wait4");
	if (floor)
		listener_stop(&fl);
	printf("TIME wall_ns=%" PRIu64 " own_cpu_ns=%" PRIu64 " cpu_us=%" PRIu64
	       " maxrss_kb=%ld status=%d\n",
	       wall, own, tv_us(ru.ru_utime) + tv_us(ru.ru_stime), ru.ru_maxrss,
	       in_time ? exit_code(status) : -1);
	return in_time ? 0 : 1;
}

/* ---- driver: kill --------------------------------------------------------- */

struct proc_info {
	char state;
	pid_t pgrp;
};

static int proc_info(pid_t pid, struct proc_info *ret)
{
	char path[64], buf[512];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: parse after the last ')'. */
	char *p = strrchr(buf, ')');
	int ppid, pgrp;
	if (!p || sscanf(p + 1, " %c %d %d", &ret->state, &ppid, &pgrp) != 3)
		return -EINVAL;
	ret->pgrp = pgrp;
	return 0;
}

/* Live (not zombie) processes in the cgroup; with @pgrp > 0 only those of
 * that process group. */
static long cgroup_live(const char *cg, pid_t pgrp)
{
	char path[PATH_MAX];
	long live = 0;
	int pid;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	FILE *f = fopen(path, "re");
	if (!f)
		die(path);
	while (fscanf(f, "%d", &pid) == 1) {
		struct proc_info pi;
		if (proc_info(pid, &pi) < 0 || pi.state == 'Z' || pi.state == 'X')
			continue;
		if (pgrp <= 0 || pi.pgrp == pgrp)
			live++;
	}
	fclose(f);
	return live;
}

static bool cgroup_populated(int events_fd)
{
	char buf[256];
	ssize_t n = pread(events_fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		die("read cgroup.events");
	buf[n] = '\0';
	return !strstr(buf, "populated 0");
}

/* Wait until the cgroup is empty: cgroup.events signals POLLPRI when
 * "populated" changes; the kernel rate-limits those notifications to one per
 * 10 ms, so look again every millisecond as well.  Returns false on timeout. */
static bool cgroup_wait_empty(int events_fd, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;

	while (cgroup_populated(events_fd)) {
		if (now_ns() >= deadline)
			return false;
		struct pollfd p = {.fd = events_fd, .events = POLLPRI};
		poll(&p, 1, 1);
	}
	return true;
}

/* Reap whatever was reparented to us (we are a subreaper) without blocking. */
static void reap_orphans(void)
{
	while (waitpid(-1, NULL, WNOHANG | __WALL) > 0)
		;
}

static void wait_group_gone(const char *cg, pid_t pgrp, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct timespec ms = {0, 1000000};

	while (cgroup_live(cg, pgrp) > 0 && now_ns() < deadline) {
		reap_orphans();
		nanosleep(&ms, NULL);
	}
}

static void cgroup_clean(const char *cg, int events_fd)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/cgroup.kill", cg);
	write_file(path, "1");
	if (!cgroup_wait_empty(events_fd, 10000))
		fail("the tree's cgroup is not empty 10 s after cgroup.kill");
}

/* The kill request, timed from just before it: ptmon is asked to cancel
 * (its --signal decides what the tree gets), the kernel kills the cgroup, or
 * the root's process group gets SIGKILL (the root leads its group: spawn()). */
static void request_kill(const char *how, pid_t pid, const char *cg)
{
	char path[PATH_MAX];

	if (!strcmp(how, "ptmon")) {
		kill(pid, SIGTERM);
	} else if (!strcmp(how, "pgroup")) {
		kill(-pid, SIGKILL);
	} else {
		snprintf(path, sizeof(path), "%s/cgroup.kill", cg);
		write_file(path, "1");
	}
}

static int driver_kill(int argc, char **argv)
{
	if (argc < 4 || strcmp(argv[2], "--"))
		fail("kill: ptmon|cgroup|pgroup CGROUP_DIR -- CMD expected");
	const char *how = argv[0], *cg = argv[1];
	char path[PATH_MAX];

	if (strcmp(how, "ptmon") && strcmp(how, "cgroup") && strcmp(how, "pgroup"))
		fail("kill: ptmon, cgroup or pgroup");
	/* Orphans of the tree come to us, as they come to ptmon. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	snprintf(path, sizeof(path), "%s/cgroup.events", cg);
	int events = open(path, O_RDONLY | O_CLOEXEC);
	if (events < 0)
		die(path);
	int out;
	pid_t pid = spawn(argv + 3, &out);
	long live = await_ready(out, 60000);
	if (live < 0)
		fail("the tree did not get ready");

	uint64_t t0 = now_ns();
	request_kill(how, pid, cg);
	/* A process-group kill leaves survivors: no empty cgroup to wait for. */
	bool empty = cgroup_wait_empty(events, strcmp(how, "pgroup") ? 30000 : 300);
	uint64_t t_empty = now_ns() - t0;
	uint64_t t_exit = 0;
	int status = 0;
	if (!strcmp(how, "ptmon")) {
		await_exit(pid, 30000);
		reap(pid, &status, NULL);
		t_exit = now_ns() - t0;
		pid = -1;
	} else if (!strcmp(how, "pgroup")) {
		wait_group_gone(cg, pid, 5000);
	}
	long survivors = cgroup_live(cg, 0);
	cgroup_clean(cg, events);
	if (pid > 0)
		kill(pid, SIGKILL); /* not yet reaped: still our child */
	while (waitpid(-1, NULL, __WALL) > 0 || errno == EINTR)
		;
	close(out);
	close(events);
	printf("KILL how=%s live=%ld empty=%d empty_ns=%" PRIu64 " exit_ns=%" PRIu64
	       " survivors=%ld status=%d\n",
	       how, live, empty, empty ? t_empty : 0, t_exit, survivors, exit_code(status));
	return 0;
}

/* ---- driver: mem ---------------------------------------------------------- */

static long count_pidfds(pid_t pid)
{
	char path[64], target[64];
	long n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		ssize_t len = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strstr(target, "pidfd"))
			n++;
	}
	closedir(d);
	return n;
}

static long status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	long kb = -1;
	size_t flen = strlen(field);

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, flen) && line[flen] == ':')
			kb = strtol(line + flen + 1, NULL, 10);
	fclose(f);
	return kb;
}

/* ptmon run is three processes (src/front.c): the one started forwards
 * signals; its first child, the worker, holds the pidfds and the memory;
 * its second, the guardian, names itself "ptmon-guard" soon after its fork
 * (until then the two look alike, and this waits).  @pid itself when it
 * has no such child (another command). */
static pid_t worker_of(pid_t pid)
{
	char path[64], buf[512], name[32];
	uint64_t deadline = now_ns() + 5000000000ull;
	struct timespec step = {0, 1000000};

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	for (;;) {
		pid_t found = pid;
		int alike = 0;
		FILE *f = fopen(path, "re");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = '\0';
		char *s = buf, *e;
		for (long q; (q = strtol(s, &e, 10)) > 0; s = e) {
			snprintf(name, sizeof(name), "/proc/%ld/comm", q);
			FILE *c = fopen(name, "re");
			size_t k = c ? fread(name, 1, sizeof(name) - 1, c) : 0;
			if (c)
				fclose(c);
			name[k] = '\0';
			if (strncmp(name, "ptmon-guard", 11) != 0) {
				found = (pid_t)q;
				alike++;
			}
		}
		if (alike <= 1 || now_ns() > deadline)
			return found;
		nanosleep(&step, NULL);
	}
}

static int driver_mem(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[0], "--"))
		fail("mem: -- CMD expected");
	int out;
	pid_t pid = spawn(argv + 1, &out);
	long live = await_ready(out, 120000);
	if (live < 0)
		fail("the tree did not get ready");
	/* ptmon learns of the tree from events it may still be reading: wait
	 * until it holds a pidfd for every process (a measurement poll, bounded). */
	uint64_t t0 = now_ns(), deadline = t0 + 60000000000ull;
	struct timespec step = {0, 5000000};
	long pidfds;
	pid_t w = worker_of(pid);
	while ((pidfds = count_pidfds(w)) < live && now_ns() < deadline)
		nanosleep(&step, NULL);
	long hwm = status_kb(w, "VmHWM"), rss = status_kb(w, "VmRSS");
	kill(pid, SIGTERM);
	bool in_time = await_exit(pid, 30000);
	close(out); /* what ptmon still forwards is of no interest */
	struct rusage ru = {0};
	int status = 0;
	reap(pid, &status, &ru);
	printf("MEM live=%ld pidfds=%ld hwm_kb=%ld rss_kb=%ld final_maxrss_kb=%ld status=%d\n",
	       live, pidfds, hwm, rss, ru.ru_maxrss, in_time ? exit_code(status) : -1);
	return pidfds >= live && in_time ? 0 : 1;
}

/* ---- main ----------------------------------------------------------------- */

static void join_cgroup(const char *dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	write_file(path, "0");
}

int main(int argc, char **argv)
{
	int i = 1;

	if (i + 1 < argc && !strcmp(argv[i], "-C")) {
		join_cgroup(argv[i + 1]);
		i += 2;
	}
	if (i >= argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	const char *mode = argv[i];
	int ac = argc - i - 1;
	char **av = argv + i + 1;
	/* Our results must not sit in a buffer a child inherits. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "storm"))
		return mode_storm(ac, av, false);
	if (!strcmp(mode, "exec"))
		return mode_storm(ac, av, true);
	if (!strcmp(mode, "wide"))
		return mode_wide(ac, av);
	if (!strcmp(mode, "tree"))
		return mode_tree(ac, av);
	if (!strcmp(mode, "daemons"))
		return mode_daemons(ac, av);
	if (!strcmp(mode, "forkloop"))
		return mode_forkloop(ac, av);
	if (!strcmp(mode, "time"))
		return driver_time(ac, av);
	if (!strcmp(mode, "kill"))
		return driver_kill(ac, av);
	if (!strcmp(mode, "mem"))
		return driver_mem(ac, av);
	fputs(usage_text, stderr);
	return 2;
}
