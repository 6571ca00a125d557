/*
 * test_bfd_fsm.c: the BFD session machine (RFC 5880 §6), driven with stepped
 * time: handshakes (also with BIRD's captured packets), detection, the
 * remote's Down and AdminDown, Poll/Final, every §6.8.6 discard, the slow
 * rate while not Up, and the jitter bounds.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgp/bfd_fsm.h"

#define LOCAL  0x1111aaaau
#define REMOTE 0x2222bbbbu

static struct bfd_fsm_actions A;

static struct bfd_fsm_conf conf(void)
{
	struct bfd_fsm_conf c = {.local_disc = LOCAL,
	                         .desired_min_tx_us = 100000,
	                         .required_min_rx_us = 100000,
	                         .detect_mult = 3,
	                         .seed = 7};
	return c;
}

static struct bfd_pkt remote(enum bfd_state st, uint32_t your)
{
	struct bfd_pkt p = {.version = 1,
	                    .state = st,
	                    .detect_mult = 3,
	                    .length = 24,
	                    .my_disc = REMOTE,
	                    .your_disc = your,
	                    .desired_min_tx_us = 100000,
	                    .required_min_rx_us = 100000};
	return p;
}

static int ev(struct bfd_fsm *f, enum bfd_fsm_event_type t, uint64_t now)
{
	struct bfd_fsm_event e = {.type = t};
	return bfd_fsm_step(f, &e, now, &A);
}

static int rx(struct bfd_fsm *f, const struct bfd_pkt *p, uint64_t now)
{
	struct bfd_fsm_event e = {.type = BFD_FSM_EV_RX, .pkt = p};
	return bfd_fsm_step(f, &e, now, &A);
}

static int set_timers(struct bfd_fsm *f, uint32_t tx, uint32_t rxi, uint8_t mult, uint64_t now)
{
	struct bfd_fsm_event e = {.type = BFD_FSM_EV_SET_TIMERS,
	                          .desired_min_tx_us = tx,
	                          .required_min_rx_us = rxi,
	                          .detect_mult = mult};
	return bfd_fsm_step(f, &e, now, &A);
}

/* Every packet the machine asks for must be one bfd_build() accepts. */
static void check_sendable(void)
{
	uint8_t b[64];
	for (unsigned i = 0; i < A.n_send; i++)
		cr_assert_eq(bfd_build(&A.send[i], b, sizeof(b)), 24, "packet %u not buildable", i);
}

static void started(struct bfd_fsm *f, const struct bfd_fsm_conf *c, uint64_t now)
{
	cr_assert_eq(bfd_fsm_init(f, c), 0);
	cr_assert_eq(ev(f, BFD_FSM_EV_ADMIN_UP, now), 0);
	check_sendable();
}

/* Down -> Init -> Up from the remote's Down then Up; our Poll answered. */
static void bring_up(struct bfd_fsm *f, uint64_t *now)
{
	struct bfd_pkt p = remote(BFD_STATE_DOWN, 0);
	cr_assert_eq(rx(f, &p, *now), 0);
	cr_assert_eq(f->state, BFD_STATE_INIT);
	p = remote(BFD_STATE_UP, LOCAL);
	cr_assert_eq(rx(f, &p, *now += 10), 0);
	cr_assert_eq(f->state, BFD_STATE_UP);
	cr_assert(f->poll_active);
	p.final = true;
	cr_assert_eq(rx(f, &p, *now += 10), 0);
	cr_assert(!f->poll_active);
	check_sendable();
}

Test(bfd_fsm, init_checks_conf)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	c.local_disc = 0;
	cr_expect_eq(bfd_fsm_init(&f, &c), -EINVAL);
	c = conf();
	c.detect_mult = 0;
	cr_expect_eq(bfd_fsm_init(&f, &c), -EINVAL);
	c = conf();
	c.desired_min_tx_us = 0;
	cr_expect_eq(bfd_fsm_init(&f, &c), -EINVAL);
	c = conf();
	c.required_min_rx_us = 0;
	cr_expect_eq(bfd_fsm_init(&f, &c), -EINVAL);
	cr_expect_eq(bfd_fsm_init(&f, NULL), -EINVAL);
}

