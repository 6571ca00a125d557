/*
 * bgp_capa.c: BGP capabilities (RFC 5492) inside OPEN optional parameters,
 * and the parse context they negotiate.
 */
#include "bgp/bgp_wire.h"

#include <errno.h>
#include <string.h>

/* One capability value; -EBADMSG for an impossible length of a known code. */
static int capa_one(uint8_t code, struct wire *v, struct bgp_caps *c)
{
	size_t len = v->len;
	switch (code) {
	case BGP_CAPA_MP: { /* RFC 4760 §8: AFI(2) reserved(1) SAFI(1) */
		if (len != 4)
			return -EBADMSG;
		uint16_t afi = wire_u16(v);
		wire_skip(v, 1);
		uint8_t fam = bgp_fam_of(afi, wire_u8(v));
		if (fam == BGP_FAM_NONE)
			c->mp_other = true;
		else
			c->mp[fam] = true;
		return 0;
	}
	case BGP_CAPA_ROUTE_REFRESH:
	case BGP_CAPA_ENHANCED_RR:
	case BGP_CAPA_EXT_MSG:
		if (len != 0)
			return -EBADMSG;
		if (code == BGP_CAPA_ROUTE_REFRESH)
			c->route_refresh = true;
		else if (code == BGP_CAPA_ENHANCED_RR)
			c->enhanced_rr = true;
		else
			c->ext_msg = true;
		return 0;
	case BGP_CAPA_EXT_NEXTHOP: /* RFC 8950 §3: 6-byte tuples */
		if (len == 0 || len % 6)
			return -EBADMSG;
		c->ext_nexthop = true;
		return 0;
	case BGP_CAPA_ROLE: /* RFC 9234 §4.1 */
		if (len != 1)
			return -EBADMSG;
		c->role = true;
		c->role_value = wire_u8(v);
		return 0;
	case BGP_CAPA_GR: /* RFC 4724 §3: flags+time, then 4-byte AFI/SAFI entries */
		if (len < 2 || (len - 2) % 4)
			return -EBADMSG;
		c->gr = true;
		c->gr_flags_time = wire_u16(v);
		return 0;
	case BGP_CAPA_AS4: /* RFC 6793 §3 */
		if (len != 4)
			return -EBADMSG;
		c->as4 = true;
		c->as4_asn = wire_u32(v);
		return 0;
	case BGP_CAPA_ADDPATH: /* RFC 7911 §4: AFI(2) SAFI(1) Send/Receive(1) */
		if (len % 4)
			return -EBADMSG;
		while (wire_left(v) >= 4) {
			uint16_t afi = wire_u16(v);
			uint8_t fam = bgp_fam_of(afi, wire_u8(v));
			uint8_t sr = wire_u8(v);
			if (fam != BGP_FAM_NONE)
				c->addpath[fam] = sr & (BGP_ADDPATH_RX | BGP_ADDPATH_TX);
		}
		return 0;
	case BGP_CAPA_LLGR: /* RFC 9494 §4.1: 7-byte entries, possibly none */
		if (len % 7)
			return -EBADMSG;
		c->llgr = true;
		return 0;
	case BGP_CAPA_FQDN: { /* draft-walton-bgp-hostname-capability */
		uint8_t hl = wire_u8(v);
		const uint8_t *h = wire_ptr(v, hl);
		uint8_t dl = wire_u8(v);
		const uint8_t *d = wire_ptr(v, dl);
		if (wire_end(v) != 0)
			return -EBADMSG;
		c->fqdn = true;
		c->host = h;
		c->hostlen = hl;
		c->domain = d;
		c->domainlen = dl;
		return 0;
	}
	default:
		/* RFC 5492 §4: an unknown capability is ignored. */
		c->n_unknown++;
		return 0;
	}
}

int bgp_caps_parse(const uint8_t *p, size_t len, struct bgp_caps *caps)
{
	struct wire w = wire_init(p, len);
	while (wire_left(&w) > 0) {
		uint8_t code = wire_u8(&w);
		uint8_t clen = wire_u8(&w);
		struct wire v = wire_sub(&w, clen);
		if (w.err)
			return -EBADMSG;
		if (caps->n < BGP_CAPS_LIST_MAX) {
			struct bgp_capa *e = &caps->list[caps->n];
			e->code = code;
			e->len = clen;
			e->val = v.p;
		}
		caps->n++;
		if (capa_one(code, &v, caps) != 0)
			return -EBADMSG;
	}
	return 0;
}

int bgp_caps_build(struct wbuf *b, const struct bgp_open_cfg *cfg)
{
	size_t plen_at;
	wbuf_u8(b, 2); /* RFC 5492 §4: Capabilities optional parameter */
	plen_at = wbuf_reserve(b, 1);
	size_t before = b->off;
	for (uint8_t fam = 0; fam < BGP_FAM_COUNT; fam++) {
		if (!cfg->fam[fam])
			continue;
		wbuf_u8(b, BGP_CAPA_MP);
		wbuf_u8(b, 4);
		wbuf_u16(b, bgp_fam_afi(fam));
		wbuf_u8(b, 0);
		wbuf_u8(b, BGP_SAFI_UNICAST);
	}
	if (cfg->route_refresh) {
		wbuf_u8(b, BGP_CAPA_ROUTE_REFRESH);
		wbuf_u8(b, 0);
	}
	if (cfg->as4) {
		wbuf_u8(b, BGP_CAPA_AS4);
		wbuf_u8(b, 4);
		wbuf_u32(b, cfg->asn);
	}
	if (b->err)
		return b->err;
	wbuf_put_u8_at(b, plen_at, (uint8_t)(b->off - before));
	return 0;
}

void bgp_ctx_negotiate(const struct bgp_caps *ours, const struct bgp_caps *theirs,
                       struct bgp_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->as4 = ours->as4 && theirs->as4;
	ctx->ext_msg = ours->ext_msg && theirs->ext_msg;
	/* RFC 7911 §4: we receive path ids when we said receive and they said send. */
	for (int f = 0; f < BGP_FAM_COUNT; f++)
		ctx->addpath_rx[f] =
		    (ours->addpath[f] & BGP_ADDPATH_RX) && (theirs->addpath[f] & BGP_ADDPATH_TX);
}
