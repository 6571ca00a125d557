/* Tests for src/dns/dns_name.c: decompression rules, compare, case. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "dns/dns_wire.h"

/* A message buffer: 12 zero header octets, then whatever the test appends. */
struct msg {
	uint8_t b[1024];
	size_t len;
};

static void msg_init(struct msg *m)
{
	memset(m, 0, sizeof(*m));
	m->len = DNS_HDR_LEN;
}

static size_t put(struct msg *m, const void *p, size_t n)
{
	size_t at = m->len;
	memcpy(m->b + m->len, p, n);
	m->len += n;
	return at;
}

static size_t put_ptr(struct msg *m, size_t target)
{
	uint8_t p[2] = {(uint8_t)(0xC0 | target >> 8), (uint8_t)target};
	return put(m, p, 2);
}

static int read_at(const struct msg *m, size_t off, uint8_t *out, size_t *out_len, size_t *end)
{
	struct wire w = wire_init(m->b, m->len);
	w.off = off;
	int r = dns_name_read(&w, out, out_len, 0);
	if (end)
		*end = w.off;
	return r;
}

#define EXAMPLE                                                                                    \
	"\x07"                                                                                     \
	"example\x04test"

Test(dns_name, plain_and_backward_pointer)
{
	struct msg m;
	msg_init(&m);
	size_t n1 = put(&m, EXAMPLE, sizeof(EXAMPLE)); /* includes root */
	size_t n2 = put(&m, "\x03www", 4);
	put_ptr(&m, n1);
	uint8_t out[DNS_NAME_MAX];
	size_t len, end;
	cr_assert_eq(read_at(&m, n1, out, &len, &end), 0);
	cr_assert_eq(len, 14);
	cr_assert_eq(end, n2);
	cr_assert_eq(read_at(&m, n2, out, &len, &end), 0);
	cr_assert_eq(len, 18);
	cr_assert_eq(end, m.len, "cursor must stop after the pointer");
	cr_assert_eq(memcmp(out, "\x03www" EXAMPLE, 18), 0);
}

Test(dns_name, pointer_to_itself)
{
	struct msg m;
	msg_init(&m);
	size_t at = put_ptr(&m, DNS_HDR_LEN);
	cr_assert_eq(read_at(&m, at, NULL, NULL, NULL), -EBADMSG);
}

Test(dns_name, forward_pointer)
{
	struct msg m;
	msg_init(&m);
	size_t at = put_ptr(&m, 16);
	put(&m,
	    "\x00\x00\x01"
	    "a\x00",
	    5); /* a valid name at 16 */
	cr_assert_eq(read_at(&m, at, NULL, NULL, NULL), -EBADMSG);
	cr_assert_eq(read_at(&m, 16, NULL, NULL, NULL), 0);
}

Test(dns_name, compression_loop)
{
	/* 12: "a" then pointer to 16; 16: pointer to 12. Read from 16: 12 < 16 is
	 * backwards, but the pointer inside the run starting at 12 goes forwards. */
	struct msg m;
	msg_init(&m);
	put(&m,
	    "\x01"
	    "a",
	    2);
	put_ptr(&m, 16);
	size_t at = put_ptr(&m, 12);
	cr_assert_eq(at, 16);
	cr_assert_eq(read_at(&m, at, NULL, NULL, NULL), -EBADMSG);
	cr_assert_eq(read_at(&m, 12, NULL, NULL, NULL), -EBADMSG);
}

Test(dns_name, pointer_into_header)
{
	struct msg m;
	msg_init(&m);
	size_t at = put_ptr(&m, 2);
	cr_assert_eq(read_at(&m, at, NULL, NULL, NULL), -EBADMSG);
}

Test(dns_name, label_types_01_10_rejected)
{
	struct msg m;
	msg_init(&m);
	put(&m, "\x41\x00", 2);
	put(&m, "\x81\x00", 2);
	cr_assert_eq(read_at(&m, 12, NULL, NULL, NULL), -EBADMSG);
	cr_assert_eq(read_at(&m, 14, NULL, NULL, NULL), -EBADMSG);
}

