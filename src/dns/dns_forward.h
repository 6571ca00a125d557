/*
 * dns_forward.h: forwarding cache misses to the upstream resolvers, driven
 * from the worker's loop: UDP over our own socket pool and io_uring, TCP
 * (for truncated answers) through c-ares 1.18 (glue: includes <ares.h>).
 *
 * We build every upstream query ourselves (dns_build_query): a fresh random
 * ID unique among this forwarder's outstanding tries, RD=1, the client's
 * question with DNS 0x20 random letter case (draft-vixie-dnsext-dns0x20),
 * and our own OPT as the last record. An answer is taken only if it comes
 * from the upstream's address and port to the socket the try went out on,
 * carries the try's ID, and its question matches ours octet for octet, case
 * included (RFC 5452 §4 and §9.2). A datagram with another question is
 * ignored (we keep waiting); one whose question differs only in letter case
 * is counted as a likely spoof, discarded, and the query is retried once on
 * another socket (new ID, new case, new port); a second mismatch ends the
 * query with -EPROTO (the server answers SERVFAIL).
 *
 * Sockets. Each upstream has a pool (core/udp_pool.h) of `sockets`
 * connected UDP sockets, each with its own random source port; a try goes
 * out on a random one of them. A socket is retired after rotate_queries
 * sends or rotate_ms of age and closed once the tries it carried are over,
 * so ports change without a socket per query. Random numbers (IDs, case,
 * socket choice) come from a per-forwarder ChaCha20 generator (core/rand.h),
 * not a system call each.
 *
 * Per query: at most `tries` tries on different upstreams, each waiting the
 * upstream's RTO before failing over (a late answer of an earlier try still
 * wins), all within timeout_ms in total; a try not answered within
 * timeout_ms counts as a timeout for its upstream. A SERVFAIL, REFUSED or
 * malformed answer, or an ICMP error on the try's socket (nobody listens at
 * the upstream's port), fails over at once. A FORMERR without OPT is asked
 * again without our OPT, once (RFC 6891 §7: a responder that does not know
 * EDNS). A truncated answer is asked again over TCP through c-ares, same
 * ID and question; a truncated answer over TCP is a failure. Identical
 * queries (lowercased qname, qtype, qclass, DO, CD) already in flight join
 * it, up to max_waiters each.
 *
 * Threads: one forwarder per worker, used only from that worker's loop.
 * Ownership: the answer handed to the callback is a receive buffer, valid
 * only during the callback; each waiter gets its own copy of the scan.
 * Per query the forwarder allocates nothing once warm: tries and requests
 * come from free lists.
 */
#ifndef ANYCACHE_DNS_FORWARD_H
#define ANYCACHE_DNS_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"
#include "core/udp_pool.h"
#include "dns/dns_upstream.h"
#include "dns/dns_wire.h"

struct loop;
struct dns_forward;

#define DNS_FORWARD_MAX_UPSTREAMS DNS_UPSTREAM_MAX
#define DNS_FORWARD_MAX_SOCKETS   UDP_POOL_MAX
/* What one upstream may hold open with the default configuration: its 16
 * sockets in service and about as many retiring (for fd budgets). */
#define DNS_FORWARD_FDS_PER_UPSTREAM 32

/* Zero fields take the default shown. */
struct dns_forward_conf {
	const struct netaddr *upstreams;
	unsigned n_upstreams;     /* 1..DNS_FORWARD_MAX_UPSTREAMS */
	unsigned timeout_ms;      /* 2500: whole query, all tries (clients retry after ~3 s) */
	unsigned tries;           /* 3 upstream tries per query */
	unsigned max_outstanding; /* 4096 callers: queries in flight plus the callers that
	                             joined one; beyond, -EBUSY at once */
	unsigned sockets;         /* 16 UDP sockets per upstream (4 bits of port choice), at
	                             most DNS_FORWARD_MAX_SOCKETS */
	unsigned rotate_queries;  /* 2000 sends per socket before it is replaced */
	unsigned rotate_ms;       /* 60000 ms of socket life before it is replaced */
	unsigned max_waiters;     /* 64 callers sharing one in-flight query */
	const struct dns_upstream_conf *policy; /* NULL: the policy's defaults */
	/* The node's upstream health (dns_upstream.h), shared with the other
	 * workers' forwarders: the forwarder takes a reference. Its count must
	 * be n_upstreams, in the same order. NULL: a set of its own (policy). */
	struct dns_upstream_set *shared_policy;
	/* dnstap (dns_tap.h): every query sent upstream (response false) and
	 * every answer matched to one of our tries (true), as on the wire;
	 * NULL: off. Called on the forwarder's loop thread. */
	void (*tap)(void *arg, bool response, bool tcp, const struct netaddr *upstream,
	            const uint8_t *msg, size_t len);
	void *tap_arg;
};

