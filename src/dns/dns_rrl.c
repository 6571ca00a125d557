#include "dns/dns_rrl.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns/dns_hash.h"

/* Credit is kept in thousandths of an answer: `rate` of them accrue per ms. */
#define MILLI 1000u

struct bucket {
	uint64_t key;     /* 0: free */
	uint64_t credit;  /* thousandths of an answer */
	uint64_t last_ms; /* last accounted */
	uint32_t limited; /* answers limited since the bucket was taken: picks the slips */
	uint32_t used;    /* the set's clock at the last use: LRU within the set */
};
_Static_assert(sizeof(struct bucket) == DNS_RRL_BUCKET_BYTES, "bucket size");

struct set {
	atomic_uint lock;
	uint32_t clock; /* counts uses; ages compare modulo 2^32 */
	struct bucket b[DNS_RRL_WAYS];
};

struct dns_rrl {
	struct dns_rrl_conf c;
	struct dns_hash_key hk;
	uint64_t cap; /* rate x window, in thousandths */
	size_t nsets; /* a power of two */
	struct set *sets;
};

int dns_rrl_new(const struct dns_rrl_conf *c, uint64_t seed, struct dns_rrl **out)
{
	struct dns_rrl *r;
	size_t nsets = 1;

	*out = NULL;
	if (c->rate == 0 || c->rate > DNS_RRL_RATE_MAX || c->window_s == 0 ||
	    c->window_s > DNS_RRL_WINDOW_MAX_S || c->v4_prefix < 1 || c->v4_prefix > 32 ||
	    c->v6_prefix < 1 || c->v6_prefix > DNS_RRL_V6_PREFIX_MAX || c->entries == 0 ||
	    c->entries > DNS_RRL_ENTRIES_MAX)
		return -EINVAL;
	while (nsets * DNS_RRL_WAYS < c->entries)
		nsets *= 2;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->sets = calloc(nsets, sizeof(*r->sets));
	if (!r->sets) {
		free(r);
		return -ENOMEM;
	}
	r->c = *c;
	r->hk = dns_hash_key_from_seed(seed);
	r->cap = (uint64_t)c->rate * c->window_s * MILLI;
	r->nsets = nsets;
	*out = r;
	return 0;
}

void dns_rrl_free(struct dns_rrl *r)
{
	if (!r)
		return;
	free(r->sets);
	free(r);
}

size_t dns_rrl_memory(const struct dns_rrl *r)
{
	return sizeof(*r) + r->nsets * sizeof(struct set);
}

/*
 * The prefix as one exact 64-bit key, so two prefixes never share a bucket
 * by a hash collision: IPv6 keeps its first 64 bits (prefixes up to /64);
 * IPv4 is tagged 0xffff in the top 16 bits, which no IPv6 source has
 * (ff00::/8 is multicast, never a source). 0 stays free: "::/n" is no source.
 */
static uint64_t prefix_key(const struct dns_rrl_conf *c, const struct netaddr *a)
{
	uint64_t k = 0;

	if (a->family == AF_INET) {
		uint32_t v = (uint32_t)a->addr[0] << 24 | (uint32_t)a->addr[1] << 16 |
		             (uint32_t)a->addr[2] << 8 | a->addr[3];
		v &= c->v4_prefix >= 32 ? UINT32_MAX : ~(UINT32_MAX >> c->v4_prefix);
		return 0xffffull << 48 | v;
	}
	for (unsigned i = 0; i < 8; i++)
		k = k << 8 | a->addr[i];
	k &= c->v6_prefix >= 64 ? UINT64_MAX : ~(UINT64_MAX >> c->v6_prefix);
	return k ? k : 1;
}

static void set_lock(struct set *s)
{
	unsigned spins = 0;

	while (atomic_exchange_explicit(&s->lock, 1, memory_order_acquire)) {
		while (atomic_load_explicit(&s->lock, memory_order_relaxed)) {
			/* A preempted holder (2 cores, several threads): let it run. */
			if (++spins % 128 == 0)
				sched_yield();
		}
	}
}

static void set_unlock(struct set *s)
{
	atomic_store_explicit(&s->lock, 0, memory_order_release);
}

/* The prefix's bucket in its set: its own, a free one, or the least recently used. */
/*
 * The prefix's bucket in its set: its own, a free one, or the least recently
 * used (by use count, not time: many prefixes share a millisecond).
 */
static struct bucket *find(struct dns_rrl *r, struct set *s, uint64_t key, uint64_t now_ms)
{
	struct bucket *victim = &s->b[0];
	uint32_t now = ++s->clock;

	for (unsigned i = 0; i < DNS_RRL_WAYS; i++) {
		struct bucket *b = &s->b[i];
		if (b->key == key) {
			b->used = now;
			return b;
		}
		if (victim->key && (!b->key || now - b->used > now - victim->used))
			victim = b;
	}
	*victim = (struct bucket){.key = key, .credit = r->cap, .last_ms = now_ms, .used = now};
	return victim;
}

enum dns_rrl_verdict dns_rrl_account(struct dns_rrl *r, const struct netaddr *a, uint64_t now_ms)
{
	uint64_t key = prefix_key(&r->c, a);
	struct set *s =
	    &r->sets[dns_siphash13(&r->hk, (const uint8_t *)&key, sizeof(key)) & (r->nsets - 1)];
	enum dns_rrl_verdict v = DNS_RRL_PASS;

	set_lock(s);
	struct bucket *b = find(r, s, key, now_ms);
	if (now_ms > b->last_ms) {
		/* Capped first: a bucket idle for years must not overflow the product. */
		uint64_t ms = now_ms - b->last_ms;
		uint64_t full = (uint64_t)r->c.window_s * 1000u;
		uint64_t add = (ms < full ? ms : full) * r->c.rate;
		b->credit = b->credit + add < r->cap ? b->credit + add : r->cap;
		b->last_ms = now_ms;
	}
	if (b->credit >= MILLI) {
		b->credit -= MILLI;
	} else {
		b->limited++;
		v = r->c.slip && b->limited % r->c.slip == 0 ? DNS_RRL_SLIP : DNS_RRL_DROP;
	}
	set_unlock(s);
	return v;
}
