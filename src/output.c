/* SPDX-License-Identifier: MIT */
#include "output.h"
#include "fdclose.h"
#include "parse.h"
#include "nbwrite.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
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

/* In an event, argv is cut at EVENT_ARGV_MAX bytes: even escaped (6 bytes
 * for a control byte) and with base64 beside it, the event stays within
 * what the stream buffers (EVW_BUFFER), so it is written, not dropped.
 * The report keeps it whole. */
#define EVENT_ARGV_MAX (128u * 1024u)

static void add_argv(struct json_object *o, const struct ptmon_process_info *p, size_t max)
{
	static const char *const src[] = {"own", "inherited", "unknown"};
	char *cut = NULL;
	if (p->argv && p->argv_len > max)
		cut = malloc(max);
	if (cut) {
		memcpy(cut, p->argv, max);
		cut[max - 1] = '\0'; /* keep the last argument terminated */
		json_add_argv(o, cut, max, true);
		free(cut);
	} else {
		json_add_argv(o, p->argv, p->argv_len, p->argv_truncated);
	}
	if ((unsigned)p->argv_source < sizeof(src) / sizeof(src[0]))
		json_object_object_add(o, "argv_source", jstr(src[p->argv_source]));
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
	add_argv(o, p, SIZE_MAX);
	json_object_object_add(o, "start_mono_ns", jint((int64_t)p->start_mono_ns));
	json_object_object_add(o, "start_unix_ns", jint((int64_t)p->start_wall_ns));
	json_add_time(o, "start_time", p->start_wall_ns);
	if (p->end != PTMON_END_RUNNING) {
		json_object_object_add(o, "end_mono_ns", jint((int64_t)p->end_mono_ns));
		json_object_object_add(o, "end_unix_ns", jint((int64_t)p->end_wall_ns));
		json_add_time(o, "end_time", p->end_wall_ns);
		json_object_object_add(o, "duration_ns",
				       jint((int64_t)(p->end_mono_ns - p->start_mono_ns)));
	}
	json_object_object_add(o, "short_lived", json_object_new_boolean(p->short_lived));
	json_object_object_add(o, "threads", jint(p->threads));
	if (p->survived)
		json_object_object_add(o, "survived", jstr(p->survived));
	if (p->reparented)
		json_object_object_add(o, "reparented", json_object_new_boolean(1));
	add_end(o, p);
	add_accounting(o, p);
	return o;
}

/* ---- the event stream ---------------------------------------------------------- */

/* At most PIPE_BUF bytes, ending at a newline where one is: a pipe takes
 * such a write whole or not at all, so that the task's stderr, forwarded
 * on another description of the same pipe, never lands inside our line. */
static size_t line_chunk(const char *p, size_t n)
{
	if (n <= PIPE_BUF)
		return n;
	const char *nl = memrchr(p, '\n', PIPE_BUF);
	return nl ? (size_t)(nl - p) + 1 : PIPE_BUF;
}

static uint64_t count_lines(const char *p, size_t n)
{
	uint64_t lines = 0;
	for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
		lines++;
	return lines;
}

struct evwriter {
	int fd;
	bool broken;
	bool regular; /* a regular file: a half line can be cut off again */
	bool chunks;  /* a FIFO: write whole lines of at most PIPE_BUF */
	int error;    /* the errno that ended the stream, 0: none */
	char *buf;
	size_t len;
	size_t partial; /* bytes of the line at buf[0] already written */
	uint64_t dropped;
	uint64_t dropped_told;
	uint64_t unwritten;        /* events that never went out once the stream ended */
	bool half_line;            /* the destination ends inside a line */
	const struct run_info *ri; /* of the last event, for "lost" lines */
};

