/*
 * dns_query.c: the pure per-query upstream machine (see dns_query.h).
 *
 * States are implicit in the value: not started; trying (cur >= 0, the
 * timer at cur's RTO); waiting (cur < 0, older tries live, the timer at the
 * deadline); done. Every path out of a step either leaves the timer as it
 * was, re-arms it, or finishes.
 */
#include "dns/dns_query.h"

#include <errno.h>
#include <string.h>

static void emit(struct dns_query_actions *out, struct dns_query_action a)
{
	/* Bounded by construction: at most REPORT + SEND + ARM per step. */
	if (out->n < DNS_QUERY_MAX_ACTIONS)
		out->a[out->n++] = a;
}

static void arm(struct dns_query *q, struct dns_query_actions *out, uint64_t when)
{
	q->wake = when;
	emit(out, (struct dns_query_action){.kind = DNS_QUERY_A_ARM, .deadline = when});
}

static void finish(struct dns_query *q, struct dns_query_actions *out, int status, unsigned k)
{
	q->done = true;
	q->cur = -1;
	emit(out,
	     (struct dns_query_action){.kind = DNS_QUERY_A_FINISH, .status = status, .try = k});
}

static void report(struct dns_query_actions *out, const struct dns_query *q, unsigned k,
                   enum dns_upstream_outcome o, unsigned rtt)
{
	emit(out, (struct dns_query_action){.kind = DNS_QUERY_A_REPORT,
	                                    .try = k,
	                                    .upstream = q->t[k].upstream,
	                                    .outcome = o,
	                                    .rtt_ms = rtt});
}

static bool any_live(const struct dns_query *q)
{
	for (unsigned i = 0; i < q->n_slots; i++)
		if (q->t[i].live)
			return true;
	return false;
}

/*
 * Starts try k on upstream u: SEND then ARM. The wait is u's RTO, capped at
 * an equal share of the time left among the tries that could still run
 * (this one included), so three unmeasured upstreams at 800 ms each still
 * all get a turn within 2.5 s.
 */
static void send(struct dns_query *q, const struct dns_upstream_set *pol, unsigned u, int avoid,
                 uint64_t now, struct dns_query_actions *out)
{
	unsigned k = q->n_slots++;
	unsigned n_up = dns_upstream_count(pol);
	unsigned tried = (unsigned)__builtin_popcount(q->tried);
	unsigned ups_left = n_up >= tried ? n_up - tried + 1 : 1;
	unsigned tries_left;
	unsigned n;
	uint64_t share, wait;

	q->n_tries++;
	tries_left = q->max_tries + 1 > q->n_tries ? q->max_tries + 1 - q->n_tries : 1;
	n = ups_left < tries_left ? ups_left : tries_left;
	q->t[k] = (struct dns_query_try){
	    .sent_at = now, .upstream = (uint8_t)u, .live = true, .spoof_retry = avoid >= 0};
	q->cur = (int)k;
	emit(out, (struct dns_query_action){
	              .kind = DNS_QUERY_A_SEND, .try = k, .upstream = u, .avoid = avoid});
	share = q->deadline > now ? (q->deadline - now) / (n ? n : 1) : 0;
	wait = dns_upstream_rto(pol, u);
	if (wait > share)
		wait = share;
	arm(q, out, now + wait);
}

/* The next try on an upstream not tried yet, within the try and time budget. */
static bool next_try(struct dns_query *q, const struct dns_upstream_set *pol, uint64_t now,
                     struct dns_query_actions *out)
{
	int idx;

	/* A slot per upstream plus one spoof retry: n_slots never runs out. */
	if (q->n_tries >= q->max_tries || now >= q->deadline || q->n_slots >= DNS_QUERY_MAX_TRIES)
		return false;
	idx = dns_upstream_pick(pol, q->tried, now);
	if (idx < 0)
		return false;
	q->tried |= 1u << idx;
	send(q, pol, (unsigned)idx, -1, now, out);
	return true;
}

/* The current try is over without an answer: fail over, or wait for older tries, or end. */
static void failover(struct dns_query *q, const struct dns_upstream_set *pol, uint64_t now,
                     struct dns_query_actions *out)
{
	if (next_try(q, pol, now, out))
		return;
	if (any_live(q) && now < q->deadline) {
		/* An earlier try that hit our RTO may still answer. Always
		 * re-armed: after a failed SEND the glue skipped its ARM. */
		arm(q, out, q->deadline);
		return;
	}
	finish(q, out, q->last_err, 0);
}

static void on_tick(struct dns_query *q, const struct dns_upstream_set *pol, uint64_t now,
                    struct dns_query_actions *out)
{
	if (now < q->wake)
		return; /* not ours yet: the timer was re-armed since */
	if (now >= q->deadline) {
		if (q->cur >= 0 && !q->t[q->cur].timed_out) {
			q->t[q->cur].timed_out = true;
			report(out, q, (unsigned)q->cur, DNS_UPSTREAM_TIMEOUT, 0);
		}
		finish(q, out, -ETIMEDOUT, 0);
		return;
	}
	if (q->cur >= 0) {
		/* RTO passed: count the timeout, keep the try (a late answer wins). */
		q->t[q->cur].timed_out = true;
		report(out, q, (unsigned)q->cur, DNS_UPSTREAM_TIMEOUT, 0);
		q->cur = -1;
		q->last_err = -ETIMEDOUT;
	}
	failover(q, pol, now, out);
}

