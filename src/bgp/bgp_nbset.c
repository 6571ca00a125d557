/*
 * bgp_nbset.c: the neighbor set change of a reload. See bgp_nbset.h.
 */
#include "bgp/bgp_nbset.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* Every setting a session was opened with (loaders zero the struct, as
 * conf_diff.c relies on too: memcmp is exact). */
static bool same_settings(const struct conf_neighbor *a, const struct conf_neighbor *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

int bgp_nbset_plan(const struct conf_bgp *old, const struct conf_bgp *new,
                   struct bgp_nbset_plan *out)
{
	bool taken[CONF_MAX_NEIGHBORS] = {false};

	memset(out, 0, sizeof(*out));
	if (old->n_neighbors > CONF_MAX_NEIGHBORS || new->n_neighbors > CONF_MAX_NEIGHBORS)
		return -EINVAL;
	for (unsigned i = 0; i < old->n_neighbors; i++)
		out->fate[i] = BGP_NBSET_DECONFIG;
	for (unsigned j = 0; j < new->n_neighbors; j++) {
		const struct conf_neighbor *nb = &new->neighbors[j];
		out->from[j] = -1;
		for (unsigned i = 0; i < old->n_neighbors; i++) {
			if (taken[i] || !netaddr_equal_ip(&old->neighbors[i].address, &nb->address))
				continue;
			taken[i] = true;
			if (same_settings(&old->neighbors[i], nb)) {
				out->from[j] = (int)i;
				out->fate[i] = BGP_NBSET_KEEP;
			} else {
				out->fate[i] = BGP_NBSET_CONFCHANGE;
			}
			break;
		}
	}
	for (unsigned i = 0; i < old->n_neighbors; i++) {
		out->kept += out->fate[i] == BGP_NBSET_KEEP;
		out->removed += out->fate[i] == BGP_NBSET_DECONFIG;
		out->changed += out->fate[i] == BGP_NBSET_CONFCHANGE;
	}
	out->added = new->n_neighbors - out->kept;
	return 0;
}
