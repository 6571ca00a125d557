/*
 * dns_forward.c: upstream queries over per-upstream UDP socket pools, with
 * c-ares only for the TCP retry of truncated answers.
 *
 * Three objects:
 *   - struct upstream: its address, its socket pool (core/udp_pool.h) and,
 *     once an answer came back truncated, a c-ares channel for TCP.
 *   - struct fwd_try: one query sent to one upstream. It is found by its ID
 *     (by_id), waits on one socket of the pool (or in c-ares, over TCP), and
 *     sits on the expiry list in send order until it ends: answered, failed,
 *     or timeout_ms after it was sent. It outlives its request when the
 *     request ends first (failover, deadline): then try->req is NULL and
 *     the try only waits for its own end, so a late answer or timeout still
 *     informs the upstream policy.
 *   - struct fwd_req: one logical query with its waiters, indexed by the
 *     coalescing key while it can take more waiters. Its decisions (which
 *     upstream next, when a try times out, failover, the spoof retry, the
 *     budget, the end) are made by the pure machine it embeds (dns_query.h);
 *     drive() feeds it events and carries out its actions. This file keeps
 *     sockets, IDs, coalescing, timers and the verdict on the answer bytes.
 * Tries and requests come from free lists, so a warm forwarder allocates
 * nothing per query. Timers: one per request (armed where the machine
 * says), one for the head of the expiry list (re-armed only when the head
 * expires, not per try), one probe timer. Callbacks to callers run only from
 * datagram, c-ares or timer callbacks, never from dns_forward_query.
 */
#include "dns/dns_forward.h"
#include "dns/dns_hash.h"

#include <ares.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/ares_glue.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/rand.h"
#include "core/udp_pool.h"
#include "core/wire.h"
#include "dns/dns_query.h"

#define ID_TRIES      64
#define TRY_CHUNK     256 /* tries per slab chunk */
#define TRY_CHUNKS    255 /* slots are stored +1 in 16 bits */
#define REQ_FREE_MAX  1024
#define QUERY_OPT_LEN 11 /* dns_build_query's OPT: root, type, class, TTL, RDLENGTH 0 */

struct dns_forward;
struct fwd_req;

struct upstream {
	struct dns_forward *f;
	unsigned idx;
	struct netaddr addr;
	struct udp_pool *pool;
	struct ares_glue *tcp; /* NULL until the first truncated answer */
};

struct fwd_try {
	struct dns_forward *f;
	struct fwd_req *req; /* NULL: orphaned (request over) or a probe */
	struct upstream *u;
	struct udp_sock *sock;         /* held while a UDP answer is awaited */
	struct fwd_try *eprev, *enext; /* expiry list (UDP only); free list (enext) */
	uint64_t sent_ms, expires;
	unsigned k;    /* the machine's try index, while req is set */
	uint16_t slot; /* in the slab */
	uint16_t id, qtype, qclass;
	bool cd, do_bit;
	bool linked;      /* on the expiry list */
	bool tcp;         /* asked again over TCP: c-ares has it */
	bool plain;       /* asked again without our OPT (FORMERR) */
	bool timed_out;   /* its timeout was reported (RTO or deadline) */
	bool sending;     /* inside ares_send: a callback now is synchronous */
	bool probe;       /* a health probe (dns_upstream_probe_due), never a request's */
	bool case_random; /* sent with 0x20 case (dns_upstream_use_0x20) */
	int sync_status;
	size_t qname_len;
	uint8_t qname[DNS_NAME_MAX]; /* as sent upstream, 0x20 case applied */
};

struct waiter {
	dns_forward_cb cb;
	void *ctx;
};

struct fwd_req {
	struct dns_forward *f;
	struct fwd_req *hnext;       /* hash chain, while indexed; free list */
	struct fwd_req *prev, *next; /* all requests, for free */
	bool indexed;
	uint64_t hash;
	uint8_t name[DNS_NAME_MAX]; /* lowercased */
	size_t qname_len;
	uint16_t qtype, qclass;
	bool cd, do_bit;
	bool sent_any; /* a try left: later ones are retries */
	struct dns_query q;
	struct timer t;
	struct fwd_try *tr[DNS_QUERY_MAX_TRIES]; /* by try index; NULL once over */
	unsigned n_waiters, cap_waiters;
	struct waiter *w;
	struct waiter w0;
};

struct dns_forward {
	struct loop *loop;
	struct dns_upstream_set *pol;
	struct upstream up[DNS_FORWARD_MAX_UPSTREAMS];
	unsigned n_up;
	unsigned timeout_ms, tries, max_outstanding;
	unsigned max_waiters;
	bool closing;
	struct timer prober, expiry;
	struct fwd_req **tab;
	size_t tab_mask;
	uint64_t seed;
	struct dns_hash_key hkey; /* key_hash() */
	struct fwd_req *reqs;
	struct fwd_req *req_free;
	unsigned n_req_free;
	struct rand rng; /* IDs, 0x20 case, socket choice: no system call per number */
	/* Tries: a slab of chunks, a free list, and the map from query ID to
	 * slot + 1 (0: the ID is free), so IDs of outstanding tries never repeat. */
	struct fwd_try *chunk[TRY_CHUNKS];
	unsigned n_chunks;
	struct fwd_try *try_free;
	uint16_t *by_id;
	struct fwd_try *ehead, *etail;            /* expiry list, oldest first */
	bool case_off[DNS_FORWARD_MAX_UPSTREAMS]; /* logged as not echoing 0x20 */
	unsigned case_retest_ms;
	struct dns_forward_stats stats;
	void (*tap)(void *arg, bool response, bool tcp, const struct netaddr *upstream,
	            const uint8_t *msg, size_t len);
	void *tap_arg;
};

