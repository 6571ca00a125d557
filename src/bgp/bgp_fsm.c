/*
 * bgp_fsm.c: the BGP-4 session state machine (RFC 4271 §8). See bgp_fsm.h for
 * the time, backoff and collision rules the glue relies on.
 */
#include "bgp/bgp_fsm.h"

#include <errno.h>
#include <string.h>

/* splitmix64: tiny, seedable with any value (0 included), good enough for jitter. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The current backoff delay with jitter of -25%..0 (RFC 4271 §10). */
static uint32_t backoff_delay(struct bgp_fsm *fsm)
{
	uint64_t r = fsm->retry_ms;
	uint64_t cut = r * (rng_next(&fsm->rng) % 2501) / 10000; /* 0..25.00% */
	fsm->last_delay_ms = (uint32_t)(r - cut);
	return fsm->last_delay_ms;
}

/*
 * A failure doubles the backoff up to the cap; leaving an Established session
 * that stayed up BGP_FSM_STABLE_MS starts the sequence over instead.
 */
static void backoff_failed(struct bgp_fsm *fsm, uint64_t now, bool was_established)
{
	if (was_established && now - fsm->established_at >= BGP_FSM_STABLE_MS) {
		fsm->retry_ms = fsm->conf.connect_retry_ms;
		return;
	}
	uint64_t r = (uint64_t)fsm->retry_ms * 2;
	fsm->retry_ms =
	    r > fsm->conf.connect_retry_max_ms ? fsm->conf.connect_retry_max_ms : (uint32_t)r;
}

static void push(struct bgp_fsm_actions *out, enum bgp_fsm_action_type a)
{
	/* BGP_FSM_MAX_ACTIONS exceeds the longest list any transition makes. */
	if (out->n < BGP_FSM_MAX_ACTIONS)
		out->act[out->n++] = a;
}

static void notify(struct bgp_fsm *fsm, struct bgp_fsm_actions *out, uint8_t code, uint8_t subcode,
                   const uint8_t *data, size_t len)
{
	if (len > BGP_FSM_NOTIF_DATA_MAX)
		len = BGP_FSM_NOTIF_DATA_MAX;
	out->notif.code = code;
	out->notif.subcode = subcode;
	out->notif.len = len;
	if (len)
		memcpy(out->notif.data, data, len);
	fsm->last_code = code;
	fsm->last_subcode = subcode;
	fsm->last_error_received = false;
	push(out, BGP_FSM_ACT_SEND_NOTIFICATION);
}

static void timers_stop(struct bgp_fsm *fsm)
{
	fsm->connect_retry_at = BGP_FSM_NEVER;
	fsm->hold_at = BGP_FSM_NEVER;
	fsm->keepalive_at = BGP_FSM_NEVER;
	fsm->idle_hold_at = BGP_FSM_NEVER;
}

/* Start (or restart) a session from Idle: ManualStart, AutomaticStart, IdleHold. */
static void start(struct bgp_fsm *fsm, uint64_t now, struct bgp_fsm_actions *out)
{
	timers_stop(fsm);
	if (fsm->conf.passive) {
		fsm->state = BGP_FSM_ACTIVE;
		return;
	}
	push(out, BGP_FSM_ACT_CONNECT);
	fsm->connect_retry_at = now + backoff_delay(fsm);
	fsm->state = BGP_FSM_CONNECT;
}

/*
 * The session (or its attempt) failed: the caller has queued any NOTIFICATION.
 * Drop the connection, report DOWN if it was Established, go Idle and arm the
 * IdleHold timer so the FSM restarts itself after the backoff (§8.1.1).
 */
static void session_fail(struct bgp_fsm *fsm, uint64_t now, struct bgp_fsm_actions *out)
{
	bool was_established = fsm->state == BGP_FSM_ESTABLISHED;

	push(out, BGP_FSM_ACT_CLOSE);
	if (was_established) {
		push(out, BGP_FSM_ACT_DOWN);
		fsm->flaps++;
	}
	backoff_failed(fsm, now, was_established);
	timers_stop(fsm);
	fsm->state = BGP_FSM_IDLE;
	if (fsm->admin_up)
		fsm->idle_hold_at = now + backoff_delay(fsm);
}

