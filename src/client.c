/* SPDX-License-Identifier: MIT */
/* The client subcommands: ls, tree, kill, cancel, events, metrics.  Each
 * connects to a task's control socket, sends one request (docs/control.md)
 * and prints the reply for people. */
#include "control.h"
#include "fdclose.h"
#include "parse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum { EXIT_REFUSED = 1, EXIT_FAILED = 125 };

#define REPLY_TIMEOUT_MS 10000

static int say(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int say(int status, const char *fmt, ...)
{
	char line[1024], safe[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* What a task or its server says is never trusted with the terminal. */
	text_escape(line, strlen(line), safe, sizeof(safe));
	fprintf(stderr, "ptmon: %s\n", safe);
	return status;
}

/* ---- talking to a task -------------------------------------------------------- */

/* Connect to @path, and check who serves it: another user could have put
 * a socket there (a shared /tmp, a path given by someone else) to feed us
 * fake replies.  -EPERM and *ret_uid: the server is not of our user or
 * root. */
static int connect_path_of(const char *path, uid_t owner, int *ret_fd, uid_t *ret_uid)
{
	int fd = control_connect(path, owner, REPLY_TIMEOUT_MS / 1000, ret_uid);
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	return 0;
}

static int connect_path(const char *path, int *ret_fd, uid_t *ret_uid)
{
	return connect_path_of(path, geteuid(), ret_fd, ret_uid);
}

static int untrusted(const char *path, uid_t uid)
{
	return say(-1, "refusing %s: its server runs as uid %u, not as you (uid %u) or root", path,
		   (unsigned)uid, (unsigned)geteuid());
}

/* The default directory, checked as the server checks it before use. */
static int default_dir(char *dir, size_t size)
{
	const char *why = NULL;
	int r = control_default_dir(dir, size);
	if (r < 0)
		return say(r, "control directory: name too long");
	r = control_check_dir(dir, &why);
	if (r == -EPERM)
		return say(r, "control directory '%s': %s; refusing to trust its sockets", dir,
			   why);
	return r;
}

static int connect_id(const char *id, int *ret_fd)
{
	char path[256], dir[256];
	uid_t uid = 0;
	int r = control_resolve(id, path, sizeof(path));
	if (r == -EINVAL)
		return say(-1, "invalid task id '%s'", id);
	if (r < 0)
		return say(-1, "%s: %s", id, strerror(-r));
	if (!strchr(id, '/') && (r = default_dir(dir, sizeof(dir))) < 0 && r != -ENOENT)
		return -1;
	r = connect_path(path, ret_fd, &uid);
	if (r == -ENOENT)
		return say(-1, "no task '%s' (no socket %s)", id, path);
	if (r == -ECONNREFUSED)
		return say(-1, "task '%s' is not running (stale socket %s)", id, path);
	if (r == -EPERM)
		return untrusted(path, uid);
	if (r < 0)
		return say(-1, "cannot connect to %s: %s", path, strerror(-r));
	return 0;
}

static int send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read one line (the reply) into a growing buffer.  Bytes after it stay in
 * *buf from *ret_len + 1 to *ret_total. */
static int read_line(int fd, char **buf, size_t *ret_len, size_t *ret_total)
{
	size_t len = 0, cap = 0;
	char *b = NULL;
	int r;
	for (;;) {
		char *nl = b ? memchr(b, '\n', len) : NULL;
		if (nl) {
			*ret_len = (size_t)(nl - b);
			*ret_total = len;
			*buf = b;
			b = NULL;
			r = 0;
			goto out;
		}
		if (len + 65536 > cap) {
			char *p = realloc(b, cap = cap ? cap * 2 : 131072);
			if (!p) {
				r = -ENOMEM;
				goto out;
			}
			b = p;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, REPLY_TIMEOUT_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			r = -ETIMEDOUT;
			goto out;
		}
		ssize_t got = recv(fd, b + len, cap - len, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			r = got == 0 ? -ECONNRESET : -errno;
			goto out;
		}
		len += (size_t)got;
	}
out:
	free(b);
	return r;
}

/* Send @request, read and parse the reply.  A refusal is printed and
 * gives EXIT_REFUSED; a failure EXIT_FAILED; success 0 and *ret_reply. */
static int ask(int fd, const char *request, struct json_object **ret_reply, char **ret_rest,
	       size_t *ret_rest_len)
{
	char *buf = NULL;
	struct json_object *o = NULL;
	size_t len = 0, total = 0;
	int r = send_all(fd, request, strlen(request));
	if (r == 0)
		r = read_line(fd, &buf, &len, &total);
	if (r < 0) {
		r = say(EXIT_FAILED, "no reply from the task: %s", strerror(-r));
		goto out;
	}
	o = json_tokener_parse(buf ? (buf[len] = '\0', buf) : "");
	struct json_object *ok = NULL, *err = NULL;
	if (!o || !json_object_object_get_ex(o, "ok", &ok)) {
		r = say(EXIT_FAILED, "the task's reply is not understood");
		goto out;
	}
	if (!json_object_get_boolean(ok)) {
		json_object_object_get_ex(o, "error", &err);
		say(EXIT_REFUSED, "%s", err ? json_object_get_string(err) : "refused");
		r = EXIT_REFUSED;
		goto out;
	}
	if (ret_rest) {
		*ret_rest_len = total - len - 1;
		memmove(buf, buf + len + 1, *ret_rest_len);
		*ret_rest = buf;
		buf = NULL;
	}
	*ret_reply = o;
	o = NULL;
	r = 0;
out:
	free(buf);
	json_object_put(o);
	return r;
}

/* Connect to @id and ask @request: 0 and *ret_reply, or an exit status. */
static int ask_id(const char *id, const char *request, struct json_object **ret_reply)
{
	int fd = -1;
	if (connect_id(id, &fd) < 0)
		return EXIT_FAILED;
	int r = ask(fd, request, ret_reply, NULL, NULL);
	fd = util_close(fd);
	return r;
}

static int64_t get_int(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

/* ---- ls ------------------------------------------------------------------------- */

/* The arguments joined by spaces, escaped for the terminal. */
static void command_line(struct json_object *argv, char *out, size_t size)
{
	char raw[1024];
	size_t o = 0;
	bool arr = json_object_is_type(argv, json_type_array);
	for (size_t i = 0; arr && i < json_object_array_length(argv) && o < sizeof(raw); i++) {
		struct json_object *v = json_object_array_get_idx(argv, i);
		const char *a = json_object_get_string(v);
		size_t n = a ? (size_t)json_object_get_string_len(v) : 0;
		if (i)
			raw[o++] = ' ';
		if (n > sizeof(raw) - o)
			n = sizeof(raw) - o;
		memcpy(raw + o, a, n);
		o += n;
	}
	text_escape(raw, o, out, size);
}

/* A string field of a reply, escaped for the terminal ("" when absent). */
static void field_text(struct json_object *o, const char *key, char *out, size_t size)
{
	struct json_object *v = NULL;
	const char *s = json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
	text_escape(s ? s : "", s ? (size_t)json_object_get_string_len(v) : 0, out, size);
}

/* Where `ls` looks: a directory of sockets of the user @uid (ours, or with
 * --all-users another's, then opened and checked as @fd), and what it
 * prints. */
struct ls_dir {
	const char *path;
	int fd; /* another user's directory; -1: ours */
	uid_t uid;
	bool all_users;
	struct json_object *json;
};

/* The owner, in --all-users's column or object. */
static void ls_owner(const struct ls_dir *d, struct json_object *o, char *out, size_t size)
{
	struct passwd pw, *res = NULL;
	char buf[1024], name[64];
	if (getpwuid_r(d->uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(name, sizeof(name), "%s", res->pw_name);
	else
		snprintf(name, sizeof(name), "%u", (unsigned)d->uid);
	if (o) {
		json_object_object_add(o, "uid", json_object_new_int64(d->uid));
		json_object_object_add(o, "user", json_object_new_string(name));
	}
	text_escape(name, strlen(name), out, size);
}

/* Connect to @name in @d: in another user's directory, a socket of that
 * user's, reached through the directory that was checked. */
static int ls_connect(const struct ls_dir *d, const char *name, int *ret_fd, uid_t *ret_uid)
{
	char path[512];
	const char *why = NULL;
	if (d->fd < 0) {
		snprintf(path, sizeof(path), "%s/%s", d->path, name);
		return connect_path(path, ret_fd, ret_uid);
	}
	int r = control_check_user_socket(d->fd, name, d->uid, &why);
	if (r == -EPERM)
		say(0, "skipping %s/%s: %s", d->path, name, why);
	if (r < 0)
		return r == -EPERM ? -EACCES : r;
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", d->fd, name);
	return connect_path_of(path, d->uid, ret_fd, ret_uid);
}

/* One task of `ls`: a line, or its info reply (without "ok") added to @json. */
static void ls_one(const struct ls_dir *d, const char *name)
{
	char path[512], age[32], cmd[256], tname[64], owner[64];
	snprintf(path, sizeof(path), "%s/%s", d->path, name);
	int fd = -1;
	uid_t uid = 0;
	int r = ls_connect(d, name, &fd, &uid);
	struct stat st;
	if (r == -ECONNREFUSED) {
		/* Left by a ptmon that died: nobody listens any more.  Another
		 * user's is left to them. */
		if (d->fd < 0 && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);
		return;
	}
	if (r == -EPERM && d->fd >= 0) {
		say(0, "refusing %s: its server runs as uid %u, not as its user (uid %u) or root",
		    path, (unsigned)uid, (unsigned)d->uid);
		return;
	}
	if (r == -EPERM) {
		untrusted(path, uid);
		return;
	}
	if (r == -EACCES || r == -ENOENT)
		return;
	if (r < 0) {
		say(0, "%s: %s", path, strerror(-r));
		return;
	}
	struct json_object *o = NULL, *argv = NULL;
	char id[128];
	if (ask(fd, "{\"cmd\":\"info\"}\n", &o, NULL, NULL) == 0 && d->json) {
		json_object_object_del(o, "ok");
		if (d->all_users)
			ls_owner(d, o, owner, sizeof(owner));
		json_object_array_add(d->json, o);
	} else if (o) {
		json_object_object_get_ex(o, "argv", &argv);
		field_text(o, "id", id, sizeof(id));
		field_text(o, "name", tname, sizeof(tname));
		command_line(argv, cmd, sizeof(cmd));
		if (d->all_users) {
			ls_owner(d, NULL, owner, sizeof(owner));
			printf("%-12s ", owner);
		}
		printf("%-24s %8" PRId64 " %10s %6" PRId64 "  %-16s %s\n", id,
		       get_int(o, "root_pid"),
		       format_duration((uint64_t)get_int(o, "age_ns") / 1000000000ull *
					       1000000000ull,
				       age, sizeof(age)),
		       get_int(o, "live"), tname, cmd);
		json_object_put(o);
	}
	fd = util_close(fd);
}

static int ls_dir(const struct ls_dir *d, int r)
{
	DIR *dd = NULL;
	int fd = -1;
	if (r == 0 && d->fd >= 0) {
		fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 && (dd = fdopendir(fd)))
			fd = -1; /* the stream's now: closedir() closes it */
	} else if (r == 0) {
		dd = opendir(d->path);
	}
	if (!dd) {
		r = r == -ENOENT || errno == ENOENT
			    ? 0
			    : say(EXIT_FAILED, "%s: %s", d->path, strerror(errno));
		goto out;
	}
	struct dirent *e;
	while ((e = readdir(dd))) {
		size_t n = strlen(e->d_name);
		if (n > 5 && strcmp(e->d_name + n - 5, ".sock") == 0)
			ls_one(d, e->d_name);
	}
	r = 0;
out:
	/* closedir() does not take NULL. */
	if (dd)
		closedir(dd);
	util_close(fd);
	return r;
}

/* Another user's directory @path, if root may trust it (as serve does). */
static void ls_user_dir(const char *path, uid_t uid, const char *ours, struct ls_dir *d)
{
	const char *why = NULL;
	if (!strcmp(path, ours))
		return;
	int fd = control_open_user_dir(path, uid, &why);
	if (fd == -EPERM)
		say(0, "skipping %s: %s", path, why);
	if (fd < 0)
		return;
	d->path = path;
	d->fd = fd;
	d->uid = uid;
	ls_dir(d, 0);
	d->fd = util_close(d->fd);
}

/* --all-users: every /run/user/UID/ptmon and /tmp/ptmon-UID. */
static void ls_users(const char *ours, struct json_object *json)
{
	char root[256], path[512];
	struct ls_dir d = {.all_users = true, .json = json};
	for (int i = 0; i < 2; i++) {
		DIR *dd = NULL;
		struct dirent *e;
		uid_t uid;
		if (control_users_root(i ? "/tmp" : "/run/user", root, sizeof(root)) == 0)
			dd = opendir(root);
		while (dd && (e = readdir(dd))) {
			if (control_name_uid(e->d_name, i ? "ptmon-" : "", &uid) < 0)
				continue;
			snprintf(path, sizeof(path), "%.250s/%.200s%s", root, e->d_name,
				 i ? "" : "/ptmon");
			ls_user_dir(path, uid, ours, &d);
		}
		if (dd)
			closedir(dd);
	}
}

static int cmd_ls(int argc, char **argv)
{
	char dir[256];
	bool json = false, all = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--all-users") == 0)
			all = true;
		else
			return say(EXIT_FAILED, "usage: ptmon ls [--json] [--all-users]");
	}
	if (all && geteuid() != 0)
		return say(EXIT_FAILED, "ls --all-users: only root may list other users' tasks");
	int r = default_dir(dir, sizeof(dir));
	if (r < 0 && r != -ENOENT)
		return r == -EPERM ? EXIT_FAILED : say(EXIT_FAILED, "%s: %s", dir, strerror(-r));
	struct ls_dir d = {.path = dir, .fd = -1, .uid = geteuid(), .all_users = all};
	if (!json) {
		printf("%s%-24s %8s %10s %6s  %-16s %s\n", all ? "USER         " : "", "ID", "ROOT",
		       "AGE", "LIVE", "NAME", "COMMAND");
		int st = ls_dir(&d, r);
		if (all)
			ls_users(dir, NULL);
		return st;
	}
	/* One JSON array of the tasks' info replies: as json-c writes them,
	 * for programs (nothing escaped for a terminal). */
	d.json = json_object_new_array();
	int st = ls_dir(&d, r);
	if (all)
		ls_users(dir, d.json);
	if (st == 0)
		printf("%s\n",
		       json_object_to_json_string_ext(
			       d.json, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(d.json);
	return st;
}

/* ---- tree ------------------------------------------------------------------------ */

static void info_of(struct json_object *p, struct ptmon_process_info *ret, char *argvbuf,
		    size_t size, struct summary_live *live)
{
	struct json_object *v;
	*ret = (struct ptmon_process_info){.id = (uint64_t)get_int(p, "id"),
					   .parent_id = (uint64_t)get_int(p, "parent_id"),
					   .pid = (pid_t)get_int(p, "pid")};
	if (json_object_object_get_ex(p, "comm", &v))
		snprintf(ret->comm, sizeof(ret->comm), "%s", json_object_get_string(v));
	size_t o = 0;
	if (json_object_object_get_ex(p, "argv", &v) && json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			const char *a = json_object_get_string(json_object_array_get_idx(v, i));
			size_t n = strlen(a ? a : "") + 1;
			if (o + n > size)
				break;
			memcpy(argvbuf + o, a ? a : "", n);
			o += n;
		}
		ret->argv = argvbuf;
		ret->argv_len = o;
	}
	const char *st =
		json_object_object_get_ex(p, "state", &v) ? json_object_get_string(v) : "?";
	/* One letter, printed as it is: anything but a letter is '?'. */
	bool letter = st && ((*st >= 'A' && *st <= 'Z') || (*st >= 'a' && *st <= 'z'));
	*live = (struct summary_live){.state = letter ? st[0] : '?',
				      .age_ns = (uint64_t)get_int(p, "age_ns"),
				      .rss_bytes = (uint64_t)get_int(p, "rss_bytes")};
	if (json_object_object_get_ex(p, "cpu_s", &v))
		live->cpu_s = json_object_get_double(v);
}

static int print_tree(struct json_object *reply)
{
	struct json_object *list;
	if (!json_object_object_get_ex(reply, "processes", &list) ||
	    !json_object_is_type(list, json_type_array))
		return say(EXIT_FAILED, "the task's reply is not understood");
	size_t n = json_object_array_length(list);
	int r = 0;
	struct ptmon_process_info *v = calloc(n + 1, sizeof(*v));
	struct summary_live *live = calloc(n + 1, sizeof(*live));
	char *argv = calloc(n + 1, 1024);
	if (!v || !live || !argv) {
		r = say(EXIT_FAILED, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		info_of(json_object_array_get_idx(list, i), &v[i], argv + i * 1024, 1024, &live[i]);
	const char *nc = getenv("NO_COLOR");
	summary_print_live(stdout, v, live, n, isatty(STDOUT_FILENO) && !(nc && *nc));
out:
	free(v);
	free(live);
	free(argv);
	return r;
}

static int cmd_tree(int argc, char **argv)
{
	bool as_json = false;
	const char *id = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			as_json = true;
		else if (!id && argv[i][0] != '-')
			id = argv[i];
		else
			return say(EXIT_FAILED, "usage: ptmon tree ID [--json]");
	}
	if (!id)
		return say(EXIT_FAILED, "usage: ptmon tree ID [--json]");
	struct json_object *o = NULL;
	int r = ask_id(id, "{\"cmd\":\"tree\"}\n", &o);
	if (r)
		return r;
	if (as_json)
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		r = print_tree(o);
	json_object_put(o);
	return r;
}

/* ---- kill, cancel, metrics --------------------------------------------------------- */

static int parse_pid(const char *s, long *ret)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < INT_MIN || v > INT_MAX)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int cmd_kill(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"signal", required_argument, NULL, 's'},
		{"subtree", no_argument, NULL, 'T'},
		{0},
	};
	int sig = SIGTERM, c;
	bool subtree = false;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":s:", longopts, NULL)) != -1) {
		if (c == 's' && parse_signal(optarg, &sig) == 0)
			continue;
		if (c == 'T') {
			subtree = true;
			continue;
		}
		if (c == 's')
			return say(EXIT_FAILED, "-s: invalid signal '%s'", optarg);
		return say(EXIT_FAILED, "usage: ptmon kill ID PID [-s SIG] [--subtree]");
	}
	long pid;
	if (argc - optind != 2)
		return say(EXIT_FAILED, "usage: ptmon kill ID PID [-s SIG] [--subtree]");
	if (parse_pid(argv[optind + 1], &pid) < 0)
		return say(EXIT_FAILED, "invalid pid '%s'", argv[optind + 1]);
	char req[128];
	snprintf(req, sizeof(req), "{\"cmd\":\"kill\",\"pid\":%ld,\"signal\":%d,\"subtree\":%s}\n",
		 pid, sig, subtree ? "true" : "false");
	struct json_object *o = NULL;
	int r = ask_id(argv[optind], req, &o);
	if (r)
		return r;
	char buf[32];
	const char *name = signal_name(sig, buf, sizeof(buf));
	printf("sent SIG%s to %" PRId64 " process%s\n", name ? name : "?", get_int(o, "signalled"),
	       get_int(o, "signalled") == 1 ? "" : "es");
	json_object_put(o);
	return 0;
}

