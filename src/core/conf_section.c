/*
 * conf_section.c: defaults and the section loaders. Each converts the raw
 * text of its keys (conf_value.c), validates it (ranges, cross-checks
 * between keys, RFC limits), records every error with its path and goes on,
 * so one run reports every mistake. Pure: what the defaults take from the
 * machine comes in as struct conf_env.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/conf_int.h"

static bool get_uint(struct ld *ld, const char *path, const char *s, uint64_t min, uint64_t max,
                     uint64_t *out)
{
	if (!s)
		return false;
	if (conf_parse_uint_range(s, min, max, out) == 0)
		return true;
	conf_err_at(ld, path, false, "%s: expected an integer from %llu to %llu, not '%s'", path,
	            (unsigned long long)min, (unsigned long long)max, s);
	return false;
}

static bool get_u32(struct ld *ld, const char *path, const char *s, uint32_t min, uint32_t max,
                    uint32_t *out)
{
	uint64_t v;

	if (!get_uint(ld, path, s, min, max, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool get_unsigned(struct ld *ld, const char *path, const char *s, unsigned min, unsigned max,
                         unsigned *out)
{
	uint64_t v;

	if (!get_uint(ld, path, s, min, max, &v))
		return false;
	*out = (unsigned)v;
	return true;
}

static bool get_duration_ms(struct ld *ld, const char *path, const char *s, uint64_t *out)
{
	int rc;

	if (!s)
		return false;
	rc = conf_parse_duration_ms(s, out);
	if (rc == -ERANGE)
		conf_err_at(ld, path, false, "%s: duration '%s' is out of range", path, s);
	else if (rc)
		conf_err_at(
		    ld, path, false,
		    "%s: invalid duration '%s' (an integer, optionally with ms, s, m, h or d)",
		    path, s);
	return rc == 0;
}

/* Whole seconds up to max. */
static bool get_seconds(struct ld *ld, const char *path, const char *s, uint64_t max, uint32_t *out)
{
	uint64_t ms;

	if (!get_duration_ms(ld, path, s, &ms))
		return false;
	if (ms % 1000) {
		conf_err_at(ld, path, false, "%s: '%s' is not a whole number of seconds", path, s);
		return false;
	}
	if (ms / 1000 > max) {
		conf_err_at(ld, path, false, "%s: '%s' exceeds %llu seconds", path, s,
		            (unsigned long long)max);
		return false;
	}
	*out = (uint32_t)(ms / 1000);
	return true;
}

/* A size (bytes, KiB, MiB, GiB) of at least min; below it, `why_min` says why. */
static bool get_size(struct ld *ld, const char *path, const char *s, uint64_t min,
                     const char *why_min, uint64_t *out)
{
	uint64_t v;

	if (!s)
		return false;
	if (conf_parse_size(s, &v) != 0) {
		conf_err_at(ld, path, false, "%s: invalid size '%s' (bytes, KiB, MiB or GiB)", path,
		            s);
		return false;
	}
	if (v < min) {
		conf_err_at(ld, path, false, "%s: %s is too small (%s)", path, s, why_min);
		return false;
	}
	*out = v;
	return true;
}

static bool get_bool(struct ld *ld, const char *path, const char *s, bool *out)
{
	static const char *const yes[] = {"true", "True", "TRUE", "yes", "on", NULL};
	static const char *const no[] = {"false", "False", "FALSE", "no", "off", NULL};

	if (!s)
		return false;
	for (unsigned i = 0; yes[i]; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	conf_err_at(ld, path, false, "%s: expected true or false, not '%s'", path, s);
	return false;
}

static bool get_ip(struct ld *ld, const char *path, const char *s, struct netaddr *out)
{
	if (!s)
		return false;
	if (netaddr_parse_ip(s, out) == 0)
		return true;
	conf_err_at(ld, path, false, "%s: invalid IP address '%s'", path, s);
	return false;
}

static bool get_string(struct ld *ld, const char *path, const char *s, size_t max, char *out,
                       const char *why)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n > max) {
		conf_err_at(ld, path, false, "%s: longer than %zu bytes (%s)", path, max, why);
		return false;
	}
	memcpy(out, s, n + 1);
	return true;
}

static bool check_count(struct ld *ld, const char *path, unsigned n, unsigned max)
{
	if (n <= max)
		return true;
	conf_err_at(ld, path, false, "%s: too many entries (%u, at most %u)", path, n, max);
	return false;
}

static bool check_asn(struct ld *ld, const char *path, const char *s, uint32_t *out)
{
	uint32_t v;

	if (!get_u32(ld, path, s, 1, UINT32_MAX, &v))
		return false;
	if (v == 23456) {
		/* RFC 6793 §9: AS_TRANS is a placeholder, never a real AS. */
		conf_err_at(ld, path, false, "%s: 23456 is AS_TRANS (RFC 6793) and cannot be used",
		            path);
		return false;
	}
	*out = v;
	return true;
}

