/*
 * health.c: names for the plain-data health snapshot (see health.h).
 */
#include "core/health.h"

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
