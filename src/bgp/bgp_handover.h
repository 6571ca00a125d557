/*
 * bgp_handover.h: one Established BGP session's state as bytes, for an
 * in-place restart (core/handover.h carries the bytes and the TCP fd), pure.
 *
 * Why hand the connection over at all: the router must never see a
 * withdrawal. A second session from the successor cannot replace the first
 * by the collision rules (RFC 4271 §6.8): both would carry the same BGP
 * Identifier, and closing either one withdraws its routes. So the successor
 * takes the very TCP connection, with what it needs to go on speaking on it
 * as if nothing happened:
 *   - the negotiated session (bgp_fsm_session: hold time, keepalive, the
 *     peer's identifier and AS, the families and capabilities) and the
 *     running Hold and Keepalive deadlines, so its next KEEPALIVE goes out
 *     before the peer's hold timer expires (RFC 4271 §4.4);
 *   - the codec context (4-octet AS, ADD-PATH receive, extended messages);
 *   - the bytes received and not yet framed (the old process stops reading
 *     at any point of the stream; a message cut in two is finished by the
 *     successor);
 *   - the Adj-RIB-Out as the peer holds it (RFC 4271 §3.2), so the successor
 *     sends only changes, and whether End-of-RIB is still owed;
 *   - the identity it was negotiated under (our AS and identifier, the
 *     peer's address and configured AS): a successor configured otherwise
 *     must not adopt it.
 * Format: "BGS" u8 version, then fixed fields in order (see the .c), then
 * u16 rlen + bytes, u16 n_routes + routes. Decoding caps every count by its
 * table size and rejects trailing bytes.
 *
 * Ownership: a plain value; buffers are the caller's.
 */
#ifndef ANYCACHE_BGP_BGP_HANDOVER_H
#define ANYCACHE_BGP_BGP_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bgp/bgp_adjout.h"
#include "bgp/bgp_fsm.h"
#include "core/netaddr.h"

#define BGP_HANDOVER_VERSION  1
#define BGP_HANDOVER_RBUF_MAX 8192 /* two whole messages (no RFC 8654 extended ones) */
/* Fits any session: the fixed part, a full receive buffer, 64 routes at their caps. */
#define BGP_HANDOVER_MAX_LEN 40000

struct bgp_handover_session {
	/* identity */
	uint32_t local_as, bgp_id; /* ours; bgp_id host byte order */
	uint32_t conf_peer_as;     /* the neighbor's configured AS */
	struct netaddr peer;       /* the neighbor's address (port ignored) */
	bool outgoing;             /* we opened the TCP connection */
	/* negotiated */
	struct bgp_fsm_session fsm;
	bool ctx_as4, ctx_ext_msg;
	bool ctx_addpath_rx[2]; /* per BGP_FAM_IPV4/IPV6 */
	/* received, not yet framed */
	size_t rlen;
	uint8_t rbuf[BGP_HANDOVER_RBUF_MAX];
	/* Adj-RIB-Out: what the peer holds */
	size_t n_routes;
	struct netprefix prefix[BGP_ADJOUT_MAX_ROUTES];
	struct bgp_adjout_attrs attrs[BGP_ADJOUT_MAX_ROUTES];
	bool eor_v4_owed, eor_v6_owed;
	/* counters an operator follows across the restart */
	uint64_t updates_sent, prefixes_announced, prefixes_withdrawn;
};

/* Returns the length written, -EMSGSIZE, or -EINVAL (a count over its cap). */
int bgp_handover_encode(const struct bgp_handover_session *s, uint8_t *buf, size_t cap);
/* 0, -EBADMSG (malformed, over a cap, trailing bytes), -EPROTO (another version). */
int bgp_handover_decode(const uint8_t *buf, size_t len, struct bgp_handover_session *out);

#endif
