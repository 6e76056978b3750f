/* SPDX-License-Identifier: MIT */
/* The ptmon command: parse the command line, run the task, map the result
 * to an exit status.  Everything else lives in libptmon. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "control.h"
#include "fdclose.h"
#include "front.h"
#include "serve.h"
#include "output.h"
#include "parse.h"
#include "ptmon.h"
#include "timeout.h"
#include "watch.h"

enum {
	EXIT_TIMEOUT = 124,
	EXIT_PTMON_FAILED = 125,
	EXIT_CANNOT_EXECUTE = 126,
	EXIT_NOT_FOUND = 127,
};

enum { COLOUR_AUTO, COLOUR_NEVER, COLOUR_ALWAYS };

struct options {
	struct ptmon_task_config task;
	enum ptmon_backend backend;
	unsigned monitor_flags;      /* PTMON_MONITOR_FILTER_* */
	int verbose;
	const char *events_path;
	const char *report_path;
	bool summary;
	const char *control_path;
	bool no_control;
	const char *name;
	bool quiet;
	const char *chdir;
	int colour; /* COLOUR_* */
	/* `ptmon watch`: attach to a running process instead of starting one */
	bool watch;
	struct ptmon_attach_config attach;
	char *watch_argv[3];
	char watch_pid_text[16];
	/* while running */
	struct control *control;
	char task_id[CONTROL_ID_MAX];
	struct evwriter *events;
	int report_fd;
	struct run_info info;
};

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
	char line[1024], safe[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* Notices name the task's processes and paths: their bytes must not
	 * act on the terminal. */
	text_escape(line, strlen(line), safe, sizeof(safe));
	/* One line, written whole or not at all, never blocking: a stderr
	 * whose reader stalls must not hold up a cancel (see notes_line). */
	char out[sizeof(safe) + 16];
	n = snprintf(out, sizeof(out), "ptmon: %s\n", safe);
	notes_line(out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
}

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
	      "      --summary         print the tree with times and outcomes to stderr at the end\n"
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
	      "                        Events), /api/tasks/ID/report (default: " SERVE_DEFAULT_LISTEN ")\n"
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

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	msg("%s", line);
	static const char try_help[] = "Try 'ptmon --help'.\n";
	notes_line(try_help, sizeof(try_help) - 1);
	return -1;
}

static int duration_arg(const char *name, const char *value, uint64_t *ret)
{
	int r = parse_duration(value, ret);
	if (r == -ERANGE)
		return bad_usage("%s: duration out of range: '%s' (0, or from 1ns to %s; "
				 "0.5ns rounds up to 1ns)",
				 name, value, PARSE_DURATION_MAX_TEXT);
	if (r < 0)
		return bad_usage("%s: invalid duration '%s' (examples: 250ms, 1.5s, 2m, 10)", name,
				 value);
	return 0;
}

/* pids.max is a count: its parser is parse_size's digits, with no unit. */
static int limit_arg(const char *name, const char *value, int (*parse)(const char *, uint64_t *),
		     uint64_t *ret)
{
	int r = parse(value, ret);
	if (r == 0 && parse == parse_size && strcmp(name, "--pids-max") == 0 &&
	    value[strlen(value) - 1] > '9')
		r = -EINVAL;
	if (r == -ERANGE)
		return bad_usage("%s: out of range: '%s'", name, value);
	if (r < 0)
		return bad_usage("%s: invalid value '%s' (examples: %s)", name, value,
				 parse == parse_cpus ? "0.5, 2" : strcmp(name, "--pids-max") == 0 ? "100" : "512M, 2G");
	return 0;
}

static int choice_arg(const char *name, const char *value, const char *const *choices)
{
	for (int i = 0; choices[i]; i++)
		if (strcmp(value, choices[i]) == 0)
			return i;
	return bad_usage("%s: invalid value '%s'", name, value);
}

