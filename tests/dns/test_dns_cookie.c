/*
 * dns_cookie.c + dns_cookie_mac.c: RFC 9018 Appendix A byte for byte through
 * OpenSSL's SipHash, the RFC 7873 §5.2 verdicts, the RFC 9018 §4.3 time
 * window, rollover, and adding the option to an answer.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dns/dns_answer.h"
#include "dns/dns_cookie.h"
#include "dns/dns_cookie_mac.h"
#include "dns/dns_wire.h"

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	for (; s[0] && s[1] && n < cap; s += 2) {
		unsigned v;
		cr_assert_eq(sscanf(s, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
	}
	return n;
}

static struct dns_cookie_mac *mac_for(const char *cur, const char *old)
{
	uint8_t sec[2][DNS_COOKIE_SECRET_LEN];
	struct dns_cookie_mac *m;

	cr_assert_eq(unhex(cur, sec[0], 16), 16);
	if (old)
		cr_assert_eq(unhex(old, sec[1], 16), 16);
	cr_assert_eq(dns_cookie_mac_new((const uint8_t(*)[16])sec, old ? 2 : 1, &m), 0);
	return m;
}

static const uint8_t ip_a1[4] = {198, 51, 100, 100};
static const uint8_t ip_a3[4] = {203, 0, 113, 203};
static const uint8_t ip_a4[16] = {0x20, 0x01, 0x0d, 0xb8, 0x02, 0x20, 0x00, 0x01,
                                  0x59, 0xde, 0xd0, 0xf4, 0x87, 0x69, 0x82, 0xb8};

#define SECRET_A   "e5e973e5a6b2a43f48e7dc849e37bfcf"
#define SECRET_OLD "dd3bdf9344b678b185a6f5cb60fca715"
#define SECRET_NEW "445536bcd2513298075a5d379663c962"

/* Checks query cookie q at now against the expected verdict and answer. */
static void expect(struct dns_cookie_mac *m, const char *q, const uint8_t *ip, size_t iplen,
                   uint32_t now, enum dns_cookie_verdict v, const char *answer)
{
	struct dns_cookie_keys k = dns_cookie_mac_keys(m);
	struct dns_cookie_result r;
	uint8_t opt[40], want[DNS_COOKIE_LEN];
	size_t n = unhex(q, opt, sizeof(opt));

	cr_assert_eq(dns_cookie_check(&k, opt, n, ip, iplen, now, &r), 0);
	cr_assert_eq(r.verdict, v, "%s at %u: verdict %d, want %d", q, now, r.verdict, v);
	if (answer) {
		cr_assert_eq(unhex(answer, want, sizeof(want)), DNS_COOKIE_LEN);
		cr_assert_arr_eq(r.answer, want, DNS_COOKIE_LEN, "%s: wrong answer cookie", q);
	}
}

Test(dns_cookie, rfc9018_a1_learning_a_new_server_cookie)
{
	struct dns_cookie_mac *m = mac_for(SECRET_A, NULL);
	expect(m, "2464c4abcf10c957", ip_a1, 4, 1559731985, DNS_COOKIE_CLIENT_ONLY,
	       "2464c4abcf10c957010000005cf79f111f8130c3eee29480");
	dns_cookie_mac_free(m);
}

Test(dns_cookie, rfc9018_a2_renewed_after_half_an_hour)
{
	struct dns_cookie_mac *m = mac_for(SECRET_A, NULL);
	/* 40 minutes later: valid, older than 30 min, so a new one (§4.3). */
	expect(m, "2464c4abcf10c957010000005cf79f111f8130c3eee29480", ip_a1, 4, 1559734385,
	       DNS_COOKIE_VALID, "2464c4abcf10c957010000005cf7a871d4a564a1442aca77");
	/* 10 minutes after it was made: valid and echoed as it is. */
	expect(m, "2464c4abcf10c957010000005cf79f111f8130c3eee29480", ip_a1, 4, 1559732585,
	       DNS_COOKIE_VALID, "2464c4abcf10c957010000005cf79f111f8130c3eee29480");
	dns_cookie_mac_free(m);
}

Test(dns_cookie, rfc9018_a3_reserved_octets_are_hashed)
{
	struct dns_cookie_mac *m = mac_for(SECRET_A, NULL);
	const char *q = "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5";
	/* Made at 1559727985 with reserved 0xabcdef: good shortly after... */
	expect(m, q, ip_a3, 4, 1559727985 + 60, DNS_COOKIE_VALID, q);
	/* ...but the example's 1 h 52 min later is past the hour of §4.3: a new one
	 * all the same, the one the RFC shows (reserved zero). */
	expect(m, q, ip_a3, 4, 1559734700, DNS_COOKIE_BAD,
	       "fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e");
	dns_cookie_mac_free(m);
}

