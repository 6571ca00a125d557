/*
 * bgp_handover.c: the session state codec. See bgp_handover.h.
 */
#include "bgp/bgp_handover.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "core/wire.h"

static void put_u64(struct wbuf *b, uint64_t v)
{
	wbuf_u32(b, (uint32_t)(v >> 32));
	wbuf_u32(b, (uint32_t)v);
}

static uint64_t get_u64(struct wire *w)
{
	uint64_t hi = wire_u32(w);
	return hi << 32 | wire_u32(w);
}

static void put_prefix(struct wbuf *b, const struct netprefix *p)
{
	wbuf_u8(b, p->family == AF_INET ? 4 : 6);
	wbuf_u8(b, p->len);
	wbuf_bytes(b, p->addr, 16);
}

static void get_prefix(struct wire *w, struct netprefix *p)
{
	uint8_t fc = wire_u8(w);

	memset(p, 0, sizeof(*p));
	p->len = wire_u8(w);
	wire_bytes(w, p->addr, 16);
	if (fc == 4 && p->len <= 32)
		p->family = AF_INET;
	else if (fc == 6 && p->len <= 128)
		p->family = AF_INET6;
	else
		wire_fail(w, -EBADMSG);
}

static void put_attrs(struct wbuf *b, const struct bgp_adjout_attrs *a)
{
	wbuf_u32(b, a->local_pref);
	wbuf_u32(b, a->med);
	wbuf_u8(b, a->has_med);
	wbuf_u8(b, a->prepend);
	wbuf_u8(b, a->n_communities);
	for (unsigned i = 0; i < a->n_communities; i++)
		wbuf_u32(b, a->communities[i]);
	wbuf_u8(b, a->n_large_communities);
	for (unsigned i = 0; i < a->n_large_communities; i++) {
		wbuf_u32(b, a->large_communities[i].global);
		wbuf_u32(b, a->large_communities[i].local1);
		wbuf_u32(b, a->large_communities[i].local2);
	}
}

static void get_attrs(struct wire *w, struct bgp_adjout_attrs *a)
{
	memset(a, 0, sizeof(*a));
	a->local_pref = wire_u32(w);
	a->med = wire_u32(w);
	a->has_med = wire_u8(w) != 0;
	a->prepend = wire_u8(w);
	a->n_communities = wire_u8(w);
	if (a->prepend > BGP_ADJOUT_MAX_PREPEND || a->n_communities > BGP_ADJOUT_MAX_COMMUNITIES) {
		wire_fail(w, -EBADMSG);
		return;
	}
	for (unsigned i = 0; i < a->n_communities; i++)
		a->communities[i] = wire_u32(w);
	a->n_large_communities = wire_u8(w);
	if (a->n_large_communities > BGP_ADJOUT_MAX_LARGE_COMMUNITIES) {
		wire_fail(w, -EBADMSG);
		return;
	}
	for (unsigned i = 0; i < a->n_large_communities; i++) {
		a->large_communities[i].global = wire_u32(w);
		a->large_communities[i].local1 = wire_u32(w);
		a->large_communities[i].local2 = wire_u32(w);
	}
}

static uint8_t flags_of(const struct bgp_handover_session *s)
{
	const struct bgp_fsm_session *f = &s->fsm;

	return (uint8_t)(s->outgoing << 0 | f->peer_as4 << 1 | f->afi_ipv4 << 2 | f->afi_ipv6 << 3 |
	                 f->route_refresh << 4 | s->eor_v4_owed << 5 | s->eor_v6_owed << 6);
}

static uint8_t ctx_of(const struct bgp_handover_session *s)
{
	return (uint8_t)(s->ctx_as4 << 0 | s->ctx_ext_msg << 1 | s->ctx_addpath_rx[0] << 2 |
	                 s->ctx_addpath_rx[1] << 3);
}

