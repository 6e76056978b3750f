/* SPDX-License-Identifier: MIT */
/* The summary: the task's tree as pstree draws it, one process a line,
 * with aligned columns for pid, duration and how it ended. */
#include "output.h"
#include "parse.h"

#include <langinfo.h>
#include <locale.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CMD_WIDTH 48

/* The process column's width: 64, or less on a narrower terminal (COLUMNS,
 * else stderr's window size), leaving 46 columns for pid, time and how it
 * ended; never below 24.  A file or pipe gets the full width. */
static int left_width(void)
{
	static int width;
	if (width)
		return width;
	const char *env = getenv("COLUMNS");
	char *end;
	long cols = env ? strtol(env, &end, 10) : 0;
	struct winsize ws;
	if (!env || *end || cols <= 0)
		cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0;
	width = cols <= 0 || cols - 46 > 64 ? 64 : cols - 46 < 24 ? 24 : (int)(cols - 46);
	return width;
}

struct proc {
	struct ptmon_process_info info;
	const struct summary_live *live; /* `ptmon tree`: live columns */
	size_t first_child;
	size_t next_sibling;
};

struct table {
	struct proc *v;
	size_t n, cap;
};

static int collect(const struct ptmon_process *p, void *ud)
{
	struct table *t = ud;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct proc *v = realloc(t->v, cap * sizeof(*v));
		if (!v)
			return -1;
		t->v = v;
		t->cap = cap;
	}
	struct proc *x = &t->v[t->n++];
	x->info = (struct ptmon_process_info){.size = sizeof(x->info)};
	ptmon_process_get_info(p, &x->info);
	x->live = NULL;
	x->first_child = x->next_sibling = SIZE_MAX;
	return 0;
}

/* Link children to parents; processes come in creation order, so ids are
 * increasing and a parent is found by binary search. */
static size_t find(const struct table *t, uint64_t id)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->v[mid].info.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->n && t->v[lo].info.id == id ? lo : SIZE_MAX;
}

static void link_children(struct table *t)
{
	/* Backwards, so that each sibling list ends up in creation order. */
	for (size_t i = t->n; i-- > 0;) {
		size_t p = t->v[i].info.parent_id ? find(t, t->v[i].info.parent_id) : SIZE_MAX;
		if (p == SIZE_MAX)
			continue;
		t->v[i].next_sibling = t->v[p].first_child;
		t->v[p].first_child = i;
	}
}

/* The command line as people read it: arguments joined by spaces, every
 * byte from the task escaped (a comm or argv may hold terminal escapes). */
static void command_of(const struct ptmon_process_info *p, char *out, size_t size)
{
	char raw[CMD_WIDTH + 64];
	size_t n = 0;
	if (!p->argv) {
		size_t c = strnlen(p->comm, sizeof(p->comm));
		raw[n++] = '[';
		memcpy(raw + n, p->comm, c);
		n += c;
		raw[n++] = ']';
	} else {
		/* Escaping only grows text: what fits raw is all that shows. */
		size_t len =
			p->argv_len && !p->argv[p->argv_len - 1] ? p->argv_len - 1 : p->argv_len;
		n = len < sizeof(raw) ? len : sizeof(raw);
		for (size_t i = 0; i < n; i++)
			raw[i] = p->argv[i] ? p->argv[i] : ' ';
	}
	text_escape(raw, n, out, size);
}

/* Three significant digits are plenty at a glance: "1.00s", "2.23ms". */
static void short_duration(uint64_t ns, char *out, size_t size)
{
	static const struct {
		uint64_t div;
		const char *unit;
	} u[] = {{3600000000000ull, "h"}, {60000000000ull, "m"}, {1000000000ull, "s"},
		 {1000000ull, "ms"},      {1000ull, "us"},       {1, "ns"}};
	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		if (ns < u[i].div && u[i].div > 1)
			continue;
		double v = (double)ns / (double)u[i].div;
		snprintf(out, size,
			 v < 10    ? "%.2f%s"
			 : v < 100 ? "%.1f%s"
				   : "%.0f%s",
			 v, u[i].unit);
		return;
	}
}

/* Cut @s to @width characters (UTF-8, escaped: one column each, as the
 * padding counts them), never inside a character. */
static void shorten(char *s, size_t width)
{
	size_t chars = 0, cut = 0;
	for (size_t i = 0; s[i]; i++) {
		if (((unsigned char)s[i] & 0xC0) == 0x80)
			continue;
		if (chars == width - 3)
			cut = i;
		if (++chars > width) {
			memcpy(s + cut, "...", 4);
			return;
		}
	}
}

static void outcome(const struct ptmon_process_info *p, char *out, size_t size, int *colour)
{
	char b[32];
	const char *sig;
	switch (p->end) {
	case PTMON_END_RUNNING:
		snprintf(out, size, "running");
		*colour = 0;
		return;
	case PTMON_END_EXITED:
		snprintf(out, size, "exit %d", p->exit_code);
		*colour = p->exit_code ? 33 : 32;
		return;
	case PTMON_END_SIGNALED:
		sig = signal_name(p->term_signal, b, sizeof(b));
		if (p->killed_by_ptmon)
			snprintf(out, size, "killed by ptmon (%s)", sig ? sig : "?");
		else
			snprintf(out, size, "signal %s%s", sig ? sig : "?",
				 p->core_dumped ? " (core)" : "");
		*colour = p->killed_by_ptmon ? 31 : 35;
		return;
	default:
		snprintf(out, size, "%s", p->short_lived ? "gone (short-lived)" : "ended");
		*colour = 0;
	}
}

