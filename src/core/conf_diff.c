/*
 * conf_diff.c: the difference between two configurations (conf_diff.h).
 */
#include "core/conf_diff.h"

#include <stdio.h>
#include <string.h>

static void add(struct conf_diff *d, enum conf_change_kind kind, unsigned index, const char *key)
{
	if (d->n >= CONF_DIFF_MAX)
		return; /* cannot happen: the caps of conf.h sum to less */
	d->c[d->n].kind = kind;
	d->c[d->n].index = index;
	snprintf(d->c[d->n].key, sizeof(d->c[d->n].key), "%s", key);
	if (kind == CONF_CHANGE_RESTART)
		d->restart++;
	d->n++;
}

static int find_addr(const struct netaddr *list, unsigned n, const struct netaddr *a)
{
	for (unsigned i = 0; i < n; i++)
		if (netaddr_equal(&list[i], a))
			return (int)i;
	return -1;
}

static bool prefix_equal(const struct netprefix *a, const struct netprefix *b)
{
	return a->family == b->family && a->len == b->len && memcmp(a->addr, b->addr, 16) == 0;
}

/* Two lists equal as sets (order does not matter to the allow check). */
static bool allow_equal(const struct conf_dns *a, const struct conf_dns *b)
{
	if (a->n_allow != b->n_allow)
		return false;
	for (unsigned i = 0; i < a->n_allow; i++) {
		bool found = false;
		for (unsigned j = 0; j < b->n_allow && !found; j++)
			found = prefix_equal(&a->allow[i], &b->allow[j]);
		if (!found)
			return false;
	}
	return true;
}

static void diff_dns(const struct conf_dns *o, const struct conf_dns *n, struct conf_diff *d)
{
	for (unsigned i = 0; i < o->n_listen; i++)
		if (find_addr(n->listen, n->n_listen, &o->listen[i]) < 0)
			add(d, CONF_CHANGE_LISTEN_DEL, i, "dns.listen");
	for (unsigned i = 0; i < n->n_listen; i++)
		if (find_addr(o->listen, o->n_listen, &n->listen[i]) < 0)
			add(d, CONF_CHANGE_LISTEN_ADD, i, "dns.listen");
	if (!allow_equal(o, n))
		add(d, CONF_CHANGE_ALLOW, 0, "dns.allow");
	/* Order matters for upstreams: the forwarder tries them in turn. */
	if (o->n_upstreams != n->n_upstreams ||
	    memcmp(o->upstreams, n->upstreams, o->n_upstreams * sizeof(o->upstreams[0])) != 0)
		add(d, CONF_CHANGE_UPSTREAMS, 0, "dns.upstreams");
	if (strcmp(o->identity, n->identity) != 0)
		add(d, CONF_CHANGE_IDENTITY, 0, "dns.identity");
	if (o->cache.size_bytes != n->cache.size_bytes ||
	    o->cache.min_ttl_s != n->cache.min_ttl_s || o->cache.max_ttl_s != n->cache.max_ttl_s ||
	    o->cache.negative_ttl_s != n->cache.negative_ttl_s ||
	    o->cache.serve_stale_s != n->cache.serve_stale_s)
		add(d, CONF_CHANGE_CACHE, 0, "dns.cache");
	if (o->client_memory_bytes != n->client_memory_bytes)
		add(d, CONF_CHANGE_MEMORY, 0, "dns.client-memory");
	/* The persist thread and its file are set up at start. */
	if (strcmp(o->cache.persist, n->cache.persist) != 0 ||
	    o->cache.persist_interval_ms != n->cache.persist_interval_ms)
		add(d, CONF_CHANGE_RESTART, 0, "dns.cache.persist");
	if (o->threads != n->threads)
		add(d, CONF_CHANGE_RESTART, 0, "dns.threads");
	/* Cookie secrets and the rate limiter's table are made once, at start. */
	if (o->has_cookie_secret != n->has_cookie_secret ||
	    memcmp(o->cookie_secret, n->cookie_secret, sizeof(o->cookie_secret)) != 0 ||
	    o->has_cookie_secret_old != n->has_cookie_secret_old ||
	    memcmp(o->cookie_secret_old, n->cookie_secret_old, sizeof(o->cookie_secret_old)) != 0)
		add(d, CONF_CHANGE_RESTART, 0, "dns.cookie-secret");
	if (o->require_cookie != n->require_cookie)
		add(d, CONF_CHANGE_RESTART, 0, "dns.require-cookie");
	if (memcmp(&o->rate_limit, &n->rate_limit, sizeof(o->rate_limit)) != 0)
		add(d, CONF_CHANGE_RESTART, 0, "dns.rate-limit");
	/* The stream server's caps and TLS context are made once, at start. */
	if (o->tcp_connections != n->tcp_connections)
		add(d, CONF_CHANGE_RESTART, 0, "dns.tcp-connections");
	if (o->tcp_per_source != n->tcp_per_source)
		add(d, CONF_CHANGE_RESTART, 0, "dns.tcp-per-source");
	if (o->tcp_prefix4 != n->tcp_prefix4 || o->tcp_prefix6 != n->tcp_prefix6)
		add(d, CONF_CHANGE_RESTART, 0, "dns.tcp-source-prefix");
	if (o->n_tls_listen != n->n_tls_listen ||
	    memcmp(o->tls_listen, n->tls_listen, o->n_tls_listen * sizeof(o->tls_listen[0])) != 0)
		add(d, CONF_CHANGE_RESTART, 0, "dns.tls-listen");
	if (strcmp(o->tls_certificate, n->tls_certificate) != 0 ||
	    strcmp(o->tls_key, n->tls_key) != 0)
		add(d, CONF_CHANGE_RESTART, 0, "dns.tls-certificate");
}

