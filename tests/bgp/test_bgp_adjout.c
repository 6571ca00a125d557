/*
 * test_bgp_adjout.c: Adj-RIB-Out desired/sent bookkeeping and diffs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bgp/bgp_adjout.h"

#define ALL (BGP_ADJOUT_AF_IPV4 | BGP_ADJOUT_AF_IPV6)
enum { NORMAL = 0, DEGRADED = 1 };

static struct bgp_adjout *ao;
static struct bgp_adjout_diff d;
static struct bgp_adjout_attrs sets[2];

static void setup(void)
{
	ao = bgp_adjout_new();
	cr_assert_not_null(ao);
	memset(sets, 0, sizeof(sets));
	sets[NORMAL].local_pref = 100;
	sets[NORMAL].n_communities = 1;
	sets[NORMAL].communities[0] = (65000u << 16) | 1;
	sets[DEGRADED].local_pref = 100;
	sets[DEGRADED].has_med = true;
	sets[DEGRADED].med = 500;
	sets[DEGRADED].prepend = 3;
	sets[DEGRADED].n_large_communities = 1;
	sets[DEGRADED].large_communities[0] = (struct bgp_adjout_large_community){65000, 2, 1};
}

static void teardown(void)
{
	bgp_adjout_free(ao);
}

TestSuite(bgp_adjout, .init = setup, .fini = teardown);

static struct bgp_adjout_route R(const char *pfx, uint16_t set) {
	struct bgp_adjout_route r = {.attrset = set};
	cr_assert_eq(netprefix_parse(pfx, &r.prefix), 0, "%s", pfx);
	return r;
}

static const char *
fmt(const struct netprefix *p)
{
	static char buf[8][NETADDR_STRLEN];
	static unsigned k;
	return netprefix_format(p, buf[k++ % 8], NETADDR_STRLEN);
}

static void expect_group(size_t g, int family, unsigned set, size_t n, const char **pfx)
{
	cr_assert_lt(g, d.n_groups);
	const struct bgp_adjout_group *grp = &d.groups[g];
	cr_assert_eq(grp->family, family);
	cr_assert(bgp_adjout_attrs_equal(&grp->attrs, &sets[set]), "group %zu attrs", g);
	cr_assert_eq(grp->count, n, "group %zu: %zu prefixes, want %zu", g, grp->count, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(fmt(&d.announce[grp->first + i]), pfx[i]);
}

/* The usual cycle: diff, "send", mark. */
static int cycle(unsigned mask)
{
	int n = bgp_adjout_diff(ao, mask, &d);
	cr_assert_geq(n, 0);
	cr_assert_eq(bgp_adjout_mark_sent(ao, &d), 0);
	return n;
}

static void set_desired(const struct bgp_adjout_route *r, size_t n)
{
	cr_assert_eq(bgp_adjout_set_desired(ao, sets, 2, r, n), 0);
}

Test(bgp_adjout, initial_diff_groups_by_attrs)
{
	struct bgp_adjout_route r[] = {
	    R("192.0.2.53/32", NORMAL),
	    R("2001:db8::53/128", NORMAL),
	    R("198.51.100.53/32", DEGRADED),
	    R("192.0.2.54/32", NORMAL),
	    R("203.0.113.0/24", BGP_ADJOUT_WITHDRAWN),
	};
	set_desired(r, 5);
	cr_assert_eq(bgp_adjout_desired_count(ao), 4);
	cr_assert(bgp_adjout_eor_owed(ao, AF_INET));
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 4);
	cr_assert_eq(d.n_groups, 3);
	cr_assert_eq(d.n_withdraw, 0);
	expect_group(0, AF_INET, NORMAL, 2, (const char *[]){"192.0.2.53/32", "192.0.2.54/32"});
	expect_group(1, AF_INET6, NORMAL, 1, (const char *[]){"2001:db8::53/128"});
	expect_group(2, AF_INET, DEGRADED, 1, (const char *[]){"198.51.100.53/32"});
	cr_assert(d.eor_v4 && d.eor_v6);

	cr_assert_eq(bgp_adjout_mark_sent(ao, &d), 0);
	cr_assert_eq(bgp_adjout_sent_count(ao), 4);
	cr_assert_not(bgp_adjout_eor_owed(ao, AF_INET));
	cr_assert_not(bgp_adjout_eor_owed(ao, AF_INET6));

	/* Unchanged: empty diff, no End-of-RIB either. */
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 0);
	cr_assert_eq(d.n_groups, 0);
	cr_assert_not(d.eor_v4 || d.eor_v6);
	/* Setting the same desired set again changes nothing. */
	set_desired(r, 5);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 0);
}

