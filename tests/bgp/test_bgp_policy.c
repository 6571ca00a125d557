/*
 * test_bgp_policy.c: the announcement policy, health snapshot -> per-neighbor
 * routes and attribute sets, and its agreement with conf.c's load-time checks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bgp/bgp_adjout.h"
#include "bgp/bgp_policy.h"
#include "core/conf.h"

#define C(a, b) ((uint32_t)(a) << 16 | (b))

static struct conf_bgp B;
static struct health_snapshot H;
static struct bgp_policy_out O;

static void vip(const char *addr, enum health_state st)
{
	cr_assert_lt(H.n, HEALTH_MAX_VIPS);
	cr_assert_eq(netaddr_parse(addr, 53, &H.vip[H.n].addr), 0);
	H.vip[H.n].state = st;
	H.n++;
}

static struct conf_route *route(const char *prefix, uint32_t lp)
{
	struct conf_route *r = &B.routes[B.n_routes++];
	memset(r, 0, sizeof(*r));
	cr_assert_eq(netprefix_parse(prefix, &r->prefix), 0);
	r->local_pref = lp;
	return r;
}

static struct conf_neighbor *neighbor(const char *addr)
{
	struct conf_neighbor *n = &B.neighbors[B.n_neighbors++];
	memset(n, 0, sizeof(*n));
	cr_assert_eq(netaddr_parse(addr, 179, &n->address), 0);
	n->asn = 65001;
	return n;
}

static void setup(void)
{
	memset(&B, 0, sizeof(B));
	memset(&H, 0, sizeof(H));
	memset(&O, 0xa5, sizeof(O)); /* the policy must fill what it reports */
	B.enabled = true;
	B.asn = 65000;
}

/* The attribute set route r uses on neighbor i, or NULL when withdrawn there. */
static const struct bgp_adjout_attrs *set_of(unsigned i, unsigned r)
{
	uint16_t k = O.routes[i][r].attrset;
	if (k == BGP_ADJOUT_WITHDRAWN)
		return NULL;
	cr_assert_lt(k, O.n_sets);
	return &O.sets[k];
}

static bool has_community(const struct bgp_adjout_attrs *a, uint32_t c)
{
	for (unsigned i = 0; i < a->n_communities; i++)
		if (a->communities[i] == c)
			return true;
	return false;
}

TestSuite(bgp_policy, .init = setup);

Test(bgp_policy, route_takes_the_best_state_of_its_vips)
{
	static const struct {
		enum health_state a, b, want;
	} cases[] = {
	    {HEALTH_DOWN, HEALTH_DOWN, HEALTH_DOWN},
	    {HEALTH_DOWN, HEALTH_DRAINING, HEALTH_DRAINING},
	    {HEALTH_DRAINING, HEALTH_DEGRADED, HEALTH_DEGRADED},
	    {HEALTH_DEGRADED, HEALTH_DRAINING, HEALTH_DEGRADED},
	    {HEALTH_UP, HEALTH_DRAINING, HEALTH_UP},
	    {HEALTH_DEGRADED, HEALTH_UP, HEALTH_UP},
	    {HEALTH_DOWN, HEALTH_UP, HEALTH_UP},
	};
	struct conf_route *r = route("192.0.2.0/24", 100);

	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		memset(&H, 0, sizeof(H));
		vip("192.0.2.1", cases[k].a);
		vip("192.0.2.2", cases[k].b);
		vip("198.51.100.1", HEALTH_UP); /* outside the prefix: no say */
		cr_expect_eq(bgp_policy_route_state(r, &H), cases[k].want, "case %u", k);
	}
	memset(&H, 0, sizeof(H));
	vip("198.51.100.1", HEALTH_UP);
	cr_expect_eq(bgp_policy_route_state(r, &H), HEALTH_DOWN, "no VIP inside: DOWN");
}

