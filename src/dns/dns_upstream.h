/*
 * dns_upstream.h: the pure per-upstream health and selection policy.
 *
 * No sockets, no c-ares, no clock: every call that depends on time takes
 * `now` (ms) as a parameter, so tests step hours of upstream behaviour in
 * microseconds. The forwarder (dns_forward.c) reports the outcome of every
 * try and asks which upstream to use next.
 *
 * Per upstream:
 *   - an RTT estimate as in RFC 6298 §2 (SRTT, RTTVAR, RTO = SRTT +
 *     max(G, 4 RTTVAR), clamped to [min_rto, max_rto]), with the RTO
 *     doubled per consecutive timeout (§5.5) until an answer arrives;
 *   - consecutive hard failures (timeouts, REFUSED, transport errors) and
 *     an exponentially weighted failure rate that also counts SERVFAIL;
 *   - a state: HEALTHY; SUSPECT after one hard failure or when the failure
 *     rate passes one half; after `dead_after` consecutive hard failures
 *     it is only CONFIRMING (still SUSPECT): clients choose the names, so
 *     timeouts on a deliberately slow zone or REFUSED for chosen names say
 *     nothing about the upstream (issue 10, item 3). A probe of a
 *     known-good name (dns_upstream_probe_due) decides: any answer clears
 *     the failures, a failed probe makes it DEAD. SERVFAIL alone never
 *     kills an upstream: a broken zone SERVFAILs at every resolver, so it
 *     only lowers the preference.
 *   - DEAD upstreams get no client traffic while another upstream is not
 *     dead; they are re-probed at next_probe, with the interval doubling
 *     from probe_min_ms to probe_max_ms; any answer but REFUSED revives.
 *
 *   - DNS 0x20 (draft-vixie-dnsext-dns0x20): an upstream whose answers
 *     come back with our ID, on our port, with the question in another
 *     letter case CASE_DETECT times in a row (no exact echo between) does
 *     not echo case: it is asked without case randomisation (ID and port
 *     entropy stay) until case_retest_ms have passed, then tested again.
 *
 * Selection: among upstreams not yet tried for this query, the non-dead
 * one with the best state, then the lowest RTO (an unmeasured upstream
 * counts with initial_rto_ms), then the lowest index. When every untried
 * upstream is dead, the one whose probe is due earliest is used anyway, so
 * a total outage is noticed as soon as any upstream comes back.
 *
 * One set per node (issue 8: what a user sees is per node, never per
 * worker): every worker's forwarder reports into and picks from the same
 * set, so an upstream dies, revives and loses 0x20 once for the whole node,
 * serve-stale's "every upstream is dead" is the same on every worker, and
 * one worker sends each due probe. Each call takes the set's mutex: calls
 * come per upstream try and answer, never per cache hit.
 *
 * Ownership: struct dns_upstream_set is opaque and owns its array; it is
 * reference-counted (dns_upstream_set_ref; dns_upstream_set_free drops one
 * reference and frees with the last).
 */
#ifndef ANYCACHE_DNS_UPSTREAM_H
#define ANYCACHE_DNS_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/dns_wire.h"

#define DNS_UPSTREAM_MAX 16 /* tried-sets are a 32-bit mask; configs stay small */

enum dns_upstream_state {
	DNS_UPSTREAM_HEALTHY = 0,
	DNS_UPSTREAM_SUSPECT = 1,
	DNS_UPSTREAM_DEAD = 2,
};

enum dns_upstream_outcome {
	DNS_UPSTREAM_OK,       /* an answer that can be used (any RCODE but the two below) */
	DNS_UPSTREAM_SERVFAIL, /* soft: rate only */
	DNS_UPSTREAM_REFUSED,  /* hard: the upstream will not serve us */
	DNS_UPSTREAM_TIMEOUT,  /* hard; rtt_ms ignored */
	DNS_UPSTREAM_ERROR,    /* hard: connection refused, malformed answer */
};

struct dns_upstream_conf {
	unsigned initial_rto_ms; /* 800: before the first RTT sample */
	unsigned min_rto_ms;     /* 100 */
	unsigned max_rto_ms;     /* 1500: one try never waits longer */
	unsigned dead_after;     /* 3 consecutive hard failures */
	unsigned probe_min_ms;   /* 1000: first re-probe of a dead upstream */
	unsigned probe_max_ms;   /* 30000 */
	unsigned case_retest_ms; /* 600000: an upstream that ignores 0x20 is re-tested after this */
};
/* Zero fields take the defaults above. */

