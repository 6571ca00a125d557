/*
 * dns_rrl.h: response rate limiting against reflection (pure logic, no I/O).
 *
 * A spoofed UDP query makes us send an answer to its forged source: RRL caps
 * the answers per client prefix (/24 IPv4, /56 IPv6 by default, the unit one
 * subscriber or one victim usually holds). Each prefix has a token bucket:
 * `rate` answers per second, at most rate x window saved up by a quiet
 * prefix. An answer beyond that is dropped, except that every slip-th one
 * goes out as an empty TC=1 answer (the glue's choice of form), so a real
 * client behind the prefix still learns to retry over TCP, which a spoofer
 * cannot (the idea of BIND's RRL "slip"). TCP answers and queries with a
 * valid server cookie (RFC 7873 §5.2.5: the source is proven) never reach
 * this module.
 *
 * One table per node, shared by every worker: the limit an operator sets is
 * what a prefix gets from the node, however SO_REUSEPORT spreads its source
 * ports over the workers. The table is split into sets of DNS_RRL_WAYS
 * buckets under a keyed hash (dns_hash.h: clients choose their addresses);
 * each set has a one-word spin lock held for a few dozen instructions, so
 * two workers contend only when they account the same set at the same time.
 *
 * Memory is fixed at creation: `entries` buckets (rounded up to a power of
 * two, at least one set) of DNS_RRL_BUCKET_BYTES each. Eviction: a prefix
 * not in its set takes a free bucket there, else the bucket of its set that
 * was used longest ago, and starts with a full bucket; the evicted prefix
 * starts afresh when it comes back. A flooding prefix is used every few
 * microseconds, so it is the last of its set to go: only a set holding
 * DNS_RRL_WAYS prefixes all busier than it can forget it.
 *
 * Time is a parameter (milliseconds, any monotonic origin), so tests step it.
 */
#ifndef ANYCACHE_DNS_RRL_H
#define ANYCACHE_DNS_RRL_H

#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"

#define DNS_RRL_WAYS          8
#define DNS_RRL_BUCKET_BYTES  32
#define DNS_RRL_V4_PREFIX     24
#define DNS_RRL_V6_PREFIX     56
#define DNS_RRL_V6_PREFIX_MAX 64 /* keys hold the first 64 bits of an IPv6 address */
#define DNS_RRL_ENTRIES       65536
#define DNS_RRL_ENTRIES_MAX   (1u << 24)
#define DNS_RRL_RATE_MAX      1000000u
#define DNS_RRL_WINDOW_MAX_S  3600u

struct dns_rrl_conf {
	uint32_t rate;      /* answers per second per prefix, 1..DNS_RRL_RATE_MAX */
	uint32_t window_s;  /* the bucket holds rate x window answers, 1..DNS_RRL_WINDOW_MAX_S */
	uint32_t slip;      /* every slip-th limited answer slips (TC=1); 0: all dropped */
	unsigned v4_prefix; /* 1..32 */
	unsigned v6_prefix; /* 1..DNS_RRL_V6_PREFIX_MAX */
	uint32_t entries;   /* buckets, 1..DNS_RRL_ENTRIES_MAX */
};

enum dns_rrl_verdict {
	DNS_RRL_PASS = 0, /* answer */
	DNS_RRL_DROP,     /* say nothing */
	DNS_RRL_SLIP,     /* answer empty with TC=1 */
};

struct dns_rrl;

/* seed keys the set hash (take it from getrandom()). 0, -EINVAL or -ENOMEM. */
int dns_rrl_new(const struct dns_rrl_conf *c, uint64_t seed, struct dns_rrl **out);
void dns_rrl_free(struct dns_rrl *r);

/*
 * Accounts one answer to client a at time now_ms and says what to do with
 * it. Safe from any number of threads at once. now_ms going backwards (two
 * workers' clocks read a moment apart) counts as no time passed.
 */
enum dns_rrl_verdict dns_rrl_account(struct dns_rrl *r, const struct netaddr *a, uint64_t now_ms);

/* Bytes the table holds (fixed at creation). */
size_t dns_rrl_memory(const struct dns_rrl *r);

#endif
