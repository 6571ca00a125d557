/*
 * health.h: the plain-data health snapshot that the DNS side publishes and
 * the BGP side reads. It is the only thing dns/ and bgp/ share, and it lives
 * here so neither has to include the other.
 *
 * Today a VIP is SERVING when its listener is bound and its worker loop is
 * answering; the per-VIP health policy (self-probes, answer success, load)
 * will fill the same structure with DEGRADED and DRAINING.
 */
#ifndef ANYCACHE_CORE_HEALTH_H
#define ANYCACHE_CORE_HEALTH_H

#include <stdint.h>

#include "core/netaddr.h"

enum health_state {
	HEALTH_DOWN = 0, /* not serving: withdraw */
	HEALTH_SERVING,  /* announce with the configured attributes */
	HEALTH_DEGRADED, /* announce with bgp.degraded attributes */
	HEALTH_DRAINING, /* planned stop: announce degraded, then withdraw */
};

#define HEALTH_MAX_VIPS 64

struct health_vip {
	struct netaddr addr; /* listener address (port ignored for routing) */
	enum health_state state;
};

/* Readers compare whole snapshots (memcmp): a writer zeroes one before filling it. */
struct health_snapshot {
	unsigned n;
	struct health_vip vip[HEALTH_MAX_VIPS];
};

#endif
