/*
 * dns_answer.c: normalize (strip the upstream's OPT, clear AA, set RA,
 * re-scan) and finish (RD/CD echo, AD rule, our OPT iff EDNS, truncation).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "dns/dns_answer.h"

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* www.example.test A: header, question, n A records, optional OPT (size 4096, DO). */
static size_t build_answer(uint8_t *b, unsigned n_a, bool opt, uint16_t flags)
{
	static const uint8_t q[] = {3,   'w', 'w', 'w', 7,   'e', 'x', 'a', 'm', 'p', 'l',
	                            'e', 4,   't', 'e', 's', 't', 0,   0,   1,   0,   1};
	size_t off = 12;

	memset(b, 0, 12);
	b[0] = 0x12;
	b[1] = 0x34;
	b[2] = (uint8_t)(flags >> 8);
	b[3] = (uint8_t)flags;
	b[5] = 1;
	b[7] = (uint8_t)n_a;
	b[11] = opt ? 1 : 0;
	memcpy(b + off, q, sizeof(q));
	off += sizeof(q);
	for (unsigned i = 0; i < n_a; i++) {
		const uint8_t rr[] = {0xc0, 12,   0, 1, 0,   1, 0, 0,
		                      0x0e, 0x10, 0, 4, 192, 0, 2, (uint8_t)i};
		memcpy(b + off, rr, sizeof(rr));
		off += sizeof(rr);
	}
	if (opt) {
		const uint8_t o[] = {0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0};
		memcpy(b + off, o, sizeof(o));
		off += sizeof(o);
	}
	return off;
}

static void request_for(struct dns_request *req, uint8_t *pkt, bool edns, bool rd, bool cd,
                        bool do_bit, bool ad)
{
	uint8_t rcode;
	size_t len = build_answer(pkt, 0, edns, 0);
	pkt[2] = rd ? 0x01 : 0;
	pkt[3] = (uint8_t)((cd ? 0x10 : 0) | (ad ? 0x20 : 0));
	if (edns)
		pkt[len - 11 + 7] = do_bit ? 0x80 : 0; /* DO */
	if (edns)
		pkt[len - 11 + 3] = 0x04, pkt[len - 11 + 4] = 0xd0; /* 1232 */
	cr_assert_eq(dns_request_parse(pkt, len, req, &rcode), 0);
	cr_assert_eq(rcode, 0);
}

Test(dns_answer, normalize_strips_opt_clears_aa_sets_ra)
{
	uint8_t in[1024], out[1024];
	struct dns_scan s;
	size_t len = build_answer(in, 2, true, 0x8000 | DNS_FLAG_AA | DNS_FLAG_RD);

	cr_assert_eq(dns_scan(in, len, &s), 0);
	cr_assert(s.has_opt);
	int n = dns_answer_normalize(in, len, &s, out, sizeof(out));
	cr_assert_eq(n, (int)len - 11);
	cr_assert_eq(rd16(out + 10), 0, "ARCOUNT without the OPT");
	cr_assert_eq(rd16(out + 2) & DNS_FLAG_AA, 0);
	cr_assert_neq(rd16(out + 2) & DNS_FLAG_RA, 0);
	cr_assert_not(s.has_opt, "re-scanned");
	cr_assert_eq(s.n_ttl, 2);
	cr_assert_eq(rd16(out + s.ttl_off[0] + 2), 0x0e10, "TTL offsets of the stored form");
	cr_assert_eq(dns_answer_normalize(in, len, &s, out, 20), -EMSGSIZE);
}

Test(dns_answer, normalize_without_opt_and_refusals)
{
	uint8_t in[1024], out[1024];
	struct dns_scan s;
	size_t len = build_answer(in, 1, false, 0x8000);

	cr_assert_eq(dns_scan(in, len, &s), 0);
	cr_assert_eq(dns_answer_normalize(in, len, &s, out, sizeof(out)), (int)len);
	cr_assert_eq(dns_answer_normalize(in, len, &s, out, len - 1), -EMSGSIZE);
	/* No question: nothing to hand a client. */
	cr_assert_eq(dns_scan(in, len, &s), 0);
	s.has_question = false;
	cr_assert_eq(dns_answer_normalize(in, len, &s, out, sizeof(out)), -EPROTO);
	/* An extended RCODE (BADCOOKIE etc.) is between us and the upstream. */
	cr_assert_eq(dns_scan(in, len, &s), 0);
	s.rcode = DNS_RCODE_BADCOOKIE;
	cr_assert_eq(dns_answer_normalize(in, len, &s, out, sizeof(out)), -EPROTO);
}

