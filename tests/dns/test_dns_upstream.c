/* Unit tests for dns/dns_upstream.c: the pure health and selection policy,
 * driven with stepped time. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "dns/dns_upstream.h"

static struct dns_upstream_set *mk(unsigned n)
{
	struct dns_upstream_set *s = NULL;
	cr_assert_eq(dns_upstream_set_new(NULL, n, &s), 0);
	return s;
}

static struct dns_upstream_info info(const struct dns_upstream_set *s, unsigned i)
{
	struct dns_upstream_info in;
	dns_upstream_get(s, i, &in);
	return in;
}

/*
 * dead_after hard failures, then the confirming probe fails too: the only
 * way to DEAD (issue 10, item 3).
 */
static void kill_with(struct dns_upstream_set *s, unsigned idx, enum dns_upstream_outcome o,
                      uint64_t now)
{
	for (int i = 0; i < 3; i++)
		dns_upstream_report(s, idx, o, 0, now);
	cr_assert_eq(info(s, idx).state, DNS_UPSTREAM_SUSPECT);
	cr_assert(info(s, idx).confirming);
	cr_assert_eq(dns_upstream_probe_due(s, now, NULL, NULL), (int)idx);
	dns_upstream_probe_result(s, idx, o, 0, now);
	cr_assert_eq(info(s, idx).state, DNS_UPSTREAM_DEAD);
}

Test(dns_upstream, rejects_bad_sizes_and_conf)
{
	struct dns_upstream_set *s;
	struct dns_upstream_conf c = {.min_rto_ms = 500, .max_rto_ms = 100};

	cr_assert_eq(dns_upstream_set_new(NULL, 0, &s), -EINVAL);
	cr_assert_eq(dns_upstream_set_new(NULL, DNS_UPSTREAM_MAX + 1, &s), -EINVAL);
	cr_assert_eq(dns_upstream_set_new(&c, 2, &s), -EINVAL);
}

Test(dns_upstream, unmeasured_uses_initial_rto_and_lowest_index)
{
	struct dns_upstream_set *s = mk(3);

	cr_assert_eq(dns_upstream_rto(s, 0), 800);
	cr_assert_eq(dns_upstream_pick(s, 0, 0), 0);
	cr_assert_eq(dns_upstream_pick(s, 1u, 0), 1);
	cr_assert_eq(dns_upstream_pick(s, 3u, 0), 2);
	cr_assert_eq(dns_upstream_pick(s, 7u, 0), -ENOENT);
	cr_assert_eq(info(s, 0).state, DNS_UPSTREAM_HEALTHY);
	dns_upstream_set_free(s);
}

/* RFC 6298 §2.2/§2.3 arithmetic, values worked by hand. */
Test(dns_upstream, rtt_estimate_follows_rfc6298)
{
	struct dns_upstream_set *s = mk(1);

	dns_upstream_report(s, 0, DNS_UPSTREAM_OK, 100, 0);
	struct dns_upstream_info in = info(s, 0);
	cr_assert(in.measured);
	cr_assert_eq(in.srtt_ms, 100);
	cr_assert_eq(in.rttvar_ms, 50);
	cr_assert_eq(in.rto_ms, 300); /* 100 + 4*50 */
	dns_upstream_report(s, 0, DNS_UPSTREAM_OK, 200, 10);
	in = info(s, 0);
	/* RTTVAR = 3/4*50 + 1/4*100 = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5 */
	cr_assert_eq(in.rttvar_ms, 62);
	cr_assert_eq(in.srtt_ms, 112);
	cr_assert_eq(in.rto_ms, 362);
	dns_upstream_set_free(s);
}

