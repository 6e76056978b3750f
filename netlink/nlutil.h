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

/* Receive buffer of @size bytes (0: leave it): SO_RCVBUFFORCE passes
 * net.core.rmem_max but needs CAP_NET_ADMIN; else SO_RCVBUF takes the cap.
 * Returns 0 or -errno. */
int nl_set_rcvbuf(int fd, size_t size);

#endif
