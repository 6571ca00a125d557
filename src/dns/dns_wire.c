/*
 * dns_wire.c: request validation, builders and the whole-message scan.
 * Everything reads through struct wire and writes through struct wbuf.
 */
#include "dns/dns_wire.h"

enum section { SEC_AN, SEC_NS, SEC_AR };

/* One resource record's fixed fields (RFC 1035 §4.1.3); offsets into the message. */
struct rr {
	size_t off; /* owner */
	size_t end; /* first octet after the RDATA */
	bool root_owner;
	uint16_t type, rclass;
	size_t ttl_off;
	uint32_t ttl;
	size_t rdata_off;
	uint16_t rdlen;
};

/* What an OPT RR says (RFC 6891 §6.1.2, §6.1.3). */
struct edns {
	bool present;
	size_t off;
	uint16_t udp_size;
	uint8_t ext_rcode, version;
	bool do_bit;
	size_t opts_off;
	uint16_t opts_len;
	bool has_cookie, has_ecs;
	size_t cookie_off;
	uint16_t cookie_len;
};

/* w spans the whole message; RDATA stays opaque but must fit. */
static int read_rr(struct wire *w, struct rr *rr)
{
	size_t nlen = 0;
	rr->off = w->off;
	if (dns_name_read(w, NULL, &nlen, 0))
		return -EBADMSG;
	rr->root_owner = nlen == 1;
	rr->type = wire_u16(w);
	rr->rclass = wire_u16(w);
	rr->ttl_off = w->off;
	rr->ttl = wire_u32(w);
	rr->rdlen = wire_u16(w);
	rr->rdata_off = w->off;
	wire_skip(w, rr->rdlen);
	rr->end = w->off;
	return w->err ? -EBADMSG : 0;
}

/* RFC 2181 §8: a TTL with the top bit set is read as zero. */
static uint32_t ttl_value(uint32_t ttl)
{
	return (ttl & 0x80000000u) ? 0 : ttl;
}

/*
 * Takes an OPT record found while walking. RFC 6891 §6.1.1: at most one, only
 * in the additional section, owner the root. Options must tile the RDATA.
 */
static int take_opt(const uint8_t *pkt, const struct rr *rr, enum section sec, struct edns *e)
{
	if (sec != SEC_AR || e->present || !rr->root_owner)
		return -EBADMSG;
	struct wire o = wire_init(pkt + rr->rdata_off, rr->rdlen);
	while (wire_left(&o) > 0) {
		uint16_t code = wire_u16(&o);
		uint16_t olen = wire_u16(&o);
		size_t at = rr->rdata_off + o.off;
		wire_skip(&o, olen);
		if (o.err)
			return -EBADMSG;
		if (code == DNS_EDNS_OPT_COOKIE && !e->has_cookie) {
			e->has_cookie = true;
			e->cookie_off = at;
			e->cookie_len = olen;
		} else if (code == DNS_EDNS_OPT_ECS) {
			e->has_ecs = true;
		}
	}
	e->present = true;
	e->off = rr->off;
	e->udp_size = rr->rclass;
	e->ext_rcode = (uint8_t)(rr->ttl >> 24);
	e->version = (uint8_t)(rr->ttl >> 16);
	e->do_bit = (rr->ttl & DNS_EDNS_DO) != 0;
	e->opts_off = rr->rdata_off;
	e->opts_len = rr->rdlen;
	return 0;
}

/* Counts from the network are capped by what the remaining bytes could hold. */
static bool counts_fit(const struct wire *w, size_t nrr)
{
	return nrr <= wire_left(w) / DNS_RR_MIN_LEN;
}

/* Walks answer, authority and additional; 0 when every record parsed. */
static int walk_records(struct wire *w, uint16_t an, uint16_t ns, uint16_t ar, struct edns *e)
{
	size_t nrr = (size_t)an + ns + ar;
	if (!counts_fit(w, nrr))
		return -EBADMSG;
	for (size_t i = 0; i < nrr; i++) {
		enum section sec = i < an ? SEC_AN : i < (size_t)an + ns ? SEC_NS : SEC_AR;
		struct rr rr;
		if (read_rr(w, &rr))
			return -EBADMSG;
		if (rr.type == DNS_TYPE_OPT && take_opt(w->p, &rr, sec, e))
			return -EBADMSG;
	}
	return 0;
}

/* ---- request validation ---- */

