/*
 * dns_query.h: the pure per-query upstream machine of the forwarder.
 *
 * One logical upstream query: which upstream to try next, how long a try
 * may run before we fail over, what each answer means for the query, and
 * when it ends. No sockets, no c-ares, no loop, no clock: the glue
 * (dns_forward.c) feeds events with `now` (ms) and carries out the actions,
 * in order (STYLE.md §5), so tests step hours of query time in
 * microseconds.
 *
 * Rules (what dns_forward.h promises):
 *   - at most `tries` tries, each on an upstream not yet tried for this
 *     query (dns_upstream_pick), all within timeout_ms of START;
 *   - a try waits its upstream's RTO (dns_upstream_rto) before we fail
 *     over, but never more than an equal share of the time left among the
 *     tries that could still follow, so an unmeasured upstream cannot eat
 *     the whole budget; the timed-out try stays live: a late answer wins;
 *   - SERVFAIL, REFUSED, truncated, malformed answers and transport errors
 *     fail over at once (or, from an older try, are only noted);
 *   - an answer whose question came back in another letter case (a likely
 *     spoof, draft-vixie-dnsext-dns0x20) is retried once on the same
 *     upstream over another channel; a second one ends with -EPROTO;
 *   - the query ends with 0 (the answer of try k), -ETIMEDOUT at the
 *     deadline, or the last error once nothing is left to try or wait for:
 *     -ECONNREFUSED (the upstreams said SERVFAIL/REFUSED), -ENETUNREACH
 *     (transport errors: ICMP, resets, unreachable at send), -EPROTO
 *     (malformed or truncated), -ETIMEDOUT, or what a local send failure
 *     reported.
 *
 * The policy is read, never written, inside a step: the machine calls
 * dns_upstream_pick/rto on the set it is given, and hands every outcome
 * back as a REPORT action. Reports only concern upstreams this query has
 * already tried, which pick skips, so applying them after the step gives
 * the same choices as applying them in between.
 *
 * The glue carries out a step's actions in order. When a SEND cannot be
 * carried out, it skips the rest of that step's actions and steps
 * SEND_FAILED for that try at once; the answer to that is always a fresh
 * SEND + ARM, an ARM, or a FINISH. FINISH is the last action of a step and
 * the machine takes no events after it (the glue cancels its timer and
 * orphans tries still in flight).
 *
 * Ownership: struct dns_query is a transparent value the glue embeds in
 * its request; it holds no pointers. Try indices (0..DNS_QUERY_MAX_TRIES-1)
 * name tries in events and actions; the glue maps them to its own objects.
 */
#ifndef ANYCACHE_DNS_QUERY_H
#define ANYCACHE_DNS_QUERY_H

#include <stdbool.h>
#include <stdint.h>

#include "dns/dns_upstream.h"

/* Every upstream once, plus the one spoof retry. */
#define DNS_QUERY_MAX_TRIES   (DNS_UPSTREAM_MAX + 1)
#define DNS_QUERY_MAX_ACTIONS 4

/* What the glue made of one try's answer (or c-ares's end of it). */
enum dns_query_verdict {
	DNS_QUERY_V_OK, /* usable: any RCODE but SERVFAIL/REFUSED, question exact */
	DNS_QUERY_V_SERVFAIL,
	DNS_QUERY_V_REFUSED,
	DNS_QUERY_V_TRUNCATED, /* TC=1 after c-ares's own TCP retry: broken */
	DNS_QUERY_V_MALFORMED, /* unparsable, not a response, wrong ID */
	DNS_QUERY_V_SPOOF,     /* question differs (0x20 case): discarded */
	DNS_QUERY_V_ERROR,     /* transport error (connection refused, ...) */
	DNS_QUERY_V_TIMEOUT,   /* c-ares gave up on it */
};

enum dns_query_event_kind {
	DNS_QUERY_EV_START,  /* once, first */
	DNS_QUERY_EV_ANSWER, /* try, verdict */
	DNS_QUERY_EV_TICK, /* the timer armed by ARM fired (early or spurious ticks are ignored) */
	DNS_QUERY_EV_SEND_FAILED, /* try, err, upstream_fault: the SEND could not be carried out */
};

struct dns_query_event {
	enum dns_query_event_kind kind;
	unsigned try;
	enum dns_query_verdict verdict;
	int err;             /* SEND_FAILED: -errno the query ends with if nothing else works */
	bool upstream_fault; /* SEND_FAILED: the upstream is to blame (reported, try counted) */
};

enum dns_query_action_kind {
	DNS_QUERY_A_SEND,   /* try (new index), upstream, avoid */
	DNS_QUERY_A_ARM,    /* deadline: (re)arm the query's one timer, replacing the old one */
	DNS_QUERY_A_REPORT, /* try, upstream, outcome, rtt_ms: dns_upstream_report */
	DNS_QUERY_A_FINISH, /* status (0: the answer of `try`); always the last action */
};

struct dns_query_action {
	enum dns_query_action_kind kind;
	unsigned try;
	unsigned upstream;
	int avoid; /* SEND: try index whose channel not to reuse (spoof retry), or -1 */
	uint64_t deadline;
	enum dns_upstream_outcome outcome;
	unsigned rtt_ms;
	int status;
};

struct dns_query_actions {
	unsigned n;
	struct dns_query_action a[DNS_QUERY_MAX_ACTIONS];
};

struct dns_query_try {
	uint64_t sent_at;
	uint8_t upstream;
	bool live;      /* sent, not yet answered or failed */
	bool timed_out; /* its RTO passed and was reported */
	bool spoof_retry;
};

struct dns_query {
	unsigned max_tries, timeout_ms;
	uint64_t deadline; /* START + timeout_ms */
	uint64_t wake;     /* what the last ARM asked for; earlier ticks do nothing */
	uint32_t tried;    /* upstream bitmask */
	unsigned n_tries;  /* counted tries (local send failures are not counted) */
	unsigned n_slots;  /* try indices handed out */
	int cur;           /* the try whose RTO the timer is for, or -1 */
	int last_err;
	bool spoof_retry_used;
	bool started, done;
	struct dns_query_try t[DNS_QUERY_MAX_TRIES];
};

/* tries 0 → 3, timeout_ms 0 → 2500; tries is capped at DNS_QUERY_MAX_TRIES - 1. */
void dns_query_init(struct dns_query *q, unsigned tries, unsigned timeout_ms);

/*
 * One event at `now`. Fills *out (cleared first). Events that do not apply
 * (an answer for a try that is not live, anything after FINISH or before
 * START) yield no action. Returns 0, or -EINVAL for a malformed event.
 */
int dns_query_step(struct dns_query *q, const struct dns_upstream_set *pol,
                   const struct dns_query_event *ev, uint64_t now, struct dns_query_actions *out);

/*
 * The policy outcome of a verdict, for tries the machine no longer tracks
 * (after FINISH, and re-probes). false: nothing to report (spoof).
 */
bool dns_query_outcome(enum dns_query_verdict v, enum dns_upstream_outcome *o);

#endif