static int parse_run_option(struct options *o, int c, const char *arg)
{
	static const char *const leftovers[] = {"kill", "wait", NULL};
	static const char *const backends[] = {"auto", "connector", "procfs", NULL};
	static const char *const cgroups[] = {"auto", "on", "off", NULL};
	static const char *const colours[] = {"auto", "never", "always", NULL};
	static const char *const filters[] = {"auto", "ebpf", "classic", NULL};
	int i;
	switch (c) {
	case 't':
		return duration_arg("--timeout", arg, &o->task.timeout_ns);
	case 's':
		if (parse_signal(arg, &o->task.signal) < 0)
			return bad_usage("--signal: invalid signal '%s'", arg);
		return 0;
	case 'g':
		return duration_arg("--grace", arg, &o->task.grace_ns);
	case 'd':
		return duration_arg("--drain", arg, &o->task.drain_ns);
	case 'L':
		i = choice_arg("--leftovers", arg, leftovers);
		o->task.leftovers = i == 1 ? PTMON_LEFTOVERS_WAIT : PTMON_LEFTOVERS_KILL;
		return i < 0 ? -1 : 0;
	case 'B':
		i = choice_arg("--backend", arg, backends);
		o->backend = i == 1 ? PTMON_BACKEND_CONNECTOR
				    : i == 2 ? PTMON_BACKEND_PROCFS : PTMON_BACKEND_AUTO;
		return i < 0 ? -1 : 0;
	case 'G':
		i = choice_arg("--cgroup", arg, cgroups);
		o->task.cgroup = i == 1 ? PTMON_CGROUP_ON : i == 2 ? PTMON_CGROUP_OFF : PTMON_CGROUP_AUTO;
		return i < 0 ? -1 : 0;
	case 'M':
		return limit_arg("--memory-max", arg, parse_size, &o->task.memory_max);
	case 'P':
		return limit_arg("--pids-max", arg, parse_size, &o->task.pids_max);
	case 'U':
		return limit_arg("--cpu-max", arg, parse_cpus, &o->task.cpu_max_us);
	case 'F':
		i = choice_arg("--filter", arg, filters);
		o->monitor_flags = i == 1 ? PTMON_MONITOR_FILTER_TREE
				   : i == 2 ? PTMON_MONITOR_FILTER_CLASSIC : 0;
		return i < 0 ? -1 : 0;
	case 'v':
		o->verbose++;
		return 0;
	case 'E':
		o->events_path = arg;
		return 0;
	case 'R':
		o->report_path = arg;
		return 0;
	case 'S':
		o->summary = true;
		return 0;
	case 'O':
		o->control_path = arg;
		return 0;
	case 'C':
		o->chdir = arg;
		return 0;
	case 'q':
		o->quiet = true;
		return 0;
	case 'K':
		o->colour = choice_arg("--color", arg, colours);
		return o->colour < 0 ? -1 : 0;
	case 'N':
		o->no_control = true;
		return 0;
	case 'n':
		if (!*arg || strlen(arg) > 128)
			return bad_usage("--name: a name is 1 to 128 bytes");
		o->name = arg;
		return 0;
	case 'h':
		usage(stdout);
		exit(0);
	default:
		return bad_usage("unknown or incomplete option");
	}
}

