/*
 * log.h: one-line log records on stderr ("anycached[pid]: level: module: text").
 *
 * The daemon runs in the foreground under a supervisor (systemd, runit, a
 * test harness); they all capture stderr, so no syslog dependency. Under
 * systemd (JOURNAL_STREAM names our stderr) each line starts with its
 * sd-daemon(3) priority ("<4>"), so the journal files it at that severity.
 * Logging is for events, never per packet: the hot path counts instead.
 *
 * Repeats: the same event (call site: module and format) is rate-limited by
 * log_limit.h: LOG_LIMIT_BURST lines per LOG_LIMIT_WINDOW_MS, then one
 * "suppressed N" summary.
 *
 * Blocking: before log_start and after log_stop a record is written at once
 * (start-up and exit run on one thread). Between them, a record is formatted
 * by the caller and copied into a bounded queue (LOG_QUEUE_LINES) under a
 * mutex held for that copy alone; the "log" thread does the write(2), which
 * may block on a full pipe or a slow terminal. A full queue drops the record
 * and counts it; the log thread reports the count. So a DNS worker never
 * waits on stderr.
 */
#ifndef ANYCACHE_CORE_LOG_H
#define ANYCACHE_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

#define LOG_QUEUE_LINES 256
#define LOG_LINE_MAX    1024

void log_set_level(enum log_level lvl);

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Starts the log thread (records are queued from now on). 0 or -errno. */
int log_start(void);
/* Writes what is queued, stops the thread, then the summaries still held.
 * Waits at most 2 s for a stuck stderr: then records still queued are lost
 * (the thread stays blocked until exit) and later records are queued or
 * dropped as before, never written by the caller. */
void log_stop(void);
/* Records dropped because the queue was full, since the process started. */
uint64_t log_dropped(void);

#define log_err(mod, ...)   log_msg(LOG_LVL_ERR, mod, __VA_ARGS__)
#define log_warn(mod, ...)  log_msg(LOG_LVL_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...)  log_msg(LOG_LVL_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_msg(LOG_LVL_DEBUG, mod, __VA_ARGS__)

#endif
