/*
 * dns_forward.c: upstream queries over per-upstream sets of c-ares channels.
 *
 * Three objects:
 *   - struct chan: one c-ares channel (one server, one UDP source port) with
 *     its glue. Live in a slot of its upstream, or retiring: no new sends,
 *     destroyed by the reaper timer once its outstanding count is 0 (never
 *     from inside a c-ares callback of that channel, never cancelling).
 *   - struct fwd_try: one ares_send. It outlives its request when the
 *     request ends first (failover, deadline): then try->req is NULL and the
 *     try only waits for c-ares's own callback to free it.
 *   - struct fwd_req: one logical query with its waiters, indexed by the
 *     coalescing key while it can take more waiters. Its decisions (which
 *     upstream next, when a try times out, failover, the spoof retry, the
 *     budget, the end) are made by the pure machine it embeds (dns_query.h);
 *     drive() feeds it events and carries out its actions. This file keeps
 *     channels, IDs, c-ares, coalescing, timers and the verdict on the
 *     answer bytes.
 * Timers: one per request (armed where the machine says), one reaper, one
 * probe timer. Callbacks to callers run only from c-ares callbacks or
 * timers, never from dns_forward_query.
 */
#include "dns/dns_forward.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/ares_glue.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/rand.h"
#include "dns/dns_query.h"

#define ID_WORDS (65536 / 64)
#define ID_TRIES 64

struct dns_forward;
struct fwd_req;

struct chan {
	struct dns_forward *f;
	struct upstream *u;
	struct ares_glue *glue;
	unsigned outstanding;
	unsigned sent;
	uint64_t born;
	bool retiring;
	struct chan *next; /* retired list */
};

struct upstream {
	unsigned idx;
	struct netaddr addr;
	struct chan *ch[DNS_FORWARD_MAX_CHANNELS];
};

struct fwd_try {
	struct dns_forward *f;
	struct fwd_req *req; /* NULL: orphaned (request over) or a probe */
	struct chan *ch;
	unsigned k; /* the machine's try index, while req is set */
	uint16_t id, qtype, qclass;
	bool probe;
	bool timed_out; /* its timeout was reported (RTO or deadline) */
	bool sending;   /* inside ares_send: a callback now is synchronous */
	int sync_status;
	uint64_t sent_ms;
	size_t qname_len;
	uint8_t qname[DNS_NAME_MAX]; /* as sent upstream, 0x20 case applied */
};

struct waiter {
	dns_forward_cb cb;
	void *ctx;
};

struct fwd_req {
	struct dns_forward *f;
	struct fwd_req *hnext;       /* hash chain, while indexed */
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
	unsigned timeout_ms, tries, max_outstanding, channels;
	unsigned rotate_queries, rotate_ms, max_waiters;
	bool closing;
	struct chan *retired;
	struct timer reaper, prober;
	struct fwd_req **tab;
	size_t tab_mask;
	uint64_t seed;
	struct fwd_req *reqs;
	struct rand rng; /* IDs, 0x20 case, channel choice: no system call per number */
	uint64_t
	    ids[ID_WORDS]; /* IDs of outstanding tries: never two alike (c-ares matches by ID) */
	struct dns_forward_stats stats;
};

static void req_timer(struct timer *t, uint64_t now, void *arg);

/* ---- IDs ---- */

static bool id_used(const struct dns_forward *f, uint16_t id)
{
	return f->ids[id / 64] & (1ull << (id % 64));
}

static void id_set(struct dns_forward *f, uint16_t id, bool on)
{
	if (on)
		f->ids[id / 64] |= 1ull << (id % 64);
	else
		f->ids[id / 64] &= ~(1ull << (id % 64));
}

/* A random ID not outstanding in this forwarder; -EBUSY if none found quickly. */
static int pick_id(struct dns_forward *f, uint16_t *id)
{
	for (int i = 0; i < ID_TRIES; i++) {
		uint16_t v = rand_u16(&f->rng);
		if (!id_used(f, v)) {
			*id = v;
			return 0;
		}
	}
	return -EBUSY;
}

/* ---- channels ---- */

