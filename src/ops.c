/*
 * ops.c: operations' lifecycle, the rounds that collect the DNS workers'
 * figures, the drains applied to health (see ops.h; the commands are in
 * ops_cmd.c, the metrics page in ops_metrics.c).
 */
#include "ops.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/ctl_server.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/loop.h"
#include "ops_int.h"

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
	d->refused_meta += s->refused_meta;
	d->mem_refused += s->mem_refused;
	d->identity += s->identity;
	d->cache_hits += s->cache_hits;
	d->cache_misses += s->cache_misses;
	d->stale_answers += s->stale_answers;
	d->prefetches += s->prefetches;
	d->upstream_fail += s->upstream_fail;
	d->tx_fail += s->tx_fail;
	d->truncated += s->truncated;
	d->tcp.accepted += s->tcp.accepted;
	d->tcp.refused += s->tcp.refused;
	d->tcp.refused_acl += s->tcp.refused_acl;
	d->tcp.refused_source += s->tcp.refused_source;
	d->tcp.evicted += s->tcp.evicted;
	d->tcp.idle_closed += s->tcp.idle_closed;
	d->tcp.stalled += s->tcp.stalled;
	d->tcp.tls_handshakes += s->tcp.tls_handshakes;
	d->tcp.tls_resumed += s->tcp.tls_resumed;
	d->tcp.tls_failed += s->tcp.tls_failed;
	d->tcp.tls_hs_timeouts += s->tcp.tls_hs_timeouts;
	d->tcp.tls_close_notify += s->tcp.tls_close_notify;
	d->tcp.mem_refused += s->tcp.mem_refused;
	d->listener_deaths += s->listener_deaths;
	for (unsigned i = 0; i < 5; i++)
		d->cookies[i] += s->cookies[i];
	d->cookie_errors += s->cookie_errors;
	d->cookie_unsent += s->cookie_unsent;
	d->cookie_required += s->cookie_required;
	d->rrl_dropped += s->rrl_dropped;
	d->rrl_slipped += s->rrl_slipped;
	d->tcp.conns += s->tcp.conns;
	d->dnstap_dropped += s->dnstap_dropped;
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

/* An upstream's health: the node's (one table, dns_upstream.h), read once. */
static void take_health(struct node_up *u, const struct dns_upstream_info *in)
{
	u->state = in->state;
	u->measured = in->measured;
	u->srtt_ms = in->srtt_ms;
	u->rttvar_ms = in->rttvar_ms;
	u->rto_ms = in->rto_ms;
	u->consecutive_fail = in->consecutive_fail;
	u->fail_rate_pm = in->fail_rate_pm;
	u->no_0x20 = in->no_0x20;
	u->confirming = in->confirming;
}

/* A worker's forwarder's counters for the upstream, added to the node's. */
static void sum_upstream(struct node_up *u, const struct dns_forward_upstream_stats *c)
{
	u->c.sent += c->sent;
	u->c.answers += c->answers;
	u->c.rtt_ms_sum += c->rtt_ms_sum;
	u->c.timeouts += c->timeouts;
	u->c.failures += c->failures;
	u->c.servfail += c->servfail;
	u->c.refused += c->refused;
	u->c.mismatches += c->mismatches;
	u->c.probes += c->probes;
	u->c.case_ignored += c->case_ignored;
}

static void build_node(struct ops *o, unsigned answered)
{
	struct node *n = &o->node;

	memset(n, 0, sizeof(*n));
	n->workers = o->n_w;
	n->answered = answered;
	/* One cache per node (dns_server.h): read once, here, never summed. */
	if (o->c.cache)
		dns_cache_stats(o->c.cache, &n->cache);
	if (o->c.shared)
		n->client_mem = dns_shared_client_memory(o->c.shared, &n->client_mem_limit);
	n->n_up = o->conf->dns.n_upstreams;
	if (n->n_up > DNS_FORWARD_MAX_UPSTREAMS)
		n->n_up = DNS_FORWARD_MAX_UPSTREAMS;
	/* Upstream health is one table per node: read once, here (the counters
	 * below are each worker's forwarder's, summed). */
	for (unsigned u = 0; u < n->n_up && o->c.shared; u++) {
		struct dns_upstream_info in;
		if (u < dns_shared_upstream_info(o->c.shared, u, &in))
			take_health(&n->up[u], &in);
	}
	for (unsigned i = 0; i < o->n_w; i++) {
		const struct wslot *w = &o->w[i];
		if (!w->have_last)
			continue;
		sum_server(&n->st, &w->last.st);
		sum_forward(&n->fwd, &w->last.fwd);
		n->rx_drops += w->last.rx_drops;
		for (unsigned u = 0; u < n->n_up && u < w->last.fwd.n_upstreams; u++)
			sum_upstream(&n->up[u], &w->last.fwd.up[u]);
	}
}

