/*
 * bgp_wire.c: BGP-4 message header, OPEN, NOTIFICATION, KEEPALIVE and
 * ROUTE-REFRESH. See bgp_wire.h for ownership and error conventions.
 */
#include "bgp/bgp_wire.h"

#include <errno.h>
#include <string.h>

static int fail(struct bgp_notify *err, uint8_t code, uint8_t subcode, const void *data,
                size_t datalen)
{
	if (err) {
		err->code = code;
		err->subcode = subcode;
		if (datalen > sizeof(err->data))
			datalen = sizeof(err->data);
		if (datalen)
			memcpy(err->data, data, datalen);
		err->datalen = datalen;
	}
	return -EBADMSG;
}

static void notify_clear(struct bgp_notify *err)
{
	if (err) {
		err->code = 0;
		err->subcode = 0;
		err->datalen = 0;
	}
}

uint8_t bgp_fam_of(uint16_t afi, uint8_t safi)
{
	if (safi != BGP_SAFI_UNICAST)
		return BGP_FAM_NONE;
	if (afi == BGP_AFI_IPV4)
		return BGP_FAM_IPV4;
	if (afi == BGP_AFI_IPV6)
		return BGP_FAM_IPV6;
	return BGP_FAM_NONE;
}

uint16_t bgp_fam_afi(uint8_t fam)
{
	return fam == BGP_FAM_IPV6 ? BGP_AFI_IPV6 : BGP_AFI_IPV4;
}

/* ---- header ---- */

int bgp_frame(const uint8_t *buf, size_t len, const struct bgp_ctx *ctx, struct bgp_hdr *hdr,
              struct bgp_notify *err)
{
	notify_clear(err);
	if (len < BGP_HDR_LEN)
		return 0;
	/* The header is checked before its length is trusted. */
	int r = bgp_hdr_parse(buf, len, ctx, hdr, err);
	if (r < 0)
		return r;
	return len < hdr->len ? 0 : (int)hdr->len;
}

int bgp_hdr_parse(const uint8_t *buf, size_t len, const struct bgp_ctx *ctx, struct bgp_hdr *hdr,
                  struct bgp_notify *err)
{
	notify_clear(err);
	if (len < BGP_HDR_LEN)
		return -EBADMSG; /* incomplete: a framing matter, nothing to send */
	struct wire w = wire_init(buf, len);
	const uint8_t *marker = wire_ptr(&w, BGP_MARKER_LEN);
	uint16_t mlen = wire_u16(&w);
	uint8_t type = wire_u8(&w);
	for (size_t i = 0; i < BGP_MARKER_LEN; i++)
		if (marker[i] != 0xff)
			return fail(err, BGP_ERR_HEADER, BGP_HDR_NOT_SYNC, NULL, 0);

	uint8_t lenbuf[2] = {(uint8_t)(mlen >> 8), (uint8_t)mlen};
	/* RFC 8654 §4: OPEN and KEEPALIVE stay within 4096 even when negotiated. */
	size_t max = BGP_MAX_LEN;
	if (ctx && ctx->ext_msg && type != BGP_MSG_OPEN && type != BGP_MSG_KEEPALIVE)
		max = BGP_EXT_MAX_LEN;
	if (mlen < BGP_HDR_LEN || mlen > max)
		return fail(err, BGP_ERR_HEADER, BGP_HDR_BAD_LEN, lenbuf, 2);

	bool badlen;
	switch (type) {
	case BGP_MSG_OPEN:
		badlen = mlen < BGP_OPEN_MIN_LEN;
		break;
	case BGP_MSG_UPDATE:
		badlen = mlen < BGP_UPDATE_MIN_LEN;
		break;
	case BGP_MSG_NOTIFICATION:
		badlen = mlen < BGP_NOTIFICATION_MIN_LEN;
		break;
	case BGP_MSG_KEEPALIVE:
		badlen = mlen != BGP_HDR_LEN;
		break;
	case BGP_MSG_ROUTE_REFRESH:
		/* We negotiate no ORF (RFC 5291), so the message is exactly 23 bytes. */
		badlen = mlen != BGP_ROUTE_REFRESH_LEN;
		break;
	default:
		return fail(err, BGP_ERR_HEADER, BGP_HDR_BAD_TYPE, &type, 1);
	}
	if (badlen)
		return fail(err, BGP_ERR_HEADER, BGP_HDR_BAD_LEN, lenbuf, 2);
	hdr->len = mlen;
	hdr->type = type;
	return 0;
}

