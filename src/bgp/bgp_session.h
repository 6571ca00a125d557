/*
 * bgp_session.h: one BGP neighbor on an io_uring loop (glue).
 *
 * It owns the neighbor's FSMs (bgp_fsm.h: a primary that connects and
 * retries, and at most one spare for an incoming connection during a
 * collision, RFC 4271 §6.8), their TCP connections, and the neighbor's
 * Adj-RIB-Out (bgp_adjout.h). It turns socket results, received messages
 * (framed from the stream and parsed by bgp_wire.h) and one Tick timer into
 * FSM events, and carries the FSM's actions out. Every message goes into the
 * connection's output queue first; the queue is handed to the loop in one
 * loop_send after the event has been handled, never from inside the logic.
 *
 * What goes to the peer: the routes given to bgp_session_set_routes(), with
 * ORIGIN IGP, AS_PATH empty on iBGP or our AS (+ prepend) on eBGP, NEXT_HOP
 * = the connection's local address (IPv4), MP_REACH next hop = next-hop6 or
 * the local address of an IPv6 session, LOCAL_PREF on iBGP only. UPDATEs
 * from the peer are validated (RFC 7606) and discarded.
 *
 * Threads: after the loop runs, every call comes from the loop's thread.
 * Lifetime: bgp_session_free() only after loop_free() of its loop (the final
 * callbacks loop_free delivers still touch the session's connections).
 */
#ifndef ANYCACHE_BGP_BGP_SESSION_H
#define ANYCACHE_BGP_BGP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bgp/bgp_adjout.h"
/* bgp_wire.h before bgp_fsm.h: the FSM header #defines NOTIFICATION codes
 * that bgp_wire.h declares as enum constants of the same names and values. */
#include "bgp/bgp_wire.h"
#include "bgp/bgp_fsm.h"
#include "core/conf.h"

struct loop;
struct bgp_session;

struct bgp_session_conf {
	struct conf_neighbor nb; /* copied */
	uint32_t local_as;
	uint32_t bgp_id;           /* host byte order */
	uint32_t connect_retry_ms; /* 0 = FSM default (tests: shorter) */
	uint64_t seed;             /* jitter PRNG seed */
};

int bgp_session_new(struct loop *l, const struct bgp_session_conf *conf, struct bgp_session **out);
/* After loop_free(): closes whatever is still open and frees. NULL is a no-op. */
void bgp_session_free(struct bgp_session *s);

/* ManualStart: the primary FSM starts connecting (or waits, when passive). */
void bgp_session_start(struct bgp_session *s);

/*
 * Replaces the desired routes (see bgp_adjout_set_desired) and, when
 * Established, sends the difference at once. 0 or what set_desired returns.
 */
int bgp_session_set_routes(struct bgp_session *s, const struct bgp_adjout_attrs *sets,
                           size_t n_sets, const struct bgp_adjout_route *routes, size_t n_routes);

/* An accepted TCP connection whose remote address is this neighbor's: the
 * session takes fd (it closes it when it cannot use it). */
void bgp_session_accept(struct bgp_session *s, int fd);

/* ManualStop: NOTIFICATION Cease 6/2 with the RFC 9003 text (may be NULL),
 * then close. bgp_session_quiet() tells when the bytes are gone. */
void bgp_session_shutdown(struct bgp_session *s, const char *text);

/*
 * Reload: the neighbor was removed (subcode 3, Peer De-configured) or its
 * settings changed (6, Other Configuration Change), RFC 4486: as
 * bgp_session_shutdown but with that Cease and no text. The session never
 * starts again; bgp_session_discard() frees it once quiet.
 */
void bgp_session_retire(struct bgp_session *s, uint8_t subcode);
/* While the loop runs: frees a session that is quiet (after a shutdown or a
 * retire); -EBUSY while a connection is still open or draining (try later). */
int bgp_session_discard(struct bgp_session *s);

/* No connection open or draining (after a shutdown: everything was sent). */
bool bgp_session_quiet(const struct bgp_session *s);

