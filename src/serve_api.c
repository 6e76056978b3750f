/* SPDX-License-Identifier: MIT */
/* `ptmon serve`: the JSON API and the Server-Sent Events. */
#include "serve_int.h"

/* ---- Server-Sent Events ---------------------------------------------------------------- */

static void sse_wake(struct sse *x)
{
	if (x->suspended) {
		x->suspended = false;
		MHD_resume_connection(x->conn);
	}
}

static bool sse_append(struct sse *x, const char *data, size_t n)
{
	if (x->len + n > SSE_BUF_MAX)
		return false;
	if (x->off) {
		memmove(x->buf, x->buf + x->off, x->len);
		x->off = 0;
	}
	char *b = realloc(x->buf, x->len + n);
	if (!b)
		return false;
	memcpy(b + x->len, data, n);
	x->buf = b;
	x->len += n;
	return true;
}

/* One frame to @x; past SSE_BUF_MAX frames are dropped and counted, and a
 * "lost" frame says how many once there is room. */
static void sse_put(struct sse *x, const char *frame, size_t n)
{
	if (x->dropped) {
		char lost[96];
		int k = snprintf(lost, sizeof(lost),
				 "event: lost\ndata: {\"count\":%" PRIu64 "}\n\n", x->dropped);
		if (x->len + (size_t)k + n > SSE_BUF_MAX || !sse_append(x, lost, (size_t)k)) {
			x->dropped++;
			return;
		}
		x->dropped = 0;
	}
	if (!sse_append(x, frame, n))
		x->dropped++;
	sse_wake(x);
}

static struct frame *ring_at(struct stask *t, size_t i)
{
	return &t->ring[(t->ring_head + i) % SSE_RING_MAX];
}

/* Keep @f as the ring's newest; the oldest go beyond SSE_RING_MAX frames or
 * SSE_RING_BYTES. */
static void ring_push(struct stask *t, struct frame f)
{
	if (!t->ring && !(t->ring = calloc(SSE_RING_MAX, sizeof(*t->ring)))) {
		free(f.text);
		return;
	}
	while (t->nring && (t->nring == SSE_RING_MAX || t->ring_bytes + f.len > SSE_RING_BYTES)) {
		struct frame *old = ring_at(t, 0);
		t->ring_bytes -= old->len;
		free(old->text);
		t->ring_head = (t->ring_head + 1) % SSE_RING_MAX;
		t->nring--;
	}
	*ring_at(t, t->nring++) = f;
	t->ring_bytes += f.len;
}

void serve_ring_free(struct stask *t)
{
	for (size_t i = 0; i < t->nring; i++)
		free(ring_at(t, i)->text);
	free(t->ring);
	t->ring = NULL;
	t->ring_head = t->nring = t->ring_bytes = 0;
}

/* Each event gets an id, "EPOCH-SEQ": a browser's EventSource sends the
 * last it had as Last-Event-ID when it reconnects, and on_events() sends
 * what came after it. */
void serve_sse_event(struct stask *t, const char *line)
{
	struct frame f = {0};
	t->seq++;
	if (asprintf(&f.text, "id: %s-%" PRIu64 "\ndata: %s\n\n", S.epoch, t->seq, line) < 0)
		return;
	f.len = strlen(f.text);
	for (struct sse *x = t->subs; x; x = x->next)
		sse_put(x, f.text, f.len);
	ring_push(t, f);
}

/* The task's stream ended: its clients get what waits, then the end. */
void serve_sse_orphan_all(struct stask *t)
{
	while (t->subs) {
		struct sse *x = t->subs;
		t->subs = x->next;
		x->task = NULL;
		x->next = S.orphans;
		S.orphans = x;
		sse_wake(x);
	}
}

static void sse_unlink(struct sse *x)
{
	struct sse **pp = x->task ? &x->task->subs : &S.orphans;
	while (*pp && *pp != x)
		pp = &(*pp)->next;
	if (*pp)
		*pp = x->next;
	S.nsse--;
}

/* A comment frame to every stream: a client that went away is noticed. */
void serve_sse_ping(void)
{
	static const char ping[] = ": ping\n\n";
	for (struct stask *t = S.tasks; t; t = t->next)
		for (struct sse *x = t->subs; x; x = x->next)
			sse_put(x, ping, sizeof(ping) - 1);
}

/* ---- the JSON API ---------------------------------------------------------------------- */

