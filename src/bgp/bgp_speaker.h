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

/* Whether some session is Established (a drain is worth waiting for). */
bool bgp_speaker_any_established(const struct bgp_speaker *sp);

/* For the control socket and metrics: the configured neighbors, in order,
 * and each one's session (read it with bgp_session_info/_routes). */
unsigned bgp_speaker_neighbors(const struct bgp_speaker *sp);
const struct bgp_session *bgp_speaker_session(const struct bgp_speaker *sp, unsigned i);
/* Neighbor i's BFD session, NULL without `bfd: true` (or when its socket failed). */
const struct bfd_session *bgp_speaker_bfd(const struct bgp_speaker *sp, unsigned i);

#endif
