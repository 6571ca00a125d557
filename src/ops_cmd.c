/*
 * ops_cmd.c: the control socket's commands (see ops.h). Every answer is a
 * JSON data object built from plain figures; the shapes are documented in
 * README.md ("Operations") and read back by anycachectl.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "anycache_version.h"
#include "bgp/bfd_session.h"
#include "bgp/bgp_session.h"
#include "bgp/bgp_speaker.h"
#include "core/ctl_server.h"
#include "core/health.h"
#include "core/log.h"
#include "core/loop.h"
#include "ops_int.h"

/* ---------------------------------------------------------------- helpers */

static json_t *addr_json(const struct netaddr *a, bool port)
{
	char b[NETADDR_STRLEN];
	return json_string(netaddr_format(a, port, b, sizeof(b)));
}

static double age_s(const struct ops *o, uint64_t since_ms)
{
	return ops_age_s(o, since_ms);
}

/* A monotonic instant as wall-clock seconds (for "since when"). */
static json_t *unix_of(const struct ops *o, uint64_t since_ms)
{
	if (!since_ms)
		return json_null();
	return json_integer((json_int_t)time(NULL) - (json_int_t)age_s(o, since_ms));
}

static json_t *reasons_json(uint32_t bits)
{
	json_t *a = json_array();
	for (unsigned i = 0; a && i < 32; i++) {
		const char *n = (bits & (1u << i)) ? health_reason_name(1u << i) : NULL;
		if (n)
			json_array_append_new(a, json_string(n));
	}
	return a;
}

static const char *upstream_state_name(enum dns_upstream_state s)
{
	return s == DNS_UPSTREAM_DEAD ? "dead" : s == DNS_UPSTREAM_SUSPECT ? "suspect" : "healthy";
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
	          json_pack("{s:o, s:b, s:I, s:f, s:i}", "file",
	                    o->conf_path[0] ? json_string(o->conf_path) : json_null(), "embedded",
	                    !o->conf_path[0], "loaded_unix", (json_int_t)o->c.conf_loaded_unix,
	                    "loaded_age_s", difftime(time(NULL), (time_t)o->c.conf_loaded_unix),
	                    "reloads", (int)o->reloads));
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

