/*
 * log_limit.h: the rate limit of repeated log events (pure; time is a
 * parameter, so tests step it).
 *
 * An event is its call site: the caller passes a key (log.c hashes the
 * module and format string pointers), so "upstream 192.0.2.1 timed out" and
 * "upstream 192.0.2.2 timed out" are one event. Per key, at most `burst`
 * records go out per window of `window_ms`; the rest are counted. When the
 * window is over, the next record of that event (or log_limit_expire, for an
 * event that went quiet) brings a summary: how many were suppressed and the
 * text of the last one, so a flood costs a few lines and loses no count.
 *
 * The table is fixed (LOG_LIMIT_SLOTS events); a new event takes the slot
 * least recently seen, and a slot that still holds suppressed records hands
 * them out as a summary first. Not thread-safe: log.c holds its lock.
 */
#ifndef ANYCACHE_CORE_LOG_LIMIT_H
#define ANYCACHE_CORE_LOG_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define LOG_LIMIT_SLOTS     64
#define LOG_LIMIT_TEXT      160
#define LOG_LIMIT_BURST     10 /* records per event per window */
#define LOG_LIMIT_WINDOW_MS 5000

struct log_limit_summary {
	uint64_t suppressed;       /* 0: no summary */
	int level;                 /* the event's level (enum log_level) */
	uint64_t window_ms;        /* how long the counting ran */
	char text[LOG_LIMIT_TEXT]; /* the last suppressed record's text */
};

struct log_limit_slot {
	uint64_t key; /* 0: free */
	uint64_t window_start, last_seen;
	unsigned count;      /* records let out in this window */
	uint64_t suppressed; /* records held back in this window */
	int level;
	char text[LOG_LIMIT_TEXT];
};

struct log_limit {
	struct log_limit_slot slot[LOG_LIMIT_SLOTS];
	unsigned burst;
	uint64_t window_ms;
};

void log_limit_init(struct log_limit *l, unsigned burst, uint64_t window_ms);

/*
 * One record of event key (non-zero) at now_ms. Returns true when it may go
 * out. sum->suppressed > 0 when a summary must go out first (a window of
 * this key, or of the slot's evicted event, ended with records held back).
 */
bool log_limit_admit(struct log_limit *l, uint64_t key, int level, const char *text,
                     uint64_t now_ms, struct log_limit_summary *sum);

/*
 * Ends every window that is over at now_ms; fills out[0..max-1] with the
 * summaries of those that held records back. Returns how many were filled
 * (call again while it returns max).
 */
unsigned log_limit_expire(struct log_limit *l, uint64_t now_ms, struct log_limit_summary *out,
                          unsigned max);

#endif