static int parse_run(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"timeout", required_argument, NULL, 't'},
		{"signal", required_argument, NULL, 's'},
		{"grace", required_argument, NULL, 'g'},
		{"drain", required_argument, NULL, 'd'},
		{"leftovers", required_argument, NULL, 'L'},
		{"backend", required_argument, NULL, 'B'},
		{"cgroup", required_argument, NULL, 'G'},
		{"memory-max", required_argument, NULL, 'M'},
		{"pids-max", required_argument, NULL, 'P'},
		{"cpu-max", required_argument, NULL, 'U'},
		{"filter", required_argument, NULL, 'F'},
		{"verbose", no_argument, NULL, 'v'},
		{"events", required_argument, NULL, 'E'},
		{"report", required_argument, NULL, 'R'},
		{"summary", no_argument, NULL, 'S'},
		{"control", required_argument, NULL, 'O'},
		{"chdir", required_argument, NULL, 'C'},
		{"quiet", no_argument, NULL, 'q'},
		{"color", required_argument, NULL, 'K'},
		{"no-control", no_argument, NULL, 'N'},
		{"name", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	opterr = 0; /* our own messages */
	int c;
	/* '+': options end at CMD, so that CMD's own options are its own. */
	while ((c = getopt_long(argc, argv, "+:t:s:g:d:vhqC:", longopts, NULL)) != -1) {
		if (c == ':')
			return bad_usage("option '%s' needs a value", argv[optind - 1]);
		if (c == '?')
			return bad_usage("unknown option '%s'", argv[optind - 1]);
		if (parse_run_option(o, c, optarg) < 0)
			return -1;
	}
	if (optind >= argc)
		return bad_usage("no command given");
	if (o->task.memory_max || o->task.pids_max || o->task.cpu_max_us) {
		if (o->task.cgroup == PTMON_CGROUP_OFF)
			return bad_usage("--memory-max, --pids-max and --cpu-max need a cgroup: "
					 "not with --cgroup off");
		o->task.cgroup = PTMON_CGROUP_ON;
	}
	o->task.argv = argv + optind;
	if (!o->name) {
		const char *slash = strrchr(o->task.argv[0], '/');
		o->name = slash ? slash + 1 : o->task.argv[0];
	}
	return 0;
}

static void on_notice(struct ptmon_task *t, enum ptmon_notice_kind kind, const char *text,
		      void *userdata)
{
	const struct options *o = userdata;
	if ((kind == PTMON_NOTICE_INFO && o->verbose < 1) || o->quiet)
		return;
	msg("%s", text);
}

static int status_of(const struct ptmon_task_result *r)
{
	if (r->attached && r->cgroup && !r->cancel_reason)
		return 0; /* `watch --cgroup`: it emptied by itself */
	if (r->attached && !r->cancel_reason && !r->root_status) {
		msg("the exit status of pid %d is unknown (its EXIT event was not seen, and its "
		    "pidfd could not tell); exit status %d",
		    (int)r->root_pid, EXIT_PTMON_FAILED);
		return EXIT_PTMON_FAILED;
	}
	switch (r->cancel_reason) {
	case PTMON_CANCEL_TIMEOUT:
	case PTMON_CANCEL_REQUEST: /* `ptmon cancel`: not a success either */
		return EXIT_TIMEOUT;
	case PTMON_CANCEL_SIGNAL:
		return 128 + r->cancel_signal;
	default:
		break;
	}
	if (r->root_status == CLD_EXITED)
		return r->root_value;
	return 128 + r->root_value;
}

static void say_backend(struct ptmon_monitor *m)
{
	const char *why = ptmon_monitor_fallback_reason(m);
	unsigned f = ptmon_monitor_features(m);
	if (why)
		msg("backend procfs (%s): short-lived processes may go unseen", why);
	else
		msg("backend connector (%s subscription%s)",
		    (f & PTMON_FEATURE_CONNECTOR_INPUT) ? "proc_input" : "classic",
		    (f & PTMON_FEATURE_PIDFD_INFO) ? ", PIDFD_GET_INFO" : "");
	if (why)
		return;
	int err = ptmon_monitor_tree_filter_error(m);
	if (f & PTMON_FEATURE_TREE_FILTER)
		msg("filter ebpf: only the task's events reach ptmon");
	else if (err == -ECANCELED)
		msg("filter classic (asked for): every process's events reach ptmon");
	else
		msg("filter classic (eBPF: %s): every process's events reach ptmon",
		    err == -EPERM ? "no CAP_BPF" : strerror(-err));
}

/* Which guarantees this run has, beyond the pidfd path. */
static void say_cgroup(struct ptmon_monitor *m, struct ptmon_task *t)
{
	const char *path = ptmon_task_cgroup_path(t);
	const char *why = ptmon_monitor_cgroup_unavailable(m);
	if (path)
		msg("task cgroup %s: cgroup.kill ends a cancel and 'populated 0' proves the "
		    "tree empty; if ptmon and its worker are killed at once, cgroup.kill there "
		    "ends what is left",
		    path);
	else
		msg("no cgroup for the task (%s): if ptmon and its worker are killed at once, "
		    "what the task started survives",
		    why ? why : "--cgroup off");
}

