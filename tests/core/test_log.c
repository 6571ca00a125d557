/* Unit tests for core/log.c's rate limiter, with stepped time. */
#include <criterion/criterion.h>

#include "core/log.h"

Test(log_rl, one_record_per_interval_then_a_summary)
{
	struct log_rl rl = {0};
	uint64_t held = 99;
	unsigned logged = 0;

	cr_assert(log_rl_allow(&rl, 5, 1000, &held), "the first event is logged");
	cr_assert_eq(held, 0);
	/* 10 000 events in the same second: none logged, all counted. */
	for (uint64_t t = 0; t < 10000; t++)
		logged += log_rl_allow(&rl, 5 + t / 10, 1000, &held);
	cr_assert_eq(logged, 0);
	cr_assert(log_rl_allow(&rl, 1005, 1000, &held));
	cr_assert_eq(held, 10000, "%llu", (unsigned long long)held);
	cr_assert(!log_rl_allow(&rl, 2004, 1000, &held));
	cr_assert(log_rl_allow(&rl, 2005, 1000, &held));
	cr_assert_eq(held, 1);
}

Test(log_rl, time_zero_is_a_valid_first_event)
{
	struct log_rl rl = {0};
	uint64_t held;

	cr_assert(log_rl_allow(&rl, 0, 10, &held));
	cr_assert(!log_rl_allow(&rl, 0, 10, &held));
	cr_assert(!log_rl_allow(&rl, 9, 10, &held));
	cr_assert(log_rl_allow(&rl, 10, 10, &held));
	cr_assert_eq(held, 2);
}
