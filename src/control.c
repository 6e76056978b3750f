/* SPDX-License-Identifier: MIT */
/*
 * The control socket's server: one epoll fd holding the listening socket and
 * every client, each registration pointing at a small tagged watch.  Clients
 * are non-blocking with bounded buffers: a request line is at most
 * CONTROL_LINE_MAX bytes, and a client's requests are not read while more
 * than REPLY_HIGH bytes of replies wait for it; a follower gets events only
 * while fewer than CONTROL_OUT_MAX bytes wait, then a "lost" line.
 *
 * The monitor shares ptmon's loop, so no client may hold it: a reply that
 * walks the tree (info, tree, metrics) is a job that goes a few processes at
 * a time, a tree reply is written as the client takes it (JOB_LOW), each loop
 * turn gives all clients together at most TURN_BUDGET_NS, and what is left
 * keeps an eventfd readable so that the loop comes back at once after the
 * monitor's turn.  All clients together hold at most CONTROL_TOTAL_MAX bytes
 * of replies and events.
 */
#include "control.h"
#include "fdclose.h"
#include "expo.h"
#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define REPLY_HIGH (64u * 1024u) /* stop reading requests above this */
#define READ_CHUNK (16u * 1024u)
#define IN_SIZE (CONTROL_LINE_MAX + 1 + READ_CHUNK)
#define JOB_LOW (64u * 1024u)     /* build more of a reply while less waits */
#define EXITED_KEPT 4096          /* pids of ended processes `kill` remembers */
#define JOB_SLICE 32              /* processes sampled per client per pass */
#define TURN_BUDGET_NS 2000000ull /* control work per loop turn, all clients */

enum watch_kind { WATCH_LISTEN, WATCH_CLIENT, WATCH_MORE };

/* What a reply that walks the task's processes has gathered so far. */
struct census {
	uint64_t now;
	uint64_t live, processes, forks;
	uint64_t exits[4]; /* exited, signaled, killed_by_ptmon, unknown */
	double cpu_s;
	uint64_t rss_bytes;
	uint64_t records; /* in memory: the live, and ended ones not yet dropped */
	bool sample;      /* read /proc for live processes */
};

/* What the ended processes add up to, counted from their events: their
 * records are dropped once their exit is delivered (unless a report or a
 * summary holds them), so a walk finds only the live ones and the few not
 * yet swept. */
struct totals {
	uint64_t processes, forks;
	uint64_t exits[4]; /* as in struct census */
	double cpu_s;
};

/* A request being answered across loop turns. */
struct job {
	bool active;
	enum control_cmd cmd;            /* INFO, TREE or METRICS */
	const struct ptmon_process *cur; /* the last process walked, NULL: none */
	uint64_t cur_id;                 /* its id: processes up to it were walked */
	struct ptmon_task *held;         /* records held for the walk, NULL: none */
	/* Exits delivered during the walk of processes it had passed: the
	 * walk counted them live already, the totals must not again. */
	struct totals skip;
	bool items; /* TREE: an element was written */
	struct census cs;
	bool prometheus; /* METRICS: text format 0.0.4, not OpenMetrics */
};

struct client {
	enum watch_kind kind; /* first: epoll data.ptr points here */
	struct control *ctl;
	struct client *next;
	int fd;
	uint32_t armed; /* epoll events registered */
	bool dead;      /* close at the end of the batch */
	bool eof;       /* the peer shut its side down */
	bool closing;   /* no more requests: flush, then close */
	bool heard;     /* a byte came from the peer */
	bool following;
	bool pending; /* a complete request line waits in in[] */
	struct job job;
	char *in;
	size_t inlen;
	char *out;
	size_t outoff, outlen, outcap;
	uint64_t dropped; /* events not sent since the last "lost" line */
};

struct control {
	enum watch_kind kind;
	enum watch_kind more_kind; /* the tag of morefd */
	int epfd, lfd, morefd;     /* morefd: readable while work is left */
	bool more;
	uint64_t turn_end; /* CLOCK_MONOTONIC end of this turn's budget */
	size_t total_out;  /* bytes waiting for all clients */
	struct client *rr; /* where the next turn's work starts */
	bool accept_paused;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char id[CONTROL_ID_MAX];
	ino_t ino;
	dev_t dev;
	struct ptmon_task *task;
	const struct run_info *ri;
	struct client *clients;
	size_t nclients;
	uint64_t execs, events_lost;
	struct totals tot;
	/* The pids of the last EXITED_KEPT processes that ended, so that a
	 * `kill` of one answers "exited" after its record was dropped. */
	pid_t exited[EXITED_KEPT];
	uint64_t nexited;
	bool cancel_requested;
	char *start_line; /* the "start" event, sent first to every follower */
	size_t start_len;
	char *done_line; /* the "done" event, for who follows after it */
	size_t done_len;
};

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the listening socket ----------------------------------------------------- */

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);
	if (n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	*sa = (struct sockaddr_un){.sun_family = AF_UNIX};
	memcpy(sa->sun_path, path, n + 1);
	return 0;
}

/* Is the socket at @path left by a ptmon that is gone?  A connect() that is
 * refused says nobody listens.  Returns 1 (stale), 0 (live) or -errno. */