Test(bgp_policy, up_is_the_configured_attributes)
{
	struct conf_route *r = route("192.0.2.1/32", 200);
	r->has_med = true;
	r->med = 7;
	r->communities[r->n_communities++] = C(64512, 100);
	r->large_communities[0][0] = 64512;
	r->large_communities[0][1] = 1;
	r->large_communities[0][2] = 2;
	r->n_large_communities = 1;
	neighbor("192.0.2.254");
	vip("192.0.2.1", HEALTH_UP);

	cr_assert_eq(bgp_policy_apply(&B, &H, &O), 0);
	cr_expect_eq(O.n_routes, 1);
	cr_expect_eq(O.n_neighbors, 1);
	cr_expect_eq(O.state[0], HEALTH_UP);
	cr_expect_eq(O.refused, 0);
	cr_expect_eq(O.no_next_hop[0], 0);
	const struct bgp_adjout_attrs *a = set_of(0, 0);
	cr_assert(a);
	cr_expect_eq(a->local_pref, 200);
	cr_expect(a->has_med);
	cr_expect_eq(a->med, 7);
	cr_expect_eq(a->prepend, 0);
	cr_expect_eq(a->n_communities, 1);
	cr_expect_eq(a->communities[0], C(64512, 100));
	cr_expect_eq(a->n_large_communities, 1);
	cr_expect_eq(a->large_communities[0].global, 64512);
	cr_expect_eq(a->large_communities[0].local2, 2);
	cr_expect_eq(memcmp(&O.routes[0][0].prefix, &r->prefix, sizeof(r->prefix)), 0);
}

Test(bgp_policy, degraded_uses_the_degraded_section)
{
	struct conf_route *r = route("192.0.2.1/32", 200);
	r->communities[r->n_communities++] = C(1, 1);
	r->has_med = true;
	r->med = 5;
	B.degraded = (struct conf_degraded){.enabled = true, .local_pref = 50, .prepend = 3};
	B.degraded.communities[B.degraded.n_communities++] = C(1, 1); /* already there */
	B.degraded.communities[B.degraded.n_communities++] = C(64512, 666);
	neighbor("192.0.2.254");
	vip("192.0.2.1", HEALTH_DEGRADED);

	cr_assert_eq(bgp_policy_apply(&B, &H, &O), 0);
	const struct bgp_adjout_attrs *a = set_of(0, 0);
	cr_assert(a, "degraded is announced");
	cr_expect_eq(a->local_pref, 50);
	cr_expect_eq(a->med, 5, "no degraded med: the route's stays");
	cr_expect_eq(a->prepend, 3);
	cr_expect_eq(a->n_communities, 2, "a set: 1:1 once");
	cr_expect_eq(a->communities[0], C(1, 1));
	cr_expect_eq(a->communities[1], C(64512, 666));
	B.degraded.has_med = true;
	B.degraded.med = 1000;
	cr_assert_eq(bgp_policy_apply(&B, &H, &O), 0);
	cr_expect_eq(set_of(0, 0)->med, 1000);
}

/* Without bgp.degraded a DEGRADED VIP keeps its route as configured (it used to be withdrawn). */
Test(bgp_policy, degraded_without_section_keeps_the_configured_attributes)
{
	route("192.0.2.1/32", 200)->communities[0] = C(1, 2);
	B.routes[0].n_communities = 1;
	route("192.0.2.2/32", 200)->communities[0] = C(1, 2);
	B.routes[1].n_communities = 1;
	neighbor("192.0.2.254");
	vip("192.0.2.1", HEALTH_DEGRADED);
	vip("192.0.2.2", HEALTH_UP);

	cr_assert_eq(bgp_policy_apply(&B, &H, &O), 0);
	cr_expect_eq(O.state[0], HEALTH_DEGRADED);
	cr_assert(set_of(0, 0), "DEGRADED is never withdrawn");
	cr_expect_eq(O.routes[0][0].attrset, O.routes[0][1].attrset,
	             "the same attributes as the UP route: one shared set");
	cr_expect_eq(O.n_sets, 1);
	cr_expect_eq(set_of(0, 0)->prepend, 0);
}

