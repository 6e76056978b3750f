/* SPDX-License-Identifier: MIT */
/* What the two netlink clients (cnproc, tstats) share: bounded walking of a
 * datagram's messages, receiving with the sender's address, and sizing the
 * receive buffer. */
#ifndef PTMON_NLUTIL_H
#define PTMON_NLUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct nlmsghdr;

/*
 * Whether @hdr (an aligned copy) is a whole message within @rem bytes: by
 * libmnl's rules, plus a bound of our own, because libmnl before 1.0.5
 * compares (int)nlmsg_len, so a length above INT_MAX passes.
 */
bool nl_msg_fits(const struct nlmsghdr *hdr, int rem);

/* Called per message with an aligned copy of its header and its payload.
 * Returns what it delivered (0 or more) or a negative value to stop. */
typedef int (*nl_msg_fn)(const void *ctx, const struct nlmsghdr *hdr, const uint8_t *payload);

/*
 * Walk the messages of one datagram (@buf may be unaligned: headers are
 * copied before they are read) and call @fn for each.  A message that does
 * not fit, or trailing bytes too short for a header, add one to *malformed
 * and end the walk.  Returns the sum of @fn's values (saturated at INT_MAX)
 * or @fn's negative value.  @len must be at most INT_MAX.
 */
int nl_walk(const void *buf, size_t len, uint64_t *malformed, nl_msg_fn fn, const void *ctx);

/*
 * One recvmsg(MSG_DONTWAIT | @flags) into @buf.  *ret_sender is the
 * sender's nl_pid (UINT32_MAX when the address cannot be read: not the
 * kernel's); *ret_trunc says whether the datagram was cut.  Returns its
 * length or -errno.
 */
ssize_t nl_recv(int fd, void *buf, size_t size, int flags, uint32_t *ret_sender, bool *ret_trunc);

struct mnl_socket;

/* Decodes one whole datagram; returns what it delivered or a negative
 * value to stop. */
typedef int (*nl_datagram_fn)(void *ctx, const void *buf, size_t len, uint32_t sender);

/*
 * Read at most @batch datagrams from @fd into @buf (until the queue is
 * empty), each given to @fn; several per system call (recvmmsg), each in
 * a 4 KiB slot of @buf (a longer datagram is truncated).  EINTR is retried.  ENOBUFS (the kernel
 * dropped messages) adds to *overruns, sets *ret_overrun and reading goes on; a truncated datagram
 * adds to *datagrams and *malformed and is skipped.  Returns the sum of @fn's values (saturated),
 * @fn's negative value, or -errno.
 */
int nl_receive(int fd, void *buf, size_t size, unsigned batch, uint64_t *datagrams,
	       uint64_t *malformed, uint64_t *overruns, nl_datagram_fn fn, void *ctx,
	       bool *ret_overrun);

/*
 * A non-blocking, close-on-exec netlink socket of protocol @bus, with a
 * receive buffer of @rcvbuf bytes (see nl_set_rcvbuf), bound to @groups with
 * a port id from the kernel.  NETLINK_NO_ENOBUFS is not set: an overrun must
 * surface as ENOBUFS.  Returns 0 and sets *ret, or -errno.
 */
int nl_open(int bus, unsigned groups, size_t rcvbuf, struct mnl_socket **ret);

/* Receive buffer of @size bytes (0: leave it): SO_RCVBUFFORCE passes
 * net.core.rmem_max but needs CAP_NET_ADMIN; else SO_RCVBUF takes the cap.
 * Returns 0 or -errno. */
int nl_set_rcvbuf(int fd, size_t size);

#endif
