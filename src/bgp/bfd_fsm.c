/*
 * bfd_fsm.c: one BFD session (RFC 5880 §6). See bfd_fsm.h for what the glue
 * relies on.
 */
#include "bgp/bfd_fsm.h"

#include <errno.h>
#include <string.h>

#include "core/wire.h"

/* splitmix64, as in bgp_fsm.c: seedable with any value, good enough for jitter. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t max32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

/* §6.8.7: one interval of iv_us less 0-25% (10-25% when DetectMult is 1), in
 * whole ms that stay inside those bounds; at least 1 ms. */
static uint64_t jitter_ms(struct bfd_fsm *fsm, uint32_t iv_us)
{
	uint64_t lo = ((uint64_t)iv_us * 75 + 99999) / 100000;
	uint64_t hi = (uint64_t)iv_us * (fsm->detect_mult == 1 ? 90 : 100) / 100000;

	if (lo == 0)
		lo = 1;
	if (hi < lo)
		hi = lo;
	fsm->last_jitter_ms = (uint32_t)(lo + rng_next(&fsm->rng) % (hi - lo + 1));
	return fsm->last_jitter_ms;
}

uint32_t bfd_fsm_tx_interval_us(const struct bfd_fsm *fsm)
{
	return max32(fsm->tx_used_us, fsm->remote_min_rx_us); /* §6.8.2 */
}

uint64_t bfd_fsm_detect_time_us(const struct bfd_fsm *fsm)
{
	/* §6.8.4, Asynchronous mode. */
	return (uint64_t)fsm->remote_detect_mult * max32(fsm->rx_used_us, fsm->remote_min_tx_us);
}

static void detect_arm(struct bfd_fsm *fsm)
{
	uint64_t us = bfd_fsm_detect_time_us(fsm);

	if (fsm->state == BFD_STATE_ADMIN_DOWN || us == 0)
		fsm->detect_at = BFD_FSM_NEVER;
	else
		fsm->detect_at = fsm->last_rx + (us + 999) / 1000;
}

/* §6.8.7: whether periodic packets go out at all. */
static bool periodic(const struct bfd_fsm *fsm, uint64_t now)
{
	if (fsm->remote_min_rx_us == 0) /* the remote asked for none */
		return false;
	if (fsm->state == BFD_STATE_ADMIN_DOWN)
		return now < fsm->admin_tx_until;
	/* The remote is in Demand mode and both are Up: it asked us to stop,
	 * except for a Poll Sequence of ours. */
	if (fsm->remote_demand && fsm->state == BFD_STATE_UP && fsm->remote_state == BFD_STATE_UP &&
	    !fsm->poll_active)
		return false;
	return true;
}

/* A packet as §6.8.7 says to fill it. final: a reply to a Poll. */
static void queue_pkt(struct bfd_fsm *fsm, struct bfd_fsm_actions *out, bool final, uint64_t now)
{
	struct bfd_pkt *p;

	if (out->n_send >= BFD_FSM_MAX_SEND)
		return; /* cannot happen: one reply and one packet of our own per step */
	p = &out->send[out->n_send++];
	memset(p, 0, sizeof(*p));
	p->version = BFD_VERSION;
	p->diag = fsm->local_diag;
	p->state = (uint8_t)fsm->state;
	p->final = final;
	p->poll = !final && fsm->poll_active; /* never both */
	p->detect_mult = fsm->detect_mult;
	p->length = BFD_PKT_LEN;
	p->my_disc = fsm->conf.local_disc;
	p->your_disc = fsm->remote_disc;
	p->desired_min_tx_us = fsm->desired_min_tx_us;
	p->required_min_rx_us = fsm->required_min_rx_us;
	p->required_min_echo_rx_us = 0; /* no Echo function */
	fsm->last_tx = now;
	fsm->st.tx++;
	if (final)
		fsm->st.finals_sent++;
}

/* Our own packet now (state change, new poll), then the periodic timer from it. */
static void send_own(struct bfd_fsm *fsm, struct bfd_fsm_actions *out, uint64_t now)
{
	queue_pkt(fsm, out, false, now);
	fsm->tx_iv_us = bfd_fsm_tx_interval_us(fsm);
	fsm->next_tx = now + jitter_ms(fsm, fsm->tx_iv_us);
}

/*
 * After any change of the intervals or of the rules: keep the periodic
 * timer honest. A shorter interval pulls the next packet in (counted from the
 * last one sent); a longer one waits for the packet already due.
 */
