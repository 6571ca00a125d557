/*
 * dns_cache.c: answer cache, see dns_cache.h for the contract.
 *
 * Layout: one malloc block per entry:
 *   struct entry | uint32_t ttl[n_ttl] | uint16_t off[n_ttl] | answer[len]
 * The answer's question (name lowercased at insert, type, class) doubles as
 * the key, so a lookup compares the request's serialized key (dns_hash.h)
 * with answer[12..] and the DO/CD flags kept in the header. Everything but
 * the `bits` octet is immutable once the entry is published.
 *
 * Index: one fixed power-of-two array of bucket heads with singly linked
 * chains, hashed by SipHash-1-3 under a per-cache key. The bucket count is
 * sized from conf.size at creation (one bucket per 128 bytes of budget), so
 * with entries of >= ~100 bytes the load factor stays below ~1.3 and lookups
 * are O(1) without ever rehashing. Shard s owns the contiguous bucket range
 * [s << shard_shift, (s + 1) << shard_shift): the shard is the top bits of
 * the bucket index, so a chain never spans two shards.
 *
 * Concurrency (the lock order is simple: one shard lock at a time, never
 * two; nothing calls out with a lock held):
 *  - Lookups are RCU readers (urcu-bp): chain links are loaded with acquire
 *    and published with release, so a reader sees an entry only after its
 *    bytes; an entry is unlinked under the shard lock and handed to call_rcu,
 *    so it stays readable (its hnext too) until every reader that could have
 *    found it has left its read-side section. A reader writes only the
 *    entry's `bits` (atomic OR, and only when the bit is not already set).
 *  - Writers hold their shard's mutex for the table and ring updates only:
 *    the entry is allocated and filled before the lock is taken, and freed
 *    by the call_rcu thread after it.
 *
 * Eviction: CLOCK (second chance), per shard. A shard's entries sit on a
 * circular list; a hit only sets a REF bit (no list writes on the hot path,
 * unlike LRU); to make room the hand frees the first entry without REF,
 * clearing REF on those it passes. Entries past their stale window are freed
 * whatever their REF bit. New entries go in just behind the hand, i.e. they
 * are examined last. The ring pointers are dead once an entry is unlinked,
 * so the rcu_head that defers its free overlays them (no extra bytes).
 */
#include "dns/dns_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
/*
 * Inline read-side lock/unlock: ~2 ns instead of ~10 ns for two calls into
 * the library and its TLS (bench/README.md). liburcu's README allows
 * _LGPL_SOURCE for LGPL/GPL-compatible code (this project is BSD-2-Clause),
 * and static/urcu-bp.h keeps the inlined functions under LGPL's 10 lines.
 */
#define _LGPL_SOURCE
#include <urcu/urcu-bp.h>

#include "core/wire.h"
#include "dns/dns_hash.h"

#define E_REF        0x01u /* CLOCK reference bit */
#define E_PREFETCHED 0x02u /* a PREFETCH flag was already handed out */

#define RR_MIN_LEN        11u /* root owner (1) + type, class, TTL, rdlength (10) */
#define CACHE_LINE        64u
#define BUCKET_BYTES      128u /* one bucket per this many bytes of conf.size */
#define SHARD_MIN_BUCKETS 16u

struct entry {
	struct entry *_Atomic hnext; /* bucket chain: readers follow it under RCU */
	union {
		struct {
			struct entry *prev, *next; /* CLOCK ring: writers, under the lock */
		} ring;
		struct rcu_head rcu; /* once unlinked: the deferred free */
	} u;
	uint64_t inserted_ms;
	uint32_t hash;   /* bucket = hash & mask; the rest rejects mismatches cheaply */
	uint32_t life_s; /* effective lifetime from inserted_ms */
	uint16_t len;    /* answer length */
	uint16_t n_ttl;
	uint8_t qname_len;
	uint8_t kind;
	uint8_t key_flags;    /* DNS_QKEY_DO, DNS_QKEY_CD */
	_Atomic uint8_t bits; /* E_REF, E_PREFETCHED: set by lookups, REF cleared by the hand */
	/* 48-byte header, so data[] is 8-aligned for the uint32_t/uint16_t tables */
	uint8_t data[];
};

_Static_assert(sizeof(struct entry) == 48, "entry header: 48 bytes (bench/README.md)");
_Static_assert(sizeof(struct rcu_head) <= 2 * sizeof(void *), "rcu_head overlays the ring");