static int read_question(struct wire *w, struct dns_request *req)
{
	size_t start = w->off, nlen = 0;
	/* Nothing precedes a query's question, so a pointer there is malformed. */
	if (dns_name_read(w, NULL, &nlen, DNS_NAME_NOCOMPRESS))
		return -EBADMSG;
	uint16_t qtype = wire_u16(w);
	uint16_t qclass = wire_u16(w);
	if (w->err)
		return -EBADMSG;
	req->qname = w->p + start;
	req->qname_len = nlen;
	req->question = w->p + start;
	req->question_len = w->off - start;
	dns_name_lower(req->qname_lc, req->qname, nlen);
	req->qtype = qtype;
	req->qclass = qclass;
	req->has_question = true;
	return 0;
}

static void take_edns(struct dns_request *req, const struct edns *e)
{
	req->edns = true;
	req->edns_version = e->version;
	req->udp_size = e->udp_size;
	req->do_bit = e->do_bit;
	req->opt_off = e->off;
	req->opts_off = e->opts_off;
	req->opts_len = e->opts_len;
	req->has_cookie = e->has_cookie;
	req->cookie_off = e->cookie_off;
	req->cookie_len = e->cookie_len;
	req->has_ecs = e->has_ecs;
}

int dns_tcp_frame(const uint8_t *buf, size_t len)
{
	if (len < 2)
		return 0;
	size_t mlen = wire_get_u16_at(buf);
	if (mlen < DNS_HDR_LEN)
		return -EBADMSG;
	return len - 2 < mlen ? 0 : (int)mlen;
}

int dns_request_parse(const uint8_t *pkt, size_t len, struct dns_request *req, uint8_t *rcode)
{
	memset(req, 0, sizeof(*req));
	*rcode = DNS_RCODE_FORMERR;
	if (len < DNS_HDR_LEN)
		return -EBADMSG;

	struct wire w = wire_init(pkt, len);
	req->id = wire_u16(&w);
	req->flags = wire_u16(&w);
	req->qdcount = wire_u16(&w);
	req->ancount = wire_u16(&w);
	req->nscount = wire_u16(&w);
	req->arcount = wire_u16(&w);
	if (req->flags & DNS_FLAG_QR)
		return -EBADMSG;
	req->opcode = (uint8_t)((req->flags & DNS_OPCODE_MASK) >> DNS_OPCODE_SHIFT);
	req->rd = (req->flags & DNS_FLAG_RD) != 0;
	req->cd = (req->flags & DNS_FLAG_CD) != 0;
	req->ad = (req->flags & DNS_FLAG_AD) != 0;

	if (req->qdcount == 1 && read_question(&w, req))
		req->has_question = false;

	/*
	 * Walk the records only where we know what the sections mean: after a
	 * parsed question, or with no question at all (so a FORMERR for
	 * QDCOUNT=0 still carries the OPT, as knotd does). The OPT is taken
	 * only when every record parsed.
	 */
	struct edns e = {0};
	bool walked = false;
	if (req->has_question || req->qdcount == 0) {
		struct wire rest = w;
		if (walk_records(&rest, req->ancount, req->nscount, req->arcount, &e) == 0) {
			walked = true;
			if (e.present)
				take_edns(req, &e);
			w = rest;
		}
	}

	if (req->opcode != DNS_OPCODE_QUERY) {
		*rcode = DNS_RCODE_NOTIMP; /* RFC 1035 §4.1.1 */
		return 0;
	}
	if (req->qdcount != 1 || !req->has_question || !walked || wire_left(&w) != 0) {
		*rcode = DNS_RCODE_FORMERR;
		return 0;
	}
	if (req->edns && req->edns_version > DNS_EDNS_VERSION) {
		*rcode = DNS_RCODE_BADVERS; /* RFC 6891 §6.1.3 */
		return 0;
	}
	*rcode = DNS_RCODE_NOERROR;
	return 0;
}

size_t dns_request_udp_limit(const struct dns_request *req)
{
	if (!req->edns)
		return DNS_UDP_MIN;
	size_t sz = req->udp_size < DNS_UDP_MIN ? DNS_UDP_MIN : req->udp_size; /* RFC 6891 §6.2.5 */
	return sz < DNS_EDNS_UDP_SIZE ? sz : DNS_EDNS_UDP_SIZE;
}

bool dns_request_is_identity(const struct dns_request *req)
{
	static const uint8_t id_server[] = "\x02id\x06server";
	static const uint8_t hostname_bind[] = "\x08hostname\x04"
	                                       "bind";
	if (!req->has_question || req->qclass != DNS_CLASS_CH || req->qtype != DNS_TYPE_TXT)
		return false;
	/* sizeof includes the string's NUL, which is the root label */
	return (req->qname_len == sizeof(id_server) &&
	        !memcmp(req->qname_lc, id_server, sizeof(id_server))) ||
	       (req->qname_len == sizeof(hostname_bind) &&
	        !memcmp(req->qname_lc, hostname_bind, sizeof(hostname_bind)));
}

