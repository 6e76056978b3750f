/* SPDX-License-Identifier: MIT */
/*
 * Where cgroup v2 is mounted, and where in it this process's own cgroup
 * is: one implementation for the library (monitor/cgroup.c), the command
 * (src/front.c) and the tests.  Header only, as fdclose.h: the command
 * links the shared library, which exports none of this.
 */
#ifndef PTMON_CGPATH_H
#define PTMON_CGPATH_H

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* The first cgroup2 mount point in /proc/self/mounts into @out: 0, or
 * -ENOENT (none), -ENAMETOOLONG, -errno of the open. */
static inline int cgpath_mount(char *out, size_t size)
{
	char dev[256], dir[PATH_MAX], type[64];
	FILE *f = fopen("/proc/self/mounts", "re");
	int r = -ENOENT;
	if (!f)
		return -errno;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]", dev, dir, type) == 3)
		if (strcmp(type, "cgroup2") == 0) {
			int n = snprintf(out, size, "%s", dir);
			r = n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
			break;
		}
	fclose(f);
	return r;
}

/* Our cgroup's directory: the cgroup2 mount and the "0::" line of
 * /proc/self/cgroup (none: not in a cgroup v2, -ENOENT). */
static inline int cgpath_own(char *out, size_t size)
{
	char mnt[PATH_MAX], line[1024];
	int r = cgpath_mount(mnt, sizeof(mnt));
	if (r < 0)
		return r;
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	r = -ENOENT;
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

#endif
