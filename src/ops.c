/*
 * ops.c: the control commands, the metrics page and /health, the drains
 * (see ops.h). Every answer is built here from plain figures; the JSON
 * shapes are the control protocol's data objects, documented in README.md
 * ("Operations") and read back by anycachectl.
 */
#include "ops.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "anycache_version.h"
#include "bgp/bgp_session.h"
#include "bgp/bgp_speaker.h"
#include "core/clock.h"
#include "core/ctl_server.h"
#include "core/drain_state.h"
#include "core/health.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/prom.h"
#include "core/timer.h"
#include "dns/dns_cache.h"
#include "dns/dns_forward.h"
#include "dns/dns_health.h"
#include "dns/dns_server.h"
#include "dns/dns_wire.h"

/* ---------------------------------------------------------------- figures */

/* One worker's answer to a round, taken on its thread. */
struct wsample {
	struct dns_server_stats st;
	struct dns_forward_stats fwd;
	struct dns_upstream_info up[DNS_FORWARD_MAX_UPSTREAMS];
	struct dns_cache_stats cache;
	uint64_t rx_drops;
	size_t flushed; /* by this round's flush, if it had one */
};

/* A cache flush carried by a round: every entry (len 0) or one name. */
struct flush_req {
	bool on;
	size_t len;
	uint8_t name[DNS_NAME_MAX];
	char text[CTL_PROTO_MAX_ARG + 1];
};

/*
 * One worker as a round sees it. The control thread posts a request
 * (`pending`, with this round's flush); the worker fills `s` and clears
 * `pending` on its own thread. Only the fields under mu cross threads.
 */
struct wslot {
	struct ops *o;
	struct loop *loop;
	struct dns_server *dns;
	pthread_mutex_t mu;
	bool pending, fresh;
	uint64_t round; /* the round the posted request belongs to */
	struct flush_req flush;
	struct wsample s;
	/* Control thread only. */
	struct wsample last;
	bool have_last;
};

/* An upstream as the node sees it: the workers' views merged. */
struct node_up {
	enum dns_upstream_state state; /* the worst any worker has */
	unsigned dead_workers;
	bool measured;
	unsigned srtt_ms, rttvar_ms; /* mean over the workers that measured it */
	unsigned rto_ms;             /* the largest */
	unsigned consecutive_fail, fail_rate_pm;
	struct dns_forward_upstream_stats c; /* summed */
};

/* Per-node figures: the sum (or merge) of every worker's last answer. */
struct node {
	unsigned workers, answered; /* answered: in this round */
	struct dns_server_stats st;
	struct dns_forward_stats fwd;
	struct dns_cache_stats cache;
	uint64_t rx_drops;
	size_t flushed;
	unsigned n_up;
	struct node_up up[DNS_FORWARD_MAX_UPSTREAMS];
};

typedef void (*waiter_fn)(struct ops *o, void *ctx, const struct node *n);

struct waiter {
	struct waiter *next;
	waiter_fn fn;
	void *ctx;
	struct flush_req flush; /* what this waiter asked to flush (for its answer) */
};

struct ops {
	struct ops_conf c;
	const struct conf *conf;
	char conf_path[CONF_STATE_MAX + 1];
	struct loop *l;
	struct ctl_server *ctl;
	struct http_server *http;
	uint64_t started_ms;
	int64_t started_unix;
	bool stopping, closed;
	/* Rounds. */
	struct wslot *w;
	unsigned n_w;
	uint64_t round;
	bool round_active;
	struct timer round_timer;
	struct waiter *cur, *next;
	unsigned n_waiters;
	struct flush_req next_flush; /* to be carried by the next round */
	struct node node;
	/* Drains. */
	struct drain_state drain;
	struct dns_health_info hinfo; /* scratch */
};

/* ---------------------------------------------------------------- merging */

static void sum_server(struct dns_server_stats *d, const struct dns_server_stats *s)
{
	d->udp_rx += s->udp_rx;
	d->tcp_rx += s->tcp_rx;
	d->dropped += s->dropped;
	for (unsigned i = 0; i < 16; i++)
		d->rcode[i] += s->rcode[i];
	d->badvers += s->badvers;
	d->refused_acl += s->refused_acl;
	d->identity += s->identity;
	d->cache_hits += s->cache_hits;
	d->cache_misses += s->cache_misses;
	d->stale_answers += s->stale_answers;
	d->prefetches += s->prefetches;
	d->upstream_fail += s->upstream_fail;
	d->tx_fail += s->tx_fail;
	d->truncated += s->truncated;
	d->tcp_accepted += s->tcp_accepted;
	d->tcp_refused += s->tcp_refused;
	d->tcp_idle_closed += s->tcp_idle_closed;
	d->listener_deaths += s->listener_deaths;
	d->tcp_conns += s->tcp_conns;
	for (unsigned i = 0; i <= DNS_SERVER_LATENCY_N; i++)
		d->latency[i] += s->latency[i];
	d->latency_us_sum += s->latency_us_sum;
}

static void sum_forward(struct dns_forward_stats *d, const struct dns_forward_stats *s)
{
	d->sent += s->sent;
	d->answers += s->answers;
	d->timeouts += s->timeouts;
	d->failures += s->failures;
	d->mismatches += s->mismatches;
	d->busy += s->busy;
	d->outstanding += s->outstanding;
	d->retries += s->retries;
	d->spoof_retries += s->spoof_retries;
	d->coalesced += s->coalesced;
}

/*
 * The node's cache. Today each worker has its own and they are summed; once
 * the cache is one per process this becomes one read (the only place to
 * change).
 */
static void node_cache(struct dns_cache_stats *d, const struct wsample *s)
{
	d->hits += s->cache.hits;
	d->stale_hits += s->cache.stale_hits;
	d->misses += s->cache.misses;
	d->inserts += s->cache.inserts;
	d->evictions += s->cache.evictions;
	d->reclaimed += s->cache.reclaimed;
	d->flushed += s->cache.flushed;
	d->bytes += s->cache.bytes;
	d->answer_bytes += s->cache.answer_bytes;
	d->entries += s->cache.entries;
}

static void merge_upstream(struct node_up *u, const struct dns_upstream_info *in,
                           const struct dns_forward_upstream_stats *c, unsigned *measured)
{
	if (in->state > u->state)
		u->state = in->state;
	u->dead_workers += in->state == DNS_UPSTREAM_DEAD;
	if (in->measured) {
		/* Summed here, divided by the count at the end. */
		u->srtt_ms += in->srtt_ms;
		u->rttvar_ms += in->rttvar_ms;
		(*measured)++;
	}
	if (in->rto_ms > u->rto_ms)
		u->rto_ms = in->rto_ms;
	if (in->consecutive_fail > u->consecutive_fail)
		u->consecutive_fail = in->consecutive_fail;
	if (in->fail_rate_pm > u->fail_rate_pm)
		u->fail_rate_pm = in->fail_rate_pm;
	u->c.sent += c->sent;
	u->c.answers += c->answers;
	u->c.rtt_ms_sum += c->rtt_ms_sum;
	u->c.timeouts += c->timeouts;
	u->c.failures += c->failures;
	u->c.servfail += c->servfail;
	u->c.refused += c->refused;
	u->c.mismatches += c->mismatches;
	u->c.probes += c->probes;
}

