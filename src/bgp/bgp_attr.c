/*
 * bgp_attr.c: UPDATE messages (RFC 4271 §4.3) with path attributes, their
 * validation per RFC 7606, multiprotocol NLRI (RFC 4760, 8950), ADD-PATH path
 * ids (RFC 7911), 4-octet AS (RFC 6793), and the packed UPDATE builder for
 * the routes we originate.
 */
#include "bgp/bgp_wire.h"

#include <errno.h>
#include <string.h>

static uint8_t fam_bits(uint8_t fam)
{
	return fam == BGP_FAM_IPV6 ? 128 : 32;
}

/* ---- prefixes ---- */

/* Checks a run of prefixes; counts them. Every length is capped by the family. */
static int nlri_check(const uint8_t *p, size_t len, uint8_t fam, bool addpath, size_t *count)
{
	struct wire w = wire_init(p, len);
	size_t n = 0;
	while (wire_left(&w) > 0) {
		if (addpath)
			wire_skip(&w, 4);
		uint8_t plen = wire_u8(&w);
		if (w.err || plen > fam_bits(fam))
			return -EBADMSG;
		wire_skip(&w, (plen + 7u) / 8u);
		if (w.err)
			return -EBADMSG;
		n++;
	}
	*count = n;
	return 0;
}

static void nlri_set(struct bgp_nlri *n, const uint8_t *p, size_t len, uint8_t fam, bool addpath)
{
	n->p = p;
	n->len = len;
	n->fam = fam;
	n->addpath = addpath;
	n->count = 0;
}

void bgp_nlri_iter_init(struct bgp_nlri_iter *it, const struct bgp_nlri *n)
{
	it->w = wire_init(n->p, n->fam == BGP_FAM_NONE || !n->p ? 0 : n->len);
	it->fam = n->fam;
	it->addpath = n->addpath;
}

bool bgp_nlri_next(struct bgp_nlri_iter *it, struct bgp_prefix *out)
{
	if (wire_left(&it->w) == 0)
		return false;
	memset(out, 0, sizeof(*out));
	out->fam = it->fam;
	if (it->addpath)
		out->path_id = wire_u32(&it->w);
	out->len = wire_u8(&it->w);
	if (it->w.err || out->len > fam_bits(it->fam)) {
		wire_fail(&it->w, -EBADMSG);
		return false;
	}
	size_t nb = (out->len + 7u) / 8u;
	wire_bytes(&it->w, out->addr, nb);
	if (it->w.err)
		return false;
	if (out->len % 8)
		out->addr[nb - 1] &= (uint8_t)(0xff << (8 - out->len % 8));
	return true;
}

/* ---- AS paths ---- */

static int as_path_check(const uint8_t *p, size_t len, bool as4, bool allow_confed)
{
	struct wire w = wire_init(p, len);
	size_t width = as4 ? 4 : 2;
	while (wire_left(&w) > 0) {
		uint8_t type = wire_u8(&w);
		uint8_t n = wire_u8(&w);
		if (w.err || type < BGP_AS_SET || type > BGP_AS_CONFED_SET || n == 0)
			return -EBADMSG;
		if (!allow_confed && type >= BGP_AS_CONFED_SEQUENCE)
			return -EBADMSG;
		wire_skip(&w, (size_t)n * width);
		if (w.err)
			return -EBADMSG;
	}
	return 0;
}

size_t bgp_as_path_count(const uint8_t *p, size_t len, bool as4)
{
	struct wire w = wire_init(p, len);
	size_t width = as4 ? 4 : 2, total = 0;
	while (wire_left(&w) > 0) {
		wire_u8(&w);
		uint8_t n = wire_u8(&w);
		wire_skip(&w, (size_t)n * width);
		if (w.err)
			break;
		total += n;
	}
	return total;
}

uint32_t bgp_as_path_at(const uint8_t *p, size_t len, bool as4, size_t i)
{
	struct wire w = wire_init(p, len);
	size_t width = as4 ? 4 : 2;
	while (wire_left(&w) > 0) {
		wire_u8(&w);
		uint8_t n = wire_u8(&w);
		if (i < n) {
			wire_skip(&w, i * width);
			return as4 ? wire_u32(&w) : wire_u16(&w);
		}
		i -= n;
		wire_skip(&w, (size_t)n * width);
	}
	return 0;
}

/* ---- UPDATE parsing ---- */