struct printer {
	FILE *f;
	bool colour;
	const struct table *t;
	char prefix[512];
};

static void print_live(FILE *f, const char *left, size_t cols, pid_t pid,
		       const struct summary_live *l)
{
	char age[32], rss[32];
	short_duration(l->age_ns, age, sizeof(age));
	snprintf(rss, sizeof(rss), "%.1fM", (double)l->rss_bytes / (1024.0 * 1024.0));
	int lw = left_width();
	fprintf(f, "%s%*s %8d %5c %10s %9.2fs %9s\n", left,
		(int)(cols < (size_t)lw ? lw - cols : 0), "", (int)pid, l->state, age, l->cpu_s,
		rss);
}

static void print_one(struct printer *pr, size_t i, const char *branch)
{
	const struct ptmon_process_info *p = &pr->t->v[i].info;
	char cmd[CMD_WIDTH + 64], left[CMD_WIDTH + 600], dur[32], out[64];
	command_of(p, cmd, sizeof(cmd));
	int lw = left_width();
	shorten(cmd, lw - 16 < CMD_WIDTH ? (size_t)(lw - 16) : CMD_WIDTH);
	snprintf(left, sizeof(left), "%s%s%s", pr->prefix, branch, cmd);
	if (p->end == PTMON_END_RUNNING)
		snprintf(dur, sizeof(dur), "-");
	else
		short_duration(p->end_mono_ns - p->start_mono_ns, dur, sizeof(dur));
	int colour = 0;
	outcome(p, out, sizeof(out), &colour);
	/* Pad by characters: tree glyphs are three bytes, one column. */
	size_t cols = 0;
	for (const char *c = left; *c; c++)
		cols += ((unsigned char)*c & 0xC0) != 0x80;
	if (pr->t->v[i].live) {
		print_live(pr->f, left, cols, p->pid, pr->t->v[i].live);
		return;
	}
	fprintf(pr->f, "%s%*s %8d %10s  ", left, (int)(cols < (size_t)lw ? lw - cols : 0), "",
		(int)p->pid, dur);
	if (pr->colour && colour)
		fprintf(pr->f, "\033[%dm%s\033[0m\n", colour, out);
	else
		fprintf(pr->f, "%s\n", out);
}

/* Box drawing in a UTF-8 locale, ASCII otherwise, where a terminal would
 * show the bytes as garbage.  The user's locale (LC_ALL, LC_CTYPE, LANG) is
 * read without making it ptmon's own: nothing else here changes with it. */
static bool utf8_locale(void)
{
	static int utf8 = -1;
	if (utf8 < 0) {
		locale_t l = newlocale(LC_CTYPE_MASK, "", (locale_t)0);
		utf8 = l && strcmp(nl_langinfo_l(CODESET, l), "UTF-8") == 0;
		if (l)
			freelocale(l);
	}
	return utf8;
}

static void print_tree(struct printer *pr, size_t i, const char *branch, const char *indent)
{
	bool u = utf8_locale();
	print_one(pr, i, branch);
	size_t len = strlen(pr->prefix);
	if (len + strlen(indent) + 1 >= sizeof(pr->prefix)) /* absurdly deep: flatten */
		indent = "";
	strcat(pr->prefix, indent);
	for (size_t c = pr->t->v[i].first_child; c != SIZE_MAX; c = pr->t->v[c].next_sibling) {
		bool last = pr->t->v[c].next_sibling == SIZE_MAX;
		print_tree(pr, c, last ? (u ? "└─ " : "`- ") : (u ? "├─ " : "|- "),
			   last ? "   " : (u ? "│  " : "|  "));
	}
	pr->prefix[len] = '\0';
}

void summary_print(FILE *f, const struct ptmon_task *task, bool colour)
{
	struct table t = {0};
	if (ptmon_task_foreach_process(task, collect, &t) < 0) {
		free(t.v);
		return;
	}
	link_children(&t);
	struct printer pr = {.f = f, .colour = colour, .t = &t};
	fprintf(f, "%-*s %8s %10s  %s\n", left_width(), "PROCESS", "PID", "TIME", "END");
	for (size_t i = 0; i < t.n; i++)
		if (!t.v[i].info.parent_id || find(&t, t.v[i].info.parent_id) == SIZE_MAX)
			print_tree(&pr, i, "", "");
	free(t.v);
}

static int by_id(const void *a, const void *b)
{
	uint64_t x = ((const struct proc *)a)->info.id, y = ((const struct proc *)b)->info.id;
	return x < y ? -1 : x > y;
}

void summary_print_live(FILE *f, const struct ptmon_process_info *v,
			const struct summary_live *live, size_t n, bool colour)
{
	struct table t = {.v = calloc(n ? n : 1, sizeof(struct proc)), .n = n, .cap = n};
	if (!t.v)
		return;
	for (size_t i = 0; i < n; i++)
		t.v[i] = (struct proc){.info = v[i],
				       .live = &live[i],
				       .first_child = SIZE_MAX,
				       .next_sibling = SIZE_MAX};
	qsort(t.v, n, sizeof(*t.v), by_id);
	link_children(&t);
	struct printer pr = {.f = f, .colour = colour, .t = &t};
	fprintf(f, "%-*s %8s %5s %10s %10s %9s\n", left_width(), "PROCESS", "PID", "STATE", "AGE",
		"CPU", "RSS");
	for (size_t i = 0; i < t.n; i++)
		if (!t.v[i].info.parent_id || find(&t, t.v[i].info.parent_id) == SIZE_MAX)
			print_tree(&pr, i, "", "");
	free(t.v);
}
