/*
 * test_bgp_fsm.c: the BGP-4 session state machine, driven with stepped time.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "bgp/bgp_fsm.h"

#define LOCAL_ID  0x0a000001u /* 10.0.0.1 */
#define REMOTE_ID 0x0a000002u /* 10.0.0.2 */

static struct bgp_fsm_actions A;

static struct bgp_fsm_conf conf_ebgp(void)
{
	struct bgp_fsm_conf c = {
	    .local_as = 65001,
	    .peer_as = 65000,
	    .bgp_id = LOCAL_ID,
	    .hold_time = 9,
	    .passive = false,
	    .connect_retry_ms = 0,
	    .connect_retry_max_ms = 0,
	    .seed = 42,
	};
	return c;
}

static struct bgp_fsm_open good_open(void)
{
	struct bgp_fsm_open o = {
	    .version = 4,
	    .peer_as = 65000,
	    .hold_time = 9,
	    .bgp_id = REMOTE_ID,
	    .cap_as4 = true,
	    .cap_mp_ipv4 = true,
	    .cap_mp_ipv6 = true,
	    .cap_route_refresh = true,
	};
	return o;
}

static int ev(struct bgp_fsm *f, enum bgp_fsm_event_type t, uint64_t now)
{
	struct bgp_fsm_event e = {.type = t};
	return bgp_fsm_step(f, &e, now, &A);
}

static int ev_open(struct bgp_fsm *f, const struct bgp_fsm_open *o, uint64_t now)
{
	struct bgp_fsm_event e = {.type = BGP_FSM_EV_OPEN_RECEIVED, .open = *o};
	return bgp_fsm_step(f, &e, now, &A);
}

/* The actions must be exactly this list, in this order. */
static void expect(unsigned n, ...)
{
	va_list ap;
	va_start(ap, n);
	cr_assert_eq(A.n, n, "expected %u actions, got %u (first %s)", n, A.n,
	             A.n ? bgp_fsm_action_name(A.act[0]) : "-");
	for (unsigned i = 0; i < n; i++) {
		enum bgp_fsm_action_type want = va_arg(ap, enum bgp_fsm_action_type);
		cr_assert_eq(A.act[i], want, "action %u: got %s want %s", i,
		             bgp_fsm_action_name(A.act[i]), bgp_fsm_action_name(want));
	}
	va_end(ap);
}

static void expect_notif(uint8_t code, uint8_t sub)
{
	cr_assert_eq(A.notif.code, code, "code %u want %u", A.notif.code, code);
	cr_assert_eq(A.notif.subcode, sub, "subcode %u want %u", A.notif.subcode, sub);
}

/* Failure with a NOTIFICATION from a non-Established state. */
static void expect_notif_idle(struct bgp_fsm *f, uint8_t code, uint8_t sub)
{
	expect(2, BGP_FSM_ACT_SEND_NOTIFICATION, BGP_FSM_ACT_CLOSE);
	expect_notif(code, sub);
	cr_assert_eq(f->state, BGP_FSM_IDLE);
}

static void to_opensent(struct bgp_fsm *f, const struct bgp_fsm_conf *c, uint64_t now)
{
	cr_assert_eq(bgp_fsm_init(f, c), 0);
	cr_assert_eq(ev(f, BGP_FSM_EV_MANUAL_START, now), 0);
	if (c->passive)
		cr_assert_eq(ev(f, BGP_FSM_EV_TCP_CONNECTION_ACCEPTED, now), 0);
	else
		cr_assert_eq(ev(f, BGP_FSM_EV_TCP_CONNECTION_CONFIRMED, now), 0);
	expect(1, BGP_FSM_ACT_SEND_OPEN);
	cr_assert_eq(f->state, BGP_FSM_OPENSENT);
}

static void to_openconfirm(struct bgp_fsm *f, const struct bgp_fsm_conf *c,
                           const struct bgp_fsm_open *o, uint64_t now)
{
	to_opensent(f, c, now);
	cr_assert_eq(ev_open(f, o, now), 0);
	expect(1, BGP_FSM_ACT_SEND_KEEPALIVE);
	cr_assert_eq(f->state, BGP_FSM_OPENCONFIRM);
}

static void to_established(struct bgp_fsm *f, const struct bgp_fsm_conf *c,
                           const struct bgp_fsm_open *o, uint64_t now)
{
	to_openconfirm(f, c, o, now);
	cr_assert_eq(ev(f, BGP_FSM_EV_KEEPALIVE_RECEIVED, now), 0);
	expect(1, BGP_FSM_ACT_ESTABLISHED);
	cr_assert_eq(f->state, BGP_FSM_ESTABLISHED);
}

Test(bgp_fsm, init_rejects_bad_conf)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	c.bgp_id = 0;
	cr_assert_eq(bgp_fsm_init(&f, &c), -EINVAL);
	c = conf_ebgp();
	c.hold_time = 2;
	cr_assert_eq(bgp_fsm_init(&f, &c), -EINVAL);
	c.hold_time = 0;
	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
	cr_assert_eq(f.conf.connect_retry_ms, BGP_FSM_CONNECT_RETRY_DEFAULT_MS);
	cr_assert_eq(f.conf.connect_retry_max_ms, BGP_FSM_CONNECT_RETRY_MAX_DEFAULT_MS);
	cr_assert_eq(bgp_fsm_next_deadline(&f), BGP_FSM_NEVER);
	struct bgp_fsm_event e = {.type = (enum bgp_fsm_event_type)99};
	cr_assert_eq(bgp_fsm_step(&f, &e, 0, &A), -EINVAL);
}

