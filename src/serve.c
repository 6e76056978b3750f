/* SPDX-License-Identifier: MIT */
/*
 * `ptmon serve`.  The main thread owns an epoll loop: the inotify watch of
 * the control directory (a new socket is connected to at once, so that a
 * task of a few milliseconds is still followed), a signalfd, and one
 * follow connection per task.  libmicrohttpd answers HTTP in its own
 * threads; both sides share the state under one mutex.
 *
 * Exactness: counters are per task name and only grow.  While a task runs
 * they count the events serve saw; at its `done` event each is raised to
 * the task's own totals (docs/schema.md: processes, exits, ended CPU and
 * peak memory, events lost), so a followed task's figures are exact once
 * it is done even when serve connected late or lost events.
 */
#include "serve.h"
#include "control.h"
#include "expo.h"
#include "fdclose.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#define NAMES_MAX 1024	       /* beyond this, tasks count under name="_other" */
#define FINISHED_KEPT 64       /* recent done events kept for /api/tasks */
#define REPORTS_KEPT 32	       /* recent reports kept for /api/tasks/ID/report */
#define REPORT_PROCS_MAX 4096  /* processes a kept report holds at most */
#define SSE_MAX 64	       /* event streams open at once */
#define SSE_BUF_MAX (1u << 20) /* bytes waiting for one stream; beyond, events are lost */
#define SSE_PING_MS 15000      /* a comment line, so that a gone client is noticed */
#define SSE_RING_MAX 1024      /* a task's last frames, for a stream that reconnects */
#define SSE_RING_BYTES (128u << 10)
#define TASK_LINE_MAX (4u << 20) /* a longer event line ends the connection */
#define HTTP_CONNECTIONS 256
#define HTTP_TIMEOUT_S 10
#define ASK_TIMEOUT_MS 5000
#define HTTP_HEADERS_MS 5000 /* a request's headers must be in within this */
#define HTTP_FDS_WANTED 8192 /* RLIMIT_NOFILE raised towards this, for the connections */
#define TOKEN_MIN 16
#define TOKEN_MAX 4096

enum { EXIT_FAILED = 125 };
enum { OUT_EXITED, OUT_SIGNALED, OUT_KILLED, OUT_UNKNOWN, OUTCOMES };
static const char *const outcome_names[OUTCOMES] = {"exited", "signaled", "killed_by_ptmon",
						    "unknown"};

/* What is counted, per task and per name. */
struct counts {
	uint64_t processes, exits[OUTCOMES], cpu_us, rss_kb, lost_kernel;
};

struct name_stats {
	char *name;
	uint64_t started, finished, vanished, lost_follower;
	struct counts c;
	struct name_stats *next;
};

enum watch_kind { W_INOTIFY, W_SIGNAL, W_TASK };

/* A directory serve watches: one of control sockets (serve's own user's,
 * or, when serve runs as root, another user's), or one in which a user's
 * may appear (/run/user, /run/user/UID, /tmp). */
enum dir_kind { D_TASKS, D_RUN_USER, D_UID, D_TMP };

struct sdir {
	struct sdir *next;
	enum dir_kind kind;
	int wd;	    /* its inotify watch */
	int fd;	    /* a user's D_TASKS: the checked directory; else -1 */
	uid_t uid;  /* whose tasks (D_TASKS, D_UID) */
	char path[256];
};

struct stask {
	enum watch_kind kind; /* first: epoll data.ptr points here */
	int fd;
	char id[CONTROL_ID_MAX];
	char path[320]; /* its socket, for the API's own requests */
	uid_t uid;	/* its owner: the user of its directory */
	char user[64];	/* that user's name, or the uid in decimal */
	int phase; /* 0: info reply awaited, 1: follow reply, 2: events */
	struct name_stats *ns;
	struct counts c;
	int64_t alive;
	pid_t root_pid;
	char *buf;
	size_t len, cap;
	struct json_object *procs; /* id -> the process as its events told it */
	size_t nprocs;
	bool saw_start;		   /* followed from the start: the report is whole */
	bool truncated;		   /* more than REPORT_PROCS_MAX processes */
	uint64_t lost_follow;	   /* events this follower lost */
	struct json_object *start; /* the start event */
	struct sse *subs;	   /* its event streams */
	uint64_t seq;		   /* the id of its last event, 1 for the first */
	struct frame *ring;	   /* its last frames, a circle: ids seq - nring + 1 .. seq */
	size_t ring_head, nring, ring_bytes; /* the oldest's index, how many, their size */
	struct stask *next;
};

/* One client of /api/tasks/ID/events (Server-Sent Events).  MHD's thread
 * reads buf; the loop's thread fills it; both under S.lock. */
struct sse {
	struct sse *next;
	struct stask *task; /* NULL once the task's stream ended */
	struct MHD_Connection *conn;
	char *buf;
	size_t off, len;
	uint64_t dropped;
	bool suspended;
};

/* An HTTP connection, from its accept to its close (MHD's socket context):
 * the time its current request began, to cut a client that trickles its
 * headers (slowloris) and so would never meet MHD's idle timeout. */
struct hconn {
	struct hconn *next, *prev;
	int fd;		  /* MHD's; only shut down, never closed here */
	int64_t since_ms; /* 0: no request being received */
};

/* An event as a stream sends it ("id: ...\ndata: ...\n\n"), kept in its
 * task's ring. */
struct frame {
	char *text;
	size_t len;
};

/* A finished task's report, as serve saw it. */
struct kept_report {
	char id[CONTROL_ID_MAX];
	char *json;
};

static struct {
	pthread_mutex_t lock;
	char dir[256];
	int epfd, ino;
	struct sdir *dirs;
	bool all_users;	 /* root: every user's tasks too */
	bool verbose;
	enum watch_kind inotify_kind, signal_kind;
	struct stask *tasks;
	struct name_stats *names;
	size_t nnames;
	uint64_t missed;
	char *finished[FINISHED_KEPT]; /* done events, JSON text, a ring */
	size_t nfinished;
	struct kept_report reports[REPORTS_KEPT]; /* a ring */
	size_t nreports;
	struct sse *orphans; /* streams whose task ended, until MHD lets them go */
	size_t nsse;
	bool loopback;
	unsigned port;
	char host[64];		/* the listen address as a Host header names it */
	bool control;		/* --allow-control */
	char token[TOKEN_MAX];	/* its token */
	size_t token_len;
	struct hconn *hconns;	/* every open HTTP connection */
	uint64_t cut;		/* connections cut for slow headers */
	uint64_t events;	/* event lines followed, all tasks */
	char epoch[24];		/* this serve's, in every event id: another's ids are not ours */
} S = {.lock = PTHREAD_MUTEX_INITIALIZER, .epfd = -1, .ino = -1, .inotify_kind = W_INOTIFY,
       .signal_kind = W_SIGNAL};

