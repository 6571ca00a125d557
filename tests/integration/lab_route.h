/*
 * lab_route.h: the failover lab reads the router namespace's kernel route to
 * VIP1 (what BIRD exported) over rtnetlink, as a set of next hops: bit i of
 * the mask is node i, LAB_ROUTE_OTHER a next hop that is no node, 0 no route.
 * A change is seen the moment the kernel applies it, so the timeline shows
 * when the router really moved the traffic.
 */
#ifndef ANYCACHE_TESTS_LAB_ROUTE_H
#define ANYCACHE_TESTS_LAB_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "lab_stats.h"
#include "netns.h"

#define LAB_ROUTE_OTHER 0x80

struct lab_route_watch {
	uint32_t dst;               /* the /32 watched, network byte order */
	uint32_t nh[LAB_MAX_NODES]; /* node i's address on its link, network byte order */
	unsigned nnodes;
};

/* A non-blocking rtnetlink socket in ns, joined to the IPv4 route group when subscribe. */
int lab_route_open(const struct netns *ns, bool subscribe);

/* Asks for a dump of the IPv4 routes (answered on the same socket). */
int lab_route_request_dump(int fd);

/*
 * Reads what is pending on fd (bounded). Each message about w->dst in the
 * main table updates *mask; returns how many did, or -errno. *done is set
 * when a dump's NLMSG_DONE was read.
 */
int lab_route_read(int fd, const struct lab_route_watch *w, int *mask, bool *done);

/* The route's mask now (a dump on a fresh socket, bounded by timeout_ms), or -errno. */
int lab_route_mask_now(const struct netns *ns, const struct lab_route_watch *w, int timeout_ms);

/* "a+b", "none", "a+other": for logs and the timeline. */
void lab_route_mask_text(int mask, char *out, unsigned cap);

#endif
