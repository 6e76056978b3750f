/* SPDX-License-Identifier: MIT */
/* The test harness, run layer (tests/harness_run.h). */
#include "harness_run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* <linux/capability.h> numbers; 6.1's headers have CAP_BPF, older not. */
#define CAP_SYS_ADMIN_NR 21
#define CAP_BPF_NR 39

const char *const backend_connector = "connector";
const char *const backend_procfs = "procfs";
const char *const backend_none = "none";
bool connector_ok;
char connector_why[512];
/* Why every test of the program skips, when group_setup found they must. */
static char skip_why[256];

/* ---- the test's cgroup and directory ------------------------------------------ */

void cg_path(const struct ctx *c, const char *file, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", c->cg, file);
}

bool cg_populated(const struct ctx *c)
{
	return cg_populated_at(c->cg);
}

bool cg_wait_empty(const struct ctx *c, int bound_ms)
{
	return cg_wait_empty_at(c->cg, bound_ms);
}

void cg_kill(const struct ctx *c)
{
	cg_kill_at(c->cg);
}

int cg_list(const struct ctx *c, pid_t *pids, int max)
{
	int n = cg_list_dir(c->cg, pids, 0, max);

	return n < max ? n : max;
}

int cg_children(const struct ctx *c)
{
	return cg_children_at(c->cg);
}

pid_t cg_find_comm(const struct ctx *c, const char *comm)
{
	pid_t pids[64];
	int n = cg_list(c, pids, 64);

	for (int i = 0; i < n; i++) {
		char name[64];

		comm_of(pids[i], name, sizeof(name));
		if (strcmp(name, comm) == 0)
			return pids[i];
	}
	return 0;
}

int cg_dump_survivors(const struct ctx *c)
{
	pid_t pids[64];
	int n = cg_list(c, pids, 64);

	for (int i = 0; i < n; i++) {
		char d[320], name[64];

		describe_pid(pids[i], d, sizeof(d));
		comm_of(pids[i], name, sizeof(name));
		print_error("survivor: %s [%s]\n", d, name);
	}
	return n;
}

const char *tpath(const struct ctx *c, const char *name)
{
	static char paths[8][PATH_MAX];
	static unsigned next;
	char *p = paths[next++ % ARRAY_SIZE(paths)];

	snprintf(p, PATH_MAX, "%s/%s", c->dir, name);
	return p;
}

/* @dir and everything below it (ptmon makes directories of its own there:
 * XDG_RUNTIME_DIR/ptmon). */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char sub[PATH_MAX];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0 || errno != EISDIR)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		remove_dir(sub);
	}
	if (d)
		closedir(d);
	if (rmdir(dir) < 0)
		print_error("rmdir %s: %s\n", dir, strerror(errno));
}

/* ---- runs of ptmon ------------------------------------------------------------------ */

void dump_run(const struct run *r)
{
	size_t ol = r->o.len > 1500 ? 1500 : r->o.len, el = r->e.len > 3000 ? 3000 : r->e.len;

	if (r->exited && WIFEXITED(r->status))
		print_error("ptmon pid %d exited with status %d after %.3fs\n", r->pid,
			    WEXITSTATUS(r->status), r->t_exit - r->t_start);
	else if (r->exited)
		print_error("ptmon pid %d killed by signal %d after %.3fs\n", r->pid,
			    WTERMSIG(r->status), r->t_exit - r->t_start);
	else
		print_error("ptmon pid %d still running after %.3fs\n", r->pid,
			    now_s() - r->t_start);
	/* Not print_error(): cmocka cuts long messages. */
	fflush(stdout);
	fprintf(stderr, "--- stdout (%zu bytes, last %zu):\n", r->o.len, ol);
	fwrite(r->o.p ? r->o.p + r->o.len - ol : "", 1, ol, stderr);
	fprintf(stderr, "\n--- stderr (%zu bytes, last %zu):\n", r->e.len, el);
	fwrite(r->e.p ? r->e.p + r->e.len - el : "", 1, el, stderr);
	fprintf(stderr, "\n---\n");
}