static void tx_reschedule(struct bfd_fsm *fsm, uint64_t now)
{
	uint32_t iv = bfd_fsm_tx_interval_us(fsm);

	if (!periodic(fsm, now)) {
		fsm->next_tx = BFD_FSM_NEVER;
		return;
	}
	if (fsm->next_tx == BFD_FSM_NEVER) {
		fsm->next_tx = now; /* (re)started: send on the next tick */
		fsm->tx_iv_us = iv;
		return;
	}
	if (iv < fsm->tx_iv_us) {
		uint64_t at = fsm->last_tx + jitter_ms(fsm, iv);
		if (at < fsm->next_tx)
			fsm->next_tx = at < now ? now : at;
	}
	fsm->tx_iv_us = iv;
}

static void poll_start(struct bfd_fsm *fsm, struct bfd_fsm_actions *out, uint64_t now)
{
	/* Nobody to answer yet, or nobody we still talk to (AdminDown): the
	 * new values just take effect. */
	if (fsm->remote_disc == 0 || fsm->state == BFD_STATE_ADMIN_DOWN) {
		fsm->tx_used_us = fsm->desired_min_tx_us;
		fsm->rx_used_us = fsm->required_min_rx_us;
		return;
	}
	if (fsm->poll_active) {
		fsm->poll_pending = true; /* §6.5: one sequence at a time */
		return;
	}
	fsm->poll_active = true;
	fsm->st.polls++;
	send_own(fsm, out, now);
}

/* §6.5: the Final ends the sequence; deferred values take effect now. */
static void poll_final(struct bfd_fsm *fsm)
{
	if (fsm->poll_pending) {
		fsm->poll_pending = false; /* keep polling: that Final may predate the change */
		return;
	}
	fsm->poll_active = false;
	fsm->tx_used_us = fsm->desired_min_tx_us;
	fsm->rx_used_us = fsm->required_min_rx_us;
	detect_arm(fsm);
}

/*
 * §6.8.3: the values we advertise follow the state (slow while not Up) and
 * the configuration. A change starts a Poll Sequence; while Up, a longer TX
 * interval and a shorter RX interval wait for its Final.
 */
static void timers_update(struct bfd_fsm *fsm, struct bfd_fsm_actions *out, uint64_t now)
{
	uint32_t tx = fsm->conf.desired_min_tx_us;
	uint32_t rx = fsm->conf.required_min_rx_us;
	bool up = fsm->state == BFD_STATE_UP;

	if (!up)
		tx = max32(tx, BFD_FSM_SLOW_TX_US);
	if (tx == fsm->desired_min_tx_us && rx == fsm->required_min_rx_us)
		return;
	fsm->desired_min_tx_us = tx;
	fsm->required_min_rx_us = rx;
	if (!up || tx < fsm->tx_used_us)
		fsm->tx_used_us = tx;
	if (!up || rx > fsm->rx_used_us)
		fsm->rx_used_us = rx;
	detect_arm(fsm);
	poll_start(fsm, out, now);
}

static void set_state(struct bfd_fsm *fsm, struct bfd_fsm_actions *out, enum bfd_state to,
                      uint8_t diag, uint64_t now)
{
	if (fsm->state == to)
		return;
	if (!out->state_changed) {
		out->state_changed = true;
		out->from = fsm->state;
	}
	out->to = to;
	out->diag = diag;
	out->remote_state = fsm->remote_state;
	if (to == BFD_STATE_UP) {
		fsm->ever_up = true;
		fsm->st.ups++;
	} else if (fsm->state == BFD_STATE_UP) {
		fsm->st.downs++;
	}
	fsm->state = to;
	fsm->local_diag = diag;
	/* Tell the remote at once rather than at the next (slow) interval,
	 * as BIRD and FRR do; the timer change may add a Poll of its own. */
	size_t before = out->n_send;
	timers_update(fsm, out, now);
	if (out->n_send == before)
		send_own(fsm, out, now);
}

/* §6.8.4 expiry, and §6.8.1: the remote's variables return to their initial values. */
static void detect_expired(struct bfd_fsm *fsm, struct bfd_fsm_actions *out, uint64_t now)
{
	fsm->remote_disc = 0;
	fsm->remote_state = BFD_STATE_DOWN;
	fsm->remote_min_rx_us = 1;
	fsm->remote_min_tx_us = 0;
	fsm->remote_detect_mult = 0;
	fsm->remote_demand = false;
	fsm->poll_active = fsm->poll_pending = false;
	fsm->tx_used_us = fsm->desired_min_tx_us;
	fsm->rx_used_us = fsm->required_min_rx_us;
	fsm->detect_at = BFD_FSM_NEVER;
	if (fsm->state == BFD_STATE_INIT || fsm->state == BFD_STATE_UP)
		set_state(fsm, out, BFD_STATE_DOWN, BFD_DIAG_TIME_EXPIRED, now);
}

