/*
 * Issue 3, upstream failover: two knotd instances serve the same zone as
 * upstreams; anycached forwards to both. Stopping the first (by PID) must
 * not cost answers: every query is still answered through the second within
 * the failover bound, and the added latency is measured and printed.
 * Loopback only: 127.53.10.1, 127.53.11.1 (upstreams), 127.53.12.1 (node).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/* Criterion runs tests in parallel: each test gets its own host octet. */
static const char *NODE = "127.53.12.1";
#define PORT     5300
#define BOUND_MS 1500 /* failover bound: well inside a client's 3 s retry */

static struct knotd k1, k2;
static struct anycached daemon_;

static void setup_n(int host)
{
	const char *zones[] = {"example.test", harness_example_zone};
	static char node[32];
	char up1[32], up2[32], conf[512];

	snprintf(node, sizeof(node), "127.53.12.%d", host);
	snprintf(up1, sizeof(up1), "127.53.10.%d", host);
	snprintf(up2, sizeof(up2), "127.53.11.%d", host);
	NODE = node;
	snprintf(conf, sizeof(conf),
	         "dns:\n"
	         "  listen: [\"%s:5300\"]\n"
	         "  allow: [127.0.0.0/8]\n"
	         "  upstreams: [\"%s:5300\", \"%s:5300\"]\n"
	         "  threads: 1\n"
	         "  identity: failover-node\n",
	         node, up1, up2);
	cr_assert_eq(knotd_start(&k1, up1, PORT, zones, 1), 0, "knotd 1 did not start");
	cr_assert_eq(knotd_start(&k2, up2, PORT, zones, 1), 0, "knotd 2 did not start");
	cr_assert_eq(anycached_start(&daemon_, conf, node, PORT), 0, "anycached did not answer");
}

static void setup_stop(void)
{
	setup_n(1);
}

static void setup_silent(void)
{
	setup_n(2);
}

static void teardown(void)
{
	anycached_stop(&daemon_);
	knotd_stop(&k1);
	knotd_stop(&k2);
}

static double now_ms_frac(void) /* sub-millisecond: latencies here are ~0.1 ms */
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A fresh (uncached) wildcard name; returns the latency in ms, or -1. */
static double ask(const char *tag, int i)
{
	uint8_t q[512], a[4096];
	char name[128];
	snprintf(name, sizeof(name), "%s%d.wild.example.test", tag, i);
	int qlen = dns_make_query(q, sizeof(q), (uint16_t)(0x1000 + i), name, 1, true);
	double t0 = now_ms_frac();
	int n = dns_udp_exchange(NODE, PORT, q, (size_t)qlen, a, sizeof(a), 3000);
	double t = now_ms_frac() - t0;
	if (n < 12 + 4 || (a[3] & 0x0f) != 0 || a[7] < 1)
		return -1;
	return t;
}

Test(upstream_failover, stopping_the_first_upstream_costs_no_answers, .init = setup_stop,
     .fini = teardown, .timeout = 90)
{
	double base = 0, worst = 0, first = -1, sum = 0;
	const int N = 20;

	for (int i = 0; i < N; i++) {
		double t = ask("pre", i);
		cr_assert_geq(t, 0, "query %d before failover not answered", i);
		base += t;
	}
	base /= N;

	cr_assert_gt(k1.proc.pid, 0);
	knotd_stop(&k1); /* by PID, SIGTERM */

	for (int i = 0; i < N; i++) {
		double t = ask("post", i);
		cr_assert_geq(t, 0, "query %d after stopping knotd 1 not answered", i);
		cr_assert_lt(t, BOUND_MS, "query %d took %.1f ms", i, t);
		if (first < 0)
			first = t;
		if (t > worst)
			worst = t;
		sum += t;
	}
	fprintf(stderr,
	        "upstream_failover: before %.2f ms avg; after stop: first %.2f ms, worst %.2f ms, "
	        "avg %.2f ms over %d queries (added on the first: %.2f ms)\n",
	        base, first, worst, sum / N, N, first - base);

	/* And the answers come from the second upstream only now. */
	char out[4096];
	char at[40];
	snprintf(at, sizeof(at), "@%s", NODE);
	char *argv[] = {"kdig",   at,           "-p",       "5300",
	                "+short", "+timeout=2", "+retry=0", "www.example.test",
	                "A",      NULL};
	cr_assert_eq(run_capture(argv, false, out, sizeof(out), 10000), 0, "kdig: %s", out);
	cr_assert_str_eq(out, "192.0.2.80\n");
}

/* The silent case: the first upstream drops packets instead of refusing
 * them (SIGSTOP: the socket stays open, no ICMP), so only our RTO helps. */
Test(upstream_failover, a_silent_upstream_fails_over_within_the_rto, .init = setup_silent,
     .fini = teardown, .timeout = 90)
{
	double worst = 0, first = -1, sum = 0;
	const int N = 10;

	for (int i = 0; i < N; i++)
		cr_assert_geq(ask("warm", i), 0);
	cr_assert_eq(proc_freeze(&k1.proc, 2000), 0, "knotd did not stop");
	for (int i = 0; i < N; i++) {
		double t = ask("silent", i);
		cr_assert_geq(t, 0, "query %d not answered", i);
		cr_assert_lt(t, BOUND_MS, "query %d took %.1f ms", i, t);
		if (first < 0)
			first = t;
		if (t > worst)
			worst = t;
		sum += t;
	}
	kill(k1.proc.pid, SIGCONT);
	fprintf(stderr,
	        "upstream_failover (silent): first %.2f ms, worst %.2f ms, avg %.2f ms over %d\n",
	        first, worst, sum / N, N);
}