Test(bgp_adjout, same_attrs_from_different_sets_share_a_group)
{
	struct bgp_adjout_attrs three[3] = {sets[NORMAL], sets[DEGRADED], sets[NORMAL]};
	struct bgp_adjout_route r[] = {R("192.0.2.1/32", 0), R("192.0.2.2/32", 2)};
	cr_assert_eq(bgp_adjout_set_desired(ao, three, 3, r, 2), 0);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 2);
	cr_assert_eq(d.n_groups, 1);
	cr_assert_eq(d.groups[0].count, 2);
}

Test(bgp_adjout, degrade_one_route_is_one_announce)
{
	struct bgp_adjout_route r[] = {R("192.0.2.53/32", NORMAL), R("192.0.2.54/32", NORMAL),
	                               R("2001:db8::53/128", NORMAL)};
	set_desired(r, 3);
	cr_assert_eq(cycle(ALL), 3);

	r[1].attrset = DEGRADED;
	set_desired(r, 3);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 1);
	cr_assert_eq(d.n_withdraw, 0); /* implicit replace, RFC 4271 §3.1 */
	cr_assert_eq(d.n_groups, 1);
	expect_group(0, AF_INET, DEGRADED, 1, (const char *[]){"192.0.2.54/32"});
	cr_assert_eq(bgp_adjout_mark_sent(ao, &d), 0);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 0);

	/* And back to normal. */
	r[1].attrset = NORMAL;
	set_desired(r, 3);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 1);
	expect_group(0, AF_INET, NORMAL, 1, (const char *[]){"192.0.2.54/32"});

	/* Changing the attribute set's value (config reload) re-announces its users. */
	cr_assert_eq(bgp_adjout_mark_sent(ao, &d), 0);
	sets[NORMAL].local_pref = 200;
	set_desired(r, 3);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 3);
	cr_assert_eq(d.n_groups, 2);
}

Test(bgp_adjout, removing_a_route_withdraws_it)
{
	struct bgp_adjout_route r[] = {R("192.0.2.53/32", NORMAL), R("2001:db8::53/128", NORMAL),
	                               R("192.0.2.54/32", NORMAL)};
	set_desired(r, 3);
	cycle(ALL);

	/* Health policy marks two as withdrawn; the third stays. */
	r[0].attrset = BGP_ADJOUT_WITHDRAWN;
	r[1].attrset = BGP_ADJOUT_WITHDRAWN;
	set_desired(r, 3);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 2);
	cr_assert_eq(d.n_groups, 0);
	cr_assert_eq(d.n_withdraw, 2);
	cr_assert_eq(d.n_withdraw_v4, 1);
	cr_assert_str_eq(fmt(&d.withdraw[0]), "192.0.2.53/32");
	cr_assert_str_eq(fmt(&d.withdraw[1]), "2001:db8::53/128");
	cr_assert_eq(bgp_adjout_mark_sent(ao, &d), 0);
	cr_assert_eq(bgp_adjout_sent_count(ao), 1);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 0);

	/* Removing from the list entirely withdraws too. */
	set_desired(r, 0);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 1);
	cr_assert_str_eq(fmt(&d.withdraw[0]), "192.0.2.54/32");
	cr_assert_eq(bgp_adjout_mark_sent(ao, &d), 0);
	cr_assert_eq(bgp_adjout_sent_count(ao), 0);
}

Test(bgp_adjout, never_sent_route_removed_needs_no_withdraw)
{
	struct bgp_adjout_route r[] = {R("192.0.2.53/32", NORMAL)};
	set_desired(r, 1);
	set_desired(r, 0);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 0);
	cr_assert_eq(d.n_withdraw, 0);
}

Test(bgp_adjout, reset_sent_means_full_resend_and_eor)
{
	struct bgp_adjout_route r[] = {R("192.0.2.53/32", NORMAL), R("2001:db8::53/128", DEGRADED)};
	set_desired(r, 2);
	cycle(ALL);
	/* A withdrawal pending when the session drops is simply forgotten. */
	set_desired(r, 1);
	bgp_adjout_reset_sent(ao);
	cr_assert_eq(bgp_adjout_sent_count(ao), 0);
	cr_assert(bgp_adjout_eor_owed(ao, AF_INET) && bgp_adjout_eor_owed(ao, AF_INET6));
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 1);
	cr_assert_eq(d.n_withdraw, 0);
	expect_group(0, AF_INET, NORMAL, 1, (const char *[]){"192.0.2.53/32"});
	cr_assert(d.eor_v4 && d.eor_v6);
}

Test(bgp_adjout, resend_all_for_route_refresh)
{
	struct bgp_adjout_route r[] = {R("192.0.2.53/32", NORMAL), R("2001:db8::53/128", DEGRADED),
	                               R("192.0.2.54/32", NORMAL)};
	set_desired(r, 3);
	cycle(ALL);
	set_desired(r, 2); /* 192.0.2.54 to withdraw */
	bgp_adjout_resend_all(ao);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 3);
	cr_assert_eq(d.n_announce, 2);
	cr_assert_eq(d.n_withdraw, 1); /* the pending withdrawal is not lost */
	cr_assert_str_eq(fmt(&d.withdraw[0]), "192.0.2.54/32");
	cr_assert_not(d.eor_v4 || d.eor_v6); /* RFC 2918 has no End-of-RIB */
	cr_assert_eq(bgp_adjout_mark_sent(ao, &d), 0);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 0);
}

