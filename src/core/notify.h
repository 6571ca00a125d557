/*
 * notify.h: the service manager's readiness protocol (sd_notify(3), the
 * NOTIFY_SOCKET datagram socket of systemd's Type=notify).
 *
 * Without NOTIFY_SOCKET in the environment every call does nothing, so the
 * daemon behaves the same under a test harness, runit or a shell. Each call
 * is one datagram sendmsg on a socket libsystemd opens for it; it is made
 * from the main and control threads only, never from a DNS worker.
 */
#ifndef ANYCACHE_CORE_NOTIFY_H
#define ANYCACHE_CORE_NOTIFY_H

#include <stdint.h>
#include <sys/types.h>

/* READY=1 with a STATUS= line: the caller decides when it is really ready. */
void notify_ready(const char *status);
/* STOPPING=1 with a STATUS= line (a planned stop or drain has begun). */
void notify_stopping(const char *status);
/* A STATUS= line alone (shown by `systemctl status`). printf-style. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* MAINPID=pid: another process of the unit (a restart's successor) is the
 * main process from now on. */
void notify_mainpid(pid_t pid);
/* WATCHDOG=1. */
void notify_watchdog(void);
/* The watchdog interval systemd expects pings within, in ms (WatchdogSec=);
 * 0 when no watchdog is asked for. */
uint64_t notify_watchdog_ms(void);

#endif
