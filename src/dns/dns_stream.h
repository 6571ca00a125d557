/*
 * dns_stream.h: DNS over stream transports (glue): RFC 7766 connections over
 * plain TCP and RFC 7858 DNS-over-TLS, one machinery for both.
 *
 * What it does for every connection: frames messages by their 2-byte length
 * (RFC 1035 §4.2.2), hands each whole query to the query path, queues the
 * answers it is given (out of order, as they complete: RFC 7766 §6.2.1.1)
 * and sends them, and keeps every client bounded:
 *   - at accept: sources outside the allow list are closed at once (counted,
 *     no query read: issue 10 fault 1); at most per_source connections per
 *     source prefix (srclimit.h); at most max_conns per server, or in the
 *     shared table (`sources`) per node (either way the oldest idle
 *     connection of this server is closed to make room, else the new one is
 *     refused), and the descriptors the upstream side needs stay free
 *     (fd_reserve);
 *   - idle_ms without a whole query or a completed send closes it (RFC 7766
 *     §6.2.3), and so does a message started and not finished in that time;
 *   - an answer send that does not complete within stall_ms closes it, even
 *     while the client keeps asking (a client that never reads cannot hold
 *     its connection, nor make it unevictable, by a query every few seconds);
 *   - DNS_TCP_MAX_INFLIGHT queries waiting upstream per connection and
 *     DNS_TCP_QUEUE_PAUSE queued answer bytes pause reading; beyond
 *     DNS_TCP_QUEUE_MAX the client is not reading and the connection closes;
 *   - TLS: the handshake must finish within handshake_ms (counted).
 * TLS runs through tls_glue.h on memory buffers: ciphertext moves with the
 * same loop_recv/loop_send as plain TCP, nothing blocks.
 *
 * A connection is named by a 64-bit id (slot and generation): an answer for a
 * connection that closed meanwhile finds nothing (-ENOTCONN), never a newer
 * connection in the same slot.
 *
 * Threads: one stream server belongs to one loop and is used only from its
 * thread. Lifetime: dns_stream_free() before loop_free(): connections and
 * listeners are handed to loop_close_fd and detached; the loop's final
 * callbacks find only their own state.
 */
#ifndef ANYCACHE_DNS_STREAM_H
#define ANYCACHE_DNS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/netaddr.h"

struct loop;
struct tls_ctx;
struct dns_stream;

#define DNS_TCP_MAX_CONNS    65536 /* max_conns at most (conf.h's dns.tcp-connections) */
#define DNS_TCP_MAX_INFLIGHT 32    /* queries waiting upstream per connection */
#define DNS_TCP_IDLE_MS      10000 /* RFC 7766 §6.2.3: "seconds" */
#define DNS_TCP_STALL_MS     10000 /* an answer send must complete within this */
#define DNS_TLS_HANDSHAKE_MS 5000  /* RFC 7858 §3.4 leaves it to the server */
#define DNS_TCP_PER_SOURCE   64    /* connections per source prefix per worker */
#define DNS_TCP_PREFIX4      32
#define DNS_TCP_PREFIX6      64 /* one IPv6 host's subnet (srclimit.h) */
#define DNS_TCP_QUEUE_PAUSE  (64u << 10)
#define DNS_TCP_QUEUE_MAX    (4u << 20) /* > PAUSE + MAX_INFLIGHT whole answers */

struct dns_stream_conf {
	const struct netprefix *allow; /* accepted sources; copied */
	unsigned n_allow;
	unsigned max_conns;  /* 1..DNS_TCP_MAX_CONNS */
	unsigned per_source; /* >= 1 */
	uint8_t prefix4, prefix6;
	unsigned fd_reserve; /* descriptors below the limit that clients may not take */
	unsigned idle_ms, stall_ms, handshake_ms;
	/* The process's budget for client-held memory (core/membudget.h; must
	 * outlive every connection, conn_done included); NULL: unbounded. */
	struct membudget *mem;
	/* The node's connections per source and in all (core/srclimit.h),
	 * shared by every worker's stream server and outliving them;
	 * per_source, the prefixes above and the node's cap are then its
	 * business. NULL: a table of its own, capped at max_conns. */
	struct srclimit *sources;
};

