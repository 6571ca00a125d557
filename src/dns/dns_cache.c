/*
 * dns_cache.c: answer cache, see dns_cache.h for the contract.
 *
 * Layout: one malloc block per entry:
 *   struct entry | uint32_t ttl[n_ttl] | uint16_t off[n_ttl] | answer[len]
 * The answer's question (name lowercased at insert, type, class) doubles as
 * the key, so a lookup compares the request's lowercased question with
 * answer[q_off..] and the DO/CD bits kept in the header.
 *
 * Index: a fixed power-of-two array of bucket heads with singly linked
 * chains, hashed by SipHash-1-3 under a per-cache key. The bucket count is
 * sized from conf.size at creation (one bucket per 128 bytes of budget), so
 * with entries of >= ~100 bytes the load factor stays below ~1.3 and lookups
 * are O(1) without ever rehashing.
 *
 * Eviction: CLOCK (second chance). All entries sit on a circular list; a hit
 * only sets a REF bit (no list writes on the hot path, unlike LRU); to make
 * room the hand frees the first entry without REF, clearing REF on those it
 * passes. Entries past their stale window are freed whatever their REF bit.
 * New entries go in just behind the hand, i.e. they are examined last.
 */
#include "dns/dns_cache.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KEY_DO       0x01u
#define KEY_CD       0x02u
#define KEY_BITS     (KEY_DO | KEY_CD)
#define E_REF        0x04u /* CLOCK reference bit */
#define E_PREFETCHED 0x08u /* a PREFETCH flag was already handed out */

#define NAME_MAX_WIRE 255u
#define RR_MIN_LEN    11u /* root owner (1) + type, class, TTL, rdlength (10) */

struct entry {
	struct entry *hnext; /* bucket chain */
	struct entry *prev;  /* CLOCK ring */
	struct entry *next;
	uint64_t inserted_ms;
	uint32_t hash;   /* bucket = hash & mask; the rest rejects mismatches cheaply */
	uint32_t life_s; /* effective lifetime from inserted_ms */
	uint16_t len;    /* answer length */
	uint16_t n_ttl;
	uint8_t qname_len;
	uint8_t q_off;
	uint8_t kind;
	uint8_t bits; /* KEY_DO, KEY_CD, E_REF, E_PREFETCHED */
	/* 48-byte header, so data[] is 8-aligned for the uint32_t/uint16_t tables */
	uint8_t data[];
};

struct dns_cache {
	struct dns_cache_conf conf;
	uint64_t k0, k1; /* SipHash key */
	struct entry **buckets;
	uint32_t mask;
	struct entry *hand;  /* CLOCK hand: next entry to examine; NULL when empty */
	struct entry *sweep; /* dns_cache_sweep() cursor */
	struct dns_cache_stats st;
};

_Static_assert(sizeof(struct entry) % 8 == 0, "TTL table alignment");

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

/* ---- SipHash-1-3 (Aumasson & Bernstein), 64-bit output ---- */