struct upd_state {
	const struct bgp_ctx *ctx;
	struct bgp_update *u;
	struct bgp_notify *err;
	enum bgp_upd_action action;
	uint32_t occurred[8]; /* codes met so far, for RFC 7606 §3 (g) */
};

/* Keeps the most severe outcome; the first error at that severity names it. */
static void verdict(struct upd_state *s, enum bgp_upd_action a, uint8_t subcode,
                    const uint8_t *data, size_t datalen)
{
	if (a <= s->action)
		return;
	s->action = a;
	if (!s->err)
		return;
	s->err->code = BGP_ERR_UPDATE;
	s->err->subcode = subcode;
	if (datalen > sizeof(s->err->data))
		datalen = sizeof(s->err->data);
	if (datalen)
		memcpy(s->err->data, data, datalen);
	s->err->datalen = datalen;
}

static void seen_set(struct bgp_update *u, uint8_t code)
{
	u->seen[code / 32] |= 1u << (code % 32);
}

static void seen_clear(struct bgp_update *u, uint8_t code)
{
	u->seen[code / 32] &= ~(1u << (code % 32));
}

bool bgp_update_has(const struct bgp_update *u, uint8_t code)
{
	return u->seen[code / 32] & (1u << (code % 32));
}

/* Expected Optional/Transitive bits (RFC 4271 §5, RFC 4760, 4456, 4360, 6793, 8092, 9234). */
static bool known_attr(uint8_t code, uint8_t *want, enum bgp_upd_action *on_error)
{
	const uint8_t WK = BGP_ATTR_F_TRANSITIVE, OT = BGP_ATTR_F_OPTIONAL | BGP_ATTR_F_TRANSITIVE,
	              ON = BGP_ATTR_F_OPTIONAL;
	/* RFC 7606 §7: the approach for each attribute's malformations. */
	switch (code) {
	case BGP_ATTR_ORIGIN:
	case BGP_ATTR_AS_PATH:
	case BGP_ATTR_NEXT_HOP:
	case BGP_ATTR_LOCAL_PREF:
		*want = WK;
		*on_error = BGP_UPD_TREAT_AS_WITHDRAW;
		return true;
	case BGP_ATTR_ATOMIC_AGGREGATE:
		*want = WK;
		*on_error = BGP_UPD_ATTR_DISCARD;
		return true;
	case BGP_ATTR_MED:
	case BGP_ATTR_ORIGINATOR_ID:
	case BGP_ATTR_CLUSTER_LIST:
		*want = ON;
		*on_error = BGP_UPD_TREAT_AS_WITHDRAW;
		return true;
	case BGP_ATTR_MP_REACH:
	case BGP_ATTR_MP_UNREACH:
		*want = ON;
		*on_error = BGP_UPD_SESSION_RESET;
		return true;
	case BGP_ATTR_AGGREGATOR:
	case BGP_ATTR_AS4_PATH:
	case BGP_ATTR_AS4_AGGREGATOR:
		*want = OT;
		*on_error = BGP_UPD_ATTR_DISCARD;
		return true;
	case BGP_ATTR_COMMUNITIES:
	case BGP_ATTR_EXT_COMMUNITIES:
	case BGP_ATTR_LARGE_COMMUNITY:
	case BGP_ATTR_OTC:
		*want = OT;
		*on_error = BGP_UPD_TREAT_AS_WITHDRAW;
		return true;
	default:
		return false;
	}
}

/* MP_REACH_NLRI (RFC 4760 §3); 0 or -EBADMSG (RFC 7606 §7.11: session reset). */
static int mp_reach(struct upd_state *s, const uint8_t *val, size_t len)
{
	struct bgp_update *u = s->u;
	struct wire v = wire_init(val, len);
	u->mp_reach_afi = wire_u16(&v);
	u->mp_reach_safi = wire_u8(&v);
	u->mp_nexthop_len = wire_u8(&v);
	u->mp_nexthop = wire_ptr(&v, u->mp_nexthop_len);
	wire_skip(&v, 1); /* reserved (was SNPA count) */
	if (v.err)
		return -EBADMSG;
	uint8_t fam = bgp_fam_of(u->mp_reach_afi, u->mp_reach_safi);
	bool ap = fam != BGP_FAM_NONE && s->ctx && s->ctx->addpath_rx[fam];
	nlri_set(&u->mp_reach, v.p + v.off, wire_left(&v), fam, ap);
	u->has_mp_reach = true;
	if (fam == BGP_FAM_NONE)
		return 0; /* not negotiated by us: kept as bytes, never interpreted */
	uint8_t nl = u->mp_nexthop_len;
	/* RFC 2545 §3 (16/32), RFC 8950 §3 (IPv6 next hop for IPv4 NLRI). */
	if (fam == BGP_FAM_IPV6 ? (nl != 16 && nl != 32) : (nl != 4 && nl != 16 && nl != 32))
		return -EBADMSG;
	return nlri_check(u->mp_reach.p, u->mp_reach.len, fam, ap, &u->mp_reach.count);
}

