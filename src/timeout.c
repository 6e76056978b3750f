/* SPDX-License-Identifier: MIT */
/* `ptmon timeout`: coreutils timeout's options, duration syntax and exit
 * statuses, translated into a `ptmon run` command line, so that scripts can
 * switch by name.  What differs on purpose (the whole tree, KILL after the
 * grace without -k) is in README.md, "ptmon timeout". */
#include "timeout.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "output.h"
#include "parse.h"
#include "ptmon.h"

enum { EXIT_CANCELED = 125, EXIT_TIMEDOUT = 124, EXIT_KILLED = 128 + SIGKILL };

/* Above this a duration is "never" (about 146 years): the library adds it
 * to a monotonic clock in uint64_t nanoseconds. */
#define NS_NEVER (1ull << 62)

static struct {
	bool active;
	bool preserve_status;
	bool verbose;
	int signal;
	const char *command;
	char **argv; /* the run's command line, kept for the process's life */
} T;

/* The arguments are the user's: notes_say() escapes them for the terminal. */
#define say(...) notes_say("ptmon timeout", __VA_ARGS__)

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
	static const char try_help[] = "Try 'ptmon timeout --help' for more information.\n";
	char line[512];
	va_list ap;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		say("%s", line);
	}
	notes_line(try_help, sizeof(try_help) - 1);
	return EXIT_CANCELED;
}

static void usage(void)
{
	fputs("Usage: ptmon timeout [OPTION] DURATION COMMAND [ARG]...\n"
	      "  or:  ptmon timeout [OPTION]\n"
	      "Start COMMAND, and kill it and every process it started if still running\n"
	      "after DURATION: coreutils timeout's command line and exit statuses, on\n"
	      "'ptmon run' (options -t, -s and -g there).\n"
	      "\n"
	      "      --preserve-status\n"
	      "                 exit with the same status as COMMAND, even when the\n"
	      "                   command times out\n"
	      "      --foreground\n"
	      "                 accepted: COMMAND always keeps ptmon's process group and\n"
	      "                   terminal; its children are timed out all the same\n"
	      "  -k, --kill-after=DURATION\n"
	      "                 send KILL to what remains of the tree this long after\n"
	      "                   the first signal (default, and with 0: 5s)\n"
	      "  -s, --signal=SIGNAL\n"
	      "                 the signal to send on timeout (default: TERM); a name\n"
	      "                   like 'HUP' or a number; 0 and EXIT send CONT\n"
	      "  -v, --verbose  say on stderr, at the end, the signals sent on timeout\n"
	      "      --help     display this help and exit\n"
	      "      --version  output version information and exit\n"
	      "\n"
	      "DURATION is a floating point number (C locale: '1.', '.5', '1e-2', 'inf')\n"
	      "with an optional suffix: 's' for seconds (the default), 'm' for minutes,\n"
	      "'h' for hours or 'd' for days.  A DURATION of 0 disables the timeout.\n"
	      "\n"
	      "Exit status: 124 if COMMAND times out and --preserve-status is not given;\n"
	      "125 if ptmon itself fails; 126 if COMMAND is found but cannot be invoked;\n"
	      "127 if COMMAND cannot be found; 137 if COMMAND is killed with KILL;\n"
	      "the exit status of COMMAND otherwise (128+N when signal N ended it).\n"
	      "\n"
	      "Unlike timeout(1), the signals go to every process COMMAND started, in\n"
	      "any process group or session, and ptmon returns only when all are gone:\n"
	      "what still runs after the grace (-k, else 5s) gets KILL.\n",
	      stdout);
}

/* timeout(1)'s DURATION: strtod() in the C locale (so "1.", "1e-2", "0x1p-3",
 * "inf", leading blanks and '+' pass), then at most one of s, m, h, d. */
