/* SPDX-License-Identifier: MIT */
/* A cgroup v2 of the task's own (cgroup.h). */
#include "cgroup.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

void cgroup_init(struct task_cgroup *cg)
{
	*cg = (struct task_cgroup){.fd = -1};
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
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	return (int)n;
}

/* The cgroup2 mount point, and our cgroup's path in it ("0::/x/y"). */
static int own_dir(char *out, size_t size)
{
	char mnt[256] = "", line[1024];
	FILE *f = fopen("/proc/self/mounts", "re");
	if (!f)
		return -errno;
	char dev[256], dir[256], type[64];
	while (fscanf(f, "%255s %255s %63s %*[^\n]", dev, dir, type) == 3)
		if (strcmp(type, "cgroup2") == 0) {
			snprintf(mnt, sizeof(mnt), "%s", dir);
			break;
		}
	fclose(f);
	if (!mnt[0])
		return -ENOENT;
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	int r = -ENOENT;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			/* "/" is the root: no double slash. */
			const char *p = strcmp(line + 3, "/") == 0 ? "" : line + 3;
			int n = snprintf(out, size, "%s%s", mnt, p);
			r = n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
			break;
		}
	fclose(f);
	return r;
}

int cgroup_create(struct task_cgroup *cg, const char *name, const char **why)
{
	char own[400];
	int r = own_dir(own, sizeof(own));
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

int cgroup_kill(struct task_cgroup *cg)
{
	int fd = openat(cg->fd, "cgroup.kill", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, "1", 1);
	int r = n == 1 ? 0 : -errno;
	close(fd);
	if (r == 0)
		cg->killed = true;
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
	for (const char *line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
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
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	while (buf) {
		if (cap - len < 2) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			buf = NULL;
		} else if (n == 0) {
			buf[len] = '\0';
			break;
		}
		len += n > 0 ? (size_t)n : 0;
	}
	util_close(fd);
	return buf;
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

void cgroup_read_totals(struct task_cgroup *cg, int dirfd)
{
	char buf[4096];
	if (read_small(dirfd, "cpu.stat", buf, sizeof(buf)) >= 0) {
		cg->have_cpu = true;
		cgroup_parse_key(buf, "usage_usec", &cg->usage_usec);
		cgroup_parse_key(buf, "user_usec", &cg->user_usec);
		cgroup_parse_key(buf, "system_usec", &cg->system_usec);
	}
	cg->have_memory_peak = read_number(dirfd, "memory.peak", &cg->memory_peak) == 0;
	cg->have_pids_peak = read_number(dirfd, "pids.peak", &cg->pids_peak) == 0;
	char *io = read_whole(dirfd, "io.stat");
	if (io) {
		cg->have_io = true;
		cgroup_parse_io(io, &cg->io_rbytes, &cg->io_wbytes);
		free(io);
	}
	/* oom_kill counts the kernel's OOM kills inside the cgroup (4.13+). */
	if (read_small(dirfd, "memory.events", buf, sizeof(buf)) >= 0)
		cg->have_oom = cgroup_parse_key(buf, "oom_kill", &cg->oom_kills) == 0;
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
static int need_controller(struct task_cgroup *cg, const char *name, const char **why)
{
	char buf[512], parent[sizeof(cg->path)], line[64];
	if (read_small(cg->fd, "cgroup.controllers", buf, sizeof(buf)) >= 0 && has_word(buf, name))
		return 0;
	snprintf(parent, sizeof(parent), "%s", cg->path);
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
static int set_limit(struct task_cgroup *cg, const char *controller, const char *file,
		     const char *text, const char **why)
{
	int r = need_controller(cg, controller, why);
	if (r < 0)
		return r;
	r = write_file(cg->fd, file, text);
	if (r < 0)
		*why = "refused the limit";
	return r;
}

int cgroup_set_limits(struct task_cgroup *cg, const struct cgroup_limits *l, const char **why,
		      const char **ret_controller)
{
	char text[64];
	int r = 0;
	if (l->memory_max) {
		snprintf(text, sizeof(text), "%" PRIu64, l->memory_max);
		*ret_controller = "memory";
		r = set_limit(cg, "memory", "memory.max", text, why);
	}
	if (r == 0 && l->pids_max) {
		snprintf(text, sizeof(text), "%" PRIu64, l->pids_max);
		*ret_controller = "pids";
		r = set_limit(cg, "pids", "pids.max", text, why);
	}
	if (r == 0 && l->cpu_quota_us) {
		snprintf(text, sizeof(text), "%" PRIu64 " %" PRIu64, l->cpu_quota_us,
			 l->cpu_period_us ? l->cpu_period_us : 100000);
		*ret_controller = "cpu";
		r = set_limit(cg, "cpu", "cpu.max", text, why);
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

void cgroup_finish(struct task_cgroup *cg, bool kill)
{
	if (cg->fd < 0)
		return;
	if (kill)
		cgroup_kill(cg);
	int r = cgroup_populated(cg);
	if (r == 1) {
		/* Something lives that the pidfd path did not find. */
		cg->escaped = true;
		cgroup_kill(cg);
		r = wait_empty(cg);
	} else if (r == 0) {
		cg->empty_proof = true;
	}
	cgroup_read_totals(cg, cg->fd);
	cg->fd = util_close(cg->fd);
	for (int i = 0; i < 100 && !cg->removed; i++) {
		if (rmdir(cg->path) == 0 || errno == ENOENT)
			cg->removed = true;
		else if (errno != EBUSY)
			break;
		else {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
	}
}