static void timer(struct bfd_fsm *fsm, struct bfd_fsm_actions *out, uint64_t now)
{
	if (fsm->detect_at <= now)
		detect_expired(fsm, out, now);
	if (fsm->next_tx <= now) {
		if (out->n_send == 0 && periodic(fsm, now))
			send_own(fsm, out, now);
		else if (!periodic(fsm, now))
			fsm->next_tx = BFD_FSM_NEVER;
	}
}

/* §6.8.6 from "If the packet was not discarded" on, in its order. */
static int receive(struct bfd_fsm *fsm, const struct bfd_pkt *p, struct bfd_fsm_actions *out,
                   uint64_t now)
{
	enum bfd_discard d = bfd_check(p);

	if (d == BFD_OK && p->your_disc != 0 && p->your_disc != fsm->conf.local_disc)
		d = BFD_DISCARD_NO_SESSION;
	if (d != BFD_OK) {
		out->discard = d;
		fsm->st.rx_discarded++;
		return -EBADMSG;
	}
	fsm->st.rx++;
	fsm->remote_disc = p->my_disc;
	fsm->remote_state = (enum bfd_state)p->state;
	fsm->remote_demand = p->demand;
	fsm->remote_min_rx_us = p->required_min_rx_us;
	fsm->remote_min_tx_us = p->desired_min_tx_us;
	fsm->remote_detect_mult = p->detect_mult;
	if (p->final && fsm->poll_active)
		poll_final(fsm);
	fsm->last_rx = now;
	detect_arm(fsm);

	if (fsm->state == BFD_STATE_ADMIN_DOWN) {
		out->discard = BFD_DISCARD_ADMIN_DOWN;
		fsm->st.rx_discarded++;
		return 0;
	}
	if (p->state == BFD_STATE_ADMIN_DOWN) {
		if (fsm->state != BFD_STATE_DOWN)
			set_state(fsm, out, BFD_STATE_DOWN, BFD_DIAG_NEIGHBOR_DOWN, now);
	} else {
		switch (fsm->state) {
		case BFD_STATE_DOWN:
			if (p->state == BFD_STATE_DOWN)
				set_state(fsm, out, BFD_STATE_INIT, BFD_DIAG_NONE, now);
			else if (p->state == BFD_STATE_INIT)
				set_state(fsm, out, BFD_STATE_UP, BFD_DIAG_NONE, now);
			break;
		case BFD_STATE_INIT:
			if (p->state == BFD_STATE_INIT || p->state == BFD_STATE_UP)
				set_state(fsm, out, BFD_STATE_UP, BFD_DIAG_NONE, now);
			break;
		case BFD_STATE_UP:
			if (p->state == BFD_STATE_DOWN)
				set_state(fsm, out, BFD_STATE_DOWN, BFD_DIAG_NEIGHBOR_DOWN, now);
			break;
		default:
			break;
		}
	}
	/* "If the Poll (P) bit is set, send a BFD Control packet ... with the
	 * Final (F) bit set" as soon as practicable, ahead of our own (§6.8.7). */
	if (p->poll) {
		struct bfd_pkt own[BFD_FSM_MAX_SEND];
		unsigned n = out->n_send;
		memcpy(own, out->send, n * sizeof(own[0]));
		out->n_send = 0;
		queue_pkt(fsm, out, true, now);
		for (unsigned i = 0; i < n && out->n_send < BFD_FSM_MAX_SEND; i++)
			out->send[out->n_send++] = own[i];
	}
	return 0;
}

static void admin_down(struct bfd_fsm *fsm, struct bfd_fsm_actions *out, uint64_t now)
{
	if (fsm->state == BFD_STATE_ADMIN_DOWN)
		return;
	fsm->poll_active = fsm->poll_pending = false;
	set_state(fsm, out, BFD_STATE_ADMIN_DOWN, BFD_DIAG_ADMIN_DOWN, now);
	fsm->detect_at = BFD_FSM_NEVER;
	/* §6.8.16: keep telling the remote for one of its Detection Times. */
	fsm->admin_tx_until =
	    now + (uint64_t)fsm->detect_mult * (bfd_fsm_tx_interval_us(fsm) + 999) / 1000;
}

