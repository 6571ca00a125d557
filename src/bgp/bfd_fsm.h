/*
 * bfd_fsm.h: one BFD session in Asynchronous mode (RFC 5880 §6), pure.
 *
 * bfd_fsm_step() takes the session, one event and the time, updates the
 * session and returns what to do as data (struct bfd_fsm_actions): packets
 * to send now (already carrying the P and F bits they need), a state change
 * with its diagnostic, and the two deadlines. It never touches a socket and
 * never reads a clock; the glue (bfd_session) parses packets, demultiplexes
 * them (RFC 5881 §3), checks the TTL (RFC 5881 §5) and carries the actions
 * out in order.
 *
 * What it implements:
 *   - the states AdminDown, Down, Init, Up and the three-way handshake (§6.2);
 *   - every reception check of §6.8.6 (the packet-only ones through
 *     bfd_check(), then Your Discriminator against ours), and the reception
 *     procedure in its order;
 *   - timer negotiation (§6.8.2, §6.8.3): we transmit every
 *     max(bfd.DesiredMinTxInterval, bfd.RemoteMinRxInterval); while not Up
 *     DesiredMinTxInterval is at least one second; a change of either of
 *     our intervals starts a Poll Sequence (§6.5), an increase of our TX
 *     interval and a decrease of our RX interval take effect only when the
 *     Final arrives; a received Poll is answered at once with Final;
 *   - the Detection Time (§6.8.4): the remote's Detect Mult times the agreed
 *     remote TX interval, max(bfd.RequiredMinRxInterval, its last Desired Min
 *     TX); expiry takes Init/Up down with diagnostic 1 and forgets the remote
 *     discriminator (§6.8.1);
 *   - jitter (§6.8.7): each interval is 75-100% of the negotiated one,
 *     75-90% when our Detect Mult is 1, from a PRNG seeded by the caller;
 *   - the remote's Demand bit: periodic transmission stops while both are Up
 *     (§6.8.7); we never ask for Demand mode ourselves, nor use Echo;
 *   - AdminDown (§6.8.16): diagnostic 7, packets for one Detection Time more.
 * A new session is AdminDown and silent until BFD_FSM_EV_ADMIN_UP (the
 * glue's "start"): before that no packet is sent or accepted.
 *
 * Time: `now` is milliseconds from any monotonic origin; intervals on the
 * wire are microseconds. Deadlines are whole milliseconds: a jittered interval
 * is drawn between ceil(75%) and floor(100% or 90%) in ms, so it never leaves
 * the §6.8.7 bounds; a Detection Time is rounded up.
 *
 * Ownership: struct bfd_fsm is a value the glue embeds; its fields are
 * read-only outside bfd_fsm.c. An event's packet is only read during the
 * step; the actions own copies of what they carry.
 */
#ifndef ANYCACHE_BGP_BFD_FSM_H
#define ANYCACHE_BGP_BFD_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bgp/bfd_wire.h"

#define BFD_FSM_NEVER UINT64_MAX
/* §6.8.3: DesiredMinTxInterval while not Up is at least one second. */
#define BFD_FSM_SLOW_TX_US 1000000u
#define BFD_FSM_MAX_SEND   2 /* a Final reply and a packet of our own */

struct bfd_fsm_conf {
	uint32_t local_disc;         /* bfd.LocalDiscr: nonzero, unique on the system */
	uint32_t desired_min_tx_us;  /* our TX interval once Up, > 0 */
	uint32_t required_min_rx_us; /* bfd.RequiredMinRxInterval, > 0 */
	uint8_t detect_mult;         /* bfd.DetectMult, 1..255 */
	uint64_t seed;               /* jitter PRNG (tests: fixed) */
};

enum bfd_fsm_event_type {
	BFD_FSM_EV_RX = 1,     /* pkt: parsed, demultiplexed to this session, TTL checked */
	BFD_FSM_EV_TIMER,      /* handle every expired deadline */
	BFD_FSM_EV_ADMIN_UP,   /* enable: AdminDown -> Down, start sending */
	BFD_FSM_EV_ADMIN_DOWN, /* disable: AdminDown, diagnostic 7 */
	BFD_FSM_EV_SET_TIMERS, /* new intervals and Detect Mult in the event */
};

struct bfd_fsm_event {
	enum bfd_fsm_event_type type;
	const struct bfd_pkt *pkt;                      /* RX */
	uint32_t desired_min_tx_us, required_min_rx_us; /* SET_TIMERS: > 0 */
	uint8_t detect_mult;                            /* SET_TIMERS: > 0 */
};

