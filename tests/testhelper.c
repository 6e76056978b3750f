/* SPDX-License-Identifier: MIT */
/*
 * ptmon-testhelper: the task the integration tests run under ptmon.  One
 * program, many process shapes, chosen by argv[1]; see usage() below.
 *
 * Every mode that builds a structure prints "READY\n" (with one write(), so it
 * is never interleaved) only once the whole structure exists: processes
 * report in over pipes, never after a sleep.  Nothing here sets
 * PR_SET_PDEATHSIG: the point is that ptmon, not the kernel, finds and kills
 * what is left.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/types.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"

#define EXIT_HELPER_FAILED 70

static const char *mode = "";

/* Under ASan (PTMON_SANITIZE) LeakSanitizer would run at each helper's exit
 * and clone a tracer task: one more process in trees the tests count
 * exactly.  The helper is scaffolding; ptmon keeps its leak checks. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}

_Noreturn static void usage(void)
{
	static const char text[] =
		"usage: ptmon-testhelper MODE [ARG]\n"
		"  exit N          exit with status N\n"
		"  signal S        die of signal number S (SIG_DFL first)\n"
		"  write N         N pattern bytes to stdout and N to stderr, then exit 0\n"
		"  wide N          N children that block; READY; block\n"
		"  deep N          a chain of N processes (this one included); the deepest\n"
		"                  prints READY; all block\n"
		"  daemon          double fork + setsid; the grandchild keeps stdio, prints\n"
		"                  READY and blocks; the original exits 0 after READY\n"
		"  daemon-null     the same, but the grandchild's stdio is /dev/null; the\n"
		"                  original prints READY once it has confirmed, exits 0\n"
		"  setsid          a child in its own session prints READY; both block\n"
		"  setpgid         a child in its own process group prints READY; both block\n"
		"  ignore-term N   N children and the parent ignore SIGTERM; READY; block\n"
		"  respawn         READY; on SIGTERM fork a replacement (which prints\n"
		"                  RESPAWNED and does the same), exit 0\n"
		"  report-term     READY; print \"TERM\" on each SIGTERM and go on\n"
		"  forkloop        READY, then fork forever, each parent exiting at once\n"
		"  forkloop-stay   READY, then fork children that exit at once, forever\n"
		"  orphans N       N children that block; READY; exit 0\n"
		"  tree D W        a tree D levels below this one, each process forking\n"
		"                  W children at once; READY once all exist; all block\n"
		"  tree-exit D W   the same, but each process waits for its children and\n"
		"                  exits; the root prints DONE N (N: processes) and exits 0\n"
		"  threads N       N threads that block; READY; block\n"
		"  storm N         fork and reap a child that exits at once, N times;\n"
		"                  print \"DONE N\"; exit 0 (3 if a child died otherwise)\n"
		"  bg              a child that blocks holding stdout; READY; exit 0\n"
		"  burn MS         busy-loop until this process has used MS ms of CPU\n"
		"                  (CLOCK_PROCESS_CPUTIME_ID); exit 0\n"
		"  alloc MB        malloc MB MiB and touch every page; exit 0\n"
		"  term-exit N     READY; on SIGTERM print \"TERM\" and exit N\n"
		"  with-child GO DONE PROG ARG...\n"
		"                  print \"CHILD <pid>\" of a child that blocks with its stdio on\n"
		"                  /dev/null, then exec PROG (the child becomes PROG's): a\n"
		"                  shell's background job.  Unless GO is \"-\", the child first\n"
		"                  reads a byte from the FIFO GO, forks a grandchild that\n"
		"                  blocks, writes its pid to the FIFO DONE and exits\n"
		"  as-nobody PROG ARG...\n"
		"                  exec PROG as uid and gid 65534, without groups (as root)\n"
		"  become-root     run from a set-user-ID-root copy: make every uid 0, print\n"
		"                  \"ROOT <pid>\", block: a user cannot signal it any more\n"
		"  exec-sigign PROG ARG...\n"
		"                  exec PROG with SIGCHLD ignored (SIG_IGN, SA_NOCLDWAIT),\n"
		"                  SIGTERM ignored and SIGTERM, SIGUSR1 blocked, as a careless\n"
		"                  parent service leaves them\n";

	(void)!write(STDERR_FILENO, text, sizeof(text) - 1);
	_exit(2);
}

_Noreturn static void die(const char *what)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "ptmon-testhelper %s: %s: %s\n", mode, what,
			 strerror(errno));

	if (n > 0)
		(void)!write(STDERR_FILENO, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf));
	_exit(EXIT_HELPER_FAILED);
}

static long number(const char *s, long min, long max)
{
	char *end;
	long v;

	if (!s)
		usage();
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage();
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

static void ready(void)
{
	write_all(STDOUT_FILENO, "READY\n", 6);
}

_Noreturn static void block_forever(void)
{
	for (;;)
		pause();
}

/* fork(), retried while the system is short of processes: a storm may run
 * into pid_max or the cgroup's pids limit for a moment. */
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

