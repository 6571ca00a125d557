/*
 * test_health_fsm.c: the per-VIP health machine and the load hysteresis,
 * driven with stepped time (one step per health.interval, 200 ms here).
 */
#include <criterion/criterion.h>
#include <string.h>
#include <math.h>

#include "core/health_fsm.h"

#define IV   200u   /* health.interval */
#define HOLD 10000u /* health.hold-down */

static const struct health_fsm_conf CONF = {.rise = 3, .fall = 2, .hold_down_ms = HOLD};

/* A VIP whose every signal is good and whose probe answers. */
static struct health_signals good(void)
{
	return (struct health_signals){
	    .listening = true, .addr_present = true, .probe = HEALTH_PROBE_OK};
}

struct sim {
	struct health_vip_fsm f;
	uint64_t now;
	unsigned changes, downs; /* step() calls that returned true; entries into DOWN */
};

static void sim_init(struct sim *s)
{
	s->now = 1000000;
	s->changes = s->downs = 0;
	health_fsm_init(&s->f, s->now);
}

/* One interval later, one evaluation. */
static bool step(struct sim *s, const struct health_signals *sig)
{
	enum health_state before = s->f.state;
	s->now += IV;
	bool ch = health_fsm_step(&s->f, &CONF, sig, s->now);
	s->changes += ch;
	s->downs += before != HEALTH_DOWN && s->f.state == HEALTH_DOWN;
	return ch;
}

static void steps(struct sim *s, const struct health_signals *sig, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		step(s, sig);
}

/* From start to UP: rise good probes. */
static void bring_up(struct sim *s)
{
	struct health_signals g = good();
	sim_init(s);
	steps(s, &g, CONF.rise);
	cr_assert_eq(s->f.state, HEALTH_UP);
}

Test(health_fsm, starts_down_and_rises_after_rise_probes)
{
	struct sim s;
	struct health_signals g = good();

	sim_init(&s);
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, HEALTH_R_STARTING);
	cr_expect_eq(s.f.since_ms, s.now);
	cr_expect_not(step(&s, &g), "one good probe changes nothing visible");
	cr_expect_not(step(&s, &g));
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, HEALTH_R_STARTING);
	cr_expect(step(&s, &g));
	cr_expect_eq(s.f.state, HEALTH_UP);
	cr_expect_eq(s.f.reason, 0);
	cr_expect_eq(s.f.since_ms, s.now);
	/* No hold-down on the first start. */
	cr_expect_not(step(&s, &g));
}

Test(health_fsm, start_needs_the_listener_first)
{
	struct sim s;
	struct health_signals g = good(), nl = good();

	nl.listening = false;
	sim_init(&s);
	steps(&s, &nl, 10); /* probes answer (another worker) but the listener is not armed */
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, HEALTH_R_STARTING | HEALTH_R_NO_LISTENER);
	cr_expect_eq(s.f.good, 0, "probes with a hard cause present do not count");
	steps(&s, &g, CONF.rise - 1);
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, HEALTH_R_STARTING);
	step(&s, &g);
	cr_expect_eq(s.f.state, HEALTH_UP);
}

Test(health_fsm, no_probe_leaves_the_counters)
{
	struct sim s;
	struct health_signals g = good(), none = good();

	none.probe = HEALTH_PROBE_NONE;
	sim_init(&s);
	step(&s, &g);
	steps(&s, &none, 20);
	step(&s, &g);
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	step(&s, &g);
	cr_expect_eq(s.f.state, HEALTH_UP, "NONE neither counts nor breaks the run");
	/* NONE between two failures: still consecutive. */
	struct health_signals fail = good();
	fail.probe = HEALTH_PROBE_FAIL;
	step(&s, &fail);
	steps(&s, &none, 5);
	cr_expect_eq(s.f.state, HEALTH_UP);
	step(&s, &fail);
	cr_expect_eq(s.f.state, HEALTH_DOWN);
}