static void build_node(struct ops *o, unsigned answered, size_t flushed)
{
	struct node *n = &o->node;
	unsigned measured[DNS_FORWARD_MAX_UPSTREAMS] = {0};

	memset(n, 0, sizeof(*n));
	n->workers = o->n_w;
	n->answered = answered;
	n->flushed = flushed;
	n->n_up = o->conf->dns.n_upstreams;
	if (n->n_up > DNS_FORWARD_MAX_UPSTREAMS)
		n->n_up = DNS_FORWARD_MAX_UPSTREAMS;
	for (unsigned i = 0; i < o->n_w; i++) {
		const struct wslot *w = &o->w[i];
		if (!w->have_last)
			continue;
		sum_server(&n->st, &w->last.st);
		sum_forward(&n->fwd, &w->last.fwd);
		node_cache(&n->cache, &w->last);
		n->rx_drops += w->last.rx_drops;
		for (unsigned u = 0; u < n->n_up && u < w->last.fwd.n_upstreams; u++)
			merge_upstream(&n->up[u], &w->last.up[u], &w->last.fwd.up[u], &measured[u]);
	}
	for (unsigned u = 0; u < n->n_up; u++) {
		n->up[u].measured = measured[u] > 0;
		if (measured[u]) {
			n->up[u].srtt_ms /= measured[u];
			n->up[u].rttvar_ms /= measured[u];
		}
	}
}

/* ---------------------------------------------------------------- rounds */

static void on_sample(struct loop *l, void *arg);

/* On a worker's thread: this round's flush, then the figures. */
static void worker_sample(struct loop *l, void *arg)
{
	struct wslot *w = arg;
	struct flush_req fl;
	struct wsample *s = malloc(sizeof(*s));
	struct dns_server_report rep;

	(void)l;
	pthread_mutex_lock(&w->mu);
	fl = w->flush;
	pthread_mutex_unlock(&w->mu);
	if (!s) {
		pthread_mutex_lock(&w->mu);
		w->pending = false;
		pthread_mutex_unlock(&w->mu);
		return; /* the round's bound covers it */
	}
	memset(s, 0, sizeof(*s));
	if (fl.on)
		s->flushed = dns_server_cache_flush(w->dns, fl.len ? fl.name : NULL, fl.len);
	s->st = *dns_server_stats(w->dns);
	s->fwd = *dns_server_upstream_stats(w->dns);
	for (unsigned i = 0; i < s->fwd.n_upstreams && i < DNS_FORWARD_MAX_UPSTREAMS; i++)
		dns_server_upstream_info(w->dns, i, &s->up[i]);
	s->cache = *dns_server_cache_stats(w->dns);
	dns_server_report(w->dns, &rep);
	s->rx_drops = rep.rx_drops;
	pthread_mutex_lock(&w->mu);
	w->s = *s;
	w->fresh = true;
	w->pending = false;
	pthread_mutex_unlock(&w->mu);
	free(s);
	/* Wake the control loop; if it cannot be reached the round's bound ends it. */
	if (loop_post(w->o->l, on_sample, w->o) < 0)
		return;
}

static void round_start(struct ops *o);

static void round_finish(struct ops *o)
{
	unsigned answered = 0;
	size_t flushed = 0;
	struct waiter *list = o->cur;

	loop_timer_cancel(o->l, &o->round_timer);
	for (unsigned i = 0; i < o->n_w; i++) {
		struct wslot *w = &o->w[i];
		pthread_mutex_lock(&w->mu);
		if (w->fresh) {
			w->last = w->s;
			w->have_last = true;
			w->fresh = false;
			if (w->round == o->round) {
				answered++;
				flushed += w->s.flushed;
			}
		}
		pthread_mutex_unlock(&w->mu);
	}
	build_node(o, answered, flushed);
	o->round_active = false;
	o->cur = NULL;
	while (list) {
		struct waiter *wt = list;
		list = wt->next;
		o->n_waiters--;
		wt->fn(o, wt->ctx, &o->node);
		free(wt);
	}
	if (o->next && !o->closed)
		round_start(o);
}

/* Every worker answered this round: finish it now rather than at the bound. */
static void round_check(struct ops *o)
{
	unsigned got = 0;

	if (!o->round_active || o->closed)
		return;
	for (unsigned i = 0; i < o->n_w; i++) {
		struct wslot *w = &o->w[i];
		pthread_mutex_lock(&w->mu);
		got += w->fresh && w->round == o->round;
		pthread_mutex_unlock(&w->mu);
	}
	if (got == o->n_w)
		round_finish(o);
}

static void on_round_bound(struct timer *t, uint64_t now, void *arg)
{
	struct ops *o = arg;

	(void)t;
	(void)now;
	if (o->round_active && !o->closed) {
		log_debug("ops", "round %llu: not every worker answered within %u ms",
		          (unsigned long long)o->round, OPS_ROUND_BOUND_MS);
		round_finish(o);
	}
}

/* The control loop's wake-up after a worker answered. */
static void on_sample(struct loop *l, void *arg)
{
	(void)l;
	round_check(arg);
}

static void round_start(struct ops *o)
{
	struct flush_req fl = o->next_flush;

	o->round++;
	o->round_active = true;
	o->cur = o->next;
	o->next = NULL;
	o->next_flush.on = false;
	for (unsigned i = 0; i < o->n_w; i++) {
		struct wslot *w = &o->w[i];
		bool post = false;
		pthread_mutex_lock(&w->mu);
		if (!w->pending) {
			/* A worker still busy with an older request is not asked twice. */
			w->pending = true;
			w->round = o->round;
			w->flush = fl;
			post = true;
		}
		pthread_mutex_unlock(&w->mu);
		if (post && loop_post(w->loop, worker_sample, w) < 0) {
			pthread_mutex_lock(&w->mu);
			w->pending = false;
			pthread_mutex_unlock(&w->mu);
		}
	}
	loop_timer_cancel(o->l, &o->round_timer);
	loop_timer_arm_in(o->l, &o->round_timer, OPS_ROUND_BOUND_MS);
	round_check(o);
}

/*
 * Queue fn(ctx) for the next round (started now if none runs). flush: a
 * cache flush that round carries. -EBUSY when too many wait or another
 * flush is already queued.
 */
static int collect(struct ops *o, waiter_fn fn, void *ctx, const struct flush_req *flush)
{
	struct waiter *wt, **tail;

	if (o->closed)
		return -ESHUTDOWN;
	if (o->n_waiters >= OPS_MAX_WAITERS)
		return -EBUSY;
	if (flush && flush->on && o->next_flush.on &&
	    (o->next_flush.len != flush->len ||
	     memcmp(o->next_flush.name, flush->name, flush->len)))
		return -EBUSY;
	wt = calloc(1, sizeof(*wt));
	if (!wt)
		return -ENOMEM;
	wt->fn = fn;
	wt->ctx = ctx;
	if (flush && flush->on) {
		wt->flush = *flush;
		o->next_flush = *flush;
	}
	for (tail = &o->next; *tail; tail = &(*tail)->next)
		;
	*tail = wt;
	o->n_waiters++;
	if (!o->round_active)
		round_start(o);
	return 0;
}