static int socket_is_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 1 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	fd = util_close(fd);
	if (r == 0 || e == EAGAIN) /* EAGAIN: listening, backlog full */
		return 0;
	return e == ECONNREFUSED ? 1 : -e;
}

static int bind_under_umask(int fd, const struct sockaddr_un *sa)
{
	mode_t old = umask(0177); /* sockets are created 0777 & ~umask: 0600 */
	int r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	umask(old);
	return r < 0 ? -e : 0;
}

static int listen_on(struct control *c, const char *path)
{
	struct sockaddr_un sa;
	int r = fill_addr(&sa, path);
	if (r < 0)
		return r;
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->lfd < 0)
		return -errno;
	r = bind_under_umask(c->lfd, &sa);
	if (r == -EADDRINUSE) {
		int stale = socket_is_stale(&sa);
		if (stale <= 0)
			return stale == 0 ? -EADDRINUSE : stale;
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
		r = bind_under_umask(c->lfd, &sa);
	}
	if (r < 0)
		return r;
	struct stat st;
	if (lstat(path, &st) == 0) {
		c->ino = st.st_ino;
		c->dev = st.st_dev;
	}
	memcpy(c->path, path, strlen(path) + 1);
	return listen(c->lfd, 128) < 0 ? -errno : 0;
}

static int watch_add(struct control *c, int fd, void *ptr, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = ptr};
	return epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int control_open(struct control **ret, const char *path, const char *task_id)
{
	struct control *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->kind = WATCH_LISTEN;
	c->more_kind = WATCH_MORE;
	c->lfd = -1;
	c->epfd = -1;
	c->morefd = -1;
	snprintf(c->id, sizeof(c->id), "%s", task_id);
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	c->morefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int r = c->epfd < 0 || c->morefd < 0 ? -errno : listen_on(c, path);
	if (r < 0)
		goto out;
	r = watch_add(c, c->lfd, c, EPOLLIN);
	if (r < 0)
		goto out;
	r = watch_add(c, c->morefd, &c->more_kind, EPOLLIN);
	if (r < 0)
		goto out;
	*ret = c;
	c = NULL;
out:
	control_free(c, 0);
	return r;
}

void control_attach(struct control *c, struct ptmon_task *t, const struct run_info *ri)
{
	c->task = t;
	c->ri = ri;
}

int control_get_fd(const struct control *c)
{
	return c->epfd;
}

/* ---- client buffers -------------------------------------------------------------- */

static void client_rearm(struct client *cl)
{
	if (cl->dead)
		return;
	/* Not with a full input buffer: level-triggered, it would spin. */
	bool reading = !cl->closing && !cl->eof && cl->outlen < REPLY_HIGH && cl->inlen < IN_SIZE;
	uint32_t want = (reading ? EPOLLIN : 0) | (cl->outlen ? EPOLLOUT : 0);
	if (want == cl->armed)
		return;
	struct epoll_event ev = {.events = want, .data.ptr = cl};
	if (epoll_ctl(cl->ctl->epfd, EPOLL_CTL_MOD, cl->fd, &ev) < 0)
		cl->dead = true;
	else
		cl->armed = want;
}

static void client_flush(struct client *cl)
{
	while (cl->outlen && !cl->dead) {
		ssize_t n =
			send(cl->fd, cl->out + cl->outoff, cl->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			cl->dead = true; /* EPIPE, ECONNRESET: the reader is gone */
			break;
		}
		cl->outoff += (size_t)n;
		cl->outlen -= (size_t)n;
		cl->ctl->total_out -= (size_t)n;
	}
	if (!cl->outlen)
		cl->outoff = 0;
	/* A peer that shut its side still gets the replies it asked for. */
	bool asked = cl->job.active || cl->pending;
	if (!cl->outlen && (cl->closing || (cl->eof && !cl->following && !asked)))
		cl->dead = true;
}

/* Room for @n more bytes; @bound: fail rather than go past CONTROL_OUT_MAX
 * for this client or CONTROL_TOTAL_MAX for all. */
static bool client_reserve(struct client *cl, size_t n, bool bound)
{
	if (bound &&
	    (cl->outlen + n > CONTROL_OUT_MAX || cl->ctl->total_out + n > CONTROL_TOTAL_MAX))
		return false;
	if (cl->outoff && cl->outoff + cl->outlen + n > cl->outcap) {
		memmove(cl->out, cl->out + cl->outoff, cl->outlen);
		cl->outoff = 0;
	}
	if (cl->outlen + n <= cl->outcap)
		return true;
	size_t cap = cl->outcap ? cl->outcap : 4096;
	while (cap < cl->outlen + n)
		cap *= 2;
	char *p = realloc(cl->out, cap);
	if (!p)
		return false;
	cl->out = p;
	cl->outcap = cap;
	return true;
}

static bool client_append(struct client *cl, const char *s, size_t n, bool bound)
{
	if (cl->dead || !client_reserve(cl, n, bound))
		return false;
	memcpy(cl->out + cl->outoff + cl->outlen, s, n);
	cl->outlen += n;
	cl->ctl->total_out += n;
	return true;
}

static void client_send_json(struct client *cl, struct json_object *o)
{
	size_t n;
	const char *s = json_object_to_json_string_length(o, JSON_FLAGS, &n);
	if (!client_append(cl, s, n, false) || !client_append(cl, "\n", 1, false))
		cl->closing = true; /* out of memory: this client cannot be answered */
	json_object_put(o);
}

