/* SPDX-License-Identifier: MIT */
/* The epoll set, its timer and the fd reserve: see loop.h. */
#include "loop.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct loop {
	int epfd;
	int timerfd;
	int reserve_fd[2]; /* held so that fds are free when we must have them */
	uint64_t armed_ns; /* what the timerfd is armed for, 0: nothing */
	struct watch timer_watch;
};

struct loop *loop_new(void)
{
	struct loop *l = malloc(sizeof(*l));
	if (l)
		*l = (struct loop){
			.epfd = -1,
			.timerfd = -1,
			.reserve_fd = {-1, -1},
			.timer_watch = {WATCH_TIMER},
		};
	return l;
}

int loop_fd(const struct loop *l)
{
	return l->epfd;
}

int loop_open(struct loop *l)
{
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (l->epfd < 0 || l->timerfd < 0)
		return -errno;
	return loop_watch_add(l, l->timerfd, EPOLLIN, &l->timer_watch);
}

struct loop *loop_free(struct loop *l)
{
	if (!l)
		return NULL;
	util_close(l->epfd);
	util_close(l->timerfd);
	loop_release_reserve(l);
	free(l);
	return NULL;
}

int loop_watch_add(struct loop *l, int fd, uint32_t events, struct watch *w)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};
	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int loop_watch_mod(struct loop *l, int fd, uint32_t events, struct watch *w)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_watch_del(struct loop *l, int fd)
{
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
}

void loop_arm(struct loop *l, uint64_t next, uint64_t now)
{
	/* Most loop iterations change no deadline: spare the system call. */
	if (next == l->armed_ns && (!next || next > now))
		return;
	l->armed_ns = next;
	struct itimerspec its = {0};
	/* UINT64_MAX is a saturated deadline: never (the timer stays off). */
	if (next && next != UINT64_MAX) {
		its.it_value.tv_sec = (time_t)(next / 1000000000ull);
		its.it_value.tv_nsec = (long)(next % 1000000000ull);
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(l->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

void loop_timer_ack(struct loop *l)
{
	uint64_t expirations;
	while (read(l->timerfd, &expirations, sizeof(expirations)) < 0 && errno == EINTR)
		;
}

void loop_release_reserve(struct loop *l)
{
	for (int i = 0; i < 2; i++)
		l->reserve_fd[i] = util_close(l->reserve_fd[i]);
}

void loop_reserve_fd(struct loop *l)
{
	for (int i = 0; i < 2; i++)
		if (l->reserve_fd[i] < 0)
			l->reserve_fd[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
}
