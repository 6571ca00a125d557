/*
 * test_bgp_nbset.c: the neighbor set change of a reload (bgp_nbset.h).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "bgp/bgp_nbset.h"

static struct conf_neighbor nb(const char *addr, uint32_t asn)
{
	struct conf_neighbor n;

	memset(&n, 0, sizeof(n));
	cr_assert_eq(netaddr_parse(addr, 179, &n.address), 0);
	n.asn = asn;
	return n;
}

static void set(struct conf_bgp *b, unsigned n, const struct conf_neighbor *list)
{
	memset(b, 0, sizeof(*b));
	b->n_neighbors = n;
	if (n) /* list may be NULL for the empty set (memcpy's arguments never are) */
		memcpy(b->neighbors, list, n * sizeof(*list));
}

static struct conf_bgp o, n;
static struct bgp_nbset_plan p;

Test(bgp_nbset, equal_sets_keep_everything)
{
	struct conf_neighbor l[2] = {nb("127.0.0.2", 65001), nb("127.0.0.3", 65002)};
	set(&o, 2, l);
	set(&n, 2, l);
	cr_assert_eq(bgp_nbset_plan(&o, &n, &p), 0);
	cr_assert_eq(p.from[0], 0);
	cr_assert_eq(p.from[1], 1);
	cr_assert_eq(p.fate[0], BGP_NBSET_KEEP);
	cr_assert_eq(p.fate[1], BGP_NBSET_KEEP);
	cr_assert_eq(p.kept, 2);
	cr_assert_eq(p.added + p.removed + p.changed, 0);
}

Test(bgp_nbset, add_remove_reorder)
{
	struct conf_neighbor a = nb("127.0.0.2", 65001), b = nb("127.0.0.3", 65002),
	                     c = nb("127.0.0.4", 65003);
	struct conf_neighbor ol[2] = {a, b}, nl[2] = {c, b};
	set(&o, 2, ol);
	set(&n, 2, nl);
	cr_assert_eq(bgp_nbset_plan(&o, &n, &p), 0);
	cr_assert_eq(p.from[0], -1); /* c: new session */
	cr_assert_eq(p.from[1], 1);  /* b kept, moved from index 1 to 1 */
	cr_assert_eq(p.fate[0], BGP_NBSET_DECONFIG);
	cr_assert_eq(p.fate[1], BGP_NBSET_KEEP);
	cr_assert_eq(p.kept, 1);
	cr_assert_eq(p.added, 1);
	cr_assert_eq(p.removed, 1);
	cr_assert_eq(p.changed, 0);

	/* Reordered only: every session kept, at its new index. */
	struct conf_neighbor rl[2] = {b, a};
	set(&n, 2, rl);
	cr_assert_eq(bgp_nbset_plan(&o, &n, &p), 0);
	cr_assert_eq(p.from[0], 1);
	cr_assert_eq(p.from[1], 0);
	cr_assert_eq(p.kept, 2);
	cr_assert_eq(p.added + p.removed + p.changed, 0);
}

Test(bgp_nbset, changed_settings_replace_the_session)
{
	struct conf_neighbor a = nb("127.0.0.2", 65001);
	struct conf_neighbor variants[6];
	for (unsigned k = 0; k < 6; k++)
		variants[k] = a;
	variants[0].asn = 65009;
	variants[1].address.port = 1179;
	cr_assert_eq(netaddr_parse_ip("127.0.0.9", &variants[2].local_address), 0);
	variants[3].hold_time_s = 9;
	strcpy(variants[4].password, "secret");
	variants[5].bfd = true;
	set(&o, 1, &a);
	for (unsigned k = 0; k < 6; k++) {
		set(&n, 1, &variants[k]);
		cr_assert_eq(bgp_nbset_plan(&o, &n, &p), 0, "variant %u", k);
		cr_assert_eq(p.fate[0], BGP_NBSET_CONFCHANGE, "variant %u", k);
		cr_assert_eq(p.from[0], -1, "variant %u", k);
		cr_assert_eq(p.changed, 1);
		cr_assert_eq(p.added, 1);
		cr_assert_eq(p.removed + p.kept, 0);
	}
}

Test(bgp_nbset, from_and_to_nothing)
{
	struct conf_neighbor a = nb("::1", 65001);
	set(&o, 0, NULL);
	set(&n, 1, &a);
	cr_assert_eq(bgp_nbset_plan(&o, &n, &p), 0);
	cr_assert_eq(p.from[0], -1);
	cr_assert_eq(p.added, 1);
	cr_assert_eq(bgp_nbset_plan(&n, &o, &p), 0);
	cr_assert_eq(p.fate[0], BGP_NBSET_DECONFIG);
	cr_assert_eq(p.removed, 1);
	cr_assert_eq(p.added, 0);
}

Test(bgp_nbset, duplicate_address_matched_once_and_bad_counts)
{
	struct conf_neighbor a = nb("127.0.0.2", 65001);
	struct conf_neighbor two[2] = {a, a};
	set(&o, 1, &a);
	set(&n, 2, two);
	cr_assert_eq(bgp_nbset_plan(&o, &n, &p), 0);
	cr_assert_eq(p.from[0], 0);
	cr_assert_eq(p.from[1], -1);
	cr_assert_eq(p.kept, 1);
	cr_assert_eq(p.added, 1);
	n.n_neighbors = CONF_MAX_NEIGHBORS + 1;
	cr_assert_eq(bgp_nbset_plan(&o, &n, &p), -EINVAL);
}