static int mp_unreach(struct upd_state *s, const uint8_t *val, size_t len)
{
	struct bgp_update *u = s->u;
	struct wire v = wire_init(val, len);
	u->mp_unreach_afi = wire_u16(&v);
	u->mp_unreach_safi = wire_u8(&v);
	if (v.err)
		return -EBADMSG;
	uint8_t fam = bgp_fam_of(u->mp_unreach_afi, u->mp_unreach_safi);
	bool ap = fam != BGP_FAM_NONE && s->ctx && s->ctx->addpath_rx[fam];
	nlri_set(&u->mp_unreach, v.p + v.off, wire_left(&v), fam, ap);
	u->has_mp_unreach = true;
	if (fam == BGP_FAM_NONE)
		return 0;
	return nlri_check(u->mp_unreach.p, u->mp_unreach.len, fam, ap, &u->mp_unreach.count);
}

/*
 * One attribute whose flags already passed. Returns the action its content
 * calls for and sets *sub to the subcode naming the problem.
 */
static enum bgp_upd_action attr_value(struct upd_state *s, uint8_t code, const uint8_t *val,
                                      size_t len, enum bgp_upd_action bad, uint8_t *sub)
{
	struct bgp_update *u = s->u;
	bool as4 = s->ctx && s->ctx->as4;
	struct wire v = wire_init(val, len);
	*sub = BGP_UPD_ATTR_LEN;
	switch (code) {
	case BGP_ATTR_ORIGIN:
		if (len != 1)
			return bad;
		u->origin = wire_u8(&v);
		if (u->origin > BGP_ORIGIN_INCOMPLETE) {
			*sub = BGP_UPD_INVALID_ORIGIN;
			return bad;
		}
		return BGP_UPD_OK;
	case BGP_ATTR_AS_PATH:
		if (as_path_check(val, len, as4, true) != 0) {
			*sub = BGP_UPD_MALFORMED_AS_PATH;
			return bad;
		}
		u->as_path = val;
		u->as_path_len = len;
		u->as_path_as4 = as4;
		return BGP_UPD_OK;
	case BGP_ATTR_NEXT_HOP:
		if (len != 4)
			return bad;
		wire_bytes(&v, u->next_hop, 4);
		return BGP_UPD_OK;
	case BGP_ATTR_MED:
	case BGP_ATTR_LOCAL_PREF:
	case BGP_ATTR_ORIGINATOR_ID:
	case BGP_ATTR_OTC:
		if (len != 4)
			return bad;
		uint32_t x = wire_u32(&v);
		if (code == BGP_ATTR_MED)
			u->med = x;
		else if (code == BGP_ATTR_LOCAL_PREF)
			u->local_pref = x;
		else if (code == BGP_ATTR_ORIGINATOR_ID)
			u->originator_id = x;
		else
			u->otc = x;
		return BGP_UPD_OK;
	case BGP_ATTR_ATOMIC_AGGREGATE:
		if (len != 0)
			return bad;
		u->atomic_aggregate = true;
		return BGP_UPD_OK;
	case BGP_ATTR_AGGREGATOR:
		/* RFC 6793 §4: the ASN width follows the session. */
		if (len != (as4 ? 8u : 6u))
			return bad;
		u->aggregator_as = as4 ? wire_u32(&v) : wire_u16(&v);
		u->aggregator_id = wire_u32(&v);
		return BGP_UPD_OK;
	case BGP_ATTR_AS4_AGGREGATOR:
		if (len != 8)
			return bad;
		u->as4_aggregator_as = wire_u32(&v);
		u->as4_aggregator_id = wire_u32(&v);
		return BGP_UPD_OK;
	case BGP_ATTR_AS4_PATH:
		/* RFC 6793 §6: malformed (or confederation segments) → discard. */
		if (len == 0 || as_path_check(val, len, true, false) != 0) {
			*sub = BGP_UPD_OPTIONAL_ATTR;
			return bad;
		}
		u->as4_path = val;
		u->as4_path_len = len;
		return BGP_UPD_OK;
	case BGP_ATTR_COMMUNITIES:
	case BGP_ATTR_CLUSTER_LIST:
		if (len == 0 || len % 4)
			return bad;
		if (code == BGP_ATTR_COMMUNITIES) {
			u->communities = val;
			u->n_communities = len / 4;
		} else {
			u->cluster_list = val;
			u->n_cluster_list = len / 4;
		}
		return BGP_UPD_OK;
	case BGP_ATTR_EXT_COMMUNITIES:
		if (len == 0 || len % 8)
			return bad;
		u->ext_communities = val;
		u->n_ext_communities = len / 8;
		return BGP_UPD_OK;
	case BGP_ATTR_LARGE_COMMUNITY:
		if (len == 0 || len % 12)
			return bad;
		u->large_communities = val;
		u->n_large_communities = len / 12;
		return BGP_UPD_OK;
	case BGP_ATTR_MP_REACH:
		*sub = BGP_UPD_OPTIONAL_ATTR;
		return mp_reach(s, val, len) == 0 ? BGP_UPD_OK : bad;
	case BGP_ATTR_MP_UNREACH:
		*sub = BGP_UPD_OPTIONAL_ATTR;
		return mp_unreach(s, val, len) == 0 ? BGP_UPD_OK : bad;
	default:
		return BGP_UPD_OK;
	}
}