struct bfd_fsm_actions {
	unsigned n_send;                       /* packets to send now, in order */
	struct bfd_pkt send[BFD_FSM_MAX_SEND]; /* complete: bfd_build() them as they are */
	bool state_changed;
	enum bfd_state from, to;
	uint8_t diag; /* bfd.LocalDiag after the change (enum bfd_diag) */
	enum bfd_state
	    remote_state;         /* the remote's state then: AdminDown matters (RFC 5882 §3.2) */
	enum bfd_discard discard; /* RX: why the packet was not used; BFD_OK otherwise */
	uint64_t next_tx;         /* the deadlines after the step, BFD_FSM_NEVER = none */
	uint64_t detect_at;
};

struct bfd_fsm_stats {
	uint64_t rx, rx_discarded, tx, polls, finals_sent, ups, downs;
};

struct bfd_fsm {
	struct bfd_fsm_conf conf;
	enum bfd_state state;        /* bfd.SessionState */
	enum bfd_state remote_state; /* bfd.RemoteSessionState */
	uint32_t remote_disc;        /* bfd.RemoteDiscr, 0 = unknown */
	uint8_t local_diag;          /* bfd.LocalDiag */
	bool remote_demand;          /* bfd.RemoteDemandMode */
	bool started;                /* ADMIN_UP seen once: packets are accepted from then on */
	bool ever_up;

	/* §6.8.1 timers, microseconds. desired/required are what we advertise;
	 * tx_used/rx_used what our own timing uses, which lags an increase of
	 * TX or a decrease of RX until the Poll Sequence ends (§6.8.3). */
	uint32_t desired_min_tx_us;
	uint32_t required_min_rx_us;
	uint32_t tx_used_us, rx_used_us;
	uint32_t remote_min_rx_us;  /* bfd.RemoteMinRxInterval: 1 until a packet says */
	uint32_t remote_min_tx_us;  /* the last Desired Min TX received */
	uint8_t remote_detect_mult; /* 0 = nothing received since the last expiry */
	uint8_t detect_mult;

	bool poll_active;  /* our packets carry P until a Final arrives */
	bool poll_pending; /* a change during a poll: poll again after it */

	uint64_t next_tx, detect_at, admin_tx_until;
	uint64_t last_tx, last_rx;
	uint32_t tx_iv_us; /* the interval next_tx was drawn from */
	uint32_t last_jitter_ms;
	uint64_t rng;
	struct bfd_fsm_stats st;
};

/*
 * In-place restart (bgp_handover.h): the whole session as bytes ("BFS",
 * version 1, every field), so a successor process goes on with the same
 * discriminators, state and timers: the peer sees no change (RFC 5880 §6.8.1
 * keeps bfd.LocalDiscr for the session's life). Returns the length, or
 * -EMSGSIZE.
 */
#define BFD_FSM_EXPORT_MAX 192
int bfd_fsm_export(const struct bfd_fsm *fsm, uint8_t *buf, size_t cap);
/*
 * Restores a session exported by bfd_fsm_export at time now. The Detection
 * Time restarts from now when it would expire sooner: between the export and
 * the successor's first read, packets were taken by the old process or
 * waited in the socket, none were missed by the peer's doing, so a restart
 * must not look like a path failure (it delays a real one by at most one
 * Detection Time). 0, -EBADMSG (malformed, a value out of range, trailing
 * bytes), -EPROTO (another version).
 */
int bfd_fsm_import(struct bfd_fsm *fsm, const uint8_t *buf, size_t len, uint64_t now);

/* 0, or -EINVAL when conf is unusable (discriminator, intervals or mult 0). */
int bfd_fsm_init(struct bfd_fsm *fsm, const struct bfd_fsm_conf *conf);

/*
 * One event at time now; fills *out. Returns 0; -EBADMSG when an RX packet
 * fails a §6.8.6 check (out->discard says which; nothing changed);
 * -EINVAL for an unknown event or a missing/invalid argument. A packet that
 * §6.8.6 discards only after recording the remote's variables (our session
 * is AdminDown) returns 0 with out->discard set.
 */
int bfd_fsm_step(struct bfd_fsm *fsm, const struct bfd_fsm_event *ev, uint64_t now,
                 struct bfd_fsm_actions *out);

/* The earlier of next_tx and detect_at: step a TIMER then. */
uint64_t bfd_fsm_next_deadline(const struct bfd_fsm *fsm);

/* The negotiated TX interval, max(bfd.DesiredMinTxInterval in use,
 * bfd.RemoteMinRxInterval), and the Detection Time (0 = not armed). */
uint32_t bfd_fsm_tx_interval_us(const struct bfd_fsm *fsm);
uint64_t bfd_fsm_detect_time_us(const struct bfd_fsm *fsm);

const char *bfd_fsm_event_name(enum bfd_fsm_event_type e);

#endif