Test(bgp_fsm, happy_path_active)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	uint64_t t = 1000;

	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_MANUAL_START, t), 0);
	expect(1, BGP_FSM_ACT_CONNECT);
	cr_assert_eq(f.state, BGP_FSM_CONNECT);
	uint64_t d = bgp_fsm_next_deadline(&f);
	cr_assert(d >= t + 3750 && d <= t + 5000, "connect retry %lu", (unsigned long)(d - t));

	t += 20;
	cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_CONFIRMED, t), 0);
	expect(1, BGP_FSM_ACT_SEND_OPEN);
	cr_assert_eq(f.state, BGP_FSM_OPENSENT);
	cr_assert_eq(bgp_fsm_next_deadline(&f), t + 240000); /* §8.2.2 large hold */

	t += 5;
	cr_assert_eq(ev_open(&f, &o, t), 0);
	expect(1, BGP_FSM_ACT_SEND_KEEPALIVE);
	cr_assert_eq(f.state, BGP_FSM_OPENCONFIRM);
	cr_assert_eq(f.hold_time, 9);
	cr_assert_eq(f.keepalive_ms, 3000);
	cr_assert_eq(f.hold_at, t + 9000);
	cr_assert_eq(bgp_fsm_next_deadline(&f), t + 3000);
	cr_assert_eq(f.peer_bgp_id, REMOTE_ID);
	cr_assert(f.afi_ipv4 && f.afi_ipv6 && f.route_refresh && f.peer_as4);

	t += 5;
	cr_assert_eq(ev(&f, BGP_FSM_EV_KEEPALIVE_RECEIVED, t), 0);
	expect(1, BGP_FSM_ACT_ESTABLISHED);
	cr_assert_eq(f.state, BGP_FSM_ESTABLISHED);
	cr_assert_eq(f.hold_at, t + 9000);
	cr_assert_str_eq(bgp_fsm_state_name(f.state), "Established");
}

Test(bgp_fsm, happy_path_passive)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	c.passive = true;
	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_MANUAL_START, 0), 0);
	expect(0);
	cr_assert_eq(f.state, BGP_FSM_ACTIVE);
	cr_assert_eq(bgp_fsm_next_deadline(&f), BGP_FSM_NEVER); /* never connects */
	/* Hours pass, nothing happens. */
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, 36000000), 0);
	expect(0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_ACCEPTED, 36000000), 0);
	expect(1, BGP_FSM_ACT_SEND_OPEN);
	struct bgp_fsm_open o = good_open();
	cr_assert_eq(ev_open(&f, &o, 36000001), 0);
	expect(1, BGP_FSM_ACT_SEND_KEEPALIVE);
	cr_assert_eq(ev(&f, BGP_FSM_EV_KEEPALIVE_RECEIVED, 36000002), 0);
	expect(1, BGP_FSM_ACT_ESTABLISHED);
	/* A passive session that fails goes back to Active, still not connecting. */
	cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_FAILS, 36000003), 0);
	expect(2, BGP_FSM_ACT_CLOSE, BGP_FSM_ACT_DOWN);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
	uint64_t d = bgp_fsm_next_deadline(&f);
	cr_assert_neq(d, BGP_FSM_NEVER);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, d), 0);
	expect(0);
	cr_assert_eq(f.state, BGP_FSM_ACTIVE);
}

Test(bgp_fsm, idle_refuses_incoming)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_ACCEPTED, 0), 0);
	expect(1, BGP_FSM_ACT_CLOSE);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
	cr_assert_eq(ev(&f, BGP_FSM_EV_KEEPALIVE_RECEIVED, 0), 0);
	expect(0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_AUTOMATIC_START, 0), 0); /* not enabled */
	expect(0);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
}

Test(bgp_fsm, keepalive_every_3s_for_hours)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	uint64_t t0 = 5000;
	to_established(&f, &c, &o, t0);

	/* Three hours; the peer also sends a KEEPALIVE every 3 s (BIRD style,
	 * 1 ms after ours), so the hold timer never expires. */
	uint64_t end = t0 + 3ull * 3600 * 1000, last = t0;
	unsigned sent = 0;
	while (1) {
		uint64_t d = bgp_fsm_next_deadline(&f);
		cr_assert_lt(d, f.hold_at + 1);
		if (d > end)
			break;
		cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, d), 0);
		expect(1, BGP_FSM_ACT_SEND_KEEPALIVE);
		cr_assert_eq(d - last, 3000, "interval %lu", (unsigned long)(d - last));
		last = d;
		sent++;
		cr_assert_eq(ev(&f, BGP_FSM_EV_KEEPALIVE_RECEIVED, d + 1), 0);
		expect(0);
		cr_assert_eq(f.hold_at, d + 1 + 9000);
	}
	cr_assert_eq(sent, 3600);
	cr_assert_eq(f.state, BGP_FSM_ESTABLISHED);

	/* A late tick (the loop was busy) does not send a burst. */
	uint64_t late = bgp_fsm_next_deadline(&f) + 2500;
	cr_assert_eq(ev(&f, BGP_FSM_EV_KEEPALIVE_RECEIVED, late - 1), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, late), 0);
	expect(1, BGP_FSM_ACT_SEND_KEEPALIVE);
	cr_assert_eq(f.keepalive_at, late + 3000);

	/* Sending an UPDATE restarts the keepalive timer (§8.2.2). */
	bgp_fsm_update_sent(&f, late + 1000);
	cr_assert_eq(f.keepalive_at, late + 4000);
}