/* Forgets what a discarded attribute set. */
static void attr_forget(struct bgp_update *u, uint8_t code)
{
	seen_clear(u, code);
	switch (code) {
	case BGP_ATTR_ATOMIC_AGGREGATE:
		u->atomic_aggregate = false;
		break;
	case BGP_ATTR_AGGREGATOR:
		u->aggregator_as = u->aggregator_id = 0;
		break;
	case BGP_ATTR_AS4_AGGREGATOR:
		u->as4_aggregator_as = u->as4_aggregator_id = 0;
		break;
	case BGP_ATTR_AS4_PATH:
		u->as4_path = NULL;
		u->as4_path_len = 0;
		break;
	default:
		break;
	}
}

/* Returns false when the attribute list cannot be walked further (RFC 7606 §4). */
static bool one_attr(struct upd_state *s, struct wire *a)
{
	struct bgp_update *u = s->u;
	size_t start = a->off;
	if (wire_left(a) < 3)
		return false;
	uint8_t flags = wire_u8(a);
	uint8_t code = wire_u8(a);
	size_t len = (flags & BGP_ATTR_F_EXTLEN) ? wire_u16(a) : wire_u8(a);
	const uint8_t *val = wire_ptr(a, len);
	if (a->err)
		return false;
	const uint8_t *raw = a->p + start;
	size_t rawlen = a->off - start;

	uint32_t bit = 1u << (code % 32);
	if (s->occurred[code / 32] & bit) {
		/* RFC 7606 §3 (g): a repeated MP attribute resets; others keep the first. */
		if (code == BGP_ATTR_MP_REACH || code == BGP_ATTR_MP_UNREACH)
			verdict(s, BGP_UPD_SESSION_RESET, BGP_UPD_MALFORMED_ATTR_LIST, NULL, 0);
		return true;
	}
	s->occurred[code / 32] |= bit;

	uint8_t want;
	enum bgp_upd_action bad;
	if (!known_attr(code, &want, &bad)) {
		/* RFC 4271 §6.3: an unrecognized well-known attribute. */
		if (!(flags & BGP_ATTR_F_OPTIONAL)) {
			verdict(s, BGP_UPD_SESSION_RESET, BGP_UPD_UNRECOGNIZED_WELLKNOWN, raw,
			        rawlen);
			return true;
		}
		u->n_unknown++;
		seen_set(u, code);
		goto keep;
	}

	/* RFC 7606 §3 (c): wrong O/T bits, or Partial where it must be 0, is malformed. */
	bool partial_ok = (want & BGP_ATTR_F_OPTIONAL) && (want & BGP_ATTR_F_TRANSITIVE);
	if ((flags & (BGP_ATTR_F_OPTIONAL | BGP_ATTR_F_TRANSITIVE)) != want ||
	    (!partial_ok && (flags & BGP_ATTR_F_PARTIAL))) {
		verdict(s, bad, BGP_UPD_ATTR_FLAGS, raw, rawlen);
		if (bad == BGP_UPD_ATTR_DISCARD)
			return true;
		seen_set(u, code); /* present, if unusable: not "missing" */
		return true;
	}

	seen_set(u, code);
	uint8_t sub;
	enum bgp_upd_action act = attr_value(s, code, val, len, bad, &sub);
	if (act != BGP_UPD_OK) {
		verdict(s, act, sub, raw, rawlen);
		if (act == BGP_UPD_ATTR_DISCARD) {
			attr_forget(u, code);
			return true;
		}
	}
	/* RFC 6793 §6: between two 4-octet speakers AS4_PATH/AS4_AGGREGATOR are ignored. */
	if ((code == BGP_ATTR_AS4_PATH || code == BGP_ATTR_AS4_AGGREGATOR) && s->ctx &&
	    s->ctx->as4) {
		attr_forget(u, code);
		return true;
	}
keep:
	if (u->n_attrs < BGP_UPD_ATTRS_MAX) {
		struct bgp_attr_view *e = &u->attrs[u->n_attrs++];
		e->flags = flags;
		e->code = code;
		e->len = (uint16_t)len;
		e->val = val;
	}
	return true;
}

