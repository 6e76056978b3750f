/* SPDX-License-Identifier: MIT */
/*
 * The test harness, run layer: runs of the ptmon command with their output
 * streams, each test in a cgroup of its own (tests/harness_run.c, on top of
 * tests/harness.h).
 *
 * A test program that uses it defines `harness_suite` (its subject, which
 * names its cgroups, and what its runs need) and puts setup/teardown in its
 * cmocka table with the backend as the initial state, group_setup and
 * group_teardown around the group.  A test body starts with begin(state),
 * which skips visibly (saying why) when cgroup2, root or the backend is
 * missing, and ends with
 * finish(c): no survivor in the cgroup, the bystander alive, no output pipe
 * held open after ptmon exited.
 *
 * Synchronisation is on output ("READY\n" from the helper), events and
 * pidfds, never on sleeps.  A run that does not end within its deadline is
 * killed and fails, with ptmon's stack (gdb, when installed) and what is left
 * of its tree.
 *
 * Environment knobs (every program):
 *   PTMON_TEST_FILTER="t_deep*"   run a subset (cmocka glob; no brackets)
 *   PTMON_TEST_VERBOSE=1          pass -v to ptmon, for diagnosis
 *   PTMON_TEST_PTMON_FILTER=classic|ebpf  --filter for connector runs
 */
#ifndef PTMON_TEST_HARNESS_RUN_H
#define PTMON_TEST_HARNESS_RUN_H

#include <sys/resource.h>

#include "harness.h"

#ifndef PTMON_BIN
#error "PTMON_BIN must name the ptmon binary"
#endif
#ifndef PTMON_HELPER
#error "PTMON_HELPER must name ptmon-testhelper"
#endif

#define H PTMON_HELPER
#define RUN_DEADLINE_S 60.0 /* any single run of ptmon */
#define EMPTY_BOUND_MS 2000 /* exiting tasks leaving the cgroup */
#define MAX_RUNS 32

struct ctx;

/* What a test program tells the harness about itself. */
struct harness_suite {
	const char *subject; /* cgroups are ptmon-SUBJECT.PID.N; tmpdirs /tmp/ptmon-SUBJECT.* */
	bool tmpdir;         /* each test gets c->dir, removed with what is in it by teardown */
	bool colour_env;     /* ptmon runs with TERM=xterm and without NO_COLOR */
	bool root;           /* every test needs root (setresuid, mounts): skips without */
	void (*probe)(void); /* more probes after the connector's (group_setup) */
	void (*teardown)(struct ctx *c); /* the program's own cleanup, before the cgroup's */
};

/* Defined by each test program that uses this layer. */
extern const struct harness_suite harness_suite;

struct run {
	bool used;
	pid_t pid;
	int pidfd;
	int out, err; /* read ends; -1 at EOF, or when the test gave its own */
	int in;       /* write end of ptmon's stdin (opts.stdin_pipe), or -1 */
	int ev;       /* read end of an events FIFO when followed live, or -1 */
	bool ev_hup;  /* its writer closed: stop polling it until ptmon is reaped */
	struct buf o, e, evb;
	double t_start, t_exit, t_mark;
	bool exited;
	bool pipes_held; /* ptmon's own stdout/stderr/events outlived it */
	int status;
};

struct ctx {
	const char *backend; /* NULL: no --backend flag */
	char cg[384];
	char dir[64]; /* harness_suite.tmpdir: a directory for paths given to ptmon */
	struct run runs[MAX_RUNS];
	int gate; /* write end of a gate FIFO, or -1 (closed by teardown) */
	int hold; /* read end of an events FIFO the test never reads, or -1 */
};

struct opts {
	const char *env; /* "NAME=value" added to ptmon's environment */
	/* NULL-terminated "NAME=value" list: ptmon's whole environment, instead
	 * of the test's (what a shell user's ptmon sees, and nothing else). */
	const char *const *envp;
	rlim_t nofile;       /* RLIMIT_NOFILE soft=hard for ptmon; 0: inherit */
	bool raw;            /* no "run --backend X" in front of the arguments */
	const char *wrap[4]; /* a helper mode and its arguments that execs ptmon */
	bool no_bpf;         /* ptmon without CAP_BPF and CAP_SYS_ADMIN */
	/* ptmon's stdout and stderr: a descriptor the test keeps and closes (a
	 * pty, a pipe it leaves full, /dev/full, a file) instead of a pipe the
	 * run reads; 0: that pipe. */
	int out_fd, err_fd;
	uid_t uid;       /* ptmon as this uid and gid, without groups; 0: as the test */
	bool own_pgrp;   /* ptmon leads a process group of its own */
	bool stdin_pipe; /* ptmon's stdin is a pipe whose write end is r->in */
	/* ptmon stays in the test program's cgroup, outside the test's: a
	 * `ptmon watch` of that cgroup, or a client of it, must not be in the
	 * tree it watches. */
	bool outside_cg;
	/* A program to run instead of ptmon, with the arguments alone (a caller
	 * of ptmon such as tests/go/ctx.go); it is a run like any other. */
	const char *prog;
};

