/* SPDX-License-Identifier: MIT */
/*
 * The test harness, base layer: what every integration test needs to watch
 * real processes from outside ptmon (tests/harness.c).
 *
 * - pidfds, clocks and small files;
 * - growing byte buffers for what ptmon writes;
 * - the test cgroups: every test that runs ptmon does so inside a cgroup v2
 *   directory of its own at the cgroup2 root, named ptmon-SUBJECT.PID.N
 *   (SUBJECT names the test program, PID is the test's, N counts), so that
 *   survivors are found without trusting ptmon and .ci/run's leftover check
 *   finds any the suite did not remove (it looks for "ptmon-*");
 * - a bystander: a process outside every tree that must outlive each test;
 * - "outsiders": processes of a test outside any tree (storms, PID squatters)
 *   that teardown kills and reaps.
 *
 * The layer above (tests/harness_run.h) starts ptmon with its output streams.
 * Functions fail the cmocka test (fail_msg) only where they say so.
 */
#ifndef PTMON_TEST_HARNESS_H
#define PTMON_TEST_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- system helpers ---------------------------------------------------------- */

int sys_pidfd_open(pid_t pid);
int sys_pidfd_send_signal(int pidfd, int sig);
int sys_pidfd_getfd(int pidfd, int fd);
/* CLOCK_MONOTONIC in seconds. */
double now_s(void);
/* Has the process behind @pidfd exited (zombie or reaped) within @wait_ms? */
bool pidfd_dead(int pidfd, int wait_ms);
/* One read() of @path into @buf, NUL-terminated: bytes read or -errno. */
int read_file(const char *path, char *buf, size_t len);
/* One write() of @text to @path: 0 or -errno. */
int write_file(const char *path, const char *text);
/* The parent pid of @pid from /proc/PID/stat, or -1. */
pid_t ppid_of(pid_t pid);
/* The worker of the ptmon run whose front is @front: its child that is not
 * the guardian (src/front.c forks the worker, then the guardian, which
 * names itself "ptmon-guard"; until it has, the two look alike and this
 * waits, bound 5 s).  0: none. */
pid_t front_worker(pid_t front);
/* "pid P ppid Q: argv" for diagnostics. */
void describe_pid(pid_t pid, char *out, size_t len);
/* /proc/PID/comm without its newline, "?" when gone. */
void comm_of(pid_t pid, char *out, size_t len);

/* ---- buffers ------------------------------------------------------------------- */

struct buf {
	char *p; /* NUL-terminated once anything was added */
	size_t len, cap;
};

/* Appends; fails the test when out of memory. */
void buf_add(struct buf *b, const void *p, size_t n);
void buf_free(struct buf *b);
bool buf_has(const struct buf *b, const char *needle);
int buf_count(const struct buf *b, const char *needle);
/* Appends the whole of the file at @path (NUL-terminated even when empty);
 * fails the test when it cannot be read. */
void buf_add_file(struct buf *b, const char *path);

/* ---- test cgroups -------------------------------------------------------------- */

/* The cgroup2 mount ("" when none was found or it lacks cgroup.kill). */
extern char cg_mount[256];

/* Finds the cgroup2 mount into cg_mount. */
bool find_cgroup2(void);
/* Finds cgroup2 and checks that cgroup.kill (Linux 5.14+) works there, with a
 * probe cgroup of @subject; on false, cg_mount is "" and @why says why. */
bool cg_setup(const char *subject, char *why, size_t why_len);
/* Makes the test cgroup <mount>/ptmon-@subject.<our pid>.<tag> (@tag NULL:
 * the next serial number) into @out: 0 or -errno (printed). */
int cg_make(const char *subject, const char *tag, char *out, size_t len);
bool cg_populated_at(const char *cg);
/* Waits for "populated 0", woken by inotify on cgroup.events, at most
 * @bound_ms.  Exiting tasks leave the cgroup an instant after they die. */
bool cg_wait_empty_at(const char *cg, int bound_ms);
void cg_kill_at(const char *cg);
/* cgroup.kill, wait for it to empty (5 s), rmdir it and the cgroups below
 * it: 0, or -1 (printed). */
int cg_remove(const char *cg);
/* How many processes are in @cg itself, not in the cgroups below it; -1
 * when its cgroup.procs cannot be read. */
int cg_count_at(const char *cg);
/* The processes of @dir and of the cgroups below it, into @pids (at most
 * @max kept; the count goes on beyond it), starting at index @n. */
int cg_list_dir(const char *dir, pid_t *pids, int n, int max);
/* How many cgroups are directly below @cg (a task's own, while ptmon has
 * one). */
int cg_children_at(const char *cg);
/* A killed earlier run of a test program (a ctest timeout) left cgroups of
 * @subject behind, maybe with processes: remove those of dead test pids. */
void cg_remove_stale(const char *subject);

/* ---- the bystander and the outsiders --------------------------------------------- */

extern pid_t bystander_pid;
extern int bystander_fd;

/* A child that pauses until killed; bystander_fd < 0 on failure. */
void bystander_start(void);
bool bystander_alive(void);
/* A new one, if an earlier test killed it: 0 or -1. */
int bystander_renew(void);
void bystander_stop(void);

struct outside {
	pid_t pid; /* 0: free */
	int pidfd;
};

/* fork(): returns the record in the parent, NULL in the child, which dies
 * with this test (PR_SET_PDEATHSIG).  Fails the test on error. */
struct outside *outside_fork(void);
void outside_reap(struct outside *o, int *ret_status);
/* SIGKILL and reap every outsider still there (teardown). */
void outside_kill_all(void);

/* Nothing but the bystander is left to reap: 0, else -1 (printed). */
int children_check_none(void);

#endif