Test(dns_upstream, rto_is_clamped)
{
	struct dns_upstream_set *s = mk(2);

	for (int i = 0; i < 50; i++)
		dns_upstream_report(s, 0, DNS_UPSTREAM_OK, 1, (uint64_t)i);
	cr_assert_eq(dns_upstream_rto(s, 0), 100, "min_rto");
	dns_upstream_report(s, 1, DNS_UPSTREAM_OK, 5000, 0);
	cr_assert_eq(dns_upstream_rto(s, 1), 1500, "max_rto");
	dns_upstream_set_free(s);
}

Test(dns_upstream, picks_the_faster_healthy_upstream)
{
	struct dns_upstream_set *s = mk(2);

	for (int i = 0; i < 20; i++) {
		dns_upstream_report(s, 0, DNS_UPSTREAM_OK, 300, (uint64_t)i);
		dns_upstream_report(s, 1, DNS_UPSTREAM_OK, 40, (uint64_t)i);
	}
	cr_assert_eq(dns_upstream_pick(s, 0, 100), 1);
	/* the next to fail over to */
	cr_assert_eq(dns_upstream_pick(s, 1u << 1, 100), 0);
	dns_upstream_set_free(s);
}

Test(dns_upstream, timeouts_make_suspect_then_dead_with_backoff)
{
	struct dns_upstream_set *s = mk(2);
	uint64_t now = 1000;

	dns_upstream_report(s, 0, DNS_UPSTREAM_OK, 10, now);
	dns_upstream_report(s, 1, DNS_UPSTREAM_OK, 50, now);
	cr_assert_eq(dns_upstream_pick(s, 0, now), 0);
	unsigned rto0 = dns_upstream_rto(s, 0);
	cr_assert_eq(rto0, 100);

	dns_upstream_report(s, 0, DNS_UPSTREAM_TIMEOUT, 0, now += rto0);
	cr_assert_eq(info(s, 0).state, DNS_UPSTREAM_SUSPECT);
	cr_assert_eq(dns_upstream_rto(s, 0), 200, "RFC 6298 §5.5 doubling");
	cr_assert_eq(dns_upstream_pick(s, 0, now), 1, "healthy beats suspect");
	dns_upstream_report(s, 0, DNS_UPSTREAM_TIMEOUT, 0, now += 200);
	cr_assert_eq(dns_upstream_rto(s, 0), 400);
	cr_assert_eq(info(s, 0).state, DNS_UPSTREAM_SUSPECT);
	dns_upstream_report(s, 0, DNS_UPSTREAM_TIMEOUT, 0, now += 400);
	cr_assert_eq(info(s, 0).state, DNS_UPSTREAM_SUSPECT, "only confirming");
	cr_assert_eq(dns_upstream_probe_due(s, now, NULL, NULL), 0, "a probe decides, at once");
	dns_upstream_probe_result(s, 0, DNS_UPSTREAM_TIMEOUT, 0, now);
	struct dns_upstream_info in = info(s, 0);
	cr_assert_eq(in.state, DNS_UPSTREAM_DEAD);
	cr_assert_eq(in.deaths, 1);
	cr_assert_eq(in.next_probe, now + 1000);
	/* Dead: no client traffic even when the other one is tried. */
	cr_assert_eq(dns_upstream_pick(s, 0, now), 1);
	dns_upstream_set_free(s);
}

Test(dns_upstream, all_dead_uses_the_earliest_probe_as_last_resort)
{
	struct dns_upstream_set *s = mk(2);

	kill_with(s, 1, DNS_UPSTREAM_TIMEOUT, 100);
	kill_with(s, 0, DNS_UPSTREAM_ERROR, 200);
	cr_assert_eq(info(s, 0).state, DNS_UPSTREAM_DEAD);
	cr_assert_eq(info(s, 1).state, DNS_UPSTREAM_DEAD);
	cr_assert_eq(dns_upstream_pick(s, 0, 300), 1, "probe of 1 is due first (1100 < 1200)");
	cr_assert_eq(dns_upstream_pick(s, 2u, 300), 0);
	cr_assert_eq(dns_upstream_pick(s, 3u, 300), -ENOENT);
	dns_upstream_set_free(s);
}

