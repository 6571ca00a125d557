/*
 * conf_print.c: the effective configuration as YAML that loads back to the
 * identical struct conf (every value explicit, defaults filled in).
 */
#include "core/conf.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* Largest unit that divides exactly, so the text stays readable and exact. */
static void fmt_ms(char *buf, size_t size, uint64_t ms)
{
	static const struct {
		const char *u;
		uint64_t m;
	} units[] = {
	    {"d", 86400000},
	    {"h", 3600000},
	    {"m", 60000},
	    {"s", 1000},
	};

	if (ms == 0) {
		snprintf(buf, size, "0s");
		return;
	}
	for (unsigned i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms % units[i].m == 0) {
			snprintf(buf, size, "%" PRIu64 "%s", ms / units[i].m, units[i].u);
			return;
		}
	}
	snprintf(buf, size, "%" PRIu64 "ms", ms);
}

/* Per mille as the shortest exact fraction: 0, 1, 0.9, 0.95, 0.125. */
static void fmt_pm(char *buf, size_t size, uint32_t pm)
{
	if (pm % 1000 == 0) {
		snprintf(buf, size, "%" PRIu32, pm / 1000);
		return;
	}
	int digits = pm % 100 == 0 ? 1 : pm % 10 == 0 ? 2 : 3;
	uint32_t frac = pm % 1000;
	for (int k = digits; k < 3; k++)
		frac /= 10;
	snprintf(buf, size, "%" PRIu32 ".%0*" PRIu32, pm / 1000, digits, frac);
}

static void fmt_size(char *buf, size_t size, uint64_t b)
{
	static const struct {
		const char *u;
		uint64_t m;
	} units[] = {
	    {"GiB", 1ull << 30},
	    {"MiB", 1ull << 20},
	    {"KiB", 1ull << 10},
	};

	for (unsigned i = 0; b && i < 3; i++) {
		if (b % units[i].m == 0) {
			snprintf(buf, size, "%" PRIu64 "%s", b / units[i].m, units[i].u);
			return;
		}
	}
	snprintf(buf, size, "%" PRIu64, b);
}

/*
 * YAML double-quoted scalar (YAML 1.1 §5.7 escapes). Bytes >= 0x80 are
 * written as they are: the strings came from a YAML file, so they are UTF-8,
 * and "\xc3" would mean the code point U+00C3, not the byte.
 */
static void put_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		/* YAML 1.1 §5.4 line breaks beyond ASCII (NEL, LS, PS) would fold to
		 * a space when read back: their own escapes keep them. */
		if (p[0] == 0xc2 && p[1] == 0x85) {
			fputs("\\N", f);
			p++;
		} else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
			fputs(p[2] == 0xa8 ? "\\L" : "\\P", f);
			p += 2;
		} else if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\x%02x", *p);
		} else {
			fputc(*p, f);
		}
	}
	fputc('"', f);
}

static void put_addr_list(FILE *f, const char *key, const struct netaddr *a, unsigned n)
{
	char buf[NETADDR_STRLEN];

	fprintf(f, "  %s: [", key);
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%s\"%s\"", i ? ", " : "",
		        netaddr_format(&a[i], true, buf, sizeof(buf)));
	fprintf(f, "]\n");
}

static void put_communities(FILE *f, const char *indent, const uint32_t *c, unsigned n)
{
	if (!n)
		return;
	fprintf(f, "%scommunities: [", indent);
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%s\"%u:%u\"", i ? ", " : "", c[i] >> 16, c[i] & 0xffff);
	fprintf(f, "]\n");
}

/* Only when on: an absent section stays absent, as bgp does. */
static void put_dnstap(FILE *f, const struct conf_dnstap *t)
{
	static const char *const names[] = {"client-query", "client-response", "forwarder-query",
	                                    "forwarder-response"};
	bool first = true;

	if (!t->enabled)
		return;
	fprintf(f, "dnstap:\n  %s: ", t->socket ? "socket" : "file");
	put_quoted(f, t->path);
	fprintf(f, "\n  messages: [");
	for (unsigned i = 0; i < 4; i++) {
		if (!(t->messages & (1u << i)))
			continue;
		fprintf(f, "%s%s", first ? "" : ", ", names[i]);
		first = false;
	}
	fprintf(f, "]\n");
}

static void put_hex(FILE *f, const char *key, const uint8_t *b, size_t n)
{
	fprintf(f, "  %s: \"", key);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
	fprintf(f, "\"\n");
}