/* The TCP connection is up (either direction): send OPEN, wait for the peer's. */
static void connection_up(struct bgp_fsm *fsm, uint64_t now, struct bgp_fsm_actions *out)
{
	timers_stop(fsm);
	push(out, BGP_FSM_ACT_SEND_OPEN);
	fsm->hold_at = now + BGP_FSM_OPENSENT_HOLD_MS; /* §8.2.2 */
	fsm->state = BGP_FSM_OPENSENT;
}

/* RFC 6608: an unexpected message is an FSM error whose data is its type. */
static void fsm_error(struct bgp_fsm *fsm, uint64_t now, struct bgp_fsm_actions *out,
                      uint8_t msg_type)
{
	uint8_t sub = BGP_FSM_ERR_FSM_UNSPECIFIC;

	switch (fsm->state) {
	case BGP_FSM_OPENSENT:
		sub = BGP_FSM_ERR_FSM_OPENSENT;
		break;
	case BGP_FSM_OPENCONFIRM:
		sub = BGP_FSM_ERR_FSM_OPENCONFIRM;
		break;
	case BGP_FSM_ESTABLISHED:
		sub = BGP_FSM_ERR_FSM_ESTABLISHED;
		break;
	default:
		break;
	}
	notify(fsm, out, BGP_FSM_ERR_FSM, sub, &msg_type, 1);
	session_fail(fsm, now, out);
}

static uint8_t event_msg_type(enum bgp_fsm_event_type t)
{
	switch (t) {
	case BGP_FSM_EV_OPEN_RECEIVED:
		return BGP_FSM_MSG_OPEN;
	case BGP_FSM_EV_UPDATE_RECEIVED:
		return BGP_FSM_MSG_UPDATE;
	case BGP_FSM_EV_KEEPALIVE_RECEIVED:
		return BGP_FSM_MSG_KEEPALIVE;
	case BGP_FSM_EV_ROUTE_REFRESH_RECEIVED:
		return BGP_FSM_MSG_ROUTE_REFRESH;
	default:
		return 0;
	}
}

/*
 * RFC 4271 §6.2, checked in the order the section lists them. Returns 0 when
 * acceptable, else the OPEN Message Error subcode, with its data in data and len.
 */
static uint8_t open_check(const struct bgp_fsm *fsm, const struct bgp_fsm_open *o, uint8_t data[2],
                          size_t *len)
{
	*len = 0;
	if (o->version != 4) {
		/* The largest version we support, as 2 octets. */
		data[0] = 0;
		data[1] = 4;
		*len = 2;
		return BGP_FSM_ERR_OPEN_BAD_VERSION;
	}
	/* peer_as is the AS4 capability value when present (RFC 6793 §4.1);
	 * without it a configured AS above 65535 can never match. */
	if (o->peer_as != fsm->conf.peer_as)
		return BGP_FSM_ERR_OPEN_BAD_PEER_AS;
	if (o->hold_time == 1 || o->hold_time == 2)
		return BGP_FSM_ERR_OPEN_BAD_HOLD_TIME;
	/* RFC 6286 §2.2: nonzero, and unique within the AS only: an eBGP peer may
	 * share our identifier, an iBGP peer may not. */
	if (o->bgp_id == 0)
		return BGP_FSM_ERR_OPEN_BAD_BGP_ID;
	if (fsm->conf.local_as == fsm->conf.peer_as && o->bgp_id == fsm->conf.bgp_id)
		return BGP_FSM_ERR_OPEN_BAD_BGP_ID;
	return 0;
}

static void open_received(struct bgp_fsm *fsm, const struct bgp_fsm_open *o, uint64_t now,
                          struct bgp_fsm_actions *out)
{
	uint8_t data[2];
	size_t len;
	uint8_t sub = open_check(fsm, o, data, &len);

	if (sub) {
		notify(fsm, out, BGP_FSM_ERR_OPEN, sub, data, len);
		session_fail(fsm, now, out);
		return;
	}
	/* §4.2: the smaller of ours and the peer's; 0 turns keepalives off. */
	fsm->hold_time = o->hold_time < fsm->conf.hold_time ? o->hold_time : fsm->conf.hold_time;
	fsm->keepalive_ms = (uint32_t)fsm->hold_time * 1000 / 3; /* §10: one third */
	fsm->peer_bgp_id = o->bgp_id;
	fsm->peer_as = o->peer_as;
	fsm->peer_as4 = o->cap_as4;
	/* RFC 4760 §8: a peer without any multiprotocol capability speaks IPv4
	 * unicast only; one that lists families gets exactly those. */
	fsm->afi_ipv4 = o->cap_mp_ipv4 || !o->cap_mp_ipv6;
	fsm->afi_ipv6 = o->cap_mp_ipv6;
	fsm->route_refresh = o->cap_route_refresh;

