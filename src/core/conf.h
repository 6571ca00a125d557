/*
 * conf.h: the one-file YAML configuration, loaded into plain structs.
 *
 * Ownership: a struct conf is a value. It owns no heap memory (fixed arrays
 * with the caps below), so it can be copied, compared with memcmp (loaders
 * zero it first) and thrown away; a reload builds a new one beside the old.
 * No global state: loading is re-entrant.
 *
 * Loading: libcyaml (schema in conf_schema.c) reads every scalar as text into a raw
 * tree; conf_section.c converts and validates each value itself so ALL errors
 * are collected, each with the line and column of its node. libcyaml gives
 * no usable position (Debian's 1.3.1 backtrace carries the marks of its last
 * event, not of the node), so conf_pos.c builds an index from one libyaml
 * event pass ("bgp.neighbors[0].hold-time" -> line:column). libcyaml stops at
 * its first error, so structure is checked before it runs, against its own
 * schema: every unknown key and every node of the wrong kind is reported,
 * libcyaml loads (ignoring unknown keys) a rewrite with wrong-kind nodes
 * emptied, and the value checks still run on everything else.
 *
 * Units: durations are integer seconds ("10" = 10 s) or strings with a unit
 * ms/s/m/h/d ("100ms", "1d"); stored in milliseconds (*_ms) or, for TTLs and
 * the BGP hold time, in seconds (*_s, whole seconds required). Sizes are
 * bytes or KiB/MiB/GiB, stored in bytes.
 *
 * Defaults (conf_default and every absent key):
 *   dns.listen      127.0.0.1:53 and [::1]:53
 *   dns.allow       127.0.0.0/8 and ::1/128 (everyone else gets REFUSED)
 *   dns.upstreams   resolv.conf nameservers, port 53; entries with a %scope
 *                   are skipped (no interface index to use), entries equal to
 *                   one of our listen addresses are skipped (no loop to
 *                   ourselves), at most CONF_RESOLV_MAXNS are taken (glibc's
 *                   MAXNS). Empty after that: error.
 *   dns.threads     online CPUs (capped at CONF_MAX_THREADS)
 *   dns.identity    gethostname()
 *   dns.tcp-connections 4096 TCP and TLS connections at once, every worker
 *                   together
 *   dns.tcp-per-source 64 connections per source, every worker together,
 *                   sources grouped by tcp-source-prefix-v4 32 /
 *                   tcp-source-prefix-v6 64
 *   dns.tls-listen  absent: no DNS-over-TLS; entries default to port 853 and
 *                   need dns.tls-certificate and dns.tls-key (read at start)
 *   dns.cache       64MiB, min-ttl 0, max-ttl 1d, negative-ttl 1h,
 *                   serve-stale 1d, persist off (an absolute path turns it
 *                   on), persist-interval 0 (save only on stop)
 *   dnstap          off; file: PATH or socket: PATH (one of them), messages
 *                   all four (client-query, client-response,
 *                   forwarder-query, forwarder-response)
 *   bgp             absent: BGP off (bgp.enabled false)
 *   neighbor        port 179, hold-time 90s (RFC 4271 §10 suggests 90 s),
 *                   passive false, bfd false, local-address unset
 *                   (family 0), no next-hop6, no password
 *   announce        local-preference 100, med absent = not sent
 *   bgp.degraded    absent: enabled false (a DEGRADED VIP keeps the
 *                   configured attributes, bgp_policy.h); present:
 *                   local-preference 50, no med, prepend 0, no extra
 *                   communities
 *   communities     a route's, merged as a set with bgp.degraded's (when
 *                   degraded) or with GRACEFUL_SHUTDOWN 65535:0 (when
 *                   draining), must fit CONF_MAX_COMMUNITIES in every state:
 *                   refused at load, never cut at run time
 *   bfd             interval 300ms, multiplier 3
 *   health          interval 200ms, rise 3, fall 2, drain 5s, hold-down 10s
 *                   (health_fsm.h: doubles per DOWN up to 32x, decays when
 *                   stable; at most 1h)
 *   health.overload busy 0.9, drops 100 (per second), inflight 0.8, latency
 *                   500ms; 0 leaves that figure unchecked. Ratios are
 *                   fractions 0..1 with at most 3 decimals or percentages
 *                   ("90%"), stored per mille.
 *   control         socket /run/anycache/control.sock (mode 0660), group
 *                   absent (the daemon's own), state
 *                   /var/lib/anycache/drain.json (drains that outlive a
 *                   restart); metrics off when absent (a metrics address
 *                   without a port gets 9253)
 *   user            absent: keep the user the daemon was started as
 */