Test(bfd_fsm, new_session_is_silent_until_admin_up)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	struct bfd_pkt p = remote(BFD_STATE_DOWN, 0);
	cr_assert_eq(bfd_fsm_init(&f, &c), 0);
	cr_expect_eq(f.state, BFD_STATE_ADMIN_DOWN);
	cr_expect_eq(bfd_fsm_next_deadline(&f), BFD_FSM_NEVER);
	cr_expect_eq(rx(&f, &p, 5), -EBADMSG);
	cr_expect_eq(A.discard, BFD_DISCARD_NO_SESSION);
	cr_expect_eq(ev(&f, BFD_FSM_EV_TIMER, 5), 0);
	cr_expect_eq(A.n_send, 0);
	cr_expect_eq(f.remote_disc, 0, "nothing learned before the start");
}

Test(bfd_fsm, admin_up_sends_down_at_the_slow_rate)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	started(&f, &c, 1000);
	cr_assert(A.state_changed);
	cr_expect_eq(A.from, BFD_STATE_ADMIN_DOWN);
	cr_expect_eq(A.to, BFD_STATE_DOWN);
	cr_assert_eq(A.n_send, 1);
	const struct bfd_pkt *s = &A.send[0];
	cr_expect_eq(s->state, BFD_STATE_DOWN);
	cr_expect_eq(s->diag, BFD_DIAG_NONE);
	cr_expect_eq(s->my_disc, LOCAL);
	cr_expect_eq(s->your_disc, 0);
	cr_expect_eq(s->detect_mult, 3);
	cr_expect_eq(s->desired_min_tx_us, 1000000, "§6.8.3: 1 s while not Up");
	cr_expect_eq(s->required_min_rx_us, 100000);
	cr_expect(!s->poll && !s->final);
	cr_expect_geq(A.next_tx, 1750);
	cr_expect_leq(A.next_tx, 2000);
	cr_expect_eq(A.detect_at, BFD_FSM_NEVER, "nothing received: nothing to detect");
}

Test(bfd_fsm, three_way_handshake_down_init_up)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 1000;
	started(&f, &c, now);

	struct bfd_pkt p = remote(BFD_STATE_DOWN, 0);
	cr_assert_eq(rx(&f, &p, now += 100), 0);
	cr_assert(A.state_changed);
	cr_expect_eq(A.from, BFD_STATE_DOWN);
	cr_expect_eq(A.to, BFD_STATE_INIT);
	cr_assert_eq(A.n_send, 1, "the new state goes out at once");
	cr_expect_eq(A.send[0].state, BFD_STATE_INIT);
	cr_expect_eq(A.send[0].your_disc, REMOTE);
	cr_expect_eq(A.send[0].desired_min_tx_us, 1000000, "still slow in Init");
	cr_expect(!A.send[0].poll);
	/* Detection armed: 3 x max(100 ms ours, 100 ms theirs). */
	cr_expect_eq(A.detect_at, now + 300);

	p = remote(BFD_STATE_INIT, LOCAL);
	cr_assert_eq(rx(&f, &p, now += 50), 0);
	cr_assert(A.state_changed);
	cr_expect_eq(A.from, BFD_STATE_INIT);
	cr_expect_eq(A.to, BFD_STATE_UP);
	cr_expect_eq(A.diag, BFD_DIAG_NONE);
	cr_assert_eq(A.n_send, 1);
	cr_expect_eq(A.send[0].state, BFD_STATE_UP);
	cr_expect(A.send[0].poll, "a new TX interval starts a Poll Sequence (§6.8.3)");
	cr_expect_eq(A.send[0].desired_min_tx_us, 100000);
	cr_expect_eq(bfd_fsm_tx_interval_us(&f), 100000, "a decrease applies at once");
	check_sendable();

	/* Periodic packets carry P until the Final. */
	ev(&f, BFD_FSM_EV_TIMER, A.next_tx);
	cr_assert_eq(A.n_send, 1);
	cr_expect(A.send[0].poll);
	p = remote(BFD_STATE_UP, LOCAL);
	p.final = true;
	cr_assert_eq(rx(&f, &p, now += 100), 0);
	cr_expect(!A.state_changed);
	cr_expect(!f.poll_active);
	ev(&f, BFD_FSM_EV_TIMER, A.next_tx);
	cr_assert_eq(A.n_send, 1);
	cr_expect(!A.send[0].poll && !A.send[0].final);
	cr_expect_eq(f.st.ups, 1);
}

Test(bfd_fsm, down_goes_straight_up_on_init)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	started(&f, &c, 0);
	struct bfd_pkt p = remote(BFD_STATE_INIT, LOCAL);
	cr_assert_eq(rx(&f, &p, 10), 0);
	cr_expect_eq(A.from, BFD_STATE_DOWN);
	cr_expect_eq(A.to, BFD_STATE_UP);
	/* Up from the remote while we are Down: it must see our Down first. */
	cr_assert_eq(bfd_fsm_init(&f, &c), 0);
	ev(&f, BFD_FSM_EV_ADMIN_UP, 0);
	p = remote(BFD_STATE_UP, LOCAL);
	cr_assert_eq(rx(&f, &p, 10), 0);
	cr_expect(!A.state_changed);
	cr_expect_eq(f.state, BFD_STATE_DOWN);
}