static int chan_new(struct dns_forward *f, struct upstream *u, struct chan **out)
{
	struct ares_addr_port_node node;
	struct ares_options opts;
	struct chan *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	memset(&opts, 0, sizeof(opts));
	/*
	 * EDNS: c-ares reads answers up to ednspsz over UDP. TC answers are
	 * retried over TCP by c-ares itself (no IGNTC). NOCHECKRESP: we see
	 * SERVFAIL/REFUSED and fail over ourselves. One server, one try: the
	 * failover is ours; c-ares's timeout only bounds an orphaned try.
	 */
	opts.flags = ARES_FLAG_EDNS | ARES_FLAG_NOSEARCH | ARES_FLAG_NOCHECKRESP;
	opts.ednspsz = DNS_EDNS_UDP_SIZE;
	opts.timeout = (int)f->timeout_ms;
	opts.tries = 1;
	/* Large socket buffers: an EAGAIN on c-ares's send counts as a server failure. */
	opts.socket_send_buffer_size = 1 << 20;
	opts.socket_receive_buffer_size = 1 << 20;
	r = ares_glue_new(f->loop, &opts,
	                  ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	                      ARES_OPT_SOCK_SNDBUF | ARES_OPT_SOCK_RCVBUF | ARES_OPT_NOROTATE,
	                  &c->glue);
	if (r) {
		free(c);
		return r;
	}
	memset(&node, 0, sizeof(node));
	node.family = u->addr.family;
	if (u->addr.family == AF_INET)
		memcpy(&node.addr.addr4, u->addr.addr, 4);
	else
		memcpy(&node.addr.addr6, u->addr.addr, 16);
	node.udp_port = u->addr.port;
	node.tcp_port = u->addr.port;
	if (ares_set_servers_ports(ares_glue_channel(c->glue), &node) != ARES_SUCCESS) {
		ares_glue_free(c->glue);
		free(c);
		return -EINVAL;
	}
	c->f = f;
	c->u = u;
	c->born = loop_now(f->loop);
	f->stats.channels_created++;
	*out = c;
	return 0;
}

static void chan_destroy(struct chan *c)
{
	c->f->stats.channels_destroyed++;
	ares_glue_free(c->glue);
	free(c);
}

/* Takes c out of its slot: no new sends; destroyed once idle (reaper). */
static void chan_retire(struct chan *c)
{
	struct dns_forward *f = c->f;

	if (c->retiring)
		return;
	for (unsigned i = 0; i < f->channels; i++)
		if (c->u->ch[i] == c)
			c->u->ch[i] = NULL;
	c->retiring = true;
	c->next = f->retired;
	f->retired = c;
	if (c->outstanding == 0)
		loop_timer_arm(f->loop, &f->reaper, loop_now(f->loop));
}

static void reap(struct timer *t, uint64_t now, void *arg)
{
	struct dns_forward *f = arg;

	(void)t;
	(void)now;
	for (struct chan **pc = &f->retired; *pc;) {
		struct chan *c = *pc;
		if (c->outstanding == 0) {
			*pc = c->next;
			chan_destroy(c);
		} else {
			pc = &c->next;
		}
	}
}

/*
 * c-ares 1.18 answers a FORMERR without OPT by cutting 11 octets off the
 * query and clearing ARES_FLAG_EDNS for the whole channel: every later
 * query on it would lose our OPT (and DO). Called only when an answer came
 * back without OPT or the try failed, so the save/destroy pair stays rare.
 */
static bool chan_edns_cleared(struct chan *c)
{
	struct ares_options o;
	int mask = 0;
	bool cleared = false;

	if (ares_save_options(ares_glue_channel(c->glue), &o, &mask) != ARES_SUCCESS)
		return false;
	if ((mask & ARES_OPT_FLAGS) && !(o.flags & ARES_FLAG_EDNS))
		cleared = true;
	ares_destroy_options(&o);
	return cleared;
}

/* A random live channel of u, creating or rotating it as needed; avoid may be NULL. */
static struct chan *chan_pick(struct dns_forward *f, struct upstream *u, struct chan *avoid,
                              uint64_t now)
{
	unsigned slot = rand_uniform(&f->rng, f->channels);
	struct chan *c;

	if (avoid && f->channels > 1 && u->ch[slot] == avoid)
		slot = (slot + 1 + rand_uniform(&f->rng, f->channels - 1)) % f->channels;
	c = u->ch[slot];
	if (c && (c->sent >= f->rotate_queries || now - c->born >= f->rotate_ms)) {
		/* Source-port rotation: c-ares 1.18 never reopens a UDP socket. */
		f->stats.channel_replacements++;
		chan_retire(c);
		c = NULL;
	}
	if (!c) {
		if (chan_new(f, u, &c))
			return NULL;
		u->ch[slot] = c;
	}
	return c;
}

/* ---- coalescing index ---- */

/* Keyed with a per-forwarder random seed: clients choose qnames. Chains are
 * bounded anyway by max_outstanding. */
