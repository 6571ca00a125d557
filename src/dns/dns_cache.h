/*
 * dns_cache.h: the DNS answer cache (logic: no I/O, no clock; shared by all workers).
 *
 * Stores upstream answers as wire bytes and serves a hit by copy + patch:
 * copy the stored message, write the client's ID, copy the client's question
 * name over the stored one (0x20 case), write each RR's remaining TTL. A hit
 * parses nothing and allocates nothing.
 *
 * Threads: ONE cache per process, shared by every worker thread; every
 * function may be called from any thread at any time, except dns_cache_free
 * (only once no other thread uses the cache). Lookups run inside a liburcu
 * read-side section (the "bulletproof" flavor, so threads register
 * themselves on first use) and take no lock and write no shared cache line
 * (but the entry's CLOCK bit, once per eviction round); writers (insert,
 * eviction, sweep, the rare reclaim on lookup) take the mutex of the key's
 * shard. Entries unlinked while a lookup may still read them are freed after
 * an RCU grace period (call_rcu). bench/README.md ("Cache") has the
 * measurements that chose this over per-shard mutexes, spinlocks, rwlocks
 * and seqlocks.
 * Shards: the table is cut into a power of two of shards by hash; each has
 * its own lock, CLOCK hand, sweep cursor and an equal share of conf.size, so
 * writers on different shards never meet. Ask for >= 4 x the writer threads.
 * Time: the cache never reads a clock. `now_ms` is the caller's monotonic
 * time in milliseconds (clock_now_ms()); it must not go backwards.
 * Ownership: the cache owns a private copy of every inserted answer (one
 * allocation per entry: header + TTL table + answer). Keys and answers passed
 * in are only read during the call. Lookup output goes to a caller buffer.
 * conf.size bounds what the table holds; an entry unlinked from it goes back
 * to malloc after the RCU grace period (milliseconds), so for that long the
 * process holds it beyond the bound.
 *
 * Key: (lowercased qname in uncompressed wire form, qtype, qclass, DO, CD).
 * The stored answer's question section IS the key's name/type/class (it is
 * checked at insert and stored lowercased), so no separate key copy is kept.
 *
 * What the caller still owns on a hit: header bits that depend on the query
 * (RD, AD for a non-DO/non-AD client), the OPT record (a client without EDNS
 * must not get one, RFC 6891 §7) and truncation to the client's UDP size.
 */
#ifndef ANYCACHE_DNS_CACHE_H
#define ANYCACHE_DNS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dns_cache;

/* The stored offset of the question: always the end of the 12-byte header. */
#define DNS_CACHE_QOFF 12u
/* RFC 8767 §4: TTL written into answers served stale. */
#define DNS_CACHE_STALE_TTL 30u
/* RFC 9520 §3.2: failures are cached at least 1 s and at most 5 min. */
#define DNS_CACHE_SERVFAIL_MIN 1u
#define DNS_CACHE_SERVFAIL_MAX 300u

struct dns_cache_conf {
	size_t size;             /* hard bound in bytes: entries + overhead + hash table */
	uint32_t min_ttl_s;      /* positive answers: each RR TTL raised to at least this */
	uint32_t max_ttl_s;      /* positive answers: each RR TTL lowered to at most this */
	uint32_t negative_ttl_s; /* cap on negative lifetime (RFC 2308 §5) */
	uint32_t servfail_ttl_s; /* SERVFAIL/timeout lifetime, clamped to [1, 300] */
	uint32_t stale_window_s; /* serve-stale window after expiry (RFC 8767 §5); 0 = off */
	unsigned shards;         /* rounded up to a power of two; 0 = 1. Lowered while a
	                            shard's share of size would be under DNS_CACHE_SHARD_MIN */
};

/* The smallest share of conf.size a shard gets: room for a few large answers. */
#define DNS_CACHE_SHARD_MIN  (256u << 10)
#define DNS_CACHE_SHARDS_MAX 4096u

/*
 * Defaults. servfail 5 s: RFC 9520 §3.2 wants >= 1 s so a failing zone is not
 * hammered by every client retry (stubs retry every 1-2 s, so 5 s absorbs a
 * few retries per client), and a short value so a transient upstream blip
 * clears quickly. negative 1 h: RFC 2308 §5 finds "one to three hours" work
 * well; the low end, because the cap only bites for zones that ask for more
 * (their SOA says how long a name stays absent) and a name created meanwhile
 * should not stay hidden for hours; it is also what dns.cache.negative-ttl
 * defaults to (conf.c; tests/conf checks the two agree) and Unbound's
 * cache-max-negative-ttl. stale 1 day follows RFC 8767 §5 ("1-3 days").
 */