static unsigned get_communities(struct ld *ld, const char *base, char **list, unsigned n,
                                uint32_t *out)
{
	char path[CONF_PATH_LEN];
	unsigned k = 0;

	PATH(path, "%s", base);
	if (!check_count(ld, path, n, CONF_MAX_COMMUNITIES))
		n = CONF_MAX_COMMUNITIES;
	for (unsigned i = 0; i < n; i++) {
		uint32_t p[2];
		PATH(path, "%s[%u]", base, i);
		if (conf_parse_parts(list[i], 2, 65535, p)) {
			conf_err_at(ld, path, false,
			            "%s: invalid community '%s' (expected A:B, each 0..65535)",
			            path, list[i]);
			continue;
		}
		out[k++] = p[0] << 16 | p[1];
	}
	return k;
}

/* ---- defaults -------------------------------------------------------------- */

void conf_section_defaults(struct conf *c, const struct conf_env *env)
{
	long ncpu = env->ncpu;

	memset(c, 0, sizeof(*c));
	c->dns.threads = ncpu < 1 ? 1 : ncpu > CONF_MAX_THREADS ? CONF_MAX_THREADS : (unsigned)ncpu;
	snprintf(c->dns.identity, sizeof(c->dns.identity), "%s", env->hostname);
	c->dns.cache.size_bytes = 64ull << 20;
	c->dns.client_memory_bytes = CONF_CLIENT_MEMORY_DEFAULT;
	c->dns.cache.min_ttl_s = 0;
	c->dns.cache.max_ttl_s = 86400;
	c->dns.cache.negative_ttl_s = 3600; /* RFC 2308 §5; the same as DNS_CACHE_CONF_DEFAULT */
	c->dns.cache.serve_stale_s = 86400;
	c->dns.tcp_connections = CONF_TCP_CONNECTIONS_DEFAULT;
	c->dns.tcp_per_source = 64;
	c->dns.tcp_prefix4 = 32;
	c->dns.tcp_prefix6 = 64;
	c->dnstap.messages = CONF_DNSTAP_ALL;
	c->bfd.interval_ms = 300;
	c->bfd.multiplier = 3;
	c->health.interval_ms = 200;
	c->health.rise = 3;
	c->health.fall = 2;
	c->health.drain_ms = 5000;
	c->health.hold_down_ms = 10000;
	c->health.overload.busy_pm = 900;
	c->health.overload.drops_per_s = 100;
	c->health.overload.inflight_pm = 800;
	c->health.overload.latency_ms = 500;
	snprintf(c->control.socket, sizeof(c->control.socket), "%s", CONF_DEFAULT_SOCKET);
	snprintf(c->control.state, sizeof(c->control.state), "%s", CONF_DEFAULT_STATE);
}

static void default_listen(struct conf *c)
{
	netaddr_parse("127.0.0.1", 53, &c->dns.listen[0]);
	netaddr_parse("::1", 53, &c->dns.listen[1]);
	c->dns.n_listen = 2;
}

static void default_allow(struct conf *c)
{
	netprefix_parse("127.0.0.0/8", &c->dns.allow[0]);
	netprefix_parse("::1/128", &c->dns.allow[1]);
	c->dns.n_allow = 2;
}

static bool is_own_listen(const struct conf *c, const struct netaddr *a)
{
	static const uint8_t zero[16];

	for (unsigned i = 0; i < c->dns.n_listen; i++) {
		const struct netaddr *l = &c->dns.listen[i];
		if (netaddr_equal(l, a))
			return true;
		/* A wildcard listener answers on every local address, loopback included. */
		if (l->family == a->family && l->port == a->port &&
		    memcmp(l->addr, zero, sizeof(zero)) == 0 && netaddr_is_loopback(a))
			return true;
	}
	return false;
}

static void default_upstreams(struct conf *c, const struct conf_env *env)
{
	c->dns.n_upstreams = 0;
	for (unsigned i = 0; i < env->n_nameservers && c->dns.n_upstreams < CONF_RESOLV_MAXNS; i++)
		if (!is_own_listen(c, &env->nameservers[i]))
			c->dns.upstreams[c->dns.n_upstreams++] = env->nameservers[i];
}

void conf_section_default_lists(struct conf *c, const struct conf_env *env)
{
	default_listen(c);
	default_allow(c);
	default_upstreams(c, env);
}

static const char *resolv_name(const struct ld *ld, const char *none)
{
	return ld->env->resolv_conf[0] ? ld->env->resolv_conf : none;
}

/* ---- sections ---------------------------------------------------------------- */

