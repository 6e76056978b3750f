/* SPDX-License-Identifier: MIT */
/*
 * `ptmon run`: its options as the command line gives them (run_parse.c: a
 * plain struct, no fds, tested on its own by tests/test_parse.c), and the
 * run itself (run.c: the monitor, the control socket, the event stream and
 * the report, in the worker that front.c starts).  `ptmon watch` fills the
 * same options (watch.c) and runs the same way, attached.
 */
#ifndef PTMON_RUN_H
#define PTMON_RUN_H

#include <stdbool.h>

#include "ptmon.h"

/* The exit statuses of coreutils' timeout(1), which run's follow. */
enum {
	EXIT_TIMEOUT = 124,
	EXIT_PTMON_FAILED = 125,
	EXIT_CANNOT_EXECUTE = 126,
	EXIT_NOT_FOUND = 127,
};

enum { COLOUR_AUTO, COLOUR_NEVER, COLOUR_ALWAYS };

struct run_options {
	struct ptmon_task_config task;
	enum ptmon_backend backend;
	unsigned monitor_flags; /* PTMON_MONITOR_FILTER_* */
	int verbose;
	const char *events_path;
	const char *report_path;
	bool summary;
	const char *control_path; /* NULL: the default directory's */
	bool no_control;
	const char *name;
	bool quiet;
	const char *chdir;
	int colour; /* COLOUR_* */
	/* `ptmon watch`: attach to a running tree instead of starting one */
	bool watch;
	struct ptmon_attach_config attach;
	char *watch_argv[3]; /* what the records show as the command */
	char watch_pid_text[16];
};

/* run_parse()'s answer to --help: print the usage, exit 0. */
#define RUN_PARSE_HELP 1

/*
 * Parse `run [OPTIONS] [--] CMD [ARG...]` (@argv[0] is "run") into *o,
 * which it first sets to the defaults.  Options end at CMD.  Returns 0,
 * RUN_PARSE_HELP at --help (nothing after it is looked at), or -1 after a
 * bad usage, said on stderr with "Try 'ptmon --help'." (exit 125).  *o
 * points into @argv.
 */
int run_parse(int argc, char **argv, struct run_options *o);

/* A bad usage of ptmon's, said as run_parse() says one; returns -1. */
int run_bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The run, in this process: open the outputs and the control socket,
 * start (or, with o->watch, attach) the task, follow it to its end, write
 * the records.  Returns the exit status.
 */
int run_task(const struct run_options *o);

/* `ptmon run`: run_task() in a worker behind the front (front.h).  Returns
 * the exit status. */
int run_main(const struct run_options *o);

#endif