int bgp_update_parse(const uint8_t *body, size_t len, const struct bgp_ctx *ctx,
                     struct bgp_update *u, struct bgp_notify *err)
{
	memset(u, 0, sizeof(*u));
	if (err) {
		err->code = err->subcode = 0;
		err->datalen = 0;
	}
	struct upd_state s = {.ctx = ctx, .u = u, .err = err, .action = BGP_UPD_OK};
	bool ap4 = ctx && ctx->addpath_rx[BGP_FAM_IPV4];
	u->mp_reach.fam = u->mp_unreach.fam = BGP_FAM_NONE;

	/* RFC 4271 §6.3: lengths that overrun the message are a malformed list. */
	struct wire w = wire_init(body, len);
	uint16_t wlen = wire_u16(&w);
	struct wire wd = wire_sub(&w, wlen);
	uint16_t alen = wire_u16(&w);
	struct wire attrs = wire_sub(&w, alen);
	if (w.err) {
		verdict(&s, BGP_UPD_SESSION_RESET, BGP_UPD_MALFORMED_ATTR_LIST, NULL, 0);
		goto out;
	}
	nlri_set(&u->withdrawn, wd.p, wd.len, BGP_FAM_IPV4, ap4);
	nlri_set(&u->nlri, w.p + w.off, wire_left(&w), BGP_FAM_IPV4, ap4);
	/* RFC 7606 §5.3: prefixes that cannot be parsed leave no choice but reset. */
	if (nlri_check(u->withdrawn.p, u->withdrawn.len, BGP_FAM_IPV4, ap4, &u->withdrawn.count) ||
	    nlri_check(u->nlri.p, u->nlri.len, BGP_FAM_IPV4, ap4, &u->nlri.count)) {
		verdict(&s, BGP_UPD_SESSION_RESET, BGP_UPD_INVALID_NETWORK, NULL, 0);
		goto out;
	}

	while (wire_left(&attrs) > 0 && s.action < BGP_UPD_SESSION_RESET) {
		if (!one_attr(&s, &attrs)) {
			/*
			 * RFC 7606 §4: an overrun is treat-as-withdraw, the Total Attribute
			 * Length locating the NLRI. But if nothing to withdraw was found
			 * yet, the unread rest may hold an MP_REACH_NLRI we could not
			 * withdraw: only a reset is safe then (RFC 7606 §3 (j)).
			 */
			bool located = u->nlri.count || u->withdrawn.count || u->has_mp_reach ||
			               u->has_mp_unreach;
			verdict(&s, located ? BGP_UPD_TREAT_AS_WITHDRAW : BGP_UPD_SESSION_RESET,
			        BGP_UPD_MALFORMED_ATTR_LIST, NULL, 0);
			break;
		}
	}
	if (s.action == BGP_UPD_SESSION_RESET)
		goto out;

