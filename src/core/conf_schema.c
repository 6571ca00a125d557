/*
 * conf_schema.c: the libcyaml schema of the raw tree (every scalar read as
 * text; conf_section.c converts) and the structure check against it.
 *
 * libcyaml stops at its first error, so structure is judged here first,
 * against this same schema (no second table that could drift):
 * conf_schema_check walks the libyaml index and reports every unknown key
 * and every node of the wrong kind (mapping / list / single value) at its
 * position. libcyaml then loads with CYAML_CFG_IGNORE_UNKNOWN_KEYS from a
 * rewrite where each wrong-kind node is an empty node of the right kind, so
 * the well-formed rest still loads (conf.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conf_int.h"

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
    STR("persist", struct raw_cache, persist),
    STR("persist-interval", struct raw_cache, persist_interval),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t rate_limit_fields[] = {
    STR("responses-per-second", struct raw_rate_limit, rate),
    STR("window", struct raw_rate_limit, window),
    STR("slip", struct raw_rate_limit, slip),
    STR("ipv4-prefix", struct raw_rate_limit, v4_prefix),
    STR("ipv6-prefix", struct raw_rate_limit, v6_prefix),
    STR("table-size", struct raw_rate_limit, entries),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t dns_fields[] = {
    STRSEQ("listen", struct raw_dns, listen),
    STRSEQ("allow", struct raw_dns, allow),
    STRSEQ("upstreams", struct raw_dns, upstreams),
    STR("threads", struct raw_dns, threads),
    STR("identity", struct raw_dns, identity),
    CYAML_FIELD_MAPPING_PTR("cache", OPT, struct raw_dns, cache, cache_fields),
    STR("cookie-secret", struct raw_dns, cookie_secret),
    STR("cookie-secret-old", struct raw_dns, cookie_secret_old),
    STR("require-cookie", struct raw_dns, require_cookie),
    CYAML_FIELD_MAPPING_PTR("rate-limit", OPT, struct raw_dns, rate_limit, rate_limit_fields),
    STR("tcp-connections", struct raw_dns, tcp_connections),
    STR("tcp-per-source", struct raw_dns, tcp_per_source),
    STR("tcp-source-prefix-v4", struct raw_dns, tcp_prefix4),
    STR("tcp-source-prefix-v6", struct raw_dns, tcp_prefix6),
    STRSEQ("tls-listen", struct raw_dns, tls_listen),
    STR("tls-certificate", struct raw_dns, tls_certificate),
    STR("tls-key", struct raw_dns, tls_key),
    STR("client-memory", struct raw_dns, client_memory),
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

static const cyaml_schema_field_t dnstap_fields[] = {
    STR("file", struct raw_dnstap, file),
    STR("socket", struct raw_dnstap, socket),
    STRSEQ("messages", struct raw_dnstap, messages),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t top_fields[] = {
    CYAML_FIELD_MAPPING_PTR("dns", OPT, struct raw_conf, dns, dns_fields),
    CYAML_FIELD_MAPPING_PTR("bgp", OPT, struct raw_conf, bgp, bgp_fields),
    CYAML_FIELD_MAPPING_PTR("bfd", OPT, struct raw_conf, bfd, bfd_fields),
    CYAML_FIELD_MAPPING_PTR("health", OPT, struct raw_conf, health, health_fields),
    CYAML_FIELD_MAPPING_PTR("control", OPT, struct raw_conf, control, control_fields),
    STR("user", struct raw_conf, user),
    CYAML_FIELD_MAPPING_PTR("dnstap", OPT, struct raw_conf, dnstap, dnstap_fields),
    CYAML_FIELD_END,
};

const cyaml_schema_value_t conf_schema_top = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct raw_conf, top_fields),
};

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

	walk_schema(&conf_schema_top, path, sizeof(path), fn, ctx);
}

/*
 * Matches every indexed node against the cyaml schema, parents first (the
 * index is in document order). A node under an unknown key or under a node
 * of the wrong kind is not judged: its ancestor's message covers it, so each
 * mistake is reported exactly once. Wrong-kind nodes are marked for
 * conf_pos_rewrite. Returns 0 or -ENOMEM.
 */
int conf_schema_check(struct ld *ld)
{
	size_t n = ld->pos.n;
	const cyaml_schema_value_t **sch = calloc(n ? n : 1, sizeof(*sch));

	if (!sch)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct conf_pos_entry *e = &ld->pos.e[i];
		const cyaml_schema_value_t *v;

		if (e->parent == CONF_POS_NO_PARENT) {
			v = &conf_schema_top;
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