Test(bgp_fsm, hold_expiry_sends_4_0)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	to_established(&f, &c, &o, 0);

	/* An UPDATE resets the hold timer too (§8.2.2). */
	cr_assert_eq(ev(&f, BGP_FSM_EV_UPDATE_RECEIVED, 1000), 0);
	expect(0);
	cr_assert_eq(f.hold_at, 10000);

	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, 3000), 0);
	expect(1, BGP_FSM_ACT_SEND_KEEPALIVE);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, 6000), 0);
	expect(1, BGP_FSM_ACT_SEND_KEEPALIVE);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, 9000), 0);
	expect(1, BGP_FSM_ACT_SEND_KEEPALIVE);
	cr_assert_eq(bgp_fsm_next_deadline(&f), 10000);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, 9999), 0);
	expect(0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, 10000), 0);
	expect(3, BGP_FSM_ACT_SEND_NOTIFICATION, BGP_FSM_ACT_CLOSE, BGP_FSM_ACT_DOWN);
	expect_notif(4, 0);
	cr_assert_eq(A.notif.len, 0);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
	cr_assert_eq(f.flaps, 1);
	/* It restarts by itself after the idle hold. */
	uint64_t d = bgp_fsm_next_deadline(&f);
	cr_assert(d > 10000 && d != BGP_FSM_NEVER);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, d), 0);
	expect(1, BGP_FSM_ACT_CONNECT);
	cr_assert_eq(f.state, BGP_FSM_CONNECT);
}

Test(bgp_fsm, opensent_hold_expiry)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	to_opensent(&f, &c, 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, 239999), 0);
	expect(0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, 240000), 0);
	expect_notif_idle(&f, 4, 0);
}

Test(bgp_fsm, hold_negotiated_to_min)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();

	c.hold_time = 90;
	o.hold_time = 9;
	to_openconfirm(&f, &c, &o, 0);
	cr_assert_eq(f.hold_time, 9);
	cr_assert_eq(f.keepalive_ms, 3000);

	c.hold_time = 9;
	o.hold_time = 180;
	to_openconfirm(&f, &c, &o, 0);
	cr_assert_eq(f.hold_time, 9);

	c.hold_time = 90;
	o.hold_time = 240;
	to_openconfirm(&f, &c, &o, 0);
	cr_assert_eq(f.hold_time, 90);
	cr_assert_eq(f.keepalive_ms, 30000);
	cr_assert_eq(f.hold_at, 90000);

	/* Peer offers 3, the smallest legal value: keepalive every second. */
	o.hold_time = 3;
	to_openconfirm(&f, &c, &o, 0);
	cr_assert_eq(f.hold_time, 3);
	cr_assert_eq(f.keepalive_ms, 1000);
}

Test(bgp_fsm, hold_zero_means_no_timers)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	o.hold_time = 0;
	to_openconfirm(&f, &c, &o, 0);
	cr_assert_eq(f.hold_time, 0);
	cr_assert_eq(bgp_fsm_next_deadline(&f), BGP_FSM_NEVER);
	cr_assert_eq(ev(&f, BGP_FSM_EV_KEEPALIVE_RECEIVED, 10), 0);
	expect(1, BGP_FSM_ACT_ESTABLISHED);
	cr_assert_eq(bgp_fsm_next_deadline(&f), BGP_FSM_NEVER);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, 24ull * 3600 * 1000), 0);
	expect(0);
	bgp_fsm_update_sent(&f, 100);
	cr_assert_eq(bgp_fsm_next_deadline(&f), BGP_FSM_NEVER);
	cr_assert_eq(f.state, BGP_FSM_ESTABLISHED);

	/* Our own hold 0 wins over the peer's 9 as well. */
	c.hold_time = 0;
	o.hold_time = 9;
	to_openconfirm(&f, &c, &o, 0);
	cr_assert_eq(f.hold_time, 0);
	cr_assert_eq(bgp_fsm_next_deadline(&f), BGP_FSM_NEVER);
}

Test(bgp_fsm, peer_hold_1_and_2_rejected)
{
	for (uint16_t h = 1; h <= 2; h++) {
		struct bgp_fsm f;
		struct bgp_fsm_conf c = conf_ebgp();
		struct bgp_fsm_open o = good_open();
		o.hold_time = h;
		to_opensent(&f, &c, 0);
		cr_assert_eq(ev_open(&f, &o, 10), 0);
		expect_notif_idle(&f, 2, 6);
	}
}

Test(bgp_fsm, bad_version)
{
	uint8_t bids[] = {3, 5};
	for (unsigned i = 0; i < 2; i++) {
		struct bgp_fsm f;
		struct bgp_fsm_conf c = conf_ebgp();
		struct bgp_fsm_open o = good_open();
		o.version = bids[i];
		to_opensent(&f, &c, 0);
		cr_assert_eq(ev_open(&f, &o, 10), 0);
		expect_notif_idle(&f, 2, 1);
		cr_assert_eq(A.notif.len, 2);
		cr_assert_eq(A.notif.data[0], 0);
		cr_assert_eq(A.notif.data[1], 4);
	}
}

