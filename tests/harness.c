/* SPDX-License-Identifier: MIT */
/* The test harness, base layer (tests/harness.h). */
#include "harness.h"
#include "cgpath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- system helpers ---------------------------------------------------------- */

int sys_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int sys_pidfd_send_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int sys_pidfd_getfd(int pidfd, int fd)
{
	return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool pidfd_dead(int pidfd, int wait_ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	double end = now_s() + wait_ms / 1000.0;

	for (;;) {
		int left = (int)((end - now_s()) * 1000);
		int n = poll(&p, 1, left > 0 ? left : 0);

		if (n > 0)
			return true;
		if (n == 0 || (n < 0 && errno != EINTR))
			return false;
	}
}

int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n < 0 ? -errno : 0;
}

pid_t ppid_of(pid_t pid)
{
	char path[64], buf[1024], *p;
	int ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

pid_t front_worker(pid_t front)
{
	char path[64], buf[512], name[32];
	double end = now_s() + 5;
	struct timespec step = {0, 1000000};

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", front, front);
	for (;;) {
		pid_t found = 0;
		int alike = 0;
		char *s = buf, *e;

		if (read_file(path, buf, sizeof(buf)) < 0)
			return 0;
		for (long pid; (pid = strtol(s, &e, 10)) > 0; s = e) {
			comm_of((pid_t)pid, name, sizeof(name));
			if (strcmp(name, "ptmon-guard") != 0) {
				found = (pid_t)pid;
				alike++;
			}
		}
		if (alike <= 1 || now_s() > end)
			return found;
		nanosleep(&step, NULL);
	}
}

void describe_pid(pid_t pid, char *out, size_t len)
{
	char path[64], cmd[256];
	int n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	n = read_file(path, cmd, sizeof(cmd));
	for (int i = 0; i < n - 1; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	snprintf(out, len, "pid %d ppid %d: %s", pid, ppid_of(pid), n > 0 ? cmd : "?");
}

void comm_of(pid_t pid, char *out, size_t len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (read_file(path, out, len) <= 0)
		snprintf(out, len, "?");
	out[strcspn(out, "\n")] = '\0';
}

/* ---- buffers ------------------------------------------------------------------- */

void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

bool buf_has(const struct buf *b, const char *needle)
{
	return b->len && memmem(b->p, b->len, needle, strlen(needle)) != NULL;
}

int buf_count(const struct buf *b, const char *needle)
{
	size_t len = strlen(needle);
	const char *p = b->p, *end = b->p + b->len;
	int n = 0;

	while (p && (p = memmem(p, (size_t)(end - p), needle, len))) {
		n++;
		p += len;
	}
	return n;
}

void buf_add_file(struct buf *b, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char chunk[65536];
	ssize_t n;

	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	buf_add(b, "", 0);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail_msg("read %s: %s", path, strerror(errno));
		buf_add(b, chunk, (size_t)n);
	}
	close(fd);
}

/* ---- test cgroups -------------------------------------------------------------- */

char cg_mount[256];
static unsigned cg_serial;

bool find_cgroup2(void)
{
	if (cgpath_mount(cg_mount, sizeof(cg_mount)) < 0)
		cg_mount[0] = '\0';
	return cg_mount[0] != '\0';
}

bool cg_setup(const char *subject, char *why, size_t why_len)
{
	char probe[384], f[512];
	struct stat st;

	if (!find_cgroup2()) {
		snprintf(why, why_len, "no cgroup2 in /proc/self/mounts");
		return false;
	}
	/* cgroup.kill exists from Linux 5.14 in non-root cgroups only. */
	if (cg_make(subject, "k", probe, sizeof(probe)) < 0) {
		snprintf(why, why_len, "cannot make a cgroup under %s (not root?)", cg_mount);
		cg_mount[0] = '\0';
		return false;
	}
	snprintf(f, sizeof(f), "%s/cgroup.kill", probe);
	if (stat(f, &st) < 0) {
		snprintf(why, why_len, "no cgroup.kill (Linux < 5.14?)");
		cg_mount[0] = '\0';
	}
	rmdir(probe);
	return cg_mount[0] != '\0';
}

int cg_make(const char *subject, const char *tag, char *out, size_t len)
{
	int n;

	if (tag)
		n = snprintf(out, len, "%s/ptmon-%s.%d.%s", cg_mount, subject, getpid(), tag);
	else
		n = snprintf(out, len, "%s/ptmon-%s.%d.%u", cg_mount, subject, getpid(),
			     ++cg_serial);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	if (mkdir(out, 0755) < 0 && errno != EEXIST) {
		int err = -errno;

		print_error("mkdir %s: %s\n", out, strerror(errno));
		return err;
	}
	return 0;
}

bool cg_populated_at(const char *cg)
{
	char path[PATH_MAX], buf[256];

	snprintf(path, sizeof(path), "%s/cgroup.events", cg);
	if (read_file(path, buf, sizeof(buf)) < 0)
		return false;
	return strstr(buf, "populated 1") != NULL;
}

bool cg_wait_empty_at(const char *cg, int bound_ms)
{
	char path[PATH_MAX];
	double end = now_s() + bound_ms / 1000.0;
	int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	bool empty = false;

	snprintf(path, sizeof(path), "%s/cgroup.events", cg);
	if (ino >= 0)
		inotify_add_watch(ino, path, IN_MODIFY);
	for (;;) {
		struct pollfd p = {.fd = ino, .events = POLLIN};
		char evbuf[4096];
		int left;

		if (!cg_populated_at(cg)) {
			empty = true;
			break;
		}
		left = (int)((end - now_s()) * 1000);
		if (left <= 0)
			break;
		/* Without inotify, the 100 ms poll timeout is the re-check. */
		if (poll(&p, ino >= 0 ? 1 : 0, left > 100 ? 100 : left) > 0)
			while (read(ino, evbuf, sizeof(evbuf)) > 0)
				;
	}
	if (ino >= 0)
		close(ino);
	return empty;
}

void cg_kill_at(const char *cg)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/cgroup.kill", cg);
	write_file(path, "1");
}