/* A process reports that it is in place. */
static void sync_post(struct sync s)
{
	write_all(s.wr, "x", 1);
}

/* Wait for @count reports.  The writers keep their ends open (they block
 * forever), so EOF cannot be the signal: count bytes. */
static void sync_wait(struct sync s, long count)
{
	char buf[512];

	while (count > 0) {
		ssize_t n =
			read(s.rd, buf, count < (long)sizeof(buf) ? (size_t)count : sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read sync pipe");
		if (n == 0) {
			errno = EPIPE;
			die("a process died before reporting in");
		}
		count -= n;
	}
}

static int mode_exit(char **argv)
{
	exit((int)number(argv[2], 0, 255));
}

static int mode_signal(char **argv)
{
	int sig = (int)number(argv[2], 1, 64);
	sigset_t set;

	signal(sig, SIG_DFL);
	/* Not unblocked on purpose: a signal mask leaked by ptmon into the task
	 * should show, not be papered over. */
	raise(sig);
	sigemptyset(&set);
	sigprocmask(SIG_BLOCK, NULL, &set);
	fprintf(stderr, "ptmon-testhelper signal: still alive after raise(%d)%s\n", sig,
		sigismember(&set, sig) == 1 ? " (it is blocked)" : "");
	return EXIT_HELPER_FAILED;
}

static int mode_write(char **argv)
{
	static const size_t chunks[] = {1, 13, 4096, 65536, 100, 7777, 2, 32768};
	size_t total = (size_t)number(argv[2], 0, LONG_MAX), off = 0;
	unsigned char *out, *err;

	out = malloc(total ? total : 1);
	err = malloc(total ? total : 1);
	if (!out || !err)
		die("malloc");
	for (size_t i = 0; i < total; i++) {
		out[i] = pattern_out(i);
		err[i] = pattern_err(i);
	}
	for (size_t c = 0; off < total; c++) {
		size_t len = chunks[c % (sizeof(chunks) / sizeof(chunks[0]))];

		if (len > total - off)
			len = total - off;
		write_all(STDOUT_FILENO, out + off, len);
		write_all(STDERR_FILENO, err + off, len);
		off += len;
	}
	free(out);
	free(err);
	return 0;
}

/* @n children that report in and block. */
static void spawn_blockers(long n, struct sync s)
{
	for (long i = 0; i < n; i++) {
		if (xfork() == 0) {
			sync_post(s);
			block_forever();
		}
	}
	sync_wait(s, n);
}

static int mode_wide(char **argv)
{
	spawn_blockers(number(argv[2], 0, 100000), sync_new());
	ready();
	block_forever();
}

static int mode_deep(char **argv)
{
	long n = number(argv[2], 1, 100000);

	/* Each level exists before it forks the next, so once the deepest runs
	 * the whole chain does. */
	for (long level = 1; level < n; level++)
		if (xfork() > 0)
			block_forever();
	ready();
	block_forever();
}

static void redirect_null(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		die("open /dev/null");
	for (int i = 0; i < 3; i++)
		if (dup2(fd, i) < 0)
			die("dup2");
	close(fd);
}

/* The classic daemon: fork, setsid, fork, the middle one exits.  The
 * original waits for the grandchild's report, so it exits only after READY is
 * out. */
static int daemonize(int null_stdio)
{
	struct sync s = sync_new();
	pid_t mid = xfork();

	if (mid == 0) {
		if (setsid() < 0)
			die("setsid");
		if (xfork() > 0)
			_exit(0);
		if (null_stdio)
			redirect_null();
		else
			ready();
		sync_post(s);
		close(s.wr);
		block_forever();
	}
	close(s.wr);
	s.wr = -1;
	sync_wait(s, 1);
	if (null_stdio)
		ready();
	while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
		;
	return 0;
}

static int mode_daemon(char **argv)
{
	return daemonize(0);
}

static int mode_daemon_null(char **argv)
{
	return daemonize(1);
}

static int mode_setsid(char **argv)
{
	if (xfork() == 0) {
		if (setsid() < 0)
			die("setsid");
		ready();
	}
	block_forever();
}

static int mode_setpgid(char **argv)
{
	if (xfork() == 0) {
		if (setpgid(0, 0) < 0)
			die("setpgid");
		ready();
	}
	block_forever();
}

static int mode_ignore_term(char **argv)
{
	long n = number(argv[2], 0, 100000);

	signal(SIGTERM, SIG_IGN);
	spawn_blockers(n, sync_new());
	ready();
	block_forever();
}

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	got_term = 1;
}

