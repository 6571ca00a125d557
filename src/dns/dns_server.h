/*
 * dns_server.h: one worker's DNS service (glue): its UDP listeners on every
 * dns.listen address (SO_REUSEPORT, so each worker has its own sockets and
 * the kernel spreads clients across workers), its answer cache and its
 * upstream forwarder. Requests are validated by the codec, answered from the
 * cache (copy + patch, no allocation) or forwarded.
 *
 * Threads: a server belongs to one loop; after loop_run starts it is used
 * only from that loop's thread. Nothing is shared between workers: each
 * has its own cache (no locks on the hit path; a client's queries stay on
 * one worker because SO_REUSEPORT hashes the 4-tuple).
 */
#ifndef ANYCACHE_DNS_SERVER_H
#define ANYCACHE_DNS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"
#include "core/health.h"

struct loop;
struct dns_server;

struct dns_server_stats {
	uint64_t udp_rx;
	uint64_t dropped;          /* not answered: QR=1, shorter than a header */
	uint64_t rcode[16];        /* answers sent, by 4-bit header RCODE */
	uint64_t badvers;          /* BADVERS answers (extended RCODE 16) */
	uint64_t refused_acl;      /* clients outside dns.allow */
	uint64_t identity;         /* CHAOS id.server / hostname.bind answers */
	uint64_t cache_hits;
	uint64_t cache_misses;
	uint64_t stale_answers;    /* RFC 8767 answers after an upstream failure */
	uint64_t prefetches;
	uint64_t upstream_fail;    /* forwarded queries that got no usable answer */
	uint64_t tx_fail;          /* answers the loop could not send (no send slot, error) */
	uint64_t truncated;        /* UDP answers cut to the client's size with TC=1 */
};

/*
 * Before any worker starts: checks that every listen address can be bound
 * (nothing else holds the port; the address is configured here). A second
 * anycached would otherwise share the port silently through SO_REUSEPORT.
 * Returns 0, or -errno with an operator sentence in why ("127.0.0.1:53 (udp):
 * address already in use").
 */
int dns_server_check_listen(const struct conf_dns *dns, char *why, size_t whylen);

/*
 * Creates worker `index`'s service on loop l: binds its sockets, creates its
 * cache (dns.cache.size / threads bytes) and its forwarder. 0, or -errno
 * with a sentence in why.
 */
int dns_server_new(struct loop *l, const struct conf *conf, unsigned index, char *why,
		   size_t whylen, struct dns_server **out);
void dns_server_free(struct dns_server *s);

const struct dns_server_stats *dns_server_stats(const struct dns_server *s);

/*
 * The VIPs this worker serves: one entry per listen address, SERVING while
 * its socket is bound and armed on the loop. The composition root merges the
 * workers' views into the snapshot the BGP speaker reads.
 */
void dns_server_health(const struct dns_server *s, struct health_snapshot *out);

#endif