static int say(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int say(int status, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char *safe = text_escape_dup(line, strlen(line));
	fprintf(stderr, "ptmon: %s\n", safe ? safe : line);
	free(safe);
	return status;
}

/* -v: what serve follows and what it skips, and why. */
#define note(...)                                                                                  \
	do {                                                                                       \
		if (S.verbose)                                                                     \
			say(0, __VA_ARGS__);                                                       \
	} while (0)

/* ---- counting -------------------------------------------------------------------- */

static struct name_stats *name_get(const char *name)
{
	struct name_stats *n;
	if (S.nnames >= NAMES_MAX)
		name = "_other";
	for (n = S.names; n; n = n->next)
		if (!strcmp(n->name, name))
			return n;
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name)))
		return free(n), NULL;
	n->next = S.names;
	S.names = n;
	S.nnames++;
	return n;
}

/* Raise the task's counter @field to @value, adding the difference to its
 * name's: counters never go down, and end at the task's own totals. */
#define RAISE(t, field, value)                                                                    \
	do {                                                                                      \
		uint64_t v_ = (value);                                                            \
		if (v_ > (t)->c.field) {                                                          \
			(t)->ns->c.field += v_ - (t)->c.field;                                    \
			(t)->c.field = v_;                                                        \
		}                                                                                 \
	} while (0)

static uint64_t jget(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	int64_t x = json_object_get_int64(v);
	return x > 0 ? (uint64_t)x : 0;
}

