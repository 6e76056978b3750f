/* SPDX-License-Identifier: MIT */
/*
 * cnlisten: the least a proc-connector listener can do: subscribe, receive
 * and count.  A storm run beside it pays what the kernel charges for having
 * a listener at all (building and queueing every event, waking the reader,
 * the reader's recv per event); that is the floor ptmon is measured against.
 *
 *   cnlisten [-m EVENT_MASK] [-d]
 *
 * -d attaches a socket filter that drops everything: what the kernel still
 * charges per listener (building the event, running one filter) with
 * nothing queued and no wake-up, the floor of an idle filtered listener.
 *
 * Subscribes (the 6.6+ proc_input request with all events, or EVENT_MASK,
 * where the kernel takes it, else the classic one, as ptmon does), prints
 * READY, then counts until SIGTERM or SIGINT.  The stop is the signal, never
 * a number of events: it then reads what is already queued, unsubscribes (the
 * kernel's listener count outlives a closed socket) and prints one line:
 *   CNLISTEN events=E fork=F exec=X exit=Y other=O overruns=R
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Linux 6.6's struct proc_input; Debian 12's headers are 6.1's. */
struct cn_proc_input {
	uint32_t mcast_op;
	uint32_t event_type;
};

#define RCVBUF (8 * 1024 * 1024) /* ptmon's */

struct counts {
	uint64_t events, fork, exec, exit, other, overruns;
};

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static int kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return 0;
	return ma > major || (ma == major && mi >= minor);
}

/* The kernel handles the request inside sendto(): when it returns, the
 * subscription is in force (or was ignored, which the counts would show). */
static int request(int fd, uint32_t op, uint32_t mask, int input_form)
{
	union {
		struct nlmsghdr nlh;
		char buf[NLMSG_SPACE(sizeof(struct cn_msg) + sizeof(struct cn_proc_input))];
	} req;
	struct cn_proc_input in = {.mcast_op = op, .event_type = mask};
	size_t plen = input_form ? sizeof(in) : sizeof(op);
	struct cn_msg *cn = NLMSG_DATA(&req.nlh);

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = (uint32_t)NLMSG_LENGTH(sizeof(*cn) + plen);
	req.nlh.nlmsg_type = NLMSG_DONE;
	req.nlh.nlmsg_pid = (uint32_t)getpid();
	cn->id.idx = CN_IDX_PROC;
	cn->id.val = CN_VAL_PROC;
	cn->len = (uint16_t)plen;
	memcpy(cn->data, input_form ? (void *)&in : (void *)&op, plen);
	return send(fd, &req, req.nlh.nlmsg_len, 0) < 0 ? -errno : 0;
}

static void count(struct counts *c, const char *buf, unsigned int len)
{
	for (const struct nlmsghdr *h = (const void *)buf; NLMSG_OK(h, len);
	     h = NLMSG_NEXT(h, len)) {
		const struct cn_msg *cn = NLMSG_DATA(h);
		const struct proc_event *ev = (const void *)cn->data;
		if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*cn) + sizeof(ev->what)))
			continue;
		c->events++;
		if (ev->what == PROC_EVENT_FORK)
			c->fork++;
		else if (ev->what == PROC_EVENT_EXEC)
			c->exec++;
		else if (ev->what == PROC_EVENT_EXIT)
			c->exit++;
		else
			c->other++;
	}
}

/* Receive until asked to stop, then what is queued.  The stop signals are
 * blocked except inside ppoll(), so a stop cannot slip in between a look at
 * the flag and a blocking wait. */
static void receive(int fd, struct counts *c, const sigset_t *waitmask)
{
	static char buf[65536];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			count(c, buf, (unsigned int)n);
			continue;
		}
		if (n < 0 && errno == ENOBUFS) {
			c->overruns++;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (stop)
			return; /* queue drained */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ppoll(&p, 1, NULL, waitmask);
	}
}

int main(int argc, char **argv)
{
	uint32_t mask = 0xffffffffu; /* 6.6+: all events */
	int rcvbuf = RCVBUF;
	int input_form = kernel_at_least(6, 6);
	struct counts c = {0};

	int drop_all = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-m") && i + 1 < argc) {
			mask = (uint32_t)strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "-d")) {
			drop_all = 1;
		} else {
			fputs("Usage: cnlisten [-m EVENT_MASK] [-d]\n", stderr);
			return 2;
		}
	}
	sigset_t block, waitmask;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	struct sigaction sa = {.sa_handler = on_stop};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	struct sockaddr_nl sa_nl = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa_nl, sizeof(sa_nl)) < 0) {
		perror("cnlisten: proc connector socket");
		return 1;
	}
	struct sock_filter none[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
	struct sock_fprog prog = {.len = 1, .filter = none};
	if (drop_all && setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) {
		perror("cnlisten: attach filter");
		return 1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	int r = request(fd, PROC_CN_MCAST_LISTEN, mask, input_form);
	if (r < 0) {
		fprintf(stderr, "cnlisten: subscribe: %s\n", strerror(-r));
		return 1;
	}
	printf("READY 0\n");
	fflush(stdout);
	receive(fd, &c, &waitmask);
	request(fd, PROC_CN_MCAST_IGNORE, 0, input_form);
	close(fd);
	printf("CNLISTEN events=%" PRIu64 " fork=%" PRIu64 " exec=%" PRIu64 " exit=%" PRIu64
	       " other=%" PRIu64 " overruns=%" PRIu64 "\n",
	       c.events, c.fork, c.exec, c.exit, c.other, c.overruns);
	return 0;
}
