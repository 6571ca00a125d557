/* srclimit.c: connections per source prefix (see srclimit.h). */
#include "core/srclimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct slot {
	uint8_t key[17]; /* family tag, then the address cut to its prefix */
	uint32_t count;  /* 0 = empty slot */
};

struct srclimit {
	/* One table per node, shared by the workers' stream servers: every
	 * public call holds mu (once per accepted or closed connection). */
	pthread_mutex_t mu;
	struct slot *s;
	uint32_t mask; /* slots - 1 */
	unsigned used; /* sources tracked */
	unsigned conns;    /* connections held, all sources together */
	unsigned capacity; /* connections (and so sources) at most */
	unsigned max;      /* connections per source */
	uint8_t prefix4, prefix6;
	uint64_t seed;
};

static void make_key(const struct srclimit *t, const struct netaddr *a, uint8_t key[17])
{
	unsigned bits = a->family == AF_INET ? t->prefix4 : t->prefix6;
	unsigned bytes = a->family == AF_INET ? 4 : 16;

	memset(key, 0, 17);
	key[0] = a->family == AF_INET ? 4 : 6;
	for (unsigned i = 0; i < bytes && bits; i++) {
		unsigned take = bits >= 8 ? 8 : bits;
		key[1 + i] = (uint8_t)(a->addr[i] & (0xff00u >> take));
		bits -= take;
	}
}

/* A keyed mix: sources are chosen by clients, the probe order should not be. */
static uint32_t hash_key(const struct srclimit *t, const uint8_t key[17])
{
	uint64_t h = t->seed ^ 0x9e3779b97f4a7c15ull;
	for (unsigned i = 0; i < 17; i++) {
		h ^= key[i];
		h *= 0x100000001b3ull;
		h ^= h >> 29;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (uint32_t)h;
}

int srclimit_new(unsigned capacity, unsigned max_per_source, uint8_t prefix4, uint8_t prefix6,
                 uint64_t seed, struct srclimit **out)
{
	struct srclimit *t;
	uint32_t n = 4;

	*out = NULL;
	if (capacity < 1 || capacity > (1u << 20) || max_per_source < 1 || prefix4 < 1 ||
	    prefix4 > 32 || prefix6 < 1 || prefix6 > 128)
		return -EINVAL;
	while (n < 2 * capacity)
		n *= 2;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->s = calloc(n, sizeof(*t->s));
	if (!t->s) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->mask = n - 1;
	t->capacity = capacity;
	t->max = max_per_source;
	t->prefix4 = prefix4;
	t->prefix6 = prefix6;
	t->seed = seed;
	*out = t;
	return 0;
}

void srclimit_free(struct srclimit *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t->s);
	free(t);
}

/* The slot holding key, or the empty slot where it would go. */
static uint32_t find(const struct srclimit *t, const uint8_t key[17])
{
	uint32_t i = hash_key(t, key) & t->mask;

	/* At most half full: an empty slot always ends the probe. */
	while (t->s[i].count && memcmp(t->s[i].key, key, 17) != 0)
		i = (i + 1) & t->mask;
	return i;
}

int srclimit_take(struct srclimit *t, const struct netaddr *a)
{
	uint8_t key[17];

	if (a->family != AF_INET && a->family != AF_INET6)
		return -EAFNOSUPPORT;
	make_key(t, a, key);
	int r = 0;
	pthread_mutex_lock(&t->mu);
	uint32_t i = find(t, key);
	/* The source's own cap first: a client at its cap must not make the
	 * caller evict someone else's connection to make room. */
	if (t->s[i].count >= t->max) {
		r = -EUSERS;
	} else if (t->conns >= t->capacity) {
		r = -ENOSPC;
	} else if (t->s[i].count) {
		t->s[i].count++;
		t->conns++;
	} else {
		memcpy(t->s[i].key, key, 17);
		t->s[i].count = 1;
		t->used++;
		t->conns++;
	}
	pthread_mutex_unlock(&t->mu);
	return r;
}

/* Slot i just emptied (its count is 0): take it out of its probe run. */
static void remove_at(struct srclimit *t, uint32_t i)
{
	t->used--;
	/* Backward-shift deletion (Knuth 6.4, algorithm R): move later members
	 * of the probe run into the hole so no lookup stops early. */
	uint32_t hole = i, j = i;
	for (;;) {
		j = (j + 1) & t->mask;
		if (!t->s[j].count)
			break;
		uint32_t home = hash_key(t, t->s[j].key) & t->mask;
		/* j may move to hole only when its home is not in (hole, j]. */
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (stays)
			continue;
		t->s[hole] = t->s[j];
		hole = j;
	}
	t->s[hole].count = 0;
}

void srclimit_put(struct srclimit *t, const struct netaddr *a)
{
	uint8_t key[17];

	if (a->family != AF_INET && a->family != AF_INET6)
		return;
	make_key(t, a, key);
	pthread_mutex_lock(&t->mu);
	uint32_t i = find(t, key);
	if (t->s[i].count) {
		t->conns--;
		if (--t->s[i].count == 0)
			remove_at(t, i);
	}
	pthread_mutex_unlock(&t->mu);
}

unsigned srclimit_count(const struct srclimit *t, const struct netaddr *a)
{
	uint8_t key[17];

	if (a->family != AF_INET && a->family != AF_INET6)
		return 0;
	make_key(t, a, key);
	pthread_mutex_lock((pthread_mutex_t *)&t->mu);
	unsigned n = t->s[find(t, key)].count;
	pthread_mutex_unlock((pthread_mutex_t *)&t->mu);
	return n;
}

unsigned srclimit_sources(const struct srclimit *t)
{
	pthread_mutex_lock((pthread_mutex_t *)&t->mu);
	unsigned n = t->used;
	pthread_mutex_unlock((pthread_mutex_t *)&t->mu);
	return n;
}

unsigned srclimit_total(const struct srclimit *t)
{
	pthread_mutex_lock((pthread_mutex_t *)&t->mu);
	unsigned n = t->conns;
	pthread_mutex_unlock((pthread_mutex_t *)&t->mu);
	return n;
}