	timers_stop(fsm);
	push(out, BGP_FSM_ACT_SEND_KEEPALIVE);
	if (fsm->hold_time) {
		fsm->hold_at = now + (uint64_t)fsm->hold_time * 1000;
		fsm->keepalive_at = now + fsm->keepalive_ms;
	}
	fsm->state = BGP_FSM_OPENCONFIRM;
}

static void hold_restart(struct bgp_fsm *fsm, uint64_t now)
{
	if (fsm->hold_time)
		fsm->hold_at = now + (uint64_t)fsm->hold_time * 1000;
}

/* RFC 9003: Cease/Administrative Shutdown data is a length octet and UTF-8. */
static void shutdown_notify(struct bgp_fsm *fsm, const struct bgp_fsm_event *ev,
                            struct bgp_fsm_actions *out)
{
	uint8_t buf[1 + BGP_FSM_SHUTDOWN_MAX];
	size_t n = ev->shutdown ? ev->shutdown_len : 0;

	if (ev->subcode && ev->subcode != BGP_FSM_ERR_CEASE_ADMIN_SHUTDOWN) {
		/* RFC 4486 §4: another Cease reason (a reload removed or changed
		 * the peer); its data is not RFC 9003 text, so none is sent. */
		notify(fsm, out, BGP_FSM_ERR_CEASE, ev->subcode, NULL, 0);
		return;
	}
	if (!ev->shutdown) {
		notify(fsm, out, BGP_FSM_ERR_CEASE, BGP_FSM_ERR_CEASE_ADMIN_SHUTDOWN, NULL, 0);
		return;
	}
	if (n > BGP_FSM_SHUTDOWN_MAX) {
		n = BGP_FSM_SHUTDOWN_MAX;
		/* Do not cut a UTF-8 sequence: back off over continuation octets. */
		while (n > 0 && ((uint8_t)ev->shutdown[n] & 0xc0) == 0x80)
			n--;
	}
	buf[0] = (uint8_t)n;
	memcpy(buf + 1, ev->shutdown, n);
	notify(fsm, out, BGP_FSM_ERR_CEASE, BGP_FSM_ERR_CEASE_ADMIN_SHUTDOWN, buf, n + 1);
}

static void manual_stop(struct bgp_fsm *fsm, const struct bgp_fsm_event *ev,
                        struct bgp_fsm_actions *out)
{
	fsm->admin_up = false;
	fsm->retry_ms = fsm->conf.connect_retry_ms; /* an operator action: start over */
	switch (fsm->state) {
	case BGP_FSM_IDLE:
		break;
	case BGP_FSM_CONNECT:
		push(out, BGP_FSM_ACT_CLOSE); /* abort the connect in progress */
		break;
	case BGP_FSM_ACTIVE:
		break;
	case BGP_FSM_OPENSENT:
	case BGP_FSM_OPENCONFIRM:
		shutdown_notify(fsm, ev, out);
		push(out, BGP_FSM_ACT_CLOSE);
		break;
	case BGP_FSM_ESTABLISHED:
		shutdown_notify(fsm, ev, out);
		push(out, BGP_FSM_ACT_CLOSE);
		push(out, BGP_FSM_ACT_DOWN);
		fsm->flaps++;
		break;
	}
	timers_stop(fsm);
	fsm->state = BGP_FSM_IDLE;
}