/* ---------------------------------------------------------------- helpers */

static json_t *addr_json(const struct netaddr *a, bool port)
{
	char b[NETADDR_STRLEN];
	return json_string(netaddr_format(a, port, b, sizeof(b)));
}

static double age_s(const struct ops *o, uint64_t since_ms)
{
	uint64_t now = loop_now(o->l);
	return since_ms && now > since_ms ? (double)(now - since_ms) / 1000.0 : 0.0;
}

/* A monotonic instant as wall-clock seconds (for "since when"). */
static json_t *unix_of(const struct ops *o, uint64_t since_ms)
{
	if (!since_ms)
		return json_null();
	return json_integer((json_int_t)time(NULL) - (json_int_t)age_s(o, since_ms));
}

static const char *const reason_names[] = {
    "starting", "no-listener", "no-address", "stalled",   "probes-failing",
    "overload", "upstreams",   "drain",      "hold-down",
};

static json_t *reasons_json(uint32_t bits)
{
	json_t *a = json_array();
	for (unsigned i = 0; a && i < sizeof(reason_names) / sizeof(reason_names[0]); i++)
		if (bits & (1u << i))
			json_array_append_new(a, json_string(reason_names[i]));
	return a;
}

static const char *upstream_state_name(enum dns_upstream_state s)
{
	return s == DNS_UPSTREAM_DEAD ? "dead" : s == DNS_UPSTREAM_SUSPECT ? "suspect" : "healthy";
}

static const char *rcode_name(unsigned r)
{
	static const char *const n[16] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
	                                  "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
	                                  "NXRRSET", "NOTAUTH", "NOTZONE"};
	return r < 16 && n[r] ? n[r] : NULL;
}

/* RFC 4271 §4.5, RFC 4486 (Cease subcodes). */
static const char *notif_name(uint8_t code, uint8_t sub)
{
	static const char *const codes[] = {NULL,
	                                    "Message Header Error",
	                                    "OPEN Message Error",
	                                    "UPDATE Message Error",
	                                    "Hold Timer Expired",
	                                    "Finite State Machine Error",
	                                    "Cease"};
	static const char *const cease[] = {NULL,
	                                    "Maximum Number of Prefixes Reached",
	                                    "Administrative Shutdown",
	                                    "Peer De-configured",
	                                    "Administrative Reset",
	                                    "Connection Rejected",
	                                    "Other Configuration Change",
	                                    "Connection Collision Resolution",
	                                    "Out of Resources"};
	if (code == 6 && sub < sizeof(cease) / sizeof(cease[0]) && cease[sub])
		return cease[sub];
	return code < sizeof(codes) / sizeof(codes[0]) && codes[code] ? codes[code] : "unknown";
}

static json_t *notif_json(const struct ops *o, const struct bgp_session_notif *n)
{
	if (!n->valid)
		return json_null();
	json_t *j = json_pack("{s:i, s:i, s:s, s:f}", "code", n->code, "subcode", n->subcode,
	                      "name", notif_name(n->code, n->subcode), "age_s", age_s(o, n->at_ms));
	if (j && n->text[0])
		json_object_set_new(j, "text", json_string(n->text));
	return j;
}

/* Fails the call with ENOMEM's message when j could not be built. */
static bool set(struct ctl_call *c, const char *key, json_t *j)
{
	if (!j || json_object_set_new(ctl_call_data(c), key, j))
		return false;
	return true;
}

/* ---------------------------------------------------------------- commands */

static void cmd_status(void *arg, struct ctl_call *c)
{
	struct ops *o = arg;
	json_t *d = ctl_call_data(c);
	bool ok = true;

	ok &= !json_object_set_new(d, "version", json_string(ANYCACHE_VERSION));
	ok &= !json_object_set_new(d, "pid", json_integer(getpid()));
	ok &= !json_object_set_new(d, "state", json_string(o->stopping ? "stopping" : "running"));
	ok &= !json_object_set_new(d, "uptime_s", json_real(age_s(o, o->started_ms)));
	ok &= !json_object_set_new(d, "started_unix", json_integer(o->started_unix));
	ok &= !json_object_set_new(d, "workers", json_integer(o->n_w));
	ok &= !json_object_set_new(d, "vips", json_integer(o->conf->dns.n_listen));
	ok &= !json_object_set_new(d, "bgp", json_boolean(o->c.bgp != NULL));
	ok &= !json_object_set_new(d, "metrics",
	                           o->conf->control.has_metrics
	                               ? addr_json(&o->conf->control.metrics, true)
	                               : json_null());
	ok &= set(c, "config",
	          json_pack("{s:o, s:b, s:I}", "file",
	                    o->conf_path[0] ? json_string(o->conf_path) : json_null(), "embedded",
	                    !o->conf_path[0], "loaded_unix", (json_int_t)o->c.conf_loaded_unix));
	ok &= !json_object_set_new(d, "protocol", json_integer(CTL_PROTO_VERSION));
	if (!ok) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	ctl_call_done(c);
}

static json_t *attrs_json(const struct netprefix *p, const struct bgp_adjout_attrs *a, bool ibgp)
{
	char b[NETADDR_STRLEN + 4];
	json_t *r = json_pack("{s:s, s:i}", "prefix", netprefix_format(p, b, sizeof(b)),
	                      "as_path_prepend", a->prepend);
	json_t *comm = json_array(), *large = json_array();

	if (!r || !comm || !large) {
		json_decref(r);
		json_decref(comm);
		json_decref(large);
		return NULL;
	}
	/* LOCAL_PREF goes to iBGP peers only (RFC 4271 §5.1.5). */
	json_object_set_new(r, "local_pref", ibgp ? json_integer(a->local_pref) : json_null());
	json_object_set_new(r, "med", a->has_med ? json_integer(a->med) : json_null());
	for (unsigned i = 0; i < a->n_communities && i < BGP_ADJOUT_MAX_COMMUNITIES; i++) {
		snprintf(b, sizeof(b), "%u:%u", a->communities[i] >> 16,
		         a->communities[i] & 0xffff);
		json_array_append_new(comm, json_string(b));
	}
	for (unsigned i = 0; i < a->n_large_communities && i < BGP_ADJOUT_MAX_LARGE_COMMUNITIES;
	     i++) {
		const struct bgp_adjout_large_community *l = &a->large_communities[i];
		char lb[40];
		snprintf(lb, sizeof(lb), "%u:%u:%u", l->global, l->local1, l->local2);
		json_array_append_new(large, json_string(lb));
	}
	json_object_set_new(r, "communities", comm);
	json_object_set_new(r, "large_communities", large);
	return r;
}

