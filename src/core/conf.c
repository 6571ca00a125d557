/*
 * conf.c: libcyaml schema, value conversion, validation and defaults.
 *
 * libcyaml loads every scalar as text into the raw tree below. It stops at
 * its first error, so structure is judged here first, against the same cyaml
 * schema (no second table that could drift): check_schema walks the libyaml
 * index and reports every unknown key and every node of the wrong kind
 * (mapping / list / single value) at its position. libcyaml then loads with
 * CYAML_CFG_IGNORE_UNKNOWN_KEYS, from a rewrite of the text where each
 * wrong-kind node is an empty node of the right kind, so the well-formed rest
 * still loads. Values are converted here, where each error is recorded and
 * the pass goes on; messages about a replaced node (it is reported once
 * already) are dropped. One run shows every mistake in the file.
 */
#include "core/conf.h"

#include <ctype.h>
#include <cyaml/cyaml.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/conf_pos.h"

/* Bounds what we read: a configuration or resolv.conf is a few KiB. */
#define CONF_FILE_MAX (1u << 20)

/* ---- raw tree (what libcyaml fills) ---------------------------------- */

struct raw_cache {
	char *size, *min_ttl, *max_ttl, *negative_ttl, *serve_stale;
};

struct raw_dns {
	char **listen;
	unsigned listen_count;
	char **allow;
	unsigned allow_count;
	char **upstreams;
	unsigned upstreams_count;
	char *threads, *identity;
	struct raw_cache *cache;
};

struct raw_neighbor {
	char *address, *asn, *local_address, *port, *passive, *hold_time, *password, *bfd,
	    *next_hop6;
};

struct raw_route {
	char *prefix, *local_pref, *med;
	char **communities;
	unsigned communities_count;
	char **large_communities;
	unsigned large_communities_count;
};

struct raw_degraded {
	char *local_pref, *med, *prepend;
	char **communities;
	unsigned communities_count;
};

struct raw_bgp {
	char *asn, *router_id;
	struct raw_neighbor *neighbors;
	unsigned neighbors_count;
	struct raw_route *announce;
	unsigned announce_count;
	struct raw_degraded *degraded;
};

struct raw_bfd {
	char *interval, *multiplier;
};

struct raw_overload {
	char *busy, *drops, *inflight, *latency;
};

struct raw_health {
	char *interval, *rise, *fall, *drain, *hold_down;
	struct raw_overload *overload;
};

struct raw_control {
	char *socket, *metrics, *group, *state;
};

struct raw_conf {
	struct raw_dns *dns;
	struct raw_bgp *bgp;
	struct raw_bfd *bfd;
	struct raw_health *health;
	struct raw_control *control;
};

#define OPT             (CYAML_FLAG_OPTIONAL)
#define STR(key, st, m) CYAML_FIELD_STRING_PTR(key, OPT, st, m, 0, CYAML_UNLIMITED)
#define STRSEQ(key, st, m)                                                                         \
	CYAML_FIELD_SEQUENCE(key, CYAML_FLAG_POINTER | OPT, st, m, &str_entry, 0, CYAML_UNLIMITED)

static const cyaml_schema_value_t str_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