static bool jbool(struct json_object *o, const char *key)
{
	struct json_object *v;
	return o && json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* ---- a task's processes, for its report -------------------------------------------- */

/* Keys of an event that say what the event was, not what the process is. */
static bool event_only_key(const char *k)
{
	static const char *const skip[] = {"type",	"task_id",  "mono_ns",	      "unix_ns",
					   "time",	"name",	    "schema_version", "cwd",
					   "backend",	"features", "filter",	      "fallback_reason",
					   "taskstats_unavailable"};
	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (!strcmp(k, skip[i]))
			return true;
	return false;
}

/* Fold a process event into the task's record of that process. */
static void record_event(struct stask *t, struct json_object *ev, const char *type)
{
	bool born = !strcmp(type, "start") || !strcmp(type, "fork");
	bool died = !strcmp(type, "exit");
	struct json_object *idv, *p = NULL;
	if (!(born || died || !strcmp(type, "exec") || !strcmp(type, "comm")) ||
	    !json_object_object_get_ex(ev, "id", &idv))
		return;
	char key[24];
	snprintf(key, sizeof(key), "%" PRId64, json_object_get_int64(idv));
	if (!t->procs && !(t->procs = json_object_new_object()))
		return;
	if (!json_object_object_get_ex(t->procs, key, &p)) {
		if (t->nprocs >= REPORT_PROCS_MAX) {
			t->truncated = true;
			return;
		}
		p = json_object_new_object();
		json_object_object_add(t->procs, key, p);
		t->nprocs++;
	}
	json_object_object_foreach(ev, k, v)
	{
		if (!event_only_key(k))
			json_object_object_add(p, k, json_object_get(v));
	}
	struct json_object *time;
	if ((born || died) && json_object_object_get_ex(ev, "time", &time))
		json_object_object_add(p, born ? "start_time" : "end_time", json_object_get(time));
}

/* At the task's done: its report, kept among the last REPORTS_KEPT. */
static void keep_report(struct stask *t, struct json_object *done)
{
	struct json_object *r = json_object_new_object(), *a = json_object_new_array();
	json_object_object_add(r, "task_id", json_object_new_string(t->id));
	json_object_object_add(r, "name", json_bytes(t->ns->name, strlen(t->ns->name)));
	json_object_object_add(r, "uid", json_object_new_int64(t->uid));
	json_object_object_add(r, "user", json_bytes(t->user, strlen(t->user)));
	json_object_object_add(r, "complete", json_object_new_boolean(t->saw_start && !t->truncated &&
								       !t->lost_follow));
	if (t->start)
		json_object_object_add(r, "start", json_object_get(t->start));
	json_object_object_add(r, "totals", json_object_get(done));
	if (t->procs) {
		json_object_object_foreach(t->procs, k, v)
		{
			(void)k;
			json_object_array_add(a, json_object_get(v));
		}
	}
	json_object_object_add(r, "processes", a);
	struct kept_report *kr = &S.reports[S.nreports++ % REPORTS_KEPT];
	free(kr->json);
	snprintf(kr->id, sizeof(kr->id), "%s", t->id);
	kr->json = strdup(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
	json_object_put(r);
}

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
		int k = snprintf(lost, sizeof(lost), "event: lost\ndata: {\"count\":%" PRIu64 "}\n\n",
				 x->dropped);
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

static void ring_free(struct stask *t)
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
static void sse_event(struct stask *t, const char *line)
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
static void sse_orphan_all(struct stask *t)
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
static void sse_ping(void)
{
	static const char ping[] = ": ping\n\n";
	for (struct stask *t = S.tasks; t; t = t->next)
		for (struct sse *x = t->subs; x; x = x->next)
			sse_put(x, ping, sizeof(ping) - 1);
}

static void count_exit(struct stask *t, struct json_object *ev)
{
	const char *end = jstr(ev, "end");
	int k = !end			  ? OUT_UNKNOWN
		: !strcmp(end, "exited")  ? OUT_EXITED
		: !strcmp(end, "signaled") ? (jbool(ev, "killed_by_ptmon") ? OUT_KILLED : OUT_SIGNALED)
					  : OUT_UNKNOWN;
	RAISE(t, exits[k], t->c.exits[k] + 1);
	struct json_object *a = NULL;
	if (json_object_object_get_ex(ev, "accounting", &a) && a) {
		RAISE(t, cpu_us, t->c.cpu_us + jget(a, "user_cpu_us") + jget(a, "system_cpu_us"));
		RAISE(t, rss_kb, t->c.rss_kb + jget(a, "max_rss_kb"));
	}
	if (t->alive > 0)
		t->alive--;
}

/* The done event, with whose task it was, for /api/tasks's "finished". */
static void remember_done(struct stask *t, struct json_object *ev)
{
	size_t i = S.nfinished++ % FINISHED_KEPT;
	struct json_object *d = json_object_get(ev);
	json_object_object_add(d, "uid", json_object_new_int64(t->uid));
	json_object_object_add(d, "user", json_bytes(t->user, strlen(t->user)));
	free(S.finished[i]);
	S.finished[i] = strdup(json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
	json_object_put(d);
}

static void count_done(struct stask *t, struct json_object *ev)
{
	RAISE(t, processes, jget(ev, "processes"));
	RAISE(t, lost_kernel, jget(ev, "events_lost"));
	struct json_object *x = NULL;
	json_object_object_get_ex(ev, "exits", &x);
	for (int k = 0; k < OUTCOMES; k++)
		RAISE(t, exits[k], jget(x, outcome_names[k]));
	RAISE(t, cpu_us, jget(ev, "ended_cpu_us"));
	RAISE(t, rss_kb, jget(ev, "ended_max_rss_kb_sum"));
	t->ns->finished++;
	t->alive = 0;
	keep_report(t, ev); /* first: remember_done() adds the owner to ev */
	remember_done(t, ev);
}

static void count_event(struct stask *t, struct json_object *ev, const char *line)
{
	const char *type = jstr(ev, "type");
	if (!type)
		return;
	S.events++;
	record_event(t, ev, type);
	sse_event(t, line);
	if (!strcmp(type, "start") && !t->start) {
		t->start = json_object_get(ev);
		t->saw_start = true;
	}
	if (!strcmp(type, "start")) {
		/* Sent first to every follower: info's figures hold the root. */
		RAISE(t, processes, 1);
	} else if (!strcmp(type, "fork")) {
		RAISE(t, processes, t->c.processes + 1);
		t->alive++;
	} else if (!strcmp(type, "exit")) {
		count_exit(t, ev);
	} else if (!strcmp(type, "lost")) {
		const char *why = jstr(ev, "reason");
		if (why && !strcmp(why, "follower too slow")) {
			t->ns->lost_follower += jget(ev, "count");
			t->lost_follow += jget(ev, "count");
		}
		else
			RAISE(t, lost_kernel, t->c.lost_kernel + jget(ev, "count"));
	} else if (!strcmp(type, "done")) {
		count_done(t, ev);
		t->phase = 3;
	}
}

/* The reply to `info`: the task's name, and what is alive now. */
static int take_info(struct stask *t, struct json_object *o)
{
	const char *name = jstr(o, "name");
	if (!jbool(o, "ok") || !(t->ns = name_get(name ? name : "")))
		return -EPROTO;
	t->ns->started++;
	t->alive = (int64_t)jget(o, "live");
	RAISE(t, processes, jget(o, "processes"));
	t->root_pid = (pid_t)jget(o, "root_pid");
	return 0;
}

static int take_line(struct stask *t, char *line)
{
	struct json_object *o = json_tokener_parse(line);
	int r = 0;
	if (!o)
		r = -EPROTO;
	else if (t->phase == 0)
		r = take_info(t, o);
	else if (t->phase == 1)
		r = jbool(o, "ok") ? 0 : -EPROTO;
	else if (jstr(o, "type"))
		count_event(t, o, line);
	if (r == 0 && t->phase < 2)
		t->phase++;
	json_object_put(o);
	return r;
}

/* ---- following tasks ------------------------------------------------------------------- */

static struct stask *task_find(const char *id)
{
	for (struct stask *t = S.tasks; t; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

static void task_free(struct stask *t)
{
	struct stask **pp = &S.tasks;
	while (*pp && *pp != t)
		pp = &(*pp)->next;
	if (*pp)
		*pp = t->next;
	/* A task that went away without its done event (ptmon killed). */
	if (t->ns && t->phase != 3)
		t->ns->vanished++;
	epoll_ctl(S.epfd, EPOLL_CTL_DEL, t->fd, NULL);
	t->fd = util_close(t->fd);
	sse_orphan_all(t);
	json_object_put(t->procs);
	json_object_put(t->start);
	ring_free(t);
	free(t->buf);
	free(t);
}

/* Connect to @path as the clients do: the server must be of @owner, the
 * user whose directory holds the socket, or root (SO_PEERCRED).  Returns
 * the fd or -errno. */
static int connect_trusted(const char *path, uid_t owner)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = {.tv_sec = 1};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int r = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		r = -errno;
	else if (!control_server_trusted_for(cr.uid, owner))
		r = -EPERM;
	if (r < 0)
		fd = util_close(fd);
	return r < 0 ? r : fd;
}

static void user_name(uid_t uid, char *out, size_t size)
{
	struct passwd pw, *res = NULL;
	char buf[1024];
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(out, size, "%s", res->pw_name);
	else
		snprintf(out, size, "%u", (unsigned)uid);
}

/* Connect to the socket @name of @d.  In a user's directory the socket
 * must be that user's, and is reached through the directory serve opened
 * and checked, not its path again.  Returns the fd or -errno. */
static int connect_in(const struct sdir *d, const char *name, bool fresh)
{
	char path[512];
	const char *why = NULL;
	if (d->fd >= 0) {
		int r = control_check_user_socket(d->fd, name, d->uid, &why);
		if (r == -EPERM)
			note("skipping %s/%s: %s", d->path, name, why);
		if (r < 0)
			return r == -EPERM ? -EACCES : r;
		snprintf(path, sizeof(path), "/proc/self/fd/%d/%.255s", d->fd, name);
	} else {
		snprintf(path, sizeof(path), "%.250s/%.255s", d->path, name);
	}
	int fd = connect_trusted(path, d->uid);
	/* ptmon binds, then listens: between the two, connect() is refused. */
	for (int i = 0; fresh && fd == -ECONNREFUSED && i < 20; i++) {
		poll(NULL, 0, 1);
		fd = connect_trusted(path, d->uid);
	}
	return fd;
}

/* A socket named @name appeared in @d (@fresh: told by inotify, not found
 * by a scan). */
static void task_add(const struct sdir *d, const char *name, bool fresh)
{
	size_t n = strlen(name);
	char id[CONTROL_ID_MAX];
	if (n <= 5 || n - 5 >= sizeof(id) || strcmp(name + n - 5, ".sock"))
		return;
	memcpy(id, name, n - 5);
	id[n - 5] = '\0';
	if (task_find(id))
		return;
	int fd = connect_in(d, name, fresh);
	if (fd == -ECONNREFUSED || fd == -ENOENT) {
		/* Gone before we could connect: its events are lost to us. */
		S.missed += fresh;
		return;
	}
	if (fd == -EACCES)
		return;
	if (fd < 0) {
		say(0, "%s/%s: %s", d->path, name,
		    fd == -EPERM ? "not served by its user or root" : strerror(-fd));
		return;
	}
	static const char ask[] = "{\"cmd\":\"info\"}\n{\"cmd\":\"follow\"}\n";
	struct stask *t = calloc(1, sizeof(*t));
	if (!t || send(fd, ask, sizeof(ask) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(ask) - 1) {
		free(t);
		fd = util_close(fd);
		return;
	}
	t->kind = W_TASK;
	t->fd = fd;
	snprintf(t->id, sizeof(t->id), "%s", id);
	snprintf(t->path, sizeof(t->path), "%.250s/%.64s", d->path, name);
	t->uid = d->uid;
	user_name(d->uid, t->user, sizeof(t->user));
	t->next = S.tasks;
	S.tasks = t;
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = t};
	if (epoll_ctl(S.epfd, EPOLL_CTL_ADD, fd, &e) < 0)
		task_free(t);
}

/* Read what the task sent; false when the connection ended. */
static bool task_read(struct stask *t)
{
	if (t->cap - t->len < 65536) {
		size_t cap = t->cap ? t->cap * 2 : 131072;
		char *b = cap <= TASK_LINE_MAX * 2 ? realloc(t->buf, cap) : NULL;
		if (!b)
			return false;
		t->buf = b;
		t->cap = cap;
	}
	ssize_t n = recv(t->fd, t->buf + t->len, t->cap - t->len - 1, MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	t->len += (size_t)n;
	size_t off = 0;
	char *nl;
	while ((nl = memchr(t->buf + off, '\n', t->len - off))) {
		*nl = '\0';
		if (take_line(t, t->buf + off) < 0)
			return false;
		off = (size_t)(nl - t->buf) + 1;
	}
	memmove(t->buf, t->buf + off, t->len - off);
	t->len -= off;
	return t->len < TASK_LINE_MAX;
}

/* ---- the directories: ours, and every user's when serve runs as root ---------------- */

static struct sdir *dir_find(const char *path)
{
	for (struct sdir *d = S.dirs; d; d = d->next)
		if (!strcmp(d->path, path))
			return d;
	return NULL;
}

/* Watch @path (or the directory @fd, which it then owns): NULL when it
 * cannot, or when the same directory is watched already. */
static struct sdir *dir_add(enum dir_kind kind, const char *path, uid_t uid, int fd)
{
	static const uint32_t masks[] = {
		[D_TASKS] = IN_CREATE | IN_MOVED_TO,
		[D_RUN_USER] = IN_CREATE | IN_MOVED_TO,
		/* IN_ATTRIB: a ptmon directory made safe by chmod or chown. */
		[D_UID] = IN_CREATE | IN_MOVED_TO | IN_ATTRIB,
		[D_TMP] = IN_CREATE | IN_MOVED_TO | IN_ATTRIB,
	};
	char proc[64];
	if (strlen(path) >= sizeof(((struct sdir *)0)->path)) {
		if (fd >= 0)
			fd = util_close(fd);
		return NULL;
	}
	if (fd >= 0)
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	/* /proc/self/fd/N is a link to follow; any other is not. */
	int wd = inotify_add_watch(S.ino, fd >= 0 ? proc : path,
				   masks[kind] | IN_ONLYDIR | (fd >= 0 ? 0 : IN_DONT_FOLLOW));
	struct sdir *d = NULL;
	for (struct sdir *x = S.dirs; x && wd >= 0; x = x->next)
		if (x->wd == wd)
			wd = -1; /* one directory under two names: watched once */
	if (wd >= 0 && (d = calloc(1, sizeof(*d)))) {
		d->kind = kind;
		d->wd = wd;
		d->fd = fd;
		d->uid = uid;
		snprintf(d->path, sizeof(d->path), "%s", path);
		d->next = S.dirs;
		S.dirs = d;
	} else if (fd >= 0) {
		fd = util_close(fd);
	}
	return d;
}

static void dir_free(struct sdir *d)
{
	struct sdir **pp = &S.dirs;
	while (*pp && *pp != d)
		pp = &(*pp)->next;
	if (*pp)
		*pp = d->next;
	if (d->fd >= 0)
		d->fd = util_close(d->fd);
	free(d);
}

static void dir_scan(struct sdir *d);

/* A user's control directory: followed if root may trust it, else skipped
 * (and said with -v). */
static void user_dir(const char *path, uid_t uid)
{
	const char *why = NULL;
	if (dir_find(path))
		return;
	int fd = control_open_user_dir(path, uid, &why);
	if (fd == -ENOENT)
		return;
	if (fd < 0) {
		note("skipping %s: %s", path, why ? why : strerror(-fd));
		return;
	}
	struct sdir *d = dir_add(D_TASKS, path, uid, fd);
	if (d) {
		note("following the tasks of uid %u in %s", (unsigned)uid, path);
		dir_scan(d);
	}
}

/* /run/user/UID: its ptmon directory, now or once made. */
static void uid_dir(const char *path, uid_t uid)
{
	char sub[512];
	struct sdir *d = dir_find(path);
	if (!d && !(d = dir_add(D_UID, path, uid, -1)))
		return;
	snprintf(sub, sizeof(sub), "%.300s/ptmon", path);
	user_dir(sub, uid);
}

/* What @name in @d is to serve. */
static void dir_entry(struct sdir *d, const char *name, bool fresh)
{
	char path[512];
	uid_t uid;
	snprintf(path, sizeof(path), "%.250s/%.250s", d->path, name);
	if (d->kind == D_TASKS)
		task_add(d, name, fresh);
	else if (d->kind == D_RUN_USER && control_name_uid(name, "", &uid) == 0)
		uid_dir(path, uid);
	else if (d->kind == D_UID && !strcmp(name, "ptmon"))
		user_dir(path, d->uid);
	else if (d->kind == D_TMP && control_name_uid(name, "ptmon-", &uid) == 0)
		user_dir(path, uid);
}

/* Each entry of @d.  Its watch is in place first: nothing made in between
 * is missed. */
static void dir_scan(struct sdir *d)
{
	int fd = d->fd >= 0 ? openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
			    : open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dd = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	if (!dd && fd >= 0)
		fd = util_close(fd);
	while (dd && (e = readdir(dd)))
		if (e->d_name[0] != '.')
			dir_entry(d, e->d_name, false);
	if (dd)
		closedir(dd);
}

/* Root's serve: the users' directories, /run/user/UID/ptmon and
 * /tmp/ptmon-UID, now and as they come. */
static void users_watch(void)
{
	char path[256];
	static const struct {
		const char *sub;
		enum dir_kind kind;
	} roots[] = {{"/run/user", D_RUN_USER}, {"/tmp", D_TMP}};
	for (size_t i = 0; i < 2; i++) {
		if (control_users_root(roots[i].sub, path, sizeof(path)) < 0)
			continue;
		struct sdir *d = dir_find(path);
		if (!d && !(d = dir_add(roots[i].kind, path, 0, -1)))
			continue;
		dir_scan(d);
	}
}

static void scan_all(void)
{
	for (struct sdir *d = S.dirs; d; d = d->next)
		if (d->kind == D_TASKS)
			dir_scan(d);
	if (S.all_users)
		users_watch();
}

static struct sdir *dir_of_wd(int wd)
{
	for (struct sdir *d = S.dirs; d; d = d->next)
		if (d->wd == wd)
			return d;
	return NULL;
}

static void inotify_read(int fd)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ie = (struct inotify_event *)p;
			struct sdir *d = dir_of_wd(ie->wd);
			p += sizeof(*ie) + ie->len;
			if (ie->mask & IN_Q_OVERFLOW)
				scan_all();
			else if (d && (ie->mask & IN_IGNORED))
				dir_free(d); /* the directory went away */
			else if (d && ie->len)
				dir_entry(d, ie->name, !(ie->mask & IN_ATTRIB));
		}
}

/* ---- /metrics ---------------------------------------------------------------------------- */

static void sample(FILE *f, const char *metric, const char *name, const char *extra,
		   uint64_t v)
{
	char esc[512];
	expo_label_value(name, esc, sizeof(esc));
	fprintf(f, "%s{name=\"%s\"%s} %" PRIu64 "\n", metric, esc, extra ? extra : "", v);
}

static void metrics_counts(FILE *f, bool om)
{
	struct name_stats *n;
	expo_family(f, "ptmon_tasks_started", "counter", "Tasks serve began to follow.", om);
	for (n = S.names; n; n = n->next)
		sample(f, "ptmon_tasks_started_total", n->name, NULL, n->started);
	expo_family(f, "ptmon_tasks_finished", "counter", "Followed tasks that ended (done).", om);
	for (n = S.names; n; n = n->next)
		sample(f, "ptmon_tasks_finished_total", n->name, NULL, n->finished);
	expo_family(f, "ptmon_tasks_vanished", "counter",
		    "Followed tasks whose connection ended without a done event.", om);
	for (n = S.names; n; n = n->next)
		sample(f, "ptmon_tasks_vanished_total", n->name, NULL, n->vanished);
	expo_family(f, "ptmon_processes", "counter", "Processes of the tasks' trees, roots included.",
		    om);
	for (n = S.names; n; n = n->next)
		sample(f, "ptmon_processes_total", n->name, NULL, n->c.processes);
	expo_family(f, "ptmon_exits", "counter", "Processes that ended, by outcome.", om);
	for (n = S.names; n; n = n->next)
		for (int k = 0; k < OUTCOMES; k++) {
			char extra[64];
			snprintf(extra, sizeof(extra), ",outcome=\"%s\"", outcome_names[k]);
			sample(f, "ptmon_exits_total", n->name, extra, n->c.exits[k]);
		}
	expo_family(f, "ptmon_cpu_seconds", "counter", "CPU time of ended processes.", om);
	for (n = S.names; n; n = n->next) {
		char esc[512];
		expo_label_value(n->name, esc, sizeof(esc));
		fprintf(f, "ptmon_cpu_seconds_total{name=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n", esc,
			n->c.cpu_us / 1000000, n->c.cpu_us % 1000000);
	}
	expo_family(f, "ptmon_peak_rss_bytes", "counter",
		    "Peak resident memory of ended processes, summed.", om);
	for (n = S.names; n; n = n->next)
		sample(f, "ptmon_peak_rss_bytes_total", n->name, NULL, n->c.rss_kb * 1024);
	expo_family(f, "ptmon_events_lost", "counter",
		    "Events lost: by the kernel (as ptmon counts them) or by serve's follow "
		    "connection.",
		    om);
	for (n = S.names; n; n = n->next) {
		sample(f, "ptmon_events_lost_total", n->name, ",by=\"kernel\"", n->c.lost_kernel);
		sample(f, "ptmon_events_lost_total", n->name, ",by=\"follower\"", n->lost_follower);
	}
}

static void metrics_gauges(FILE *f, bool om)
{
	struct name_stats *n;
	expo_family(f, "ptmon_tasks_alive", "gauge", "Tasks followed now.", om);
	for (n = S.names; n; n = n->next) {
		uint64_t k = 0;
		for (struct stask *t = S.tasks; t; t = t->next)
			k += t->ns == n && t->phase == 2;
		sample(f, "ptmon_tasks_alive", n->name, NULL, k);
	}
	expo_family(f, "ptmon_processes_alive", "gauge", "Processes of followed tasks alive now.",
		    om);
	for (n = S.names; n; n = n->next) {
		uint64_t k = 0;
		for (struct stask *t = S.tasks; t; t = t->next)
			k += t->ns == n && t->phase == 2 ? (uint64_t)t->alive : 0;
		sample(f, "ptmon_processes_alive", n->name, NULL, k);
	}
	expo_family(f, "ptmon_serve_tasks_missed", "counter",
		    "Control sockets that appeared and were gone before serve could connect.", om);
	fprintf(f, "ptmon_serve_tasks_missed_total %" PRIu64 "\n", S.missed);
	expo_family(f, "ptmon_serve_events", "counter", "Event lines serve followed, all tasks.",
		    om);
	fprintf(f, "ptmon_serve_events_total %" PRIu64 "\n", S.events);
	expo_family(f, "ptmon_serve_connections_cut", "counter",
		    "HTTP connections cut: their request headers took more than 5 s.", om);
	fprintf(f, "ptmon_serve_connections_cut_total %" PRIu64 "\n", S.cut);
}

static char *metrics_text(bool om, size_t *ret_len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, ret_len);
	if (!f)
		return NULL;
	pthread_mutex_lock(&S.lock);
	metrics_counts(f, om);
	metrics_gauges(f, om);
	pthread_mutex_unlock(&S.lock);
	expo_end(f, om);
	return fclose(f) == 0 ? text : (free(text), NULL);
}

/* ---- the JSON API ---------------------------------------------------------------------- */

static char *tasks_json(size_t *ret_len)
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
		json_object_object_add(x, "processes", json_object_new_int64((int64_t)t->c.processes));
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
	struct stask *t = task_find(id);
	if (t) {
		snprintf(path, sizeof(path), "%s", t->path);
		owner = t->uid;
	}
	pthread_mutex_unlock(&S.lock);
	if (!t && control_resolve(id, path, sizeof(path)) < 0)
		return NULL;
	int fd = connect_trusted(path, owner);
	if (fd < 0)
		return NULL;
	char *b = NULL;
	size_t len = 0, cap = 0;
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) < 0)
		goto out;
	for (;;) {
		if (len + 65536 > cap) {
			char *p = cap < (64u << 20) ? realloc(b, cap = cap ? cap * 2 : 131072) : NULL;
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
			fd = util_close(fd);
			return b;
		}
	}