Test(health_fsm, fall_failed_probes_take_it_down)
{
	struct sim s;
	struct health_signals g = good(), fail = good();

	fail.probe = HEALTH_PROBE_FAIL;
	bring_up(&s);
	/* Failures that are not consecutive never reach fall. */
	for (int i = 0; i < 50; i++) {
		step(&s, &fail);
		step(&s, &g);
	}
	cr_expect_eq(s.f.state, HEALTH_UP);
	cr_expect_eq(s.downs, 0);
	cr_expect_not(step(&s, &fail));
	cr_expect_eq(s.f.state, HEALTH_UP);
	cr_expect(step(&s, &fail));
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, HEALTH_R_PROBES);
	cr_expect_eq(s.f.since_ms, s.now);
	cr_expect_eq(s.f.hold_ms, HOLD);
	/* rise good probes clear PROBES; the hold-down still holds. */
	steps(&s, &g, CONF.rise);
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, HEALTH_R_HOLD_DOWN);
}

/* Hard causes: DOWN in the very evaluation that sees them, without a probe. */
static void immediate(void (*spoil)(struct health_signals *), uint32_t bit)
{
	struct sim s;
	struct health_signals bad = good();

	bring_up(&s);
	spoil(&bad);
	bad.probe = HEALTH_PROBE_NONE;
	cr_expect(step(&s, &bad));
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, bit);
	/* Good probes during the hard cause do not count towards rise. */
	bad.probe = HEALTH_PROBE_OK;
	steps(&s, &bad, 100);
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, bit);
}

static void no_addr(struct health_signals *s)
{
	s->addr_present = false;
}

static void no_listener(struct health_signals *s)
{
	s->listening = false;
}

static void stalled(struct health_signals *s)
{
	s->stalled = true;
}

Test(health_fsm, address_removed_is_down_at_once)
{
	immediate(no_addr, HEALTH_R_NO_ADDRESS);
}

Test(health_fsm, listener_lost_is_down_at_once)
{
	immediate(no_listener, HEALTH_R_NO_LISTENER);
}

Test(health_fsm, stalled_worker_is_down_at_once)
{
	immediate(stalled, HEALTH_R_STALLED);
}

Test(health_fsm, hard_causes_combine)
{
	struct sim s;
	struct health_signals b = good();

	bring_up(&s);
	b.addr_present = false;
	b.listening = false;
	b.stalled = true;
	b.probe = HEALTH_PROBE_FAIL;
	step(&s, &b);
	cr_expect_eq(s.f.reason, HEALTH_R_NO_ADDRESS | HEALTH_R_NO_LISTENER | HEALTH_R_STALLED);
	step(&s, &b);
	cr_expect_eq(s.f.reason, HEALTH_R_NO_ADDRESS | HEALTH_R_NO_LISTENER | HEALTH_R_STALLED |
	                             HEALTH_R_PROBES);
}

/* The recovery waits out the hold-down counted from the last bad evaluation. */
Test(health_fsm, hold_down_after_recovery)
{
	struct sim s;
	struct health_signals g = good(), st = good();

	st.stalled = true;
	bring_up(&s);
	step(&s, &st);
	uint64_t bad_at = s.now;
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.hold_ms, HOLD);
	while (s.now - bad_at < HOLD) {
		cr_expect_eq(s.f.state, HEALTH_DOWN, "up %llu ms after the stall",
		             (unsigned long long)(s.now - bad_at));
		step(&s, &g);
		if (s.now - bad_at > CONF.rise * IV && s.now - bad_at < HOLD)
			cr_expect_eq(s.f.reason, HEALTH_R_HOLD_DOWN);
	}
	cr_expect_eq(s.now - bad_at, HOLD);
	cr_expect_eq(s.f.state, HEALTH_UP);
	cr_expect_eq(s.f.reason, 0);

	/* One failed probe (below fall) while held restarts the hold-down. */
	step(&s, &st);
	bad_at = s.now;
	cr_expect_eq(s.f.hold_ms, 2 * HOLD, "second DOWN soon after: doubled");
	steps(&s, &g, 20);
	struct health_signals f1 = good();
	f1.probe = HEALTH_PROBE_FAIL;
	step(&s, &f1);
	bad_at = s.now;
	while (s.f.state == HEALTH_DOWN && s.now - bad_at < 10 * HOLD)
		step(&s, &g);
	cr_expect_eq(s.now - bad_at, 2 * HOLD);
}