Test(bgp_policy, draining_adds_graceful_shutdown_and_local_pref_0)
{
	struct conf_route *r = route("192.0.2.1/32", 200);
	r->has_med = true;
	r->med = 9;
	r->communities[r->n_communities++] = C(64512, 100);
	struct conf_route *r2 = route("192.0.2.2/32", 100);
	r2->communities[r2->n_communities++] = BGP_POLICY_GRACEFUL_SHUTDOWN;
	B.degraded = (struct conf_degraded){.enabled = true, .local_pref = 50, .prepend = 2};
	neighbor("192.0.2.254");
	vip("192.0.2.1", HEALTH_DRAINING);
	vip("192.0.2.2", HEALTH_DRAINING);

	cr_assert_eq(bgp_policy_apply(&B, &H, &O), 0);
	const struct bgp_adjout_attrs *a = set_of(0, 0);
	cr_assert(a, "draining stays announced");
	cr_expect_eq(a->local_pref, 0);
	cr_expect_eq(a->med, 9);
	cr_expect_eq(a->prepend, 0, "the configured attributes, not the degraded ones");
	cr_expect_eq(a->n_communities, 2);
	cr_expect_eq(a->communities[0], C(64512, 100));
	cr_expect_eq(a->communities[1], C(65535, 0));
	a = set_of(0, 1);
	cr_expect_eq(a->n_communities, 1, "65535:0 configured already: not twice");
	cr_expect(has_community(a, BGP_POLICY_GRACEFUL_SHUTDOWN));
}

Test(bgp_policy, down_is_withdrawn_everywhere)
{
	route("192.0.2.1/32", 100);
	route("192.0.2.2/32", 100);
	neighbor("192.0.2.254");
	neighbor("192.0.2.253");
	vip("192.0.2.1", HEALTH_DOWN);
	vip("192.0.2.2", HEALTH_UP);

	cr_assert_eq(bgp_policy_apply(&B, &H, &O), 0);
	for (unsigned i = 0; i < 2; i++) {
		cr_expect_null(set_of(i, 0));
		cr_expect_not_null(set_of(i, 1));
	}
	cr_expect_eq(O.n_sets, 1);
	cr_expect_eq(O.no_next_hop[0] | O.no_next_hop[1], 0, "a withdrawn route is not flagged");
}

Test(bgp_policy, next_hop_of_the_family_or_withdrawn_and_flagged)
{
	route("192.0.2.1/32", 100);
	route("2001:db8::53/128", 100);
	neighbor("192.0.2.254"); /* IPv4, no next-hop6 */
	struct conf_neighbor *n6 = neighbor("192.0.2.253");
	n6->has_next_hop6 = true;
	cr_assert_eq(netaddr_parse("2001:db8::2", 0, &n6->next_hop6), 0);
	neighbor("2001:db8::fe"); /* IPv6 session, no IPv4 local-address */
	struct conf_neighbor *v6v4 = neighbor("2001:db8::fd");
	cr_assert_eq(netaddr_parse("192.0.2.2", 0, &v6v4->local_address), 0);
	vip("192.0.2.1", HEALTH_UP);
	vip("2001:db8::53", HEALTH_UP);

	cr_assert_eq(bgp_policy_apply(&B, &H, &O), 0);
	cr_expect_not_null(set_of(0, 0));
	cr_expect_null(set_of(0, 1));
	cr_expect_eq(O.no_next_hop[0], 1u << 1);
	cr_expect_not_null(set_of(1, 0));
	cr_expect_not_null(set_of(1, 1));
	cr_expect_eq(O.no_next_hop[1], 0);
	cr_expect_null(set_of(2, 0));
	cr_expect_not_null(set_of(2, 1));
	cr_expect_eq(O.no_next_hop[2], 1u << 0);
	cr_expect_not_null(set_of(3, 0));
	cr_expect_eq(O.no_next_hop[3], 0);
	/* Down routes are not flagged: nothing would have been announced. */
	H.vip[1].state = HEALTH_DOWN;
	cr_assert_eq(bgp_policy_apply(&B, &H, &O), 0);
	cr_expect_eq(O.no_next_hop[0], 0);
}

