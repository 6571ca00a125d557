/*
 * timer.c: binary min-heap of intrusive timers, ordered by (deadline, seq).
 * O(log n) arm/cancel/pop; each timer knows its heap index so cancel needs no
 * search.
 */
#include "core/timer.h"

#include <errno.h>
#include <stdlib.h>

struct timer_table {
	struct timer **heap;
	uint32_t n, cap;
	uint64_t seq;
};

int timer_table_new(struct timer_table **out)
{
	struct timer_table *tt = calloc(1, sizeof(*tt));
	if (!tt)
		return -ENOMEM;
	*out = tt;
	return 0;
}

void timer_table_free(struct timer_table *tt)
{
	if (!tt)
		return;
	for (uint32_t i = 0; i < tt->n; i++)
		tt->heap[i]->idx = TIMER_IDX_NONE;
	free(tt->heap);
	free(tt);
}

void timer_init(struct timer *t, timer_fn fn, void *arg)
{
	t->deadline = 0;
	t->seq = 0;
	t->idx = TIMER_IDX_NONE;
	t->fn = fn;
	t->arg = arg;
}

static bool before(const struct timer *a, const struct timer *b)
{
	return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void place(struct timer_table *tt, uint32_t i, struct timer *t)
{
	tt->heap[i] = t;
	t->idx = i;
}

static void sift_up(struct timer_table *tt, uint32_t i)
{
	struct timer *t = tt->heap[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!before(t, tt->heap[parent]))
			break;
		place(tt, i, tt->heap[parent]);
		i = parent;
	}
	place(tt, i, t);
}

static void sift_down(struct timer_table *tt, uint32_t i)
{
	struct timer *t = tt->heap[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= tt->n)
			break;
		if (c + 1 < tt->n && before(tt->heap[c + 1], tt->heap[c]))
			c++;
		if (!before(tt->heap[c], t))
			break;
		place(tt, i, tt->heap[c]);
		i = c;
	}
	place(tt, i, t);
}

static void heap_remove(struct timer_table *tt, struct timer *t)
{
	uint32_t i = t->idx;
	struct timer *last = tt->heap[--tt->n];
	t->idx = TIMER_IDX_NONE;
	if (last == t)
		return;
	place(tt, i, last);
	/* The moved element may belong above or below its new place. */
	if (i > 0 && before(last, tt->heap[(i - 1) / 2]))
		sift_up(tt, i);
	else
		sift_down(tt, i);
}

int timer_arm(struct timer_table *tt, struct timer *t, uint64_t deadline)
{
	if (timer_armed(t))
		heap_remove(tt, t);
	if (tt->n == tt->cap) {
		uint32_t ncap = tt->cap ? tt->cap * 2 : 64;
		struct timer **nh = realloc(tt->heap, (size_t)ncap * sizeof(*nh));
		if (!nh)
			return -ENOMEM;
		tt->heap = nh;
		tt->cap = ncap;
	}
	t->deadline = deadline;
	t->seq = tt->seq++;
	place(tt, tt->n++, t);
	sift_up(tt, t->idx);
	return 0;
}

void timer_cancel(struct timer_table *tt, struct timer *t)
{
	if (timer_armed(t))
		heap_remove(tt, t);
}

uint64_t timer_next_deadline(const struct timer_table *tt)
{
	return tt->n ? tt->heap[0]->deadline : TIMER_NONE;
}

size_t timer_count(const struct timer_table *tt)
{
	return tt->n;
}

unsigned timer_run_expired(struct timer_table *tt, uint64_t now, unsigned budget)
{
	unsigned ran = 0;
	while (ran < budget && tt->n && tt->heap[0]->deadline <= now) {
		struct timer *t = tt->heap[0];
		heap_remove(tt, t);
		ran++;
		if (t->fn)
			t->fn(t, now, t->arg);
	}
	return ran;
}