Test(dns_answer, finish_appends_opt_iff_edns_and_echoes_bits)
{
	uint8_t qpkt[512], buf[2048];
	struct dns_request req;
	size_t len = build_answer(buf, 1, false, 0x8000 | DNS_FLAG_RA | DNS_FLAG_AD);

	request_for(&req, qpkt, true, true, true, true, false);
	int n = dns_answer_finish(buf, len, sizeof(buf), &req, 1232);
	cr_assert_eq(n, (int)len + DNS_ANSWER_OPT_LEN);
	cr_assert_eq(rd16(buf + 10), 1);
	cr_assert_eq(rd16(buf + n - 11 + 1), 41);
	cr_assert_eq(rd16(buf + n - 11 + 3), 1232);
	cr_assert_eq(buf[n - 11 + 7], 0x80, "DO echoed");
	uint16_t f = rd16(buf + 2);
	cr_assert(f & DNS_FLAG_RD);
	cr_assert(f & DNS_FLAG_CD);
	cr_assert(f & DNS_FLAG_AD, "DO client keeps AD");
	cr_assert_not(f & DNS_FLAG_TC);

	/* No EDNS, no RD/CD/DO/AD: no OPT, bits cleared, AD cleared (RFC 6840 §5.8). */
	len = build_answer(buf, 1, false,
	                   0x8000 | DNS_FLAG_RA | DNS_FLAG_AD | DNS_FLAG_RD | DNS_FLAG_CD);
	request_for(&req, qpkt, false, false, false, false, false);
	n = dns_answer_finish(buf, len, sizeof(buf), &req, 512);
	cr_assert_eq(n, (int)len);
	cr_assert_eq(rd16(buf + 10), 0);
	f = rd16(buf + 2);
	cr_assert_not(f & (DNS_FLAG_RD | DNS_FLAG_CD | DNS_FLAG_AD));

	/* AD asked for without DO keeps AD. */
	len = build_answer(buf, 1, false, 0x8000 | DNS_FLAG_AD);
	request_for(&req, qpkt, false, true, false, false, true);
	n = dns_answer_finish(buf, len, sizeof(buf), &req, 512);
	cr_assert(rd16(buf + 2) & DNS_FLAG_AD);
}

Test(dns_answer, finish_truncates_at_the_limit)
{
	uint8_t qpkt[512], buf[4096];
	struct dns_request req;
	size_t len = build_answer(buf, 40, false, 0x8000); /* 34 + 40 * 16 = 674 bytes */

	request_for(&req, qpkt, false, true, false, false, false);
	int n = dns_answer_finish(buf, len, sizeof(buf), &req, 512);
	cr_assert_eq(n, 12 + 22, "header + question");
	cr_assert(rd16(buf + 2) & DNS_FLAG_TC);
	cr_assert_eq(rd16(buf + 6), 0);
	cr_assert_eq(rd16(buf + 8), 0);
	cr_assert_eq(rd16(buf + 10), 0);

	len = build_answer(buf, 80, false, 0x8000); /* 1314 bytes */
	request_for(&req, qpkt, true, true, false, false, false);
	n = dns_answer_finish(buf, len, sizeof(buf), &req, 1232);
	cr_assert_eq(n, 12 + 22 + 11, "header + question + OPT");
	cr_assert(rd16(buf + 2) & DNS_FLAG_TC);
	cr_assert_eq(rd16(buf + 10), 1);
	cr_assert_eq(rd16(buf + 12 + 22 + 1), 41);

	/* Exactly at the limit is not truncated; TCP's 65535 never truncates this. */
	len = build_answer(buf, 40, false, 0x8000);
	request_for(&req, qpkt, false, true, false, false, false);
	cr_assert_eq(dns_answer_finish(buf, len, sizeof(buf), &req, len), (int)len);
	cr_assert_not(rd16(buf + 2) & DNS_FLAG_TC);
	len = build_answer(buf, 80, false, 0x8000);
	request_for(&req, qpkt, true, true, false, false, false);
	cr_assert_eq(dns_answer_finish(buf, len, sizeof(buf), &req, DNS_MSG_MAX), (int)len + 11);
}

Test(dns_answer, finish_emsgsize)
{
	uint8_t qpkt[512], buf[256];
	struct dns_request req;
	size_t len = build_answer(buf, 1, false, 0x8000);

	request_for(&req, qpkt, true, true, false, false, false);
	cr_assert_eq(dns_answer_finish(buf, len, len + 5, &req, 1232), -EMSGSIZE,
	             "no room for OPT");
	cr_assert_eq(dns_answer_finish(buf, 20, sizeof(buf), &req, 1232), -EMSGSIZE,
	             "shorter than header + question");
}

Test(dns_answer, normalize_passes_on_answers_too_large_to_cache)
{
	static uint8_t in[4096], out[4096];
	struct dns_scan s;
	size_t len = build_answer(in, DNS_MAX_TTL_OFFSETS + 2, true, 0x8000);

	cr_assert_eq(dns_scan(in, len, &s), -E2BIG);
	int n = dns_answer_normalize(in, len, &s, out, sizeof(out));
	cr_assert_eq(n, (int)len - 11, "a well-formed answer is passed on (%d)", n);
	cr_assert_gt(s.n_ttl, DNS_MAX_TTL_OFFSETS, "and marked as not cacheable");
	cr_assert_eq(rd16(out + 6), DNS_MAX_TTL_OFFSETS + 2);
}
