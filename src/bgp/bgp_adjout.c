/*
 * bgp_adjout.c: per-neighbor Adj-RIB-Out, desired set vs sent set.
 *
 * One table of entries keyed by prefix. An entry exists while the prefix is
 * desired or the peer holds it (sent). Because mark_sent() applies whole
 * diffs, the peer never holds more than one desired set's worth of routes, so
 * BGP_ADJOUT_MAX_ROUTES desired + as many sent-only entries always fit.
 */
#include "bgp/bgp_adjout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES (2 * BGP_ADJOUT_MAX_ROUTES)

struct entry {
	struct netprefix prefix;
	bool desired, sent;
	bool dirty;   /* ROUTE-REFRESH: announce again although unchanged */
	uint16_t pos; /* position in the desired list (valid when desired) */
	struct bgp_adjout_attrs want, have;
};

struct bgp_adjout {
	size_t n;
	struct entry e[MAX_ENTRIES];
	size_t n_desired;
	bool eor_v4, eor_v6;
};

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static bool prefix_valid(const struct netprefix *p)
{
	if (p->family == AF_INET)
		return p->len <= 32;
	if (p->family == AF_INET6)
		return p->len <= 128;
	return false;
}

/* A canonical copy: host bits and unused address bytes cleared, so equal
 * prefixes compare equal byte for byte. */
static struct netprefix prefix_norm(const struct netprefix *p)
{
	struct netprefix n = {.family = p->family, .len = p->len};
	size_t full = p->len / 8, rem = p->len % 8;

	memcpy(n.addr, p->addr, full);
	if (rem)
		n.addr[full] = p->addr[full] & (uint8_t)(0xff << (8 - rem));
	return n;
}

static bool prefix_equal(const struct netprefix *a, const struct netprefix *b)
{
	return a->family == b->family && a->len == b->len &&
	       memcmp(a->addr, b->addr, addr_len(a->family)) == 0;
}

static unsigned af_bit(int family)
{
	return family == AF_INET ? BGP_ADJOUT_AF_IPV4 : BGP_ADJOUT_AF_IPV6;
}

bool bgp_adjout_attrs_equal(const struct bgp_adjout_attrs *a, const struct bgp_adjout_attrs *b)
{
	if (a->local_pref != b->local_pref || a->has_med != b->has_med ||
	    (a->has_med && a->med != b->med) || a->prepend != b->prepend ||
	    a->n_communities != b->n_communities ||
	    a->n_large_communities != b->n_large_communities)
		return false;
	for (size_t i = 0; i < a->n_communities && i < BGP_ADJOUT_MAX_COMMUNITIES; i++)
		if (a->communities[i] != b->communities[i])
			return false;
	for (size_t i = 0; i < a->n_large_communities && i < BGP_ADJOUT_MAX_LARGE_COMMUNITIES;
	     i++) {
		const struct bgp_adjout_large_community *x = &a->large_communities[i],
		                                        *y = &b->large_communities[i];
		if (x->global != y->global || x->local1 != y->local1 || x->local2 != y->local2)
			return false;
	}
	return true;
}

static bool attrs_valid(const struct bgp_adjout_attrs *a)
{
	return a->n_communities <= BGP_ADJOUT_MAX_COMMUNITIES &&
	       a->n_large_communities <= BGP_ADJOUT_MAX_LARGE_COMMUNITIES &&
	       a->prepend <= BGP_ADJOUT_MAX_PREPEND;
}

/* A copy with the unused tails zeroed and med cleared when absent. */
static struct bgp_adjout_attrs attrs_copy(const struct bgp_adjout_attrs *a)
{
	struct bgp_adjout_attrs c;

