/*
 * dns_answer.c: normalize (strip the upstream's OPT, clear AA, set RA,
 * patch the scan) and finish (RD/CD echo, AD rule, our OPT iff EDNS, truncation).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- OPT before other additional records ---- */

/*
 * QD example.com A; AN example.com A 1.2.3.4; AR: OPT first (RFC 6891 does
 * not make it last), then ns1.example.com A, then an AAAA whose owner is a
 * compression pointer to that A record's owner, which lies after the OPT.
 */
static const uint8_t opt_first[] = {
    0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 3,
    /* 12: question */
    7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1,
    /* 29: answer */
    0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 1, 2, 3, 4,
    /* 45: OPT, size 4096, no options */
    0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0,
    /* 56: ns1.example.com A 5.6.7.8 */
    3, 'n', 's', '1', 0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 5, 6, 7, 8,
    /* 76: (pointer to 56) AAAA 2001:db8::1 */
    0xc0, 56, 0, 28, 0, 1, 0, 0, 1, 0x2c, 0, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 1};

static const uint8_t ns1_example_com[] = "\3ns1\7example\3com";

/* Cutting the OPT out shifted the AAAA's pointer target: its owner read as ".". */
Test(dns_answer, opt_before_compressed_additional_records)
{
	struct dns_scan s;
	uint8_t out[512];
	cr_assert_eq(dns_scan(opt_first, sizeof(opt_first), &s), 0);
	cr_assert(s.has_opt);
	int n = dns_answer_normalize(opt_first, sizeof(opt_first), &s, out, sizeof(out));
	cr_assert_gt(n, 0, "normalize: %d", n);
	cr_assert_not(s.has_opt);
	cr_assert_eq(s.ancount, 1);

	/* Every additional record left must still carry its own owner name. */
	struct wire w = wire_init(out, (size_t)n);
	wire_skip(&w, DNS_HDR_LEN);
	cr_assert_eq(dns_name_skip(&w), 0);
	wire_skip(&w, 4);
	for (unsigned i = 0; i < s.ancount + s.nscount; i++) {
		cr_assert_eq(dns_name_skip(&w), 0);
		wire_skip(&w, 8);
		wire_skip(&w, wire_u16(&w));
	}
	for (unsigned i = 0; i < s.arcount; i++) {
		uint8_t name[DNS_NAME_MAX];
		size_t nlen = 0;
		cr_assert_eq(dns_name_read(&w, name, &nlen, 0), 0);
		cr_assert_eq(nlen, sizeof(ns1_example_com), "additional RR %u: owner of %zu octets",
		             i, nlen);
		cr_assert_eq(memcmp(name, ns1_example_com, nlen), 0);
		wire_skip(&w, 8);
		wire_skip(&w, wire_u16(&w));
	}
	cr_assert_eq(wire_end(&w), 0);
	/* The fix drops the OPT and what follows it (RFC 2181 §9 allows it). */
	cr_assert_eq(n, 45);
	cr_assert_eq(s.arcount, 0);
	cr_assert_eq(memcmp(out + 12, opt_first + 12, 33), 0);
}

/* The common case, OPT last: only the OPT goes, the glue after the answer stays. */
Test(dns_answer, opt_last_removed_only)
{
	uint8_t ans[sizeof(opt_first)];
	static const uint8_t tail[] = {/* 45: ns1.example.com A */
	                               3, 'n', 's', '1', 0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4,
	                               5, 6, 7, 8,
	                               /* 65: (pointer to 45) AAAA */
	                               0xc0, 45, 0, 28, 0, 1, 0, 0, 1, 0x2c, 0, 16, 0x20, 0x01,
	                               0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	                               /* 93: OPT */
	                               0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0};
	_Static_assert(sizeof(tail) + 45 == sizeof(opt_first), "same records");
	memcpy(ans, opt_first, 45);
	memcpy(ans + 45, tail, sizeof(tail));
	struct dns_scan s;
	uint8_t out[512];
	cr_assert_eq(dns_scan(ans, sizeof(ans), &s), 0);
	int n = dns_answer_normalize(ans, sizeof(ans), &s, out, sizeof(out));
	cr_assert_eq(n, (int)sizeof(ans) - 11);
	cr_assert_eq(s.arcount, 2);
	cr_assert_eq(memcmp(out + 12, ans + 12, (size_t)n - 12), 0);
}

/* ---- the patched scan equals a fresh one ---- */

/* normalize's *s against dns_scan of what it wrote: every field, every TTL offset. */
static void expect_patched_equals_fresh(const uint8_t *ans, size_t len, const char *what)
{
	static uint8_t out[65536];
	struct dns_scan patched, fresh;
	int r = dns_scan(ans, len, &patched);

	cr_assert(r == 0 || r == -E2BIG, "%s: scan %d", what, r);
	int n = dns_answer_normalize(ans, len, &patched, out, sizeof(out));
	if (n < 0)
		return; /* not passed on: nothing to compare */
	r = dns_scan(out, (size_t)n, &fresh);
	if (r == -E2BIG) {
		cr_assert_gt(patched.n_ttl, DNS_MAX_TTL_OFFSETS, "%s: must not be cached", what);
		return;
	}
	cr_assert_eq(r, 0, "%s: the stored form scans", what);
	cr_assert_eq(memcmp(&patched, &fresh, sizeof(fresh)), 0,
	             "%s: patched scan differs from a fresh one (n_ttl %zu/%zu arcount %u/%u)",
	             what, patched.n_ttl, fresh.n_ttl, patched.arcount, fresh.arcount);
}