	/* RFC 7606 §3 (d): missing well-known mandatory attributes → treat-as-withdraw. */
	bool reach = u->nlri.count > 0 || (u->has_mp_reach && u->mp_reach.count > 0);
	if (reach) {
		static const uint8_t need[] = {BGP_ATTR_ORIGIN, BGP_ATTR_AS_PATH,
		                               BGP_ATTR_NEXT_HOP};
		for (size_t i = 0; i < sizeof(need); i++) {
			if (need[i] == BGP_ATTR_NEXT_HOP && u->nlri.count == 0)
				continue; /* RFC 4760 §3: MP-only UPDATEs need no NEXT_HOP */
			if (!bgp_update_has(u, need[i]))
				verdict(&s, BGP_UPD_TREAT_AS_WITHDRAW, BGP_UPD_MISSING_WELLKNOWN,
				        &need[i], 1);
		}
	}
	/*
	 * RFC 4271 §6.3: a semantically wrong NEXT_HOP (0/8, multicast, class E)
	 * drops the routes, without a NOTIFICATION.
	 */
	if (u->nlri.count > 0 && bgp_update_has(u, BGP_ATTR_NEXT_HOP) &&
	    (u->next_hop[0] == 0 || u->next_hop[0] >= 224)) {
		uint8_t nh[7] = {BGP_ATTR_F_TRANSITIVE, BGP_ATTR_NEXT_HOP, 4};
		memcpy(nh + 3, u->next_hop, 4);
		verdict(&s, BGP_UPD_TREAT_AS_WITHDRAW, BGP_UPD_INVALID_NEXT_HOP, nh, sizeof(nh));
	}

	/* RFC 4724 §2: End-of-RIB markers. */
	if (wlen == 0 && alen == 0 && u->nlri.len == 0) {
		u->eor = true;
		u->eor_fam = BGP_FAM_IPV4;
	} else if (wlen == 0 && u->nlri.len == 0 && u->n_attrs == 1 && u->has_mp_unreach &&
	           u->mp_unreach.len == 0 && s.action == BGP_UPD_OK) {
		u->eor = true;
		u->eor_fam = u->mp_unreach.fam;
	}
out:
	u->action = s.action;
	return s.action == BGP_UPD_SESSION_RESET ? -EBADMSG : (int)s.action;
}

/* ---- UPDATE building ---- */

static void attr_hdr(struct wbuf *b, uint8_t flags, uint8_t code, size_t len)
{
	if (len > 255) {
		wbuf_u8(b, flags | BGP_ATTR_F_EXTLEN);
		wbuf_u8(b, code);
		wbuf_u16(b, (uint16_t)len);
	} else {
		wbuf_u8(b, flags);
		wbuf_u8(b, code);
		wbuf_u8(b, (uint8_t)len);
	}
}

static size_t attr_hdr_len(size_t len)
{
	return len > 255 ? 4 : 3;
}

static size_t prefix_bytes(const struct bgp_prefix *p)
{
	return 1 + (p->len + 7u) / 8u;
}

static void prefix_put(struct wbuf *b, const struct bgp_prefix *p)
{
	size_t nb = (p->len + 7u) / 8u;
	wbuf_u8(b, p->len);
	for (size_t i = 0; i < nb; i++) {
		uint8_t c = p->addr[i];
		if (i == nb - 1 && p->len % 8)
			c &= (uint8_t)(0xff << (8 - p->len % 8));
		wbuf_u8(b, c);
	}
}

static int prefixes_check(const struct bgp_prefix *pf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pf[i].fam != pf[0].fam || pf[i].fam >= BGP_FAM_COUNT ||
		    pf[i].len > fam_bits(pf[i].fam))
			return -EINVAL;
	return 0;
}

/* AS_PATH value: AS_SEQUENCE segments of at most 255 ASNs (RFC 4271 §4.3). */
static void as_path_put(struct wbuf *b, const uint32_t *as, size_t n, bool as4)
{
	for (size_t i = 0; i < n; i += 255) {
		size_t k = n - i > 255 ? 255 : n - i;
		wbuf_u8(b, BGP_AS_SEQUENCE);
		wbuf_u8(b, (uint8_t)k);
		for (size_t j = i; j < i + k; j++) {
			if (as4)
				wbuf_u32(b, as[j]);
			else
				wbuf_u16(b, as[j] > 65535 ? BGP_AS_TRANS : (uint16_t)as[j]);
		}
	}
}

static size_t as_path_len(size_t n, bool as4)
{
	return n * (as4 ? 4 : 2) + 2 * ((n + 254) / 255);
}

