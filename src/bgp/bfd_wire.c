/*
 * bfd_wire.c: the BFD Control packet (RFC 5880 §4.1). See bfd_wire.h.
 */
#include "bgp/bfd_wire.h"

#include <errno.h>
#include <string.h>

#include "core/wire.h"

#define FLAG_P 0x20
#define FLAG_F 0x10
#define FLAG_C 0x08
#define FLAG_A 0x04
#define FLAG_D 0x02
#define FLAG_M 0x01

enum bfd_discard bfd_check(const struct bfd_pkt *p)
{
	/* §6.8.6, in its order; the Length-vs-payload check is bfd_parse's. */
	if (p->version != BFD_VERSION)
		return BFD_DISCARD_VERSION;
	if (p->length < BFD_PKT_LEN || (p->auth && p->length < BFD_PKT_LEN + BFD_AUTH_MIN))
		return BFD_DISCARD_LENGTH;
	if (p->detect_mult == 0)
		return BFD_DISCARD_DETECT_MULT;
	if (p->multipoint)
		return BFD_DISCARD_MULTIPOINT;
	if (p->my_disc == 0)
		return BFD_DISCARD_MY_DISC;
	if (p->your_disc == 0 && p->state != BFD_STATE_DOWN && p->state != BFD_STATE_ADMIN_DOWN)
		return BFD_DISCARD_YOUR_DISC;
	/* "If the A bit is set and no authentication is in use (bfd.AuthType
	 * is zero), the packet MUST be discarded." We never use any. */
	if (p->auth)
		return BFD_DISCARD_AUTH;
	return BFD_OK;
}

/*
 * The authentication section (§4.2-§4.4): Auth Len covers the whole section,
 * which is everything after the mandatory part, and each known type has a
 * fixed size (Simple Password: 3 + a 1..16 octet password).
 */
static enum bfd_discard auth_check(struct wire *w, struct bfd_pkt *p)
{
	size_t left = wire_left(w);

	p->auth_type = wire_u8(w);
	p->auth_len = wire_u8(w);
	if (w->err || p->auth_len != left)
		return BFD_DISCARD_AUTH_LEN;
	switch (p->auth_type) {
	case BFD_AUTH_SIMPLE:
		if (p->auth_len < 4 || p->auth_len > 19)
			return BFD_DISCARD_AUTH_LEN;
		break;
	case BFD_AUTH_KEYED_MD5:
	case BFD_AUTH_METICULOUS_MD5:
		if (p->auth_len != 24)
			return BFD_DISCARD_AUTH_LEN;
		break;
	case BFD_AUTH_KEYED_SHA1:
	case BFD_AUTH_METICULOUS_SHA1:
		if (p->auth_len != 28)
			return BFD_DISCARD_AUTH_LEN;
		break;
	default:
		break; /* reserved or unknown: only the framing can be checked */
	}
	wire_skip(w, left - BFD_AUTH_MIN);
	return w->err ? BFD_DISCARD_AUTH_LEN : BFD_OK;
}

static int fail(enum bfd_discard d, enum bfd_discard *why)
{
	if (why)
		*why = d;
	return d == BFD_DISCARD_AUTH ? -ENOTSUP : -EBADMSG;
}

