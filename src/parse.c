/* SPDX-License-Identifier: MIT */
/* Durations and signals from the command line.  See parse.h. */
#include "parse.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define NSEC_PER_USEC 1000ull
#define NSEC_PER_MSEC 1000000ull
#define NSEC_PER_SEC 1000000000ull
#define NSEC_PER_MIN (60ull * NSEC_PER_SEC)
#define NSEC_PER_HOUR (60ull * NSEC_PER_MIN)
#define NSEC_PER_DAY (24ull * NSEC_PER_HOUR)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static const struct {
	const char *suffix;
	uint64_t ns;
} duration_units[] = {
	{"ns", 1},           {"us", NSEC_PER_USEC}, {"ms", NSEC_PER_MSEC}, {"s", NSEC_PER_SEC},
	{"m", NSEC_PER_MIN}, {"h", NSEC_PER_HOUR},  {"d", NSEC_PER_DAY},
};

/* The multiplier for the unit @s, which must be the whole rest of the
 * string; 0 when it is not a unit. */
static uint64_t duration_unit(const char *s)
{
	if (*s == '\0')
		return NSEC_PER_SEC;
	for (size_t i = 0; i < ARRAY_SIZE(duration_units); i++)
		if (strcmp(s, duration_units[i].suffix) == 0)
			return duration_units[i].ns;
	return 0;
}

/*
 * round(unit * 0.d1d2...dn) exactly, for any number of digits, without a
 * wider integer type: Horner's scheme from the last digit, y = (unit*d + y)/10,
 * keeps the integer part q (always < unit, so 10*unit must fit: it does, the
 * largest unit is a day, < 2^47).  The fractional part after the last step is
 * (rem + f)/10 with 0 <= f < 1, which is >= 1/2 exactly when rem >= 5, so
 * nothing else of the lower digits is needed.  Ties round away from zero.
 */
static uint64_t fraction_ns(const char *digits, size_t n, uint64_t unit)
{
	uint64_t q = 0;
	unsigned rem = 0;

	for (size_t i = n; i-- > 0;) {
		uint64_t v = unit * (uint64_t)(digits[i] - '0') + q;

		q = v / 10;
		rem = (unsigned)(v % 10);
	}
	return rem >= 5 ? q + 1 : q;
}