static void reply_error(struct client *cl, const char *code, const char *message)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(message));
	json_object_object_add(o, "code", json_object_new_string(code));
	client_send_json(cl, o);
}

static struct json_object *reply_ok(void)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

/* ---- what a live process looks like now ------------------------------------------ */

/* The figures are informational: a process that ends meanwhile reads as
 * '?' and zeros (the library proves the rest is the tracked process's). */
static void sample_of(const struct ptmon_process *proc, struct ptmon_process_sample *ret)
{
	if (ptmon_process_sample(proc, ret) < 0)
		*ret = (struct ptmon_process_sample){.size = sizeof(*ret), .state = '?'};
}

/* ---- requests ------------------------------------------------------------------- */

static bool over_budget(const struct control *c)
{
	return now_ns(CLOCK_MONOTONIC) >= c->turn_end;
}

static struct json_object *live_json(const struct ptmon_process_info *p,
				     const struct ptmon_process_sample *pn, uint64_t now)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "pid", json_object_new_int(p->pid));
	json_object_object_add(o, "ppid", json_object_new_int(p->ppid));
	json_object_object_add(o, "id", json_object_new_int64((int64_t)p->id));
	json_object_object_add(o, "parent_id", json_object_new_int64((int64_t)p->parent_id));
	json_object_object_add(o, "comm", json_bytes(p->comm, strnlen(p->comm, sizeof(p->comm))));
	json_add_argv(o, p->argv, p->argv_len, p->argv_truncated);
	char st[2] = {pn->state, '\0'};
	json_object_object_add(o, "state", json_object_new_string(st));
	json_object_object_add(o, "age_ns",
			       json_object_new_int64((int64_t)(now - p->start_mono_ns)));
	json_object_object_add(o, "cpu_s", json_object_new_double((double)pn->cpu_us / 1e6));
	json_object_object_add(o, "rss_bytes", json_object_new_int64((int64_t)pn->rss_bytes));
	return o;
}

/* One element of a tree reply, written straight to the client. */
static void tree_item(struct client *cl, const struct ptmon_process_info *p,
		      const struct ptmon_process_sample *pn)
{
	struct json_object *o = live_json(p, pn, cl->job.cs.now);
	size_t n;
	const char *s = json_object_to_json_string_length(o, JSON_FLAGS, &n);
	if ((cl->job.items && !client_append(cl, ",", 1, false)) || !client_append(cl, s, n, false))
		cl->dead = true; /* out of memory, half a reply sent: nothing to save */
	cl->job.items = true;
	json_object_put(o);
}

/* Count @proc in the job's census; a live one of a tree reply is written
 * out.  Returns true when /proc was read (the costly part). */
static bool census_one(struct client *cl, const struct ptmon_process *proc)
{
	struct census *cs = &cl->job.cs;
	struct ptmon_process_info p = {.size = sizeof(p)};
	if (ptmon_process_get_info(proc, &p) < 0)
		return false;
	cl->job.cur_id = p.id;
	cs->records++;
	if (p.end != PTMON_END_RUNNING)
		return false; /* in the totals (struct totals) */
	cs->live++;
	if (!cs->sample)
		return false;
	struct ptmon_process_sample pn = {.size = sizeof(pn)};
	sample_of(proc, &pn);
	cs->cpu_s += (double)pn.cpu_us / 1e6;
	cs->rss_bytes += pn.rss_bytes;
	if (cl->job.cmd == CONTROL_TREE)
		tree_item(cl, &p, &pn);
	return true;
}

static void do_info(struct client *cl)
{
	struct control *c = cl->ctl;
	const struct census *cs = &cl->job.cs;
	struct json_object *o = reply_ok();
	json_object_object_add(o, "id", json_object_new_string(c->id));
	json_object_object_add(o, "pid", json_object_new_int(control_ptmon_pid()));
	json_object_object_add(o, "root_pid", json_object_new_int(ptmon_task_root_pid(c->task)));
	struct json_object *argv = json_object_new_array();
	for (size_t i = 0; c->ri->argv[i]; i++)
		json_object_array_add(argv, json_bytes(c->ri->argv[i], strlen(c->ri->argv[i])));
	json_object_object_add(o, "argv", argv);
	if (c->ri->name)
		json_object_object_add(o, "name", json_bytes(c->ri->name, strlen(c->ri->name)));
	json_object_object_add(o, "backend", json_object_new_string(c->ri->backend));
	const struct ptmon_process *root =
		ptmon_task_find_process(c->task, ptmon_task_root_pid(c->task));
	struct ptmon_process_info ri = {.size = sizeof(ri)};
	if (root && ptmon_process_get_info(root, &ri) == 0) {
		json_object_object_add(o, "start_unix_ns",
				       json_object_new_int64((int64_t)ri.start_wall_ns));
		json_add_time(o, "start_time", ri.start_wall_ns);
		json_object_object_add(
			o, "age_ns", json_object_new_int64((int64_t)(cs->now - ri.start_mono_ns)));
	}
	json_object_object_add(o, "live", json_object_new_int64((int64_t)cs->live));
	json_object_object_add(o, "processes", json_object_new_int64((int64_t)cs->processes));
	json_object_object_add(o, "records", json_object_new_int64((int64_t)cs->records));
	json_object_object_add(o, "cancelling", json_object_new_boolean(c->cancel_requested));
	size_t followers = 0;
	for (struct client *x = c->clients; x; x = x->next)
		followers += x->following && !x->dead;
	json_object_object_add(o, "followers", json_object_new_int64((int64_t)followers));
	client_send_json(cl, o);
}

