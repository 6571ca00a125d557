/*
 * bgp_policy.h: the announcement policy, pure: (bgp config, health snapshot)
 * -> the routes each neighbor should have, as bgp_session_set_routes() takes
 * them. No clock, no I/O, no logging: what the glue should tell the operator
 * comes back as data.
 *
 * A route's state is the best state of the VIPs (health snapshot entries)
 * its prefix contains, UP > DEGRADED > DRAINING > DOWN; a route that contains
 * none is DOWN. Then:
 *   UP        the configured attributes.
 *   DEGRADED  the configured attributes changed by bgp.degraded: its
 *             LOCAL_PREF, its MED when set, its AS_PATH prepend, its
 *             communities added. Without a bgp.degraded section DEGRADED keeps
 *             the configured attributes: a degraded node still answers, and
 *             withdrawing it would push its load onto the others.
 *   DRAINING  the configured attributes plus GRACEFUL_SHUTDOWN (65535:0,
 *             RFC 8326 §3) and LOCAL_PREF 0 (RFC 8326 §4; like every
 *             LOCAL_PREF it only goes to iBGP peers, RFC 4271 §5.1.5), so
 *             routers move traffic to other nodes before the route goes.
 *   DOWN      withdrawn.
 * Communities are merged as sets (the route's, then bgp.degraded's or
 * GRACEFUL_SHUTDOWN, each value once). Nothing is ever cut: a route whose
 * attributes do not fit the Adj-RIB-Out's caps is withdrawn and reported
 * (conf.c refuses such configurations at load time, so this only guards
 * against a struct built by hand).
 *
 * A route is offered to a neighbor only when the session has a next hop of
 * the route's family (IPv4: an IPv4 neighbor address or local-address; IPv6:
 * an IPv6 neighbor address or next-hop6); otherwise it is withdrawn there and
 * flagged in no_next_hop for the glue to warn about.
 *
 * Ownership: struct bgp_policy_out is a value (about 50 KB: the glue keeps it
 * off the stack); it holds copies of everything.
 */
#ifndef ANYCACHE_BGP_BGP_POLICY_H
#define ANYCACHE_BGP_BGP_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "bgp/bgp_adjout.h"
#include "core/conf.h"
#include "core/health.h"

#define BGP_POLICY_GRACEFUL_SHUTDOWN 0xffff0000u /* 65535:0, RFC 8326 §3 */

struct bgp_policy_out {
	/* The attribute-set table shared by every neighbor's routes. */
	size_t n_sets;
	struct bgp_adjout_attrs sets[BGP_ADJOUT_MAX_ATTRSETS];
	/* One entry per configured route, in configuration order. */
	size_t n_routes;
	enum health_state state[CONF_MAX_ROUTES];
	/* routes[i]: neighbor i's desired routes (n_routes of them, withdrawn ones
	 * marked BGP_ADJOUT_WITHDRAWN), ready for bgp_session_set_routes(). */
	struct bgp_adjout_route routes[CONF_MAX_NEIGHBORS][CONF_MAX_ROUTES];
	size_t n_neighbors;
	/* Bit r: route r would be announced, but neighbor i has no next hop of
	 * its family (set next-hop6): the glue warns, once. */
	uint64_t no_next_hop[CONF_MAX_NEIGHBORS];
	/* Bit r: route r's attributes do not fit; withdrawn instead of cut. */
	uint64_t refused;
};

/*
 * Fills out for this configuration and snapshot. Returns 0, or -E2BIG when
 * some route was refused (out->refused says which; every other route is as
 * the policy wants it, so the result is still fit to apply).
 */
int bgp_policy_apply(const struct conf_bgp *c, const struct health_snapshot *h,
                     struct bgp_policy_out *out);

/* The state of route r (the best of the VIPs it contains). */
enum health_state bgp_policy_route_state(const struct conf_route *r,
                                         const struct health_snapshot *h);

/*
 * The attributes of route r in state st (UP, DEGRADED or DRAINING). Returns 0,
 * -E2BIG when the merged communities or the large communities exceed the
 * Adj-RIB-Out's caps, -EINVAL for DOWN.
 */
int bgp_policy_attrs(const struct conf_bgp *c, const struct conf_route *r, enum health_state st,
                     struct bgp_adjout_attrs *out);

#endif