#ifndef ANYCACHE_CORE_CONF_H
#define ANYCACHE_CORE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/netaddr.h"

#define CONF_MAX_LISTEN            32
#define CONF_MAX_ALLOW             64
#define CONF_MAX_UPSTREAMS         16
#define CONF_MAX_NEIGHBORS         16
#define CONF_MAX_ROUTES            64
#define CONF_MAX_COMMUNITIES       32 /* per list, and per route after bgp_policy.h's merges */
#define CONF_MAX_LARGE_COMMUNITIES 16
#define CONF_MAX_THREADS           64
#define CONF_RESOLV_MAXNS          3   /* glibc MAXNS: later nameserver lines ignored */
#define CONF_IDENTITY_MAX          255 /* one TXT character-string (RFC 1035 §3.3) */
#define CONF_PASSWORD_MAX          80  /* TCP_MD5SIG_MAXKEYLEN */
#define CONF_SOCKET_MAX            107 /* sizeof(sun_path) - 1 */
#define CONF_GROUP_MAX             32  /* useradd's name limit */
#define CONF_USER_MAX              32  /* useradd's name limit */
#define CONF_STATE_MAX             255
#define CONF_TLS_PATH_MAX          255
#define CONF_PREPEND_MAX           10
#define CONF_HOLD_TIME_MAX         65535 /* 16-bit field in OPEN (RFC 4271 §4.2) */

#define CONF_HOLD_DOWN_MAX_MS 3600000u /* health.hold-down: 1h (x32 at most, health_fsm.h) */

#define CONF_DEFAULT_HOLD_TIME_S  90
#define CONF_DEFAULT_METRICS_PORT 9253
#define CONF_DEFAULT_SOCKET       "/run/anycache/control.sock"
#define CONF_DEFAULT_STATE        "/var/lib/anycache/drain.json"

struct conf_cache {
	uint64_t size_bytes;
	uint32_t min_ttl_s;
	uint32_t max_ttl_s;
	uint32_t negative_ttl_s;
	uint32_t serve_stale_s;
	/* The cache on disk (dns_cache.h): "" = off; saved on stop and, when
	 * persist_interval_ms > 0, that often (0 = only on stop). */
	char persist[CONF_STATE_MAX + 1];
	uint64_t persist_interval_ms;
};

/*
 * dns.rate-limit (response rate limiting, dns_rrl.h): absent = off. Present:
 * responses-per-second required (1..1000000); window 1s (the bucket holds
 * rate x window answers; whole seconds, at most 1h), slip 2 (every 2nd
 * limited answer goes out empty with TC=1; 0 = none, at most 10),
 * ipv4-prefix 24, ipv6-prefix 56 (at most 64), table-size 65536 buckets
 * (at most 16777216; 32 bytes each).
 */
struct conf_rate_limit {
	bool enabled;
	uint32_t rate;
	uint32_t window_s;
	uint32_t slip;
	unsigned v4_prefix, v6_prefix;
	uint32_t entries;
};

#define CONF_COOKIE_SECRET_LEN 16 /* RFC 9018 §4.4: a SipHash-2-4 key */

#define CONF_CLIENT_MEMORY_DEFAULT (256ull << 20)
#define CONF_CLIENT_MEMORY_MIN     (1ull << 20)

/* dns.tcp-connections: every worker's stream server keeps a slot table of
 * that size (16 bytes a slot: any one worker may be handed them all). */
#define CONF_TCP_CONNECTIONS_DEFAULT 4096
#define CONF_TCP_CONNECTIONS_MAX     65536

