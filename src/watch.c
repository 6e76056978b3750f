/* SPDX-License-Identifier: MIT */
/* `ptmon watch`: its command line and its messages (watch.h). */
#include "watch.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "parse.h"
#include "run.h"

static void watch_usage(FILE *f)
{
	fputs("Usage: ptmon watch [OPTIONS] PID\n"
	      "       ptmon watch [OPTIONS] --cgroup PATH\n"
	      "\n"
	      "Follow the running process PID and every process it starts from now on, as\n"
	      "'ptmon run' follows a task it started: record them, control them from another\n"
	      "shell, and on --timeout or 'ptmon cancel' make them all go away.  Its\n"
	      "descendants are found by walking /proc once the events are subscribed to; a\n"
	      "process whose parent exits stays in the tree (reparented: ptmon is no\n"
	      "subreaper here).  Processes that left the tree before the watch began (a\n"
	      "daemon that double-forked earlier) cannot be found by lineage.\n"
	      "\n"
	      "With --cgroup PATH, a cgroup v2 directory, every process in it and in the\n"
	      "cgroups below it is in the tree, with its descendants, even those that\n"
	      "left a lineage before the watch; a process moved in later joins at the\n"
	      "next resync (each cancel makes one).  The watch ends when nothing tracked\n"
	      "lives and the cgroup reads \"populated 0\"; a cancel signals through pidfds\n"
	      "as for a PID, and writes the cgroup's cgroup.kill only when it is still\n"
	      "populated after the SIGKILL sweeps.  The directory is never removed.\n"
	      "\n"
	      "Options:\n"
	      "      --cgroup PATH     watch the processes of the cgroup v2 directory PATH\n"
	      "  -t, --timeout D       cancel the tree after D (default: never)\n"
	      "  -s, --signal SIG      first signal of a cancel (default: TERM)\n"
	      "  -g, --grace D         wait D between the first signal and KILL (default: 5s)\n"
	      "      --backend auto|connector|procfs\n"
	      "                        how processes are learned of (default: auto)\n"
	      "      --filter auto|ebpf|classic\n"
	      "                        the connector's filter in the kernel (default: auto)\n"
	      "      --events PATH     write events as NDJSON to PATH as they happen\n"
	      "      --report PATH     write a JSON report of the whole tree to PATH at the end\n"
	      "      --summary         print the tree with times and outcomes to stderr at the "
	      "end\n"
	      "      --control PATH    listen for control requests on PATH (default as for run)\n"
	      "      --no-control      no control socket\n"
	      "      --color auto|always|never\n"
	      "                        colour in --summary (default: auto)\n"
	      "  -q, --quiet           no notices; errors are still said\n"
	      "  -v, --verbose         say what ptmon does, on stderr\n"
	      "\n"
	      "The watch ends when PID and every process tracked in its tree are gone.\n"
	      "ls, tree, kill, cancel, events and metrics work on it as on a run.\n"
	      "Refused as PID: 1, ptmon itself and its ancestors.  Signals to another user's\n"
	      "process fail (EPERM), each said; the rest goes on.  If ptmon is killed with\n"
	      "SIGKILL, the tree goes on as it was: signals already sent stay sent, nothing\n"
	      "else is done (there is no front and no cgroup of ptmon's to clean up).\n"
	      "\n"
	      "Exit status: with --cgroup, 0 when the cgroup emptied by itself.\n"
	      "Otherwise PID's own (128+N when it died of signal N), learned from its\n"
	      "EXIT event or, on Linux 6.15+, from its pidfd once its parent reaped it;\n"
	      "124 when the timeout fired or 'ptmon cancel' cancelled the tree; 128+N when\n"
	      "ptmon was cancelled by signal N; 125 when ptmon failed, PID was refused or\n"
	      "does not exist, PATH is no cgroup v2 directory, holds no process or holds\n"
	      "init, ptmon or its ancestors, or PID's status could not be learned (said).\n",
	      f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	char line[512], out[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	int n = snprintf(out, sizeof(out), "ptmon: %s\nTry 'ptmon watch --help'.\n", line);
	notes_line(out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
	return EXIT_PTMON_FAILED;
}

static int duration(const char *name, const char *value, uint64_t *ret)
{
	if (parse_duration(value, ret) < 0)
		return usage_error("%s: invalid duration '%s' (examples: 250ms, 1.5s, 2m, 10)",
				   name, value);
	return -1;
}

static int choice(const char *name, const char *value, const char *const *choices)
{
	for (int i = 0; choices[i]; i++)
		if (strcmp(value, choices[i]) == 0)
			return i;
	usage_error("%s: invalid value '%s'", name, value);
	return -1;
}

static int parse_option(struct watch_opts *o, int c, const char *arg)
{
	static const char *const backends[] = {"auto", "connector", "procfs", NULL};
	static const char *const filters[] = {"auto", "ebpf", "classic", NULL};
	static const char *const colours[] = {"auto", "never", "always", NULL};
	int i;
	switch (c) {
	case 't':
		return duration("--timeout", arg, &o->attach.timeout_ns);
	case 'g':
		return duration("--grace", arg, &o->attach.grace_ns);
	case 's':
		if (parse_signal(arg, &o->attach.signal) < 0)
			return usage_error("--signal: invalid signal '%s'", arg);
		return -1;
	case 'B':
		if ((i = choice("--backend", arg, backends)) < 0)
			return EXIT_PTMON_FAILED;
		o->backend = i == 1   ? PTMON_BACKEND_CONNECTOR
			     : i == 2 ? PTMON_BACKEND_PROCFS
				      : PTMON_BACKEND_AUTO;
		return -1;
	case 'F':
		if ((i = choice("--filter", arg, filters)) < 0)
			return EXIT_PTMON_FAILED;
		o->monitor_flags = i == 1   ? PTMON_MONITOR_FILTER_TREE
				   : i == 2 ? PTMON_MONITOR_FILTER_CLASSIC
					    : 0;
		return -1;
	case 'K':
		if (choice("--color", arg, colours) < 0)
			return EXIT_PTMON_FAILED;
		o->color = arg;
		return -1;
	case 'E':
		o->events_path = arg;
		return -1;
	case 'C':
		o->attach.cgroup = arg;
		return -1;
	case 'R':
		o->report_path = arg;
		return -1;
	case 'S':
		o->summary = true;
		return -1;
	case 'O':
		o->control_path = arg;
		return -1;
	case 'N':
		o->no_control = true;
		return -1;
	case 'q':
		o->quiet = true;
		return -1;
	case 'v':
		o->verbose++;
		return -1;
	case 'h':
		watch_usage(stdout);
		return 0;
	default:
		return usage_error("unknown or incomplete option");
	}
}

static int parse_pid(const char *s, pid_t *ret)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > INT_MAX)
		return usage_error("invalid PID '%s' (a positive number)", s);
	*ret = (pid_t)v;
	return -1;
}

int watch_parse(int argc, char **argv, struct watch_opts *o)
{
	static const struct option longopts[] = {
		{"timeout", required_argument, NULL, 't'},
		{"signal", required_argument, NULL, 's'},
		{"grace", required_argument, NULL, 'g'},
		{"backend", required_argument, NULL, 'B'},
		{"filter", required_argument, NULL, 'F'},
		{"events", required_argument, NULL, 'E'},
		{"report", required_argument, NULL, 'R'},
		{"cgroup", required_argument, NULL, 'C'},
		{"summary", no_argument, NULL, 'S'},
		{"control", required_argument, NULL, 'O'},
		{"no-control", no_argument, NULL, 'N'},
		{"color", required_argument, NULL, 'K'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	*o = (struct watch_opts){.backend = PTMON_BACKEND_AUTO};
	ptmon_attach_config_init(&o->attach, sizeof(o->attach));
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, ":t:s:g:vqh", longopts, NULL)) != -1) {
		int st;
		if (c == ':')
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		if (c == '?')
			return usage_error("unknown option '%s'", argv[optind - 1]);
		if ((st = parse_option(o, c, optarg)) >= 0)
			return st;
	}
	if (o->attach.cgroup && optind < argc)
		return usage_error("a PID or --cgroup PATH, not both ('%s' is extra)",
				   argv[optind]);
	if (o->attach.cgroup)
		return -1;
	if (optind >= argc)
		return usage_error("no PID (or --cgroup PATH) given");
	if (optind + 1 < argc)
		return usage_error("one PID only ('%s' is extra)", argv[optind + 1]);
	return parse_pid(argv[optind], &o->attach.pid);
}

