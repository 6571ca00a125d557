/*
 * bgp_fsm.h: the BGP-4 session state machine (RFC 4271 §8), pure.
 *
 * bgp_fsm_step() takes the state, one event and the time, updates the state
 * and returns what to do as data (struct bgp_fsm_actions). It never touches
 * a socket, never reads a clock and never includes the codec: the glue
 * (bgp_session) turns parsed messages and socket results into events and
 * carries the actions out, in array order (a NOTIFICATION is always listed
 * before the CLOSE that follows it).
 *
 * Shape: like OpenBGPD's session.c, one switch on the state with a switch on
 * the event inside. Timers are deadlines in the struct (BGP_FSM_NEVER when not
 * armed).
 *
 * Time and timers: `now` is milliseconds from any monotonic origin. The glue
 * arms one timeout for bgp_fsm_next_deadline() and, when it fires (or at any
 * later time), steps BGP_FSM_EV_TICK. A Tick handles every expired deadline
 * itself, in the order Hold, Keepalive, ConnectRetry, IdleHold, so the glue
 * needs no per-timer events. Only Tick looks at the deadlines: the glue should
 * step a due Tick before delivering a message received at the same moment.
 *
 * Backoff: one delay (retry_ms) serves both the ConnectRetry timer (Connect
 * and Active) and the IdleHold timer (Idle after a failed session, RFC 4271
 * §8.1.1's optional IdleHoldTimer, so a flapping peer is not hammered). Each
 * failure uses the current delay with jitter of -25%..0 (RFC 4271 §10), then
 * doubles it up to connect_retry_max_ms. It returns to connect_retry_ms when a
 * session that stayed Established for BGP_FSM_STABLE_MS goes down, and on
 * ManualStop. When IdleHold expires the FSM performs AutomaticStart itself.
 * Defaults: 5 s initial (BIRD's "connect delay time": the peer is the node's
 * own border router, so a node coming back should announce within seconds),
 * 120 s cap (RFC 4271 §10's suggested ConnectRetryTime: a dead router costs at
 * most one attempt per two minutes).
 *
 * Connection collisions (RFC 4271 §6.8), the design the glue must follow:
 * one struct bgp_fsm per TCP connection, at most two per peer.
 *   - The peer's PRIMARY fsm is configured from the neighbor config and does
 *     the connecting and retrying.
 *   - An incoming connection is handed to the primary (step
 *     TCP_CONNECTION_ACCEPTED) when the primary is in Connect or Active (in
 *     Connect the glue first cancels its own connect() in progress). It is
 *     refused (closed) when the primary is Idle or Established, and when a
 *     spare already exists.
 *   - When the primary is in OpenSent or OpenConfirm, the incoming connection
 *     gets a SPARE fsm: bgp_fsm_init() with the same conf but passive = true,
 *     then MANUAL_START (no actions) and TCP_CONNECTION_ACCEPTED (SEND_OPEN).
 *   - Whenever an OPEN arrives on one connection while the other one's fsm is
 *     in OpenConfirm, call bgp_collision_resolve() with that fsm's peer_bgp_id
 *     (and peer AS, RFC 6286 §2.3). Step BGP_FSM_EV_COLLISION_DUMP on the
 *     loser (Cease 6/7 + CLOSE, Idle, not counted as a failure) and deliver
 *     the OPEN only if its own connection survived. If the other fsm is in
 *     OpenSent, deliver the OPEN normally: detection happens when that one
 *     gets its OPEN. If the other is Established, dump the new one.
 *   - When the primary reaches Established, dump the spare. When the spare
 *     falls back to Active or Idle, discard it.
 *   - When the primary lost, bgp_fsm_take_over(primary, spare) moves the
 *     spare's connection state into the primary (keeping the primary's conf,
 *     backoff and PRNG) and the spare is discarded.
 *
 * Ownership: struct bgp_fsm is a value the glue embeds (no allocation); its
 * fields are read-only outside bgp_fsm.c. An event's data pointers are only
 * read during the step; the actions own copies of everything they carry.
 */