char *serve_tasks_json(size_t *ret_len)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	pthread_mutex_lock(&S.lock);
	for (struct stask *t = S.tasks; t; t = t->next) {
		if (t->phase != 2)
			continue;
		struct json_object *x = json_object_new_object();
		json_object_object_add(x, "id", json_object_new_string(t->id));
		json_object_object_add(x, "name", json_bytes(t->ns->name, strlen(t->ns->name)));
		json_object_object_add(x, "uid", json_object_new_int64(t->uid));
		json_object_object_add(x, "user", json_bytes(t->user, strlen(t->user)));
		json_object_object_add(x, "root_pid", json_object_new_int(t->root_pid));
		json_object_object_add(x, "alive", json_object_new_int64(t->alive));
		json_object_object_add(x, "processes",
				       json_object_new_int64((int64_t)t->c.processes));
		json_object_array_add(a, x);
	}
	json_object_object_add(o, "tasks", a);
	a = json_object_new_array();
	size_t kept = S.nfinished < FINISHED_KEPT ? S.nfinished : FINISHED_KEPT;
	for (size_t i = 0; i < kept; i++) {
		const char *s = S.finished[(S.nfinished - 1 - i) % FINISHED_KEPT];
		struct json_object *d = s ? json_tokener_parse(s) : NULL;
		if (d)
			json_object_array_add(a, d);
	}
	json_object_object_add(o, "finished", a);
	pthread_mutex_unlock(&S.lock);
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, ret_len);
	char *text = strdup(s);
	json_object_put(o);
	return text;
}

/* Ask a task @request over a connection of our own: its reply line. */
static char *ask_task(const char *id, const char *request, size_t *ret_len)
{
	char path[512];
	uid_t owner = geteuid();
	if (strchr(id, '/'))
		return NULL;
	/* A followed task is asked where serve found it, as its owner's. */
	pthread_mutex_lock(&S.lock);
	struct stask *t = serve_task_find(id);
	if (t) {
		snprintf(path, sizeof(path), "%s", t->path);
		owner = t->uid;
	}
	pthread_mutex_unlock(&S.lock);
	if (!t && control_resolve(id, path, sizeof(path)) < 0)
		return NULL;
	int fd = control_connect(path, owner, 1, NULL);
	if (fd < 0)
		return NULL;
	char *b = NULL, *line = NULL;
	size_t len = 0, cap = 0;
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) < 0)
		goto out;
	for (;;) {
		if (len + 65536 > cap) {
			char *p =
				cap < (64u << 20) ? realloc(b, cap = cap ? cap * 2 : 131072) : NULL;
			if (!p)
				goto out;
			b = p;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, ASK_TIMEOUT_MS) <= 0)
			goto out;
		ssize_t n = recv(fd, b + len, cap - len, 0);
		if (n <= 0)
			goto out;
		char *nl = memchr(b + len, '\n', (size_t)n);
		len += (size_t)n;
		if (nl) {
			*ret_len = (size_t)(nl - b) + 1;
			line = b;
			b = NULL;
			goto out;
		}
	}
out:
	util_close(fd);
	free(b);
	return line;
}

/* MHD's thread asks for the next bytes of a stream. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *x = cls;
	ssize_t r;
	(void)pos;
	pthread_mutex_lock(&S.lock);
	if (x->len) {
		size_t n = x->len < max ? x->len : max;
		memcpy(buf, x->buf + x->off, n);
		x->off += n;
		x->len -= n;
		r = (ssize_t)n;
	} else if (!x->task) {
		r = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		/* Nothing yet: parked until sse_wake(), not polled. */
		x->suspended = true;
		MHD_suspend_connection(x->conn);
		r = 0;
	}
	pthread_mutex_unlock(&S.lock);
	return r;
}

static void sse_free(void *cls)
{
	struct sse *x = cls;
	pthread_mutex_lock(&S.lock);
	sse_unlink(x);
	pthread_mutex_unlock(&S.lock);
	free(x->buf);
	free(x);
}

/* The SEQ of @last, "EPOCH-SEQ" from this serve; -1 when it is not. */
static int64_t last_seq(const char *last)
{
	size_t n = strlen(S.epoch);
	if (!last || strncmp(last, S.epoch, n) || last[n] != '-')
		return -1;
	const char *d = last + n + 1;
	if (!*d || strspn(d, "0123456789") != strlen(d) || strlen(d) > 18)
		return -1;
	return strtoll(d, NULL, 10);
}

