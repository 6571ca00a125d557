/* notify.c: notify.h over libsystemd's sd_notify. */
#include "core/notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

/*
 * MAINPID= on every READY: after `anycachectl restart` the successor (a child
 * of the old main process, same cgroup) becomes the main process when it is
 * ready, so systemd neither mistakes the old one's exit for the service's
 * nor kills the successor with it (the unit has NotifyAccess=all). On a
 * plain start it is our own PID, which systemd already knows.
 */
void notify_ready(const char *status)
{
	sd_notifyf(0, "MAINPID=%d\nREADY=1\nSTATUS=%s", (int)getpid(), status);
}

void notify_stopping(const char *status)
{
	sd_notifyf(0, "STOPPING=1\nSTATUS=%s", status);
}

void notify_status(const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", text);
}

void notify_mainpid(pid_t pid)
{
	sd_notifyf(0, "MAINPID=%d", (int)pid);
}

void notify_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}

uint64_t notify_watchdog_ms(void)
{
	uint64_t usec = 0;

	/* unset_environment 0: WATCHDOG_USEC stays for whoever reads it again. */
	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec / 1000;
}