Test(bgp_fsm, bad_peer_as)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();

	/* 2-octet My AS field, no AS4 capability. */
	o.cap_as4 = false;
	o.peer_as = 65099;
	to_opensent(&f, &c, 0);
	cr_assert_eq(ev_open(&f, &o, 1), 0);
	expect_notif_idle(&f, 2, 2);

	/* 4-octet AS from the capability. */
	c.peer_as = 4200000000u;
	o = good_open();
	o.peer_as = 4200000001u;
	to_opensent(&f, &c, 0);
	cr_assert_eq(ev_open(&f, &o, 1), 0);
	expect_notif_idle(&f, 2, 2);

	/* ... the right one is accepted ... */
	o.peer_as = 4200000000u;
	to_openconfirm(&f, &c, &o, 0);
	cr_assert_eq(f.peer_as, 4200000000u);

	/* ... and a peer without AS4 can only say AS_TRANS: mismatch. */
	o.cap_as4 = false;
	o.peer_as = 23456;
	to_opensent(&f, &c, 0);
	cr_assert_eq(ev_open(&f, &o, 1), 0);
	expect_notif_idle(&f, 2, 2);
}

Test(bgp_fsm, bad_bgp_id)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();

	/* Zero: always bad. */
	o.bgp_id = 0;
	to_opensent(&f, &c, 0);
	cr_assert_eq(ev_open(&f, &o, 1), 0);
	expect_notif_idle(&f, 2, 3);

	/* Same as ours on eBGP: allowed (RFC 6286 §2.2, unique within an AS). */
	o.bgp_id = LOCAL_ID;
	to_openconfirm(&f, &c, &o, 0);

	/* Same as ours on iBGP: bad. */
	c.peer_as = c.local_as;
	o.peer_as = c.local_as;
	to_opensent(&f, &c, 0);
	cr_assert_eq(ev_open(&f, &o, 1), 0);
	expect_notif_idle(&f, 2, 3);

	/* iBGP with a different id: fine. */
	o.bgp_id = REMOTE_ID;
	to_openconfirm(&f, &c, &o, 0);
}

Test(bgp_fsm, negotiated_families)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();

	o.cap_mp_ipv4 = o.cap_mp_ipv6 = false; /* no MP capability at all */
	to_openconfirm(&f, &c, &o, 0);
	cr_assert(f.afi_ipv4);
	cr_assert_not(f.afi_ipv6);

	o.cap_mp_ipv6 = true; /* IPv6 only */
	to_openconfirm(&f, &c, &o, 0);
	cr_assert_not(f.afi_ipv4);
	cr_assert(f.afi_ipv6);

	o.cap_mp_ipv4 = true;
	o.cap_mp_ipv6 = false;
	o.cap_route_refresh = false;
	to_openconfirm(&f, &c, &o, 0);
	cr_assert(f.afi_ipv4);
	cr_assert_not(f.afi_ipv6);
	cr_assert_not(f.route_refresh);
}

Test(bgp_fsm, notification_received_in_every_state)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	struct bgp_fsm_event e = {
	    .type = BGP_FSM_EV_NOTIFICATION_RECEIVED, .code = 6, .subcode = 4};

	/* Idle: ignored. */
	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	cr_assert_eq(bgp_fsm_step(&f, &e, 0, &A), 0);
	expect(0);
	cr_assert_eq(f.state, BGP_FSM_IDLE);

	/* Connect. */
	cr_assert_eq(ev(&f, BGP_FSM_EV_MANUAL_START, 0), 0);
	cr_assert_eq(bgp_fsm_step(&f, &e, 1, &A), 0);
	expect(1, BGP_FSM_ACT_CLOSE);
	cr_assert_eq(f.state, BGP_FSM_IDLE);

	/* Active (after a refused connection). */
	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_MANUAL_START, 0), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_FAILS, 1), 0);
	cr_assert_eq(f.state, BGP_FSM_ACTIVE);
	cr_assert_eq(bgp_fsm_step(&f, &e, 2, &A), 0);
	expect(1, BGP_FSM_ACT_CLOSE);
	cr_assert_eq(f.state, BGP_FSM_IDLE);

	/* OpenSent, OpenConfirm. */
	to_opensent(&f, &c, 0);
	cr_assert_eq(bgp_fsm_step(&f, &e, 1, &A), 0);
	expect(1, BGP_FSM_ACT_CLOSE);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
	to_openconfirm(&f, &c, &o, 0);
	cr_assert_eq(bgp_fsm_step(&f, &e, 1, &A), 0);
	expect(1, BGP_FSM_ACT_CLOSE);
	cr_assert_eq(f.state, BGP_FSM_IDLE);

	/* Established: DOWN too, and the error is remembered for logs. */
	to_established(&f, &c, &o, 0);
	cr_assert_eq(bgp_fsm_step(&f, &e, 1, &A), 0);
	expect(2, BGP_FSM_ACT_CLOSE, BGP_FSM_ACT_DOWN);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
	cr_assert_eq(f.last_code, 6);
	cr_assert_eq(f.last_subcode, 4);
	cr_assert(f.last_error_received);
	cr_assert_neq(f.idle_hold_at, BGP_FSM_NEVER);
}