static int parse_interval(const char *s, uint64_t *ret_ns)
{
	static const struct {
		char suffix;
		double seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	char *end;
	if (!c)
		return -errno;
	double d = strtod_l(s, &end, c); /* ERANGE: inf or 0, both taken */
	freelocale(c);
	if (end == s || isnan(d) || d < 0)
		return -EINVAL;
	if (*end) {
		size_t i;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (*end == units[i].suffix && !end[1])
				break;
		if (i == sizeof(units) / sizeof(units[0]))
			return -EINVAL;
		d *= units[i].seconds;
	}
	d *= 1e9;
	if (d >= (double)NS_NEVER) {
		*ret_ns = NS_NEVER;
		return 0;
	}
	/* Up to the next nanosecond: a tiny positive one still fires. */
	uint64_t ns = (uint64_t)d;
	*ret_ns = (double)ns < d ? ns + 1 : ns;
	return 0;
}

/* timeout(1)'s SIGNAL: a name in any case with or without SIG, or a number,
 * where one above 128 is taken as an exit status (143 is TERM).  0 (EXIT)
 * sends nothing there; here CONT, which ends nothing either. */
static int parse_timeout_signal(const char *s, int *ret_sig)
{
	char *end;
	if (s[0] >= '0' && s[0] <= '9') {
		errno = 0;
		long n = strtol(s, &end, 10);
		if (*end || errno)
			return -EINVAL;
		if (n > 128)
			n -= 128;
		if (n > SIGRTMAX)
			return -EINVAL;
		*ret_sig = n ? (int)n : SIGCONT;
		return 0;
	}
	if (!strcasecmp(s, "EXIT") || !strcasecmp(s, "SIGEXIT")) {
		*ret_sig = SIGCONT;
		return 0;
	}
	return parse_signal(s, ret_sig);
}

/* The `ptmon run` command line: ptmon run --no-control -t T -s S -g G -- CMD...
 * No control socket: a script's timeout must not fail on a runtime
 * directory it never needed. */
static char **run_argv(int argc, char **argv, uint64_t timeout_ns, uint64_t grace_ns, int sig,
		       int *ret_argc)
{
	static char t[32], g[32], s[16];
	char **nargv = calloc((size_t)argc + 12, sizeof(*nargv));
	int n = 0;
	if (!nargv)
		return NULL;
	snprintf(t, sizeof(t), "%" PRIu64 "ns", timeout_ns == NS_NEVER ? 0 : timeout_ns);
	snprintf(g, sizeof(g), "%" PRIu64 "ns", grace_ns);
	snprintf(s, sizeof(s), "%d", sig);
	const char *head[] = {"ptmon",    "run", "--no-control", "--timeout", t,
			      "--signal", s,     "--grace",      g,           "--"};
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		nargv[n++] = (char *)head[i];
	for (int i = 0; i < argc; i++)
		nargv[n++] = argv[i];
	*ret_argc = n;
	return nargv;
}

int timeout_translate(int argc, char **argv, int *ret_argc, char ***ret_argv)
{
	static const struct option longopts[] = {
		{"kill-after", required_argument, NULL, 'k'},
		{"signal", required_argument, NULL, 's'},
		{"verbose", no_argument, NULL, 'v'},
		{"preserve-status", no_argument, NULL, 'P'},
		{"foreground", no_argument, NULL, 'F'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	uint64_t timeout_ns, grace_ns = 0;
	int c, sig = SIGTERM;
	argc--, argv++; /* from "timeout" on, as getopt wants */
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:k:s:v", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			if (parse_interval(optarg, &grace_ns) < 0)
				return bad_usage("invalid time interval '%s'", optarg);
			break;
		case 's':
			if (parse_timeout_signal(optarg, &sig) < 0)
				return bad_usage("'%s': invalid signal", optarg);
			break;
		case 'v':
			T.verbose = true;
			break;
		case 'P':
			T.preserve_status = true;
			break;
		case 'F': /* the task never leaves ptmon's process group */
			break;
		case 'h':
			usage();
			return 0;
		case 'V':
			printf("ptmon timeout %s\n", PTMON_VERSION);
			return 0;
		case ':':
			return bad_usage("option '%s' requires an argument", argv[optind - 1]);
		default:
			return bad_usage("unrecognized option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind < 2)
		return bad_usage(argc == optind ? "missing operand" : "missing COMMAND");
	if (parse_interval(argv[optind], &timeout_ns) < 0)
		return bad_usage("invalid time interval '%s'", argv[optind]);
	/* Without -k (or with -k 0) timeout(1) waits for ever; ptmon's grace
	 * bounds the wait, so that nothing of the tree outlives the run. */
	if (grace_ns == 0)
		grace_ns = PTMON_DEFAULT_GRACE_NS;
	T.argv =
		run_argv(argc - optind - 1, argv + optind + 1, timeout_ns, grace_ns, sig, ret_argc);
	*ret_argv = T.argv;
	if (!T.argv) {
		say("%s", strerror(ENOMEM));
		return EXIT_CANCELED;
	}
	T.active = true;
	T.signal = sig;
	T.command = argv[optind + 1];
	optind = 0; /* the run path parses its own command line afresh */
	return -1;
}

static void say_signals(const struct ptmon_task_result *r)
{
	char buf[16];
	const char *name = signal_name(T.signal, buf, sizeof(buf));
	say("sent signal %s to command '%s' and its tree (%" PRIu64 " processes)",
	    name ? name : "?", T.command, r->signalled);
	if (r->killed)
		say("sent signal KILL to %" PRIu64 " processes of command '%s' after the grace",
		    r->killed, T.command);
}

/* Was the command sent KILL?  Its death by KILL says so; but ptmon signals
 * the tree one process at a time, and a command can exit on its own (a
 * shell, on its child's death) before its KILL lands: what ptmon sent
 * counts, as it does for timeout(1) (whose group kill is one call). */
static bool command_killed(const struct ptmon_task *t, const struct ptmon_task_result *r)
{
	const struct ptmon_process *root = ptmon_task_find_process(t, r->root_pid);
	struct ptmon_process_info info = {.size = sizeof(info)};
	if (r->root_status == CLD_KILLED && r->root_value == SIGKILL)
		return true;
	return root && ptmon_process_get_info(root, &info) == 0 && info.signal_sent == SIGKILL;
}

int timeout_status(const struct ptmon_task *t, const struct ptmon_task_result *r, int status)
{
	if (!T.active)
		return status;
	int command = r->root_status == CLD_EXITED ? r->root_value : 128 + r->root_value;
	bool killed = command_killed(t, r);
	switch (r->cancel_reason) {
	case PTMON_CANCEL_TIMEOUT:
		if (T.verbose)
			say_signals(r);
		if (killed)
			return EXIT_KILLED;
		return T.preserve_status ? command : EXIT_TIMEDOUT;
	case PTMON_CANCEL_SIGNAL:
		/* timeout(1) passes a signal it gets on to the command and
		 * exits with the command's status. */
		return command;
	default:
		return status;
	}
}
