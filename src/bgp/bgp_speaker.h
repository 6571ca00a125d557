/*
 * bgp_speaker.h: every BGP neighbor of the node, on one loop (glue).
 *
 * It owns one bgp_session per configured neighbor and a TCP listener on port
 * 179 of each distinct local-address (the wildcard when a neighbor has none)
 * for passive peers and collisions (RFC 4271 §6.8); TCP MD5 keys (RFC 2385)
 * are set on a listener for every peer with a password. It hands each health
 * snapshot to the announcement policy (bgp_policy.h: UP, DEGRADED, DRAINING
 * and DOWN routes, per neighbor) and the result to every session, and logs
 * what the policy reports (a route with no next hop on a session, once).
 *
 * Threads: built before the loop runs (on any thread); afterwards every call
 * comes from the loop's thread (the composition root runs it on the `ctl`
 * thread's loop, which carries no DNS traffic). Health reaches it through
 * bgp_speaker_set_health() whenever a VIP changes state.
 * Lifetime: bgp_speaker_free() only after loop_free() of its loop.
 */
#ifndef ANYCACHE_BGP_BGP_SPEAKER_H
#define ANYCACHE_BGP_BGP_SPEAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"
#include "core/health.h"

struct loop;
struct bgp_speaker;
struct bfd_session;

typedef void (*bgp_speaker_done_fn)(void *arg);

#define BGP_SPEAKER_SHUTDOWN_MS 1000u /* the bound on sending every Cease */

/*
 * Creates the sessions and listeners (a listener that cannot bind is logged
 * and skipped: the neighbors still connect actively), and a BFD session
 * (bfd_session.h, timers from bfd) for every neighbor with bfd: true (one
 * that cannot open its sockets is logged as an error and the neighbor runs
 * without BFD). Sessions start from a timer on the first loop turn. A BFD
 * session that goes from Up to Down takes its BGP session down at once
 * (RFC 5882 §4.3, bgp_session_bfd_down). bfd may be NULL: no BFD.
 * 0, or -errno with a sentence in why.
 */
int bgp_speaker_new(struct loop *l, const struct conf_bgp *conf, const struct conf_bfd *bfd,
                    char *why, size_t whylen, struct bgp_speaker **out);
void bgp_speaker_free(struct bgp_speaker *sp);

/* The routes for this snapshot, to every neighbor (only changes are sent). */
void bgp_speaker_set_health(struct bgp_speaker *sp, const struct health_snapshot *h);

/*
 * Reload: the routes (bgp.announce) and bgp.degraded from conf, nothing else
 * (neighbors, ASN and router ID stay). The policy runs again and each
 * session's Adj-RIB-Out sends only what differs (bgp_adjout.h): an UPDATE
 * for a route whose attributes changed, a withdrawal for one removed; the
 * sessions themselves are untouched.
 */
void bgp_speaker_set_routes(struct bgp_speaker *sp, const struct conf_bgp *conf);

/*
 * Reload: the neighbors of conf (bgp_nbset.h), nothing else (ASN, router
 * ID and routes stay). A neighbor added gets a session (its listener and
 * TCP MD5 key, BFD with the current timers when bfd: true) started as at
 * start, with the routes the current health gives it; a removed one gets
 * Cease 6/3, a changed one Cease 6/6 and a new session; both lose their BFD
 * session (AdminDown first) and their BGP session is freed once its Cease
 * is out. Unchanged neighbors keep their sessions untouched (at their new
 * index). Afterwards neighbor i is conf->neighbors[i] (export/import and
 * the control socket index by it). 0; -ENOMEM with nothing changed;
 * -EBUSY during a shutdown or a restart handover (nothing changed).
 */
int bgp_speaker_set_neighbors(struct bgp_speaker *sp, const struct conf_bgp *conf);

/* Reload: every BFD session takes bfd's timers (a Poll Sequence, no reset). */
void bgp_speaker_set_bfd(struct bgp_speaker *sp, const struct conf_bfd *bfd);

/*
 * Administrative shutdown: NOTIFICATION Cease 6/2 with the RFC 9003 text to
 * every peer (after BFD AdminDown, RFC 5882 §3.2, so no peer counts it as a
 * path failure), listeners closed; done(arg) runs on the loop once every Cease is
 * sent and every connection closed, or after BGP_SPEAKER_SHUTDOWN_MS.
 */
void bgp_speaker_shutdown(struct bgp_speaker *sp, const char *text, bgp_speaker_done_fn done,
                          void *arg);

/*
 * In-place restart (bgp_session.h's freeze/export/thaw/handed_over/import,
 * per neighbor; the composition root drives it and carries the state):
 * freeze every session; returns how many are still getting quiet (call
 * again, from a timer, until 0). export(i): neighbor i's frozen session
 * (-ENOTCONN: not Established, nothing to hand over). thaw: the handover
 * failed, resume. handed_over: the successor took everything: sessions
 * forgotten without a word to the peers, listeners closed (ours only: the
 * successor holds duplicates). import(i): before the loop runs, in the
 * successor.
 */
struct bgp_handover_session;
int bgp_speaker_freeze(struct bgp_speaker *sp);
int bgp_speaker_export(const struct bgp_speaker *sp, unsigned i, struct bgp_handover_session *out,
                       int *fd);
void bgp_speaker_thaw(struct bgp_speaker *sp);
void bgp_speaker_handed_over(struct bgp_speaker *sp);
int bgp_speaker_import(struct bgp_speaker *sp, unsigned i, const struct bgp_handover_session *in,
                       int fd);
/* Neighbor i's BFD session as bytes (bfd_session.h), and back in the
 * successor; -ENOENT when it has no BFD. handed_over stops BFD silently too. */
int bgp_speaker_bfd_export(const struct bgp_speaker *sp, unsigned i, uint8_t *buf, size_t cap);
int bgp_speaker_bfd_import(struct bgp_speaker *sp, unsigned i, const uint8_t *buf, size_t len);

/* Whether some session is Established (a drain is worth waiting for). */
bool bgp_speaker_any_established(const struct bgp_speaker *sp);

/* For the control socket and metrics: the configured neighbors, in order,
 * and each one's session (read it with bgp_session_info/_routes). */
unsigned bgp_speaker_neighbors(const struct bgp_speaker *sp);
const struct bgp_session *bgp_speaker_session(const struct bgp_speaker *sp, unsigned i);
/* Neighbor i's BFD session, NULL without `bfd: true` (or when its socket failed). */
const struct bfd_session *bgp_speaker_bfd(const struct bgp_speaker *sp, unsigned i);

#endif
