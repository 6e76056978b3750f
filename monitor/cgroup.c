/* SPDX-License-Identifier: MIT */
/* A cgroup v2 of the task's own (cgroup.h). */
#include "cgroup.h"
#include "cgpath.h"
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

/* Our headers are Linux 6.1's; clone3 is 5.3, CLONE_INTO_CGROUP 5.7. */
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#define CG_CLONE_INTO_CGROUP 0x200000000ULL

struct cg_clone_args {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
	uint64_t set_tid;
	uint64_t set_tid_size;
	uint64_t cgroup;
};

/* How long the end waits for a cgroup to report "populated 0" after a
 * cgroup.kill of processes that escaped the pidfd path. */
#define KILL_WAIT_NS (2000ull * 1000000ull)
#define CG2_SUPER_MAGIC 0x63677270
/* Below a watched cgroup: deeper nesting than this is not read. */
#define MAX_DEPTH 32

struct task_cgroup {
	int fd;         /* O_PATH of the directory, -1: none */
	char path[512]; /* absolute, under the cgroup2 mount */
	char rel[512];  /* borrowed: its path as /proc/PID/cgroup says it */
	bool borrowed;
	struct cgroup_totals tot;
};

struct task_cgroup *cgroup_new(void)
{
	struct task_cgroup *cg = malloc(sizeof(*cg));
	if (cg)
		cgroup_reset(cg);
	return cg;
}

void cgroup_reset(struct task_cgroup *cg)
{
	*cg = (struct task_cgroup){.fd = -1};
}

struct task_cgroup *cgroup_free(struct task_cgroup *cg)
{
	if (cg) {
		util_close(cg->fd);
		free(cg);
	}
	return NULL;
}

bool cgroup_is_open(const struct task_cgroup *cg)
{
	return cg->fd >= 0;
}

bool cgroup_borrowed(const struct task_cgroup *cg)
{
	return cg->borrowed;
}

const char *cgroup_path(const struct task_cgroup *cg)
{
	return cg->path;
}

const struct cgroup_totals *cgroup_totals(const struct task_cgroup *cg)
{
	return &cg->tot;
}

static int read_small(int dirfd, const char *name, char *buf, size_t len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n;
	do
		n = read(fd, buf, len - 1);
	while (n < 0 && errno == EINTR);
	int e = errno;
	util_close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	return (int)n;
}

int cgroup_create(struct task_cgroup *cg, const char *name, const char **why)
{
	char own[400];
	int r = cgpath_own(own, sizeof(own));
	if (r < 0) {
		*why = "no cgroup2 mount, or ptmon is not in a cgroup v2";
		return r;
	}
	int n = snprintf(cg->path, sizeof(cg->path), "%s/%s", own, name);
	if (n < 0 || (size_t)n >= sizeof(cg->path)) {
		cg->path[0] = '\0';
		*why = "cgroup path too long";
		return -ENAMETOOLONG;
	}
	if (mkdir(cg->path, 0755) < 0) {
		r = -errno;
		cg->path[0] = '\0';
		*why = "cannot create a cgroup under ptmon's own (no delegation?)";
		return r;
	}
	cg->fd = open(cg->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cg->fd < 0 || faccessat(cg->fd, "cgroup.kill", W_OK, 0) < 0) {
		r = cg->fd < 0 ? -errno : -EOPNOTSUPP;
		*why = cg->fd < 0 ? "cannot open the task's cgroup"
				  : "no cgroup.kill (Linux 5.14 or later is needed)";
		cg->fd = util_close(cg->fd);
		rmdir(cg->path);
		cg->path[0] = '\0';
		return r;
	}
	return 0;
}

/* The cgroup2 mount that holds @abs: the longest mount point prefixing it. */
static int mount_of(const char *abs, size_t *ret_len)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	if (!f)
		return -errno;
	char dev[256], dir[PATH_MAX], type[64];
	size_t best = 0;
	bool found = false;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]", dev, dir, type) == 3) {
		size_t l = strlen(dir);
		if (strcmp(type, "cgroup2") || strncmp(abs, dir, l) ||
		    (abs[l] != '/' && abs[l] != '\0') || (found && l < best))
			continue;
		best = l;
		found = true;
	}
	fclose(f);
	if (!found)
		return -ENOTDIR;
	*ret_len = best;
	return 0;
}