static uint64_t key_hash(const struct dns_forward *f, const uint8_t *name, size_t len,
                         uint16_t qtype, uint16_t qclass, bool cd, bool do_bit)
{
	uint64_t h = f->seed;
	for (size_t i = 0; i < len; i++)
		h = (h ^ name[i]) * 0x100000001b3ull;
	h ^= (uint64_t)qtype << 32 | (uint64_t)qclass << 16 | (unsigned)cd << 1 | (unsigned)do_bit;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
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

static void try_unlink(struct fwd_try *t)
{
	struct fwd_req *rq = t->req;

	if (!rq)
		return;
	if (rq->tr[t->k] == t)
		rq->tr[t->k] = NULL;
	t->req = NULL;
}

/* Ends the request: every waiter gets the result, in the order they came. */
static void req_finish(struct fwd_req *rq, int status, const uint8_t *ans, size_t len,
                       const struct dns_scan *scan)
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
	if (status == 0)
		f->stats.answers++;
	else if (status != -ECANCELED)
		f->stats.failures++;
	for (unsigned i = 0; i < rq->n_waiters; i++) {
		struct dns_scan copy;
		if (scan)
			copy = *scan;
		rq->w[i].cb(rq->w[i].ctx, status, ans, len, scan ? &copy : NULL);
	}
	if (rq->w != &rq->w0)
		free(rq->w);
	free(rq);
}

static void arm_prober(struct dns_forward *f, uint64_t now);

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

/*
 * One outcome for the policy and the counters: from the machine's REPORT
 * actions for a request's tries, directly for orphaned tries and probes.
 * t (may be NULL) remembers a reported timeout, so c-ares's own timeout of
 * the same try is not counted twice.
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
	dns_upstream_report(f->pol, idx, o, rtt, now);
	/* A hard failure may have killed it: make sure its re-probe is scheduled. */
	if (o != DNS_UPSTREAM_OK && o != DNS_UPSTREAM_SERVFAIL)
		arm_prober(f, now);
}

/*
 * Builds and sends one try of rq (try index k) or a probe (rq NULL) on u.
 * On failure *fault says whether the upstream is to blame (c-ares failed it
 * inside ares_send) rather than this host (no memory, no free ID).
 */
static int send_try_q(struct dns_forward *f, struct fwd_req *rq, unsigned k, struct upstream *u,
                      struct chan *avoid, const uint8_t *name, size_t name_len, uint16_t qtype,
                      uint16_t qclass, bool cd, bool do_bit, uint64_t now, bool *fault)
{
	uint8_t rnd[DNS_0X20_RANDOM_BYTES];
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_MAX + 4 + 11];
	struct wbuf b = wbuf_init(buf, sizeof(buf));
	struct fwd_try *t;
	struct chan *c;
	int len;

	*fault = false;
	c = chan_pick(f, u, avoid, now);
	if (!c)
		return -ENOMEM;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	if (pick_id(f, &t->id)) {
		free(t);
		return -EBUSY;
	}
	t->f = f;
	t->ch = c;
	t->probe = rq == NULL;
	t->qtype = qtype;
	t->qclass = qclass;
	t->qname_len = name_len;
	memcpy(t->qname, name, name_len);
	/* One bit per name octet (dns_wire.h): draw only the bytes this name needs. */
	rand_bytes(&f->rng, rnd, (name_len + 7) / 8);
	dns_name_randomize_case(t->qname, name_len, rnd, (name_len + 7) / 8);
	t->sent_ms = now;
	len = dns_build_query(&b, t->id, t->qname, name_len, qtype, qclass, cd, do_bit);
	if (len < 0) {
		free(t);
		return len;
	}
	id_set(f, t->id, true);
	c->outstanding++;
	c->sent++;
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
	t->sending = true;
	ares_send(ares_glue_channel(c->glue), buf, len, on_answer, t);
	t->sending = false;
	if (t->sync_status) {
		/* c-ares ended it inside ares_send (no socket, no memory). */
		int st = t->sync_status;
		try_unlink(t);
		free(t);
		*fault = true;
		if (!rq)
			note(f, u->idx, DNS_UPSTREAM_ERROR, 0, now, NULL);
		/* A request's try: the machine reports it (SEND_FAILED). */
		return st == ARES_ENOMEM ? -ENOMEM : -ECONNREFUSED;
	}
	ares_glue_kick(c->glue);
	return 0;
}