extern const char *const backend_connector;
extern const char *const backend_procfs;
extern const char *const backend_none;
extern bool connector_ok;
extern char connector_why[512];

/* The test's cgroup, by context. */
void cg_path(const struct ctx *c, const char *file, char *out, size_t len);
bool cg_populated(const struct ctx *c);
bool cg_wait_empty(const struct ctx *c, int bound_ms);
void cg_kill(const struct ctx *c);
/* At most @max pids of the cgroup and those below it; their number. */
int cg_list(const struct ctx *c, pid_t *pids, int max);
/* Cgroups below the test's: the task's own, while ptmon has one. */
int cg_children(const struct ctx *c);
/* A process of the cgroup (or below) whose comm is @comm, or 0. */
pid_t cg_find_comm(const struct ctx *c, const char *comm);
/* Prints each process of the cgroup as a survivor; their number. */
int cg_dump_survivors(const struct ctx *c);
/* @name inside the test's temporary directory (a rotating static buffer). */
const char *tpath(const struct ctx *c, const char *name);

void dump_run(const struct run *r);
/* Kills the run if it still runs, reaps it, closes its descriptors and frees
 * its slot for a new run (a test that starts more runs than MAX_RUNS). */
void run_free(struct run *r);
void runs_reap_all(struct ctx *c);
struct run *new_run(struct ctx *c);
/* Starts ptmon with "run --backend X" (unless o->raw) and @args. */
void run_start_argv(struct ctx *c, struct run *r, const struct opts *o, const char *const *args);
/* The same with the arguments as a NULL-terminated list. */
void run_start(struct ctx *c, struct run *r, const struct opts *o, ...);
/* Reads what is there; EIO (a pty master whose last slave closed) is EOF. */
void drain_fd(int *fd, struct buf *b);
/* One round: waits up to @ms for output, events or ptmon's exit. */
void pump(struct run *r, int ms);
_Noreturn void run_abort(struct ctx *c, struct run *r, const char *why);
/* Waits for ptmon to exit and its output (and followed events) to end. */
void run_wait(struct ctx *c, struct run *r, double deadline_s);
/* Pumps until ptmon has exited and been reaped, at most @bound_ms from now:
 * whether it has (a bound from an event of the test's, where run_wait()'s
 * deadline counts from the start). */
bool run_reaped(struct run *r, int bound_ms);
/* Makes a FIFO @name in the test's directory and follows it as @r's event
 * stream (r->ev, read into r->evb): its read end is open before ptmon
 * starts, so that ptmon's open for writing does not wait.  The test gives
 * tpath(c, @name) to ptmon's --events. */
void follow_events(struct ctx *c, struct run *r, const char *name);
/* Follows the event stream until @needle has shown up @count times, at most
 * @deadline_s from the run's start. */
void run_until_events(struct ctx *c, struct run *r, const char *needle, int count,
		      double deadline_s);
/* Reads ptmon's stdout until @needle has shown up @count times. */
void run_until_n(struct ctx *c, struct run *r, const char *needle, int count);
void run_until(struct ctx *c, struct run *r, const char *needle);
/* Pumps until the cgroup holds a process named @comm (a task that says
 * nothing, such as "sleep"), within the run's deadline. */
void run_until_comm(struct ctx *c, struct run *r, const char *comm);
/* ptmon's worker: the child of the ptmon started, in the test's cgroup
 * (src/front.c).  The task's root is the worker's child. */
pid_t worker_of(struct ctx *c, struct run *r);
void run_signal(struct run *r, int sig);
void assert_status(struct run *r, int code);
/* The status of an exited run as a shell's $? (128+N for a death by
 * signal N). */
int run_shell_status(const struct run *r);
void assert_stderr_has(struct run *r, const char *needle);
/* Elapsed seconds from @from to ptmon's exit, checked against a window. */
double assert_took(struct run *r, double from, double lo, double hi);
/* Survivors, bystander, leaked output pipes: what every test ends with. */
void finish(struct ctx *c);

/* A context of its own for a probe run (cgroup ptmon-SUBJECT.PID.@tag);
 * probe_end() removes it.  NULL when the cgroup cannot be made. */
struct ctx *probe_begin(const char *tag, const char *backend);
void probe_end(struct ctx *c);

int setup(void **state);
int teardown(void **state);
/* The context; skips the test visibly without cgroup2, root (when the suite
 * needs it) or its backend. */
struct ctx *begin(void **state);
int group_setup(void **state);
int group_teardown(void **state);

#endif
