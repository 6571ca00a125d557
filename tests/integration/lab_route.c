/* rtnetlink reader for the lab's router namespace; see lab_route.h. */
#include "lab_route.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

int lab_route_open(const struct netns *ns, bool subscribe)
{
	int fd =
	    netns_socket(ns, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK,
	                         .nl_groups = subscribe ? RTMGRP_IPV4_ROUTE : 0};
	int rcv = 1 << 20;

	if (fd < 0)
		return fd;
	/* Route storms (BIRD withdrawing everything at once) must not overflow it. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int lab_route_request_dump(int fd)
{
	struct {
		struct nlmsghdr n;
		struct rtmsg r;
	} req;

	memset(&req, 0, sizeof(req));
	req.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	req.n.nlmsg_type = RTM_GETROUTE;
	req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.r.rtm_family = AF_INET;
	return send(fd, &req, req.n.nlmsg_len, 0) < 0 ? -errno : 0;
}

static int gw_bit(const struct lab_route_watch *w, const struct rtattr *a)
{
	uint32_t gw;

	if (RTA_PAYLOAD(a) != 4)
		return LAB_ROUTE_OTHER;
	memcpy(&gw, RTA_DATA(a), 4);
	for (unsigned i = 0; i < w->nnodes; i++)
		if (w->nh[i] == gw)
			return 1 << i;
	return LAB_ROUTE_OTHER;
}

/* The next hops of one RTA_MULTIPATH attribute (struct rtnexthop list). */
static int multipath_mask(const struct lab_route_watch *w, const struct rtattr *mp)
{
	const struct rtnexthop *nh = RTA_DATA(mp);
	int len = (int)RTA_PAYLOAD(mp), mask = 0;

	while (len >= (int)sizeof(*nh) && nh->rtnh_len >= sizeof(*nh) && nh->rtnh_len <= len) {
		int alen = nh->rtnh_len - (int)sizeof(*nh);
		for (const struct rtattr *a = RTNH_DATA(nh); RTA_OK(a, alen); a = RTA_NEXT(a, alen))
			if (a->rta_type == RTA_GATEWAY)
				mask |= gw_bit(w, a);
		len -= RTNH_ALIGN(nh->rtnh_len);
		nh = RTNH_NEXT(nh);
	}
	return mask;
}

/* 1 and *mask set when h is about w->dst in the main table, else 0. */
static int route_msg(const struct nlmsghdr *h, const struct lab_route_watch *w, int *mask)
{
	const struct rtmsg *r = NLMSG_DATA(h);
	int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*r));
	uint32_t table;
	bool is_dst = false;
	int m = 0;

	if (len < 0 || r->rtm_family != AF_INET || r->rtm_dst_len != 32)
		return 0;
	table = r->rtm_table;
	for (const struct rtattr *a = RTM_RTA(r); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		switch (a->rta_type) {
		case RTA_DST:
			is_dst = RTA_PAYLOAD(a) == 4 && memcmp(RTA_DATA(a), &w->dst, 4) == 0;
			break;
		case RTA_TABLE:
			if (RTA_PAYLOAD(a) == 4)
				memcpy(&table, RTA_DATA(a), 4);
			break;
		case RTA_GATEWAY:
			m |= gw_bit(w, a);
			break;
		case RTA_MULTIPATH:
			m |= multipath_mask(w, a);
			break;
		}
	}
	if (!is_dst || table != RT_TABLE_MAIN)
		return 0;
	*mask = h->nlmsg_type == RTM_DELROUTE ? 0 : (m ? m : LAB_ROUTE_OTHER);
	return 1;
}

int lab_route_read(int fd, const struct lab_route_watch *w, int *mask, bool *done)
{
	static __thread char buf[1 << 16];
	int changes = 0;

	/* Bounded: at most 64 datagrams per call; the caller polls again. */
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			/* ENOBUFS: events were lost; the caller dumps again. */
			return -errno;
		}
		int len = (int)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len);
		     h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				*done = true;
				continue;
			}
			if (h->nlmsg_type == RTM_NEWROUTE || h->nlmsg_type == RTM_DELROUTE)
				changes += route_msg(h, w, mask);
		}
	}
	return changes;
}

int lab_route_mask_now(const struct netns *ns, const struct lab_route_watch *w, int timeout_ms)
{
	int fd = lab_route_open(ns, false), mask = 0, r;
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	bool done = false;

	if (fd < 0)
		return fd;
	r = lab_route_request_dump(fd);
	while (!r && !done && now_ms() < end) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		poll(&pf, 1, 50);
		r = lab_route_read(fd, w, &mask, &done);
		r = r < 0 ? r : 0;
	}
	close(fd);
	if (r)
		return r;
	return done ? mask : -ETIMEDOUT;
}

void lab_route_mask_text(int mask, char *out, unsigned cap)
{
	size_t off = 0;

	out[0] = '\0';
	if (mask == 0) {
		snprintf(out, cap, "none");
		return;
	}
	for (int i = 0; i < LAB_MAX_NODES; i++)
		if (mask & (1 << i) && off < cap)
			off +=
			    (size_t)snprintf(out + off, cap - off, "%s%c", off ? "+" : "", 'a' + i);
	if (mask & LAB_ROUTE_OTHER && off < cap)
		snprintf(out + off, cap - off, "%sother", off ? "+" : "");
}