#define DNS_CACHE_CONF_DEFAULT                                                                     \
	{                                                                                          \
		.size = 64u << 20, .min_ttl_s = 0, .max_ttl_s = 86400, .negative_ttl_s = 3600,     \
		.servfail_ttl_s = 5, .stale_window_s = 86400, .shards = 1,                         \
	}

/*
 * A lookup/insert key, built by the caller from its parsed request. `qname`
 * is the question name exactly as the client sent it (uncompressed wire
 * form, any letter case, 1..255 bytes including the root label); the cache
 * lowercases it (RFC 4343) for hashing and comparison, and on a hit copies
 * these very bytes into the answer so the client's case comes back.
 */
struct dns_cache_key {
	const uint8_t *qname;
	/* Optional: the same name already lowercased (the request parser made
	 * one), so the hit path does not fold the case a second time. */
	const uint8_t *qname_lc;
	uint16_t qname_len;
	uint16_t qtype;
	uint16_t qclass;
	bool do_bit; /* EDNS DO (RFC 3225): answers with and without DNSSEC RRs differ */
	bool cd_bit; /* CD (RFC 4035 §3.2.2): unvalidated answers differ */
};

enum dns_cache_kind {
	DNS_CACHE_POSITIVE = 0,
	DNS_CACHE_NXDOMAIN, /* RFC 2308 §2.1 */
	DNS_CACHE_NODATA,   /* RFC 2308 §2.2 */
	DNS_CACHE_SERVFAIL, /* SERVFAIL or upstream timeout (RFC 9520 §3.2) */
};

/* Lookup result flags (out-parameter of dns_cache_lookup). */
enum dns_cache_flag {
	DNS_CACHE_F_FRESH = 1u << 0, /* within its lifetime */
	DNS_CACHE_F_STALE = 1u << 1, /* expired, served stale (TTLs = 30) */
	DNS_CACHE_F_PREFETCH =
	    1u << 2, /* first fresh hit in the last 10% of lifetime: refresh it */
};

/*
 * Counters of the writers' work, summed over the shards. Hits, misses and
 * prefetches are the caller's to count (the lookup's result and flags say
 * which): a shared counter would put a write to a shared cache line on every
 * hit, which is what the design avoids.
 */
struct dns_cache_stats {
	uint64_t inserts;    /* entries stored */
	uint64_t replaced;   /* inserts that freed an older entry for the same key */
	uint64_t evictions;  /* entries dropped by CLOCK to make room */
	uint64_t reclaimed;  /* dead entries (past the stale window) freed lazily or by sweep */
	size_t bytes;        /* everything charged against conf.size (includes table_bytes) */
	size_t table_bytes;  /* the cache and shard structs and the hash table */
	size_t answer_bytes; /* sum of stored answer lengths */
	size_t entries;
	uint64_t flushed;   /* entries freed by dns_cache_flush / dns_cache_flush_name */
	unsigned shards;    /* the shard count in use */
	size_t shard_bytes; /* each shard's share of conf.size - table_bytes */
};

/*
 * Creates a cache. `seed` keys the SipHash-1-3 of the table (take it from
 * getrandom()) so remote clients cannot aim queries at one bucket.
 * -EINVAL for a bad conf (min > max, size too small for the table), -ENOMEM.
 */
int dns_cache_new(const struct dns_cache_conf *conf, uint64_t seed, struct dns_cache **out);
void dns_cache_free(struct dns_cache *c);

