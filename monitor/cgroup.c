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

static void read_cpu(struct task_cgroup *cg)
{
	char buf[1024];
	if (read_small(cg->fd, "cpu.stat", buf, sizeof(buf)) < 0)
		return;
	const char *p;
	cg->have_cpu = true;
	if ((p = strstr(buf, "usage_usec ")))
		cg->usage_usec = strtoull(p + 11, NULL, 10);
	if ((p = strstr(buf, "user_usec ")))
		cg->user_usec = strtoull(p + 10, NULL, 10);
	if ((p = strstr(buf, "system_usec ")))
		cg->system_usec = strtoull(p + 12, NULL, 10);
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
	read_cpu(cg);
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