/* Absent stays absent: a random cookie secret is not configuration. */
static void put_dns_security(FILE *f, const struct conf_dns *d)
{
	const struct conf_rate_limit *rl = &d->rate_limit;
	char t[32];

	if (d->has_cookie_secret)
		put_hex(f, "cookie-secret", d->cookie_secret, sizeof(d->cookie_secret));
	if (d->has_cookie_secret_old)
		put_hex(f, "cookie-secret-old", d->cookie_secret_old, sizeof(d->cookie_secret_old));
	if (d->require_cookie)
		fprintf(f, "  require-cookie: true\n");
	if (!rl->enabled)
		return;
	fmt_ms(t, sizeof(t), (uint64_t)rl->window_s * 1000);
	fprintf(f,
	        "  rate-limit:\n    responses-per-second: %" PRIu32 "\n    window: %s\n"
	        "    slip: %" PRIu32 "\n    ipv4-prefix: %u\n    ipv6-prefix: %u\n"
	        "    table-size: %" PRIu32 "\n",
	        rl->rate, t, rl->slip, rl->v4_prefix, rl->v6_prefix, rl->entries);
}

int conf_print(FILE *f, const struct conf *c)
{
	char buf[NETADDR_STRLEN], t1[32], t2[32], t3[32], t4[32];

	fprintf(f, "dns:\n");
	put_addr_list(f, "listen", c->dns.listen, c->dns.n_listen);
	fprintf(f, "  allow: [");
	for (unsigned i = 0; i < c->dns.n_allow; i++)
		fprintf(f, "%s\"%s\"", i ? ", " : "",
		        netprefix_format(&c->dns.allow[i], buf, sizeof(buf)));
	fprintf(f, "]\n");
	put_addr_list(f, "upstreams", c->dns.upstreams, c->dns.n_upstreams);
	fprintf(f, "  threads: %u\n  identity: ", c->dns.threads);
	put_quoted(f, c->dns.identity);
	fmt_size(t1, sizeof(t1), c->dns.cache.size_bytes);
	fprintf(f, "\n  cache:\n    size: %s\n", t1);
	fmt_ms(t1, sizeof(t1), (uint64_t)c->dns.cache.min_ttl_s * 1000);
	fmt_ms(t2, sizeof(t2), (uint64_t)c->dns.cache.max_ttl_s * 1000);
	fmt_ms(t3, sizeof(t3), (uint64_t)c->dns.cache.negative_ttl_s * 1000);
	fmt_ms(t4, sizeof(t4), (uint64_t)c->dns.cache.serve_stale_s * 1000);
	fprintf(f, "    min-ttl: %s\n    max-ttl: %s\n    negative-ttl: %s\n    serve-stale: %s\n",
	        t1, t2, t3, t4);
	if (c->dns.cache.persist[0]) {
		fmt_ms(t1, sizeof(t1), c->dns.cache.persist_interval_ms);
		fprintf(f, "    persist: ");
		put_quoted(f, c->dns.cache.persist);
		fprintf(f, "\n    persist-interval: %s\n", t1);
	}
	if (c->dns.client_memory_bytes != CONF_CLIENT_MEMORY_DEFAULT) {
		fmt_size(t1, sizeof(t1), c->dns.client_memory_bytes);
		fprintf(f, "  client-memory: %s\n", t1);
	}
	put_dns_security(f, &c->dns);
	/* The stream keys only when they differ from the defaults (goldens stay as they were). */
	if (c->dns.tcp_connections != CONF_TCP_CONNECTIONS_DEFAULT)
		fprintf(f, "  tcp-connections: %u\n", c->dns.tcp_connections);
	if (c->dns.tcp_per_source != 64 || c->dns.tcp_prefix4 != 32 || c->dns.tcp_prefix6 != 64)
		fprintf(f,
		        "  tcp-per-source: %u\n  tcp-source-prefix-v4: %u\n"
		        "  tcp-source-prefix-v6: %u\n",
		        c->dns.tcp_per_source, c->dns.tcp_prefix4, c->dns.tcp_prefix6);
	if (c->dns.n_tls_listen) {
		put_addr_list(f, "tls-listen", c->dns.tls_listen, c->dns.n_tls_listen);
		fprintf(f, "  tls-certificate: ");
		put_quoted(f, c->dns.tls_certificate);
		fprintf(f, "\n  tls-key: ");
		put_quoted(f, c->dns.tls_key);
		fprintf(f, "\n");
	}

	if (c->bgp.enabled) {
		const struct conf_bgp *b = &c->bgp;
		fprintf(f, "bgp:\n  asn: %" PRIu32 "\n  router-id: %s\n", b->asn,
		        netaddr_format(&b->router_id, false, buf, sizeof(buf)));
		fprintf(f, "  neighbors:\n");
		for (unsigned i = 0; i < b->n_neighbors; i++) {
			const struct conf_neighbor *n = &b->neighbors[i];
			fprintf(f, "    - address: \"%s\"\n",
			        netaddr_format(&n->address, false, buf, sizeof(buf)));
			fprintf(f, "      asn: %" PRIu32 "\n      port: %u\n", n->asn,
			        n->address.port);
			if (n->local_address.family)
				fprintf(f, "      local-address: \"%s\"\n",
				        netaddr_format(&n->local_address, false, buf, sizeof(buf)));
			fmt_ms(t1, sizeof(t1), (uint64_t)n->hold_time_s * 1000);
			fprintf(f, "      passive: %s\n      hold-time: %s\n      bfd: %s\n",
			        n->passive ? "true" : "false", t1, n->bfd ? "true" : "false");
			if (n->password[0]) {
				fprintf(f, "      password: ");
				put_quoted(f, n->password);
				fputc('\n', f);
			}
			if (n->has_next_hop6)
				fprintf(f, "      next-hop6: \"%s\"\n",
				        netaddr_format(&n->next_hop6, false, buf, sizeof(buf)));
		}
		fprintf(f, "  announce:%s\n", b->n_routes ? "" : " []");
		for (unsigned i = 0; i < b->n_routes; i++) {
			const struct conf_route *r = &b->routes[i];
			fprintf(f, "    - prefix: \"%s\"\n      local-preference: %" PRIu32 "\n",
			        netprefix_format(&r->prefix, buf, sizeof(buf)), r->local_pref);
			if (r->has_med)
				fprintf(f, "      med: %" PRIu32 "\n", r->med);
			put_communities(f, "      ", r->communities, r->n_communities);
			if (r->n_large_communities) {
				fprintf(f, "      large-communities: [");
				for (unsigned k = 0; k < r->n_large_communities; k++)
					fprintf(f, "%s\"%" PRIu32 ":%" PRIu32 ":%" PRIu32 "\"",
					        k ? ", " : "", r->large_communities[k][0],
					        r->large_communities[k][1],
					        r->large_communities[k][2]);
				fprintf(f, "]\n");
			}
		}
		if (b->degraded.enabled) {
			const struct conf_degraded *d = &b->degraded;
			fprintf(f, "  degraded:\n    local-preference: %" PRIu32 "\n",
			        d->local_pref);
			if (d->has_med)
				fprintf(f, "    med: %" PRIu32 "\n", d->med);
			fprintf(f, "    prepend: %u\n", d->prepend);
			put_communities(f, "    ", d->communities, d->n_communities);
		}
	}

	fmt_ms(t1, sizeof(t1), c->bfd.interval_ms);
	fprintf(f, "bfd:\n  interval: %s\n  multiplier: %u\n", t1, c->bfd.multiplier);
	fmt_ms(t1, sizeof(t1), c->health.interval_ms);
	fmt_ms(t2, sizeof(t2), c->health.drain_ms);
	fmt_ms(t3, sizeof(t3), c->health.hold_down_ms);
	fprintf(f,
	        "health:\n  interval: %s\n  rise: %u\n  fall: %u\n  drain: %s\n  hold-down: %s\n",
	        t1, c->health.rise, c->health.fall, t2, t3);
	const struct conf_overload *o = &c->health.overload;
	fmt_pm(t1, sizeof(t1), o->busy_pm);
	fmt_pm(t2, sizeof(t2), o->inflight_pm);
	fmt_ms(t3, sizeof(t3), o->latency_ms);
	fprintf(f,
	        "  overload:\n    busy: %s\n    drops: %" PRIu32
	        "\n    inflight: %s\n    latency: %s\n",
	        t1, o->drops_per_s, t2, t3);
	fprintf(f, "control:\n  socket: ");
	put_quoted(f, c->control.socket);
	fputc('\n', f);
	if (c->control.group[0])
		fprintf(f, "  group: \"%s\"\n", c->control.group);
	fprintf(f, "  state: ");
	put_quoted(f, c->control.state);
	fputc('\n', f);
	if (c->control.has_metrics)
		fprintf(f, "  metrics: \"%s\"\n",
		        netaddr_format(&c->control.metrics, true, buf, sizeof(buf)));
	put_dnstap(f, &c->dnstap);
	if (c->user[0])
		fprintf(f, "user: \"%s\"\n", c->user);
	return ferror(f) ? -EIO : 0;
}
