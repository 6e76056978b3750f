/* SPDX-License-Identifier: MIT */
/*
 * `ptmon serve`, between its files (private): the state they share under
 * S.lock, and what each gives the others.
 *   serve.c          the loop: signals, inotify, the tasks' sockets; main
 *   serve_follow.c   finding the tasks (ours, every user's as root) and
 *                    following them: what their events count, their reports
 *   serve_api.c      the JSON API and the Server-Sent Events
 *   serve_metrics.c  /metrics
 *   serve_http.c     HTTP: libmicrohttpd, the checks on every request
 */
#ifndef PTMON_SERVE_INT_H
#define PTMON_SERVE_INT_H

#include "serve.h"
#include "control.h"
#include "expo.h"
#include "fdclose.h"
#include "output.h"

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

#define NAMES_MAX 1024         /* beyond this, tasks count under name="_other" */
#define FINISHED_KEPT 64       /* recent done events kept for /api/tasks */
#define REPORTS_KEPT 32        /* recent reports kept for /api/tasks/ID/report */
#define REPORT_PROCS_MAX 4096  /* processes a kept report holds at most */
#define SSE_MAX 64             /* event streams open at once */
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
	int wd;    /* its inotify watch */
	int fd;    /* a user's D_TASKS: the checked directory; else -1 */
	uid_t uid; /* whose tasks (D_TASKS, D_UID) */
	char path[256];
};

struct stask {
	enum watch_kind kind; /* first: epoll data.ptr points here */
	int fd;
	char id[CONTROL_ID_MAX];
	char path[320]; /* its socket, for the API's own requests */
	uid_t uid;      /* its owner: the user of its directory */
	char user[64];  /* that user's name, or the uid in decimal */
	int phase;      /* 0: info reply awaited, 1: follow reply, 2: events */
	struct name_stats *ns;
	struct counts c;
	int64_t alive;
	pid_t root_pid;
	char *buf;
	size_t len, cap;
	struct json_object *procs; /* id -> the process as its events told it */
	size_t nprocs;
	bool saw_start;            /* followed from the start: the report is whole */
	bool truncated;            /* more than REPORT_PROCS_MAX processes */
	uint64_t lost_follow;      /* events this follower lost */
	struct json_object *start; /* the start event */
	struct sse *subs;          /* its event streams */
	uint64_t seq;              /* the id of its last event, 1 for the first */
	struct frame *ring;        /* its last frames, a circle: ids seq - nring + 1 .. seq */
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
	int fd;           /* MHD's; only shut down, never closed here */
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

/* serve's one state: the loop's thread and MHD's share it under lock. */
struct serve_state {
	pthread_mutex_t lock;
	char dir[256];
	int epfd, ino;
	struct sdir *dirs;
	bool all_users; /* root: every user's tasks too */
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
	char host[64];         /* the listen address as a Host header names it */
	bool control;          /* --allow-control */
	char token[TOKEN_MAX]; /* its token */
	size_t token_len;
	struct hconn *hconns; /* every open HTTP connection */
	uint64_t cut;         /* connections cut for slow headers */
	uint64_t events;      /* event lines followed, all tasks */
	char epoch[24];       /* this serve's, in every event id: another's ids are not ours */
};

extern struct serve_state S;

static inline uint64_t jget(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	int64_t x = json_object_get_int64(v);
	return x > 0 ? (uint64_t)x : 0;
}

static inline bool jbool(struct json_object *o, const char *key)
{
	struct json_object *v;
	return o && json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static inline const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* -v: what serve follows and what it skips, and why. */
#define note(...)                                                                                  \
	do {                                                                                       \
		if (S.verbose)                                                                     \
			serve_say(0, __VA_ARGS__);                                                 \
	} while (0)

/* ---- between serve's files ---- */

/* serve.c */
int serve_say(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* serve_follow.c: the directories, the tasks, what their events count */
struct stask *serve_task_find(const char *id);
void serve_task_free(struct stask *t);
void serve_scan_all(void);
void serve_inotify_read(int fd);
struct sdir *serve_dir_add(enum dir_kind kind, const char *path, uid_t uid, int fd);
void serve_dir_free(struct sdir *d);
bool serve_task_read(struct stask *t);

/* serve_api.c: the JSON API and the event streams */
void serve_sse_event(struct stask *t, const char *line);
void serve_sse_orphan_all(struct stask *t);
void serve_ring_free(struct stask *t);
void serve_sse_ping(void);
char *serve_tasks_json(size_t *ret_len);
enum MHD_Result serve_on_task(struct MHD_Connection *c, const char *rest);

/* serve_metrics.c */
enum MHD_Result serve_on_metrics(struct MHD_Connection *c);

/* serve_http.c: HTTP, its checks, its connections */
enum MHD_Result serve_reply(struct MHD_Connection *c, unsigned status, const char *type, char *body,
			    size_t len);
enum MHD_Result serve_error(struct MHD_Connection *c, unsigned status, const char *msg);
int serve_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len);
int64_t serve_now_ms(void);
void serve_cut_slow(void);
struct MHD_Daemon *serve_start_http(const struct sockaddr_storage *sa);
int serve_read_token(const char *path);

#endif