static json_t *neighbor_json(const struct ops *o, const struct bgp_session *s)
{
	struct bgp_session_info in;
	struct netprefix pfx[BGP_ADJOUT_MAX_ROUTES];
	struct bgp_adjout_attrs at[BGP_ADJOUT_MAX_ROUTES];
	char id[16];
	size_t n;
	json_t *j, *caps, *routes;

	bgp_session_info(s, &in);
	snprintf(id, sizeof(id), "%u.%u.%u.%u", in.peer_bgp_id >> 24, (in.peer_bgp_id >> 16) & 255,
	         (in.peer_bgp_id >> 8) & 255, in.peer_bgp_id & 255);
	caps = json_array();
	if (caps && in.as4)
		json_array_append_new(caps, json_string("4-octet-as"));
	if (caps && in.ipv4)
		json_array_append_new(caps, json_string("ipv4-unicast"));
	if (caps && in.ipv6)
		json_array_append_new(caps, json_string("ipv6-unicast"));
	if (caps && in.route_refresh)
		json_array_append_new(caps, json_string("route-refresh"));
	routes = json_array();
	n = bgp_session_routes(s, pfx, at, BGP_ADJOUT_MAX_ROUTES);
	for (size_t i = 0; routes && i < n; i++)
		json_array_append_new(routes, attrs_json(&pfx[i], &at[i], in.ibgp));
	bool open = in.state == BGP_FSM_OPENCONFIRM || in.state == BGP_FSM_ESTABLISHED;
	j = json_pack("{s:o, s:I, s:s, s:b, s:s, s:f, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I, "
	              "s:o, s:o, s:o, s:o}",
	              "address", addr_json(&in.peer, true), "asn", (json_int_t)in.peer_as, "type",
	              in.ibgp ? "ibgp" : "ebgp", "passive", in.passive, "state",
	              bgp_fsm_state_name(in.state), "state_age_s", age_s(o, in.state_since_ms),
	              "state_since_unix", unix_of(o, in.state_since_ms), "hold_time_s",
	              open ? json_integer(in.hold_time) : json_null(), "keepalive_s",
	              open ? json_real(in.keepalive_ms / 1000.0) : json_null(), "router_id",
	              open ? json_string(id) : json_null(), "local_address",
	              in.local.family ? addr_json(&in.local, false) : json_null(), "flaps",
	              (json_int_t)in.flaps, "updates_sent", (json_int_t)in.updates_sent,
	              "prefixes_announced", (json_int_t)in.prefixes_announced, "prefixes_withdrawn",
	              (json_int_t)in.prefixes_withdrawn, "notification_sent",
	              notif_json(o, &in.notif_sent), "notification_received",
	              notif_json(o, &in.notif_received), "capabilities", caps ? caps : json_array(),
	              "routes", routes ? routes : json_array());
	if (j)
		json_object_set_new(j, "last_error",
		                    in.last_error[0]
		                        ? json_pack("{s:s, s:f}", "text", in.last_error, "age_s",
		                                    age_s(o, in.last_error_ms))
		                        : json_null());
	return j;
}

static void cmd_show_bgp(void *arg, struct ctl_call *c)
{
	struct ops *o = arg;
	const struct conf_bgp *b = &o->conf->bgp;
	json_t *list = json_array();
	bool ok = list != NULL;

	for (unsigned i = 0; ok && i < bgp_speaker_neighbors(o->c.bgp); i++) {
		json_t *n = neighbor_json(o, bgp_speaker_session(o->c.bgp, i));
		ok = n && !json_array_append_new(list, n);
	}
	ok = ok && set(c, "neighbors", list);
	ok = ok && set(c, "enabled", json_boolean(b->enabled));
	if (ok && b->enabled) {
		ok = set(c, "asn", json_integer(b->asn)) &&
		     set(c, "router_id", addr_json(&b->router_id, false));
	}
	if (!ok) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	ctl_call_done(c);
}

/* BFD is not in this build (its branch is not merged): say so, honestly. */
static void cmd_show_bfd(void *arg, struct ctl_call *c)
{
	struct ops *o = arg;
	json_t *req = json_array();

	for (unsigned i = 0; req && i < o->conf->bgp.n_neighbors; i++)
		if (o->conf->bgp.neighbors[i].bfd)
			json_array_append_new(req,
			                      addr_json(&o->conf->bgp.neighbors[i].address, false));
	if (!set(c, "available", json_false()) || !set(c, "sessions", json_array()) ||
	    !set(c, "requested_by", req)) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	ctl_call_done(c);
}

static json_t *vip_json(const struct ops *o, const struct dns_health_vip_info *v)
{
	static const char *const probe[] = {"none", "ok", "fail"};
	return json_pack(
	    "{s:o, s:s, s:o, s:f, s:o, s:b, s:b, s:{s:s, s:o, s:o, s:i, s:i}, s:I}", "vip",
	    addr_json(&v->addr, true), "state", health_state_name(v->state), "reasons",
	    reasons_json(v->reason), "state_age_s", age_s(o, v->since_ms), "state_since_unix",
	    unix_of(o, v->since_ms), "drained", v->admin_drain, "address_present", v->addr_present,
	    "probes", "last", probe[v->last_probe >= 0 && v->last_probe <= 2 ? v->last_probe : 0],
	    "last_age_s", v->last_probe_ms ? json_real(age_s(o, v->last_probe_ms)) : json_null(),
	    "rtt_ms", v->last_rtt_us ? json_real((double)v->last_rtt_us / 1000.0) : json_null(),
	    "good_in_a_row", v->good, "failed_in_a_row", v->bad, "hold_down_ms",
	    (json_int_t)v->hold_ms);
}

static void cmd_show_health(void *arg, struct ctl_call *c)
{
	struct ops *o = arg;
	struct dns_health_info *h = &o->hinfo;
	json_t *vips = json_array();
	bool ok = vips != NULL;

	dns_health_info(o->c.health, h);
	for (unsigned i = 0; ok && i < h->n_vips; i++) {
		json_t *v = vip_json(o, &h->vip[i]);
		ok = v && !json_array_append_new(vips, v);
	}
	ok = ok && set(c, "vips", vips);
	ok = ok && set(c, "interval_ms", json_integer((json_int_t)h->interval_ms));
	ok = ok && set(c, "load",
	               json_pack("{s:f, s:f, s:f, s:f}", "busy", h->load.busy, "drops_per_s",
	                         h->load.drops_per_s, "inflight_ratio", h->load.inflight_ratio,
	                         "latency_ms", h->load.latency_ms));
	ok = ok && set(c, "overloaded", json_boolean(h->overloaded));
	ok = ok && set(c, "stalled", json_boolean(h->stalled));
	ok = ok && set(c, "upstreams_down", json_boolean(h->upstreams_down));
	ok = ok && set(c, "stopping", json_boolean(h->stop_drain || o->stopping));
	ok = ok && set(c, "drain_state", json_string(o->conf->control.state));
	if (!ok) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	ctl_call_done(c);
}

