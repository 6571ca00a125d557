/* log_limit.c: log_limit.h's per-event windows. */
#include "core/log_limit.h"

#include <stdio.h>
#include <string.h>

void log_limit_init(struct log_limit *l, unsigned burst, uint64_t window_ms)
{
	memset(l, 0, sizeof(*l));
	l->burst = burst ? burst : 1;
	l->window_ms = window_ms ? window_ms : 1;
}

/* Closes s's window: its summary (if it held records back) into sum. */
static void close_window(struct log_limit *l, struct log_limit_slot *s, uint64_t now_ms,
                         struct log_limit_summary *sum)
{
	if (sum && s->suppressed) {
		sum->suppressed = s->suppressed;
		sum->level = s->level;
		sum->window_ms = now_ms - s->window_start;
		if (sum->window_ms < l->window_ms)
			sum->window_ms = l->window_ms;
		memcpy(sum->text, s->text, sizeof(sum->text));
	}
	s->suppressed = 0;
	s->count = 0;
	s->window_start = now_ms;
}

bool log_limit_admit(struct log_limit *l, uint64_t key, int level, const char *text,
                     uint64_t now_ms, struct log_limit_summary *sum)
{
	struct log_limit_slot *s = NULL, *free_slot = NULL, *lru = NULL;

	memset(sum, 0, sizeof(*sum));
	if (key == 0)
		key = 1;
	for (unsigned i = 0; i < LOG_LIMIT_SLOTS && !s; i++) {
		struct log_limit_slot *e = &l->slot[i];
		if (e->key == key)
			s = e;
		else if (e->key == 0 && !free_slot)
			free_slot = e;
		else if (e->key != 0 && (!lru || e->last_seen < lru->last_seen))
			lru = e;
	}
	if (!s) {
		/* A free slot if any, else the least recently seen event's. */
		s = free_slot ? free_slot : lru;
		if (s->key)
			close_window(l, s, now_ms, sum);
		memset(s, 0, sizeof(*s));
		s->key = key;
		s->window_start = now_ms;
	} else if (now_ms - s->window_start >= l->window_ms) {
		close_window(l, s, now_ms, sum);
	}
	s->last_seen = now_ms;
	s->level = level;
	if (s->count < l->burst) {
		s->count++;
		return true;
	}
	s->suppressed++;
	snprintf(s->text, sizeof(s->text), "%s", text ? text : "");
	return false;
}

unsigned log_limit_expire(struct log_limit *l, uint64_t now_ms, struct log_limit_summary *out,
                          unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < LOG_LIMIT_SLOTS && n < max; i++) {
		struct log_limit_slot *s = &l->slot[i];
		if (!s->key || !s->suppressed || now_ms - s->window_start < l->window_ms)
			continue;
		memset(&out[n], 0, sizeof(out[n]));
		close_window(l, s, now_ms, &out[n]);
		n++;
	}
	return n;
}
