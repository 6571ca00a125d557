#include "dns/dns_answer.h"

#include <errno.h>
#include <string.h>

/*
 * Makes *s the scan of the stored form of n octets, without scanning it
 * again: the stored form is the answer cut at its OPT (n == s->opt_off) or
 * all of it, with new flags. Everything before the cut keeps its offset, so
 * only the OPT's fields, ARCOUNT and the TTL offsets past the cut change.
 * tests/dns/test_dns_answer.c checks the result equals a fresh dns_scan.
 */
static void patch_scan(struct dns_scan *s, uint16_t flags, size_t n, uint16_t arcount)
{
	size_t k = 0;

	s->flags = flags;
	s->aa = false;
	if (!s->has_opt)
		return;
	/* The OPT and every record after it are gone (message order). */
	s->arcount = arcount;
	s->has_opt = false;
	s->opt_off = s->opt_len = 0;
	s->udp_size = 0;
	s->edns_version = 0;
	s->do_bit = false;
	while (k < s->n_ttl && s->ttl_off[k] < n)
		k++;
	/* An offset past the cut means every record beyond the ones tracked went too. */
	if (k < s->n_ttl)
		s->ttl_overflow = false;
	memset(s->ttl_off + k, 0, (s->n_ttl - k) * sizeof(s->ttl_off[0]));
	s->n_ttl = k;
}

int dns_answer_normalize(const uint8_t *ans, size_t len, struct dns_scan *s, uint8_t *out,
                         size_t cap)
{
	size_t n = len;
	uint16_t flags;

	if (!s->has_question || s->q_off != DNS_HDR_LEN)
		return -EPROTO;
	if (s->rcode > DNS_RCODE_MASK)
		return -EPROTO;
	if (s->has_opt) {
		/*
		 * Records after the OPT (RFC 6891 does not make it last) may hold
		 * compression pointers to names that also follow it: cutting the OPT
		 * out would shift those targets and silently rename the records. So
		 * the OPT and everything after it go; additional records may be
		 * dropped without setting TC (RFC 2181 §9).
		 */
		size_t after = 0;
		struct wire w = wire_init(ans, len);
		w.off = s->opt_off + s->opt_len;
		while (wire_left(&w) > 0) {
			dns_name_skip(&w);
			wire_skip(&w, 8); /* type, class, TTL */
			wire_skip(&w, wire_u16(&w));
			after++;
		}
		if (w.err || (size_t)s->arcount < after + 1)
			return -EPROTO;
		n = s->opt_off;
		if (n > cap)
			return -EMSGSIZE;
		memcpy(out, ans, n);
		wire_set_u16_at(out + 10, (uint16_t)(s->arcount - 1 - after));
	} else {
		if (n > cap)
			return -EMSGSIZE;
		memcpy(out, ans, len);
	}
	flags = wire_get_u16_at(out + 2);
	flags = (uint16_t)((flags & ~DNS_FLAG_AA) | DNS_FLAG_RA);
	wire_set_u16_at(out + 2, flags);
	patch_scan(s, flags, n, wire_get_u16_at(out + 10));
	if (s->ttl_overflow) {
		/* Well formed but too many records to track: pass it on, never cache it. */
		s->n_ttl = DNS_MAX_TTL_OFFSETS + 1;
	}
	return (int)n;
}

int dns_answer_finish(uint8_t *buf, size_t len, size_t cap, const struct dns_request *req,
                      size_t limit)
{
	uint16_t flags = wire_get_u16_at(buf + 2);
	uint16_t arcount = wire_get_u16_at(buf + 10);
	/* RFC 6891 §6.1.3: our size, version 0, DO copied from the query. */
	const uint8_t opt[DNS_ANSWER_OPT_LEN] = {0,
	                                         0,
	                                         41,
	                                         DNS_EDNS_UDP_SIZE >> 8,
	                                         DNS_EDNS_UDP_SIZE & 0xff,
	                                         0,
	                                         0,
	                                         req->do_bit ? 0x80 : 0,
	                                         0,
	                                         0,
	                                         0};

	if (len < DNS_HDR_LEN + req->question_len)
		return -EMSGSIZE;
	flags &= (uint16_t) ~(DNS_FLAG_RD | DNS_FLAG_CD | DNS_FLAG_TC);
	if (req->rd)
		flags |= DNS_FLAG_RD;
	if (req->cd)
		flags |= DNS_FLAG_CD;
	if (!req->do_bit && !req->ad)
		flags &= (uint16_t)~DNS_FLAG_AD;
	if (req->edns) {
		if (len + sizeof(opt) > cap)
			return -EMSGSIZE;
		memcpy(buf + len, opt, sizeof(opt));
		len += sizeof(opt);
		arcount++;
	}
	wire_set_u16_at(buf + 2, flags);
	wire_set_u16_at(buf + 10, arcount);
	if (len > limit) {
		/* The codec's truncation (header + question + our OPT, TC=1): the client
		 * retries over TCP. Rare, so a scan and a copy are fine here. */
		uint8_t cut[DNS_HDR_LEN + DNS_NAME_MAX + 4 + DNS_ANSWER_OPT_LEN];
		struct wbuf b = wbuf_init(cut, sizeof(cut));
		int n = dns_build_truncated(&b, buf, len, limit);
		if (n < 0)
			return n;
		memcpy(buf, cut, (size_t)n);
		return n;
	}
	return (int)len;
}

/* Visits every RR's TTL of buf; write: clamp it, else only check the walk. */
static int walk_ttls(uint8_t *buf, size_t len, bool write, uint32_t lo, uint32_t hi)
{
	struct wire w = wire_init(buf, len);
	struct wbuf out = wbuf_init(buf, len);

	out.off = len; /* patches in place: every offset below len is ours */
	wire_skip(&w, 4);
	uint16_t qd = wire_u16(&w);
	size_t nrr = (size_t)wire_u16(&w) + wire_u16(&w) + wire_u16(&w);
	if (w.err || qd > 1)
		return -EBADMSG;
	if (qd) {
		dns_name_skip(&w);
		wire_skip(&w, 4);
	}
	for (size_t i = 0; i < nrr && !w.err; i++) {
		dns_name_skip(&w);
		wire_skip(&w, 4); /* type, class */
		size_t at = w.off;
		uint32_t ttl = wire_u32(&w);
		wire_skip(&w, wire_u16(&w));
		if (w.err || !write)
			continue;
		ttl = (ttl & 0x80000000u) ? 0 : ttl; /* RFC 2181 §8 */
		ttl = ttl < lo ? lo : ttl > hi ? hi : ttl;
		wbuf_put_u32_at(&out, at, ttl);
	}
	return w.err || wire_left(&w) ? -EBADMSG : 0;
}

int dns_answer_clamp_ttls(uint8_t *buf, size_t len, uint32_t lo, uint32_t hi)
{
	int r = walk_ttls(buf, len, false, lo, hi);

	return r ? r : walk_ttls(buf, len, true, lo, hi);
}