/*
 * Stores `answer` (len bytes, a full DNS message whose single question is the
 * key's name/type/class at offset 12) under `key`, replacing any entry for the
 * same key. `ttl_offsets` gives the byte offset of the TTL field of every RR
 * whose TTL must count down (the codec's answer scanner computes them; the
 * OPT pseudo-RR's "TTL" is flags and must NOT be listed). Each offset must lie
 * after the question and inside the message.
 *
 * Lifetime (seconds, counted from now_ms):
 *  - POSITIVE: each RR TTL is clamped to [min_ttl, max_ttl]; lifetime = the
 *    smallest clamped TTL. RFC 2181 §8: a TTL with the top bit set counts as 0.
 *  - NXDOMAIN/NODATA: lifetime = min(neg_ttl_s, negative_ttl) where neg_ttl_s
 *    = min(SOA TTL, SOA MINIMUM) from the caller (RFC 2308 §5); RR TTLs are
 *    capped by it.
 *  - SERVFAIL: lifetime = conf servfail_ttl; no stale serving, no prefetch.
 * A patched TTL never exceeds its clamped TTL minus the age, so no client sees
 * more than max_ttl (positive) or the negative lifetime (negative).
 *
 * Returns 1 when stored, 0 when not cached by rule (lifetime 0, or the entry
 * alone would exceed its shard's share of conf.size), -EINVAL for an answer that does not match the
 * key or bad offsets, -ENOMEM.
 */
/*
 * The bounds [*lo, *hi] each RR TTL of an answer of this kind is clamped to
 * (the lifetime rules above; neg_ttl_s as for insert, RFC 2181 §8 applied).
 * The server applies them to the first answer too, so a client never sees
 * a TTL a cache hit would not give (dns_answer_clamp_ttls).
 */
void dns_cache_ttl_bounds(const struct dns_cache *c, enum dns_cache_kind kind, uint32_t neg_ttl_s,
                          uint32_t *lo, uint32_t *hi);

int dns_cache_insert(struct dns_cache *c, const struct dns_cache_key *key, const uint8_t *answer,
                     size_t len, const uint16_t *ttl_offsets, unsigned n_ttl,
                     enum dns_cache_kind kind, uint32_t neg_ttl_s, uint64_t now_ms);

/*
 * Looks `key` up and on a hit writes the patched answer into out[0..cap):
 * client ID, key->qname over the stored question name, remaining TTLs.
 * allow_stale: the caller's upstreams failed, so an expired entry within the
 * stale window may be served (RFC 8767 §4); otherwise expired is a miss.
 * Returns the answer length with *flags = FRESH or STALE (| PREFETCH), or
 * -ENOENT (miss), or -EMSGSIZE when cap is too small (out is left untouched).
 */
int dns_cache_lookup(struct dns_cache *c, const struct dns_cache_key *key, uint16_t client_id,
                     bool allow_stale, uint64_t now_ms, uint8_t *out, size_t cap, unsigned *flags);

/*
 * Bounded sweep: examines at most `budget` entries of the next shard (round
 * robin across calls, from any thread; a shard whose lock is busy is left
 * for the next call) and frees those past their stale window. Call it from a
 * loop timer so dead entries do not wait for memory pressure. Returns the
 * number freed.
 */
unsigned dns_cache_sweep(struct dns_cache *c, uint64_t now_ms, unsigned budget);

/* A consistent snapshot per shard (each shard's lock is taken in turn). */
void dns_cache_stats(struct dns_cache *c, struct dns_cache_stats *out);

/*
 * Operator flushes (not on any query path): every entry, or every entry whose
 * question name is `name` (uncompressed wire form, any letter case, RFC
 * 4343) whatever its type, DO and CD. Both walk the whole cache once.
 * Return the number of entries freed (counted in stats.flushed).
 */
size_t dns_cache_flush(struct dns_cache *c);
/*
 * Reload: new TTL bounds, serve-stale window and size, from any thread,
 * while the cache is in use; its entries are kept (those beyond a smaller
 * size are evicted at once, oldest first as ever). The hash table keeps the
 * size it was made with. conf.shards and servfail_ttl_s are ignored.
 * 0, or -EINVAL (min > max, or a size the table alone would fill).
 */
int dns_cache_set_limits(struct dns_cache *c, const struct dns_cache_conf *conf, uint64_t now_ms);
size_t dns_cache_flush_name(struct dns_cache *c, const uint8_t *name, size_t name_len);

/* ---- persistence: the walk and the restore under dns_cache_save/_load ---- */

/*
 * One live entry as dns_cache_walk shows it. Every pointer points into the
 * entry and is valid only during the visitor call. `ttl[i]` is the clamped
 * TTL the RR at answer offset `ttl_off[i]` had when stored (the answer's own
 * TTL fields are not maintained); the remaining TTL is ttl[i] - age_ms/1000.
 */