static void say_result(const struct ptmon_task_result *r, int status)
{
	char a[32], b[32];
	msg("root %d ended; %" PRIu64 " processes, %" PRIu64 " signalled, %" PRIu64
	    " killed, %" PRIu64 " events lost, %" PRIu64 " resyncs, %" PRIu64
	    " events received; exit status %d",
	    (int)r->root_pid, r->processes, r->signalled, r->killed, r->events_lost, r->resyncs,
	    r->events_received, status);
	if (r->cancel_reason != PTMON_CANCEL_NONE)
		msg("cancel to empty tree %s, to EOF %s",
		    format_duration(r->cancel_to_empty_ns, a, sizeof(a)),
		    format_duration(r->cancel_to_eof_ns, b, sizeof(b)));
	/* The worker's own (not its children's): what tracking cost, start
	 * and end included; bench/run divides it by the forks. */
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		uint64_t us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
			      (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
		msg("worker CPU %s", format_duration(us * 1000u, a, sizeof(a)));
	}
}

static int start_failed(const char *cmd, int r)
{
	if (r == -ENOENT) {
		msg("cannot run '%s': %s", cmd, strerror(-r));
		return EXIT_NOT_FOUND;
	}
	if (r == -EACCES || r == -ENOEXEC || r == -EISDIR || r == -ENOTDIR || r == -ELOOP ||
	    r == -ENAMETOOLONG || r == -E2BIG || r == -ETXTBSY || r == -EPERM) {
		msg("cannot execute '%s': %s", cmd, strerror(-r));
		return EXIT_CANNOT_EXECUTE;
	}
	msg("cannot start '%s': %s", cmd, strerror(-r));
	return EXIT_PTMON_FAILED;
}

static void on_event(const struct ptmon_event *ev, void *userdata)
{
	struct options *o = userdata;
	evwriter_event(o->events, ev, &o->info);
	control_event(o->control, ev);
}

/* Open the output files before anything starts, so that a bad path fails
 * the run at once (125) instead of losing the record at the end. */
static int open_outputs(struct options *o)
{
	o->report_fd = -1;
	if (o->events_path) {
		int r = evwriter_open(&o->events, o->events_path);
		if (r < 0) {
			msg("--events: cannot open '%s': %s", o->events_path, strerror(-r));
			return -1;
		}
	}
	if (o->report_path) {
		o->report_fd = open(o->report_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY,
				    0644);
		if (o->report_fd < 0) {
			msg("--report: cannot open '%s': %s", o->report_path, strerror(errno));
			return -1;
		}
		/* Our own description: a FIFO's stalled reader must not hold
		 * ptmon (report_write() bounds the wait). */
		int fl = fcntl(o->report_fd, F_GETFL);
		if (fl >= 0)
			fcntl(o->report_fd, F_SETFL, fl | O_NONBLOCK);
	}
	return 0;
}

/* Would signal @s end ptmon if left at its default action? */
static bool ends_ptmon(int s)
{
	switch (s) {
	case SIGCHLD: case SIGCONT: case SIGURG: case SIGWINCH:	   /* ignored */
	case SIGSTOP: case SIGTSTP: case SIGTTIN: case SIGTTOU: /* stop */
		return false;
	default:
		return true;
	}
}

/* Every catchable signal whose default action would end ptmon cancels the
 * task, as SIGTERM does, so that none can leave the tree running; but for
 * SIGPIPE and SIGXFSZ, which ptmon's own writes raise (a reader gone, a file
 * size limit): those are ignored, and the write fails with EPIPE or EFBIG.
 * Faults of ptmon's own (SIGSEGV...) still end it: the kernel forces them
 * through any mask. */
static void cancel_signals(sigset_t *set)
{
	sigemptyset(set);
	for (int s = 1; s <= SIGRTMAX; s++)
		if (ends_ptmon(s) && s != SIGKILL && s != SIGPIPE && s != SIGXFSZ)
			sigaddset(set, s); /* refuses 32 and 33: see hold_libc_signals() */
}