static const cyaml_schema_field_t cache_fields[] = {
    STR("size", struct raw_cache, size),
    STR("min-ttl", struct raw_cache, min_ttl),
    STR("max-ttl", struct raw_cache, max_ttl),
    STR("negative-ttl", struct raw_cache, negative_ttl),
    STR("serve-stale", struct raw_cache, serve_stale),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t dns_fields[] = {
    STRSEQ("listen", struct raw_dns, listen),
    STRSEQ("allow", struct raw_dns, allow),
    STRSEQ("upstreams", struct raw_dns, upstreams),
    STR("threads", struct raw_dns, threads),
    STR("identity", struct raw_dns, identity),
    CYAML_FIELD_MAPPING_PTR("cache", OPT, struct raw_dns, cache, cache_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t neighbor_fields[] = {
    STR("address", struct raw_neighbor, address),
    STR("asn", struct raw_neighbor, asn),
    STR("local-address", struct raw_neighbor, local_address),
    STR("port", struct raw_neighbor, port),
    STR("passive", struct raw_neighbor, passive),
    STR("hold-time", struct raw_neighbor, hold_time),
    STR("password", struct raw_neighbor, password),
    STR("bfd", struct raw_neighbor, bfd),
    STR("next-hop6", struct raw_neighbor, next_hop6),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t neighbor_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_neighbor, neighbor_fields),
};

static const cyaml_schema_field_t route_fields[] = {
    STR("prefix", struct raw_route, prefix),
    STR("local-preference", struct raw_route, local_pref),
    STR("med", struct raw_route, med),
    STRSEQ("communities", struct raw_route, communities),
    STRSEQ("large-communities", struct raw_route, large_communities),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t route_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_route, route_fields),
};

static const cyaml_schema_field_t degraded_fields[] = {
    STR("local-preference", struct raw_degraded, local_pref),
    STR("med", struct raw_degraded, med),
    STR("prepend", struct raw_degraded, prepend),
    STRSEQ("communities", struct raw_degraded, communities),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t bgp_fields[] = {
    STR("asn", struct raw_bgp, asn),
    STR("router-id", struct raw_bgp, router_id),
    CYAML_FIELD_SEQUENCE("neighbors", CYAML_FLAG_POINTER | OPT, struct raw_bgp, neighbors,
                         &neighbor_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("announce", CYAML_FLAG_POINTER | OPT, struct raw_bgp, announce,
                         &route_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_MAPPING_PTR("degraded", OPT, struct raw_bgp, degraded, degraded_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t bfd_fields[] = {
    STR("interval", struct raw_bfd, interval),
    STR("multiplier", struct raw_bfd, multiplier),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t overload_fields[] = {
    STR("busy", struct raw_overload, busy),
    STR("drops", struct raw_overload, drops),
    STR("inflight", struct raw_overload, inflight),
    STR("latency", struct raw_overload, latency),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t health_fields[] = {
    STR("interval", struct raw_health, interval),
    STR("rise", struct raw_health, rise),
    STR("fall", struct raw_health, fall),
    STR("drain", struct raw_health, drain),
    STR("hold-down", struct raw_health, hold_down),
    CYAML_FIELD_MAPPING_PTR("overload", OPT, struct raw_health, overload, overload_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t control_fields[] = {
    STR("socket", struct raw_control, socket),
    STR("metrics", struct raw_control, metrics),
    STR("group", struct raw_control, group),
    STR("state", struct raw_control, state),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t top_fields[] = {
    CYAML_FIELD_MAPPING_PTR("dns", OPT, struct raw_conf, dns, dns_fields),
    CYAML_FIELD_MAPPING_PTR("bgp", OPT, struct raw_conf, bgp, bgp_fields),
    CYAML_FIELD_MAPPING_PTR("bfd", OPT, struct raw_conf, bfd, bfd_fields),
    CYAML_FIELD_MAPPING_PTR("health", OPT, struct raw_conf, health, health_fields),
    CYAML_FIELD_MAPPING_PTR("control", OPT, struct raw_conf, control, control_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t top_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct raw_conf, top_fields),
};

/* ---- value parsers ----------------------------------------------------- */

/* Decimal digits only: no sign, no space, no 0x (YAML 1.1 would read 010 as octal). */
static int parse_u64(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*end = p;
	*out = v;
	return 0;
}

static int parse_scaled(const char *s, const char *const units[], const uint64_t mult[],
                        uint64_t *out)
{
	const char *end;
	uint64_t v;
	int rc;

	if (!s)
		return -EINVAL;
	rc = parse_u64(s, &end, &v);
	if (rc)
		return rc;
	for (unsigned i = 0; units[i]; i++) {
		if (strcmp(end, units[i]) == 0) {
			if (v > UINT64_MAX / mult[i])
				return -ERANGE;
			*out = v * mult[i];
			return 0;
		}
	}
	return -EINVAL;
}

int conf_parse_duration_ms(const char *s, uint64_t *ms)
{
	/* A bare number is seconds: the unit operators mean for timers and TTLs. */
	static const char *const units[] = {"", "ms", "s", "m", "h", "d", NULL};
	static const uint64_t mult[] = {1000, 1, 1000, 60000, 3600000, 86400000};

	return parse_scaled(s, units, mult, ms);
}

int conf_parse_size(const char *s, uint64_t *bytes)
{
	static const char *const units[] = {"", "B", "KiB", "MiB", "GiB", NULL};
	static const uint64_t mult[] = {1, 1, 1ull << 10, 1ull << 20, 1ull << 30};

	return parse_scaled(s, units, mult, bytes);
}

/* Digits after the point, at most `places` of them, scaled to that many places. */
static int parse_decimal(const char *s, unsigned places, const char **end, uint64_t *out)
{
	uint64_t v;
	int rc = parse_u64(s, end, &v);
	unsigned k = 0;

	if (rc)
		return rc;
	if (**end == '.') {
		const char *p = *end + 1;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++, k++) {
			if (k == places || v > UINT64_MAX / 10 - 9)
				return -EINVAL;
			v = v * 10 + (uint64_t)(*p - '0');
		}
		*end = p;
	}
	for (; k < places; k++) {
		if (v > UINT64_MAX / 10)
			return -ERANGE;
		v *= 10;
	}
	*out = v;
	return 0;
}

int conf_parse_ratio_pm(const char *s, uint32_t *pm)
{
	const char *end;
	uint64_t v;

	if (!s)
		return -EINVAL;
	/* "90%" / "92.5%": tenths of a percent are per mille. */
	if (parse_decimal(s, 1, &end, &v) == 0 && strcmp(end, "%") == 0) {
		if (v > 1000)
			return -ERANGE;
		*pm = (uint32_t)v;
		return 0;
	}
	int rc = parse_decimal(s, 3, &end, &v);
	if (rc || *end)
		return rc ? rc : -EINVAL;
	if (v > 1000)
		return -ERANGE;
	*pm = (uint32_t)v;
	return 0;
}

static int parse_uint_range(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int rc;

	if (!s)
		return -EINVAL;
	rc = parse_u64(s, &end, &v);
	if (rc)
		return rc;
	if (*end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

/* "A:B" (RFC 1997) or "A:B:C" (RFC 8092), parts separated by ':'. */
static int parse_parts(const char *s, unsigned n, uint64_t max, uint32_t *out)
{
	const char *p = s, *end;
	uint64_t v;

	for (unsigned i = 0; i < n; i++) {
		if (parse_u64(p, &end, &v) || v > max)
			return -EINVAL;
		out[i] = (uint32_t)v;
		if (i + 1 < n) {
			if (*end != ':')
				return -EINVAL;
			p = end + 1;
		} else if (*end) {
			return -EINVAL;
		}
	}
	return 0;
}

int conf_parse_resolv(const char *text, struct netaddr *out, unsigned max)
{
	unsigned n = 0;
	const char *line = text;

	while (line && *line && n < max) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[256], word[32], addr[NETADDR_STRLEN + 1];

		if (len < sizeof(buf)) {
			memcpy(buf, line, len);
			buf[len] = '\0';
			/* Comments start with # or ; anywhere on the line (as glibc's parser). */
			buf[strcspn(buf, "#;")] = '\0';
			if (sscanf(buf, "%31s %64s", word, addr) == 2 &&
			    strcmp(word, "nameserver") == 0 && !strchr(addr, '%')) {
				struct netaddr a;
				if (netaddr_parse_ip(addr, &a) == 0) {
					a.port = 53;
					out[n++] = a;
				}
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	return (int)n;
}

/* ---- loader context ------------------------------------------------------ */

struct ld {
	struct conf_sink sink;
	struct conf_pos pos;
	const char *resolv_conf;
	bool errors;
	bool replaced;    /* some node has the wrong kind and was emptied for libcyaml */
	bool listen_lost; /* a dns.listen entry did not load: skip checks against the list */
	/* Every neighbor address seen, valid neighbor or not, for duplicate checks. */
	struct netaddr seen_nb[CONF_MAX_NEIGHBORS];
	unsigned n_seen_nb;
};

static void __attribute__((format(printf, 4, 5)))
err_at(struct ld *ld, const char *path, bool at_key, const char *fmt, ...)
{
	unsigned l, c;
	va_list ap;

	ld->errors = true;
	/* The wrong kind was reported at the node; what follows from emptying it is not news. */
	if (ld->replaced && conf_pos_replaced(&ld->pos, path))
		return;
	conf_pos_find(&ld->pos, path, at_key, &l, &c);
	va_start(ap, fmt);
	conf_sink_vadd(&ld->sink, l, c, fmt, ap);
	va_end(ap);
}

static bool present(struct ld *ld, const char *path)
{
	return conf_pos_get(&ld->pos, path) != NULL;
}

/* Paths longer than the index keeps are cut; lookups then fall back to an ancestor. */
static void __attribute__((format(printf, 3, 4)))
path_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

#define PATH(buf, ...) path_fmt(buf, sizeof(buf), __VA_ARGS__)

static bool get_uint(struct ld *ld, const char *path, const char *s, uint64_t min, uint64_t max,
                     uint64_t *out)
{
	if (!s)
		return false;
	if (parse_uint_range(s, min, max, out) == 0)
		return true;
	err_at(ld, path, false, "%s: expected an integer from %llu to %llu, not '%s'", path,
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
		err_at(ld, path, false, "%s: duration '%s' is out of range", path, s);
	else if (rc)
		err_at(ld, path, false,
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
		err_at(ld, path, false, "%s: '%s' is not a whole number of seconds", path, s);
		return false;
	}
	if (ms / 1000 > max) {
		err_at(ld, path, false, "%s: '%s' exceeds %llu seconds", path, s,
		       (unsigned long long)max);
		return false;
	}
	*out = (uint32_t)(ms / 1000);
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
	err_at(ld, path, false, "%s: expected true or false, not '%s'", path, s);
	return false;
}

static bool get_ip(struct ld *ld, const char *path, const char *s, struct netaddr *out)
{
	if (!s)
		return false;
	if (netaddr_parse_ip(s, out) == 0)
		return true;
	err_at(ld, path, false, "%s: invalid IP address '%s'", path, s);
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
		err_at(ld, path, false, "%s: longer than %zu bytes (%s)", path, max, why);
		return false;
	}
	memcpy(out, s, n + 1);
	return true;
}

static bool check_count(struct ld *ld, const char *path, unsigned n, unsigned max)
{
	if (n <= max)
		return true;
	err_at(ld, path, false, "%s: too many entries (%u, at most %u)", path, n, max);
	return false;
}

static bool check_asn(struct ld *ld, const char *path, const char *s, uint32_t *out)
{
	uint32_t v;

	if (!get_u32(ld, path, s, 1, UINT32_MAX, &v))
		return false;
	if (v == 23456) {
		/* RFC 6793 §9: AS_TRANS is a placeholder, never a real AS. */
		err_at(ld, path, false, "%s: 23456 is AS_TRANS (RFC 6793) and cannot be used",
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
		if (parse_parts(list[i], 2, 65535, p)) {
			err_at(ld, path, false,
			       "%s: invalid community '%s' (expected A:B, each 0..65535)", path,
			       list[i]);
			continue;
		}
		out[k++] = p[0] << 16 | p[1];
	}
	return k;
}

/* ---- defaults -------------------------------------------------------------- */

static void fill_static_defaults(struct conf *c)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	memset(c, 0, sizeof(*c));
	c->dns.threads = ncpu < 1 ? 1 : ncpu > CONF_MAX_THREADS ? CONF_MAX_THREADS : (unsigned)ncpu;
	if (gethostname(c->dns.identity, sizeof(c->dns.identity)) != 0)
		c->dns.identity[0] = '\0';
	c->dns.identity[CONF_IDENTITY_MAX] = '\0';
	c->dns.cache.size_bytes = 64ull << 20;
	c->dns.cache.min_ttl_s = 0;
	c->dns.cache.max_ttl_s = 86400;
	c->dns.cache.negative_ttl_s = 3600; /* RFC 2308 §5; the same as DNS_CACHE_CONF_DEFAULT */
	c->dns.cache.serve_stale_s = 86400;
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

static char *read_small_file(const char *path, size_t *len_out, int *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0, cap = 4096;
	char *buf;

	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		*err = -ENOMEM;
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			char *nb;
			if (cap >= CONF_FILE_MAX) {
				free(buf);
				close(fd);
				*err = -EFBIG;
				return NULL;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				close(fd);
				*err = -ENOMEM;
				return NULL;
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			*err = -errno;
			free(buf);
			close(fd);
			return NULL;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	*len_out = len;
	return buf;
}

static void default_upstreams(struct conf *c, const char *resolv_conf)
{
	struct netaddr ns[CONF_MAX_UPSTREAMS];
	size_t len;
	int err, n;
	char *text;

	c->dns.n_upstreams = 0;
	if (!resolv_conf)
		return;
	text = read_small_file(resolv_conf, &len, &err);
	if (!text)
		return;
	n = conf_parse_resolv(text, ns, CONF_MAX_UPSTREAMS);
	free(text);
	for (int i = 0; i < n && c->dns.n_upstreams < CONF_RESOLV_MAXNS; i++)
		if (!is_own_listen(c, &ns[i]))
			c->dns.upstreams[c->dns.n_upstreams++] = ns[i];
}

void conf_default(struct conf *out, const char *resolv_conf)
{
	fill_static_defaults(out);
	default_listen(out);
	default_allow(out);
	default_upstreams(out, resolv_conf);
}

/* ---- sections ---------------------------------------------------------------- */

static void load_dns(struct ld *ld, const struct raw_dns *r, struct conf *c)
{
	struct conf_dns *d = &c->dns;
	char path[CONF_PATH_LEN];
	uint64_t v;

	if (r && present(ld, "dns.listen")) {
		unsigned n = r->listen_count;
		if (ld->replaced && conf_pos_replaced(&ld->pos, "dns.listen"))
			ld->listen_lost = true;
		if (n == 0)
			err_at(ld, "dns.listen", false, "dns.listen: must not be empty");
		if (!check_count(ld, "dns.listen", n, CONF_MAX_LISTEN))
			n = CONF_MAX_LISTEN;
		for (unsigned i = 0; i < n; i++) {
			struct netaddr a;
			PATH(path, "dns.listen[%u]", i);
			if (netaddr_parse(r->listen[i], 53, &a)) {
				err_at(ld, path, false, "%s: invalid address '%s'", path,
				       r->listen[i]);
				ld->listen_lost = true;
				continue;
			}
			bool dup = false;
			for (unsigned j = 0; j < d->n_listen; j++)
				dup |= netaddr_equal(&d->listen[j], &a);
			if (dup) {
				err_at(ld, path, false, "%s: duplicate listen address '%s'", path,
				       r->listen[i]);
				continue;
			}
			d->listen[d->n_listen++] = a;
		}
	} else {
		default_listen(c);
	}

	if (r && present(ld, "dns.allow")) {
		unsigned n = r->allow_count;
		if (n == 0)
			err_at(ld, "dns.allow", false,
			       "dns.allow: must not be empty (omit it for loopback only)");
		if (!check_count(ld, "dns.allow", n, CONF_MAX_ALLOW))
			n = CONF_MAX_ALLOW;
		for (unsigned i = 0; i < n; i++) {
			PATH(path, "dns.allow[%u]", i);
			if (netprefix_parse(r->allow[i], &d->allow[d->n_allow]))
				err_at(ld, path, false, "%s: invalid prefix '%s'", path,
				       r->allow[i]);
			else
				d->n_allow++;
		}
	} else {
		default_allow(c);
	}

	if (r && present(ld, "dns.upstreams")) {
		unsigned n = r->upstreams_count;
		if (n == 0)
			err_at(ld, "dns.upstreams", false,
			       "dns.upstreams: must not be empty (omit it to use %s)",
			       ld->resolv_conf ? ld->resolv_conf : "resolv.conf");
		if (!check_count(ld, "dns.upstreams", n, CONF_MAX_UPSTREAMS))
			n = CONF_MAX_UPSTREAMS;
		for (unsigned i = 0; i < n; i++) {
			struct netaddr a;
			PATH(path, "dns.upstreams[%u]", i);
			if (netaddr_parse(r->upstreams[i], 53, &a)) {
				err_at(ld, path, false, "%s: invalid address '%s'", path,
				       r->upstreams[i]);
				continue;
			}
			if (is_own_listen(c, &a)) {
				err_at(ld, path, false,
				       "%s: '%s' is one of our own listen addresses (would forward "
				       "to ourselves)",
				       path, r->upstreams[i]);
				continue;
			}
			d->upstreams[d->n_upstreams++] = a;
		}
	} else {
		default_upstreams(c, ld->resolv_conf);
		if (d->n_upstreams == 0)
			err_at(ld, "dns.upstreams", false,
			       "dns.upstreams: not given and %s has no usable nameserver",
			       ld->resolv_conf ? ld->resolv_conf : "no resolv.conf");
	}

	if (!r)
		return;
	get_unsigned(ld, "dns.threads", r->threads, 1, CONF_MAX_THREADS, &d->threads);
	get_string(ld, "dns.identity", r->identity, CONF_IDENTITY_MAX, d->identity,
	           "one TXT string");
	if (r->cache) {
		const struct raw_cache *rc = r->cache;
		if (rc->size && conf_parse_size(rc->size, &v) == 0)
			d->cache.size_bytes = v;
		else if (rc->size)
			err_at(ld, "dns.cache.size", false,
			       "dns.cache.size: invalid size '%s' (bytes, KiB, MiB or GiB)",
			       rc->size);
		get_seconds(ld, "dns.cache.min-ttl", rc->min_ttl, UINT32_MAX, &d->cache.min_ttl_s);
		bool max_ok = get_seconds(ld, "dns.cache.max-ttl", rc->max_ttl, UINT32_MAX,
		                          &d->cache.max_ttl_s);
		get_seconds(ld, "dns.cache.negative-ttl", rc->negative_ttl, UINT32_MAX,
		            &d->cache.negative_ttl_s);
		get_seconds(ld, "dns.cache.serve-stale", rc->serve_stale, UINT32_MAX,
		            &d->cache.serve_stale_s);
		if ((max_ok || !rc->max_ttl) && d->cache.min_ttl_s > d->cache.max_ttl_s)
			err_at(ld, rc->min_ttl ? "dns.cache.min-ttl" : "dns.cache.max-ttl", false,
			       "dns.cache: min-ttl (%us) is greater than max-ttl (%us)",
			       d->cache.min_ttl_s, d->cache.max_ttl_s);
	}
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
		err_at(ld, base, false, "%s: address is required", base);
		ok = false;
	} else if (!get_ip(ld, path, r->address, &nb->address)) {
		ok = false;
	}
	PATH(path, "%s.asn", base);
	if (!r->asn) {
		err_at(ld, base, false, "%s: asn is required", base);
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
			err_at(ld, path, false,
			       "%s: '%s' is not of the same address family as address '%s'", path,
			       r->local_address, r->address);
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
			err_at(ld, path, false,
			       "%s: must be 0 or at least 3 seconds (RFC 4271 section 4.2)", path);
			ok = false;
		} else if (h > CONF_HOLD_TIME_MAX) {
			err_at(ld, path, false, "%s: exceeds %u seconds (a 16-bit field in OPEN)",
			       path, CONF_HOLD_TIME_MAX);
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
			err_at(ld, path, false, "%s: '%s' is not an IPv6 address", path,
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
				err_at(ld, path, false, "%s: duplicate neighbor '%s'", path,
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
		err_at(ld, base, false, "%s: prefix is required", base);
		ok = false;
	} else if (netprefix_parse(r->prefix, &rt->prefix)) {
		err_at(ld, path, false, "%s: invalid prefix '%s'", path, r->prefix);
		ok = false;
	} else {
		bool inside = false;
		for (unsigned j = 0; j < c->dns.n_listen; j++)
			inside |= netprefix_contains(&rt->prefix, &c->dns.listen[j]);
		/* Announcing a VIP we do not answer on would draw traffic into a void.
		 * Unknowable when a listen entry is broken: that one is reported. */
		if (!inside && !ld->listen_lost) {
			err_at(ld, path, false, "%s: no dns.listen address falls inside '%s'", path,
			       r->prefix);
			ok = false;
		}
		for (unsigned j = 0; j < b->n_routes; j++) {
			if (b->routes[j].prefix.family == rt->prefix.family &&
			    b->routes[j].prefix.len == rt->prefix.len &&
			    memcmp(b->routes[j].prefix.addr, rt->prefix.addr, 16) == 0) {
				err_at(ld, path, false, "%s: prefix '%s' is announced twice", path,
				       r->prefix);
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
		if (parse_parts(r->large_communities[k], 3, UINT32_MAX,
		                rt->large_communities[rt->n_large_communities]) == 0)
			rt->n_large_communities++;
		else
			err_at(
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
		if (!present(ld, path))
			PATH(path, "bgp.announce[%u]", raw_of[i]);
		if (dg->enabled) {
			n = merged_count(rt->communities, rt->n_communities, dg->communities,
			                 dg->n_communities);
			if (n > CONF_MAX_COMMUNITIES)
				err_at(ld, path, false,
				       "%s: with bgp.degraded.communities this route carries %u "
				       "communities when degraded, more than %u",
				       path, n, CONF_MAX_COMMUNITIES);
		}
		n = merged_count(rt->communities, rt->n_communities, &gshut, 1);
		if (n > CONF_MAX_COMMUNITIES)
			err_at(ld, path, false,
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
		err_at(ld, "bgp", true, "bgp: asn is required");
	else
		check_asn(ld, "bgp.asn", r->asn, &b->asn);
	if (!r->router_id) {
		err_at(ld, "bgp", true, "bgp: router-id is required");
	} else if (get_ip(ld, "bgp.router-id", r->router_id, &b->router_id)) {
		static const uint8_t zero[4];
		/* RFC 6286 §2.1: a non-zero 4-octet value; we take it in IPv4 form. */
		if (b->router_id.family != AF_INET || memcmp(b->router_id.addr, zero, 4) == 0)
			err_at(ld, "bgp.router-id", false,
			       "bgp.router-id: must be a non-zero IPv4 address, not '%s'",
			       r->router_id);
	}

	n = r->neighbors_count;
	if (n == 0)
		err_at(ld, "bgp.neighbors", !present(ld, "bgp.neighbors"),
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
		err_at(ld, path, false, "%s: '%s' is more than 1 (100%%)", path, s);
	else if (rc)
		err_at(ld, path, false,
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
			err_at(ld, "health.hold-down", false,
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
 * A group name ([A-Za-z0-9_.][A-Za-z0-9_.-]*[$]?, at most 32
 * bytes) or a numeric gid. Only the syntax is checked here: loading stays
 * pure, the name is looked up when the socket is made (ctl_server.h).
 */
static void load_group(struct ld *ld, const char *s, char *out)
{
	size_t n = strlen(s);
	bool ok = n > 0 && n <= CONF_GROUP_MAX;

	for (size_t i = 0; ok && i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		ok = isalnum(ch) || ch == '_' || ch == '.' || (i > 0 && ch == '-') ||
		     (i == n - 1 && i > 0 && ch == '$');
	}
	if (!ok) {
		err_at(ld, "control.group", false,
		       "control.group: '%s' is not a group name or number (at most %u of "
		       "A-Z a-z 0-9 _ . -, not starting with -)",
		       s, CONF_GROUP_MAX);
		return;
	}
	memcpy(out, s, n + 1);
}

static void load_rest(struct ld *ld, const struct raw_conf *r, struct conf *c)
{
	if (r->bfd) {
		if (get_duration_ms(ld, "bfd.interval", r->bfd->interval, &c->bfd.interval_ms) &&
		    c->bfd.interval_ms == 0)
			err_at(ld, "bfd.interval", false, "bfd.interval: must not be 0");
		/* RFC 5880 §4.1: Detect Mult is one octet and must be non-zero. */
		get_unsigned(ld, "bfd.multiplier", r->bfd->multiplier, 1, 255, &c->bfd.multiplier);
	}
	if (r->health) {
		if (get_duration_ms(ld, "health.interval", r->health->interval,
		                    &c->health.interval_ms) &&
		    c->health.interval_ms == 0)
			err_at(ld, "health.interval", false, "health.interval: must not be 0");
		get_unsigned(ld, "health.rise", r->health->rise, 1, 1000, &c->health.rise);
		get_unsigned(ld, "health.fall", r->health->fall, 1, 1000, &c->health.fall);
		get_duration_ms(ld, "health.drain", r->health->drain, &c->health.drain_ms);
		load_health_more(ld, r->health, &c->health);
	}
	if (r->control) {
		const char *s = r->control->socket;
		if (s && !*s)
			err_at(ld, "control.socket", false, "control.socket: must not be empty");
		else
			get_string(ld, "control.socket", s, CONF_SOCKET_MAX, c->control.socket,
			           "sun_path");
		if (r->control->group)
			load_group(ld, r->control->group, c->control.group);
		s = r->control->state;
		if (s && (!*s || *s != '/'))
			err_at(ld, "control.state", false,
			       "control.state: '%s' is not an absolute path", s);
		else
			get_string(ld, "control.state", s, CONF_STATE_MAX, c->control.state,
			           "a file path");
		if (r->control->metrics) {
			if (netaddr_parse(r->control->metrics, CONF_DEFAULT_METRICS_PORT,
			                  &c->control.metrics) == 0)
				c->control.has_metrics = true;
			else
				err_at(ld, "control.metrics", false,
				       "control.metrics: invalid address '%s'",
				       r->control->metrics);
		}
	}
}

/* ---- libcyaml errors ------------------------------------------------------------ */

struct cy_log {
	char buf[2048];
	size_t len;
};

static void cy_log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
	struct cy_log *lg = ctx;
	int n;

	if (level < CYAML_LOG_ERROR || lg->len + 1 >= sizeof(lg->buf))
		return;
	n = vsnprintf(lg->buf + lg->len, sizeof(lg->buf) - lg->len, fmt, args);
	if (n > 0)
		lg->len += (size_t)n < sizeof(lg->buf) - lg->len ? (size_t)n
		                                                 : sizeof(lg->buf) - lg->len - 1;
}

/* "MAPPING", "SEQUENCE_START", "SCALAR", "STRING": what an operator calls it. */
static const char *kind_name(const char *w)
{
	if (strncmp(w, "MAPPING", 7) == 0)
		return "a mapping";
	if (strncmp(w, "SEQUENCE", 8) == 0)
		return "a list";
	return "a single value";
}

/*
 * libcyaml 1.3 logs "Load: <message>", then "Load: Backtrace:" and one line
 * per level, innermost first. 1.3.0 writes "  in mapping field: KEY" and
 * "  in sequence entry: N"; Debian's 1.3.1 writes "  in mapping field 'KEY'
 * (line: L, column: C)" and "  in sequence entry 'N' (...)". N counts the
 * entries begun, so the index is N - 1. "  in mapping" carries no key. Its
 * positions are those of the parser's last event, not of the node, so the
 * path is rebuilt and placed through our own index instead.
 */
static void report_cyaml(struct ld *ld, const struct cy_log *lg, cyaml_err_t err)
{
	char msg[256] = "", path[CONF_PATH_LEN] = "";
	char comps[16][CONF_PATH_LEN];
	unsigned nc = 0;
	const char *p = lg->buf;
	bool at_key = false;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[256], key[CONF_PATH_LEN];
		unsigned idx;

		PATH(line, "%.*s", (int)(len < 255 ? len : 255), p);
		if (strncmp(line, "Load: Backtrace:", 16) == 0) {
			/* nothing */
		} else if (strncmp(line, "Load: ", 6) == 0 && !msg[0]) {
			PATH(msg, "%s", line + 6);
		} else if (nc < 16 && (sscanf(line, "  in mapping field: %127s", key) == 1 ||
		                       sscanf(line, "  in mapping field '%127[^']'", key) == 1)) {
			PATH(comps[nc++], ".%s", key);
		} else if (nc < 16 && (sscanf(line, "  in sequence entry: %u", &idx) == 1 ||
		                       sscanf(line, "  in sequence entry '%u'", &idx) == 1)) {
			PATH(comps[nc++], "[%u]", idx ? idx - 1 : 0);
		}
		p = nl ? nl + 1 : p + len;
	}
	for (unsigned i = nc; i-- > 0;) {
		size_t l = strlen(path);
		path_fmt(path + l, sizeof(path) - l, "%s", comps[i]);
	}
	if (strncmp(msg, "Unexpected key: ", 16) == 0) {
		size_t l = strlen(path);
		path_fmt(path + l, sizeof(path) - l, ".%s", msg + 16);
		at_key = true;
	}
	const char *show = path[0] == '.' ? path + 1 : path;
	memmove(path, show, strlen(show) + 1);
	const char *what = path[0] ? path : "top level";
	char want[32], got[32];
	if (at_key) {
		err_at(ld, path, true, "unknown key '%s'", path);
	} else if (sscanf(msg, "Expecting %31[A-Z_], got event: %31[A-Z_]", want, got) == 2) {
		err_at(ld, path, false, "%s: wrong type: expected %s, got %s", what,
		       kind_name(want), kind_name(got));
	} else {
		err_at(ld, path, false, "%s: %s", what, msg[0] ? msg : cyaml_strerror(err));
	}
}

/* ---- structure: unknown keys and wrong kinds ------------------------------------- */

static enum conf_node_kind schema_kind(const cyaml_schema_value_t *v)
{
	switch (v->type) {
	case CYAML_MAPPING:
		return CONF_NODE_MAPPING;
	case CYAML_SEQUENCE:
	case CYAML_SEQUENCE_FIXED:
		return CONF_NODE_SEQUENCE;
	default:
		return CONF_NODE_SCALAR;
	}
}

static const char *node_kind_name(enum conf_node_kind k)
{
	return k == CONF_NODE_MAPPING    ? "a mapping"
	       : k == CONF_NODE_SEQUENCE ? "a list"
	                                 : "a single value";
}

static const cyaml_schema_value_t *schema_field(const cyaml_schema_value_t *map,
                                                const struct conf_pos_entry *e)
{
	for (const cyaml_schema_field_t *f = map->mapping.fields; f->key; f++)
		if (strlen(f->key) == e->key_len && strcmp(f->key, e->key) == 0)
			return &f->value;
	return NULL;
}

static void walk_schema(const cyaml_schema_value_t *v, char *path, size_t size,
                        void (*fn)(const char *, enum conf_node_kind, void *), void *ctx)
{
	size_t l = strlen(path);

	fn(path, schema_kind(v), ctx);
	if (v->type == CYAML_MAPPING) {
		for (const cyaml_schema_field_t *f = v->mapping.fields; f->key; f++) {
			snprintf(path + l, size - l, "%s%s", l ? "." : "", f->key);
			walk_schema(&f->value, path, size, fn, ctx);
		}
	} else if (v->type == CYAML_SEQUENCE || v->type == CYAML_SEQUENCE_FIXED) {
		snprintf(path + l, size - l, "[]");
		walk_schema(v->sequence.entry, path, size, fn, ctx);
	}
	path[l] = '\0';
}

void conf_schema_walk(void (*fn)(const char *path, enum conf_node_kind kind, void *ctx), void *ctx)
{
	char path[CONF_PATH_LEN] = "";

	walk_schema(&top_schema, path, sizeof(path), fn, ctx);
}

/*
 * Matches every indexed node against the cyaml schema, parents first (the
 * index is in document order). A node under an unknown key or under a node
 * of the wrong kind is not judged: its ancestor's message covers it, so each
 * mistake is reported exactly once. Wrong-kind nodes are marked for
 * conf_pos_rewrite. Returns 0 or -ENOMEM.
 */
static int check_schema(struct ld *ld)
{
	size_t n = ld->pos.n;
	const cyaml_schema_value_t **sch = calloc(n ? n : 1, sizeof(*sch));

	if (!sch)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct conf_pos_entry *e = &ld->pos.e[i];
		const cyaml_schema_value_t *v;

		if (e->parent == CONF_POS_NO_PARENT) {
			v = &top_schema;
		} else {
			const cyaml_schema_value_t *pv = sch[e->parent];
			if (!pv)
				continue;
			if (pv->type == CYAML_MAPPING) {
				v = schema_field(pv, e);
				if (!v) {
					conf_sink_add(&ld->sink, e->key_line, e->key_col,
					              "unknown key '%s'", e->path);
					ld->errors = true;
					continue;
				}
			} else {
				v = pv->sequence.entry;
			}
		}
		enum conf_node_kind want = schema_kind(v);
		if (e->kind != want) {
			conf_sink_add(&ld->sink, e->line, e->col,
			              "%s: wrong type: expected %s, got %s",
			              e->path[0] ? e->path : "top level", node_kind_name(want),
			              node_kind_name(e->kind));
			ld->errors = true;
			ld->replaced = true;
			e->replace = true;
			e->want = want;
			continue;
		}
		sch[i] = v;
	}
	free(sch);
	return 0;
}

/* ---- entry points ------------------------------------------------------------------- */

static void sort_diag(struct conf_diag *d)
{
	/* Stable insertion sort by position: messages read top to bottom. */
	for (unsigned i = 1; i < d->count; i++) {
		struct conf_diag_msg m = d->msgs[i];
		unsigned j = i;
		while (j > 0 &&
		       (d->msgs[j - 1].line > m.line ||
		        (d->msgs[j - 1].line == m.line && d->msgs[j - 1].column > m.column))) {
			d->msgs[j] = d->msgs[j - 1];
			j--;
		}
		d->msgs[j] = m;
	}
}

int conf_load_buffer(const char *text, size_t len, const char *name, const char *resolv_conf,
                     struct conf *out, struct conf_diag *diag)
{
	struct conf_diag local;
	struct raw_conf *raw = NULL;
	struct cy_log lg = {.len = 0};
	struct ld ld;
	cyaml_config_t cfg = {
	    .log_fn = cy_log_fn,
	    .log_ctx = &lg,
	    .mem_fn = cyaml_mem,
	    .log_level = CYAML_LOG_ERROR,
	    .flags = CYAML_CFG_NO_ALIAS | CYAML_CFG_IGNORE_UNKNOWN_KEYS,
	};
	int rc;

	if (!diag)
		diag = &local;
	memset(diag, 0, sizeof(*diag));
	memset(&ld, 0, sizeof(ld));
	ld.sink.name = name ? name : "<config>";
	ld.sink.diag = diag;
	ld.resolv_conf = resolv_conf;
	lg.buf[0] = '\0';

	fill_static_defaults(out);
	rc = conf_pos_build(&ld.pos, text, len, &ld.sink);
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		conf_pos_free(&ld.pos);
		sort_diag(diag);
		return -EINVAL;
	}

	const struct conf_pos_entry *root = conf_pos_get(&ld.pos, "");
	if (root && root->is_scalar) {
		/* An empty document is a null scalar: all defaults. Anything else is not a map. */
		bool empty = true;
		for (size_t i = 0; i < len; i++) {
			const char *l = text + i;
			if (*l == '#') {
				while (i < len && text[i] != '\n')
					i++;
			} else if (!isspace((unsigned char)*l) && *l != '-' && *l != '.') {
				empty = false;
			}
		}
		if (!empty)
			err_at(&ld, "", false, "top level: expected a mapping");
		root = NULL;
	}
	/* A scalar document: empty means all defaults; otherwise its error stands alone. */
	bool loaded = !root && !ld.errors;
	if (root) {
		const char *yaml = text;
		size_t yaml_len = len;
		char *rewritten = NULL;

		rc = check_schema(&ld);
		if (!rc && ld.replaced)
			rc = conf_pos_rewrite(&ld.pos, text, len, &rewritten, &yaml_len);
		if (rc == -ENOMEM) {
			conf_pos_free(&ld.pos);
			return rc;
		}
		if (rewritten)
			yaml = rewritten;
		if (!rc) {
			cyaml_err_t e = cyaml_load_data((const uint8_t *)yaml, yaml_len, &cfg,
			                                &top_schema, (cyaml_data_t **)&raw, NULL);
			if (e == CYAML_ERR_OOM) {
				free(rewritten);
				conf_pos_free(&ld.pos);
				return -ENOMEM;
			}
			if (e != CYAML_OK) {
				/* Structure was checked above; only what that check does not
				 * know can land here (placed through libcyaml's backtrace). */
				report_cyaml(&ld, &lg, e);
				raw = NULL;
			} else {
				loaded = true;
			}
		} else {
			conf_sink_add(&ld.sink, 1, 1, "cannot rewrite the document for loading");
			ld.errors = true;
		}
		free(rewritten);
	}
	if (loaded) {
		struct raw_conf none = {0};
		const struct raw_conf *r = raw ? raw : &none;
		load_dns(&ld, r->dns, out);
		if (r->bgp)
			load_bgp(&ld, r->bgp, out);
		load_rest(&ld, r, out);
	}
	if (raw)
		cyaml_free(&cfg, &top_schema, raw, 0);
	conf_pos_free(&ld.pos);
	sort_diag(diag);
	return ld.errors ? -EINVAL : 0;
}

int conf_load_file(const char *path, const char *resolv_conf, struct conf *out,
                   struct conf_diag *diag)
{
	struct conf_sink s = {.name = path, .diag = diag};
	size_t len;
	int err = 0, rc;
	char *text = read_small_file(path, &len, &err);

	if (!text) {
		if (diag) {
			memset(diag, 0, sizeof(*diag));
			conf_sink_add(&s, 1, 1, "cannot read: %s", strerror(-err));
		}
		return err;
	}
	rc = conf_load_buffer(text, len, path, resolv_conf, out, diag);
	free(text);
	return rc;
}

void conf_diag_print(FILE *f, const struct conf_diag *diag)
{
	for (unsigned i = 0; i < diag->count; i++)
		fprintf(f, "%s\n", diag->msgs[i].text);
	if (diag->overflow)
		fprintf(f, "(%u more errors not shown)\n", diag->overflow);
}