/* What a stream that had the events up to @last missed: the ring's frames
 * after it.  False when the ring no longer holds them all. */
static bool sse_replay(struct sse *x, struct stask *t, int64_t last)
{
	uint64_t first = t->seq - t->nring + 1; /* the oldest frame's id */
	if (last < 0 || (uint64_t)last > t->seq || (uint64_t)last + 1 < first)
		return false;
	for (uint64_t k = (uint64_t)last + 1; k <= t->seq; k++) {
		struct frame *f = ring_at(t, k - first);
		sse_put(x, f->text, f->len);
	}
	return true;
}

/* An "event: snapshot" frame: every process as serve recorded it (@procs,
 * an object by id or an array), exits included, the start event and, once
 * the task is done, its done event.  For a stream whose missed events are
 * gone: a page that applies it is exact again, no process it thought
 * running left so when it ended meanwhile. */
static void sse_snapshot(struct sse *x, const char *id, uint64_t seq, struct json_object *start,
			 struct json_object *procs, bool complete, struct json_object *done)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	json_object_object_add(o, "type", json_object_new_string("snapshot"));
	json_object_object_add(o, "task_id", json_object_new_string(id));
	json_object_object_add(o, "complete", json_object_new_boolean(complete));
	json_object_object_add(o, "start", json_object_get(start));
	if (json_object_is_type(procs, json_type_object)) {
		json_object_object_foreach(procs, k, v)
		{
			(void)k;
			json_object_array_add(a, json_object_get(v));
		}
	} else {
		for (size_t i = 0; i < json_object_array_length(procs); i++)
			json_object_array_add(a,
					      json_object_get(json_object_array_get_idx(procs, i)));
	}
	json_object_object_add(o, "processes", a);
	json_object_object_add(o, "done", json_object_get(done));
	char *frame = NULL;
	if (asprintf(&frame, "event: snapshot\nid: %s-%" PRIu64 "\ndata: %s\n\n", S.epoch, seq,
		     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) >= 0)
		sse_put(x, frame, strlen(frame));
	free(frame);
	json_object_put(o);
}

/* The kept report of @id, parsed; NULL if none. */
static struct json_object *report_of(const char *id)
{
	size_t kept = S.nreports < REPORTS_KEPT ? S.nreports : REPORTS_KEPT;
	for (size_t i = 0; i < kept; i++) {
		struct kept_report *kr = &S.reports[(S.nreports - 1 - i) % REPORTS_KEPT];
		if (kr->json && !strcmp(kr->id, id))
			return json_tokener_parse(kr->json);
	}
	return NULL;
}

/* A new stream of @t: with @last (Last-Event-ID, a reconnect), first what
 * it missed, from the ring, else a snapshot. */
static void sse_attach(struct sse *x, struct stask *t, const char *last)
{
	x->task = t;
	x->next = t->subs;
	t->subs = x;
	if (last && !sse_replay(x, t, last_seq(last)))
		sse_snapshot(x, t->id, t->seq, t->start, t->procs,
			     t->saw_start && !t->truncated && !t->lost_follow, NULL);
}

/* A reconnect to a task that ended meanwhile: its report as a snapshot,
 * then the end of the stream. */
static void sse_attach_ended(struct sse *x, const char *id, struct json_object *rep)
{
	struct json_object *start = NULL, *procs = NULL, *done = NULL, *complete = NULL;
	json_object_object_get_ex(rep, "start", &start);
	json_object_object_get_ex(rep, "processes", &procs);
	json_object_object_get_ex(rep, "totals", &done);
	json_object_object_get_ex(rep, "complete", &complete);
	x->next = S.orphans;
	S.orphans = x;
	sse_snapshot(x, id, 0, start, procs, json_object_get_boolean(complete), done);
}