static void req_timer(struct timer *t, uint64_t now, void *arg);
static void arm_prober(struct dns_forward *f, uint64_t now);

/* ---- tries: slab, IDs, expiry list ---- */

static struct fwd_try *try_alloc(struct dns_forward *f)
{
	struct fwd_try *t = f->try_free;

	if (!t) {
		if (f->n_chunks == TRY_CHUNKS)
			return NULL;
		struct fwd_try *c = calloc(TRY_CHUNK, sizeof(*c));
		if (!c)
			return NULL;
		for (unsigned i = 0; i < TRY_CHUNK; i++) {
			c[i].slot = (uint16_t)(f->n_chunks * TRY_CHUNK + i);
			c[i].enext = i + 1 < TRY_CHUNK ? &c[i + 1] : NULL;
		}
		f->chunk[f->n_chunks++] = c;
		t = c;
	}
	f->try_free = t->enext;
	uint16_t slot = t->slot;
	/* Only what a try must start with: qname is written up to qname_len. */
	memset(t, 0, offsetof(struct fwd_try, qname));
	t->slot = slot;
	return t;
}

static struct fwd_try *try_by_id(const struct dns_forward *f, uint16_t id)
{
	unsigned s = f->by_id[id];

	if (!s)
		return NULL;
	s--;
	return &f->chunk[s / TRY_CHUNK][s % TRY_CHUNK];
}

/* A random ID no outstanding try has (the upstream tells tries apart by
 * ID); -EBUSY if none found quickly. */
static int pick_id(struct dns_forward *f, uint16_t *id)
{
	for (int i = 0; i < ID_TRIES; i++) {
		uint16_t v = rand_u16(&f->rng);
		if (!f->by_id[v]) {
			*id = v;
			return 0;
		}
	}
	return -EBUSY;
}

static void expiry_link(struct dns_forward *f, struct fwd_try *t, uint64_t now)
{
	t->expires = now + f->timeout_ms;
	t->eprev = f->etail;
	t->enext = NULL;
	if (f->etail)
		f->etail->enext = t;
	else
		f->ehead = t;
	f->etail = t;
	t->linked = true;
	/* Send order is expiry order: only a new head needs the timer. */
	if (f->ehead == t)
		loop_timer_arm(f->loop, &f->expiry, t->expires);
}

static void expiry_unlink(struct dns_forward *f, struct fwd_try *t)
{
	if (!t->linked)
		return;
	if (t->eprev)
		t->eprev->enext = t->enext;
	else
		f->ehead = t->enext;
	if (t->enext)
		t->enext->eprev = t->eprev;
	else
		f->etail = t->eprev;
	t->eprev = t->enext = NULL;
	t->linked = false;
}

static void try_unlink(struct fwd_try *t)
{
	struct fwd_req *rq = t->req;

	if (!rq)
		return;
	if (rq->tr[t->k] == t)
		rq->tr[t->k] = NULL;
	t->req = NULL;
}

static void release_sock(struct fwd_try *t)
{
	if (t->sock) {
		udp_pool_put(t->u->pool, t->sock);
		t->sock = NULL;
	}
}

/* The try is over: its ID is free again, its socket no longer held. */
static void try_free(struct fwd_try *t)
{
	struct dns_forward *f = t->f;

	try_unlink(t);
	expiry_unlink(f, t);
	release_sock(t);
	if (f->by_id[t->id] == t->slot + 1)
		f->by_id[t->id] = 0;
	t->enext = f->try_free;
	f->try_free = t;
}

/* ---- coalescing index ---- */

/* The cache's keyed hash (dns_hash.h, one home), with this forwarder's own
 * random key: clients choose qnames. Chains are bounded anyway by
 * max_outstanding. name is already lowercased. */
static uint64_t key_hash(const struct dns_forward *f, const uint8_t *name, size_t len,
                         uint16_t qtype, uint16_t qclass, bool cd, bool do_bit)
{
	struct dns_qkey k;

	if (dns_qkey_build(&k, &f->hkey, NULL, name, len, qtype, qclass, do_bit, cd) < 0)
		return 0; /* cannot happen: the caller checked 1..255 */
	return k.hash;
}

static struct fwd_req *index_find(struct dns_forward *f, uint64_t h, const uint8_t *name,
                                  size_t len, uint16_t qtype, uint16_t qclass, bool cd, bool do_bit)
{
	for (struct fwd_req *r = f->tab[h & f->tab_mask]; r; r = r->hnext)
		if (r->hash == h && r->qname_len == len && r->qtype == qtype &&
		    r->qclass == qclass && r->cd == cd && r->do_bit == do_bit &&
		    memcmp(r->name, name, len) == 0)
			return r;
	return NULL;
}

static void index_remove(struct fwd_req *rq)
{
	struct dns_forward *f = rq->f;

	if (!rq->indexed)
		return;
	for (struct fwd_req **p = &f->tab[rq->hash & f->tab_mask]; *p; p = &(*p)->hnext) {
		if (*p == rq) {
			*p = rq->hnext;
			break;
		}
	}
	rq->indexed = false;
}

/* ---- requests ---- */

static struct fwd_req *req_alloc(struct dns_forward *f)
{
	struct fwd_req *rq = f->req_free;

	if (!rq)
		return calloc(1, sizeof(*rq));
	f->req_free = rq->hnext;
	f->n_req_free--;
	memset(rq, 0, sizeof(*rq));
	return rq;
}

static void req_release(struct dns_forward *f, struct fwd_req *rq)
{
	if (rq->w != &rq->w0)
		free(rq->w);
	/* Keep enough for a busy second; a rare burst beyond goes back to malloc. */
	if (f->n_req_free >= REQ_FREE_MAX) {
		free(rq);
		return;
	}
	rq->hnext = f->req_free;
	f->req_free = rq;
	f->n_req_free++;
}

