/* SPDX-License-Identifier: MIT */
#include "output.h"
#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static struct json_object *jint(int64_t v)
{
	return json_object_new_int64(v);
}

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static void add_signal(struct json_object *o, const char *key, int sig)
{
	char buf[32], name[40];
	const char *n = signal_name(sig, buf, sizeof(buf));
	snprintf(name, sizeof(name), "SIG%s", n ? n : "?");
	json_object_object_add(o, key, jstr(name));
}

/* ---- one process -------------------------------------------------------------- */

static const char *acct_name(enum ptmon_acct_source s)
{
	return s == PTMON_ACCT_TASKSTATS ? "taskstats" : s == PTMON_ACCT_RUSAGE ? "rusage" : NULL;
}

static void add_end(struct json_object *o, const struct ptmon_process_info *p)
{
	static const char *const how[] = {"running", "exited", "signaled", "unknown"};
	json_object_object_add(o, "end", jstr(how[p->end]));
	if (p->end == PTMON_END_EXITED)
		json_object_object_add(o, "exit_code", jint(p->exit_code));
	if (p->end == PTMON_END_SIGNALED) {
		add_signal(o, "signal", p->term_signal);
		json_object_object_add(o, "core_dumped", json_object_new_boolean(p->core_dumped));
	}
	json_object_object_add(o, "killed_by_ptmon", json_object_new_boolean(p->killed_by_ptmon));
	if (p->signal_sent)
		add_signal(o, "signal_sent", p->signal_sent);
}

static void add_accounting(struct json_object *o, const struct ptmon_process_info *p)
{
	if (p->acct == PTMON_ACCT_NONE) {
		json_object_object_add(o, "accounting", NULL);
		return;
	}
	struct json_object *a = json_object_new_object();
	json_object_object_add(a, "source", jstr(acct_name(p->acct)));
	json_object_object_add(a, "user_cpu_us", jint((int64_t)p->utime_us));
	json_object_object_add(a, "system_cpu_us", jint((int64_t)p->stime_us));
	json_object_object_add(a, "max_rss_kb", jint((int64_t)p->maxrss_kb));
	if (p->acct == PTMON_ACCT_TASKSTATS) {
		json_object_object_add(a, "read_bytes", jint((int64_t)p->read_bytes));
		json_object_object_add(a, "write_bytes", jint((int64_t)p->write_bytes));
	}
	json_object_object_add(o, "accounting", a);
}

static struct json_object *process_json(const struct ptmon_process_info *p)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "id", jint((int64_t)p->id));
	json_object_object_add(o, "parent_id", jint((int64_t)p->parent_id));
	json_object_object_add(o, "pid", jint(p->pid));
	json_object_object_add(o, "ppid", jint(p->ppid));
	if (p->root)
		json_object_object_add(o, "root", json_object_new_boolean(1));
	json_object_object_add(o, "comm", json_bytes(p->comm, strnlen(p->comm, sizeof(p->comm))));
	json_add_argv(o, p->argv, p->argv_len, p->argv_truncated);
	json_object_object_add(o, "start_mono_ns", jint((int64_t)p->start_mono_ns));
	json_object_object_add(o, "start_unix_ns", jint((int64_t)p->start_wall_ns));
	if (p->end != PTMON_END_RUNNING) {
		json_object_object_add(o, "end_mono_ns", jint((int64_t)p->end_mono_ns));
		json_object_object_add(o, "end_unix_ns", jint((int64_t)p->end_wall_ns));
		json_object_object_add(o, "duration_ns",
				       jint((int64_t)(p->end_mono_ns - p->start_mono_ns)));
	}
	json_object_object_add(o, "short_lived", json_object_new_boolean(p->short_lived));
	json_object_object_add(o, "threads", jint(p->threads));
	if (p->survived)
		json_object_object_add(o, "survived", jstr(p->survived));
	add_end(o, p);
	add_accounting(o, p);
	return o;
}

/* ---- the event stream ---------------------------------------------------------- */

struct evwriter {
	int fd;
	bool broken;
	char *buf;
	size_t len;
	uint64_t dropped;
	uint64_t dropped_told;
};

int evwriter_open(struct evwriter **ret, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0644);
	if (fd < 0 && errno == ENXIO) /* a FIFO without a reader yet: wait for one */
		fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	struct evwriter *w = calloc(1, sizeof(*w));
	if (w)
		w->buf = malloc(EVW_BUFFER);
	if (!w || !w->buf) {
		if (w)
			free(w);
		close(fd);
		return -ENOMEM;
	}
	w->fd = fd;
	*ret = w;
	return 0;
}