Test(bgp_fsm, unexpected_messages_fsm_error)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	struct {
		enum bgp_fsm_event_type ev;
		uint8_t type;
	} opensent[] =
	    {
	        {BGP_FSM_EV_KEEPALIVE_RECEIVED, 4},
	        {BGP_FSM_EV_UPDATE_RECEIVED, 2},
	        {BGP_FSM_EV_ROUTE_REFRESH_RECEIVED, 5},
	    },
	  openconfirm[] = {
	      {BGP_FSM_EV_OPEN_RECEIVED, 1},
	      {BGP_FSM_EV_UPDATE_RECEIVED, 2},
	      {BGP_FSM_EV_ROUTE_REFRESH_RECEIVED, 5},
	  };

	for (unsigned i = 0; i < 3; i++) {
		to_opensent(&f, &c, 0);
		cr_assert_eq(ev(&f, opensent[i].ev, 1), 0);
		expect_notif_idle(&f, 5, 1);
		cr_assert_eq(A.notif.len, 1);
		cr_assert_eq(A.notif.data[0], opensent[i].type);
	}
	for (unsigned i = 0; i < 3; i++) {
		to_openconfirm(&f, &c, &o, 0);
		if (openconfirm[i].ev == BGP_FSM_EV_OPEN_RECEIVED)
			cr_assert_eq(ev_open(&f, &o, 1), 0);
		else
			cr_assert_eq(ev(&f, openconfirm[i].ev, 1), 0);
		expect_notif_idle(&f, 5, 2);
		cr_assert_eq(A.notif.len, 1);
		cr_assert_eq(A.notif.data[0], openconfirm[i].type);
	}
	to_established(&f, &c, &o, 0);
	cr_assert_eq(ev_open(&f, &o, 1), 0);
	expect(3, BGP_FSM_ACT_SEND_NOTIFICATION, BGP_FSM_ACT_CLOSE, BGP_FSM_ACT_DOWN);
	expect_notif(5, 3);
	cr_assert_eq(A.notif.data[0], 1);
	cr_assert_eq(f.state, BGP_FSM_IDLE);

	/* Connect has no BGP connection yet: drop and go Idle, no NOTIFICATION. */
	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_MANUAL_START, 0), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_KEEPALIVE_RECEIVED, 1), 0);
	expect(1, BGP_FSM_ACT_CLOSE);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
}

Test(bgp_fsm, message_error_sends_given_notification)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	static const uint8_t data[] = {0x40, 0x01, 0x01, 0x07};
	struct bgp_fsm_event e = {.type = BGP_FSM_EV_MESSAGE_ERROR,
	                          .code = 3,
	                          .subcode = 6,
	                          .data = data,
	                          .data_len = sizeof(data)};
	to_established(&f, &c, &o, 0);
	cr_assert_eq(bgp_fsm_step(&f, &e, 5, &A), 0);
	expect(3, BGP_FSM_ACT_SEND_NOTIFICATION, BGP_FSM_ACT_CLOSE, BGP_FSM_ACT_DOWN);
	expect_notif(3, 6);
	cr_assert_eq(A.notif.len, 4);
	cr_assert_eq(memcmp(A.notif.data, data, 4), 0);
	cr_assert_eq(f.state, BGP_FSM_IDLE);

	to_opensent(&f, &c, 0);
	e.code = 2;
	e.subcode = 4; /* unsupported optional parameter */
	e.data_len = 0;
	cr_assert_eq(bgp_fsm_step(&f, &e, 5, &A), 0);
	expect_notif_idle(&f, 2, 4);
}

/* Drive a peer that refuses every connection; returns the attempt intervals. */
static void refused_intervals(uint64_t seed, uint32_t *iv, unsigned n)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	c.connect_retry_ms = 1000;
	c.connect_retry_max_ms = 8000;
	c.seed = seed;
	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	uint64_t t = 0;
	cr_assert_eq(ev(&f, BGP_FSM_EV_MANUAL_START, t), 0);
	expect(1, BGP_FSM_ACT_CONNECT);
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_FAILS, t + 1), 0);
		expect(1, BGP_FSM_ACT_CLOSE);
		cr_assert_eq(f.state, BGP_FSM_ACTIVE);
		uint64_t d = bgp_fsm_next_deadline(&f);
		cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, d - 1), 0);
		expect(0);
		cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, d), 0);
		expect(1, BGP_FSM_ACT_CONNECT);
		cr_assert_eq(f.state, BGP_FSM_CONNECT);
		iv[i] = (uint32_t)(d - t);
		t = d;
	}
}

Test(bgp_fsm, connect_retry_backoff_with_jitter)
{
	uint32_t a[10], b[10], other[10];
	static const uint32_t base[10] = {1000, 2000, 4000, 8000, 8000,
	                                  8000, 8000, 8000, 8000, 8000};
	refused_intervals(7, a, 10);
	refused_intervals(7, b, 10);
	refused_intervals(8, other, 10);
	bool jittered = false, differs = false;
	for (unsigned i = 0; i < 10; i++) {
		cr_assert(a[i] >= base[i] * 3 / 4 && a[i] <= base[i], "interval %u = %u, base %u",
		          i, a[i], base[i]);
		cr_assert_eq(a[i], b[i], "same seed, same sequence");
		jittered |= a[i] != base[i];
		differs |= a[i] != other[i];
	}
	cr_assert(jittered);
	cr_assert(differs);
}