static int cmd_cancel(int argc, char **argv)
{
	bool now = argc == 3 && strcmp(argv[2], "--now") == 0;
	if (argc != 2 && !now)
		return say(EXIT_FAILED, "usage: ptmon cancel ID [--now]");
	struct json_object *o = NULL;
	int r = ask_id(argv[1],
		       now ? "{\"cmd\":\"cancel\",\"now\":true}\n" : "{\"cmd\":\"cancel\"}\n", &o);
	json_object_put(o);
	return r;
}

/* @text line by line, each escaped for the terminal. */
static void print_lines(const char *text)
{
	while (text && *text) {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);
		char *safe = text_escape_dup(text, n);
		if (safe)
			printf("%s\n", safe);
		free(safe);
		text += n + (nl != NULL);
	}
}

static int cmd_metrics(int argc, char **argv)
{
	bool om = argc == 3 && strcmp(argv[2], "--openmetrics") == 0;
	if (argc != 2 && !om)
		return say(EXIT_FAILED, "usage: ptmon metrics ID [--openmetrics]");
	struct json_object *o = NULL, *text = NULL;
	int r = ask_id(argv[1],
		       om ? "{\"cmd\":\"metrics\",\"format\":\"openmetrics\"}\n"
			  : "{\"cmd\":\"metrics\",\"format\":\"prometheus\"}\n",
		       &o);
	if (r)
		return r;
	if (json_object_object_get_ex(o, "metrics", &text))
		print_lines(json_object_get_string(text));
	json_object_put(o);
	return text ? 0 : say(EXIT_FAILED, "the task's reply is not understood");
}

