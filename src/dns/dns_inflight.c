/*
 * dns_inflight.c: the process-wide in-flight table, see dns_inflight.h.
 *
 * A power of two of shards, each a mutex and a fixed array of bucket heads
 * chaining owner nodes by the key's SipHash (dns_hash.h) under a per-table
 * key. The number of owners is bounded by the forwarders' max_outstanding,
 * so a fixed bucket count per shard keeps chains short without resizing.
 * Lock order: one shard lock at a time, nothing called with it held.
 */
#include "dns/dns_inflight.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns_hash.h"

#define SHARD_BUCKETS 256u
#define SHARDS_MAX    4096u
#define CACHE_LINE    64u

enum node_state {
	NODE_IDLE = 0,
	NODE_OWNER,     /* linked in a chain */
	NODE_WAITING,   /* linked under an owner */
	NODE_DETACHED,  /* handed back by finish, not yet delivered */
	NODE_DELIVERED, /* in its inbox */
};

struct shard {
	pthread_mutex_t lock;
	struct dns_inflight_node *bucket[SHARD_BUCKETS];
} __attribute__((aligned(CACHE_LINE)));

struct dns_inflight {
	struct dns_hash_key hkey;
	unsigned n_shards;
	unsigned max_waiters, max_total;
	atomic_uint waiters; /* linked waiters, all shards */
	struct shard *shards;
};

int dns_inflight_new(unsigned shards, unsigned max_waiters, unsigned max_total, uint64_t seed,
                     struct dns_inflight **out)
{
	unsigned ns = 1;

	*out = NULL;
	while (ns < shards && ns < SHARDS_MAX)
		ns *= 2;
	struct dns_inflight *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->shards = aligned_alloc(CACHE_LINE, ns * sizeof(struct shard));
	if (!t->shards) {
		free(t);
		return -ENOMEM;
	}
	memset(t->shards, 0, ns * sizeof(struct shard));
	for (unsigned i = 0; i < ns; i++)
		pthread_mutex_init(&t->shards[i].lock, NULL);
	t->n_shards = ns;
	t->max_waiters = max_waiters ? max_waiters : DNS_INFLIGHT_MAX_WAITERS;
	t->max_total = max_total ? max_total : DNS_INFLIGHT_MAX_TOTAL;
	t->hkey = dns_hash_key_from_seed(seed);
	*out = t;
	return 0;
}

void dns_inflight_free(struct dns_inflight *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < t->n_shards; i++)
		pthread_mutex_destroy(&t->shards[i].lock);
	free(t->shards);
	free(t);
}

static struct shard *shard_of(struct dns_inflight *t, uint64_t hash)
{
	return &t->shards[(hash >> 32) & (t->n_shards - 1)];
}

static struct dns_inflight_node **bucket_of(struct shard *sh, uint64_t hash)
{
	return &sh->bucket[hash & (SHARD_BUCKETS - 1)];
}

static bool same_key(const struct dns_inflight_node *a, const struct dns_inflight_node *b)
{
	return a->hash == b->hash && a->name_len == b->name_len && a->qtype == b->qtype &&
	       a->qclass == b->qclass && a->do_bit == b->do_bit && a->cd == b->cd &&
	       memcmp(a->name_lc, b->name_lc, a->name_len) == 0;
}

enum dns_inflight_role dns_inflight_join(struct dns_inflight *t, struct dns_inflight_node *n,
                                         bool may_wait)
{
	struct dns_qkey k;
	enum dns_inflight_role role;

	n->result = NULL;
	n->next = n->waiters = NULL;
	n->n_waiters = 0;
	n->state = NODE_IDLE;
	if (dns_qkey_build(&k, &t->hkey, NULL, n->name_lc, n->name_len, n->qtype, n->qclass,
	                   n->do_bit, n->cd) < 0)
		return DNS_INFLIGHT_FULL; /* not a key we can share: the caller goes alone */
	n->hash = k.hash;

	struct shard *sh = shard_of(t, n->hash);
	struct dns_inflight_node **b = bucket_of(sh, n->hash), *o;
	pthread_mutex_lock(&sh->lock);
	for (o = *b; o && !same_key(o, n); o = o->next)
		;
	if (!o) {
		n->next = *b;
		*b = n;
		n->state = NODE_OWNER;
		role = DNS_INFLIGHT_OWNER;
	} else if (!may_wait) {
		role = DNS_INFLIGHT_BUSY;
	} else if (o->n_waiters >= t->max_waiters) {
		role = DNS_INFLIGHT_FULL;
	} else if (atomic_fetch_add(&t->waiters, 1) >= t->max_total) {
		atomic_fetch_sub(&t->waiters, 1); /* the process-wide bound: undo */
		role = DNS_INFLIGHT_FULL;
	} else {
		n->next = o->waiters;
		o->waiters = n;
		o->n_waiters++;
		n->state = NODE_WAITING;
		role = DNS_INFLIGHT_WAITER;
	}
	pthread_mutex_unlock(&sh->lock);
	return role;
}