static void try_write(struct evwriter *w)
{
	size_t off = 0;
	while (off < w->len && !w->broken) {
		ssize_t n = write(w->fd, w->buf + off, w->len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		w->broken = true; /* EPIPE and the like: the reader is gone */
	}
	if (w->broken)
		off = w->len;
	memmove(w->buf, w->buf + off, w->len - off);
	w->len -= off;
}

static bool append(struct evwriter *w, const char *line, size_t n)
{
	if (w->broken)
		return true;
	if (w->len + n > EVW_BUFFER) {
		w->dropped++;
		return false;
	}
	memcpy(w->buf + w->len, line, n);
	w->len += n;
	return true;
}

static void put(struct evwriter *w, struct json_object *o)
{
	size_t n;
	const char *s = json_object_to_json_string_length(o, JSON_FLAGS, &n);
	char *line = malloc(n + 1);
	if (line) {
		memcpy(line, s, n);
		line[n] = '\n';
		append(w, line, n + 1);
		free(line);
	}
	json_object_put(o);
}

static struct json_object *event_base(const char *type, const struct ptmon_event *ev)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "type", jstr(type));
	json_object_object_add(o, "mono_ns", jint((int64_t)ev->mono_ns));
	json_object_object_add(o, "unix_ns", jint((int64_t)ev->wall_ns));
	json_object_object_add(o, "pid", jint(ev->pid));
	json_object_object_add(o, "ppid", jint(ev->ppid));
	return o;
}

static struct json_object *features_json(unsigned f)
{
	struct json_object *a = json_object_new_array();
	if (f & PTMON_FEATURE_CONNECTOR)
		json_object_array_add(a, jstr("connector"));
	if (f & PTMON_FEATURE_CONNECTOR_INPUT)
		json_object_array_add(a, jstr("proc_input"));
	if (f & PTMON_FEATURE_PIDFD_INFO)
		json_object_array_add(a, jstr("pidfd_get_info"));
	if (f & PTMON_FEATURE_TASKSTATS)
		json_object_array_add(a, jstr("taskstats"));
	if (f & PTMON_FEATURE_THREAD_FILTER)
		json_object_array_add(a, jstr("thread_filter"));
	return a;
}

static void add_start(struct json_object *o, const struct run_info *ri)
{
	json_object_object_add(o, "schema_version", jint(PTMON_SCHEMA_VERSION));
	if (ri->task_id)
		json_object_object_add(o, "task_id", jstr(ri->task_id));
	json_object_object_add(o, "cwd", ri->cwd ? json_bytes(ri->cwd, strlen(ri->cwd)) : NULL);
	json_object_object_add(o, "backend", jstr(ri->backend));
	json_object_object_add(o, "features", features_json(ri->features));
	if (ri->fallback_reason)
		json_object_object_add(o, "fallback_reason", jstr(ri->fallback_reason));
	if (ri->taskstats_unavailable)
		json_object_object_add(o, "taskstats_unavailable", jstr(ri->taskstats_unavailable));
}

static void add_process(struct json_object *o, const struct ptmon_event *ev, bool all)
{
	struct ptmon_process_info p;
	if (!ev->process || ptmon_process_get_info(ev->process, &p) < 0)
		return;
	json_object_object_add(o, "id", jint((int64_t)p.id));
	json_object_object_add(o, "comm", json_bytes(p.comm, strnlen(p.comm, sizeof(p.comm))));
	if (all) {
		json_add_argv(o, p.argv, p.argv_len, p.argv_truncated);
		return;
	}
	if (ev->type == PTMON_EVENT_FORK) {
		json_object_object_add(o, "parent_id", jint((int64_t)p.parent_id));
		json_object_object_add(o, "short_lived", json_object_new_boolean(p.short_lived));
	}
	if (ev->type == PTMON_EVENT_EXIT) {
		add_end(o, &p);
		add_accounting(o, &p);
		json_object_object_add(o, "duration_ns",
				       jint((int64_t)(p.end_mono_ns - p.start_mono_ns)));
	}
}

static void add_done(struct json_object *o, const struct ptmon_event *ev);

static const char *const type_names[] = {
	[PTMON_EVENT_START] = "start",	  [PTMON_EVENT_FORK] = "fork",
	[PTMON_EVENT_EXEC] = "exec",	  [PTMON_EVENT_COMM] = "comm",
	[PTMON_EVENT_EXIT] = "exit",	  [PTMON_EVENT_SIGNAL] = "signal",
	[PTMON_EVENT_LOST] = "lost",	  [PTMON_EVENT_RESYNC] = "resync",
	[PTMON_EVENT_EOF] = "eof",	  [PTMON_EVENT_DRAIN_TIMEOUT] = "drain_timeout",
	[PTMON_EVENT_DONE] = "done",
};

