/* SPDX-License-Identifier: MIT */
/* Readers of /proc: a process's stat line, the whole process table, and the
 * holders of a pipe. */
#include "procfs.h"
#include "ptmon.h"
#include "sys.h"
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_long_field(const char **p, const char *end, long long *ret)
{
	const char *s = *p;
	while (s < end && *s == ' ')
		s++;
	bool neg = s < end && *s == '-';
	if (neg)
		s++;
	if (s >= end || *s < '0' || *s > '9')
		return -EINVAL;
	unsigned long long v = 0;
	while (s < end && *s >= '0' && *s <= '9') {
		if (v > (ULLONG_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (unsigned)(*s - '0');
		s++;
	}
	*p = s;
	*ret = neg ? -(long long)v : (long long)v;
	return 0;
}

int procfs_parse_stat(const char *buf, size_t len, struct procfs_stat *ret)
{
	const char *end = buf + len;
	const char *open = memchr(buf, '(', len);
	/* comm may hold ')' and spaces: the last ')' ends it. */
	const char *close = NULL;
	for (const char *q = end; q > buf; q--)
		if (q[-1] == ')') {
			close = q - 1;
			break;
		}
	if (!open || !close || close < open)
		return -EINVAL;
	struct procfs_stat st = {0};
	const char *p = buf;
	long long v;
	if (parse_long_field(&p, open, &v) < 0 || v <= 0 || v > INT_MAX)
		return -EINVAL;
	st.pid = (pid_t)v;
	size_t clen = (size_t)(close - open - 1);
	if (clen > sizeof(st.comm) - 1)
		clen = sizeof(st.comm) - 1;
	memcpy(st.comm, open + 1, clen);
	p = close + 1;
	if (end - p < 3 || p[0] != ' ')
		return -EINVAL;
	st.state = p[1];
	p += 2;
	/* Fields 4 (ppid) to 22 (starttime). */
	for (int field = 4; field <= 22; field++) {
		if (parse_long_field(&p, end, &v) < 0)
			return -EINVAL;
		if (field == 4)
			st.ppid = (pid_t)v;
		else if (field == 22)
			st.starttime = (uint64_t)v;
	}
	*ret = st;
	return 0;
}

int procfs_read_small_at(int dirfd, const char *path, char *buf, size_t size)
{
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	ssize_t n;
	do
		n = read(fd, buf, size - 1);
	while (n < 0 && errno == EINTR);
	int err = n < 0 ? -errno : 0;
	util_close(fd);
	if (err)
		return err == -ESRCH ? -ESRCH : err;
	buf[n] = '\0';
	return (int)n;
}

int procfs_read_stat(pid_t pid, struct procfs_stat *ret)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int n = procfs_read_small_at(AT_FDCWD, path, buf, sizeof(buf));
	if (n < 0)
		return n;
	return procfs_parse_stat(buf, (size_t)n, ret);
}

int procfs_read_comm(pid_t pid, char comm[16])
{
	char path[64], buf[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	int n = procfs_read_small_at(AT_FDCWD, path, buf, sizeof(buf));
	if (n < 0)
		return n;
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	size_t len = (size_t)n < 15 ? (size_t)n : 15;
	memcpy(comm, buf, len);
	comm[len] = '\0';
	return 0;
}

/* Read all of @fd, up to @max bytes (one more tells that there was more),
 * into *buf, a stack buffer of @size bytes at first, grown on the heap.
 * Returns the length, or -ENOMEM (what was read so far is kept). */
static ssize_t read_all(int fd, char **buf, size_t size, size_t max)
{
	size_t len = 0;
	char *heap = NULL;
	for (;;) {
		if (len == size && size <= max) {
			/* /proc/PID/cmdline gives the whole argument area, which
			 * the kernel bounds; grow until EOF or just past @max. */
			size_t nsize = size * 4 > max + 1 ? max + 1 : size * 4;
			char *nb = realloc(heap, nsize);
			if (!nb)
				return -ENOMEM;
			if (!heap)
				memcpy(nb, *buf, len);
			*buf = heap = nb;
			size = nsize;
		}
		if (len == size)
			return (ssize_t)len;
		ssize_t n = read(fd, *buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return (ssize_t)len;
		len += (size_t)n;
	}
}

struct argv_buf *procfs_read_argv(pid_t pid)
{
	char path[64], stack[4096], *buf = stack;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	ssize_t r = read_all(fd, &buf, sizeof(stack), PTMON_ARGV_MAX);
	util_close(fd);
	struct argv_buf *a = NULL;
	size_t len = r > 0 ? (size_t)r : 0;
	if (!len)
		goto out;
	bool cut = len > PTMON_ARGV_MAX;
	if (cut) {
		len = PTMON_ARGV_MAX;
		buf[len - 1] = '\0'; /* keep the last argument terminated */
	} else if (buf[len - 1] != '\0') {
		/* A process that rewrote its argv area: terminate it. */
		if (len == PTMON_ARGV_MAX)
			buf[len - 1] = '\0';
		else
			buf[len++] = '\0';
	}
	a = argv_buf_new(buf, len, cut);
out:
	if (buf != stack)
		free(buf);
	return a;
}

static pid_t pid_of_name(const char *name)
{
	char *end;
	if (name[0] < '1' || name[0] > '9')
		return 0;
	long v = strtol(name, &end, 10);
	return (*end || v <= 0 || v > INT_MAX) ? 0 : (pid_t)v;
}

static int cmp_ppid(const void *a, const void *b)
{
	const struct procfs_entry *x = a, *y = b;
	if (x->ppid != y->ppid)
		return x->ppid < y->ppid ? -1 : 1;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

static int scan_one(int procfd, pid_t pid, struct procfs_entry *e)
{
	char path[32], buf[1024];
	snprintf(path, sizeof(path), "%d/stat", (int)pid);
	int n = procfs_read_small_at(procfd, path, buf, sizeof(buf));
	struct procfs_stat st;
	if (n < 0 || procfs_parse_stat(buf, (size_t)n, &st) < 0)
		return -1; /* gone meanwhile, or unreadable: skip */
	e->pid = st.pid;
	e->ppid = st.ppid;
	e->state = st.state;
	return 0;
}

int procfs_scan(struct procfs_entry **ret)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	int r = -ENOMEM;
	size_t cap = 512, n = 0;
	struct procfs_entry *v = malloc(cap * sizeof(*v));
	if (!v)
		goto out;
	struct dirent *de;
	while ((de = readdir(d))) {
		pid_t pid = pid_of_name(de->d_name);
		if (!pid)
			continue;
		if (n == cap) {
			struct procfs_entry *nv = realloc(v, 2 * cap * sizeof(*v));
			if (!nv)
				goto out;
			v = nv;
			cap *= 2;
		}
		if (scan_one(dirfd(d), pid, &v[n]) == 0)
			n++;
	}
	qsort(v, n, sizeof(*v), cmp_ppid);
	*ret = v;
	v = NULL;
	r = (int)n;
out:
	closedir(d);
	free(v);
	return r;
}

static int holders_of(int procfd, pid_t pid, const char *want, procfs_holder_fn fn, void *ud)
{
	char path[32];
	snprintf(path, sizeof(path), "%d/fd", (int)pid);
	int found = 0;
	DIR *d = NULL;
	int fdd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fdd < 0)
		goto out;
	d = fdopendir(fdd);
	if (!d)
		goto out;
	fdd = -1; /* the stream's now: closedir() closes it */
	struct dirent *de;
	while ((de = readdir(d))) {
		char target[64];
		ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, want) == 0) {
			fn(pid, atoi(de->d_name), ud);
			found++;
		}
	}
out:
	/* closedir() does not take NULL. */
	if (d)
		closedir(d);
	util_close(fdd);
	return found;
}

int procfs_find_pipe_holders(unsigned long ino, pid_t self, procfs_holder_fn fn, void *userdata)
{
	char want[48];
	snprintf(want, sizeof(want), "pipe:[%lu]", ino);
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	int found = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		pid_t pid = pid_of_name(de->d_name);
		if (pid && pid != self)
			found += holders_of(dirfd(d), pid, want, fn, userdata);
	}
	closedir(d);
	return found;
}