/* The round's answer to show upstreams. */
static void answer_upstreams(struct ops *o, void *ctx, const struct node *n)
{
	struct ctl_call *c = ctx;
	json_t *list = json_array();
	bool ok = list != NULL;

	for (unsigned i = 0; ok && i < n->n_up; i++) {
		const struct node_up *u = &n->up[i];
		json_t *j = json_pack(
		    "{s:o, s:s, s:i, s:b, s:o, s:o, s:i, s:i, s:f, s:I, s:I, s:I, s:I, s:I, s:I, "
		    "s:I, s:I}",
		    "address", addr_json(&o->conf->dns.upstreams[i], true), "state",
		    upstream_state_name(u->state), "dead_in_workers", u->dead_workers, "measured",
		    u->measured, "srtt_ms", u->measured ? json_integer(u->srtt_ms) : json_null(),
		    "rttvar_ms", u->measured ? json_integer(u->rttvar_ms) : json_null(), "rto_ms",
		    u->rto_ms, "consecutive_failures", u->consecutive_fail, "failure_rate",
		    u->fail_rate_pm / 1000.0, "queries", (json_int_t)u->c.sent, "answers",
		    (json_int_t)u->c.answers, "timeouts", (json_int_t)u->c.timeouts, "failures",
		    (json_int_t)u->c.failures, "servfail", (json_int_t)u->c.servfail, "refused",
		    (json_int_t)u->c.refused, "mismatches", (json_int_t)u->c.mismatches, "probes",
		    (json_int_t)u->c.probes);
		ok = j && !json_array_append_new(list, j);
	}
	(void)o;
	ok = ok && set(c, "upstreams", list);
	ok = ok && set(c, "workers", json_integer(n->workers));
	ok = ok && set(c, "answered", json_integer(n->answered));
	ok = ok && set(c, "inflight", json_integer(n->fwd.outstanding));
	/* DNS 0x20: every query is sent with random letter case; a mismatch is a likely spoof. */
	ok = ok && set(c, "dns0x20",
	               json_pack("{s:b, s:I, s:I}", "enabled", 1, "mismatches",
	                         (json_int_t)n->fwd.mismatches, "spoof_retries",
	                         (json_int_t)n->fwd.spoof_retries));
	if (!ok) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	ctl_call_done(c);
}

static json_t *cache_json(const struct ops *o, const struct node *n)
{
	uint64_t lookups = n->st.cache_hits + n->st.cache_misses;
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:i, s:i}", "entries",
	                 (json_int_t)n->cache.entries, "bytes", (json_int_t)n->cache.bytes,
	                 "limit_bytes", (json_int_t)o->conf->dns.cache.size_bytes, "hits",
	                 (json_int_t)n->st.cache_hits, "misses", (json_int_t)n->st.cache_misses,
	                 "stale", (json_int_t)n->st.stale_answers, "hit_ratio",
	                 lookups ? json_real((double)n->st.cache_hits / (double)lookups)
	                         : json_null(),
	                 "inserts", (json_int_t)n->cache.inserts, "evictions",
	                 (json_int_t)n->cache.evictions, "flushed", (json_int_t)n->cache.flushed,
	                 "workers", n->workers, "answered", n->answered);
}

static void answer_cache(struct ops *o, void *ctx, const struct node *n)
{
	struct ctl_call *c = ctx;
	json_t *j = cache_json(o, n);
	const char *k;
	json_t *v;

	if (!j) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	json_object_foreach(j, k, v) json_object_set(ctl_call_data(c), k, v);
	json_decref(j);
	ctl_call_done(c);
}

/* A round's answer to cache flush: what this round's flush removed. */
static void answer_flush(struct ops *o, void *ctx, const struct node *n)
{
	struct ctl_call *c = ctx;
	const char *name = ctl_call_nargs(c) ? ctl_call_arg(c, 0) : NULL;

	(void)o;
	if (!set(c, "flushed", json_integer((json_int_t)n->flushed)) ||
	    !set(c, "name", name ? json_string(name) : json_null()) ||
	    !set(c, "workers", json_integer(n->workers)) ||
	    !set(c, "answered", json_integer(n->answered))) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	if (n->answered < n->workers)
		set(c, "warning",
		    json_string("not every worker answered in time: their caches "
		                "are flushed when they do"));
	ctl_call_done(c);
}

static void start_round_call(struct ops *o, struct ctl_call *c, waiter_fn fn,
                             const struct flush_req *fl)
{
	int r = collect(o, fn, c, fl);

	if (r == -EBUSY)
		ctl_call_fail(c, CTL_E_BUSY, "%s",
		              fl && fl->on ? "another cache flush is waiting: try again"
		                           : "too many requests in progress: try again");
	else if (r == -ESHUTDOWN)
		ctl_call_fail(c, CTL_E_UNAVAILABLE, "the daemon is stopping");
	else if (r)
		ctl_call_fail(c, CTL_E_INTERNAL, "%s", strerror(-r));
}

static void cmd_show_upstreams(void *arg, struct ctl_call *c)
{
	start_round_call(arg, c, answer_upstreams, NULL);
}

static void cmd_show_cache(void *arg, struct ctl_call *c)
{
	start_round_call(arg, c, answer_cache, NULL);
}

static void cmd_cache_flush(void *arg, struct ctl_call *c)
{
	struct flush_req fl = {.on = true};

	if (ctl_call_nargs(c)) {
		int n = dns_name_from_text(ctl_call_arg(c, 0), fl.name, sizeof(fl.name));
		if (n < 0) {
			ctl_call_fail(
			    c, CTL_E_BAD_ARGUMENT,
			    "'%s' is not a domain name (labels of 1-63 printable characters "
			    "separated by dots, no escapes)",
			    ctl_call_arg(c, 0));
			return;
		}
		fl.len = (size_t)n;
		snprintf(fl.text, sizeof(fl.text), "%s", ctl_call_arg(c, 0));
	}
	start_round_call(arg, c, answer_flush, &fl);
}

/* ---------------------------------------------------------------- drains */

/* Health follows the drain state: VIP i is drained when the state has it. */
static void apply_drains(struct ops *o)
{
	for (unsigned i = 0; i < o->conf->dns.n_listen && i < HEALTH_MAX_VIPS; i++)
		dns_health_admin_drain(o->c.health, (int)i,
		                       drain_state_has(&o->drain, &o->conf->dns.listen[i]));
}

/* VIPs matching arg (an address, with or without port): a bit per dns.listen index. */
static int match_vips(const struct ops *o, const char *arg, uint64_t *mask)
{
	struct netaddr a;

	*mask = 0;
	if (netaddr_parse(arg, 0, &a))
		return -EINVAL;
	for (unsigned i = 0; i < o->conf->dns.n_listen && i < 64; i++) {
		const struct netaddr *v = &o->conf->dns.listen[i];
		if (netaddr_equal_ip(v, &a) && (!a.port || a.port == v->port))
			*mask |= 1ull << i;
	}
	return *mask ? 0 : -ENOENT;
}

