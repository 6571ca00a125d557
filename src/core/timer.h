/*
 * timer.h: deadlines as data (STYLE.md §6), kept in a binary min-heap.
 *
 * Pure: no clock reads, no io_uring. The caller passes `now` (milliseconds on
 * the clock.h monotonic base) and the event loop arms one kernel timeout for
 * timer_next_deadline(). Ownership: `struct timer` is intrusive and owned by
 * the caller; the table only holds pointers to armed timers, so a timer must
 * be cancelled (or have fired) before its memory is freed. Equal deadlines
 * fire in the order they were armed. A callback may arm or cancel any timer,
 * itself included.
 */
#ifndef ANYCACHE_CORE_TIMER_H
#define ANYCACHE_CORE_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIMER_NONE UINT64_MAX /* "no deadline" from timer_next_deadline() */

struct timer;
typedef void (*timer_fn)(struct timer *t, uint64_t now, void *arg);

/* Transparent so it can be embedded; touch only through timer_* calls. */
struct timer {
	uint64_t deadline; /* ms, valid while armed */
	uint64_t seq;      /* arm order: tie-break for equal deadlines */
	uint32_t idx;      /* heap index, TIMER_IDX_NONE when not armed */
	timer_fn fn;
	void *arg;
};
#define TIMER_IDX_NONE UINT32_MAX

struct timer_table;

int timer_table_new(struct timer_table **out);
/* Armed timers are simply forgotten (they are owned by their callers). */
void timer_table_free(struct timer_table *tt);

void timer_init(struct timer *t, timer_fn fn, void *arg);
static inline bool timer_armed(const struct timer *t)
{
	return t->idx != TIMER_IDX_NONE;
}

/* Arm (or re-arm) t at absolute `deadline`. 0 or -ENOMEM (only when the heap
 * must grow; a re-arm never allocates). */
int timer_arm(struct timer_table *tt, struct timer *t, uint64_t deadline);
/* No-op when t is not armed. */
void timer_cancel(struct timer_table *tt, struct timer *t);
/* Earliest deadline, or TIMER_NONE when nothing is armed. */
uint64_t timer_next_deadline(const struct timer_table *tt);
size_t timer_count(const struct timer_table *tt);
/* Run at most `budget` timers whose deadline <= now, earliest first; each is
 * disarmed before its callback runs. Returns how many ran. */
unsigned timer_run_expired(struct timer_table *tt, uint64_t now, unsigned budget);

#endif