/* The cgroups below @cg, deepest first: a cgroup with children cannot be
 * removed, and ptmon's own (the task's) outlives a ptmon that was killed. */
static void cg_remove_below(const char *cg)
{
	DIR *d = opendir(cg);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char sub[PATH_MAX];

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", cg, de->d_name);
		cg_remove_below(sub);
		if (rmdir(sub) < 0)
			print_error("rmdir %s: %s\n", sub, strerror(errno));
	}
	if (d)
		closedir(d);
}

int cg_remove(const char *cg)
{
	int ret = 0;

	cg_kill_at(cg);
	if (!cg_wait_empty_at(cg, 5000)) {
		print_error("cgroup %s does not empty after cgroup.kill\n", cg);
		ret = -1;
	}
	cg_remove_below(cg);
	if (rmdir(cg) < 0) {
		print_error("rmdir %s: %s\n", cg, strerror(errno));
		ret = -1;
	}
	return ret;
}

int cg_count_at(const char *cg)
{
	char path[PATH_MAX], buf[65536];
	int n, count = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	n = read_file(path, buf, sizeof(buf));
	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++)
		count += buf[i] == '\n';
	return count;
}

int cg_list_dir(const char *dir, pid_t *pids, int n, int max)
{
	char path[PATH_MAX];
	FILE *f;
	DIR *d;
	struct dirent *de;
	int pid;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f)
		return n;
	while (fscanf(f, "%d", &pid) == 1) {
		if (n < max)
			pids[n] = pid;
		n++;
	}
	fclose(f);
	d = opendir(dir);
	while (d && (de = readdir(d)))
		if (de->d_type == DT_DIR && de->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			n = cg_list_dir(path, pids, n, max);
		}
	if (d)
		closedir(d);
	return n;
}

int cg_children_at(const char *cg)
{
	DIR *d = opendir(cg);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)))
		n += de->d_type == DT_DIR && de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

void cg_remove_stale(const char *subject)
{
	DIR *d = opendir(cg_mount);
	struct dirent *de;
	char prefix[128];

	snprintf(prefix, sizeof(prefix), "ptmon-%s.", subject);
	while (d && (de = readdir(d))) {
		char proc[64], stale[512];
		int pid;

		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    sscanf(de->d_name + strlen(prefix), "%d.", &pid) != 1 || pid == getpid())
			continue;
		snprintf(proc, sizeof(proc), "/proc/%d", pid);
		if (access(proc, F_OK) == 0)
			continue;
		if ((size_t)snprintf(stale, sizeof(stale), "%s/%s", cg_mount, de->d_name) >=
		    sizeof(stale))
			continue;
		print_error("removing %s, left by an earlier run\n", stale);
		cg_kill_at(stale);
		cg_wait_empty_at(stale, 2000);
		cg_remove_below(stale);
		rmdir(stale);
	}
	if (d)
		closedir(d);
}

/* ---- the bystander and the outsiders --------------------------------------------- */

pid_t bystander_pid = -1;
int bystander_fd = -1;

void bystander_start(void)
{
	pid_t parent = getpid();

	bystander_pid = fork();
	if (bystander_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		for (;;)
			pause();
	}
	bystander_fd = bystander_pid > 0 ? sys_pidfd_open(bystander_pid) : -1;
}

bool bystander_alive(void)
{
	return bystander_fd >= 0 && !pidfd_dead(bystander_fd, 0);
}

void bystander_stop(void)
{
	if (bystander_fd < 0)
		return;
	sys_pidfd_send_signal(bystander_fd, SIGKILL);
	waitpid(bystander_pid, NULL, 0);
	close(bystander_fd);
	bystander_fd = -1;
}

int bystander_renew(void)
{
	if (bystander_alive())
		return 0;
	/* An earlier test failed for killing it; this one gets a new one. */
	bystander_stop();
	bystander_start();
	return bystander_fd < 0 ? -1 : 0;
}

#define MAX_OUTSIDE 1024
static struct outside outsiders[MAX_OUTSIDE];

struct outside *outside_fork(void)
{
	pid_t parent = getpid(), pid;
	struct outside *o = NULL;

	for (int i = 0; i < MAX_OUTSIDE && !o; i++)
		if (!outsiders[i].pid)
			o = &outsiders[i];
	assert_non_null(o);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(120);
		return NULL;
	}
	o->pid = pid;
	o->pidfd = sys_pidfd_open(pid);
	assert_true(o->pidfd >= 0);
	return o;
}

void outside_reap(struct outside *o, int *ret_status)
{
	int status = 0;

	while (waitpid(o->pid, &status, 0) < 0 && errno == EINTR)
		;
	close(o->pidfd);
	o->pid = 0;
	o->pidfd = -1;
	if (ret_status)
		*ret_status = status;
}

void outside_kill_all(void)
{
	for (int i = 0; i < MAX_OUTSIDE; i++)
		if (outsiders[i].pid) {
			sys_pidfd_send_signal(outsiders[i].pidfd, SIGKILL);
			outside_reap(&outsiders[i], NULL);
		}
}

int children_check_none(void)
{
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD) {
		print_error("the test left a child process behind\n");
		return -1;
	}
	return 0;
}
