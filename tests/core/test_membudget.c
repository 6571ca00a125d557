/* Unit tests for core/membudget.h: one byte budget shared by threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>

#include "core/membudget.h"

Test(membudget, takes_up_to_the_limit_never_beyond)
{
	struct membudget b;

	membudget_init(&b, 1000);
	cr_assert(membudget_take(&b, 600));
	cr_assert_not(membudget_take(&b, 401), "would pass the limit");
	cr_assert_eq(membudget_used(&b), 600, "a failed take charges nothing");
	cr_assert(membudget_take(&b, 400));
	cr_assert_not(membudget_take(&b, 1));
	membudget_give(&b, 600);
	cr_assert(membudget_take(&b, 100));
	cr_assert_eq(membudget_used(&b), 500);
	cr_assert_not(membudget_take(&b, SIZE_MAX), "no wrap-around");
	cr_assert_eq(atomic_load(&b.refused), 3);
}

Test(membudget, a_lower_limit_refuses_until_enough_is_given_back)
{
	struct membudget b;

	membudget_init(&b, 1000);
	cr_assert(membudget_take(&b, 800));
	membudget_set_limit(&b, 500); /* a reload: below what is held */
	cr_assert_eq(membudget_limit(&b), 500);
	cr_assert_eq(membudget_used(&b), 800, "nothing held is taken away");
	cr_assert_not(membudget_take(&b, 1), "held 800 of 500: every take refused");
	membudget_give(&b, 400);
	cr_assert(membudget_take(&b, 100));
	cr_assert_not(membudget_take(&b, 1));
	membudget_set_limit(&b, 2000); /* raised: room again */
	cr_assert(membudget_take(&b, 1500));
	cr_assert_eq(membudget_used(&b), 2000);
}

static struct membudget shared;
static atomic_size_t peak;

static void *hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 200000; i++) {
		size_t n = 1 + (size_t)(i % 97);
		if (membudget_take(&shared, n)) {
			size_t u = membudget_used(&shared);
			size_t p = atomic_load(&peak);
			while (u > p && !atomic_compare_exchange_weak(&peak, &p, u))
				;
			membudget_give(&shared, n);
		}
	}
	return NULL;
}

/* Four threads near the limit: the sum never passes it and ends at zero. */
Test(membudget, threads_never_pass_the_limit)
{
	pthread_t t[4];

	membudget_init(&shared, 150);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(membudget_used(&shared), 0);
	cr_assert_leq(atomic_load(&peak), 150);
}
