/*
 * bgp_speaker.h: every BGP neighbor of the node, on one loop (glue).
 *
 * It owns one bgp_session per configured neighbor and a TCP listener on port
 * 179 of each distinct local-address (the wildcard when a neighbor has none)
 * for passive peers and collisions (RFC 4271 §6.8); TCP MD5 keys (RFC 2385)
 * are set on a listener for every peer with a password. It turns the health
 * snapshot into each neighbor's desired routes: every bgp.announce route whose
 * prefix contains a UP listener address is announced with its configured
 * attributes (DEGRADED: the bgp.degraded attributes when enabled), every
 * other route is withdrawn.
 *
 * Threads: built before the loop runs (on any thread); afterwards every call
 * comes from the loop's thread (the composition root runs it on worker 0,
 * whose turns run timers before any DNS completion).
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

/* Fills the current health snapshot; called on the speaker's loop thread. */
typedef void (*bgp_speaker_health_fn)(void *arg, struct health_snapshot *out);
typedef void (*bgp_speaker_done_fn)(void *arg);

#define BGP_SPEAKER_HEALTH_POLL_MS 500u
#define BGP_SPEAKER_SHUTDOWN_MS    1000u /* the bound on sending every Cease */

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

/* Polls fn every BGP_SPEAKER_HEALTH_POLL_MS and applies a changed snapshot. */
void bgp_speaker_watch_health(struct bgp_speaker *sp, bgp_speaker_health_fn fn, void *arg);

/*
 * Administrative shutdown: NOTIFICATION Cease 6/2 with the RFC 9003 text to
 * every peer (after BFD AdminDown, RFC 5882 §3.2, so no peer counts it as a
 * path failure), listeners closed; done(arg) runs on the loop once every Cease is
 * sent and every connection closed, or after BGP_SPEAKER_SHUTDOWN_MS.
 */
void bgp_speaker_shutdown(struct bgp_speaker *sp, const char *text, bgp_speaker_done_fn done,
                          void *arg);

#endif