int bgp_handover_encode(const struct bgp_handover_session *s, uint8_t *buf, size_t cap)
{
	struct wbuf b = wbuf_init(buf, cap);
	const struct bgp_fsm_session *f = &s->fsm;

	if (s->rlen > BGP_HANDOVER_RBUF_MAX || s->n_routes > BGP_ADJOUT_MAX_ROUTES ||
	    (s->peer.family != AF_INET && s->peer.family != AF_INET6))
		return -EINVAL;
	wbuf_bytes(&b, "BGS", 3);
	wbuf_u8(&b, BGP_HANDOVER_VERSION);
	wbuf_u32(&b, s->local_as);
	wbuf_u32(&b, s->bgp_id);
	wbuf_u32(&b, s->conf_peer_as);
	wbuf_u8(&b, s->peer.family == AF_INET ? 4 : 6);
	wbuf_bytes(&b, s->peer.addr, 16);
	wbuf_u8(&b, flags_of(s));
	wbuf_u8(&b, ctx_of(s));
	wbuf_u16(&b, f->hold_time);
	wbuf_u32(&b, f->keepalive_ms);
	wbuf_u32(&b, f->peer_bgp_id);
	wbuf_u32(&b, f->peer_as);
	put_u64(&b, f->hold_at);
	put_u64(&b, f->keepalive_at);
	put_u64(&b, f->established_at);
	wbuf_u32(&b, f->flaps);
	put_u64(&b, s->updates_sent);
	put_u64(&b, s->prefixes_announced);
	put_u64(&b, s->prefixes_withdrawn);
	wbuf_u16(&b, (uint16_t)s->rlen);
	wbuf_bytes(&b, s->rbuf, s->rlen);
	wbuf_u16(&b, (uint16_t)s->n_routes);
	for (size_t i = 0; i < s->n_routes; i++) {
		if (s->attrs[i].n_communities > BGP_ADJOUT_MAX_COMMUNITIES ||
		    s->attrs[i].n_large_communities > BGP_ADJOUT_MAX_LARGE_COMMUNITIES ||
		    (s->prefix[i].family != AF_INET && s->prefix[i].family != AF_INET6))
			return -EINVAL;
		put_prefix(&b, &s->prefix[i]);
		put_attrs(&b, &s->attrs[i]);
	}
	return wbuf_result(&b) < 0 ? -EMSGSIZE : (int)b.off;
}

int bgp_handover_decode(const uint8_t *buf, size_t len, struct bgp_handover_session *out)
{
	struct wire w = wire_init(buf, len);
	struct bgp_fsm_session *f = &out->fsm;
	uint8_t magic[3], ver, fc, fl, cx;

	memset(out, 0, sizeof(*out));
	wire_bytes(&w, magic, 3);
	ver = wire_u8(&w);
	if (w.err || memcmp(magic, "BGS", 3) != 0)
		return -EBADMSG;
	if (ver != BGP_HANDOVER_VERSION)
		return -EPROTO;
	out->local_as = wire_u32(&w);
	out->bgp_id = wire_u32(&w);
	out->conf_peer_as = wire_u32(&w);
	fc = wire_u8(&w);
	wire_bytes(&w, out->peer.addr, 16);
	fl = wire_u8(&w);
	cx = wire_u8(&w);
	f->hold_time = wire_u16(&w);
	f->keepalive_ms = wire_u32(&w);
	f->peer_bgp_id = wire_u32(&w);
	f->peer_as = wire_u32(&w);
	f->hold_at = get_u64(&w);
	f->keepalive_at = get_u64(&w);
	f->established_at = get_u64(&w);
	f->flaps = wire_u32(&w);
	out->updates_sent = get_u64(&w);
	out->prefixes_announced = get_u64(&w);
	out->prefixes_withdrawn = get_u64(&w);
	out->rlen = wire_u16(&w);
	if (w.err || (fc != 4 && fc != 6) || (fl & 0x80) || (cx & 0xf0) ||
	    out->rlen > BGP_HANDOVER_RBUF_MAX)
		return -EBADMSG;
	out->peer.family = fc == 4 ? AF_INET : AF_INET6;
	out->outgoing = fl & 1;
	f->peer_as4 = fl & 2;
	f->afi_ipv4 = fl & 4;
	f->afi_ipv6 = fl & 8;
	f->route_refresh = fl & 16;
	out->eor_v4_owed = fl & 32;
	out->eor_v6_owed = fl & 64;
	out->ctx_as4 = cx & 1;
	out->ctx_ext_msg = cx & 2;
	out->ctx_addpath_rx[0] = cx & 4;
	out->ctx_addpath_rx[1] = cx & 8;
	wire_bytes(&w, out->rbuf, out->rlen);
	out->n_routes = wire_u16(&w);
	if (w.err || out->n_routes > BGP_ADJOUT_MAX_ROUTES)
		return -EBADMSG;
	for (size_t i = 0; i < out->n_routes && !w.err; i++) {
		get_prefix(&w, &out->prefix[i]);
		get_attrs(&w, &out->attrs[i]);
	}
	if (w.err || !wire_done(&w))
		return -EBADMSG;
	return 0;
}
