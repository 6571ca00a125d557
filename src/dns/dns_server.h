/*
 * dns_server.h: one worker's DNS service (glue): its UDP and TCP listeners on
 * every dns.listen address (SO_REUSEPORT, so each worker has its own sockets
 * and the kernel spreads clients across workers), its answer cache and its
 * upstream forwarder. Requests are validated by the codec, answered from the
 * cache (copy + patch, no allocation) or forwarded.
 *
 * One query path serves both transports: a request carries a reply target
 * (UDP: socket + peer; TCP: connection slot + generation) through parse,
 * allow, identity, cache and forward; only the last step, sending, differs.
 * UDP answers are cut to the client's size with TC=1; TCP answers are always
 * whole (RFC 7766 §8), framed by a 2-byte length (RFC 1035 §4.2.2).
 *
 * TCP (RFC 7766) and DNS-over-TLS (RFC 7858, dns.tls-listen) connections
 * are dns_stream.h's: framing, pipelining with out-of-order answers, the
 * idle, stall and handshake timeouts, the caps per worker, per source and
 * per connection, and the dns.allow check at accept; it hands each whole
 * query here with a connection id, and the answer goes back by that id.
 *
 * Cookies and rate limiting, first thing after parsing (dns_cookie.h,
 * dns_rrl.h): a query's COOKIE option is judged (RFC 7873 §5.2, RFC 9018
 * server cookies under the node's dns.cookie-secret) and every answer to it
 * carries our cookie; with dns.require-cookie, a UDP query with a client
 * cookie but no valid server cookie gets BADCOOKIE with one instead of an
 * answer; with dns.rate-limit, UDP answers without a valid
 * server cookie are accounted per client prefix in one table per node and
 * dropped or slipped (TC=1, or BADCOOKIE) over the limit.
 *
 * Threads: a server belongs to one loop; after loop_run starts it is used
 * only from that loop's thread. What the workers share is one struct
 * dns_shared per process: the answer cache (dns_cache.h: lock-free RCU
 * readers, so the hit path takes no lock and allocates nothing), which every
 * worker reads and fills, so a client sees the same cache whichever worker
 * SO_REUSEPORT hands its query to (it hashes the 4-tuple, so a stub's new
 * source port may land anywhere); and the table of upstream queries in
 * flight (dns_inflight.h), so a question missed on several workers at once
 * costs one upstream query: the first worker owns it, the others wait, and
 * the owner, once its answer is in the cache, delivers its outcome to their
 * inboxes and wakes their loops with loop_post(). A waiter answers exactly
 * as the owner did (answer, serve-stale answer or SERVFAIL).
 */
#ifndef ANYCACHE_DNS_SERVER_H
#define ANYCACHE_DNS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"
#include "core/health.h"
#include "dns/dns_cache.h"
#include "dns/dns_forward.h"
#include "dns/dns_stream.h"

struct loop;
struct dns_server;

#define DNS_SERVER_UPSTREAM_INFLIGHT 4096 /* upstream queries in flight per worker */
/*
 * One budget for the memory clients make the process hold, over every
 * worker (issue 10, item 2; dns.client-memory, 256 MiB by default): per-query
 * state while the upstream is asked (about 1 KiB each, waiters included) and
 * TCP/TLS receive and answer buffers (dns_stream.c). The other bounds alone
 * allowed 4 MiB of queue per connection x dns.tcp-connections. Beyond
 * the budget, a query gets SERVFAIL and a connection that needs more is closed.
 */

/*
 * Answer latency histogram: from the query's receive (the datagram, or the
 * whole TCP message) to its answer handed to the kernel (UDP) or queued on
 * the connection (TCP). Upper bounds in microseconds; latency[i] counts the
 * answers in (bound[i-1], bound[i]], latency[DNS_SERVER_LATENCY_N] the rest.
 */
#define DNS_SERVER_LATENCY_N 14
#define DNS_SERVER_LATENCY_BOUNDS_US                                                               \
	{                                                                                          \
		100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,      \
		    1000000, 2500000                                                               \
	}