/* One shard: written by writers only, each on its own cache lines. */
struct shard {
	pthread_mutex_t lock;
	struct entry *hand;  /* CLOCK hand: next entry to examine; NULL when empty */
	struct entry *sweep; /* dns_cache_sweep() cursor */
	size_t bytes;        /* entries only; <= cache->shard_cap */
	size_t answer_bytes;
	size_t entries;
	uint64_t inserts, replaced, evictions, reclaimed, flushed;
} __attribute__((aligned(CACHE_LINE)));

/*
 * The limits a reload may change (dns_cache_set_limits) while workers read
 * them: relaxed atomic loads and stores, each value whole; an insert that
 * sees the old TTL bounds or cap while the change lands is harmless.
 */
#define LIMIT(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

struct dns_cache {
	struct dns_cache_conf conf;
	struct dns_hash_key hkey;
	struct entry *_Atomic *buckets;
	uint32_t mask;        /* buckets - 1 */
	unsigned shard_shift; /* shard of bucket b: b >> shard_shift */
	unsigned n_shards;
	size_t shard_cap;   /* each shard's share of conf.size - table_bytes */
	size_t table_bytes; /* cache + shards + buckets, as charged */
	atomic_uint sweep_next;
	atomic_bool deferred; /* something went to call_rcu: free() waits for it */
	struct shard *shards;
};

static inline uint32_t *e_ttl(struct entry *e)
{
	return (uint32_t *)e->data;
}

static inline uint16_t *e_off(struct entry *e)
{
	return (uint16_t *)(e->data + (size_t)e->n_ttl * sizeof(uint32_t));
}

static inline uint8_t *e_ans(struct entry *e)
{
	return e->data + (size_t)e->n_ttl * (sizeof(uint32_t) + sizeof(uint16_t));
}

/*
 * What an allocation of `req` bytes really costs with glibc malloc (Debian
 * 12): request + 8-byte chunk header, rounded up to 16, at least 32. Computed
 * rather than read back with malloc_usable_size() so the accounting is the
 * same under any allocator (sanitizers, jemalloc) and tests can be exact.
 */
static size_t alloc_charge(size_t req)
{
	size_t chunk = (req + sizeof(size_t) + 15) & ~(size_t)15;
	return chunk < 32 ? 32 : chunk;
}

static size_t entry_req(size_t answer_len, unsigned n_ttl)
{
	return sizeof(struct entry) + (size_t)n_ttl * (sizeof(uint32_t) + sizeof(uint16_t)) +
	       answer_len;
}

/* ---- keys ---- */

static int key_build(const struct dns_cache *c, const struct dns_cache_key *k, struct dns_qkey *kb,
                     uint32_t *hash)
{
	if (!k || !k->qname)
		return -EINVAL;
	int rc = dns_qkey_build(kb, &c->hkey, k->qname, k->qname_lc, k->qname_len, k->qtype,
	                        k->qclass, k->do_bit, k->cd_bit);
	*hash = (uint32_t)(kb->hash ^ (kb->hash >> 32));
	return rc;
}

static inline struct shard *shard_of(const struct dns_cache *c, uint32_t hash)
{
	return &c->shards[(hash & c->mask) >> c->shard_shift];
}

/* Under the RCU read lock or the shard's lock. */
static struct entry *find(const struct dns_cache *c, const struct dns_qkey *kb, uint32_t hash)
{
	struct entry *e = atomic_load_explicit(&c->buckets[hash & c->mask], memory_order_acquire);

	for (; e; e = atomic_load_explicit(&e->hnext, memory_order_acquire)) {
		if (e->hash == hash && e->key_flags == kb->flags && e->qname_len == kb->name_len &&
		    memcmp(e_ans(e) + DNS_CACHE_QOFF, kb->b, kb->qlen) == 0)
			return e;
	}
	return NULL;
}

/* ---- lifetimes ---- */

static uint64_t stale_ms(const struct dns_cache *c, const struct entry *e)
{
	/* RFC 8767 covers data the resolver held; a cached failure is never served stale. */
	return e->kind == DNS_CACHE_SERVFAIL ? 0 : (uint64_t)LIMIT(c->conf.stale_window_s) * 1000u;
}

static inline uint64_t age_ms(const struct entry *e, uint64_t now_ms)
{
	return now_ms > e->inserted_ms ? now_ms - e->inserted_ms : 0;
}

