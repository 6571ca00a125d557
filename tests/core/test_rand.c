/* Tests of core/rand.c: the ChaCha20 block function against RFC 8439's vectors, the
 * fast-key-erasure construction, rekeying, and the bounded integers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/rand.h"

static void hex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(sscanf(s + 2 * i, "%2hhx", &out[i]), 1);
}

static void key_words(const uint8_t *k, uint32_t w[8])
{
	for (int i = 0; i < 8; i++)
		w[i] = (uint32_t)k[4 * i] | (uint32_t)k[4 * i + 1] << 8 |
		       (uint32_t)k[4 * i + 2] << 16 | (uint32_t)k[4 * i + 3] << 24;
}

/* RFC 8439 §2.3.2: key 00..1f, nonce 00:00:00:09:00:00:00:4a:00:00:00:00, counter 1. */
Test(rand, chacha20_block_rfc8439_2_3_2)
{
	uint8_t k[32], want[64], got[64];
	uint32_t kw[8];
	const uint32_t nonce[3] = {0x09000000, 0x4a000000, 0x00000000};

	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)i;
	key_words(k, kw);
	hex("10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
	    "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e",
	    want, 64);
	chacha20_block(kw, 1, nonce, got);
	cr_assert_arr_eq(got, want, 64);
}

/* RFC 8439 Appendix A.1, test vectors #1 and #2: all-zero key and nonce, counters 0 and 1. */
Test(rand, chacha20_block_rfc8439_a1)
{
	uint8_t want[64], got[64];
	const uint32_t zero[8] = {0}, nonce[3] = {0};

	hex("76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
	    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586",
	    want, 64);
	chacha20_block(zero, 0, nonce, got);
	cr_assert_arr_eq(got, want, 64);
	hex("9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
	    "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f",
	    want, 64);
	chacha20_block(zero, 1, nonce, got);
	cr_assert_arr_eq(got, want, 64);
}

/* Fast key erasure: the first 32 bytes of each refill become the key and are never
 * handed out, so the output of a zero key starts with byte 32 of block 0. */
Test(rand, fast_key_erasure_output_and_next_key)
{
	static const uint8_t zero[32];
	uint8_t want[32], got[32], block0[64], next[64];
	uint32_t kw[8];
	const uint32_t z[8] = {0}, nonce[3] = {0};
	struct rand r;

	rand_init_key(&r, zero);
	rand_bytes(&r, got, sizeof(got));
	hex("da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586", want, 32);
	cr_assert_arr_eq(got, want, 32);

	/* Drain the refill: the next one runs under the key taken from block 0. */
	uint8_t sink[RAND_BLOCKS * CHACHA20_BLOCK_LEN];
	rand_bytes(&r, sink, sizeof(r.buf) - CHACHA20_KEY_LEN - sizeof(got));
	chacha20_block(z, 0, nonce, block0);
	key_words(block0, kw);
	chacha20_block(kw, 0, nonce, next);
	rand_bytes(&r, got, sizeof(got));
	cr_assert_arr_eq(got, next + 32, 32);
	/* Neither the key of that refill nor a handed-out byte stays in the state. */
	cr_assert_arr_neq(r.key, kw, sizeof(kw));
	for (size_t i = 0; i < r.pos; i++)
		cr_assert_eq(r.buf[i], 0, "byte %zu was handed out but not wiped", i);
}

Test(rand, refills_and_requests_of_any_size_give_the_same_stream)
{
	static const uint8_t key[32] = {1, 2, 3};
	static uint8_t a[5000], b[5000];
	struct rand r1, r2;
	size_t off = 0, step = 1;

	rand_init_key(&r1, key);
	rand_init_key(&r2, key);
	rand_bytes(&r1, a, sizeof(a));
	while (off < sizeof(b)) {
		size_t n = step < sizeof(b) - off ? step : sizeof(b) - off;
		rand_bytes(&r2, b + off, n);
		off += n;
		step = step * 3 % 97 + 1;
	}
	cr_assert_arr_eq(a, b, sizeof(a));
}

Test(rand, rekeys_from_the_os_after_the_reseed_interval)
{
	static const uint8_t key[32] = {7};
	static uint8_t a[4096], b[4096];
	struct rand r1, r2;

	rand_init_key(&r1, key);
	rand_init_key(&r2, key);
	for (size_t done = 0; done < RAND_RESEED_BYTES; done += sizeof(a)) {
		rand_bytes(&r1, a, sizeof(a));
		rand_bytes(&r2, b, sizeof(b));
	}
	cr_assert_arr_eq(a, b, sizeof(a), "same key, same stream before the reseed");
	cr_assert_eq(r1.reseeds, 0);
	/* The next refills mix getrandom() into each key: the twins part ways. */
	rand_bytes(&r1, a, sizeof(a));
	rand_bytes(&r2, b, sizeof(b));
	cr_assert_eq(r1.reseeds, 1);
	cr_assert_eq(r2.reseeds, 1);
	cr_assert_arr_neq(a, b, sizeof(a));
}

Test(rand, init_from_the_os_gives_different_streams)
{
	struct rand r1, r2;
	uint8_t a[32], b[32];

	cr_assert_eq(rand_init(&r1), 0);
	cr_assert_eq(rand_init(&r2), 0);
	rand_bytes(&r1, a, sizeof(a));
	rand_bytes(&r2, b, sizeof(b));
	cr_assert_arr_neq(a, b, sizeof(a));
}

Test(rand, uniform_stays_in_bounds_and_covers_them_evenly)
{
	static const uint8_t key[32] = {9};
	struct rand r;
	unsigned count[16] = {0};
	const unsigned n = 160000;

	rand_init_key(&r, key);
	cr_assert_eq(rand_uniform(&r, 0), 0);
	cr_assert_eq(rand_uniform(&r, 1), 0);
	for (unsigned i = 0; i < n; i++) {
		uint32_t v = rand_uniform(&r, 16);
		cr_assert_lt(v, 16);
		count[v]++;
	}
	/* Expected 10000 each; sigma ~97: a 6-sigma band. */
	for (int i = 0; i < 16; i++)
		cr_assert(count[i] > 9400 && count[i] < 10600, "value %d came %u times", i,
		          count[i]);
	/* A bound that is not a power of two, near 2^32: still in range. */
	for (int i = 0; i < 1000; i++)
		cr_assert_lt(rand_uniform(&r, 3000000019u), 3000000019u);
	/* 16-bit values: both halves vary. */
	unsigned hi = 0, lo = 0;
	for (int i = 0; i < 64; i++) {
		uint16_t v = rand_u16(&r);
		hi |= v >> 8;
		lo |= v & 0xff;
	}
	cr_assert_eq(hi, 0xff);
	cr_assert_eq(lo, 0xff);
}