/* SIGTERM stays blocked except inside sigsuspend(), so a TERM is never lost
 * between the check and the wait; the replacement inherits the mask and the
 * handler but not the pending signal. */
static int mode_respawn(char **argv)
{
	struct sigaction sa = {.sa_handler = on_term};
	sigset_t term, old;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &old);
	sigdelset(&old, SIGTERM);
	ready();
	for (;;) {
		while (!got_term)
			sigsuspend(&old);
		got_term = 0;
		if (xfork() > 0)
			_exit(0);
		write_all(STDOUT_FILENO, "RESPAWNED\n", 10);
	}
}

/* Shows the test that ptmon's first signal arrived, without dying of it. */
static int mode_report_term(char **argv)
{
	struct sigaction sa = {.sa_handler = on_term};
	sigset_t term, old;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &old);
	sigdelset(&old, SIGTERM);
	ready();
	for (;;) {
		while (!got_term)
			sigsuspend(&old);
		got_term = 0;
		write_all(STDOUT_FILENO, "TERM\n", 5);
	}
	return 0; /* not reached */
}

/* A task that ends by itself on the first signal of a cancel. */
static int mode_term_exit(char **argv)
{
	int code = (int)number(argv[2], 0, 255);
	struct sigaction sa = {.sa_handler = on_term};
	sigset_t term, old;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &old);
	sigdelset(&old, SIGTERM);
	ready();
	while (!got_term)
		sigsuspend(&old);
	write_all(STDOUT_FILENO, "TERM\n", 5);
	return code;
}

static int mode_forkloop(char **argv)
{
	ready();
	for (;;)
		if (xfork() > 0)
			_exit(0);
}

static int mode_forkloop_stay(char **argv)
{
	ready();
	for (;;) {
		pid_t pid = xfork();

		if (pid == 0)
			_exit(0);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
}

static int mode_orphans(char **argv)
{
	spawn_blockers(number(argv[2], 0, 100000), sync_new());
	ready();
	return 0;
}

static void *thread_block(void *arg)
{
	block_forever();
	return NULL;
}

static int mode_threads(char **argv)
{
	long n = number(argv[2], 0, 100000);
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN > 65536 ? PTHREAD_STACK_MIN : 65536);
	/* pthread_create() returns after clone(): the thread exists. */
	for (long i = 0; i < n; i++) {
		pthread_t t;
		int r = pthread_create(&t, &attr, thread_block, NULL);

		if (r) {
			errno = r;
			die("pthread_create");
		}
	}
	pthread_attr_destroy(&attr);
	ready();
	block_forever();
}