int cgroup_open_existing(struct task_cgroup *cg, const char *path, const char **why)
{
	char abs[PATH_MAX];
	struct statfs fs;
	size_t mlen = 0;
	if (!realpath(path, abs)) {
		*why = "no such directory";
		return -errno;
	}
	if (statfs(abs, &fs) < 0 || fs.f_type != CG2_SUPER_MAGIC || mount_of(abs, &mlen) < 0) {
		*why = "not a cgroup v2 directory";
		return -ENOTDIR;
	}
	const char *rel = abs[mlen] ? abs + mlen : "/";
	if (strlen(abs) >= sizeof(cg->path) || strlen(rel) >= sizeof(cg->rel)) {
		*why = "cgroup path too long";
		return -ENAMETOOLONG;
	}
	int fd = open(abs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || faccessat(fd, "cgroup.procs", R_OK, 0) < 0) {
		int r = -errno;
		*why = fd < 0 ? "cannot open it" : "cannot read its cgroup.procs";
		util_close(fd);
		return fd < 0 ? r : -ENOTDIR;
	}
	cg->fd = fd;
	cg->borrowed = true;
	/* Both fit (checked above); memcpy says so to the compiler too. */
	memcpy(cg->path, abs, strlen(abs) + 1);
	memcpy(cg->rel, rel, strlen(rel) + 1);
	return 0;
}

struct pid_vec {
	pid_t *v;
	size_t n, cap;
};

static int vec_push(struct pid_vec *pv, pid_t pid)
{
	if (pv->n == pv->cap) {
		size_t cap = pv->cap ? pv->cap * 2 : 64;
		pid_t *v = realloc(pv->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		pv->v = v;
		pv->cap = cap;
	}
	pv->v[pv->n++] = pid;
	return 0;
}

/* cgroup.procs of @dirfd, whatever its length (a large cgroup's is). */
static int read_procs_file(int dirfd, struct pid_vec *pv)
{
	int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno; /* removed meanwhile */
	char buf[4096];
	long cur = -1;
	int r = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n && r == 0; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				cur = (cur < 0 ? 0 : cur * 10) + (buf[i] - '0');
			} else if (cur >= 0) {
				r = cur <= INT_MAX ? vec_push(pv, (pid_t)cur) : 0;
				cur = -1;
			}
		}
	}
	if (r == 0 && cur >= 0 && cur <= INT_MAX)
		r = vec_push(pv, (pid_t)cur);
	util_close(fd);
	return r;
}

static int read_tree(int dirfd, struct pid_vec *pv, int depth)
{
	int r = read_procs_file(dirfd, pv);
	if (r < 0 || depth >= MAX_DEPTH)
		return r;
	int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d)
		goto out; /* the directory went away: nothing below it */
	/* The stream's now: closedir() closes it. */
	dfd = -1;
	struct dirent *e;
	while (r == 0 && (e = readdir(d))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		int sub = openat(dirfd, e->d_name, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (sub < 0)
			continue;
		r = read_tree(sub, pv, depth + 1);
		util_close(sub);
	}
out:
	/* closedir() does not take NULL. */
	if (d)
		closedir(d);
	util_close(dfd);
	return r;
}

int cgroup_read_procs(const struct task_cgroup *cg, pid_t **ret_pids)
{
	struct pid_vec pv = {0};
	int r = read_tree(cg->fd, &pv, 0);
	if (r < 0) {
		free(pv.v);
		return r;
	}
	*ret_pids = pv.v;
	return (int)pv.n;
}

int cgroup_holds(const struct task_cgroup *cg, pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	int dfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	int n = read_small(dfd, "cgroup", buf, sizeof(buf));
	util_close(dfd);
	if (n < 0)
		return n == -ENOENT ? -ESRCH : n;
	const char *line = strstr(buf, "0::");
	if (line != buf && (!line || line[-1] != '\n'))
		return 0;
	line += 3;
	size_t len = strcspn(line, "\n"), rl = strlen(cg->rel);
	if (strcmp(cg->rel, "/") == 0)
		return 1;
	return len >= rl && strncmp(line, cg->rel, rl) == 0 && (len == rl || line[rl] == '/');
}