/* ---- builders ---- */

static void put_header(struct wbuf *b, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an,
                       uint16_t ns, uint16_t ar)
{
	wbuf_u16(b, id);
	wbuf_u16(b, flags);
	wbuf_u16(b, qd);
	wbuf_u16(b, an);
	wbuf_u16(b, ns);
	wbuf_u16(b, ar);
}

/* Our OPT: root owner, our UDP size, version 0, no options (RFC 6891 §6.1.2). */
static void put_opt(struct wbuf *b, uint8_t ext_rcode, bool do_bit)
{
	wbuf_u8(b, 0);
	wbuf_u16(b, DNS_TYPE_OPT);
	wbuf_u16(b, DNS_EDNS_UDP_SIZE);
	wbuf_u32(b, (uint32_t)ext_rcode << 24 | (uint32_t)DNS_EDNS_VERSION << 16 |
	                (do_bit ? DNS_EDNS_DO : 0));
	wbuf_u16(b, 0);
}

static uint16_t answer_flags(const struct dns_request *req, uint16_t extra)
{
	return (uint16_t)(DNS_FLAG_QR | extra |
	                  ((unsigned)(req->opcode & 0xF) << DNS_OPCODE_SHIFT) |
	                  (req->rd ? DNS_FLAG_RD : 0) | (req->cd ? DNS_FLAG_CD : 0));
}

int dns_build_error(struct wbuf *b, const struct dns_request *req, uint16_t rcode)
{
	if (rcode > 0xFFF || (rcode > DNS_RCODE_MASK && !req->edns))
		return -EINVAL;
	uint16_t flags = answer_flags(req, DNS_FLAG_RA) | (rcode & DNS_RCODE_MASK);
	put_header(b, req->id, flags, req->has_question ? 1 : 0, 0, 0, req->edns ? 1 : 0);
	if (req->has_question)
		wbuf_bytes(b, req->question, req->question_len);
	if (req->edns)
		put_opt(b, (uint8_t)(rcode >> 4), req->do_bit);
	return wbuf_result(b);
}

int dns_build_query(struct wbuf *b, uint16_t id, const uint8_t *qname, size_t qname_len,
                    uint16_t qtype, uint16_t qclass, bool cd, bool do_bit)
{
	if (qname_len == 0 || qname_len > DNS_NAME_MAX)
		return -EINVAL;
	put_header(b, id, (uint16_t)(DNS_FLAG_RD | (cd ? DNS_FLAG_CD : 0)), 1, 0, 0, 1);
	wbuf_bytes(b, qname, qname_len);
	wbuf_u16(b, qtype);
	wbuf_u16(b, qclass);
	put_opt(b, 0, do_bit); /* must stay last: c-ares cuts 11 octets on fallback */
	return wbuf_result(b);
}

int dns_build_identity(struct wbuf *b, const struct dns_request *req, const char *identity)
{
	if (!req->has_question)
		return -EINVAL;
	size_t n = strlen(identity);
	if (n > 255)
		n = 255;
	put_header(b, req->id, answer_flags(req, DNS_FLAG_AA), 1, 1, 0, req->edns ? 1 : 0);
	wbuf_bytes(b, req->question, req->question_len);
	wbuf_u16(b, 0xC000 | DNS_HDR_LEN); /* the question's name */
	wbuf_u16(b, DNS_TYPE_TXT);
	wbuf_u16(b, DNS_CLASS_CH);
	wbuf_u32(b, 0);
	wbuf_u16(b, (uint16_t)(n + 1));
	wbuf_u8(b, (uint8_t)n);
	wbuf_bytes(b, identity, n);
	if (req->edns)
		put_opt(b, 0, req->do_bit);
	return wbuf_result(b);
}

int dns_build_truncated(struct wbuf *b, const uint8_t *ans, size_t ans_len, size_t limit)
{
	struct dns_scan s;
	int r = dns_scan(ans, ans_len, &s);
	if (r && r != -E2BIG)
		return r;
	if (ans_len <= limit) {
		wbuf_bytes(b, ans, ans_len);
		return wbuf_result(b);
	}
	size_t start = b->off;
	put_header(b, s.id, (uint16_t)(s.flags | DNS_FLAG_TC), s.has_question ? 1 : 0, 0, 0,
	           s.has_opt ? 1 : 0);
	if (s.has_question)
		wbuf_bytes(b, ans + s.q_off, s.q_len);
	if (s.has_opt) {
		/* Keep the upstream's OPT header (extended RCODE, version, DO); drop options. */
		struct wire o = wire_init(ans + s.opt_off, s.opt_len);
		wire_skip(&o, 3); /* root owner, type */
		uint16_t udp = wire_u16(&o);
		uint32_t ttl = wire_u32(&o);
		wbuf_u8(b, 0);
		wbuf_u16(b, DNS_TYPE_OPT);
		wbuf_u16(b, udp);
		wbuf_u32(b, ttl);
		wbuf_u16(b, 0);
	}
	if (!b->err && b->off - start > limit)
		return -EMSGSIZE;
	return wbuf_result(b);
}