static void ignore_signal(int sig)
{
	(void)sig;
}

/* A handler, not SIG_IGN: exec resets handlers, so the task gets these at
 * their default, whereas it would inherit SIG_IGN. */
static void ignore_write_signals(void)
{
	struct sigaction sa = {.sa_handler = ignore_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGXFSZ, &sa, NULL);
}

/* Signals 32 and 33 are the C library's own (SIGCANCEL, SIGSETXID): its
 * sigprocmask() and sigaction() refuse them, yet their default action ends
 * a process.  ptmon has no threads: it holds them blocked (ignored) through
 * the kernel's call, and lets go of any pending one at the end.  The task
 * gets them unblocked: the C library's sigprocmask() in the child clears
 * them from the mask it restores. */
static void hold_libc_signals(bool hold)
{
	uint64_t set = (1ull << (32 - 1)) | (1ull << (33 - 1));
	struct timespec zero = {0, 0};
	if (hold) {
		syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, sizeof(set));
		return;
	}
	while (syscall(SYS_rt_sigtimedwait, &set, NULL, &zero, sizeof(set)) > 0)
		;
}

/* The monitor's fd and, while events wait for a slow reader, the event
 * stream's: one loop, so that neither can stall the other. */
static int loop(struct ptmon_monitor *m, struct ptmon_task *t, struct options *o)
{
	while (!ptmon_task_done(t)) {
		struct pollfd p[4] = {
			{.fd = ptmon_monitor_get_fd(m), .events = POLLIN},
			{.fd = o->control ? control_get_fd(o->control) : -1, .events = POLLIN},
			{.fd = evwriter_wait_fd(o->events), .events = POLLOUT},
			{.fd = notes_wait_fd(), .events = POLLOUT},
		};
		/* A negative fd is skipped by poll(). */
		if (poll(p, 4, -1) < 0 && errno != EINTR)
			return -errno;
		if (p[2].fd >= 0 && p[2].revents)
			evwriter_flush(o->events, -1);
		if (p[3].fd >= 0 && p[3].revents)
			notes_flush(0);
		if (p[1].fd >= 0 && p[1].revents) {
			int cr = control_dispatch(o->control);
			if (cr < 0)
				msg("control socket failed: %s", strerror(-cr));
		}
		int r = ptmon_monitor_dispatch(m);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Through the messages' non-blocking path: a stalled stderr gets a second
 * without progress, then the rest is dropped (and counted). */
static bool use_colour(int mode)
{
	const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
	if (mode != COLOUR_AUTO)
		return mode == COLOUR_ALWAYS;
	return isatty(STDERR_FILENO) && !(nc && *nc) && !(term && !strcmp(term, "dumb"));
}

static void write_summary(struct ptmon_task *t, int colour)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f) {
		msg("--summary: %s", strerror(errno));
		return;
	}
	summary_print(f, t, use_colour(colour));
	if (fclose(f) == 0 && notes_write_all(text, len, 1000) < 0)
		msg("--summary: cut: stderr did not take it");
	free(text);
}

/* A record the user asked for is incomplete for a reason other than its
 * reader leaving: a run that would have exited 0 exits 125 instead; any
 * other status already says that something failed, and stays. */
static int failed_delivery(int status)
{
	return status == 0 ? EXIT_PTMON_FAILED : status;
}

/* The task's output that a failed destination (ENOSPC, EIO...) did not
 * take; a reader that left (EPIPE) is the task's business, as without us. */
static int check_task_output(const struct ptmon_task_result *r, int status)
{
	const char *name[2] = {"stdout", "stderr"};
	const uint64_t dropped[2] = {r->dropped_out, r->dropped_err};
	const int error[2] = {r->error_out, r->error_err};
	for (int i = 0; i < 2; i++) {
		if (!error[i] || error[i] == EPIPE)
			continue;
		msg("the task's %s: %" PRIu64 " bytes not written: %s", name[i], dropped[i],
		    strerror(error[i]));
		status = failed_delivery(status);
	}
	return status;
}