Test(dns_name, label_63_ok_64_not)
{
	struct msg m;
	msg_init(&m);
	uint8_t l[66] = {63};
	memset(l + 1, 'x', 63);
	put(&m, l, 65); /* label + root */
	size_t len;
	cr_assert_eq(read_at(&m, 12, NULL, &len, NULL), 0);
	cr_assert_eq(len, 65);
	m.b[12] = 64; /* 0b01000000: a reserved label type, and too long anyway */
	put(&m, "\x00", 1);
	cr_assert_eq(read_at(&m, 12, NULL, NULL, NULL), -EBADMSG);
}

/* Four labels of 63 plus root = 257; 3x63 + 61 + root = 255 exactly. */
static size_t long_name(uint8_t *p, size_t last)
{
	size_t n = 0;
	for (int i = 0; i < 3; i++) {
		p[n++] = 63;
		memset(p + n, 'a' + i, 63);
		n += 63;
	}
	p[n++] = (uint8_t)last;
	memset(p + n, 'z', last);
	n += last;
	p[n++] = 0;
	return n;
}

Test(dns_name, total_255_ok_256_not)
{
	struct msg m;
	uint8_t p[300];
	msg_init(&m);
	size_t n = long_name(p, 61);
	cr_assert_eq(n, 255);
	put(&m, p, n);
	size_t len;
	uint8_t out[DNS_NAME_MAX];
	cr_assert_eq(read_at(&m, 12, out, &len, NULL), 0);
	cr_assert_eq(len, 255);
	cr_assert_eq(memcmp(out, p, 255), 0);

	msg_init(&m);
	n = long_name(p, 62);
	cr_assert_eq(n, 256);
	put(&m, p, n);
	cr_assert_eq(read_at(&m, 12, out, &len, NULL), -EBADMSG);
}

Test(dns_name, too_long_through_compression)
{
	/* 12: 3 x 63-octet labels + root (193 octets); then 63-octet label + pointer: 257. */
	struct msg m;
	msg_init(&m);
	uint8_t l[64] = {63};
	memset(l + 1, 'q', 63);
	for (int i = 0; i < 3; i++)
		put(&m, l, 64);
	put(&m, "", 1);
	size_t at = put(&m, l, 64);
	put_ptr(&m, 12);
	cr_assert_eq(read_at(&m, 12, NULL, NULL, NULL), 0);
	cr_assert_eq(read_at(&m, at, NULL, NULL, NULL), -EBADMSG);
}

Test(dns_name, hop_limit)
{
	/* 12: root; each later pointer points at the previous one (backwards). */
	struct msg m;
	msg_init(&m);
	put(&m, "", 1);
	size_t prev = 12, at = 12;
	for (int i = 0; i < DNS_NAME_MAX_HOPS + 1; i++) {
		at = put_ptr(&m, prev);
		prev = at;
	}
	size_t len;
	cr_assert_eq(read_at(&m, at - 2, NULL, &len, NULL), 0, "exactly the hop limit is fine");
	cr_assert_eq(len, 1);
	cr_assert_eq(read_at(&m, at, NULL, NULL, NULL), -EBADMSG);
}

Test(dns_name, truncated_everywhere)
{
	struct msg m;
	msg_init(&m);
	put(&m, "\x03www" EXAMPLE, 18);
	size_t full = m.len;
	for (size_t cut = 12; cut < full; cut++) {
		struct wire w = wire_init(m.b, cut);
		w.off = 12;
		cr_assert_eq(dns_name_read(&w, NULL, NULL, 0), -EBADMSG, "cut at %zu", cut);
		cr_assert_eq(w.err, -EBADMSG);
	}
}

Test(dns_name, nocompress_flag)
{
	struct msg m;
	msg_init(&m);
	put(&m, EXAMPLE, sizeof(EXAMPLE));
	size_t at = put(&m, "\x03www", 4);
	put_ptr(&m, 12);
	struct wire w = wire_init(m.b, m.len);
	w.off = at;
	cr_assert_eq(dns_name_read(&w, NULL, NULL, DNS_NAME_NOCOMPRESS), -EBADMSG);
}