/*
 * Attributes before MP_REACH_NLRI (codes 1..8) and after it (17, 32), so that
 * the message keeps type-code order whatever family it carries.
 */
static int attrs_put(struct wbuf *pre, struct wbuf *post, const struct bgp_ctx *ctx,
                     const struct bgp_route_attrs *a, uint8_t fam)
{
	bool as4 = ctx && ctx->as4;
	bool need_as4_path = false;
	for (size_t i = 0; i < a->as_path_n; i++)
		if (a->as_path[i] > 65535 && !as4)
			need_as4_path = true;

	attr_hdr(pre, BGP_ATTR_F_TRANSITIVE, BGP_ATTR_ORIGIN, 1);
	wbuf_u8(pre, a->origin);
	attr_hdr(pre, BGP_ATTR_F_TRANSITIVE, BGP_ATTR_AS_PATH, as_path_len(a->as_path_n, as4));
	as_path_put(pre, a->as_path, a->as_path_n, as4);
	if (fam == BGP_FAM_IPV4) {
		attr_hdr(pre, BGP_ATTR_F_TRANSITIVE, BGP_ATTR_NEXT_HOP, 4);
		wbuf_bytes(pre, a->nh4, 4);
	}
	if (a->has_med) {
		attr_hdr(pre, BGP_ATTR_F_OPTIONAL, BGP_ATTR_MED, 4);
		wbuf_u32(pre, a->med);
	}
	if (a->has_local_pref) {
		attr_hdr(pre, BGP_ATTR_F_TRANSITIVE, BGP_ATTR_LOCAL_PREF, 4);
		wbuf_u32(pre, a->local_pref);
	}
	if (a->n_communities) {
		if (a->n_communities > BGP_MAX_LEN / 4)
			return -EMSGSIZE;
		attr_hdr(pre, BGP_ATTR_F_OPTIONAL | BGP_ATTR_F_TRANSITIVE, BGP_ATTR_COMMUNITIES,
		         a->n_communities * 4);
		for (size_t i = 0; i < a->n_communities; i++)
			wbuf_u32(pre, a->communities[i]);
	}
	if (need_as4_path) {
		attr_hdr(post, BGP_ATTR_F_OPTIONAL | BGP_ATTR_F_TRANSITIVE, BGP_ATTR_AS4_PATH,
		         as_path_len(a->as_path_n, true));
		as_path_put(post, a->as_path, a->as_path_n, true);
	}
	if (a->n_large) {
		if (a->n_large > BGP_MAX_LEN / 12)
			return -EMSGSIZE;
		attr_hdr(post, BGP_ATTR_F_OPTIONAL | BGP_ATTR_F_TRANSITIVE,
		         BGP_ATTR_LARGE_COMMUNITY, a->n_large * 12);
		for (size_t i = 0; i < a->n_large; i++) {
			wbuf_u32(post, a->large[i].global);
			wbuf_u32(post, a->large[i].local1);
			wbuf_u32(post, a->large[i].local2);
		}
	}
	return pre->err ? pre->err : post->err;
}