Test(bgp_fsm, connect_attempt_timeout_retries)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	c.connect_retry_ms = 1000;
	c.connect_retry_max_ms = 4000;
	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_MANUAL_START, 0), 0);
	uint64_t d = bgp_fsm_next_deadline(&f);
	cr_assert(d >= 750 && d <= 1000);
	/* SYNs vanish: the attempt is dropped and a new one started (§8.2.2). */
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, d), 0);
	expect(2, BGP_FSM_ACT_CLOSE, BGP_FSM_ACT_CONNECT);
	cr_assert_eq(f.state, BGP_FSM_CONNECT);
	uint64_t d2 = bgp_fsm_next_deadline(&f);
	cr_assert(d2 - d >= 1500 && d2 - d <= 2000, "%lu", (unsigned long)(d2 - d));
}

Test(bgp_fsm, backoff_resets_after_stable_session)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	c.connect_retry_ms = 1000;
	c.connect_retry_max_ms = 64000;
	to_established(&f, &c, &o, 0);

	/* Flapping: each short-lived session doubles the idle hold. */
	uint64_t t = 0;
	uint32_t expect_base = 2000;
	for (int i = 0; i < 4; i++) {
		t += 5000; /* up for 5 s only */
		cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_FAILS, t), 0);
		expect(2, BGP_FSM_ACT_CLOSE, BGP_FSM_ACT_DOWN);
		uint64_t d = bgp_fsm_next_deadline(&f);
		cr_assert(d - t >= expect_base * 3 / 4 && d - t <= expect_base,
		          "flap %d: %lu base %u", i, (unsigned long)(d - t), expect_base);
		expect_base *= 2;
		t = d;
		cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, t), 0);
		expect(1, BGP_FSM_ACT_CONNECT);
		cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_CONFIRMED, t), 0);
		cr_assert_eq(ev_open(&f, &o, t), 0);
		cr_assert_eq(ev(&f, BGP_FSM_EV_KEEPALIVE_RECEIVED, t), 0);
		expect(1, BGP_FSM_ACT_ESTABLISHED);
	}
	cr_assert_eq(f.retry_ms, 16000);
	cr_assert_eq(f.flaps, 4);

	/* Now it stays up for ten minutes, keepalives flowing, then drops. */
	for (uint64_t end = t + 600000; bgp_fsm_next_deadline(&f) <= end;) {
		uint64_t d = bgp_fsm_next_deadline(&f);
		cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, d), 0);
		cr_assert_eq(ev(&f, BGP_FSM_EV_KEEPALIVE_RECEIVED, d), 0);
		t = d;
	}
	cr_assert_eq(f.state, BGP_FSM_ESTABLISHED);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_FAILS, t), 0);
	uint64_t d = bgp_fsm_next_deadline(&f);
	cr_assert(d - t >= 750 && d - t <= 1000, "after a stable session: %lu",
	          (unsigned long)(d - t));
}

Test(bgp_fsm, opensent_connection_fails_goes_active)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	to_opensent(&f, &c, 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_FAILS, 100), 0);
	expect(1, BGP_FSM_ACT_CLOSE);
	cr_assert_eq(f.state, BGP_FSM_ACTIVE);
	uint64_t d = bgp_fsm_next_deadline(&f);
	cr_assert(d - 100 >= 7500 && d - 100 <= 10000, "%lu", (unsigned long)(d - 100));
	cr_assert_eq(ev(&f, BGP_FSM_EV_TICK, d), 0);
	expect(1, BGP_FSM_ACT_CONNECT);
}

Test(bgp_fsm, second_connection_is_eproto)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	to_opensent(&f, &c, 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_ACCEPTED, 1), -EPROTO);
	expect(0);
	cr_assert_eq(f.state, BGP_FSM_OPENSENT);
	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_CONFIRMED, 1), -EPROTO);
}

Test(bgp_fsm, collision_resolve_rules)
{
	/* We have the lower id: the connection we initiated is closed. */
	cr_assert_eq(bgp_collision_resolve(1, 65001, 2, 65000, true), BGP_COLLISION_CLOSE_EXISTING);
	cr_assert_eq(bgp_collision_resolve(1, 65001, 2, 65000, false), BGP_COLLISION_CLOSE_NEW);
	/* We have the higher id: the connection the peer initiated is closed. */
	cr_assert_eq(bgp_collision_resolve(2, 65001, 1, 65000, true), BGP_COLLISION_CLOSE_NEW);
	cr_assert_eq(bgp_collision_resolve(2, 65001, 1, 65000, false),
	             BGP_COLLISION_CLOSE_EXISTING);
	/* Compared as unsigned: 0x80000000 > 0x7fffffff. */
	cr_assert_eq(bgp_collision_resolve(0x80000000u, 1, 0x7fffffffu, 2, true),
	             BGP_COLLISION_CLOSE_NEW);
	/* Equal ids (eBGP, RFC 6286 §2.3): the larger AS's connection is kept. */
	cr_assert_eq(bgp_collision_resolve(5, 65001, 5, 65000, true), BGP_COLLISION_CLOSE_NEW);
	cr_assert_eq(bgp_collision_resolve(5, 65000, 5, 65001, true), BGP_COLLISION_CLOSE_EXISTING);
}