size_t bgp_msg_begin(struct wbuf *b, uint8_t type)
{
	size_t start = b->off;
	for (int i = 0; i < BGP_MARKER_LEN; i++)
		wbuf_u8(b, 0xff);
	wbuf_reserve(b, 2);
	wbuf_u8(b, type);
	return b->err ? SIZE_MAX : start;
}

int bgp_msg_end(struct wbuf *b, size_t start, size_t max_len)
{
	if (b->err || start == SIZE_MAX)
		return -EMSGSIZE;
	size_t mlen = b->off - start;
	if (mlen > max_len) {
		b->err = -EMSGSIZE;
		return -EMSGSIZE;
	}
	wbuf_put_u16_at(b, start + BGP_MARKER_LEN, (uint16_t)mlen);
	return (int)mlen;
}

/* ---- OPEN ---- */

int bgp_open_parse(const uint8_t *body, size_t len, struct bgp_open *o, struct bgp_notify *err)
{
	notify_clear(err);
	memset(o, 0, sizeof(*o));
	struct wire w = wire_init(body, len);
	o->version = wire_u8(&w);
	o->my_as = wire_u16(&w);
	o->hold = wire_u16(&w);
	o->bgp_id = wire_u32(&w);
	size_t optlen = wire_u8(&w);
	if (w.err)
		return fail(err, BGP_ERR_OPEN, 0, NULL, 0);

	/* RFC 4271 §6.2: data is the largest version we support, 2 octets. */
	if (o->version != BGP_VERSION) {
		static const uint8_t ver[2] = {0, BGP_VERSION};
		return fail(err, BGP_ERR_OPEN, BGP_OPEN_UNSUP_VERSION, ver, 2);
	}

	/* RFC 9072 §2: 255 followed by a type-255 parameter means 2-byte lengths. */
	bool ext = false;
	if (optlen == 255 && wire_left(&w) >= 1 && w.p[w.off] == 255) {
		ext = true;
		wire_skip(&w, 1);
		optlen = wire_u16(&w);
	}
	struct wire params = wire_sub(&w, optlen);
	if (wire_end(&w) != 0 || params.err)
		return fail(err, BGP_ERR_OPEN, 0, NULL, 0);
	o->ext_params = ext;

	while (wire_left(&params) > 0) {
		uint8_t ptype = wire_u8(&params);
		size_t plen = ext ? wire_u16(&params) : wire_u8(&params);
		struct wire pv = wire_sub(&params, plen);
		if (params.err)
			return fail(err, BGP_ERR_OPEN, 0, NULL, 0);
		o->n_params++;
		/* RFC 5492 §4 obsoletes type 1 (authentication); only capabilities remain. */
		if (ptype != 2)
			return fail(err, BGP_ERR_OPEN, BGP_OPEN_UNSUP_PARAM, NULL, 0);
		if (bgp_caps_parse(pv.p, pv.len, &o->caps) != 0)
			return fail(err, BGP_ERR_OPEN, 0, NULL, 0);
	}

	o->asn = o->caps.as4 ? o->caps.as4_asn : o->my_as;
	/* RFC 7607 §2: AS 0 in my-AS or in the 4-octet capability is Bad Peer AS. */
	if (o->my_as == 0 || o->asn == 0)
		return fail(err, BGP_ERR_OPEN, BGP_OPEN_BAD_PEER_AS, NULL, 0);
	/* RFC 6286 §2.2: any non-zero identifier is acceptable. */
	if (o->bgp_id == 0)
		return fail(err, BGP_ERR_OPEN, BGP_OPEN_BAD_ID, NULL, 0);
	/* RFC 4271 §6.2: hold time 1 or 2 seconds MUST be rejected. */
	if (o->hold == 1 || o->hold == 2)
		return fail(err, BGP_ERR_OPEN, BGP_OPEN_BAD_HOLD, NULL, 0);
	return 0;
}