/* Past expiry and past the stale window: nothing will ever use it again. */
static bool is_dead(const struct dns_cache *c, const struct entry *e, uint64_t now_ms)
{
	return age_ms(e, now_ms) >= (uint64_t)e->life_s * 1000u + stale_ms(c, e);
}

/* ---- entry list management (shard lock held) ---- */

static void free_entry_rcu(struct rcu_head *h)
{
	free((char *)h - offsetof(struct entry, u.rcu));
}

/* The link that points at e in its chain. */
static struct entry *_Atomic *chain_link(struct dns_cache *c, struct entry *e)
{
	struct entry *_Atomic *pp = &c->buckets[e->hash & c->mask];
	struct entry *cur;

	while ((cur = atomic_load_explicit(pp, memory_order_relaxed)) != e)
		pp = &cur->hnext;
	return pp;
}

/*
 * Takes e off its CLOCK ring and the accounting and hands it to call_rcu;
 * the caller has already taken it out of its chain.
 */
static void retire(struct dns_cache *c, struct shard *sh, struct entry *e)
{
	struct entry *nx = e->u.ring.next == e ? NULL : e->u.ring.next;
	if (sh->hand == e)
		sh->hand = nx;
	if (sh->sweep == e)
		sh->sweep = nx;
	e->u.ring.prev->u.ring.next = e->u.ring.next;
	e->u.ring.next->u.ring.prev = e->u.ring.prev;

	sh->bytes -= alloc_charge(entry_req(e->len, e->n_ttl));
	sh->answer_bytes -= e->len;
	sh->entries--;
	atomic_store_explicit(&c->deferred, true, memory_order_relaxed);
	urcu_bp_call_rcu(&e->u.rcu, free_entry_rcu);
}

static void unlink_retire(struct dns_cache *c, struct shard *sh, struct entry *e)
{
	/* Readers standing on e still follow e->hnext, which stays as it is. */
	atomic_store_explicit(chain_link(c, e),
	                      atomic_load_explicit(&e->hnext, memory_order_relaxed),
	                      memory_order_release);
	retire(c, sh, e);
}

/* One CLOCK step sequence: frees exactly one entry; the ring must be non-empty. */
static void evict_one(struct dns_cache *c, struct shard *sh, uint64_t now_ms)
{
	for (;;) {
		struct entry *e = sh->hand;
		if (is_dead(c, e, now_ms)) {
			sh->reclaimed++;
			unlink_retire(c, sh, e);
			return;
		}
		if (!(atomic_load_explicit(&e->bits, memory_order_relaxed) & E_REF)) {
			sh->evictions++;
			unlink_retire(c, sh, e);
			return;
		}
		atomic_fetch_and_explicit(&e->bits, (uint8_t)~E_REF, memory_order_relaxed);
		sh->hand = e->u.ring.next;
	}
}

/*
 * Publishes e: at the head of its chain, or, replacing `old` (same key), in
 * old's very place, so a lookup anywhere in the chain meets one or the other
 * (inserted at the head, it could be behind a reader that then finds old
 * already bypassed: a miss). The caller retires old afterwards.
 */
static void link_entry(struct dns_cache *c, struct shard *sh, struct entry *e, struct entry *old)
{
	struct entry *_Atomic *pp = old ? chain_link(c, old) : &c->buckets[e->hash & c->mask];
	struct entry *next = old ? atomic_load_explicit(&old->hnext, memory_order_relaxed)
	                         : atomic_load_explicit(pp, memory_order_relaxed);

	atomic_store_explicit(&e->hnext, next, memory_order_relaxed);
	/* Release: a reader that loads the link sees every byte written before. */
	atomic_store_explicit(pp, e, memory_order_release);
	if (!sh->hand) {
		e->u.ring.next = e->u.ring.prev = e;
		sh->hand = e;
	} else {
		e->u.ring.next = sh->hand;
		e->u.ring.prev = sh->hand->u.ring.prev;
		e->u.ring.prev->u.ring.next = e;
		sh->hand->u.ring.prev = e;
	}
}

/* ---- public API ---- */

static unsigned pow2_at_least(unsigned n)
{
	unsigned p = 1;
	while (p < n && p < DNS_CACHE_SHARDS_MAX)
		p *= 2;
	return p;
}