/* The event stream's last second, and what it could not deliver. */
static int finish_events(struct options *o, int status)
{
	struct evwriter_status st;
	if (!o->events)
		return status;
	/* The reader had its chance all along; give it a last second. */
	evwriter_flush(o->events, 1000);
	evwriter_status(o->events, &st);
	o->events = evwriter_free(o->events);
	if (st.dropped)
		msg("--events: %" PRIu64 " events dropped: the reader did not keep up", st.dropped);
	if (st.error && st.error != EPIPE) {
		msg("--events: cannot write '%s': %s; %" PRIu64 " events not written%s",
		    o->events_path, strerror(st.error), st.unwritten,
		    st.half_line ? "; the last line is incomplete" : "");
		return failed_delivery(status);
	}
	if (st.unwritten || st.half_line)
		msg("--events: %" PRIu64 " events not written: %s%s", st.unwritten,
		    st.error ? "the reader went away" : "the reader did not take them in time",
		    st.half_line ? "; the last line is incomplete" : "");
	return status;
}

/* The report, bounded: a reader that takes nothing for a second ends it. */
static int finish_report(struct options *o, struct ptmon_task *t, int status)
{
	size_t written, total;
	if (o->report_fd < 0)
		return status;
	o->info.exit_status = status;
	int r = report_write(o->report_fd, t, &o->info, 1000, &written, &total);
	o->report_fd = util_close(o->report_fd);
	o->report_fd = -1;
	if (r == 0)
		return status;
	msg("--report: cannot write '%s': %s (%zu of %zu bytes written): the report is incomplete",
	    o->report_path, r == -ETIMEDOUT ? "the reader took nothing for 1s" : strerror(-r),
	    written, total);
	return failed_delivery(status);
}

/* Returns the final exit status: @status, or 125 for a record lost. */
static int finish_outputs(struct options *o, struct ptmon_task *t, int status)
{
	status = finish_events(o, status);
	status = finish_report(o, t, status);
	if (o->summary)
		write_summary(t, o->colour);
	return status;
}

static const char *control_error(int r)
{
	switch (r) {
	case -EADDRINUSE:
		return "another ptmon is listening there";
	case -EEXIST:
		return "exists and is not a socket";
	default:
		return strerror(-r);
	}
}

/* The control socket is up before the task starts, so that a bad path or
 * an unsafe directory fails the run (125) before anything runs. */
static int open_control(struct options *o)
{
	char dir[256], path[320];
	const char *why = NULL;
	int r = control_make_id(o->task_id, sizeof(o->task_id));
	if (r < 0) {
		msg("cannot make a task id: %s", strerror(-r));
		return -1;
	}
	o->info.task_id = o->task_id;
	if (o->no_control)
		return 0;
	if (!o->control_path) {
		r = control_default_dir(dir, sizeof(dir));
		if (r == 0)
			r = control_prepare_dir(dir, &why);
		if (r < 0) {
			msg("control directory '%s': %s", dir, why ? why : strerror(-r));
			return -1;
		}
		int n = snprintf(path, sizeof(path), "%s/%s.sock", dir, o->task_id);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			msg("control directory '%s': name too long", dir);
			return -1;
		}
		o->control_path = path;
	}
	r = control_open(&o->control, o->control_path, o->task_id);
	if (r < 0) {
		msg("--control: cannot listen on '%s': %s", o->control_path, control_error(r));
		o->control_path = NULL;
		return -1;
	}
	if (o->verbose)
		msg("task id %s, control socket %s", o->task_id, o->control_path);
	o->control_path = NULL; /* may point at this frame */
	return 0;
}

static void run_end(struct options *o, struct ptmon_monitor *m)
{
	/* Followers get what waits, the "done" event included, for a second
	 * at most, as the event stream's reader does. */
	o->control = control_free(o->control, 1000);
	/* Freeing the monitor restores the mask through the C library, which
	 * unblocks 32 and 33: drop what is pending first, and hold them again
	 * for the way out. */
	hold_libc_signals(false);
	ptmon_monitor_free(m);
	hold_libc_signals(true);
}

