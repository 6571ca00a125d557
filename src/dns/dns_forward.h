/*
 * dns_forward.h: forwarding cache misses to the upstream resolvers through
 * c-ares 1.18, driven from the worker's loop (glue: includes <ares.h>).
 *
 * We build every upstream query ourselves (dns_build_query): a fresh random
 * ID unique among this forwarder's outstanding queries (c-ares 1.18 keeps
 * the ID it is given), RD=1, the client's question with DNS 0x20 random
 * letter case (draft-vixie-dnsext-dns0x20), and our own OPT as the last
 * record. An answer is passed on only if its question matches ours octet for
 * octet, case included; c-ares itself only compares case-insensitively.
 *
 * Threads: one forwarder per worker, used only from that worker's loop.
 * Ownership: the answer handed to the callback is c-ares's buffer, valid only
 * during the callback.
 */
#ifndef ANYCACHE_DNS_FORWARD_H
#define ANYCACHE_DNS_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"
#include "dns/dns_wire.h"

struct loop;
struct dns_forward;

struct dns_forward_conf {
	const struct netaddr *upstreams;
	unsigned n_upstreams;
	unsigned timeout_ms;      /* first try; c-ares doubles it per round */
	unsigned tries;
	unsigned max_outstanding; /* beyond this, queries fail at once (-EBUSY) */
};

struct dns_forward_stats {
	uint64_t sent;
	uint64_t answers;
	uint64_t timeouts;
	uint64_t failures;        /* connection refused, SERVFAIL/REFUSED from every upstream */
	uint64_t mismatches;      /* question differs (0x20 case or name): possible spoof */
	uint64_t busy;            /* refused: max_outstanding reached */
	uint64_t rtt_ms_sum;      /* over answers, for an average */
	unsigned outstanding;
};

/*
 * The result of one forwarded query. status 0: `ans` (len bytes) is the
 * upstream's answer, already scanned into *scan, question verified. Otherwise
 * -ETIMEDOUT, -ECONNREFUSED (every upstream failed or refused), -EPROTO
 * (mismatched or malformed answer), -EBUSY (too many outstanding) or
 * -ECANCELED (shutting down: release ctx, touch nothing else).
 */
typedef void (*dns_forward_cb)(void *ctx, int status, const uint8_t *ans, size_t len,
			       struct dns_scan *scan);

int dns_forward_new(struct loop *l, const struct dns_forward_conf *conf,
		    struct dns_forward **out);
/* Pending queries get their callback with -ECANCELED. */
void dns_forward_free(struct dns_forward *f);

/*
 * Sends the question (qname in uncompressed wire form, any case) upstream.
 * cb is called exactly once, never from inside this call: on an immediate
 * failure this returns -errno and cb is not called.
 */
int dns_forward_query(struct dns_forward *f, const uint8_t *qname, size_t qname_len,
		      uint16_t qtype, uint16_t qclass, bool cd, bool do_bit, dns_forward_cb cb,
		      void *ctx);

const struct dns_forward_stats *dns_forward_stats(const struct dns_forward *f);

#endif
