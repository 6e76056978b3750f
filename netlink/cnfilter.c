/* SPDX-License-Identifier: MIT */
/*
 * cnfilter: load and drive the tree filter.  See cnfilter.h.
 *
 * Loaded with libbpf from an object that clang built at build time and
 * that is embedded in the library (cnfilter_object.c, generated), so that
 * nothing is read from disk at run time.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stddef.h>
#include <linux/taskstats.h>
#include <linux/types.h>

#include "cnfilter.h"
#include "cnfilter_shared.h"

_Static_assert(offsetof(struct taskstats, ac_tgid) == CNF_TS_AC_TGID, "taskstats layout");

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif

#ifdef PTMON_HAVE_EBPF

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/* cnfilter_object.c */
extern const unsigned char cnfilter_object[];
extern const unsigned long cnfilter_object_size;

struct cnfilter {
	struct bpf_object *obj;
	int tgids_fd; /* owned by obj */
	volatile struct cnf_shared *shared;
	size_t shared_len;
};

/* The library never prints: libbpf's warnings would go to our caller's
 * stderr.  Errors come back as return values. */
static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static int map_shared(struct cnfilter *f)
{
	struct bpf_map *map = bpf_object__find_map_by_name(f->obj, "shared");
	long page = sysconf(_SC_PAGESIZE);
	void *p;

	if (!map)
		return -ENOENT;
	f->shared_len = (size_t)(page > 0 ? page : 4096);
	p = mmap(NULL, f->shared_len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
	if (p == MAP_FAILED)
		return -errno;
	f->shared = p;
	return 0;
}

static int load(struct cnfilter *f)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "ptmon_cnfilter");
	struct bpf_map *tgids;
	int r;

	libbpf_set_print(quiet);
	f->obj = bpf_object__open_mem(cnfilter_object, cnfilter_object_size, &opts);
	if (!f->obj) {
		r = -errno;
		return r < 0 ? r : -EINVAL;
	}
	r = bpf_object__load(f->obj);
	if (r < 0)
		return r;
	tgids = bpf_object__find_map_by_name(f->obj, "tgids");
	if (!tgids)
		return -ENOENT;
	f->tgids_fd = bpf_map__fd(tgids);
	return map_shared(f);
}

int cnfilter_attach(int fd, struct cnfilter **ret)
{
	struct bpf_program *prog;
	struct cnfilter *f = NULL;
	int r, prog_fd;

	assert(ret);
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->tgids_fd = -1;
	r = load(f);
	if (r < 0)
		goto out;
	prog = bpf_object__find_program_by_name(f->obj, "cnfilter");
	prog_fd = prog ? bpf_program__fd(prog) : -1;
	if (prog_fd < 0) {
		r = -ENOENT;
		goto out;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof(prog_fd)) < 0) {
		r = -errno;
		goto out;
	}
	*ret = f;
	f = NULL;
	r = 0;
out:
	cnfilter_free(f);
	return r;
}

int cnfilter_attach_taskstats(struct cnfilter *f, int fd)
{
	struct bpf_program *prog;
	int prog_fd;

	assert(f);
	prog = bpf_object__find_program_by_name(f->obj, "tsfilter");
	prog_fd = prog ? bpf_program__fd(prog) : -1;
	if (prog_fd < 0)
		return -ENOENT;
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof(prog_fd)) < 0)
		return -errno;
	return 0;
}

struct cnfilter *cnfilter_free(struct cnfilter *f)
{
	int saved_errno = errno;

	if (f) {
		if (f->shared)
			munmap((void *)f->shared, f->shared_len);
		bpf_object__close(f->obj);
		free(f);
	}
	errno = saved_errno;
	return NULL;
}

int cnfilter_add(struct cnfilter *f, pid_t tgid)
{
	__u32 key = (__u32)tgid, one = 1;

	assert(f);
	if (bpf_map_update_elem(f->tgids_fd, &key, &one, BPF_NOEXIST) == 0)
		return 1;
	if (errno == EEXIST)
		return 0;
	/* Full: from now on the map cannot answer for the tree. */
	int r = -errno;
	if (r == -E2BIG || r == -ENOMEM)
		f->shared->pass_all = 1;
	return r;
}

/* The guard of cnfilter.bpf.c's in_tree(): del_pid is written before
 * del_seq turns odd, and the map changes only while it is. */
static void guard(struct cnfilter *f, __u32 pid, bool on)
{
	if (on)
		__atomic_store_n(&f->shared->del_pid, pid, __ATOMIC_RELAXED);
	__atomic_fetch_add(&f->shared->del_seq, 1, __ATOMIC_SEQ_CST);
}

int cnfilter_remove(struct cnfilter *f, pid_t tgid, cnfilter_keep_fn keep, void *userdata)
{
	__u32 key = (__u32)tgid;
	int r = 0;

	assert(f);
	guard(f, key, true);
	if (bpf_map_delete_elem(f->tgids_fd, &key) < 0 && errno != ENOENT)
		r = -errno;
	else if (keep && keep(tgid, userdata)) {
		r = cnfilter_add(f, tgid);
		r = r < 0 ? r : 1;
	}
	guard(f, key, false);
	return r;
}

int cnfilter_contains(struct cnfilter *f, pid_t tgid)
{
	__u32 key = (__u32)tgid, value;

	assert(f);
	if (bpf_map_lookup_elem(f->tgids_fd, &key, &value) == 0)
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

void cnfilter_get_counts(const struct cnfilter *f, struct cnfilter_counts *ret)
{
	assert(f && ret);
	ret->gaps = f->shared->gaps;
	ret->missing = f->shared->missing;
	ret->map_full = f->shared->map_full;
	ret->pass_all = f->shared->pass_all != 0;
}

#else /* !PTMON_HAVE_EBPF */

/* Built without libbpf or clang: the classic filter only. */
struct cnfilter {
	int unused;
};

int cnfilter_attach(int fd, struct cnfilter **ret)
{
	return -EOPNOTSUPP;
}

struct cnfilter *cnfilter_free(struct cnfilter *f)
{
	return NULL;
}

int cnfilter_attach_taskstats(struct cnfilter *f, int fd)
{
	return -EOPNOTSUPP;
}

int cnfilter_add(struct cnfilter *f, pid_t tgid)
{
	return -EOPNOTSUPP;
}

int cnfilter_remove(struct cnfilter *f, pid_t tgid, cnfilter_keep_fn keep, void *userdata)
{
	return -EOPNOTSUPP;
}

int cnfilter_contains(struct cnfilter *f, pid_t tgid)
{
	return -EOPNOTSUPP;
}

void cnfilter_get_counts(const struct cnfilter *f, struct cnfilter_counts *ret)
{
	memset(ret, 0, sizeof(*ret));
}

#endif
