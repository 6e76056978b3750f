/* SPDX-License-Identifier: MIT */
/*
 * `ptmon run` in two processes.  The front is the process the caller
 * started and may SIGKILL; the worker, its child, does all the work (the
 * monitor, the output, the control socket, the records).  The front only
 * forwards signals and relays the worker's exit status; the worker cancels
 * the task at once when the front dies.  See README "If ptmon is killed".
 */
#ifndef PTMON_FRONT_H
#define PTMON_FRONT_H

#include <stdbool.h>

struct ptmon_monitor;

/*
 * Fork the worker, which calls @work(@arg) and exits with what it returns;
 * wait for it, forwarding signals, and return its exit status (125 when it
 * could not be started or died of a signal the front did not forward; a
 * signal the front forwarded and the worker died of is raised again, so
 * that the caller sees ptmon die of it).  Prints "-v" lines when @verbose.
 * Call with only fds 0, 1 and 2 of interest open: the front keeps them.
 * With @guard (the task may get a cgroup of its own), a third process, the
 * guardian, ends the worker's task cgroups if the front and the worker are
 * both killed; it is gone when front_run() returns.
 */
int front_run(int (*work)(void *arg), void *arg, int verbose, bool guard);

/* In the worker: tell the monitor about the front (ptmon_monitor_set_front()).
 * Returns 0 (also without a front), -ECANCELED when the front has died
 * already (start nothing), or -errno. */
int front_attach(struct ptmon_monitor *m);

/* In the worker, once the task is done: if the front has died, let go of
 * stdin, stdout and stderr now, so that a caller reading them until EOF is
 * not kept waiting while the records are written. */
void front_task_done(void);

#endif
