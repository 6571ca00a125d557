/*
 * dns_rrl.c with stepped time: the token bucket (rate, window, refill), the
 * slip pattern, prefixes (/24, /56, configurable), the bounded table and its
 * eviction, and two threads accounting at once.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>

#include "dns/dns_rrl.h"

static struct netaddr ip(const char *s)
{
	struct netaddr a;
	cr_assert_eq(netaddr_parse_ip(s, &a), 0, "%s", s);
	return a;
}

static struct dns_rrl *mk(uint32_t rate, uint32_t window, uint32_t slip, uint32_t entries)
{
	struct dns_rrl_conf c = {
	    .rate = rate,
	    .window_s = window,
	    .slip = slip,
	    .v4_prefix = DNS_RRL_V4_PREFIX,
	    .v6_prefix = DNS_RRL_V6_PREFIX,
	    .entries = entries,
	};
	struct dns_rrl *r;
	cr_assert_eq(dns_rrl_new(&c, 42, &r), 0);
	return r;
}

/* n answers at time t: how many passed, dropped, slipped. */
static void burst(struct dns_rrl *r, const char *who, unsigned n, uint64_t t, unsigned *pass,
                  unsigned *drop, unsigned *slip)
{
	struct netaddr a = ip(who);
	*pass = *drop = *slip = 0;
	for (unsigned i = 0; i < n; i++) {
		switch (dns_rrl_account(r, &a, t)) {
		case DNS_RRL_PASS:
			(*pass)++;
			break;
		case DNS_RRL_DROP:
			(*drop)++;
			break;
		case DNS_RRL_SLIP:
			(*slip)++;
			break;
		}
	}
}

Test(dns_rrl, bucket_depth_and_refill)
{
	struct dns_rrl *r = mk(10, 2, 0, 1024);
	unsigned p, d, s;

	/* A quiet prefix may send rate x window at once... */
	burst(r, "192.0.2.1", 50, 1000, &p, &d, &s);
	cr_assert_eq(p, 20);
	cr_assert_eq(d, 30);
	cr_assert_eq(s, 0, "slip 0: nothing slips");
	/* ...then `rate` per second: 100 ms buys one answer. */
	burst(r, "192.0.2.1", 5, 1099, &p, &d, &s);
	cr_assert_eq(p, 0, "99 ms is not a whole answer");
	burst(r, "192.0.2.1", 5, 1100, &p, &d, &s);
	cr_assert_eq(p, 1);
	burst(r, "192.0.2.1", 50, 2100, &p, &d, &s);
	cr_assert_eq(p, 10);
	/* An hour of silence fills the bucket, not more. */
	burst(r, "192.0.2.1", 50, 3600 * 1000 + 2100, &p, &d, &s);
	cr_assert_eq(p, 20);
	/* Time going backwards (another worker's clock read) gives nothing. */
	burst(r, "192.0.2.1", 5, 1000, &p, &d, &s);
	cr_assert_eq(p, 0);
	dns_rrl_free(r);
}

Test(dns_rrl, sustained_flood_gets_the_rate)
{
	struct dns_rrl *r = mk(100, 1, 2, 1024);
	struct netaddr a = ip("198.51.100.7");
	unsigned pass = 0, drop = 0, slip = 0;

	/* 10 s of 1000 queries/s (one per ms). */
	for (uint64_t t = 0; t < 10000; t++) {
		enum dns_rrl_verdict v = dns_rrl_account(r, &a, 5000 + t);
		pass += v == DNS_RRL_PASS;
		drop += v == DNS_RRL_DROP;
		slip += v == DNS_RRL_SLIP;
	}
	/* Burst of 100, then 100 per second. */
	cr_assert(pass >= 1000 && pass <= 1100, "passed %u", pass);
	/* Slip 2: every other limited answer slips. */
	cr_assert(slip == drop || slip == drop + 1 || slip + 1 == drop, "drop %u slip %u", drop,
	          slip);
	cr_assert_eq(pass + drop + slip, 10000);
	dns_rrl_free(r);
}

Test(dns_rrl, slip_every_nth)
{
	for (uint32_t n = 1; n <= 4; n++) {
		struct dns_rrl *r = mk(1, 1, n, 64);
		struct netaddr a = ip("203.0.113.9");
		cr_assert_eq(dns_rrl_account(r, &a, 0), DNS_RRL_PASS);
		for (unsigned i = 1; i <= 12; i++) {
			enum dns_rrl_verdict v = dns_rrl_account(r, &a, 0);
			cr_assert_eq(v, i % n == 0 ? DNS_RRL_SLIP : DNS_RRL_DROP, "slip %u, #%u", n,
			             i);
		}
		dns_rrl_free(r);
	}
}

Test(dns_rrl, prefixes_share_a_bucket)
{
	struct dns_rrl *r = mk(5, 1, 0, 1024);
	unsigned p, d, s;

	burst(r, "192.0.2.1", 5, 0, &p, &d, &s);
	cr_assert_eq(p, 5);
	/* Same /24: same bucket, empty now. */
	burst(r, "192.0.2.200", 5, 0, &p, &d, &s);
	cr_assert_eq(p, 0);
	/* Next /24: its own. */
	burst(r, "192.0.3.1", 5, 0, &p, &d, &s);
	cr_assert_eq(p, 5);
	/* IPv6: the /56 shares, the next /56 does not. */
	burst(r, "2001:db8:0:100::1", 5, 0, &p, &d, &s);
	cr_assert_eq(p, 5);
	burst(r, "2001:db8:0:1ff:ffff::2", 5, 0, &p, &d, &s);
	cr_assert_eq(p, 0);
	burst(r, "2001:db8:0:200::1", 5, 0, &p, &d, &s);
	cr_assert_eq(p, 5);
	/* An IPv4 prefix never meets an IPv6 one with the same bits. */
	burst(r, "::c000:200", 5, 0, &p, &d, &s);
	cr_assert_eq(p, 5);
	dns_rrl_free(r);

	struct dns_rrl_conf c = {
	    .rate = 1, .window_s = 1, .v4_prefix = 32, .v6_prefix = 64, .entries = 64};
	cr_assert_eq(dns_rrl_new(&c, 1, &r), 0);
	burst(r, "192.0.2.1", 2, 0, &p, &d, &s);
	cr_assert_eq(p, 1);
	burst(r, "192.0.2.2", 2, 0, &p, &d, &s);
	cr_assert_eq(p, 1, "/32: each address its own");
	dns_rrl_free(r);
}

