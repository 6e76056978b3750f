/* SPDX-License-Identifier: MIT */
/* `ptmon run`'s command line into struct run_options (run.h): values
 * checked and said here, nothing opened. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "output.h"
#include "parse.h"
#include "run.h"

#define msg(...) notes_say("ptmon", __VA_ARGS__)

int run_bad_usage(const char *fmt, ...)
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
		return run_bad_usage("%s: duration out of range: '%s' (0, or from 1ns to %s; "
				     "0.5ns rounds up to 1ns)",
				     name, value, PARSE_DURATION_MAX_TEXT);
	if (r < 0)
		return run_bad_usage("%s: invalid duration '%s' (examples: 250ms, 1.5s, 2m, 10)",
				     name, value);
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
		return run_bad_usage("%s: out of range: '%s'", name, value);
	if (r < 0)
		return run_bad_usage("%s: invalid value '%s' (examples: %s)", name, value,
				     parse == parse_cpus               ? "0.5, 2"
				     : strcmp(name, "--pids-max") == 0 ? "100"
								       : "512M, 2G");
	return 0;
}

static int choice_arg(const char *name, const char *value, const char *const *choices)
{
	for (int i = 0; choices[i]; i++)
		if (strcmp(value, choices[i]) == 0)
			return i;
	return run_bad_usage("%s: invalid value '%s'", name, value);
}

static int parse_run_option(struct run_options *o, int c, const char *arg)
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
			return run_bad_usage("--signal: invalid signal '%s'", arg);
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
		o->backend = i == 1   ? PTMON_BACKEND_CONNECTOR
			     : i == 2 ? PTMON_BACKEND_PROCFS
				      : PTMON_BACKEND_AUTO;
		return i < 0 ? -1 : 0;
	case 'G':
		i = choice_arg("--cgroup", arg, cgroups);
		o->task.cgroup = i == 1   ? PTMON_CGROUP_ON
				 : i == 2 ? PTMON_CGROUP_OFF
					  : PTMON_CGROUP_AUTO;
		return i < 0 ? -1 : 0;
	case 'M':
		return limit_arg("--memory-max", arg, parse_size, &o->task.memory_max);
	case 'P':
		return limit_arg("--pids-max", arg, parse_size, &o->task.pids_max);
	case 'U':
		return limit_arg("--cpu-max", arg, parse_cpus, &o->task.cpu_max_us);
	case 'F':
		i = choice_arg("--filter", arg, filters);
		o->monitor_flags = i == 1   ? PTMON_MONITOR_FILTER_TREE
				   : i == 2 ? PTMON_MONITOR_FILTER_CLASSIC
					    : 0;
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
			return run_bad_usage("--name: a name is 1 to 128 bytes");
		o->name = arg;
		return 0;
	case 'h':
		return RUN_PARSE_HELP;
	default:
		return run_bad_usage("unknown or incomplete option");
	}
}

int run_parse(int argc, char **argv, struct run_options *o)
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
	*o = (struct run_options){.backend = PTMON_BACKEND_AUTO};
	ptmon_task_config_init(&o->task, sizeof(o->task));
	opterr = 0; /* our own messages */
	optind = 0; /* from argv[1], getopt's state reset */
	int c;
	/* '+': options end at CMD, so that CMD's own options are its own. */
	while ((c = getopt_long(argc, argv, "+:t:s:g:d:vhqC:", longopts, NULL)) != -1) {
		if (c == ':')
			return run_bad_usage("option '%s' needs a value", argv[optind - 1]);
		if (c == '?')
			return run_bad_usage("unknown option '%s'", argv[optind - 1]);
		int r = parse_run_option(o, c, optarg);
		if (r != 0)
			return r;
	}
	if (optind >= argc)
		return run_bad_usage("no command given");
	if (o->task.memory_max || o->task.pids_max || o->task.cpu_max_us) {
		if (o->task.cgroup == PTMON_CGROUP_OFF)
			return run_bad_usage(
				"--memory-max, --pids-max and --cpu-max need a cgroup: "
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
