/*
 * udp_pool.h: a pool of connected UDP sockets to one peer, each retired
 * after max_sends datagrams or max_age_ms, for queries whose answers must
 * come back to the socket that sent them (source port randomisation,
 * RFC 5452 §4.5 and §9.2).
 *
 * Each socket is connect()ed to the peer, so the kernel picks its source
 * port at random from the ephemeral range and delivers only datagrams from
 * the peer's address and port; io_uring receives on it (one multishot
 * recvmsg per socket) and sends from it. A socket is picked at random among
 * the pool's `size` slots; when the one picked is due (max_sends sends or
 * max_age_ms of life), it is retired and a new one takes its slot before
 * the send. A retired socket sends nothing more but keeps receiving until
 * the last holder lets go of it (udp_pool_put), then it is closed: answers
 * to queries it sent are not lost to the rotation. Sockets live for many
 * queries, so a query costs no socket(), connect() or close().
 *
 * The pool knows nothing of what it carries: the owner matches datagrams to
 * its queries and must check that an answer came in on the socket the query
 * went out on (on_dgram says which).
 *
 * THREADS: the pool belongs to its loop; call it from that loop's thread.
 * OWNERSHIP: the pool owns its sockets. A struct udp_sock stays valid while
 * the owner holds it (udp_sock_hold .. udp_pool_put) and while it is in
 * service; udp_pool_free() closes everything, held or not, after which the
 * owner must forget every socket. Callbacks never run from inside a pool
 * call.
 */
#ifndef ANYCACHE_CORE_UDP_POOL_H
#define ANYCACHE_CORE_UDP_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UDP_POOL_MAX 64

struct loop;
struct rand;
struct udp_pool;
struct udp_sock;

/* Zero fields take the default shown. */
struct udp_pool_conf {
	unsigned size;       /* 16 sockets in service, 1..UDP_POOL_MAX */
	unsigned max_sends;  /* 2000 datagrams per socket, then it is retired */
	unsigned max_age_ms; /* 60000 ms per socket, then it is retired */
};

struct udp_pool_stats {
	uint64_t opened, retired, closed;
	uint64_t open_failures; /* socket()/connect()/receive setup failed */
	uint64_t sends, send_failures;
	uint64_t datagrams, errors;
	unsigned in_service, retiring;
};

/* A datagram from the peer on socket s; p/len die when the callback returns. */
typedef void (*udp_pool_dgram_fn)(void *ctx, struct udp_sock *s, const uint8_t *p, size_t len);
/* An error on s (-ECONNREFUSED: nobody listens at the peer's port, RFC 1122
 * §4.1.3.3): datagrams sent on s before it will not be answered. */
typedef void (*udp_pool_error_fn)(void *ctx, struct udp_sock *s, int err);

/* peer: AF_INET or AF_INET6 with a port; conf may be NULL. rng picks
 * sockets and must outlive the pool. 0, -EINVAL or -ENOMEM. No socket is
 * opened before the first udp_pool_pick. */
int udp_pool_new(struct loop *l, struct rand *rng, const struct sockaddr *peer, socklen_t peerlen,
                 const struct udp_pool_conf *conf, udp_pool_dgram_fn on_dgram,
                 udp_pool_error_fn on_error, void *ctx, struct udp_pool **out);
void udp_pool_free(struct udp_pool *p);

/*
 * A random socket in service, never `avoid` when the pool has another slot
 * (may be NULL), after replacing it if it is due at `now` (ms). NULL with
 * *err set (-EMFILE, -ENOMEM, ...) when no socket could be opened; a due
 * socket whose replacement could not be opened stays in service meanwhile.
 */
struct udp_sock *udp_pool_pick(struct udp_pool *p, const struct udp_sock *avoid, uint64_t now,
                               int *err);

/* Queues one datagram on s (submitted with the loop's next batch) and counts
 * it towards s's max_sends. 0, -ENOBUFS (no send slot free), -EMSGSIZE. */
int udp_pool_send(struct udp_pool *p, struct udp_sock *s, const void *buf, size_t len);

/* The owner expects something on s: keep it open (even once retired) until
 * the matching udp_pool_put. */
void udp_sock_hold(struct udp_sock *s);
void udp_pool_put(struct udp_pool *p, struct udp_sock *s);

/* The local port (host order), for tests and logs. */
uint16_t udp_sock_port(const struct udp_sock *s);

void udp_pool_get_stats(const struct udp_pool *p, struct udp_pool_stats *out);

#endif
