/*
 * Regression test for src/dns/dns_answer.c (review): an OPT that is not the
 * last record. Kept apart from test_dns_answer.c, which another engineer owns.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "dns/dns_answer.h"

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
Test(dns_answer_opt, opt_before_compressed_additional_records)
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
Test(dns_answer_opt, opt_last_removed_only)
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
