/*
 * dns_health.c: heartbeats, self-probes and address events into per-VIP
 * health (see dns_health.h).
 */
#include "dns/dns_health.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/addrwatch.h"
#include "core/clock.h"
#include "core/health_fsm.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"
#include "core/wire.h"
#include "dns/dns_server.h"
#include "dns/dns_wire.h"

/* "id.server" in wire form (RFC 4892 §2). */
static const uint8_t ID_SERVER[] = {2, 'i', 'd', 6, 's', 'e', 'r', 'v', 'e', 'r', 0};
#define DNS_TYPE_TXT 16
#define DNS_CLASS_CH 3
#define PROBE_BUF    1024

/*
 * One worker as health sees it. The control thread posts a request
 * (`pending`); the worker fills `rep` on its own thread and clears it. Only
 * these fields cross threads, under mu.
 */
struct wslot {
	struct dns_health *h;
	struct loop *loop;
	struct dns_server *dns;
	pthread_mutex_t mu;
	bool pending, fresh;
	struct dns_server_report rep;
	/* Control thread only. */
	uint64_t posted_ms, last_ok_ms;
	struct dns_server_report cur, prev;
	bool have_cur, have_prev;
};

enum probe_phase { P_IDLE = 0, P_INFLIGHT, P_OK, P_FAIL };

struct probe {
	struct dns_health *h;
	unsigned vip;
	int fd;       /* -1: none open */
	bool closing; /* loop_close_fd under way */
	enum probe_phase phase;
	uint16_t id;
	uint64_t sent_us, rtt_us;
	size_t qlen;
	uint8_t q[64];
	uint8_t buf[PROBE_BUF];
};

struct vip {
	struct netaddr addr; /* dns.listen entry (port = the DNS port) */
	struct netaddr target;
	bool wildcard;
	bool addr_present;
	struct health_vip_fsm fsm;
	struct probe probe;
	bool admin_drain; /* operator drain (anycachectl drain), beside the stop's */
	/* Removed by a reload: skipped everywhere; the slot is reused once its
	 * probe socket is closed (a probe in flight points into it). */
	bool gone;
	/* The last probe result, for the control socket. */
	enum health_probe last_probe;
	uint64_t last_probe_ms;
	uint64_t last_rtt_us;
};

struct dns_health {
	struct loop *l;
	uint64_t interval_ms;
	struct health_fsm_conf fc;
	struct health_overload_conf oc;
	struct health_overload ov;
	bool drain;
	struct addrwatch *aw;
	struct timer tick;
	unsigned n_workers, n_vips;
	struct wslot *w;
	struct vip vips[HEALTH_MAX_VIPS];
	uint64_t started_ms;
	dns_health_fn fn;
	void *arg;
	struct health_snapshot snap;
	struct health_load last_load;
	bool stalled, upstreams_down; /* last tick's view, for dns_health_info */
	bool freeing;
};

/* ---------------------------------------------------------------- probe codec */

int dns_health_probe_build(uint8_t *buf, size_t cap, uint16_t id)
{
	struct wbuf b = wbuf_init(buf, cap);
	int r = dns_build_query(&b, id, ID_SERVER, sizeof(ID_SERVER), DNS_TYPE_TXT, DNS_CLASS_CH,
	                        false, false);
	return r < 0 ? r : (int)b.off;
}

bool dns_health_probe_answer_ok(const uint8_t *pkt, size_t len, uint16_t id)
{
	struct dns_scan s;

	if (dns_scan(pkt, len, &s) < 0 || !s.qr || s.id != id || s.qdcount != 1 || s.tc)
		return false;
	return dns_scan_match_question(pkt, &s, ID_SERVER, sizeof(ID_SERVER), DNS_TYPE_TXT,
	                               DNS_CLASS_CH) != DNS_QMATCH_NONE;
}

/* ---------------------------------------------------------------- workers */