int bgp_open_check_as(const struct bgp_open *o, uint32_t expected_asn, struct bgp_notify *err)
{
	notify_clear(err);
	if (expected_asn == 0 || o->asn == expected_asn)
		return 0;
	return fail(err, BGP_ERR_OPEN, BGP_OPEN_BAD_PEER_AS, NULL, 0);
}

int bgp_open_build(struct wbuf *b, const struct bgp_open_cfg *cfg)
{
	if (cfg->asn == 0 || (cfg->asn > 65535 && !cfg->as4) || cfg->bgp_id == 0)
		return -EINVAL;
	size_t start = bgp_msg_begin(b, BGP_MSG_OPEN);
	wbuf_u8(b, BGP_VERSION);
	wbuf_u16(b, cfg->asn > 65535 ? BGP_AS_TRANS : (uint16_t)cfg->asn);
	wbuf_u16(b, cfg->hold);
	wbuf_u32(b, cfg->bgp_id);
	size_t optlen_at = wbuf_reserve(b, 1);
	size_t before = b->off;
	int rc = bgp_caps_build(b, cfg);
	if (rc < 0)
		return rc;
	wbuf_put_u8_at(b, optlen_at, (uint8_t)(b->off - before));
	return bgp_msg_end(b, start, BGP_MAX_LEN);
}

/* ---- NOTIFICATION ---- */

