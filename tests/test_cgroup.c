/* SPDX-License-Identifier: MIT */
/*
 * The task's cgroup beyond its kill: the totals read at the end and the
 * limits written before the root starts.
 *
 * The parsers and the limit logic run on crafted directories (a cgroup's
 * files are plain files to them), so every branch is tested on any
 * machine.  The runs through the ptmon binary take whichever branch this
 * machine allows: where the controller is available to ptmon's cgroup,
 * the limit must bite (pids.max: forks fail; memory.max: an OOM kill,
 * reported); where it is not, ptmon must fail with 125, name the
 * controller, and leave no cgroup behind.  Each says which it ran.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cgpath.h"
#include "cgroup.h"
#include "harness.h"

#ifndef PTMON_BIN
#error "PTMON_BIN must name the ptmon binary"
#endif

static void put(const char *dir, const char *name, const char *text)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void get(const char *dir, const char *name, char *buf, size_t size)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "re");
	assert_non_null(f);
	size_t n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void rm_tree(const char *dir)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void t_parse_key(void **state)
{
	const char *cpu = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
			  "nr_periods 0\nnr_throttled 7\nthrottled_usec 9\n";
	uint64_t v = 0;
	(void)state;
	assert_int_equal(cgroup_parse_key(cpu, "usage_usec", &v), 0);
	assert_int_equal(v, 1500);
	assert_int_equal(cgroup_parse_key(cpu, "user_usec", &v), 0);
	assert_int_equal(v, 1000);
	assert_int_equal(cgroup_parse_key(cpu, "system_usec", &v), 0);
	assert_int_equal(v, 500);
	/* A key is a whole word at a line's start, never a key's tail. */
	assert_int_equal(cgroup_parse_key(cpu, "throttled", &v), -ENOENT);
	assert_int_equal(cgroup_parse_key(cpu, "throttled_usec", &v), 0);
	assert_int_equal(v, 9);
	assert_int_equal(cgroup_parse_key("oom 1\noom_kill 3\n", "oom_kill", &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(cgroup_parse_key("oom_kill x\n", "oom_kill", &v), -EINVAL);
	assert_int_equal(cgroup_parse_key("", "oom_kill", &v), -ENOENT);
}

static void t_parse_io(void **state)
{
	uint64_t r = 1, w = 1;
	(void)state;
	cgroup_parse_io("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
			"253:1 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=5 dios=1\n",
			&r, &w);
	assert_int_equal(r, 4196);
	assert_int_equal(w, 8192);
	cgroup_parse_io("", &r, &w);
	assert_int_equal(r, 0);
	assert_int_equal(w, 0);
}

static void t_read_totals(void **state)
{
	char dir[] = "/tmp/ptmon-cgtest.XXXXXX";
	struct cgroup_totals cg;
	(void)state;
	assert_non_null(mkdtemp(dir));
	put(dir, "cpu.stat", "usage_usec 30\nuser_usec 20\nsystem_usec 10\n");
	put(dir, "memory.peak", "7340032\n");
	put(dir, "pids.peak", "12\n");
	put(dir, "io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n");
	put(dir, "memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n");
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	cg = (struct cgroup_totals){0};
	cgroup_read_totals(&cg, fd);
	assert_true(cg.have_cpu && cg.have_memory_peak && cg.have_pids_peak && cg.have_io &&
		    cg.have_oom);
	assert_int_equal(cg.usage_usec, 30);
	assert_int_equal(cg.memory_peak, 7340032);
	assert_int_equal(cg.pids_peak, 12);
	assert_int_equal(cg.io_rbytes, 10);
	assert_int_equal(cg.io_wbytes, 20);
	assert_int_equal(cg.oom_kills, 2);
	close(fd);
	rm_tree(dir);

	/* No controller: none of the files, none of the figures. */
	assert_non_null(mkdtemp(strcpy(dir, "/tmp/ptmon-cgtest.XXXXXX")));
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	cg = (struct cgroup_totals){0};
	cgroup_read_totals(&cg, fd);
	assert_false(cg.have_cpu || cg.have_memory_peak || cg.have_pids_peak || cg.have_io ||
		     cg.have_oom);
	close(fd);
	rm_tree(dir);
}

/* io.stat has a line per device the cgroup touched: more than one read's
 * worth of them must all count, none cut in the middle of a number. */
static void t_read_totals_long_io(void **state)
{
	char dir[] = "/tmp/ptmon-cgtest.XXXXXX", line[160];
	struct cgroup_totals cg;
	(void)state;
	assert_non_null(mkdtemp(dir));
	size_t cap = 200 * sizeof(line), len = 0;
	char *io = calloc(1, cap);
	assert_non_null(io);
	for (int i = 0; i < 200; i++)
		len += (size_t)snprintf(io + len, cap - len,
					"259:%d rbytes=1000000 wbytes=2000000 rios=100 wios=200 "
					"dbytes=0 dios=0 cost.usage=0 cost.wait=0\n",
					i);
	assert_true(len > 8192);
	put(dir, "io.stat", io);
	free(io);
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	cg = (struct cgroup_totals){0};
	cgroup_read_totals(&cg, fd);
	assert_true(cg.have_io);
	assert_int_equal(cg.io_rbytes, 200 * 1000000ull);
	assert_int_equal(cg.io_wbytes, 200 * 2000000ull);
	close(fd);
	rm_tree(dir);
}

/* A cgroup directory as cgroup_write_limits() takes it. */
struct fake_cg {
	int fd;
	char path[512];
};

/* A parent "ptmon's cgroup" and a child "the task's", as plain files. */
static void fake_pair(char *parent, struct fake_cg *cg, const char *parent_has,
		      const char *child_has)
{
	assert_non_null(mkdtemp(parent));
	put(parent, "cgroup.controllers", parent_has);
	put(parent, "cgroup.subtree_control", "");
	snprintf(cg->path, sizeof(cg->path), "%s/task", parent);
	assert_int_equal(mkdir(cg->path, 0755), 0);
	put(cg->path, "cgroup.controllers", child_has);
	put(cg->path, "memory.max", "max\n");
	put(cg->path, "pids.max", "max\n");
	put(cg->path, "cpu.max", "max 100000\n");
	cg->fd = open(cg->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(cg->fd >= 0);
}

static void t_limits_written(void **state)
{
	char parent[] = "/tmp/ptmon-cgtest.XXXXXX", buf[128];
	struct fake_cg cg;
	const char *why = NULL, *controller = NULL;
	struct cgroup_limits l = {.memory_max = 64 << 20, .pids_max = 20, .cpu_quota_us = 50000};
	(void)state;
	/* The child has memory and pids already; cpu comes from the parent. */
	fake_pair(parent, &cg, "cpuset cpu io memory pids\n", "memory pids\n");
	/* Plain files keep a longer old text's tail: empty them. */
	put(cg.path, "memory.max", "");
	put(cg.path, "pids.max", "");
	put(cg.path, "cpu.max", "");
	assert_int_equal(cgroup_write_limits(cg.fd, cg.path, &l, &why, &controller), 0);
	get(cg.path, "memory.max", buf, sizeof(buf));
	assert_string_equal(buf, "67108864");
	get(cg.path, "pids.max", buf, sizeof(buf));
	assert_string_equal(buf, "20");
	get(cg.path, "cpu.max", buf, sizeof(buf));
	assert_string_equal(buf, "50000 100000");
	get(parent, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "+cpu");
	close(cg.fd);
	rm_tree(parent);
}

static void t_limits_unavailable(void **state)
{
	char parent[] = "/tmp/ptmon-cgtest.XXXXXX", buf[128];
	struct fake_cg cg;
	const char *why = NULL, *controller = NULL;
	struct cgroup_limits l = {.pids_max = 20, .memory_max = 1 << 20};
	(void)state;
	/* "hugetlb" alone, as on a hybrid machine; "memoryx" is no "memory". */
	fake_pair(parent, &cg, "hugetlb memoryx\n", "");
	assert_int_equal(cgroup_write_limits(cg.fd, cg.path, &l, &why, &controller), -EOPNOTSUPP);
	assert_string_equal(controller, "memory");
	assert_non_null(why);
	assert_non_null(strstr(why, "not available"));
	get(cg.path, "memory.max", buf, sizeof(buf));
	assert_string_equal(buf, "max\n"); /* untouched */
	get(parent, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "");
	close(cg.fd);
	rm_tree(parent);
}

struct result {
	int status;
	char err[8192];
	char rep[16384];
};

/* ptmon run ARGS..., stderr kept, --report into r->rep. */
/* The cgroup (a directory) the next run() starts ptmon in; NULL: ours. */
static const char *run_in;

static void run(struct result *r, const char *const *args)
{
	char rep[] = "/tmp/ptmon-cgtest-report.XXXXXX", errp[] = "/tmp/ptmon-cgtest-err.XXXXXX";
	int rfd = mkstemp(rep), efd = mkstemp(errp);
	char *argv[32];
	int n = 0;
	assert_true(rfd >= 0 && efd >= 0);
	argv[n++] = (char *)PTMON_BIN;
	argv[n++] = (char *)"run";
	argv[n++] = (char *)"--no-control";
	argv[n++] = (char *)"--report";
	argv[n++] = rep;
	for (; *args; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(efd, 2);
		if (run_in) {
			char procs[600];
			snprintf(procs, sizeof(procs), "%s/cgroup.procs", run_in);
			int fd = open(procs, O_WRONLY);
			if (fd < 0 || write(fd, "0", 1) != 1)
				_exit(121);
		}
		execv(argv[0], argv);
		_exit(120);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	r->status = WEXITSTATUS(st);
	ssize_t k = pread(efd, r->err, sizeof(r->err) - 1, 0);
	r->err[k > 0 ? k : 0] = '\0';
	k = pread(rfd, r->rep, sizeof(r->rep) - 1, 0);
	r->rep[k > 0 ? k : 0] = '\0';
	close(rfd);
	close(efd);
	unlink(rep);
	unlink(errp);
}

/* Is @controller enabled for the children of this process's cgroup (or
 * could ptmon enable it)?  What ptmon's task cgroup would get. */
static bool controller_usable(const char *controller)
{
	char own[512], path[700], list[512] = "";
	if (cgpath_own(own, sizeof(own)) < 0)
		return false;
	snprintf(path, sizeof(path), "%s/cgroup.controllers", own);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(list, sizeof(list), f))
		list[0] = '\0';
	fclose(f);
	for (char *w = strtok(list, " \n"); w; w = strtok(NULL, " \n"))
		if (strcmp(w, controller) == 0)
			return true;
	return false;
}

/* Where the controller is missing: 125, the controller named, no cgroup. */
static void assert_refused(const struct result *r, const char *controller)
{
	char want[64];
	snprintf(want, sizeof(want), "the %s controller", controller);
	if (r->status != 125 || !strstr(r->err, want))
		fail_msg("status %d, stderr: %s", r->status, r->err);
	assert_non_null(strstr(r->err, "cannot set the task's limits"));
}

static void t_pids_max(void **state)
{
	char helper[600];
	struct result r;
	(void)state;
	snprintf(helper, sizeof(helper), "%s", PTMON_HELPER);
	/* The helper forks 40 children that stay, then says READY: with
	 * pids.max 10, a fork fails and the helper dies of it. */
	const char *args[] = {"--pids-max", "10", "--", helper, "wide", "40", NULL};
	bool usable = controller_usable("pids");
	run(&r, args);
	if (!usable) {
		print_message("    the pids controller is not available here: ptmon must refuse\n");
		assert_refused(&r, "pids");
		return;
	}
	print_message("    the pids controller is available: pids.max must bite\n");
	assert_int_not_equal(r.status, 0);
	assert_non_null(strstr(r.rep, "\"pids_peak\": 10"));
}

static void t_memory_max(void **state)
{
	struct result r;
	(void)state;
	/* tail keeps the last line of a stream that has no newline: all of it. */
	const char *args[] = {"--memory-max",
			      "32M",
			      "--",
			      "sh",
			      "-c",
			      "head -c 256M /dev/zero | tail -c 1 >/dev/null",
			      NULL};
	bool usable = controller_usable("memory");
	run(&r, args);
	if (!usable) {
		print_message(
			"    the memory controller is not available here: ptmon must refuse\n");
		assert_refused(&r, "memory");
		return;
	}
	print_message("    the memory controller is available: memory.max must bite\n");
	assert_non_null(strstr(r.err, "OOM killer killed"));
	assert_non_null(strstr(r.rep, "\"oom_kills\": "));
	assert_null(strstr(r.rep, "\"oom_kills\": 0"));
}

static void t_limits_usage(void **state)
{
	struct result r;
	(void)state;
	const char *off[] = {"--cgroup", "off", "--cpu-max", "1", "--", "true", NULL};
	run(&r, off);
	assert_int_equal(r.status, 125);
	assert_non_null(strstr(r.err, "need a cgroup"));
	const char *bad[] = {"--memory-max", "1.5G", "--", "true", NULL};
	run(&r, bad);
	assert_int_equal(r.status, 125);
	assert_non_null(strstr(r.err, "--memory-max: invalid value '1.5G'"));
	const char *unit[] = {"--pids-max", "10K", "--", "true", NULL};
	run(&r, unit);
	assert_int_equal(r.status, 125);
	assert_non_null(strstr(r.err, "--pids-max: invalid value"));
	const char *tiny[] = {"--cpu-max", "0.001", "--", "true", NULL};
	run(&r, tiny);
	assert_int_equal(r.status, 125);
	assert_non_null(strstr(r.err, "--cpu-max: out of range"));
}

/* Linux 6.18 kills at birth what clone3(CLONE_INTO_CGROUP) starts in a new
 * child of a cgroup once cgroup.kill'ed: ptmon started in such a cgroup
 * must still run CMD in a cgroup of its own (it moves the root there
 * before exec instead), with CMD's status. */
static void t_once_killed_cgroup(void **state)
{
	char dir[600], file[700];
	struct result r;
	int in[2];
	(void)state;
	if (geteuid() != 0 || !find_cgroup2()) {
		print_message("    needs root and a cgroup2 mount: skipped\n");
		skip();
	}
	if (cg_make("cgroup", "1", dir, sizeof(dir)) < 0) {
		print_message("    cannot make a cgroup under %s: skipped\n", cg_mount);
		skip();
	}
	/* A process in it, killed with cgroup.kill, gone. */
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		snprintf(file, sizeof(file), "%s/cgroup.procs", dir);
		if (write_file(file, "0") < 0 || write(in[1], "i", 1) != 1)
			_exit(121);
		pause();
		_exit(0);
	}
	close(in[1]);
	char c;
	assert_int_equal(read(in[0], &c, 1), 1); /* it is in */
	close(in[0]);
	snprintf(file, sizeof(file), "%s/cgroup.kill", dir);
	int kfd = open(file, O_WRONLY);
	assert_true(kfd >= 0);
	assert_int_equal(write(kfd, "1", 1), 1);
	close(kfd);
	int st;
	assert_int_equal(waitpid(p, &st, 0), p);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

	const char *args[] = {"--cgroup", "on", "--", "sh", "-c", "exit 3", NULL};
	run_in = dir;
	run(&r, args);
	run_in = NULL;
	char cmd[800];
	snprintf(cmd, sizeof(cmd), "find '%s' -depth -type d -exec rmdir {} \\; 2>/dev/null", dir);
	if (system(cmd) != 0)
		print_message("    could not remove %s\n", dir);
	if (r.status != 3)
		fail_msg("status %d (137: CMD killed at birth), stderr: %s", r.status, r.err);
	assert_non_null(strstr(r.rep, "\"empty_proof\": true"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_parse_key),      cmocka_unit_test(t_parse_io),
		cmocka_unit_test(t_read_totals),    cmocka_unit_test(t_read_totals_long_io),
		cmocka_unit_test(t_limits_written), cmocka_unit_test(t_limits_unavailable),
		cmocka_unit_test(t_limits_usage),   cmocka_unit_test(t_pids_max),
		cmocka_unit_test(t_memory_max),     cmocka_unit_test(t_once_killed_cgroup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