Test(dns_cookie, rfc9018_a4_ipv6_with_rolled_over_secret)
{
	const char *q = "22681ab97d52c298010000005cf7c57926556bd0934c72f8";
	const char *a = "22681ab97d52c298010000005cf7c609a6bb79d16625507a";
	struct dns_cookie_mac *m = mac_for(SECRET_NEW, SECRET_OLD);
	struct dns_cookie_keys k = dns_cookie_mac_keys(m);
	struct dns_cookie_result r;
	uint8_t opt[24];

	/* The old secret still vouches for it; the answer uses the new one. */
	expect(m, q, ip_a4, 16, 1559741961, DNS_COOKIE_VALID, a);
	unhex(q, opt, 24);
	cr_assert_eq(dns_cookie_check(&k, opt, 24, ip_a4, 16, 1559741961, &r), 0);
	cr_assert(r.renewed);
	dns_cookie_mac_free(m);
	/* Once the old secret is gone: not ours any more. */
	m = mac_for(SECRET_NEW, NULL);
	expect(m, q, ip_a4, 16, 1559741961, DNS_COOKIE_BAD, a);
	dns_cookie_mac_free(m);
}

Test(dns_cookie, malformed_lengths_rfc7873_5_2_2)
{
	struct dns_cookie_mac *m = mac_for(SECRET_A, NULL);
	struct dns_cookie_keys k = dns_cookie_mac_keys(m);
	struct dns_cookie_result r;
	uint8_t opt[64] = {0};
	size_t lens[] = {0, 1, 7, 9, 12, 15, 41, 64};

	for (unsigned i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		cr_assert_eq(dns_cookie_check(&k, opt, lens[i], ip_a1, 4, 1000, &r), 0);
		cr_assert_eq(r.verdict, DNS_COOKIE_MALFORMED, "length %zu", lens[i]);
	}
	/* 16..40 is well formed: a server cookie that is not ours is BAD, not FORMERR. */
	for (size_t len = 16; len <= 40; len++) {
		cr_assert_eq(dns_cookie_check(&k, opt, len, ip_a1, 4, 1000, &r), 0);
		cr_assert_eq(r.verdict, DNS_COOKIE_BAD, "length %zu", len);
		cr_assert_arr_eq(r.answer, opt, 8, "the client cookie is echoed");
	}
	dns_cookie_mac_free(m);
}