/*
 * Both sides connect at once. The primary (outgoing) reaches OpenConfirm; the
 * incoming connection gets a spare fsm; the peer's OPEN arrives on the spare.
 */
static void collision_setup(struct bgp_fsm *primary, struct bgp_fsm *spare, struct bgp_fsm_conf *c,
                            const struct bgp_fsm_open *o)
{
	to_openconfirm(primary, c, o, 0);
	struct bgp_fsm_conf sc = *c;
	sc.passive = true;
	cr_assert_eq(bgp_fsm_init(spare, &sc), 0);
	cr_assert_eq(ev(spare, BGP_FSM_EV_MANUAL_START, 10), 0);
	expect(0);
	cr_assert_eq(ev(spare, BGP_FSM_EV_TCP_CONNECTION_ACCEPTED, 10), 0);
	expect(1, BGP_FSM_ACT_SEND_OPEN);
}

Test(bgp_fsm, collision_lower_local_id_keeps_incoming)
{
	struct bgp_fsm primary, spare;
	struct bgp_fsm_conf c = conf_ebgp(); /* LOCAL_ID < REMOTE_ID */
	struct bgp_fsm_open o = good_open();
	collision_setup(&primary, &spare, &c, &o);

	/* OPEN on the spare while the primary is in OpenConfirm. */
	enum bgp_collision r =
	    bgp_collision_resolve(c.bgp_id, c.local_as, primary.peer_bgp_id, primary.peer_as, true);
	cr_assert_eq(r, BGP_COLLISION_CLOSE_EXISTING);
	cr_assert_eq(ev(&primary, BGP_FSM_EV_COLLISION_DUMP, 20), 0);
	expect_notif_idle(&primary, 6, 7);
	cr_assert_eq(bgp_fsm_next_deadline(&primary), BGP_FSM_NEVER); /* not a failure */
	uint32_t retry_before = primary.retry_ms;

	cr_assert_eq(ev_open(&spare, &o, 20), 0);
	expect(1, BGP_FSM_ACT_SEND_KEEPALIVE);
	bgp_fsm_take_over(&primary, &spare);
	cr_assert_eq(primary.state, BGP_FSM_OPENCONFIRM);
	cr_assert_eq(primary.conf.passive, false); /* still the primary's conf */
	cr_assert_eq(primary.retry_ms, retry_before);
	cr_assert_eq(primary.hold_at, 20 + 9000);
	cr_assert_eq(ev(&primary, BGP_FSM_EV_KEEPALIVE_RECEIVED, 30), 0);
	expect(1, BGP_FSM_ACT_ESTABLISHED);
	/* And it reconnects by itself if that session later fails. */
	cr_assert_eq(ev(&primary, BGP_FSM_EV_TCP_CONNECTION_FAILS, 40), 0);
	uint64_t d = bgp_fsm_next_deadline(&primary);
	cr_assert_eq(ev(&primary, BGP_FSM_EV_TICK, d), 0);
	expect(1, BGP_FSM_ACT_CONNECT);
}

Test(bgp_fsm, collision_higher_local_id_keeps_outgoing)
{
	struct bgp_fsm primary, spare;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	c.bgp_id = 0x0a0000ffu; /* higher than REMOTE_ID */
	collision_setup(&primary, &spare, &c, &o);

	enum bgp_collision r =
	    bgp_collision_resolve(c.bgp_id, c.local_as, primary.peer_bgp_id, primary.peer_as, true);
	cr_assert_eq(r, BGP_COLLISION_CLOSE_NEW);
	cr_assert_eq(ev(&spare, BGP_FSM_EV_COLLISION_DUMP, 20), 0);
	expect_notif_idle(&spare, 6, 7);
	cr_assert_eq(primary.state, BGP_FSM_OPENCONFIRM);
	cr_assert_eq(ev(&primary, BGP_FSM_EV_KEEPALIVE_RECEIVED, 30), 0);
	expect(1, BGP_FSM_ACT_ESTABLISHED);
}

Test(bgp_fsm, manual_stop_established_sends_shutdown_text)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	static const char msg[] = "maintenance: node drained [ticket 42]";
	to_established(&f, &c, &o, 0);
	struct bgp_fsm_event e = {
	    .type = BGP_FSM_EV_MANUAL_STOP, .shutdown = msg, .shutdown_len = strlen(msg)};
	cr_assert_eq(bgp_fsm_step(&f, &e, 100, &A), 0);
	expect(3, BGP_FSM_ACT_SEND_NOTIFICATION, BGP_FSM_ACT_CLOSE, BGP_FSM_ACT_DOWN);
	expect_notif(6, 2);
	cr_assert_eq(A.notif.len, 1 + strlen(msg));
	cr_assert_eq(A.notif.data[0], strlen(msg));
	cr_assert_eq(memcmp(A.notif.data + 1, msg, strlen(msg)), 0);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
	cr_assert_eq(bgp_fsm_next_deadline(&f), BGP_FSM_NEVER); /* stays down */
	cr_assert_eq(ev(&f, BGP_FSM_EV_AUTOMATIC_START, 200), 0);
	expect(0);
	cr_assert_eq(f.state, BGP_FSM_IDLE);

	/* Without text: plain 6/2, no data. */
	to_established(&f, &c, &o, 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_MANUAL_STOP, 100), 0);
	expect_notif(6, 2);
	cr_assert_eq(A.notif.len, 0);

	/* Too long: cut to 255 octets, not inside a UTF-8 sequence. */
	char longmsg[300];
	memset(longmsg, 'a', sizeof(longmsg));
	longmsg[254] = (char)0xc3; /* "é" = c3 a9 straddles octet 255 */
	longmsg[255] = (char)0xa9;
	to_established(&f, &c, &o, 0);
	e.shutdown = longmsg;
	e.shutdown_len = sizeof(longmsg);
	cr_assert_eq(bgp_fsm_step(&f, &e, 100, &A), 0);
	cr_assert_eq(A.notif.data[0], 254);
	cr_assert_eq(A.notif.len, 255);

	/* ManualStop in Connect aborts the attempt without a NOTIFICATION. */
	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_MANUAL_START, 0), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_MANUAL_STOP, 1), 0);
	expect(1, BGP_FSM_ACT_CLOSE);
	cr_assert_eq(bgp_fsm_next_deadline(&f), BGP_FSM_NEVER);
}