static bool recently_exited(const struct control *c, pid_t pid)
{
	uint64_t n = c->nexited < EXITED_KEPT ? c->nexited : EXITED_KEPT;
	for (uint64_t i = 0; i < n; i++)
		if (c->exited[i] == pid)
			return true;
	return false;
}

static void do_kill(struct client *cl, const struct control_request *rq)
{
	char msg[128];
	if (rq->pid == control_ptmon_pid() || rq->pid == getpid()) {
		snprintf(msg, sizeof(msg), "pid %d is ptmon itself", (int)rq->pid);
		reply_error(cl, "invalid_pid", msg);
		return;
	}
	int r = ptmon_task_kill(cl->ctl->task, rq->pid, rq->signal,
				rq->subtree ? PTMON_KILL_SUBTREE : 0);
	if (r == -ENOENT && recently_exited(cl->ctl, rq->pid))
		r = -ESRCH; /* its record is dropped already */
	if (r >= 0) {
		struct json_object *o = reply_ok();
		json_object_object_add(o, "signalled", json_object_new_int(r));
		client_send_json(cl, o);
		return;
	}
	const char *code = r == -ENOENT   ? "not_in_tree"
			   : r == -ESRCH  ? "exited"
			   : r == -EINVAL ? "invalid_signal"
					  : "system_error";
	if (r == -ENOENT)
		snprintf(msg, sizeof(msg), "pid %d is not in the task's tree", (int)rq->pid);
	else if (r == -ESRCH)
		snprintf(msg, sizeof(msg), "pid %d has exited", (int)rq->pid);
	else
		snprintf(msg, sizeof(msg), "signal %d to pid %d: %s", rq->signal, (int)rq->pid,
			 strerror(-r));
	reply_error(cl, code, msg);
}

static void do_cancel(struct client *cl, bool now)
{
	int r = ptmon_task_cancel(cl->ctl->task, PTMON_CANCEL_REQUEST,
				  now ? PTMON_CANCEL_NOW : PTMON_CANCEL_GRACEFUL);
	if (r < 0) {
		char msg[96];
		snprintf(msg, sizeof(msg), "cancel: %s", strerror(-r));
		reply_error(cl, "system_error", msg);
		return;
	}
	cl->ctl->cancel_requested = true;
	client_send_json(cl, reply_ok());
}

static char *metrics_text(struct control *c, const struct census *cs, bool om)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	char name[256], l[CONTROL_ID_MAX + sizeof(name) + 32];
	expo_label_value(c->ri->name ? c->ri->name : "", name, sizeof(name));
	snprintf(l, sizeof(l), "task=\"%s\",name=\"%s\"", c->id, name);
	expo_family(f, "ptmon_live_processes", "gauge", "Processes of the task's tree alive now.",
		    om);
	fprintf(f, "ptmon_live_processes{%s} %" PRIu64 "\n", l, cs->live);
	expo_family(f, "ptmon_forks", "counter",
		    "Processes the task's tree forked (root excluded).", om);
	fprintf(f, "ptmon_forks_total{%s} %" PRIu64 "\n", l, cs->forks);
	expo_family(f, "ptmon_execs", "counter", "Execs seen in the task's tree.", om);
	fprintf(f, "ptmon_execs_total{%s} %" PRIu64 "\n", l, c->execs);
	expo_family(f, "ptmon_exits", "counter", "Processes of the tree that ended, by outcome.",
		    om);
	static const char *const outcome[] = {"exited", "signaled", "killed_by_ptmon", "unknown"};
	for (int i = 0; i < 4; i++)
		fprintf(f, "ptmon_exits_total{%s,outcome=\"%s\"} %" PRIu64 "\n", l, outcome[i],
			cs->exits[i]);
	expo_family(f, "ptmon_cpu_seconds", "counter",
		    "CPU time of the tree: ended processes' accounting plus live ones' so far.",
		    om);
	fprintf(f, "ptmon_cpu_seconds_total{%s} %.6f\n", l, cs->cpu_s);
	expo_family(f, "ptmon_memory_bytes", "gauge",
		    "Resident memory of the live processes, summed.", om);
	fprintf(f, "ptmon_memory_bytes{%s} %" PRIu64 "\n", l, cs->rss_bytes);
	expo_family(f, "ptmon_events_lost", "counter",
		    "Kernel events lost (overruns, sequence gaps).", om);
	fprintf(f, "ptmon_events_lost_total{%s} %" PRIu64 "\n", l, c->events_lost);
	expo_end(f, om);
	return fclose(f) == 0 ? text : (free(text), NULL);
}

static void do_metrics(struct client *cl)
{
	char *text = metrics_text(cl->ctl, &cl->job.cs, !cl->job.prometheus);
	if (!text) {
		reply_error(cl, "system_error", "out of memory");
		return;
	}
	struct json_object *o = reply_ok();
	json_object_object_add(o, "metrics", json_object_new_string(text));
	free(text);
	client_send_json(cl, o);
}

