/* Unit tests for dns/dns_query.c: the pure per-query upstream machine,
 * driven with stepped time against the real policy (dns_upstream). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "dns/dns_query.h"

/* A tiny glue: applies REPORT to the policy, remembers the timer and the end. */
struct sim {
	struct dns_query q;
	struct dns_upstream_set *pol;
	struct dns_query_actions a;
	uint64_t timer; /* 0: not armed */
	bool finished;
	int status;
	unsigned ans_try;
};

static void sim_init(struct sim *s, unsigned n_up, unsigned tries, unsigned timeout_ms)
{
	memset(s, 0, sizeof(*s));
	cr_assert_eq(dns_upstream_set_new(NULL, n_up, &s->pol), 0);
	dns_query_init(&s->q, tries, timeout_ms);
}

static void sim_free(struct sim *s)
{
	dns_upstream_set_free(s->pol);
}

static const struct dns_query_actions *step(struct sim *s, struct dns_query_event ev, uint64_t now)
{
	cr_assert_eq(dns_query_step(&s->q, s->pol, &ev, now, &s->a), 0);
	for (unsigned i = 0; i < s->a.n; i++) {
		const struct dns_query_action *x = &s->a.a[i];
		switch (x->kind) {
		case DNS_QUERY_A_REPORT:
			dns_upstream_report(s->pol, x->upstream, x->outcome, x->rtt_ms, now);
			break;
		case DNS_QUERY_A_ARM:
			s->timer = x->deadline;
			break;
		case DNS_QUERY_A_FINISH:
			cr_assert_eq(i, s->a.n - 1, "FINISH must be the last action");
			s->finished = true;
			s->status = x->status;
			s->ans_try = x->try;
			s->timer = 0;
			break;
		case DNS_QUERY_A_SEND:
			break;
		}
	}
	return &s->a;
}

static const struct dns_query_actions *start(struct sim *s, uint64_t now)
{
	return step(s, (struct dns_query_event){.kind = DNS_QUERY_EV_START}, now);
}

static const struct dns_query_actions *tick(struct sim *s, uint64_t now)
{
	return step(s, (struct dns_query_event){.kind = DNS_QUERY_EV_TICK}, now);
}

static const struct dns_query_actions *answer(struct sim *s, unsigned k, enum dns_query_verdict v,
                                              uint64_t now)
{
	return step(
	    s, (struct dns_query_event){.kind = DNS_QUERY_EV_ANSWER, .try = k, .verdict = v}, now);
}

static void want_send(const struct dns_query_action *a, unsigned k, unsigned up, int avoid)
{
	cr_assert_eq(a->kind, DNS_QUERY_A_SEND);
	cr_assert_eq(a->try, k);
	cr_assert_eq(a->upstream, up);
	cr_assert_eq(a->avoid, avoid);
}

static void want_arm(const struct dns_query_action *a, uint64_t when)
{
	cr_assert_eq(a->kind, DNS_QUERY_A_ARM);
	cr_assert_eq(a->deadline, when, "armed %llu, want %llu", (unsigned long long)a->deadline,
	             (unsigned long long)when);
}

static void want_report(const struct dns_query_action *a, unsigned up, enum dns_upstream_outcome o,
                        unsigned rtt)
{
	cr_assert_eq(a->kind, DNS_QUERY_A_REPORT);
	cr_assert_eq(a->upstream, up);
	cr_assert_eq(a->outcome, o);
	cr_assert_eq(a->rtt_ms, rtt);
}

static void want_finish(const struct dns_query_action *a, int status)
{
	cr_assert_eq(a->kind, DNS_QUERY_A_FINISH);
	cr_assert_eq(a->status, status, "status %d, want %d", a->status, status);
}

/* Gives upstream i a measured RTT of about rtt ms (RTO then clamps to >= 100). */
static void measure(struct sim *s, unsigned i, unsigned rtt)
{
	for (int n = 0; n < 20; n++)
		dns_upstream_report(s->pol, i, DNS_UPSTREAM_OK, rtt, 0);
}