out:
	fd = util_close(fd);
	free(b);
	return NULL;
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     char *body, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r)
		return free(body), MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* An error reply, {"error":MSG}, with one more header if @hname. */
static enum MHD_Result error_h(struct MHD_Connection *c, unsigned status, const char *msg,
			       const char *hname, const char *hvalue)
{
	char *body = NULL;
	if (asprintf(&body, "{\"error\":\"%s\"}\n", msg) < 0)
		return MHD_NO;
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r)
		return free(body), MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (hname)
		MHD_add_response_header(r, hname, hvalue);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return error_h(c, status, msg, NULL, NULL);
}

/* @h ("name" or "name:port") names this loopback server: one of the
 * loopback names or the listen address; the port, if given, is ours. */
static bool host_name_ok(const char *h, size_t len)
{
	const char *ok[] = {S.host, "127.0.0.1", "localhost", "[::1]"};
	for (size_t i = 0; i < 4; i++) {
		size_t n = strlen(ok[i]);
		if (n > len || strncasecmp(h, ok[i], n))
			continue;
		if (n == len)
			return true;
		char port[8];
		if (h[n] != ':' || len - n - 1 == 0 || len - n - 1 >= sizeof(port))
			continue;
		memcpy(port, h + n + 1, len - n - 1);
		port[len - n - 1] = '\0';
		if (strspn(port, "0123456789") == strlen(port) && (unsigned)atoi(port) == S.port)
			return true;
	}
	return false;
}

