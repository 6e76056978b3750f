/* SPDX-License-Identifier: MIT */
/* `ptmon timeout`: coreutils timeout's command line on top of `ptmon run`. */
#ifndef PTMON_TIMEOUT_H
#define PTMON_TIMEOUT_H

struct ptmon_task;
struct ptmon_task_result;

/*
 * Parse `ptmon timeout [OPTION] DURATION COMMAND [ARG]...` (@argv[1] is
 * "timeout") as coreutils' timeout(1) does, and make the equivalent
 * `ptmon run` command line.  Returns -1, setting ret_argc and ret_argv (static
 * storage, for the rest of the process) when the run goes on, or the exit
 * status to end with at once: 0 after --help or --version, 125 after bad
 * usage (said on stderr).
 */
int timeout_translate(int argc, char **argv, int *ret_argc, char ***ret_argv);

/*
 * The exit status of a finished run in timeout(1)'s terms: 124 when the
 * timeout fired (the command's own with --preserve-status), 137 when ptmon
 * sent the command (@t's root) SIGKILL, the command's status when ptmon was
 * signalled; @status (the run's) otherwise, and always when not in
 * `ptmon timeout`.  With -v, says which signals the timeout sent.
 */
int timeout_status(const struct ptmon_task *t, const struct ptmon_task_result *r, int status);

#endif
