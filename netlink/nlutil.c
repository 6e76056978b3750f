/* SPDX-License-Identifier: MIT */
#include "nlutil.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
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
	if (r < 0)
		goto out;
	if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	*ret = nl;
	nl = NULL;
out:
	/* libmnl's close does not take NULL. */
	if (nl)
		mnl_socket_close(nl);
	return r;
}

/* One datagram's room when several are read at once: a proc connector
 * event or a taskstats record is a few hundred bytes; a larger datagram is
 * truncated, and counted as malformed. */
#define NL_SLOT 4096u
#define NL_SLOTS_MAX 64u

struct nl_batch {
	struct mmsghdr mm[NL_SLOTS_MAX];
	struct iovec iov[NL_SLOTS_MAX];
	struct sockaddr_nl addr[NL_SLOTS_MAX];
};

/* Read up to @want datagrams at once into @buf's slots: one system call
 * for what is queued, and none to find the queue empty when it returns
 * fewer.  Returns the count or -errno. */
static int recv_batch(int fd, struct nl_batch *b, uint8_t *buf, size_t slot, unsigned want)
{
	for (unsigned i = 0; i < want; i++) {
		b->iov[i] = (struct iovec){.iov_base = buf + i * slot, .iov_len = slot};
		b->addr[i] = (struct sockaddr_nl){0};
		b->mm[i].msg_hdr = (struct msghdr){
			.msg_name = &b->addr[i],
			.msg_namelen = sizeof(b->addr[i]),
			.msg_iov = &b->iov[i],
			.msg_iovlen = 1,
		};
		b->mm[i].msg_len = 0;
	}
	int n = recvmmsg(fd, b->mm, want, MSG_DONTWAIT, NULL);
	return n < 0 ? -errno : n;
}

int nl_receive(int fd, void *buf, size_t size, unsigned batch, uint64_t *datagrams,
	       uint64_t *malformed, uint64_t *overruns, nl_datagram_fn fn, void *ctx,
	       bool *ret_overrun)
{
	struct nl_batch b;
	size_t slot = size < NL_SLOT ? size : NL_SLOT;
	unsigned slots =
		(unsigned)(size / slot) < NL_SLOTS_MAX ? (unsigned)(size / slot) : NL_SLOTS_MAX;
	unsigned got = 0;
	int total = 0, r = 0;

	/* Bounded, so that a storm elsewhere on the machine cannot keep the
	 * caller's loop here: what is left stays readable. */
	while (got < batch && r >= 0) {
		unsigned want = batch - got < slots ? batch - got : slots;
		int n = recv_batch(fd, &b, buf, slot, want);

		if (n == -EINTR)
			continue;
		if (n == -ENOBUFS) {
			/* The queue overflowed and the kernel dropped messages
			 * (reported by the first read after the drop). */
			(*overruns)++;
			*ret_overrun = true;
			got++;
			continue;
		}
		if (n < 0) {
			r = n == -EAGAIN ? 0 : n;
			break;
		}
		for (int i = 0; i < n && r >= 0; i++) {
			struct msghdr *mh = &b.mm[i].msg_hdr;
			/* An address we cannot read is not the kernel's. */
			uint32_t sender = mh->msg_namelen >= sizeof(b.addr[i]) &&
							  b.addr[i].nl_family == AF_NETLINK
						  ? b.addr[i].nl_pid
						  : UINT32_MAX;
			if (mh->msg_flags & MSG_TRUNC) {
				(*datagrams)++;
				(*malformed)++;
				continue;
			}
			r = fn(ctx, (uint8_t *)buf + (size_t)i * slot, b.mm[i].msg_len, sender);
			if (r >= 0)
				total = r > INT_MAX - total ? INT_MAX : total + r;
		}
		got += (unsigned)n;
		if ((unsigned)n < want)
			break; /* the queue is empty */
	}
	return r < 0 ? r : total;
}