struct conf_dns {
	struct netaddr listen[CONF_MAX_LISTEN]; /* port always set */
	unsigned n_listen;
	struct netprefix allow[CONF_MAX_ALLOW];
	unsigned n_allow;
	struct netaddr upstreams[CONF_MAX_UPSTREAMS]; /* port always set */
	unsigned n_upstreams;
	unsigned threads; /* 1..CONF_MAX_THREADS */
	char identity[CONF_IDENTITY_MAX + 1];
	struct conf_cache cache;
	/* dns.cookie-secret / dns.cookie-secret-old: 32 hex digits each. Absent:
	 * a random secret per process (cookies then hold for this node only). */
	uint8_t cookie_secret[CONF_COOKIE_SECRET_LEN];
	bool has_cookie_secret;
	uint8_t cookie_secret_old[CONF_COOKIE_SECRET_LEN]; /* still accepted, never made */
	bool has_cookie_secret_old;
	/* dns.require-cookie: a UDP query with a client cookie but no valid
	 * server cookie gets BADCOOKIE with one (RFC 7873 §5.2.3-4, choice 2)
	 * instead of an answer. Default false. */
	bool require_cookie;
	struct conf_rate_limit rate_limit;
	/* DNS over TCP and TLS (dns_stream.h). */
	unsigned tcp_connections;                   /* TCP + TLS connections at once, per node */
	unsigned tcp_per_source;                    /* connections per source prefix, per node */
	uint8_t tcp_prefix4, tcp_prefix6;           /* how sources are grouped for that cap */
	struct netaddr tls_listen[CONF_MAX_LISTEN]; /* RFC 7858, port 853 unless given */
	unsigned n_tls_listen;
	char tls_certificate[CONF_TLS_PATH_MAX + 1]; /* PEM chain; required with tls-listen */
	char tls_key[CONF_TLS_PATH_MAX + 1];         /* PEM private key */
	/* dns.client-memory: the bytes remote parties may make us hold at once,
	 * every worker together (queries waiting for an upstream, TCP/TLS
	 * buffers; core/membudget.h). Default 256 MiB. */
	uint64_t client_memory_bytes;
};

struct conf_neighbor {
	struct netaddr address; /* .port = TCP port to connect to */
	uint32_t asn;
	struct netaddr local_address; /* family 0 = let the kernel choose */
	bool passive;
	uint32_t hold_time_s;                 /* 0 or 3..65535 */
	char password[CONF_PASSWORD_MAX + 1]; /* "" = no TCP MD5 */
	bool bfd;
	struct netaddr next_hop6; /* for IPv6 routes over an IPv4 session */
	bool has_next_hop6;
};

struct conf_route {
	struct netprefix prefix;
	uint32_t local_pref;
	uint32_t med;
	bool has_med;
	uint32_t communities[CONF_MAX_COMMUNITIES]; /* (A << 16) | B */
	unsigned n_communities;
	uint32_t large_communities[CONF_MAX_LARGE_COMMUNITIES][3];
	unsigned n_large_communities;
};

struct conf_degraded {
	bool enabled;
	uint32_t local_pref;
	uint32_t med;
	bool has_med;
	unsigned prepend;                           /* 0..CONF_PREPEND_MAX */
	uint32_t communities[CONF_MAX_COMMUNITIES]; /* added to the route's */
	unsigned n_communities;
};

struct conf_bgp {
	bool enabled;
	uint32_t asn;             /* 1..4294967295, never 23456 (AS_TRANS) */
	struct netaddr router_id; /* IPv4, non-zero (RFC 6286 §2.1) */
	struct conf_neighbor neighbors[CONF_MAX_NEIGHBORS];
	unsigned n_neighbors;
	struct conf_route routes[CONF_MAX_ROUTES];
	unsigned n_routes;
	struct conf_degraded degraded;
};

struct conf_bfd {
	uint64_t interval_ms;
	unsigned multiplier; /* 1..255 (Detect Mult, RFC 5880 §4.1) */
};

/* Load thresholds (health_fsm.h's hysteresis); 0 = that figure is not checked. */
struct conf_overload {
	uint32_t busy_pm;     /* per mille of an interval a worker loop spent working */
	uint32_t drops_per_s; /* datagrams dropped by the kernel on our sockets */
	uint32_t inflight_pm; /* per mille of the upstream in-flight bound in use */
	uint64_t latency_ms;  /* the self-probe's answer time */
};

struct conf_health {
	uint64_t interval_ms;
	unsigned rise;
	unsigned fall;
	uint64_t drain_ms;
	uint64_t hold_down_ms; /* 0..CONF_HOLD_DOWN_MAX_MS */
	struct conf_overload overload;
};

struct conf_control {
	char socket[CONF_SOCKET_MAX + 1];
	char group[CONF_GROUP_MAX + 1]; /* "" = the daemon's own group */
	char state[CONF_STATE_MAX + 1]; /* the drain-state file (absolute path) */
	struct netaddr metrics;
	bool has_metrics;
};