/* On the worker's thread: the heartbeat answer. */
static void worker_report(struct loop *l, void *arg)
{
	struct wslot *w = arg;
	struct dns_server_report rep;

	(void)l;
	dns_server_report(w->dns, &rep);
	pthread_mutex_lock(&w->mu);
	w->rep = rep;
	w->pending = false;
	w->fresh = true;
	pthread_mutex_unlock(&w->mu);
}

/* Takes a fresh report if one came, posts the next request if none is out. */
static void poll_worker(struct dns_health *h, struct wslot *w, uint64_t now)
{
	bool post = false;

	pthread_mutex_lock(&w->mu);
	if (w->fresh) {
		w->prev = w->cur;
		w->have_prev = w->have_cur;
		w->cur = w->rep;
		w->have_cur = true;
		w->fresh = false;
		w->last_ok_ms = now;
	}
	if (!w->pending) {
		w->pending = true;
		post = true;
	}
	pthread_mutex_unlock(&w->mu);
	if (!post)
		return; /* the last request is still queued: never pile them up */
	w->posted_ms = now;
	int r = loop_post(w->loop, worker_report, w);
	if (r < 0) {
		pthread_mutex_lock(&w->mu);
		w->pending = false;
		pthread_mutex_unlock(&w->mu);
		if (r != -ESHUTDOWN)
			log_warn("health", "cannot reach a worker: %s", strerror(-r));
	}
}

static bool worker_stalled(const struct dns_health *h, const struct wslot *w, uint64_t now)
{
	uint64_t limit = (h->fc.fall ? h->fc.fall : 1) * h->interval_ms; /* 0 reads as 1 */
	uint64_t last = w->have_cur ? w->last_ok_ms : h->started_ms;
	/* A request goes out every tick, the answer is read at the next one:
	 * one interval of latency is normal. */
	return now > last + limit + h->interval_ms;
}

/* ---------------------------------------------------------------- probes */

static void probe_closed(struct loop *l, void *ctx)
{
	struct probe *p = ctx;

	(void)l;
	p->fd = -1;
	p->closing = false;
}

static void probe_close(struct probe *p)
{
	if (p->fd < 0 || p->closing)
		return;
	p->closing = true;
	if (loop_close_fd(p->h->l, p->fd, probe_closed, p) < 0) {
		close(p->fd);
		p->fd = -1;
		p->closing = false;
	}
}

static void probe_recv(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct probe *p = ctx;

	(void)l;
	(void)flags;
	if (p->phase != P_INFLIGHT || res == -ECANCELED)
		return;
	if (res > 0 && dns_health_probe_answer_ok(p->buf, (size_t)res, p->id)) {
		p->phase = P_OK;
		p->rtt_us = clock_now_us() - p->sent_us;
	} else {
		p->phase = P_FAIL; /* refused (nothing listening), garbage, error */
	}
	if (!p->h->freeing)
		probe_close(p);
}

static void probe_sent(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct probe *p = ctx;

	(void)l;
	(void)flags;
	if (res < 0 && res != -ECANCELED && p->phase == P_INFLIGHT) {
		p->phase = P_FAIL;
		probe_close(p);
	}
}

/* Opens the probe socket bound to the VIP and sends the query. */
static void probe_start(struct dns_health *h, struct vip *v)
{
	struct probe *p = &v->probe;
	struct sockaddr_storage src, dst;
	struct netaddr a = v->target;
	socklen_t sl;
	uint16_t id;
	int fd, r;

	p->phase = P_FAIL;
	if (getrandom(&id, sizeof(id), 0) != sizeof(id))
		id = (uint16_t)clock_now_us();
	fd = socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (!v->wildcard) {
		/* From the VIP itself: fails at once when the address is gone. */
		a.port = 0;
		sl = netaddr_to_sockaddr(&a, &src);
		if (bind(fd, (struct sockaddr *)&src, sl) < 0) {
			if (errno == EADDRNOTAVAIL)
				v->addr_present = false;
			close(fd);
			return;
		}
		v->addr_present = true;
	}
	sl = netaddr_to_sockaddr(&v->target, &dst);
	if (connect(fd, (struct sockaddr *)&dst, sl) < 0) {
		close(fd);
		return;
	}
	r = dns_health_probe_build(p->q, sizeof(p->q), id);
	if (r < 0) {
		close(fd);
		return;
	}
	p->fd = fd;
	p->id = id;
	p->qlen = (size_t)r;
	p->phase = P_INFLIGHT;
	p->sent_us = clock_now_us();
	if (loop_recv(h->l, fd, p->buf, sizeof(p->buf), probe_recv, p, NULL) < 0 ||
	    loop_send(h->l, fd, p->q, p->qlen, probe_sent, p, NULL) < 0) {
		p->phase = P_FAIL;
		probe_close(p);
	}
}