/* A DNS cookie secret (RFC 9018 §4.4): exactly 32 hex digits. */
static bool get_cookie_secret(struct ld *ld, const char *path, const char *s, uint8_t *out)
{
	size_t n = s ? strlen(s) : 0;

	if (!s)
		return false;
	for (size_t i = 0; n == 2 * CONF_COOKIE_SECRET_LEN && i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			n = 0;
	if (n != 2 * CONF_COOKIE_SECRET_LEN) {
		conf_err_at(ld, path, false, "%s: expected %u hex digits (%u bytes)", path,
		            2 * CONF_COOKIE_SECRET_LEN, CONF_COOKIE_SECRET_LEN);
		return false;
	}
	for (size_t i = 0; i < CONF_COOKIE_SECRET_LEN; i++) {
		unsigned v;
		sscanf(s + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
	return true;
}

/* dns.cookie-secret(-old) and dns.rate-limit (defaults in conf.h). */
static void load_dns_security(struct ld *ld, const struct raw_dns *r, struct conf_dns *d)
{
	const struct raw_rate_limit *rl = r->rate_limit;
	struct conf_rate_limit *c = &d->rate_limit;

	d->has_cookie_secret =
	    get_cookie_secret(ld, "dns.cookie-secret", r->cookie_secret, d->cookie_secret);
	d->has_cookie_secret_old = get_cookie_secret(ld, "dns.cookie-secret-old",
	                                             r->cookie_secret_old, d->cookie_secret_old);
	if (r->cookie_secret_old && !r->cookie_secret)
		conf_err_at(ld, "dns.cookie-secret-old", false,
		            "dns.cookie-secret-old: needs dns.cookie-secret (the one answers use)");
	if (r->require_cookie)
		get_bool(ld, "dns.require-cookie", r->require_cookie, &d->require_cookie);
	if (!rl)
		return;
	*c = (struct conf_rate_limit){.enabled = true,
	                              .window_s = 1,
	                              .slip = 2,
	                              .v4_prefix = 24,
	                              .v6_prefix = 56,
	                              .entries = 65536};
	if (!rl->rate)
		conf_err_at(ld, "dns.rate-limit", false,
		            "dns.rate-limit: responses-per-second is required");
	get_u32(ld, "dns.rate-limit.responses-per-second", rl->rate, 1, 1000000, &c->rate);
	get_seconds(ld, "dns.rate-limit.window", rl->window, 3600, &c->window_s);
	if (rl->window && c->window_s == 0)
		conf_err_at(ld, "dns.rate-limit.window", false,
		            "dns.rate-limit.window: must be at least 1s");
	get_u32(ld, "dns.rate-limit.slip", rl->slip, 0, 10, &c->slip);
	get_unsigned(ld, "dns.rate-limit.ipv4-prefix", rl->v4_prefix, 1, 32, &c->v4_prefix);
	get_unsigned(ld, "dns.rate-limit.ipv6-prefix", rl->v6_prefix, 1, 64, &c->v6_prefix);
	get_u32(ld, "dns.rate-limit.table-size", rl->entries, 1, 1u << 24, &c->entries);
}
/* dns.tcp-* and dns.tls-* (after load_dns, one hunk). */
static void load_dns_stream(struct ld *ld, const struct raw_dns *r, struct conf_dns *d);
/* dns.cache.persist: an absolute path (the daemon may chdir), and how often. */
static void load_persist(struct ld *ld, const struct raw_cache *rc, struct conf_cache *cc)
{
	const char *s = rc->persist;

	if (s && *s != '/')
		conf_err_at(ld, "dns.cache.persist", false,
		            "dns.cache.persist: '%s' is not an absolute path", s);
	else
		get_string(ld, "dns.cache.persist", s, CONF_STATE_MAX, cc->persist, "a file path");
	get_duration_ms(ld, "dns.cache.persist-interval", rc->persist_interval,
	                &cc->persist_interval_ms);
	if (rc->persist_interval && !s)
		conf_err_at(ld, "dns.cache.persist-interval", false,
		            "dns.cache.persist-interval: needs dns.cache.persist");
}

/* dnstap: a file or a socket (not both), and which of the four message kinds. */
static void load_dnstap(struct ld *ld, const struct raw_dnstap *r, struct conf_dnstap *t)
{
	static const struct {
		const char *name;
		unsigned bit;
	} kinds[] = {
	    {"client-query", CONF_DNSTAP_CLIENT_QUERY},
	    {"client-response", CONF_DNSTAP_CLIENT_RESPONSE},
	    {"forwarder-query", CONF_DNSTAP_FORWARDER_QUERY},
	    {"forwarder-response", CONF_DNSTAP_FORWARDER_RESPONSE},
	};
	const char *s = r->file ? r->file : r->socket;
	const char *key = r->file ? "dnstap.file" : "dnstap.socket";

	if (r->file && r->socket) {
		conf_err_at(ld, "dnstap.socket", false,
		            "dnstap: give either file or socket, not both");
		return;
	}
	if (!s) {
		conf_err_at(ld, "dnstap", false, "dnstap: needs file: PATH or socket: PATH");
		return;
	}
	if (*s != '/')
		conf_err_at(ld, key, false, "%s: '%s' is not an absolute path", key, s);
	else if (get_string(ld, key, s, r->socket ? CONF_SOCKET_MAX : CONF_STATE_MAX, t->path,
	                    r->socket ? "sun_path" : "a file path"))
		t->enabled = true;
	t->socket = r->socket != NULL;
	if (!r->messages)
		return;
	t->messages = 0;
	for (unsigned i = 0; i < r->messages_count; i++) {
		unsigned k = 0;
		while (k < sizeof(kinds) / sizeof(kinds[0]) &&
		       strcmp(kinds[k].name, r->messages[i]))
			k++;
		if (k == sizeof(kinds) / sizeof(kinds[0]))
			conf_err_at(
			    ld, "dnstap.messages", false,
			    "dnstap.messages: unknown message '%s' (client-query, client-response, "
			    "forwarder-query or forwarder-response)",
			    r->messages[i]);
		else
			t->messages |= kinds[k].bit;
	}
	if (r->messages_count == 0)
		conf_err_at(ld, "dnstap.messages", false, "dnstap.messages: must not be empty");
}

static void load_dns(struct ld *ld, const struct raw_dns *r, struct conf *c)
{
	struct conf_dns *d = &c->dns;
	char path[CONF_PATH_LEN];

	if (r && conf_present(ld, "dns.listen")) {
		unsigned n = r->listen_count;
		if (ld->replaced && conf_pos_replaced(&ld->pos, "dns.listen"))
			ld->listen_lost = true;
		if (n == 0)
			conf_err_at(ld, "dns.listen", false, "dns.listen: must not be empty");
		if (!check_count(ld, "dns.listen", n, CONF_MAX_LISTEN))
			n = CONF_MAX_LISTEN;
		for (unsigned i = 0; i < n; i++) {
			struct netaddr a;
			PATH(path, "dns.listen[%u]", i);
			if (netaddr_parse(r->listen[i], 53, &a)) {
				conf_err_at(ld, path, false, "%s: invalid address '%s'", path,
				            r->listen[i]);
				ld->listen_lost = true;
				continue;
			}
			bool dup = false;
			for (unsigned j = 0; j < d->n_listen; j++)
				dup |= netaddr_equal(&d->listen[j], &a);
			if (dup) {
				conf_err_at(ld, path, false, "%s: duplicate listen address '%s'",
				            path, r->listen[i]);
				continue;
			}
			d->listen[d->n_listen++] = a;
		}
	} else {
		default_listen(c);
	}

	if (r && conf_present(ld, "dns.allow")) {
		unsigned n = r->allow_count;
		if (n == 0)
			conf_err_at(ld, "dns.allow", false,
			            "dns.allow: must not be empty (omit it for loopback only)");
		if (!check_count(ld, "dns.allow", n, CONF_MAX_ALLOW))
			n = CONF_MAX_ALLOW;
		for (unsigned i = 0; i < n; i++) {
			PATH(path, "dns.allow[%u]", i);
			if (netprefix_parse(r->allow[i], &d->allow[d->n_allow]))
				conf_err_at(ld, path, false, "%s: invalid prefix '%s'", path,
				            r->allow[i]);
			else
				d->n_allow++;
		}
	} else {
		default_allow(c);
	}

	if (r && conf_present(ld, "dns.upstreams")) {
		unsigned n = r->upstreams_count;
		if (n == 0)
			conf_err_at(ld, "dns.upstreams", false,
			            "dns.upstreams: must not be empty (omit it to use %s)",
			            resolv_name(ld, "resolv.conf"));
		if (!check_count(ld, "dns.upstreams", n, CONF_MAX_UPSTREAMS))
			n = CONF_MAX_UPSTREAMS;
		for (unsigned i = 0; i < n; i++) {
			struct netaddr a;
			PATH(path, "dns.upstreams[%u]", i);
			if (netaddr_parse(r->upstreams[i], 53, &a)) {
				conf_err_at(ld, path, false, "%s: invalid address '%s'", path,
				            r->upstreams[i]);
				continue;
			}
			if (is_own_listen(c, &a)) {
				conf_err_at(
				    ld, path, false,
				    "%s: '%s' is one of our own listen addresses (would forward "
				    "to ourselves)",
				    path, r->upstreams[i]);
				continue;
			}
			d->upstreams[d->n_upstreams++] = a;
		}
	} else {
		default_upstreams(c, ld->env);
		if (d->n_upstreams == 0)
			conf_err_at(ld, "dns.upstreams", false,
			            "dns.upstreams: not given and %s has no usable nameserver",
			            resolv_name(ld, "no resolv.conf"));
	}

	if (!r)
		return;
	get_unsigned(ld, "dns.threads", r->threads, 1, CONF_MAX_THREADS, &d->threads);
	get_string(ld, "dns.identity", r->identity, CONF_IDENTITY_MAX, d->identity,
	           "one TXT string");
	load_dns_security(ld, r, d);
	load_dns_stream(ld, r, d);
	get_size(ld, "dns.client-memory", r->client_memory, CONF_CLIENT_MEMORY_MIN,
	         "at least 1MiB: one TCP connection alone may hold 64 KiB", &d->client_memory_bytes);
	if (r->cache) {
		const struct raw_cache *rc = r->cache;
		get_size(ld, "dns.cache.size", rc->size, 0, "", &d->cache.size_bytes);
		get_seconds(ld, "dns.cache.min-ttl", rc->min_ttl, UINT32_MAX, &d->cache.min_ttl_s);
		bool max_ok = get_seconds(ld, "dns.cache.max-ttl", rc->max_ttl, UINT32_MAX,
		                          &d->cache.max_ttl_s);
		get_seconds(ld, "dns.cache.negative-ttl", rc->negative_ttl, UINT32_MAX,
		            &d->cache.negative_ttl_s);
		get_seconds(ld, "dns.cache.serve-stale", rc->serve_stale, UINT32_MAX,
		            &d->cache.serve_stale_s);
		load_persist(ld, rc, &d->cache);
		if ((max_ok || !rc->max_ttl) && d->cache.min_ttl_s > d->cache.max_ttl_s)
			conf_err_at(ld, rc->min_ttl ? "dns.cache.min-ttl" : "dns.cache.max-ttl",
			            false, "dns.cache: min-ttl (%us) is greater than max-ttl (%us)",
			            d->cache.min_ttl_s, d->cache.max_ttl_s);
	}
}

/* dns.tcp-* and dns.tls-*: the stream server's keys (dns_stream.h). */
static void load_dns_stream(struct ld *ld, const struct raw_dns *r, struct conf_dns *d)
{
	char path[CONF_PATH_LEN];
	unsigned v;

	get_unsigned(ld, "dns.tcp-connections", r->tcp_connections, 1, CONF_TCP_CONNECTIONS_MAX,
	             &d->tcp_connections);
	get_unsigned(ld, "dns.tcp-per-source", r->tcp_per_source, 1, 100000, &d->tcp_per_source);
	if (get_unsigned(ld, "dns.tcp-source-prefix-v4", r->tcp_prefix4, 1, 32, &v))
		d->tcp_prefix4 = (uint8_t)v;
	if (get_unsigned(ld, "dns.tcp-source-prefix-v6", r->tcp_prefix6, 1, 128, &v))
		d->tcp_prefix6 = (uint8_t)v;
	unsigned n = r->tls_listen ? r->tls_listen_count : 0;
	if (!check_count(ld, "dns.tls-listen", n, CONF_MAX_LISTEN))
		n = CONF_MAX_LISTEN;
	for (unsigned i = 0; i < n; i++) {
		struct netaddr a;
		PATH(path, "dns.tls-listen[%u]", i);
		if (netaddr_parse(r->tls_listen[i], 853, &a)) {
			conf_err_at(ld, path, false, "%s: invalid address '%s'", path,
			            r->tls_listen[i]);
			continue;
		}
		bool dup = false;
		for (unsigned j = 0; j < d->n_tls_listen; j++)
			dup |= netaddr_equal(&d->tls_listen[j], &a);
		for (unsigned j = 0; j < d->n_listen; j++)
			dup |= netaddr_equal(&d->listen[j], &a);
		if (dup) {
			conf_err_at(ld, path, false, "%s: '%s' is already a listen address", path,
			            r->tls_listen[i]);
			continue;
		}
		d->tls_listen[d->n_tls_listen++] = a;
	}
	get_string(ld, "dns.tls-certificate", r->tls_certificate, CONF_TLS_PATH_MAX,
	           d->tls_certificate, "a file path");
	get_string(ld, "dns.tls-key", r->tls_key, CONF_TLS_PATH_MAX, d->tls_key, "a file path");
	if (n && !d->tls_certificate[0])
		conf_err_at(ld, "dns.tls-listen", false,
		            "dns.tls-listen: needs dns.tls-certificate (a PEM file)");
	if (n && !d->tls_key[0])
		conf_err_at(ld, "dns.tls-listen", false,
		            "dns.tls-listen: needs dns.tls-key (a PEM file)");
}

static void load_neighbor(struct ld *ld, unsigned i, const struct raw_neighbor *r,
                          struct conf_bgp *b)
{
	struct conf_neighbor *nb = &b->neighbors[b->n_neighbors];
	char base[CONF_PATH_LEN], path[CONF_PATH_LEN];
	bool ok = true;
	uint64_t port = 179;

	memset(nb, 0, sizeof(*nb));
	nb->hold_time_s = CONF_DEFAULT_HOLD_TIME_S;
	PATH(base, "bgp.neighbors[%u]", i);

	PATH(path, "%s.address", base);
	if (!r->address) {
		conf_err_at(ld, base, false, "%s: address is required", base);
		ok = false;
	} else if (!get_ip(ld, path, r->address, &nb->address)) {
		ok = false;
	}
	PATH(path, "%s.asn", base);
	if (!r->asn) {
		conf_err_at(ld, base, false, "%s: asn is required", base);
		ok = false;
	} else if (!check_asn(ld, path, r->asn, &nb->asn)) {
		ok = false;
	}
	PATH(path, "%s.port", base);
	if (r->port && !get_uint(ld, path, r->port, 1, 65535, &port))
		ok = false;
	nb->address.port = (uint16_t)port;

	PATH(path, "%s.local-address", base);
	if (r->local_address) {
		if (!get_ip(ld, path, r->local_address, &nb->local_address)) {
			ok = false;
		} else if (nb->address.family && nb->local_address.family != nb->address.family) {
			conf_err_at(ld, path, false,
			            "%s: '%s' is not of the same address family as address '%s'",
			            path, r->local_address, r->address);
			ok = false;
		}
	}
	PATH(path, "%s.passive", base);
	if (r->passive && !get_bool(ld, path, r->passive, &nb->passive))
		ok = false;
	PATH(path, "%s.bfd", base);
	if (r->bfd && !get_bool(ld, path, r->bfd, &nb->bfd))
		ok = false;
	PATH(path, "%s.hold-time", base);
	if (r->hold_time) {
		uint32_t h;
		if (!get_seconds(ld, path, r->hold_time, UINT32_MAX, &h)) {
			ok = false;
		} else if (h == 1 || h == 2) {
			/* RFC 4271 §4.2: the Hold Time MUST be either zero or at least three
			 * seconds. */
			conf_err_at(ld, path, false,
			            "%s: must be 0 or at least 3 seconds (RFC 4271 section 4.2)",
			            path);
			ok = false;
		} else if (h > CONF_HOLD_TIME_MAX) {
			conf_err_at(ld, path, false,
			            "%s: exceeds %u seconds (a 16-bit field in OPEN)", path,
			            CONF_HOLD_TIME_MAX);
			ok = false;
		} else {
			nb->hold_time_s = h;
		}
	}
	PATH(path, "%s.password", base);
	if (r->password && !get_string(ld, path, r->password, CONF_PASSWORD_MAX, nb->password,
	                               "TCP_MD5SIG_MAXKEYLEN"))
		ok = false;
	PATH(path, "%s.next-hop6", base);
	if (r->next_hop6) {
		if (!get_ip(ld, path, r->next_hop6, &nb->next_hop6)) {
			ok = false;
		} else if (nb->next_hop6.family != AF_INET6) {
			conf_err_at(ld, path, false, "%s: '%s' is not an IPv6 address", path,
			            r->next_hop6);
			ok = false;
		} else {
			nb->has_next_hop6 = true;
		}
	}
	if (nb->address.family) {
		for (unsigned j = 0; j < ld->n_seen_nb; j++) {
			if (netaddr_equal_ip(&ld->seen_nb[j], &nb->address)) {
				PATH(path, "%s.address", base);
				conf_err_at(ld, path, false, "%s: duplicate neighbor '%s'", path,
				            r->address);
				ok = false;
				break;
			}
		}
		if (ld->n_seen_nb < CONF_MAX_NEIGHBORS)
			ld->seen_nb[ld->n_seen_nb++] = nb->address;
	}
	if (ok)
		b->n_neighbors++;
}

static void load_route(struct ld *ld, unsigned i, const struct raw_route *r, struct conf *c)
{
	struct conf_bgp *b = &c->bgp;
	struct conf_route *rt = &b->routes[b->n_routes];
	char base[CONF_PATH_LEN], path[CONF_PATH_LEN];
	bool ok = true;

	memset(rt, 0, sizeof(*rt));
	rt->local_pref = 100;
	PATH(base, "bgp.announce[%u]", i);
	PATH(path, "%s.prefix", base);
	if (!r->prefix) {
		conf_err_at(ld, base, false, "%s: prefix is required", base);
		ok = false;
	} else if (netprefix_parse(r->prefix, &rt->prefix)) {
		conf_err_at(ld, path, false, "%s: invalid prefix '%s'", path, r->prefix);
		ok = false;
	} else {
		bool inside = false;
		for (unsigned j = 0; j < c->dns.n_listen; j++)
			inside |= netprefix_contains(&rt->prefix, &c->dns.listen[j]);
		/* Announcing a VIP we do not answer on would draw traffic into a void.
		 * Unknowable when a listen entry is broken: that one is reported. */
		if (!inside && !ld->listen_lost) {
			conf_err_at(ld, path, false, "%s: no dns.listen address falls inside '%s'",
			            path, r->prefix);
			ok = false;
		}
		for (unsigned j = 0; j < b->n_routes; j++) {
			if (b->routes[j].prefix.family == rt->prefix.family &&
			    b->routes[j].prefix.len == rt->prefix.len &&
			    memcmp(b->routes[j].prefix.addr, rt->prefix.addr, 16) == 0) {
				conf_err_at(ld, path, false, "%s: prefix '%s' is announced twice",
				            path, r->prefix);
				ok = false;
				break;
			}
		}
	}
	PATH(path, "%s.local-preference", base);
	if (r->local_pref && !get_u32(ld, path, r->local_pref, 0, UINT32_MAX, &rt->local_pref))
		ok = false;
	PATH(path, "%s.med", base);
	if (r->med) {
		if (get_u32(ld, path, r->med, 0, UINT32_MAX, &rt->med))
			rt->has_med = true;
		else
			ok = false;
	}
	PATH(path, "%s.communities", base);
	rt->n_communities =
	    get_communities(ld, path, r->communities, r->communities_count, rt->communities);
	PATH(path, "%s.large-communities", base);
	unsigned n = r->large_communities_count;
	if (!check_count(ld, path, n, CONF_MAX_LARGE_COMMUNITIES))
		n = CONF_MAX_LARGE_COMMUNITIES;
	for (unsigned k = 0; k < n; k++) {
		PATH(path, "%s.large-communities[%u]", base, k);
		if (conf_parse_parts(r->large_communities[k], 3, UINT32_MAX,
		                     rt->large_communities[rt->n_large_communities]) == 0)
			rt->n_large_communities++;
		else
			conf_err_at(
			    ld, path, false,
			    "%s: invalid large community '%s' (expected A:B:C, each 0..4294967295)",
			    path, r->large_communities[k]);
	}
	if (ok)
		b->n_routes++;
}

/* Distinct values of a, then of b: bgp_policy.c's merge, counted. */
static unsigned merged_count(const uint32_t *a, unsigned na, const uint32_t *b, unsigned nb)
{
	uint32_t seen[2 * CONF_MAX_COMMUNITIES];
	unsigned n = 0;

	for (unsigned i = 0; i < na + nb; i++) {
		uint32_t v = i < na ? a[i] : b[i - na];
		unsigned k = 0;
		while (k < n && seen[k] != v)
			k++;
		if (k == n && n < sizeof(seen) / sizeof(seen[0]))
			seen[n++] = v;
	}
	return n;
}

/*
 * bgp_policy.h adds bgp.degraded's communities to a route's when it is
 * DEGRADED, and GRACEFUL_SHUTDOWN when it is DRAINING. A route that could
 * not carry them all would lose some when its state changes: refuse it now.
 */
static void check_merged_communities(struct ld *ld, const struct conf_bgp *b,
                                     const unsigned *raw_of)
{
	static const uint32_t gshut = 0xffff0000u; /* 65535:0, RFC 8326 §3 */
	char path[CONF_PATH_LEN];

	for (unsigned i = 0; i < b->n_routes; i++) {
		const struct conf_route *rt = &b->routes[i];
		const struct conf_degraded *dg = &b->degraded;
		unsigned n;

		PATH(path, "bgp.announce[%u].communities", raw_of[i]);
		if (!conf_present(ld, path))
			PATH(path, "bgp.announce[%u]", raw_of[i]);
		if (dg->enabled) {
			n = merged_count(rt->communities, rt->n_communities, dg->communities,
			                 dg->n_communities);
			if (n > CONF_MAX_COMMUNITIES)
				conf_err_at(
				    ld, path, false,
				    "%s: with bgp.degraded.communities this route carries %u "
				    "communities when degraded, more than %u",
				    path, n, CONF_MAX_COMMUNITIES);
		}
		n = merged_count(rt->communities, rt->n_communities, &gshut, 1);
		if (n > CONF_MAX_COMMUNITIES)
			conf_err_at(
			    ld, path, false,
			    "%s: no room for GRACEFUL_SHUTDOWN (65535:0, RFC 8326), added when "
			    "draining: at most %u other communities",
			    path, CONF_MAX_COMMUNITIES - 1);
	}
}

static void load_bgp(struct ld *ld, const struct raw_bgp *r, struct conf *c)
{
	struct conf_bgp *b = &c->bgp;
	unsigned n;

	b->enabled = true;
	if (!r->asn)
		conf_err_at(ld, "bgp", true, "bgp: asn is required");
	else
		check_asn(ld, "bgp.asn", r->asn, &b->asn);
	if (!r->router_id) {
		conf_err_at(ld, "bgp", true, "bgp: router-id is required");
	} else if (get_ip(ld, "bgp.router-id", r->router_id, &b->router_id)) {
		static const uint8_t zero[4];
		/* RFC 6286 §2.1: a non-zero 4-octet value; we take it in IPv4 form. */
		if (b->router_id.family != AF_INET || memcmp(b->router_id.addr, zero, 4) == 0)
			conf_err_at(ld, "bgp.router-id", false,
			            "bgp.router-id: must be a non-zero IPv4 address, not '%s'",
			            r->router_id);
	}

	n = r->neighbors_count;
	if (n == 0)
		conf_err_at(ld, "bgp.neighbors", !conf_present(ld, "bgp.neighbors"),
		            "bgp.neighbors: at least one neighbor is required");
	if (!check_count(ld, "bgp.neighbors", n, CONF_MAX_NEIGHBORS))
		n = CONF_MAX_NEIGHBORS;
	for (unsigned i = 0; i < n; i++)
		load_neighbor(ld, i, &r->neighbors[i], b);

	n = r->announce_count;
	if (!check_count(ld, "bgp.announce", n, CONF_MAX_ROUTES))
		n = CONF_MAX_ROUTES;
	unsigned raw_of[CONF_MAX_ROUTES]; /* bgp.announce index of each loaded route */
	for (unsigned i = 0; i < n; i++) {
		unsigned before = b->n_routes;
		load_route(ld, i, &r->announce[i], c);
		if (b->n_routes > before)
			raw_of[before] = i;
	}

	if (r->degraded) {
		const struct raw_degraded *g = r->degraded;
		struct conf_degraded *d = &b->degraded;
		d->enabled = true;
		d->local_pref = 50;
		get_u32(ld, "bgp.degraded.local-preference", g->local_pref, 0, UINT32_MAX,
		        &d->local_pref);
		if (g->med && get_u32(ld, "bgp.degraded.med", g->med, 0, UINT32_MAX, &d->med))
			d->has_med = true;
		get_unsigned(ld, "bgp.degraded.prepend", g->prepend, 0, CONF_PREPEND_MAX,
		             &d->prepend);
		d->n_communities = get_communities(ld, "bgp.degraded.communities", g->communities,
		                                   g->communities_count, d->communities);
	}
	check_merged_communities(ld, b, raw_of);
}

static void get_ratio_pm(struct ld *ld, const char *path, const char *s, uint32_t *out)
{
	int rc;

	if (!s)
		return;
	rc = conf_parse_ratio_pm(s, out);
	if (rc == -ERANGE)
		conf_err_at(ld, path, false, "%s: '%s' is more than 1 (100%%)", path, s);
	else if (rc)
		conf_err_at(
		    ld, path, false,
		    "%s: expected a fraction from 0 to 1 with at most 3 decimals (0.9) or a "
		    "percentage (90%%), not '%s'",
		    path, s);
}

/* health.hold-down and health.overload (health_fsm.h). */
static void load_health_more(struct ld *ld, const struct raw_health *r, struct conf_health *h)
{
	uint64_t ms;

	if (get_duration_ms(ld, "health.hold-down", r->hold_down, &ms)) {
		if (ms > CONF_HOLD_DOWN_MAX_MS)
			conf_err_at(ld, "health.hold-down", false,
			            "health.hold-down: '%s' exceeds 1h (it doubles up to 32 times "
			            "that for a flapping VIP)",
			            r->hold_down);
		else
			h->hold_down_ms = ms;
	}
	if (!r->overload)
		return;
	const struct raw_overload *o = r->overload;
	get_ratio_pm(ld, "health.overload.busy", o->busy, &h->overload.busy_pm);
	get_u32(ld, "health.overload.drops", o->drops, 0, UINT32_MAX, &h->overload.drops_per_s);
	get_ratio_pm(ld, "health.overload.inflight", o->inflight, &h->overload.inflight_pm);
	get_duration_ms(ld, "health.overload.latency", o->latency, &h->overload.latency_ms);
}

/*
 * A user or group name ([A-Za-z0-9_.][A-Za-z0-9_.-]*[$]?, at most 32
 * bytes) or a numeric id. Only the syntax is checked here: loading stays
 * pure, the name is looked up when it is used (control.group when the
 * socket is made, ctl_server.h; user before privileges are dropped,
 * core/privs.h, placed by conf_diag's user_line/user_col).
 */
static void load_name(struct ld *ld, const char *path, const char *what, const char *s, char *out)
{
	size_t n = strlen(s);
	bool ok = n > 0 && n <= CONF_GROUP_MAX;

	for (size_t i = 0; ok && i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		ok = isalnum(ch) || ch == '_' || ch == '.' || (i > 0 && ch == '-') ||
		     (i == n - 1 && i > 0 && ch == '$');
	}
	if (!ok) {
		conf_err_at(ld, path, false,
		            "%s: '%s' is not a %s name or number (at most %u of "
		            "A-Z a-z 0-9 _ . -, not starting with -)",
		            path, s, what, CONF_GROUP_MAX);
		return;
	}
	memcpy(out, s, n + 1);
}

static void load_rest(struct ld *ld, const struct raw_conf *r, struct conf *c)
{
	if (r->bfd) {
		if (get_duration_ms(ld, "bfd.interval", r->bfd->interval, &c->bfd.interval_ms) &&
		    c->bfd.interval_ms == 0)
			conf_err_at(ld, "bfd.interval", false, "bfd.interval: must not be 0");
		/* RFC 5880 §4.1: Detect Mult is one octet and must be non-zero. */
		get_unsigned(ld, "bfd.multiplier", r->bfd->multiplier, 1, 255, &c->bfd.multiplier);
	}
	if (r->health) {
		if (get_duration_ms(ld, "health.interval", r->health->interval,
		                    &c->health.interval_ms) &&
		    c->health.interval_ms == 0)
			conf_err_at(ld, "health.interval", false, "health.interval: must not be 0");
		get_unsigned(ld, "health.rise", r->health->rise, 1, 1000, &c->health.rise);
		get_unsigned(ld, "health.fall", r->health->fall, 1, 1000, &c->health.fall);
		get_duration_ms(ld, "health.drain", r->health->drain, &c->health.drain_ms);
		load_health_more(ld, r->health, &c->health);
	}
	if (r->dnstap)
		load_dnstap(ld, r->dnstap, &c->dnstap);
	if (r->control) {
		const char *s = r->control->socket;
		if (s && !*s)
			conf_err_at(ld, "control.socket", false,
			            "control.socket: must not be empty");
		else
			get_string(ld, "control.socket", s, CONF_SOCKET_MAX, c->control.socket,
			           "sun_path");
		if (r->control->group)
			load_name(ld, "control.group", "group", r->control->group,
			          c->control.group);
		s = r->control->state;
		if (s && (!*s || *s != '/'))
			conf_err_at(ld, "control.state", false,
			            "control.state: '%s' is not an absolute path", s);
		else
			get_string(ld, "control.state", s, CONF_STATE_MAX, c->control.state,
			           "a file path");
		if (r->control->metrics) {
			if (netaddr_parse(r->control->metrics, CONF_DEFAULT_METRICS_PORT,
			                  &c->control.metrics) == 0)
				c->control.has_metrics = true;
			else
				conf_err_at(ld, "control.metrics", false,
				            "control.metrics: invalid address '%s'",
				            r->control->metrics);
		}
	}
	if (r->user) {
		load_name(ld, "user", "user", r->user, c->user);
		conf_pos_find(&ld->pos, "user", false, &ld->sink.diag->user_line,
		              &ld->sink.diag->user_col);
	}
}

void conf_section_load(struct ld *ld, const struct raw_conf *r, struct conf *c)
{
	load_dns(ld, r->dns, c);
	if (r->bgp)
		load_bgp(ld, r->bgp, c);
	load_rest(ld, r, c);
}