/* Nothing is cut: a route whose merged communities do not fit is refused, loudly. */
Test(bgp_policy, too_many_communities_refused_not_cut)
{
	struct conf_route *r = route("192.0.2.1/32", 100);
	for (unsigned i = 0; i < CONF_MAX_COMMUNITIES; i++)
		r->communities[r->n_communities++] = C(1, i);
	route("192.0.2.2/32", 100);
	B.degraded = (struct conf_degraded){.enabled = true, .local_pref = 50};
	B.degraded.communities[B.degraded.n_communities++] = C(2, 2);
	neighbor("192.0.2.254");
	vip("192.0.2.1", HEALTH_UP);
	vip("192.0.2.2", HEALTH_UP);
	struct bgp_adjout_attrs a;

	cr_assert_eq(bgp_policy_apply(&B, &H, &O), 0, "32 fit when UP");
	cr_expect_eq(set_of(0, 0)->n_communities, 32);
	for (enum health_state st = HEALTH_DEGRADED; st <= HEALTH_DRAINING; st++) {
		H.vip[0].state = st;
		cr_expect_eq(bgp_policy_apply(&B, &H, &O), -E2BIG, "%s", health_state_name(st));
		cr_expect_eq(O.refused, 1u << 0);
		cr_expect_null(set_of(0, 0), "refused: withdrawn, never announced with a cut list");
		cr_expect_not_null(set_of(0, 1), "the other route is unaffected");
		cr_expect_eq(bgp_policy_attrs(&B, r, st, &a), -E2BIG);
	}
	cr_expect_eq(bgp_policy_attrs(&B, r, HEALTH_DOWN, &a), -EINVAL);
	r->n_large_communities = BGP_ADJOUT_MAX_LARGE_COMMUNITIES + 1;
	cr_expect_eq(bgp_policy_attrs(&B, r, HEALTH_UP, &a), -E2BIG);
}

/* Every route in its own set, all states at once: the set table never runs out. */
Test(bgp_policy, one_set_per_route_always_fits)
{
	neighbor("192.0.2.254");
	B.degraded = (struct conf_degraded){.enabled = true, .local_pref = 50};
	for (unsigned i = 0; i < CONF_MAX_ROUTES; i++) {
		char p[32], a[32];
		snprintf(p, sizeof(p), "10.0.%u.1/32", i);
		snprintf(a, sizeof(a), "10.0.%u.1", i);
		struct conf_route *r = route(p, 100 + i);
		r->communities[r->n_communities++] = C(1, i);
		vip(a, (enum health_state)(1 + i % 3));
	}
	cr_assert_eq(bgp_policy_apply(&B, &H, &O), 0);
	cr_expect_eq(O.n_sets, CONF_MAX_ROUTES);
	/* The output is what the Adj-RIB-Out accepts. */
	struct bgp_adjout *ao = bgp_adjout_new();
	cr_assert(ao);
	cr_expect_eq(bgp_adjout_set_desired(ao, O.sets, O.n_sets, O.routes[0], O.n_routes), 0);
	cr_expect_eq(bgp_adjout_desired_count(ao), CONF_MAX_ROUTES);
	bgp_adjout_free(ao);
}

/*
 * conf.c's load-time check and the policy use the same merge rule. One route
 * with nr communities (the first one 65535:0 when gs), a degraded section with
 * nd communities of which the first ov repeat the route's.
 */
struct combo {
	unsigned nr, nd, ov;
	bool gs;
};

static uint32_t route_comm(const struct combo *k, unsigned i)
{
	return k->gs && i == 0 ? BGP_POLICY_GRACEFUL_SHUTDOWN : C(1, i);
}

