/* SPDX-License-Identifier: MIT */
/*
 * The front and the worker of `ptmon run` (front.h).
 *
 * Why two processes: a caller's timeout (Go's exec.CommandContext), a
 * scheduler's `kill -9`, a container stop or the OOM killer end ptmon with
 * SIGKILL, which no process can catch.  So the process that holds the tree
 * (subreaper, pidfds, output) is not the one the caller started: the
 * worker holds a pidfd of the front, and when it turns readable the
 * monitor kills the whole tree at once (ptmon_monitor_set_front()).
 *
 * The front is a child subreaper too: if the worker alone dies (an OOM
 * kill of the worker), the task's orphans come to the front, which kills
 * its children in rounds until none is left.  Only both dying at once
 * leaves the tree to itself (README: "If ptmon is killed").
 *
 * Signals: the front blocks every one it can (job control aside) and
 * passes each on as a queued real-time signal carrying its number, which
 * the worker's monitor takes as if it had received it; copies sent to the
 * worker directly (a group's kill, a terminal's ^C) are ignored there, so
 * that one signal counts once, and cannot merge away the front's copy.
 *
 * The front never touches stdin, stdout or stderr, but for a line on
 * stderr when the worker dies of a signal or leaves processes behind.
 */
#include "front.h"
#include "cgpath.h"
#include "fdclose.h"
#include "pidfd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "output.h"
#include "parse.h"
#include "ptmon.h"

#define EXIT_PTMON_FAILED 125
/* After the worker died: how long the front keeps killing orphans. */
#define ORPHANS_BOUND_MS 5000
#define ORPHANS_ROUND_MS 100

struct front {
	pid_t self;
	pid_t worker;
	int worker_fd;
	sigset_t waited;     /* blocked in the front and taken by sigwaitinfo() */
	sigset_t orig_mask;  /* the caller's, restored in the worker */
	bool received[NSIG]; /* signals the front got */
	int ready_r;         /* EOF or a byte: the worker takes forwarded signals */
	pid_t *before;       /* children the front had before the worker */
	size_t nbefore;
	bool worker_reaped;
	int worker_code; /* CLD_* */
	int worker_value;
	pid_t guardian; /* 0: none */
	int guardian_w; /* the front's end of the guardian's pipe */
};

/* In the worker: the front, 0 without one; the pipe that says "ready". */
static pid_t front_pid;
static int front_fd = -1;
static int ready_w = -1;

/* What the front forwards signals as: real-time, so that they queue and
 * never merge with a copy of the same signal sent to the worker directly;
 * the highest, the least likely to mean something to anyone else. */
static int forward_signal(void)
{
	return SIGRTMAX;
}

/* Never blocking, as every message of ptmon's (notes_line()): a stderr
 * whose reader stalls must not keep the front from relaying. */
#define say(...) notes_say("ptmon", __VA_ARGS__)

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the front's children ------------------------------------------------ */

static bool has_children(void)
{
	siginfo_t si;
	return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

static bool was_before(const struct front *f, pid_t pid)
{
	for (size_t i = 0; i < f->nbefore; i++)
		if (f->before[i] == pid)
			return true;
	return false;
}

static pid_t ppid_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	fd = util_close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The name may hold anything, ')' included: the state follows the last. */
	char *p = strrchr(buf, ')');
	int ppid;
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

/* Our children that were not ours before the worker started, from /proc
 * (an unreaped child keeps its pid: only we reap it).  Returns the count
 * and a malloc'd array, or -errno. */
static int new_children(const struct front *f, pid_t **ret)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	pid_t *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid <= 0 || pid == f->worker || pid == f->guardian || ppid_of(pid) != f->self ||
		    was_before(f, pid))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			pid_t *nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		v[n++] = pid;
	}
	closedir(d);
	*ret = v;
	return (int)n;
}

/* Reap every child that has exited; note the worker's end. */
static void reap(struct front *f)
{
	for (;;) {
		siginfo_t si = {0};
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0) {
			if (errno == EINTR)
				continue;
			return; /* ECHILD */
		}
		if (si.si_pid == 0)
			return;
		if (si.si_pid == f->worker) {
			f->worker_reaped = true;
			f->worker_code = si.si_code;
			f->worker_value = si.si_status;
		}
		for (size_t i = 0; i < f->nbefore; i++)
			if (f->before[i] == si.si_pid)
				f->before[i] = 0;
	}
}

