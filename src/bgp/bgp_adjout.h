/*
 * bgp_adjout.h: the Adj-RIB-Out of one neighbor (RFC 4271 §3.2), pure data.
 *
 * It holds two things per prefix: what we WANT the peer to have (the desired
 * set, replaced wholesale by bgp_adjout_set_desired()) and what the peer HAS
 * (the sent set, changed only by bgp_adjout_mark_sent()). bgp_adjout_diff()
 * computes the UPDATEs that take the peer from one to the other:
 * announcements grouped by identical attributes (one UPDATE per group, the
 * glue may split a group over several messages) and withdrawals, per address
 * family, filtered to the families the session negotiated.
 *
 * Health policy: the caller passes a small table of attribute sets (say 0 =
 * normal, 1 = degraded) and each desired route names the set it uses, or
 * BGP_ADJOUT_WITHDRAWN. Moving a route between sets yields one announcement
 * (an implicit replace, RFC 4271 §3.1), no withdrawal. Changes are detected by
 * attribute VALUE, not by set index, so reordering the table costs nothing.
 *
 * The glue's cycle: on ESTABLISHED, diff with the negotiated families, send
 * withdrawals, then each group, then End-of-RIB (RFC 4724 §2) for every
 * family flagged in the diff, then mark_sent(diff). Whenever the desired set
 * changes: set_desired, diff, send, mark_sent. On DOWN: reset_sent. On
 * RESEND_ALL (ROUTE-REFRESH): resend_all, then the same cycle.
 *
 * mark_sent() applies exactly the diff it is given, so a diff computed before
 * a set_desired() may still be marked: the next diff corrects the difference.
 *
 * Ownership: the Adj-RIB-Out owns copies of every route and attribute set it
 * is given; a diff is a value the caller owns and holds copies too.
 */
#ifndef ANYCACHE_BGP_BGP_ADJOUT_H
#define ANYCACHE_BGP_BGP_ADJOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"

#define BGP_ADJOUT_MAX_ROUTES            64 /* matches the config's CONF_MAX_ROUTES */
#define BGP_ADJOUT_MAX_ATTRSETS          64 /* one per route: a route uses one set at a time */
#define BGP_ADJOUT_MAX_COMMUNITIES       32
#define BGP_ADJOUT_MAX_LARGE_COMMUNITIES 16
#define BGP_ADJOUT_MAX_PREPEND           16 /* extra copies of our AS in AS_PATH */
/* One group per (family, distinct attributes), each with a route at least. */
#define BGP_ADJOUT_MAX_GROUPS BGP_ADJOUT_MAX_ROUTES
#define BGP_ADJOUT_WITHDRAWN  UINT16_MAX

/* Address families, as a mask of what the session negotiated. */
#define BGP_ADJOUT_AF_IPV4 0x1u
#define BGP_ADJOUT_AF_IPV6 0x2u

struct bgp_adjout_large_community {
	uint32_t global, local1, local2; /* RFC 8092 */
};

/* The path attributes we vary per route; ORIGIN (IGP), AS_PATH and NEXT_HOP
 * are the glue's. local_pref is sent on iBGP only (RFC 4271 §5.1.5). */
struct bgp_adjout_attrs {
	uint32_t local_pref;
	uint32_t med;
	bool has_med;
	uint8_t prepend;
	uint8_t n_communities;
	uint8_t n_large_communities;
	uint32_t communities[BGP_ADJOUT_MAX_COMMUNITIES]; /* RFC 1997, as 32-bit values */
	struct bgp_adjout_large_community large_communities[BGP_ADJOUT_MAX_LARGE_COMMUNITIES];
};

struct bgp_adjout_route {
	struct netprefix prefix;
	uint16_t attrset; /* index into the attribute-set table, or BGP_ADJOUT_WITHDRAWN */
};

/* Announce diff->announce[first .. first+count) with attrs, in one family. */
struct bgp_adjout_group {
	int family; /* AF_INET or AF_INET6 */
	struct bgp_adjout_attrs attrs;
	size_t first, count;
};