Test(dns_rrl, bounded_memory_and_eviction)
{
	/* 64 buckets = 8 sets of 8. */
	struct dns_rrl *r = mk(1, 1, 0, 64);
	struct netaddr flooder = ip("198.51.100.1");
	char buf[64];

	cr_assert_lt(dns_rrl_memory(r), 64 * DNS_RRL_BUCKET_BYTES + 8 * 8 + 256);
	/* The flooder empties its bucket. */
	cr_assert_eq(dns_rrl_account(r, &flooder, 0), DNS_RRL_PASS);
	cr_assert_eq(dns_rrl_account(r, &flooder, 0), DNS_RRL_DROP);
	/* 10000 other prefixes pass through, each seen once, while the flooder
	 * keeps sending: it is always the most recently used of its set. */
	unsigned evicted_flooder = 0;
	for (unsigned i = 0; i < 10000; i++) {
		snprintf(buf, sizeof(buf), "10.%u.%u.1", i / 256, i % 256);
		struct netaddr a = ip(buf);
		cr_assert_eq(dns_rrl_account(r, &a, 1000 + i), DNS_RRL_PASS,
		             "a new prefix starts with a full bucket");
		if (dns_rrl_account(r, &flooder, 1000 + i) == DNS_RRL_PASS)
			evicted_flooder++;
	}
	/* 10 s passed: it earned 10 answers at 1/s, and was never forgotten. */
	cr_assert_leq(evicted_flooder, 11, "flooder passed %u times", evicted_flooder);
	/* Memory did not grow: the table is what it was. */
	cr_assert_lt(dns_rrl_memory(r), 64 * DNS_RRL_BUCKET_BYTES + 8 * 8 + 256);
	dns_rrl_free(r);
}

Test(dns_rrl, eviction_takes_the_least_recently_used)
{
	/* One set of 8. */
	struct dns_rrl *r = mk(1, 1, 0, 8);
	char buf[64];

	for (unsigned i = 0; i < 8; i++) {
		snprintf(buf, sizeof(buf), "10.0.%u.1", i);
		struct netaddr a = ip(buf);
		cr_assert_eq(dns_rrl_account(r, &a, 100 + i), DNS_RRL_PASS);
		cr_assert_eq(dns_rrl_account(r, &a, 100 + i), DNS_RRL_DROP);
	}
	/* A ninth prefix evicts 10.0.0.0/24 (used at 100), the oldest. */
	struct netaddr ninth = ip("10.0.99.1");
	cr_assert_eq(dns_rrl_account(r, &ninth, 200), DNS_RRL_PASS);
	struct netaddr first = ip("10.0.0.1"), second = ip("10.0.1.1");
	cr_assert_eq(dns_rrl_account(r, &second, 200), DNS_RRL_DROP, "10.0.1/24 still known");
	cr_assert_eq(dns_rrl_account(r, &first, 200), DNS_RRL_PASS, "10.0.0/24 started afresh");
	dns_rrl_free(r);
}

Test(dns_rrl, bad_conf)
{
	struct dns_rrl_conf ok = {
	    .rate = 1, .window_s = 1, .v4_prefix = 24, .v6_prefix = 56, .entries = 8};
	struct dns_rrl *r;
	struct dns_rrl_conf c;

	c = ok, c.rate = 0;
	cr_assert_eq(dns_rrl_new(&c, 0, &r), -EINVAL);
	c = ok, c.window_s = 0;
	cr_assert_eq(dns_rrl_new(&c, 0, &r), -EINVAL);
	c = ok, c.v4_prefix = 33;
	cr_assert_eq(dns_rrl_new(&c, 0, &r), -EINVAL);
	c = ok, c.v6_prefix = 65;
	cr_assert_eq(dns_rrl_new(&c, 0, &r), -EINVAL);
	c = ok, c.entries = 0;
	cr_assert_eq(dns_rrl_new(&c, 0, &r), -EINVAL);
	c = ok, c.rate = DNS_RRL_RATE_MAX, c.window_s = DNS_RRL_WINDOW_MAX_S;
	cr_assert_eq(dns_rrl_new(&c, 0, &r), 0, "the largest bucket fits its counters");
	dns_rrl_free(r);
}

struct worker {
	struct dns_rrl *r;
	unsigned pass;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	struct netaddr a = ip("192.0.2.77");
	for (unsigned i = 0; i < 200000; i++)
		w->pass += dns_rrl_account(w->r, &a, 7) == DNS_RRL_PASS;
	return NULL;
}

Test(dns_rrl, one_limit_per_node_across_threads)
{
	/* Two workers, time frozen: together exactly the bucket, not twice it. */
	struct dns_rrl *r = mk(1000, 3, 0, 4096);
	struct worker w[2] = {{r, 0}, {r, 0}};
	pthread_t t[2];

	for (unsigned i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(w[0].pass + w[1].pass, 3000, "passed %u + %u", w[0].pass, w[1].pass);
	dns_rrl_free(r);
}
