/* SPDX-License-Identifier: MIT */
#include "nlutil.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <linux/netlink.h>
#include <libmnl/libmnl.h>

bool nl_msg_fits(const struct nlmsghdr *hdr, int rem)
{
	return mnl_nlmsg_ok(hdr, rem) && hdr->nlmsg_len <= (uint32_t)rem;
}

int nl_walk(const void *buf, size_t len, uint64_t *malformed, nl_msg_fn fn, const void *ctx)
{
	const uint8_t *p = buf;
	size_t rem;
	int delivered = 0;

	/* As mnl_nlmsg_next(), but over aligned copies of the headers:
	 * libmnl would read through an unaligned pointer. */
	for (rem = len; rem >= sizeof(struct nlmsghdr);) {
		const uint8_t *msg = p + (len - rem);
		struct nlmsghdr hdr;
		size_t step;
		int r;

		memcpy(&hdr, msg, sizeof(hdr));
		if (!nl_msg_fits(&hdr, (int)rem)) {
			(*malformed)++;
			return delivered;
		}
		r = fn(ctx, &hdr, msg + NLMSG_HDRLEN);
		if (r < 0)
			return r;
		delivered = r > INT_MAX - delivered ? INT_MAX : delivered + r;
		/* nlmsg_len <= rem <= INT_MAX, so aligning it cannot wrap. */
		step = NLMSG_ALIGN(hdr.nlmsg_len);
		rem = step < rem ? rem - step : 0;
	}
	if (rem > 0)
		(*malformed)++; /* trailing bytes too short for a header */
	return delivered;
}

ssize_t nl_recv(int fd, void *buf, size_t size, int flags, uint32_t *ret_sender, bool *ret_trunc)
{
	struct sockaddr_nl addr = {0};
	struct iovec iov = {.iov_base = buf, .iov_len = size};
	struct msghdr mh = {
		.msg_name = &addr,
		.msg_namelen = sizeof(addr),
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | flags);

	if (n < 0)
		return -errno;
	/* An address we cannot read is not the kernel's. */
	if (mh.msg_namelen >= sizeof(addr) && addr.nl_family == AF_NETLINK)
		*ret_sender = addr.nl_pid;
	else
		*ret_sender = UINT32_MAX;
	*ret_trunc = mh.msg_flags & MSG_TRUNC;
	return n;
}

int nl_set_rcvbuf(int fd, size_t size)
{
	int v = size > INT_MAX ? INT_MAX : (int)size;

	if (size == 0)
		return 0;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) == 0)
		return 0;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) < 0)
		return -errno;
	return 0;
}

int nl_open(int bus, unsigned groups, size_t rcvbuf, struct mnl_socket **ret)
{
	struct mnl_socket *nl = mnl_socket_open2(bus, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int r;

	if (!nl)
		return -errno;
	r = nl_set_rcvbuf(mnl_socket_get_fd(nl), rcvbuf);
	if (r == 0 && mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0)
		r = -errno;
	if (r < 0) {
		mnl_socket_close(nl);
		return r;
	}
	*ret = nl;
	return 0;
}

int nl_receive(int fd, void *buf, size_t size, unsigned batch, uint64_t *datagrams,
	       uint64_t *malformed, uint64_t *overruns, nl_datagram_fn fn, void *ctx,
	       bool *ret_overrun)
{
	int total = 0, r = 0;

	/* Bounded, so that a storm elsewhere on the machine cannot keep the
	 * caller's loop here: what is left stays readable. */
	for (unsigned i = 0; i < batch; i++) {
		uint32_t sender = UINT32_MAX;
		bool trunc = false;
		ssize_t n = nl_recv(fd, buf, size, 0, &sender, &trunc);

		if (n == -EINTR)
			continue;
		if (n == -ENOBUFS) {
			/* The queue overflowed and the kernel dropped messages. */
			(*overruns)++;
			*ret_overrun = true;
			continue;
		}
		if (n < 0) {
			r = n == -EAGAIN ? 0 : (int)n;
			break;
		}
		if (trunc) {
			(*datagrams)++;
			(*malformed)++;
			continue;
		}
		r = fn(ctx, buf, (size_t)n, sender);
		if (r < 0)
			break;
		total = r > INT_MAX - total ? INT_MAX : total + r;
	}
	return r < 0 ? r : total;
}
