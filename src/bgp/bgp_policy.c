/*
 * bgp_policy.c: health snapshot -> per-neighbor routes. See bgp_policy.h.
 */
#include "bgp/bgp_policy.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* conf.c caps every list at what one attribute set holds; combinations are
 * checked there with the same merge rule as add_community() below. */
_Static_assert(CONF_MAX_COMMUNITIES <= BGP_ADJOUT_MAX_COMMUNITIES, "community caps");
_Static_assert(CONF_MAX_LARGE_COMMUNITIES <= BGP_ADJOUT_MAX_LARGE_COMMUNITIES,
               "large community caps");
_Static_assert(CONF_PREPEND_MAX <= BGP_ADJOUT_MAX_PREPEND, "prepend caps");
/* Each route uses one set at a time, so the table never runs out. */
_Static_assert(BGP_ADJOUT_MAX_ATTRSETS >= CONF_MAX_ROUTES, "one set per route fits");
_Static_assert(CONF_MAX_ROUTES <= 64, "route bit masks are 64 bits");

/* Higher is better: the order in which a route takes its VIPs' states. */
static int rank(enum health_state s)
{
	switch (s) {
	case HEALTH_UP:
		return 3;
	case HEALTH_DEGRADED:
		return 2;
	case HEALTH_DRAINING:
		return 1;
	case HEALTH_DOWN:
		break;
	}
	return 0;
}

enum health_state bgp_policy_route_state(const struct conf_route *r,
                                         const struct health_snapshot *h)
{
	enum health_state best = HEALTH_DOWN;

	for (unsigned i = 0; i < h->n && i < HEALTH_MAX_VIPS; i++)
		if (netprefix_contains(&r->prefix, &h->vip[i].addr) &&
		    rank(h->vip[i].state) > rank(best))
			best = h->vip[i].state;
	return best;
}

/* Adds c unless present: communities are a set. */
static int add_community(struct bgp_adjout_attrs *a, uint32_t c)
{
	for (unsigned i = 0; i < a->n_communities; i++)
		if (a->communities[i] == c)
			return 0;
	if (a->n_communities >= BGP_ADJOUT_MAX_COMMUNITIES)
		return -E2BIG;
	a->communities[a->n_communities++] = c;
	return 0;
}

int bgp_policy_attrs(const struct conf_bgp *c, const struct conf_route *r, enum health_state st,
                     struct bgp_adjout_attrs *a)
{
	const struct conf_degraded *dg = &c->degraded;
	int e = 0;

	memset(a, 0, sizeof(*a));
	if (st == HEALTH_DOWN)
		return -EINVAL;
	a->local_pref = r->local_pref;
	a->med = r->med;
	a->has_med = r->has_med;
	for (unsigned i = 0; i < r->n_communities && !e; i++)
		e = add_community(a, r->communities[i]);
	if (r->n_large_communities > BGP_ADJOUT_MAX_LARGE_COMMUNITIES)
		return -E2BIG;
	a->n_large_communities = (uint8_t)r->n_large_communities;
	for (unsigned i = 0; i < r->n_large_communities; i++) {
		a->large_communities[i].global = r->large_communities[i][0];
		a->large_communities[i].local1 = r->large_communities[i][1];
		a->large_communities[i].local2 = r->large_communities[i][2];
	}
	if (st == HEALTH_DEGRADED && dg->enabled) {
		a->local_pref = dg->local_pref;
		if (dg->has_med) {
			a->med = dg->med;
			a->has_med = true;
		}
		if (dg->prepend > BGP_ADJOUT_MAX_PREPEND)
			return -E2BIG;
		a->prepend = (uint8_t)dg->prepend;
		for (unsigned i = 0; i < dg->n_communities && !e; i++)
			e = add_community(a, dg->communities[i]);
	} else if (st == HEALTH_DRAINING) {
		a->local_pref = 0;
		if (!e)
			e = add_community(a, BGP_POLICY_GRACEFUL_SHUTDOWN);
	}
	return e;
}

static int attrset_index(struct bgp_policy_out *o, const struct bgp_adjout_attrs *a)
{
	for (size_t i = 0; i < o->n_sets; i++)
		if (bgp_adjout_attrs_equal(&o->sets[i], a))
			return (int)i;
	if (o->n_sets >= BGP_ADJOUT_MAX_ATTRSETS)
		return -ENOSPC; /* not with one set per route at most (asserted above) */
	o->sets[o->n_sets] = *a;
	return (int)o->n_sets++;
}

/* Whether the neighbor's session has a next hop for a route of this family. */
static bool nexthop_ok(const struct conf_neighbor *nb, const struct netprefix *p)
{
	if (p->family == AF_INET6)
		return nb->has_next_hop6 || nb->address.family == AF_INET6;
	return nb->address.family == AF_INET || nb->local_address.family == AF_INET;
}

int bgp_policy_apply(const struct conf_bgp *c, const struct health_snapshot *h,
                     struct bgp_policy_out *o)
{
	int idx[CONF_MAX_ROUTES];
	size_t n_routes = c->n_routes < CONF_MAX_ROUTES ? c->n_routes : CONF_MAX_ROUTES;
	size_t n_nb = c->n_neighbors < CONF_MAX_NEIGHBORS ? c->n_neighbors : CONF_MAX_NEIGHBORS;

	o->n_sets = 0;
	o->n_routes = n_routes;
	o->n_neighbors = n_nb;
	o->refused = 0;
	for (size_t r = 0; r < n_routes; r++) {
		const struct conf_route *rt = &c->routes[r];
		struct bgp_adjout_attrs a;

		o->state[r] = bgp_policy_route_state(rt, h);
		idx[r] = -1;
		if (o->state[r] == HEALTH_DOWN)
			continue;
		if (bgp_policy_attrs(c, rt, o->state[r], &a) < 0 ||
		    (idx[r] = attrset_index(o, &a)) < 0) {
			idx[r] = -1;
			o->refused |= 1ull << r;
		}
	}
	for (size_t i = 0; i < n_nb; i++) {
		const struct conf_neighbor *nb = &c->neighbors[i];
		o->no_next_hop[i] = 0;
		for (size_t r = 0; r < n_routes; r++) {
			bool ok = idx[r] >= 0 && nexthop_ok(nb, &c->routes[r].prefix);
			if (idx[r] >= 0 && !ok)
				o->no_next_hop[i] |= 1ull << r;
			o->routes[i][r].prefix = c->routes[r].prefix;
			o->routes[i][r].attrset = ok ? (uint16_t)idx[r] : BGP_ADJOUT_WITHDRAWN;
		}
	}
	return o->refused ? -E2BIG : 0;
}
