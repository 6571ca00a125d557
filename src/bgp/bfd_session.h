/*
 * bfd_session.h: single-hop BFD sessions (RFC 5881) on an io_uring loop (glue).
 *
 * A struct bfd_mux owns what sessions share: one receive socket per address
 * family on UDP port 3784 (RFC 5881 §4), the received-packet checks and the
 * demultiplexing. Each struct bfd_session is one peer: a bfd_fsm (the
 * protocol, pure), its own send socket bound to a source port in
 * 49152-65535 that it keeps for its life (RFC 5881 §4) with TTL / hop limit
 * 255 (§5), and one loop timer for the machine's earliest deadline.
 *
 * Reception: a datagram whose TTL / hop limit is not 255 is dropped before
 * anything else (RFC 5881 §5: GTSM, RFC 5082); then bfd_parse(); then the
 * session is chosen by Your Discriminator, or by the source address when
 * that is 0 (RFC 5881 §3), and the source address must be the session's
 * peer either way; then the machine steps. Drops are counted, not logged
 * per packet.
 *
 * Changes of state reach the owner through the callback, after the
 * packets of that step were handed to the loop.
 *
 * Threads: built on any thread before the loop runs; afterwards every call
 * comes from the loop's thread. Lifetime: bfd_mux_free() only after
 * loop_free() of its loop; it frees the sessions too.
 */
#ifndef ANYCACHE_BGP_BFD_SESSION_H
#define ANYCACHE_BGP_BFD_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bgp/bfd_fsm.h"
#include "core/netaddr.h"

struct loop;
struct bfd_mux;
struct bfd_session;

struct bfd_session_conf {
	struct netaddr peer;  /* .port = its control port, 0 = 3784 */
	struct netaddr local; /* our address (source); family 0 = the kernel's choice */
	uint32_t interval_ms; /* our Desired Min TX and Required Min RX, > 0 */
	unsigned multiplier;  /* Detect Mult, 1..255 */
};

struct bfd_session_change {
	enum bfd_state from, to;
	uint8_t diag;                /* enum bfd_diag: why */
	enum bfd_state remote_state; /* AdminDown: the peer turned BFD off (RFC 5882 §3.2) */
};

typedef void (*bfd_session_fn)(void *arg, struct bfd_session *s,
                               const struct bfd_session_change *c);

struct bfd_mux_stats {
	uint64_t rx, rx_ttl, rx_bad, rx_auth, rx_no_session, rx_discarded;
	uint64_t tx, tx_err;
};

/* port: where we receive, 0 = 3784 (tests use others). seed: jitter and
 * discriminators. 0 or -ENOMEM. Sockets open with the first session. */
int bfd_mux_new(struct loop *l, uint16_t port, uint64_t seed, struct bfd_mux **out);

/*
 * A session toward conf->peer, AdminDown (silent) until bfd_session_start().
 * Opens the family's receive socket if it is the first of its family and the
 * session's send socket. 0, -EINVAL (conf), -EEXIST (that peer already has a
 * session), or -errno from a socket call (-EADDRINUSE: port 3784 is taken).
 */
int bfd_session_new(struct bfd_mux *m, const struct bfd_session_conf *conf, bfd_session_fn fn,
                    void *arg, struct bfd_session **out);

/* Enables the session (AdminDown -> Down): it starts sending at once. */
void bfd_session_start(struct bfd_session *s);
/* Disables it (AdminDown, diagnostic 7, RFC 5880 §6.8.16). */
void bfd_session_stop(struct bfd_session *s);
/* Reload removed the neighbor (or its BFD): AdminDown once, then the session
 * leaves the mux (its discriminator and source port are free again) and is
 * freed while the loop runs. NULL is a no-op. */
void bfd_session_free(struct bfd_session *s);
/* Reload: new intervals and Detect Mult, taken through a Poll Sequence when Up
 * (RFC 5880 §6.8.3, bfd_fsm.h); the session is not reset. 0 or -EINVAL. */
int bfd_session_set_timers(struct bfd_session *s, uint32_t interval_ms, unsigned multiplier);

/*
 * In-place restart: the session's state as bytes (bfd_fsm_export); import
 * it into a new session before the loop runs (its start then changes
 * nothing: it is already enabled). -EEXIST when another session has its
 * discriminator. The sockets themselves move through core/handover.h
 * ("bfd-rx", "bfd-tx"): the successor keeps the source port (RFC 5881 §4).
 * handed_over: the successor took over: stop sending and reading without a
 * word (no AdminDown), close our copies of the sockets.
 */
int bfd_session_export(const struct bfd_session *s, uint8_t *buf, size_t cap);
int bfd_session_import(struct bfd_session *s, const uint8_t *buf, size_t len);
void bfd_mux_handed_over(struct bfd_mux *m);

/* Every enabled session sends AdminDown once, then every socket is closed
 * through the loop and every timer stopped. Nothing is sent afterwards. */
void bfd_mux_shutdown(struct bfd_mux *m);

/* After loop_free(): closes what is still open, frees the sessions. NULL is a no-op. */
void bfd_mux_free(struct bfd_mux *m);

enum bfd_state bfd_session_state(const struct bfd_session *s);
const struct bfd_fsm *bfd_session_fsm(const struct bfd_session *s);
void bfd_mux_get_stats(const struct bfd_mux *m, struct bfd_mux_stats *out);

#endif
