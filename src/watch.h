/* SPDX-License-Identifier: MIT */
/* `ptmon watch`: follow, record and control a running tree that ptmon did
 * not start (ptmon_task_attach()).  The command line lives here; the run
 * itself is `ptmon run`'s (run.c), with the task attached, not started. */
#ifndef PTMON_WATCH_CLI_H
#define PTMON_WATCH_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ptmon.h"

struct watch_opts {
	struct ptmon_attach_config attach;
	enum ptmon_backend backend;
	unsigned monitor_flags; /* PTMON_MONITOR_FILTER_* */
	int verbose;
	bool quiet;
	bool summary;
	bool no_control;
	const char *events_path;
	const char *report_path;
	const char *control_path;
	const char *color; /* auto|always|never, NULL: auto */
};

/*
 * Parse `ptmon watch [OPTIONS] PID|--cgroup PATH` (@argv[0] is "watch").  Returns -1 when
 * the watch goes on (*ret filled), or the exit status to end with at once:
 * 0 after --help, 125 after bad usage (said on stderr).
 */
int watch_parse(int argc, char **argv, struct watch_opts *ret);

/* `ptmon watch ...` (@argv[0] is "watch"): parse, then run_task() attached,
 * in this process (no front).  Returns the exit status. */
int watch_main(int argc, char **argv);

/* The message for ptmon_task_attach()'s error @r about @pid, into @buf. */
const char *watch_attach_error(int r, pid_t pid, char *buf, size_t size);

/* `ptmon watch ...` (@argv[0] is "watch"): parse, then run_task() attached,
 * in this process (no front).  Returns the exit status. */
int watch_main(int argc, char **argv);

/* The message for ptmon_task_attach()'s error @r about cgroup @path; @why
 * is ptmon_monitor_cgroup_unavailable()'s reason, or NULL. */
const char *watch_cgroup_error(int r, const char *path, const char *why, char *buf, size_t size);

/* What a watch cannot see, for -v and the report. */
#define WATCH_LIMITS                                                                               \
	"processes that left the tree before the watch began (a daemon that double-forked "        \
	"earlier) cannot be found by lineage"

#endif
