/* SPDX-License-Identifier: MIT */
/*
 * Layer "loop" (loop.c): the one epoll set, its timer and the fd reserve.
 * It registers tagged watches (watch.h), arms the timer for a deadline it
 * is given and keeps two fds in hand for the moments that must not fail
 * for lack of one.  It knows nothing of tasks, trees or what a watch is
 * for: the monitor decides that.  Below it: sys.
 */
#ifndef PTMON_LOOP_H
#define PTMON_LOOP_H

#include <stdint.h>

#include "watch.h"

/* struct loop is private to loop.c. */
struct loop;

/* A loop with no fd yet (loop_free() may follow at once); NULL: no memory. */
struct loop *loop_new(void);
/* The epoll fd and the timerfd (registered as WATCH_TIMER). */
int loop_open(struct loop *l);
/* Close its fds and free it; takes NULL. */
struct loop *loop_free(struct loop *l);
/* The epoll fd, for ptmon_monitor_get_fd() and epoll_wait(). */
int loop_fd(const struct loop *l);

int loop_watch_add(struct loop *l, int fd, uint32_t events, struct watch *w);
int loop_watch_mod(struct loop *l, int fd, uint32_t events, struct watch *w);
void loop_watch_del(struct loop *l, int fd);

/* Arm the timer for @deadline (CLOCK_MONOTONIC ns; 0 or UINT64_MAX: off).
 * A deadline already armed and still ahead costs no system call. */
void loop_arm(struct loop *l, uint64_t deadline, uint64_t now);
/* Consume the timer's expirations (its watch fired). */
void loop_timer_ack(struct loop *l);

/* Release the reserved fds so that the next two opens succeed; re-take
 * them with loop_reserve_fd().  Around the work that must not fail for
 * lack of fds: resyncs, transient pidfds, the pipe-holder search. */
void loop_release_reserve(struct loop *l);
void loop_reserve_fd(struct loop *l);

#endif
