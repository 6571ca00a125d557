/*
 * conf_int.h: shared by the configuration loader's parts, not for anyone else.
 *
 *   conf.c           entry points (load a file or a buffer, defaults) and the
 *                    loader context's message helpers
 *   conf_schema.c    the libcyaml schema (raw tree) and the structure check
 *   conf_value.c     value parsers (numbers, durations, sizes, ratios, parts)
 *                    and the resolv.conf text parser
 *   conf_env.c       the only part that reads the system (struct conf_env)
 *   conf_section.c   defaults and the section loaders/validators
 *   conf_cyaml_log.c libcyaml's log scraped into FILE:LINE:COLUMN messages
 *   conf_pos.c       the libyaml position index; conf_print.c the printer
 *
 * Ownership: the raw tree belongs to libcyaml (cyaml_free); struct ld lives
 * on conf_load_buffer's stack and owns its position index.
 */
#ifndef ANYCACHE_CORE_CONF_INT_H
#define ANYCACHE_CORE_CONF_INT_H

#include <cyaml/cyaml.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"
#include "core/conf_pos.h"

/* Bounds what we read: a configuration or resolv.conf is a few KiB. */
#define CONF_FILE_MAX (1u << 20)

/* ---- raw tree (what libcyaml fills) ---------------------------------- */

struct raw_cache {
	char *size, *min_ttl, *max_ttl, *negative_ttl, *serve_stale, *persist, *persist_interval;
};

struct raw_rate_limit {
	char *rate, *window, *slip, *v4_prefix, *v6_prefix, *entries;
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
	char *cookie_secret, *cookie_secret_old, *require_cookie;
	struct raw_rate_limit *rate_limit;
	char *tcp_connections, *tcp_per_source, *tcp_prefix4, *tcp_prefix6;
	char **tls_listen;
	unsigned tls_listen_count;
	char *tls_certificate, *tls_key;
	char *client_memory;
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

struct raw_dnstap {
	char *file, *socket;
	char **messages;
	unsigned messages_count;
};

struct raw_conf {
	struct raw_dns *dns;
	struct raw_bgp *bgp;
	struct raw_bfd *bfd;
	struct raw_health *health;
	struct raw_control *control;
	char *user;
	struct raw_dnstap *dnstap;
};

/* The schema of the raw tree above (conf_schema.c). */
extern const cyaml_schema_value_t conf_schema_top;

/* ---- loader context (conf.c) --------------------------------------------- */

struct ld {
	struct conf_sink sink;
	struct conf_pos pos;
	const struct conf_env *env; /* never NULL inside the loader */
	bool errors;
	bool replaced;    /* some node has the wrong kind and was emptied for libcyaml */
	bool listen_lost; /* a dns.listen entry did not load: skip checks against the list */
	/* Every neighbor address seen, valid neighbor or not, for duplicate checks. */
	struct netaddr seen_nb[CONF_MAX_NEIGHBORS];
	unsigned n_seen_nb;
};

/* Records an error at path's value (or key); dropped when path lies in a node
 * already reported as the wrong kind. Always marks the load failed. */
void conf_err_at(struct ld *ld, const char *path, bool at_key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool conf_present(struct ld *ld, const char *path);
/* Paths longer than the index keeps are cut; lookups then fall back to an ancestor. */
void conf_path_fmt(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define PATH(buf, ...) conf_path_fmt(buf, sizeof(buf), __VA_ARGS__)

/* ---- value parsers (conf_value.c); 0, -EINVAL or -ERANGE ------------------ */

/* Decimal digits only, *end after the last one. */
int conf_parse_u64(const char *s, const char **end, uint64_t *out);
/* The whole string a decimal integer in min..max. */
int conf_parse_uint_range(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* n integers 0..max separated by ':' ("A:B", "A:B:C"), nothing after. */
int conf_parse_parts(const char *s, unsigned n, uint64_t max, uint32_t *out);

/* ---- structure (conf_schema.c) --------------------------------------------- */

/*
 * Matches every indexed node against conf_schema_top, reports unknown keys
 * and wrong kinds, marks the latter for conf_pos_rewrite. 0 or -ENOMEM.
 */
int conf_schema_check(struct ld *ld);

/* ---- the environment (conf_env.c) ------------------------------------------ */

/* Reads a whole file of at most CONF_FILE_MAX bytes, NUL-terminated (malloc'ed);
 * NULL with *err = -errno. */
char *conf_env_read_file(const char *path, size_t *len_out, int *err);

/* ---- defaults and sections (conf_section.c) --------------------------------- */

/* Zeroes c and sets every scalar default (env: threads, identity). */
void conf_section_defaults(struct conf *c, const struct conf_env *env);
/* The list defaults: dns.listen, dns.allow, dns.upstreams (env's nameservers). */
void conf_section_default_lists(struct conf *c, const struct conf_env *env);
/* Converts and validates the raw tree into c (defaults already in place). */
void conf_section_load(struct ld *ld, const struct raw_conf *r, struct conf *c);

/* ---- libcyaml's log (conf_cyaml_log.c) --------------------------------------- */

struct conf_cyaml_log {
	char buf[2048];
	size_t len;
};

/* cyaml_config_t.log_fn; ctx is a struct conf_cyaml_log. */
void conf_cyaml_log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list args);
/* Turns what libcyaml logged for its failed load into one placed message. */
void conf_cyaml_log_report(struct ld *ld, const struct conf_cyaml_log *lg, cyaml_err_t err);

#endif