/* Tick: every expired deadline, the session-killing one first. */
static void tick(struct bgp_fsm *fsm, uint64_t now, struct bgp_fsm_actions *out)
{
	if (fsm->hold_at <= now) {
		/* §6.5: Hold Timer Expired. Armed only in OpenSent and later. */
		notify(fsm, out, BGP_FSM_ERR_HOLD_TIMER, 0, NULL, 0);
		session_fail(fsm, now, out);
		return;
	}
	if (fsm->keepalive_at <= now) {
		push(out, BGP_FSM_ACT_SEND_KEEPALIVE);
		fsm->keepalive_at = now + fsm->keepalive_ms;
	}
	if (fsm->connect_retry_at <= now) {
		if (fsm->state == BGP_FSM_CONNECT) {
			/* §8.2.2 Connect: the attempt hung; drop it and try again. */
			push(out, BGP_FSM_ACT_CLOSE);
			backoff_failed(fsm, now, false);
		}
		push(out, BGP_FSM_ACT_CONNECT);
		fsm->connect_retry_at = now + backoff_delay(fsm);
		fsm->state = BGP_FSM_CONNECT;
	}
	if (fsm->idle_hold_at <= now) {
		fsm->idle_hold_at = BGP_FSM_NEVER;
		if (fsm->admin_up)
			start(fsm, now, out);
	}
}

static bool event_known(enum bgp_fsm_event_type t)
{
	return t >= BGP_FSM_EV_MANUAL_START && t <= BGP_FSM_EV_COLLISION_DUMP;
}

int bgp_fsm_init(struct bgp_fsm *fsm, const struct bgp_fsm_conf *conf)
{
	if (!conf || conf->bgp_id == 0 || conf->hold_time == 1 || conf->hold_time == 2)
		return -EINVAL;
	memset(fsm, 0, sizeof(*fsm));
	fsm->conf = *conf;
	if (!fsm->conf.connect_retry_ms)
		fsm->conf.connect_retry_ms = BGP_FSM_CONNECT_RETRY_DEFAULT_MS;
	if (!fsm->conf.connect_retry_max_ms)
		fsm->conf.connect_retry_max_ms = BGP_FSM_CONNECT_RETRY_MAX_DEFAULT_MS;
	if (fsm->conf.connect_retry_max_ms < fsm->conf.connect_retry_ms)
		fsm->conf.connect_retry_max_ms = fsm->conf.connect_retry_ms;
	fsm->state = BGP_FSM_IDLE;
	fsm->retry_ms = fsm->conf.connect_retry_ms;
	fsm->rng = conf->seed;
	timers_stop(fsm);
	return 0;
}

void bgp_fsm_export(const struct bgp_fsm *fsm, struct bgp_fsm_session *out)
{
	*out = (struct bgp_fsm_session){
	    .hold_time = fsm->hold_time,
	    .keepalive_ms = fsm->keepalive_ms,
	    .peer_bgp_id = fsm->peer_bgp_id,
	    .peer_as = fsm->peer_as,
	    .peer_as4 = fsm->peer_as4,
	    .afi_ipv4 = fsm->afi_ipv4,
	    .afi_ipv6 = fsm->afi_ipv6,
	    .route_refresh = fsm->route_refresh,
	    .hold_at = fsm->hold_at,
	    .keepalive_at = fsm->keepalive_at,
	    .established_at = fsm->established_at,
	    .flaps = fsm->flaps,
	};
}

int bgp_fsm_import(struct bgp_fsm *fsm, const struct bgp_fsm_session *in)
{
	bool timers = in->hold_at != BGP_FSM_NEVER || in->keepalive_at != BGP_FSM_NEVER;

	if (fsm->state != BGP_FSM_IDLE || in->hold_time == 1 || in->hold_time == 2 ||
	    in->peer_bgp_id == 0 || (in->hold_time == 0) != (in->keepalive_ms == 0) ||
	    (in->hold_time == 0 && timers) ||
	    (in->hold_time != 0 &&
	     (in->hold_at == BGP_FSM_NEVER || in->keepalive_at == BGP_FSM_NEVER)))
		return -EINVAL;
	timers_stop(fsm);
	fsm->state = BGP_FSM_ESTABLISHED;
	fsm->admin_up = true;
	fsm->hold_time = in->hold_time;
	fsm->keepalive_ms = in->keepalive_ms;
	fsm->peer_bgp_id = in->peer_bgp_id;
	fsm->peer_as = in->peer_as;
	fsm->peer_as4 = in->peer_as4;
	fsm->afi_ipv4 = in->afi_ipv4;
	fsm->afi_ipv6 = in->afi_ipv6;
	fsm->route_refresh = in->route_refresh;
	fsm->hold_at = in->hold_at;
	fsm->keepalive_at = in->keepalive_at;
	fsm->established_at = in->established_at;
	fsm->flaps = in->flaps;
	return 0;
}