struct dns_server_stats {
	uint64_t udp_rx;
	uint64_t dropped;      /* not answered: QR=1, shorter than a header */
	uint64_t rcode[16];    /* answers sent, by 4-bit header RCODE */
	uint64_t badvers;      /* BADVERS answers (extended RCODE 16) */
	uint64_t refused_acl;  /* clients outside dns.allow */
	uint64_t refused_meta; /* AXFR/IXFR (REFUSED), MAILA/MAILB (NOTIMP): never forwarded */
	uint64_t identity;     /* CHAOS id.server / hostname.bind answers */
	uint64_t cache_hits;
	uint64_t cache_misses;
	uint64_t stale_answers; /* RFC 8767 answers after an upstream failure */
	uint64_t prefetches;
	uint64_t upstream_fail;      /* forwarded queries that got no usable answer */
	uint64_t inflight_joined;    /* misses that waited on another query for the same question */
	uint64_t inflight_full;      /* misses that found it in flight with no room to wait */
	uint64_t tx_fail;            /* answers the loop could not send (no send slot, error) */
	uint64_t truncated;          /* UDP answers cut to the client's size with TC=1 */
	uint64_t tcp_rx;             /* queries received over TCP and TLS */
	struct dns_stream_stats tcp; /* TCP and TLS connections (dns_stream.h) */
	uint64_t listener_deaths;    /* UDP receives that stopped with an error */
	uint64_t dnstap_dropped;     /* dnstap messages dropped: the worker's queue was full */
	uint64_t cookies[5];         /* queries by enum dns_cookie_verdict (RFC 7873 §5.2) */
	uint64_t cookie_errors;      /* the MAC failed: answered without a cookie */
	uint64_t cookie_unsent;      /* answers that could not carry the query's cookie */
	uint64_t cookie_required;    /* BADCOOKIE instead of an answer: dns.require-cookie */
	uint64_t rrl_dropped;        /* UDP answers not sent: rate limit (dns_rrl.h) */
	uint64_t rrl_slipped;        /* sent as TC=1 (or BADCOOKIE) instead */
	uint64_t mem_refused;        /* queries refused for dns.client-memory (SERVFAIL) */
	uint64_t latency[DNS_SERVER_LATENCY_N + 1]; /* answers per latency bucket (above) */
	uint64_t latency_us_sum;                    /* over every answer counted there */
};

/*
 * Before any worker starts: checks that every listen address can be bound
 * (nothing else holds the port; the address is configured here), over UDP and
 * TCP. A second anycached would otherwise share the port silently through
 * SO_REUSEPORT. Returns 0, or -errno with an operator sentence in why
 * ("127.0.0.1:53 (udp): address already in use", "... (tcp): ...").
 */
int dns_server_check_listen(const struct conf_dns *dns, char *why, size_t whylen);

/* Cache shards per worker thread: writers on different shards never meet. */
#define DNS_SHARED_SHARDS_PER_THREAD 4

struct dns_shared;
struct dns_cache;
struct dns_upstream_set;

/*
 * Once per process, before the workers: the state every worker shares, the
 * answer cache (dns.cache.size bytes for the whole process, 4 shards per
 * worker thread) and the in-flight table. 0, or -errno with a sentence in why. Free it with
 * dns_shared_free only after every dns_server_free.
 */
int dns_shared_new(const struct conf *conf, char *why, size_t whylen, struct dns_shared **out);
void dns_shared_free(struct dns_shared *sh);
struct dns_cache *dns_shared_cache(struct dns_shared *sh);
/* Reload: dns.cache's limits on the running cache, entries kept (dns_cache_set_limits);
 * any thread. 0 or -EINVAL. */
int dns_shared_reconf(struct dns_shared *sh, const struct conf *conf);
/*
 * Reload with other dns.upstreams: the node's new upstream table (fresh
 * health: the addresses changed), to hand to every worker's
 * dns_server_reconf, which takes its own reference. 0 or -errno; drop the
 * caller's reference with dns_upstream_set_free.
 */
int dns_upstreams_new(const struct conf *conf, struct dns_upstream_set **out);
/*
 * Reload, on the control thread: ups (from dns_upstreams_new) becomes the
 * table the node's view reads (a reference is taken), before the workers
 * get it through dns_server_reconf.
 */