void run_free(struct run *r)
{
	if (!r->exited) {
		sys_pidfd_send_signal(r->pidfd, SIGKILL);
		while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR)
			;
		r->exited = true;
	}
	if (r->pidfd >= 0)
		close(r->pidfd);
	if (r->out >= 0)
		close(r->out);
	if (r->err >= 0)
		close(r->err);
	if (r->in >= 0)
		close(r->in);
	if (r->ev >= 0)
		close(r->ev);
	buf_free(&r->o);
	buf_free(&r->e);
	buf_free(&r->evb);
	memset(r, 0, sizeof(*r));
}

/* Reap every run that is still there, killing ptmon first. */
void runs_reap_all(struct ctx *c)
{
	for (int i = 0; i < MAX_RUNS; i++)
		if (c->runs[i].used)
			run_free(&c->runs[i]);
}

struct run *new_run(struct ctx *c)
{
	for (int i = 0; i < MAX_RUNS; i++)
		if (!c->runs[i].used) {
			struct run *r = &c->runs[i];

			memset(r, 0, sizeof(*r));
			r->used = true;
			r->pidfd = r->out = r->err = r->in = r->ev = -1;
			return r;
		}
	fail_msg("too many runs");
	return NULL;
}

/* The child's descriptors: stdin's read end (-1: /dev/null), stdout's and
 * stderr's write ends, the test cgroup's cgroup.procs (-1: opts.outside_cg). */
struct child_fds {
	int in, out, err, procs;
};

static _Noreturn void child_exec(const struct opts *o, const struct child_fds *fds, pid_t parent,
				 char **argv)
{
	char pidtext[32];
	struct rlimit zero = {0, 0};
	sigset_t none;
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* Into the test's cgroup before anything of the task exists. */
	snprintf(pidtext, sizeof(pidtext), "%d", getpid());
	if (fds->procs >= 0 && write(fds->procs, pidtext, strlen(pidtext)) < 0)
		_exit(121);
	if (null < 0 || dup2(fds->in >= 0 ? fds->in : null, 0) < 0 || dup2(fds->out, 1) < 0 ||
	    dup2(fds->err, 2) < 0)
		_exit(122);
	/* A clean signal state, so that what the task sees is ptmon's doing. */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (o && o->own_pgrp && setpgid(0, 0) < 0)
		_exit(126);
	setrlimit(RLIMIT_CORE, &zero);
	if (o && o->nofile) {
		struct rlimit rl = {o->nofile, o->nofile};

		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(124);
	}
	if (o && o->envp) {
		clearenv();
		for (size_t i = 0; o->envp[i]; i++)
			putenv((char *)o->envp[i]);
	}
	if (harness_suite.colour_env) {
		/* The summary's colour depends on these; the test decides them. */
		unsetenv("NO_COLOR");
		setenv("TERM", "xterm", 1);
	}
	if (o && o->env)
		putenv((char *)o->env);
	/* Out of the bounding set, out of what root's exec grants: either
	 * one would let ptmon load eBPF. */
	if (o && o->no_bpf &&
	    (prctl(PR_CAPBSET_DROP, CAP_BPF_NR) < 0 ||
	     prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN_NR) < 0))
		_exit(125);
	/* Last of the privileged steps: dropping capabilities needs them. */
	if (o && o->uid &&
	    (setgroups(0, NULL) < 0 || setresgid(o->uid, o->uid, o->uid) < 0 ||
	     setresuid(o->uid, o->uid, o->uid) < 0))
		_exit(127);
	/* After the change of credentials, which clears the parent-death
	 * signal. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(123);
	execv(argv[0], argv);
	dprintf(2, "test: exec %s: %s\n", argv[0], strerror(errno));
	_exit(120);
}

/* argv for a run: [wrapper...] ptmon [run --backend X [--filter F] [-v]] @args,
 * or o->prog @args. */