#ifndef ANYCACHE_BGP_BGP_FSM_H
#define ANYCACHE_BGP_BGP_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BGP_FSM_NEVER UINT64_MAX

#define BGP_FSM_CONNECT_RETRY_DEFAULT_MS     5000u
#define BGP_FSM_CONNECT_RETRY_MAX_DEFAULT_MS 120000u
/* RFC 4271 §8.2.2: "a large value" for the hold timer in OpenSent; 4 minutes. */
#define BGP_FSM_OPENSENT_HOLD_MS 240000u
/* An Established session this old resets the backoff when it goes down. */
#define BGP_FSM_STABLE_MS 60000u
/* A NOTIFICATION's data can fill a 4096-octet message: 4096 - 19 - 2. */
#define BGP_FSM_NOTIF_DATA_MAX 4075u
/* RFC 9003 §2: the shutdown communication is at most 255 octets. */
#define BGP_FSM_SHUTDOWN_MAX 255u
#define BGP_FSM_MAX_ACTIONS  6

/* BGP message types (RFC 4271 §4.1, RFC 2918), used as RFC 6608 error data. */
#define BGP_FSM_MSG_OPEN          1
#define BGP_FSM_MSG_UPDATE        2
#define BGP_FSM_MSG_NOTIFICATION  3
#define BGP_FSM_MSG_KEEPALIVE     4
#define BGP_FSM_MSG_ROUTE_REFRESH 5

/* NOTIFICATION codes and the subcodes this FSM sends (RFC 4271 §4.5, 6608, 4486).
 * Prefixed BGP_FSM_ because the FSM must not include the codec (bgp_wire.h
 * has the full set as BGP_ERR_*); the values are the same on the wire. */
#define BGP_FSM_ERR_OPEN                 2
#define BGP_FSM_ERR_OPEN_BAD_VERSION     1
#define BGP_FSM_ERR_OPEN_BAD_PEER_AS     2
#define BGP_FSM_ERR_OPEN_BAD_BGP_ID      3
#define BGP_FSM_ERR_OPEN_BAD_HOLD_TIME   6
#define BGP_FSM_ERR_HOLD_TIMER           4
#define BGP_FSM_ERR_FSM                  5
#define BGP_FSM_ERR_FSM_UNSPECIFIC       0
#define BGP_FSM_ERR_FSM_OPENSENT         1
#define BGP_FSM_ERR_FSM_OPENCONFIRM      2
#define BGP_FSM_ERR_FSM_ESTABLISHED      3
#define BGP_FSM_ERR_CEASE                6
#define BGP_FSM_ERR_CEASE_ADMIN_SHUTDOWN 2
#define BGP_FSM_ERR_CEASE_COLLISION      7

enum bgp_fsm_state {
	BGP_FSM_IDLE = 0,
	BGP_FSM_CONNECT,
	BGP_FSM_ACTIVE,
	BGP_FSM_OPENSENT,
	BGP_FSM_OPENCONFIRM,
	BGP_FSM_ESTABLISHED,
};

enum bgp_fsm_event_type {
	BGP_FSM_EV_MANUAL_START = 1,
	BGP_FSM_EV_MANUAL_STOP, /* optional RFC 9003 text in shutdown */
	BGP_FSM_EV_AUTOMATIC_START,
	BGP_FSM_EV_TCP_CONNECTION_CONFIRMED, /* our connect() completed */
	BGP_FSM_EV_TCP_CONNECTION_FAILS,     /* connect failed, or the connection died */
	BGP_FSM_EV_TCP_CONNECTION_ACCEPTED,  /* incoming connection given to this fsm */
	BGP_FSM_EV_OPEN_RECEIVED,            /* open */
	BGP_FSM_EV_KEEPALIVE_RECEIVED,
	BGP_FSM_EV_UPDATE_RECEIVED, /* a well-formed UPDATE (content is not ours) */
	BGP_FSM_EV_ROUTE_REFRESH_RECEIVED,
	BGP_FSM_EV_NOTIFICATION_RECEIVED,
	BGP_FSM_EV_MESSAGE_ERROR,  /* codec error; notif is what to send */
	BGP_FSM_EV_TICK,           /* check the deadlines */
	BGP_FSM_EV_COLLISION_DUMP, /* lost collision resolution (§6.8) */
};

