/*
 * Unit tests for bgp/bgp_session.c, the glue: a session on a real loop, its
 * connection one end of a socketpair, the test writing the peer's bytes into
 * the other end and reading what the session sends back. Each run of the
 * loop is bounded by a timer that stops it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bgp/bgp_session.h"
#include "core/loop.h"
#include "core/timer.h"
#include "core/wire.h"

static void stop_loop(struct timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	loop_stop(arg);
}

/* Runs the loop for ms milliseconds. */
static void run_for(struct loop *l, unsigned ms)
{
	struct timer t;
	timer_init(&t, stop_loop, l);
	loop_timer_arm_in(l, &t, ms);
	cr_assert_eq(loop_run(l), 0);
	loop_timer_cancel(l, &t);
}

struct rig {
	struct loop *l;
	struct bgp_session *s;
	int peer; /* our end of the socketpair */
};

/* A passive eBGP session (AS 65000 to 65001, hold 3 s) that took one connection. */
static void rig_up(struct rig *r)
{
	struct bgp_session_conf c;
	int sv[2];

	memset(&c, 0, sizeof(c));
	c.nb.address.family = AF_INET;
	c.nb.address.addr[0] = 127;
	c.nb.address.addr[3] = 1;
	c.nb.address.port = 179;
	c.nb.asn = 65001;
	c.nb.passive = true;
	c.nb.hold_time_s = 3;
	c.local_as = 65000;
	c.bgp_id = 0x7f000002;
	cr_assert_eq(loop_global_init(), 0);
	cr_assert_eq(loop_new(NULL, &r->l), 0);
	cr_assert_eq(bgp_session_new(r->l, &c, &r->s), 0);
	bgp_session_start(r->s);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	bgp_session_accept(r->s, sv[0]);
	r->peer = sv[1];
	fcntl(r->peer, F_SETFL, O_NONBLOCK);
}

static void rig_down(struct rig *r)
{
	loop_free(r->l);
	bgp_session_free(r->s);
	close(r->peer);
}

/* Everything the session sent so far, split into messages by their headers. */
struct sent {
	uint8_t buf[8192];
	size_t len;
	size_t n;
	size_t off[16];
};

static void read_sent(struct rig *r, struct sent *o)
{
	ssize_t k;

	memset(o, 0, sizeof(*o));
	while ((k = read(r->peer, o->buf + o->len, sizeof(o->buf) - o->len)) > 0)
		o->len += (size_t)k;
	for (size_t off = 0; off + BGP_HDR_LEN <= o->len && o->n < 16;) {
		size_t ml = (size_t)o->buf[off + 16] << 8 | o->buf[off + 17];
		cr_assert(ml >= BGP_HDR_LEN && off + ml <= o->len, "bad framing in output");
		o->off[o->n++] = off;
		off += ml;
	}
}

static uint8_t type_of(const struct sent *o, size_t i)
{
	return o->buf[o->off[i] + 18];
}

static size_t our_open(uint8_t *b, size_t cap)
{
	struct bgp_open_cfg oc = {.asn = 65001,
	                          .hold = 3,
	                          .bgp_id = 0x7f000001,
	                          .fam = {true, true},
	                          .route_refresh = true,
	                          .as4 = true};
	struct wbuf w = wbuf_init(b, cap);
	cr_assert_gt(bgp_open_build(&w, &oc), 0);
	return w.off;
}

/*
 * RFC 6608 §3 (RFC 4271 §8.2.2 OpenSent/OpenConfirm): a ROUTE-REFRESH before
 * Established is an unexpected message, answered with 5/1 or 5/2 and the
 * message type as data. The glue used to check the family against the
 * negotiated capabilities first; in OpenSent there are none yet, so it
 * dropped the message silently and the session sat in OpenSent.
 */