int dns_cache_new(const struct dns_cache_conf *conf, uint64_t seed, struct dns_cache **out)
{
	*out = NULL;
	if (!conf || conf->min_ttl_s > conf->max_ttl_s)
		return -EINVAL;

	unsigned ns = pow2_at_least(conf->shards ? conf->shards : 1);
	while (ns > 1 && conf->size / ns < DNS_CACHE_SHARD_MIN)
		ns /= 2;
	size_t nb = SHARD_MIN_BUCKETS * (size_t)ns;
	while (nb * 2 <= conf->size / BUCKET_BYTES && nb < (1u << 31))
		nb *= 2;
	unsigned per = (unsigned)(nb / ns), shift = 0;
	while ((1u << shift) < per)
		shift++;

	struct dns_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	c->shards = aligned_alloc(CACHE_LINE, ns * sizeof(struct shard));
	if (!c->buckets || !c->shards) {
		free(c->buckets);
		free(c->shards);
		free(c);
		return -ENOMEM;
	}
	memset(c->shards, 0, ns * sizeof(struct shard));
	for (unsigned i = 0; i < ns; i++)
		pthread_mutex_init(&c->shards[i].lock, NULL);
	c->n_shards = ns;
	c->conf = *conf;
	c->conf.shards = ns;
	if (c->conf.servfail_ttl_s < DNS_CACHE_SERVFAIL_MIN)
		c->conf.servfail_ttl_s = DNS_CACHE_SERVFAIL_MIN;
	if (c->conf.servfail_ttl_s > DNS_CACHE_SERVFAIL_MAX)
		c->conf.servfail_ttl_s = DNS_CACHE_SERVFAIL_MAX;
	c->mask = (uint32_t)(nb - 1);
	c->shard_shift = shift;
	c->hkey = dns_hash_key_from_seed(seed);
	c->table_bytes = alloc_charge(sizeof(*c)) + alloc_charge(nb * sizeof(*c->buckets)) +
	                 alloc_charge(ns * sizeof(struct shard));
	/* The table alone must leave room for entries; 1 KiB is a floor, not a tuning. */
	if (c->table_bytes + 1024 > conf->size) {
		dns_cache_free(c);
		return -EINVAL;
	}
	c->shard_cap = (conf->size - c->table_bytes) / ns;
	*out = c;
	return 0;
}

void dns_cache_free(struct dns_cache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->n_shards; i++) {
		struct shard *sh = &c->shards[i];
		struct entry *e = sh->hand;
		if (e) {
			e->u.ring.prev->u.ring.next = NULL; /* break the ring */
			while (e) {
				struct entry *nx = e->u.ring.next;
				free(e);
				e = nx;
			}
		}
		pthread_mutex_destroy(&sh->lock);
	}
	/* Entries retired earlier are freed by the call_rcu thread; wait for them so
	 * nothing this cache allocated outlives it (leak checkers, tests). */
	if (atomic_load(&c->deferred))
		urcu_bp_barrier();
	free(c->buckets);
	free(c->shards);
	free(c);
}

/* RFC 2181 §8: a TTL with the most significant bit set is treated as zero. */
static inline uint32_t ttl_sane(uint32_t t)
{
	return (t & 0x80000000u) ? 0 : t;
}

/* The TTL field at off (checked by the caller to lie inside the answer). */
static uint32_t ttl_at(const uint8_t *answer, uint16_t off)
{
	struct wire w = wire_init(answer + off, 4);
	return ttl_sane(wire_u32(&w));
}

/* The answer must be a response with exactly the key's question at offset 12. */
static bool answer_matches(const uint8_t *answer, size_t len, const struct dns_qkey *kb,
                           const struct dns_cache_key *key)
{
	struct wire w = wire_init(answer, len);
	wire_skip(&w, 2); /* ID */
	uint16_t flags = wire_u16(&w);
	uint16_t qdcount = wire_u16(&w);
	wire_skip(&w, 6); /* AN, NS, AR counts */
	const uint8_t *name = wire_ptr(&w, kb->name_len);
	uint16_t qtype = wire_u16(&w);
	uint16_t qclass = wire_u16(&w);

	if (w.err || len > UINT16_MAX || !(flags & 0x8000) || qdcount != 1)
		return false;
	for (size_t i = 0; i < kb->name_len; i++)
		if (dns_lower(name[i]) != kb->b[i])
			return false;
	return qtype == key->qtype && qclass == key->qclass; /* type, class: exact */
}