/* Ends the request: every waiter gets the result, in the order they came. */
/* A lone waiter gets *scan itself (the caller's, which it may change); more
 * waiters get a copy each. */
static void req_finish(struct fwd_req *rq, int status, const uint8_t *ans, size_t len,
                       struct dns_scan *scan)
{
	struct dns_forward *f = rq->f;

	index_remove(rq);
	loop_timer_cancel(f->loop, &rq->t);
	for (unsigned i = 0; i < DNS_QUERY_MAX_TRIES; i++)
		if (rq->tr[i])
			try_unlink(rq->tr[i]);
	if (rq->prev)
		rq->prev->next = rq->next;
	else
		f->reqs = rq->next;
	if (rq->next)
		rq->next->prev = rq->prev;
	f->stats.outstanding--;
	f->stats.waiters -= rq->n_waiters - 1;
	if (status == 0)
		f->stats.answers++;
	else if (status != -ECANCELED)
		f->stats.failures++;
	for (unsigned i = 0; i < rq->n_waiters; i++) {
		struct dns_scan copy;
		if (scan && rq->n_waiters > 1)
			copy = *scan;
		rq->w[i].cb(rq->w[i].ctx, status, ans, len,
		            scan && rq->n_waiters > 1 ? &copy : scan);
	}
	req_release(f, rq);
}

/*
 * One outcome for the policy and the counters: from the machine's REPORT
 * actions for a request's tries, directly for orphaned tries and probes.
 * t (may be NULL) remembers a reported timeout, so the try's own timeout
 * (timeout_ms after it was sent) is not counted twice.
 */
static void note(struct dns_forward *f, unsigned idx, enum dns_upstream_outcome o, unsigned rtt,
                 uint64_t now, struct fwd_try *t)
{
	struct dns_forward_upstream_stats *us = &f->stats.up[idx];

	switch (o) {
	case DNS_UPSTREAM_OK:
		us->answers++;
		us->rtt_ms_sum += rtt;
		f->stats.rtt_ms_sum += rtt;
		break;
	case DNS_UPSTREAM_SERVFAIL:
		us->servfail++;
		f->stats.servfail++;
		break;
	case DNS_UPSTREAM_REFUSED:
		us->refused++;
		f->stats.refused++;
		break;
	case DNS_UPSTREAM_TIMEOUT:
		us->timeouts++;
		f->stats.timeouts++;
		if (t)
			t->timed_out = true;
		break;
	case DNS_UPSTREAM_ERROR:
		us->failures++;
		break;
	}
	/* The try's question becomes the node's probe question for idx (an
	 * answer: known good; a hard failure: what clients need from it). */
	if (t && t->probe)
		dns_upstream_probe_result(f->pol, idx, o, rtt, now);
	else if (t)
		dns_upstream_report_q(f->pol, idx, o, rtt, now, t->qname, t->qname_len, t->qtype,
		                      t->qclass);
	else
		dns_upstream_report(f->pol, idx, o, rtt, now);
	/* A hard failure may have killed it: make sure its re-probe is scheduled. */
	if (o != DNS_UPSTREAM_OK && o != DNS_UPSTREAM_SERVFAIL)
		arm_prober(f, now);
}

/*
 * Our query for t: ID, RD=1, CD and DO as asked, the 0x20 name, our OPT
 * last (dns_build_query) unless t->plain: then the OPT is cut off, which
 * leaves a valid plain query (RFC 6891 §7 fallback).
 */
static int build(const struct fwd_try *t, uint8_t *buf, size_t cap)
{
	struct wbuf b = wbuf_init(buf, cap);
	int len = dns_build_query(&b, t->id, t->qname, t->qname_len, t->qtype, t->qclass, t->cd,
	                          t->do_bit);

	if (len < 0 || !t->plain)
		return len;
	len -= QUERY_OPT_LEN;
	buf[10] = buf[11] = 0; /* ARCOUNT */
	return len;
}

/* connect() failed for the network's or the upstream's sake, not ours. */
static bool path_error(int err)
{
	switch (-err) {
	case ENETUNREACH:
	case EHOSTUNREACH:
	case ENETDOWN:
	case EHOSTDOWN:
	case ECONNREFUSED:
	case EADDRNOTAVAIL:
	case EACCES:
	case EPERM:
		return true;
	default:
		return false;
	}
}

/*
 * Builds and sends one try of rq (try index k) or a probe (rq NULL) on u.
 * On failure *fault says whether the upstream (or the path to it) is to
 * blame, rather than this host (no memory, no send slot, no free ID, no
 * file descriptor).
 */