struct bgp_adjout_diff {
	size_t n_groups;
	struct bgp_adjout_group groups[BGP_ADJOUT_MAX_GROUPS];
	size_t n_announce;
	struct netprefix announce[BGP_ADJOUT_MAX_ROUTES];
	/* IPv4 withdrawals first (withdraw[0 .. n_withdraw_v4)), then IPv6. */
	size_t n_withdraw, n_withdraw_v4;
	struct netprefix withdraw[BGP_ADJOUT_MAX_ROUTES];
	/* End-of-RIB owed after these changes (first full announcement). */
	bool eor_v4, eor_v6;
};

struct bgp_adjout;

struct bgp_adjout *bgp_adjout_new(void);
void bgp_adjout_free(struct bgp_adjout *ao);

/*
 * Replaces the desired set. Routes marked BGP_ADJOUT_WITHDRAWN are skipped.
 * Returns 0; -EINVAL for an attrset index out of the table, a prefix that is
 * not AF_INET/AF_INET6 or has a bad length, a prefix listed twice, or an
 * attribute set over its caps; -ENOSPC for more than BGP_ADJOUT_MAX_ROUTES
 * routes or attribute sets. On error the old desired set is kept.
 */
int bgp_adjout_set_desired(struct bgp_adjout *ao, const struct bgp_adjout_attrs *attrsets,
                           size_t n_attrsets, const struct bgp_adjout_route *routes,
                           size_t n_routes);

/*
 * The changes to send for the families in af_mask (BGP_ADJOUT_AF_*). Returns
 * the number of prefixes to announce plus withdraw (0: nothing but perhaps
 * End-of-RIB). Deterministic: groups and prefixes follow the desired order.
 */
int bgp_adjout_diff(const struct bgp_adjout *ao, unsigned af_mask, struct bgp_adjout_diff *d);

/* The glue sent everything in d (and any End-of-RIB it flags). Returns 0 or
 * -ENOSPC if d could not have come from this Adj-RIB-Out. */
int bgp_adjout_mark_sent(struct bgp_adjout *ao, const struct bgp_adjout_diff *d);

/* The session went down: the peer has nothing; End-of-RIB is owed again. */
void bgp_adjout_reset_sent(struct bgp_adjout *ao);

/* ROUTE-REFRESH (RFC 2918): announce every desired route of the families in
 * af_mask (BGP_ADJOUT_AF_*) again in the next diff. */
void bgp_adjout_resend(struct bgp_adjout *ao, unsigned af_mask);
/* Both families. */
void bgp_adjout_resend_all(struct bgp_adjout *ao);

/*
 * In-place restart (bgp_handover.h): an empty Adj-RIB-Out takes over what
 * the peer holds from a predecessor process: each prefix sent with its
 * attributes and desired as it is (so the next diff is empty until
 * set_desired says otherwise), End-of-RIB owed as given. 0; -EINVAL for a
 * bad prefix, a duplicate or attributes over their caps; -ENOSPC for more
 * than BGP_ADJOUT_MAX_ROUTES; -EBUSY when the table is not empty.
 */
int bgp_adjout_restore(struct bgp_adjout *ao, const struct netprefix *prefixes,
                       const struct bgp_adjout_attrs *attrs, size_t n, bool eor_v4_owed,
                       bool eor_v6_owed);

/* Whether End-of-RIB is still owed for a family (AF_INET or AF_INET6). */
bool bgp_adjout_eor_owed(const struct bgp_adjout *ao, int family);

/* Counts, for logs and the control socket. */
size_t bgp_adjout_desired_count(const struct bgp_adjout *ao);
size_t bgp_adjout_sent_count(const struct bgp_adjout *ao);
/* What the peer holds: up to max prefixes with the attributes they were sent
 * with (table order). Returns how many were written. */
size_t bgp_adjout_sent_list(const struct bgp_adjout *ao, struct netprefix *prefixes,
                            struct bgp_adjout_attrs *attrs, size_t max);

bool bgp_adjout_attrs_equal(const struct bgp_adjout_attrs *a, const struct bgp_adjout_attrs *b);

#endif