void dns_cache_ttl_bounds(const struct dns_cache *c, enum dns_cache_kind kind, uint32_t neg_ttl_s,
                          uint32_t *lo, uint32_t *hi)
{
	*lo = 0;
	switch (kind) {
	case DNS_CACHE_POSITIVE:
		*lo = LIMIT(c->conf.min_ttl_s);
		*hi = LIMIT(c->conf.max_ttl_s);
		break;
	case DNS_CACHE_NXDOMAIN:
	case DNS_CACHE_NODATA: /* RFC 2308 §5 */
		*hi = ttl_sane(neg_ttl_s);
		if (*hi > LIMIT(c->conf.negative_ttl_s))
			*hi = LIMIT(c->conf.negative_ttl_s);
		break;
	default: /* SERVFAIL, RFC 9520 §3.2 */
		*hi = c->conf.servfail_ttl_s;
		break;
	}
}

/*
 * The insert behind dns_cache_insert and dns_cache_insert_aged: the entry
 * counts as inserted age_ms before now_ms. keep_old: an entry already held
 * for the key wins (a restored answer never displaces a live one).
 */
static int insert_at(struct dns_cache *c, const struct dns_cache_key *key, const uint8_t *answer,
                     size_t len, const uint16_t *ttl_offsets, unsigned n_ttl,
                     enum dns_cache_kind kind, uint32_t neg_ttl_s, uint64_t now_ms, uint64_t age_ms,
                     bool keep_old)
{
	struct dns_qkey kb;
	uint32_t hash;
	int rc = key_build(c, key, &kb, &hash);
	if (rc < 0)
		return rc;
	if (!answer || kind > DNS_CACHE_SERVFAIL || (n_ttl && !ttl_offsets))
		return -EINVAL;
	if (!answer_matches(answer, len, &kb, key))
		return -EINVAL;
	size_t qend = DNS_CACHE_QOFF + kb.qlen;
	/* Cap the count by what the bytes after the question could hold. */
	if (n_ttl > (len - qend) / RR_MIN_LEN)
		return -EINVAL;
	for (unsigned i = 0; i < n_ttl; i++)
		if (ttl_offsets[i] < qend || (size_t)ttl_offsets[i] + 4 > len)
			return -EINVAL;
	if (kind == DNS_CACHE_POSITIVE && n_ttl == 0)
		return -EINVAL;

	/* Lifetime: see dns_cache.h. `lo`/`hi` clamp each RR; life = min over them. */
	uint32_t lo, hi, life;
	dns_cache_ttl_bounds(c, kind, neg_ttl_s, &lo, &hi);
	life = hi;
	for (unsigned i = 0; i < n_ttl; i++) {
		uint32_t t = ttl_at(answer, ttl_offsets[i]);
		t = t < lo ? lo : t > hi ? hi : t;
		if (t < life)
			life = t;
	}

	/*
	 * A monotonic clock younger than the entry (the host rebooted since it
	 * was saved) cannot hold its insertion time: count the excess whole
	 * seconds off every TTL instead, so the remaining lifetimes stay right.
	 */
	uint32_t shift_s = 0;
	if (age_ms > now_ms) {
		uint64_t sh = (age_ms - now_ms + 999) / 1000;
		shift_s = sh > life ? life : (uint32_t)sh;
		life -= shift_s;
		age_ms = age_ms > (uint64_t)shift_s * 1000u + now_ms
		             ? now_ms
		             : age_ms - (uint64_t)shift_s * 1000u;
	}

	/* Built before the lock is taken: the critical section is only the table update. */
	size_t need = entry_req(len, n_ttl);
	size_t charge = alloc_charge(need);
	struct entry *e = NULL;
	if (life > 0 && charge <= LIMIT(c->shard_cap)) {
		e = malloc(need);
		if (!e)
			return -ENOMEM;
		e->inserted_ms = now_ms - age_ms;
		e->hash = hash;
		e->life_s = life;
		e->len = (uint16_t)len;
		e->n_ttl = (uint16_t)n_ttl;
		e->qname_len = (uint8_t)kb.name_len;
		e->kind = (uint8_t)kind;
		e->key_flags = kb.flags;
		atomic_init(&e->bits, 0);
		uint32_t *ttl = e_ttl(e);
		uint16_t *off = e_off(e);
		for (unsigned i = 0; i < n_ttl; i++) {
			uint32_t t = ttl_at(answer, ttl_offsets[i]);
			t = t < lo ? lo : t > hi ? hi : t;
			ttl[i] = t > shift_s ? t - shift_s : 0;
			off[i] = ttl_offsets[i];
		}
		uint8_t *ans = e_ans(e);
		memcpy(ans, answer, len);
		memcpy(ans + DNS_CACHE_QOFF, kb.b, kb.qlen); /* stored lowercased: it is the key */
		if (is_dead(c, e, now_ms)) {                 /* restored past its stale window */
			free(e);
			return 0;
		}
	}

	struct shard *sh = shard_of(c, hash);
	pthread_mutex_lock(&sh->lock);
	struct entry *old = find(c, &kb, hash);
	if (old && keep_old) {
		pthread_mutex_unlock(&sh->lock);
		free(e);
		return 0;
	}
	if (e) {
		/* In old's place: a refresh never opens a window where the key is missing. */
		link_entry(c, sh, e, old);
		sh->bytes += charge;
		sh->answer_bytes += len;
		sh->entries++;
		sh->inserts++;
	}
	if (old) {
		/* The newer answer wins, even one we will not cache (TTL 0 means "do not
		 * reuse"). */
		sh->replaced++;
		if (e)
			retire(c, sh, old); /* already out of the chain: e took its place */
		else
			unlink_retire(c, sh, old);
	}
	/* The new entry is behind the hand, examined last: what goes is older. */
	while (sh->bytes > LIMIT(c->shard_cap))
		evict_one(c, sh, now_ms);
	pthread_mutex_unlock(&sh->lock);
	return e ? 1 : 0;
}