/* The worker is gone; whatever of the task it left came to us (we are a
 * subreaper): SIGKILL our children, wait for one to go, again, until none
 * is left.  A killed parent's children come to us before its SIGCHLD. */
static void kill_orphans(struct front *f)
{
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	uint64_t end = now_ms() + ORPHANS_BOUND_MS;
	uint64_t killed = 0;
	while (has_children()) {
		pid_t *kids = NULL;
		int n = new_children(f, &kids);
		for (int i = 0; i < n; i++) {
			int fd = util_pidfd_open(kids[i], 0);
			if (fd >= 0 && util_pidfd_send_signal(fd, SIGKILL) == 0)
				killed++;
			fd = util_close(fd);
		}
		free(kids);
		if (n <= 0)
			break;
		if (now_ms() >= end) {
			say("processes of the task are still being born after %d ms of killing "
			    "them; "
			    "giving up",
			    ORPHANS_BOUND_MS);
			break;
		}
		struct timespec ts = {0, ORPHANS_ROUND_MS * 1000000L};
		sigtimedwait(&chld, NULL, &ts);
		reap(f);
	}
	if (killed)
		say("killed %" PRIu64 " process(es) the worker left behind", killed);
}

/* ---- the task's cgroups, after the worker died -------------------------------- */

static bool populated(const char *cg)
{
	char path[1200], buf[256] = "";
	snprintf(path, sizeof(path), "%s/cgroup.events", cg);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	fd = util_close(fd);
	return n > 0 && strstr(buf, "populated 1");
}

/* The worker's task cgroups (monitor/cgroup.c: "ptmon-<worker pid>-<n>",
 * in our cgroup) outlive it: kill what is in them, remove them.  The kernel
 * kills a cgroup's processes whoever they are now, with no pid to race. */
static void kill_cgroups(struct front *f)
{
	char own[512], prefix[64], cg[1024];
	if (cgpath_own(own, sizeof(own)) < 0)
		return;
	snprintf(prefix, sizeof(prefix), "ptmon-%d-", (int)f->worker);
	DIR *d = opendir(own);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(cg, sizeof(cg), "%s/%s/cgroup.kill", own, de->d_name);
		int fd = open(cg, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = write(fd, "1", 1);
			(void)n;
			fd = util_close(fd);
		}
		snprintf(cg, sizeof(cg), "%s/%s", own, de->d_name);
		uint64_t end = now_ms() + ORPHANS_BOUND_MS;
		while (populated(cg) && now_ms() < end) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
		/* Its processes are gone; zombies among our children still
		 * leave it in a moment: kill_orphans() reaps them. */
		reap(f);
		for (int i = 0; i < 100 && rmdir(cg) < 0 && errno == EBUSY; i++) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
	}
	if (d)
		closedir(d);
}

/* ---- the guardian ------------------------------------------------------------ */

/*
 * When the front and the worker are both killed (a kill of ptmon's process
 * group, `kill -9 FRONT WORKER`), neither can act: the guardian, a third
 * process in a session of its own, holding nothing of the task's and no
 * stdio, writes cgroup.kill of the worker's task cgroups and removes them.
 * It waits on a pipe from the front: a byte means the front ended as it
 * should (exit 0); EOF means the front died; then, once the worker has died
 * too (its pidfd), whatever is left in those cgroups is killed.  A worker
 * that ended normally removed them already: then nothing is found.
 */
/* The guardian may outlive the front: then it must hold nothing a caller
 * waits on for EOF (a pipe ptmon inherited, the ready pipe): every fd but
 * the two it needs goes. */
static void guardian_close_others(int keep1, int keep2)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);
		if (fd > 2 && fd != keep1 && fd != keep2 && fd != dirfd(d))
			util_close(fd);
	}
	closedir(d);
}

static void guardian_main(struct front *f, int done_r)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		for (int fd = 0; fd < 3; fd++)
			dup2(null, fd);
		util_close(null);
	}
	guardian_close_others(done_r, f->worker_fd);
	setsid();
	prctl(PR_SET_NAME, "ptmon-guard");
	char c;
	ssize_t n;
	do
		n = read(done_r, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		_exit(0);
	struct pollfd p = {.fd = f->worker_fd, .events = POLLIN};
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	kill_cgroups(f);
	_exit(0);
}