static uint32_t degraded_comm(const struct combo *k, unsigned i)
{
	return i < k->ov ? route_comm(k, k->nr - 1 - i) : C(2, i);
}

static void combo_text(const struct combo *k, char *t, size_t size)
{
	size_t n = (size_t)snprintf(t, size,
	                            "dns: {listen: [192.0.2.1], upstreams: [198.51.100.1]}\n"
	                            "bgp:\n  asn: 65000\n  router-id: 192.0.2.1\n"
	                            "  neighbors: [{address: 192.0.2.254, asn: 65001}]\n"
	                            "  announce:\n    - prefix: 192.0.2.1/32\n"
	                            "      communities: [");
	for (unsigned i = 0; i < k->nr; i++) {
		uint32_t c = route_comm(k, i);
		n += (size_t)snprintf(t + n, size - n, "%s\"%u:%u\"", i ? ", " : "", c >> 16,
		                      c & 0xffff);
	}
	n += (size_t)snprintf(t + n, size - n, "]\n  degraded:\n    communities: [");
	for (unsigned i = 0; i < k->nd; i++) {
		uint32_t c = degraded_comm(k, i);
		n += (size_t)snprintf(t + n, size - n, "%s\"%u:%u\"", i ? ", " : "", c >> 16,
		                      c & 0xffff);
	}
	snprintf(t + n, size - n, "]\n");
	cr_assert_lt(n + 3, size);
}

/* Whether the policy takes the route in every announced state. */
static bool policy_takes(const struct conf_bgp *b, const struct conf_route *r)
{
	struct bgp_adjout_attrs a;
	bool ok = true;

	for (enum health_state st = HEALTH_UP; st <= HEALTH_DRAINING; st++)
		ok &= bgp_policy_attrs(b, r, st, &a) == 0;
	return ok;
}

Test(bgp_policy, conf_refuses_exactly_what_would_not_fit)
{
	static struct conf c;
	static struct conf_bgp b;
	unsigned accepted = 0, refused = 0;
	struct combo k;

	for (k.nr = 28; k.nr <= CONF_MAX_COMMUNITIES; k.nr++)
		for (k.nd = 0; k.nd <= 6; k.nd++)
			for (k.ov = 0; k.ov <= k.nd; k.ov++)
				for (int gs = 0; gs < 2; gs++) {
					char text[4096];
					struct conf_diag d;
					struct conf_route r;

					k.gs = gs;
					combo_text(&k, text, sizeof(text));
					int rc =
					    conf_load_buffer(text, strlen(text), "t", NULL, &c, &d);
					/* The same route and section, built by hand. */
					memset(&b, 0, sizeof(b));
					memset(&r, 0, sizeof(r));
					b.degraded.enabled = true;
					for (unsigned i = 0; i < k.nr; i++)
						r.communities[r.n_communities++] =
						    route_comm(&k, i);
					for (unsigned i = 0; i < k.nd; i++)
						b.degraded.communities[b.degraded.n_communities++] =
						    degraded_comm(&k, i);
					bool takes = policy_takes(&b, &r);
					if (rc == 0) {
						accepted++;
						cr_expect(takes,
						          "conf took what the policy refuses:\n%s",
						          text);
						cr_expect(policy_takes(&c.bgp, &c.bgp.routes[0]));
					} else {
						refused++;
						cr_assert_eq(rc, -EINVAL);
						/* One message per state that overflows. */
						cr_expect(d.count == 1 || d.count == 2, "%s", text);
						for (unsigned m = 0; m < d.count; m++)
							cr_expect(strstr(d.msgs[m].text,
							                 "t:8:20: bgp.announce[0]."
							                 "communities: ") ==
							              d.msgs[m].text,
							          "%s", d.msgs[m].text);
						cr_expect_not(takes,
						              "conf refused what the policy takes "
						              "(%s):\n%s",
						              d.msgs[0].text, text);
					}
				}
	cr_expect_gt(accepted, 50);
	cr_expect_gt(refused, 50);
}