static int send_try(struct fwd_req *rq, unsigned k, struct upstream *u, struct chan *avoid,
                    uint64_t now, bool *fault)
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
                 size_t len, const struct dns_scan *scan, bool starting)
{
	struct dns_forward *f = rq->f;
	struct dns_query_actions acts;
	bool again = true;

	while (again) {
		again = false;
		(void)dns_query_step(&rq->q, f->pol, &ev, now, &acts);
		for (unsigned i = 0; i < acts.n && !again; i++) {
			const struct dns_query_action *a = &acts.a[i];
			struct chan *avoid = NULL;
			bool fault;
			int r;

			switch (a->kind) {
			case DNS_QUERY_A_SEND:
				if (a->avoid >= 0) {
					f->stats.spoof_retries++;
					if (rq->tr[a->avoid])
						avoid = rq->tr[a->avoid]->ch;
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
	/* ". NS" (RFC 8109 §3 uses it for priming): any real answer revives. */
	while ((idx = dns_upstream_probe_due(f->pol, now, &next)) >= 0) {
		bool fault;
		(void)send_try_q(f, NULL, 0, &f->up[idx], NULL, root, 1, DNS_TYPE_NS, DNS_CLASS_IN,
		                 false, false, now, &fault);
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
		if (in.state == DNS_UPSTREAM_DEAD && in.next_probe < earliest)
			earliest = in.next_probe;
	}
	if (earliest == UINT64_MAX)
		return;
	if (!timer_armed(&f->prober) || f->prober.deadline > earliest)
		loop_timer_arm(f->loop, &f->prober, earliest);
}

/* ---- answers ---- */

/* The verdict on one try's end, or -1 when c-ares dropped it (shutdown). */
static int judge(struct fwd_try *t, int status, const uint8_t *abuf, int alen,
                 struct dns_scan *scan)
{
	int r;

	switch (status) {
	case ARES_SUCCESS:
		break;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		return -1;
	case ARES_ETIMEOUT:
		return DNS_QUERY_V_TIMEOUT;
	default:
		return DNS_QUERY_V_ERROR;
	}
	if (!abuf || alen <= 0)
		return DNS_QUERY_V_MALFORMED;
	r = dns_scan(abuf, (size_t)alen, scan);
	if ((r < 0 && r != -E2BIG) || !scan->qr || scan->id != t->id)
		return DNS_QUERY_V_MALFORMED;
	/* c-ares compared the question case-insensitively; we want our 0x20 pattern. */
	if (dns_scan_match_question(abuf, scan, t->qname, t->qname_len, t->qtype, t->qclass) !=
	    DNS_QMATCH_EXACT)
		return DNS_QUERY_V_SPOOF;
	/* c-ares retries TC=1 over TCP itself: a truncated answer here is broken. */
	if (scan->tc)
		return DNS_QUERY_V_TRUNCATED;
	if (scan->rcode == DNS_RCODE_SERVFAIL)
		return DNS_QUERY_V_SERVFAIL;
	if (scan->rcode == DNS_RCODE_REFUSED)
		return DNS_QUERY_V_REFUSED;
	return DNS_QUERY_V_OK;
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct fwd_try *t = arg;
	struct dns_forward *f = t->f;
	struct chan *c = t->ch;
	struct upstream *u = c->u;
	struct fwd_req *rq = t->req;
	struct dns_scan scan;
	uint64_t now = loop_now(f->loop);
	unsigned rtt = (unsigned)(now - t->sent_ms);
	enum dns_upstream_outcome o;
	int v;

	(void)timeouts;
	id_set(f, t->id, false);
	c->outstanding--;
	if (t->sending) {
		/* Synchronous failure inside ares_send: send_try_q handles it. */
		t->sync_status = status ? status : ARES_ECONNREFUSED;
		return;
	}
	v = judge(t, status, abuf, alen, &scan);
	if (v < 0) {
		/* Channel destroyed: only orphans and probes are left by then
		 * (dns_forward_free ends every request first). */
		try_unlink(t);
		free(t);
		return;
	}
	if (!c->retiring && !f->closing && (v != DNS_QUERY_V_OK || !scan.has_opt) &&
	    chan_edns_cleared(c)) {
		f->stats.edns_replacements++;
		chan_retire(c);
	}
	if (c->retiring && c->outstanding == 0)
		loop_timer_arm(f->loop, &f->reaper, now);
	if (v == DNS_QUERY_V_SPOOF) {
		f->stats.up[u->idx].mismatches++;
		f->stats.mismatches++;
	}

	if (!rq || f->closing) {
		/* No machine tracks it any more: report here, a timeout once. */
		if (dns_query_outcome((enum dns_query_verdict)v, &o) &&
		    !(o == DNS_UPSTREAM_TIMEOUT && t->timed_out))
			note(f, u->idx, o, o == DNS_UPSTREAM_TIMEOUT ? 0 : rtt, now, t);
		try_unlink(t);
		free(t);
		return;
	}
	/* t stays linked while the machine runs: a spoof retry avoids its channel. */
	(void)drive(rq,
	            (struct dns_query_event){.kind = DNS_QUERY_EV_ANSWER,
	                                     .try = t->k,
	                                     .verdict = (enum dns_query_verdict)v},
	            now, abuf, (size_t)alen, &scan, false);
	try_unlink(t); /* no-op if the request finished (it orphaned t) */
	free(t);
}

/* ---- public ---- */

int dns_forward_new(struct loop *l, const struct dns_forward_conf *conf, struct dns_forward **out)
{
	struct dns_forward *f;
	unsigned n = conf->n_upstreams;
	size_t buckets = 64;
	int r;

	if (n == 0 || n > DNS_FORWARD_MAX_UPSTREAMS || conf->channels > DNS_FORWARD_MAX_CHANNELS)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->loop = l;
	f->n_up = n;
	f->timeout_ms = conf->timeout_ms ? conf->timeout_ms : 2500;
	f->tries = conf->tries ? conf->tries : 3;
	f->max_outstanding = conf->max_outstanding ? conf->max_outstanding : 4096;
	if (f->max_outstanding > 32768)
		f->max_outstanding = 32768; /* IDs: each query needs some, orphans too */
	f->channels = conf->channels ? conf->channels : 16;
	f->rotate_queries = conf->rotate_queries ? conf->rotate_queries : 2000;
	f->rotate_ms = conf->rotate_ms ? conf->rotate_ms : 60000;
	f->max_waiters = conf->max_waiters ? conf->max_waiters : 64;
	f->stats.n_upstreams = n;
	r = rand_init(&f->rng);
	if (r) {
		free(f);
		return r;
	}
	rand_bytes(&f->rng, &f->seed, sizeof(f->seed));
	timer_init(&f->reaper, reap, f);
	timer_init(&f->prober, probe_timer, f);
	while (buckets < f->max_outstanding && buckets < 65536)
		buckets *= 2;
	f->tab = calloc(buckets, sizeof(*f->tab));
	if (!f->tab) {
		free(f);
		return -ENOMEM;
	}
	f->tab_mask = buckets - 1;
	r = dns_upstream_set_new(conf->policy, n, &f->pol);
	if (r) {
		free(f->tab);
		free(f);
		return r;
	}
	for (unsigned i = 0; i < n; i++) {
		f->up[i].idx = i;
		f->up[i].addr = conf->upstreams[i];
		if (f->up[i].addr.family != AF_INET && f->up[i].addr.family != AF_INET6) {
			dns_forward_free(f);
			return -EINVAL;
		}
	}
	/* One channel per upstream now, so a bad address fails at startup. */
	for (unsigned i = 0; i < n; i++) {
		r = chan_new(f, &f->up[i], &f->up[i].ch[0]);
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
	/* Orphaned tries get ARES_EDESTRUCTION and free themselves. */
	for (unsigned i = 0; i < f->n_up; i++)
		for (unsigned j = 0; j < DNS_FORWARD_MAX_CHANNELS; j++)
			if (f->up[i].ch[j])
				chan_destroy(f->up[i].ch[j]);
	while (f->retired) {
		struct chan *c = f->retired;
		f->retired = c->next;
		chan_destroy(c);
	}
	loop_timer_cancel(f->loop, &f->reaper);
	loop_timer_cancel(f->loop, &f->prober);
	dns_upstream_set_free(f->pol);
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
	if (rq) {
		r = add_waiter(rq, cb, ctx);
		if (r == 0) {
			f->stats.coalesced++;
			return 0;
		}
		if (r == -ENOMEM)
			return r;
		/* Full: this caller gets a query of its own (not indexed). */
		f->stats.coalesce_full++;
		full = true;
	}
	if (f->stats.outstanding >= f->max_outstanding) {
		f->stats.busy++;
		return -EBUSY;
	}
	rq = calloc(1, sizeof(*rq));
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
		free(rq);
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

const struct dns_forward_stats *dns_forward_stats(const struct dns_forward *f)
{
	return &f->stats;
}

void dns_forward_upstream_info(const struct dns_forward *f, unsigned idx,
                               struct dns_upstream_info *out)
{
	dns_upstream_get(f->pol, idx, out);
}