/* ---- jobs: replies that walk the tree --------------------------------------------- */

#define TREE_HEAD "{\"ok\":true,\"processes\":["
#define TREE_TAIL "]}\n"

/* The records a walk passes stay until it ends: its cursor points at
 * one, and a sweep between two of its slices would free it. */
static void job_hold(struct client *cl, bool hold)
{
	if (hold && !cl->job.held && cl->ctl->task) {
		cl->job.held = cl->ctl->task;
		ptmon_task_hold_records(cl->job.held);
	} else if (!hold && cl->job.held) {
		ptmon_task_release_records(cl->job.held);
		cl->job.held = NULL;
	}
}

static void job_start(struct client *cl, enum control_cmd cmd)
{
	cl->job =
		(struct job){.active = true,
			     .cmd = cmd,
			     .cs = {.now = now_ns(CLOCK_MONOTONIC), .sample = cmd != CONTROL_INFO}};
	if (cmd == CONTROL_TREE && !client_append(cl, TREE_HEAD, strlen(TREE_HEAD), false)) {
		cl->job.active = false;
		cl->closing = true;
		return;
	}
	job_hold(cl, true);
}

/* The census of a walk: its live processes, and the ended ones' totals
 * less those it counted live. */
static void job_census(struct client *cl)
{
	struct census *cs = &cl->job.cs;
	const struct totals *t = &cl->ctl->tot, *skip = &cl->job.skip;
	cs->processes = t->processes;
	cs->forks = t->forks;
	for (int k = 0; k < 4; k++)
		cs->exits[k] = t->exits[k] - skip->exits[k];
	cs->cpu_s += t->cpu_s - skip->cpu_s;
}

static void job_finish(struct client *cl)
{
	cl->job.active = false;
	job_hold(cl, false);
	job_census(cl);
	if (cl->job.cmd == CONTROL_INFO)
		do_info(cl);
	else if (cl->job.cmd == CONTROL_METRICS)
		do_metrics(cl);
	else if (!client_append(cl, TREE_TAIL, strlen(TREE_TAIL), false))
		cl->dead = true;
}

/* A tree reply is written as the client takes it, within the bound of all. */
static bool job_can_run(const struct client *cl)
{
	return cl->job.cmd != CONTROL_TREE ||
	       (cl->outlen < JOB_LOW && cl->ctl->total_out < CONTROL_TOTAL_MAX);
}

/* Walk on until JOB_SLICE processes were sampled, the budget is spent or
 * the client must take what waits. */
static void job_run(struct client *cl)
{
	struct control *c = cl->ctl;
	int sampled = 0;
	while (cl->job.active && !cl->dead && sampled < JOB_SLICE && job_can_run(cl) &&
	       !over_budget(c)) {
		const struct ptmon_process *p =
			c->task ? ptmon_task_next_process(c->task, cl->job.cur) : NULL;
		if (!p) {
			job_finish(cl);
			break;
		}
		cl->job.cur = p;
		sampled += census_one(cl, p);
	}
}

/* A new follower gets the task's "start" first: the task started before
 * the loop read any request.  Asked for before the end, answered after it,
 * it gets "done" too, with the task's totals, and the stream is over. */
static void follow_replay(struct client *cl)
{
	const struct control *c = cl->ctl;
	if ((c->start_line && !client_append(cl, c->start_line, c->start_len, false)) ||
	    (c->done_line && !client_append(cl, c->done_line, c->done_len, false)))
		cl->dead = true;
	else if (c->done_line)
		cl->closing = true;
}

static void handle_request(struct client *cl, const char *line, size_t len)
{
	struct control_request rq;
	struct control_error err;
	if (control_parse_request(line, len, &rq, &err) < 0) {
		reply_error(cl, err.code, err.message);
		return;
	}
	switch (rq.cmd) {
	case CONTROL_INFO:
	case CONTROL_TREE:
	case CONTROL_METRICS:
		job_start(cl, rq.cmd);
		cl->job.prometheus = rq.prometheus;
		break;
	case CONTROL_KILL:
		do_kill(cl, &rq);
		break;
	case CONTROL_CANCEL:
		do_cancel(cl, rq.now);
		break;
	case CONTROL_FOLLOW:
		cl->following = true;
		client_send_json(cl, reply_ok());
		follow_replay(cl);
		break;
	}
}

/* Answer the complete lines that wait, one job at a time, while the
 * replies stay below REPLY_HIGH and the turn's budget lasts (unless
 * @now); the rest waits (cl->pending). */
static void process_lines(struct client *cl, bool now)
{
	size_t start = 0;
	while (!cl->dead && !cl->closing && !cl->job.active && cl->outlen < REPLY_HIGH &&
	       (now || !over_budget(cl->ctl))) {
		char *nl = memchr(cl->in + start, '\n', cl->inlen - start);
		if (!nl)
			break;
		size_t len = (size_t)(nl - (cl->in + start));
		if (len && cl->in[start + len - 1] == '\r')
			len--;
		if (len)
			handle_request(cl, cl->in + start, len);
		start = (size_t)(nl - cl->in) + 1;
	}
	memmove(cl->in, cl->in + start, cl->inlen - start);
	cl->inlen -= start;
	cl->pending = cl->inlen && memchr(cl->in, '\n', cl->inlen);
	if (cl->inlen > CONTROL_LINE_MAX && !cl->pending) {
		char msg[80];
		snprintf(msg, sizeof(msg), "request longer than %u bytes; closing",
			 CONTROL_LINE_MAX);
		reply_error(cl, "too_long", msg);
		cl->closing = true;
	}
}