static void guardian_start(struct front *f)
{
	int pipefd[2] = {-1, -1};
	f->guardian_w = -1;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		util_close(pipefd[1]);
		guardian_main(f, pipefd[0]); /* never returns */
	}
	if (pid < 0)
		goto out;
	f->guardian = pid;
	f->guardian_w = pipefd[1];
	pipefd[1] = -1;
out:
	util_close(pipefd[0]);
	util_close(pipefd[1]);
}

/* The front is done: the guardian goes, before the front does (a caller
 * that checks that nothing of ptmon is left must find nothing). */
static void guardian_stop(struct front *f)
{
	if (!f->guardian)
		return;
	ssize_t n;
	do
		n = write(f->guardian_w, "D", 1);
	while (n < 0 && errno == EINTR);
	f->guardian_w = util_close(f->guardian_w);
	while (waitpid(f->guardian, NULL, 0) < 0 && errno == EINTR)
		;
	f->guardian = 0;
}

/* ---- the front ------------------------------------------------------------ */

/* Job control stays with the front: it must stop (^Z) with its job, or the
 * shell would never see the job stop. */
static void front_signals(sigset_t *set)
{
	sigfillset(set);
	sigdelset(set, SIGTSTP);
	sigdelset(set, SIGTTIN);
	sigdelset(set, SIGTTOU);
	sigdelset(set, SIGKILL);
	sigdelset(set, SIGSTOP);
}

/* Signals that do not ask ptmon anything: a child's end, a window's size,
 * out-of-band data, a continue (which the kernel has done already), a
 * broken pipe. */
static bool forwardable(int sig)
{
	return sig != SIGCHLD && sig != SIGWINCH && sig != SIGURG && sig != SIGCONT &&
	       sig != SIGPIPE;
}

/* Signal S goes to the worker as a queued forward_signal() carrying S
 * (ptmon_monitor_set_front()). */
static int forward(struct front *f, int sig)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	si.si_signo = forward_signal();
	si.si_code = SI_QUEUE;
	si.si_pid = f->self;
	si.si_uid = getuid();
	si.si_value.sival_int = sig;
	return util_pidfd_send_siginfo(f->worker_fd, forward_signal(), &si);
}

static void wait_worker(struct front *f)
{
	/* Until the worker's monitor takes forwarded signals, they wait
	 * here, blocked: the worker says so, or exits (EOF). */
	char c;
	while (read(f->ready_r, &c, 1) < 0 && errno == EINTR)
		;
	f->ready_r = util_close(f->ready_r);
	while (!f->worker_reaped) {
		siginfo_t si;
		int sig = sigwaitinfo(&f->waited, &si);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			/* Cannot happen with a valid set; still, never spin. */
			waitid(P_PID, (id_t)f->worker, &si, WEXITED | WNOWAIT);
			reap(f);
			continue;
		}
		if (sig == SIGCHLD) {
			reap(f);
			continue;
		}
		f->received[sig] = true;
		/* Kernel-sent ones too (a terminal's ^C reaches the worker
		 * directly as well, and the worker only takes ours). */
		if (forwardable(sig))
			forward(f, sig);
	}
}

static int relay(struct front *f)
{
	if (f->worker_code == CLD_EXITED)
		return f->worker_value;
	int sig = f->worker_value;
	char buf[32];
	const char *name = signal_name(sig, buf, sizeof(buf));
	sigset_t pending;
	sigpending(&pending);
	if (sig > 0 && sig < NSIG && (f->received[sig] || sigismember(&pending, sig) == 1)) {
		/* It died of what we got too (sent to the whole group, before
		 * its monitor was up): die of it, as one process would have. */
		sigset_t one;
		sigemptyset(&one);
		sigaddset(&one, sig);
		signal(sig, SIG_DFL);
		raise(sig);
		sigprocmask(SIG_UNBLOCK, &one, NULL);
	}
	say("ptmon's worker (pid %d) died of signal %s", (int)f->worker, name);
	return EXIT_PTMON_FAILED;
}

static void record_before(struct front *f)
{
	if (!has_children())
		return;
	/* exec'd by a shell with background jobs: those are not the task's. */
	pid_t *v = NULL;
	int n = new_children(f, &v);
	if (n > 0) {
		f->before = v;
		f->nbefore = (size_t)n;
	} else {
		free(v);
	}
}