/* ---- whole-message scan ---- */

/* SOA RDATA (RFC 1035 §3.3.13): two names, then exactly five 32-bit fields. */
static int read_soa_minimum(const uint8_t *pkt, const struct rr *rr, uint32_t *minimum)
{
	/* Names may point back anywhere, so the cursor starts at the message but ends with the
	 * RDATA. */
	struct wire r = wire_init(pkt, rr->end);
	r.off = rr->rdata_off;
	dns_name_skip(&r);
	dns_name_skip(&r);
	wire_skip(&r, 16); /* serial, refresh, retry, expire */
	*minimum = wire_u32(&r);
	return wire_end(&r) ? -EBADMSG : 0;
}

/* Whether [lo, hi) overlaps one of the sorted 4-octet TTL fields ttl[0..n). */
static bool touches_ttl(size_t lo, size_t hi, const uint16_t *ttl, size_t n)
{
	size_t a = 0, b = n;
	while (a < b) { /* the first field that ends after lo */
		size_t m = a + (b - a) / 2;
		if ((size_t)ttl[m] + 4 <= lo)
			a = m + 1;
		else
			b = m;
	}
	return a < n && ttl[a] < hi;
}

/*
 * Whether the (already validated) name at off reads, through a compression
 * pointer, octets of a TTL field recorded so far. The cache rewrites TTLs as
 * an answer ages, so such a name would change under the client (a pointer
 * into a TTL is never what a compressor writes; found by fuzzing).
 */
static bool name_reads_ttl(const uint8_t *pkt, size_t off, const struct dns_scan *s)
{
	size_t n = s->n_ttl < DNS_MAX_TTL_OFFSETS ? s->n_ttl : DNS_MAX_TTL_OFFSETS;
	bool jumped = false;

	for (unsigned hops = 0; hops <= DNS_NAME_MAX_HOPS + 1;) {
		uint8_t c = pkt[off];
		if ((c & 0xC0) == 0xC0) {
			off = (size_t)(c & 0x3F) << 8 | pkt[off + 1];
			jumped = true;
			hops++;
			continue;
		}
		if (jumped && touches_ttl(off, off + 1u + c, s->ttl_off, n))
			return true;
		if (c == 0)
			return false;
		off += 1u + c;
	}
	return false;
}

