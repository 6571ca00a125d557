/*
 * rand.h: a user-space CSPRNG for the per-query random numbers (upstream
 * query IDs, DNS 0x20 letter case, source-socket choice).
 *
 * ChaCha20 (RFC 8439 §2.3) in the "fast key erasure" construction
 * (D. J. Bernstein, 2017): each refill runs the block function under the
 * current key for RAND_BLOCKS blocks, the first 32 output bytes become the
 * next key at once, the rest is handed out and wiped as it is handed out.
 * So neither the state nor anything left in it can reveal output already
 * given away. Keyed from getrandom(2) at rand_init(), and rekeyed from
 * getrandom() again after every RAND_RESEED_BYTES of output, so a state
 * that leaked (a core dump) stops predicting within that many bytes.
 *
 * Why not arc4random (glibc 2.36 makes one getrandom system call per call:
 * three per cache miss) or OpenSSL's RAND_bytes (a locked, shared DRBG with
 * a few hundred ns of overhead per call): bench/rand_bench.c measures all
 * three; bench/README.md has the figures.
 *
 * THREADS: a struct rand is not shared; each worker owns its own (one per
 * forwarder). OWNERSHIP: transparent so it can be embedded; use only the
 * functions below. No reseed on fork: the daemon never forks after start.
 */
#ifndef ANYCACHE_CORE_RAND_H
#define ANYCACHE_CORE_RAND_H

#include <stddef.h>
#include <stdint.h>

#define RAND_BLOCKS        16 /* ChaCha20 blocks per refill: 1024 bytes, 992 handed out */
#define RAND_RESEED_BYTES  (1u << 20)
#define CHACHA20_KEY_LEN   32
#define CHACHA20_BLOCK_LEN 64

struct rand {
	uint32_t key[8];
	uint8_t buf[RAND_BLOCKS * CHACHA20_BLOCK_LEN];
	size_t pos;          /* next unread byte of buf; sizeof(buf) when empty */
	size_t since_reseed; /* bytes handed out since the last getrandom() */
	uint64_t reseeds;    /* getrandom() keyings after the first */
};

/* Keys r from getrandom(). 0 or -errno (getrandom failed: do not use r). */
int rand_init(struct rand *r);

/* Keys r from a caller-chosen key: deterministic output, for tests only. */
void rand_init_key(struct rand *r, const uint8_t key[CHACHA20_KEY_LEN]);

void rand_bytes(struct rand *r, void *out, size_t n);
uint32_t rand_u32(struct rand *r);
uint16_t rand_u16(struct rand *r);
/* Uniform in [0, bound), without modulo bias; bound 0 gives 0. */
uint32_t rand_uniform(struct rand *r, uint32_t bound);

/*
 * The RFC 8439 §2.3 block function: 64 bytes of key stream for (key,
 * counter, nonce). Exposed for the known-answer tests (RFC 8439 §2.3.2 and
 * Appendix A.1).
 */
void chacha20_block(const uint32_t key[8], uint32_t counter, const uint32_t nonce[3],
                    uint8_t out[CHACHA20_BLOCK_LEN]);

#endif