static void client_read(struct client *cl)
{
	/* One line at most plus its newline, plus a chunk: bounded. */
	size_t room = IN_SIZE - cl->inlen;
	if (room > READ_CHUNK)
		room = READ_CHUNK;
	/* Replies wait, or a full line waits behind them: leave the rest in
	 * the socket (a recv of 0 bytes would read as EOF). */
	if (!room || cl->closing || cl->outlen >= REPLY_HIGH)
		return;
	ssize_t n;
	do
		n = recv(cl->fd, cl->in + cl->inlen, room, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n < 0)
		cl->dead = true;
	else if (n == 0)
		cl->eof = true;
	else
		cl->inlen += (size_t)n, cl->heard = true;
	process_lines(cl, false);
}

/* ---- connections ----------------------------------------------------------------- */

static void refuse(int fd, const char *code, const char *message)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "{\"ok\":false,\"error\":\"%s\",\"code\":\"%s\"}\n",
			 message, code);
	if (n > 0)
		(void)!send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	fd = util_close(fd);
}

/* Only our own user and root may talk to us; SO_PEERCRED is the peer's
 * credentials at connect(), which a later setuid cannot change. */
static bool peer_allowed(int fd, char *msg, size_t size)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		snprintf(msg, size, "permission denied: no peer credentials");
		return false;
	}
	if (cr.uid == geteuid() || cr.uid == 0)
		return true;
	snprintf(msg, size, "permission denied: uid %u", (unsigned)cr.uid);
	return false;
}

/* Takes @fd, whatever happens. */
static int client_new(struct control *c, int fd)
{
	int r;
	struct client *cl = calloc(1, sizeof(*cl));
	char *in = cl ? malloc(IN_SIZE) : NULL;
	if (!cl || !in) {
		refuse(fd, "system_error", "out of memory"); /* closes it */
		fd = -1;
		r = -ENOMEM;
		goto out;
	}
	*cl = (struct client){.kind = WATCH_CLIENT,
			      .ctl = c,
			      .fd = fd,
			      .in = in,
			      .armed = EPOLLIN,
			      .next = c->clients};
	r = watch_add(c, fd, cl, EPOLLIN);
	if (r < 0)
		goto out;
	c->clients = cl;
	c->nclients++;
	/* The list's now, with its buffer and its connection. */
	cl = NULL;
	in = NULL;
	fd = -1;
out:
	free(in);
	free(cl);
	util_close(fd);
	return r;
}

static void pause_accept(struct control *c, bool pause)
{
	if (c->accept_paused == pause)
		return;
	struct epoll_event ev = {.events = pause ? 0 : EPOLLIN, .data.ptr = c};
	if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, c->lfd, &ev) == 0)
		c->accept_paused = pause;
}

static void accept_all(struct control *c)
{
	char msg[96];
	for (int i = 0; i < 64; i++) {
		int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0 && errno == EINTR)
			continue;
		if (fd < 0) {
			/* Out of fds: stop accepting until a client goes,
			 * rather than spin on a listening socket that stays
			 * readable. */
			if (errno == EMFILE || errno == ENFILE)
				pause_accept(c, true);
			return;
		}
		if (!peer_allowed(fd, msg, sizeof(msg)))
			refuse(fd, "permission_denied", msg);
		else if (c->nclients >= CONTROL_CLIENTS_MAX)
			refuse(fd, "too_many_clients", "too many clients");
		else
			client_new(c, fd);
	}
}

static void client_free(struct client *cl)
{
	job_hold(cl, false);
	cl->ctl->total_out -= cl->outlen;
	epoll_ctl(cl->ctl->epfd, EPOLL_CTL_DEL, cl->fd, NULL);
	cl->fd = util_close(cl->fd);
	free(cl->in);
	free(cl->out);
	free(cl);
}

/* Dead clients are freed only here, after a batch: a request's handler can
 * emit events (a kill's "signal") that touch every follower. */
static void sweep(struct control *c)
{
	for (struct client **pp = &c->clients; *pp;) {
		struct client *cl = *pp;
		if (!cl->dead) {
			client_rearm(cl);
			pp = &cl->next;
			continue;
		}
		*pp = cl->next;
		c->nclients--;
		if (c->rr == cl)
			c->rr = cl->next;
		client_free(cl);
		pause_accept(c, false);
	}
}

static void client_ready(struct client *cl, uint32_t events)
{
	if (events & EPOLLOUT) {
		client_flush(cl);
		process_lines(cl, false); /* what waited behind the replies */
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !cl->eof && !cl->dead)
		client_read(cl);
	client_flush(cl);
	/* Both directions shut: nothing can reach the peer any more, and a
	 * hang-up stays reported whatever we arm. */
	if (events & (EPOLLHUP | EPOLLERR))
		cl->dead = true;
}

/* ---- work across turns ------------------------------------------------------------ */

static bool client_has_work(const struct client *cl)
{
	if (cl->dead)
		return false;
	if (cl->job.active)
		return job_can_run(cl);
	return cl->pending && !cl->closing && cl->outlen < REPLY_HIGH;
}