/* The previous interval's probe result, then the next probe. */
static enum health_probe probe_turn(struct dns_health *h, struct vip *v, double *rtt_ms)
{
	struct probe *p = &v->probe;
	enum health_probe res = HEALTH_PROBE_NONE;

	switch (p->phase) {
	case P_IDLE:
		break;
	case P_INFLIGHT: /* no answer within one interval */
		res = HEALTH_PROBE_FAIL;
		probe_close(p);
		break;
	case P_OK:
		res = HEALTH_PROBE_OK;
		if ((double)p->rtt_us / 1000.0 > *rtt_ms)
			*rtt_ms = (double)p->rtt_us / 1000.0;
		break;
	case P_FAIL:
		res = HEALTH_PROBE_FAIL;
		break;
	}
	p->phase = P_IDLE;
	if (!p->closing && p->fd < 0)
		probe_start(h, v);
	return res;
}

/* ---------------------------------------------------------------- the tick */

static void on_addr(void *arg, const struct netaddr *a, bool present)
{
	struct dns_health *h = arg;

	if (!a)
		return; /* events lost: the next probe's bind tells the truth */
	for (unsigned i = 0; i < h->n_vips; i++) {
		struct vip *v = &h->vips[i];
		if (v->gone || v->wildcard || !netaddr_equal_ip(&v->addr, a) ||
		    v->addr_present == present)
			continue;
		v->addr_present = present;
		char b[NETADDR_STRLEN];
		log_info("health", "address %s %s", netaddr_format(a, false, b, sizeof(b)),
		         present ? "added" : "removed");
	}
	/* Act on a removal now, not at the next tick (target: well under 1 s). */
	loop_timer_cancel(h->l, &h->tick);
	loop_timer_arm_in(h->l, &h->tick, 0);
}

/* Merges the workers' reports into this interval's load figures. */
static void gather_load(struct dns_health *h, struct health_load *ld, bool *upstreams_down)
{
	uint64_t answers = 0;
	unsigned with_report = 0, up_down = 0;

	memset(ld, 0, sizeof(*ld));
	for (unsigned i = 0; i < h->n_workers; i++) {
		struct wslot *w = &h->w[i];
		if (!w->have_cur)
			continue;
		with_report++;
		up_down += w->cur.upstreams_down;
		if (w->cur.inflight_max) {
			double r = (double)w->cur.inflight / (double)w->cur.inflight_max;
			if (r > ld->inflight_ratio)
				ld->inflight_ratio = r;
		}
		if (!w->have_prev || w->cur.at_us <= w->prev.at_us)
			continue;
		double dt = (double)(w->cur.at_us - w->prev.at_us);
		double busy = 1.0 - (double)(w->cur.wait_us - w->prev.wait_us) / dt;
		if (busy > ld->busy)
			ld->busy = busy < 0 ? 0 : busy;
		ld->drops_per_s += (double)(w->cur.rx_drops - w->prev.rx_drops) * 1e6 / dt;
		answers += w->cur.upstream_answers - w->prev.upstream_answers;
	}
	/*
	 * Some worker sees every upstream dead and no worker got an upstream
	 * answer in this interval. Not "every worker": one that the kernel's
	 * hash sent no miss to has no view, and its upstreams look healthy
	 * (test_fate_sharing failed now and then when 12 misses split 10:2).
	 */
	*upstreams_down = with_report && up_down > 0 && answers == 0;
}