bool bgp_utf8_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = p[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		static const uint32_t minv[4] = {0, 0x80, 0x800, 0x10000};
		if (cp < minv[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

size_t bgp_shutdown_text_escape(const uint8_t *p, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	bool utf8 = bgp_utf8_valid(p, len);
	size_t o = 0;

	if (outlen == 0)
		return 0;
	for (size_t i = 0; i < len;) {
		uint8_t c = p[i];
		size_t n = 1; /* octets of this character */
		bool esc = c < 0x20 || c == 0x7f || c == '\\' || c == '"' || (!utf8 && c >= 0x80);
		if (utf8 && c >= 0x80) {
			n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
			/* U+0080..U+009F, the C1 controls: 0xc2 0x80..0x9f. */
			esc = c == 0xc2 && p[i + 1] < 0xa0;
		}
		size_t need = esc ? 4 * n : n;
		if (o + need + 1 > outlen)
			break;
		for (size_t k = 0; k < n; k++) {
			if (esc) {
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[p[i + k] >> 4];
				out[o++] = hex[p[i + k] & 15];
			} else {
				out[o++] = (char)p[i + k];
			}
		}
		i += n;
	}
	out[o] = '\0';
	return o;
}

int bgp_notification_parse(const uint8_t *body, size_t len, struct bgp_notification *n)
{
	memset(n, 0, sizeof(*n));
	struct wire w = wire_init(body, len);
	n->code = wire_u8(&w);
	n->subcode = wire_u8(&w);
	if (w.err)
		return -EBADMSG;
	n->datalen = wire_left(&w);
	n->data = wire_ptr(&w, n->datalen);
	/*
	 * RFC 9003 §2: for Administrative Shutdown/Reset the data is a length
	 * octet then that many octets of UTF-8. A length that overruns the data is
	 * malformed: report no text rather than guess.
	 */
	if (n->code == BGP_ERR_CEASE &&
	    (n->subcode == BGP_CEASE_ADMIN_SHUTDOWN || n->subcode == BGP_CEASE_ADMIN_RESET) &&
	    n->datalen >= 1) {
		size_t tl = n->data[0];
		if (tl + 1 <= n->datalen) {
			n->has_shutdown = true;
			n->shutdown = n->data + 1;
			n->shutdown_len = tl;
			n->shutdown_utf8 = bgp_utf8_valid(n->shutdown, tl);
		}
	}
	return 0;
}

int bgp_notification_build(struct wbuf *b, uint8_t code, uint8_t subcode, const void *data,
                           size_t datalen)
{
	if (datalen > BGP_NOTIFY_DATA_MAX)
		datalen = BGP_NOTIFY_DATA_MAX;
	size_t start = bgp_msg_begin(b, BGP_MSG_NOTIFICATION);
	wbuf_u8(b, code);
	wbuf_u8(b, subcode);
	wbuf_bytes(b, data, datalen);
	return bgp_msg_end(b, start, BGP_MAX_LEN);
}

int bgp_notify_build(struct wbuf *b, const struct bgp_notify *n)
{
	return bgp_notification_build(b, n->code, n->subcode, n->data, n->datalen);
}

int bgp_notification_build_shutdown(struct wbuf *b, uint8_t subcode, const char *text,
                                    size_t textlen)
{
	if (textlen > BGP_SHUTDOWN_MAX)
		return -EINVAL;
	size_t start = bgp_msg_begin(b, BGP_MSG_NOTIFICATION);
	wbuf_u8(b, BGP_ERR_CEASE);
	wbuf_u8(b, subcode);
	wbuf_u8(b, (uint8_t)textlen);
	wbuf_bytes(b, text, textlen);
	return bgp_msg_end(b, start, BGP_MAX_LEN);
}

/* ---- KEEPALIVE, ROUTE-REFRESH ---- */

int bgp_keepalive_build(struct wbuf *b)
{
	size_t start = bgp_msg_begin(b, BGP_MSG_KEEPALIVE);
	return bgp_msg_end(b, start, BGP_MAX_LEN);
}

int bgp_route_refresh_parse(const uint8_t *body, size_t len, struct bgp_route_refresh *rr,
                            struct bgp_notify *err)
{
	notify_clear(err);
	struct wire w = wire_init(body, len);
	rr->afi = wire_u16(&w);
	rr->subtype = wire_u8(&w);
	rr->safi = wire_u8(&w);
	if (wire_end(&w) != 0) {
		/* RFC 7313 §5: ROUTE-REFRESH Message Error / Invalid Message Length. */
		return fail(err, BGP_ERR_ROUTE_REFRESH, 1, body, len);
	}
	return 0;
}

int bgp_route_refresh_build(struct wbuf *b, uint16_t afi, uint8_t safi, uint8_t subtype)
{
	size_t start = bgp_msg_begin(b, BGP_MSG_ROUTE_REFRESH);
	wbuf_u16(b, afi);
	wbuf_u8(b, subtype);
	wbuf_u8(b, safi);
	return bgp_msg_end(b, start, BGP_MAX_LEN);
}

/* ---- whole message ---- */

int bgp_msg_parse(const uint8_t *buf, size_t len, const struct bgp_ctx *ctx, struct bgp_msg *m,
                  struct bgp_notify *err)
{
	int rc = bgp_hdr_parse(buf, len, ctx, &m->hdr, err);
	if (rc < 0)
		return rc;
	if (m->hdr.len != len) {
		uint8_t lenbuf[2] = {buf[16], buf[17]};
		return fail(err, BGP_ERR_HEADER, BGP_HDR_BAD_LEN, lenbuf, 2);
	}
	m->body = buf + BGP_HDR_LEN;
	m->bodylen = len - BGP_HDR_LEN;
	switch (m->hdr.type) {
	case BGP_MSG_OPEN:
		return bgp_open_parse(m->body, m->bodylen, &m->u.open, err);
	case BGP_MSG_UPDATE:
		return bgp_update_parse(m->body, m->bodylen, ctx, &m->u.update, err);
	case BGP_MSG_NOTIFICATION:
		return bgp_notification_parse(m->body, m->bodylen, &m->u.notification);
	case BGP_MSG_ROUTE_REFRESH:
		return bgp_route_refresh_parse(m->body, m->bodylen, &m->u.rr, err);
	default:
		return 0; /* KEEPALIVE: the header check said everything */
	}
}