Test(dns_name, sticky_error_respected)
{
	struct msg m;
	msg_init(&m);
	put(&m, EXAMPLE, sizeof(EXAMPLE));
	struct wire w = wire_init(m.b, m.len);
	w.off = 12;
	wire_fail(&w, -EBADMSG);
	cr_assert_eq(dns_name_skip(&w), -EBADMSG);
	cr_assert_eq(w.off, 12);
}

Test(dns_name, equal_and_lower)
{
	const uint8_t a[] = "\x03WwW" EXAMPLE;
	const uint8_t b[] = "\x03www\x07"
	                    "ExAmPlE\x04TEST";
	const uint8_t c[] = "\x03wwx" EXAMPLE;
	cr_assert(dns_name_equal(a, sizeof(a), b, sizeof(b)));
	cr_assert_not(dns_name_equal(a, sizeof(a), c, sizeof(c)));
	cr_assert_not(dns_name_equal(a, sizeof(a), b, sizeof(b) - 1));
	/* '@' (0x40) and '`' (0x60) differ by the case bit but are not letters */
	cr_assert_not(dns_name_equal((const uint8_t *)"\x01@", 3, (const uint8_t *)"\x01`", 3));
	uint8_t l[sizeof(a)];
	dns_name_lower(l, a, sizeof(a));
	cr_assert_eq(memcmp(l, "\x03www" EXAMPLE, sizeof(a)), 0);
}

/* The rule spelt out slowly: octet i, if a letter, is upper iff bit i (mod the bits given). */
static void randomize_ref(uint8_t *name, size_t len, const uint8_t *rnd, size_t rnd_len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			continue;
		size_t bit = i % (rnd_len * 8);
		name[i] =
		    (rnd[bit / 8] >> (bit % 8) & 1) ? (uint8_t)(c & ~0x20) : (uint8_t)(c | 0x20);
	}
}

Test(dns_name, randomize_case_matches_the_rule_on_every_octet)
{
	uint8_t a[300], b[300], rnd[DNS_0X20_RANDOM_BYTES];
	uint32_t x = 12345;

	for (int round = 0; round < 200; round++) {
		size_t len = (size_t)(round * 7 % 256) + 1, rl = (size_t)(round % 32) + 1;
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			a[i] = b[i] = (uint8_t)(x >> 16); /* every octet value, letters or not */
		}
		for (size_t i = 0; i < rl; i++) {
			x = x * 1103515245u + 12345u;
			rnd[i] = (uint8_t)(x >> 16);
		}
		dns_name_randomize_case(a, len, rnd, rl);
		randomize_ref(b, len, rnd, rl);
		cr_assert_eq(memcmp(a, b, len), 0, "round %d", round);
	}
}

Test(dns_name, randomize_case)
{
	uint8_t n[] = "\x03www\x07"
	              "example\x04test\x00";
	const size_t len = 18;
	uint8_t orig[18];
	memcpy(orig, n, len);
	uint8_t ones[DNS_0X20_RANDOM_BYTES], zeros[DNS_0X20_RANDOM_BYTES] = {0};
	memset(ones, 0xFF, sizeof(ones));
	dns_name_randomize_case(n, len, ones, sizeof(ones));
	cr_assert_eq(memcmp(n,
	                    "\x03WWW\x07"
	                    "EXAMPLE\x04TEST",
	                    len),
	             0);
	dns_name_randomize_case(n, len, zeros, sizeof(zeros));
	cr_assert_eq(memcmp(n, orig, len), 0);
	/* alternating bits: octet i upper iff bit i set; octet 0 is a length octet */
	uint8_t alt[DNS_0X20_RANDOM_BYTES];
	memset(alt, 0xAA, sizeof(alt)); /* bits 1,3,5,... */
	dns_name_randomize_case(n, len, alt, sizeof(alt));
	cr_assert_eq(memcmp(n,
	                    "\x03WwW\x07"
	                    "ExAmPlE\x04TeSt",
	                    len),
	             0, "got %.*s", (int)len, n);
	cr_assert(dns_name_equal(n, len, orig, len));
	/* every pattern keeps the name equal case-insensitively and keeps non-letters */
	uint8_t weird[] = "\x05"
	                  "a-_9Z\x01\xff";
	uint8_t w0[sizeof(weird)];
	memcpy(w0, weird, sizeof(weird));
	for (unsigned p = 0; p < 256; p++) {
		uint8_t r[1] = {(uint8_t)p};
		dns_name_randomize_case(weird, sizeof(weird), r, 1);
		cr_assert(dns_name_equal(weird, sizeof(weird), w0, sizeof(w0)));
		cr_assert_eq(weird[2], '-');
		cr_assert_eq(weird[7], 0xff);
	}
}