int dns_cache_insert(struct dns_cache *c, const struct dns_cache_key *key, const uint8_t *answer,
                     size_t len, const uint16_t *ttl_offsets, unsigned n_ttl,
                     enum dns_cache_kind kind, uint32_t neg_ttl_s, uint64_t now_ms)
{
	return insert_at(c, key, answer, len, ttl_offsets, n_ttl, kind, neg_ttl_s, now_ms, 0,
	                 false);
}

int dns_cache_insert_aged(struct dns_cache *c, const struct dns_cache_key *key,
                          const uint8_t *answer, size_t len, const uint16_t *ttl_offsets,
                          unsigned n_ttl, enum dns_cache_kind kind, uint32_t neg_ttl_s,
                          uint64_t now_ms, uint64_t age_ms)
{
	return insert_at(c, key, answer, len, ttl_offsets, n_ttl, kind, neg_ttl_s, now_ms, age_ms,
	                 true);
}

/* A lookup found a dead entry: free it now rather than wait for the sweep. */
static void reclaim(struct dns_cache *c, const struct dns_qkey *kb, uint32_t hash, uint64_t now_ms)
{
	struct shard *sh = shard_of(c, hash);

	pthread_mutex_lock(&sh->lock);
	struct entry *e = find(c, kb, hash);
	if (e && is_dead(c, e, now_ms)) {
		sh->reclaimed++;
		unlink_retire(c, sh, e);
	}
	pthread_mutex_unlock(&sh->lock);
}

