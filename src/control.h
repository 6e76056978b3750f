/* SPDX-License-Identifier: MIT */
/*
 * The control socket of `ptmon run`: a unix stream socket on which clients
 * (`ptmon tree`, `ptmon kill`, ...) send newline-delimited JSON requests and
 * read one JSON line per request.  Protocol: docs/control.md.
 *
 * control_parse.c holds the request parser (pure, fuzzed) and the socket
 * directory and id helpers the client shares; control.c the server.
 */
#ifndef PTMON_CONTROL_H
#define PTMON_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "output.h"
#include "ptmon.h"

#define CONTROL_LINE_MAX (64u * 1024u) /* longest request line, newline excluded */
#define CONTROL_OUT_MAX (1u << 20)     /* event bytes waiting for one follower */
#define CONTROL_TOTAL_MAX (16u << 20)  /* reply and event bytes waiting, all clients */
#define CONTROL_CLIENTS_MAX 256        /* connections at once */
#define CONTROL_ID_MAX 32              /* task id, NUL included */

enum control_cmd {
	CONTROL_INFO,
	CONTROL_TREE,
	CONTROL_KILL,
	CONTROL_CANCEL,
	CONTROL_FOLLOW,
	CONTROL_METRICS,
};

struct control_request {
	enum control_cmd cmd;
	pid_t pid;       /* KILL */
	int signal;      /* KILL; SIGTERM when absent */
	bool subtree;    /* KILL */
	bool now;        /* CANCEL */
	bool prometheus; /* METRICS: "format":"prometheus" (text 0.0.4), not "openmetrics" */
};

/* An error reply: a code from docs/control.md and a sentence. */
struct control_error {
	const char *code;
	char message[192];
};

/*
 * Parse one request line (@len bytes, without the newline; need not be
 * NUL-terminated).  Checks everything that needs no state: JSON syntax, an
 * object, "cmd", each field's presence and type, pid > 1, the signal.
 * Returns 0 and fills *ret, or -EINVAL and fills *err (code and message).
 */
int control_parse_request(const char *line, size_t len, struct control_request *ret,
			  struct control_error *err);

/* The default socket directory: $XDG_RUNTIME_DIR/ptmon, else /run/ptmon
 * for root, else /tmp/ptmon-UID.  Returns 0 or -ENAMETOOLONG. */
int control_default_dir(char *out, size_t size);

/*
 * Create @dir with mode 0700 if it does not exist, then check that it is a
 * directory (not a symlink), owned by our euid, with no group or other
 * permission.  Returns 0, -EPERM (exists but unsafe: *why says how) or the
 * -errno of mkdir/lstat.
 */
int control_prepare_dir(const char *dir, const char **why);

/* The same checks without creating @dir: what a client applies before it
 * trusts a socket there.  Returns 0, -EPERM (*why says how) or -errno of
 * lstat (-ENOENT: no such directory). */
int control_check_dir(const char *dir, const char **why);

/* May a client trust a control server whose uid (SO_PEERCRED) is @uid?
 * Only one of its own user or root. */
bool control_server_trusted(uid_t uid);

/* ---- other users' directories, for root (serve, ls --all-users) ---- */

/* Where users' tasks put their sockets: <root>/run/user/UID/ptmon and
 * <root>/tmp/ptmon-UID, <root> being "" (PTMON_TEST_SCAN_ROOT, for the
 * tests only, moves both under a private directory).  Returns 0 or
 * -ENAMETOOLONG. */
int control_users_root(const char *sub, char *out, size_t size);

/* The uid that @name names when it is @prefix then decimal digits only
 * ("ptmon-" and "ptmon-1000", "" and "1000").  Returns 0 or -EINVAL. */
int control_name_uid(const char *name, const char *prefix, uid_t *ret_uid);

/*
 * Open @dir, a control directory of user @uid, if root may trust what it
 * holds: a directory itself (not a symlink, never followed), owned by @uid
 * or root, with no group or other permission.  Returns an O_DIRECTORY fd
 * (the caller's), -EPERM with *why, or -errno of open.
 */
int control_open_user_dir(const char *dir, uid_t uid, const char **why);

/* Is @name in the directory @dirfd a socket (not a symlink) owned by
 * @uid?  Returns 0, or -EPERM with *why, or -errno of fstatat. */
int control_check_user_socket(int dirfd, const char *name, uid_t uid, const char **why);

/* May a client trust a server (SO_PEERCRED @peer) in a directory of user
 * @owner?  Only @owner or root. */
bool control_server_trusted_for(uid_t peer, uid_t owner);
/* Connect to the control socket @path and check who serves it: another
 * user could have put a socket there to feed us fake replies.  The server
 * must be @owner or root (SO_PEERCRED); connect() waits @timeout_s at most.
 * Returns the fd, or -errno: -EPERM (and *ret_uid, when not NULL, the
 * server's uid), -ETIMEDOUT, -ECONNREFUSED, ... */
int control_connect(const char *path, uid_t owner, int timeout_s, uid_t *ret_uid);

/* The pid the caller knows as ptmon's: the front's (src/front.c), which
 * runs the task in a child, the worker.  The worker sets it; until then,
 * and without a front, it is getpid(). */
void control_set_ptmon_pid(pid_t pid);
pid_t control_ptmon_pid(void);

/* A new task id: "<ptmon pid>-<8 hex digits from getrandom>".  Returns 0
 * or -errno. */
int control_make_id(char *out, size_t size);

/* The socket path for @id_or_path: itself when it holds a '/', else
 * <default dir>/<id>.sock.  Returns 0, -EINVAL (an id with characters
 * other than [A-Za-z0-9._-]) or -ENAMETOOLONG. */
int control_resolve(const char *id_or_path, char *out, size_t size);

/* ---- the server (control.c) ---- */

struct control;

/*
 * Listen on @path (mode 0600: bound under umask 077).  A stale socket at
 * @path (connect() is refused) is removed and replaced; a live one is
 * -EADDRINUSE; something else than a socket is -EEXIST.  Returns 0 and
 * sets *ret, or -errno.
 */
int control_open(struct control **ret, const char *path, const char *task_id);

/* Serve @t from now on (NULL: not started yet, no request is read before it
 * is set); @ri (argv, backend) must outlive the control. */
void control_attach(struct control *c, struct ptmon_task *t, const struct run_info *ri);

/* An epoll fd to poll for readability, owned by the control. */
int control_get_fd(const struct control *c);

/* Accept, read, answer and write whatever is ready, without blocking.
 * Returns 0 or -errno (the epoll fd failed). */
int control_dispatch(struct control *c);

/* Count @ev for the metrics and send it to every follower (bounded). */
void control_event(struct control *c, const struct ptmon_event *ev);

/* Remove the socket (when it is still ours); then, within @timeout_ms for
 * all, answer every request that reached us (connections still in the
 * backlog included; a `follow` gets the "done" event) and let clients take
 * what waits; close every connection and free.  Accepts NULL; returns NULL. */
struct control *control_free(struct control *c, int timeout_ms);

/* ---- the client subcommands (client.c) ---- */

/* `ptmon ls|tree|kill|cancel|events|metrics ...`: argv[0] is the
 * subcommand.  Returns the exit status: 0, 1 (the server refused) or 125. */
int client_main(int argc, char **argv);

/* Is @name one of the client subcommands? */
bool client_is_command(const char *name);

#endif
