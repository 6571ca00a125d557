/*
 * conf_diff.h: what a reload changes, as data (pure; no I/O, no clock).
 *
 * conf_diff(old, new) lists every difference between two loaded
 * configurations as changes the composition root applies one by one
 * (main.c): listeners added/removed, the allow list, routes added, removed
 * or with new attributes, neighbors added/removed, timers... Keys the
 * running daemon cannot change in place come back as CONF_CHANGE_RESTART
 * with the key's name, so the operator is told which part waits for a
 * restart while the rest is applied.
 *
 * Matching is by identity, not by position: a listener by address and
 * port, a route by prefix, a neighbor by address. So reordering a list
 * changes nothing, and an unchanged listener keeps its sockets, an
 * unchanged neighbor its session.
 *
 * Ownership: struct conf_diff is a value (fixed array); indexes in it refer
 * to the old or the new struct conf given to conf_diff (see each kind).
 */
#ifndef ANYCACHE_CORE_CONF_DIFF_H
#define ANYCACHE_CORE_CONF_DIFF_H

#include <stddef.h>

#include "core/conf.h"

enum conf_change_kind {
	CONF_CHANGE_LISTEN_ADD,   /* new.dns.listen[index] */
	CONF_CHANGE_LISTEN_DEL,   /* old.dns.listen[index] */
	CONF_CHANGE_ALLOW,        /* dns.allow as a whole */
	CONF_CHANGE_IDENTITY,     /* dns.identity */
	CONF_CHANGE_UPSTREAMS,    /* dns.upstreams as a whole */
	CONF_CHANGE_CACHE,        /* dns.cache limits */
	CONF_CHANGE_MEMORY,       /* dns.client-memory */
	CONF_CHANGE_ROUTE_ADD,    /* new.bgp.routes[index] */
	CONF_CHANGE_ROUTE_DEL,    /* old.bgp.routes[index] */
	CONF_CHANGE_ROUTE_ATTR,   /* new.bgp.routes[index]: same prefix, new attributes */
	CONF_CHANGE_DEGRADED,     /* bgp.degraded */
	CONF_CHANGE_NEIGHBOR_ADD, /* new.bgp.neighbors[index] */
	CONF_CHANGE_NEIGHBOR_DEL, /* old.bgp.neighbors[index] */
	CONF_CHANGE_BFD,          /* bfd timers */
	CONF_CHANGE_HEALTH,       /* health.* timers and thresholds */
	CONF_CHANGE_RESTART,      /* key: cannot change at run time */
};

#define CONF_DIFF_MAX     256
#define CONF_DIFF_KEY_LEN 48

struct conf_change {
	enum conf_change_kind kind;
	unsigned index;
	char key[CONF_DIFF_KEY_LEN]; /* the configuration key it concerns */
};

struct conf_diff {
	struct conf_change c[CONF_DIFF_MAX];
	unsigned n;
	unsigned restart; /* how many of them are CONF_CHANGE_RESTART */
};

/*
 * Fills out with every change from old to new (nothing when they are equal).
 * A neighbor whose settings changed is removed and added again (its session
 * resets: the new settings are negotiated in a new OPEN), every other one is
 * untouched. Pure.
 */
void conf_diff(const struct conf *old, const struct conf *new, struct conf_diff *out);

/*
 * One line for the log and anycachectl: "listener 192.0.2.1:53 added",
 * "bgp.announce 192.0.2.0/24: attributes changed", "dns.threads: needs a
 * restart". Returns buf.
 */
const char *conf_change_format(const struct conf_change *c, const struct conf *old,
                               const struct conf *new, char *buf, size_t size);

#endif