static void cmd_drain(struct ops *o, struct ctl_call *c, bool on)
{
	struct drain_state next = o->drain;
	const struct conf_dns *dns = &o->conf->dns;
	uint64_t mask = ~0ull;
	json_t *list;
	int r;

	if (ctl_call_nargs(c)) {
		r = match_vips(o, ctl_call_arg(c, 0), &mask);
		if (r == -EINVAL) {
			ctl_call_fail(c, CTL_E_BAD_ARGUMENT,
			              "'%s' is not an address (ADDRESS or ADDRESS:PORT)",
			              ctl_call_arg(c, 0));
			return;
		}
		if (r) {
			char all[512], b[NETADDR_STRLEN];
			size_t off = 0;
			all[0] = '\0';
			for (unsigned i = 0; i < dns->n_listen && off < sizeof(all); i++)
				off += (size_t)snprintf(
				    all + off, sizeof(all) - off, "%s%s", i ? " " : "",
				    netaddr_format(&dns->listen[i], true, b, sizeof(b)));
			ctl_call_fail(c, CTL_E_NOT_FOUND, "no VIP '%s' (VIPs: %s)",
			              ctl_call_arg(c, 0), all);
			return;
		}
		if (next.all && !on) {
			/* Undraining one of "all": every other VIP stays drained, by name. */
			next.all = false;
			for (unsigned i = 0; i < dns->n_listen && i < 64; i++)
				drain_state_set(&next, &dns->listen[i], true);
		}
		for (unsigned i = 0; i < dns->n_listen && i < 64; i++)
			if (mask & (1ull << i) && drain_state_set(&next, &dns->listen[i], on)) {
				ctl_call_fail(c, CTL_E_BUSY, "the drain state is full");
				return;
			}
	} else {
		/* Every VIP: "all" also covers VIPs a later configuration adds. */
		memset(&next, 0, sizeof(next));
		next.all = on;
	}
	o->drain = next;
	apply_drains(o);
	r = drain_state_save(o->conf->control.state, &o->drain);
	if (r) {
		log_err("ops", "drain state %s not written: %s (the drain holds until a restart)",
		        o->conf->control.state, strerror(-r));
		set(c, "warning",
		    json_pack("{s:s, s:s}", "text",
		              "the drain state file could not be written: this "
		              "drain does not survive a restart",
		              "error", strerror(-r)));
	}
	list = json_array();
	for (unsigned i = 0; list && i < dns->n_listen; i++)
		if (drain_state_has(&o->drain, &dns->listen[i]))
			json_array_append_new(list, addr_json(&dns->listen[i], true));
	log_info("ops", "%s %s by the operator", on ? "drain" : "undrain",
	         ctl_call_nargs(c) ? ctl_call_arg(c, 0) : "(every VIP)");
	if (!set(c, "drained", list) || !set(c, "persisted", json_boolean(r == 0)) ||
	    !set(c, "state_file", json_string(o->conf->control.state))) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	ctl_call_done(c);
}

static void cmd_drain_on(void *arg, struct ctl_call *c)
{
	cmd_drain(arg, c, true);
}

static void cmd_drain_off(void *arg, struct ctl_call *c)
{
	cmd_drain(arg, c, false);
}

static void cmd_reload(void *arg, struct ctl_call *c)
{
	(void)arg;
	ctl_call_fail(c, CTL_E_NOT_IMPLEMENTED,
	              "reload is not implemented yet: restart anycached to apply a new "
	              "configuration");
}

/* ---------------------------------------------------------------- metrics */

#define L(k, v) ((struct prom_label){(k), (v)})

static void metric_u64(struct prom *p, const char *name, const char *type, const char *help,
                       uint64_t v)
{
	prom_family(p, name, type, help);
	prom_sample_u64(p, name, NULL, 0, v);
}

static void metric_d(struct prom *p, const char *name, const char *help, double v)
{
	prom_family(p, name, "gauge", help);
	prom_sample(p, name, NULL, 0, v);
}

static void render_dns(struct prom *p, const struct ops *o, const struct node *n)
{
	static const uint32_t bound_us[DNS_SERVER_LATENCY_N] = DNS_SERVER_LATENCY_BOUNDS_US;
	double bounds[DNS_SERVER_LATENCY_N];
	struct prom_label l;

	prom_family(p, "anycache_queries_total", "counter", "DNS queries received, by transport.");
	l = L("transport", "udp");
	prom_sample_u64(p, "anycache_queries_total", &l, 1, n->st.udp_rx);
	l = L("transport", "tcp");
	prom_sample_u64(p, "anycache_queries_total", &l, 1, n->st.tcp_rx);
	prom_family(p, "anycache_responses_total", "counter", "DNS answers sent, by RCODE.");
	for (unsigned r = 0; r < 16; r++) {
		const char *name = rcode_name(r);
		char other[16];
		if (!name) {
			if (!n->st.rcode[r])
				continue;
			snprintf(other, sizeof(other), "RCODE%u", r);
			name = other;
		} else if (r > 5 && !n->st.rcode[r]) {
			continue;
		}
		l = L("rcode", name);
		prom_sample_u64(p, "anycache_responses_total", &l, 1, n->st.rcode[r]);
	}
	metric_u64(p, "anycache_queries_dropped_total", "counter",
	           "Queries not answered (malformed: shorter than a header, or QR set).",
	           n->st.dropped);
	metric_u64(p, "anycache_queries_refused_acl_total", "counter",
	           "Queries from clients outside dns.allow (answered REFUSED).", n->st.refused_acl);
	metric_u64(p, "anycache_responses_truncated_total", "counter",
	           "UDP answers cut to the client's size with TC=1.", n->st.truncated);
	metric_u64(p, "anycache_send_failures_total", "counter", "Answers the loop could not send.",
	           n->st.tx_fail);
	metric_u64(p, "anycache_tcp_connections", "gauge", "TCP client connections open.",
	           n->st.tcp_conns);
	for (unsigned i = 0; i < DNS_SERVER_LATENCY_N; i++)
		bounds[i] = bound_us[i] / 1e6;
	prom_family(p, "anycache_answer_latency_seconds", "histogram",
	            "Time from a query's receive to its answer handed to the kernel.");
	prom_histogram(p, "anycache_answer_latency_seconds", NULL, 0, bounds, n->st.latency,
	               DNS_SERVER_LATENCY_N, (double)n->st.latency_us_sum / 1e6);

	metric_u64(p, "anycache_cache_hits_total", "counter", "Queries answered from the cache.",
	           n->st.cache_hits);
	metric_u64(p, "anycache_cache_misses_total", "counter",
	           "Queries the cache could not answer (forwarded).", n->st.cache_misses);
	metric_u64(p, "anycache_cache_stale_answers_total", "counter",
	           "Expired answers served because the upstreams failed (RFC 8767).",
	           n->st.stale_answers);
	metric_u64(p, "anycache_cache_entries", "gauge", "Answers held in the cache.",
	           n->cache.entries);
	metric_u64(p, "anycache_cache_bytes", "gauge",
	           "Memory the cache holds, its table included.", n->cache.bytes);
	metric_u64(p, "anycache_cache_limit_bytes", "gauge", "The cache's bound (dns.cache.size).",
	           o->conf->dns.cache.size_bytes);
	metric_u64(p, "anycache_cache_evictions_total", "counter", "Entries dropped to make room.",
	           n->cache.evictions);
	metric_u64(p, "anycache_cache_flushed_total", "counter",
	           "Entries removed by anycachectl cache flush.", n->cache.flushed);
	metric_u64(p, "anycache_receive_drops_total", "counter",
	           "Datagrams the kernel dropped on the DNS sockets (receive buffers full).",
	           n->rx_drops);
	metric_u64(p, "anycache_upstream_inflight", "gauge", "Upstream queries in flight.",
	           n->fwd.outstanding);
}