Test(health_fsm, hold_down_doubles_to_the_cap_and_decays)
{
	struct sim s;
	struct health_signals g = good(), st = good();
	uint64_t want = HOLD;

	st.stalled = true;
	bring_up(&s);
	for (unsigned k = 0; k < 9; k++) {
		step(&s, &st);
		cr_expect_eq(s.f.hold_ms, want, "DOWN #%u: hold %llu, want %llu", k + 1,
		             (unsigned long long)s.f.hold_ms, (unsigned long long)want);
		while (s.f.state == HEALTH_DOWN)
			step(&s, &g);
		if (want < (uint64_t)HOLD << HEALTH_HOLD_DOWN_MAX_LEVEL)
			want *= 2;
	}
	cr_expect_eq(s.f.level, HEALTH_HOLD_DOWN_MAX_LEVEL);
	/* Two full cap periods served without failing take two doublings back. */
	uint64_t cap = (uint64_t)HOLD << HEALTH_HOLD_DOWN_MAX_LEVEL;
	steps(&s, &g, (unsigned)(2 * cap / IV));
	step(&s, &st);
	cr_expect_eq(s.f.hold_ms, (uint64_t)HOLD << (HEALTH_HOLD_DOWN_MAX_LEVEL - 2));
	while (s.f.state == HEALTH_DOWN)
		step(&s, &g);
	/* A long stable day brings it back to the base. */
	steps(&s, &g, (unsigned)(86400000 / IV));
	step(&s, &st);
	cr_expect_eq(s.f.hold_ms, HOLD);
}

/*
 * Hours of a flapping signal: a stall of one interval every `period`. The
 * route (UP <-> DOWN) must change only a handful of times, whatever the
 * period, and come back once the flapping stops.
 */
static void flap(uint64_t period_ms, unsigned max_downs)
{
	struct sim s;
	struct health_signals g = good(), st = good();
	uint64_t hours = 3 * 3600000ull;

	st.stalled = true;
	bring_up(&s);
	uint64_t start = s.now, bad_events = 0;
	while (s.now - start < hours) {
		bool bad = (s.now - start) % period_ms == 0;
		step(&s, bad ? &st : &g);
		bad_events += bad;
	}
	cr_expect_geq(bad_events, hours / period_ms);
	cr_expect_leq(s.downs, max_downs, "period %llu ms: %u withdrawals for %llu stalls",
	              (unsigned long long)period_ms, s.downs, (unsigned long long)bad_events);
	/* Stable again: back UP within the largest hold-down. */
	uint64_t calm = s.now;
	while (s.f.state != HEALTH_UP && s.now - calm < 2 * ((uint64_t)HOLD << 5))
		step(&s, &g);
	cr_expect_eq(s.f.state, HEALTH_UP);
}

Test(health_fsm, flapping_faster_than_the_hold_down_withdraws_once)
{
	flap(5000, 1);
}

Test(health_fsm, flapping_slower_than_the_hold_down_is_damped)
{
	/* 10 s, 20 s, 40 s ... hold-downs: after a few rounds one minute of calm is
	 * never enough and the route stays withdrawn until the flapping ends. */
	flap(60000, 4);
	flap(120000, 5);
}

Test(health_fsm, flapping_probes_are_damped_too)
{
	struct sim s;
	struct health_signals g = good(), fail = good();

	fail.probe = HEALTH_PROBE_FAIL;
	bring_up(&s);
	/* fall failures every 30 s for 2 hours. */
	for (unsigned i = 0; i < 240; i++) {
		steps(&s, &fail, CONF.fall);
		steps(&s, &g, 30000 / IV - CONF.fall);
	}
	cr_expect_leq(s.downs, 3, "%u withdrawals", s.downs);
}