static void log_change(const struct vip *v, const struct health_vip_fsm *old)
{
	char why[160], b[NETADDR_STRLEN];

	health_reasons_format(v->fsm.reason, why, sizeof(why));
	if (old->state == v->fsm.state)
		log_debug("health", "VIP %s %s (%s)", netaddr_format(&v->addr, true, b, sizeof(b)),
		          health_state_name(v->fsm.state), why);
	else
		log_info("health", "VIP %s %s -> %s (%s)",
		         netaddr_format(&v->addr, true, b, sizeof(b)),
		         health_state_name(old->state), health_state_name(v->fsm.state), why);
}

/* Matched by address: after a reload a worker's order is not dns.listen's. */
static bool worker_listens(const struct dns_server_report *r, const struct netaddr *a)
{
	for (unsigned i = 0; i < r->n_listen && i < 64; i++)
		if (netaddr_equal(&r->listen[i], a))
			return (r->listen_ok >> i) & 1;
	return false;
}

static void on_tick(struct timer *t, uint64_t now, void *arg)
{
	struct dns_health *h = arg;
	struct health_load ld;
	bool upstreams_down, stalled = false, changed = false;
	double rtt_ms = 0;
	enum health_probe pr[HEALTH_MAX_VIPS];

	for (unsigned i = 0; i < h->n_workers; i++)
		poll_worker(h, &h->w[i], now);
	for (unsigned i = 0; i < h->n_workers; i++)
		stalled = stalled || worker_stalled(h, &h->w[i], now);
	for (unsigned i = 0; i < h->n_vips; i++) {
		struct vip *v = &h->vips[i];
		pr[i] = HEALTH_PROBE_NONE;
		if (v->gone)
			continue;
		pr[i] = probe_turn(h, v, &rtt_ms);
		if (pr[i] != HEALTH_PROBE_NONE) {
			v->last_probe = pr[i];
			v->last_probe_ms = now;
			if (pr[i] == HEALTH_PROBE_OK)
				v->last_rtt_us = v->probe.rtt_us;
		}
	}
	h->stalled = stalled;
	gather_load(h, &ld, &upstreams_down);
	ld.latency_ms = rtt_ms;
	h->last_load = ld;
	h->upstreams_down = upstreams_down;
	bool over = health_overload_step(&h->ov, &h->oc, &ld);

	for (unsigned i = 0; i < h->n_vips; i++) {
		struct vip *v = &h->vips[i];
		if (v->gone)
			continue;
		struct health_vip_fsm old = v->fsm;
		struct health_signals s = {
		    .listening = true,
		    .addr_present = v->wildcard || v->addr_present,
		    .stalled = stalled,
		    .probe = pr[i],
		    .overloaded = over,
		    .upstreams_down = upstreams_down,
		    .drain = h->drain || v->admin_drain,
		};
		for (unsigned k = 0; k < h->n_workers; k++)
			if (!h->w[k].have_cur || !worker_listens(&h->w[k].cur, &v->addr))
				s.listening = false;
		if (health_fsm_step(&v->fsm, &h->fc, &s, now)) {
			log_change(v, &old);
			changed = true;
		}
	}
	if (changed) {
		dns_health_snapshot(h, &h->snap);
		if (h->fn)
			h->fn(h->arg, &h->snap);
	}
	loop_timer_cancel(h->l, t);
	loop_timer_arm_in(h->l, t, h->interval_ms);
}

/* ---------------------------------------------------------------- lifecycle */

/* A VIP starts DOWN: announced only after `rise` good probes. */
static void vip_init(struct dns_health *h, struct vip *v, const struct netaddr *addr, uint64_t now)
{
	static const uint8_t zero[16];

	memset(v, 0, sizeof(*v));
	v->addr = *addr;
	v->target = v->addr;
	v->wildcard = !memcmp(v->addr.addr, zero, v->addr.family == AF_INET ? 4 : 16);
	if (v->wildcard) {
		/* Any local address reaches a wildcard listener: use loopback. */
		memset(v->target.addr, 0, sizeof(v->target.addr));
		if (v->addr.family == AF_INET) {
			v->target.addr[0] = 127;
			v->target.addr[3] = 1;
		} else {
			v->target.addr[15] = 1;
		}
	}
	v->addr_present = true; /* its listener was bound */
	v->probe.h = h;
	v->probe.vip = (unsigned)(v - h->vips);
	v->probe.fd = -1;
	health_fsm_init(&v->fsm, now);
}

