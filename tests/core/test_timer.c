/* Unit tests for core/timer.c: heap order, ties, cancel, budget, and a
 * randomized comparison against a brute-force reference model. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "core/timer.h"

#define NT 500

static uint64_t fired[4 * NT];
static unsigned nfired;

static void record(struct timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	fired[nfired++] = (uint64_t)(uintptr_t)arg;
}

Test(timer, heap_order_many)
{
	struct timer_table *tt;
	static struct timer ts[NT];
	cr_assert_eq(timer_table_new(&tt), 0);
	nfired = 0;
	srand(7);
	for (unsigned i = 0; i < NT; i++) {
		timer_init(&ts[i], record, (void *)(uintptr_t)i);
		cr_assert_eq(timer_arm(tt, &ts[i], 1000 + (uint64_t)(rand() % 5000)), 0);
	}
	cr_assert_eq(timer_count(tt), NT);
	cr_assert_eq(timer_run_expired(tt, 999, 1000), 0);
	cr_assert_eq(timer_run_expired(tt, 10000, 1000), NT);
	cr_assert_eq(nfired, NT);
	for (unsigned i = 1; i < NT; i++)
		cr_assert_leq(ts[fired[i - 1]].deadline, ts[fired[i]].deadline,
		              "out of order at %u", i);
	cr_assert_eq(timer_next_deadline(tt), TIMER_NONE);
	for (unsigned i = 0; i < NT; i++)
		cr_assert(!timer_armed(&ts[i]));
	timer_table_free(tt);
}

Test(timer, equal_deadlines_fire_in_arm_order)
{
	struct timer_table *tt;
	struct timer ts[20];
	cr_assert_eq(timer_table_new(&tt), 0);
	nfired = 0;
	for (unsigned i = 0; i < 20; i++) {
		timer_init(&ts[i], record, (void *)(uintptr_t)i);
		cr_assert_eq(timer_arm(tt, &ts[i], 50), 0);
	}
	cr_assert_eq(timer_run_expired(tt, 50, 100), 20);
	for (unsigned i = 0; i < 20; i++)
		cr_assert_eq(fired[i], i);
	timer_table_free(tt);
}

Test(timer, cancel_and_rearm)
{
	struct timer_table *tt;
	struct timer a, b, c;
	cr_assert_eq(timer_table_new(&tt), 0);
	nfired = 0;
	timer_init(&a, record, (void *)1);
	timer_init(&b, record, (void *)2);
	timer_init(&c, record, (void *)3);
	timer_arm(tt, &a, 10);
	timer_arm(tt, &b, 20);
	timer_arm(tt, &c, 30);
	cr_assert_eq(timer_next_deadline(tt), 10);
	timer_cancel(tt, &a);
	cr_assert(!timer_armed(&a));
	timer_cancel(tt, &a); /* second cancel is a no-op */
	cr_assert_eq(timer_next_deadline(tt), 20);
	cr_assert_eq(timer_arm(tt, &c, 5), 0); /* re-arm earlier */
	cr_assert_eq(timer_next_deadline(tt), 5);
	cr_assert_eq(timer_arm(tt, &c, 40), 0); /* re-arm later */
	cr_assert_eq(timer_next_deadline(tt), 20);
	cr_assert_eq(timer_count(tt), 2);
	cr_assert_eq(timer_run_expired(tt, 100, 10), 2);
	cr_assert_eq(nfired, 2);
	cr_assert_eq(fired[0], 2);
	cr_assert_eq(fired[1], 3);
	timer_table_free(tt);
}

Test(timer, run_budget)
{
	struct timer_table *tt;
	struct timer ts[10];
	cr_assert_eq(timer_table_new(&tt), 0);
	nfired = 0;
	for (unsigned i = 0; i < 10; i++) {
		timer_init(&ts[i], record, (void *)(uintptr_t)i);
		timer_arm(tt, &ts[i], i);
	}
	cr_assert_eq(timer_run_expired(tt, 100, 3), 3);
	cr_assert_eq(timer_count(tt), 7);
	cr_assert_eq(timer_next_deadline(tt), 3);
	cr_assert_eq(timer_run_expired(tt, 5, 100), 3); /* 3,4,5 */
	cr_assert_eq(timer_next_deadline(tt), 6);
	cr_assert_eq(nfired, 6);
	timer_table_free(tt);
}

/* A callback that re-arms itself at `now` must not loop forever: the budget
 * bounds it. */
static unsigned self_runs;
static struct timer_table *self_tt;
static void rearm_self(struct timer *t, uint64_t now, void *arg)
{
	self_runs++;
	timer_arm(self_tt, t, now);
}

Test(timer, self_rearm_bounded_by_budget)
{
	struct timer t;
	cr_assert_eq(timer_table_new(&self_tt), 0);
	timer_init(&t, rearm_self, NULL);
	timer_arm(self_tt, &t, 1);
	cr_assert_eq(timer_run_expired(self_tt, 1, 16), 16);
	cr_assert_eq(self_runs, 16);
	cr_assert(timer_armed(&t));
	timer_table_free(self_tt);
}

/* Random arm/cancel/run against a reference: an array scanned linearly. */
Test(timer, random_against_reference)
{
	enum { N = 64, ITER = 20000 };
	struct timer_table *tt;
	static struct timer ts[N];
	bool ref_armed[N] = {0};
	uint64_t ref_dl[N] = {0}, ref_seq[N] = {0}, seq = 0, now = 0;
	cr_assert_eq(timer_table_new(&tt), 0);
	srand(12345);
	for (unsigned i = 0; i < N; i++)
		timer_init(&ts[i], record, (void *)(uintptr_t)i);
	for (unsigned it = 0; it < ITER; it++) {
		unsigned k = (unsigned)rand() % N;
		int op = rand() % 10;
		if (op < 5) {
			uint64_t dl = now + (uint64_t)(rand() % 50);
			cr_assert_eq(timer_arm(tt, &ts[k], dl), 0);
			ref_armed[k] = true;
			ref_dl[k] = dl;
			ref_seq[k] = seq++;
		} else if (op < 7) {
			timer_cancel(tt, &ts[k]);
			ref_armed[k] = false;
		} else {
			now += (uint64_t)(rand() % 10);
			unsigned budget = 1 + (unsigned)rand() % 8;
			nfired = 0;
			unsigned ran = timer_run_expired(tt, now, budget);
			/* Reference: repeatedly take the minimum (deadline, seq). */
			unsigned exp = 0;
			while (exp < budget) {
				int best = -1;
				for (unsigned j = 0; j < N; j++)
					if (ref_armed[j] && ref_dl[j] <= now &&
					    (best < 0 || ref_dl[j] < ref_dl[best] ||
					     (ref_dl[j] == ref_dl[best] &&
					      ref_seq[j] < ref_seq[best])))
						best = (int)j;
				if (best < 0)
					break;
				cr_assert_eq(fired[exp], (uint64_t)best,
				             "iter %u: fired %lu want %d", it,
				             (unsigned long)fired[exp], best);
				ref_armed[best] = false;
				exp++;
			}
			cr_assert_eq(ran, exp);
		}
		uint64_t want = TIMER_NONE;
		size_t cnt = 0;
		for (unsigned j = 0; j < N; j++) {
			if (ref_armed[j]) {
				cnt++;
				if (ref_dl[j] < want)
					want = ref_dl[j];
			}
			cr_assert_eq(timer_armed(&ts[j]), ref_armed[j]);
		}
		cr_assert_eq(timer_next_deadline(tt), want);
		cr_assert_eq(timer_count(tt), cnt);
	}
	timer_table_free(tt);
}