/* ---- with BIRD's own packets (tests/vectors/bfd), we play FRR's side ---- */

static struct bfd_pkt vector(const char *name)
{
	const char *dir = getenv("ANYCACHE_VECTORS");
	char path[1024];
	uint8_t b[64];
	struct bfd_pkt p;
	cr_assert(dir, "ANYCACHE_VECTORS not set");
	snprintf(path, sizeof(path), "%s/bfd/%s", dir, name);
	FILE *fp = fopen(path, "rb");
	cr_assert(fp, "%s", path);
	size_t n = fread(b, 1, sizeof(b), fp);
	fclose(fp);
	cr_assert_eq(bfd_parse(b, n, &p, NULL), 0, "%s", name);
	return p;
}

Test(bfd_fsm, handshake_and_failure_with_birds_packets)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	c.local_disc = 0xcf9dead2; /* FRR's discriminator in the capture */
	c.desired_min_tx_us = c.required_min_rx_us = 300000;
	started(&f, &c, now);

	struct bfd_pkt p = vector("001-bird-control-down-yourdisc0-slow-tx.bin");
	cr_assert_eq(rx(&f, &p, now += 200), 0);
	cr_expect_eq(f.state, BFD_STATE_INIT);
	cr_expect_eq(A.send[0].your_disc, 0xc734224bu);
	/* BIRD advertised 1 s: the detection time is 3 x 1 s. */
	cr_expect_eq(bfd_fsm_detect_time_us(&f), 3000000);

	p = vector("003-bird-control-up-poll.bin");
	cr_assert_eq(rx(&f, &p, now += 300), 0);
	cr_expect_eq(f.state, BFD_STATE_UP);
	cr_assert_eq(A.n_send, 2, "the Final, then our own Up with P");
	cr_expect(A.send[0].final && !A.send[0].poll);
	cr_expect(A.send[1].poll && !A.send[1].final);
	cr_expect_eq(A.send[1].state, BFD_STATE_UP);
	check_sendable();
	cr_expect_eq(bfd_fsm_detect_time_us(&f), 900000, "BIRD now says 300 ms");

	p = vector("005-bird-control-up-final.bin");
	cr_assert_eq(rx(&f, &p, now += 100), 0);
	cr_expect(!f.poll_active);
	cr_expect_eq(A.n_send, 0);
	p = vector("007-bird-control-up.bin");
	cr_assert_eq(rx(&f, &p, now += 250), 0);
	cr_expect_eq(f.state, BFD_STATE_UP);

	/* BIRD timed us out (009: Down, diag 1, Your Discriminator 0). */
	p = vector("009-bird-control-down-diag1-yourdisc0-slow-tx.bin");
	cr_assert_eq(rx(&f, &p, now += 250), 0);
	cr_expect_eq(f.state, BFD_STATE_DOWN);
	cr_expect_eq(A.diag, BFD_DIAG_NEIGHBOR_DOWN);
	cr_expect_eq(A.remote_state, BFD_STATE_DOWN);
}

/* ---- detection and the remote's Down ---- */

Test(bfd_fsm, detection_timeout_takes_the_session_down_with_diag_1)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 5000;
	started(&f, &c, now);
	bring_up(&f, &now);
	uint64_t last_rx = now;
	cr_assert_eq(bfd_fsm_detect_time_us(&f), 300000);
	cr_expect_eq(f.detect_at, last_rx + 300);

	/* Periodic transmission alone does not keep it up. */
	while (bfd_fsm_next_deadline(&f) < last_rx + 300) {
		ev(&f, BFD_FSM_EV_TIMER, bfd_fsm_next_deadline(&f));
		cr_assert_eq(f.state, BFD_STATE_UP);
	}
	ev(&f, BFD_FSM_EV_TIMER, last_rx + 299);
	cr_expect_eq(f.state, BFD_STATE_UP);
	ev(&f, BFD_FSM_EV_TIMER, last_rx + 300);
	cr_assert(A.state_changed);
	cr_expect_eq(A.from, BFD_STATE_UP);
	cr_expect_eq(A.to, BFD_STATE_DOWN);
	cr_expect_eq(A.diag, BFD_DIAG_TIME_EXPIRED);
	cr_assert_eq(A.n_send, 1);
	cr_expect_eq(A.send[0].state, BFD_STATE_DOWN);
	cr_expect_eq(A.send[0].diag, BFD_DIAG_TIME_EXPIRED);
	cr_expect_eq(A.send[0].your_disc, 0, "§6.8.1: the remote discriminator is forgotten");
	cr_expect_eq(A.send[0].desired_min_tx_us, 1000000);
	cr_expect(!A.send[0].poll, "nobody to poll");
	cr_expect_eq(A.detect_at, BFD_FSM_NEVER);
	cr_expect_eq(bfd_fsm_tx_interval_us(&f), 1000000);
	cr_expect_eq(f.st.downs, 1);
}

