/*
 * health_fsm.c: the per-VIP health machine and the load hysteresis. See
 * health_fsm.h for the rules; this file only implements them.
 */
#include "core/health_fsm.h"

#include <math.h>

#define HARD_CAUSES (HEALTH_R_NO_ADDRESS | HEALTH_R_NO_LISTENER | HEALTH_R_STALLED)

void health_fsm_init(struct health_vip_fsm *f, uint64_t now)
{
	*f = (struct health_vip_fsm){
	    .state = HEALTH_DOWN,
	    .reason = HEALTH_R_STARTING,
	    .since_ms = now,
	    .bad_ms = now,
	};
}

static unsigned at_least_1(unsigned v)
{
	return v ? v : 1;
}

/* Steps 1-3 of the hold-down rule (health_fsm.h). */
static void enter_down(struct health_vip_fsm *f, const struct health_fsm_conf *c, uint64_t now)
{
	uint64_t base = c->hold_down_ms;

	/* Configured values are bounded (conf.c); this only keeps a shift from wrapping. */
	if (base > (UINT64_MAX >> (HEALTH_HOLD_DOWN_MAX_LEVEL + 1)))
		base = UINT64_MAX >> (HEALTH_HOLD_DOWN_MAX_LEVEL + 1);
	uint64_t decay = base << HEALTH_HOLD_DOWN_MAX_LEVEL;
	if (decay) {
		uint64_t served = now > f->serving_ms ? now - f->serving_ms : 0;
		uint64_t steps = served / decay;
		f->level = steps >= f->level ? 0 : f->level - (unsigned)steps;
	}
	f->hold_ms = base << f->level;
	if (f->level < HEALTH_HOLD_DOWN_MAX_LEVEL)
		f->level++;
	f->state = HEALTH_DOWN;
	f->bad_ms = now;
}

static enum health_state serving_state(const struct health_signals *s)
{
	if (s->drain)
		return HEALTH_DRAINING;
	if (s->overloaded || s->upstreams_down)
		return HEALTH_DEGRADED;
	return HEALTH_UP;
}

bool health_fsm_step(struct health_vip_fsm *f, const struct health_fsm_conf *c,
                     const struct health_signals *s, uint64_t now)
{
	enum health_state old_state = f->state;
	uint32_t old_reason = f->reason;
	unsigned rise = at_least_1(c->rise), fall = at_least_1(c->fall);
	uint32_t hard = (s->addr_present ? 0 : HEALTH_R_NO_ADDRESS) |
	                (s->listening ? 0 : HEALTH_R_NO_LISTENER) |
	                (s->stalled ? HEALTH_R_STALLED : 0);

	/* Probes. Success only counts with nothing hard in the way; counters saturate. */
	if (hard)
		f->good = 0;
	if (s->probe == HEALTH_PROBE_OK) {
		f->bad = 0;
		if (!hard && f->good < rise)
			f->good++;
	} else if (s->probe == HEALTH_PROBE_FAIL) {
		f->good = 0;
		if (f->bad < fall)
			f->bad++;
	}
	if (f->bad >= fall)
		f->probes_failed = true;
	if (f->good >= rise)
		f->probes_failed = false;

	bool down_cause = hard || f->probes_failed;
	if (f->state != HEALTH_DOWN) {
		if (down_cause)
			enter_down(f, c, now);
		else
			f->state = serving_state(s);
	} else {
		if (down_cause || s->probe == HEALTH_PROBE_FAIL)
			f->bad_ms = now;
		uint64_t good_for = now > f->bad_ms ? now - f->bad_ms : 0;
		bool held = f->served && good_for < f->hold_ms;
		if (!down_cause && f->good >= rise && !held && !s->drain) {
			f->state = serving_state(s);
			f->served = true;
			f->serving_ms = now;
		}
	}

	uint32_t r = hard;
	if (f->state == HEALTH_DOWN) {
		if (!f->served)
			r |= HEALTH_R_STARTING;
		if (f->probes_failed)
			r |= HEALTH_R_PROBES;
		if (f->served && !down_cause && !s->drain)
			r |= HEALTH_R_HOLD_DOWN;
	}
	if (s->overloaded)
		r |= HEALTH_R_OVERLOAD;
	if (s->upstreams_down)
		r |= HEALTH_R_UPSTREAMS;
	if (s->drain)
		r |= HEALTH_R_DRAIN;
	f->reason = r;
	if (f->state != old_state)
		f->since_ms = now;
	return f->state != old_state || f->reason != old_reason;
}

/* ---- load hysteresis ---- */

static double figure(double v)
{
	return isnan(v) || v < 0 ? 0 : v;
}

/* Each checked figure against its line: over (>= threshold) and calm (< ratio x threshold). */
static void judge(double v, double threshold, double ratio, bool *over, bool *calm)
{
	if (!(threshold > 0))
		return;
	v = figure(v);
	if (v >= threshold)
		*over = true;
	if (!(v < ratio * threshold))
		*calm = false;
}

bool health_overload_step(struct health_overload *o, const struct health_overload_conf *c,
                          const struct health_load *l)
{
	double ratio = c->exit_ratio > 0 && c->exit_ratio <= 1 ? c->exit_ratio : 1;
	bool over = false, calm = true;

	judge(l->busy, c->busy, ratio, &over, &calm);
	judge(l->drops_per_s, c->drops_per_s, ratio, &over, &calm);
	judge(l->inflight_ratio, c->inflight_ratio, ratio, &over, &calm);
	judge(l->latency_ms, c->latency_ms, ratio, &over, &calm);
	if (!o->on) {
		o->over = over ? o->over + 1 : 0;
		if (o->over >= at_least_1(c->enter)) {
			o->on = true;
			o->over = o->calm = 0;
		}
	} else {
		o->calm = calm ? o->calm + 1 : 0;
		if (o->calm >= at_least_1(c->leave)) {
			o->on = false;
			o->over = o->calm = 0;
		}
	}
	return o->on;
}

void health_fsm_conf_from(const struct conf_health *h, struct health_fsm_conf *fc,
                          struct health_overload_conf *oc)
{
	*fc = (struct health_fsm_conf){
	    .rise = h->rise,
	    .fall = h->fall,
	    .hold_down_ms = h->hold_down_ms,
	};
	*oc = (struct health_overload_conf){
	    .busy = h->overload.busy_pm / 1000.0,
	    .drops_per_s = h->overload.drops_per_s,
	    .inflight_ratio = h->overload.inflight_pm / 1000.0,
	    .latency_ms = (double)h->overload.latency_ms,
	    .exit_ratio = HEALTH_OVERLOAD_EXIT_RATIO,
	    .enter = h->fall,
	    .leave = h->rise,
	};
}