Test(dns_query, happy_path)
{
	struct sim s;
	const struct dns_query_actions *a;

	sim_init(&s, 3, 0, 0);
	a = start(&s, 1000);
	cr_assert_eq(a->n, 2);
	want_send(&a->a[0], 0, 0, -1);
	/* Unmeasured: RTO 800, under the share 2500/3. */
	want_arm(&a->a[1], 1800);
	a = answer(&s, 0, DNS_QUERY_V_OK, 1030);
	cr_assert_eq(a->n, 2);
	want_report(&a->a[0], 0, DNS_UPSTREAM_OK, 30);
	want_finish(&a->a[1], 0);
	cr_assert_eq(a->a[1].try, 0);
	/* Nothing after FINISH. */
	cr_assert_eq(tick(&s, 1800)->n, 0);
	cr_assert_eq(answer(&s, 0, DNS_QUERY_V_OK, 1900)->n, 0);
	struct dns_upstream_info in;
	dns_upstream_get(s.pol, 0, &in);
	cr_assert(in.measured);
	cr_assert_eq(in.srtt_ms, 30);
	sim_free(&s);
}

Test(dns_query, best_upstream_first)
{
	struct sim s;
	const struct dns_query_actions *a;

	sim_init(&s, 3, 0, 0);
	measure(&s, 2, 20);
	a = start(&s, 0);
	want_send(&a->a[0], 0, 2, -1);
	want_arm(&a->a[1], 100); /* min RTO */
	sim_free(&s);
}

Test(dns_query, try_timeout_fails_over_within_the_next_rto)
{
	struct sim s;
	const struct dns_query_actions *a;

	sim_init(&s, 3, 0, 0);
	measure(&s, 0, 20);  /* upstream 0: RTO 100, tried first */
	measure(&s, 1, 300); /* upstream 1: next best, RTO about 300 */
	a = start(&s, 0);
	unsigned first = a->a[0].upstream;
	uint64_t rto0 = a->a[1].deadline;
	cr_assert_eq(first, 0);
	cr_assert_eq(rto0, 100);
	/* An early tick (timer re-armed meanwhile) does nothing. */
	cr_assert_eq(tick(&s, rto0 - 1)->n, 0);
	a = tick(&s, rto0);
	cr_assert_eq(a->n, 3);
	want_report(&a->a[0], first, DNS_UPSTREAM_TIMEOUT, 0);
	unsigned second = 1;
	want_send(&a->a[1], 1, second, -1);
	cr_assert_lt(dns_upstream_rto(s.pol, second), 800);
	want_arm(&a->a[2], rto0 + dns_upstream_rto(s.pol, second));
	a = answer(&s, 1, DNS_QUERY_V_OK, rto0 + 15);
	want_report(&a->a[0], second, DNS_UPSTREAM_OK, 15);
	want_finish(&a->a[1], 0);
	cr_assert_eq(a->a[1].try, 1);
	sim_free(&s);
}

Test(dns_query, unmeasured_upstreams_share_the_budget)
{
	struct sim s;
	const struct dns_query_actions *a;

	sim_init(&s, 3, 3, 2500);
	start(&s, 0);
	cr_assert_eq(s.timer, 800);
	a = tick(&s, 800);
	want_send(&a->a[1], 1, 1, -1);
	want_arm(&a->a[2], 1600); /* min(800, 1700/2) */
	a = tick(&s, 1600);
	want_send(&a->a[1], 2, 2, -1);
	want_arm(&a->a[2], 2400); /* min(800, 900/1) */
	sim_free(&s);

	/* 2 s for three unmeasured upstreams: the share, not the RTO, decides. */
	sim_init(&s, 3, 3, 2000);
	start(&s, 0);
	cr_assert_eq(s.timer, 666);
	a = tick(&s, 666);
	want_arm(&a->a[2], 1333);
	a = tick(&s, 1333);
	want_send(&a->a[1], 2, 2, -1);
	want_arm(&a->a[2], 2000);
	a = tick(&s, 2000);
	cr_assert_eq(a->n, 2);
	want_report(&a->a[0], 2, DNS_UPSTREAM_TIMEOUT, 0);
	want_finish(&a->a[1], -ETIMEDOUT);
	sim_free(&s);
}