/* On loopback, the Host header must name this server: a web page whose
 * name was rebound to 127.0.0.1 (DNS rebinding) sends its own name.  On
 * another address serve is read-only (no --allow-control) and reachable
 * under whatever names the network gives it, so Host is not checked. */
static bool host_ok(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	if (!S.loopback)
		return true;
	return h && host_name_ok(h, strlen(h));
}

/* A browser says who asks: Origin (on every POST and cross-origin fetch)
 * and Sec-Fetch-Site.  Only this server's own origin may ask; a client
 * that is not a browser sends neither. */
static bool origin_ok(struct MHD_Connection *c)
{
	const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	if (site && strcmp(site, "same-origin") && strcmp(site, "none"))
		return false;
	if (!o)
		return true;
	return h && !strncmp(o, "http://", 7) && !strcmp(o + 7, h);
}

/* The Authorization header carries the token: compared in constant time. */
static bool token_ok(struct MHD_Connection *c)
{
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (!a || strncmp(a, "Bearer ", 7))
		return false;
	a += 7;
	size_t n = strlen(a);
	unsigned char diff = n != S.token_len;
	for (size_t i = 0; i < S.token_len; i++)
		diff |= (unsigned char)(S.token[i] ^ (i < n ? a[i] : 0));
	return S.token_len > 0 && !diff;
}