int dns_cache_lookup(struct dns_cache *c, const struct dns_cache_key *key, uint16_t client_id,
                     bool allow_stale, uint64_t now_ms, uint8_t *out, size_t cap, unsigned *flags)
{
	struct dns_qkey kb;
	uint32_t hash;
	bool dead = false;
	int rc;

	*flags = 0;
	rc = key_build(c, key, &kb, &hash);
	if (rc < 0)
		return rc;

	urcu_bp_read_lock();
	struct entry *e = find(c, &kb, hash);
	if (!e) {
		rc = -ENOENT;
		goto out;
	}
	uint64_t age = age_ms(e, now_ms);
	uint64_t life = (uint64_t)e->life_s * 1000u;
	bool fresh = age < life;
	if (!fresh && !(allow_stale && age < life + stale_ms(c, e))) {
		dead = is_dead(c, e, now_ms);
		rc = -ENOENT;
		goto out;
	}
	if (cap < e->len) {
		rc = -EMSGSIZE;
		goto out;
	}

	struct wbuf w = wbuf_init(out, cap);
	wbuf_bytes(&w, e_ans(e), e->len);
	wbuf_put_u16_at(&w, 0, client_id);
	memcpy(out + DNS_CACHE_QOFF, key->qname, e->qname_len); /* the client's letter case */
	/* fresh: age < life <= ttl[i], so every written TTL is >= 1 */
	uint32_t age_s = (uint32_t)(age / 1000u);
	const uint32_t *ttl = e_ttl(e);
	const uint16_t *off = e_off(e);
	for (unsigned i = 0; i < e->n_ttl; i++)
		wbuf_put_u32_at(&w, off[i], fresh ? ttl[i] - age_s : DNS_CACHE_STALE_TTL);

	/* Test before writing: a hot entry's line stays shared between cores. */
	uint8_t bits = atomic_load_explicit(&e->bits, memory_order_relaxed);
	if (!(bits & E_REF))
		atomic_fetch_or_explicit(&e->bits, E_REF, memory_order_relaxed);
	if (!fresh) {
		*flags = DNS_CACHE_F_STALE;
	} else {
		*flags = DNS_CACHE_F_FRESH;
		/* Last 10% of the lifetime: one hit in the whole process asks for a refresh. */
		if (e->kind != DNS_CACHE_SERVFAIL && !(bits & E_PREFETCHED) &&
		    age >= life - life / 10 &&
		    !(atomic_fetch_or_explicit(&e->bits, E_PREFETCHED, memory_order_relaxed) &
		      E_PREFETCHED))
			*flags |= DNS_CACHE_F_PREFETCH;
	}
	rc = e->len;
out:
	urcu_bp_read_unlock();
	if (dead) /* lazy reclaim, outside the read-side section */
		reclaim(c, &kb, hash, now_ms);
	return rc;
}

unsigned dns_cache_sweep(struct dns_cache *c, uint64_t now_ms, unsigned budget)
{
	unsigned idx = atomic_fetch_add_explicit(&c->sweep_next, 1, memory_order_relaxed);
	struct shard *sh = &c->shards[idx & (c->n_shards - 1)];
	unsigned freed = 0;

	/* A busy shard is being written: leave it to the next call, never wait here. */
	if (pthread_mutex_trylock(&sh->lock))
		return 0;
	if (!sh->sweep)
		sh->sweep = sh->hand;
	for (unsigned i = 0; i < budget && sh->sweep; i++) {
		struct entry *e = sh->sweep;
		sh->sweep = e->u.ring.next;
		if (is_dead(c, e, now_ms)) {
			sh->reclaimed++;
			unlink_retire(c, sh, e);
			freed++;
		}
	}
	pthread_mutex_unlock(&sh->lock);
	return freed;
}

int dns_cache_set_limits(struct dns_cache *c, const struct dns_cache_conf *conf, uint64_t now_ms)
{
	if (!conf || conf->min_ttl_s > conf->max_ttl_s || c->table_bytes + 1024 > conf->size)
		return -EINVAL;
	__atomic_store_n(&c->conf.min_ttl_s, conf->min_ttl_s, __ATOMIC_RELAXED);
	__atomic_store_n(&c->conf.max_ttl_s, conf->max_ttl_s, __ATOMIC_RELAXED);
	__atomic_store_n(&c->conf.negative_ttl_s, conf->negative_ttl_s, __ATOMIC_RELAXED);
	__atomic_store_n(&c->conf.stale_window_s, conf->stale_window_s, __ATOMIC_RELAXED);
	/* The table keeps the size it was made with; only the entries' share moves. */
	__atomic_store_n(&c->conf.size, conf->size, __ATOMIC_RELAXED);
	__atomic_store_n(&c->shard_cap, (conf->size - c->table_bytes) / c->n_shards,
	                 __ATOMIC_RELAXED);
	/* Smaller: every shard gives back what no longer fits now, not at its next insert. */
	for (unsigned i = 0; i < c->n_shards; i++) {
		struct shard *sh = &c->shards[i];
		pthread_mutex_lock(&sh->lock);
		while (sh->bytes > c->shard_cap && sh->entries)
			evict_one(c, sh, now_ms);
		pthread_mutex_unlock(&sh->lock);
	}
	return 0;
}