/* ---------------------------------------------------------------- rounds */

static void on_sample(struct loop *l, void *arg);

/* On a worker's thread: its figures for this round. */
static void worker_sample(struct loop *l, void *arg)
{
	struct wslot *w = arg;
	struct wsample *s = malloc(sizeof(*s));
	struct dns_server_report rep;

	(void)l;
	if (!s) {
		pthread_mutex_lock(&w->mu);
		w->pending = false;
		pthread_mutex_unlock(&w->mu);
		return; /* the round's bound covers it */
	}
	memset(s, 0, sizeof(*s));
	s->st = *dns_server_stats(w->dns);
	s->fwd = *dns_server_upstream_stats(w->dns);
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
	struct waiter *list = o->cur;

	loop_timer_cancel(o->l, &o->round_timer);
	for (unsigned i = 0; i < o->n_w; i++) {
		struct wslot *w = &o->w[i];
		pthread_mutex_lock(&w->mu);
		if (w->fresh) {
			w->last = w->s;
			w->have_last = true;
			w->fresh = false;
			if (w->round == o->round)
				answered++;
		}
		pthread_mutex_unlock(&w->mu);
	}
	build_node(o, answered);
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
	o->round++;
	o->round_active = true;
	o->cur = o->next;
	o->next = NULL;
	for (unsigned i = 0; i < o->n_w; i++) {
		struct wslot *w = &o->w[i];
		bool post = false;
		pthread_mutex_lock(&w->mu);
		if (!w->pending) {
			/* A worker still busy with an older request is not asked twice. */
			w->pending = true;
			w->round = o->round;
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

int ops_collect(struct ops *o, waiter_fn fn, void *ctx)
{
	struct waiter *wt, **tail;

	if (o->closed)
		return -ESHUTDOWN;
	if (o->n_waiters >= OPS_MAX_WAITERS)
		return -EBUSY;
	wt = calloc(1, sizeof(*wt));
	if (!wt)
		return -ENOMEM;
	wt->fn = fn;
	wt->ctx = ctx;
	for (tail = &o->next; *tail; tail = &(*tail)->next)
		;
	*tail = wt;
	o->n_waiters++;
	if (!o->round_active)
		round_start(o);
	return 0;
}

/* ---------------------------------------------------------------- drains */

/* Health follows the drain state: a VIP is drained when the state has it (by address, so
 * a reload that reorders or adds VIPs keeps every drain). */
void ops_apply_drains(struct ops *o)
{
	for (unsigned i = 0; i < o->conf->dns.n_listen && i < HEALTH_MAX_VIPS; i++)
		dns_health_admin_drain_addr(o->c.health, &o->conf->dns.listen[i],
		                            drain_state_has(&o->drain, &o->conf->dns.listen[i]));
}

void ops_reapply_drains(struct ops *o)
{
	ops_apply_drains(o);
}

double ops_age_s(const struct ops *o, uint64_t since_ms)
{
	uint64_t now = loop_now(o->l);
	return since_ms && now > since_ms ? (double)(now - since_ms) / 1000.0 : 0.0;
}

void ops_conf_loaded(struct ops *o, int64_t unix_time)
{
	o->c.conf_loaded_unix = unix_time;
	o->reloads++;
}

/* ---------------------------------------------------------------- lifecycle */

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
	ops_apply_drains(o);
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
	ops_register_commands(o);
	if (conf->control.has_metrics) {
		r = http_server_new(o->l, &conf->control.metrics, why, whylen, &o->http);
		if (r) {
			ctl_server_close(o->ctl);
			ops_free(o);
			return r;
		}
		ops_register_routes(o);
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