static void render_upstreams(struct prom *p, const struct ops *o, const struct node *n)
{
	static const char *const states[] = {"healthy", "suspect", "dead"};
	char names[DNS_FORWARD_MAX_UPSTREAMS][NETADDR_STRLEN];
	struct prom_label l[2];

	for (unsigned i = 0; i < n->n_up; i++)
		netaddr_format(&o->conf->dns.upstreams[i], true, names[i], sizeof(names[i]));
#define PER_UPSTREAM(metric, type, help, expr)                                                     \
	do {                                                                                       \
		prom_family(p, metric, type, help);                                                \
		for (unsigned i = 0; i < n->n_up; i++) {                                           \
			const struct node_up *u = &n->up[i];                                       \
			l[0] = L("upstream", names[i]);                                            \
			prom_sample(p, metric, l, 1, (double)(expr));                              \
		}                                                                                  \
	} while (0)
	PER_UPSTREAM("anycache_upstream_queries_total", "counter", "Tries sent to the upstream.",
	             u->c.sent);
	PER_UPSTREAM("anycache_upstream_answers_total", "counter",
	             "Usable answers from the upstream.", u->c.answers);
	PER_UPSTREAM("anycache_upstream_timeouts_total", "counter",
	             "Tries that timed out (RTO or the query's bound).", u->c.timeouts);
	PER_UPSTREAM("anycache_upstream_failures_total", "counter",
	             "Transport errors, malformed or truncated answers.", u->c.failures);
	PER_UPSTREAM("anycache_upstream_servfail_total", "counter", "SERVFAIL answers.",
	             u->c.servfail);
	PER_UPSTREAM("anycache_upstream_refused_total", "counter", "REFUSED answers.",
	             u->c.refused);
	PER_UPSTREAM("anycache_upstream_mismatches_total", "counter",
	             "Answers whose question differed (DNS 0x20 case or name): likely spoofs.",
	             u->c.mismatches);
	PER_UPSTREAM("anycache_upstream_rtt_seconds", "gauge",
	             "Smoothed round-trip time (RFC 6298 SRTT), mean over the workers; NaN "
	             "until measured.",
	             u->measured ? u->srtt_ms / 1000.0 : NAN);
	PER_UPSTREAM("anycache_upstream_rto_seconds", "gauge",
	             "Retransmission timeout: how long a try waits before failing over.",
	             u->rto_ms / 1000.0);
#undef PER_UPSTREAM
	prom_family(p, "anycache_upstream_state", "gauge",
	            "1 for the upstream's current state (the worst any worker sees).");
	for (unsigned i = 0; i < n->n_up; i++)
		for (unsigned s = 0; s < 3; s++) {
			l[0] = L("upstream", names[i]);
			l[1] = L("state", states[s]);
			prom_sample(p, "anycache_upstream_state", l, 2, n->up[i].state == s);
		}
}

static size_t routes_held(const struct bgp_session *s)
{
	static struct netprefix pfx[BGP_ADJOUT_MAX_ROUTES]; /* control thread only */
	static struct bgp_adjout_attrs at[BGP_ADJOUT_MAX_ROUTES];
	return bgp_session_routes(s, pfx, at, BGP_ADJOUT_MAX_ROUTES);
}

static void render_bgp(struct prom *p, const struct ops *o)
{
	unsigned nn = bgp_speaker_neighbors(o->c.bgp);
	static const char *const st[] = {"idle",     "connect",     "active",
	                                 "opensent", "openconfirm", "established"};
	struct bgp_session_info in[CONF_MAX_NEIGHBORS];
	char names[CONF_MAX_NEIGHBORS][NETADDR_STRLEN];
	struct prom_label l[2];

	if (!nn)
		return;
	for (unsigned i = 0; i < nn && i < CONF_MAX_NEIGHBORS; i++) {
		bgp_session_info(bgp_speaker_session(o->c.bgp, i), &in[i]);
		netaddr_format(&in[i].peer, false, names[i], sizeof(names[i]));
	}
	prom_family(p, "anycache_bgp_session_state", "gauge",
	            "1 for the BGP session's current FSM state (RFC 4271 §8).");
	for (unsigned i = 0; i < nn; i++)
		for (unsigned s = 0; s < 6; s++) {
			l[0] = L("neighbor", names[i]);
			l[1] = L("state", st[s]);
			prom_sample(p, "anycache_bgp_session_state", l, 2, in[i].state == s);
		}
#define PER_NEIGHBOR(metric, type, help, expr)                                                     \
	do {                                                                                       \
		prom_family(p, metric, type, help);                                                \
		for (unsigned i = 0; i < nn; i++) {                                                \
			l[0] = L("neighbor", names[i]);                                            \
			prom_sample_u64(p, metric, l, 1, (expr));                                  \
		}                                                                                  \
	} while (0)
	PER_NEIGHBOR("anycache_bgp_updates_sent_total", "counter",
	             "UPDATE messages sent (End-of-RIB included).", in[i].updates_sent);
	PER_NEIGHBOR("anycache_bgp_routes_announced", "gauge",
	             "Routes the neighbor holds from us now.",
	             routes_held(bgp_speaker_session(o->c.bgp, i)));
	PER_NEIGHBOR("anycache_bgp_session_flaps_total", "counter",
	             "Times the session left Established.", in[i].flaps);
#undef PER_NEIGHBOR
}

static void render_health(struct prom *p, struct ops *o)
{
	static const char *const st[] = {"down", "up", "degraded", "draining"};
	struct dns_health_info *h = &o->hinfo;
	char names[HEALTH_MAX_VIPS][NETADDR_STRLEN];
	struct prom_label l[2];

	dns_health_info(o->c.health, h);
	for (unsigned i = 0; i < h->n_vips; i++)
		netaddr_format(&h->vip[i].addr, true, names[i], sizeof(names[i]));
	prom_family(p, "anycache_vip_state", "gauge",
	            "1 for the VIP's current health state (UP and DEGRADED are announced).");
	for (unsigned i = 0; i < h->n_vips; i++)
		for (unsigned s = 0; s < 4; s++) {
			l[0] = L("vip", names[i]);
			l[1] = L("state", st[s]);
			prom_sample(p, "anycache_vip_state", l, 2, h->vip[i].state == s);
		}
	prom_family(p, "anycache_vip_drained", "gauge",
	            "1 while the operator drains the VIP (anycachectl drain).");
	for (unsigned i = 0; i < h->n_vips; i++) {
		l[0] = L("vip", names[i]);
		prom_sample(p, "anycache_vip_drained", l, 1, h->vip[i].admin_drain);
	}
	metric_d(p, "anycache_loop_busy_ratio",
	         "Fraction of the last health interval the busiest DNS worker loop spent working.",
	         h->load.busy);
	metric_d(p, "anycache_receive_drops_per_second",
	         "Datagrams the kernel dropped on the DNS sockets, per second, over the last "
	         "health interval.",
	         h->load.drops_per_s);
	metric_d(p, "anycache_overloaded", "1 while the load is over a health.overload threshold.",
	         h->overloaded);
}