/* dnstap (dns_tap.h): which messages are logged. */
#define CONF_DNSTAP_CLIENT_QUERY       0x1u
#define CONF_DNSTAP_CLIENT_RESPONSE    0x2u
#define CONF_DNSTAP_FORWARDER_QUERY    0x4u
#define CONF_DNSTAP_FORWARDER_RESPONSE 0x8u
#define CONF_DNSTAP_ALL                0xfu

struct conf_dnstap {
	bool enabled;
	bool socket; /* path is a unix socket (fstrm bidirectional), else a file */
	char path[CONF_STATE_MAX + 1];
	unsigned messages; /* CONF_DNSTAP_* */
};

struct conf {
	struct conf_dns dns;
	struct conf_bgp bgp;
	struct conf_bfd bfd;
	struct conf_health health;
	struct conf_control control;
	/* Run as this user once every privileged socket is bound (core/privs.h);
	 * "" = keep the user the process was started as. */
	char user[CONF_USER_MAX + 1];
	struct conf_dnstap dnstap;
};

/* Collected error messages, each "FILE:LINE:COLUMN: message" (1-based). */
#define CONF_DIAG_MAX  64
#define CONF_DIAG_TEXT 256

struct conf_diag_msg {
	unsigned line;
	unsigned column;
	char text[CONF_DIAG_TEXT]; /* full line including "FILE:L:C: " */
};

struct conf_diag {
	struct conf_diag_msg msgs[CONF_DIAG_MAX]; /* sorted by position */
	unsigned count;
	unsigned overflow; /* messages dropped beyond CONF_DIAG_MAX */
	/* Where `user:` is, for the error of a lookup made after loading (the
	 * loader stays pure: it never asks the passwd database). 0 when absent. */
	unsigned user_line, user_col;
};

/*
 * What the defaults depend on outside the file: read once by conf_env_read
 * (conf_env.c, the only part of the loader that touches the system) and
 * handed to the loaders, so loading is a pure function of (text, env) and a
 * test can fabricate any machine. A value; owns nothing.
 */
struct conf_env {
	long ncpu;                                      /* online CPUs (dns.threads default) */
	char hostname[CONF_IDENTITY_MAX + 1];           /* dns.identity default; "" unknown */
	struct netaddr nameservers[CONF_MAX_UPSTREAMS]; /* resolv.conf's, port 53 */
	unsigned n_nameservers;
	/* resolv.conf's path, for messages ("" = none was given). */
	char resolv_conf[CONF_STATE_MAX + 1];
};

/*
 * Reads sysconf(_SC_NPROCESSORS_ONLN), gethostname() and resolv_conf (NULL:
 * none; unreadable: no nameservers, the loader reports it if it needs them).
 */
void conf_env_read(struct conf_env *env, const char *resolv_conf);

/*
 * Loads and validates. Returns 0 (out filled, defaults applied), -EINVAL
 * (diag holds every message; out is unspecified) or -errno for I/O (also
 * one message in diag). env: what defaults are taken from (conf_env_read
 * or fabricated); NULL = an empty one (1 CPU, no hostname, no resolv.conf).
 * diag may be NULL. conf_load_buffer does no I/O.
 */
int conf_load_file(const char *path, const struct conf_env *env, struct conf *out,
                   struct conf_diag *diag);
int conf_load_buffer(const char *text, size_t len, const char *name, const struct conf_env *env,
                     struct conf *out, struct conf_diag *diag);

/* The embedded configuration used without -c: every default above. */
void conf_default(struct conf *out, const struct conf_env *env);

/*
 * Writes the effective configuration as YAML that conf_load_buffer accepts
 * and that loads back to the identical struct. Includes the BGP password.
 * Returns 0 or -EIO.
 */
int conf_print(FILE *f, const struct conf *c);

void conf_diag_print(FILE *f, const struct conf_diag *diag);

/*
 * Parses resolv.conf text: "nameserver ADDR" lines (port 53). Comments
 * (# or ;), other keywords and garbage lines are ignored; IPv6 addresses
 * with a %scope are skipped. Returns the number stored (<= max).
 */
int conf_parse_resolv(const char *text, struct netaddr *out, unsigned max);

/* Value parsers, exposed for tests. Return 0 or -EINVAL (-ERANGE on overflow). */
int conf_parse_duration_ms(const char *s, uint64_t *ms);
int conf_parse_size(const char *s, uint64_t *bytes);
/* A fraction 0..1 with at most 3 decimals ("0.9") or a percentage 0..100 with
 * at most 1 decimal ("90%", "92.5%"), in per mille. */
int conf_parse_ratio_pm(const char *s, uint32_t *pm);

#endif