Test(dns_name, from_text)
{
	uint8_t out[DNS_NAME_MAX + 8];
	char big[300], l63[64];

	cr_assert_eq(dns_name_from_text("www.Example.test", out, sizeof(out)), 18);
	cr_assert_arr_eq(out, "\3www\7Example\4test", 18, "case is kept");
	cr_assert_eq(dns_name_from_text("www.example.test.", out, sizeof(out)), 18);
	cr_assert_eq(dns_name_from_text(".", out, sizeof(out)), 1);
	cr_assert_eq(out[0], 0);
	cr_assert_eq(dns_name_from_text("a", out, sizeof(out)), 3);
	/* Empty labels, spaces, escapes, controls, nothing. */
	const char *bad[] = {"", "..", ".a", "a..b", "a b", "a\\.b", "a\tb", "caf\xc3\xa9", NULL};
	for (unsigned i = 0; bad[i]; i++)
		cr_assert_eq(dns_name_from_text(bad[i], out, sizeof(out)), -EINVAL, "'%s'", bad[i]);
	cr_assert_eq(dns_name_from_text(NULL, out, sizeof(out)), -EINVAL);
	/* A 63-octet label is fine, 64 is not. */
	memset(big, 'a', 64);
	big[64] = '\0';
	cr_assert_eq(dns_name_from_text(big, out, sizeof(out)), -EINVAL);
	big[63] = '\0';
	cr_assert_eq(dns_name_from_text(big, out, sizeof(out)), 65);
	/* 255 octets in wire form is the limit: 4 x 63-octet labels make 257. */
	memcpy(l63, big, sizeof(l63));
	snprintf(big, sizeof(big), "%s.%s.%s.%.61s", l63, l63, l63, l63);
	cr_assert_eq(dns_name_from_text(big, out, sizeof(out)), 255);
	snprintf(big, sizeof(big), "%s.%s.%s.%.62s", l63, l63, l63, l63);
	cr_assert_eq(dns_name_from_text(big, out, sizeof(out)), -EINVAL);
	/* A small buffer is refused, never overrun. */
	cr_assert_eq(dns_name_from_text("www.example.test", out, 17), -EINVAL);
	cr_assert_eq(dns_name_from_text("www.example.test", out, 18), 18);
}

/*
 * A pointer back to labels that run on past the pointer itself (into the
 * record that holds it, whose TTL the cache rewrites): refused. Found by
 * fuzz_dns_answer (seed r02): the name changed as the cached answer aged.
 */
Test(dns_name, target_running_past_the_pointer)
{
	struct msg m;
	msg_init(&m);
	size_t t = put(&m, "\x03ns1\x0c", 5); /* a 12-octet label that covers the pointer */
	size_t at = put_ptr(&m, t);
	put(&m, "\0\0\0\0\0\0\0\0\0\0\0", 11);
	cr_assert_eq(read_at(&m, at, NULL, NULL, NULL), -EBADMSG);
	/* The same target ending before the pointer's run is fine. */
	struct msg ok;
	msg_init(&ok);
	t = put(&ok, "\x03ns1\0", 5);
	at = put_ptr(&ok, t);
	cr_assert_eq(read_at(&ok, at, NULL, NULL, NULL), 0);
}