static int send_try_q(struct dns_forward *f, struct fwd_req *rq, unsigned k, struct upstream *u,
                      const struct udp_sock *avoid, const uint8_t *name, size_t name_len,
                      uint16_t qtype, uint16_t qclass, bool cd, bool do_bit, uint64_t now,
                      bool *fault)
{
	uint8_t rnd[DNS_0X20_RANDOM_BYTES];
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_MAX + 4 + QUERY_OPT_LEN];
	struct udp_sock *s;
	struct fwd_try *t;
	int len, r = 0;

	*fault = false;
	s = udp_pool_pick(u->pool, avoid, now, &r);
	if (!s) {
		/* Unreachable at connect() time: an upstream failure like any other
		 * (a probe's caller reports it as the probe's outcome). */
		*fault = path_error(r);
		return r;
	}
	t = try_alloc(f);
	if (!t)
		return -ENOMEM;
	if (pick_id(f, &t->id)) {
		t->enext = f->try_free;
		f->try_free = t;
		return -EBUSY;
	}
	t->f = f;
	t->u = u;
	t->qtype = qtype;
	t->qclass = qclass;
	t->cd = cd;
	t->do_bit = do_bit;
	t->qname_len = name_len;
	memcpy(t->qname, name, name_len);
	t->probe = rq == NULL;
	t->case_random = dns_upstream_use_0x20(f->pol, u->idx, now);
	if (t->case_random) {
		/* One bit per name octet (dns_wire.h): draw only the bytes this name needs. */
		rand_bytes(&f->rng, rnd, (name_len + 7) / 8);
		dns_name_randomize_case(t->qname, name_len, rnd, (name_len + 7) / 8);
	} else {
		/* An upstream that does not echo case: lowercase, ID and port kept. */
		dns_name_lower(t->qname, t->qname, name_len);
	}
	t->sent_ms = now;
	len = build(t, buf, sizeof(buf));
	if (len >= 0)
		r = udp_pool_send(u->pool, s, buf, (size_t)len);
	if (len >= 0 && r == 0 && f->tap)
		f->tap(f->tap_arg, false, false, &u->addr, buf, (size_t)len);
	if (len < 0 || r < 0) {
		t->enext = f->try_free;
		f->try_free = t;
		return len < 0 ? len : r;
	}
	f->by_id[t->id] = (uint16_t)(t->slot + 1);
	udp_sock_hold(s);
	t->sock = s;
	expiry_link(f, t, now);
	if (rq) {
		t->req = rq;
		t->k = k;
		rq->tr[k] = t;
		f->stats.sent++;
		f->stats.up[u->idx].sent++;
	} else {
		f->stats.probes++;
		f->stats.up[u->idx].probes++;
	}
	return 0;
}

static int send_try(struct fwd_req *rq, unsigned k, struct upstream *u,
                    const struct udp_sock *avoid, uint64_t now, bool *fault)
{
	return send_try_q(rq->f, rq, k, u, avoid, rq->name, rq->qname_len, rq->qtype, rq->qclass,
	                  rq->cd, rq->do_bit, now, fault);
}

/*
 * Steps rq's machine with ev and carries out the actions in order. A SEND
 * that fails skips the rest of the step and becomes a SEND_FAILED event.
 * FINISH status 0 hands on ans/scan (the answer of the try just judged).
 * starting (dns_forward_query): a FINISH means nothing was sent; its status
 * is returned and rq is left for the caller to unwind, no callback. Else 0;
 * rq may be freed when this returns.
 */
static int drive(struct fwd_req *rq, struct dns_query_event ev, uint64_t now, const uint8_t *ans,
                 size_t len, struct dns_scan *scan, bool starting)
{
	struct dns_forward *f = rq->f;
	struct dns_query_actions acts;
	bool again = true;

	while (again) {
		again = false;
		(void)dns_query_step(&rq->q, f->pol, &ev, now, &acts);
		for (unsigned i = 0; i < acts.n && !again; i++) {
			const struct dns_query_action *a = &acts.a[i];
			const struct udp_sock *avoid = NULL;
			bool fault;
			int r;

			switch (a->kind) {
			case DNS_QUERY_A_SEND:
				if (a->avoid >= 0) {
					f->stats.spoof_retries++;
					if (rq->tr[a->avoid])
						avoid = rq->tr[a->avoid]->sock;
				}
				r = send_try(rq, a->try, &f->up[a->upstream], avoid, now, &fault);
				if (r) {
					ev = (struct dns_query_event){.kind =
					                                  DNS_QUERY_EV_SEND_FAILED,
					                              .try = a->try,
					                              .err = r,
					                              .upstream_fault = fault};
					again = true;
					break;
				}
				if (rq->sent_any)
					f->stats.retries++;
				rq->sent_any = true;
				break;
			case DNS_QUERY_A_ARM:
				loop_timer_arm(f->loop, &rq->t, a->deadline);
				break;
			case DNS_QUERY_A_REPORT:
				note(f, a->upstream, a->outcome, a->rtt_ms, now,
				     a->try < DNS_QUERY_MAX_TRIES ? rq->tr[a->try] : NULL);
				break;
			case DNS_QUERY_A_FINISH:
				if (starting)
					return a->status;
				if (a->status == 0)
					req_finish(rq, 0, ans, len, scan);
				else
					req_finish(rq, a->status, NULL, 0, NULL);
				return 0;
			}
		}
	}
	return 0;
}

static void req_timer(struct timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)drive(arg, (struct dns_query_event){.kind = DNS_QUERY_EV_TICK}, now, NULL, 0, NULL,
	            false);
}

/* ---- probes of dead upstreams ---- */

static void probe_timer(struct timer *t, uint64_t now, void *arg)
{
	static const uint8_t root[1] = {0};
	struct dns_forward *f = arg;
	uint64_t next = UINT64_MAX;
	int idx;

	(void)t;
	/* The node's question for it (dns_upstream_question: known good, else
	 * the one that failed there), else ". NS" (RFC 8109 §3 uses it for
	 * priming; refused by an upstream that is only authoritative, which then
	 * could never revive, hence last): any real answer revives. */
	struct dns_upstream_question q;
	while ((idx = dns_upstream_probe_due(f->pol, now, &next, &q)) >= 0) {
		struct upstream *u = &f->up[idx];
		bool fault;
		int r;
		if (q.qname_len)
			r = send_try_q(f, NULL, 0, u, NULL, q.qname, q.qname_len, q.qtype, q.qclass,
			               false, false, now, &fault);
		else
			r = send_try_q(f, NULL, 0, u, NULL, root, 1, DNS_TYPE_NS, DNS_CLASS_IN,
			               false, false, now, &fault);
		/* Unreachable at once: the probe failed. */
		if (r < 0 && fault)
			dns_upstream_probe_result(f->pol, (unsigned)idx, DNS_UPSTREAM_ERROR, 0,
			                          now);
	}
	if (next != UINT64_MAX)
		loop_timer_arm(f->loop, &f->prober, next);
}