int parse_duration(const char *s, uint64_t *ret_ns)
{
	const char *p = s, *frac = NULL;
	size_t nfrac = 0;
	uint64_t whole = 0, unit, part;
	bool overflow = false, any = false, nonzero = false;

	if (!s)
		return -EINVAL;
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		any = true;
		nonzero |= d != 0;
		if (whole > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			whole = whole * 10 + d;
	}
	if (*p == '.') {
		frac = ++p;
		for (; is_digit(*p); p++)
			nonzero |= *p != '0';
		nfrac = (size_t)(p - frac);
		/* "1." has a point that promises a fraction and gives none. */
		if (nfrac == 0)
			return -EINVAL;
		any = true;
	}
	if (!any)
		return -EINVAL;
	unit = duration_unit(p);
	if (unit == 0)
		return -EINVAL;
	if (overflow)
		return -ERANGE;

	part = frac ? fraction_ns(frac, nfrac, unit) : 0;
	if (whole > (UINT64_MAX - part) / unit)
		return -ERANGE;
	/* "0.4ns" asks for a duration, and 0 means none at all (no timeout,
	 * no grace): never turn the one into the other silently. */
	if (nonzero && whole == 0 && part == 0)
		return -ERANGE;
	*ret_ns = whole * unit + part;
	return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
	static const char units[] = "kmgt";
	const char *p = s;
	uint64_t v = 0;
	bool overflow = false;

	if (!s || !is_digit(*s))
		return -EINVAL;
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	if (*p) {
		const char *u = strchr(units, *p | 0x20);
		if (!u || !*u || p[1])
			return -EINVAL;
		for (long i = 0; i <= u - units; i++) {
			if (v > UINT64_MAX / 1024)
				overflow = true;
			v *= 1024;
		}
	}
	if (overflow)
		return -ERANGE;
	if (v == 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

int parse_cpus(const char *s, uint64_t *ret_us)
{
	const char *p = s;
	uint64_t whole = 0, milli = 0;
	int nfrac = 0;

	if (!s || !is_digit(*s))
		return -EINVAL;
	for (; is_digit(*p); p++) {
		if (whole > 100000)
			return -ERANGE;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		for (p++; is_digit(*p); p++, nfrac++) {
			if (nfrac == 3)
				return -EINVAL;
			milli = milli * 10 + (uint64_t)(*p - '0');
		}
		if (nfrac == 0)
			return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	for (int i = nfrac; i < 3; i++)
		milli *= 10;
	/* 100 ms periods: one CPU is 100000 us of each. */
	uint64_t us = whole * 100000 + milli * 100;
	if (whole > 100000 || us > 100000ull * 100000 || us < 1000)
		return -ERANGE;
	*ret_us = us;
	return 0;
}

static const struct {
	int sig;
	const char *name;
} signal_names[] = {
	/* Canonical names first: signal_name() returns the first match. */
	{SIGHUP, "HUP"},
	{SIGINT, "INT"},
	{SIGQUIT, "QUIT"},
	{SIGILL, "ILL"},
	{SIGTRAP, "TRAP"},
	{SIGABRT, "ABRT"},
	{SIGBUS, "BUS"},
	{SIGFPE, "FPE"},
	{SIGKILL, "KILL"},
	{SIGUSR1, "USR1"},
	{SIGSEGV, "SEGV"},
	{SIGUSR2, "USR2"},
	{SIGPIPE, "PIPE"},
	{SIGALRM, "ALRM"},
	{SIGTERM, "TERM"},
#ifdef SIGSTKFLT
	{SIGSTKFLT, "STKFLT"},
#endif
	{SIGCHLD, "CHLD"},
	{SIGCONT, "CONT"},
	{SIGSTOP, "STOP"},
	{SIGTSTP, "TSTP"},
	{SIGTTIN, "TTIN"},
	{SIGTTOU, "TTOU"},
	{SIGURG, "URG"},
	{SIGXCPU, "XCPU"},
	{SIGXFSZ, "XFSZ"},
	{SIGVTALRM, "VTALRM"},
	{SIGPROF, "PROF"},
	{SIGWINCH, "WINCH"},
	{SIGIO, "IO"},
#ifdef SIGPWR
	{SIGPWR, "PWR"},
#endif
	{SIGSYS, "SYS"},
	/* Aliases, accepted on input only. */
	{SIGABRT, "IOT"},
	{SIGCHLD, "CLD"},
	{SIGIO, "POLL"},
};

/* Parse a decimal number without sign; -1 when @s is not one or exceeds
 * @max. */
static int parse_small_uint(const char *s, int max)
{
	int v = 0;

	if (!is_digit(*s))
		return -1;
	for (; *s; s++) {
		if (!is_digit(*s))
			return -1;
		v = v * 10 + (*s - '0');
		if (v > max)
			return -1;
	}
	return v;
}

/* "RTMIN", "RTMIN+n", "RTMAX", "RTMAX-n" (already without "SIG"). */
static int parse_rt_signal(const char *s)
{
	int span = SIGRTMAX - SIGRTMIN, n;

	if (strncasecmp(s, "RTMIN", 5) == 0) {
		if (s[5] == '\0')
			return SIGRTMIN;
		if (s[5] != '+' || (n = parse_small_uint(s + 6, span)) < 0)
			return -1;
		return SIGRTMIN + n;
	}
	if (strncasecmp(s, "RTMAX", 5) == 0) {
		if (s[5] == '\0')
			return SIGRTMAX;
		if (s[5] != '-' || (n = parse_small_uint(s + 6, span)) < 0)
			return -1;
		return SIGRTMAX - n;
	}
	return -1;
}

int parse_signal(const char *s, int *ret_sig)
{
	int sig;

	if (!s || !*s)
		return -EINVAL;
	if (is_digit(*s)) {
		sig = parse_small_uint(s, SIGRTMAX);
		if (sig < 1)
			return -EINVAL;
		*ret_sig = sig;
		return 0;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < ARRAY_SIZE(signal_names); i++)
		if (strcasecmp(s, signal_names[i].name) == 0) {
			*ret_sig = signal_names[i].sig;
			return 0;
		}
	sig = parse_rt_signal(s);
	if (sig < 0)
		return -EINVAL;
	*ret_sig = sig;
	return 0;
}

const char *signal_name(int sig, char *buf, unsigned buflen)
{
	int span = SIGRTMAX - SIGRTMIN;

	if (sig < 1 || sig > SIGRTMAX)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(signal_names); i++)
		if (signal_names[i].sig == sig)
			return signal_names[i].name;
	if (!buf || buflen == 0)
		return NULL;
	/* The lower half counts up from RTMIN, the upper half down from
	 * RTMAX, as bash and util-linux name them. */
	if (sig == SIGRTMIN)
		snprintf(buf, buflen, "RTMIN");
	else if (sig == SIGRTMAX)
		snprintf(buf, buflen, "RTMAX");
	else if (sig > SIGRTMIN && sig - SIGRTMIN <= span / 2)
		snprintf(buf, buflen, "RTMIN+%d", sig - SIGRTMIN);
	else if (sig > SIGRTMIN)
		snprintf(buf, buflen, "RTMAX-%d", SIGRTMAX - sig);
	else
		/* Below SIGRTMIN: the real-time signals the C library keeps for
		 * itself (32 and 33 with glibc).  They have no name. */
		snprintf(buf, buflen, "%d", sig);
	return buf;
}

/* Append "<n>[.<frac>]<unit>" where frac is the exact remainder below @unit,
 * without trailing zeros. */
static int format_unit(char *buf, size_t len, uint64_t ns, uint64_t unit, const char *suffix)
{
	char frac[24];
	uint64_t rest = ns % unit;
	size_t n = 0;

	/* unit is a power of ten: one digit per factor of ten below it. */
	if (rest) {
		frac[n++] = '.';
		for (uint64_t u = unit / 10; u > 0 && rest; u /= 10) {
			frac[n++] = (char)('0' + rest / u);
			rest %= u;
		}
	}
	frac[n] = '\0';
	return snprintf(buf, len, "%llu%s%s", (unsigned long long)(ns / unit), frac, suffix);
}

const char *format_duration(uint64_t ns, char *buf, unsigned buflen)
{
	static const struct {
		uint64_t ns;
		const char *suffix;
	} big[] = {{NSEC_PER_DAY, "d"}, {NSEC_PER_HOUR, "h"}, {NSEC_PER_MIN, "m"}};
	size_t off = 0;

	if (!buf || buflen == 0)
		return buf;
	buf[0] = '\0';
	if (ns < NSEC_PER_SEC) {
		if (ns == 0)
			snprintf(buf, buflen, "0s");
		else if (ns >= NSEC_PER_MSEC)
			format_unit(buf, buflen, ns, NSEC_PER_MSEC, "ms");
		else if (ns >= NSEC_PER_USEC)
			format_unit(buf, buflen, ns, NSEC_PER_USEC, "us");
		else
			snprintf(buf, buflen, "%lluns", (unsigned long long)ns);
		return buf;
	}
	/* "1d2h", "2m30s", "1h0m5s" would be odd: zero components are left out. */
	for (size_t i = 0; i < ARRAY_SIZE(big); i++) {
		int n;

		if (ns < big[i].ns)
			continue;
		n = snprintf(buf + off, buflen - off, "%llu%s",
			     (unsigned long long)(ns / big[i].ns), big[i].suffix);
		if (n < 0 || (size_t)n >= buflen - off)
			return buf;
		off += (size_t)n;
		ns %= big[i].ns;
	}
	if (ns)
		format_unit(buf + off, buflen - off, ns, NSEC_PER_SEC, "s");
	return buf;
}