int evwriter_open(struct evwriter **ret, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0644);
	if (fd < 0 && errno == ENXIO) /* a FIFO without a reader yet: wait for one */
		fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	int r = -ENOMEM;
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	struct evwriter *w = calloc(1, sizeof(*w));
	if (!w)
		goto out;
	w->fd = fd; /* evwriter_free() closes it from here */
	fd = -1;
	w->buf = malloc(EVW_BUFFER);
	if (!w->buf)
		goto out;
	struct stat st;
	if (fstat(w->fd, &st) == 0) {
		w->regular = S_ISREG(st.st_mode);
		w->chunks = S_ISFIFO(st.st_mode);
	}
	*ret = w;
	w = NULL;
	r = 0;
out:
	evwriter_free(w);
	util_close(fd);
	return r;
}

/* The stream ends on a write error: what waits is lost, and a line the
 * destination got only part of is cut off again where it can be (a regular
 * file that only we write), else said. */
static void end_stream(struct evwriter *w, int err, size_t off)
{
	w->broken = true;
	w->error = err;
	w->unwritten += count_lines(w->buf + off, w->len - off);
	if (w->partial && w->regular) {
		off_t pos = lseek(w->fd, 0, SEEK_CUR);
		struct stat st;
		if (pos >= (off_t)w->partial && fstat(w->fd, &st) == 0 && st.st_size == pos &&
		    ftruncate(w->fd, pos - (off_t)w->partial) == 0)
			w->partial = 0;
	}
	w->half_line = w->partial > 0;
}

/* What was written of buf[off, off + n): where the last line ends. */
static void wrote(struct evwriter *w, size_t off, size_t n)
{
	const char *nl = memrchr(w->buf + off, '\n', n);
	w->partial = nl ? (size_t)(w->buf + off + n - nl - 1) : w->partial + n;
}