static void arm_prober(struct dns_forward *f, uint64_t now)
{
	uint64_t earliest = UINT64_MAX;

	(void)now;
	for (unsigned i = 0; i < f->n_up; i++) {
		struct dns_upstream_info in;
		dns_upstream_get(f->pol, i, &in);
		if ((in.state == DNS_UPSTREAM_DEAD || in.confirming) && in.next_probe < earliest)
			earliest = in.next_probe;
	}
	if (earliest == UINT64_MAX)
		return;
	if (!timer_armed(&f->prober) || f->prober.deadline > earliest)
		loop_timer_arm(f->loop, &f->prober, earliest);
}

/* ---- answers ---- */

/* What judge() makes of a message for try t, beyond the machine's verdicts. */
enum {
	J_IGNORE = -1, /* not an answer to t: keep waiting */
	J_PLAIN = -2,  /* FORMERR without OPT: ask again without ours */
	J_TCP = -3,    /* truncated over UDP: ask again over TCP */
};

/*
 * The verdict on a message that came back for t (its ID, on its socket, or
 * from c-ares over TCP). Only our question, octet for octet, is an answer;
 * the same question in another letter case is a spoof (someone guessed the
 * ID and port but not the 0x20 pattern).
 */
static int judge(const struct fwd_try *t, const uint8_t *p, size_t len, bool tcp, bool nocase_ok,
                 struct dns_scan *scan, enum dns_qmatch *qm)
{
	enum dns_qmatch m;
	int r = dns_scan(p, len, scan);

	if (r < 0 && r != -E2BIG) {
		m = *qm = dns_match_question(p, len, t->qname, t->qname_len, t->qtype, t->qclass);
		if (m == DNS_QMATCH_NONE)
			return tcp ? DNS_QUERY_V_MALFORMED : J_IGNORE;
		return m == DNS_QMATCH_NOCASE && !nocase_ok ? DNS_QUERY_V_SPOOF
		                                            : DNS_QUERY_V_MALFORMED;
	}
	m = *qm = dns_scan_match_question(p, scan, t->qname, t->qname_len, t->qtype, t->qclass);
	if (m == DNS_QMATCH_NONE)
		return tcp ? DNS_QUERY_V_MALFORMED : J_IGNORE;
	if (m == DNS_QMATCH_NOCASE && !nocase_ok)
		return DNS_QUERY_V_SPOOF;
	if (!scan->qr || scan->id != t->id)
		return DNS_QUERY_V_MALFORMED;
	/* RFC 6891 §7: a responder that does not know EDNS answers FORMERR without OPT. */
	if (scan->rcode == DNS_RCODE_FORMERR && !scan->has_opt && !t->plain)
		return J_PLAIN;
	if (scan->tc)
		return tcp ? DNS_QUERY_V_TRUNCATED : J_TCP;
	if (scan->rcode == DNS_RCODE_SERVFAIL)
		return DNS_QUERY_V_SERVFAIL;
	if (scan->rcode == DNS_RCODE_REFUSED)
		return DNS_QUERY_V_REFUSED;
	return DNS_QUERY_V_OK;
}

/*
 * t ended with verdict v (ans/scan: the answer, for DNS_QUERY_V_OK): tell
 * its request's machine, or, for orphans and probes, the policy directly
 * (a timeout once: the RTO may have reported it already). Frees t.
 */
static void try_end(struct fwd_try *t, enum dns_query_verdict v, const uint8_t *ans, size_t len,
                    struct dns_scan *scan)
{
	struct dns_forward *f = t->f;
	struct fwd_req *rq = t->req;
	uint64_t now = loop_now(f->loop);
	unsigned rtt = (unsigned)(now - t->sent_ms);
	enum dns_upstream_outcome o;

	if (v == DNS_QUERY_V_SPOOF) {
		f->stats.up[t->u->idx].mismatches++;
		f->stats.mismatches++;
	}
	if (!rq || f->closing) {
		if (dns_query_outcome(v, &o) && !(o == DNS_UPSTREAM_TIMEOUT && t->timed_out))
			note(f, t->u->idx, o, o == DNS_UPSTREAM_TIMEOUT ? 0 : rtt, now, t);
		try_free(t);
		return;
	}
	/* t keeps its socket while the machine runs: a spoof retry avoids it. */
	(void)drive(
	    rq, (struct dns_query_event){.kind = DNS_QUERY_EV_ANSWER, .try = t->k, .verdict = v},
	    now, ans, len, scan, false);
	try_free(t); /* already orphaned if the request finished */
}

static void on_tcp_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