Test(dns_query, servfail_and_refused_fail_over_at_once)
{
	struct sim s;
	const struct dns_query_actions *a;

	sim_init(&s, 3, 0, 0);
	start(&s, 0);
	a = answer(&s, 0, DNS_QUERY_V_SERVFAIL, 40);
	cr_assert_eq(a->n, 3);
	want_report(&a->a[0], 0, DNS_UPSTREAM_SERVFAIL, 40);
	want_send(&a->a[1], 1, 1, -1);
	want_arm(&a->a[2], 840);
	a = answer(&s, 1, DNS_QUERY_V_REFUSED, 50);
	want_report(&a->a[0], 1, DNS_UPSTREAM_REFUSED, 10);
	want_send(&a->a[1], 2, 2, -1);
	a = answer(&s, 2, DNS_QUERY_V_SERVFAIL, 60);
	cr_assert_eq(a->n, 2);
	want_report(&a->a[0], 2, DNS_UPSTREAM_SERVFAIL, 10);
	want_finish(&a->a[1], -ECONNREFUSED);
	sim_free(&s);
}

Test(dns_query, exhausted_upstreams_end_with_the_last_error)
{
	struct sim s;
	const struct dns_query_actions *a;

	/* Two upstreams, three tries allowed: the upstreams run out first. */
	sim_init(&s, 2, 3, 2500);
	start(&s, 0);
	a = answer(&s, 0, DNS_QUERY_V_ERROR, 5);
	want_report(&a->a[0], 0, DNS_UPSTREAM_ERROR, 5);
	want_send(&a->a[1], 1, 1, -1);
	a = answer(&s, 1, DNS_QUERY_V_MALFORMED, 9);
	want_report(&a->a[0], 1, DNS_UPSTREAM_ERROR, 4);
	want_finish(&a->a[1], -EPROTO);
	sim_free(&s);

	/* Issue 10, item 5: a transport error (ICMP port unreachable) is not
	 * an upstream's refusal: its own status, which the server never
	 * remembers as the name's failure. */
	sim_init(&s, 1, 3, 2500);
	start(&s, 0);
	a = answer(&s, 0, DNS_QUERY_V_ERROR, 5);
	want_finish(&a->a[1], -ENETUNREACH);
	sim_free(&s);

	/* Tries run out first: three of five upstreams. */
	sim_init(&s, 5, 3, 2500);
	start(&s, 0);
	answer(&s, 0, DNS_QUERY_V_REFUSED, 1);
	answer(&s, 1, DNS_QUERY_V_REFUSED, 2);
	a = answer(&s, 2, DNS_QUERY_V_REFUSED, 3);
	want_finish(&a->a[1], -ECONNREFUSED);
	sim_free(&s);
}

Test(dns_query, silent_upstreams_wait_for_late_answers_then_time_out)
{
	struct sim s;
	const struct dns_query_actions *a;

	sim_init(&s, 2, 3, 2500);
	start(&s, 0);
	a = tick(&s, 800);
	want_send(&a->a[1], 1, 1, -1);
	want_arm(&a->a[2], 1600); /* min(800, 1700/2) */
	a = tick(&s, 1600);
	/* Nothing left to try: both tries still live, wait for the deadline. */
	cr_assert_eq(a->n, 2);
	want_report(&a->a[0], 1, DNS_UPSTREAM_TIMEOUT, 0);
	want_arm(&a->a[1], 2500);
	a = tick(&s, 2500);
	cr_assert_eq(a->n, 1);
	want_finish(&a->a[0], -ETIMEDOUT);
	sim_free(&s);
}

Test(dns_query, deadline_reports_the_current_try)
{
	struct sim s;
	const struct dns_query_actions *a;

	/* One try of 1500 ms max RTO against a 1000 ms budget: the deadline comes first. */
	sim_init(&s, 1, 1, 1000);
	start(&s, 0);
	cr_assert_eq(s.timer, 800);
	a = tick(&s, 800);
	want_report(&a->a[0], 0, DNS_UPSTREAM_TIMEOUT, 0);
	want_arm(&a->a[1], 1000);
	a = tick(&s, 1000);
	cr_assert_eq(a->n, 1);
	want_finish(&a->a[0], -ETIMEDOUT);
	sim_free(&s);
}

Test(dns_query, total_budget_holds_over_many_steps)
{
	struct sim s;
	unsigned sends = 0, steps = 0;
	uint64_t now = 7000, t0 = now;

	/* 16 silent upstreams, 16 tries: the 2.5 s budget decides. */
	sim_init(&s, 16, 16, 2500);
	start(&s, now);
	sends++;
	while (!s.finished) {
		cr_assert(s.timer > 0);
		cr_assert_leq(s.timer, t0 + 2500);
		now = s.timer;
		const struct dns_query_actions *a = tick(&s, now);
		for (unsigned i = 0; i < a->n; i++)
			sends += a->a[i].kind == DNS_QUERY_A_SEND;
		cr_assert_lt(++steps, 100);
	}
	cr_assert_eq(s.status, -ETIMEDOUT);
	cr_assert_eq(now, t0 + 2500);
	cr_assert_leq(sends, 16);
	cr_assert_geq(sends, 3);
	sim_free(&s);
}