static int mode_storm(char **argv)
{
	long n = number(argv[2], 0, LONG_MAX);
	char line[64];
	int len;

	for (long i = 0; i < n; i++) {
		pid_t pid = xfork();
		int status;

		if (pid == 0)
			_exit(0);
		while (waitpid(pid, &status, 0) < 0)
			if (errno != EINTR)
				die("waitpid");
		/* Run outside a monitored tree, a storm tells whether anyone
		 * signalled one of its children: a PID reused across the wrap is
		 * exactly what a monitor must not kill. */
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			len = snprintf(line, sizeof(line), "KILLED child %d: status 0x%x\n",
				       (int)pid, status);
			write_all(STDERR_FILENO, line, (size_t)len);
			return 3;
		}
	}
	len = snprintf(line, sizeof(line), "DONE %ld\n", n);
	write_all(STDOUT_FILENO, line, (size_t)len);
	return 0;
}

static int mode_bg(char **argv)
{
	spawn_blockers(1, sync_new());
	ready();
	return 0;
}

static int64_t cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
		die("clock_gettime");
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Known CPU for the accounting tests.  The process CPU clock is a system call
 * (no vDSO path), so it is read only every million iterations (well under a
 * millisecond): the figure is nearly all user time, and MS is overshot by
 * less than one such round. */
static int mode_burn(char **argv)
{
	int64_t until = (int64_t)number(argv[2], 0, 3600000) * 1000000;
	volatile uint64_t sink = 0;

	while (cpu_ns() < until)
		for (int i = 0; i < 1000000; i++)
			sink += (uint64_t)i;
	return sink == 1 ? 1 : 0; /* read it: the loop is the point */
}

/* Known peak memory: every page written, so it is resident. */
static int mode_alloc(char **argv)
{
	size_t len = (size_t)number(argv[2], 0, 65536) << 20;
	long page = sysconf(_SC_PAGESIZE);
	volatile unsigned char *p = malloc(len ? len : 1);

	if (!p)
		die("malloc");
	for (size_t off = 0; off < len; off += (size_t)(page > 0 ? page : 4096))
		p[off] = 1;
	free((void *)p);
	return 0;
}