/* Sends t's query (again) over TCP through c-ares: same ID, case, OPT. */
static int send_tcp(struct fwd_try *t)
{
	struct upstream *u = t->u;
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_MAX + 4 + QUERY_OPT_LEN];
	int len;

	if (!u->tcp) {
		struct ares_addr_port_node node;
		struct ares_options o;
		int r;

		memset(&o, 0, sizeof(o));
		/* USEVC: TCP only. NOCHECKRESP: SERVFAIL/REFUSED come back to us.
		 * One server, one try; its timeout bounds the try like ours. */
		o.flags = ARES_FLAG_USEVC | ARES_FLAG_NOSEARCH | ARES_FLAG_NOCHECKRESP;
		o.timeout = (int)t->f->timeout_ms;
		o.tries = 1;
		r = ares_glue_new(t->f->loop, &o,
		                  ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
		                      ARES_OPT_NOROTATE,
		                  &u->tcp);
		if (r)
			return r;
		memset(&node, 0, sizeof(node));
		node.family = u->addr.family;
		if (u->addr.family == AF_INET)
			memcpy(&node.addr.addr4, u->addr.addr, 4);
		else
			memcpy(&node.addr.addr6, u->addr.addr, 16);
		node.udp_port = u->addr.port;
		node.tcp_port = u->addr.port;
		if (ares_set_servers_ports(ares_glue_channel(u->tcp), &node) != ARES_SUCCESS) {
			ares_glue_free(u->tcp);
			u->tcp = NULL;
			return -EINVAL;
		}
	}
	len = build(t, buf, sizeof(buf));
	if (len < 0)
		return len;
	t->tcp = true;
	t->sync_status = 0;
	t->sending = true;
	ares_send(ares_glue_channel(u->tcp), buf, len, on_tcp_answer, t);
	t->sending = false;
	if (t->sync_status)
		return t->sync_status == ARES_ENOMEM ? -ENOMEM : -ECONNREFUSED;
	if (t->f->tap)
		t->f->tap(t->f->tap_arg, false, true, &u->addr, buf, (size_t)len);
	ares_glue_kick(u->tcp);
	return 0;
}

/* Carries out what judge() said about a message for t. */
/*
 * DNS 0x20 bookkeeping for an answer to t (issue 10, item 6): an exact echo
 * of a randomised question, or a case mismatch that the policy may put down
 * to an upstream that does not echo case. Returns v, or the verdict on the
 * same message with the case ignored.
 */
static int case_verdict(struct fwd_try *t, int v, enum dns_qmatch qm, const uint8_t *p, size_t len,
                        bool tcp, struct dns_scan *scan)
{
	struct dns_forward *f = t->f;
	uint64_t now = loop_now(f->loop);
	char name[NETADDR_STRLEN];

	if (!t->case_random || v == J_IGNORE)
		return v;
	if (qm == DNS_QMATCH_EXACT) {
		if (dns_upstream_case_report(f->pol, t->u->idx, true, now) ==
		        DNS_UPSTREAM_CASE_ACCEPT &&
		    f->case_off[t->u->idx]) {
			f->case_off[t->u->idx] = false;
			log_info("dns", "upstream %s echoes DNS 0x20 letter case again",
			         netaddr_format(&t->u->addr, true, name, sizeof(name)));
		}
		return v;
	}
	if (v != DNS_QUERY_V_SPOOF)
		return v;
	switch (dns_upstream_case_report(f->pol, t->u->idx, false, now)) {
	case DNS_UPSTREAM_CASE_SPOOF:
		return v;
	case DNS_UPSTREAM_CASE_DETECTED:
		if (!f->case_off[t->u->idx])
			log_warn("dns",
			         "upstream %s does not echo DNS 0x20 letter case: asking it "
			         "without case randomisation (ID and port checks stay), "
			         "testing again in %u s",
			         netaddr_format(&t->u->addr, true, name, sizeof(name)),
			         f->case_retest_ms / 1000);
		f->case_off[t->u->idx] = true;
		break;
	case DNS_UPSTREAM_CASE_ACCEPT:
		break;
	}
	f->stats.up[t->u->idx].case_ignored++;
	return judge(t, p, len, tcp, true, scan, &qm);
}

static void on_message(struct fwd_try *t, const uint8_t *p, size_t len, bool tcp)
{
	struct dns_forward *f = t->f;
	struct dns_scan scan;
	enum dns_qmatch qm = DNS_QMATCH_NONE;
	int v = judge(t, p, len, tcp, !t->case_random, &scan, &qm);

	v = case_verdict(t, v, qm, p, len, tcp, &scan);

	if (v != J_IGNORE && f->tap)
		f->tap(f->tap_arg, true, tcp, &t->u->addr, p, len);
	switch (v) {
	case J_IGNORE:
		f->stats.unmatched++;
		return;
	case J_PLAIN:
		f->stats.edns_fallbacks++;
		t->plain = true;
		if (tcp) {
			if (send_tcp(t) == 0)
				return;
		} else {
			/* Built with our OPT, then cut: it needs the OPT's room. */
			uint8_t buf[DNS_HDR_LEN + DNS_NAME_MAX + 4 + QUERY_OPT_LEN];
			int n = build(t, buf, sizeof(buf));
			if (n > 0 && udp_pool_send(t->u->pool, t->sock, buf, (size_t)n) == 0) {
				/* A new send: a new timeout, as for any try. */
				expiry_unlink(f, t);
				expiry_link(f, t, loop_now(f->loop));
				return;
			}
		}
		try_end(t, DNS_QUERY_V_ERROR, NULL, 0, NULL);
		return;
	case J_TCP:
		f->stats.tcp_fallbacks++;
		/* c-ares owns the try's timeout from now on; no UDP answer is awaited. */
		expiry_unlink(f, t);
		release_sock(t);
		if (send_tcp(t) == 0)
			return;
		try_end(t, DNS_QUERY_V_ERROR, NULL, 0, NULL);
		return;
	default:
		try_end(t, (enum dns_query_verdict)v, p, len, &scan);
		return;
	}
}

/*
 * A datagram on one of u's sockets. The kernel let only the upstream's
 * address and port in (connected socket); it counts only if a try with its
 * ID waits on this very socket: an off-path forger must guess both the ID
 * and the port (RFC 5452 §9.2), plus the 0x20 pattern.
 */
static void on_udp(void *ctx, struct udp_sock *s, const uint8_t *p, size_t len)
{
	struct upstream *u = ctx;
	struct dns_forward *f = u->f;
	struct wire w = wire_init(p, len);
	uint16_t id = wire_u16(&w);
	struct fwd_try *t = w.err ? NULL : try_by_id(f, id);

	if (!t || t->sock != s || len < DNS_HDR_LEN) {
		f->stats.unmatched++;
		return;
	}
	on_message(t, p, len, false);
}