/* Reverses a singly linked list (newest-first stacks become oldest-first). */
static struct dns_inflight_node *reverse(struct dns_inflight_node *n)
{
	struct dns_inflight_node *r = NULL;

	while (n) {
		struct dns_inflight_node *nx = n->next;
		n->next = r;
		r = n;
		n = nx;
	}
	return r;
}

struct dns_inflight_node *dns_inflight_finish(struct dns_inflight *t,
                                              struct dns_inflight_node *owner)
{
	if (owner->state != NODE_OWNER)
		return NULL;
	struct shard *sh = shard_of(t, owner->hash);
	pthread_mutex_lock(&sh->lock);
	struct dns_inflight_node **pp = bucket_of(sh, owner->hash);
	while (*pp != owner)
		pp = &(*pp)->next;
	*pp = owner->next;
	struct dns_inflight_node *list = owner->waiters;
	unsigned n = owner->n_waiters;
	owner->waiters = owner->next = NULL;
	owner->n_waiters = 0;
	owner->state = NODE_IDLE;
	for (struct dns_inflight_node *w = list; w; w = w->next)
		w->state = NODE_DETACHED;
	pthread_mutex_unlock(&sh->lock);
	if (n)
		atomic_fetch_sub(&t->waiters, n);
	return reverse(list);
}

struct dns_inflight_result *dns_inflight_result_new(const uint8_t *ans, size_t len, unsigned flags)
{
	if (len > UINT16_MAX)
		return NULL;
	struct dns_inflight_result *r = malloc(sizeof(*r) + len);
	if (!r)
		return NULL;
	atomic_init(&r->refs, 0);
	r->flags = flags;
	r->len = (uint16_t)len;
	memcpy(r->ans, ans, len);
	return r;
}

void dns_inflight_result_put(struct dns_inflight_result *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1)
		free(r);
}

void dns_inflight_deliver(struct dns_inflight_node *list, struct dns_inflight_result *res,
                          dns_inflight_wake_fn wake, void *arg)
{
	unsigned n = 0;

	for (struct dns_inflight_node *w = list; w; w = w->next)
		n++;
	if (res) {
		/* All references before the first push: a waiter may drop its own at once. */
		atomic_fetch_add(&res->refs, n);
		if (n == 0)
			free(res);
	}
	while (list) {
		struct dns_inflight_node *w = list;
		struct dns_inflight_inbox *ib = w->inbox;
		list = w->next;
		w->result = res;
		w->state = NODE_DELIVERED;
		/* Treiber push; the consumer only ever takes the whole stack (no ABA). */
		struct dns_inflight_node *head = atomic_load(&ib->head);
		do
			w->next = head;
		while (!atomic_compare_exchange_weak(&ib->head, &head, w));
		if (!atomic_exchange(&ib->armed, true))
			wake(ib, arg);
	}
}

struct dns_inflight_node *dns_inflight_take(struct dns_inflight_inbox *inbox)
{
	/* Disarm first: a push after this either lands in what we take or wakes us again. */
	atomic_store(&inbox->armed, false);
	return reverse(atomic_exchange(&inbox->head, NULL));
}

struct dns_inflight_node *dns_inflight_cancel_inbox(struct dns_inflight *t,
                                                    struct dns_inflight_inbox *inbox)
{
	struct dns_inflight_node *out = NULL;

	for (unsigned s = 0; s < t->n_shards; s++) {
		struct shard *sh = &t->shards[s];
		pthread_mutex_lock(&sh->lock);
		for (unsigned b = 0; b < SHARD_BUCKETS; b++) {
			for (struct dns_inflight_node *o = sh->bucket[b]; o; o = o->next) {
				struct dns_inflight_node **pp = &o->waiters;
				while (*pp) {
					struct dns_inflight_node *w = *pp;
					if (w->inbox != inbox) {
						pp = &w->next;
						continue;
					}
					*pp = w->next;
					o->n_waiters--;
					atomic_fetch_sub(&t->waiters, 1);
					w->state = NODE_IDLE;
					w->next = out;
					out = w;
				}
			}
		}
		pthread_mutex_unlock(&sh->lock);
	}
	return out;
}

void dns_inflight_stats(struct dns_inflight *t, struct dns_inflight_stats *out)
{
	out->owners = 0;
	for (unsigned s = 0; s < t->n_shards; s++) {
		struct shard *sh = &t->shards[s];
		pthread_mutex_lock(&sh->lock);
		for (unsigned b = 0; b < SHARD_BUCKETS; b++)
			for (struct dns_inflight_node *o = sh->bucket[b]; o; o = o->next)
				out->owners++;
		pthread_mutex_unlock(&sh->lock);
	}
	out->waiters = atomic_load(&t->waiters);
}