	memset(&c, 0, sizeof(c));
	c.local_pref = a->local_pref;
	c.has_med = a->has_med;
	c.med = a->has_med ? a->med : 0;
	c.prepend = a->prepend;
	c.n_communities = a->n_communities;
	c.n_large_communities = a->n_large_communities;
	memcpy(c.communities, a->communities, a->n_communities * sizeof(c.communities[0]));
	memcpy(c.large_communities, a->large_communities,
	       a->n_large_communities * sizeof(c.large_communities[0]));
	return c;
}

static struct entry *find(struct bgp_adjout *ao, const struct netprefix *p)
{
	for (size_t i = 0; i < ao->n; i++)
		if (prefix_equal(&ao->e[i].prefix, p))
			return &ao->e[i];
	return NULL;
}

static void remove_entry(struct bgp_adjout *ao, struct entry *e)
{
	*e = ao->e[--ao->n]; /* order lives in pos, not in the array */
}

struct bgp_adjout *bgp_adjout_new(void)
{
	struct bgp_adjout *ao = calloc(1, sizeof(*ao));

	if (ao)
		ao->eor_v4 = ao->eor_v6 = true;
	return ao;
}

void bgp_adjout_free(struct bgp_adjout *ao)
{
	free(ao);
}

int bgp_adjout_set_desired(struct bgp_adjout *ao, const struct bgp_adjout_attrs *attrsets,
                           size_t n_attrsets, const struct bgp_adjout_route *routes,
                           size_t n_routes)
{
	struct netprefix norm[BGP_ADJOUT_MAX_ROUTES];
	uint16_t set[BGP_ADJOUT_MAX_ROUTES];
	size_t n = 0, fresh = 0, n_sent = 0;

	/* Validate everything before touching the table. */
	if (n_attrsets > BGP_ADJOUT_MAX_ATTRSETS)
		return -ENOSPC;
	for (size_t i = 0; i < n_attrsets; i++)
		if (!attrs_valid(&attrsets[i]))
			return -EINVAL;
	for (size_t i = 0; i < n_routes; i++) {
		if (routes[i].attrset == BGP_ADJOUT_WITHDRAWN)
			continue;
		if (routes[i].attrset >= n_attrsets || !prefix_valid(&routes[i].prefix))
			return -EINVAL;
		if (n == BGP_ADJOUT_MAX_ROUTES)
			return -ENOSPC;
		norm[n] = prefix_norm(&routes[i].prefix);
		for (size_t j = 0; j < n; j++)
			if (prefix_equal(&norm[j], &norm[n]))
				return -EINVAL;
		set[n++] = routes[i].attrset;
	}
	for (size_t i = 0; i < ao->n; i++)
		n_sent += ao->e[i].sent;
	for (size_t i = 0; i < n; i++) {
		struct entry *e = find(ao, &norm[i]);
		fresh += !(e && e->sent);
	}
	if (n_sent + fresh > MAX_ENTRIES)
		return -ENOSPC; /* only if mark_sent was fed partial diffs */

	/* Forget the old desired set; entries the peer does not hold go away. */
	for (size_t i = 0; i < ao->n;) {
		ao->e[i].desired = false;
		if (!ao->e[i].sent)
			remove_entry(ao, &ao->e[i]);
		else
			i++;
	}
	for (size_t i = 0; i < n; i++) {
		struct entry *e = find(ao, &norm[i]);
		if (!e) {
			e = &ao->e[ao->n++];
			memset(e, 0, sizeof(*e));
			e->prefix = norm[i];
		}
		e->desired = true;
		e->pos = (uint16_t)i;
		e->want = attrs_copy(&attrsets[set[i]]);
	}
	ao->n_desired = n;
	return 0;
}