int bgp_fsm_step(struct bgp_fsm *fsm, const struct bgp_fsm_event *ev, uint64_t now,
                 struct bgp_fsm_actions *out)
{
	out->n = 0;
	if (!event_known(ev->type))
		return -EINVAL;

	/* State-independent events first. */
	switch (ev->type) {
	case BGP_FSM_EV_MANUAL_STOP:
		manual_stop(fsm, ev, out);
		return 0;
	case BGP_FSM_EV_TICK:
		tick(fsm, now, out);
		return 0;
	case BGP_FSM_EV_NOTIFICATION_RECEIVED:
		if (fsm->state == BGP_FSM_IDLE)
			return 0;
		fsm->last_code = ev->code;
		fsm->last_subcode = ev->subcode;
		fsm->last_error_received = true;
		session_fail(fsm, now, out);
		return 0;
	default:
		break;
	}

	switch (fsm->state) {
	case BGP_FSM_IDLE:
		switch (ev->type) {
		case BGP_FSM_EV_MANUAL_START:
			fsm->admin_up = true;
			start(fsm, now, out);
			break;
		case BGP_FSM_EV_AUTOMATIC_START:
			if (fsm->admin_up)
				start(fsm, now, out);
			break;
		case BGP_FSM_EV_TCP_CONNECTION_ACCEPTED:
			/*
			 * Administratively down: refuse (§8.2.2). Started but idle
			 * after a failure: the backoff paces OUR connects; a peer
			 * that reconnects (a restarted router) is taken at once, as
			 * in Active, or its routes would wait out our backoff.
			 */
			if (fsm->admin_up)
				connection_up(fsm, now, out);
			else
				push(out, BGP_FSM_ACT_CLOSE);
			break;
		case BGP_FSM_EV_TCP_CONNECTION_CONFIRMED:
			return -EPROTO;
		default:
			break; /* everything else is ignored in Idle */
		}
		break;

	case BGP_FSM_CONNECT:
	case BGP_FSM_ACTIVE:
		switch (ev->type) {
		case BGP_FSM_EV_MANUAL_START:
		case BGP_FSM_EV_AUTOMATIC_START:
			break;
		case BGP_FSM_EV_TCP_CONNECTION_CONFIRMED:
			if (fsm->state != BGP_FSM_CONNECT)
				return -EPROTO;
			connection_up(fsm, now, out);
			break;
		case BGP_FSM_EV_TCP_CONNECTION_ACCEPTED:
			connection_up(fsm, now, out);
			break;
		case BGP_FSM_EV_TCP_CONNECTION_FAILS:
			/* Like OpenBGPD: wait in Active for the ConnectRetry deadline
			 * armed when the attempt started. */
			if (fsm->state == BGP_FSM_CONNECT) {
				push(out, BGP_FSM_ACT_CLOSE);
				backoff_failed(fsm, now, false);
				fsm->state = BGP_FSM_ACTIVE;
			}
			break;
		default:
			/* A message or error without a BGP connection (§8.2.2
			 * Connect/Active "any other event"): drop and go Idle. */
			session_fail(fsm, now, out);
			break;
		}
		break;

	case BGP_FSM_OPENSENT:
		switch (ev->type) {
		case BGP_FSM_EV_MANUAL_START:
		case BGP_FSM_EV_AUTOMATIC_START:
			break;
		case BGP_FSM_EV_TCP_CONNECTION_CONFIRMED:
		case BGP_FSM_EV_TCP_CONNECTION_ACCEPTED:
			return -EPROTO; /* a second connection: see the collision rules */
		case BGP_FSM_EV_TCP_CONNECTION_FAILS:
			/* §8.2.2 OpenSent: close, restart ConnectRetry, go Active. */
			push(out, BGP_FSM_ACT_CLOSE);
			backoff_failed(fsm, now, false);
			timers_stop(fsm);
			if (!fsm->conf.passive)
				fsm->connect_retry_at = now + backoff_delay(fsm);
			fsm->state = BGP_FSM_ACTIVE;
			break;
		case BGP_FSM_EV_OPEN_RECEIVED:
			open_received(fsm, &ev->open, now, out);
			break;
		case BGP_FSM_EV_KEEPALIVE_RECEIVED:
		case BGP_FSM_EV_UPDATE_RECEIVED:
		case BGP_FSM_EV_ROUTE_REFRESH_RECEIVED:
			fsm_error(fsm, now, out, event_msg_type(ev->type));
			break;
		case BGP_FSM_EV_MESSAGE_ERROR:
			notify(fsm, out, ev->code, ev->subcode, ev->data, ev->data_len);
			session_fail(fsm, now, out);
			break;
		case BGP_FSM_EV_COLLISION_DUMP:
			notify(fsm, out, BGP_FSM_ERR_CEASE, BGP_FSM_ERR_CEASE_COLLISION, NULL, 0);
			push(out, BGP_FSM_ACT_CLOSE);
			timers_stop(fsm);
			fsm->state = BGP_FSM_IDLE;
			break;
		default:
			break;
		}
		break;

	case BGP_FSM_OPENCONFIRM:
	case BGP_FSM_ESTABLISHED:
		switch (ev->type) {
		case BGP_FSM_EV_MANUAL_START:
		case BGP_FSM_EV_AUTOMATIC_START:
			break;
		case BGP_FSM_EV_TCP_CONNECTION_CONFIRMED:
		case BGP_FSM_EV_TCP_CONNECTION_ACCEPTED:
			return -EPROTO;
		case BGP_FSM_EV_TCP_CONNECTION_FAILS:
			session_fail(fsm, now, out);
			break;
		case BGP_FSM_EV_KEEPALIVE_RECEIVED:
			hold_restart(fsm, now); /* §8.2.2 */
			if (fsm->state == BGP_FSM_OPENCONFIRM) {
				fsm->state = BGP_FSM_ESTABLISHED;
				fsm->established_at = now;
				push(out, BGP_FSM_ACT_ESTABLISHED);
			}
			break;
		case BGP_FSM_EV_UPDATE_RECEIVED:
			if (fsm->state == BGP_FSM_OPENCONFIRM) {
				fsm_error(fsm, now, out, BGP_FSM_MSG_UPDATE);
				break;
			}
			hold_restart(fsm, now);
			break;
		case BGP_FSM_EV_ROUTE_REFRESH_RECEIVED:
			if (fsm->state == BGP_FSM_OPENCONFIRM) {
				fsm_error(fsm, now, out, BGP_FSM_MSG_ROUTE_REFRESH);
				break;
			}
			/* RFC 2918 §4: re-advertise the whole Adj-RIB-Out. We always
			 * offer the capability, so any peer may ask. */
			push(out, BGP_FSM_ACT_RESEND_ALL);
			break;
		case BGP_FSM_EV_OPEN_RECEIVED:
			/* Collisions are the glue's to resolve before this point. */
			fsm_error(fsm, now, out, BGP_FSM_MSG_OPEN);
			break;
		case BGP_FSM_EV_MESSAGE_ERROR:
			notify(fsm, out, ev->code, ev->subcode, ev->data, ev->data_len);
			session_fail(fsm, now, out);
			break;
		case BGP_FSM_EV_COLLISION_DUMP:
			notify(fsm, out, BGP_FSM_ERR_CEASE, BGP_FSM_ERR_CEASE_COLLISION, NULL, 0);
			push(out, BGP_FSM_ACT_CLOSE);
			if (fsm->state == BGP_FSM_ESTABLISHED) {
				push(out, BGP_FSM_ACT_DOWN);
				fsm->flaps++;
			}
			timers_stop(fsm);
			fsm->state = BGP_FSM_IDLE;
			break;
		default:
			break;
		}
		break;
	}
	return 0;
}