int bfd_parse(const uint8_t *buf, size_t len, struct bfd_pkt *out, enum bfd_discard *why)
{
	struct wire w = wire_init(buf, len);
	enum bfd_discard d;

	memset(out, 0, sizeof(*out));
	if (why)
		*why = BFD_OK;
	uint8_t vd = wire_u8(&w);
	uint8_t sf = wire_u8(&w);
	out->detect_mult = wire_u8(&w);
	out->length = wire_u8(&w);
	out->my_disc = wire_u32(&w);
	out->your_disc = wire_u32(&w);
	out->desired_min_tx_us = wire_u32(&w);
	out->required_min_rx_us = wire_u32(&w);
	out->required_min_echo_rx_us = wire_u32(&w);
	out->version = vd >> 5;
	out->diag = vd & 0x1f;
	out->state = sf >> 6;
	out->poll = sf & FLAG_P;
	out->final = sf & FLAG_F;
	out->cpi = sf & FLAG_C;
	out->auth = sf & FLAG_A;
	out->demand = sf & FLAG_D;
	out->multipoint = sf & FLAG_M;
	if (w.err)
		return fail(len && out->version != BFD_VERSION ? BFD_DISCARD_VERSION
		                                               : BFD_DISCARD_SHORT,
		            why);
	if (out->version != BFD_VERSION)
		return fail(BFD_DISCARD_VERSION, why);
	if (out->length < BFD_PKT_LEN || (out->auth && out->length < BFD_PKT_LEN + BFD_AUTH_MIN))
		return fail(BFD_DISCARD_LENGTH, why);
	if (out->length > len)
		return fail(BFD_DISCARD_TRUNCATED, why);
	/* The packet is Length octets; the auth section is what follows the
	 * mandatory part within them, and a cursor bounded to Length keeps its
	 * parser inside the packet. Octets beyond the mandatory part without A,
	 * or beyond Length, carry nothing: §6.8.6's list of discards is
	 * exhaustive and names neither, and BIRD and FRR accept both, so they
	 * are not a reason to drop a peer's packet. */
	if (out->auth) {
		struct wire pkt = wire_init(buf, out->length);
		wire_skip(&pkt, BFD_PKT_LEN);
		d = auth_check(&pkt, out);
		if (d != BFD_OK)
			return fail(d, why);
	}
	d = bfd_check(out);
	return d == BFD_OK ? 0 : fail(d, why);
}

int bfd_build(const struct bfd_pkt *p, uint8_t *buf, size_t cap)
{
	struct bfd_pkt q = *p;
	struct wbuf b = wbuf_init(buf, cap);

	q.version = BFD_VERSION;
	q.length = BFD_PKT_LEN;
	if (q.state > BFD_STATE_UP || q.diag > 0x1f || (q.poll && q.final) ||
	    bfd_check(&q) != BFD_OK)
		return -EINVAL;
	wbuf_u8(&b, (uint8_t)(BFD_VERSION << 5 | q.diag));
	wbuf_u8(&b, (uint8_t)(q.state << 6 | (q.poll ? FLAG_P : 0) | (q.final ? FLAG_F : 0) |
	                      (q.cpi ? FLAG_C : 0) | (q.demand ? FLAG_D : 0)));
	wbuf_u8(&b, q.detect_mult);
	wbuf_u8(&b, BFD_PKT_LEN);
	wbuf_u32(&b, q.my_disc);
	wbuf_u32(&b, q.your_disc);
	wbuf_u32(&b, q.desired_min_tx_us);
	wbuf_u32(&b, q.required_min_rx_us);
	wbuf_u32(&b, q.required_min_echo_rx_us);
	return wbuf_result(&b);
}

const char *bfd_state_name(unsigned s)
{
	static const char *const n[] = {"AdminDown", "Down", "Init", "Up"};
	return s < 4 ? n[s] : "?";
}

const char *bfd_diag_name(unsigned d)
{
	static const char *const n[] = {
	    "No Diagnostic",
	    "Control Detection Time Expired",
	    "Echo Function Failed",
	    "Neighbor Signaled Session Down",
	    "Forwarding Plane Reset",
	    "Path Down",
	    "Concatenated Path Down",
	    "Administratively Down",
	    "Reverse Concatenated Path Down",
	};
	return d < sizeof(n) / sizeof(n[0]) ? n[d] : "Reserved";
}

const char *bfd_discard_name(enum bfd_discard d)
{
	switch (d) {
	case BFD_OK:
		return "ok";
	case BFD_DISCARD_SHORT:
		return "shorter than 24 octets";
	case BFD_DISCARD_VERSION:
		return "version not 1";
	case BFD_DISCARD_LENGTH:
		return "bad Length";
	case BFD_DISCARD_TRUNCATED:
		return "Length beyond the payload";
	case BFD_DISCARD_AUTH_LEN:
		return "bad authentication section length";
	case BFD_DISCARD_DETECT_MULT:
		return "Detect Mult 0";
	case BFD_DISCARD_MULTIPOINT:
		return "M bit set";
	case BFD_DISCARD_MY_DISC:
		return "My Discriminator 0";
	case BFD_DISCARD_YOUR_DISC:
		return "Your Discriminator 0 in Init/Up";
	case BFD_DISCARD_AUTH:
		return "authentication not in use";
	case BFD_DISCARD_NO_SESSION:
		return "no such session";
	case BFD_DISCARD_ADMIN_DOWN:
		return "session AdminDown";
	case BFD_DISCARD_TTL:
		return "TTL not 255";
	}
	return "?";
}