struct dns_stream_stats {
	uint64_t accepted;
	uint64_t refused;        /* at a connection cap (or descriptors short) */
	uint64_t refused_acl;    /* source outside the allow list: closed at accept */
	uint64_t refused_source; /* source prefix at per_source */
	uint64_t evicted;        /* idle connections closed to make room */
	uint64_t idle_closed;    /* idle or unfinished-message timeout */
	uint64_t stalled;        /* an answer send that did not move for stall_ms */
	uint64_t bad_len;        /* length prefix < 12: connection closed */
	uint64_t overflow;       /* client not reading: queue beyond DNS_TCP_QUEUE_MAX */
	uint64_t mem_refused;    /* closed or refused: the process's memory budget was spent */
	uint64_t tls_handshakes; /* completed */
	uint64_t tls_resumed;    /* of which resumed a session */
	uint64_t tls_failed;     /* handshakes that failed (alert, bad record) */
	uint64_t tls_hs_timeouts;
	uint64_t tls_close_notify; /* orderly closes that sent our close_notify */
	unsigned conns; /* open now */
};

/*
 * A whole query arrived on connection `conn` from peer (a view of msg, valid
 * during the call). Answer with dns_stream_reply, now or later.
 */
typedef void (*dns_stream_query_fn)(void *arg, uint64_t conn, const struct sockaddr *peer,
                                    socklen_t peerlen, const uint8_t *msg, size_t len);

/* 0 or -errno (-EINVAL for a bad conf). Counts into *st (the caller's,
 * zeroed by it; it must outlive the stream server). */
int dns_stream_new(struct loop *l, const struct dns_stream_conf *conf, dns_stream_query_fn fn,
                   void *arg, struct dns_stream_stats *st, struct dns_stream **out);
/*
 * Accept on listen_fd (listening already; taken over, also on failure) as
 * plain TCP (tls NULL) or DNS-over-TLS (tls borrowed: it must outlive the
 * stream server). Returns the listener's index (0..) or -errno.
 */
int dns_stream_listen(struct dns_stream *s, int listen_fd, struct tls_ctx *tls);
/*
 * Reload: listener idx stops accepting and is closed (connections it
 * accepted stay until they end); its index may be handed out again by a
 * later dns_stream_listen once the close completed.
 */
void dns_stream_unlisten(struct dns_stream *s, unsigned idx);
/* Reload: the accepted sources from now on (copied); open connections from
 * sources no longer admitted are closed (counted as refused_acl). */
void dns_stream_set_allow(struct dns_stream *s, const struct netprefix *allow, unsigned n);
/* Whether listener idx is open and accepting (or retrying after EMFILE). */
bool dns_stream_listener_ok(const struct dns_stream *s, unsigned idx);

/* Queues one answer (unframed) on conn. 0, -ENOTCONN, -ENOBUFS/-ENOMEM (the
 * connection will close). */
int dns_stream_reply(struct dns_stream *s, uint64_t conn, const uint8_t *msg, size_t len);
/* A query of conn waits for the upstream (counts towards DNS_TCP_MAX_INFLIGHT). */
void dns_stream_hold(struct dns_stream *s, uint64_t conn);
/* That query ended (answered or not): reading may resume. After the reply. */
void dns_stream_release(struct dns_stream *s, uint64_t conn);
bool dns_stream_alive(const struct dns_stream *s, uint64_t conn);

/* In-place restart (restart.h): stop accepting (our copies of the listeners
 * close; a successor holds the sockets); open connections are served on. */
void dns_stream_stop_listening(struct dns_stream *s);
/* No connection has a query waiting, an answer queued or being sent. */
bool dns_stream_idle(const struct dns_stream *s);

void dns_stream_free(struct dns_stream *s);

#endif