Test(dns_upstream, probes_back_off_and_an_answer_revives)
{
	struct dns_upstream_set *s = mk(2);
	uint64_t next = 0;

	kill_with(s, 0, DNS_UPSTREAM_TIMEOUT, 0);
	cr_assert_eq(dns_upstream_probe_due(s, 999, &next, NULL), -ENOENT);
	cr_assert_eq(next, 1000);
	cr_assert_eq(dns_upstream_probe_due(s, 1000, &next, NULL), 0);
	cr_assert_eq(next, 3000, "interval doubled to 2 s");
	cr_assert_eq(dns_upstream_probe_due(s, 1000, &next, NULL), -ENOENT, "one probe at a time");
	/* The probe times out: still dead, next probe already scheduled. */
	dns_upstream_report(s, 0, DNS_UPSTREAM_TIMEOUT, 0, 2500);
	cr_assert_eq(info(s, 0).state, DNS_UPSTREAM_DEAD);
	cr_assert_eq(info(s, 0).next_probe, 3000);
	cr_assert_eq(dns_upstream_probe_due(s, 3000, &next, NULL), 0);
	cr_assert_eq(next, 7000);
	/* An answer to the probe revives it with a fresh RTT. */
	dns_upstream_report(s, 0, DNS_UPSTREAM_OK, 20, 3020);
	struct dns_upstream_info in = info(s, 0);
	cr_assert_eq(in.state, DNS_UPSTREAM_HEALTHY);
	cr_assert_eq(in.revivals, 1);
	cr_assert_eq(in.consecutive_fail, 0);
	cr_assert_eq(dns_upstream_probe_due(s, 100000, &next, NULL), -ENOENT);
	cr_assert_eq(next, UINT64_MAX);
	cr_assert_eq(dns_upstream_pick(s, 0, 3020), 0);
	dns_upstream_set_free(s);
}

/* An hour of a dead upstream in 1 s steps: the interval caps at 30 s. */
Test(dns_upstream, an_hour_of_outage_costs_about_two_probes_a_minute)
{
	struct dns_upstream_set *s = mk(1);
	unsigned probes = 0;

	kill_with(s, 0, DNS_UPSTREAM_TIMEOUT, 0);
	for (uint64_t now = 0; now <= 3600 * 1000; now += 1000) {
		if (dns_upstream_probe_due(s, now, NULL, NULL) >= 0) {
			probes++;
			dns_upstream_report(s, 0, DNS_UPSTREAM_TIMEOUT, 0, now + 1500);
		}
	}
	/* 1,2,4,8,16 s then every 30 s: 5 + (3600-31)/30 ~ 123 */
	cr_assert_geq(probes, 120);
	cr_assert_leq(probes, 126);
	cr_assert_eq(info(s, 0).probe_interval_ms, 30000);
	cr_assert_eq(info(s, 0).deaths, 1);
	dns_upstream_set_free(s);
}

Test(dns_upstream, servfail_lowers_preference_but_never_kills)
{
	struct dns_upstream_set *s = mk(2);

	for (int i = 0; i < 40; i++)
		dns_upstream_report(s, 0, DNS_UPSTREAM_SERVFAIL, 10, (uint64_t)i);
	struct dns_upstream_info in = info(s, 0);
	cr_assert_eq(in.state, DNS_UPSTREAM_SUSPECT);
	cr_assert_gt(in.fail_rate_pm, 500);
	cr_assert_eq(in.servfails, 40);
	cr_assert_eq(in.deaths, 0);
	dns_upstream_report(s, 1, DNS_UPSTREAM_OK, 300, 50);
	cr_assert_eq(dns_upstream_pick(s, 0, 50), 1, "slower but healthy wins");
	/* Good answers bring the rate back down. */
	for (int i = 0; i < 40; i++)
		dns_upstream_report(s, 0, DNS_UPSTREAM_OK, 10, 100 + (uint64_t)i);
	cr_assert_eq(info(s, 0).state, DNS_UPSTREAM_HEALTHY);
	cr_assert_lt(info(s, 0).fail_rate_pm, 100);
	dns_upstream_set_free(s);
}

