/*
 * dns_itest.h: small helpers shared by the DNS serving integration tests
 * (test_dns_serving.c, test_dns_tcp.c, test_dns_stream.c, test_serve_stale.c,
 * test_compliance.c): raw answer
 * inspection and one knotd + anycached pair per test on its own addresses,
 * so Criterion may run the tests of a file in parallel.
 */
#ifndef ANYCACHE_TESTS_DNS_ITEST_H
#define ANYCACHE_TESTS_DNS_ITEST_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>

#include "harness.h"

#define PORT 5300

static struct knotd knot;
static struct anycached daemon_;
static char node[32], upstream[32];
/* Workers per daemon; a test that needs one worker's limits alone sets 1. */
static int itest_threads = 2;

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Offset after the (possibly compressed) name at off, or 0 when bad. */
static inline size_t skip_name(const uint8_t *a, size_t n, size_t off)
{
	while (off < n) {
		if ((a[off] & 0xc0) == 0xc0)
			return off + 2 <= n ? off + 2 : 0;
		if (a[off] == 0)
			return off + 1;
		off += 1 + a[off];
	}
	return 0;
}

/* Offset of RR number idx (0 = first after the question), or 0. */
static inline size_t rr_off(const uint8_t *a, size_t n, unsigned idx)
{
	size_t off = skip_name(a, n, 12);
	if (!off)
		return 0;
	off += 4;
	for (unsigned i = 0; i < idx; i++) {
		off = skip_name(a, n, off);
		if (!off || off + 10 > n)
			return 0;
		off += 10 + rd16(a + off + 8);
	}
	return off < n ? off : 0;
}

static inline uint16_t rr_type(const uint8_t *a, size_t n, unsigned idx)
{
	size_t off = rr_off(a, n, idx);
	off = off ? skip_name(a, n, off) : 0;
	return off && off + 10 <= n ? rd16(a + off) : 0;
}

static inline uint32_t rr_ttl(const uint8_t *a, size_t n, unsigned idx)
{
	size_t off = rr_off(a, n, idx);
	off = off ? skip_name(a, n, off) : 0;
	cr_assert(off && off + 10 <= n, "no RR %u in the answer", idx);
	return (uint32_t)a[off + 4] << 24 | (uint32_t)a[off + 5] << 16 | (uint32_t)a[off + 6] << 8 |
	       a[off + 7];
}

#define RCODE(a)   ((a)[3] & 0x0f)
#define TC(a)      (((a)[2] & 0x02) != 0)
#define ANCOUNT(a) rd16((a) + 6)
#define NSCOUNT(a) rd16((a) + 8)
#define ARCOUNT(a) rd16((a) + 10)

/* knotd on 127.53.NET.(10n+2), anycached on .(10n+1); extra YAML under dns:. */
static inline void up_with(int net, int n, const char *extra)
{
	const char *zones[] = {"example.test", harness_example_zone};
	char conf[2048];

	snprintf(node, sizeof(node), "127.53.%d.%d", net, 10 * n + 1);
	snprintf(upstream, sizeof(upstream), "127.53.%d.%d", net, 10 * n + 2);
	snprintf(conf, sizeof(conf),
	         "dns:\n"
	         "  listen: [\"%s:5300\"]\n"
	         "  allow: [127.0.0.1/32, 127.53.%d.0/25]\n"
	         "  upstreams: [\"%s:5300\"]\n"
	         "  threads: %d\n"
	         "  identity: itest-node-%d\n"
	         "%s",
	         node, net, upstream, itest_threads, n, extra ? extra : "");
	cr_assert_eq(knotd_start(&knot, upstream, PORT, zones, 1), 0, "knotd did not start");
	cr_assert_eq(anycached_start(&daemon_, conf, node, PORT), 0, "anycached did not answer");
}

static inline void down(void)
{
	anycached_stop(&daemon_);
	knotd_stop(&knot);
}

/* One query over UDP or TCP; returns the answer length (asserts one came). */
static inline int ask(bool tcp, const uint8_t *q, size_t qlen, uint8_t *a, size_t cap)
{
	int n = tcp ? dns_tcp_exchange(node, PORT, q, qlen, a, cap, 3000)
	            : dns_udp_exchange(node, PORT, q, qlen, a, cap, 3000);
	cr_assert_geq(n, 12, "no answer over %s (%d)", tcp ? "TCP" : "UDP", n);
	return n;
}

static inline int ask_name(bool tcp, const char *name, uint16_t type, bool edns, uint8_t *a,
                           size_t cap)
{
	uint8_t q[512];
	int qlen = dns_make_query(q, sizeof(q), 0x1234, name, type, edns);
	cr_assert_gt(qlen, 0);
	return ask(tcp, q, (size_t)qlen, a, cap);
}

/* Runs kdig with the given arguments after "@node -p 5300"; output in out. */
static inline int kdig(char *out, size_t cap, const char *a1, const char *a2, const char *a3,
                       const char *a4, const char *a5)
{
	char at[40];
	snprintf(at, sizeof(at), "@%s", node);
	char *argv[] = {"kdig",     at,         "-p",       "5300",     "+timeout=2", "+retry=1",
	                (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5,   NULL};
	return run_capture(argv, false, out, cap, 15000);
}

/* Appends a query framed for TCP (RFC 1035 §4.2.2 length prefix) to buf at
 * *off: no EDNS, class qclass. */
static inline void frame(uint8_t *buf, size_t *off, uint16_t id, const char *name, uint16_t type,
                         uint16_t qclass)
{
	int n = dns_make_query(buf + *off + 2, 512, id, name, type, false);
	cr_assert_gt(n, 0);
	buf[*off + 2 + n - 1] = (uint8_t)qclass;
	buf[*off] = 0;
	buf[*off + 1] = (uint8_t)n;
	*off += 2 + (size_t)n;
}

#endif