int bfd_fsm_init(struct bfd_fsm *fsm, const struct bfd_fsm_conf *conf)
{
	if (!conf || !conf->local_disc || !conf->desired_min_tx_us || !conf->required_min_rx_us ||
	    !conf->detect_mult)
		return -EINVAL;
	memset(fsm, 0, sizeof(*fsm));
	fsm->conf = *conf;
	fsm->state = BFD_STATE_ADMIN_DOWN;
	fsm->remote_state = BFD_STATE_DOWN;
	fsm->local_diag = BFD_DIAG_NONE;
	fsm->detect_mult = conf->detect_mult;
	fsm->desired_min_tx_us = max32(conf->desired_min_tx_us, BFD_FSM_SLOW_TX_US);
	fsm->required_min_rx_us = conf->required_min_rx_us;
	fsm->tx_used_us = fsm->desired_min_tx_us;
	fsm->rx_used_us = fsm->required_min_rx_us;
	fsm->remote_min_rx_us = 1; /* §6.8.1 */
	fsm->next_tx = fsm->detect_at = BFD_FSM_NEVER;
	fsm->rng = conf->seed;
	return 0;
}

int bfd_fsm_step(struct bfd_fsm *fsm, const struct bfd_fsm_event *ev, uint64_t now,
                 struct bfd_fsm_actions *out)
{
	int r = 0;

	memset(out, 0, sizeof(*out));
	switch (ev->type) {
	case BFD_FSM_EV_RX:
		if (!ev->pkt)
			return -EINVAL;
		if (!fsm->started) {
			/* Never enabled: not a session yet (bfd_fsm.h). */
			out->discard = BFD_DISCARD_NO_SESSION;
			fsm->st.rx_discarded++;
			r = -EBADMSG;
			break;
		}
		r = receive(fsm, ev->pkt, out, now);
		break;
	case BFD_FSM_EV_TIMER:
		timer(fsm, out, now);
		break;
	case BFD_FSM_EV_ADMIN_UP:
		if (fsm->state != BFD_STATE_ADMIN_DOWN)
			break;
		fsm->admin_tx_until = 0;
		fsm->started = true;
		set_state(fsm, out, BFD_STATE_DOWN, BFD_DIAG_NONE, now);
		break;
	case BFD_FSM_EV_ADMIN_DOWN:
		admin_down(fsm, out, now);
		break;
	case BFD_FSM_EV_SET_TIMERS:
		if (!ev->desired_min_tx_us || !ev->required_min_rx_us || !ev->detect_mult)
			return -EINVAL;
		fsm->conf.desired_min_tx_us = ev->desired_min_tx_us;
		fsm->conf.required_min_rx_us = ev->required_min_rx_us;
		fsm->conf.detect_mult = ev->detect_mult;
		fsm->detect_mult = ev->detect_mult; /* carried by the next packet */
		timers_update(fsm, out, now);
		break;
	default:
		return -EINVAL;
	}
	tx_reschedule(fsm, now);
	out->next_tx = fsm->next_tx;
	out->detect_at = fsm->detect_at;
	return r;
}

uint64_t bfd_fsm_next_deadline(const struct bfd_fsm *fsm)
{
	return fsm->next_tx < fsm->detect_at ? fsm->next_tx : fsm->detect_at;
}

const char *bfd_fsm_event_name(enum bfd_fsm_event_type e)
{
	switch (e) {
	case BFD_FSM_EV_RX:
		return "Rx";
	case BFD_FSM_EV_TIMER:
		return "Timer";
	case BFD_FSM_EV_ADMIN_UP:
		return "AdminUp";
	case BFD_FSM_EV_ADMIN_DOWN:
		return "AdminDown";
	case BFD_FSM_EV_SET_TIMERS:
		return "SetTimers";
	}
	return "?";
}

/* ---------------------------------------------------------------- restart */

static void put64(struct wbuf *b, uint64_t v)
{
	wbuf_u32(b, (uint32_t)(v >> 32));
	wbuf_u32(b, (uint32_t)v);
}

static uint64_t get64(struct wire *w)
{
	uint64_t hi = wire_u32(w);
	return hi << 32 | wire_u32(w);
}