Test(health_fsm, upstreams_down_is_degraded_never_down)
{
	struct sim s;
	struct health_signals u = good();

	u.upstreams_down = true;
	bring_up(&s);
	cr_expect(step(&s, &u));
	cr_expect_eq(s.f.state, HEALTH_DEGRADED);
	cr_expect_eq(s.f.reason, HEALTH_R_UPSTREAMS);
	for (unsigned i = 0; i < 3600000 / IV; i++) {
		step(&s, &u);
		cr_assert_eq(s.f.state, HEALTH_DEGRADED);
	}
	/* From the start too: the first rise lands in DEGRADED, not DOWN. */
	sim_init(&s);
	steps(&s, &u, CONF.rise);
	cr_expect_eq(s.f.state, HEALTH_DEGRADED);
	/* And back to UP at once when an upstream answers (no hold-down: never DOWN). */
	struct health_signals g = good();
	step(&s, &g);
	cr_expect_eq(s.f.state, HEALTH_UP);
	cr_expect_eq(s.downs, 0);
}

Test(health_fsm, overload_is_degraded_and_a_hard_cause_still_wins)
{
	struct sim s;
	struct health_signals o = good();

	o.overloaded = true;
	bring_up(&s);
	step(&s, &o);
	cr_expect_eq(s.f.state, HEALTH_DEGRADED);
	cr_expect_eq(s.f.reason, HEALTH_R_OVERLOAD);
	o.upstreams_down = true;
	cr_expect(step(&s, &o), "a new reason is a change");
	cr_expect_eq(s.f.state, HEALTH_DEGRADED);
	cr_expect_eq(s.f.reason, HEALTH_R_OVERLOAD | HEALTH_R_UPSTREAMS);
	o.listening = false;
	step(&s, &o);
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, HEALTH_R_NO_LISTENER | HEALTH_R_OVERLOAD | HEALTH_R_UPSTREAMS);
}

Test(health_fsm, drain)
{
	struct sim s;
	struct health_signals d = good();

	d.drain = true;
	bring_up(&s);
	cr_expect(step(&s, &d));
	cr_expect_eq(s.f.state, HEALTH_DRAINING);
	cr_expect_eq(s.f.reason, HEALTH_R_DRAIN);
	/* Drain wins over DEGRADED. */
	d.overloaded = true;
	d.upstreams_down = true;
	step(&s, &d);
	cr_expect_eq(s.f.state, HEALTH_DRAINING);
	cr_expect_eq(s.f.reason, HEALTH_R_DRAIN | HEALTH_R_OVERLOAD | HEALTH_R_UPSTREAMS);
	/* A DOWN cause wins over drain: nobody answers there any more. */
	d.overloaded = d.upstreams_down = false;
	d.stalled = true;
	step(&s, &d);
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, HEALTH_R_STALLED | HEALTH_R_DRAIN);
	/* A drained VIP that went DOWN stays DOWN while drain is set. */
	d.stalled = false;
	for (unsigned i = 0; i < 5 * HOLD / IV; i++)
		step(&s, &d);
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, HEALTH_R_DRAIN);
	/* Undrained: the hold-down has long passed, so it is UP at once. */
	struct health_signals g = good();
	step(&s, &g);
	cr_expect_eq(s.f.state, HEALTH_UP);
	/* Drain while starting: never announced. */
	sim_init(&s);
	d.stalled = false;
	steps(&s, &d, 50);
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, HEALTH_R_STARTING | HEALTH_R_DRAIN);
}

Test(health_fsm, draining_keeps_probing)
{
	struct sim s;
	struct health_signals d = good();

	bring_up(&s);
	d.drain = true;
	d.probe = HEALTH_PROBE_FAIL;
	step(&s, &d);
	cr_expect_eq(s.f.state, HEALTH_DRAINING);
	step(&s, &d);
	cr_expect_eq(s.f.state, HEALTH_DOWN);
	cr_expect_eq(s.f.reason, HEALTH_R_PROBES | HEALTH_R_DRAIN);
}

