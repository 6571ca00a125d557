/*
 * health.c: names for the plain-data health snapshot (see health.h).
 */
#include "core/health.h"

#include <stdio.h>

const char *health_state_name(enum health_state s)
{
	switch (s) {
	case HEALTH_DOWN:
		return "down";
	case HEALTH_UP:
		return "up";
	case HEALTH_DEGRADED:
		return "degraded";
	case HEALTH_DRAINING:
		return "draining";
	}
	return "unknown";
}

static const char *const reason_names[] = {
    "starting", "no-listener", "no-address", "stalled",   "probes-failing",
    "overload", "upstreams",   "drain",      "hold-down",
};

const char *health_reason_name(uint32_t bit)
{
	for (unsigned i = 0; i < sizeof(reason_names) / sizeof(reason_names[0]); i++)
		if (bit == 1u << i)
			return reason_names[i];
	return NULL;
}

const char *health_reasons_format(uint32_t bits, char *buf, size_t size)
{
	size_t off = 0;

	if (size)
		buf[0] = 0;
	for (unsigned i = 0; i < 32 && off < size; i++) {
		const char *n = (bits & (1u << i)) ? health_reason_name(1u << i) : NULL;
		if (n)
			off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? ", " : "", n);
	}
	if (size && !buf[0])
		snprintf(buf, size, "ok");
	return buf;
}