static inline uint64_t rotl(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = rotl(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = rotl(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = rotl(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = rotl(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = rotl(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = rotl(v2, 32);                                                                 \
	} while (0)

static uint64_t siphash13(uint64_t k0, uint64_t k1, const uint8_t *m, size_t n)
{
	uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
	uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
	uint64_t v3 = k1 ^ 0x7465646279746573ull;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, m + i, 8);
		w = le64toh(w);
		v3 ^= w;
		SIPROUND;
		v0 ^= w;
	}
	uint64_t b = (uint64_t)n << 56;
	for (unsigned j = 0; i + j < n; j++)
		b |= (uint64_t)m[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- keys ---- */

/* Serialized key: lowercased name | qtype | qclass (the question's wire form) | DO/CD bits. */
struct kbuf {
	uint8_t b[NAME_MAX_WIRE + 5];
	size_t qlen; /* name + 4: the bytes compared against the stored question */
	uint8_t bits;
	uint32_t hash;
};

/*
 * RFC 4343: only ASCII letters fold. Label length octets are <= 63 and so
 * never in 'A'..'Z' (65..90): the whole wire name can be folded bytewise.
 */
static inline uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

static int key_build(const struct dns_cache *c, const struct dns_cache_key *k, struct kbuf *kb)
{
	if (!k || !k->qname || k->qname_len == 0 || k->qname_len > NAME_MAX_WIRE)
		return -EINVAL;
	size_t n = k->qname_len;
	if (k->qname_lc)
		memcpy(kb->b, k->qname_lc, n);
	else
		for (size_t i = 0; i < n; i++)
			kb->b[i] = lower(k->qname[i]);
	kb->b[n] = (uint8_t)(k->qtype >> 8);
	kb->b[n + 1] = (uint8_t)k->qtype;
	kb->b[n + 2] = (uint8_t)(k->qclass >> 8);
	kb->b[n + 3] = (uint8_t)k->qclass;
	kb->bits = (uint8_t)((k->do_bit ? KEY_DO : 0) | (k->cd_bit ? KEY_CD : 0));
	kb->b[n + 4] = kb->bits;
	kb->qlen = n + 4;
	uint64_t h = siphash13(c->k0, c->k1, kb->b, n + 5);
	kb->hash = (uint32_t)(h ^ (h >> 32));
	return 0;
}

static struct entry *find(struct dns_cache *c, const struct kbuf *kb)
{
	for (struct entry *e = c->buckets[kb->hash & c->mask]; e; e = e->hnext) {
		if (e->hash == kb->hash && (e->bits & KEY_BITS) == kb->bits &&
		    (size_t)e->qname_len + 4 == kb->qlen &&
		    memcmp(e_ans(e) + e->q_off, kb->b, kb->qlen) == 0)
			return e;
	}
	return NULL;
}

/* ---- lifetimes ---- */

static uint64_t stale_ms(const struct dns_cache *c, const struct entry *e)
{
	/* RFC 8767 covers data the resolver held; a cached failure is never served stale. */
	return e->kind == DNS_CACHE_SERVFAIL ? 0 : (uint64_t)c->conf.stale_window_s * 1000u;
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

/* ---- entry list management ---- */

static void unlink_free(struct dns_cache *c, struct entry *e)
{
	struct entry **pp = &c->buckets[e->hash & c->mask];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;

	struct entry *nx = e->next == e ? NULL : e->next;
	if (c->hand == e)
		c->hand = nx;
	if (c->sweep == e)
		c->sweep = nx;
	e->prev->next = e->next;
	e->next->prev = e->prev;

	c->st.bytes -= alloc_charge(entry_req(e->len, e->n_ttl));
	c->st.answer_bytes -= e->len;
	c->st.entries--;
	free(e);
}

/* One CLOCK step sequence: frees exactly one entry; the ring must be non-empty. */
static void evict_one(struct dns_cache *c, uint64_t now_ms)
{
	for (;;) {
		struct entry *e = c->hand;
		if (is_dead(c, e, now_ms)) {
			c->st.reclaimed++;
			unlink_free(c, e);
			return;
		}
		if (!(e->bits & E_REF)) {
			c->st.evictions++;
			unlink_free(c, e);
			return;
		}
		e->bits &= (uint8_t)~E_REF;
		c->hand = e->next;
	}
}

/* ---- public API ---- */

int dns_cache_new(const struct dns_cache_conf *conf, uint64_t seed, struct dns_cache **out)
{
	*out = NULL;
	if (!conf || conf->min_ttl_s > conf->max_ttl_s)
		return -EINVAL;

	size_t nb = 16;
	while (nb * 2 <= conf->size / 128 && nb < (1u << 31))
		nb *= 2;

	struct dns_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return -ENOMEM;
	}
	c->conf = *conf;
	if (c->conf.servfail_ttl_s < DNS_CACHE_SERVFAIL_MIN)
		c->conf.servfail_ttl_s = DNS_CACHE_SERVFAIL_MIN;
	if (c->conf.servfail_ttl_s > DNS_CACHE_SERVFAIL_MAX)
		c->conf.servfail_ttl_s = DNS_CACHE_SERVFAIL_MAX;
	c->mask = (uint32_t)(nb - 1);
	c->k0 = splitmix64(&seed);
	c->k1 = splitmix64(&seed);
	c->st.table_bytes = alloc_charge(sizeof(*c)) + alloc_charge(nb * sizeof(*c->buckets));
	c->st.bytes = c->st.table_bytes;
	/* The table alone must leave room for entries; 1 KiB is a floor, not a tuning. */
	if (c->st.table_bytes + 1024 > conf->size) {
		dns_cache_free(c);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

void dns_cache_free(struct dns_cache *c)
{
	if (!c)
		return;
	struct entry *e = c->hand;
	if (e) {
		e->prev->next = NULL; /* break the ring */
		while (e) {
			struct entry *nx = e->next;
			free(e);
			e = nx;
		}
	}
	free(c->buckets);
	free(c);
}

/* RFC 2181 §8: a TTL with the most significant bit set is treated as zero. */
static inline uint32_t ttl_sane(uint32_t t)
{
	return (t & 0x80000000u) ? 0 : t;
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int dns_cache_insert(struct dns_cache *c, const struct dns_cache_key *key, const uint8_t *answer,
                     size_t len, const uint16_t *ttl_offsets, unsigned n_ttl,
                     enum dns_cache_kind kind, uint32_t neg_ttl_s, uint64_t now_ms)
{
	struct kbuf kb;
	int rc = key_build(c, key, &kb);
	if (rc < 0)
		return rc;
	if (!answer || kind > DNS_CACHE_SERVFAIL || (n_ttl && !ttl_offsets))
		return -EINVAL;

	/* The answer must be a response with exactly the key's question at offset 12. */
	size_t qend = DNS_CACHE_QOFF + kb.qlen;
	if (len > UINT16_MAX || len < qend || !(answer[2] & 0x80) || answer[4] != 0 ||
	    answer[5] != 1)
		return -EINVAL;
	size_t nlen = kb.qlen - 4;
	for (size_t i = 0; i < nlen; i++)
		if (lower(answer[DNS_CACHE_QOFF + i]) != kb.b[i])
			return -EINVAL;
	if (memcmp(answer + DNS_CACHE_QOFF + nlen, kb.b + nlen, 4) != 0) /* type, class: exact */
		return -EINVAL;
	/* Cap the count by what the bytes after the question could hold. */
	if (n_ttl > (len - qend) / RR_MIN_LEN)
		return -EINVAL;
	for (unsigned i = 0; i < n_ttl; i++)
		if (ttl_offsets[i] < qend || (size_t)ttl_offsets[i] + 4 > len)
			return -EINVAL;
	if (kind == DNS_CACHE_POSITIVE && n_ttl == 0)
		return -EINVAL;

	/* Lifetime: see dns_cache.h. `lo`/`hi` clamp each RR; life = min over them. */
	uint32_t lo = 0, hi, life;
	switch (kind) {
	case DNS_CACHE_POSITIVE:
		lo = c->conf.min_ttl_s;
		hi = c->conf.max_ttl_s;
		break;
	case DNS_CACHE_NXDOMAIN:
	case DNS_CACHE_NODATA: /* RFC 2308 §5 */
		hi = ttl_sane(neg_ttl_s);
		if (hi > c->conf.negative_ttl_s)
			hi = c->conf.negative_ttl_s;
		break;
	default: /* SERVFAIL, RFC 9520 §3.2 */
		hi = c->conf.servfail_ttl_s;
		break;
	}
	life = hi;
	for (unsigned i = 0; i < n_ttl; i++) {
		uint32_t t = ttl_sane(rd32(answer + ttl_offsets[i]));
		t = t < lo ? lo : t > hi ? hi : t;
		if (t < life)
			life = t;
	}

	struct entry *old = find(c, &kb);
	if (old) {
		/* The newer answer wins, even one we will not cache (TTL 0 means "do not reuse").
		 */
		c->st.replaced++;
		unlink_free(c, old);
	}
	if (life == 0)
		return 0;

	size_t need = entry_req(len, n_ttl);
	size_t charge = alloc_charge(need);
	if (charge + c->st.table_bytes > c->conf.size)
		return 0;
	while (c->st.bytes + charge > c->conf.size)
		evict_one(c, now_ms);
	struct entry *e = malloc(need);
	if (!e)
		return -ENOMEM;

	e->inserted_ms = now_ms;
	e->hash = kb.hash;
	e->life_s = life;
	e->len = (uint16_t)len;
	e->n_ttl = (uint16_t)n_ttl;
	e->qname_len = (uint8_t)(kb.qlen - 4);
	e->q_off = DNS_CACHE_QOFF;
	e->kind = (uint8_t)kind;
	e->bits = kb.bits;
	uint32_t *ttl = e_ttl(e);
	uint16_t *off = e_off(e);
	for (unsigned i = 0; i < n_ttl; i++) {
		uint32_t t = ttl_sane(rd32(answer + ttl_offsets[i]));
		ttl[i] = t < lo ? lo : t > hi ? hi : t;
		off[i] = ttl_offsets[i];
	}
	uint8_t *ans = e_ans(e);
	memcpy(ans, answer, len);
	memcpy(ans + e->q_off, kb.b, kb.qlen); /* stored lowercased: it is the key */

	uint32_t b = kb.hash & c->mask;
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	if (!c->hand) {
		e->next = e->prev = e;
		c->hand = e;
	} else {
		e->next = c->hand;
		e->prev = c->hand->prev;
		e->prev->next = e;
		c->hand->prev = e;
	}
	c->st.bytes += charge;
	c->st.answer_bytes += len;
	c->st.entries++;
	c->st.inserts++;
	return 1;
}

int dns_cache_lookup(struct dns_cache *c, const struct dns_cache_key *key, uint16_t client_id,
                     bool allow_stale, uint64_t now_ms, uint8_t *out, size_t cap, unsigned *flags)
{
	*flags = 0;
	struct kbuf kb;
	int rc = key_build(c, key, &kb);
	if (rc < 0)
		return rc;
	struct entry *e = find(c, &kb);
	if (!e) {
		c->st.misses++;
		return -ENOENT;
	}

	uint64_t age = age_ms(e, now_ms);
	uint64_t life = (uint64_t)e->life_s * 1000u;
	bool fresh = age < life;
	if (!fresh && !(allow_stale && age < life + stale_ms(c, e))) {
		if (is_dead(c, e, now_ms)) { /* lazy reclaim */
			c->st.reclaimed++;
			unlink_free(c, e);
		}
		c->st.misses++;
		return -ENOENT;
	}
	if (cap < e->len)
		return -EMSGSIZE;

	memcpy(out, e_ans(e), e->len);
	out[0] = (uint8_t)(client_id >> 8);
	out[1] = (uint8_t)client_id;
	memcpy(out + e->q_off, key->qname, e->qname_len);

	/* fresh: age < life <= ttl[i], so every written TTL is >= 1 */
	uint32_t age_s = (uint32_t)(age / 1000u);
	const uint32_t *ttl = e_ttl(e);
	const uint16_t *off = e_off(e);
	for (unsigned i = 0; i < e->n_ttl; i++) {
		uint32_t t = fresh ? ttl[i] - age_s : DNS_CACHE_STALE_TTL;
		uint8_t *p = out + off[i];
		p[0] = (uint8_t)(t >> 24);
		p[1] = (uint8_t)(t >> 16);
		p[2] = (uint8_t)(t >> 8);
		p[3] = (uint8_t)t;
	}
	e->bits |= E_REF;

	if (!fresh) {
		*flags = DNS_CACHE_F_STALE;
		c->st.stale_hits++;
		return e->len;
	}
	*flags = DNS_CACHE_F_FRESH;
	c->st.hits++;
	/* Last 10% of the lifetime: one hit asks for a refresh, the rest just get served. */
	if (e->kind != DNS_CACHE_SERVFAIL && !(e->bits & E_PREFETCHED) && age >= life - life / 10) {
		e->bits |= E_PREFETCHED;
		*flags |= DNS_CACHE_F_PREFETCH;
		c->st.prefetches++;
	}
	return e->len;
}

unsigned dns_cache_sweep(struct dns_cache *c, uint64_t now_ms, unsigned budget)
{
	unsigned freed = 0;
	if (!c->sweep)
		c->sweep = c->hand;
	for (unsigned i = 0; i < budget && c->sweep; i++) {
		struct entry *e = c->sweep;
		c->sweep = e->next;
		if (is_dead(c, e, now_ms)) {
			c->st.reclaimed++;
			unlink_free(c, e);
			freed++;
		}
	}
	return freed;
}

const struct dns_cache_stats *dns_cache_stats(const struct dns_cache *c)
{
	return &c->st;
}

size_t dns_cache_flush(struct dns_cache *c)
{
	size_t n = 0;

	while (c->hand) {
		unlink_free(c, c->hand);
		n++;
	}
	c->st.flushed += n;
	return n;
}

size_t dns_cache_flush_name(struct dns_cache *c, const uint8_t *name, size_t name_len)
{
	uint8_t lc[NAME_MAX_WIRE];
	size_t n = 0, left = c->st.entries;
	struct entry *e = c->hand;

	if (!name || name_len == 0 || name_len > NAME_MAX_WIRE)
		return 0;
	for (size_t i = 0; i < name_len; i++)
		lc[i] = lower(name[i]);
	/* Each entry once: `left` bounds the walk round the ring as it shrinks. */
	while (e && left--) {
		struct entry *nx = e->next == e ? NULL : e->next;
		if (e->qname_len == name_len && memcmp(e_ans(e) + e->q_off, lc, name_len) == 0) {
			unlink_free(c, e);
			n++;
		}
		e = nx;
	}
	c->st.flushed += n;
	return n;
}

size_t dns_cache_entry_overhead(size_t answer_len, unsigned n_ttl)
{
	return alloc_charge(entry_req(answer_len, n_ttl)) - answer_len;
}