static _Noreturn void worker_main(struct front *f, int (*work)(void *), void *arg, int verbose)
{
	sigprocmask(SIG_SETMASK, &f->orig_mask, NULL);
	free(f->before);
	f->ready_r = util_close(f->ready_r);
	/* The front may have died before we held it: then we have another
	 * parent, and the pidfd may be a stranger's. */
	int fd = util_pidfd_open(f->self, 0);
	if (fd == -ENOSYS)
		say("this kernel has no pidfds (Linux 5.3 or later is needed)");
	else if (fd < 0)
		say("cannot hold the front: %s", strerror(-fd));
	if (fd < 0 || getppid() != f->self) {
		notes_flush(1000);
		_exit(EXIT_PTMON_FAILED);
	}
	front_pid = f->self;
	front_fd = fd;
	control_set_ptmon_pid(f->self);
	if (verbose)
		say("pid %d (the worker) runs the task; pid %d, the one started, forwards "
		    "signals to it and relays its exit status",
		    (int)getpid(), (int)f->self);
	/* exit(), not _exit(): stdio was flushed before the fork, and the
	 * worker's own atexit work (the leak checker's, say) is its own. */
	exit(work(arg));
}

int front_run(int (*work)(void *arg), void *arg, int verbose, bool guard)
{
	struct front f = {.self = getpid(), .worker_fd = -1, .ready_r = -1, .guardian_w = -1};
	int ready[2] = {-1, -1};
	int status = EXIT_PTMON_FAILED;
	front_signals(&f.waited);
	if (sigprocmask(SIG_BLOCK, &f.waited, &f.orig_mask) < 0 ||
	    prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		say("cannot set up the front: %s", strerror(errno));
		goto out;
	}
	/* Inherited as ignored (SIG_IGN, SA_NOCLDWAIT), SIGCHLD would have the
	 * kernel reap the worker unseen, and its status lost. */
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGCHLD, &dfl, NULL);
	record_before(&f);
	if (pipe2(ready, O_CLOEXEC) < 0) {
		say("cannot set up the front: %s", strerror(errno));
		goto out;
	}
	f.ready_r = ready[0];
	ready[0] = -1;
	fflush(NULL);
	f.worker = fork();
	if (f.worker < 0) {
		say("cannot start the worker: %s", strerror(errno));
		goto out;
	}
	if (f.worker == 0) {
		ready_w = ready[1];
		worker_main(&f, work, arg, verbose);
	}
	/* Now, not at out: the worker's "ready" is seen by EOF too, which
	 * our copy of the write end would hold back (wait_worker()). */
	ready[1] = util_close(ready[1]);
	/* Safe for a child we have not reaped: its pid cannot be reused. */
	f.worker_fd = util_pidfd_open(f.worker, 0);
	if (f.worker_fd < 0) {
		say("cannot hold the worker: %s", strerror(-f.worker_fd));
		notes_flush(1000);
		/* Without a pidfd nothing can be forwarded: let the worker's
		 * monitor see us gone, and wait for it to end the task. */
		_exit(EXIT_PTMON_FAILED);
	}
	if (guard)
		guardian_start(&f);
	wait_worker(&f);
	/* A worker that exited emptied the task's tree itself (its subreaper
	 * held every orphan of it), so children of ours now are the orphans
	 * of jobs we had before, never the task's: not ours to kill. */
	if (f.worker_code != CLD_EXITED) {
		kill_cgroups(&f);
		kill_orphans(&f);
	}
	guardian_stop(&f);
	status = relay(&f);
out:
	util_close(f.worker_fd);
	util_close(f.ready_r); /* wait_worker() closed it, when it ran */
	util_close(ready[1]);
	free(f.before);
	return status;
}

/* ---- the worker's side ------------------------------------------------------ */

int front_attach(struct ptmon_monitor *m)
{
	if (!front_pid)
		return 0;
	int r = ptmon_monitor_set_front(m, front_pid, front_fd, forward_signal());
	struct pollfd p = {.fd = front_fd, .events = POLLIN};
	/* Killed while the worker was getting ready: start nothing. */
	if (r == 0 && poll(&p, 1, 0) == 1)
		r = -ECANCELED;
	if (r == 0) {
		ssize_t n;
		do
			n = write(ready_w, "r", 1);
		while (n < 0 && errno == EINTR);
	}
	ready_w = util_close(ready_w);
	ready_w = -1;
	return r;
}

void front_task_done(void)
{
	struct pollfd p = {.fd = front_fd, .events = POLLIN};
	if (!front_pid || poll(&p, 1, 0) != 1)
		return;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return;
	for (int fd = 0; fd < 3; fd++)
		dup2(null, fd);
	null = util_close(null);
}