/*
 * An ICMP error on socket s (port unreachable: nothing listens upstream):
 * every try waiting there fails over at once, as c-ares did. Tries sent
 * from the handlers (appended to the list) are not touched; handling a try
 * frees only that try, so the next pointer stays valid.
 */
static void on_udp_error(void *ctx, struct udp_sock *s, int err)
{
	struct upstream *u = ctx;
	struct dns_forward *f = u->f;
	struct fwd_try *last = f->etail;

	(void)err;
	f->stats.socket_errors++;
	for (struct fwd_try *t = f->ehead, *next; t; t = next) {
		bool was_last = t == last;
		next = t->enext;
		if (t->sock == s)
			try_end(t, DNS_QUERY_V_ERROR, NULL, 0, NULL);
		if (was_last)
			break;
	}
}

static void on_tcp_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct fwd_try *t = arg;
	enum dns_query_verdict v;

	(void)timeouts;
	if (t->sending) {
		/* Synchronous failure inside ares_send: send_tcp handles it. */
		t->sync_status = status ? status : ARES_ECONNREFUSED;
		return;
	}
	switch (status) {
	case ARES_SUCCESS:
		if (abuf && alen > 0) {
			on_message(t, abuf, (size_t)alen, true);
			return;
		}
		v = DNS_QUERY_V_MALFORMED;
		break;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		/* Shutting down: requests are over, only the try is left. */
		try_free(t);
		return;
	case ARES_ETIMEOUT:
		v = DNS_QUERY_V_TIMEOUT;
		break;
	default:
		v = DNS_QUERY_V_ERROR;
		break;
	}
	try_end(t, v, NULL, 0, NULL);
}

/* The head of the expiry list is timeout_ms old: those tries timed out. */
static void expiry_timer(struct timer *tm, uint64_t now, void *arg)
{
	struct dns_forward *f = arg;

	(void)tm;
	while (f->ehead && f->ehead->expires <= now) {
		struct fwd_try *t = f->ehead;
		expiry_unlink(f, t);
		try_end(t, DNS_QUERY_V_TIMEOUT, NULL, 0, NULL);
	}
	if (f->ehead)
		loop_timer_arm(f->loop, &f->expiry, f->ehead->expires);
}

/* ---- public ---- */

int dns_forward_new(struct loop *l, const struct dns_forward_conf *conf, struct dns_forward **out)
{
	struct udp_pool_conf pc = {.size = conf->sockets,
	                           .max_sends = conf->rotate_queries,
	                           .max_age_ms = conf->rotate_ms};
	struct dns_forward *f;
	unsigned n = conf->n_upstreams;
	size_t buckets = 64;
	int r;

	if (n == 0 || n > DNS_FORWARD_MAX_UPSTREAMS || conf->sockets > DNS_FORWARD_MAX_SOCKETS)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->loop = l;
	f->tap = conf->tap;
	f->tap_arg = conf->tap_arg;
	f->n_up = n;
	f->timeout_ms = conf->timeout_ms ? conf->timeout_ms : 2500;
	f->tries = conf->tries ? conf->tries : 3;
	f->max_outstanding = conf->max_outstanding ? conf->max_outstanding : 4096;
	if (f->max_outstanding > 32768)
		f->max_outstanding = 32768; /* IDs: each query needs some, orphans too */
	f->max_waiters = conf->max_waiters ? conf->max_waiters : 64;
	f->stats.n_upstreams = n;
	timer_init(&f->prober, probe_timer, f);
	timer_init(&f->expiry, expiry_timer, f);
	r = rand_init(&f->rng);
	if (r) {
		free(f);
		return r;
	}
	rand_bytes(&f->rng, &f->seed, sizeof(f->seed));
	f->hkey = dns_hash_key_from_seed(f->seed);
	while (buckets < f->max_outstanding && buckets < 65536)
		buckets *= 2;
	f->tab = calloc(buckets, sizeof(*f->tab));
	f->by_id = calloc(65536, sizeof(*f->by_id));
	if (!f->tab || !f->by_id) {
		free(f->tab);
		free(f->by_id);
		free(f);
		return -ENOMEM;
	}
	f->tab_mask = buckets - 1;
	f->case_retest_ms = conf->policy && conf->policy->case_retest_ms
	                        ? conf->policy->case_retest_ms
	                        : 600000; /* dns_upstream.h's default */
	if (!conf->shared_policy) {
		r = dns_upstream_set_new(conf->policy, n, &f->pol);
	} else if (dns_upstream_count(conf->shared_policy) != n) {
		r = -EINVAL;
	} else {
		f->pol = dns_upstream_set_ref(conf->shared_policy);
		r = 0;
	}
	if (r) {
		free(f->tab);
		free(f->by_id);
		free(f);
		return r;
	}
	for (unsigned i = 0; i < n; i++) {
		struct upstream *u = &f->up[i];
		struct sockaddr_storage ss;
		socklen_t sl;

		u->f = f;
		u->idx = i;
		u->addr = conf->upstreams[i];
		sl = netaddr_to_sockaddr(&u->addr, &ss);
		r = sl ? udp_pool_new(l, &f->rng, (struct sockaddr *)&ss, sl, &pc, on_udp,
		                      on_udp_error, u, &u->pool)
		       : -EINVAL;
		if (r) {
			dns_forward_free(f);
			return r;
		}
	}
	*out = f;
	return 0;
}