/* ---- events --follow ------------------------------------------------------------------ */

static int write_out(const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(STDOUT_FILENO, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int copy_events(int fd, char *rest, size_t rest_len)
{
	char buf[65536];
	int r = write_out(rest, rest_len);
	for (;;) {
		if (r < 0)
			return r == -EPIPE ? 0 : say(EXIT_FAILED, "stdout: %s", strerror(-r));
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0; /* the task is done and ptmon closed */
		r = write_out(buf, (size_t)n);
	}
}

static int cmd_events(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[2], "--follow") != 0)
		return say(EXIT_FAILED, "usage: ptmon events ID --follow");
	int fd = -1;
	if (connect_id(argv[1], &fd) < 0)
		return EXIT_FAILED;
	struct json_object *o = NULL;
	char *rest = NULL;
	size_t rest_len = 0;
	int r = ask(fd, "{\"cmd\":\"follow\"}\n", &o, &rest, &rest_len);
	json_object_put(o);
	if (r != 0)
		goto out;
	r = copy_events(fd, rest, rest_len);
out:
	free(rest);
	util_close(fd);
	return r;
}

/* ---- dispatch -------------------------------------------------------------------------- */

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{"ls", cmd_ls},         {"tree", cmd_tree},     {"kill", cmd_kill},
	{"cancel", cmd_cancel}, {"events", cmd_events}, {"metrics", cmd_metrics},
};

bool client_is_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(name, commands[i].name) == 0)
			return true;
	return false;
}

int client_main(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[0], commands[i].name) == 0) {
			int r = commands[i].fn(argc, argv);
			fflush(stdout);
			return r;
		}
	return say(EXIT_FAILED, "unknown command '%s'", argv[0]);
}