Test(dns_query, late_answer_of_the_first_try_wins)
{
	struct sim s;
	const struct dns_query_actions *a;

	sim_init(&s, 3, 0, 0);
	start(&s, 0);
	a = tick(&s, 800);
	want_send(&a->a[1], 1, 1, -1);
	a = answer(&s, 0, DNS_QUERY_V_OK, 900);
	cr_assert_eq(a->n, 2);
	want_report(&a->a[0], 0, DNS_UPSTREAM_OK, 900);
	want_finish(&a->a[1], 0);
	cr_assert_eq(a->a[1].try, 0);
	/* Try 1 is abandoned: its answer changes nothing. */
	cr_assert_eq(answer(&s, 1, DNS_QUERY_V_OK, 950)->n, 0);
	sim_free(&s);
}

Test(dns_query, late_failure_of_an_older_try_does_not_disturb_the_current)
{
	struct sim s;
	const struct dns_query_actions *a;

	sim_init(&s, 3, 0, 0);
	start(&s, 0);
	tick(&s, 800);
	a = answer(&s, 0, DNS_QUERY_V_SERVFAIL, 900);
	cr_assert_eq(a->n, 1);
	want_report(&a->a[0], 0, DNS_UPSTREAM_SERVFAIL, 900);
	cr_assert_eq(s.timer, 1600);
	a = answer(&s, 1, DNS_QUERY_V_OK, 1000);
	want_finish(&a->a[1], 0);
	cr_assert_eq(a->a[1].try, 1);
	sim_free(&s);
}

Test(dns_query, one_spoof_retry_then_eproto)
{
	struct sim s;
	const struct dns_query_actions *a;

	sim_init(&s, 3, 0, 0);
	start(&s, 0);
	a = answer(&s, 0, DNS_QUERY_V_SPOOF, 10);
	/* No report (says nothing about the upstream), same upstream, avoid try 0's channel. */
	cr_assert_eq(a->n, 2);
	want_send(&a->a[0], 1, 0, 0);
	cr_assert_eq(a->a[1].kind, DNS_QUERY_A_ARM);
	a = answer(&s, 1, DNS_QUERY_V_SPOOF, 20);
	cr_assert_eq(a->n, 1);
	want_finish(&a->a[0], -EPROTO);
	struct dns_upstream_info in;
	dns_upstream_get(s.pol, 0, &in);
	cr_assert_eq(in.oks + in.errors + in.timeouts, 0);
	sim_free(&s);

	/* The retry's good answer is used. */
	sim_init(&s, 3, 0, 0);
	start(&s, 0);
	answer(&s, 0, DNS_QUERY_V_SPOOF, 10);
	a = answer(&s, 1, DNS_QUERY_V_OK, 30);
	want_report(&a->a[0], 0, DNS_UPSTREAM_OK, 20);
	want_finish(&a->a[1], 0);
	cr_assert_eq(a->a[1].try, 1);
	sim_free(&s);
}

Test(dns_query, truncated_answer_is_a_failure)
{
	struct sim s;
	const struct dns_query_actions *a;

	sim_init(&s, 2, 0, 0);
	start(&s, 0);
	a = answer(&s, 0, DNS_QUERY_V_TRUNCATED, 12);
	want_report(&a->a[0], 0, DNS_UPSTREAM_ERROR, 12);
	want_send(&a->a[1], 1, 1, -1);
	a = answer(&s, 1, DNS_QUERY_V_TRUNCATED, 20);
	want_finish(&a->a[1], -EPROTO);
	sim_free(&s);
}

