/*
 * log.h: one-line log records on stderr ("anycached[pid]: level: module: text").
 *
 * The daemon runs in the foreground under a supervisor (systemd, runit, a
 * test harness); they all capture stderr, so no syslog dependency. Logging is
 * for events, never per packet: the hot path counts instead.
 */
#ifndef ANYCACHE_CORE_LOG_H
#define ANYCACHE_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level lvl);

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_err(mod, ...)   log_msg(LOG_LVL_ERR, mod, __VA_ARGS__)
#define log_warn(mod, ...)  log_msg(LOG_LVL_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...)  log_msg(LOG_LVL_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_msg(LOG_LVL_DEBUG, mod, __VA_ARGS__)

/*
 * For an event anyone on the network can cause at will (a refused
 * connection, a failing accept): at most one record per interval, the rest
 * counted and summarised by the next record, so nobody can flood the log.
 * Zero-initialise; time is a parameter (ms, any monotonic clock).
 */
struct log_rl {
	uint64_t next_ms; /* no record before this */
	uint64_t held;    /* events since the last record */
	bool started;
};

/* true: log this event now; *held = events held back since the last record. */
bool log_rl_allow(struct log_rl *rl, uint64_t now_ms, uint64_t interval_ms, uint64_t *held);

#endif