Test(bgp_adjout, route_refresh_resends_only_the_family_asked_for)
{
	struct bgp_adjout_route r[] = {R("192.0.2.53/32", NORMAL), R("2001:db8::53/128", NORMAL),
	                               R("192.0.2.54/32", DEGRADED)};
	set_desired(r, 3);
	cycle(ALL);
	/* RFC 2918 §4: a refresh for IPv6 unicast resends the IPv6 routes only. */
	bgp_adjout_resend(ao, BGP_ADJOUT_AF_IPV6);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 1);
	cr_assert_eq(d.n_announce, 1);
	cr_assert_eq(d.n_withdraw, 0);
	expect_group(0, AF_INET6, NORMAL, 1, (const char *[]){"2001:db8::53/128"});
	cr_assert_eq(bgp_adjout_mark_sent(ao, &d), 0);
	bgp_adjout_resend(ao, BGP_ADJOUT_AF_IPV4);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 2, "both IPv4 routes, nothing else");
	cr_assert_eq(d.n_announce, 2);
}

Test(bgp_adjout, per_family_filtering)
{
	struct bgp_adjout_route r[] = {R("192.0.2.53/32", NORMAL), R("2001:db8::53/128", NORMAL),
	                               R("2001:db8::54/128", DEGRADED)};
	set_desired(r, 3);
	/* Peer negotiated IPv4 only. */
	cr_assert_eq(bgp_adjout_diff(ao, BGP_ADJOUT_AF_IPV4, &d), 1);
	cr_assert_eq(d.n_groups, 1);
	expect_group(0, AF_INET, NORMAL, 1, (const char *[]){"192.0.2.53/32"});
	cr_assert(d.eor_v4);
	cr_assert_not(d.eor_v6);
	cr_assert_eq(bgp_adjout_mark_sent(ao, &d), 0);
	cr_assert_not(bgp_adjout_eor_owed(ao, AF_INET));
	cr_assert(bgp_adjout_eor_owed(ao, AF_INET6));
	cr_assert_eq(bgp_adjout_diff(ao, BGP_ADJOUT_AF_IPV4, &d), 0);
	/* Removing an IPv6 route never sent: nothing to withdraw. */
	set_desired(r, 2);
	cr_assert_eq(bgp_adjout_diff(ao, BGP_ADJOUT_AF_IPV4, &d), 0);

	/* IPv6-only session. */
	bgp_adjout_reset_sent(ao);
	set_desired(r, 3);
	cr_assert_eq(bgp_adjout_diff(ao, BGP_ADJOUT_AF_IPV6, &d), 2);
	cr_assert_eq(d.n_groups, 2);
	expect_group(0, AF_INET6, NORMAL, 1, (const char *[]){"2001:db8::53/128"});
	expect_group(1, AF_INET6, DEGRADED, 1, (const char *[]){"2001:db8::54/128"});
	cr_assert_not(d.eor_v4);
	cr_assert(d.eor_v6);
}

Test(bgp_adjout, stale_diff_mark_is_corrected)
{
	struct bgp_adjout_route r[] = {R("192.0.2.53/32", NORMAL), R("192.0.2.54/32", NORMAL)};
	set_desired(r, 2);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 2);
	/* Health changes while the UPDATE is in flight. */
	set_desired(r, 1);
	cr_assert_eq(bgp_adjout_mark_sent(ao, &d), 0);
	cr_assert_eq(bgp_adjout_sent_count(ao), 2);
	cr_assert_eq(bgp_adjout_diff(ao, ALL, &d), 1);
	cr_assert_eq(d.n_withdraw, 1);
	cr_assert_str_eq(fmt(&d.withdraw[0]), "192.0.2.54/32");
}

