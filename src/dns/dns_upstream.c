#include "dns/dns_upstream.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define RTO_GRANULARITY_MS 10 /* RFC 6298 §2: the G in max(G, K*RTTVAR) */
#define RATE_ONE           65536
#define RATE_SHIFT         4 /* EWMA weight 1/16 */
#define SUSPECT_RATE_PM    500
#define BACKOFF_MAX_SHIFT  4

struct upstream {
	bool measured;
	uint32_t srtt8;   /* SRTT in ms, times 8 */
	uint32_t rttvar8; /* RTTVAR in ms, times 8 */
	unsigned timeouts_in_row;
	unsigned consecutive_fail;
	int32_t rate; /* failure EWMA in 1/65536 */
	enum dns_upstream_state state;
	bool confirming;
	uint64_t next_probe;
	unsigned probe_interval_ms;
	unsigned case_mismatches; /* in a row, without an exact echo */
	bool no_0x20;
	uint64_t case_retest_at, case_offs;
	uint64_t oks, servfails, refused, timeouts, errors, deaths, revivals;
	struct dns_upstream_question good, failed; /* for probes */
};

struct dns_upstream_set {
	/* One set per node, shared by every worker's forwarder: each public
	 * call holds mu (they run per upstream try and answer, never per cache
	 * hit). Functions taking a const set still lock, hence the cast. */
	pthread_mutex_t mu;
	atomic_uint refs;
	struct dns_upstream_conf conf;
	unsigned n;
	struct upstream u[];
};

#define LOCK(s)   pthread_mutex_lock((pthread_mutex_t *)&(s)->mu)
#define UNLOCK(s) pthread_mutex_unlock((pthread_mutex_t *)&(s)->mu)

static unsigned dflt(unsigned v, unsigned d)
{
	return v ? v : d;
}

int dns_upstream_set_new(const struct dns_upstream_conf *conf, unsigned n,
                         struct dns_upstream_set **out)
{
	struct dns_upstream_conf c = {0};
	struct dns_upstream_set *s;

	if (n == 0 || n > DNS_UPSTREAM_MAX)
		return -EINVAL;
	if (conf)
		c = *conf;
	c.initial_rto_ms = dflt(c.initial_rto_ms, 800);
	c.min_rto_ms = dflt(c.min_rto_ms, 100);
	c.max_rto_ms = dflt(c.max_rto_ms, 1500);
	c.dead_after = dflt(c.dead_after, 3);
	c.probe_min_ms = dflt(c.probe_min_ms, 1000);
	c.probe_max_ms = dflt(c.probe_max_ms, 30000);
	c.case_retest_ms = dflt(c.case_retest_ms, 600000);
	if (c.min_rto_ms > c.max_rto_ms || c.probe_min_ms > c.probe_max_ms)
		return -EINVAL;
	s = calloc(1, sizeof(*s) + n * sizeof(s->u[0]));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->mu, NULL);
	atomic_init(&s->refs, 1);
	s->conf = c;
	s->n = n;
	*out = s;
	return 0;
}