uint64_t bgp_fsm_next_deadline(const struct bgp_fsm *fsm)
{
	uint64_t d = fsm->connect_retry_at;

	if (fsm->hold_at < d)
		d = fsm->hold_at;
	if (fsm->keepalive_at < d)
		d = fsm->keepalive_at;
	if (fsm->idle_hold_at < d)
		d = fsm->idle_hold_at;
	return d;
}

void bgp_fsm_update_sent(struct bgp_fsm *fsm, uint64_t now)
{
	if (fsm->state == BGP_FSM_ESTABLISHED && fsm->keepalive_ms)
		fsm->keepalive_at = now + fsm->keepalive_ms;
}

void bgp_fsm_take_over(struct bgp_fsm *primary, const struct bgp_fsm *spare)
{
	primary->state = spare->state;
	primary->hold_at = spare->hold_at;
	primary->keepalive_at = spare->keepalive_at;
	primary->connect_retry_at = BGP_FSM_NEVER;
	primary->idle_hold_at = BGP_FSM_NEVER;
	primary->established_at = spare->established_at;
	primary->hold_time = spare->hold_time;
	primary->keepalive_ms = spare->keepalive_ms;
	primary->peer_bgp_id = spare->peer_bgp_id;
	primary->peer_as = spare->peer_as;
	primary->peer_as4 = spare->peer_as4;
	primary->afi_ipv4 = spare->afi_ipv4;
	primary->afi_ipv6 = spare->afi_ipv6;
	primary->route_refresh = spare->route_refresh;
}