static char *render_metrics(struct ops *o, const struct node *n, size_t *len)
{
	struct prom p;
	struct prom_label l = L("version", ANYCACHE_VERSION);

	prom_init(&p);
	prom_family(&p, "anycache_build_info", "gauge", "Always 1; the version as a label.");
	prom_sample(&p, "anycache_build_info", &l, 1, 1);
	metric_d(&p, "anycache_start_time_seconds", "When the daemon started (Unix time).",
	         (double)o->started_unix);
	metric_u64(&p, "anycache_workers", "gauge", "DNS worker threads.", n->workers);
	metric_u64(&p, "anycache_workers_answered", "gauge",
	           "Workers whose figures are from this scrape (the others count with their "
	           "last answer).",
	           n->answered);
	render_dns(&p, o, n);
	render_upstreams(&p, o, n);
	render_bgp(&p, o);
	render_health(&p, o);
	if (prom_result(&p))
		log_err("ops", "metrics page: %s", strerror(-prom_result(&p)));
	return prom_take(&p, len);
}

static void answer_metrics(struct ops *o, void *ctx, const struct node *n)
{
	struct http_call *c = ctx;
	size_t len = 0;
	char *page = render_metrics(o, n, &len);

	if (!page) {
		http_call_reply(c, 500, "text/plain; charset=utf-8", "500 metrics unavailable\n",
		                24);
		return;
	}
	http_call_reply(c, 200, PROM_CONTENT_TYPE, page, len);
	free(page);
}

static void route_metrics(void *arg, struct http_call *c)
{
	struct ops *o = arg;
	int r = collect(o, answer_metrics, c, NULL);

	if (r)
		http_call_reply(c, 503, "text/plain; charset=utf-8", "503 busy\n", 9);
}

/*
 * /health: 200 while some VIP is served and announced (UP, or DEGRADED:
 * overload or dead upstreams hit every node at once, and a load balancer
 * that dropped every node for it would take the whole service down, as
 * health_fsm.h says of BGP), 503 otherwise (DOWN, DRAINING).
 */
static void route_health(void *arg, struct http_call *c)
{
	struct ops *o = arg;
	struct health_snapshot snap;
	unsigned up = 0, degraded = 0;
	char body[128];
	int n;

	dns_health_snapshot(o->c.health, &snap);
	for (unsigned i = 0; i < snap.n; i++) {
		up += snap.vip[i].state == HEALTH_UP;
		degraded += snap.vip[i].state == HEALTH_DEGRADED;
	}
	if (up + degraded)
		n = snprintf(body, sizeof(body), "ok: %u of %u VIPs up, %u degraded\n", up, snap.n,
		             degraded);
	else
		n = snprintf(body, sizeof(body), "unavailable: none of %u VIPs up\n", snap.n);
	http_call_reply(c, up + degraded ? 200 : 503, "text/plain; charset=utf-8", body, (size_t)n);
}

/* ---------------------------------------------------------------- lifecycle */

static const struct {
	const char *cmd, *usage;
	unsigned min, max;
	ctl_cmd_fn fn;
} commands[] = {
    {"status", "status", 0, 0, cmd_status},
    {"show bgp", "show bgp", 0, 0, cmd_show_bgp},
    {"show bfd", "show bfd", 0, 0, cmd_show_bfd},
    {"show health", "show health", 0, 0, cmd_show_health},
    {"show upstreams", "show upstreams", 0, 0, cmd_show_upstreams},
    {"show cache", "show cache", 0, 0, cmd_show_cache},
    {"cache flush", "cache flush [NAME]", 0, 1, cmd_cache_flush},
    {"drain", "drain [VIP]", 0, 1, cmd_drain_on},
    {"undrain", "undrain [VIP]", 0, 1, cmd_drain_off},
    {"reload", "reload", 0, 0, cmd_reload},
};

int ops_new(const struct ops_conf *c, char *why, size_t whylen, struct ops **out)
{
	const struct conf *conf = c->conf;
	struct ctl_server_conf cc = {.path = conf->control.socket, .group = conf->control.group};
	struct ops *o = calloc(1, sizeof(*o));
	char dwhy[128];
	int r;

	if (!o) {
		snprintf(why, whylen, "operations: out of memory");
		return -ENOMEM;
	}
	o->c = *c;
	o->conf = conf;
	o->l = c->ctl;
	if (c->conf_path) {
		/* Absolute, so status names the file whatever directory it was started in. */
		char *abs = realpath(c->conf_path, NULL);
		snprintf(o->conf_path, sizeof(o->conf_path), "%s", abs ? abs : c->conf_path);
		free(abs);
	}
	o->started_ms = clock_now_ms();
	o->started_unix = (int64_t)time(NULL);
	timer_init(&o->round_timer, on_round_bound, o);
	o->w = calloc(c->n_workers ? c->n_workers : 1, sizeof(*o->w));
	if (!o->w) {
		free(o);
		snprintf(why, whylen, "operations: out of memory");
		return -ENOMEM;
	}
	o->n_w = c->n_workers;
	for (unsigned i = 0; i < o->n_w; i++) {
		o->w[i].o = o;
		o->w[i].loop = c->workers[i].loop;
		o->w[i].dns = c->workers[i].dns;
		pthread_mutex_init(&o->w[i].mu, NULL);
	}
	/* The drains an operator left in place hold from the first health tick. */
	r = drain_state_load(conf->control.state, &o->drain, dwhy, sizeof(dwhy));
	if (r) {
		snprintf(why, whylen, "drain state %s: %s (fix or remove it)", conf->control.state,
		         dwhy);
		ops_free(o);
		return r;
	}
	apply_drains(o);
	for (unsigned i = 0; i < conf->dns.n_listen; i++)
		if (drain_state_has(&o->drain, &conf->dns.listen[i])) {
			char b[NETADDR_STRLEN];
			log_info("ops", "VIP %s stays drained (%s)",
			         netaddr_format(&conf->dns.listen[i], true, b, sizeof(b)),
			         conf->control.state);
		}
	r = ctl_server_new(o->l, &cc, why, whylen, &o->ctl);
	if (r) {
		ops_free(o);
		return r;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		ctl_server_register(o->ctl, commands[i].cmd, commands[i].min, commands[i].max,
		                    commands[i].usage, commands[i].fn, o);
	if (conf->control.has_metrics) {
		r = http_server_new(o->l, &conf->control.metrics, why, whylen, &o->http);
		if (r) {
			ctl_server_close(o->ctl);
			ops_free(o);
			return r;
		}
		http_server_route(o->http, "/metrics", route_metrics, o);
		http_server_route(o->http, "/health", route_health, o);
	}
	*out = o;
	return 0;
}

void ops_stopping(struct ops *o)
{
	if (o)
		o->stopping = true;
}

void ops_close(struct ops *o)
{
	if (!o || o->closed)
		return;
	o->closed = true;
	loop_timer_cancel(o->l, &o->round_timer);
	ctl_server_close(o->ctl);
	http_server_close(o->http);
}

void ops_free(struct ops *o)
{
	if (!o)
		return;
	/* Waiters point at calls the servers own: drop ours, then theirs. */
	for (struct waiter *lists[2] = {o->cur, o->next}, **pl = lists; pl < lists + 2; pl++)
		while (*pl) {
			struct waiter *w = *pl;
			*pl = w->next;
			free(w);
		}
	ctl_server_free(o->ctl);
	http_server_free(o->http);
	for (unsigned i = 0; i < o->n_w; i++)
		pthread_mutex_destroy(&o->w[i].mu);
	free(o->w);
	free(o);
}
