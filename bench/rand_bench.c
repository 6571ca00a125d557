/*
 * rand_bench: what one call for per-query random numbers costs, for the sources a
 * forwarder could use: core/rand (ChaCha20, fast key erasure), OpenSSL 3's RAND_bytes
 * (its public DRBG), glibc's arc4random (2.36: one getrandom() per call) and getrandom()
 * itself. A cache miss needs about 40 bytes in three calls (query ID, socket choice,
 * 0x20 bits): see bench/README.md.
 *
 *   rand_bench [calls (1000000)]
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "core/rand.h"

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint8_t sink;

#define RUN(label, size, stmt)                                                                     \
	do {                                                                                       \
		uint8_t b[64];                                                                     \
		double t0 = now_ns();                                                              \
		for (long i = 0; i < n; i++) {                                                     \
			stmt;                                                                      \
			sink ^= b[0];                                                              \
		}                                                                                  \
		printf("%-34s %3d bytes  %8.1f ns/call\n", label, size, (now_ns() - t0) / n);      \
	} while (0)

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	struct rand r;

	if (n <= 0 || rand_init(&r) != 0 || RAND_bytes((unsigned char *)&sink, 1) != 1) {
		fprintf(stderr, "rand_bench: setup failed\n");
		return 1;
	}
	for (int size = 2; size <= 32; size *= 4) {
		RUN("core/rand rand_bytes", size, rand_bytes(&r, b, (size_t)size));
		RUN("OpenSSL RAND_bytes", size, RAND_bytes(b, size));
		RUN("glibc arc4random_buf", size, arc4random_buf(b, (size_t)size));
		if (n <= 1000000)
			RUN("getrandom(2)", size, (void)!getrandom(b, (size_t)size, 0));
	}
	RUN("core/rand rand_uniform(16)", 4, b[0] = (uint8_t)rand_uniform(&r, 16));
	RUN("glibc arc4random_uniform(16)", 4, b[0] = (uint8_t)arc4random_uniform(16));
	return 0;
}