int cgroup_events_open(const struct task_cgroup *cg)
{
	int fd = openat(cg->fd, "cgroup.events", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	cgroup_events_ack(fd);
	return fd;
}

void cgroup_events_ack(int fd)
{
	/* kernfs reports a change to each open file until it reads the file
	 * again; epoll would report it for ever otherwise. */
	char buf[256];
	if (lseek(fd, 0, SEEK_SET) == 0)
		while (read(fd, buf, sizeof(buf)) < 0 && errno == EINTR)
			;
}

pid_t cgroup_fork_into(const struct task_cgroup *cg)
{
	struct cg_clone_args a = {
		.flags = CG_CLONE_INTO_CGROUP,
		.exit_signal = SIGCHLD,
		.cgroup = (uint64_t)cg->fd,
	};
	long r = syscall(__NR_clone3, &a, sizeof(a));
	return r < 0 ? -errno : (pid_t)r;
}

int cgroup_enter(const struct task_cgroup *cg)
{
	int fd = openat(cg->fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, "0", 1);
	int e = errno;
	util_close(fd);
	errno = e;
	return n == 1 ? 0 : -1;
}

int cgroup_kill(struct task_cgroup *cg)
{
	int fd = openat(cg->fd, "cgroup.kill", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, "1", 1);
	int r = n == 1 ? 0 : -errno;
	util_close(fd);
	if (r == 0)
		cg->tot.killed = true;
	return r;
}

int cgroup_populated(const struct task_cgroup *cg)
{
	char buf[256];
	int r = read_small(cg->fd, "cgroup.events", buf, sizeof(buf));
	if (r < 0)
		return r;
	const char *p = strstr(buf, "populated ");
	return p ? p[10] == '1' : -EINVAL;
}

int cgroup_parse_key(const char *buf, const char *key, uint64_t *ret)
{
	size_t klen = strlen(key);
	for (const char *line = buf; line && *line;
	     line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(line + klen + 1, &end, 10);
			if (errno || end == line + klen + 1)
				return -EINVAL;
			*ret = v;
			return 0;
		}
	return -ENOENT;
}

void cgroup_parse_io(const char *buf, uint64_t *ret_rbytes, uint64_t *ret_wbytes)
{
	/* "MAJ:MIN rbytes=N wbytes=N rios=N ..." per device. */
	uint64_t r = 0, w = 0;
	for (const char *p = buf; (p = strpbrk(p, "rw")); p++) {
		if (p != buf && p[-1] != ' ')
			continue;
		if (strncmp(p, "rbytes=", 7) == 0)
			r += strtoull(p + 7, NULL, 10);
		else if (strncmp(p, "wbytes=", 7) == 0)
			w += strtoull(p + 7, NULL, 10);
	}
	*ret_rbytes = r;
	*ret_wbytes = w;
}

/* A file of any length, to its end, NUL-terminated: io.stat has a line per
 * device, more than one read's worth where the task touched many.  Returns
 * a malloc'd text or NULL. */
static char *read_whole(int dirfd, const char *name)
{
	char *buf = NULL, *text = NULL;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto out;
	size_t len = 0, cap = 4096;
	buf = malloc(cap);
	if (!buf)
		goto out;
	for (;;) {
		if (cap - len < 2) {
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				goto out;
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	text = buf;
	buf = NULL;
out:
	util_close(fd);
	free(buf);
	return text;
}

/* A file holding one number ("max" is not one). */
static int read_number(int dirfd, const char *name, uint64_t *ret)
{
	char buf[64], *end;
	int r = read_small(dirfd, name, buf, sizeof(buf));
	if (r < 0)
		return r;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return -EINVAL;
	*ret = v;
	return 0;
}

void cgroup_read_totals(struct cgroup_totals *t, int dirfd)
{
	char buf[4096];
	if (read_small(dirfd, "cpu.stat", buf, sizeof(buf)) >= 0) {
		t->have_cpu = true;
		cgroup_parse_key(buf, "usage_usec", &t->usage_usec);
		cgroup_parse_key(buf, "user_usec", &t->user_usec);
		cgroup_parse_key(buf, "system_usec", &t->system_usec);
	}
	t->have_memory_peak = read_number(dirfd, "memory.peak", &t->memory_peak) == 0;
	t->have_pids_peak = read_number(dirfd, "pids.peak", &t->pids_peak) == 0;
	char *io = read_whole(dirfd, "io.stat");
	if (io) {
		t->have_io = true;
		cgroup_parse_io(io, &t->io_rbytes, &t->io_wbytes);
		free(io);
	}
	/* oom_kill counts the kernel's OOM kills inside the cgroup (4.13+). */
	if (read_small(dirfd, "memory.events", buf, sizeof(buf)) >= 0)
		t->have_oom = cgroup_parse_key(buf, "oom_kill", &t->oom_kills) == 0;
}

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

/* The controller in the cgroup's cgroup.controllers, enabling it in the
 * parent's cgroup.subtree_control when it is not. */
static int need_controller(int dirfd, const char *path, const char *name, const char **why)
{
	char buf[512], parent[512], line[64];
	if (read_small(dirfd, "cgroup.controllers", buf, sizeof(buf)) >= 0 && has_word(buf, name))
		return 0;
	snprintf(parent, sizeof(parent), "%s", path);
	char *slash = strrchr(parent, '/');
	if (slash)
		*slash = '\0';
	int dfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		*why = "cannot be enabled: ptmon's own cgroup cannot be opened";
		return -errno;
	}
	int r = -EOPNOTSUPP;
	if (read_small(dfd, "cgroup.controllers", buf, sizeof(buf)) >= 0 && has_word(buf, name)) {
		int fd = openat(dfd, "cgroup.subtree_control", O_WRONLY | O_CLOEXEC);
		int n = snprintf(line, sizeof(line), "+%s", name);
		r = fd >= 0 && write(fd, line, (size_t)n) == n ? 0 : -errno;
		util_close(fd);
	}
	util_close(dfd);
	if (r == -EBUSY)
		*why = "cannot be enabled for the task: ptmon's cgroup holds processes (ptmon at "
		       "least), and cgroup v2 lets a cgroup other than the root enable no "
		       "controller for its children while it does";
	else if (r < 0)
		*why = "is not available to ptmon's cgroup (its cgroup.controllers lacks it: not "
		       "enabled by the parent, or bound to a cgroup v1 hierarchy)";
	return r;
}

static int write_file(int dirfd, const char *name, const char *text)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	int r = n == (ssize_t)strlen(text) ? 0 : n < 0 ? -errno : -EIO;
	util_close(fd);
	return r;
}

/* One limit: its controller, then its file. */
static int set_limit(int dirfd, const char *path, const char *controller, const char *file,
		     const char *text, const char **why)
{
	int r = need_controller(dirfd, path, controller, why);
	if (r < 0)
		return r;
	r = write_file(dirfd, file, text);
	if (r < 0)
		*why = "refused the limit";
	return r;
}

int cgroup_set_limits(struct task_cgroup *cg, const struct cgroup_limits *l, const char **why,
		      const char **ret_controller)
{
	return cgroup_write_limits(cg->fd, cg->path, l, why, ret_controller);
}

int cgroup_write_limits(int dirfd, const char *path, const struct cgroup_limits *l,
			const char **why, const char **ret_controller)
{
	char text[64];
	int r = 0;
	if (l->memory_max) {
		snprintf(text, sizeof(text), "%" PRIu64, l->memory_max);
		*ret_controller = "memory";
		r = set_limit(dirfd, path, "memory", "memory.max", text, why);
	}
	if (r == 0 && l->pids_max) {
		snprintf(text, sizeof(text), "%" PRIu64, l->pids_max);
		*ret_controller = "pids";
		r = set_limit(dirfd, path, "pids", "pids.max", text, why);
	}
	if (r == 0 && l->cpu_quota_us) {
		snprintf(text, sizeof(text), "%" PRIu64 " %" PRIu64, l->cpu_quota_us,
			 l->cpu_period_us ? l->cpu_period_us : 100000);
		*ret_controller = "cpu";
		r = set_limit(dirfd, path, "cpu", "cpu.max", text, why);
	}
	return r;
}

/* "populated 0" follows the last exit at once; after a cgroup.kill, the
 * victims take a moment to die.  Bounded. */
static int wait_empty(const struct task_cgroup *cg)
{
	uint64_t end = util_now_ns() + KILL_WAIT_NS;
	int r;
	while ((r = cgroup_populated(cg)) == 1 && util_now_ns() < end) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return r;
}

/* A watched cgroup is the user's: a cancel's kill, its proof, its CPU;
 * what lives in it at a natural end is not ours to kill, and it stays. */
static void finish_borrowed(struct task_cgroup *cg, bool kill)
{
	if (kill && cgroup_populated(cg) == 1) {
		cgroup_kill(cg);
		wait_empty(cg);
	}
	cg->tot.empty_proof = cgroup_populated(cg) == 0;
	cgroup_read_totals(&cg->tot, cg->fd);
	cg->fd = util_close(cg->fd);
}

void cgroup_finish(struct task_cgroup *cg, bool kill)
{
	if (cg->fd < 0)
		return;
	if (cg->borrowed) {
		finish_borrowed(cg, kill);
		return;
	}
	if (kill)
		cgroup_kill(cg);
	int r = cgroup_populated(cg);
	if (r == 1) {
		/* Something lives that the pidfd path did not find. */
		cg->tot.escaped = true;
		cgroup_kill(cg);
		r = wait_empty(cg);
	} else if (r == 0) {
		cg->tot.empty_proof = true;
	}
	cgroup_read_totals(&cg->tot, cg->fd);
	cg->fd = util_close(cg->fd);
	for (int i = 0; i < 100 && !cg->tot.removed; i++) {
		if (rmdir(cg->path) == 0 || errno == ENOENT)
			cg->tot.removed = true;
		else if (errno != EBUSY)
			break;
		else {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
	}
}
