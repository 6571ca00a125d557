/*
 * health_fsm.h: the per-VIP health machine and the load hysteresis, pure.
 *
 * The glue (ctl thread) gathers, once every health.interval, what it knows of
 * one VIP into a struct health_signals and steps that VIP's machine with the
 * time; the machine's state, reason bits and since_ms go into the
 * health_snapshot (health.h) that the announcement policy reads. Nothing here
 * reads a clock or does I/O, so tests drive hours of flapping in microseconds.
 *
 * States (health.h) and what moves them, first match wins:
 *   DOWN      a hard cause (address not on the host, a listener not bound and
 *             armed, a worker stalled) takes the VIP DOWN at once, without
 *             waiting for probes; so do `fall` consecutive failed self-probes.
 *   DRAINING  drain is set. A DOWN cause still takes a draining VIP DOWN (a
 *             route must not attract traffic to an address nobody answers on),
 *             and a DOWN VIP never comes back while drain is set (announcing
 *             a route only to shut it down again is churn).
 *   DEGRADED  overloaded, or every upstream failing (the cache still answers).
 *             Never DOWN for these: every node sees a dead upstream or a load
 *             surge at the same moment, and withdrawing for a shared cause
 *             withdraws the service everywhere.
 *   UP        none of the above.
 * The VIP starts DOWN with reason STARTING. It leaves DOWN only when no hard
 * cause is left, `rise` consecutive probes succeeded after the last hard cause
 * cleared, and, except the very first time, the hold-down has passed since the
 * last bad evaluation (a hard cause or a failed probe): the VIP must have been
 * good for the whole hold-down, so a signal that flaps faster than the
 * hold-down keeps the route withdrawn (one withdrawal) instead of flapping it.
 *
 * The hold-down rule, exactly. level starts at 0. Each time the VIP goes
 * DOWN from a serving state:
 *   1. level -= (time served since it last left DOWN) / decay, not below 0,
 *      where decay = hold_down << HEALTH_HOLD_DOWN_MAX_LEVEL (the cap);
 *   2. this DOWN period's hold-down = hold_down << level;
 *   3. level += 1, at most HEALTH_HOLD_DOWN_MAX_LEVEL.
 * So a VIP that keeps failing waits 1, 2, 4, ... 32 times the configured
 * hold-down, and every full cap period it serves without failing takes one
 * doubling back. The first start has no hold-down (nothing to damp yet).
 *
 * Probes: HEALTH_PROBE_NONE means no probe completed in this interval and
 * leaves the counters alone; the glue must report a probe that timed out as
 * HEALTH_PROBE_FAIL. A probe that succeeds while a hard cause is present does
 * not count towards `rise`.
 *
 * Reasons (health.h bits), recomputed every step: every hard cause present;
 * STARTING while DOWN and never served; PROBES while `fall` failures have not
 * been answered by `rise` successes; HOLD_DOWN while DOWN, served before, no
 * hard cause, no probe failure and no drain (waiting for `rise` probes or the
 * hold-down); OVERLOAD, UPSTREAMS and DRAIN whenever those signals are set, in
 * any state. UP is exactly reason 0.
 *
 * Ownership: every struct here is a value the caller owns.
 */
#ifndef ANYCACHE_CORE_HEALTH_FSM_H
#define ANYCACHE_CORE_HEALTH_FSM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/conf.h"
#include "core/health.h"

/* The hold-down grows to at most hold_down << 5 = 32 times the configured one. */
#define HEALTH_HOLD_DOWN_MAX_LEVEL 5u
/* Leave overload when every figure is below 80% of its threshold. */
#define HEALTH_OVERLOAD_EXIT_RATIO 0.8

enum health_probe {
	HEALTH_PROBE_NONE = 0, /* none completed this interval */
	HEALTH_PROBE_OK,       /* a real query answered correctly in time */
	HEALTH_PROBE_FAIL,     /* wrong answer, error or timeout */
};

struct health_fsm_conf {
	unsigned rise, fall;   /* consecutive probes; 0 is taken as 1 */
	uint64_t hold_down_ms; /* base hold-down; 0 = none */
};

/* One evaluation of one VIP, every health.interval. */
struct health_signals {
	bool listening;    /* every worker's listener for this VIP is bound and armed */
	bool addr_present; /* the address is configured on the host (rtnetlink) */
	bool stalled;      /* a worker serving it made no loop progress for fall x interval */
	enum health_probe probe;
	bool overloaded;     /* health_overload_step()'s output */
	bool upstreams_down; /* every upstream failing */
	bool drain;          /* administrative drain or planned stop */
};

/* Transparent for logs and the control socket; change only through the calls below. */
struct health_vip_fsm {
	enum health_state state;
	uint32_t reason;     /* enum health_reason bits */
	uint64_t since_ms;   /* last state change */
	unsigned good, bad;  /* consecutive OK / FAIL probes */
	bool probes_failed;  /* `fall` failures not yet answered by `rise` successes */
	bool served;         /* has left DOWN at least once (no longer STARTING) */
	unsigned level;      /* hold-down doubling level, 0..HEALTH_HOLD_DOWN_MAX_LEVEL */
	uint64_t hold_ms;    /* this DOWN period's hold-down */
	uint64_t bad_ms;     /* last bad evaluation in this DOWN period */
	uint64_t serving_ms; /* when it last left DOWN */
};

/* DOWN with reason STARTING, since now. */
void health_fsm_init(struct health_vip_fsm *f, uint64_t now);

/* One evaluation at time now (never earlier than the previous one). Returns
 * true when the state or the reason bits changed. */
bool health_fsm_step(struct health_vip_fsm *f, const struct health_fsm_conf *c,
                     const struct health_signals *s, uint64_t now);

/* ---- load hysteresis ---- */

/* Process-wide load figures for one interval. NaN or negative reads as 0 (an
 * unknown figure never moves traffic); +Inf is over any threshold. */
struct health_load {
	double busy;           /* fraction of the interval a worker loop spent working, 0..1 */
	double drops_per_s;    /* datagrams the kernel dropped on our sockets */
	double inflight_ratio; /* upstream queries in flight / the in-flight bound, 0..1 */
	double latency_ms;     /* time to answer a query (the self-probe's round trip) */
};

/* A threshold of 0 leaves that figure unchecked. */
struct health_overload_conf {
	double busy, drops_per_s, inflight_ratio, latency_ms;
	double exit_ratio; /* HEALTH_OVERLOAD_EXIT_RATIO */
	unsigned enter;    /* consecutive intervals over a threshold to enter (health.fall) */
	unsigned leave; /* consecutive intervals under exit_ratio x every threshold (health.rise) */
};

struct health_overload {
	bool on;
	unsigned over, calm; /* consecutive intervals counted towards entering / leaving */
};

/*
 * Enters overload after `enter` consecutive intervals in which some checked
 * figure is at or over its threshold; leaves it after `leave` consecutive
 * intervals in which every checked figure is below exit_ratio x its
 * threshold. Between the two lines nothing moves, so a load hovering at the
 * threshold does not flap the VIP between UP and DEGRADED. Returns o->on.
 */
bool health_overload_step(struct health_overload *o, const struct health_overload_conf *c,
                          const struct health_load *l);

/* Both settings from the configuration: rise/fall/hold-down for the machine;
 * the thresholds, exit ratio and enter = fall, leave = rise for the hysteresis. */
void health_fsm_conf_from(const struct conf_health *h, struct health_fsm_conf *fc,
                          struct health_overload_conf *oc);

#endif