int bgp_adjout_diff(const struct bgp_adjout *ao, unsigned af_mask, struct bgp_adjout_diff *d)
{
	const struct entry *by_pos[BGP_ADJOUT_MAX_ROUTES];
	uint8_t group_of[BGP_ADJOUT_MAX_ROUTES];
	size_t fill[BGP_ADJOUT_MAX_GROUPS];

	d->n_groups = d->n_announce = d->n_withdraw = d->n_withdraw_v4 = 0;
	d->eor_v4 = ao->eor_v4 && (af_mask & BGP_ADJOUT_AF_IPV4);
	d->eor_v6 = ao->eor_v6 && (af_mask & BGP_ADJOUT_AF_IPV6);

	for (size_t i = 0; i < ao->n; i++)
		if (ao->e[i].desired)
			by_pos[ao->e[i].pos] = &ao->e[i];

	/* Pass 1: which routes change, and the group (family, attrs) of each. */
	for (size_t i = 0; i < ao->n_desired; i++) {
		const struct entry *e = by_pos[i];
		group_of[i] = UINT8_MAX;
		if (!(af_mask & af_bit(e->prefix.family)))
			continue; /* family not negotiated: the peer gets none of these */
		if (e->sent && !e->dirty && bgp_adjout_attrs_equal(&e->want, &e->have))
			continue;
		size_t g;
		for (g = 0; g < d->n_groups; g++)
			if (d->groups[g].family == e->prefix.family &&
			    bgp_adjout_attrs_equal(&d->groups[g].attrs, &e->want))
				break;
		if (g == d->n_groups) {
			/* At most one group per attribute set and family. */
			if (g == BGP_ADJOUT_MAX_GROUPS)
				return -ENOSPC;
			d->groups[g].family = e->prefix.family;
			d->groups[g].attrs = e->want;
			d->groups[g].count = 0;
			d->n_groups++;
		}
		d->groups[g].count++;
		group_of[i] = (uint8_t)g;
	}
	/* Pass 2: lay each group's prefixes out contiguously, in desired order. */
	for (size_t g = 0; g < d->n_groups; g++) {
		d->groups[g].first = d->n_announce;
		fill[g] = d->n_announce;
		d->n_announce += d->groups[g].count;
	}
	for (size_t i = 0; i < ao->n_desired; i++)
		if (group_of[i] != UINT8_MAX)
			d->announce[fill[group_of[i]]++] = by_pos[i]->prefix;

	/* Withdrawals: held by the peer, no longer desired. IPv4 first. */
	for (int pass = 0; pass < 2; pass++) {
		int fam = pass == 0 ? AF_INET : AF_INET6;
		if (!(af_mask & af_bit(fam)))
			continue;
		for (size_t i = 0; i < ao->n; i++) {
			const struct entry *e = &ao->e[i];
			if (e->sent && !e->desired && e->prefix.family == fam &&
			    d->n_withdraw < BGP_ADJOUT_MAX_ROUTES)
				d->withdraw[d->n_withdraw++] = e->prefix;
		}
		if (pass == 0)
			d->n_withdraw_v4 = d->n_withdraw;
	}
	return (int)(d->n_announce + d->n_withdraw);
}

int bgp_adjout_mark_sent(struct bgp_adjout *ao, const struct bgp_adjout_diff *d)
{
	if (d->n_groups > BGP_ADJOUT_MAX_GROUPS || d->n_announce > BGP_ADJOUT_MAX_ROUTES ||
	    d->n_withdraw > BGP_ADJOUT_MAX_ROUTES)
		return -EINVAL;
	for (size_t g = 0; g < d->n_groups; g++)
		if (d->groups[g].first > d->n_announce ||
		    d->groups[g].count > d->n_announce - d->groups[g].first)
			return -EINVAL;

	for (size_t i = 0; i < d->n_withdraw; i++) {
		struct entry *e = find(ao, &d->withdraw[i]);
		if (!e)
			continue;
		e->sent = false;
		e->dirty = false;
		if (!e->desired)
			remove_entry(ao, e);
	}
	for (size_t g = 0; g < d->n_groups; g++) {
		const struct bgp_adjout_group *grp = &d->groups[g];
		for (size_t i = grp->first; i < grp->first + grp->count; i++) {
			struct entry *e = find(ao, &d->announce[i]);
			if (!e) {
				/* Undesired since the diff was made, but the peer has
				 * it now: remember, so the next diff withdraws it. */
				if (ao->n == MAX_ENTRIES)
					return -ENOSPC;
				e = &ao->e[ao->n++];
				memset(e, 0, sizeof(*e));
				e->prefix = prefix_norm(&d->announce[i]);
			}
			e->sent = true;
			e->dirty = false;
			e->have = attrs_copy(&grp->attrs);
		}
	}
	if (d->eor_v4)
		ao->eor_v4 = false;
	if (d->eor_v6)
		ao->eor_v6 = false;
	return 0;
}