struct dns_cache_entry_view {
	const uint8_t *answer; /* stored form, question name lowercased */
	size_t len;
	const uint32_t *ttl;
	const uint16_t *ttl_off;
	unsigned n_ttl;
	enum dns_cache_kind kind;
	bool do_bit, cd_bit;
	uint32_t life_s; /* lifetime from insertion; age_ms past it means stale */
	uint64_t age_ms;
};

/* Visitor: return 0 to go on, anything else stops the walk and is returned. */
typedef int (*dns_cache_walk_fn)(void *arg, const struct dns_cache_entry_view *v);

/*
 * Calls fn for every entry not past its stale window, as an RCU reader:
 * no shard lock is taken, so writers and lookups go on meanwhile. fn runs
 * inside a read-side section: it must not call into the cache, and while it
 * blocks (dns_cache_save's write() of a full buffer) only the freeing of
 * retired entries waits, never a lookup or an insert. Returns 0 or the
 * visitor's stop value.
 */
int dns_cache_walk(struct dns_cache *c, uint64_t now_ms, dns_cache_walk_fn fn, void *arg);

/*
 * dns_cache_insert for an answer received age_ms before now_ms (a restored
 * entry): same checks and lifetime rules, TTLs count down from then. An
 * entry already held for the key is kept (returns 0), and so is nothing
 * when the answer is past its stale window by now. When age_ms > now_ms
 * (the monotonic clock restarted with the host) the excess is taken off
 * every TTL in whole seconds.
 */
int dns_cache_insert_aged(struct dns_cache *c, const struct dns_cache_key *key,
                          const uint8_t *answer, size_t len, const uint16_t *ttl_offsets,
                          unsigned n_ttl, enum dns_cache_kind kind, uint32_t neg_ttl_s,
                          uint64_t now_ms, uint64_t age_ms);

/*
 * The cache on disk (dns_cache_persist.c), so a restarted node serves hits
 * from its first query (issue 11). Wall-clock times are milliseconds since
 * the Unix epoch (CLOCK_REALTIME): the monotonic clock does not survive a
 * reboot, and the age of an entry across a restart is wall time elapsed.
 *
 * dns_cache_save writes every live entry that is not a cached failure, with
 * its age and lifetime, to path atomically: path.tmp is written, fsynced and
 * renamed over path, then the directory is fsynced; a crash leaves the old
 * file or the new one, never a mix. Runs as a cache reader (dns_cache_walk):
 * call it from any thread but a DNS worker's, it takes time in proportion to
 * the cache. Returns 0 or -errno (path.tmp is removed on failure).
 *
 * dns_cache_load reads path and inserts each entry aged by its saved age
 * plus the wall time elapsed since the save (mono_now_ms is the cache's
 * clock, clock_now_ms()). The file is trusted for nothing: a foreign magic,
 * a bad checksum, a truncated or overlong body refuse the whole file
 * (-EBADMSG), a newer format version too (-EPROTONOSUPPORT), a save time
 * after wall_now_ms (the clock went back: no age can be known) gives
 * -ESTALE, and each entry is checked as an upstream answer would be
 * (dns_scan, one question, kind from its RCODE and sections) and skipped
 * if it fails. Entries already in the cache win. Returns the number of
 * entries inserted (>= 0), -ENOENT when there is no file, or -errno.
 */
int dns_cache_save(struct dns_cache *c, const char *path, uint64_t wall_now_ms,
                   uint64_t mono_now_ms);
int dns_cache_load(struct dns_cache *c, const char *path, uint64_t wall_now_ms,
                   uint64_t mono_now_ms);

/* What one load did, for the log, the tests and the fuzzer. */
struct dns_cache_load_stats {
	unsigned entries; /* records in the file */
	unsigned loaded;  /* inserted */
	unsigned expired; /* past their stale window by now (or 0 lifetime) */
	unsigned invalid; /* refused by the per-entry checks */
	unsigned kept;    /* the cache already held the key */
};

/* dns_cache_load's checks on a file image. */
#define DNS_CACHE_LOAD_NOCHECKSUM 0x1u /* fuzzing only: reach the entry parser */
int dns_cache_load_buf(struct dns_cache *c, const uint8_t *buf, size_t len, uint64_t wall_now_ms,
                       uint64_t mono_now_ms, unsigned flags, struct dns_cache_load_stats *st);

/* Bytes one entry costs beyond its answer (header + TTL table + allocator slack). */
size_t dns_cache_entry_overhead(size_t answer_len, unsigned n_ttl);

#endif