const char *watch_cgroup_error(int r, const char *path, const char *why, char *buf, size_t size)
{
	switch (r) {
	case -EPERM:
		snprintf(buf, size, "refusing to watch cgroup %s: init is in it", path);
		break;
	case -ELOOP:
		snprintf(buf, size,
			 "refusing to watch cgroup %s: ptmon or one of its ancestors is in it "
			 "(a cancel would kill ptmon)",
			 path);
		break;
	default:
		snprintf(buf, size, "cannot watch cgroup %s: %s%s%s", path, why ? why : "",
			 why ? ": " : "", strerror(-r));
		break;
	}
	return buf;
}

const char *watch_attach_error(int r, pid_t pid, char *buf, size_t size)
{
	switch (r) {
	case -EPERM:
		snprintf(buf, size, "refusing to watch pid %d: init's tree is the whole system",
			 (int)pid);
		break;
	case -ELOOP:
		snprintf(buf, size,
			 "refusing to watch pid %d: it is ptmon itself or one of its ancestors "
			 "(a cancel would kill ptmon)",
			 (int)pid);
		break;
	case -ESRCH:
		snprintf(buf, size, "cannot watch pid %d: no such process (or it has exited)",
			 (int)pid);
		break;
	case -EINVAL:
		snprintf(buf, size, "cannot watch pid %d: not a process (a thread's id?)",
			 (int)pid);
		break;
	default:
		snprintf(buf, size, "cannot watch pid %d: %s", (int)pid, strerror(-r));
		break;
	}
	return buf;
}

/* `ptmon watch`: run's worker, attached instead of started, and without a
 * front: there is no task of ours to guard.  If ptmon is SIGKILLed, the
 * watched tree goes on as it was (README "ptmon watch"). */
int watch_main(int argc, char **argv)
{
	struct watch_opts w;
	int st = watch_parse(argc, argv, &w);
	if (st >= 0)
		return st;
	struct run_options o = {.backend = w.backend, .monitor_flags = w.monitor_flags};
	ptmon_task_config_init(&o.task, sizeof(o.task));
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
	return run_task(&o);
}