int bfd_fsm_export(const struct bfd_fsm *f, uint8_t *buf, size_t cap)
{
	struct wbuf b = wbuf_init(buf, cap);
	const struct bfd_fsm_stats *st = &f->st;

	wbuf_bytes(&b, "BFS", 3);
	wbuf_u8(&b, 1);
	wbuf_u32(&b, f->conf.local_disc);
	wbuf_u32(&b, f->conf.desired_min_tx_us);
	wbuf_u32(&b, f->conf.required_min_rx_us);
	wbuf_u8(&b, f->conf.detect_mult);
	put64(&b, f->conf.seed);
	wbuf_u8(&b, (uint8_t)f->state);
	wbuf_u8(&b, (uint8_t)f->remote_state);
	wbuf_u32(&b, f->remote_disc);
	wbuf_u8(&b, f->local_diag);
	wbuf_u8(&b, (uint8_t)(f->remote_demand | f->started << 1 | f->ever_up << 2 |
	                      f->poll_active << 3 | f->poll_pending << 4));
	wbuf_u32(&b, f->desired_min_tx_us);
	wbuf_u32(&b, f->required_min_rx_us);
	wbuf_u32(&b, f->tx_used_us);
	wbuf_u32(&b, f->rx_used_us);
	wbuf_u32(&b, f->remote_min_rx_us);
	wbuf_u32(&b, f->remote_min_tx_us);
	wbuf_u8(&b, f->remote_detect_mult);
	wbuf_u8(&b, f->detect_mult);
	put64(&b, f->next_tx);
	put64(&b, f->detect_at);
	put64(&b, f->admin_tx_until);
	put64(&b, f->last_tx);
	put64(&b, f->last_rx);
	wbuf_u32(&b, f->tx_iv_us);
	wbuf_u32(&b, f->last_jitter_ms);
	put64(&b, f->rng);
	put64(&b, st->rx);
	put64(&b, st->rx_discarded);
	put64(&b, st->tx);
	put64(&b, st->polls);
	put64(&b, st->finals_sent);
	put64(&b, st->ups);
	put64(&b, st->downs);
	return wbuf_result(&b) < 0 ? -EMSGSIZE : (int)b.off;
}

int bfd_fsm_import(struct bfd_fsm *fsm, const uint8_t *buf, size_t len, uint64_t now)
{
	struct wire w = wire_init(buf, len);
	struct bfd_fsm f;
	uint8_t magic[3], ver, fl, state, rstate;

	memset(&f, 0, sizeof(f));
	wire_bytes(&w, magic, 3);
	ver = wire_u8(&w);
	if (w.err || memcmp(magic, "BFS", 3) != 0)
		return -EBADMSG;
	if (ver != 1)
		return -EPROTO;
	f.conf.local_disc = wire_u32(&w);
	f.conf.desired_min_tx_us = wire_u32(&w);
	f.conf.required_min_rx_us = wire_u32(&w);
	f.conf.detect_mult = wire_u8(&w);
	f.conf.seed = get64(&w);
	state = wire_u8(&w);
	rstate = wire_u8(&w);
	f.remote_disc = wire_u32(&w);
	f.local_diag = wire_u8(&w);
	fl = wire_u8(&w);
	f.desired_min_tx_us = wire_u32(&w);
	f.required_min_rx_us = wire_u32(&w);
	f.tx_used_us = wire_u32(&w);
	f.rx_used_us = wire_u32(&w);
	f.remote_min_rx_us = wire_u32(&w);
	f.remote_min_tx_us = wire_u32(&w);
	f.remote_detect_mult = wire_u8(&w);
	f.detect_mult = wire_u8(&w);
	f.next_tx = get64(&w);
	f.detect_at = get64(&w);
	f.admin_tx_until = get64(&w);
	f.last_tx = get64(&w);
	f.last_rx = get64(&w);
	f.tx_iv_us = wire_u32(&w);
	f.last_jitter_ms = wire_u32(&w);
	f.rng = get64(&w);
	f.st.rx = get64(&w);
	f.st.rx_discarded = get64(&w);
	f.st.tx = get64(&w);
	f.st.polls = get64(&w);
	f.st.finals_sent = get64(&w);
	f.st.ups = get64(&w);
	f.st.downs = get64(&w);
	if (!wire_done(&w) || state > BFD_STATE_UP || rstate > BFD_STATE_UP || (fl & ~0x1fu) ||
	    f.conf.local_disc == 0 || !f.conf.desired_min_tx_us || !f.conf.required_min_rx_us ||
	    !f.conf.detect_mult || !f.detect_mult || !f.desired_min_tx_us || !f.required_min_rx_us)
		return -EBADMSG;
	f.state = (enum bfd_state)state;
	f.remote_state = (enum bfd_state)rstate;
	f.remote_demand = fl & 1;
	f.started = fl & 2;
	f.ever_up = fl & 4;
	f.poll_active = fl & 8;
	f.poll_pending = fl & 16;
	if (f.detect_at != BFD_FSM_NEVER) {
		uint64_t us = bfd_fsm_detect_time_us(&f);
		uint64_t fresh = now + (us + 999) / 1000;
		if (f.detect_at < fresh && us) {
			f.last_rx = now > f.last_rx ? now : f.last_rx;
			detect_arm(&f);
		}
	}
	*fsm = f;
	return 0;
}