int dns_scan(const uint8_t *pkt, size_t len, struct dns_scan *s)
{
	memset(s, 0, sizeof(*s));
	if (len < DNS_HDR_LEN || len > DNS_MSG_MAX) /* ttl_off holds 16-bit offsets */
		return -EBADMSG;
	struct wire w = wire_init(pkt, len);
	s->id = wire_u16(&w);
	s->flags = wire_u16(&w);
	s->qdcount = wire_u16(&w);
	s->ancount = wire_u16(&w);
	s->nscount = wire_u16(&w);
	s->arcount = wire_u16(&w);
	s->qr = (s->flags & DNS_FLAG_QR) != 0;
	s->aa = (s->flags & DNS_FLAG_AA) != 0;
	s->tc = (s->flags & DNS_FLAG_TC) != 0;
	s->opcode = (uint8_t)((s->flags & DNS_OPCODE_MASK) >> DNS_OPCODE_SHIFT);
	s->rcode = s->flags & DNS_RCODE_MASK;

	/* Nobody sends more than one question (RFC 9619 makes it law). */
	if (s->qdcount > 1)
		return -EBADMSG;
	if (s->qdcount == 1) {
		s->q_off = w.off;
		if (dns_name_read(&w, NULL, &s->qname_len, 0))
			return -EBADMSG;
		s->qtype = wire_u16(&w);
		s->qclass = wire_u16(&w);
		if (w.err)
			return -EBADMSG;
		s->q_len = w.off - s->q_off;
		s->has_question = true;
	}

	size_t an = s->ancount, ns = s->nscount, nrr = an + ns + s->arcount;
	if (!counts_fit(&w, nrr))
		return -EBADMSG;
	struct edns e = {0};
	bool overflow = false;
	for (size_t i = 0; i < nrr; i++) {
		enum section sec = i < an ? SEC_AN : i < an + ns ? SEC_NS : SEC_AR;
		struct rr rr;
		if (read_rr(&w, &rr))
			return -EBADMSG;
		if (name_reads_ttl(pkt, rr.off, s))
			return -EBADMSG;
		if (rr.type == DNS_TYPE_OPT) {
			/* OPT's "TTL" is extended RCODE, version and flags: never patched. */
			if (take_opt(pkt, &rr, sec, &e))
				return -EBADMSG;
			s->opt_off = rr.off;
			s->opt_len = rr.end - rr.off;
			continue;
		}
		if (s->n_ttl < DNS_MAX_TTL_OFFSETS)
			s->ttl_off[s->n_ttl++] = (uint16_t)rr.ttl_off;
		else
			overflow = true;
		uint32_t ttl = ttl_value(rr.ttl);
		if (sec == SEC_AN) {
			if (!s->has_answer_ttl || ttl < s->min_answer_ttl)
				s->min_answer_ttl = ttl;
			s->has_answer_ttl = true;
		}
		if (rr.type == DNS_TYPE_SOA) {
			uint32_t minimum;
			if (read_soa_minimum(pkt, &rr, &minimum))
				return -EBADMSG;
			/* Its two names, checked like owners (their lengths place MINIMUM). */
			struct wire r = wire_init(pkt, rr.end);
			r.off = rr.rdata_off;
			if (name_reads_ttl(pkt, r.off, s) || dns_name_skip(&r) ||
			    name_reads_ttl(pkt, r.off, s))
				return -EBADMSG;
			if (sec == SEC_NS && !s->has_soa) {
				s->has_soa = true;
				s->soa_ttl = ttl;
				s->soa_minimum = ttl_value(minimum);
			}
		}
	}
	if (wire_left(&w) != 0)
		return -EBADMSG;

	if (e.present) {
		s->has_opt = true;
		s->udp_size = e.udp_size;
		s->edns_version = e.version;
		s->do_bit = e.do_bit;
		s->rcode |= (uint16_t)(e.ext_rcode << 4);
	}
	s->ttl_overflow = overflow;
	s->negative =
	    s->rcode == DNS_RCODE_NXDOMAIN || (s->rcode == DNS_RCODE_NOERROR && s->ancount == 0);
	if (s->has_soa) /* RFC 2308 §5 */
		s->neg_ttl = s->soa_ttl < s->soa_minimum ? s->soa_ttl : s->soa_minimum;
	return overflow ? -E2BIG : 0;
}

enum dns_qmatch dns_scan_match_question(const uint8_t *pkt, const struct dns_scan *s,
                                        const uint8_t *qname, size_t qname_len, uint16_t qtype,
                                        uint16_t qclass)
{
	/* A scanned question is never compressed (pointers into the header are refused),
	 * so its name is the q_off octets in place. */
	if (!s->has_question || s->qtype != qtype || s->qclass != qclass ||
	    s->qname_len != qname_len)
		return DNS_QMATCH_NONE;
	if (!memcmp(pkt + s->q_off, qname, qname_len))
		return DNS_QMATCH_EXACT;
	if (dns_name_equal(pkt + s->q_off, qname_len, qname, qname_len))
		return DNS_QMATCH_NOCASE;
	return DNS_QMATCH_NONE;
}

enum dns_qmatch dns_match_question(const uint8_t *pkt, size_t len, const uint8_t *qname,
                                   size_t qname_len, uint16_t qtype, uint16_t qclass)
{
	struct wire w = wire_init(pkt, len);
	size_t q_off, nlen = 0;

	wire_skip(&w, 4); /* ID, flags */
	uint16_t qdcount = wire_u16(&w);
	wire_skip(&w, 6);
	if (w.err || qdcount != 1)
		return DNS_QMATCH_NONE;
	q_off = w.off;
	/* Nothing precedes the question but the header, where no pointer may lead:
	 * a name that reads is the q_off octets in place, as in dns_scan. */
	if (dns_name_read(&w, NULL, &nlen, 0))
		return DNS_QMATCH_NONE;
	uint16_t t = wire_u16(&w);
	uint16_t c = wire_u16(&w);
	if (w.err || t != qtype || c != qclass || nlen != qname_len)
		return DNS_QMATCH_NONE;
	if (!memcmp(pkt + q_off, qname, qname_len))
		return DNS_QMATCH_EXACT;
	if (dns_name_equal(pkt + q_off, qname_len, qname, qname_len))
		return DNS_QMATCH_NOCASE;
	return DNS_QMATCH_NONE;
}