static bool route_attrs_equal(const struct conf_route *a, const struct conf_route *b)
{
	return a->local_pref == b->local_pref && a->has_med == b->has_med &&
	       (!a->has_med || a->med == b->med) && a->n_communities == b->n_communities &&
	       memcmp(a->communities, b->communities,
	              a->n_communities * sizeof(a->communities[0])) == 0 &&
	       a->n_large_communities == b->n_large_communities &&
	       memcmp(a->large_communities, b->large_communities,
	              a->n_large_communities * sizeof(a->large_communities[0])) == 0;
}

static int find_route(const struct conf_bgp *b, const struct netprefix *p)
{
	for (unsigned i = 0; i < b->n_routes; i++)
		if (prefix_equal(&b->routes[i].prefix, p))
			return (int)i;
	return -1;
}

static int find_neighbor(const struct conf_bgp *b, const struct netaddr *a)
{
	for (unsigned i = 0; i < b->n_neighbors; i++)
		if (netaddr_equal_ip(&b->neighbors[i].address, a))
			return (int)i;
	return -1;
}

/* Every setting a session was opened with (loaders zero the struct: memcmp is exact). */
static bool neighbor_equal(const struct conf_neighbor *a, const struct conf_neighbor *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

static void diff_bgp(const struct conf_bgp *o, const struct conf_bgp *n, struct conf_diff *d)
{
	if (o->enabled != n->enabled) {
		/* Starting or stopping the speaker is a new process's job. */
		add(d, CONF_CHANGE_RESTART, 0, "bgp");
		return;
	}
	if (!n->enabled)
		return;
	if (o->asn != n->asn)
		add(d, CONF_CHANGE_RESTART, 0, "bgp.asn");
	if (!netaddr_equal_ip(&o->router_id, &n->router_id))
		add(d, CONF_CHANGE_RESTART, 0, "bgp.router-id");
	for (unsigned i = 0; i < o->n_neighbors; i++) {
		int j = find_neighbor(n, &o->neighbors[i].address);
		if (j < 0 || !neighbor_equal(&o->neighbors[i], &n->neighbors[j]))
			add(d, CONF_CHANGE_NEIGHBOR_DEL, i, "bgp.neighbors");
	}
	for (unsigned i = 0; i < n->n_neighbors; i++) {
		int j = find_neighbor(o, &n->neighbors[i].address);
		if (j < 0 || !neighbor_equal(&o->neighbors[j], &n->neighbors[i]))
			add(d, CONF_CHANGE_NEIGHBOR_ADD, i, "bgp.neighbors");
	}
	for (unsigned i = 0; i < o->n_routes; i++)
		if (find_route(n, &o->routes[i].prefix) < 0)
			add(d, CONF_CHANGE_ROUTE_DEL, i, "bgp.announce");
	for (unsigned i = 0; i < n->n_routes; i++) {
		int j = find_route(o, &n->routes[i].prefix);
		if (j < 0)
			add(d, CONF_CHANGE_ROUTE_ADD, i, "bgp.announce");
		else if (!route_attrs_equal(&o->routes[j], &n->routes[i]))
			add(d, CONF_CHANGE_ROUTE_ATTR, i, "bgp.announce");
	}
	if (memcmp(&o->degraded, &n->degraded, sizeof(o->degraded)) != 0)
		add(d, CONF_CHANGE_DEGRADED, 0, "bgp.degraded");
}

void conf_diff(const struct conf *old, const struct conf *new, struct conf_diff *out)
{
	memset(out, 0, sizeof(*out));
	diff_dns(&old->dns, &new->dns, out);
	diff_bgp(&old->bgp, &new->bgp, out);
	if (memcmp(&old->bfd, &new->bfd, sizeof(old->bfd)) != 0)
		add(out, CONF_CHANGE_BFD, 0, "bfd");
	if (memcmp(&old->health, &new->health, sizeof(old->health)) != 0)
		add(out, CONF_CHANGE_HEALTH, 0, "health");
	if (strcmp(old->user, new->user) != 0)
		add(out, CONF_CHANGE_RESTART, 0, "user");
	if (memcmp(&old->dnstap, &new->dnstap, sizeof(old->dnstap)) != 0)
		add(out, CONF_CHANGE_RESTART, 0, "dnstap");
	if (strcmp(old->control.socket, new->control.socket) != 0)
		add(out, CONF_CHANGE_RESTART, 0, "control.socket");
	if (strcmp(old->control.group, new->control.group) != 0)
		add(out, CONF_CHANGE_RESTART, 0, "control.group");
	if (strcmp(old->control.state, new->control.state) != 0)
		add(out, CONF_CHANGE_RESTART, 0, "control.state");
	if (old->control.has_metrics != new->control.has_metrics ||
	    (new->control.has_metrics &&
	     !netaddr_equal(&old->control.metrics, &new->control.metrics)))
		add(out, CONF_CHANGE_RESTART, 0, "control.metrics");
}

const char *conf_change_format(const struct conf_change *c, const struct conf *old,
                               const struct conf *new, char *buf, size_t size)
{
	char a[NETADDR_STRLEN] = "";

	switch (c->kind) {
	case CONF_CHANGE_LISTEN_ADD:
		snprintf(buf, size, "dns.listen %s: added",
		         netaddr_format(&new->dns.listen[c->index], true, a, sizeof(a)));
		break;
	case CONF_CHANGE_LISTEN_DEL:
		snprintf(buf, size, "dns.listen %s: removed",
		         netaddr_format(&old->dns.listen[c->index], true, a, sizeof(a)));
		break;
	case CONF_CHANGE_ROUTE_ADD:
		snprintf(buf, size, "bgp.announce %s: added",
		         netprefix_format(&new->bgp.routes[c->index].prefix, a, sizeof(a)));
		break;
	case CONF_CHANGE_ROUTE_DEL:
		snprintf(buf, size, "bgp.announce %s: removed",
		         netprefix_format(&old->bgp.routes[c->index].prefix, a, sizeof(a)));
		break;
	case CONF_CHANGE_ROUTE_ATTR:
		snprintf(buf, size, "bgp.announce %s: attributes changed",
		         netprefix_format(&new->bgp.routes[c->index].prefix, a, sizeof(a)));
		break;
	case CONF_CHANGE_NEIGHBOR_ADD:
		snprintf(
		    buf, size, "bgp.neighbors %s: added",
		    netaddr_format(&new->bgp.neighbors[c->index].address, false, a, sizeof(a)));
		break;
	case CONF_CHANGE_NEIGHBOR_DEL:
		snprintf(
		    buf, size, "bgp.neighbors %s: removed",
		    netaddr_format(&old->bgp.neighbors[c->index].address, false, a, sizeof(a)));
		break;
	case CONF_CHANGE_RESTART:
		snprintf(buf, size, "%s: changed, needs a restart", c->key);
		break;
	default:
		snprintf(buf, size, "%s: changed", c->key);
		break;
	}
	return buf;
}