/* The OPEN fields the FSM checks, already parsed by the codec. */
struct bgp_fsm_open {
	uint8_t version;
	uint32_t peer_as;   /* the 4-octet AS capability's value when present */
	uint16_t hold_time; /* seconds */
	uint32_t bgp_id;    /* host byte order */
	bool cap_as4, cap_mp_ipv4, cap_mp_ipv6, cap_route_refresh;
};

struct bgp_fsm_notification {
	uint8_t code, subcode;
	size_t len;
	uint8_t data[BGP_FSM_NOTIF_DATA_MAX];
};

struct bgp_fsm_event {
	enum bgp_fsm_event_type type;
	struct bgp_fsm_open open; /* OPEN_RECEIVED */
	/* MANUAL_STOP: RFC 9003 text (UTF-8, not NUL-terminated), NULL or 0 = none;
	 * longer than BGP_FSM_SHUTDOWN_MAX is cut at that length. */
	const char *shutdown;
	size_t shutdown_len;
	/* MANUAL_STOP: subcode 0 or 2 = Cease/Administrative Shutdown with the
	 * text above; any other = that Cease subcode without data (RFC 4486:
	 * 3 Peer De-configured, 6 Other Configuration Change).
	 * MESSAGE_ERROR: the NOTIFICATION to send; data longer than
	 * BGP_FSM_NOTIF_DATA_MAX is cut. NOTIFICATION_RECEIVED: what the peer
	 * sent (kept in last_error for logs; data ignored). */
	uint8_t code, subcode;
	const uint8_t *data;
	size_t data_len;
};

enum bgp_fsm_action_type {
	BGP_FSM_ACT_CONNECT = 1, /* start an outgoing TCP connection */
	BGP_FSM_ACT_CLOSE,       /* drop this fsm's TCP connection (or refuse) */
	BGP_FSM_ACT_SEND_OPEN,
	BGP_FSM_ACT_SEND_KEEPALIVE,
	BGP_FSM_ACT_SEND_NOTIFICATION, /* the one in actions.notif */
	BGP_FSM_ACT_ESTABLISHED,       /* send the Adj-RIB-Out, then End-of-RIB */
	BGP_FSM_ACT_DOWN,              /* left Established: bgp_adjout_reset_sent() */
	BGP_FSM_ACT_RESEND_ALL,        /* ROUTE-REFRESH: bgp_adjout_resend_all() */
};

struct bgp_fsm_actions {
	unsigned n;
	enum bgp_fsm_action_type act[BGP_FSM_MAX_ACTIONS];
	struct bgp_fsm_notification notif; /* valid when SEND_NOTIFICATION is listed */
};

struct bgp_fsm_conf {
	uint32_t local_as, peer_as;    /* iBGP when equal */
	uint32_t bgp_id;               /* ours, host byte order, nonzero */
	uint16_t hold_time;            /* seconds we offer: 0 or >= 3 */
	bool passive;                  /* never connect, only accept */
	uint32_t connect_retry_ms;     /* initial backoff; 0 = default */
	uint32_t connect_retry_max_ms; /* backoff cap; 0 = default */
	uint64_t seed;                 /* jitter PRNG seed (tests: fixed) */
};

struct bgp_fsm {
	struct bgp_fsm_conf conf;
	enum bgp_fsm_state state;
	bool admin_up; /* ManualStart seen, no ManualStop since */

	uint64_t connect_retry_at; /* deadlines, ms; BGP_FSM_NEVER = not armed */
	uint64_t hold_at;
	uint64_t keepalive_at;
	uint64_t idle_hold_at;

	uint32_t retry_ms;      /* next backoff delay before jitter */
	uint32_t last_delay_ms; /* last jittered delay used (for logs/tests) */
	uint64_t rng;
	uint64_t established_at;
	uint32_t flaps; /* times Established was left */