/* What one upstream looks like, for tests, metrics and logs. */
struct dns_upstream_info {
	enum dns_upstream_state state;
	bool measured; /* has an RTT sample */
	unsigned srtt_ms, rttvar_ms, rto_ms;
	unsigned consecutive_fail;
	unsigned fail_rate_pm;   /* EWMA of failures, per mille (1/16 weight per outcome) */
	uint64_t next_probe;     /* DEAD or confirming: when a probe is due */
	bool confirming;         /* dead_after failures in a row: a probe decides (SUSPECT) */
	bool no_0x20;            /* does not echo 0x20 case: asked without it */
	uint64_t case_retest_at; /* no_0x20: when case randomisation is tried again */
	uint64_t case_offs;      /* times it was found not to echo case */
	unsigned probe_interval_ms;
	uint64_t oks, servfails, refused, timeouts, errors, deaths, revivals;
};

struct dns_upstream_set;

/* n in 1..DNS_UPSTREAM_MAX; conf may be NULL. 0, -EINVAL or -ENOMEM. */
int dns_upstream_set_new(const struct dns_upstream_conf *conf, unsigned n,
                         struct dns_upstream_set **out);
struct dns_upstream_set *dns_upstream_set_ref(struct dns_upstream_set *s);
void dns_upstream_set_free(struct dns_upstream_set *s); /* NULL: nothing */
unsigned dns_upstream_count(const struct dns_upstream_set *s);

/*
 * The upstream to send the next try to, skipping those whose bit is set in
 * `tried` (bit i = upstream i). -ENOENT when every upstream was tried.
 */
int dns_upstream_pick(const struct dns_upstream_set *s, uint32_t tried, uint64_t now);

/* How long to wait for this upstream before failing over: its RTO. */
unsigned dns_upstream_rto(const struct dns_upstream_set *s, unsigned idx);

/* Records one try's outcome; rtt_ms is the time from send to answer. */
void dns_upstream_report(struct dns_upstream_set *s, unsigned idx, enum dns_upstream_outcome o,
                         unsigned rtt_ms, uint64_t now);

/*
 * What a probe asks (issue 10, item 3), one per upstream for the whole node:
 * the last question it answered (known good: a client cannot make it fail on
 * purpose), else the last one that failed hard there (what clients need from
 * it), else nothing (the prober then asks ". NS").
 */
struct dns_upstream_question {
	uint8_t qname[DNS_NAME_MAX]; /* wire form */
	size_t qname_len;            /* 0: none */
	uint16_t qtype, qclass;
};

/* dns_upstream_report with the try's question (qname NULL: none): OK keeps
 * it as the good one, TIMEOUT and ERROR as the failed one; a root-only or
 * oversized name is not kept. */
void dns_upstream_report_q(struct dns_upstream_set *s, unsigned idx, enum dns_upstream_outcome o,
                           unsigned rtt_ms, uint64_t now, const uint8_t *qname, size_t qname_len,
                           uint16_t qtype, uint16_t qclass);

/*
 * A dead upstream whose re-probe is due, or a confirming one whose probe is
 * due: returns its index and marks the probe as running (the next one is
 * scheduled now: with doubled interval when dead, probe_max_ms later when
 * confirming, so a lost probe is simply retried), or -ENOENT. *next (may be
 * NULL) receives the earliest future probe deadline or UINT64_MAX, for
 * arming a timer. *q (may be NULL) receives the question to ask (see
 * struct dns_upstream_question; qname_len 0 when none is known).
 */
int dns_upstream_probe_due(struct dns_upstream_set *s, uint64_t now, uint64_t *next,
                           struct dns_upstream_question *q);

/*
 * The outcome of a probe sent for probe_due. An answer (OK, SERVFAIL)
 * revives a dead upstream or clears a confirming one; a failure makes a
 * confirming upstream DEAD (a dead one stays dead).
 */
void dns_upstream_probe_result(struct dns_upstream_set *s, unsigned idx,
                               enum dns_upstream_outcome o, unsigned rtt_ms, uint64_t now);

/* Whether a try to idx now uses 0x20 case randomisation. */
bool dns_upstream_use_0x20(const struct dns_upstream_set *s, unsigned idx, uint64_t now);

enum dns_upstream_case {
	DNS_UPSTREAM_CASE_SPOOF,    /* treat as a likely spoof (discard, retry) */
	DNS_UPSTREAM_CASE_ACCEPT,   /* known not to echo case: accept the answer */
	DNS_UPSTREAM_CASE_DETECTED, /* found not to echo case just now: accept, log once */
};
#define DNS_UPSTREAM_CASE_DETECT 2

/*
 * A try sent with 0x20 case came back: echoed (the exact octets), or in
 * another letter case with our ID on our port. Returns what to make of a
 * mismatch (CASE_ACCEPT for an echo). An echo after a re-test ends no_0x20.
 */
enum dns_upstream_case dns_upstream_case_report(struct dns_upstream_set *s, unsigned idx,
                                                bool echoed, uint64_t now);

void dns_upstream_get(const struct dns_upstream_set *s, unsigned idx,
                      struct dns_upstream_info *out);

/* Whether every upstream is DEAD (asked on every cache miss: one lock, no copy). */
bool dns_upstream_all_dead(const struct dns_upstream_set *s);

#endif
