#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum log_level log_level = LOG_LVL_INFO;

void log_set_level(enum log_level lvl)
{
	log_level = lvl;
}

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	char line[1024];
	va_list ap;
	int n;

	if (lvl > log_level)
		return;
	n = snprintf(line, sizeof(line), "anycached[%d]: %s: %s: ", (int)getpid(), names[lvl],
	             module);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per record so lines from worker threads do not interleave. */
	size_t len = strnlen(line, sizeof(line) - 2);
	line[len++] = '\n';
	ssize_t unused = write(STDERR_FILENO, line, len);
	(void)unused;
}

bool log_rl_allow(struct log_rl *rl, uint64_t now_ms, uint64_t interval_ms, uint64_t *held)
{
	if (rl->started && now_ms < rl->next_ms) {
		rl->held++;
		return false;
	}
	*held = rl->held;
	rl->held = 0;
	rl->started = true;
	rl->next_ms = now_ms + interval_ms;
	return true;
}