int dns_health_new(struct loop *ctl, const struct conf *conf, const struct dns_health_worker *w,
                   unsigned n_workers, dns_health_fn fn, void *arg, struct dns_health **out)
{
	struct dns_health *h = calloc(1, sizeof(*h));
	uint64_t now = clock_now_ms();
	int r;

	if (!h)
		return -ENOMEM;
	h->l = ctl;
	h->fn = fn;
	h->arg = arg;
	h->interval_ms = conf->health.interval_ms ? conf->health.interval_ms : 200;
	health_fsm_conf_from(&conf->health, &h->fc, &h->oc);
	h->started_ms = now;
	h->w = calloc(n_workers ? n_workers : 1, sizeof(*h->w));
	if (!h->w) {
		free(h);
		return -ENOMEM;
	}
	h->n_workers = n_workers;
	for (unsigned i = 0; i < n_workers; i++) {
		h->w[i].h = h;
		h->w[i].loop = w[i].loop;
		h->w[i].dns = w[i].dns;
		pthread_mutex_init(&h->w[i].mu, NULL);
	}
	for (unsigned i = 0; i < conf->dns.n_listen && i < HEALTH_MAX_VIPS; i++)
		vip_init(h, &h->vips[h->n_vips++], &conf->dns.listen[i], now);
	r = addrwatch_new(ctl, on_addr, h, &h->aw);
	if (r < 0)
		log_warn("health", "no address events (%s): removed VIPs are seen by probes only",
		         strerror(-r));
	dns_health_snapshot(h, &h->snap);
	timer_init(&h->tick, on_tick, h);
	loop_timer_arm_in(ctl, &h->tick, 0);
	*out = h;
	return 0;
}

void dns_health_free(struct dns_health *h)
{
	if (!h)
		return;
	h->freeing = true;
	loop_timer_cancel(h->l, &h->tick);
	addrwatch_free(h->aw);
	/* The control loop was drained: nothing of ours is in flight. */
	for (unsigned i = 0; i < h->n_vips; i++)
		if (h->vips[i].probe.fd >= 0)
			close(h->vips[i].probe.fd);
	for (unsigned i = 0; i < h->n_workers; i++)
		pthread_mutex_destroy(&h->w[i].mu);
	free(h->w);
	free(h);
}

void dns_health_drain(struct dns_health *h, bool on)
{
	h->drain = on;
	loop_timer_cancel(h->l, &h->tick);
	loop_timer_arm_in(h->l, &h->tick, 0);
}

void dns_health_snapshot(const struct dns_health *h, struct health_snapshot *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < h->n_vips; i++) {
		if (h->vips[i].gone)
			continue;
		out->vip[out->n].addr = h->vips[i].addr;
		out->vip[out->n].state = h->vips[i].fsm.state;
		out->vip[out->n].reason = h->vips[i].fsm.reason;
		out->vip[out->n].since_ms = h->vips[i].fsm.since_ms;
		out->n++;
	}
}

int dns_health_admin_drain(struct dns_health *h, int vip, bool on)
{
	unsigned k = 0;
	bool found = vip < 0;

	for (unsigned i = 0; i < h->n_vips; i++) {
		if (h->vips[i].gone)
			continue;
		if (vip < 0 || (unsigned)vip == k) {
			h->vips[i].admin_drain = on;
			found = true;
		}
		k++;
	}
	if (!found)
		return -ENOENT;
	loop_timer_cancel(h->l, &h->tick);
	loop_timer_arm_in(h->l, &h->tick, 0);
	return 0;
}