Test(dns_upstream, refused_is_a_hard_failure)
{
	struct dns_upstream_set *s = mk(1);

	dns_upstream_report(s, 0, DNS_UPSTREAM_REFUSED, 5, 0);
	dns_upstream_report(s, 0, DNS_UPSTREAM_REFUSED, 5, 1);
	cr_assert_eq(info(s, 0).state, DNS_UPSTREAM_SUSPECT);
	dns_upstream_report(s, 0, DNS_UPSTREAM_REFUSED, 5, 2);
	cr_assert(info(s, 0).confirming);
	cr_assert_eq(dns_upstream_probe_due(s, 2, NULL, NULL), 0);
	dns_upstream_probe_result(s, 0, DNS_UPSTREAM_REFUSED, 5, 2);
	cr_assert_eq(info(s, 0).state, DNS_UPSTREAM_DEAD);
	cr_assert_eq(info(s, 0).refused, 4);
	/* A success in between resets the run. */
	struct dns_upstream_set *t = mk(1);
	dns_upstream_report(t, 0, DNS_UPSTREAM_REFUSED, 5, 0);
	dns_upstream_report(t, 0, DNS_UPSTREAM_REFUSED, 5, 1);
	dns_upstream_report(t, 0, DNS_UPSTREAM_OK, 5, 2);
	dns_upstream_report(t, 0, DNS_UPSTREAM_REFUSED, 5, 3);
	cr_assert_neq(info(t, 0).state, DNS_UPSTREAM_DEAD);
	dns_upstream_set_free(s);
	dns_upstream_set_free(t);
}

Test(dns_upstream, out_of_range_report_is_ignored)
{
	struct dns_upstream_set *s = mk(1);

	dns_upstream_report(s, 5, DNS_UPSTREAM_TIMEOUT, 0, 0);
	cr_assert_eq(info(s, 0).timeouts, 0);
	dns_upstream_set_free(s);
}

/*
 * Issue 10, item 3: failures of names the clients chose (a deliberately
 * slow zone, REFUSED for chosen names) do not kill an upstream whose probe
 * of a known-good name is answered; only a failed probe does.
 */
Test(dns_upstream, client_chosen_failures_need_a_failed_probe_to_kill)
{
	struct dns_upstream_set *s = mk(2);
	uint64_t now = 0, next;

	dns_upstream_report(s, 0, DNS_UPSTREAM_OK, 10, now);
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 5; i++)
			dns_upstream_report(s, 0,
			                    i & 1 ? DNS_UPSTREAM_REFUSED : DNS_UPSTREAM_TIMEOUT, 0,
			                    now += 100);
		cr_assert_neq(info(s, 0).state, DNS_UPSTREAM_DEAD, "round %d", round);
		cr_assert(info(s, 0).confirming);
		/* One probe only, however many more failures come. */
		cr_assert_eq(dns_upstream_probe_due(s, now, &next, NULL), 0);
		cr_assert_eq(dns_upstream_probe_due(s, now, NULL, NULL), -ENOENT);
		cr_assert_eq(next, now + 30000, "a lost probe is sent again later");
		dns_upstream_probe_result(s, 0, DNS_UPSTREAM_OK, 10, now += 10);
		cr_assert_eq(info(s, 0).consecutive_fail, 0);
		cr_assert_not(info(s, 0).confirming);
	}
	cr_assert_eq(info(s, 0).deaths, 0);
	/* A client answer while confirming settles it as well. */
	for (int i = 0; i < 3; i++)
		dns_upstream_report(s, 0, DNS_UPSTREAM_TIMEOUT, 0, now += 100);
	dns_upstream_report(s, 0, DNS_UPSTREAM_OK, 10, now += 10);
	cr_assert_not(info(s, 0).confirming);
	cr_assert_eq(dns_upstream_probe_due(s, now + 100000, NULL, NULL), -ENOENT);
	dns_upstream_set_free(s);
}