bool dns_query_outcome(enum dns_query_verdict v, enum dns_upstream_outcome *o)
{
	switch (v) {
	case DNS_QUERY_V_OK:
		*o = DNS_UPSTREAM_OK;
		return true;
	case DNS_QUERY_V_SERVFAIL:
		*o = DNS_UPSTREAM_SERVFAIL;
		return true;
	case DNS_QUERY_V_REFUSED:
		*o = DNS_UPSTREAM_REFUSED;
		return true;
	case DNS_QUERY_V_TIMEOUT:
		*o = DNS_UPSTREAM_TIMEOUT;
		return true;
	case DNS_QUERY_V_TRUNCATED:
	case DNS_QUERY_V_MALFORMED:
	case DNS_QUERY_V_ERROR:
		*o = DNS_UPSTREAM_ERROR;
		return true;
	case DNS_QUERY_V_SPOOF:
		/* Says nothing about the upstream's health. */
		break;
	}
	return false;
}

static int on_answer(struct dns_query *q, const struct dns_upstream_set *pol, unsigned k,
                     enum dns_query_verdict v, uint64_t now, struct dns_query_actions *out)
{
	struct dns_query_try *t;
	enum dns_upstream_outcome o;
	bool was_cur;
	unsigned rtt;

	if (v > DNS_QUERY_V_TIMEOUT)
		return -EINVAL;
	if (k >= q->n_slots || !q->t[k].live)
		return 0; /* a try we no longer wait for */
	t = &q->t[k];
	t->live = false;
	rtt = now > t->sent_at ? (unsigned)(now - t->sent_at) : 0;
	if (dns_query_outcome(v, &o) && !(v == DNS_QUERY_V_TIMEOUT && t->timed_out))
		report(out, q, k, o, o == DNS_UPSTREAM_TIMEOUT ? 0 : rtt);
	was_cur = q->cur == (int)k;
	if (was_cur)
		q->cur = -1;

	switch (v) {
	case DNS_QUERY_V_OK:
		/* From any try, late ones included: the others are abandoned. */
		finish(q, out, 0, k);
		return 0;
	case DNS_QUERY_V_SPOOF:
		if (!q->spoof_retry_used && now < q->deadline && q->n_slots < DNS_QUERY_MAX_TRIES) {
			/* Once, same upstream, another channel: new port, ID and case.
			 * The try that was current keeps running without an RTO. */
			q->spoof_retry_used = true;
			send(q, pol, t->upstream, (int)k, now, out);
			return 0;
		}
		/* A second forgery: SERVFAIL rather than risk passing one on. */
		finish(q, out, -EPROTO, 0);
		return 0;
	case DNS_QUERY_V_TIMEOUT:
		q->last_err = -ETIMEDOUT;
		break;
	case DNS_QUERY_V_TRUNCATED:
	case DNS_QUERY_V_MALFORMED:
		q->last_err = -EPROTO;
		break;
	case DNS_QUERY_V_SERVFAIL:
	case DNS_QUERY_V_REFUSED:
		q->last_err = -ECONNREFUSED;
		break;
	case DNS_QUERY_V_ERROR:
		/* No upstream said anything (an ICMP error, a reset): a distinct
		 * status, so the server never remembers it as the name's failure
		 * (issue 10, item 5: one forged ICMP must not blank a name). */
		q->last_err = -ENETUNREACH;
		break;
	}
	if (!was_cur && (q->cur >= 0 || any_live(q)))
		return 0; /* an older try failed late; the current one still runs */
	failover(q, pol, now, out);
	return 0;
}

static void on_send_failed(struct dns_query *q, const struct dns_upstream_set *pol,
                           const struct dns_query_event *ev, uint64_t now,
                           struct dns_query_actions *out)
{
	unsigned k = ev->try;
	struct dns_query_try *t;

	if (k >= q->n_slots || !q->t[k].live)
		return;
	t = &q->t[k];
	t->live = false;
	if (q->cur == (int)k)
		q->cur = -1;
	if (ev->upstream_fault)
		report(out, q, k, DNS_UPSTREAM_ERROR, 0);
	else
		q->n_tries--; /* never left this host: the budget is for upstreams */
	/* A send refused by an ICMP error queued on the socket is transport, as
	 * for DNS_QUERY_V_ERROR; -ECONNREFUSED is kept for upstreams' refusals. */
	if (ev->err == -ECONNREFUSED)
		q->last_err = -ENETUNREACH;
	else if (ev->err < 0)
		q->last_err = ev->err;
	if (t->spoof_retry) {
		finish(q, out, -EPROTO, 0);
		return;
	}
	failover(q, pol, now, out);
}

void dns_query_init(struct dns_query *q, unsigned tries, unsigned timeout_ms)
{
	memset(q, 0, sizeof(*q));
	q->max_tries = tries ? tries : 3;
	if (q->max_tries > DNS_QUERY_MAX_TRIES - 1)
		q->max_tries = DNS_QUERY_MAX_TRIES - 1;
	q->timeout_ms = timeout_ms ? timeout_ms : 2500;
	q->cur = -1;
	q->last_err = -ECONNREFUSED;
}

int dns_query_step(struct dns_query *q, const struct dns_upstream_set *pol,
                   const struct dns_query_event *ev, uint64_t now, struct dns_query_actions *out)
{
	out->n = 0;
	if (q->done)
		return 0;
	if (ev->kind == DNS_QUERY_EV_START) {
		if (q->started)
			return -EINVAL;
		q->started = true;
		q->deadline = now + q->timeout_ms;
		if (!next_try(q, pol, now, out))
			finish(q, out, q->last_err, 0);
		return 0;
	}
	if (!q->started)
		return 0;
	switch (ev->kind) {
	case DNS_QUERY_EV_ANSWER:
		return on_answer(q, pol, ev->try, ev->verdict, now, out);
	case DNS_QUERY_EV_TICK:
		on_tick(q, pol, now, out);
		return 0;
	case DNS_QUERY_EV_SEND_FAILED:
		on_send_failed(q, pol, ev, now, out);
		return 0;
	default:
		return -EINVAL;
	}
}