struct dns_upstream_set *dns_upstream_set_ref(struct dns_upstream_set *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void dns_upstream_set_free(struct dns_upstream_set *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_destroy(&s->mu);
	free(s);
}

unsigned dns_upstream_count(const struct dns_upstream_set *s)
{
	return s->n;
}

static unsigned rate_pm(const struct upstream *u)
{
	return (unsigned)((int64_t)u->rate * 1000 / RATE_ONE);
}

static unsigned rto_of(const struct dns_upstream_set *s, unsigned idx)
{
	const struct upstream *u = &s->u[idx];
	uint64_t rto;

	if (!u->measured) {
		rto = s->conf.initial_rto_ms;
	} else {
		uint64_t var4 = (uint64_t)u->rttvar8 * 4 / 8;
		rto = u->srtt8 / 8 + (var4 > RTO_GRANULARITY_MS ? var4 : RTO_GRANULARITY_MS);
	}
	if (rto < s->conf.min_rto_ms)
		rto = s->conf.min_rto_ms;
	/* RFC 6298 §5.5: back off while the upstream keeps timing out. */
	unsigned sh =
	    u->timeouts_in_row < BACKOFF_MAX_SHIFT ? u->timeouts_in_row : BACKOFF_MAX_SHIFT;
	rto <<= sh;
	if (rto > s->conf.max_rto_ms)
		rto = s->conf.max_rto_ms;
	return (unsigned)rto;
}

/* RFC 6298 §2.2 and §2.3, in ms scaled by 8 (alpha 1/8, beta 1/4). */
static void rtt_sample(struct upstream *u, unsigned rtt_ms)
{
	uint32_t r8 = (rtt_ms > 600000 ? 600000u : rtt_ms) * 8u;

	if (!u->measured) {
		u->measured = true;
		u->srtt8 = r8;
		u->rttvar8 = r8 / 2;
		return;
	}
	int64_t delta = (int64_t)r8 - u->srtt8;
	int64_t adelta = delta < 0 ? -delta : delta;
	u->rttvar8 = (uint32_t)((int64_t)u->rttvar8 + (adelta - (int64_t)u->rttvar8) / 4);
	u->srtt8 = (uint32_t)((int64_t)u->srtt8 + delta / 8);
}

static void rate_update(struct upstream *u, bool fail)
{
	u->rate += ((fail ? RATE_ONE : 0) - u->rate) / (1 << RATE_SHIFT);
}

static void report_u(struct dns_upstream_set *s, unsigned idx, enum dns_upstream_outcome o,
                     unsigned rtt_ms, uint64_t now)
{
	struct upstream *u;

	if (idx >= s->n)
		return;
	u = &s->u[idx];
	switch (o) {
	case DNS_UPSTREAM_OK:
	case DNS_UPSTREAM_SERVFAIL:
		/* It answered: reachable, and the RTT sample is real. */
		if (o == DNS_UPSTREAM_OK)
			u->oks++;
		else
			u->servfails++;
		rtt_sample(u, rtt_ms);
		rate_update(u, o == DNS_UPSTREAM_SERVFAIL);
		u->timeouts_in_row = 0;
		u->consecutive_fail = 0;
		u->confirming = false;
		if (u->state == DNS_UPSTREAM_DEAD) {
			u->revivals++;
			u->probe_interval_ms = 0;
			u->next_probe = 0;
		}
		u->state =
		    rate_pm(u) > SUSPECT_RATE_PM ? DNS_UPSTREAM_SUSPECT : DNS_UPSTREAM_HEALTHY;
		return;
	case DNS_UPSTREAM_TIMEOUT:
		u->timeouts++;
		u->timeouts_in_row++;
		break;
	case DNS_UPSTREAM_REFUSED:
		u->refused++;
		break;
	case DNS_UPSTREAM_ERROR:
		u->errors++;
		break;
	}
	rate_update(u, true);
	u->consecutive_fail++;
	if (u->state == DNS_UPSTREAM_DEAD)
		return; /* probe_due already scheduled the next probe */
	u->state = DNS_UPSTREAM_SUSPECT;
	if (u->consecutive_fail >= s->conf.dead_after && !u->confirming) {
		/* Not dead yet: these may all be names the client chose to fail.
		 * A probe of a name known to work decides, at once. */
		u->confirming = true;
		u->next_probe = now;
	}
}

static void make_dead(const struct dns_upstream_set *s, struct upstream *u, uint64_t now)
{
	u->confirming = false;
	u->state = DNS_UPSTREAM_DEAD;
	u->deaths++;
	u->probe_interval_ms = s->conf.probe_min_ms;
	u->next_probe = now + u->probe_interval_ms;
}

static void probe_result_u(struct dns_upstream_set *s, unsigned idx, enum dns_upstream_outcome o,
                           unsigned rtt_ms, uint64_t now)
{
	if (idx >= s->n)
		return;
	if (o != DNS_UPSTREAM_OK && o != DNS_UPSTREAM_SERVFAIL && s->u[idx].confirming) {
		make_dead(s, &s->u[idx], now);
		report_u(s, idx, o, rtt_ms, now); /* counted; dead already */
		return;
	}
	report_u(s, idx, o, rtt_ms, now);
}

static bool use_0x20_u(const struct dns_upstream_set *s, unsigned idx, uint64_t now)
{
	const struct upstream *u = idx < s->n ? &s->u[idx] : NULL;

	return !u || !u->no_0x20 || now >= u->case_retest_at;
}

static enum dns_upstream_case case_report_u(struct dns_upstream_set *s, unsigned idx, bool echoed,
                                            uint64_t now)
{
	struct upstream *u;

	if (idx >= s->n)
		return DNS_UPSTREAM_CASE_SPOOF;
	u = &s->u[idx];
	if (echoed) {
		u->case_mismatches = 0;
		u->no_0x20 = false; /* a re-test came back exact */
		return DNS_UPSTREAM_CASE_ACCEPT;
	}
	if (u->no_0x20) {
		/* The re-test failed: ask without 0x20 for another period. */
		u->case_retest_at = now + s->conf.case_retest_ms;
		return DNS_UPSTREAM_CASE_ACCEPT;
	}
	/*
	 * A forger who guessed ID and port once more is far less likely than
	 * an upstream that rewrites the question (RFC 5452 §9.2 odds), so a
	 * run of mismatches means the latter; what it costs us is the case
	 * bits, not the ID and port checks.
	 */
	if (++u->case_mismatches < DNS_UPSTREAM_CASE_DETECT)
		return DNS_UPSTREAM_CASE_SPOOF;
	u->case_mismatches = 0;
	u->no_0x20 = true;
	u->case_offs++;
	u->case_retest_at = now + s->conf.case_retest_ms;
	return DNS_UPSTREAM_CASE_DETECTED;
}

static int pick_u(const struct dns_upstream_set *s, uint32_t tried, uint64_t now)
{
	int best = -1, dead = -1;
	unsigned best_rto = 0;

	(void)now;
	for (unsigned i = 0; i < s->n; i++) {
		const struct upstream *u = &s->u[i];
		if (tried & (1u << i))
			continue;
		if (u->state == DNS_UPSTREAM_DEAD) {
			if (dead < 0 || u->next_probe < s->u[dead].next_probe)
				dead = (int)i;
			continue;
		}
		unsigned rto = rto_of(s, i);
		if (best < 0 || u->state < s->u[best].state ||
		    (u->state == s->u[best].state && rto < best_rto)) {
			best = (int)i;
			best_rto = rto;
		}
	}
	if (best >= 0)
		return best;
	return dead >= 0 ? dead : -ENOENT;
}

static int probe_due_u(struct dns_upstream_set *s, uint64_t now, uint64_t *next)
{
	int found = -1;
	uint64_t earliest = UINT64_MAX;

	for (unsigned i = 0; i < s->n; i++) {
		struct upstream *u = &s->u[i];
		if (u->state != DNS_UPSTREAM_DEAD && !u->confirming)
			continue;
		if (found < 0 && u->next_probe <= now) {
			found = (int)i;
			if (u->confirming) {
				/* Its outcome decides; this only retries a lost one. */
				u->next_probe = now + s->conf.probe_max_ms;
			} else {
				unsigned iv = u->probe_interval_ms * 2;
				u->probe_interval_ms =
				    iv > s->conf.probe_max_ms ? s->conf.probe_max_ms : iv;
				u->next_probe = now + u->probe_interval_ms;
			}
		}
		if (u->next_probe < earliest)
			earliest = u->next_probe;
	}
	if (next)
		*next = earliest;
	return found >= 0 ? found : -ENOENT;
}

static void get_u(const struct dns_upstream_set *s, unsigned idx, struct dns_upstream_info *out)
{
	const struct upstream *u = &s->u[idx];

	out->state = u->state;
	out->measured = u->measured;
	out->srtt_ms = u->srtt8 / 8;
	out->rttvar_ms = u->rttvar8 / 8;
	out->rto_ms = rto_of(s, idx);
	out->consecutive_fail = u->consecutive_fail;
	out->fail_rate_pm = rate_pm(u);
	out->next_probe = u->next_probe;
	out->confirming = u->confirming;
	out->no_0x20 = u->no_0x20;
	out->case_retest_at = u->case_retest_at;
	out->case_offs = u->case_offs;
	out->probe_interval_ms = u->probe_interval_ms;
	out->oks = u->oks;
	out->servfails = u->servfails;
	out->refused = u->refused;
	out->timeouts = u->timeouts;
	out->errors = u->errors;
	out->deaths = u->deaths;
	out->revivals = u->revivals;
}

/* ---- the public calls: each one under the set's lock ---- */

unsigned dns_upstream_rto(const struct dns_upstream_set *s, unsigned idx)
{
	LOCK(s);
	unsigned r = rto_of(s, idx);
	UNLOCK(s);
	return r;
}

static void keep_question(struct dns_upstream_question *q, const uint8_t *qname, size_t len,
                          uint16_t qtype, uint16_t qclass)
{
	if (!qname || len <= 1 || len > sizeof(q->qname))
		return;
	memcpy(q->qname, qname, len);
	q->qname_len = len;
	q->qtype = qtype;
	q->qclass = qclass;
}

void dns_upstream_report_q(struct dns_upstream_set *s, unsigned idx, enum dns_upstream_outcome o,
                           unsigned rtt_ms, uint64_t now, const uint8_t *qname, size_t qname_len,
                           uint16_t qtype, uint16_t qclass)
{
	LOCK(s);
	report_u(s, idx, o, rtt_ms, now);
	if (idx < s->n && o == DNS_UPSTREAM_OK)
		keep_question(&s->u[idx].good, qname, qname_len, qtype, qclass);
	else if (idx < s->n && (o == DNS_UPSTREAM_TIMEOUT || o == DNS_UPSTREAM_ERROR))
		keep_question(&s->u[idx].failed, qname, qname_len, qtype, qclass);
	UNLOCK(s);
}

void dns_upstream_report(struct dns_upstream_set *s, unsigned idx, enum dns_upstream_outcome o,
                         unsigned rtt_ms, uint64_t now)
{
	dns_upstream_report_q(s, idx, o, rtt_ms, now, NULL, 0, 0, 0);
}

void dns_upstream_probe_result(struct dns_upstream_set *s, unsigned idx,
                               enum dns_upstream_outcome o, unsigned rtt_ms, uint64_t now)
{
	LOCK(s);
	probe_result_u(s, idx, o, rtt_ms, now);
	UNLOCK(s);
}

bool dns_upstream_use_0x20(const struct dns_upstream_set *s, unsigned idx, uint64_t now)
{
	LOCK(s);
	bool r = use_0x20_u(s, idx, now);
	UNLOCK(s);
	return r;
}

enum dns_upstream_case dns_upstream_case_report(struct dns_upstream_set *s, unsigned idx,
                                                bool echoed, uint64_t now)
{
	LOCK(s);
	enum dns_upstream_case r = case_report_u(s, idx, echoed, now);
	UNLOCK(s);
	return r;
}

int dns_upstream_pick(const struct dns_upstream_set *s, uint32_t tried, uint64_t now)
{
	LOCK(s);
	int r = pick_u(s, tried, now);
	UNLOCK(s);
	return r;
}

int dns_upstream_probe_due(struct dns_upstream_set *s, uint64_t now, uint64_t *next,
                           struct dns_upstream_question *q)
{
	LOCK(s);
	int r = probe_due_u(s, now, next);
	if (q && r >= 0) {
		const struct upstream *u = &s->u[r];
		const struct dns_upstream_question *k = u->good.qname_len ? &u->good : &u->failed;
		q->qname_len = k->qname_len;
		q->qtype = k->qtype;
		q->qclass = k->qclass;
		memcpy(q->qname, k->qname, k->qname_len);
	}
	UNLOCK(s);
	return r;
}

void dns_upstream_get(const struct dns_upstream_set *s, unsigned idx, struct dns_upstream_info *out)
{
	LOCK(s);
	get_u(s, idx, out);
	UNLOCK(s);
}

bool dns_upstream_all_dead(const struct dns_upstream_set *s)
{
	bool dead = s->n > 0;
	LOCK(s);
	for (unsigned i = 0; dead && i < s->n; i++)
		dead = s->u[i].state == DNS_UPSTREAM_DEAD;
	UNLOCK(s);
	return dead;
}