Test(bfd_fsm, detection_time_is_remote_mult_times_agreed_remote_interval)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	started(&f, &c, 0);
	struct bfd_pkt p = remote(BFD_STATE_DOWN, 0);
	p.detect_mult = 5;
	p.desired_min_tx_us = 200000; /* slower than our 100 ms RX: theirs counts */
	cr_assert_eq(rx(&f, &p, 10), 0);
	cr_expect_eq(bfd_fsm_detect_time_us(&f), 1000000);
	cr_expect_eq(A.detect_at, 1010);
	p.desired_min_tx_us = 20000; /* faster than we want: ours counts */
	p.state = BFD_STATE_INIT;
	p.your_disc = LOCAL;
	cr_assert_eq(rx(&f, &p, 20), 0);
	cr_expect_eq(bfd_fsm_detect_time_us(&f), 500000);
	cr_expect_eq(A.detect_at, 520);
}

Test(bfd_fsm, detection_in_down_forgets_the_remote_silently)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	started(&f, &c, 0);
	struct bfd_pkt p = remote(BFD_STATE_UP, 0);
	p.state = BFD_STATE_DOWN;
	rx(&f, &p, 10); /* Init now */
	cr_assert_eq(ev(&f, BFD_FSM_EV_ADMIN_DOWN, 20), 0);
	cr_assert_eq(ev(&f, BFD_FSM_EV_ADMIN_UP, 30), 0);
	cr_assert_eq(f.state, BFD_STATE_DOWN);
	rx(&f,
	   &(struct bfd_pkt){.version = 1,
	                     .state = BFD_STATE_UP,
	                     .detect_mult = 3,
	                     .length = 24,
	                     .my_disc = REMOTE,
	                     .your_disc = LOCAL,
	                     .desired_min_tx_us = 100000,
	                     .required_min_rx_us = 100000},
	   40);
	cr_assert_eq(f.state, BFD_STATE_DOWN, "Up from the remote does not move Down");
	cr_assert_eq(f.remote_disc, REMOTE);
	ev(&f, BFD_FSM_EV_TIMER, 340);
	cr_expect(!A.state_changed);
	cr_expect_eq(f.remote_disc, 0);
	cr_expect_eq(f.detect_at, BFD_FSM_NEVER);
}

Test(bfd_fsm, remote_signals_down)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	struct bfd_pkt p = remote(BFD_STATE_DOWN, LOCAL);
	p.diag = BFD_DIAG_TIME_EXPIRED;
	cr_assert_eq(rx(&f, &p, now += 50), 0);
	cr_assert(A.state_changed);
	cr_expect_eq(A.from, BFD_STATE_UP);
	cr_expect_eq(A.to, BFD_STATE_DOWN);
	cr_expect_eq(A.diag, BFD_DIAG_NEIGHBOR_DOWN);
	cr_expect_eq(A.remote_state, BFD_STATE_DOWN);
	cr_assert_eq(A.n_send, 1);
	cr_expect_eq(A.send[0].state, BFD_STATE_DOWN);
	cr_expect_eq(A.send[0].diag, BFD_DIAG_NEIGHBOR_DOWN);
	/* Back to 1 s at once (not Up), and the remote is told with a Poll (as BIRD does). */
	cr_expect_eq(A.send[0].desired_min_tx_us, 1000000);
	cr_expect(A.send[0].poll);
	cr_expect_eq(bfd_fsm_tx_interval_us(&f), 1000000);
	/* And the handshake starts over from its Down. */
	cr_assert_eq(rx(&f, &p, now += 50), 0);
	cr_expect_eq(f.state, BFD_STATE_INIT);
}