static void add_holders(struct json_object *o, const struct ptmon_event *ev)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < ev->nholders; i++) {
		const struct ptmon_holder *h = &ev->holders[i];
		struct json_object *x = json_object_new_object();
		json_object_object_add(x, "pid", jint(h->pid));
		json_object_object_add(x, "fd", jint(h->fd));
		json_object_object_add(x, "comm", json_bytes(h->comm, strnlen(h->comm, 16)));
		json_object_array_add(a, x);
	}
	json_object_object_add(o, "holders", a);
}

static void tell_dropped(struct evwriter *w)
{
	if (w->dropped == w->dropped_told || w->len + 256 > EVW_BUFFER)
		return;
	struct ptmon_event ev = {.type = PTMON_EVENT_LOST};
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ev.mono_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	clock_gettime(CLOCK_REALTIME, &ts);
	ev.wall_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	struct json_object *o = event_base("lost", &ev);
	json_object_object_add(o, "count", jint((int64_t)(w->dropped - w->dropped_told)));
	json_object_object_add(o, "reason", jstr("event stream reader too slow"));
	w->dropped_told = w->dropped;
	put(w, o);
}

struct json_object *event_json(const struct ptmon_event *ev, const struct run_info *ri)
{
	struct json_object *o = event_base(type_names[ev->type], ev);
	switch (ev->type) {
	case PTMON_EVENT_START:
		add_process(o, ev, true);
		add_start(o, ri);
		break;
	case PTMON_EVENT_EXEC:
		add_process(o, ev, true);
		break;
	case PTMON_EVENT_SIGNAL:
		add_signal(o, "signal", ev->signal);
		json_object_object_add(o, "result", jstr(ev->error ? strerror(ev->error) : "sent"));
		break;
	case PTMON_EVENT_LOST:
	case PTMON_EVENT_RESYNC:
		json_object_object_add(o, ev->type == PTMON_EVENT_LOST ? "count" : "found",
				       jint((int64_t)ev->count));
		json_object_object_add(o, "reason", jstr(ev->reason));
		break;
	case PTMON_EVENT_EOF:
		json_object_object_add(o, "stream", jstr(ev->stream));
		break;
	case PTMON_EVENT_DRAIN_TIMEOUT:
		json_object_object_add(o, "stream", jstr(ev->stream));
		add_holders(o, ev);
		break;
	case PTMON_EVENT_DONE:
		add_done(o, ev);
		break;
	default:
		add_process(o, ev, false);
		break;
	}
	return o;
}

char *event_line(const struct ptmon_event *ev, const struct run_info *ri, size_t *ret_len)
{
	struct json_object *o = event_json(ev, ri);
	size_t n;
	const char *s = json_object_to_json_string_length(o, JSON_FLAGS, &n);
	char *line = malloc(n + 1);
	if (line) {
		memcpy(line, s, n);
		line[n] = '\n';
		*ret_len = n + 1;
	}
	json_object_put(o);
	return line;
}

void evwriter_event(struct evwriter *w, const struct ptmon_event *ev, const struct run_info *ri)
{
	if (!w || w->broken)
		return;
	try_write(w);
	tell_dropped(w);
	put(w, event_json(ev, ri));
	try_write(w);
}

int evwriter_wait_fd(const struct evwriter *w)
{
	return w && w->len && !w->broken ? w->fd : -1;
}

void evwriter_flush(struct evwriter *w, int timeout_ms)
{
	if (!w)
		return;
	try_write(w);
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (w->len && !w->broken && timeout_ms > 0) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (spent >= timeout_ms)
			break;
		struct pollfd p = {.fd = w->fd, .events = POLLOUT};
		if (poll(&p, 1, (int)(timeout_ms - spent)) < 0 && errno != EINTR)
			break;
		try_write(w);
		tell_dropped(w);
	}
}

uint64_t evwriter_dropped(const struct evwriter *w)
{
	return w ? w->dropped : 0;
}

struct evwriter *evwriter_free(struct evwriter *w)
{
	if (!w)
		return NULL;
	close(w->fd);
	free(w->buf);
	free(w);
	return NULL;
}

/* ---- totals, shared by "done" and the report -------------------------------- */

static const char *cancel_name(enum ptmon_cancel_reason r)
{
	static const char *const n[] = {NULL, "timeout", "signal", "request", "leftovers"};
	return (unsigned)r < sizeof(n) / sizeof(n[0]) ? n[r] : NULL;
}