/* Every neighbor with `bfd: true`: its BFD session as the FSM sees it (RFC 5880 §6.8.1). */
static void cmd_show_bfd(void *arg, struct ctl_call *c)
{
	struct ops *o = arg;
	json_t *arr = json_array();
	bool ok = arr != NULL;

	for (unsigned i = 0; ok && i < o->conf->bgp.n_neighbors; i++) {
		if (!o->conf->bgp.neighbors[i].bfd)
			continue;
		const struct bfd_session *b = bgp_speaker_bfd(o->c.bgp, i);
		json_t *e;
		if (!b) {
			e = json_pack("{s:o, s:s}", "neighbor",
			              addr_json(&o->conf->bgp.neighbors[i].address, false), "state",
			              "not running");
		} else {
			const struct bfd_fsm *f = bfd_session_fsm(b);
			e = json_pack("{s:o, s:s, s:s, s:s, s:I, s:i, s:f, s:f, s:b}", "neighbor",
			              addr_json(&o->conf->bgp.neighbors[i].address, false), "state",
			              bfd_state_name(f->state), "remote_state",
			              bfd_state_name(f->remote_state), "local_diag",
			              bfd_diag_name(f->local_diag), "remote_discriminator",
			              (json_int_t)f->remote_disc, "detect_mult", f->detect_mult,
			              "tx_interval_ms", f->tx_used_us / 1000.0, "rx_interval_ms",
			              f->rx_used_us / 1000.0, "ever_up", f->ever_up);
		}
		ok = e && json_array_append_new(arr, e) == 0;
	}
	if (!ok || !set(c, "available", json_true()) || !set(c, "sessions", arr)) {
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
		    "{s:o, s:s, s:b, s:o, s:o, s:i, s:i, s:f, s:I, s:I, s:I, s:I, s:I, s:I, "
		    "s:I, s:I, s:s, s:I, s:b}",
		    "address", addr_json(&o->conf->dns.upstreams[i], true), "state",
		    upstream_state_name(u->state), "measured", u->measured, "srtt_ms",
		    u->measured ? json_integer(u->srtt_ms) : json_null(), "rttvar_ms",
		    u->measured ? json_integer(u->rttvar_ms) : json_null(), "rto_ms", u->rto_ms,
		    "consecutive_failures", u->consecutive_fail, "failure_rate",
		    u->fail_rate_pm / 1000.0, "queries", (json_int_t)u->c.sent, "answers",
		    (json_int_t)u->c.answers, "timeouts", (json_int_t)u->c.timeouts, "failures",
		    (json_int_t)u->c.failures, "servfail", (json_int_t)u->c.servfail, "refused",
		    (json_int_t)u->c.refused, "mismatches", (json_int_t)u->c.mismatches, "probes",
		    (json_int_t)u->c.probes,
		    /* Issue 10, item 6: off while it does not echo case (re-tested later). */
		    "dns0x20", u->no_0x20 ? "off" : "on", "case_ignored",
		    (json_int_t)u->c.case_ignored, "confirming", u->confirming);
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

static void start_round_call(struct ops *o, struct ctl_call *c, waiter_fn fn)
{
	int r = ops_collect(o, fn, c);

	if (r == -EBUSY)
		ctl_call_fail(c, CTL_E_BUSY, "too many requests in progress: try again");
	else if (r == -ESHUTDOWN)
		ctl_call_fail(c, CTL_E_UNAVAILABLE, "the daemon is stopping");
	else if (r)
		ctl_call_fail(c, CTL_E_INTERNAL, "%s", strerror(-r));
}

static void cmd_show_upstreams(void *arg, struct ctl_call *c)
{
	start_round_call(arg, c, answer_upstreams);
}

static void cmd_show_cache(void *arg, struct ctl_call *c)
{
	start_round_call(arg, c, answer_cache);
}

/*
 * The node's one cache is thread-safe (shard locks, RCU retirement): the
 * control thread flushes it itself, once, and answers at once.
 */
static void cmd_cache_flush(void *arg, struct ctl_call *c)
{
	struct ops *o = arg;
	uint8_t name[DNS_NAME_MAX];
	size_t flushed;

	if (!o->c.cache) {
		ctl_call_fail(c, CTL_E_UNAVAILABLE, "no cache");
		return;
	}
	if (ctl_call_nargs(c)) {
		int n = dns_name_from_text(ctl_call_arg(c, 0), name, sizeof(name));
		if (n < 0) {
			ctl_call_fail(
			    c, CTL_E_BAD_ARGUMENT,
			    "'%s' is not a domain name (labels of 1-63 printable characters "
			    "separated by dots, no escapes)",
			    ctl_call_arg(c, 0));
			return;
		}
		flushed = dns_cache_flush_name(o->c.cache, name, (size_t)n);
	} else {
		flushed = dns_cache_flush(o->c.cache);
	}
	if (!set(c, "flushed", json_integer((json_int_t)flushed)) ||
	    !set(c, "name", ctl_call_nargs(c) ? json_string(ctl_call_arg(c, 0)) : json_null())) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	ctl_call_done(c);
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
	ops_apply_drains(o);
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

/*
 * Re-reads the configuration file (the composition root's hook does the
 * work, synchronously on this thread). Refused: the error carries every
 * FILE:LINE:COLUMN message (as many as fit CTL_PROTO_MAX_MESSAGE). Applied:
 * "applied" and "restart" list the changes, "restart" those that wait for a
 * restart.
 */
static void cmd_reload(void *arg, struct ctl_call *c)
{
	struct ops *o = arg;
	struct ops_reload_result *res;
	char msg[CTL_PROTO_MAX_MESSAGE];
	size_t off = 0;
	int r;

	if (!o->c.reload) {
		ctl_call_fail(c, CTL_E_NOT_IMPLEMENTED, "reload is not available");
		return;
	}
	if (o->stopping) {
		ctl_call_fail(c, CTL_E_UNAVAILABLE, "anycached is stopping");
		return;
	}
	res = calloc(1, sizeof(*res));
	if (!res) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	r = o->c.reload(o->c.reload_arg, res);
	if (r) {
		msg[0] = '\0';
		for (unsigned i = 0; i < res->n && off < sizeof(msg); i++)
			off +=
			    (size_t)snprintf(msg + off, sizeof(msg) - off, "\n  %s", res->text[i]);
		if (res->more && off < sizeof(msg))
			snprintf(msg + off, sizeof(msg) - off, "\n  (%u more)", res->more);
		ctl_call_fail(c, CTL_E_BAD_CONFIG,
		              "configuration refused, the running one stays:%s", msg);
		free(res);
		return;
	}
	json_t *applied = json_array(), *restart = json_array();
	for (unsigned i = 0; applied && restart && i < res->n; i++)
		json_array_append_new(res->kind[i] == OPS_RELOAD_RESTART ? restart : applied,
		                      json_string(res->text[i]));
	free(res);
	if (!set(c, "applied", applied) || !set(c, "restart", restart) ||
	    !set(c, "loaded_unix", json_integer(o->c.conf_loaded_unix))) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	ctl_call_done(c);
}

/* In-place restart (restart.h): main.c's handler answers once the successor
 * serves, or with why it could not. */
static void cmd_restart(void *arg, struct ctl_call *c)
{
	struct ops *o = arg;

	if (!o->c.restart) {
		ctl_call_fail(c, CTL_E_UNAVAILABLE, "restart is not available in this process");
		return;
	}
	if (o->stopping) {
		ctl_call_fail(c, CTL_E_UNAVAILABLE, "stopping");
		return;
	}
	o->c.restart(o->c.restart_arg, c);
}

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
    {"restart", "restart", 0, 0, cmd_restart},
};

void ops_register_commands(struct ops *o)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		ctl_server_register(o->ctl, commands[i].cmd, commands[i].min, commands[i].max,
		                    commands[i].usage, commands[i].fn, o);
}