Test(bfd_fsm, remote_admin_down_is_reported_as_such)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	struct bfd_pkt p = remote(BFD_STATE_ADMIN_DOWN, LOCAL);
	p.diag = BFD_DIAG_ADMIN_DOWN;
	cr_assert_eq(rx(&f, &p, now += 10), 0);
	cr_expect_eq(A.to, BFD_STATE_DOWN);
	cr_expect_eq(A.diag, BFD_DIAG_NEIGHBOR_DOWN);
	cr_expect_eq(A.remote_state, BFD_STATE_ADMIN_DOWN, "RFC 5882 §3.2 needs to know");
	/* AdminDown again while Down changes nothing. */
	cr_assert_eq(rx(&f, &p, now += 10), 0);
	cr_expect(!A.state_changed);
	/* From Init as well. */
	cr_assert_eq(bfd_fsm_init(&f, &c), 0);
	ev(&f, BFD_FSM_EV_ADMIN_UP, now);
	struct bfd_pkt d = remote(BFD_STATE_DOWN, 0);
	rx(&f, &d, now += 10);
	cr_assert_eq(f.state, BFD_STATE_INIT);
	rx(&f, &p, now += 10);
	cr_expect_eq(f.state, BFD_STATE_DOWN);
	cr_expect_eq(A.diag, BFD_DIAG_NEIGHBOR_DOWN);
}

/* ---- Poll / Final ---- */

Test(bfd_fsm, a_poll_is_answered_at_once_with_final)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	uint64_t next = f.next_tx;
	struct bfd_pkt p = remote(BFD_STATE_UP, LOCAL);
	p.poll = true;
	p.desired_min_tx_us = 50000;
	cr_assert_eq(rx(&f, &p, now += 1), 0);
	cr_assert_eq(A.n_send, 1);
	cr_expect(A.send[0].final && !A.send[0].poll);
	cr_expect_eq(A.send[0].state, BFD_STATE_UP);
	cr_expect_leq(A.next_tx, next, "the reply does not push the periodic packet back");
	check_sendable();
	/* The remote's faster TX does not beat our 100 ms RX for detection. */
	cr_expect_eq(bfd_fsm_detect_time_us(&f), 300000);
	/* A Final in reply to nothing is harmless. */
	p.poll = false;
	p.final = true;
	cr_assert_eq(rx(&f, &p, now += 1), 0);
	cr_expect_eq(A.n_send, 0);
}

Test(bfd_fsm, poll_final_when_our_tx_interval_increases)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	cr_assert_eq(set_timers(&f, 300000, 100000, 3, now += 5), 0);
	cr_assert_eq(A.n_send, 1, "the Poll goes out at once");
	cr_expect(A.send[0].poll);
	cr_expect_eq(A.send[0].desired_min_tx_us, 300000, "the new value is advertised");
	cr_expect_eq(bfd_fsm_tx_interval_us(&f), 100000, "§6.8.3: not used before the Final");
	/* Periodic packets keep the old rate and the P bit. */
	for (int i = 0; i < 3; i++) {
		uint64_t t = f.next_tx;
		struct bfd_pkt keep = remote(BFD_STATE_UP, LOCAL);
		rx(&f, &keep, t);
		ev(&f, BFD_FSM_EV_TIMER, t);
		cr_assert_eq(A.n_send, 1);
		cr_expect(A.send[0].poll);
		cr_expect_leq(A.next_tx - t, 100);
	}
	struct bfd_pkt p = remote(BFD_STATE_UP, LOCAL);
	p.final = true;
	cr_assert_eq(rx(&f, &p, now = f.next_tx - 1), 0);
	cr_expect(!f.poll_active);
	cr_expect_eq(bfd_fsm_tx_interval_us(&f), 300000);
	ev(&f, BFD_FSM_EV_TIMER, f.next_tx);
	cr_expect(!A.send[0].poll);
	cr_expect_geq(A.next_tx - f.last_tx, 225);
	cr_expect_leq(A.next_tx - f.last_tx, 300);
	cr_expect_eq(f.st.polls, 2, "one at Up, one for the change");
}

Test(bfd_fsm, poll_final_when_our_rx_interval_decreases)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	struct bfd_pkt p = remote(BFD_STATE_UP, LOCAL);
	p.desired_min_tx_us = 20000; /* the remote could send faster than we ask */
	rx(&f, &p, now += 1);
	cr_assert_eq(bfd_fsm_detect_time_us(&f), 300000);
	cr_assert_eq(set_timers(&f, 100000, 50000, 3, now += 1), 0);
	cr_expect(A.send[0].poll);
	cr_expect_eq(A.send[0].required_min_rx_us, 50000);
	cr_expect_eq(bfd_fsm_detect_time_us(&f), 300000, "the old RX until the Final");
	p.final = true;
	rx(&f, &p, now += 1);
	cr_expect_eq(bfd_fsm_detect_time_us(&f), 150000);
	cr_expect_eq(f.detect_at, now + 150);
	/* An RX increase applies at once (and still polls). */
	cr_assert_eq(set_timers(&f, 100000, 400000, 3, now += 1), 0);
	cr_expect(A.send[0].poll);
	cr_expect_eq(bfd_fsm_detect_time_us(&f), 1200000);
}