Test(health_fsm, zero_rise_fall_and_no_hold_down)
{
	struct health_fsm_conf c = {.rise = 0, .fall = 0, .hold_down_ms = 0};
	struct health_vip_fsm f;
	struct health_signals g = good(), fail = good();

	fail.probe = HEALTH_PROBE_FAIL;
	health_fsm_init(&f, 0);
	health_fsm_step(&f, &c, &g, 1);
	cr_expect_eq(f.state, HEALTH_UP, "rise 0 is taken as 1");
	health_fsm_step(&f, &c, &fail, 2);
	cr_expect_eq(f.state, HEALTH_DOWN);
	cr_expect_eq(f.hold_ms, 0);
	health_fsm_step(&f, &c, &g, 3);
	cr_expect_eq(f.state, HEALTH_UP, "no hold-down configured");
}

/* ---- load hysteresis ---- */

static const struct health_overload_conf OC = {
    .busy = 0.9,
    .drops_per_s = 100,
    .inflight_ratio = 0.8,
    .latency_ms = 500,
    .exit_ratio = HEALTH_OVERLOAD_EXIT_RATIO,
    .enter = 2,
    .leave = 3,
};

static bool ov(struct health_overload *o, double busy, double drops, double inflight, double lat)
{
	struct health_load l = {busy, drops, inflight, lat};
	return health_overload_step(o, &OC, &l);
}

Test(health_overload, enter_after_enter_intervals)
{
	struct health_overload o = {0};

	cr_expect_not(ov(&o, 0.95, 0, 0, 0));
	cr_expect_not(ov(&o, 0.5, 0, 0, 0), "one spike does not enter");
	cr_expect_not(ov(&o, 0.95, 0, 0, 0));
	cr_expect(ov(&o, 0.90, 0, 0, 0), "at the threshold counts as over");
	cr_expect(o.on);
}

Test(health_overload, each_figure_enters)
{
	double f[4][4] = {{1, 0, 0, 0}, {0, 100, 0, 0}, {0, 0, 0.8, 0}, {0, 0, 0, 500}};

	for (int i = 0; i < 4; i++) {
		struct health_overload o = {0};
		ov(&o, f[i][0], f[i][1], f[i][2], f[i][3]);
		cr_expect(ov(&o, f[i][0], f[i][1], f[i][2], f[i][3]), "figure %d", i);
	}
}

Test(health_overload, leaves_only_below_the_exit_line)
{
	struct health_overload o = {0};

	ov(&o, 0.95, 0, 0, 0);
	cr_assert(ov(&o, 0.95, 0, 0, 0));
	/* Hovering between 80% and 100% of the threshold: stays on, for ever. */
	for (int i = 0; i < 10000; i++)
		cr_assert(ov(&o, 0.85, 50, 0.7, 450));
	/* Below 80% for leave-1 intervals, then a figure back up: the count restarts. */
	cr_expect(ov(&o, 0.5, 0, 0, 0));
	cr_expect(ov(&o, 0.5, 0, 0, 0));
	cr_expect(ov(&o, 0.5, 80, 0, 0), "drops at 80% of the threshold is not below it");
	cr_expect(ov(&o, 0.5, 0, 0, 0));
	cr_expect(ov(&o, 0.5, 0, 0, 0));
	cr_expect_not(ov(&o, 0.5, 79, 0.63, 399));
	/* And off again it needs `enter` intervals over. */
	cr_expect_not(ov(&o, 0.85, 0, 0, 0));
	cr_expect_not(ov(&o, 0.95, 0, 0, 0));
}

