/*
 * ops_metrics.c: the Prometheus page and /health (see ops.h); names and
 * units follow Prometheus conventions (anycache_ prefix, _total, _seconds,
 * _bytes) and every scrape passes promtool check metrics (tested). The
 * list is in README.md ("Metrics and /health").
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anycache_version.h"
#include "bgp/bfd_session.h"
#include "bgp/bgp_session.h"
#include "bgp/bgp_speaker.h"
#include "core/health.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/prom.h"
#include "ops_int.h"

static const char *rcode_name(unsigned r)
{
	static const char *const n[16] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
	                                  "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
	                                  "NXRRSET", "NOTAUTH", "NOTZONE"};
	return r < 16 && n[r] ? n[r] : NULL;
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

/* DNS cookies (RFC 7873) and response rate limiting (dns_rrl.h). */
static void put_security(struct prom *p, const struct node *n)
{
	static const char *const verdict[] = {"none", "malformed", "client_only", "bad", "valid"};

	prom_family(p, "anycache_cookies_total", "counter",
	            "Queries with a COOKIE option, by what it said (RFC 7873 5.2).");
	for (unsigned v = 1; v < 5; v++) {
		struct prom_label l = L("verdict", verdict[v]);
		prom_sample_u64(p, "anycache_cookies_total", &l, 1, n->st.cookies[v]);
	}
	metric_u64(p, "anycache_cookie_errors_total", "counter",
	           "Answers sent without a server cookie because computing it failed (OpenSSL).",
	           n->st.cookie_errors);
	metric_u64(p, "anycache_cookie_unsent_total", "counter",
	           "Answers to a query with a COOKIE option that had no room or no OPT to carry ours.",
	           n->st.cookie_unsent);
	metric_u64(p, "anycache_cookie_required_total", "counter",
	           "UDP queries with a client cookie but no valid server cookie answered BADCOOKIE "
	           "(dns.require-cookie).",
	           n->st.cookie_required);
	metric_u64(p, "anycache_rrl_dropped_total", "counter",
	           "UDP answers not sent: over dns.rate-limit for the client's prefix.",
	           n->st.rrl_dropped);
	metric_u64(p, "anycache_rrl_slipped_total", "counter",
	           "UDP answers over dns.rate-limit sent empty with TC=1 (BADCOOKIE when the "
	           "query had a client cookie).",
	           n->st.rrl_slipped);
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
	metric_u64(p, "anycache_client_memory_bytes", "gauge",
	           "Memory clients make the node hold now: queries waiting for an upstream, "
	           "TCP/TLS buffers.",
	           n->client_mem);
	metric_u64(p, "anycache_client_memory_limit_bytes", "gauge",
	           "Its limit, dns.client-memory.", n->client_mem_limit);
	metric_u64(p, "anycache_memory_budget_refused_total", "counter",
	           "Queries answered SERVFAIL and TCP connections closed because the "
	           "process's budget for client-held memory was spent.",
	           n->st.mem_refused + n->st.tcp.mem_refused);
	metric_u64(p, "anycache_queries_meta_total", "counter",
	           "Zone transfers and MAILA/MAILB answered here, never forwarded.",
	           n->st.refused_meta);
	metric_u64(p, "anycache_responses_truncated_total", "counter",
	           "UDP answers cut to the client's size with TC=1.", n->st.truncated);
	put_security(p, n);
	metric_u64(p, "anycache_send_failures_total", "counter", "Answers the loop could not send.",
	           n->st.tx_fail);
	metric_u64(p, "anycache_tcp_connections", "gauge", "TCP and TLS client connections open.",
	           n->st.tcp.conns);
	prom_family(p, "anycache_tcp_refused_total", "counter",
	            "Connections closed at accept, by reason (dns.allow, per-source cap, cap).");
	l = L("reason", "acl");
	prom_sample_u64(p, "anycache_tcp_refused_total", &l, 1, n->st.tcp.refused_acl);
	l = L("reason", "source");
	prom_sample_u64(p, "anycache_tcp_refused_total", &l, 1, n->st.tcp.refused_source);
	l = L("reason", "cap");
	prom_sample_u64(p, "anycache_tcp_refused_total", &l, 1, n->st.tcp.refused);
	metric_u64(p, "anycache_tcp_evicted_total", "counter",
	           "Idle connections closed to make room at the connection cap.",
	           n->st.tcp.evicted);
	metric_u64(p, "anycache_tcp_stalled_total", "counter",
	           "Connections closed because an answer send did not complete in time.",
	           n->st.tcp.stalled);
	metric_u64(p, "anycache_tls_handshakes_total", "counter",
	           "DNS-over-TLS handshakes completed.", n->st.tcp.tls_handshakes);
	metric_u64(p, "anycache_tls_resumed_total", "counter",
	           "DNS-over-TLS handshakes that resumed a session.", n->st.tcp.tls_resumed);
	metric_u64(p, "anycache_tls_handshake_failures_total", "counter",
	           "DNS-over-TLS handshakes that failed or timed out.",
	           n->st.tcp.tls_failed + n->st.tcp.tls_hs_timeouts);
	metric_u64(p, "anycache_tls_close_notify_total", "counter",
	           "DNS-over-TLS connections closed in order, with our close_notify.",
	           n->st.tcp.tls_close_notify);
	for (unsigned i = 0; i < DNS_SERVER_LATENCY_N; i++)
		bounds[i] = bound_us[i] / 1e6;
	prom_family(p, "anycache_answer_latency_seconds", "histogram",
	            "Time from the loop turn that received a query to the turn that "
	            "handed its answer to the kernel.");
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
	metric_u64(p, "anycache_log_dropped_total", "counter",
	           "Log records dropped because the log queue was full (stderr too slow).",
	           log_dropped());
	metric_u64(p, "anycache_dnstap_dropped_total", "counter",
	           "dnstap messages dropped because a worker's queue was full (dnstap off: 0).",
	           n->st.dnstap_dropped);
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
	PER_UPSTREAM("anycache_upstream_dns0x20", "gauge",
	             "1 while queries to the upstream use DNS 0x20 random case, 0 while it is "
	             "asked without (it does not echo case; re-tested later).",
	             !u->no_0x20);
	PER_UPSTREAM("anycache_upstream_case_ignored_total", "counter",
	             "Answers taken although the question came back in another letter case "
	             "(an upstream that does not echo DNS 0x20).",
	             u->c.case_ignored);
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
	bool any_bfd = false;
	for (unsigned i = 0; i < nn; i++)
		any_bfd = any_bfd || bgp_speaker_bfd(o->c.bgp, i);
	if (!any_bfd)
		return;
	prom_family(
	    p, "anycache_bfd_session_up", "gauge",
	    "1 while the neighbor's BFD session is Up (RFC 5880); neighbors with bfd: true.");
	for (unsigned i = 0; i < nn; i++) {
		const struct bfd_session *b = bgp_speaker_bfd(o->c.bgp, i);
		if (!b)
			continue;
		l[0] = L("neighbor", names[i]);
		prom_sample_u64(p, "anycache_bfd_session_up", l, 1,
		                bfd_session_state(b) == BFD_STATE_UP);
	}
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
	int r = ops_collect(o, answer_metrics, c);

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

void ops_register_routes(struct ops *o)
{
	http_server_route(o->http, "/metrics", route_metrics, o);
	http_server_route(o->http, "/health", route_health, o);
}
