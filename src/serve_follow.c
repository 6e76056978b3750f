/* SPDX-License-Identifier: MIT */
/* `ptmon serve`: finding the tasks and following them, what their events
 * count, their reports. */
#include "serve_int.h"

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
#define RAISE(t, field, value)                                                                     \
	do {                                                                                       \
		uint64_t v_ = (value);                                                             \
		if (v_ > (t)->c.field) {                                                           \
			(t)->ns->c.field += v_ - (t)->c.field;                                     \
			(t)->c.field = v_;                                                         \
		}                                                                                  \
	} while (0)

/* ---- a task's processes, for its report -------------------------------------------- */

/* Keys of an event that say what the event was, not what the process is. */
static bool event_only_key(const char *k)
{
	static const char *const skip[] = {"type",
					   "task_id",
					   "mono_ns",
					   "unix_ns",
					   "time",
					   "name",
					   "schema_version",
					   "cwd",
					   "backend",
					   "features",
					   "filter",
					   "fallback_reason",
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
	json_object_object_add(
		r, "complete",
		json_object_new_boolean(t->saw_start && !t->truncated && !t->lost_follow));
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

static void count_exit(struct stask *t, struct json_object *ev)
{
	const char *end = jstr(ev, "end");
	int k = !end                     ? OUT_UNKNOWN
		: !strcmp(end, "exited") ? OUT_EXITED
		: !strcmp(end, "signaled")
			? (jbool(ev, "killed_by_ptmon") ? OUT_KILLED : OUT_SIGNALED)
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
	serve_sse_event(t, line);
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
		} else
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

struct stask *serve_task_find(const char *id)
{
	for (struct stask *t = S.tasks; t; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

void serve_task_free(struct stask *t)
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
	serve_sse_orphan_all(t);
	json_object_put(t->procs);
	json_object_put(t->start);
	serve_ring_free(t);
	free(t->buf);
	free(t);
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
	int fd = control_connect(path, d->uid, 1, NULL);
	/* ptmon binds, then listens: between the two, connect() is refused. */
	for (int i = 0; fresh && fd == -ECONNREFUSED && i < 20; i++) {
		poll(NULL, 0, 1);
		fd = control_connect(path, d->uid, 1, NULL);
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
	if (serve_task_find(id))
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
		serve_say(0, "%s/%s: %s", d->path, name,
			  fd == -EPERM ? "not served by its user or root" : strerror(-fd));
		return;
	}
	static const char ask[] = "{\"cmd\":\"info\"}\n{\"cmd\":\"follow\"}\n";
	struct stask *t = calloc(1, sizeof(*t));
	if (!t || send(fd, ask, sizeof(ask) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(ask) - 1)
		goto out;
	t->kind = W_TASK;
	t->fd = fd;
	fd = -1;
	snprintf(t->id, sizeof(t->id), "%s", id);
	snprintf(t->path, sizeof(t->path), "%.250s/%.64s", d->path, name);
	t->uid = d->uid;
	user_name(d->uid, t->user, sizeof(t->user));
	t->next = S.tasks;
	S.tasks = t;
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = t};
	if (epoll_ctl(S.epfd, EPOLL_CTL_ADD, t->fd, &e) < 0)
		serve_task_free(t); /* out of the list again */
	t = NULL;
out:
	free(t);
	util_close(fd);
}

/* Read what the task sent; false when the connection ended. */
bool serve_task_read(struct stask *t)
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
struct sdir *serve_dir_add(enum dir_kind kind, const char *path, uid_t uid, int fd)
{
	static const uint32_t masks[] = {
		[D_TASKS] = IN_CREATE | IN_MOVED_TO,
		[D_RUN_USER] = IN_CREATE | IN_MOVED_TO,
		/* IN_ATTRIB: a ptmon directory made safe by chmod or chown. */
		[D_UID] = IN_CREATE | IN_MOVED_TO | IN_ATTRIB,
		[D_TMP] = IN_CREATE | IN_MOVED_TO | IN_ATTRIB,
	};
	char proc[64];
	struct sdir *d = NULL;
	if (strlen(path) >= sizeof(((struct sdir *)0)->path))
		goto out;
	if (fd >= 0)
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	/* /proc/self/fd/N is a link to follow; any other is not. */
	int wd = inotify_add_watch(S.ino, fd >= 0 ? proc : path,
				   masks[kind] | IN_ONLYDIR | (fd >= 0 ? 0 : IN_DONT_FOLLOW));
	for (struct sdir *x = S.dirs; x && wd >= 0; x = x->next)
		if (x->wd == wd)
			wd = -1; /* one directory under two names: watched once */
	if (wd >= 0 && (d = calloc(1, sizeof(*d)))) {
		d->kind = kind;
		d->wd = wd;
		d->fd = fd;
		fd = -1;
		d->uid = uid;
		snprintf(d->path, sizeof(d->path), "%s", path);
		d->next = S.dirs;
		S.dirs = d;
	}
out:
	util_close(fd);
	return d;
}

void serve_dir_free(struct sdir *d)
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
	struct sdir *d = serve_dir_add(D_TASKS, path, uid, fd);
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
	if (!d && !(d = serve_dir_add(D_UID, path, uid, -1)))
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
	DIR *dd = NULL;
	int fd = d->fd >= 0 ? openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
			    : open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		goto out;
	dd = fdopendir(fd);
	if (!dd)
		goto out;
	fd = -1; /* the stream's now: closedir() closes it */
	struct dirent *e;
	while ((e = readdir(dd)))
		if (e->d_name[0] != '.')
			dir_entry(d, e->d_name, false);
out:
	/* closedir() does not take NULL. */
	if (dd)
		closedir(dd);
	util_close(fd);
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
		if (!d && !(d = serve_dir_add(roots[i].kind, path, 0, -1)))
			continue;
		dir_scan(d);
	}
}

void serve_scan_all(void)
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

void serve_inotify_read(int fd)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ie = (struct inotify_event *)p;
			struct sdir *d = dir_of_wd(ie->wd);
			p += sizeof(*ie) + ie->len;
			if (ie->mask & IN_Q_OVERFLOW)
				serve_scan_all();
			else if (d && (ie->mask & IN_IGNORED))
				serve_dir_free(d); /* the directory went away */
			else if (d && ie->len)
				dir_entry(d, ie->name, !(ie->mask & IN_ATTRIB));
		}
}