/* One client's share of a pass: a slice of its job, or its waiting lines. */
static bool work_one(struct client *cl)
{
	if (!client_has_work(cl))
		return false;
	if (cl->job.active) {
		job_run(cl);
		/* What waits behind a reply that walked the tree is taken in
		 * the same turn, whatever the budget: no event may come between
		 * the two, the monitor's work being between turns.  `ptmon
		 * serve` asks `info` and `follow` at once and counts what is
		 * alive from info's figures plus the events that follow: an
		 * event between them was lost to it (a fork missed, alive
		 * too low for the task's whole life).  The lines that wait are
		 * at most one read's; a job among them starts and waits. */
		if (!cl->job.active)
			process_lines(cl, true);
	} else {
		process_lines(cl, false);
	}
	client_flush(cl);
	return true;
}

/* Clients from @from up to @to (NULL: the end); stops where the budget
 * ends and remembers that client, to start there next turn. */
static bool work_range(struct control *c, struct client *from, struct client *to)
{
	bool did = false;
	for (struct client *cl = from; cl && cl != to; cl = cl->next) {
		if (over_budget(c)) {
			c->rr = cl;
			return did;
		}
		did |= work_one(cl);
	}
	return did;
}

/* Passes over all clients, from where the last turn stopped, until nothing
 * is left to do or the budget is spent. */
static void run_work(struct control *c)
{
	struct client *start = c->rr;
	c->rr = NULL;
	for (;;) {
		bool did = work_range(c, start ? start : c->clients, NULL);
		if (!c->rr && start)
			did |= work_range(c, c->clients, start);
		if (c->rr || !did)
			return;
		start = NULL;
	}
}

/* Keep morefd readable while a client has work left, so that ptmon's loop
 * comes back after the monitor's turn instead of sleeping. */
static void set_more(struct control *c)
{
	bool more = false;
	for (struct client *cl = c->clients; cl && !more; cl = cl->next)
		more = client_has_work(cl);
	if (more == c->more)
		return;
	uint64_t v = 1;
	ssize_t n;
	do
		n = more ? write(c->morefd, &v, sizeof(v)) : read(c->morefd, &v, sizeof(v));
	while (n < 0 && errno == EINTR);
	c->more = more;
}

