/*
 * membudget.h: one byte budget shared by threads (issue 10, item 2).
 *
 * Memory a remote party makes us hold (per-query state while an upstream
 * answer is awaited, TCP receive and answer queues) is charged here before
 * it is allocated, so the sum over every worker stays under one limit
 * whatever the mix: many slow names, many waiters, many connections that
 * do not read. A take that would pass the limit fails and charges nothing;
 * the caller refuses the work (SERVFAIL, closes the connection).
 *
 * Threads: any; lock-free (one atomic counter, never above the limit). Ownership: a plain value the
 * owner embeds; whoever took n bytes gives back exactly n.
 */
#ifndef ANYCACHE_CORE_MEMBUDGET_H
#define ANYCACHE_CORE_MEMBUDGET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct membudget {
	atomic_size_t used;
	atomic_size_t limit;   /* a reload may change it (membudget_set_limit) */
	atomic_size_t refused; /* takes that failed, for counters */
};

static inline void membudget_init(struct membudget *b, size_t limit)
{
	atomic_init(&b->used, 0);
	atomic_init(&b->refused, 0);
	atomic_init(&b->limit, limit);
}

/* A new limit, from any thread. Below what is held now, takes fail until
 * enough was given back; nothing held is taken away. */
static inline void membudget_set_limit(struct membudget *b, size_t limit)
{
	atomic_store_explicit(&b->limit, limit, memory_order_relaxed);
}

static inline size_t membudget_limit(const struct membudget *b)
{
	return atomic_load_explicit(&b->limit, memory_order_relaxed);
}

static inline bool membudget_take(struct membudget *b, size_t n)
{
	size_t old = atomic_load_explicit(&b->used, memory_order_relaxed);
	size_t limit = membudget_limit(b);

	/* A compare-and-swap loop: the counter itself never passes the limit
	 * (a limit lowered below what is held refuses every take). */
	do {
		if (old > limit || n > limit - old) {
			atomic_fetch_add_explicit(&b->refused, 1, memory_order_relaxed);
			return false;
		}
	} while (!atomic_compare_exchange_weak_explicit(
	    &b->used, &old, old + n, memory_order_relaxed, memory_order_relaxed));
	return true;
}

static inline void membudget_give(struct membudget *b, size_t n)
{
	atomic_fetch_sub_explicit(&b->used, n, memory_order_relaxed);
}

static inline size_t membudget_used(const struct membudget *b)
{
	return atomic_load_explicit(&b->used, memory_order_relaxed);
}

#endif