static enum MHD_Result on_events(struct MHD_Connection *c, const char *id)
{
	const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
	pthread_mutex_lock(&S.lock);
	struct stask *t = serve_task_find(id);
	if (t && t->phase != 2)
		t = NULL;
	struct json_object *rep = !t && last ? report_of(id) : NULL;
	bool busy = (t || rep) && S.nsse >= SSE_MAX;
	struct sse *x = (t || rep) && !busy ? calloc(1, sizeof(*x)) : NULL;
	if (x) {
		x->conn = c;
		if (t)
			sse_attach(x, t, last);
		else
			sse_attach_ended(x, id, rep);
		S.nsse++;
	}
	pthread_mutex_unlock(&S.lock);
	bool known = t || rep;
	json_object_put(rep);
	if (!x)
		return busy    ? serve_error(c, 503, "too many event streams")
		       : known ? serve_error(c, 500, "out of memory")
			       : serve_error(c, 404, "no such running task");
	struct MHD_Response *r =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, x, sse_free);
	if (!r) {
		sse_free(x);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_report(struct MHD_Connection *c, const char *id)
{
	char *body = NULL;
	bool running = false;
	pthread_mutex_lock(&S.lock);
	size_t kept = S.nreports < REPORTS_KEPT ? S.nreports : REPORTS_KEPT;
	for (size_t i = 0; i < kept && !body; i++) {
		struct kept_report *kr = &S.reports[(S.nreports - 1 - i) % REPORTS_KEPT];
		if (kr->json && !strcmp(kr->id, id))
			body = strdup(kr->json);
	}
	running = !body && serve_task_find(id);
	pthread_mutex_unlock(&S.lock);
	if (!body)
		return running ? serve_error(c, 409,
					     "the task is running: its report comes at its end")
			       : serve_error(c, 404, "no such report (serve keeps the last 32)");
	return serve_reply(c, 200, "application/json", body, strlen(body));
}

/* POST /api/tasks/ID/kill?pid=N[&signal=SIG][&subtree=1] or
 * /api/tasks/ID/cancel[?now=1]: the task's own request (docs/control.md),
 * its reply passed on: 200 when it did it, 422 when it refused. */
static enum MHD_Result on_action(struct MHD_Connection *c, const char *id, const char *action)
{
	const char *pid = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "pid");
	const char *sig = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "signal");
	const char *sub = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "subtree");
	const char *now = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "now");
	bool kill = !strcmp(action, "kill");
	if (kill && (!pid || !*pid || strspn(pid, "0123456789") != strlen(pid) || strlen(pid) > 9))
		return serve_error(c, 400, "kill needs ?pid=N (a decimal pid)");
	struct json_object *q = json_object_new_object();
	json_object_object_add(q, "cmd", json_object_new_string(action));
	if (kill) {
		json_object_object_add(q, "pid", json_object_new_int(atoi(pid)));
		if (sig)
			json_object_object_add(q, "signal", json_bytes(sig, strlen(sig)));
		json_object_object_add(q, "subtree",
				       json_object_new_boolean(
					       sub && (!strcmp(sub, "1") || !strcmp(sub, "true"))));
	} else {
		json_object_object_add(q, "now",
				       json_object_new_boolean(
					       now && (!strcmp(now, "1") || !strcmp(now, "true"))));
	}
	char *line = NULL;
	if (asprintf(&line, "%s\n", json_object_to_json_string_ext(q, JSON_C_TO_STRING_PLAIN)) < 0)
		line = NULL;
	json_object_put(q);
	size_t len = 0;
	char *body = line ? ask_task(id, line, &len) : NULL;
	free(line);
	if (!body)
		return serve_error(c, 404, "no such task");
	struct json_object *o = json_tokener_parse(body);
	bool ok = jbool(o, "ok");
	json_object_put(o);
	serve_say(0, "%s %s%s%s: %s", action, id, kill ? " pid " : "", kill ? pid : "",
		  ok ? "done" : "refused by the task");
	return serve_reply(c, ok ? 200 : 422, "application/json", body, len);
}

enum MHD_Result serve_on_task(struct MHD_Connection *c, const char *rest)
{
	char id[CONTROL_ID_MAX];
	const char *slash = strchr(rest, '/');
	if (!slash || (size_t)(slash - rest) >= sizeof(id))
		return serve_error(c, 404, "not found");
	memcpy(id, rest, (size_t)(slash - rest));
	id[slash - rest] = '\0';
	if (!strcmp(slash, "/kill") || !strcmp(slash, "/cancel"))
		return on_action(c, id, slash + 1);
	if (!strcmp(slash, "/events"))
		return on_events(c, id);
	if (!strcmp(slash, "/report"))
		return on_report(c, id);
	if (strcmp(slash, "/tree"))
		return serve_error(c, 404, "not found");
	size_t len = 0;
	char *body = ask_task(id, "{\"cmd\":\"tree\"}\n", &len);
	if (!body)
		return serve_error(c, 404, "no such task");
	return serve_reply(c, 200, "application/json", body, len);
}