/* src/serve_page.html, compiled in (cmake/embed.cmake). */
extern const unsigned char serve_page[];
extern const unsigned long serve_page_size;

/* GET /: the live page.  It only ever asks this server (connect-src
 * 'self'), and may not be framed by another site (clickjacking). */
static enum MHD_Result on_page(struct MHD_Connection *c)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		serve_page_size, (void *)serve_page, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'none'; script-src 'unsafe-inline'; "
				"style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; "
				"base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_metrics(struct MHD_Connection *c)
{
	const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
	bool om = accept && strstr(accept, "application/openmetrics-text");
	size_t len = 0;
	char *text = metrics_text(om, &len);
	if (!text)
		return error(c, 500, "out of memory");
	return reply(c, 200,
		     om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
			: "text/plain; version=0.0.4; charset=utf-8",
		     text, len);
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
			json_object_array_add(a, json_object_get(json_object_array_get_idx(procs, i)));
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
	struct stask *t = task_find(id);
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
		return busy	 ? error(c, 503, "too many event streams")
		       : known ? error(c, 500, "out of memory")
			       : error(c, 404, "no such running task");
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
	running = !body && task_find(id);
	pthread_mutex_unlock(&S.lock);
	if (!body)
		return running ? error(c, 409, "the task is running: its report comes at its end")
			       : error(c, 404, "no such report (serve keeps the last 32)");
	return reply(c, 200, "application/json", body, strlen(body));
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
		return error(c, 400, "kill needs ?pid=N (a decimal pid)");
	struct json_object *q = json_object_new_object();
	json_object_object_add(q, "cmd", json_object_new_string(action));
	if (kill) {
		json_object_object_add(q, "pid", json_object_new_int(atoi(pid)));
		if (sig)
			json_object_object_add(q, "signal", json_bytes(sig, strlen(sig)));
		json_object_object_add(q, "subtree",
				       json_object_new_boolean(sub && (!strcmp(sub, "1") ||
								       !strcmp(sub, "true"))));
	} else {
		json_object_object_add(q, "now", json_object_new_boolean(now && (!strcmp(now, "1") ||
									  !strcmp(now, "true"))));
	}
	char *line = NULL;
	if (asprintf(&line, "%s\n", json_object_to_json_string_ext(q, JSON_C_TO_STRING_PLAIN)) < 0)
		line = NULL;
	json_object_put(q);
	size_t len = 0;
	char *body = line ? ask_task(id, line, &len) : NULL;
	free(line);
	if (!body)
		return error(c, 404, "no such task");
	struct json_object *o = json_tokener_parse(body);
	bool ok = jbool(o, "ok");
	json_object_put(o);
	say(0, "%s %s%s%s: %s", action, id, kill ? " pid " : "", kill ? pid : "",
	    ok ? "done" : "refused by the task");
	return reply(c, ok ? 200 : 422, "application/json", body, len);
}