static void rr_before_established(bool send_open, uint8_t subcode)
{
	struct rig r;
	struct sent o;
	uint8_t b[256];
	size_t n = 0;

	rig_up(&r);
	if (send_open)
		n = our_open(b, sizeof(b));
	struct wbuf w = wbuf_init(b + n, sizeof(b) - n);
	cr_assert_gt(bgp_route_refresh_build(&w, BGP_AFI_IPV4, BGP_SAFI_UNICAST, BGP_RR_REQUEST),
	             0);
	n += w.off;
	cr_assert_eq(write(r.peer, b, n), (ssize_t)n);
	run_for(r.l, 200);
	read_sent(&r, &o);
	/* OPEN, (KEEPALIVE in OpenConfirm,) NOTIFICATION. */
	cr_assert_eq(o.n, send_open ? 3u : 2u, "%zu messages", o.n);
	cr_assert_eq(type_of(&o, 0), BGP_MSG_OPEN);
	const uint8_t *nt = o.buf + o.off[o.n - 1];
	cr_assert_eq(nt[18], BGP_MSG_NOTIFICATION);
	cr_assert_eq(nt[16] << 8 | nt[17], 22);
	cr_assert_eq(nt[19], BGP_ERR_FSM);
	cr_assert_eq(nt[20], subcode);
	cr_assert_eq(nt[21], BGP_MSG_ROUTE_REFRESH);
	cr_assert_neq(bgp_session_state(r.s), BGP_FSM_OPENSENT);
	cr_assert_neq(bgp_session_state(r.s), BGP_FSM_OPENCONFIRM);
	rig_down(&r);
}

Test(bgp_session, route_refresh_in_opensent_is_fsm_error)
{
	rr_before_established(false, 1);
}

Test(bgp_session, route_refresh_in_openconfirm_is_fsm_error)
{
	rr_before_established(true, 2);
}

/* In Established a refresh for a family never negotiated is ignored (RFC 2918 §4). */
Test(bgp_session, route_refresh_unknown_family_ignored_in_established)
{
	struct rig r;
	struct sent o;
	uint8_t b[256];
	size_t n = our_open(b, sizeof(b));

	rig_up(&r);
	struct wbuf w = wbuf_init(b + n, sizeof(b) - n);
	cr_assert_gt(bgp_keepalive_build(&w), 0);
	cr_assert_gt(bgp_route_refresh_build(&w, 25, 65, BGP_RR_REQUEST), 0);
	n += w.off;
	cr_assert_eq(write(r.peer, b, n), (ssize_t)n);
	run_for(r.l, 200);
	read_sent(&r, &o);
	cr_assert_eq(bgp_session_state(r.s), BGP_FSM_ESTABLISHED);
	for (size_t i = 0; i < o.n; i++)
		cr_assert_neq(type_of(&o, i), BGP_MSG_NOTIFICATION);
	rig_down(&r);
}

/*
 * RFC 5882 §4.3: BFD Down takes an Established session down at once: a
 * NOTIFICATION Cease/BFD Down (RFC 9384), the connection closed, the FSM
 * Idle (its IdleHold timer then restarts it).
 */
Test(bgp_session, bfd_down_closes_an_established_session_with_cease_10)
{
	struct rig r;
	struct sent o;
	uint8_t b[256];
	size_t n = our_open(b, sizeof(b));

	rig_up(&r);
	struct wbuf w = wbuf_init(b + n, sizeof(b) - n);
	cr_assert_gt(bgp_keepalive_build(&w), 0);
	n += w.off;
	cr_assert_eq(write(r.peer, b, n), (ssize_t)n);
	run_for(r.l, 100);
	cr_assert_eq(bgp_session_state(r.s), BGP_FSM_ESTABLISHED);
	read_sent(&r, &o);

	bgp_session_bfd_down(r.s);
	cr_expect_eq(bgp_session_state(r.s), BGP_FSM_IDLE);
	run_for(r.l, 100);
	read_sent(&r, &o);
	cr_assert_eq(o.n, 1u, "%zu messages", o.n);
	const uint8_t *nt = o.buf + o.off[0];
	cr_expect_eq(nt[18], BGP_MSG_NOTIFICATION);
	cr_expect_eq(nt[19], BGP_ERR_CEASE);
	cr_expect_eq(nt[20], BGP_CEASE_BFD_DOWN);
	cr_expect_eq(read(r.peer, b, sizeof(b)), 0, "the connection is closed");
	/* A second BFD Down (no session left) changes nothing. */
	bgp_session_bfd_down(r.s);
	cr_expect_eq(bgp_session_state(r.s), BGP_FSM_IDLE);
	rig_down(&r);
}