Test(bgp_fsm, manual_stop_with_cease_subcode)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	static const char msg[] = "ignored";

	/* A reload removed the neighbor: Cease 6/3 (RFC 4486), no data, stays down. */
	to_established(&f, &c, &o, 0);
	struct bgp_fsm_event e = {.type = BGP_FSM_EV_MANUAL_STOP, .subcode = 3};
	cr_assert_eq(bgp_fsm_step(&f, &e, 100, &A), 0);
	expect(3, BGP_FSM_ACT_SEND_NOTIFICATION, BGP_FSM_ACT_CLOSE, BGP_FSM_ACT_DOWN);
	expect_notif(6, 3);
	cr_assert_eq(A.notif.len, 0);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
	cr_assert_eq(bgp_fsm_next_deadline(&f), BGP_FSM_NEVER);

	/* Changed settings: 6/6, and a text given anyway is not sent as data. */
	to_established(&f, &c, &o, 0);
	e = (struct bgp_fsm_event){.type = BGP_FSM_EV_MANUAL_STOP,
	                           .subcode = 6,
	                           .shutdown = msg,
	                           .shutdown_len = strlen(msg)};
	cr_assert_eq(bgp_fsm_step(&f, &e, 100, &A), 0);
	expect_notif(6, 6);
	cr_assert_eq(A.notif.len, 0);

	/* Subcode 2 keeps the RFC 9003 text. */
	to_established(&f, &c, &o, 0);
	e.subcode = 2;
	cr_assert_eq(bgp_fsm_step(&f, &e, 100, &A), 0);
	expect_notif(6, 2);
	cr_assert_eq(A.notif.len, 1 + strlen(msg));
}

Test(bgp_fsm, route_refresh_resends_all)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	to_established(&f, &c, &o, 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_ROUTE_REFRESH_RECEIVED, 100), 0);
	expect(1, BGP_FSM_ACT_RESEND_ALL);
	cr_assert_eq(f.state, BGP_FSM_ESTABLISHED);
}

Test(bgp_fsm, names)
{
	cr_assert_str_eq(bgp_fsm_state_name(BGP_FSM_IDLE), "Idle");
	cr_assert_str_eq(bgp_fsm_state_name(BGP_FSM_OPENCONFIRM), "OpenConfirm");
	cr_assert_str_eq(bgp_fsm_event_name(BGP_FSM_EV_TCP_CONNECTION_ACCEPTED),
	                 "TcpConnectionAccepted");
	cr_assert_str_eq(bgp_fsm_event_name(BGP_FSM_EV_TICK), "Tick");
	cr_assert_str_eq(bgp_fsm_action_name(BGP_FSM_ACT_RESEND_ALL), "RESEND_ALL");
	cr_assert_str_eq(bgp_fsm_state_name((enum bgp_fsm_state)42), "?");
}

Test(bgp_fsm, idle_after_failure_takes_the_peers_reconnect)
{
	struct bgp_fsm f;
	struct bgp_fsm_conf c = conf_ebgp();
	struct bgp_fsm_open o = good_open();
	cr_assert_eq(bgp_fsm_init(&f, &c), 0);
	to_established(&f, &c, &o, 0);
	/* The router restarts: Cease, we go Idle and wait out the backoff... */
	cr_assert_eq(ev(&f, BGP_FSM_EV_NOTIFICATION_RECEIVED, 1000), 0);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
	cr_assert_gt(bgp_fsm_next_deadline(&f), 1000, "idle hold armed");
	/* ...but when the router connects to us first, we answer at once. */
	cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_ACCEPTED, 1200), 0);
	expect(1, BGP_FSM_ACT_SEND_OPEN);
	cr_assert_eq(f.state, BGP_FSM_OPENSENT);
	/* After ManualStop the same event is refused again. */
	cr_assert_eq(ev(&f, BGP_FSM_EV_MANUAL_STOP, 1300), 0);
	cr_assert_eq(ev(&f, BGP_FSM_EV_TCP_CONNECTION_ACCEPTED, 1400), 0);
	expect(1, BGP_FSM_ACT_CLOSE);
	cr_assert_eq(f.state, BGP_FSM_IDLE);
}