enum bgp_collision bgp_collision_resolve(uint32_t local_id, uint32_t local_as, uint32_t remote_id,
                                         uint32_t remote_as, bool existing_is_outgoing)
{
	bool close_outgoing;

	if (local_id != remote_id)
		close_outgoing = local_id < remote_id; /* we have the lower id */
	else
		close_outgoing = local_as < remote_as; /* RFC 6286 §2.3 */
	if (local_id == remote_id && local_as == remote_as)
		return BGP_COLLISION_CLOSE_NEW; /* cannot pass open_check; keep what we have */
	return close_outgoing == existing_is_outgoing ? BGP_COLLISION_CLOSE_EXISTING
	                                              : BGP_COLLISION_CLOSE_NEW;
}

const char *bgp_fsm_state_name(enum bgp_fsm_state s)
{
	switch (s) {
	case BGP_FSM_IDLE:
		return "Idle";
	case BGP_FSM_CONNECT:
		return "Connect";
	case BGP_FSM_ACTIVE:
		return "Active";
	case BGP_FSM_OPENSENT:
		return "OpenSent";
	case BGP_FSM_OPENCONFIRM:
		return "OpenConfirm";
	case BGP_FSM_ESTABLISHED:
		return "Established";
	}
	return "?";
}

const char *bgp_fsm_event_name(enum bgp_fsm_event_type e)
{
	switch (e) {
	case BGP_FSM_EV_MANUAL_START:
		return "ManualStart";
	case BGP_FSM_EV_MANUAL_STOP:
		return "ManualStop";
	case BGP_FSM_EV_AUTOMATIC_START:
		return "AutomaticStart";
	case BGP_FSM_EV_TCP_CONNECTION_CONFIRMED:
		return "TcpConnectionConfirmed";
	case BGP_FSM_EV_TCP_CONNECTION_FAILS:
		return "TcpConnectionFails";
	case BGP_FSM_EV_TCP_CONNECTION_ACCEPTED:
		return "TcpConnectionAccepted";
	case BGP_FSM_EV_OPEN_RECEIVED:
		return "OpenReceived";
	case BGP_FSM_EV_KEEPALIVE_RECEIVED:
		return "KeepaliveReceived";
	case BGP_FSM_EV_UPDATE_RECEIVED:
		return "UpdateReceived";
	case BGP_FSM_EV_ROUTE_REFRESH_RECEIVED:
		return "RouteRefreshReceived";
	case BGP_FSM_EV_NOTIFICATION_RECEIVED:
		return "NotificationReceived";
	case BGP_FSM_EV_MESSAGE_ERROR:
		return "MessageError";
	case BGP_FSM_EV_TICK:
		return "Tick";
	case BGP_FSM_EV_COLLISION_DUMP:
		return "CollisionDump";
	}
	return "?";
}

const char *bgp_fsm_action_name(enum bgp_fsm_action_type a)
{
	switch (a) {
	case BGP_FSM_ACT_CONNECT:
		return "CONNECT";
	case BGP_FSM_ACT_CLOSE:
		return "CLOSE";
	case BGP_FSM_ACT_SEND_OPEN:
		return "SEND_OPEN";
	case BGP_FSM_ACT_SEND_KEEPALIVE:
		return "SEND_KEEPALIVE";
	case BGP_FSM_ACT_SEND_NOTIFICATION:
		return "SEND_NOTIFICATION";
	case BGP_FSM_ACT_ESTABLISHED:
		return "ESTABLISHED";
	case BGP_FSM_ACT_DOWN:
		return "DOWN";
	case BGP_FSM_ACT_RESEND_ALL:
		return "RESEND_ALL";
	}
	return "?";
}