static void try_write(struct evwriter *w)
{
	size_t off = 0;
	while (off < w->len && !w->broken) {
		size_t len = w->len - off;
		if (w->chunks)
			len = line_chunk(w->buf + off, len);
		ssize_t n = write(w->fd, w->buf + off, len);
		if (n > 0) {
			wrote(w, off, (size_t)n);
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* EPIPE: the reader is gone; ENOSPC, EIO...: the file is. */
		end_stream(w, n < 0 ? errno : EIO, off);
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

static struct json_object *event_base(const char *type, const struct ptmon_event *ev,
				      const struct run_info *ri)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "type", jstr(type));
	/* On every line, so that lines of many tasks can be mixed and told
	 * apart (a log shipper, `ptmon serve`). */
	if (ri && ri->task_id)
		json_object_object_add(o, "task_id", jstr(ri->task_id));
	json_object_object_add(o, "mono_ns", jint((int64_t)ev->mono_ns));
	json_object_object_add(o, "unix_ns", jint((int64_t)ev->wall_ns));
	/* Integers near 1.8e18 lose digits in float-only JSON readers. */
	json_add_time(o, "time", ev->wall_ns);
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
	if (f & PTMON_FEATURE_TREE_FILTER)
		json_object_array_add(a, jstr("tree_filter"));
	return a;
}

/* The connector socket's filter: "ebpf" (the tree's events only),
 * "classic" (every process's, threads dropped), NULL without one. */
static struct json_object *filter_json(unsigned f)
{
	if (f & PTMON_FEATURE_TREE_FILTER)
		return jstr("ebpf");
	if (f & PTMON_FEATURE_CONNECTOR)
		return jstr("classic");
	return NULL;
}

static void add_start(struct json_object *o, const struct run_info *ri)
{
	json_object_object_add(o, "schema_version", jint(PTMON_SCHEMA_VERSION));
	if (ri->task_id)
		json_object_object_add(o, "task_id", jstr(ri->task_id));
	if (ri->name)
		json_object_object_add(o, "name", json_bytes(ri->name, strlen(ri->name)));
	json_object_object_add(o, "cwd", ri->cwd ? json_bytes(ri->cwd, strlen(ri->cwd)) : NULL);
	json_object_object_add(o, "backend", jstr(ri->backend));
	json_object_object_add(o, "features", features_json(ri->features));
	json_object_object_add(o, "filter", filter_json(ri->features));
	if (ri->fallback_reason)
		json_object_object_add(o, "fallback_reason", jstr(ri->fallback_reason));
	if (ri->taskstats_unavailable)
		json_object_object_add(o, "taskstats_unavailable", jstr(ri->taskstats_unavailable));
	if (ri->watch_pid || ri->watch_cgroup) {
		struct json_object *w = json_object_new_object();
		if (ri->watch_cgroup)
			json_object_object_add(w, "cgroup", jstr(ri->watch_cgroup));
		else
			json_object_object_add(w, "pid", jint(ri->watch_pid));
		json_object_object_add(
			w, "limits",
			jstr(ri->watch_cgroup
				     ? "a process moved into the cgroup joins at the next resync"
				     : "processes that left the tree before the watch began "
				       "cannot be found by lineage"));
		json_object_object_add(o, "watch", w);
	}
}

static void add_process(struct json_object *o, const struct ptmon_event *ev, bool all)
{
	struct ptmon_process_info p = {.size = sizeof(p)};
	if (!ev->process || ptmon_process_get_info(ev->process, &p) < 0)
		return;
	json_object_object_add(o, "id", jint((int64_t)p.id));
	json_object_object_add(o, "comm", json_bytes(p.comm, strnlen(p.comm, sizeof(p.comm))));
	if (all) {
		add_argv(o, &p, EVENT_ARGV_MAX);
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
	[PTMON_EVENT_START] = "start", [PTMON_EVENT_FORK] = "fork",
	[PTMON_EVENT_EXEC] = "exec",   [PTMON_EVENT_COMM] = "comm",
	[PTMON_EVENT_EXIT] = "exit",   [PTMON_EVENT_SIGNAL] = "signal",
	[PTMON_EVENT_LOST] = "lost",   [PTMON_EVENT_RESYNC] = "resync",
	[PTMON_EVENT_EOF] = "eof",     [PTMON_EVENT_DRAIN_TIMEOUT] = "drain_timeout",
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
	struct json_object *o = event_base("lost", &ev, w->ri);
	json_object_object_add(o, "count", jint((int64_t)(w->dropped - w->dropped_told)));
	json_object_object_add(o, "reason", jstr("event stream reader too slow"));
	w->dropped_told = w->dropped;
	put(w, o);
}

struct json_object *event_json(const struct ptmon_event *ev, const struct run_info *ri)
{
	struct json_object *o = event_base(type_names[ev->type], ev, ri);
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
	if (w && w->broken)
		w->unwritten++;
	if (!w || w->broken)
		return;
	w->ri = ri;
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
		long spent = (now.tv_sec - start.tv_sec) * 1000 +
			     (now.tv_nsec - start.tv_nsec) / 1000000;
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

void evwriter_status(const struct evwriter *w, struct evwriter_status *ret)
{
	*ret = (struct evwriter_status){0};
	if (!w)
		return;
	ret->error = w->error;
	ret->dropped = w->dropped;
	ret->unwritten = w->unwritten + count_lines(w->buf, w->len);
	ret->half_line = w->half_line || (!w->broken && w->partial > 0);
}

struct evwriter *evwriter_free(struct evwriter *w)
{
	if (!w)
		return NULL;
	w->fd = util_close(w->fd);
	free(w->buf);
	free(w);
	return NULL;
}

/* ---- totals, shared by "done" and the report -------------------------------- */

static const char *cancel_name(enum ptmon_cancel_reason r)
{
	static const char *const n[] = {NULL,      "timeout",   "signal",
					"request", "leftovers", "front_died"};
	return (unsigned)r < sizeof(n) / sizeof(n[0]) ? n[r] : NULL;
}

/* The task's own cgroup: what it proved, and its CPU totals. */
static void add_cgroup(struct json_object *o, const struct ptmon_task *t,
		       const struct ptmon_task_result *r)
{
	if (!r->cgroup) {
		json_object_object_add(o, "cgroup", NULL);
		return;
	}
	struct json_object *c = json_object_new_object();
	json_object_object_add(c, "path", jstr(ptmon_task_cgroup_path(t)));
	json_object_object_add(c, "killed", json_object_new_boolean(r->cgroup_killed));
	json_object_object_add(c, "empty_proof", json_object_new_boolean(r->cgroup_empty_proof));
	json_object_object_add(c, "escaped_killed", json_object_new_boolean(r->cgroup_escaped));
	json_object_object_add(c, "removed", json_object_new_boolean(r->cgroup_removed));
	if (r->cgroup_have_cpu) {
		json_object_object_add(c, "cpu_usage_us", jint((int64_t)r->cgroup_cpu_usec));
		json_object_object_add(c, "cpu_user_us", jint((int64_t)r->cgroup_user_usec));
		json_object_object_add(c, "cpu_system_us", jint((int64_t)r->cgroup_system_usec));
	}
	if (r->cgroup_have_memory_peak)
		json_object_object_add(c, "memory_peak_bytes",
				       jint((int64_t)r->cgroup_memory_peak));
	if (r->cgroup_have_pids_peak)
		json_object_object_add(c, "pids_peak", jint((int64_t)r->cgroup_pids_peak));
	if (r->cgroup_have_io) {
		json_object_object_add(c, "io_read_bytes", jint((int64_t)r->cgroup_io_rbytes));
		json_object_object_add(c, "io_write_bytes", jint((int64_t)r->cgroup_io_wbytes));
	}
	if (r->cgroup_have_oom)
		json_object_object_add(c, "oom_kills", jint((int64_t)r->cgroup_oom_kills));
	json_object_object_add(o, "cgroup", c);
}

static void add_totals(struct json_object *o, const struct ptmon_task *t)
{
	struct ptmon_task_result r = {.size = sizeof(r)};
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
	json_object_object_add(o, "events_received", jint((int64_t)r.events_received));
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
	json_object_object_add(o, "stdout_dropped_bytes", jint((int64_t)r.dropped_out));
	json_object_object_add(o, "stderr_dropped_bytes", jint((int64_t)r.dropped_err));
	json_object_object_add(o, "stdout_error", r.error_out ? jstr(strerror(r.error_out)) : NULL);
	json_object_object_add(o, "stderr_error", r.error_err ? jstr(strerror(r.error_err)) : NULL);
	add_cgroup(o, t, &r);
}

/* What ended, summed over the tree: exact per-task figures that `ptmon
 * serve` takes from the done event, whenever it began to follow. */
struct ended {
	uint64_t exits[4]; /* exited, signaled, killed_by_ptmon, unknown */
	uint64_t cpu_us, max_rss_kb;
};

static int add_ended(const struct ptmon_process *proc, void *ud)
{
	struct ended *e = ud;
	struct ptmon_process_info p = {.size = sizeof(p)};
	if (ptmon_process_get_info(proc, &p) < 0 || p.end == PTMON_END_RUNNING)
		return 0;
	/* As the control socket's metrics count them. */
	int k = p.end == PTMON_END_EXITED     ? 0
		: p.end == PTMON_END_SIGNALED ? (p.killed_by_ptmon ? 2 : 1)
					      : 3;
	e->exits[k]++;
	e->cpu_us += p.utime_us + p.stime_us;
	e->max_rss_kb += p.maxrss_kb;
	return 0;
}

static void add_ended_totals(struct json_object *o, const struct ptmon_task *t)
{
	struct ended e = {0};
	ptmon_task_foreach_process(t, add_ended, &e);
	struct json_object *x = json_object_new_object();
	static const char *const outcome[] = {"exited", "signaled", "killed_by_ptmon", "unknown"};
	for (int i = 0; i < 4; i++)
		json_object_object_add(x, outcome[i], jint((int64_t)e.exits[i]));
	json_object_object_add(o, "exits", x);
	json_object_object_add(o, "ended_cpu_us", jint((int64_t)e.cpu_us));
	json_object_object_add(o, "ended_max_rss_kb_sum", jint((int64_t)e.max_rss_kb));
}

static void add_done(struct json_object *o, const struct ptmon_event *ev)
{
	add_totals(o, ev->task);
	add_ended_totals(o, ev->task);
}

/* Write all of @buf to @fd (non-blocking), waiting for a slow reader as
 * long as it takes something every @stall_ms.  0, -ETIMEDOUT when it took
 * nothing for that long, or the write's -errno.  *ret_written (if given)
 * grows by what went. */
static int write_bounded(int fd, const char *buf, size_t n, int stall_ms, size_t *ret_written)
{
	size_t off = 0;
	int r = 0;
	while (off < n) {
		ssize_t w = write(fd, buf + off, n - off);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			r = w < 0 ? -errno : -EIO;
			break;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int k = poll(&p, 1, stall_ms);
		if (k < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (k == 0) {
			r = -ETIMEDOUT;
			break;
		}
	}
	if (ret_written)
		*ret_written += off;
	return r;
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
	struct ptmon_process_info p = {.size = sizeof(p)};
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

int report_write(int fd, const struct ptmon_task *t, const struct run_info *ri, int stall_ms,
		 size_t *ret_written, size_t *ret_total)
{
	*ret_written = *ret_total = 0;
	struct json_object *doc = json_object_new_object();
	json_object_object_add(doc, "schema_version", jint(PTMON_SCHEMA_VERSION));
	struct json_object *task = json_object_new_object();
	/* As in the start event: cut at PTMON_ARGV_MAX, base64 beside
	 * arguments that are not UTF-8. */
	size_t len = 0;
	for (size_t i = 0; ri->argv[i] && len <= PTMON_ARGV_MAX; i++)
		len += strlen(ri->argv[i]) + 1;
	bool cut = len > PTMON_ARGV_MAX;
	if (cut)
		len = PTMON_ARGV_MAX;
	char *buf = malloc(len ? len : 1);
	size_t at = 0;
	for (size_t i = 0; buf && ri->argv[i] && at < len; i++) {
		size_t l = strlen(ri->argv[i]) + 1;
		if (l > len - at)
			l = len - at;
		memcpy(buf + at, ri->argv[i], l);
		at += l;
		buf[at - 1] = '\0';
	}
	json_add_argv(task, buf, buf ? len : 0, cut);
	free(buf);
	add_start(task, ri);
	json_object_object_add(doc, "task", task);
	struct json_object *totals = json_object_new_object();
	add_totals(totals, t);
	add_ended_totals(totals, t);
	json_object_object_add(totals, "exit_status", jint(ri->exit_status));
	json_object_object_add(doc, "totals", totals);
	struct tree_ctx c = {.roots = json_object_new_array()};
	int r = ptmon_task_foreach_process(t, add_to_tree, &c);
	free(c.by_id);
	json_object_object_add(doc, "tree", c.roots);
	size_t n;
	const char *s = json_object_to_json_string_length(
		doc, JSON_FLAGS | JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED, &n);
	*ret_total = n + 1;
	if (r != 0)
		goto out;
	r = write_bounded(fd, s, n, stall_ms, ret_written);
	if (r != 0)
		goto out;
	r = write_bounded(fd, "\n", 1, stall_ms, NULL);
out:
	json_object_put(doc); /* s is its text: only now */
	return r;
}

/* ---- ptmon's own messages ------------------------------------------------------ */

/* Up to NOTES_BUFFER bytes of whole lines wait for a stderr that does not
 * take them now; lines that do not fit are dropped and counted. */
#define NOTES_BUFFER (64u * 1024u)

static struct {
	struct nbw dest;
	bool opened;
	bool broken;
	int error;
	size_t len;
	uint64_t dropped;
	char buf[NOTES_BUFFER];
} notes = {.dest = {.fd = -1}};

void notes_open(int fd)
{
	if (notes.opened)
		return;
	notes.opened = true;
	int r = nbw_open(&notes.dest, fd);
	if (r < 0) {
		notes.broken = true;
		notes.error = -r;
	}
}

/* A write to a reader that left raises SIGPIPE, which would end ptmon
 * before the monitor blocks it (and after): answer it by EPIPE only. */
static ssize_t notes_write_once(const char *p, size_t n)
{
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_set, &old);
	ssize_t w = nbw_write(&notes.dest, p, n);
	int err = errno;
	if (w < 0 && err == EPIPE) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
			;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	errno = err;
	return w;
}

/* Write what waits without waiting.  True when nothing waits any more. */
static bool notes_push(void)
{
	size_t off = 0;
	while (off < notes.len && !notes.broken) {
		ssize_t w = notes_write_once(notes.buf + off,
					     line_chunk(notes.buf + off, notes.len - off));
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		notes.broken = true;
		notes.error = w < 0 ? errno : EIO;
	}
	if (notes.broken) {
		for (size_t i = off; i < notes.len; i++)
			notes.dropped += notes.buf[i] == '\n';
		off = notes.len;
	}
	memmove(notes.buf, notes.buf + off, notes.len - off);
	notes.len -= off;
	return notes.len == 0;
}

void notes_line(const char *line, size_t n)
{
	if (!notes.opened)
		notes_open(STDERR_FILENO);
	notes_push();
	if (notes.broken || notes.len + n > NOTES_BUFFER) {
		notes.dropped++;
		return;
	}
	memcpy(notes.buf + notes.len, line, n);
	notes.len += n;
	notes_push();
}

void notes_vsay(const char *prefix, const char *fmt, va_list ap)
{
	char line[1024], safe[1024], out[sizeof(safe) + 64];
	if (vsnprintf(line, sizeof(line), fmt, ap) < 0)
		return;
	/* Messages name the task's processes and paths: their bytes must not
	 * act on the terminal. */
	text_escape(line, strlen(line), safe, sizeof(safe));
	int n = snprintf(out, sizeof(out), "%s: %s\n", prefix, safe);
	if (n > 0)
		notes_line(out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
}

void notes_say(const char *prefix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	notes_vsay(prefix, fmt, ap);
	va_end(ap);
}

int notes_wait_fd(void)
{
	return notes.len && !notes.broken ? notes.dest.fd : -1;
}

void notes_flush(int timeout_ms)
{
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (!notes_push() && timeout_ms > 0) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long spent = (now.tv_sec - start.tv_sec) * 1000 +
			     (now.tv_nsec - start.tv_nsec) / 1000000;
		if (spent >= timeout_ms)
			break;
		struct pollfd p = {.fd = notes.dest.fd, .events = POLLOUT};
		if (poll(&p, 1, (int)(timeout_ms - spent)) < 0 && errno != EINTR)
			break;
	}
}

/* Write @len bytes of @text (whole lines) after what waits, waiting for a
 * slow stderr while it takes something at least every @stall_ms. */
int notes_write_all(const char *text, size_t len, int stall_ms)
{
	size_t off = 0;
	while (off < len) {
		size_t room = NOTES_BUFFER - notes.len;
		size_t n = len - off < room ? len - off : room;
		if (n < len - off) {
			const char *nl = memrchr(text + off, '\n', n);
			n = nl ? (size_t)(nl - (text + off)) + 1 : 0;
		}
		memcpy(notes.buf + notes.len, text + off, n);
		notes.len += n;
		off += n;
		size_t before = notes.len;
		notes_flush(stall_ms);
		if (notes.broken || notes.len == before)
			break; /* nothing went within @stall_ms */
	}
	if (off < len) {
		notes.dropped++;
		return -EAGAIN;
	}
	return 0;
}

uint64_t notes_dropped(void)
{
	return notes.dropped;
}

void notes_close(int timeout_ms)
{
	notes_flush(timeout_ms);
	if (notes.dropped && !notes.broken) {
		char line[128];
		int n = snprintf(line, sizeof(line),
				 "ptmon: %" PRIu64
				 " of its messages were dropped: stderr did not take them\n",
				 notes.dropped);
		notes_line(line, (size_t)n);
		notes_flush(timeout_ms);
	}
	notes.dest.fd = util_close(notes.dest.fd);
}