/*
 * Issue 10, item 6: two case mismatches in a row (ID and port right) mean
 * an upstream that does not echo 0x20; it is asked without case until the
 * re-test, which an exact echo passes and a mismatch fails again.
 */
Test(dns_upstream, case_echo_detection_and_retest)
{
	struct dns_upstream_conf c = {.case_retest_ms = 60000};
	struct dns_upstream_set *s = NULL;
	uint64_t now = 1000;

	cr_assert_eq(dns_upstream_set_new(&c, 2, &s), 0);
	cr_assert(dns_upstream_use_0x20(s, 0, now));
	/* One mismatch: a likely spoof. An echo in between resets the run. */
	cr_assert_eq(dns_upstream_case_report(s, 0, false, now), DNS_UPSTREAM_CASE_SPOOF);
	cr_assert_eq(dns_upstream_case_report(s, 0, true, now), DNS_UPSTREAM_CASE_ACCEPT);
	cr_assert_eq(dns_upstream_case_report(s, 0, false, now), DNS_UPSTREAM_CASE_SPOOF);
	cr_assert(dns_upstream_use_0x20(s, 0, now));
	/* The second in a row: it does not echo case. */
	cr_assert_eq(dns_upstream_case_report(s, 0, false, now), DNS_UPSTREAM_CASE_DETECTED);
	cr_assert_not(dns_upstream_use_0x20(s, 0, now));
	cr_assert(dns_upstream_use_0x20(s, 1, now), "the other upstream keeps 0x20");
	struct dns_upstream_info in;
	dns_upstream_get(s, 0, &in);
	cr_assert(in.no_0x20);
	cr_assert_eq(in.case_offs, 1);
	cr_assert_eq(in.case_retest_at, now + 60000);
	/* Re-test due: 0x20 again; a mismatch puts it off for another period. */
	now += 60000;
	cr_assert(dns_upstream_use_0x20(s, 0, now));
	cr_assert_eq(dns_upstream_case_report(s, 0, false, now), DNS_UPSTREAM_CASE_ACCEPT);
	cr_assert_not(dns_upstream_use_0x20(s, 0, now + 59999));
	/* A re-test that comes back exact: fixed. */
	now += 60000;
	cr_assert(dns_upstream_use_0x20(s, 0, now));
	cr_assert_eq(dns_upstream_case_report(s, 0, true, now), DNS_UPSTREAM_CASE_ACCEPT);
	dns_upstream_get(s, 0, &in);
	cr_assert_not(in.no_0x20);
	cr_assert(dns_upstream_use_0x20(s, 0, now + 1));
	cr_assert_eq(dns_upstream_case_report(s, 0, false, now), DNS_UPSTREAM_CASE_SPOOF);
	dns_upstream_set_free(s);
}

/* ---- one set per node, shared by the workers' forwarders ---- */

#define SHARERS 4
#define REPORTS 50000

struct sharer {
	struct dns_upstream_set *s;
	unsigned idx;
	int probes;
};

static void *share_reports(void *arg)
{
	struct sharer *w = arg;
	uint64_t next;
	for (unsigned i = 0; i < REPORTS; i++) {
		dns_upstream_report(w->s, 0, DNS_UPSTREAM_OK, 5, 1000);
		(void)dns_upstream_pick(w->s, 0, 1000);
		/* Upstream 1 is dead: its one due probe goes to one of the threads. */
		if (dns_upstream_probe_due(w->s, 5000, &next, NULL) == 1)
			w->probes++;
	}
	return NULL;
}