int bgp_update_build(struct wbuf *b, const struct bgp_ctx *ctx, const struct bgp_route_attrs *a,
                     const struct bgp_prefix *pf, size_t n)
{
	if (n == 0)
		return 0;
	if (prefixes_check(pf, n))
		return -EINVAL;
	uint8_t fam = pf[0].fam;
	uint8_t prebuf[BGP_MAX_LEN], postbuf[BGP_MAX_LEN];
	struct wbuf pre = wbuf_init(prebuf, sizeof(prebuf));
	struct wbuf post = wbuf_init(postbuf, sizeof(postbuf));
	int rc = attrs_put(&pre, &post, ctx, a, fam);
	if (rc < 0)
		return rc;
	size_t nhlen = a->has_nh6_ll ? 32 : 16;
	size_t fixed = BGP_HDR_LEN + 4 + pre.off + post.off;
	int msgs = 0;
	size_t i = 0;
	while (i < n) {
		/* Greedy: as many prefixes as keep the message within 4096 bytes. */
		size_t k = 0, nb = 0;
		for (;;) {
			if (i + k >= n)
				break;
			size_t nb2 = nb + prefix_bytes(&pf[i + k]);
			size_t total = fixed + nb2; /* IPv4: the NLRI field */
			if (fam == BGP_FAM_IPV6) {
				size_t mpv = 5 + nhlen + nb2;
				total = fixed + attr_hdr_len(mpv) + mpv;
			}
			if (total > BGP_MAX_LEN)
				break;
			nb = nb2;
			k++;
		}
		if (k == 0)
			return -EMSGSIZE;
		size_t start = bgp_msg_begin(b, BGP_MSG_UPDATE);
		wbuf_u16(b, 0); /* withdrawn routes length */
		size_t alen_at = wbuf_reserve(b, 2);
		size_t abegin = b->off;
		wbuf_bytes(b, prebuf, pre.off);
		if (fam == BGP_FAM_IPV6) {
			size_t mpv = 5 + nhlen + nb;
			attr_hdr(b, BGP_ATTR_F_OPTIONAL, BGP_ATTR_MP_REACH, mpv);
			wbuf_u16(b, BGP_AFI_IPV6);
			wbuf_u8(b, BGP_SAFI_UNICAST);
			wbuf_u8(b, (uint8_t)nhlen);
			wbuf_bytes(b, a->nh6, 16);
			if (a->has_nh6_ll)
				wbuf_bytes(b, a->nh6_ll, 16);
			wbuf_u8(b, 0);
			for (size_t j = i; j < i + k; j++)
				prefix_put(b, &pf[j]);
		}
		wbuf_bytes(b, postbuf, post.off);
		wbuf_put_u16_at(b, alen_at, (uint16_t)(b->off - abegin));
		if (fam == BGP_FAM_IPV4)
			for (size_t j = i; j < i + k; j++)
				prefix_put(b, &pf[j]);
		rc = bgp_msg_end(b, start, BGP_MAX_LEN);
		if (rc < 0)
			return rc;
		msgs++;
		i += k;
	}
	return msgs;
}

int bgp_withdraw_build(struct wbuf *b, const struct bgp_prefix *pf, size_t n)
{
	if (n == 0)
		return 0;
	if (prefixes_check(pf, n))
		return -EINVAL;
	uint8_t fam = pf[0].fam;
	int msgs = 0;
	size_t i = 0;
	while (i < n) {
		size_t k = 0, nb = 0;
		while (i + k < n) {
			size_t nb2 = nb + prefix_bytes(&pf[i + k]);
			size_t total = BGP_HDR_LEN + 4 + nb2;
			if (fam == BGP_FAM_IPV6)
				total += attr_hdr_len(3 + nb2) + 3;
			if (total > BGP_MAX_LEN)
				break;
			nb = nb2;
			k++;
		}
		size_t start = bgp_msg_begin(b, BGP_MSG_UPDATE);
		if (fam == BGP_FAM_IPV4) {
			wbuf_u16(b, (uint16_t)nb);
			for (size_t j = i; j < i + k; j++)
				prefix_put(b, &pf[j]);
			wbuf_u16(b, 0);
		} else {
			wbuf_u16(b, 0);
			wbuf_u16(b, (uint16_t)(attr_hdr_len(3 + nb) + 3 + nb));
			attr_hdr(b, BGP_ATTR_F_OPTIONAL, BGP_ATTR_MP_UNREACH, 3 + nb);
			wbuf_u16(b, BGP_AFI_IPV6);
			wbuf_u8(b, BGP_SAFI_UNICAST);
			for (size_t j = i; j < i + k; j++)
				prefix_put(b, &pf[j]);
		}
		int rc = bgp_msg_end(b, start, BGP_MAX_LEN);
		if (rc < 0)
			return rc;
		msgs++;
		i += k;
	}
	return msgs;
}

int bgp_eor_build(struct wbuf *b, uint8_t fam)
{
	if (fam >= BGP_FAM_COUNT)
		return -EINVAL;
	size_t start = bgp_msg_begin(b, BGP_MSG_UPDATE);
	wbuf_u16(b, 0);
	if (fam == BGP_FAM_IPV4) {
		wbuf_u16(b, 0);
	} else {
		wbuf_u16(b, 6);
		attr_hdr(b, BGP_ATTR_F_OPTIONAL, BGP_ATTR_MP_UNREACH, 3);
		wbuf_u16(b, bgp_fam_afi(fam));
		wbuf_u8(b, BGP_SAFI_UNICAST);
	}
	return bgp_msg_end(b, start, BGP_MAX_LEN);
}
