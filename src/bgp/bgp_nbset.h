/*
 * bgp_nbset.h: what a reload does to the speaker's neighbors (pure; no I/O).
 *
 * bgp_nbset_plan(old, new) matches neighbors by address (as conf_diff.h
 * does, so reordering the list changes nothing) and says, for each new
 * neighbor, which running session it keeps, and for each old one whether
 * it stays, goes (Cease 6/3 "Peer De-configured", RFC 4486 §4) or is
 * replaced because a setting it was opened with changed (Cease 6/6 "Other
 * Configuration Change": the new settings need a new OPEN, a new TCP
 * connection, maybe another MD5 key or BFD).
 *
 * Ownership: the plan is a value; its indexes refer to old and new.
 */
#ifndef ANYCACHE_BGP_BGP_NBSET_H
#define ANYCACHE_BGP_BGP_NBSET_H

#include <stdint.h>

#include "core/conf.h"

/* What happens to an old neighbor's session: 0 = it stays as it runs. */
#define BGP_NBSET_KEEP       0
#define BGP_NBSET_DECONFIG   3 /* RFC 4486 Cease subcode: Peer De-configured */
#define BGP_NBSET_CONFCHANGE 6 /* RFC 4486 Cease subcode: Other Configuration Change */

struct bgp_nbset_plan {
	int from[CONF_MAX_NEIGHBORS];     /* new index -> old index kept, -1 = a new session */
	uint8_t fate[CONF_MAX_NEIGHBORS]; /* old index -> BGP_NBSET_* */
	unsigned kept, added, removed, changed;
};

/*
 * Fills out (every old neighbor matched at most once: a duplicate address in
 * new gets a session of its own). 0, or -EINVAL when a count exceeds
 * CONF_MAX_NEIGHBORS.
 */
int bgp_nbset_plan(const struct conf_bgp *old, const struct conf_bgp *new,
                   struct bgp_nbset_plan *out);

#endif
