/*
 * health.h: the plain-data health snapshot that the composition root builds
 * from the DNS data path and the BGP side reads. It is the only thing dns/
 * and bgp/ share, and it lives here so neither has to include the other.
 *
 * One entry per VIP (listen address). Its state comes from the per-VIP
 * health machine (core/health_fsm.h), fed by every worker's heartbeat and
 * listener state, the self-probes, the host's address events and the load
 * figures. The announcement policy (bgp/bgp_policy.h) maps it to routes:
 *   UP        the configured attributes
 *   DEGRADED  the bgp.degraded attributes (the configured ones without a
 *             bgp.degraded section): degraded never means withdrawn
 *   DRAINING  GRACEFUL_SHUTDOWN (RFC 8326) and LOCAL_PREF 0, still answering
 *   DOWN      withdrawn
 */
#ifndef ANYCACHE_CORE_HEALTH_H
#define ANYCACHE_CORE_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"

enum health_state {
	HEALTH_DOWN = 0, /* not serving: withdraw */
	HEALTH_UP,       /* announce with the configured attributes */
	HEALTH_DEGRADED, /* announce with bgp.degraded attributes */
	HEALTH_DRAINING, /* planned stop: graceful shutdown, then withdraw */
};

/* Why a VIP is not UP (bits; 0 when UP). Shown to operators. */
enum health_reason {
	HEALTH_R_STARTING = 1u << 0,    /* not yet `rise` good probes since start */
	HEALTH_R_NO_LISTENER = 1u << 1, /* a worker's listener is not bound/armed */
	HEALTH_R_NO_ADDRESS = 1u << 2,  /* the address is not configured on the host */
	HEALTH_R_STALLED = 1u << 3,     /* a worker loop made no progress */
	HEALTH_R_PROBES = 1u << 4,      /* `fall` self-probes failed in a row */
	HEALTH_R_OVERLOAD = 1u << 5,    /* load over health.overload thresholds */
	HEALTH_R_UPSTREAMS = 1u << 6,   /* every upstream failing: cache only */
	HEALTH_R_DRAIN = 1u << 7,       /* administrative drain or shutdown */
	HEALTH_R_HOLD_DOWN = 1u << 8,   /* recovered, waiting out the hold-down */
};

#define HEALTH_MAX_VIPS 64

struct health_vip {
	struct netaddr addr; /* listener address (port ignored for routing) */
	enum health_state state;
	uint32_t reason;   /* enum health_reason bits */
	uint64_t since_ms; /* clock_now_ms() of the last state change */
};

/* Readers compare whole snapshots (memcmp): a writer zeroes one before filling it. */
struct health_snapshot {
	unsigned n;
	struct health_vip vip[HEALTH_MAX_VIPS];
};

const char *health_state_name(enum health_state s);
/* The name of one reason bit ("no-address", ...), NULL for an unknown one;
 * the same words in the log, anycachectl and the metrics. */
const char *health_reason_name(uint32_t bit);
/* Every reason in bits, comma-separated, into buf ("ok" when none). */
const char *health_reasons_format(uint32_t bits, char *buf, size_t size);

#endif
