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
	size_t limit;
	atomic_size_t refused; /* takes that failed, for counters */
};

static inline void membudget_init(struct membudget *b, size_t limit)
{
	atomic_init(&b->used, 0);
	atomic_init(&b->refused, 0);
	b->limit = limit;
}

static inline bool membudget_take(struct membudget *b, size_t n)
{
	size_t old = atomic_load_explicit(&b->used, memory_order_relaxed);

	/* A compare-and-swap loop: the counter itself never passes the limit. */
	do {
		if (n > b->limit - old) {
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