static enum MHD_Result on_task(struct MHD_Connection *c, const char *rest)
{
	char id[CONTROL_ID_MAX];
	const char *slash = strchr(rest, '/');
	if (!slash || (size_t)(slash - rest) >= sizeof(id))
		return error(c, 404, "not found");
	memcpy(id, rest, (size_t)(slash - rest));
	id[slash - rest] = '\0';
	if (!strcmp(slash, "/kill") || !strcmp(slash, "/cancel"))
		return on_action(c, id, slash + 1);
	if (!strcmp(slash, "/events"))
		return on_events(c, id);
	if (!strcmp(slash, "/report"))
		return on_report(c, id);
	if (strcmp(slash, "/tree"))
		return error(c, 404, "not found");
	size_t len = 0;
	char *body = ask_task(id, "{\"cmd\":\"tree\"}\n", &len);
	if (!body)
		return error(c, 404, "no such task");
	return reply(c, 200, "application/json", body, len);
}

/* An action: /api/tasks/ID/kill or /api/tasks/ID/cancel. */
static bool is_action(const char *url)
{
	if (strncmp(url, "/api/tasks/", 11))
		return false;
	const char *slash = strchr(url + 11, '/');
	return slash && (!strcmp(slash, "/kill") || !strcmp(slash, "/cancel"));
}

static bool has_body(struct MHD_Connection *c)
{
	const char *n = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding") ||
	       (n && strspn(n, "0") != strlen(n));
}

static void headers_in(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *i =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	pthread_mutex_lock(&S.lock);
	if (i && i->socket_context)
		((struct hconn *)i->socket_context)->since_ms = 0;
	pthread_mutex_unlock(&S.lock);
}

/* The checks on the headers alone, before anything else: false to go on,
 * else the refusal is queued in *ret. */
static bool refused(struct MHD_Connection *c, const char *url, const char *method,
		    enum MHD_Result *ret)
{
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	if (!host_ok(c))
		*ret = error(c, 403, "the Host header does not name this server");
	else if (!origin_ok(c))
		*ret = error(c, 403, "a request from another origin");
	else if (has_body(c))
		*ret = error(c, 413, "no request body is taken");
	else if (is_action(url) && strcmp(method, "POST"))
		*ret = error_h(c, 405, "an action is POST only", "Allow", "POST");
	else if (is_action(url) && !S.control)
		*ret = error(c, 403, "read-only: serve runs without --allow-control");
	else if (is_action(url) && !token_ok(c))
		*ret = error_h(c, 401, "Authorization: Bearer TOKEN (--token-file) needed",
			       "WWW-Authenticate", "Bearer");
	else if (!is_action(url) && !get)
		*ret = error_h(c, 405, "GET only", "Allow", "GET, HEAD");
	else
		return false;
	return true;
}

/* A refusal is decided on the headers alone, in the first call, so that a
 * refused request's body is never read; an accepted request has no body
 * (an action's arguments are in its query) and is answered in the second. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)cls, (void)version, (void)upload;
	enum MHD_Result ret = MHD_YES;
	if (!*con_cls) {
		*con_cls = c;
		headers_in(c);
		refused(c, url, method, &ret);
		return ret;
	}
	if (*upload_size)
		return MHD_NO;
	if (is_action(url) || !strncmp(url, "/api/tasks/", 11))
		return on_task(c, url + 11);
	if (!strcmp(url, "/metrics"))
		return on_metrics(c);
	if (!strcmp(url, "/") || !strcmp(url, "/index.html"))
		return on_page(c);
	size_t len = 0;
	if (!strcmp(url, "/api/tasks")) {
		char *body = tasks_json(&len);
		return body ? reply(c, 200, "application/json", body, len)
			    : error(c, 500, "out of memory");
	}
	return error(c, 404, "not found");
}

/* ---- setup and the loop ---------------------------------------------------------------------- */

static int parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535)
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	struct sockaddr_in *v4 = (struct sockaddr_in *)ret;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ret;
	memset(ret, 0, sizeof(*ret));
	size_t hl = strlen(host);
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) != 1)
			return -EINVAL;
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*ret_len = sizeof(*v6);
		S.loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
		return 0;
	}
	if (inet_pton(AF_INET, host, &v4->sin_addr) != 1)
		return -EINVAL;
	v4->sin_family = AF_INET;
	v4->sin_port = htons((uint16_t)port);
	*ret_len = sizeof(*v4);
	S.loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
	return 0;
}

static int watch(int fd, void *ptr)
{
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = ptr};
	return epoll_ctl(S.epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

static int setup_watch(int *ret_ino, int *ret_sig)
{
	const char *why = NULL;
	int r = control_default_dir(S.dir, sizeof(S.dir));
	if (r == 0)
		r = control_prepare_dir(S.dir, &why);
	if (r < 0)
		return say(-1, "control directory '%s': %s", S.dir, why ? why : strerror(-r));
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	S.epfd = epoll_create1(EPOLL_CLOEXEC);
	*ret_sig = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	*ret_ino = S.ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (S.epfd < 0 || *ret_sig < 0 || *ret_ino < 0 ||
	    !dir_add(D_TASKS, S.dir, geteuid(), -1))
		return say(-1, "watching %s: %s", S.dir, strerror(errno));
	if (watch(*ret_ino, &S.inotify_kind) < 0 || watch(*ret_sig, &S.signal_kind) < 0)
		return say(-1, "epoll: %s", strerror(errno));
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* MHD tells of each connection's accept and close.  It calls CLOSED before
 * it closes the fd, and both run under S.lock here, so cut_slow() never
 * shuts down an fd that is no longer this connection's. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)cls;
	pthread_mutex_lock(&S.lock);
	struct hconn *h = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *i =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (i && (h = calloc(1, sizeof(*h)))) {
			h->fd = i->connect_fd;
			h->since_ms = now_ms();
			h->next = S.hconns;
			if (h->next)
				h->next->prev = h;
			S.hconns = h;
			*socket_context = h;
		}
	} else if (h) {
		if (h->prev)
			h->prev->next = h->next;
		else
			S.hconns = h->next;
		if (h->next)
			h->next->prev = h->prev;
		free(h);
		*socket_context = NULL;
	}
	pthread_mutex_unlock(&S.lock);
}

/* A request answered: the connection's next request has its own time. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode code)
{
	(void)cls, (void)con_cls, (void)code;
	const union MHD_ConnectionInfo *i =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	pthread_mutex_lock(&S.lock);
	if (i && i->socket_context)
		((struct hconn *)i->socket_context)->since_ms = now_ms();
	pthread_mutex_unlock(&S.lock);
}

/* Cut the connections that took more than HTTP_HEADERS_MS to send a
 * request's headers: MHD's idle timeout never ends a client that sends a
 * byte now and then.  shutdown() wakes MHD, which then closes it. */