Test(dns_answer, patched_scan_equals_a_fresh_scan)
{
	static uint8_t b[4096];

	expect_patched_equals_fresh(opt_first, sizeof(opt_first), "opt_first");
	for (unsigned n_a = 0; n_a < 4; n_a++)
		for (int opt = 0; opt < 2; opt++) {
			size_t len = build_answer(b, n_a, opt, 0x8580);
			expect_patched_equals_fresh(b, len, "built");
		}
	size_t len = build_answer(b, DNS_MAX_TTL_OFFSETS + 2, true, 0x8000);
	expect_patched_equals_fresh(b, len, "too many records");
	/* OPT first, then exactly enough records after it to overflow: the cut makes it fit. */
	len = build_answer(b, DNS_MAX_TTL_OFFSETS - 1, false, 0x8000);
	static const uint8_t o[] = {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0};
	memcpy(b + len, o, sizeof(o));
	len += sizeof(o);
	for (int i = 0; i < 3; i++) {
		static const uint8_t rr[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 9};
		memcpy(b + len, rr, sizeof(rr));
		len += sizeof(rr);
	}
	b[11] = 4; /* ARCOUNT: OPT + 3 */
	expect_patched_equals_fresh(b, len, "overflow only past the OPT");
}

/* Every response among the captured messages (tests/vectors/dns). */
Test(dns_answer, patched_scan_equals_a_fresh_scan_on_vectors)
{
	const char *d = getenv("ANYCACHE_VECTORS");
	char path[1024], line[4096];
	unsigned responses = 0;

	cr_assert_not_null(d, "ANYCACHE_VECTORS not set (run through meson test)");
	snprintf(path, sizeof(path), "%s/dns/MANIFEST.tsv", d);
	FILE *m = fopen(path, "r");
	cr_assert_not_null(m);
	while (fgets(line, sizeof(line), m)) {
		char file[256], kind[32];
		/* file, producer, transport, kind: tab-separated */
		if (sscanf(line, "%255[^\t]\t%*[^\t]\t%*[^\t]\t%31[^\t]", file, kind) != 2 ||
		    strcmp(kind, "response"))
			continue;
		static uint8_t pkt[65536];
		snprintf(path, sizeof(path), "%s/dns/%s", d, file);
		FILE *f = fopen(path, "rb");
		cr_assert_not_null(f, "%s", path);
		size_t len = fread(pkt, 1, sizeof(pkt), f);
		fclose(f);
		expect_patched_equals_fresh(pkt, len, file);
		responses++;
	}
	fclose(m);
	cr_assert_gt(responses, 50, "responses found: %u", responses);
}

static uint32_t ttl_of(const uint8_t *b, unsigned i)
{
	const uint8_t *p = b + 12 + 22 + 16 * i + 6;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void set_ttl(uint8_t *b, unsigned i, uint32_t t)
{
	uint8_t *p = b + 12 + 22 + 16 * i + 6;
	p[0] = (uint8_t)(t >> 24);
	p[1] = (uint8_t)(t >> 16);
	p[2] = (uint8_t)(t >> 8);
	p[3] = (uint8_t)t;
}

/*
 * Issue 10, item 9: every answer's TTLs are clamped (not only cached
 * copies): a top bit set reads as 0 (RFC 2181 §8), then [lo, hi].
 */
Test(dns_answer, clamp_ttls_rfc2181_and_bounds)
{
	uint8_t b[512];
	size_t len = build_answer(b, 4, false, 0x8180);
	set_ttl(b, 0, 0x80000001u); /* top bit: 0, then raised to lo */
	set_ttl(b, 1, 999999);      /* above hi */
	set_ttl(b, 2, 120);         /* inside */
	set_ttl(b, 3, 1);           /* below lo */
	cr_assert_eq(dns_answer_clamp_ttls(b, len, 5, 86400), 0);
	cr_assert_eq(ttl_of(b, 0), 5);
	cr_assert_eq(ttl_of(b, 1), 86400);
	cr_assert_eq(ttl_of(b, 2), 120);
	cr_assert_eq(ttl_of(b, 3), 5);
	cr_assert_eq(dns_answer_clamp_ttls(b, len, 0, 86400), 0);
	set_ttl(b, 0, 0xffffffffu);
	cr_assert_eq(dns_answer_clamp_ttls(b, len, 0, 86400), 0);
	cr_assert_eq(ttl_of(b, 0), 0);
}

/* A message that does not walk is left as it was. */
Test(dns_answer, clamp_ttls_rejects_bad_and_leaves_it)
{
	uint8_t b[512], copy[512];
	size_t len = build_answer(b, 2, false, 0x8180);
	set_ttl(b, 0, 999999);
	b[7] = 3; /* ANCOUNT claims one record more than there is */
	memcpy(copy, b, len);
	cr_assert_eq(dns_answer_clamp_ttls(b, len, 0, 60), -EBADMSG);
	cr_assert_eq(memcmp(b, copy, len), 0);
	cr_assert_eq(dns_answer_clamp_ttls(b, len - 1, 0, 60), -EBADMSG);
}