Test(bfd_fsm, a_change_during_a_poll_polls_again)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	set_timers(&f, 200000, 100000, 3, now += 1);
	cr_expect(A.send[0].poll);
	set_timers(&f, 400000, 100000, 3, now += 1);
	cr_expect_eq(A.n_send, 0, "no second sequence while one runs");
	cr_expect(f.poll_pending);
	struct bfd_pkt p = remote(BFD_STATE_UP, LOCAL);
	p.final = true;
	rx(&f, &p, now += 1);
	cr_expect(f.poll_active, "that Final may answer a packet with the old values");
	cr_expect_eq(bfd_fsm_tx_interval_us(&f), 100000);
	rx(&f, &p, now += 1);
	cr_expect(!f.poll_active);
	cr_expect_eq(bfd_fsm_tx_interval_us(&f), 400000);
}

Test(bfd_fsm, detect_mult_change_is_carried_by_the_next_packet)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	cr_assert_eq(set_timers(&f, 100000, 100000, 5, now += 1), 0);
	cr_expect_eq(A.n_send, 0, "the intervals did not change: no Poll");
	ev(&f, BFD_FSM_EV_TIMER, f.next_tx);
	cr_expect_eq(A.send[0].detect_mult, 5);
	cr_expect_eq(set_timers(&f, 0, 100000, 5, now), -EINVAL);
	cr_expect_eq(set_timers(&f, 100000, 100000, 0, now), -EINVAL);
}

/* ---- §6.8.6 discards ---- */

static void expect_discard(struct bfd_fsm *f, const struct bfd_pkt *p, enum bfd_discard want)
{
	struct bfd_fsm before = *f;
	cr_expect_eq(rx(f, p, 77), -EBADMSG, "want %s", bfd_discard_name(want));
	cr_expect_eq(A.discard, want, "got %s want %s", bfd_discard_name(A.discard),
	             bfd_discard_name(want));
	cr_expect_eq(A.n_send, 0);
	cr_expect(!A.state_changed);
	cr_expect_eq(f->state, before.state);
	cr_expect_eq(f->remote_disc, before.remote_disc, "nothing recorded");
	cr_expect_eq(f->detect_at, before.detect_at, "no detection reset");
	cr_expect_eq(f->st.rx_discarded, before.st.rx_discarded + 1);
}

Test(bfd_fsm, every_reception_check_discards)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	struct bfd_pkt ok = remote(BFD_STATE_UP, LOCAL), p;

	p = ok, p.version = 0;
	expect_discard(&f, &p, BFD_DISCARD_VERSION);
	p = ok, p.version = 2;
	expect_discard(&f, &p, BFD_DISCARD_VERSION);
	p = ok, p.length = 23;
	expect_discard(&f, &p, BFD_DISCARD_LENGTH);
	p = ok, p.detect_mult = 0;
	expect_discard(&f, &p, BFD_DISCARD_DETECT_MULT);
	p = ok, p.multipoint = true;
	expect_discard(&f, &p, BFD_DISCARD_MULTIPOINT);
	p = ok, p.my_disc = 0;
	expect_discard(&f, &p, BFD_DISCARD_MY_DISC);
	p = ok, p.your_disc = 0;
	expect_discard(&f, &p, BFD_DISCARD_YOUR_DISC);
	p = ok, p.your_disc = 0, p.state = BFD_STATE_INIT;
	expect_discard(&f, &p, BFD_DISCARD_YOUR_DISC);
	p = ok, p.your_disc = LOCAL + 1;
	expect_discard(&f, &p, BFD_DISCARD_NO_SESSION);
	p = ok, p.auth = true, p.length = 26 + 24;
	expect_discard(&f, &p, BFD_DISCARD_AUTH);
	p = ok, p.auth = true, p.length = 25;
	expect_discard(&f, &p, BFD_DISCARD_LENGTH);
	cr_expect_eq(f.state, BFD_STATE_UP);
	/* The same packet, valid, is taken. */
	cr_expect_eq(rx(&f, &ok, 78), 0);
	cr_expect_eq(A.discard, BFD_OK);
	cr_expect_eq(rx(&f, NULL, 78), -EINVAL);
}