static char **run_argv(const struct ctx *c, const struct opts *o, const char *const *args)
{
	size_t nargs = 0, n = 0;
	char **argv;

	while (args[nargs])
		nargs++;
	argv = calloc(nargs + 16, sizeof(*argv));
	assert_non_null(argv);
	if (o && o->prog) {
		argv[n++] = (char *)o->prog;
		memcpy(argv + n, args, nargs * sizeof(*args));
		return argv;
	}
	if (o && o->wrap[0]) {
		argv[n++] = (char *)H;
		for (size_t i = 0; i < ARRAY_SIZE(o->wrap) && o->wrap[i]; i++)
			argv[n++] = (char *)o->wrap[i];
	}
	argv[n++] = (char *)PTMON_BIN;
	if (!o || !o->raw) {
		argv[n++] = (char *)"run";
		if (c->backend) {
			argv[n++] = (char *)"--backend";
			argv[n++] = (char *)c->backend;
		}
		/* PTMON_TEST_PTMON_FILTER=classic|ebpf: the suite on one filter
		 * (ctest runs test_scenarios on both). */
		if (getenv("PTMON_TEST_PTMON_FILTER") && c->backend == backend_connector) {
			argv[n++] = (char *)"--filter";
			argv[n++] = getenv("PTMON_TEST_PTMON_FILTER");
		}
		if (getenv("PTMON_TEST_VERBOSE"))
			argv[n++] = (char *)"-v";
	}
	for (size_t i = 0; i < nargs; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	return argv;
}

void run_start_argv(struct ctx *c, struct run *r, const struct opts *o, const char *const *args)
{
	char **argv = run_argv(c, o, args);
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1};
	struct child_fds fds;
	char path[PATH_MAX];
	pid_t parent = getpid();

	if (o && o->outside_cg) {
		fds.procs = -1;
	} else {
		cg_path(c, "cgroup.procs", path, sizeof(path));
		fds.procs = open(path, O_WRONLY | O_CLOEXEC);
		assert_true(fds.procs >= 0);
	}
	if (o && o->out_fd > 0) {
		fds.out = o->out_fd;
	} else {
		assert_int_equal(pipe2(outp, O_CLOEXEC), 0);
		fds.out = outp[1];
	}
	if (o && o->err_fd > 0) {
		fds.err = o->err_fd;
	} else {
		assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
		fds.err = errp[1];
	}
	if (o && o->stdin_pipe)
		assert_int_equal(pipe2(inp, O_CLOEXEC), 0);
	fds.in = inp[0];
	r->t_start = now_s();
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0)
		child_exec(o, &fds, parent, argv);
	free(argv);
	if (fds.procs >= 0)
		close(fds.procs);
	if (outp[1] >= 0)
		close(outp[1]);
	if (errp[1] >= 0)
		close(errp[1]);
	if (inp[0] >= 0)
		close(inp[0]);
	r->out = outp[0];
	r->err = errp[0];
	r->in = inp[1];
	if (r->out >= 0)
		fcntl(r->out, F_SETFL, O_NONBLOCK);
	if (r->err >= 0)
		fcntl(r->err, F_SETFL, O_NONBLOCK);
	r->pidfd = sys_pidfd_open(r->pid);
	assert_true(r->pidfd >= 0);
}

void run_start(struct ctx *c, struct run *r, const struct opts *o, ...)
{
	const char *args[64];
	int n = 0;
	va_list ap;

	va_start(ap, o);
	while ((args[n] = va_arg(ap, const char *)) != NULL)
		assert_true(++n < (int)ARRAY_SIZE(args));
	va_end(ap);
	run_start_argv(c, r, o, args);
}