void dns_shared_set_upstreams(struct dns_shared *sh, struct dns_upstream_set *ups);
struct dns_upstream_info;
/* Upstream idx's health as the node sees it (out filled when idx is below
 * the count); returns the count. On the thread that sets the upstreams. */
unsigned dns_shared_upstream_info(const struct dns_shared *sh, unsigned idx,
                                  struct dns_upstream_info *out);
/* Reload: dns.client-memory, the limit of what clients make the node hold; any thread. */
void dns_shared_set_client_memory(struct dns_shared *sh, const struct conf *conf);
/* What clients make the node hold now, and (limit, may be NULL) its limit. */
size_t dns_shared_client_memory(const struct dns_shared *sh, size_t *limit);

/*
 * Creates worker `index`'s service on loop l: binds its sockets, creates its
 * forwarder, and serves from the process's shared state. 0, or -errno with a
 * sentence in why.
 */
int dns_server_new(struct loop *l, const struct conf *conf, unsigned index,
                   struct dns_shared *shared, char *why, size_t whylen, struct dns_server **out);
/*
 * Call before loop_free (the loop need not run) and before dns_shared_free,
 * once no worker thread runs any more: open TCP connections and
 * listeners are handed to loop_close_fd and detached from the server, so the
 * loop's final callbacks find only their own state.
 */
void dns_server_free(struct dns_server *s);

/*
 * In-place restart, on the worker's thread, once the successor serves on the
 * same sockets (core/handover.h): stop reading the UDP listeners and
 * accepting on the TCP ones (ours are closed; the successor's duplicates
 * keep the sockets and their queues). Queries already taken are answered.
 */
void dns_server_stop_listening(struct dns_server *s);
/* Nothing left to answer: no upstream query in flight, no TCP answer
 * pending or being sent (worker's thread). */
bool dns_server_idle(const struct dns_server *s);

const struct dns_server_stats *dns_server_stats(const struct dns_server *s);
/* The worker's upstream side: tries, answers, RTT, timeouts, spoofing counters. */
const struct dns_forward_stats *dns_server_upstream_stats(const struct dns_server *s);

/*
 * What health needs from one worker, taken on the worker's own thread (the
 * composition root posts a request to each worker's loop every health
 * interval: a worker that does not answer is stalled). Counters are
 * cumulative; the reader takes differences between two reports.
 */
struct dns_server_report {
	uint64_t at_us; /* clock_now_us() when taken */
	/* The worker's listeners (after a reload not in dns.listen's order):
	 * bit i of listen_ok: listen[i] has its UDP receive armed and TCP open. */
	struct netaddr listen[CONF_MAX_LISTEN];
	unsigned n_listen;
	uint64_t listen_ok;
	uint64_t wait_us;  /* loop time asleep (busy ratio = 1 - d(wait)/d(at)) */
	uint64_t rx_drops; /* datagrams the kernel dropped on our UDP sockets (SO_MEMINFO) */
	unsigned inflight, inflight_max; /* upstream queries in flight, and their bound */
	uint64_t
	    upstream_answers; /* cumulative: none in an interval + every upstream dead = down */
	bool upstreams_down;  /* every upstream DEAD (the node's view, dns_upstream.h) */
};

void dns_server_report(const struct dns_server *s, struct dns_server_report *out);

/*
 * Reload, on the worker's own thread (posted by the composition root): the
 * allow list and identity are replaced; new dns.upstreams get a new
 * forwarder on `ups`, the node's table for them (dns_upstreams_new; NULL
 * when the upstreams did not change) (queries in flight finish on the old
 * one, freed when it is idle; upstream counters and RTT estimates start
 * again); listeners whose address left
 * dns.listen are closed, new ones opened; the others keep their sockets, so
 * no datagram waiting in them is lost. A new listener that cannot open is
 * logged (health keeps its VIP DOWN). conf is read during the call only.
 */
void dns_server_reconf(struct dns_server *s, const struct conf *conf, struct dns_upstream_set *ups);

#endif
