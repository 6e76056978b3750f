/* SPDX-License-Identifier: MIT */
/* Durations and signals as the command line takes them (src/parse.c), and
 * `ptmon run`'s options into struct run_options (src/run_parse.c). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "parse.h"
#include "run.h"

#define NS 1ull
#define US 1000ull
#define MS 1000000ull
#define SEC 1000000000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define SENTINEL 0xdeadbeefcafef00dull

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static void assert_duration(const char *s, uint64_t want)
{
	uint64_t ns = SENTINEL;
	int r = parse_duration(s, &ns);

	if (r != 0 || ns != want)
		print_error("parse_duration(\"%s\") = %d, %llu; want 0, %llu\n", s, r,
			    (unsigned long long)ns, (unsigned long long)want);
	assert_int_equal(r, 0);
	assert_true(ns == want);
}

static void assert_duration_fails(const char *s, int err)
{
	uint64_t ns = SENTINEL;
	int r = parse_duration(s, &ns);

	if (r != err)
		print_error("parse_duration(\"%s\") = %d (%llu); want %d\n", s ? s : "(null)", r,
			    (unsigned long long)ns, err);
	assert_int_equal(r, err);
	/* ret_ns is left untouched on failure. */
	assert_true(ns == SENTINEL);
}

static void test_duration_valid(void **state)
{
	static const struct {
		const char *s;
		uint64_t ns;
	} cases[] = {
		{"0", 0},
		{"0s", 0},
		{"0ns", 0},
		{"0.0", 0},
		{"000", 0},
		{"10", 10 * SEC},
		{"0.25", 250 * MS},
		{"250ms", 250 * MS},
		{"1.5s", 1500 * MS},
		{"2m", 2 * MIN},
		{"1ns", 1},
		{"1us", US},
		{"1ms", MS},
		{"1s", SEC},
		{"1m", MIN},
		{"1h", HOUR},
		{"1d", DAY},
		{"1.5ms", 1500 * US},
		{"1.1h", 3960 * SEC},
		{"0.00001d", 864 * MS},
		{"1.000000001", SEC + 1},
		{"0001s", SEC},
		{"00000000000000000000000000000001s", SEC},
		{"1.50000000000000000000000000000000000000000000000000000000s", 1500 * MS},
		/* decided: a missing integer part is allowed, as coreutils does */
		{".5", 500 * MS},
		{".5s", 500 * MS},
		{".001us", 1 * NS},
		{".001ms", 1 * US},
		/* rounding to the nearest nanosecond, ties away from zero */
		{"0.5ns", 1},
		{"1.5ns", 2},
		{"2.5ns", 3},
		{"0.0000000005", 1},
		{"0.0000000005000000000000000001", 1},
		{"0.0000000015", 2},
		{"1.99999999999999999999999999999999s", 2 * SEC},
		{"0.9999999994s", SEC - 1},
		{"0.9999999995s", SEC},
		{"0.0005us", 1},
		{"0.333333333333333333333333333333333m", 20 * SEC},
		{"0.3333333333333333m", 20 * SEC - 0},
		{"0.1d", 8640 * SEC},
		{"0.123456789123h", 444444440843ull},
		/* the largest values */
		{"18446744073709551615ns", UINT64_MAX},
		{"18446744073709551615.4ns", UINT64_MAX},
		{"18446744073.709551615s", UINT64_MAX},
		{"18446744073.7095516154s", UINT64_MAX},
		{"18446744073709551.615us", UINT64_MAX},
		{"213503d", 213503 * DAY},
		{"213503.982334601d", 18446744073709526400ull},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_duration(cases[i].s, cases[i].ns);
}

static void test_duration_malformed(void **state)
{
	static const char *const cases[] = {
		"",
		"-1",
		"+1",
		"-0",
		"1x",
		"1.",
		".",
		".s",
		"s",
		"ms",
		"1e3",
		"1E3",
		" 1",
		"1 ",
		"\t1",
		"1\n",
		"1 s",
		"1s ",
		"1S",
		"1M",
		"1H",
		"1D",
		"1MS",
		"1sec",
		"1min",
		"1ms5",
		"1s1",
		"1.5.5",
		"1..5",
		"1,5",
		"0x10",
		"inf",
		"nan",
		"1.s",
		"1m30s",
		"2m30",
		"µs",
		"1µs",
		"1ss",
		"1mss",
		"1nss",
		"--1",
		"1-",
		"1.-5",
		"1.+5",
		"1.e5",
		"1_000",
		"١",
		"99999999999999999999x",
		"18446744073709551616nsx",
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_duration_fails(cases[i], -EINVAL);
	assert_duration_fails(NULL, -EINVAL);
}

static void test_duration_overflow(void **state)
{
	static const char *const cases[] = {
		"99999999999999999999",
		"99999999999999999999ns",
		"18446744073709551616ns",
		"18446744073709551615.5ns", /* rounds up past the top */
		"18446744073.709551616s",
		"18446744073.7095516155s", /* a tie rounds away from zero, past the top */
		"18446744074",
		"18446744074s",
		"307445734.561825860266m",
		"213504d",
		"213503.9823346018d",
		"5124095576030432h",
		"1000000000000000000000000000000000000000.5",
		"18446744073709551616.0ns",
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_duration_fails(cases[i], -ERANGE);
}

/* Non-zero, but below half a nanosecond: it would round to 0, which the
 * options take for "none" (no timeout), so it is refused. */
static void test_duration_too_small(void **state)
{
	static const char *const cases[] = {
		"0.49ns",
		"0.4ns",
		"0.4999999999999999999999999999999ns",
		"0.0000000004999999999999999999",
		"0.0000001us",
		"0.0000000001s",
		".0001ns",
		"0.000000000000000000000000000001d",
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_duration_fails(cases[i], -ERANGE);
	/* Zero written any way is still zero, and half a nanosecond rounds up. */
	assert_duration("0.000ns", 0);
	assert_duration("00.00d", 0);
	assert_duration("0.0000000005", 1);
}

static void assert_signal(const char *s, int want)
{
	int sig = -12345;
	int r = parse_signal(s, &sig);

	if (r != 0 || sig != want)
		print_error("parse_signal(\"%s\") = %d, %d; want 0, %d\n", s, r, sig, want);
	assert_int_equal(r, 0);
	assert_int_equal(sig, want);
}

static void assert_signal_fails(const char *s)
{
	int sig = -12345;
	int r = parse_signal(s, &sig);

	if (r != -EINVAL)
		print_error("parse_signal(\"%s\") = %d, %d; want -EINVAL\n", s ? s : "(null)", r,
			    sig);
	assert_int_equal(r, -EINVAL);
	assert_int_equal(sig, -12345);
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* Every signal number round trips through its name, with and without "SIG",
 * in upper, lower and mixed case, and through its number. */
static void test_signal_round_trip(void **state)
{
	for (int sig = 1; sig <= SIGRTMAX; sig++) {
		char buf[32], text[48];
		const char *name = signal_name(sig, buf, sizeof(buf));

		assert_non_null(name);
		assert_true(strlen(name) > 0 && strlen(name) < 16);
		snprintf(text, sizeof(text), "%d", sig);
		assert_signal(text, sig);
		assert_signal(name, sig);
		snprintf(text, sizeof(text), "%s", name);
		lower(text);
		assert_signal(text, sig);
		if (name[0] >= '0' && name[0] <= '9')
			continue; /* 32 and 33: a number, no "SIG" form */
		snprintf(text, sizeof(text), "SIG%s", name);
		assert_signal(text, sig);
		lower(text);
		assert_signal(text, sig);
		text[0] = 'S';
		text[4] = (char)(text[4] - 'a' + 'A');
		assert_signal(text, sig); /* "SigTerm"-like: "Sig" + mixed */
	}
}

/* Our names are the C library's own abbreviations. */
static void test_signal_names_match_libc(void **state)
{
	for (int sig = 1; sig < SIGRTMIN; sig++) {
		char buf[32];
		const char *mine = signal_name(sig, buf, sizeof(buf));
		const char *libc = sigabbrev_np(sig);

		int back = 0;

		if (!libc) {
			/* glibc's reserved real-time signals */
			assert_true(sig >= 32);
			continue;
		}
		assert_int_equal(parse_signal(libc, &back), 0);
		assert_int_equal(back, sig);
		/* glibc says "POLL" for 29; "IO" is what kill -l and signal(7) list
		 * first.  Both parse. */
		if (sig == SIGIO)
			continue;
		if (strcmp(mine, libc) != 0)
			print_error("signal %d: ours %s, libc %s\n", sig, mine, libc);
		assert_string_equal(mine, libc);
	}
}

static void test_signal_standard_names(void **state)
{
	static const struct {
		const char *s;
		int sig;
	} cases[] = {
		{"HUP", SIGHUP},
		{"INT", SIGINT},
		{"QUIT", SIGQUIT},
		{"ILL", SIGILL},
		{"TRAP", SIGTRAP},
		{"ABRT", SIGABRT},
		{"IOT", SIGABRT},
		{"BUS", SIGBUS},
		{"FPE", SIGFPE},
		{"KILL", SIGKILL},
		{"USR1", SIGUSR1},
		{"SEGV", SIGSEGV},
		{"USR2", SIGUSR2},
		{"PIPE", SIGPIPE},
		{"ALRM", SIGALRM},
		{"TERM", SIGTERM},
		{"STKFLT", SIGSTKFLT},
		{"CHLD", SIGCHLD},
		{"CLD", SIGCHLD},
		{"CONT", SIGCONT},
		{"STOP", SIGSTOP},
		{"TSTP", SIGTSTP},
		{"TTIN", SIGTTIN},
		{"TTOU", SIGTTOU},
		{"URG", SIGURG},
		{"XCPU", SIGXCPU},
		{"XFSZ", SIGXFSZ},
		{"VTALRM", SIGVTALRM},
		{"PROF", SIGPROF},
		{"WINCH", SIGWINCH},
		{"IO", SIGIO},
		{"POLL", SIGPOLL},
		{"PWR", SIGPWR},
		{"SYS", SIGSYS},
		{"sigkill", SIGKILL},
		{"SigTerm", SIGTERM},
		{"sIgInT", SIGINT},
		{"term", SIGTERM},
		{"9", SIGKILL},
		{"15", SIGTERM},
		{"1", 1},
		{"64", 64},
		{"09", 9},
		{"0000000000000015", 15},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_signal(cases[i].s, cases[i].sig);
	assert_int_equal(SIGRTMAX, 64);
}

static void test_signal_realtime(void **state)
{
	char buf[16];

	assert_signal("SIGRTMIN+2", SIGRTMIN + 2);
	assert_signal("RTMIN+2", SIGRTMIN + 2);
	assert_signal("sigrtmin+2", SIGRTMIN + 2);
	assert_signal("RTMIN", SIGRTMIN);
	assert_signal("RTMIN+0", SIGRTMIN);
	assert_signal("RTMAX", SIGRTMAX);
	assert_signal("RTMAX-0", SIGRTMAX);
	assert_signal("SIGRTMAX-1", SIGRTMAX - 1);
	assert_signal("rtmax-30", SIGRTMIN);
	assert_signal("RTMIN+30", SIGRTMAX);
	assert_signal("RTMIN+002", SIGRTMIN + 2);

	assert_string_equal(signal_name(SIGRTMIN, buf, sizeof(buf)), "RTMIN");
	assert_string_equal(signal_name(SIGRTMIN + 2, buf, sizeof(buf)), "RTMIN+2");
	assert_string_equal(signal_name(SIGRTMIN + 15, buf, sizeof(buf)), "RTMIN+15");
	assert_string_equal(signal_name(SIGRTMAX - 14, buf, sizeof(buf)), "RTMAX-14");
	assert_string_equal(signal_name(SIGRTMAX - 1, buf, sizeof(buf)), "RTMAX-1");
	assert_string_equal(signal_name(SIGRTMAX, buf, sizeof(buf)), "RTMAX");
	assert_string_equal(signal_name(32, buf, sizeof(buf)), "32");
	assert_string_equal(signal_name(33, buf, sizeof(buf)), "33");
}

static void test_signal_names_static(void **state)
{
	char buf[16];

	/* Named signals come from static storage, never @buf. */
	assert_string_equal(signal_name(SIGTERM, NULL, 0), "TERM");
	assert_string_equal(signal_name(SIGKILL, buf, sizeof(buf)), "KILL");
	assert_string_equal(signal_name(SIGABRT, buf, sizeof(buf)), "ABRT");
	assert_string_equal(signal_name(SIGCHLD, buf, sizeof(buf)), "CHLD");
	assert_string_equal(signal_name(SIGIO, buf, sizeof(buf)), "IO");
	assert_true(signal_name(SIGINT, buf, sizeof(buf)) != buf);
	assert_null(signal_name(0, buf, sizeof(buf)));
	assert_null(signal_name(-1, buf, sizeof(buf)));
	assert_null(signal_name(SIGRTMAX + 1, buf, sizeof(buf)));
	assert_null(signal_name(1000, buf, sizeof(buf)));
}

static void test_signal_invalid(void **state)
{
	static const char *const cases[] = {
		"",           "0",        "65",         "KILLX",
		"SIG",        "sig",      "SIGSIGKILL", "-9",
		"+9",         " 9",       "9 ",         "9x",
		"KILL ",      " KILL",    "SIG KILL",   "SIG9",
		"SIGK",       "K",        "RT",         "RTMIN+",
		"RTMIN-1",    "RTMAX+1",  "RTMIN+31",   "RTMAX-31",
		"RTMIN+-1",   "RTMIN+ 1", "RTMIN+1x",   "RTMIN2",
		"RTMAX1",     "RTMINX",   "RTMIN++1",   "99999999999999999999",
		"4294967305", "100",      "0x9",        "SIGNULL",
		"NULL",       "EXIT",     "ERR",        "DEBUG",
		"TERM\n",     "UNUSED",   "LOST",       "EMT",
		"INFO",       "0009x",    "000",
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_signal_fails(cases[i]);
	assert_signal_fails(NULL);
}

static void assert_format(uint64_t ns, const char *want)
{
	char buf[64];

	memset(buf, 'X', sizeof(buf));
	assert_string_equal(format_duration(ns, buf, sizeof(buf)), want);
}

static void test_format_duration(void **state)
{
	assert_format(0, "0s");
	assert_format(1, "1ns");
	assert_format(999, "999ns");
	assert_format(US, "1us");
	assert_format(1500, "1.5us");
	assert_format(MS, "1ms");
	assert_format(250 * MS, "250ms");
	assert_format(1500 * US, "1.5ms");
	assert_format(SEC - 1, "999.999999ms");
	assert_format(SEC, "1s");
	assert_format(1500 * MS, "1.5s");
	assert_format(SEC + 1, "1.000000001s");
	assert_format(59 * SEC, "59s");
	assert_format(MIN, "1m");
	assert_format(150 * SEC, "2m30s");
	assert_format(MIN + 1, "1m0.000000001s");
	assert_format(HOUR, "1h");
	assert_format(HOUR + 5 * SEC, "1h5s");
	assert_format(DAY, "1d");
	assert_format(DAY + 2 * HOUR, "1d2h");
	assert_format(DAY + 2 * HOUR + 3 * MIN + 4500 * MS, "1d2h3m4.5s");
	assert_format(UINT64_MAX, "213503d23h34m33.709551615s");
}

/* A short buffer holds a NUL-terminated prefix of the full text, as
 * snprintf() would truncate it. */
static void test_format_duration_truncates(void **state)
{
	static const uint64_t values[] = {
		UINT64_MAX, DAY + 2 * HOUR + 4500 * MS, 1500 * MS, 1, 1500, 150 * SEC, 0,
	};

	for (size_t i = 0; i < ARRAY_SIZE(values); i++) {
		char full[64], buf[64];

		format_duration(values[i], full, sizeof(full));
		for (unsigned len = 1; len <= strlen(full) + 1; len++) {
			memset(buf, 'X', sizeof(buf));
			assert_ptr_equal(format_duration(values[i], buf, len), buf);
			assert_int_equal(strlen(buf), len - 1);
			assert_true(strncmp(buf, full, len - 1) == 0);
			assert_int_equal(buf[len], 'X');
		}
	}
	assert_null(format_duration(1, NULL, 0));
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void assert_round_trip(uint64_t ns)
{
	char buf[40];
	uint64_t back = SENTINEL;

	format_duration(ns, buf, sizeof(buf));
	if (parse_duration(buf, &back) != 0 || back != ns)
		print_error("%llu -> \"%s\" -> %llu\n", (unsigned long long)ns, buf,
			    (unsigned long long)back);
	assert_int_equal(parse_duration(buf, &back), 0);
	assert_true(back == ns);
}

/* What format_duration() writes for a value below a minute, whole minutes
 * below an hour, whole hours below a day or whole days parses back. */
static void test_format_parse_round_trip(void **state)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	for (int i = 0; i < 200000; i++) {
		uint64_t r = xorshift(&seed);

		assert_round_trip(r % MIN);
		assert_round_trip((r % 1000) * (i % 2 ? MS : US));
		assert_round_trip((r % 60) * MIN);
		assert_round_trip((r % 24) * HOUR);
		assert_round_trip((r % 213503) * DAY);
	}
	assert_round_trip(UINT64_MAX / DAY * DAY);
}

__extension__ typedef unsigned __int128 u128;

/* Random well-formed strings against an independent 128-bit oracle. */
static void test_size(void **state)
{
	static const struct {
		const char *s;
		int r;
		uint64_t v;
	} cases[] = {
		{"1", 0, 1},
		{"4096", 0, 4096},
		{"64M", 0, 64ull << 20},
		{"64m", 0, 64ull << 20},
		{"1K", 0, 1024},
		{"3G", 0, 3ull << 30},
		{"2t", 0, 2ull << 40},
		{"18446744073709551615", 0, UINT64_MAX},
		{"18446744073709551616", -ERANGE, 0},
		{"16777216T", -ERANGE, 0},
		{"16777215T", 0, 16777215ull << 40},
		{"0", -EINVAL, 0},
		{"0M", -EINVAL, 0},
		{"", -EINVAL, 0},
		{"M", -EINVAL, 0},
		{"-1", -EINVAL, 0},
		{"1.5G", -EINVAL, 0},
		{"1MB", -EINVAL, 0},
		{"1P", -EINVAL, 0},
		{" 1", -EINVAL, 0},
		{"1 ", -EINVAL, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 7;
		int r = parse_size(cases[i].s, &v);
		if (r != cases[i].r || v != (r == 0 ? cases[i].v : 7))
			fail_msg("parse_size(\"%s\") = %d, %" PRIu64, cases[i].s, r, v);
	}
}

static void test_cpus(void **state)
{
	static const struct {
		const char *s;
		int r;
		uint64_t v;
	} cases[] = {
		{"1", 0, 100000},
		{"0.5", 0, 50000},
		{"1.5", 0, 150000},
		{"2.25", 0, 225000},
		{"0.01", 0, 1000},
		{"0.001", -ERANGE, 0},
		{"0.009", -ERANGE, 0},
		{"0", -ERANGE, 0},
		{"100000", 0, 100000ull * 100000},
		{"100001", -ERANGE, 0},
		{"99999999999999999999", -ERANGE, 0},
		{"1.0001", -EINVAL, 0},
		{"1.", -EINVAL, 0},
		{".5", -EINVAL, 0},
		{"", -EINVAL, 0},
		{"-1", -EINVAL, 0},
		{"1c", -EINVAL, 0},
		{"1e3", -EINVAL, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 7;
		int r = parse_cpus(cases[i].s, &v);
		if (r != cases[i].r || v != (r == 0 ? cases[i].v : 7))
			fail_msg("parse_cpus(\"%s\") = %d, %" PRIu64, cases[i].s, r, v);
	}
}

static void test_duration_random_oracle(void **state)
{
	static const struct {
		const char *suffix;
		uint64_t ns;
	} units[] = {{"", SEC},  {"ns", NS}, {"us", US},  {"ms", MS},
		     {"s", SEC}, {"m", MIN}, {"h", HOUR}, {"d", DAY}};
	uint64_t seed = 0x2545f4914f6cdd1dull;

	for (int i = 0; i < 300000; i++) {
		char text[64];
		size_t n = 0;
		int nint = (int)(xorshift(&seed) % 14), nfrac = (int)(xorshift(&seed) % 14);
		size_t u = xorshift(&seed) % ARRAY_SIZE(units);
		u128 whole = 0, frac = 0, pow10 = 1, want;
		uint64_t got = SENTINEL;
		int r;

		if (nint == 0 && nfrac == 0)
			nint = 1;
		for (int k = 0; k < nint; k++) {
			int d = (int)(xorshift(&seed) % 10);

			text[n++] = (char)('0' + d);
			whole = whole * 10 + (u128)d;
		}
		if (nfrac) {
			text[n++] = '.';
			for (int k = 0; k < nfrac; k++) {
				int d = (int)(xorshift(&seed) % 10);

				text[n++] = (char)('0' + d);
				frac = frac * 10 + (u128)d;
				pow10 *= 10;
			}
		}
		snprintf(text + n, sizeof(text) - n, "%s", units[u].suffix);
		want = whole * units[u].ns + (frac * units[u].ns * 2 + pow10) / (pow10 * 2);
		r = parse_duration(text, &got);
		if (want > UINT64_MAX || (want == 0 && (whole || frac))) {
			if (r != -ERANGE)
				print_error("\"%s\": %d, want -ERANGE\n", text, r);
			assert_int_equal(r, -ERANGE);
			continue;
		}
		if (r != 0 || got != (uint64_t)want)
			print_error("\"%s\": %d %llu, want %llu\n", text, r,
				    (unsigned long long)got, (unsigned long long)(uint64_t)want);
		assert_int_equal(r, 0);
		assert_true(got == (uint64_t)want);
	}
}

/* ---- `ptmon run`'s options (run_parse) ----------------------------------------- */

#define RUN_ARGV(...) ((char *[]){"run", __VA_ARGS__, NULL})
#define RUN_PARSE(o, ...)                                                                          \
	run_parse((int)ARRAY_SIZE(((char *[]){"run", __VA_ARGS__})), RUN_ARGV(__VA_ARGS__), (o))

static void test_run_defaults(void **state)
{
	struct run_options o;
	struct ptmon_task_config def;
	ptmon_task_config_init(&def, sizeof(def));
	assert_int_equal(RUN_PARSE(&o, "/bin/sleep", "1"), 0);
	assert_string_equal(o.task.argv[0], "/bin/sleep");
	assert_string_equal(o.task.argv[1], "1");
	assert_null(o.task.argv[2]);
	assert_string_equal(o.name, "sleep"); /* CMD's basename */
	assert_int_equal(o.backend, PTMON_BACKEND_AUTO);
	assert_int_equal(o.monitor_flags, 0);
	assert_int_equal(o.colour, COLOUR_AUTO);
	assert_true(o.task.timeout_ns == def.timeout_ns && o.task.grace_ns == def.grace_ns &&
		    o.task.drain_ns == def.drain_ns && o.task.signal == def.signal);
	assert_int_equal(o.task.cgroup, PTMON_CGROUP_AUTO);
	assert_int_equal(o.task.leftovers, def.leftovers);
	assert_false(o.summary || o.quiet || o.no_control || o.watch);
	assert_null(o.events_path);
	assert_null(o.report_path);
	assert_null(o.control_path);
	assert_null(o.chdir);
	assert_int_equal(o.verbose, 0);
}

static void test_run_every_option(void **state)
{
	struct run_options o;
	assert_int_equal(RUN_PARSE(&o, "-t", "1.5s", "-s", "KILL", "-g", "2s", "-d", "250ms",
				   "--leftovers", "wait", "--backend", "procfs", "--cgroup", "off",
				   "--filter", "classic", "--events", "/e", "--report", "/r",
				   "--summary", "--control", "/c", "--name", "nm", "-C", "/tmp",
				   "-q", "-v", "--verbose", "--color", "never", "--no-control",
				   "--", "/bin/echo", "-t", "x"),
			 0);
	assert_true(o.task.timeout_ns == 1500 * MS);
	assert_int_equal(o.task.signal, SIGKILL);
	assert_true(o.task.grace_ns == 2 * SEC);
	assert_true(o.task.drain_ns == 250 * MS);
	assert_int_equal(o.task.leftovers, PTMON_LEFTOVERS_WAIT);
	assert_int_equal(o.backend, PTMON_BACKEND_PROCFS);
	assert_int_equal(o.task.cgroup, PTMON_CGROUP_OFF);
	assert_int_equal(o.monitor_flags, PTMON_MONITOR_FILTER_CLASSIC);
	assert_string_equal(o.events_path, "/e");
	assert_string_equal(o.report_path, "/r");
	assert_string_equal(o.control_path, "/c");
	assert_string_equal(o.name, "nm");
	assert_string_equal(o.chdir, "/tmp");
	assert_true(o.summary && o.quiet && o.no_control);
	assert_int_equal(o.verbose, 2);
	assert_int_equal(o.colour, COLOUR_NEVER);
	/* CMD's own options are its own. */
	assert_string_equal(o.task.argv[0], "/bin/echo");
	assert_string_equal(o.task.argv[1], "-t");
	assert_string_equal(o.task.argv[2], "x");
	assert_null(o.task.argv[3]);
}

/* Options end at CMD, without "--" too: a second parse starts afresh. */
static void test_run_options_end_at_cmd(void **state)
{
	struct run_options o;
	assert_int_equal(RUN_PARSE(&o, "--filter", "ebpf", "--backend", "connector", "echo", "-t",
				   "5", "--help"),
			 0);
	assert_int_equal(o.monitor_flags, PTMON_MONITOR_FILTER_TREE);
	assert_int_equal(o.backend, PTMON_BACKEND_CONNECTOR);
	assert_true(o.task.timeout_ns == 0);
	assert_string_equal(o.task.argv[1], "-t");
	assert_string_equal(o.task.argv[3], "--help");
	assert_int_equal(RUN_PARSE(&o, "true"), 0);
	assert_int_equal(o.backend, PTMON_BACKEND_AUTO);
	assert_string_equal(o.task.argv[0], "true");
}

/* A limit needs the task's cgroup: it turns --cgroup auto into on, and
 * refuses --cgroup off. */
static void test_run_limits_need_cgroup(void **state)
{
	struct run_options o;
	assert_int_equal(RUN_PARSE(&o, "--memory-max", "512M", "--pids-max", "100", "--cpu-max",
				   "1.5", "true"),
			 0);
	assert_int_equal(o.task.cgroup, PTMON_CGROUP_ON);
	assert_true(o.task.memory_max == 512ull << 20);
	assert_true(o.task.pids_max == 100);
	assert_true(o.task.cpu_max_us == 150000);
	assert_int_equal(RUN_PARSE(&o, "--cgroup", "off", "--pids-max", "3", "true"), -1);
	assert_int_equal(RUN_PARSE(&o, "--pids-max", "3K", "true"), -1); /* a count, no unit */
}

static void test_run_help(void **state)
{
	struct run_options o;
	assert_int_equal(RUN_PARSE(&o, "--help"), RUN_PARSE_HELP);
	/* Nothing after --help is looked at; what comes before is. */
	assert_int_equal(RUN_PARSE(&o, "--help", "--bogus"), RUN_PARSE_HELP);
	assert_int_equal(RUN_PARSE(&o, "-h"), RUN_PARSE_HELP);
	assert_int_equal(RUN_PARSE(&o, "--bogus", "--help"), -1);
}

static void test_run_bad_usage(void **state)
{
	struct run_options o;
	assert_int_equal(run_parse(1, RUN_ARGV(NULL), &o), -1); /* no command */
	assert_int_equal(RUN_PARSE(&o, "-v"), -1);
	assert_int_equal(RUN_PARSE(&o, "--timeout", "x", "true"), -1);
	assert_int_equal(RUN_PARSE(&o, "--grace", "-1", "true"), -1);
	assert_int_equal(RUN_PARSE(&o, "--signal", "NOPE", "true"), -1);
	assert_int_equal(RUN_PARSE(&o, "--backend", "magic", "true"), -1);
	assert_int_equal(RUN_PARSE(&o, "--color", "sometimes", "true"), -1);
	assert_int_equal(RUN_PARSE(&o, "--name", "", "true"), -1);
	assert_int_equal(RUN_PARSE(&o, "--memory-max", "lots", "true"), -1);
	assert_int_equal(RUN_PARSE(&o, "--timeout"), -1); /* needs a value */
	assert_int_equal(RUN_PARSE(&o, "--nope", "true"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_cpus),
		cmocka_unit_test(test_duration_valid),
		cmocka_unit_test(test_duration_malformed),
		cmocka_unit_test(test_duration_overflow),
		cmocka_unit_test(test_duration_too_small),
		cmocka_unit_test(test_duration_random_oracle),
		cmocka_unit_test(test_signal_round_trip),
		cmocka_unit_test(test_signal_names_match_libc),
		cmocka_unit_test(test_signal_standard_names),
		cmocka_unit_test(test_signal_realtime),
		cmocka_unit_test(test_signal_names_static),
		cmocka_unit_test(test_signal_invalid),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_format_duration_truncates),
		cmocka_unit_test(test_format_parse_round_trip),
		cmocka_unit_test(test_run_defaults),
		cmocka_unit_test(test_run_every_option),
		cmocka_unit_test(test_run_options_end_at_cmd),
		cmocka_unit_test(test_run_limits_need_cgroup),
		cmocka_unit_test(test_run_help),
		cmocka_unit_test(test_run_bad_usage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