void drain_fd(int *fd, struct buf *b)
{
	char chunk[65536];

	while (*fd >= 0) {
		ssize_t n = read(*fd, chunk, sizeof(chunk));

		if (n > 0) {
			buf_add(b, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close(*fd);
		*fd = -1;
	}
}

/* The events FIFO: read() returns 0 both before ptmon opens it and after it
 * closes it, so EOF counts only once ptmon has been reaped. */
static void drain_events(struct run *r)
{
	char chunk[65536];

	while (r->ev >= 0) {
		ssize_t n = read(r->ev, chunk, sizeof(chunk));

		if (n > 0) {
			buf_add(&r->evb, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 && r->exited) {
			close(r->ev);
			r->ev = -1;
		} else if (n == 0) {
			r->ev_hup = true;
		}
		return;
	}
}

void pump(struct run *r, int ms)
{
	struct pollfd p[4];
	int n = 0;

	if (r->out >= 0)
		p[n++] = (struct pollfd){.fd = r->out, .events = POLLIN};
	if (r->err >= 0)
		p[n++] = (struct pollfd){.fd = r->err, .events = POLLIN};
	if (r->ev >= 0 && !r->ev_hup)
		p[n++] = (struct pollfd){.fd = r->ev, .events = POLLIN};
	if (!r->exited)
		p[n++] = (struct pollfd){.fd = r->pidfd, .events = POLLIN};
	/* With nothing left to wait for, poll() sleeps @ms: a caller's loop
	 * that waits for something else (a cgroup emptying) does not spin. */
	if (poll(p, (nfds_t)n, ms) < 0)
		return;
	for (int i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (p[i].fd == r->out)
			drain_fd(&r->out, &r->o);
		else if (p[i].fd == r->err)
			drain_fd(&r->err, &r->e);
		else if (p[i].fd == r->ev)
			drain_events(r);
		else if (!r->exited) {
			r->t_exit = now_s();
			while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR)
				;
			r->exited = true;
			r->ev_hup = false;
		}
	}
	if (r->exited && r->ev >= 0)
		drain_events(r);
}

/* The children of ptmon anywhere (zombies are no longer in the cgroup). */
static void dump_children(pid_t ptmon)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	char path[64];
	int kids = 0;

	while (d && (de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);
		char st[512], *p;

		if (pid <= 0 || ppid_of(pid) != ptmon)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		if (read_file(path, st, sizeof(st)) > 0 && (p = strrchr(st, ')')) && kids++ < 12)
			print_error("  child of ptmon: pid %d state %c\n", pid, p[2]);
	}
	if (d)
		closedir(d);
	print_error("%d child(ren) of ptmon in /proc\n", kids);
}

/* What a hung ptmon was doing, and what is left of its tree. */
static void dump_hang(struct ctx *c, struct run *r)
{
	static pid_t pids[4096];
	int n = cg_list(c, pids, 4096), shown = 0;
	char path[64], buf[512], cmd[128];

	snprintf(path, sizeof(path), "/proc/%d/wchan", r->pid);
	if (read_file(path, buf, sizeof(buf)) > 0)
		print_error("ptmon wchan: %s\n", buf);
	snprintf(path, sizeof(path), "/proc/%d/syscall", r->pid);
	if (read_file(path, buf, sizeof(buf)) > 0)
		print_error("ptmon syscall: %s", buf);
	print_error("%d process(es) in the cgroup:\n", n);
	for (int i = 0; i < n && shown < 12; i++) {
		char d[320], st[512], *p;

		snprintf(path, sizeof(path), "/proc/%d/stat", pids[i]);
		if (read_file(path, st, sizeof(st)) <= 0 || !(p = strrchr(st, ')')))
			continue;
		describe_pid(pids[i], d, sizeof(d));
		print_error("  %s [state %c]\n", d, p[2]);
		shown++;
	}
	dump_children(r->pid);
	if (access("/usr/bin/gdb", X_OK) == 0) {
		snprintf(cmd, sizeof(cmd),
			 "gdb -p %d -batch -ex 'thread apply all bt' 1>&2 2>/dev/null", r->pid);
		if (system(cmd) != 0)
			print_error("(gdb failed)\n");
	}
}

_Noreturn void run_abort(struct ctx *c, struct run *r, const char *why)
{
	dump_run(r);
	if (!r->exited)
		dump_hang(c, r);
	sys_pidfd_send_signal(r->pidfd, SIGKILL);
	cg_kill(c);
	fail_msg("%s", why);
	abort();
}

/* ptmon's stdout and stderr must close when it exits: only a process it
 * leaked them to would hold them on, and that is checked in finish(). */
void run_wait(struct ctx *c, struct run *r, double deadline_s)
{
	double end = r->t_start + deadline_s;

	while (!r->exited || r->out >= 0 || r->err >= 0 || r->ev >= 0) {
		double t = now_s();
		char why[128];

		if (t > end) {
			snprintf(why, sizeof(why), "ptmon did not return within %.0fs", deadline_s);
			run_abort(c, r, why);
		}
		if (r->exited && t > r->t_exit + 2.0) {
			r->pipes_held = true;
			drain_fd(&r->out, &r->o);
			drain_fd(&r->err, &r->e);
			if (r->out >= 0)
				close(r->out);
			if (r->err >= 0)
				close(r->err);
			r->out = r->err = -1;
			break;
		}
		pump(r, 100);
	}
}

bool run_reaped(struct run *r, int bound_ms)
{
	double end = now_s() + bound_ms / 1000.0;

	/* One round at least, so that a bound of 0 asks once. */
	while (!r->exited) {
		int left = (int)((end - now_s()) * 1000);

		pump(r, left > 0 ? left : 0);
		if (left <= 0)
			break;
	}
	return r->exited;
}

void follow_events(struct ctx *c, struct run *r, const char *name)
{
	assert_int_equal(mkfifo(tpath(c, name), 0600), 0);
	r->ev = open(tpath(c, name), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(r->ev >= 0);
}

void run_until_events(struct ctx *c, struct run *r, const char *needle, int count,
		      double deadline_s)
{
	double end = r->t_start + deadline_s;

	while (buf_count(&r->evb, needle) < count) {
		if (r->exited) {
			print_error("events so far:\n%s\n", r->evb.p ? r->evb.p : "");
			run_abort(c, r, "ptmon ended before the expected events");
		}
		if (now_s() > end) {
			print_error("events so far:\n%s\n", r->evb.p ? r->evb.p : "");
			run_abort(c, r, "the expected events did not come in time");
		}
		pump(r, 100);
	}
}

void run_until_n(struct ctx *c, struct run *r, const char *needle, int count)
{
	double end = r->t_start + RUN_DEADLINE_S;

	while (buf_count(&r->o, needle) < count) {
		char why[256];

		if (r->exited && r->out < 0) {
			snprintf(why, sizeof(why), "ptmon ended before \"%.*s\" appeared",
				 (int)strcspn(needle, "\n"), needle);
			run_abort(c, r, why);
		}
		if (now_s() > end) {
			snprintf(why, sizeof(why), "no \"%.*s\" within %.0fs",
				 (int)strcspn(needle, "\n"), needle, RUN_DEADLINE_S);
			run_abort(c, r, why);
		}
		pump(r, 100);
	}
}

void run_until(struct ctx *c, struct run *r, const char *needle)
{
	run_until_n(c, r, needle, 1);
}

void run_until_comm(struct ctx *c, struct run *r, const char *comm)
{
	double end = r->t_start + RUN_DEADLINE_S;

	while (!cg_find_comm(c, comm)) {
		char why[128];

		if (now_s() > end) {
			snprintf(why, sizeof(why), "no %s in the task's tree within %.0fs", comm,
				 RUN_DEADLINE_S);
			run_abort(c, r, why);
		}
		/* 1 ms: a process that is there is found at once. */
		pump(r, 1);
	}
}

pid_t worker_of(struct ctx *c, struct run *r)
{
	pid_t w = front_worker(r->pid);

	if (w > 0)
		return w;
	dump_run(r);
	fail_msg("ptmon (pid %d) has no worker", r->pid);
	return -1;
}

void run_signal(struct run *r, int sig)
{
	r->t_mark = now_s();
	assert_int_equal(sys_pidfd_send_signal(r->pidfd, sig), 0);
}

void assert_status(struct run *r, int code)
{
	if (!r->exited || !WIFEXITED(r->status) || WEXITSTATUS(r->status) != code) {
		dump_run(r);
		fail_msg("expected exit status %d", code);
	}
}

int run_shell_status(const struct run *r)
{
	return WIFEXITED(r->status) ? WEXITSTATUS(r->status) : 128 + WTERMSIG(r->status);
}

void assert_stderr_has(struct run *r, const char *needle)
{
	if (!buf_has(&r->e, needle)) {
		dump_run(r);
		fail_msg("stderr lacks \"%s\"", needle);
	}
}

double assert_took(struct run *r, double from, double lo, double hi)
{
	double took = r->t_exit - from;

	if (took < lo || took > hi) {
		dump_run(r);
		fail_msg("ptmon took %.3fs, expected between %.3fs and %.3fs", took, lo, hi);
	}
	return took;
}

void finish(struct ctx *c)
{
	for (int i = 0; i < MAX_RUNS; i++) {
		struct run *r = &c->runs[i];

		if (r->used && !r->exited)
			fail_msg("a run was not waited for");
		if (r->used && r->pipes_held) {
			dump_run(r);
			fail_msg("ptmon's stdout/stderr/events stayed open after it exited");
		}
	}
	if (!cg_wait_empty(c, EMPTY_BOUND_MS)) {
		int n = cg_dump_survivors(c);

		cg_kill(c);
		fail_msg("%d process(es) of the task survived ptmon", n);
	}
	if (!bystander_alive())
		fail_msg("the bystander (pid %d) is dead", bystander_pid);
}

/* ---- setup and teardown ---------------------------------------------------------- */

static struct ctx *ctx_new(const char *backend)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->gate = c->hold = -1;
	c->backend = backend == backend_none ? NULL : backend;
	return c;
}

int setup(void **state)
{
	struct ctx *c;

	if (!cg_mount[0])
		return 0; /* the test skips */
	if (bystander_renew() < 0)
		return -1;
	c = ctx_new(*state);
	if (!c)
		return -1;
	if (harness_suite.tmpdir) {
		snprintf(c->dir, sizeof(c->dir), "/tmp/ptmon-%s.XXXXXX", harness_suite.subject);
		if (!mkdtemp(c->dir)) {
			print_error("mkdtemp: %s\n", strerror(errno));
			free(c);
			return -1;
		}
	}
	if (cg_make(harness_suite.subject, NULL, c->cg, sizeof(c->cg)) < 0) {
		if (c->dir[0])
			rmdir(c->dir);
		free(c);
		return -1;
	}
	*state = c;
	return 0;
}

int teardown(void **state)
{
	struct ctx *c = *state;
	int ret = 0;

	if (!cg_mount[0] || (const char *)c == backend_connector ||
	    (const char *)c == backend_procfs || (const char *)c == backend_none)
		return 0;
	cg_kill(c);
	runs_reap_all(c);
	outside_kill_all();
	if (c->gate >= 0)
		close(c->gate);
	if (c->hold >= 0)
		close(c->hold);
	if (harness_suite.teardown)
		harness_suite.teardown(c);
	if (cg_remove(c->cg) < 0)
		ret = -1;
	if (c->dir[0] && getenv("PTMON_TEST_KEEP"))
		print_message("    kept %s\n", c->dir);
	else if (c->dir[0])
		remove_dir(c->dir);
	if (!bystander_alive()) {
		print_error("the bystander is dead\n");
		ret = -1;
	}
	free(c);
	return ret;
}

struct ctx *begin(void **state)
{
	struct ctx *c = *state;

	if (!cg_mount[0]) {
		print_message("%s: skipped\n", skip_why);
		skip();
	}
	if (c->backend == backend_connector && !connector_ok) {
		print_message("connector backend unavailable: %s\n", connector_why);
		skip();
	}
	return c;
}

struct ctx *probe_begin(const char *tag, const char *backend)
{
	struct ctx *c = ctx_new(backend);

	if (c && cg_make(harness_suite.subject, tag, c->cg, sizeof(c->cg)) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

void probe_end(struct ctx *c)
{
	cg_kill(c);
	runs_reap_all(c);
	cg_wait_empty(c, 2000);
	rmdir(c->cg);
	free(c);
}

/* Probe the connector backend once with "true": ptmon exits 125 when the
 * connector backend is asked for and unavailable. */
static void probe_connector(void)
{
	struct ctx *c = probe_begin("probe", backend_connector);
	struct run *r;

	if (!c) {
		snprintf(connector_why, sizeof(connector_why), "cannot make the probe's cgroup");
		return;
	}
	r = new_run(c);
	run_start(c, r, NULL, "--", "true", NULL);
	run_wait(c, r, RUN_DEADLINE_S);
	if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0)
		connector_ok = true;
	else
		snprintf(connector_why, sizeof(connector_why), "status 0x%x: %.*s", r->status,
			 (int)(r->e.len > 400 ? 400 : r->e.len), r->e.p ? r->e.p : "");
	probe_end(c);
}

int group_setup(void **state)
{
	(void)state;
	if (harness_suite.root && geteuid() != 0) {
		snprintf(skip_why, sizeof(skip_why), "not root");
		cg_mount[0] = '\0';
		print_error("%s: every test will skip\n", skip_why);
	} else if (!cg_setup(harness_suite.subject, skip_why, sizeof(skip_why))) {
		print_error("%s: every test will skip\n", skip_why);
	}
	if (access(PTMON_BIN, X_OK) < 0 || access(PTMON_HELPER, X_OK) < 0) {
		print_error("%s or %s: not executable\n", PTMON_BIN, PTMON_HELPER);
		return -1;
	}
	bystander_start();
	if (bystander_fd < 0)
		return -1;
	if (cg_mount[0]) {
		cg_remove_stale(harness_suite.subject);
		probe_connector();
		if (harness_suite.probe)
			harness_suite.probe();
	}
	return 0;
}

int group_teardown(void **state)
{
	(void)state;
	bystander_stop();
	/* Nothing else of ours is left to reap. */
	return children_check_none();
}
