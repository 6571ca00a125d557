/*
 * addrwatch.c: rtnetlink address events on the loop (see addrwatch.h).
 */
#include "core/addrwatch.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/wire.h"

#define RX_BUF 16384 /* several messages per datagram; rtnetlink(7) suggests 8 KiB+ */

struct addrwatch {
	struct loop *l;
	int fd;
	bool closing;
	addrwatch_fn fn;
	void *arg;
	uint8_t buf[RX_BUF];
};

/* Netlink is host byte order: copy the fixed headers out of the bounded
 * cursor rather than cast into a buffer that may be unaligned or short. */
static int parse_addr(struct wire *m, uint16_t type, addrwatch_fn fn, void *arg)
{
	struct ifaddrmsg ifa;
	struct netaddr local = {0}, address = {0};

	wire_bytes(m, &ifa, sizeof(ifa));
	if (m->err)
		return -EBADMSG;
	if (ifa.ifa_family != AF_INET && ifa.ifa_family != AF_INET6)
		return 0;
	size_t alen = ifa.ifa_family == AF_INET ? 4 : 16;
	while (wire_left(m) >= sizeof(struct rtattr)) {
		struct rtattr ra;
		wire_bytes(m, &ra, sizeof(ra));
		if (ra.rta_len < sizeof(ra) || ra.rta_len - sizeof(ra) > wire_left(m))
			return -EBADMSG;
		size_t plen = ra.rta_len - sizeof(ra);
		const uint8_t *p = wire_ptr(m, plen);
		/* Attributes are padded to 4 bytes (RTA_ALIGN); the last may not be. */
		size_t pad = RTA_ALIGN(ra.rta_len) - ra.rta_len;
		wire_skip(m, pad <= wire_left(m) ? pad : wire_left(m));
		struct netaddr *dst = ra.rta_type == IFA_LOCAL     ? &local
		                      : ra.rta_type == IFA_ADDRESS ? &address
		                                                   : NULL;
		if (!dst)
			continue;
		if (plen != alen)
			return -EBADMSG;
		dst->family = ifa.ifa_family;
		memcpy(dst->addr, p, alen);
	}
	if (m->err)
		return -EBADMSG;
	const struct netaddr *a = local.family ? &local : &address;
	if (!a->family)
		return 0;
	fn(arg, a, type == RTM_NEWADDR);
	return 1;
}

int addrwatch_parse(const uint8_t *buf, size_t len, addrwatch_fn fn, void *arg)
{
	struct wire w = wire_init(buf, len);
	int events = 0;

	while (wire_left(&w) >= sizeof(struct nlmsghdr)) {
		struct nlmsghdr nh;
		wire_bytes(&w, &nh, sizeof(nh));
		if (nh.nlmsg_len < sizeof(nh) || nh.nlmsg_len - sizeof(nh) > wire_left(&w))
			return -EBADMSG;
		struct wire m = wire_sub(&w, nh.nlmsg_len - sizeof(nh));
		size_t pad = NLMSG_ALIGN(nh.nlmsg_len) - nh.nlmsg_len;
		wire_skip(&w, pad <= wire_left(&w) ? pad : wire_left(&w));
		if (nh.nlmsg_type == NLMSG_DONE)
			break;
		if (nh.nlmsg_type != RTM_NEWADDR && nh.nlmsg_type != RTM_DELADDR)
			continue;
		int r = parse_addr(&m, nh.nlmsg_type, fn, arg);
		if (r < 0)
			return r;
		events += r;
	}
	return events;
}

static void on_closed(struct loop *l, void *ctx)
{
	(void)l;
	free(ctx);
}

static void arm(struct addrwatch *w);

static void on_recv(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct addrwatch *w = ctx;

	(void)l;
	(void)flags;
	if (w->closing || res == -ECANCELED)
		return;
	if (res == -ENOBUFS) {
		/* The kernel could not queue events for us: some are lost. */
		log_warn("health", "address events lost (netlink overrun): rechecking");
		w->fn(w->arg, NULL, false);
	} else if (res < 0) {
		log_err("health", "address events: receive failed: %s", strerror(-res));
		w->fn(w->arg, NULL, false);
	} else if (addrwatch_parse(w->buf, (size_t)res, w->fn, w->arg) < 0) {
		log_warn("health", "address events: malformed netlink message ignored");
	}
	arm(w);
}

static void arm(struct addrwatch *w)
{
	int r = loop_recv(w->l, w->fd, w->buf, sizeof(w->buf), on_recv, w, NULL);
	if (r < 0 && r != -ESHUTDOWN)
		log_err("health", "address events: cannot receive: %s", strerror(-r));
}

int addrwatch_new(struct loop *l, addrwatch_fn fn, void *arg, struct addrwatch **out)
{
	struct sockaddr_nl sa = {
	    .nl_family = AF_NETLINK,
	    .nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
	};
	struct addrwatch *w = calloc(1, sizeof(*w));
	int big = 1 << 20;

	if (!w)
		return -ENOMEM;
	w->l = l;
	w->fn = fn;
	w->arg = arg;
	w->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (w->fd < 0 || bind(w->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;
		if (w->fd >= 0)
			close(w->fd);
		free(w);
		return err;
	}
	/* Bursts (an interface going down takes all its addresses) must not overrun. */
	setsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	arm(w);
	*out = w;
	return 0;
}

void addrwatch_free(struct addrwatch *w)
{
	if (!w)
		return;
	w->closing = true;
	if (loop_close_fd(w->l, w->fd, on_closed, w) < 0) {
		close(w->fd);
		free(w);
	}
}
