/* SPDX-License-Identifier: MIT */
/* ptmon_process_sample(): what a live process of a task looks like now,
 * read from /proc and proved by its pidfd to be the tracked process. */
#include "procfs.h"
#include "ptmon.h"
#include "sys.h"
#include "tree.h"
#include "sized.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int parse(const char *stat, const char *statm, struct ptmon_process_sample *ret)
{
	/* The name may hold anything, ')' included: the state follows the last. */
	const char *p = strrchr(stat, ')');
	unsigned long ut, st, rss;
	char state;
	if (!p ||
	    sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &state, &ut,
		   &st) != 3 ||
	    sscanf(statm, "%*u %lu", &rss) != 1)
		return -EIO;
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	_Static_assert(sizeof(struct ptmon_process_sample) == PTMON_PROCESS_SAMPLE_SIZE_VER0,
		       "the first layout is published");
	struct ptmon_process_sample s = {
		.size = sizeof(s),
		.state = state,
		.cpu_us = (uint64_t)(ut + st) * 1000000u / (uint64_t)(hz > 0 ? hz : 100),
		.rss_bytes = (uint64_t)rss * (uint64_t)(page > 0 ? page : 4096),
	};
	return sized_copy_out(ret, &s, sizeof(s), PTMON_PROCESS_SAMPLE_SIZE_VER0);
}

int ptmon_process_sample(const struct ptmon_process *proc, struct ptmon_process_sample *ret)
{
	const struct node *n = (const struct node *)proc;
	char path[32], stat[1024], statm[256];
	if (!proc || !ret || ret->size < PTMON_PROCESS_SAMPLE_SIZE_VER0 || ret->size > SIZED_MAX)
		return -EINVAL;
	if (!(n->flags & NODE_ALIVE) || n->pidfd < 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d", (int)n->pid);
	int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	/* The directory stays bound to the process its pid named when it was
	 * opened: if the pidfd says ours lives after that, the directory is
	 * ours, and what is read through it too (reaped meanwhile, it reads as
	 * ESRCH, never as the figures of a process that took the pid). */
	int r = util_pidfd_exited(n->pidfd);
	if (r > 0)
		r = -ESRCH;
	if (r < 0)
		goto out;
	r = procfs_read_small_at(dir, "stat", stat, sizeof(stat));
	if (r < 0)
		goto out;
	r = procfs_read_small_at(dir, "statm", statm, sizeof(statm));
	if (r < 0)
		goto out;
	r = parse(stat, statm, ret);
out:
	util_close(dir);
	return r;
}