Test(bfd_fsm, admin_down_session_records_then_discards)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	cr_assert_eq(ev(&f, BFD_FSM_EV_ADMIN_DOWN, now += 10), 0);
	struct bfd_pkt p = remote(BFD_STATE_DOWN, LOCAL);
	p.my_disc = REMOTE + 5;
	p.poll = true;
	cr_assert_eq(rx(&f, &p, now += 10), 0);
	cr_expect_eq(A.discard, BFD_DISCARD_ADMIN_DOWN);
	cr_expect_eq(A.n_send, 0, "discarded before the Poll is looked at");
	cr_expect(!A.state_changed);
	cr_expect_eq(f.state, BFD_STATE_ADMIN_DOWN);
	cr_expect_eq(f.remote_disc, REMOTE + 5, "§6.8.6 records before it discards");
	cr_expect_eq(f.detect_at, BFD_FSM_NEVER);
}

/* ---- AdminDown ---- */

Test(bfd_fsm, admin_down_tells_the_remote_for_a_detection_time_then_stops)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	cr_assert_eq(ev(&f, BFD_FSM_EV_ADMIN_DOWN, now += 10), 0);
	cr_assert(A.state_changed);
	cr_expect_eq(A.from, BFD_STATE_UP);
	cr_expect_eq(A.to, BFD_STATE_ADMIN_DOWN);
	cr_expect_eq(A.diag, BFD_DIAG_ADMIN_DOWN);
	cr_assert_eq(A.n_send, 1);
	cr_expect_eq(A.send[0].state, BFD_STATE_ADMIN_DOWN);
	cr_expect_eq(A.send[0].diag, BFD_DIAG_ADMIN_DOWN);
	cr_expect(!A.send[0].poll, "no Poll toward a session we are leaving");
	check_sendable();
	cr_expect_eq(A.detect_at, BFD_FSM_NEVER);
	/* Our detection time at the remote: 3 x 1 s now that we are not Up. */
	uint64_t until = now + 3000;
	unsigned sent = 0;
	for (int i = 0; i < 100 && bfd_fsm_next_deadline(&f) != BFD_FSM_NEVER; i++) {
		uint64_t t = bfd_fsm_next_deadline(&f);
		ev(&f, BFD_FSM_EV_TIMER, t);
		if (A.n_send) {
			cr_expect_lt(t, until);
			cr_expect_eq(A.send[0].state, BFD_STATE_ADMIN_DOWN);
			sent++;
		}
	}
	cr_expect_eq(bfd_fsm_next_deadline(&f), BFD_FSM_NEVER, "silent afterwards");
	cr_expect_geq(sent, 2);
	cr_expect_leq(sent, 4);
	/* And back. */
	cr_assert_eq(ev(&f, BFD_FSM_EV_ADMIN_UP, until + 10), 0);
	cr_expect_eq(A.to, BFD_STATE_DOWN);
	cr_expect_eq(A.send[0].diag, BFD_DIAG_NONE);
	cr_expect_neq(A.next_tx, BFD_FSM_NEVER);
}

/* ---- rates and jitter ---- */

/* The gaps between n periodic packets, each in [lo, hi] ms; fills min/max. */
static void gaps(struct bfd_fsm *f, int n, bool keep_alive, uint64_t lo, uint64_t hi, uint64_t *mn,
                 uint64_t *mx)
{
	*mn = UINT64_MAX;
	*mx = 0;
	for (int i = 0; i < n; i++) {
		uint64_t t = f->next_tx;
		uint64_t prev = f->last_tx;
		if (keep_alive) {
			struct bfd_pkt p = remote(BFD_STATE_UP, LOCAL);
			cr_assert_eq(rx(f, &p, t), 0);
		}
		cr_assert_eq(ev(f, BFD_FSM_EV_TIMER, t), 0);
		cr_assert_eq(A.n_send, 1, "packet %d", i);
		uint64_t gap = t - prev;
		cr_assert_geq(gap, lo, "gap %llu", (unsigned long long)gap);
		cr_assert_leq(gap, hi, "gap %llu", (unsigned long long)gap);
		if (gap < *mn)
			*mn = gap;
		if (gap > *mx)
			*mx = gap;
	}
}