/* PTMON_RCVBUF=BYTES: the connector socket's receive buffer, for tests that
 * provoke its overflow (test_scenarios); not a documented option. */
static void test_knobs(struct ptmon_monitor *m)
{
	const char *e = getenv("PTMON_RCVBUF");
	char *end;
	if (!e || !*e)
		return;
	unsigned long v = strtoul(e, &end, 10);
	if (!*end && v > 0)
		(void)ptmon_monitor_set_rcvbuf(m, v);
}

static int run(struct options *o)
{
	struct ptmon_monitor *m = NULL;
	ignore_write_signals();
	hold_libc_signals(true);
	if (o->chdir && chdir(o->chdir) < 0) {
		msg("--chdir: cannot change to '%s': %s", o->chdir, strerror(errno));
		return EXIT_PTMON_FAILED;
	}
	if (open_outputs(o) < 0)
		return EXIT_PTMON_FAILED;
	if (open_control(o) < 0) {
		o->events = evwriter_free(o->events);
		return EXIT_PTMON_FAILED;
	}
	int r = ptmon_monitor_new(&m, o->backend, o->monitor_flags);
	if (r < 0) {
		o->control = control_free(o->control, 0);
		if (r == -ENOSYS)
			msg("this kernel has no pidfds (Linux 5.3 or later is needed)");
		else if (o->monitor_flags & PTMON_MONITOR_FILTER_TREE)
			msg("cannot start the monitor with --filter ebpf: %s",
			    r == -EPERM ? "no CAP_BPF" : strerror(-r));
		else
			msg("cannot start the monitor: %s", strerror(-r));
		return EXIT_PTMON_FAILED;
	}
	test_knobs(m);
	ptmon_monitor_set_notice(m, on_notice, o);
	char cwd[4096];
	o->info = (struct run_info){
		.argv = o->task.argv,
		.name = o->name,
		.cwd = getcwd(cwd, sizeof(cwd)),
		.backend = ptmon_monitor_backend(m),
		.features = ptmon_monitor_features(m),
		.fallback_reason = ptmon_monitor_fallback_reason(m),
		.taskstats_unavailable = ptmon_monitor_taskstats_unavailable(m),
		.task_id = o->task_id,
		.watch_pid = o->watch ? o->attach.pid : 0,
		.watch_cgroup = o->watch ? o->attach.cgroup : NULL,
	};
	if (o->events || o->control)
		ptmon_monitor_set_event_callback(m, on_event, o);
	sigset_t cancel;
	cancel_signals(&cancel);
	r = ptmon_monitor_cancel_on_signals(m, &cancel);
	if (r == 0)
		r = front_attach(m);
	if (o->verbose)
		say_backend(m);
	struct ptmon_task *t = NULL;
	/* The start event is formatted for followers (control.c) as it happens. */
	if (o->control)
		control_attach(o->control, NULL, &o->info);
	if (r == 0 && o->watch) {
		if (o->verbose && !o->attach.cgroup)
			msg("watching pid %d: %s", (int)o->attach.pid, WATCH_LIMITS);
		r = ptmon_task_attach(m, &o->attach, &t);
		if (r < 0) {
			char why[512];
			msg("%s", o->attach.cgroup
					  ? watch_cgroup_error(r, o->attach.cgroup,
							       ptmon_monitor_cgroup_unavailable(m), why,
							       sizeof(why))
					  : watch_attach_error(r, o->attach.pid, why, sizeof(why)));
			r = -ECANCELED; /* said; 125 */
		} else if (o->verbose && o->attach.cgroup) {
			msg("watching cgroup %s (first process found: %d)", o->attach.cgroup,
			    (int)ptmon_task_root_pid(t));
		}
	} else if (r == 0) {
		r = ptmon_task_start(m, &o->task, &t);
	}
	if (r < 0 && o->task.cgroup == PTMON_CGROUP_ON && ptmon_monitor_cgroup_unavailable(m)) {
		bool limits = o->task.memory_max || o->task.pids_max || o->task.cpu_max_us;
		msg("%s: %s: %s", limits ? "cannot set the task's limits" : "--cgroup on",
		    ptmon_monitor_cgroup_unavailable(m), strerror(-r));
		r = -ECANCELED; /* said; 125 */
	}
	if (r < 0) {
		int status = r == -ECANCELED ? EXIT_PTMON_FAILED : start_failed(o->task.argv[0], r);
		run_end(o, m);
		o->events = evwriter_free(o->events);
		return status;
	}
	/* The report and the summary walk every record at the end, control
	 * clients (info, tree, metrics, kill) whenever they ask; without
	 * them a long run keeps only the records of live processes. */
	if (o->report_path || o->summary || o->control)
		ptmon_task_hold_records(t);
	if (o->verbose && !o->watch)
		msg("task %d started: %s", (int)ptmon_task_root_pid(t), o->task.argv[0]);
	if (o->verbose && !o->watch)
		say_cgroup(m, t);
	if (o->control)
		control_attach(o->control, t, &o->info);
	r = loop(m, t, o);
	front_task_done();
	struct ptmon_task_result res;
	int status = EXIT_PTMON_FAILED;
	if (r < 0)
		msg("monitor failed: %s", strerror(-r));
	else if (ptmon_task_result(t, &res) == 0) {
		status = check_task_output(&res, timeout_status(t, &res, status_of(&res)));
		/* The promise "nothing it started is left" was not kept: a
		 * script must not take this run for a clean timeout. */
		if (res.survivors) {
			msg("%" PRIu64 " processes of the task survived the cancel; exit status %d",
			    res.survivors, EXIT_PTMON_FAILED);
			status = EXIT_PTMON_FAILED;
		}
		if (o->verbose)
			say_result(&res, status);
		status = finish_outputs(o, t, status);
	}
	run_end(o, m);
	return status;
}

