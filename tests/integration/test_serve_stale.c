/*
 * Issue 3, the cache seen from a client: TTLs count down, a 2 s record is
 * refreshed after expiry, negative answers are cached (RFC 2308), and
 * serve-stale (RFC 8767): knotd stopped -> expired answers with TTL 30,
 * unseen names SERVFAIL quickly; knotd back -> fresh answers. Two workers
 * sharing one cache (every query here comes from a new source port, so it
 * may land on either); anycached on 127.53.5.x.
 */
#include <signal.h>
#include <time.h>

#include "dns_itest.h"

#define NET 5

TestSuite(serve_stale, .fini = down, .timeout = 120);

static const char stale_conf[] = "  cache: {serve-stale: 1h}\n";

Test(serve_stale, ttl_counts_down_and_short_ttl_is_refreshed)
{
	uint8_t a[4096];
	int n;

	up_with(NET, 1, stale_conf);
	for (int tcp = 0; tcp < 2; tcp++) {
		const char *name = tcp ? "www.example.test" : "mail.example.test";
		n = ask_name(tcp, name, 1, false, a, sizeof(a));
		uint32_t t1 = rr_ttl(a, (size_t)n, 0);
		cr_assert_leq(t1, 300);
		cr_assert_geq(t1, 298);
		sleep(2);
		n = ask_name(tcp, name, 1, false, a, sizeof(a));
		uint32_t t2 = rr_ttl(a, (size_t)n, 0);
		cr_assert_leq(t2, t1 - 1, "cached TTL %u after %u", t2, t1);
		cr_assert_geq(t2 + 3, t1, "cached TTL %u after %u", t2, t1);
	}
	n = ask_name(false, "short.example.test", 1, false, a, sizeof(a));
	cr_assert_leq(rr_ttl(a, (size_t)n, 0), 2);
	sleep(3);
	/* Expired: fetched again, so a real TTL (not the stale 30) and NOERROR. */
	n = ask_name(false, "short.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(RCODE(a), 0);
	cr_assert_eq(ANCOUNT(a), 1);
	cr_assert_leq(rr_ttl(a, (size_t)n, 0), 2);
}

Test(serve_stale, negative_answers_are_cached)
{
	uint8_t a[4096];
	int n;

	up_with(NET, 2, stale_conf);
	n = ask_name(false, "gone.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(RCODE(a), 3);
	n = ask_name(false, "www.example.test", 99, false, a, sizeof(a)); /* NODATA */
	cr_assert_eq(RCODE(a), 0);
	cr_assert_eq(ANCOUNT(a), 0);
	knotd_pause(&knot);
	for (int tcp = 0; tcp < 2; tcp++) {
		n = ask_name(tcp, "gone.example.test", 1, false, a, sizeof(a));
		cr_assert_eq(RCODE(a), 3, "NXDOMAIN from the cache");
		cr_assert_eq(rr_type(a, (size_t)n, 0), 6, "with its SOA");
		/* RFC 2308 §5: min(SOA TTL 300, MINIMUM 60) bounds the remaining TTL. */
		cr_assert_leq(rr_ttl(a, (size_t)n, 0), 60);
		n = ask_name(tcp, "www.example.test", 99, false, a, sizeof(a));
		cr_assert_eq(RCODE(a), 0);
		cr_assert_eq(ANCOUNT(a), 0);
		cr_assert_eq(rr_type(a, (size_t)n, 0), 6, "NODATA with its SOA");
	}
}

Test(serve_stale, upstream_down_serves_stale_and_servfails_fast)
{
	uint8_t a[4096];
	int n;

	up_with(NET, 3, stale_conf);
	n = ask_name(false, "short.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(ANCOUNT(a), 1);
	sleep(3); /* TTL 2: expired now */
	knotd_pause(&knot);
	for (int tcp = 0; tcp < 2; tcp++) {
		n = ask_name(tcp, "short.example.test", 1, false, a, sizeof(a));
		cr_assert_eq(RCODE(a), 0, "stale answer, not SERVFAIL");
		cr_assert_eq(ANCOUNT(a), 1);
		cr_assert_eq(rr_ttl(a, (size_t)n, 0), 30, "RFC 8767 §4: TTL 30");
	}
	/* Never seen: SERVFAIL, bounded well below a stub's patience. */
	for (int tcp = 0; tcp < 2; tcp++) {
		uint64_t t0 = now_ms();
		n = ask_name(tcp, tcp ? "never2.example.test" : "never.example.test", 1, false, a,
		             sizeof(a));
		uint64_t took = now_ms() - t0;
		cr_assert_eq(RCODE(a), 2, "SERVFAIL");
		cr_assert_lt(took, 5000, "SERVFAIL took %llu ms", (unsigned long long)took);
		cr_log_info("SERVFAIL with knotd stopped over %s: %llu ms\n", tcp ? "TCP" : "UDP",
		            (unsigned long long)took);
		fprintf(stderr, "SERVFAIL with knotd stopped over %s: %llu ms\n",
		        tcp ? "TCP" : "UDP", (unsigned long long)took);
	}
	/* Every upstream is dead by now (3 hard failures): an expired answer
	 * goes out at once, not after the upstream budget (RFC 8767 §4). */
	for (int tcp = 0; tcp < 2; tcp++) {
		uint64_t t0 = now_ms();
		n = ask_name(tcp, "short.example.test", 1, false, a, sizeof(a));
		uint64_t took = now_ms() - t0;
		cr_assert_eq(RCODE(a), 0, "stale answer, not SERVFAIL");
		cr_assert_eq(rr_ttl(a, (size_t)n, 0), 30, "RFC 8767 §4: TTL 30");
		cr_expect_lt(took, 200, "stale answer with every upstream dead took %llu ms",
		             (unsigned long long)took);
		fprintf(stderr, "stale answer with every upstream dead over %s: %llu ms\n",
		        tcp ? "TCP" : "UDP", (unsigned long long)took);
	}
	cr_assert_eq(knotd_resume(&knot), 0, "knotd did not come back");
	/* With knotd stopped its port answered ICMP port unreachable: a
	 * transport error, which anyone on the path could forge, so it is not
	 * remembered as the name's failure (issue 10, item 5; RFC 9520 §3.2's
	 * memory is for timeouts and the upstreams' SERVFAIL/REFUSED). The
	 * name resolves as soon as the upstream is probed back (bounded: 8 s). */
	uint64_t t_back = now_ms();
	do {
		usleep(250 * 1000);
		n = ask_name(false, "never.example.test", 1, false, a, sizeof(a));
	} while (RCODE(a) != 3 && now_ms() - t_back < 8000);
	cr_assert_eq(RCODE(a), 3, "fresh NXDOMAIN once the failure entry expired");
	/* Each worker learns that its upstream is back by its own re-probe: a
	 * query that reaches another worker first may still get the stale copy
	 * (RFC 8767 §4 allows it while it refreshes), so this too is bounded. */
	t_back = now_ms();
	do {
		n = ask_name(false, "short.example.test", 1, false, a, sizeof(a));
		if (RCODE(a) == 0 && n > 0 && rr_ttl(a, (size_t)n, 0) <= 2)
			break;
		usleep(250 * 1000);
	} while (now_ms() - t_back < 8000);
	cr_assert_eq(RCODE(a), 0);
	cr_assert_leq(rr_ttl(a, (size_t)n, 0), 2, "fresh answer, not stale");
}

/*
 * Prefetch: a hit in the last 10% of an entry's TTL refreshes it in the
 * background. pre.example.test has TTL 10: hit it at 9.3 s, then pause the
 * upstream; at 11 s the name must still be fresh (TTL <= 10, from the
 * prefetch), not served stale (TTL 30) as it would be without the prefetch.
 */
Test(serve_stale, hit_in_last_tenth_prefetches)
{
	uint8_t a[4096];
	int n;

	up_with(NET, 4, stale_conf);
	uint64_t t0 = now_ms();
	n = ask_name(false, "pre.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(RCODE(a), 0);
	cr_assert_eq(rr_ttl(a, (size_t)n, 0), 10);
	usleep((useconds_t)(t0 + 9300 - now_ms()) * 1000);
	n = ask_name(false, "pre.example.test", 1, false, a, sizeof(a));
	uint32_t hit_ttl = rr_ttl(a, (size_t)n, 0);
	cr_assert_leq(hit_ttl, 1, "a hit in the last second of the TTL (TTL %u after %llu ms)",
	              hit_ttl, (unsigned long long)(now_ms() - t0));
	usleep(300 * 1000); /* the refresh completes */
	knotd_pause(&knot);
	usleep((useconds_t)(t0 + 11000 - now_ms()) * 1000);
	n = ask_name(false, "pre.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(RCODE(a), 0);
	uint32_t ttl = rr_ttl(a, (size_t)n, 0);
	cr_assert(ttl >= 7 && ttl <= 10, "TTL %u: fresh from the prefetch, not stale (30)", ttl);
	cr_assert_eq(knotd_resume(&knot), 0);
}

/*
 * RFC 8767 §5, the client-response timer: a silent upstream (knotd stopped
 * with SIGSTOP, so nothing refuses the port and no timeout has made it dead
 * yet) must not hold an expired answer back for the whole upstream budget:
 * it goes out after ~800 ms, before a stub's 1 s first retry, over UDP and TCP.
 */
Test(serve_stale, silent_upstream_stale_answer_before_a_stub_retries)
{
	uint8_t a[4096];
	int n;

	up_with(NET, 6, stale_conf);
	n = ask_name(false, "short.example.test", 1, false, a, sizeof(a));
	cr_assert_eq(ANCOUNT(a), 1);
	sleep(3); /* TTL 2: expired now */
	cr_assert_eq(proc_freeze(&knot.proc, 2000), 0, "knotd did not stop");
	for (int tcp = 0; tcp < 2; tcp++) {
		uint64_t t0 = now_ms();
		n = ask_name(tcp, "short.example.test", 1, false, a, sizeof(a));
		uint64_t took = now_ms() - t0;
		fprintf(stderr, "stale answer with a silent upstream over %s: %llu ms\n",
		        tcp ? "TCP" : "UDP", (unsigned long long)took);
		cr_expect_eq(RCODE(a), 0, "stale answer, not SERVFAIL");
		cr_expect_eq(rr_ttl(a, (size_t)n, 0), 30, "RFC 8767 §4: TTL 30, not %u",
		             rr_ttl(a, (size_t)n, 0));
		cr_expect_lt(took, 1000, "%s: %llu ms, later than a stub's first retry",
		             tcp ? "TCP" : "UDP", (unsigned long long)took);
	}
	kill(knot.proc.pid, SIGCONT);
}
