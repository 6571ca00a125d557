/*
 * cookie_bench: what DNS cookies (src/dns/dns_cookie.c with the OpenSSL
 * SipHash of dns_cookie_mac.c) and response rate limiting (dns_rrl.c) add to
 * one query on the server's hot path, in nanoseconds per operation, one
 * thread:
 *   parse        dns_request_parse of a query without / with a COOKIE option
 *   mac          one SipHash-2-4 through EVP_MAC (init without key, update, final)
 *   client-only  dns_cookie_check, client cookie alone: makes one (1 MAC)
 *   valid        a fresh valid cookie: verified and echoed (1 MAC)
 *   renew        valid but older than 30 min: verified, new one made (2 MACs)
 *   old-secret   made with the old secret: 3 MACs (current fails, old, new)
 *   bad          a server cookie that is not ours: 2 MACs
 *   append       dns_cookie_append to a finished answer
 *   rrl-hot      dns_rrl_account, one prefix (the flood case)
 *   rrl-spread   dns_rrl_account over 100000 prefixes in a 65536-bucket table
 * Usage: cookie_bench [-n iterations (2000000)] [-r repeats (3, best kept)]
 * Not a test: bench/README.md records what was measured and on what.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "dns/dns_cookie.h"
#include "dns/dns_cookie_mac.h"
#include "dns/dns_rrl.h"
#include "dns/dns_wire.h"

static double ns_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint64_t sink;

static size_t make_query(uint8_t *q, const uint8_t *cookie, size_t clen)
{
	static const uint8_t head[] = {0xab, 0xcd, 1,   0,   0,   1,   0,   0,   0,   0,   0,   1,
	                               3,    'w',  'w', 'w', 7,   'e', 'x', 'a', 'm', 'p', 'l', 'e',
	                               4,    't',  'e', 's', 't', 0,   0,   1,   0,   1,   0,   0,
	                               41,   0x10, 0,   0,   0,   0,   0};
	size_t n = sizeof(head);

	memcpy(q, head, n);
	q[n++] = 0;
	q[n++] = clen ? (uint8_t)(4 + clen) : 0;
	if (clen) {
		q[n++] = 0;
		q[n++] = 10;
		q[n++] = 0;
		q[n++] = (uint8_t)clen;
		memcpy(q + n, cookie, clen);
		n += clen;
	}
	return n;
}

enum op { PARSE0, PARSE1, MAC, CLIENT, VALID, RENEW, OLD, BAD, APPEND, RRL_HOT, RRL_SPREAD, OP_N };
static const char *const op_name[OP_N] = {"parse (no cookie)", "parse (cookie)", "mac",
                                          "client-only",       "valid",          "renew",
                                          "old-secret",        "bad",            "append",
                                          "rrl-hot",           "rrl-spread"};

int main(int argc, char **argv)
{
	unsigned long iters = 2000000, reps = 3;
	uint8_t secrets[2][16];
	struct dns_cookie_mac *m;
	struct dns_cookie_result r;
	const uint8_t ip[4] = {198, 51, 100, 100};
	const uint8_t cc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	uint32_t now = (uint32_t)time(NULL);
	uint8_t valid[24], aged[24], old[24], bad[24], q0[128], q1[128], ans[128], out[8];
	int c;

	while ((c = getopt(argc, argv, "n:r:")) != -1) {
		if (c == 'n')
			iters = strtoul(optarg, NULL, 0);
		else if (c == 'r')
			reps = strtoul(optarg, NULL, 0);
		else {
			fprintf(stderr, "usage: cookie_bench [-n iterations] [-r repeats]\n");
			return 2;
		}
	}
	memset(secrets[0], 0x11, 16);
	memset(secrets[1], 0x22, 16);
	if (dns_cookie_mac_new((const uint8_t(*)[16])secrets, 2, &m) < 0)
		return 1;
	struct dns_cookie_keys k = dns_cookie_mac_keys(m);
	struct dns_cookie_keys k_old = {.mac = k.mac, .ctx = m, .n = 1};
	/* Cookies of each kind, made with the machinery under test. */
	dns_cookie_check(&k, cc, 8, ip, 4, now, &r);
	memcpy(valid, r.answer, 24);
	dns_cookie_check(&k, cc, 8, ip, 4, now - 2000, &r);
	memcpy(aged, r.answer, 24);
	/* "old": made under secret 1 (swap the order for one check). */
	{
		uint8_t sw[2][16];
		struct dns_cookie_mac *m2;
		memcpy(sw[0], secrets[1], 16);
		memcpy(sw[1], secrets[0], 16);
		dns_cookie_mac_new((const uint8_t(*)[16])sw, 1, &m2);
		struct dns_cookie_keys k2 = dns_cookie_mac_keys(m2);
		dns_cookie_check(&k2, cc, 8, ip, 4, now, &r);
		memcpy(old, r.answer, 24);
		dns_cookie_mac_free(m2);
	}
	memcpy(bad, valid, 24);
	bad[23] ^= 1;
	size_t l0 = make_query(q0, NULL, 0), l1 = make_query(q1, valid, 24);
	struct dns_request req;
	uint8_t rcode;
	dns_request_parse(q1, l1, &req, &rcode);
	struct wbuf b = wbuf_init(ans, sizeof(ans));
	int alen = dns_build_error(&b, &req, 0);

	struct dns_rrl_conf rc = {.rate = 1000000, .window_s = 1, .slip = 2, .v4_prefix = 24,
	                          .v6_prefix = 56, .entries = 65536};
	struct dns_rrl *rrl;
	if (dns_rrl_new(&rc, 1, &rrl) < 0)
		return 1;
	struct netaddr hot = {.family = AF_INET, .addr = {192, 0, 2, 1}};

	printf("%-20s %10s\n", "operation", "ns/op");
	for (unsigned o = 0; o < OP_N; o++) {
		double best = 1e30;
		for (unsigned rep = 0; rep < reps; rep++) {
			double t0 = ns_now();
			for (unsigned long i = 0; i < iters; i++) {
				switch ((enum op)o) {
				case PARSE0:
					dns_request_parse(q0, l0, &req, &rcode);
					break;
				case PARSE1:
					dns_request_parse(q1, l1, &req, &rcode);
					break;
				case MAC:
					dns_cookie_mac_siphash(m, 0, q1, 20, out);
					sink += out[0];
					break;
				case CLIENT:
					dns_cookie_check(&k, cc, 8, ip, 4, now, &r);
					break;
				case VALID:
					dns_cookie_check(&k, valid, 24, ip, 4, now, &r);
					break;
				case RENEW:
					dns_cookie_check(&k, aged, 24, ip, 4, now, &r);
					break;
				case OLD:
					dns_cookie_check(&k, old, 24, ip, 4, now, &r);
					break;
				case BAD:
					dns_cookie_check(&k_old, bad, 24, ip, 4, now, &r);
					break;
				case APPEND:
					sink += (uint64_t)dns_cookie_append(ans, (size_t)alen, sizeof(ans),
					                                    valid);
					break;
				case RRL_HOT:
					sink += dns_rrl_account(rrl, &hot, i / 1000);
					break;
				case RRL_SPREAD: {
					struct netaddr a = {.family = AF_INET};
					uint32_t p = (uint32_t)(i * 2654435761u) % 100000;
					a.addr[0] = 10;
					a.addr[1] = (uint8_t)(p >> 8);
					a.addr[2] = (uint8_t)p;
					sink += dns_rrl_account(rrl, &a, i / 1000);
					break;
				}
				case OP_N:
					break;
				}
				sink += r.verdict;
			}
			double ns = (ns_now() - t0) / (double)iters;
			if (ns < best)
				best = ns;
		}
		printf("%-20s %10.1f\n", op_name[o], best);
	}
	dns_rrl_free(rrl);
	dns_cookie_mac_free(m);
	return 0;
}