static int mode_exec_sigign(char **argv)
{
	struct sigaction ign = {.sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT};
	sigset_t set;

	if (!argv[2])
		usage();
	sigemptyset(&ign.sa_mask);
	if (sigaction(SIGCHLD, &ign, NULL) < 0)
		die("sigaction SIGCHLD");
	signal(SIGTERM, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	execv(argv[2], argv + 2);
	die("execv");
}

static void with_child_orphan(const char *go, const char *done)
{
	char byte, line[32];
	int fd = open(go, O_RDONLY | O_CLOEXEC);
	pid_t g;

	if (fd < 0 || read(fd, &byte, 1) != 1)
		die("read GO");
	close(fd);
	g = xfork();
	if (g == 0)
		block_forever();
	fd = open(done, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die("open DONE");
	write_all(fd, line, (size_t)snprintf(line, sizeof(line), "%d\n", (int)g));
	_exit(0);
}

static int mode_with_child(char **argv)
{
	char line[32];
	pid_t child;

	if (!argv[2] || !argv[3] || !argv[4])
		usage();
	child = xfork();
	if (child == 0) {
		redirect_null();
		if (strcmp(argv[2], "-") != 0)
			with_child_orphan(argv[2], argv[3]);
		block_forever();
	}
	write_all(STDOUT_FILENO, line,
		  (size_t)snprintf(line, sizeof(line), "CHILD %d\n", (int)child));
	execv(argv[4], argv + 4);
	die("execv");
}

static int mode_as_nobody(char **argv)
{
	if (!argv[2])
		usage();
	if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
	    setresuid(65534, 65534, 65534) < 0)
		die("drop to uid 65534");
	execv(argv[2], argv + 2);
	die("execv");
}

static int mode_become_root(char **argv)
{
	char line[32];
	int len;

	/* A set-user-ID program that its user may still signal (the real
	 * uid stays theirs) until it sets every uid: su, sudo do. */
	if (setresuid(0, 0, 0) < 0)
		die("setresuid 0");
	len = snprintf(line, sizeof(line), "ROOT %d\n", (int)getpid());
	write_all(STDOUT_FILENO, line, (size_t)len);
	block_forever();
}

/* Fork @w children at once below every process, down @depth levels (each
 * child reports in on @s when @stay).  Returns in every process; the root
 * learns the number of processes below it. */
static long tree_grow(long depth, long w, struct sync s, bool stay)
{
	long below = 0, n = 1;

	for (long d = 1; d <= depth; d++) {
		n *= w;
		below += n;
	}
	for (long level = 0; level < depth; level++) {
		bool child = false;

		for (long i = 0; i < w && !child; i++)
			child = xfork() == 0;
		if (!child)
			break;
		if (stay)
			sync_post(s);
		if (level + 1 == depth)
			break;
	}
	return below;
}

static int tree_mode(char **argv, bool stay)
{
	long depth = number(argv[2], 0, 30), w = number(argv[3], 1, 100);
	pid_t self = getpid();
	struct sync s = sync_new();
	long below = tree_grow(depth, w, s, stay);

	if (getpid() != self) {
		if (stay)
			block_forever();
		/* Reap this process's own children, then report and go. */
		while (wait(NULL) > 0 || errno == EINTR)
			;
		sync_post(s);
		_exit(0);
	}
	if (stay) {
		sync_wait(s, below);
		ready();
		block_forever();
	}
	while (wait(NULL) > 0 || errno == EINTR)
		;
	/* Every process below has reported: each reaped its own first. */
	close(s.wr);
	char buf[4096];
	long seen = 0;
	ssize_t n;
	while ((n = read(s.rd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		seen += n > 0 ? n : 0;
	printf("DONE %ld\n", seen + 1);
	return seen == below ? 0 : 1;
}

static int mode_tree(char **argv)
{
	return tree_mode(argv, true);
}

static int mode_tree_exit(char **argv)
{
	return tree_mode(argv, false);
}

static const struct {
	const char *name;
	int (*fn)(char **argv);
} modes[] = {
	{"exit", mode_exit},
	{"signal", mode_signal},
	{"write", mode_write},
	{"wide", mode_wide},
	{"deep", mode_deep},
	{"daemon", mode_daemon},
	{"daemon-null", mode_daemon_null},
	{"setsid", mode_setsid},
	{"setpgid", mode_setpgid},
	{"ignore-term", mode_ignore_term},
	{"respawn", mode_respawn},
	{"report-term", mode_report_term},
	{"forkloop", mode_forkloop},
	{"forkloop-stay", mode_forkloop_stay},
	{"orphans", mode_orphans},
	{"tree", mode_tree},
	{"tree-exit", mode_tree_exit},
	{"threads", mode_threads},
	{"storm", mode_storm},
	{"bg", mode_bg},
	{"burn", mode_burn},
	{"alloc", mode_alloc},
	{"exec-sigign", mode_exec_sigign},
	{"term-exit", mode_term_exit},
	{"as-nobody", mode_as_nobody},
	{"with-child", mode_with_child},
	{"become-root", mode_become_root},
};

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	mode = argv[1];
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(argv[1], modes[i].name) == 0)
			return modes[i].fn(argv);
	usage();
}