void dns_cache_stats(struct dns_cache *c, struct dns_cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->shards = c->n_shards;
	out->shard_bytes = LIMIT(c->shard_cap);
	out->table_bytes = c->table_bytes;
	out->bytes = c->table_bytes;
	for (unsigned i = 0; i < c->n_shards; i++) {
		struct shard *sh = &c->shards[i];
		pthread_mutex_lock(&sh->lock);
		out->inserts += sh->inserts;
		out->replaced += sh->replaced;
		out->evictions += sh->evictions;
		out->reclaimed += sh->reclaimed;
		out->flushed += sh->flushed;
		out->bytes += sh->bytes;
		out->answer_bytes += sh->answer_bytes;
		out->entries += sh->entries;
		pthread_mutex_unlock(&sh->lock);
	}
}

/*
 * Operator flushes (anycachectl cache flush). Shard by shard under its lock,
 * entries retired through call_rcu as evictions are, so readers standing on
 * them are safe. A flush walks whole shards: it is rare and bounded by the
 * cache's size, not by traffic.
 */
static size_t flush_shard(struct dns_cache *c, struct shard *sh, const uint8_t *lc, size_t lc_len)
{
	size_t n = 0;

	pthread_mutex_lock(&sh->lock);
	/* Each entry once: `left` bounds the walk round the ring as it shrinks. */
	struct entry *e = sh->hand;
	for (size_t left = sh->entries; e && left; left--) {
		struct entry *nx = e->u.ring.next == e ? NULL : e->u.ring.next;
		if (!lc || (e->qname_len == lc_len &&
		            memcmp(e_ans(e) + DNS_CACHE_QOFF, lc, lc_len) == 0)) {
			unlink_retire(c, sh, e);
			n++;
		}
		e = nx;
	}
	sh->flushed += n;
	pthread_mutex_unlock(&sh->lock);
	return n;
}

size_t dns_cache_flush(struct dns_cache *c)
{
	size_t n = 0;

	for (unsigned i = 0; i < c->n_shards; i++)
		n += flush_shard(c, &c->shards[i], NULL, 0);
	return n;
}

size_t dns_cache_flush_name(struct dns_cache *c, const uint8_t *name, size_t name_len)
{
	uint8_t lc[255]; /* RFC 1035 §3.1: a whole name */
	size_t n = 0;

	if (!name || name_len == 0 || name_len > sizeof(lc))
		return 0;
	for (size_t i = 0; i < name_len; i++)
		lc[i] = dns_lower(name[i]);
	/* Every type and DO/CD bit of the name: they may sit in any shard. */
	for (unsigned i = 0; i < c->n_shards; i++)
		n += flush_shard(c, &c->shards[i], lc, name_len);
	return n;
}

size_t dns_cache_entry_overhead(size_t answer_len, unsigned n_ttl)
{
	return alloc_charge(entry_req(answer_len, n_ttl)) - answer_len;
}

/*
 * A reader like a lookup: bucket by bucket inside short read-side sections
 * (WALK_BUCKETS at a time, so a long walk never holds back grace periods for
 * long); the bucket array never moves, so the index is a safe resume point.
 * An entry replaced during the walk may be seen in its old form, its new
 * form, or both: the visitor sees consistent entries, not a snapshot.
 */
#define WALK_BUCKETS 64u

int dns_cache_walk(struct dns_cache *c, uint64_t now_ms, dns_cache_walk_fn fn, void *arg)
{
	int rc = 0;

	for (size_t b = 0; b <= c->mask && rc == 0;) {
		urcu_bp_read_lock();
		for (size_t end = b + WALK_BUCKETS; b <= c->mask && b < end && rc == 0; b++) {
			struct entry *e =
			    atomic_load_explicit(&c->buckets[b], memory_order_acquire);
			for (; e && rc == 0;
			     e = atomic_load_explicit(&e->hnext, memory_order_acquire)) {
				if (is_dead(c, e, now_ms))
					continue;
				struct dns_cache_entry_view v = {
				    .answer = e_ans(e),
				    .len = e->len,
				    .ttl = e_ttl(e),
				    .ttl_off = e_off(e),
				    .n_ttl = e->n_ttl,
				    .kind = (enum dns_cache_kind)e->kind,
				    .do_bit = (e->key_flags & DNS_QKEY_DO) != 0,
				    .cd_bit = (e->key_flags & DNS_QKEY_CD) != 0,
				    .life_s = e->life_s,
				    .age_ms = age_ms(e, now_ms),
				};
				rc = fn(arg, &v);
			}
		}
		urcu_bp_read_unlock();
	}
	return rc;
}