Test(bfd_fsm, slow_until_up_fast_once_up_slow_again_after_a_failure)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t mn, mx, now = 0;
	started(&f, &c, now);
	gaps(&f, 20, false, 750, 1000, &mn, &mx);
	now = f.last_tx;
	bring_up(&f, &now);
	ev(&f, BFD_FSM_EV_TIMER, f.next_tx);
	gaps(&f, 50, true, 75, 100, &mn, &mx);
	/* The remote stops: Down, diag 1, then 1 s again. */
	ev(&f, BFD_FSM_EV_TIMER, f.detect_at);
	cr_assert_eq(f.state, BFD_STATE_DOWN);
	gaps(&f, 20, false, 750, 1000, &mn, &mx);
}

Test(bfd_fsm, the_remote_min_rx_slows_us_down)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	struct bfd_pkt p = remote(BFD_STATE_UP, LOCAL);
	p.required_min_rx_us = 500000;
	p.desired_min_tx_us = 500000;
	cr_assert_eq(rx(&f, &p, now += 1), 0);
	cr_expect_eq(bfd_fsm_tx_interval_us(&f), 500000);
	ev(&f, BFD_FSM_EV_TIMER, f.next_tx);
	for (int i = 0; i < 20; i++) {
		uint64_t t = f.next_tx;
		rx(&f, &p, t);
		ev(&f, BFD_FSM_EV_TIMER, t);
		cr_assert_eq(A.n_send, 1);
	}
	cr_expect_geq(f.next_tx - f.last_tx, 375);
	cr_expect_leq(f.next_tx - f.last_tx, 500);
}

Test(bfd_fsm, no_periodic_packets_when_the_remote_wants_none_or_demands)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0;
	started(&f, &c, now);
	bring_up(&f, &now);
	struct bfd_pkt p = remote(BFD_STATE_UP, LOCAL);
	p.required_min_rx_us = 0;
	cr_assert_eq(rx(&f, &p, now += 1), 0);
	cr_expect_eq(A.next_tx, BFD_FSM_NEVER, "RemoteMinRxInterval 0 (§6.8.7)");
	p.required_min_rx_us = 100000;
	cr_assert_eq(rx(&f, &p, now += 1), 0);
	cr_expect_eq(A.next_tx, now, "resumes at once");
	p.demand = true;
	cr_assert_eq(rx(&f, &p, now += 1), 0);
	cr_expect_eq(A.next_tx, BFD_FSM_NEVER, "Demand mode, both Up (§6.8.7)");
	/* A Poll of the remote is still answered. */
	p.poll = true;
	cr_assert_eq(rx(&f, &p, now += 1), 0);
	cr_assert_eq(A.n_send, 1);
	cr_expect(A.send[0].final);
}

Test(bfd_fsm, jitter_stays_within_75_to_100_percent)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0, mn, mx;
	started(&f, &c, now);
	bring_up(&f, &now);
	ev(&f, BFD_FSM_EV_TIMER, f.next_tx);
	gaps(&f, 2000, true, 75, 100, &mn, &mx);
	/* The whole range is used, not one fixed value. */
	cr_expect_leq(mn, 76, "min %llu", (unsigned long long)mn);
	cr_expect_geq(mx, 99, "max %llu", (unsigned long long)mx);
}

Test(bfd_fsm, jitter_with_detect_mult_1_stays_within_75_to_90_percent)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	uint64_t now = 0, mn, mx;
	c.detect_mult = 1;
	started(&f, &c, now);
	bring_up(&f, &now);
	ev(&f, BFD_FSM_EV_TIMER, f.next_tx);
	gaps(&f, 2000, true, 75, 90, &mn, &mx);
	cr_expect_leq(mn, 76, "min %llu", (unsigned long long)mn);
	cr_expect_geq(mx, 89, "max %llu", (unsigned long long)mx);
}

Test(bfd_fsm, the_seed_decides_the_jitter)
{
	struct bfd_fsm a, b;
	struct bfd_fsm_conf c = conf();
	started(&a, &c, 0);
	started(&b, &c, 0);
	cr_expect_eq(a.next_tx, b.next_tx, "same seed, same schedule");
	unsigned differ = 0;
	for (int i = 0; i < 20; i++) {
		c.seed = (uint64_t)i + 100;
		started(&b, &c, 0);
		differ += b.next_tx != a.next_tx;
	}
	cr_expect_geq(differ, 10);
}

Test(bfd_fsm, unknown_event)
{
	struct bfd_fsm f;
	struct bfd_fsm_conf c = conf();
	started(&f, &c, 0);
	cr_expect_eq(ev(&f, (enum bfd_fsm_event_type)99, 0), -EINVAL);
	cr_expect_str_eq(bfd_fsm_event_name(BFD_FSM_EV_RX), "Rx");
}