Test(bgp_adjout, full_table_of_64_and_churn)
{
	struct bgp_adjout_route r[BGP_ADJOUT_MAX_ROUTES + 1];
	char buf[32];
	for (unsigned i = 0; i <= BGP_ADJOUT_MAX_ROUTES; i++) {
		snprintf(buf, sizeof(buf), "10.0.%u.0/24", i);
		r[i] = R(buf, i % 2 ? DEGRADED : NORMAL);
	}
	cr_assert_eq(bgp_adjout_set_desired(ao, sets, 2, r, BGP_ADJOUT_MAX_ROUTES + 1), -ENOSPC);
	set_desired(r, BGP_ADJOUT_MAX_ROUTES);
	cr_assert_eq(cycle(ALL), 64);
	cr_assert_eq(d.n_groups, 2);
	cr_assert_eq(d.groups[0].count, 32);

	/* Replace all 64 by 64 others: 64 announcements, 64 withdrawals, twice. */
	for (unsigned round = 0; round < 2; round++) {
		for (unsigned i = 0; i < BGP_ADJOUT_MAX_ROUTES; i++) {
			snprintf(buf, sizeof(buf), "10.%u.%u.0/24", round + 1, i);
			r[i] = R(buf, NORMAL);
		}
		set_desired(r, BGP_ADJOUT_MAX_ROUTES);
		cr_assert_eq(cycle(ALL), 128);
		cr_assert_eq(d.n_withdraw, 64);
		cr_assert_eq(bgp_adjout_sent_count(ao), 64);
	}
}

Test(bgp_adjout, rejects_bad_input)
{
	struct bgp_adjout_route r[] = {R("192.0.2.53/32", NORMAL), R("192.0.2.53/32", DEGRADED)};
	cr_assert_eq(bgp_adjout_set_desired(ao, sets, 2, r, 2), -EINVAL); /* duplicate */
	r[1].attrset = 2;
	cr_assert_eq(bgp_adjout_set_desired(ao, sets, 2, r, 2), -EINVAL); /* no such set */
	r[1] = R("192.0.2.54/32", NORMAL);
	r[1].prefix.len = 33;
	cr_assert_eq(bgp_adjout_set_desired(ao, sets, 2, r, 2), -EINVAL);
	r[1].prefix.family = 0;
	cr_assert_eq(bgp_adjout_set_desired(ao, sets, 2, r, 2), -EINVAL);
	sets[NORMAL].n_communities = BGP_ADJOUT_MAX_COMMUNITIES + 1;
	cr_assert_eq(bgp_adjout_set_desired(ao, sets, 2, r, 1), -EINVAL);
	sets[NORMAL].n_communities = 1;
	/* Nothing was changed by the failures. */
	cr_assert_eq(bgp_adjout_desired_count(ao), 0);
	/* A corrupt diff is refused rather than read out of bounds. */
	memset(&d, 0, sizeof(d));
	d.n_groups = 1;
	d.groups[0].first = 10;
	d.groups[0].count = 5;
	d.n_announce = 12;
	cr_assert_eq(bgp_adjout_mark_sent(ao, &d), -EINVAL);
}

Test(bgp_adjout, attrs_equal_ignores_unused_tail)
{
	struct bgp_adjout_attrs a = sets[NORMAL], b = sets[NORMAL];
	b.communities[5] = 12345; /* beyond n_communities */
	b.med = 7;                /* has_med is false */
	cr_assert(bgp_adjout_attrs_equal(&a, &b));
	b.communities[0]++;
	cr_assert_not(bgp_adjout_attrs_equal(&a, &b));
	b = a;
	b.prepend = 1;
	cr_assert_not(bgp_adjout_attrs_equal(&a, &b));
}

/* What the control socket shows: only what the peer holds, as it was sent. */
Test(bgp_adjout, sent_list_is_what_the_peer_holds)
{
	struct netprefix p[4];
	struct bgp_adjout_attrs a[4];
	struct bgp_adjout_route r[] = {R("192.0.2.0/24", NORMAL), R("2001:db8::/48", DEGRADED)};

	set_desired(r, 2);
	cr_assert_eq(bgp_adjout_sent_list(ao, p, a, 4), 0, "desired is not sent");
	cycle(BGP_ADJOUT_AF_IPV4); /* the session negotiated IPv4 only */
	cr_assert_eq(bgp_adjout_sent_list(ao, p, a, 4), 1);
	cr_assert_str_eq(fmt(&p[0]), "192.0.2.0/24");
	cr_assert(bgp_adjout_attrs_equal(&a[0], &sets[NORMAL]));
	cycle(ALL);
	cr_assert_eq(bgp_adjout_sent_list(ao, p, a, 4), 2);
	cr_assert_eq(bgp_adjout_sent_list(ao, p, a, 1), 1, "max is respected");
	/* Moved to DEGRADED but not yet sent: still the old attributes. */
	r[0].attrset = DEGRADED;
	set_desired(r, 2);
	cr_assert_eq(bgp_adjout_sent_list(ao, p, a, 4), 2);
	cr_assert(bgp_adjout_attrs_equal(&a[0], &sets[NORMAL]));
	cycle(ALL);
	bgp_adjout_sent_list(ao, p, a, 4);
	cr_assert(bgp_adjout_attrs_equal(&a[0], &sets[DEGRADED]));
	set_desired(r, 0);
	cycle(ALL);
	cr_assert_eq(bgp_adjout_sent_list(ao, p, a, 4), 0, "withdrawn");
}
