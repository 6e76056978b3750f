/* SPDX-License-Identifier: MIT */
/* The ptmon command: which subcommand, and the help and version they
 * share.  Each subcommand lives in a file of its own: run (run.h), watch,
 * timeout, serve, and the control clients (client.c).  Everything else
 * lives in libptmon. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "output.h"
#include "parse.h"
#include "run.h"
#include "serve.h"
#include "timeout.h"
#include "watch.h"

static void usage(FILE *f)
{
	fputs("Usage: ptmon run [OPTIONS] [--] CMD [ARG...]\n"
	      "       ptmon timeout [OPTION] DURATION CMD [ARG...]\n"
	      "       ptmon watch [OPTIONS] PID\n"
	      "       ptmon ls [--json] [--all-users]\n"
	      "       ptmon tree ID [--json]\n"
	      "       ptmon kill ID PID [-s SIG] [--subtree]\n"
	      "       ptmon cancel ID [--now]\n"
	      "       ptmon events ID --follow\n"
	      "       ptmon metrics ID [--openmetrics]\n"
	      "       ptmon serve [--listen ADDR:PORT] [--allow-control --token-file PATH] [-v]\n"
	      "       ptmon --help | --version\n"
	      "\n"
	      "Run CMD, forward its output, and when it is cancelled make it and every\n"
	      "process it started go away.\n"
	      "\n"
	      "Options of 'run':\n"
	      "  -t, --timeout D       cancel the task after D (default: never)\n"
	      "  -s, --signal SIG      first signal of a cancel (default: TERM)\n"
	      "  -g, --grace D         wait D between the first signal and KILL (default: 5s)\n"
	      "  -d, --drain D         wait D for the output pipes' EOF once the tree is\n"
	      "                        empty (default: 2s)\n"
	      "      --leftovers kill|wait\n"
	      "                        when CMD exits and processes it started remain: cancel\n"
	      "                        them (default) or wait for them\n"
	      "      --backend auto|connector|procfs\n"
	      "                        how processes are learned of (default: auto)\n"
	      "      --cgroup auto|on|off\n"
	      "                        start CMD in a cgroup v2 of its own, which a cancel\n"
	      "                        ends with cgroup.kill (auto: where one can be made;\n"
	      "                        on: fail without; default: auto)\n"
	      "      --memory-max SIZE, --pids-max N, --cpu-max CPUS\n"
	      "                        limits for that cgroup: memory.max (bytes, or with K,\n"
	      "                        M, G, T), pids.max, cpu.max in CPUs (1.5); each needs\n"
	      "                        its controller, or ptmon fails with 125\n"
	      "      --filter auto|ebpf|classic\n"
	      "                        the connector's filter in the kernel: ebpf passes only\n"
	      "                        the task's events (needs CAP_BPF), classic every\n"
	      "                        process's (default: auto, ebpf where it loads)\n"
	      "      --events PATH     write events as NDJSON to PATH as they happen\n"
	      "                        (a file, a FIFO, /dev/fd/N)\n"
	      "      --report PATH     write a JSON report of the whole tree to PATH at the end\n"
	      "                        (a reader that takes nothing for 1s cuts it)\n"
	      "      --summary         print the tree with times and outcomes to stderr at the "
	      "end\n"
	      "      --control PATH    listen for control requests on PATH (default:\n"
	      "                        $XDG_RUNTIME_DIR/ptmon/, else /run/ptmon/ for root,\n"
	      "                        else /tmp/ptmon-UID/, named TASKID.sock)\n"
	      "      --no-control      no control socket\n"
	      "      --name NAME       the task's name in ls, events, report, metrics and\n"
	      "                        'ptmon serve' (default: CMD's basename)\n"
	      "  -C, --chdir DIR       run CMD in DIR (relative paths above are taken there)\n"
	      "      --color auto|always|never\n"
	      "                        colour in --summary: auto (default) when stderr is a\n"
	      "                        terminal, NO_COLOR is unset or empty and TERM is not dumb\n"
	      "  -q, --quiet           no notices (leftovers, pipe holders, warnings); errors\n"
	      "                        are still said\n"
	      "  -v, --verbose         say what ptmon does, on stderr\n"
	      "\n"
	      "'ptmon timeout' is 'run' with coreutils timeout's command line and exit\n"
	      "statuses (see 'ptmon timeout --help').\n"
	      "'ptmon watch' follows, records and controls the running process PID and\n"
	      "its tree, which ptmon did not start (see 'ptmon watch --help').\n"
	      "\n"
	      "From another shell, ID being a task id (see 'ptmon ls', or -v) or a control\n"
	      "socket's path:\n"
	      "  ls [--json] [--all-users]\n"
	      "                        list running tasks: id, root pid, age, live processes,\n"
	      "                        name, command (--json: their info replies, an array;\n"
	      "                        --all-users: root only, every user's tasks too)\n"
	      "  tree ID [--json]      the live tree: pid, state, age, CPU, memory, command\n"
	      "  kill ID PID [-s SIG] [--subtree]\n"
	      "                        signal one process of the tree (default TERM), or it and\n"
	      "                        everything below it\n"
	      "  cancel ID [--now]     cancel the task as a timeout would, exit status 124\n"
	      "                        included (--now: no grace)\n"
	      "  events ID --follow    the task's events as NDJSON, from now on\n"
	      "  metrics ID [--openmetrics]\n"
	      "                        the task's figures in the Prometheus text format\n"
	      "                        (0.0.4), or OpenMetrics 1.0\n"
	      "  serve [--listen ADDR:PORT]\n"
	      "                        one HTTP endpoint for every task this user may see:\n"
	      "                        / (a live page), /metrics (Prometheus, OpenMetrics),\n"
	      "                        /api/tasks,\n"
	      "                        /api/tasks/ID/tree, /api/tasks/ID/events (Server-Sent\n"
	      "                        Events), /api/tasks/ID/report "
	      "(default: " SERVE_DEFAULT_LISTEN ")\n"
	      "    --allow-control --token-file PATH\n"
	      "                        also POST /api/tasks/ID/kill?pid=N and .../cancel, with\n"
	      "                        'Authorization: Bearer TOKEN' (PATH: ours, mode 0600;\n"
	      "                        loopback only)\n"
	      "    -v, --verbose       say which directories and sockets serve follows or\n"
	      "                        skips (as root it follows every user's tasks)\n"
	      "Protocol: docs/control.md.  These exit 0 on success, 1 when ptmon refused the\n"
	      "request, 125 on bad usage or when the task cannot be reached.\n"
	      "\n"
	      "Durations: 250ms, 1.5s, 2m, 1h, or a bare number of seconds; 0, or from 1ns\n"
	      "to " PARSE_DURATION_MAX_TEXT " (about 584 years, which means never).\n"
	      "Signals: a name (TERM, SIGINT, RTMIN+1) or a number.\n"
	      "\n"
	      "Signals to ptmon: every one whose default action would end it cancels the\n"
	      "task as TERM, INT and HUP do (QUIT, USR1, USR2, ALRM, VTALRM, PROF, IO,\n"
	      "XCPU, STKFLT, PWR, SYS, the real-time signals, and ILL, TRAP, ABRT, BUS,\n"
	      "FPE, SEGV when sent by kill); a second one skips the grace period.  PIPE,\n"
	      "XFSZ and the C library's signals 32 and 33 are ignored.  KILL cannot be\n"
	      "caught.\n"
	      "\n"
	      "Exit status: CMD's own; 128+N when CMD died of signal N; 124 when the\n"
	      "timeout fired or 'ptmon cancel' cancelled the task; 128+N when ptmon was\n"
	      "cancelled by signal N; 125 when ptmon failed; 126 when CMD cannot be\n"
	      "executed; 127 when it is not found.\n"
	      "A write error other than a reader leaving (ENOSPC, EIO) on the task's output,\n"
	      "--events or --report is said on stderr and turns a status of 0 into 125.\n"
	      "125 also when processes of the task survived 5s of SIGKILL sweeps (named).\n",
	      f);
}

/* The pipes we create must not land on 0, 1 or 2. */
static void ensure_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", fd ? O_WRONLY : O_RDONLY) != fd)
			exit(EXIT_PTMON_FAILED);
}

/* ptmon's messages get their last second on the way out, whichever way. */
static void close_notes(void)
{
	notes_close(1000);
}

int main(int argc, char **argv)
{
	ensure_std_fds();
	notes_open(STDERR_FILENO);
	atexit(close_notes);
	if (argc < 2) {
		usage(stderr);
		return EXIT_PTMON_FAILED;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("ptmon %s\n", PTMON_VERSION);
		return 0;
	}
	if (client_is_command(argv[1]))
		return client_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "watch"))
		return watch_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "serve"))
		return serve_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "timeout")) {
		int st = timeout_translate(argc, argv, &argc, &argv);
		if (st >= 0)
			return st;
	}
	if (strcmp(argv[1], "run") != 0) {
		run_bad_usage("unknown command '%s'", argv[1]);
		return EXIT_PTMON_FAILED;
	}
	struct run_options o;
	int r = run_parse(argc - 1, argv + 1, &o);
	if (r == RUN_PARSE_HELP) {
		usage(stdout);
		return 0;
	}
	if (r < 0)
		return EXIT_PTMON_FAILED;
	return run_main(&o);
}
