/* SPDX-License-Identifier: MIT */
/* Control requests, and where control sockets live.  No I/O on clients here:
 * the parser is what tests/fuzz_control.c drives. */
#include "control.h"
#include "fdclose.h"
#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

/* Nesting beyond this is refused by the tokener: requests are flat. */
#define REQUEST_DEPTH 8

static int fail(struct control_error *err, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct control_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	err->code = code;
	return -EINVAL;
}

static bool only_space(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

/* The whole line must be one JSON value: json-c stops at the end of the
 * first value and would otherwise take "{} garbage". */
static struct json_object *parse_json(const char *line, size_t len, struct control_error *err)
{
	if (len > CONTROL_LINE_MAX || len > INT_MAX) {
		fail(err, "too_long", "request longer than %u bytes", CONTROL_LINE_MAX);
		return NULL;
	}
	if (memchr(line, '\0', len)) {
		fail(err, "invalid_json", "request is not valid JSON: NUL byte");
		return NULL;
	}
	struct json_tokener *tok = json_tokener_new_ex(REQUEST_DEPTH);
	if (!tok) {
		fail(err, "internal", "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	if (o && !only_space(line + end, len - end)) {
		json_object_put(o);
		o = NULL;
		fail(err, "invalid_json", "request is not valid JSON: trailing bytes");
	} else if (!o) {
		fail(err, "invalid_json", "request is not valid JSON: %s",
		     e == json_tokener_continue ? "incomplete" : json_tokener_error_desc(e));
	}
	json_tokener_free(tok);
	return o;
}

static int get_pid(struct json_object *req, pid_t *ret, struct control_error *err)
{
	struct json_object *v;
	if (!json_object_object_get_ex(req, "pid", &v))
		return fail(err, "missing_field", "kill needs \"pid\"");
	if (!json_object_is_type(v, json_type_int))
		return fail(err, "wrong_type", "\"pid\" must be an integer");
	errno = 0;
	int64_t pid = json_object_get_int64(v);
	if (pid == 1)
		return fail(err, "invalid_pid", "refusing to signal pid 1");
	if (pid < 1 || pid > INT_MAX || errno)
		return fail(err, "invalid_pid", "invalid pid %lld (must be above 1)",
			    (long long)pid);
	*ret = (pid_t)pid;
	return 0;
}

static int get_signal(struct json_object *req, int *ret, struct control_error *err)
{
	struct json_object *v;
	*ret = SIGTERM;
	if (!json_object_object_get_ex(req, "signal", &v))
		return 0;
	if (json_object_is_type(v, json_type_string)) {
		if (parse_signal(json_object_get_string(v), ret) < 0)
			return fail(err, "invalid_signal", "invalid signal name");
		return 0;
	}
	if (!json_object_is_type(v, json_type_int))
		return fail(err, "wrong_type", "\"signal\" must be a name or a number");
	int64_t s = json_object_get_int64(v);
	if (s < 0 || s > SIGRTMAX)
		return fail(err, "invalid_signal", "invalid signal number %lld", (long long)s);
	*ret = (int)s;
	return 0;
}

static int get_bool(struct json_object *req, const char *key, bool *ret, struct control_error *err)
{
	struct json_object *v;
	*ret = false;
	if (!json_object_object_get_ex(req, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return fail(err, "wrong_type", "\"%s\" must be true or false", key);
	*ret = json_object_get_boolean(v);
	return 0;
}

/* "format": "openmetrics" (the default) or "prometheus" (text 0.0.4). */
static int get_format(struct json_object *req, bool *ret_prometheus, struct control_error *err)
{
	struct json_object *v;
	if (!json_object_object_get_ex(req, "format", &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return fail(err, "wrong_type", "\"format\" must be a string");
	const char *s = json_object_get_string(v);
	if (strcmp(s, "prometheus") != 0 && strcmp(s, "openmetrics") != 0)
		return fail(err, "invalid_format",
			    "unknown format (known: openmetrics, prometheus)");
	*ret_prometheus = strcmp(s, "prometheus") == 0;
	return 0;
}

static const char *const cmd_names[] = {
	[CONTROL_INFO] = "info",     [CONTROL_TREE] = "tree",     [CONTROL_KILL] = "kill",
	[CONTROL_CANCEL] = "cancel", [CONTROL_FOLLOW] = "follow", [CONTROL_METRICS] = "metrics",
};

static int get_cmd(struct json_object *req, enum control_cmd *ret, struct control_error *err)
{
	struct json_object *v;
	if (!json_object_object_get_ex(req, "cmd", &v))
		return fail(err, "missing_field", "request needs \"cmd\"");
	if (!json_object_is_type(v, json_type_string))
		return fail(err, "wrong_type", "\"cmd\" must be a string");
	const char *s = json_object_get_string(v);
	for (size_t i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
		if (strcmp(s, cmd_names[i]) == 0) {
			*ret = (enum control_cmd)i;
			return 0;
		}
	return fail(err, "unknown_command",
		    "unknown command (known: info, tree, kill, cancel, "
		    "follow, metrics)");
}

static int parse_fields(struct json_object *req, struct control_request *r,
			struct control_error *err)
{
	if (!json_object_is_type(req, json_type_object))
		return fail(err, "invalid_request", "a request is a JSON object");
	int e = get_cmd(req, &r->cmd, err);
	if (e == 0 && r->cmd == CONTROL_KILL) {
		e = get_pid(req, &r->pid, err);
		if (e == 0)
			e = get_signal(req, &r->signal, err);
		if (e == 0)
			e = get_bool(req, "subtree", &r->subtree, err);
	}
	if (e == 0 && r->cmd == CONTROL_CANCEL)
		e = get_bool(req, "now", &r->now, err);
	if (e == 0 && r->cmd == CONTROL_METRICS)
		e = get_format(req, &r->prometheus, err);
	return e;
}

int control_parse_request(const char *line, size_t len, struct control_request *ret,
			  struct control_error *err)
{
	struct json_object *req = parse_json(line, len, err);
	if (!req)
		return -EINVAL;
	struct control_request r = {0};
	int e = parse_fields(req, &r, err);
	json_object_put(req);
	if (e == 0)
		*ret = r;
	return e;
}

/* ---- where sockets live ---------------------------------------------------- */

int control_default_dir(char *out, size_t size)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;
	if (xdg && xdg[0] == '/')
		n = snprintf(out, size, "%s/ptmon", xdg);
	else if (geteuid() == 0)
		n = snprintf(out, size, "/run/ptmon");
	else
		n = snprintf(out, size, "/tmp/ptmon-%u", (unsigned)geteuid());
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int control_check_dir(const char *dir, const char **why)
{
	struct stat st;
	if (lstat(dir, &st) < 0)
		return -errno;
	*why = !S_ISDIR(st.st_mode)     ? "not a directory"
	       : st.st_uid != geteuid() ? "owned by another user"
	       : (st.st_mode & 077)     ? "open to group or others (need mode 0700)"
					: NULL;
	return *why ? -EPERM : 0;
}

bool control_server_trusted(uid_t uid)
{
	return uid == geteuid() || uid == 0;
}

bool control_server_trusted_for(uid_t peer, uid_t owner)
{
	return peer == owner || peer == 0;
}

int control_users_root(const char *sub, char *out, size_t size)
{
	const char *root = getenv("PTMON_TEST_SCAN_ROOT");
	int n = snprintf(out, size, "%s%s", root && root[0] == '/' ? root : "", sub);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int control_name_uid(const char *name, const char *prefix, uid_t *ret_uid)
{
	size_t n = strlen(prefix);
	const char *d = name + n;
	if (strncmp(name, prefix, n) || !*d || strspn(d, "0123456789") != strlen(d) ||
	    strlen(d) > 10 || (d[0] == '0' && d[1]))
		return -EINVAL;
	unsigned long long u = strtoull(d, NULL, 10);
	if (u >= (uid_t)-1)
		return -EINVAL;
	*ret_uid = (uid_t)u;
	return 0;
}

/* O_NOFOLLOW: a symlink is refused (ELOOP) rather than followed, and the
 * checks are on the open directory, so that a rename after them does not
 * change what is read. */
int control_open_user_dir(const char *dir, uid_t uid, const char **why)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
		/* open() says ENOTDIR for a symlink too (O_DIRECTORY first). */
		*why = lstat(dir, &st) == 0 && S_ISLNK(st.st_mode) ? "a symlink, not followed"
								   : "not a directory";
		return -EPERM;
	}
	int r;
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	*why = st.st_uid != uid && st.st_uid != 0
		       ? "owned by another user than the one its path names"
	       : st.st_mode & 077 ? "open to group or others (not mode 0700)"
				  : NULL;
	if (*why) {
		r = -EPERM;
		goto out;
	}
	r = fd;
	fd = -1;
out:
	util_close(fd);
	return r;
}

int control_check_user_socket(int dirfd, const char *name, uid_t uid, const char **why)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	*why = !S_ISSOCK(st.st_mode) ? "not a socket"
	       : st.st_uid != uid    ? "owned by another user than its directory's"
				     : NULL;
	return *why ? -EPERM : 0;
}

int control_prepare_dir(const char *dir, const char **why)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return control_check_dir(dir, why);
}

static pid_t ptmon_pid;

void control_set_ptmon_pid(pid_t pid)
{
	ptmon_pid = pid;
}

pid_t control_ptmon_pid(void)
{
	return ptmon_pid > 0 ? ptmon_pid : getpid();
}

int control_make_id(char *out, size_t size)
{
	uint32_t rnd;
	ssize_t n;
	do
		n = getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(rnd))
		return n < 0 ? -errno : -EIO;
	int len = snprintf(out, size, "%d-%08x", (int)control_ptmon_pid(), (unsigned)rnd);
	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : 0;
}

int control_resolve(const char *id, char *out, size_t size)
{
	if (strchr(id, '/')) {
		size_t n = strlen(id);
		if (n >= size)
			return -ENAMETOOLONG;
		memcpy(out, id, n + 1);
		return 0;
	}
	if (!*id ||
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
		    strlen(id) ||
	    id[0] == '.')
		return -EINVAL;
	char dir[256];
	int r = control_default_dir(dir, sizeof(dir));
	if (r < 0)
		return r;
	int n = snprintf(out, size, "%s/%s.sock", dir, id);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int control_connect(const char *path, uid_t owner, int timeout_s, uid_t *ret_uid)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A server that never accepts leaves connect() blocked on a full
	 * backlog: bound it. */
	struct timeval tv = {.tv_sec = timeout_s};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int r = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		r = -errno;
	else if (!control_server_trusted_for(cr.uid, owner)) {
		if (ret_uid)
			*ret_uid = cr.uid;
		r = -EPERM;
	}
	if (r < 0) {
		fd = util_close(fd);
		return r == -EAGAIN ? -ETIMEDOUT : r;
	}
	return fd;
}