static int run_worker(void *o)
{
	return run(o);
}

/* `ptmon watch`: run's worker, attached instead of started, and without a
 * front: there is no task of ours to guard.  If ptmon is SIGKILLed, the
 * watched tree goes on as it was (README "ptmon watch"). */
static int watch_command(int argc, char **argv)
{
	struct watch_opts w;
	int st = watch_parse(argc, argv, &w);
	if (st >= 0)
		return st;
	struct options o = {.backend = w.backend, .monitor_flags = w.monitor_flags};
	ptmon_task_config_init(&o.task);
	o.watch = true;
	o.attach = w.attach;
	o.verbose = w.verbose;
	o.quiet = w.quiet;
	o.summary = w.summary;
	o.no_control = w.no_control;
	o.events_path = w.events_path;
	o.report_path = w.report_path;
	o.control_path = w.control_path;
	o.colour = !w.color || !strcmp(w.color, "auto") ? COLOUR_AUTO
		   : !strcmp(w.color, "never")          ? COLOUR_NEVER
							: COLOUR_ALWAYS;
	snprintf(o.watch_pid_text, sizeof(o.watch_pid_text), "%d", (int)w.attach.pid);
	o.watch_argv[0] = "watch";
	o.watch_argv[1] = w.attach.cgroup ? (char *)w.attach.cgroup : o.watch_pid_text;
	o.task.argv = o.watch_argv;
	hold_libc_signals(true);
	return run(&o);
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
		return watch_command(argc - 1, argv + 1);
	if (!strcmp(argv[1], "serve"))
		return serve_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "timeout")) {
		int st = timeout_translate(argc, argv, &argc, &argv);
		if (st >= 0)
			return st;
	}
	if (strcmp(argv[1], "run") != 0) {
		bad_usage("unknown command '%s'", argv[1]);
		return EXIT_PTMON_FAILED;
	}
	struct options o = {.backend = PTMON_BACKEND_AUTO};
	ptmon_task_config_init(&o.task);
	if (parse_run(argc - 1, argv + 1, &o) < 0)
		return EXIT_PTMON_FAILED;
	/* The front too: a stray signal 32 or 33 must not end it (and with it,
	 * through the worker's watch, the task). */
	hold_libc_signals(true);
	return front_run(run_worker, &o, o.verbose, o.task.cgroup != PTMON_CGROUP_OFF);
}