/* RFC 2385: sets the neighbor's TCP MD5 key (if any) on a listening socket fd. */
int bgp_session_md5_listen(int fd, const struct conf_neighbor *nb);
/* Takes peer's TCP MD5 key off a listening socket (it had one or not). 0 or -errno. */
int bgp_session_md5_unlisten(int fd, const struct netaddr *peer);

enum bgp_fsm_state bgp_session_state(const struct bgp_session *s);

/*
 * RFC 5882 §4.3: the neighbor's BFD session went from Up to Down (not by the
 * peer's AdminDown, §3.2): the BGP session goes down at once, with
 * NOTIFICATION Cease/BFD Down (RFC 9384), and the FSM retries on its usual
 * backoff. Connections not yet in OpenSent are left alone.
 */
void bgp_session_bfd_down(struct bgp_session *s);

/* ---- in-place restart (bgp_handover.h; the composition root drives it) ---- */

struct bgp_handover_session;

/*
 * Stops the session at a message boundary of its output: no more reads (the
 * recv in flight is cancelled; bytes it still brings are kept unframed), no
 * timer, no new messages. Returns 1 once it is quiet (nothing being sent,
 * nothing queued, no recv in flight: ready for bgp_session_export), 0 while
 * it is still getting there (call again), -ENOTCONN when there is nothing to
 * hand over (not Established, or a collision in progress: the successor then
 * starts it afresh, and the router had no route from it anyway).
 */
int bgp_session_freeze(struct bgp_session *s);
/* Frozen and quiet: its state and the connection's fd (still ours). */
int bgp_session_export(const struct bgp_session *s, struct bgp_handover_session *out, int *fd);
/* The handover failed: reading, timers and route updates resume; what
 * arrived meanwhile is handled now. */
void bgp_session_thaw(struct bgp_session *s);
/* The successor took the connection: forget it without a word to the peer
 * (no NOTIFICATION, no FIN: our close drops only our reference). */
void bgp_session_handed_over(struct bgp_session *s);
/*
 * Before the loop runs: takes over an Established session from a
 * predecessor (fd is then ours). -ESTALE when it was negotiated for another
 * configuration (peer address or AS, our AS or identifier), -EINVAL for a
 * state that does not hold together; the caller closes fd then.
 * bgp_session_start() then resumes it (reading, timers) instead of starting.
 */
int bgp_session_import(struct bgp_session *s, const struct bgp_handover_session *in, int fd);

/* ---- for the control socket and metrics (loop thread) ---- */

#define BGP_SESSION_TEXT_MAX 128

struct bgp_session_notif {
	bool valid;
	uint8_t code, subcode;
	uint64_t at_ms;                      /* loop_now() when sent / received */
	char text[BGP_SESSION_TEXT_MAX + 1]; /* RFC 9003 shutdown communication, if any */
};

struct bgp_session_info {
	struct netaddr peer; /* address and TCP port */
	uint32_t peer_as, local_as;
	bool ibgp, passive;
	enum bgp_fsm_state state;            /* the primary connection's */
	uint64_t state_since_ms;             /* loop_now() of its last change (0: never changed) */
	uint16_t hold_time;                  /* negotiated, seconds (valid from OpenConfirm) */
	uint32_t keepalive_ms;               /* negotiated */
	uint32_t peer_bgp_id;                /* host byte order */
	bool as4, ipv4, ipv6, route_refresh; /* negotiated capabilities */
	struct netaddr local;                /* our end of the connection (family 0: none) */
	uint32_t flaps;                      /* times Established was left */
	uint64_t updates_sent;               /* UPDATE messages queued (End-of-RIB included) */
	uint64_t prefixes_announced, prefixes_withdrawn;
	struct bgp_session_notif notif_sent, notif_received;
	char last_error[BGP_SESSION_TEXT_MAX + 1]; /* "" = none */
	uint64_t last_error_ms;
};

void bgp_session_info(const struct bgp_session *s, struct bgp_session_info *out);

/* The routes the peer holds, with the attributes sent (bgp_adjout_sent_list). */
size_t bgp_session_routes(const struct bgp_session *s, struct netprefix *prefixes,
                          struct bgp_adjout_attrs *attrs, size_t max);

#endif
