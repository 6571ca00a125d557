/*
 * srclimit.h: how many connections each source address (or prefix) holds,
 * with a cap per source (issue 10, fault 1: without one, one client could
 * take every connection slot of a worker and lock everyone else out of TCP
 * and the TC=1 fallback), and a cap on all of them together.
 *
 * Pure: no sockets, no clock. Sources are grouped by prefix: an IPv4 client
 * by its first prefix4 bits (32 = each address alone), an IPv6 one by its
 * first prefix6 bits (64 = one subnet: an IPv6 host gets a /64 to choose its
 * addresses from, so /128 would cap nothing). An open-addressing table with
 * backward-shift deletion (no tombstones), sized for `capacity` sources at
 * most half full, so every lookup is a short probe; allocated once.
 *
 * Ownership: the table owns its memory; keys are copied. Threads: any;
 * each call takes the table's mutex, so one table serves every worker of a
 * node (a cap per source per node, not per worker: dns_server.c) at the
 * cost of one uncontended lock per accepted and per closed connection.
 */
#ifndef ANYCACHE_CORE_SRCLIMIT_H
#define ANYCACHE_CORE_SRCLIMIT_H

#include <stdint.h>

#include "core/netaddr.h"

struct srclimit;

/* capacity: connections held at once, all sources together (and so the
 * sources tracked), 1..1<<20; max_per_source >= 1; prefix4 1..32, prefix6
 * 1..128. 0 or -EINVAL/-ENOMEM. */
int srclimit_new(unsigned capacity, unsigned max_per_source, uint8_t prefix4, uint8_t prefix6,
                 uint64_t seed, struct srclimit **out);
void srclimit_free(struct srclimit *t);

/* One more connection from a: 0, -EUSERS when its source holds
 * max_per_source already (checked first), -ENOSPC when `capacity`
 * connections are held, -EAFNOSUPPORT for a family that is neither IPv4 nor
 * IPv6. */
int srclimit_take(struct srclimit *t, const struct netaddr *a);
/* One connection from a ended (a must have been taken). */
void srclimit_put(struct srclimit *t, const struct netaddr *a);
/* Connections held by a's source now. */
unsigned srclimit_count(const struct srclimit *t, const struct netaddr *a);
/* Distinct sources tracked now. */
unsigned srclimit_sources(const struct srclimit *t);
/* Connections held now, all sources together. */
unsigned srclimit_total(const struct srclimit *t);

#endif