Test(dns_query, failed_sends)
{
	struct sim s;
	const struct dns_query_actions *a;

	/* The upstream's fault: reported and counted. */
	sim_init(&s, 3, 2, 2500);
	start(&s, 0);
	a = step(&s,
	         (struct dns_query_event){.kind = DNS_QUERY_EV_SEND_FAILED,
	                                  .try = 0,
	                                  .err = -ECONNREFUSED,
	                                  .upstream_fault = true},
	         0);
	cr_assert_eq(a->n, 3);
	want_report(&a->a[0], 0, DNS_UPSTREAM_ERROR, 0);
	want_send(&a->a[1], 1, 1, -1);
	a = step(
	    &s,
	    (struct dns_query_event){
	        .kind = DNS_QUERY_EV_SEND_FAILED, .try = 1, .err = -ENOMEM, .upstream_fault = true},
	    0);
	/* Two tries used up. */
	cr_assert_eq(a->n, 2);
	want_finish(&a->a[1], -ENOMEM);
	sim_free(&s);

	/* A local failure (no free ID) does not use up a try. */
	sim_init(&s, 2, 1, 2500);
	start(&s, 0);
	a = step(
	    &s, (struct dns_query_event){.kind = DNS_QUERY_EV_SEND_FAILED, .try = 0, .err = -EBUSY},
	    0);
	cr_assert_eq(a->n, 2);
	want_send(&a->a[0], 1, 1, -1);
	a = step(
	    &s, (struct dns_query_event){.kind = DNS_QUERY_EV_SEND_FAILED, .try = 1, .err = -EBUSY},
	    0);
	cr_assert_eq(a->n, 1);
	want_finish(&a->a[0], -EBUSY);
	sim_free(&s);

	/* A spoof retry that cannot be sent ends the query with -EPROTO. */
	sim_init(&s, 2, 3, 2500);
	start(&s, 0);
	answer(&s, 0, DNS_QUERY_V_SPOOF, 3);
	a = step(
	    &s,
	    (struct dns_query_event){.kind = DNS_QUERY_EV_SEND_FAILED, .try = 1, .err = -ENOMEM},
	    3);
	want_finish(&a->a[a->n - 1], -EPROTO);
	sim_free(&s);
}

Test(dns_query, bad_and_stale_events)
{
	struct sim s;
	struct dns_query_event ev = {.kind = DNS_QUERY_EV_ANSWER, .try = 0, .verdict = 99};
	struct dns_query_actions a;

	sim_init(&s, 1, 0, 0);
	/* Before START: nothing. */
	cr_assert_eq(tick(&s, 5)->n, 0);
	start(&s, 0);
	cr_assert_eq(dns_query_step(&s.q, s.pol, &ev, 1, &a), -EINVAL);
	ev = (struct dns_query_event){.kind = DNS_QUERY_EV_START};
	cr_assert_eq(dns_query_step(&s.q, s.pol, &ev, 1, &a), -EINVAL);
	cr_assert_eq(answer(&s, 7, DNS_QUERY_V_OK, 2)->n, 0);
	cr_assert_eq(answer(&s, DNS_QUERY_MAX_TRIES + 3, DNS_QUERY_V_OK, 2)->n, 0);
	cr_assert(!s.finished);
	sim_free(&s);
}

/*
 * Hours of simulated traffic with random answers, verdicts, early ticks and
 * failed sends, against invariants: every query ends, by its deadline, with
 * at most `tries` counted tries on distinct upstreams plus one spoof retry;
 * no timer beyond the deadline; status 0 only with an OK answer of a live
 * try; reports name the try's upstream.
 */