Test(dns_cookie, bad_server_cookies)
{
	struct dns_cookie_mac *m = mac_for(SECRET_A, NULL);
	struct dns_cookie_keys k = dns_cookie_mac_keys(m);
	struct dns_cookie_result r;
	uint8_t good[24], opt[40];
	uint32_t t0 = 1559731985;

	unhex("2464c4abcf10c957010000005cf79f111f8130c3eee29480", good, 24);
	/* Every single-bit flip of the server cookie, another client address or
	 * client cookie: BAD, and the answer is a fresh good cookie. */
	for (unsigned bit = 64; bit < 192; bit++) {
		memcpy(opt, good, 24);
		opt[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_eq(dns_cookie_check(&k, opt, 24, ip_a1, 4, t0 + 10, &r), 0);
		/* A flipped timestamp may also leave the window: BAD either way. */
		cr_assert_eq(r.verdict, DNS_COOKIE_BAD, "bit %u", bit);
		uint8_t again[24];
		memcpy(again, r.answer, 24);
		cr_assert_eq(dns_cookie_check(&k, again, 24, ip_a1, 4, t0 + 10, &r), 0);
		cr_assert_eq(r.verdict, DNS_COOKIE_VALID, "the new cookie is good (bit %u)", bit);
	}
	cr_assert_eq(dns_cookie_check(&k, good, 24, ip_a3, 4, t0 + 10, &r), 0);
	cr_assert_eq(r.verdict, DNS_COOKIE_BAD, "another client address");
	memcpy(opt, good, 24);
	opt[0] ^= 1;
	cr_assert_eq(dns_cookie_check(&k, opt, 24, ip_a1, 4, t0 + 10, &r), 0);
	cr_assert_eq(r.verdict, DNS_COOKIE_BAD, "another client cookie");
	/* Longer than ours (our 16 octets + 8): not ours. */
	memcpy(opt, good, 24);
	memset(opt + 24, 0, 8);
	cr_assert_eq(dns_cookie_check(&k, opt, 32, ip_a1, 4, t0 + 10, &r), 0);
	cr_assert_eq(r.verdict, DNS_COOKIE_BAD);
	dns_cookie_mac_free(m);
}

Test(dns_cookie, time_window_rfc9018_4_3)
{
	struct dns_cookie_mac *m = mac_for(SECRET_A, NULL);
	const char *q = "2464c4abcf10c957010000005cf79f111f8130c3eee29480";
	uint32_t t0 = 1559731985;

	expect(m, q, ip_a1, 4, t0, DNS_COOKIE_VALID, q);
	expect(m, q, ip_a1, 4, t0 + DNS_COOKIE_RENEW_S - 1, DNS_COOKIE_VALID, q);
	expect(m, q, ip_a1, 4, t0 + DNS_COOKIE_RENEW_S, DNS_COOKIE_VALID, NULL);
	expect(m, q, ip_a1, 4, t0 + DNS_COOKIE_MAX_AGE_S, DNS_COOKIE_VALID, NULL);
	expect(m, q, ip_a1, 4, t0 + DNS_COOKIE_MAX_AGE_S + 1, DNS_COOKIE_BAD, NULL);
	/* From another node whose clock is ahead: up to 5 minutes (§4.3). */
	expect(m, q, ip_a1, 4, t0 - DNS_COOKIE_MAX_AHEAD_S, DNS_COOKIE_VALID, q);
	expect(m, q, ip_a1, 4, t0 - DNS_COOKIE_MAX_AHEAD_S - 1, DNS_COOKIE_BAD, NULL);
	dns_cookie_mac_free(m);
}

Test(dns_cookie, serial_arithmetic_across_the_wrap)
{
	struct dns_cookie_mac *m = mac_for(SECRET_A, NULL);
	struct dns_cookie_keys k = dns_cookie_mac_keys(m);
	struct dns_cookie_result r, r2;
	uint8_t cc[8] = {1, 2, 3, 4, 5, 6, 7, 8};

	/* Made at 2^32 - 10 s, checked 20 s later (the counter wrapped). */
	cr_assert_eq(dns_cookie_check(&k, cc, 8, ip_a1, 4, UINT32_MAX - 9, &r), 0);
	cr_assert_eq(r.verdict, DNS_COOKIE_CLIENT_ONLY);
	cr_assert_eq(dns_cookie_check(&k, r.answer, 24, ip_a1, 4, 10, &r2), 0);
	cr_assert_eq(r2.verdict, DNS_COOKIE_VALID);
	dns_cookie_mac_free(m);
}

/* A MAC that fails: the check says so instead of judging. */
static int failing_mac(void *ctx, unsigned idx, const uint8_t *msg, size_t len, uint8_t out[8])
{
	(void)ctx, (void)idx, (void)msg, (void)len, (void)out;
	return -EIO;
}

Test(dns_cookie, mac_failure_is_an_error)
{
	struct dns_cookie_keys k = {.mac = failing_mac, .n = 1};
	struct dns_cookie_result r;
	uint8_t opt[24] = {0};

	opt[8] = 1;
	cr_assert_eq(dns_cookie_check(&k, opt, 8, ip_a1, 4, 0, &r), -EIO);
	cr_assert_eq(dns_cookie_check(&k, opt, 24, ip_a1, 4, 0, &r), -EIO);
	cr_assert_eq(dns_cookie_check(&k, opt, 24, ip_a1, 3, 0, &r), -EINVAL);
}

/* A query with EDNS and a COOKIE option of len octets. */
static size_t query_with_cookie(uint8_t *q, const uint8_t *cookie, size_t len)
{
	static const uint8_t head[] = {0xab, 0xcd, 1,   0,   0,  1,    0,   0,   0,   0, 0, 1,
	                               3,    'w',  'w', 'w', 4,  't',  'e', 's', 't', 0, 0, 1,
	                               0,    1,    0,   0,   41, 0x10, 0,   0,   0,   0, 0};
	size_t n = sizeof(head);

	memcpy(q, head, n);
	q[n++] = 0;
	q[n++] = (uint8_t)(4 + len);
	q[n++] = 0;
	q[n++] = 10;
	q[n++] = 0;
	q[n++] = (uint8_t)len;
	memcpy(q + n, cookie, len);
	return n + len;
}

Test(dns_cookie, append_to_every_builder_s_answer)
{
	uint8_t q[128], a[600], cookie[DNS_COOKIE_LEN];
	struct dns_request req;
	uint8_t rcode;
	struct wbuf b;
	int n;

	for (unsigned i = 0; i < sizeof(cookie); i++)
		cookie[i] = (uint8_t)(0xa0 + i);
	size_t qlen = query_with_cookie(q, cookie, 8);
	cr_assert_eq(dns_request_parse(q, qlen, &req, &rcode), 0);
	cr_assert_eq(rcode, DNS_RCODE_NOERROR);
	cr_assert(req.has_cookie);
	cr_assert_eq(req.cookie_len, 8);

	/* An error answer, the identity answer, a finished stored answer: each
	 * ends with our empty OPT, and takes the option. */
	for (unsigned kind = 0; kind < 3; kind++) {
		b = wbuf_init(a, sizeof(a));
		if (kind == 0) {
			n = dns_build_error(&b, &req, DNS_RCODE_BADCOOKIE);
		} else if (kind == 1) {
			n = dns_build_identity(&b, &req, "node");
		} else {
			struct dns_request plain = req;
			plain.edns = false;
			n = dns_build_error(&b, &plain, DNS_RCODE_NOERROR);
			cr_assert_gt(n, 0);
			n = dns_answer_finish(a, (size_t)n, sizeof(a), &req,
			                      512 - DNS_COOKIE_OPT_LEN);
		}
		cr_assert_gt(n, 0);
		int m = dns_cookie_append(a, (size_t)n, sizeof(a), cookie);
		cr_assert_eq(m, n + DNS_COOKIE_OPT_LEN, "kind %u", kind);
		struct dns_scan s;
		cr_assert_eq(dns_scan(a, (size_t)m, &s), 0, "kind %u scans", kind);
		cr_assert(s.has_opt);
		cr_assert_eq(s.opt_len, 11 + DNS_COOKIE_OPT_LEN);
		cr_assert_eq(a[m - 26], 0);
		cr_assert_eq(a[m - 25], 24);
		cr_assert_arr_eq(a + m - 24, cookie, 24);
		if (kind == 0)
			cr_assert_eq(s.rcode, DNS_RCODE_BADCOOKIE);
	}
	/* No OPT at the end: refused, message unchanged. */
	struct dns_request plain = req;
	plain.edns = false;
	b = wbuf_init(a, sizeof(a));
	n = dns_build_error(&b, &plain, DNS_RCODE_NOERROR);
	cr_assert_eq(dns_cookie_append(a, (size_t)n, sizeof(a), cookie), -EINVAL);
	/* No room. */
	b = wbuf_init(a, sizeof(a));
	n = dns_build_error(&b, &req, DNS_RCODE_NOERROR);
	cr_assert_eq(dns_cookie_append(a, (size_t)n, (size_t)n + 27, cookie), -EMSGSIZE);
	/* An OPT that already carries options is not ours to extend. */
	cr_assert_eq(dns_cookie_append(q, qlen, sizeof(q), cookie), -EINVAL);
}

/*
 * A client's cookie never leaves for the upstream and the upstream's never
 * reaches the cache: the forwarder's one builder (dns_build_query) takes no
 * options, and the stored form (dns_answer_normalize) has no OPT at all.
 */
Test(dns_cookie, never_forwarded_never_cached)
{
	uint8_t q[128], fwd[600], ans[600], norm[600], cookie[24];
	struct dns_request req, up;
	struct dns_scan sc;
	uint8_t rcode;
	struct wbuf b;

	memset(cookie, 0x5a, sizeof(cookie));
	size_t qlen = query_with_cookie(q, cookie, 24);
	cr_assert_eq(dns_request_parse(q, qlen, &req, &rcode), 0);
	cr_assert(req.has_cookie);
	b = wbuf_init(fwd, sizeof(fwd));
	int n = dns_build_query(&b, 7, req.qname_lc, req.qname_len, req.qtype, req.qclass, req.cd,
	                        req.do_bit);
	cr_assert_gt(n, 0);
	cr_assert_eq(dns_request_parse(fwd, (size_t)n, &up, &rcode), 0);
	cr_assert(up.edns);
	cr_assert_not(up.has_cookie);
	cr_assert_eq(up.opts_len, 0, "the upstream query carries no option");

	/* The upstream answers with its own cookie: gone from the stored form. */
	memcpy(ans, fwd, (size_t)n);
	ans[2] |= 0x80; /* QR */
	size_t alen = (size_t)n;
	alen = (size_t)dns_cookie_append(ans, alen, sizeof(ans), cookie);
	cr_assert_eq(dns_scan(ans, alen, &sc), 0);
	cr_assert(sc.has_opt);
	int m = dns_answer_normalize(ans, alen, &sc, norm, sizeof(norm));
	cr_assert_gt(m, 0);
	cr_assert_not(sc.has_opt);
	cr_assert_eq(wire_get_u16_at(norm + 10), 0, "no additional record left");
	cr_assert_null(memmem(norm, (size_t)m, cookie, 8), "cookie octets in the stored form");
}
