/*
 * rand.c: ChaCha20 fast-key-erasure CSPRNG (see rand.h).
 */
#include "core/rand.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static inline uint32_t rotl(uint32_t v, int n)
{
	return (v << n) | (v >> (32 - n));
}

/* RFC 8439 §2.1 */
#define QR(a, b, c, d)                                                                             \
	do {                                                                                       \
		a += b;                                                                            \
		d = rotl(d ^ a, 16);                                                               \
		c += d;                                                                            \
		b = rotl(b ^ c, 12);                                                               \
		a += b;                                                                            \
		d = rotl(d ^ a, 8);                                                                \
		c += d;                                                                            \
		b = rotl(b ^ c, 7);                                                                \
	} while (0)

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void chacha20_block(const uint32_t key[8], uint32_t counter, const uint32_t nonce[3],
                    uint8_t out[CHACHA20_BLOCK_LEN])
{
	/* RFC 8439 §2.3: constants, key, counter, nonce. */
	const uint32_t in[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, key[0], key[1],
	                         key[2],     key[3],     key[4],     key[5],     key[6], key[7],
	                         counter,    nonce[0],   nonce[1],   nonce[2]};
	uint32_t x[16];

	memcpy(x, in, sizeof(x));
	for (int i = 0; i < 10; i++) {
		QR(x[0], x[4], x[8], x[12]);
		QR(x[1], x[5], x[9], x[13]);
		QR(x[2], x[6], x[10], x[14]);
		QR(x[3], x[7], x[11], x[15]);
		QR(x[0], x[5], x[10], x[15]);
		QR(x[1], x[6], x[11], x[12]);
		QR(x[2], x[7], x[8], x[13]);
		QR(x[3], x[4], x[9], x[14]);
	}
	for (int i = 0; i < 16; i++)
		put_le32(out + 4 * i, x[i] + in[i]);
}

/* getrandom() into the key (XOR, so a failed or short read never weakens it). */
static int mix_os_entropy(struct rand *r)
{
	uint8_t k[CHACHA20_KEY_LEN];
	size_t got = 0;

	while (got < sizeof(k)) {
		ssize_t n = getrandom(k + got, sizeof(k) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	for (int i = 0; i < 8; i++)
		r->key[i] ^= get_le32(k + 4 * i);
	memset(k, 0, sizeof(k));
	return 0;
}

/* One refill: RAND_BLOCKS blocks under the key; the first 32 bytes become the next key. */
static void refill(struct rand *r)
{
	static const uint32_t nonce[3] = {0, 0, 0};

	if (r->since_reseed >= RAND_RESEED_BYTES) {
		/* A failed getrandom() leaves the (still evolving) key as it was. */
		if (mix_os_entropy(r) == 0)
			r->reseeds++;
		r->since_reseed = 0;
	}
	/* Each key is used for one refill only, so counter and nonce may start at 0. */
	for (uint32_t i = 0; i < RAND_BLOCKS; i++)
		chacha20_block(r->key, i, nonce, r->buf + (size_t)i * CHACHA20_BLOCK_LEN);
	for (int i = 0; i < 8; i++)
		r->key[i] = get_le32(r->buf + 4 * i);
	memset(r->buf, 0, CHACHA20_KEY_LEN);
	r->pos = CHACHA20_KEY_LEN;
}

void rand_init_key(struct rand *r, const uint8_t key[CHACHA20_KEY_LEN])
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < 8; i++)
		r->key[i] = get_le32(key + 4 * i);
	r->pos = sizeof(r->buf);
}

int rand_init(struct rand *r)
{
	static const uint8_t zero[CHACHA20_KEY_LEN];

	rand_init_key(r, zero);
	return mix_os_entropy(r);
}

void rand_bytes(struct rand *r, void *out, size_t n)
{
	uint8_t *o = out;

	while (n > 0) {
		if (r->pos == sizeof(r->buf))
			refill(r);
		size_t take = sizeof(r->buf) - r->pos;
		if (take > n)
			take = n;
		memcpy(o, r->buf + r->pos, take);
		/* Handed-out bytes must not stay behind (fast key erasure). */
		memset(r->buf + r->pos, 0, take);
		r->pos += take;
		r->since_reseed += take;
		o += take;
		n -= take;
	}
}

uint32_t rand_u32(struct rand *r)
{
	uint8_t b[4];
	rand_bytes(r, b, sizeof(b));
	return get_le32(b);
}

uint16_t rand_u16(struct rand *r)
{
	uint8_t b[2];
	rand_bytes(r, b, sizeof(b));
	return (uint16_t)(b[0] | b[1] << 8);
}

/* D. Lemire, "Fast Random Integer Generation in an Interval" (2019): multiply, and reject
 * the few low products that would make some results more likely than others. */
uint32_t rand_uniform(struct rand *r, uint32_t bound)
{
	if (bound == 0)
		return 0;
	uint64_t m = (uint64_t)rand_u32(r) * bound;
	uint32_t low = (uint32_t)m;
	if (low < bound) {
		uint32_t floor = (uint32_t)-bound % bound;
		while (low < floor) {
			m = (uint64_t)rand_u32(r) * bound;
			low = (uint32_t)m;
		}
	}
	return (uint32_t)(m >> 32);
}