Test(dns_upstream, workers_share_one_set_and_lose_no_report)
{
	struct dns_upstream_set *s = mk(2);
	for (int i = 0; i < 3; i++)
		dns_upstream_report(s, 1, DNS_UPSTREAM_TIMEOUT, 0, 0);
	cr_assert_eq(dns_upstream_probe_due(s, 0, NULL, NULL), 1); /* confirming: probed */
	dns_upstream_probe_result(s, 1, DNS_UPSTREAM_TIMEOUT, 0, 0);
	cr_assert_eq(info(s, 1).state, DNS_UPSTREAM_DEAD); /* next probe at 1000 ms */

	pthread_t th[SHARERS];
	struct sharer w[SHARERS];
	for (unsigned i = 0; i < SHARERS; i++) {
		w[i] = (struct sharer){.s = dns_upstream_set_ref(s), .idx = i};
		cr_assert_eq(pthread_create(&th[i], NULL, share_reports, &w[i]), 0);
	}
	int probes = 0;
	for (unsigned i = 0; i < SHARERS; i++) {
		pthread_join(th[i], NULL);
		probes += w[i].probes;
		dns_upstream_set_free(w[i].s); /* each sharer's reference */
	}
	/* Every report counted once; the due probe claimed by exactly one thread
	 * (the next is 2 s later, past the threads' clock). */
	cr_assert_eq(info(s, 0).oks, (uint64_t)SHARERS * REPORTS);
	cr_assert_eq(probes, 1, "the one due probe was claimed %d times", probes);
	dns_upstream_set_free(s); /* the last reference */
}

/*
 * The probe question is the node's, not one worker's: whichever forwarder
 * reported a question, the one claiming the probe gets it. Known good wins
 * over the last failed; nothing known gives an empty question (". NS" then);
 * the root name alone is never kept.
 */
Test(dns_upstream, probe_asks_the_nodes_last_good_question)
{
	static const uint8_t good[] = "\3www\7example\0", bad[] = "\3bad\7example\0";
	struct dns_upstream_set *s = mk(2);
	struct dns_upstream_question q;

	/* "Worker A" saw upstream 0 answer, "worker B" saw it time out. */
	dns_upstream_report_q(s, 0, DNS_UPSTREAM_OK, 5, 0, good, sizeof(good), 1, 1);
	for (int i = 0; i < 3; i++)
		dns_upstream_report_q(s, 0, DNS_UPSTREAM_TIMEOUT, 0, 10, bad, sizeof(bad), 28, 1);
	cr_assert(info(s, 0).confirming);
	memset(&q, 0xa5, sizeof(q));
	cr_assert_eq(dns_upstream_probe_due(s, 10, NULL, &q), 0);
	cr_assert_eq(q.qname_len, sizeof(good));
	cr_assert_eq(memcmp(q.qname, good, sizeof(good)), 0);
	cr_assert_eq(q.qtype, 1);
	cr_assert_eq(q.qclass, 1);

	/* Upstream 1 only ever failed: the failed question; the root is not kept. */
	for (int i = 0; i < 3; i++)
		dns_upstream_report_q(s, 1, DNS_UPSTREAM_ERROR, 0, 20, bad, sizeof(bad), 28, 1);
	dns_upstream_report_q(s, 1, DNS_UPSTREAM_ERROR, 0, 20, (const uint8_t *)"", 1, 2, 1);
	cr_assert_eq(dns_upstream_probe_due(s, 20, NULL, &q), 1);
	cr_assert_eq(q.qname_len, sizeof(bad));
	cr_assert_eq(memcmp(q.qname, bad, sizeof(bad)), 0);
	cr_assert_eq(q.qtype, 28);
	dns_upstream_set_free(s);

	/* Nothing known: an empty question. */
	s = mk(1);
	kill_with(s, 0, DNS_UPSTREAM_TIMEOUT, 0);
	q.qname_len = 7;
	cr_assert_eq(dns_upstream_probe_due(s, 1000, NULL, &q), 0);
	cr_assert_eq(q.qname_len, 0);
	dns_upstream_set_free(s);
}