int control_dispatch(struct control *c)
{
	struct epoll_event evs[64];
	int n;
	do
		n = epoll_wait(c->epfd, evs, 64, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	c->turn_end = now_ns(CLOCK_MONOTONIC) + TURN_BUDGET_NS;
	for (int i = 0; i < n; i++) {
		enum watch_kind *k = evs[i].data.ptr;
		if (*k == WATCH_LISTEN)
			accept_all(c);
		else if (*k == WATCH_CLIENT && !((struct client *)k)->dead)
			client_ready((struct client *)k, evs[i].events);
	}
	run_work(c);
	sweep(c);
	set_more(c);
	return 0;
}

/* ---- followers --------------------------------------------------------------------- */

/* An ended process into the totals, and out of the census of every walk
 * that had passed it. */
static void count_exit(struct control *c, const struct ptmon_process *proc)
{
	struct ptmon_process_info p = {.size = sizeof(p)};
	if (!proc || ptmon_process_get_info(proc, &p) < 0)
		return;
	int k = p.end == PTMON_END_EXITED     ? 0
		: p.end == PTMON_END_SIGNALED ? (p.killed_by_ptmon ? 2 : 1)
					      : 3;
	double cpu = (double)(p.utime_us + p.stime_us) / 1e6;
	c->exited[c->nexited++ % EXITED_KEPT] = p.pid;
	c->tot.exits[k]++;
	c->tot.cpu_s += cpu;
	for (struct client *cl = c->clients; cl; cl = cl->next)
		if (cl->job.active && cl->job.cur && p.id <= cl->job.cur_id) {
			cl->job.skip.exits[k]++;
			cl->job.skip.cpu_s += cpu;
		}
}

static void count_event(struct control *c, const struct ptmon_event *ev)
{
	if (ev->type == PTMON_EVENT_START || ev->type == PTMON_EVENT_FORK) {
		c->tot.processes++;
		c->tot.forks += ev->type == PTMON_EVENT_FORK;
	} else if (ev->type == PTMON_EVENT_EXIT) {
		count_exit(c, ev->process);
	} else if (ev->type == PTMON_EVENT_EXEC) {
		c->execs++;
	} else if (ev->type == PTMON_EVENT_LOST) {
		c->events_lost += ev->count;
	}
}

static char *lost_line(const struct control *c, uint64_t count, size_t *ret_len)
{
	struct ptmon_event ev = {
		.type = PTMON_EVENT_LOST, .count = count, .reason = "follower too slow"};
	ev.mono_ns = now_ns(CLOCK_MONOTONIC);
	ev.wall_ns = now_ns(CLOCK_REALTIME);
	return event_line(&ev, c->ri, ret_len);
}

static void follower_put(struct client *cl, const char *line, size_t n)
{
	char *lost = NULL;
	if (cl->dropped) {
		size_t ln = 0;
		lost = lost_line(cl->ctl, cl->dropped, &ln);
		if (!lost || cl->outlen + ln + n > CONTROL_OUT_MAX) {
			cl->dropped++;
			goto out;
		}
		client_append(cl, lost, ln, true);
		cl->dropped = 0;
	}
	if (!client_append(cl, line, n, true))
		cl->dropped++;
	else if (!(cl->armed & EPOLLOUT))
		client_flush(cl); /* no write pending: try at once */
out:
	free(lost);
}

void control_event(struct control *c, const struct ptmon_event *ev)
{
	if (!c)
		return;
	count_event(c, ev);
	char *line = NULL;
	size_t n = 0;
	for (struct client *cl = c->clients; cl; cl = cl->next) {
		if (!cl->following || cl->dead)
			continue;
		if (!line && !(line = event_line(ev, c->ri, &n)))
			return;
		follower_put(cl, line, n);
	}
	char **keep = ev->type == PTMON_EVENT_DONE    ? &c->done_line
		      : ev->type == PTMON_EVENT_START ? &c->start_line
						      : NULL;
	if (keep && !*keep && c->ri) {
		*keep = line ? line : event_line(ev, c->ri, &n);
		*(keep == &c->done_line ? &c->done_len : &c->start_len) = *keep ? n : 0;
		line = NULL;
	}
	free(line);
	/* libptmon calls back only from its dispatch, never from inside
	 * ptmon_task_kill() or _cancel() that a request made here: no
	 * request's handler is on the stack, and dead followers can go. */
	sweep(c);
}

/* ---- the end ------------------------------------------------------------------------ */

/* A follower that lost events and has room gets its "lost" line even when
 * no event follows any more. */
static void tell_lost(struct client *cl)
{
	size_t n = 0;
	char *lost = cl->following && cl->dropped ? lost_line(cl->ctl, cl->dropped, &n) : NULL;
	if (lost && client_append(cl, lost, n, true))
		cl->dropped = 0;
	free(lost);
}

/* What @cl still waits for at the end: a follower's events to go out, or,
 * from a peer that connected and has said nothing yet, its first request.
 * Other replies get what the socket takes at once: a client that asks for
 * trees and does not read them must not hold ptmon's exit. */
static short end_wait(const struct client *cl)
{
	if (cl->dead)
		return 0;
	if (cl->outlen)
		return cl->following ? POLLOUT : 0;
	return !cl->heard && !cl->eof && !cl->closing ? POLLIN : 0;
}

/* One pass at the end over @cl: read what came, answer it whole, send. */
static void end_pass(struct client *cl, short revents)
{
	if ((revents & (POLLIN | POLLHUP | POLLERR)) || !cl->heard)
		if (!cl->dead && !cl->eof)
			client_read(cl);
	while (work_one(cl))
		;
	client_flush(cl);
	tell_lost(cl);
	client_flush(cl);
}

/*
 * The task is over, but a request may have reached us after the loop's
 * last turn: a connection still in the backlog, a line still in a socket
 * (`ptmon serve` asks `info` and `follow` the moment the socket appears,
 * and a task of a few milliseconds ends before the loop comes back).  Each
 * gets its whole reply, a late `follow` the "done" event, within
 * @timeout_ms for all; the turn's budget no longer applies.
 */
static void finish_all(struct control *c, int timeout_ms)
{
	uint64_t end = now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ull;
	c->turn_end = UINT64_MAX;
	size_t before;
	do {
		before = c->nclients;
		accept_all(c);
	} while (c->nclients > before);
	struct pollfd p[CONTROL_CLIENTS_MAX];
	struct client *who[CONTROL_CLIENTS_MAX];
	nfds_t n = 0;
	for (;;) {
		for (struct client *cl = c->clients; cl; cl = cl->next) {
			short rev = 0;
			for (nfds_t i = 0; i < n; i++)
				rev = who[i] == cl ? p[i].revents : rev;
			end_pass(cl, rev);
		}
		n = 0;
		for (struct client *cl = c->clients; cl && n < CONTROL_CLIENTS_MAX; cl = cl->next)
			if (end_wait(cl)) {
				who[n] = cl;
				p[n++] = (struct pollfd){.fd = cl->fd, .events = end_wait(cl)};
			}
		uint64_t now = now_ns(CLOCK_MONOTONIC);
		if (!n || now >= end)
			break;
		if (poll(p, n, (int)((end - now) / 1000000ull) + 1) < 0 && errno != EINTR)
			break;
	}
}

/* Remove the socket only while it is the one we bound: someone may have
 * removed it and started another ptmon on the same path. */
static void unlink_ours(struct control *c)
{
	struct stat st;
	if (c->path[0] && lstat(c->path, &st) == 0 && st.st_ino == c->ino && st.st_dev == c->dev)
		unlink(c->path);
}

struct control *control_free(struct control *c, int timeout_ms)
{
	if (!c)
		return NULL;
	if (c->lfd >= 0)
		unlink_ours(c);
	if (timeout_ms > 0)
		finish_all(c, timeout_ms);
	while (c->clients) {
		struct client *cl = c->clients;
		c->clients = cl->next;
		client_free(cl);
	}
	if (c->lfd >= 0)
		c->lfd = util_close(c->lfd);
	if (c->epfd >= 0)
		c->epfd = util_close(c->epfd);
	if (c->morefd >= 0)
		c->morefd = util_close(c->morefd);
	free(c->start_line);
	free(c->done_line);
	free(c);
	return NULL;
}
