/*
 * clock.h: the one time base of anycache.
 *
 * Protocol logic never reads a clock: it takes `now` (milliseconds on the
 * monotonic clock) as a parameter, so tests can step time. Only the glue
 * (loop turns) calls clock_now_ms(). CLOCK_MONOTONIC does not jump with
 * settimeofday/NTP steps, which matters for hold timers and TTLs alike.
 */
#ifndef ANYCACHE_CORE_CLOCK_H
#define ANYCACHE_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline uint64_t clock_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * Wall-clock time, ms since the Unix epoch: only for what must outlive the
 * process and the boot (the cache file's save time, dns_cache.h); it jumps
 * with the clock, so nothing else uses it.
 */
static inline uint64_t clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