struct dns_forward_upstream_stats {
	uint64_t sent;       /* tries sent to this upstream (probes excluded) */
	uint64_t answers;    /* usable answers (any RCODE but SERVFAIL/REFUSED) */
	uint64_t rtt_ms_sum; /* over answers */
	uint64_t timeouts;   /* tries that hit their RTO or c-ares's timeout */
	uint64_t failures;   /* transport errors, malformed or truncated answers */
	uint64_t servfail, refused;
	uint64_t mismatches;   /* 0x20 case or question mismatches: likely spoofs */
	uint64_t probes;       /* probes of this upstream: while dead, or to confirm a death */
	uint64_t case_ignored; /* answers taken with the question in another case: it does
	                          not echo DNS 0x20 (dns_upstream.h) */
};

struct dns_forward_stats {
	uint64_t sent;        /* tries sent, all upstreams */
	uint64_t answers;     /* queries answered (status 0), waiters not counted */
	uint64_t timeouts;    /* tries timed out (each failover on timeout counts) */
	uint64_t failures;    /* queries that ended in an error other than -EBUSY/-ECANCELED */
	uint64_t mismatches;  /* question differs (0x20 case or name): possible spoof */
	uint64_t busy;        /* refused: max_outstanding reached */
	uint64_t rtt_ms_sum;  /* over answered tries, for an average */
	unsigned outstanding; /* queries in flight (not waiters, not orphaned tries) */
	unsigned waiters;     /* callers joined to a query in flight (beyond its first) */
	uint64_t retries;     /* tries beyond the first, failover and spoof retries */
	uint64_t spoof_retries;
	uint64_t servfail, refused; /* RCODEs from upstreams */
	uint64_t coalesced;         /* callers that joined an in-flight query */
	uint64_t coalesce_full;     /* callers that found it full and started their own */
	uint64_t sockets_opened, sockets_closed;
	uint64_t socket_rotations; /* sockets retired for their sends or age */
	uint64_t socket_errors;    /* ICMP errors (port unreachable, ...) on our sockets */
	uint64_t unmatched;        /* datagrams taken for nobody's: unknown ID, wrong socket,
	                              another question */
	uint64_t edns_fallbacks;   /* FORMERR without OPT: asked again without our OPT */
	uint64_t tcp_fallbacks;    /* truncated: asked again over TCP */
	uint64_t probes;
	unsigned n_upstreams;
	struct dns_forward_upstream_stats up[DNS_FORWARD_MAX_UPSTREAMS];
};

/*
 * The result of one forwarded query. status 0: `ans` (len bytes) is the
 * upstream's answer, already scanned into *scan, question verified. Otherwise
 * -ETIMEDOUT, -ECONNREFUSED (SERVFAIL/REFUSED from the upstreams tried),
 * -ENETUNREACH (transport errors only: ICMP, resets), -EPROTO (mismatched twice, or malformed
 * answers), -EBUSY (too many outstanding) or -ECANCELED (shutting down: release ctx, touch nothing
 * else).
 */
typedef void (*dns_forward_cb)(void *ctx, int status, const uint8_t *ans, size_t len,
                               struct dns_scan *scan);

int dns_forward_new(struct loop *l, const struct dns_forward_conf *conf, struct dns_forward **out);
/* Pending queries get their callback with -ECANCELED. Not from inside a callback. */
void dns_forward_free(struct dns_forward *f);

/*
 * Sends the question (qname in uncompressed wire form, any case) upstream.
 * cb is called exactly once, never from inside this call: on an immediate
 * failure this returns -errno and cb is not called.
 */
int dns_forward_query(struct dns_forward *f, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                      uint16_t qclass, bool cd, bool do_bit, dns_forward_cb cb, void *ctx);

/* Refreshes the socket counters from the pools first. */
const struct dns_forward_stats *dns_forward_stats(struct dns_forward *f);

/* The health policy's view of upstream idx (state, RTT, rates). */
void dns_forward_upstream_info(const struct dns_forward *f, unsigned idx,
                               struct dns_upstream_info *out);

/* Every upstream DEAD (dns_upstream.h): a caller holding an expired answer
 * may serve it at once rather than wait out the query's whole budget. */
bool dns_forward_all_dead(const struct dns_forward *f);

#endif