void bgp_adjout_reset_sent(struct bgp_adjout *ao)
{
	for (size_t i = 0; i < ao->n;) {
		ao->e[i].sent = false;
		ao->e[i].dirty = false;
		if (!ao->e[i].desired)
			remove_entry(ao, &ao->e[i]);
		else
			i++;
	}
	ao->eor_v4 = ao->eor_v6 = true;
}

void bgp_adjout_resend(struct bgp_adjout *ao, unsigned af_mask)
{
	for (size_t i = 0; i < ao->n; i++) {
		unsigned af =
		    ao->e[i].prefix.family == AF_INET ? BGP_ADJOUT_AF_IPV4 : BGP_ADJOUT_AF_IPV6;
		if (ao->e[i].desired && (af_mask & af))
			ao->e[i].dirty = true;
	}
}

void bgp_adjout_resend_all(struct bgp_adjout *ao)
{
	bgp_adjout_resend(ao, BGP_ADJOUT_AF_IPV4 | BGP_ADJOUT_AF_IPV6);
}

int bgp_adjout_restore(struct bgp_adjout *ao, const struct netprefix *prefixes,
                       const struct bgp_adjout_attrs *attrs, size_t n, bool eor_v4_owed,
                       bool eor_v6_owed)
{
	if (ao->n)
		return -EBUSY;
	if (n > BGP_ADJOUT_MAX_ROUTES)
		return -ENOSPC;
	for (size_t i = 0; i < n; i++) {
		if (!prefix_valid(&prefixes[i]) || !attrs_valid(&attrs[i]))
			return -EINVAL;
		struct netprefix p = prefix_norm(&prefixes[i]);
		for (size_t j = 0; j < i; j++) {
			struct netprefix q = prefix_norm(&prefixes[j]);
			if (prefix_equal(&p, &q))
				return -EINVAL;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct entry *e = &ao->e[ao->n++];
		memset(e, 0, sizeof(*e));
		e->prefix = prefix_norm(&prefixes[i]);
		e->desired = e->sent = true;
		e->pos = (uint16_t)i;
		e->want = e->have = attrs_copy(&attrs[i]);
	}
	ao->n_desired = n;
	ao->eor_v4 = eor_v4_owed;
	ao->eor_v6 = eor_v6_owed;
	return 0;
}

bool bgp_adjout_eor_owed(const struct bgp_adjout *ao, int family)
{
	return family == AF_INET ? ao->eor_v4 : family == AF_INET6 ? ao->eor_v6 : false;
}

size_t bgp_adjout_desired_count(const struct bgp_adjout *ao)
{
	return ao->n_desired;
}

size_t bgp_adjout_sent_count(const struct bgp_adjout *ao)
{
	size_t n = 0;

	for (size_t i = 0; i < ao->n; i++)
		n += ao->e[i].sent;
	return n;
}

size_t bgp_adjout_sent_list(const struct bgp_adjout *ao, struct netprefix *prefixes,
                            struct bgp_adjout_attrs *attrs, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < ao->n && n < max; i++) {
		if (!ao->e[i].sent)
			continue;
		prefixes[n] = ao->e[i].prefix;
		attrs[n] = ao->e[i].have;
		n++;
	}
	return n;
}