Test(health_overload, hysteresis_does_not_flap_on_a_noisy_load)
{
	struct health_overload o = {0};
	unsigned flips = 0;
	bool was = false;

	/* busy swings between 0.98 and 0.82 every two intervals for a day of
	 * 200 ms steps: with the exit line at the threshold it would flip 200000 times. */
	for (unsigned i = 0; i < 432000; i++) {
		bool on = ov(&o, (i % 4) < 2 ? 0.98 : 0.82, 0, 0, 0);
		flips += on != was;
		was = on;
	}
	cr_expect_eq(flips, 1, "%u flips", flips);
}

Test(health_overload, unknown_and_unchecked_figures)
{
	struct health_overload o = {0};
	struct health_overload_conf c = OC;
	struct health_load l = {NAN, -5, NAN, NAN};

	for (int i = 0; i < 10; i++)
		cr_expect_not(health_overload_step(&o, &c, &l), "NaN and negatives read as 0");
	l = (struct health_load){0, INFINITY, 0, 0};
	health_overload_step(&o, &c, &l);
	cr_expect(health_overload_step(&o, &c, &l), "+Inf is over");
	/* NaN while on does not block leaving. */
	l = (struct health_load){NAN, 0, 0, 0};
	for (int i = 0; i < 3; i++)
		health_overload_step(&o, &c, &l);
	cr_expect_not(o.on);
	/* Threshold 0: never checked. */
	c.busy = 0;
	struct health_overload p = {0};
	l = (struct health_load){1, 0, 0, 0};
	for (int i = 0; i < 10; i++)
		cr_expect_not(health_overload_step(&p, &c, &l));
}

Test(health_overload, settings_from_the_configuration)
{
	struct conf_health h = {
	    .rise = 4,
	    .fall = 5,
	    .hold_down_ms = 7000,
	    .overload = {
	        .busy_pm = 900, .drops_per_s = 100, .inflight_pm = 125, .latency_ms = 500}};
	struct health_fsm_conf fc;
	struct health_overload_conf oc;

	health_fsm_conf_from(&h, &fc, &oc);
	cr_expect_eq(fc.rise, 4);
	cr_expect_eq(fc.fall, 5);
	cr_expect_eq(fc.hold_down_ms, 7000);
	cr_expect_float_eq(oc.busy, 0.9, 1e-12);
	cr_expect_float_eq(oc.drops_per_s, 100, 1e-12);
	cr_expect_float_eq(oc.inflight_ratio, 0.125, 1e-12);
	cr_expect_float_eq(oc.latency_ms, 500, 1e-12);
	cr_expect_float_eq(oc.exit_ratio, HEALTH_OVERLOAD_EXIT_RATIO, 1e-12);
	cr_expect_eq(oc.enter, 5);
	cr_expect_eq(oc.leave, 4); /* no interval given: rise */

	/* With the interval known, calm must last the whole hold-down too. */
	h.interval_ms = 200;
	health_fsm_conf_from(&h, &fc, &oc);
	cr_expect_eq(oc.leave, 35);
	h.hold_down_ms = 0;
	health_fsm_conf_from(&h, &fc, &oc);
	cr_expect_eq(oc.leave, 4);
}

/* One list of reason words for the log, anycachectl and the metrics. */
Test(health, reason_names_and_format)
{
	char b[128];

	cr_assert_str_eq(health_reason_name(HEALTH_R_NO_ADDRESS), "no-address");
	cr_assert_str_eq(health_reason_name(HEALTH_R_HOLD_DOWN), "hold-down");
	cr_assert_null(health_reason_name(1u << 20));
	cr_assert_null(health_reason_name(HEALTH_R_STALLED | HEALTH_R_DRAIN), "one bit only");
	cr_assert_str_eq(health_reasons_format(0, b, sizeof(b)), "ok");
	cr_assert_str_eq(health_reasons_format(HEALTH_R_STALLED | HEALTH_R_DRAIN | (1u << 20), b,
	                                       sizeof(b)),
	                 "stalled, drain");
	health_reasons_format(HEALTH_R_STARTING | HEALTH_R_NO_LISTENER, b, 12);
	cr_assert_eq(strlen(b), 11, "cut to the buffer, NUL-terminated");
}
