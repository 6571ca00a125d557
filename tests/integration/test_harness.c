/* The harness's own pure helpers (no daemon, no peer): unit tests. */
#include <criterion/criterion.h>

#include "harness.h"

Test(harness, bird_times_one_instant_printed_twice_are_the_same)
{
	/* BIRD's print of one monotonic instant, 1 ms apart (seen in CI). */
	cr_assert(bird_same_time("anyc2 BGP --- up 18:44:30.740 Established",
	                         "anyc2 BGP --- up 18:44:30.739 Established"));
	cr_assert(bird_same_time("18:44:30.740", "18:44:30.745"));
	cr_assert(bird_same_time("23:59:59.998", "00:00:00.001"), "across midnight");
	/* A session that went down and came back moved it by far more. */
	cr_assert_not(bird_same_time("up 18:44:30.740 Established", "up 18:44:31.740 Established"));
	cr_assert_not(bird_same_time("18:44:30.740", "18:44:30.746"));
	/* The rest of the text must match exactly. */
	cr_assert_not(bird_same_time("up 18:44:30.740 Established", "up 18:44:30.740 Active"));
	cr_assert_not(bird_same_time("up 18:44:30.740", "up 18:44:30.740 "));
	cr_assert(bird_same_time("", ""));
	/* Not a time: compared as text. */
	cr_assert_not(bird_same_time("18:44:30,740", "18:44:30,741"));
}
