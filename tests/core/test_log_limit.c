/*
 * Tests for src/core/log_limit.c: the per-event rate limit with stepped
 * time (no clock is read: every call gets `now`).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/log_limit.h"

static struct log_limit lim;

/* n records of key at now; returns how many were let out. */
static unsigned flood(uint64_t key, unsigned n, uint64_t now, struct log_limit_summary *last_sum)
{
	unsigned out = 0;
	char text[32];

	for (unsigned i = 0; i < n; i++) {
		struct log_limit_summary s;
		snprintf(text, sizeof(text), "event %llu #%u", (unsigned long long)key, i);
		out += log_limit_admit(&lim, key, 4, text, now, &s);
		if (last_sum && s.suppressed)
			*last_sum = s;
	}
	return out;
}

Test(log_limit, burst_then_suppressed_then_summary_with_count)
{
	struct log_limit_summary s = {0};

	log_limit_init(&lim, 10, 5000);
	cr_expect_eq(flood(7, 1000, 1000, &s), 10, "only the burst goes out");
	cr_expect_eq(s.suppressed, 0, "no summary inside the window");
	/* Still inside the window 4.999 s later: held back, counted. */
	cr_expect_eq(flood(7, 5, 5999, &s), 0);
	cr_expect_eq(s.suppressed, 0);
	/* The window is over: the next record goes out after its summary. */
	struct log_limit_summary sum;
	cr_expect(log_limit_admit(&lim, 7, 3, "event 7 again", 6000, &sum));
	cr_expect_eq(sum.suppressed, 995, "990 + 5 held back, got %llu",
	             (unsigned long long)sum.suppressed);
	cr_expect_eq(sum.window_ms, 5000);
	cr_expect_str_eq(sum.text, "event 7 #4", "the last suppressed text");
	cr_expect_eq(sum.level, 4, "the suppressed records' level");
	/* A new window: a full burst again (1 used above). */
	cr_expect_eq(flood(7, 20, 6001, NULL), 9);
}

Test(log_limit, events_are_independent)
{
	log_limit_init(&lim, 3, 1000);
	cr_expect_eq(flood(1, 50, 0, NULL), 3);
	cr_expect_eq(flood(2, 50, 0, NULL), 3, "a flood of one event does not mute another");
	cr_expect_eq(flood(1, 50, 999, NULL), 0);
	cr_expect_eq(flood(2, 1, 1000, NULL), 1);
}

Test(log_limit, quiet_event_summary_comes_from_expire)
{
	struct log_limit_summary out[4];

	log_limit_init(&lim, 2, 1000);
	flood(5, 12, 100, NULL);
	cr_expect_eq(log_limit_expire(&lim, 1099, out, 4), 0, "window not over yet");
	cr_assert_eq(log_limit_expire(&lim, 1100, out, 4), 1);
	cr_expect_eq(out[0].suppressed, 10);
	cr_expect_eq(log_limit_expire(&lim, 5000, out, 4), 0, "said once");
	/* After its summary the event starts afresh. */
	cr_expect_eq(flood(5, 5, 5000, NULL), 2);
}

Test(log_limit, expire_hands_out_at_most_max)
{
	struct log_limit_summary out[3];
	unsigned total = 0, n;

	log_limit_init(&lim, 1, 10);
	for (uint64_t k = 1; k <= 7; k++)
		flood(k, 4, 0, NULL);
	do {
		n = log_limit_expire(&lim, 10, out, 3);
		for (unsigned i = 0; i < n; i++)
			cr_expect_eq(out[i].suppressed, 3);
		total += n;
	} while (n == 3);
	cr_expect_eq(total, 7);
}

Test(log_limit, full_table_evicts_least_recent_with_its_summary)
{
	struct log_limit_summary s;

	log_limit_init(&lim, 1, 60000);
	/* Key 1 held back records, then LOG_LIMIT_SLOTS other events arrive later. */
	flood(1, 3, 0, NULL);
	for (uint64_t k = 2; k <= LOG_LIMIT_SLOTS; k++) {
		cr_expect(log_limit_admit(&lim, k, 6, "x", k, &s));
		cr_expect_eq(s.suppressed, 0);
	}
	/* The table is full: a new event takes key 1's slot and brings its count. */
	cr_expect(log_limit_admit(&lim, 1000, 6, "new", 100, &s));
	cr_expect_eq(s.suppressed, 2, "the evicted event's 2 held-back records are reported");
	/* Key 1 comes back as a new event: its burst is fresh. */
	cr_expect(log_limit_admit(&lim, 1, 6, "back", 200, &s));
}

Test(log_limit, hours_of_flood_lose_no_count)
{
	uint64_t shown = 0, summarized = 0;
	struct log_limit_summary s;

	log_limit_init(&lim, LOG_LIMIT_BURST, LOG_LIMIT_WINDOW_MS);
	/* 2 h at 100 records per second, in 10 ms steps. */
	for (uint64_t t = 0; t < 2 * 3600 * 1000; t += 10) {
		shown += log_limit_admit(&lim, 42, 4, "flood", t, &s);
		summarized += s.suppressed;
	}
	struct log_limit_summary out[1];
	if (log_limit_expire(&lim, UINT64_MAX / 2, out, 1))
		summarized += out[0].suppressed;
	cr_expect_eq(shown + summarized, 2 * 3600 * 100, "every record shown or counted");
	cr_expect_eq(shown, 2 * 3600 * 1000 / LOG_LIMIT_WINDOW_MS * LOG_LIMIT_BURST);
}