Test(dns_query, random_traffic_respects_the_bounds)
{
	static const int ok_status[] = {0,       -ETIMEDOUT, -ECONNREFUSED, -ENETUNREACH,
	                                -EPROTO, -EBUSY,     -ENOMEM};
	struct dns_upstream_set *pol;
	uint64_t now = 1;
	unsigned finished = 0, answered = 0, timed_out = 0;

	srand(12345);
	cr_assert_eq(dns_upstream_set_new(NULL, 6, &pol), 0);
	for (int qn = 0; qn < 20000; qn++) {
		struct dns_query q;
		struct dns_query_actions a;
		struct dns_query_event ev = {.kind = DNS_QUERY_EV_START};
		unsigned tries = 1 + (unsigned)rand() % 5, timeout = 500 + (unsigned)rand() % 3000;
		unsigned n_up = dns_upstream_count(pol);
		uint64_t t0 = now, timer = 0;
		unsigned up_of[DNS_QUERY_MAX_TRIES];
		bool live[DNS_QUERY_MAX_TRIES] = {0};
		unsigned counted = 0, spoof_sends = 0, slots = 0, steps = 0;
		uint32_t ups = 0;
		bool done = false;

		dns_query_init(&q, tries, timeout);
		while (!done) {
			cr_assert_eq(dns_query_step(&q, pol, &ev, now, &a), 0);
			bool send_failed = false;
			for (unsigned i = 0; i < a.n && !send_failed; i++) {
				struct dns_query_action *x = &a.a[i];
				switch (x->kind) {
				case DNS_QUERY_A_SEND:
					cr_assert_eq(x->try, slots);
					cr_assert_lt(x->upstream, n_up);
					slots++;
					up_of[x->try] = x->upstream;
					if (x->avoid >= 0) {
						cr_assert_eq(x->upstream, up_of[x->avoid]);
						spoof_sends++;
					} else {
						cr_assert(!(ups & (1u << x->upstream)),
						          "upstream tried twice");
						ups |= 1u << x->upstream;
						counted++;
					}
					cr_assert_leq(counted, tries);
					cr_assert_leq(spoof_sends, 1);
					cr_assert_lt(now, t0 + timeout);
					if (rand() % 20 == 0) {
						bool fault = rand() % 2;
						if (!fault && x->avoid < 0)
							counted--;
						ev = (struct dns_query_event){
						    .kind = DNS_QUERY_EV_SEND_FAILED,
						    .try = x->try,
						    .err = fault ? -ECONNREFUSED : -EBUSY,
						    .upstream_fault = fault};
						send_failed = true;
					} else {
						live[x->try] = true;
					}
					break;
				case DNS_QUERY_A_ARM:
					cr_assert_geq(x->deadline, now);
					cr_assert_leq(x->deadline, t0 + timeout);
					timer = x->deadline;
					break;
				case DNS_QUERY_A_REPORT:
					cr_assert_lt(x->try, slots);
					cr_assert_eq(x->upstream, up_of[x->try]);
					dns_upstream_report(pol, x->upstream, x->outcome, x->rtt_ms,
					                    now);
					break;
				case DNS_QUERY_A_FINISH: {
					bool known = false;
					cr_assert_eq(i, a.n - 1);
					for (unsigned j = 0;
					     j < sizeof(ok_status) / sizeof(ok_status[0]); j++)
						known |= x->status == ok_status[j];
					cr_assert(known, "status %d", x->status);
					cr_assert_leq(now, t0 + timeout);
					if (x->status == 0) {
						cr_assert_eq(ev.kind, DNS_QUERY_EV_ANSWER);
						cr_assert_eq(ev.verdict, DNS_QUERY_V_OK);
						cr_assert_eq(x->try, ev.try);
						answered++;
					}
					if (x->status == -ETIMEDOUT)
						timed_out++;
					done = true;
					break;
				}
				}
			}
			if (done || send_failed)
				continue;
			cr_assert_lt(++steps, 200, "query %d does not end", qn);
			/* Next event: an answer of a random live try before the timer, or the
			 * timer (sometimes an early, spurious tick). */
			unsigned pick = slots ? (unsigned)rand() % slots : 0;
			cr_assert(timer > 0);
			if (slots && live[pick] && rand() % 3 == 0) {
				uint64_t at = now + (uint64_t)rand() % (timer - now + 1);
				now = at;
				live[pick] = rand() % 10 != 0; /* sometimes a duplicate later */
				ev = (struct dns_query_event){
				    .kind = DNS_QUERY_EV_ANSWER,
				    .try = pick,
				    .verdict = (enum dns_query_verdict)(rand() % 8)};
			} else if (rand() % 8 == 0 && timer > now) {
				now += (uint64_t)rand() % (timer - now);
				ev = (struct dns_query_event){.kind = DNS_QUERY_EV_TICK};
			} else {
				now = timer;
				ev = (struct dns_query_event){.kind = DNS_QUERY_EV_TICK};
			}
		}
		finished++;
		/* Between queries, idle time: over the whole run, hours. */
		now += 500 + (uint64_t)rand() % 1000;
	}
	cr_assert_eq(finished, 20000);
	cr_assert_gt(answered, 1000);
	cr_assert_gt(timed_out, 100);
	cr_assert_gt(now, 3ull * 3600 * 1000, "simulated %llu ms", (unsigned long long)now);
	dns_upstream_set_free(pol);
}