	/* Negotiated when the OPEN was accepted (valid from OpenConfirm on). */
	uint16_t hold_time;    /* min(ours, peer's) seconds; 0 = no timers */
	uint32_t keepalive_ms; /* hold/3 (RFC 4271 §10); 0 = none */
	uint32_t peer_bgp_id;
	uint32_t peer_as;
	bool peer_as4, afi_ipv4, afi_ipv6, route_refresh;

	/* Last NOTIFICATION sent or received, for logs. */
	uint8_t last_code, last_subcode;
	bool last_error_received;
};

/* Returns 0, or -EINVAL if conf is unusable (bgp_id 0, hold 1 or 2). */
int bgp_fsm_init(struct bgp_fsm *fsm, const struct bgp_fsm_conf *conf);

/*
 * One event at time now. Fills *out (out->n actions, in order). Returns 0;
 * -EINVAL for an unknown event type; -EPROTO for a TCP connection this fsm
 * cannot own (CONFIRMED outside Connect, ACCEPTED in OpenSent or later): the
 * glue closes that socket itself. On error the state is unchanged, no actions.
 *
 * AutomaticStart restarts an enabled (ManualStart, no ManualStop) peer from
 * Idle before its IdleHold expires; it is ignored otherwise.
 */
int bgp_fsm_step(struct bgp_fsm *fsm, const struct bgp_fsm_event *ev, uint64_t now,
                 struct bgp_fsm_actions *out);

/* The earliest armed deadline, or BGP_FSM_NEVER: step a Tick at that time. */
uint64_t bgp_fsm_next_deadline(const struct bgp_fsm *fsm);

/* The glue sent an UPDATE: restart the KeepaliveTimer (RFC 4271 §8.2.2). */
void bgp_fsm_update_sent(struct bgp_fsm *fsm, uint64_t now);

/*
 * An Established session's state, for an in-place restart (bgp_handover.h):
 * what was negotiated and the running deadlines (absolute CLOCK_MONOTONIC
 * ms, which is system-wide, so they stay valid in a successor process).
 */
struct bgp_fsm_session {
	uint16_t hold_time;
	uint32_t keepalive_ms;
	uint32_t peer_bgp_id, peer_as;
	bool peer_as4, afi_ipv4, afi_ipv6, route_refresh;
	uint64_t hold_at, keepalive_at, established_at;
	uint32_t flaps;
};

/* fsm must be Established: fills *out. */
void bgp_fsm_export(const struct bgp_fsm *fsm, struct bgp_fsm_session *out);
/*
 * fsm (fresh from bgp_fsm_init, Idle) takes over an Established session
 * another process negotiated: state Established, ManualStart seen (admin up),
 * the deadlines as given. -EINVAL for a state that could not have come from
 * an Established fsm (hold time 1 or 2, timers armed with no hold time or
 * missing with one, a peer id of 0); fsm is then unchanged.
 */
int bgp_fsm_import(struct bgp_fsm *fsm, const struct bgp_fsm_session *in);

/* Collision: move spare's connection state into primary (see the top). */
void bgp_fsm_take_over(struct bgp_fsm *primary, const struct bgp_fsm *spare);

enum bgp_collision {
	BGP_COLLISION_CLOSE_EXISTING = 1,
	BGP_COLLISION_CLOSE_NEW,
};

/*
 * RFC 4271 §6.8: close the connection initiated by the speaker with the lower
 * BGP Identifier (compared as host-order unsigned integers). With equal
 * identifiers (legal between ASes, RFC 6286 §2.3) the connection initiated by
 * the speaker with the larger AS number is kept. existing_is_outgoing: the
 * connection already in OpenConfirm is the one we initiated.
 */
enum bgp_collision bgp_collision_resolve(uint32_t local_id, uint32_t local_as, uint32_t remote_id,
                                         uint32_t remote_as, bool existing_is_outgoing);

const char *bgp_fsm_state_name(enum bgp_fsm_state s);
const char *bgp_fsm_event_name(enum bgp_fsm_event_type e);
const char *bgp_fsm_action_name(enum bgp_fsm_action_type a);

#endif