static void cut_slow(void)
{
	int64_t now = now_ms();
	for (struct hconn *h = S.hconns; h; h = h->next)
		if (h->since_ms && now - h->since_ms > HTTP_HEADERS_MS) {
			shutdown(h->fd, SHUT_RDWR);
			h->since_ms = 0;
			S.cut++;
		}
}

static void loop(int ino)
{
	int64_t last_ping = now_ms();
	for (;;) {
		struct epoll_event ev[32];
		/* Each second: the slow connections' check. */
		int n = epoll_wait(S.epfd, ev, 32, 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;
		pthread_mutex_lock(&S.lock);
		cut_slow();
		if (now_ms() - last_ping >= SSE_PING_MS) {
			sse_ping();
			last_ping = now_ms();
		}
		for (int i = 0; i < n; i++) {
			enum watch_kind *k = ev[i].data.ptr;
			if (*k == W_SIGNAL) {
				pthread_mutex_unlock(&S.lock);
				return;
			}
			if (*k == W_INOTIFY)
				inotify_read(ino);
			else if (!task_read((struct stask *)k))
				task_free((struct stask *)k); /* only this batch's own entry */
		}
		pthread_mutex_unlock(&S.lock);
	}
}

/* As many connections as the fd limit allows, up to HTTP_FDS_WANTED, so
 * that a burst of clients is answered rather than refused at accept. */
static unsigned connection_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < HTTP_FDS_WANTED) {
		rl.rlim_cur = rl.rlim_max < HTTP_FDS_WANTED ? rl.rlim_max : HTTP_FDS_WANTED;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < 256)
		return 128;
	return (unsigned)(rl.rlim_cur - 128); /* the rest: task sockets, asks */
}

static struct MHD_Daemon *start_http(const struct sockaddr_storage *sa)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
			 MHD_ALLOW_SUSPEND_RESUME;
	if (sa->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	return MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, sa,
				MHD_OPTION_CONNECTION_LIMIT, connection_limit(),
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
				MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
}

/* The token of --allow-control: a regular file of ours that no one else
 * may read or write (like ssh's keys), one line of at least TOKEN_MIN
 * bytes.  Returns 0 or the exit status after saying why. */
static int read_token(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			fd = util_close(fd);
		return say(EXIT_FAILED, "--token-file %s: %s", path, strerror(e));
	}
	const char *why = !S_ISREG(st.st_mode)	   ? "not a regular file"
			  : st.st_uid != geteuid() ? "not owned by the user serve runs as"
			  : st.st_mode & 077	   ? "readable or writable by others (chmod 600 it)"
						   : NULL;
	ssize_t n = why ? 0 : read(fd, S.token, sizeof(S.token));
	fd = util_close(fd);
	if (why)
		return say(EXIT_FAILED, "--token-file %s: %s", path, why);
	if (n < 0)
		return say(EXIT_FAILED, "--token-file %s: %s", path, strerror(errno));
	while (n > 0 && (S.token[n - 1] == '\n' || S.token[n - 1] == '\r'))
		n--;
	if (n < TOKEN_MIN || (size_t)n >= sizeof(S.token) || memchr(S.token, '\n', (size_t)n) ||
	    strlen(S.token) < (size_t)n) {
		memset(S.token, 0, sizeof(S.token));
		return say(EXIT_FAILED, "--token-file %s: one line of %d to %d bytes expected", path,
			   TOKEN_MIN, TOKEN_MAX - 1);
	}
	S.token[n] = '\0';
	S.token_len = (size_t)n;
	return 0;
}

static int usage(void)
{
	return say(EXIT_FAILED, "usage: ptmon serve [--listen ADDR:PORT] "
				"[--allow-control --token-file PATH] [-v]");
}

int serve_main(int argc, char **argv)
{
	const char *listen = SERVE_DEFAULT_LISTEN, *token = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--listen") && i + 1 < argc)
			listen = argv[++i];
		else if (!strcmp(argv[i], "--token-file") && i + 1 < argc)
			token = argv[++i];
		else if (!strcmp(argv[i], "--allow-control"))
			S.control = true;
		else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
			S.verbose = true;
		else
			return usage();
	}
	struct sockaddr_storage sa;
	socklen_t salen;
	if (parse_listen(listen, &sa, &salen) < 0)
		return say(EXIT_FAILED,
			   "--listen: '%s' is not ADDR:PORT (127.0.0.1:9464, [::1]:9464)", listen);
	snprintf(S.host, sizeof(S.host), "%.*s", (int)(strrchr(listen, ':') - listen), listen);
	if (S.control != !!token)
		return say(EXIT_FAILED, "--allow-control and --token-file go together");
	if (S.control && !S.loopback)
		return say(EXIT_FAILED, "--allow-control: only on a loopback --listen address (the "
					"token would cross the network in clear)");
	if (token && read_token(token))
		return EXIT_FAILED;
	int ino = -1, sig = -1;
	/* Event ids start from it: a Last-Event-ID of another serve (restarted)
	 * is never taken for one of ours. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(S.epoch, sizeof(S.epoch), "%" PRIx64,
		 (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
	/* Root may read every user's tasks, and an admin's dashboard wants them. */
	S.all_users = geteuid() == 0;
	if (setup_watch(&ino, &sig) < 0)
		return EXIT_FAILED;
	struct MHD_Daemon *d = start_http(&sa);
	if (!d)
		return say(EXIT_FAILED, "cannot listen on %s", listen);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	S.port = info ? info->port : 0;
	/* The first scan before the line that says serve is ready. */
	pthread_mutex_lock(&S.lock);
	scan_all();
	pthread_mutex_unlock(&S.lock);
	say(0, "serving http://%s:%u/metrics for the tasks in %s%s%s", S.host, S.port, S.dir,
	    S.all_users ? " and every user's" : "",
	    S.control ? "; control allowed with the token" : "");
	loop(ino);
	/* Streams end with their tasks' streams; MHD closes them. */
	pthread_mutex_lock(&S.lock);
	while (S.tasks)
		task_free(S.tasks);
	pthread_mutex_unlock(&S.lock);
	MHD_stop_daemon(d);
	for (size_t i = 0; i < REPORTS_KEPT; i++)
		free(S.reports[i].json);
	for (size_t i = 0; i < FINISHED_KEPT; i++)
		free(S.finished[i]);
	while (S.dirs)
		dir_free(S.dirs);
	ino = util_close(ino);
	sig = util_close(sig);
	S.epfd = util_close(S.epfd);
	return 0;
}