static void add_totals(struct json_object *o, const struct ptmon_task *t)
{
	struct ptmon_task_result r;
	if (ptmon_task_result(t, &r) < 0)
		return;
	json_object_object_add(o, "root_pid", jint(r.root_pid));
	json_object_object_add(o, "processes", jint((int64_t)r.processes));
	json_object_object_add(o, "max_alive", jint((int64_t)ptmon_task_max_alive(t)));
	json_object_object_add(o, "signalled", jint((int64_t)r.signalled));
	json_object_object_add(o, "killed", jint((int64_t)r.killed));
	json_object_object_add(o, "events_lost", jint((int64_t)r.events_lost));
	json_object_object_add(o, "resyncs", jint((int64_t)r.resyncs));
	json_object_object_add(o, "forged_messages_dropped", jint((int64_t)r.foreign_dropped));
	json_object_object_add(o, "pids_reused", jint((int64_t)r.pids_reused));
	json_object_object_add(o, "pidfd_failures", jint((int64_t)r.pidfd_failures));
	json_object_object_add(o, "cancel_reason", jstr(cancel_name(r.cancel_reason)));
	if (r.cancel_reason == PTMON_CANCEL_SIGNAL)
		add_signal(o, "cancel_signal", r.cancel_signal);
	json_object_object_add(o, "cancel_to_empty_ns",
			       r.cancel_reason ? jint((int64_t)r.cancel_to_empty_ns) : NULL);
	json_object_object_add(o, "cancel_to_eof_ns",
			       r.cancel_reason ? jint((int64_t)r.cancel_to_eof_ns) : NULL);
	json_object_object_add(o, "drain_timed_out", json_object_new_boolean(r.drain_timed_out));
	json_object_object_add(o, "survivors", jint((int64_t)r.survivors));
	json_object_object_add(o, "stdout_bytes", jint((int64_t)r.bytes_out));
	json_object_object_add(o, "stderr_bytes", jint((int64_t)r.bytes_err));
}

static void add_done(struct json_object *o, const struct ptmon_event *ev)
{
	add_totals(o, ev->task);
}

/* ---- the report ------------------------------------------------------------------- */

struct tree_ctx {
	struct json_object *roots;
	struct json_object **by_id; /* index: process id */
	size_t cap;
};

static int add_to_tree(const struct ptmon_process *proc, void *ud)
{
	struct tree_ctx *c = ud;
	struct ptmon_process_info p;
	if (ptmon_process_get_info(proc, &p) < 0)
		return 0;
	if (p.id >= c->cap) {
		size_t cap = c->cap ? c->cap : 64;
		while (cap <= p.id)
			cap *= 2;
		struct json_object **n = realloc(c->by_id, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		memset(n + c->cap, 0, (cap - c->cap) * sizeof(*n));
		c->by_id = n;
		c->cap = cap;
	}
	struct json_object *o = process_json(&p);
	json_object_object_add(o, "children", json_object_new_array());
	c->by_id[p.id] = o;
	struct json_object *parent = p.parent_id < c->cap ? c->by_id[p.parent_id] : NULL;
	struct json_object *kids = NULL;
	if (parent && json_object_object_get_ex(parent, "children", &kids))
		json_object_array_add(kids, o);
	else
		json_object_array_add(c->roots, o);
	return 0;
}

int report_write(int fd, const struct ptmon_task *t, const struct run_info *ri)
{
	struct json_object *doc = json_object_new_object();
	json_object_object_add(doc, "schema_version", jint(PTMON_SCHEMA_VERSION));
	struct json_object *task = json_object_new_object();
	/* As in the start event: cut at PTMON_ARGV_MAX, base64 beside
	 * arguments that are not UTF-8. */
	char buf[PTMON_ARGV_MAX];
	size_t len = 0;
	bool cut = false;
	for (size_t i = 0; ri->argv[i] && !cut; i++) {
		size_t l = strlen(ri->argv[i]) + 1;
		if (len + l > sizeof(buf)) {
			l = sizeof(buf) - len;
			cut = true;
		}
		memcpy(buf + len, ri->argv[i], l);
		len += l;
		buf[len - 1] = '\0';
	}
	json_add_argv(task, buf, len, cut);
	add_start(task, ri);
	json_object_object_add(doc, "task", task);
	struct json_object *totals = json_object_new_object();
	add_totals(totals, t);
	json_object_object_add(totals, "exit_status", jint(ri->exit_status));
	json_object_object_add(doc, "totals", totals);
	struct tree_ctx c = {.roots = json_object_new_array()};
	int r = ptmon_task_foreach_process(t, add_to_tree, &c);
	free(c.by_id);
	json_object_object_add(doc, "tree", c.roots);
	size_t n;
	const char *s = json_object_to_json_string_length(doc, JSON_FLAGS | JSON_C_TO_STRING_PRETTY
								     | JSON_C_TO_STRING_SPACED,
							  &n);
	for (size_t off = 0; r == 0 && off < n;) {
		ssize_t w = write(fd, s + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			r = -errno;
		else
			off += (size_t)w;
	}
	if (r == 0 && write(fd, "\n", 1) < 0)
		r = -errno;
	json_object_put(doc);
	return r;
}
