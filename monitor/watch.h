/* SPDX-License-Identifier: MIT */
/* The tag every epoll registration's data.ptr points at. */
#ifndef PTMON_WATCH_H
#define PTMON_WATCH_H

enum watch_kind {
	WATCH_NETLINK,
	WATCH_TASKSTATS,
	WATCH_SIGNAL,
	WATCH_TIMER,
	WATCH_PIDFD,
	WATCH_PIPE,
	WATCH_OUTPUT,
	WATCH_FRONT,
	WATCH_CGROUP, /* a watched cgroup's cgroup.events */
};

struct watch {
	enum watch_kind kind;
};

#endif