int dns_health_admin_drain_addr(struct dns_health *h, const struct netaddr *addr, bool on)
{
	for (unsigned i = 0; i < h->n_vips; i++) {
		struct vip *v = &h->vips[i];
		if (v->gone || !netaddr_equal(&v->addr, addr))
			continue;
		if (v->admin_drain != on) {
			v->admin_drain = on;
			loop_timer_cancel(h->l, &h->tick);
			loop_timer_arm_in(h->l, &h->tick, 0);
		}
		return 0;
	}
	return -ENOENT;
}

void dns_health_reconf(struct dns_health *h, const struct conf *conf)
{
	uint64_t now = clock_now_ms();
	char b[NETADDR_STRLEN];

	h->interval_ms = conf->health.interval_ms ? conf->health.interval_ms : 200;
	health_fsm_conf_from(&conf->health, &h->fc, &h->oc);
	for (unsigned i = 0; i < h->n_vips; i++) {
		struct vip *v = &h->vips[i];
		bool keep = false;
		for (unsigned j = 0; j < conf->dns.n_listen && !keep; j++)
			keep = netaddr_equal(&v->addr, &conf->dns.listen[j]);
		if (keep || v->gone)
			continue;
		log_info("health", "VIP %s removed (reload)",
		         netaddr_format(&v->addr, true, b, sizeof(b)));
		v->gone = true;
		v->probe.phase = P_IDLE;
		probe_close(&v->probe);
	}
	for (unsigned j = 0; j < conf->dns.n_listen; j++) {
		bool have = false;
		for (unsigned i = 0; i < h->n_vips && !have; i++)
			have = !h->vips[i].gone &&
			       netaddr_equal(&h->vips[i].addr, &conf->dns.listen[j]);
		if (have)
			continue;
		/* A free slot: gone, its probe socket closed (nothing points into it). */
		unsigned i = 0;
		while (i < h->n_vips &&
		       !(h->vips[i].gone && h->vips[i].probe.fd < 0 && !h->vips[i].probe.closing))
			i++;
		if (i == h->n_vips) {
			if (h->n_vips == HEALTH_MAX_VIPS) {
				log_err("health",
				        "VIP %s not watched: no free slot (a removed VIP is "
				        "still closing); it stays DOWN until the next reload",
				        netaddr_format(&conf->dns.listen[j], true, b, sizeof(b)));
				continue;
			}
			h->n_vips++;
		}
		vip_init(h, &h->vips[i], &conf->dns.listen[j], now);
		log_info("health", "VIP %s added (reload): DOWN until %u good probes",
		         netaddr_format(&conf->dns.listen[j], true, b, sizeof(b)), h->fc.rise);
	}
	dns_health_snapshot(h, &h->snap);
	if (h->fn)
		h->fn(h->arg, &h->snap);
	loop_timer_cancel(h->l, &h->tick);
	loop_timer_arm_in(h->l, &h->tick, 0);
}

void dns_health_info(const struct dns_health *h, struct dns_health_info *out)
{
	memset(out, 0, sizeof(*out));
	out->interval_ms = h->interval_ms;
	out->n_workers = h->n_workers;
	out->load = h->last_load;
	out->overloaded = h->ov.on;
	out->stalled = h->stalled;
	out->upstreams_down = h->upstreams_down;
	out->stop_drain = h->drain;
	for (unsigned i = 0; i < h->n_vips; i++) {
		const struct vip *v = &h->vips[i];
		if (v->gone)
			continue;
		struct dns_health_vip_info *o = &out->vip[out->n_vips++];
		o->addr = v->addr;
		o->state = v->fsm.state;
		o->reason = v->fsm.reason;
		o->since_ms = v->fsm.since_ms;
		o->admin_drain = v->admin_drain;
		o->addr_present = v->wildcard || v->addr_present;
		o->good = v->fsm.good;
		o->bad = v->fsm.bad;
		o->hold_ms = v->fsm.hold_ms;
		o->last_probe = v->last_probe;
		o->last_probe_ms = v->last_probe_ms;
		o->last_rtt_us = v->last_rtt_us;
	}
}