void dns_forward_free(struct dns_forward *f)
{
	if (!f)
		return;
	f->closing = true;
	while (f->reqs)
		req_finish(f->reqs, -ECANCELED, NULL, 0, NULL);
	/* Orphaned tries over TCP get ARES_EDESTRUCTION and free themselves. */
	for (unsigned i = 0; i < f->n_up; i++) {
		ares_glue_free(f->up[i].tcp);
		f->up[i].tcp = NULL;
	}
	/* The rest wait on sockets: let go of them before the pools close. */
	while (f->ehead)
		try_free(f->ehead);
	for (unsigned i = 0; i < f->n_up; i++)
		udp_pool_free(f->up[i].pool);
	loop_timer_cancel(f->loop, &f->prober);
	loop_timer_cancel(f->loop, &f->expiry);
	dns_upstream_set_free(f->pol);
	while (f->req_free) {
		struct fwd_req *rq = f->req_free;
		f->req_free = rq->hnext;
		free(rq);
	}
	for (unsigned i = 0; i < f->n_chunks; i++)
		free(f->chunk[i]);
	free(f->by_id);
	free(f->tab);
	free(f);
}

static int add_waiter(struct fwd_req *rq, dns_forward_cb cb, void *ctx)
{
	if (rq->n_waiters == rq->cap_waiters) {
		unsigned cap = rq->cap_waiters * 2;
		struct waiter *w;
		if (cap > rq->f->max_waiters)
			cap = rq->f->max_waiters;
		if (cap <= rq->n_waiters)
			return -ENOSPC;
		if (rq->w == &rq->w0) {
			w = malloc(cap * sizeof(*w));
			if (w)
				w[0] = rq->w0;
		} else {
			w = realloc(rq->w, cap * sizeof(*w));
		}
		if (!w)
			return -ENOMEM;
		rq->w = w;
		rq->cap_waiters = cap;
	}
	rq->w[rq->n_waiters++] = (struct waiter){cb, ctx};
	return 0;
}

int dns_forward_query(struct dns_forward *f, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                      uint16_t qclass, bool cd, bool do_bit, dns_forward_cb cb, void *ctx)
{
	uint8_t lc[DNS_NAME_MAX];
	uint64_t now, h;
	struct fwd_req *rq;
	bool full = false;
	int r;

	if (f->closing)
		return -ECANCELED;
	if (qname_len == 0 || qname_len > DNS_NAME_MAX)
		return -EINVAL;
	dns_name_lower(lc, qname, qname_len);
	h = key_hash(f, lc, qname_len, qtype, qclass, cd, do_bit);
	rq = index_find(f, h, lc, qname_len, qtype, qclass, cd, do_bit);
	/*
	 * Every caller counts against max_outstanding, a joining one as well
	 * as one that sends (issue 10, item 2): a waiter holds its caller's
	 * per-query state as long as a query does, so 64 joiners each on 4096
	 * slow names were ~200 MiB per worker outside any bound.
	 */
	if (f->stats.outstanding + f->stats.waiters >= f->max_outstanding) {
		f->stats.busy++;
		return -EBUSY;
	}
	if (rq) {
		r = add_waiter(rq, cb, ctx);
		if (r == 0) {
			f->stats.coalesced++;
			f->stats.waiters++;
			return 0;
		}
		if (r == -ENOMEM)
			return r;
		/* Full: this caller gets a query of its own (not indexed). */
		f->stats.coalesce_full++;
		full = true;
	}
	rq = req_alloc(f);
	if (!rq)
		return -ENOMEM;
	now = loop_now(f->loop);
	rq->f = f;
	rq->hash = h;
	memcpy(rq->name, lc, qname_len);
	rq->qname_len = qname_len;
	rq->qtype = qtype;
	rq->qclass = qclass;
	rq->cd = cd;
	rq->do_bit = do_bit;
	dns_query_init(&rq->q, f->tries, f->timeout_ms);
	rq->w = &rq->w0;
	rq->cap_waiters = 1;
	rq->w0 = (struct waiter){cb, ctx};
	rq->n_waiters = 1;
	timer_init(&rq->t, req_timer, rq);
	rq->next = f->reqs;
	if (f->reqs)
		f->reqs->prev = rq;
	f->reqs = rq;
	f->stats.outstanding++;
	r = drive(rq, (struct dns_query_event){.kind = DNS_QUERY_EV_START}, now, NULL, 0, NULL,
	          true);
	if (r) {
		/* Nothing sent: unwind without calling cb. */
		f->reqs = rq->next;
		if (rq->next)
			rq->next->prev = NULL;
		f->stats.outstanding--;
		loop_timer_cancel(f->loop, &rq->t);
		req_release(f, rq);
		if (r == -EBUSY)
			f->stats.busy++;
		return r;
	}
	if (!full) {
		rq->hnext = f->tab[h & f->tab_mask];
		f->tab[h & f->tab_mask] = rq;
		rq->indexed = true;
	}
	return 0;
}

const struct dns_forward_stats *dns_forward_stats(struct dns_forward *f)
{
	f->stats.sockets_opened = f->stats.sockets_closed = f->stats.socket_rotations = 0;
	for (unsigned i = 0; i < f->n_up; i++) {
		struct udp_pool_stats ps;
		udp_pool_get_stats(f->up[i].pool, &ps);
		f->stats.sockets_opened += ps.opened;
		f->stats.sockets_closed += ps.closed;
		f->stats.socket_rotations += ps.retired;
	}
	return &f->stats;
}

void dns_forward_upstream_info(const struct dns_forward *f, unsigned idx,
                               struct dns_upstream_info *out)
{
	dns_upstream_get(f->pol, idx, out);
}

bool dns_forward_all_dead(const struct dns_forward *f)
{
	return dns_upstream_all_dead(f->pol);
}
