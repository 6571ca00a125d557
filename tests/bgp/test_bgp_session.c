/*
 * Unit tests for bgp/bgp_session.c, the glue: a session on a real loop, its
 * connection one end of a socketpair, the test writing the peer's bytes into
 * the other end and reading what the session sends back. Each run of the
 * loop is bounded by a timer that stops it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bgp/bgp_session.h"
#include "core/loop.h"
#include "core/timer.h"
#include "core/wire.h"

#define BGP_ADJOUT_ROUTES_FOR_TEST BGP_ADJOUT_MAX_ROUTES

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
	/* The socketpair has no IPv4 address: IPv4 routes take this next hop. */
	c.nb.local_address.family = AF_INET;
	c.nb.local_address.addr[0] = 127;
	c.nb.local_address.addr[3] = 2;
	c.local_as = 65000;
	c.bgp_id = 0x7f000002;
	cr_assert_eq(loop_global_init(), 0);
	cr_assert_eq(loop_new(NULL, &r->l), 0);
	cr_assert_eq(bgp_session_new(r->l, &c, &r->s), 0);
	bgp_session_start(r->s);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* Small, so a peer that stops reading blocks our sends quickly. */
	int small = 4096;
	cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	bgp_session_accept(r->s, sv[0]);
	r->peer = sv[1];
	fcntl(r->peer, F_SETFL, O_NONBLOCK);
}

/* Runs the loop in 10 ms steps until the session is Established, at most ms
 * (a fixed 50 ms was not enough on a loaded machine under ASan). */
static void run_until_established(struct rig *r, unsigned ms)
{
	for (unsigned t = 0; t < ms && bgp_session_state(r->s) != BGP_FSM_ESTABLISHED; t += 10)
		run_for(r->l, 10);
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

/* The peer's view of a whole connection: every message it read until EOF. */
struct peer_log {
	size_t msgs, updates;
	uint8_t last_type, last_code, last_subcode;
	bool eof;
	size_t len;
	uint8_t buf[1 << 16];
};

/* Reads until EOF (at most ~5 s of loop time), framing messages as they come. */
static void read_to_eof(struct rig *r, struct peer_log *p)
{
	memset(p, 0, sizeof(*p));
	for (int i = 0; i < 500 && !p->eof; i++) {
		run_for(r->l, 10);
		for (;;) {
			ssize_t k = read(r->peer, p->buf + p->len, sizeof(p->buf) - p->len);
			if (k == 0)
				p->eof = true;
			if (k <= 0)
				break;
			p->len += (size_t)k;
			size_t off = 0;
			while (p->len - off >= BGP_HDR_LEN) {
				const uint8_t *m = p->buf + off;
				size_t ml = (size_t)m[16] << 8 | m[17];
				cr_assert(ml >= BGP_HDR_LEN && ml <= BGP_MAX_LEN, "bad framing");
				if (p->len - off < ml)
					break;
				p->msgs++;
				p->last_type = m[18];
				p->updates += m[18] == BGP_MSG_UPDATE;
				if (m[18] == BGP_MSG_NOTIFICATION) {
					p->last_code = m[19];
					p->last_subcode = m[20];
				}
				off += ml;
			}
			memmove(p->buf, p->buf + off, p->len - off);
			p->len -= off;
		}
	}
}

/* 64 IPv4 routes, each in an attribute set of its own, as large as the caps allow. */
static void big_routes(struct rig *r, uint32_t salt)
{
	static struct bgp_adjout_attrs sets[BGP_ADJOUT_ROUTES_FOR_TEST];
	struct bgp_adjout_route routes[BGP_ADJOUT_ROUTES_FOR_TEST];

	for (unsigned i = 0; i < BGP_ADJOUT_ROUTES_FOR_TEST; i++) {
		struct bgp_adjout_attrs *a = &sets[i];
		memset(a, 0, sizeof(*a));
		a->local_pref = 100 + salt;
		a->n_communities = BGP_ADJOUT_MAX_COMMUNITIES;
		for (unsigned k = 0; k < a->n_communities; k++)
			a->communities[k] = salt << 16 | i << 8 | k;
		a->n_large_communities = BGP_ADJOUT_MAX_LARGE_COMMUNITIES;
		for (unsigned k = 0; k < a->n_large_communities; k++)
			a->large_communities[k] = (struct bgp_adjout_large_community){salt, i, k};
		memset(&routes[i], 0, sizeof(routes[i]));
		routes[i].prefix.family = AF_INET;
		routes[i].prefix.len = 32;
		routes[i].prefix.addr[0] = 10;
		routes[i].prefix.addr[3] = (uint8_t)i;
		routes[i].attrset = (uint16_t)i;
	}
	cr_assert_eq(bgp_session_set_routes(r->s, sets, BGP_ADJOUT_ROUTES_FOR_TEST, routes,
	                                    BGP_ADJOUT_ROUTES_FOR_TEST),
	             0);
}

/*
 * A peer that stops reading while our routes keep changing: the output queue
 * fills. An UPDATE that did not fit used to be logged, dropped and still
 * marked sent in the Adj-RIB-Out, so the peer kept stale routes for as long
 * as the session lasted. Now the session ends with Cease 6/8 Out of Resources
 * (RFC 4486): the peer drops every route it learned from us at once.
 */
Test(bgp_session, output_queue_overflow_ends_the_session_with_cease_8)
{
	struct rig r;
	struct peer_log *p = calloc(1, sizeof(*p));
	uint8_t b[256];
	size_t n = our_open(b, sizeof(b));
	unsigned changes = 0;

	cr_assert(p);
	rig_up(&r);
	struct wbuf w = wbuf_init(b + n, sizeof(b) - n);
	cr_assert_gt(bgp_keepalive_build(&w), 0);
	n += w.off;
	cr_assert_eq(write(r.peer, b, n), (ssize_t)n);
	run_until_established(&r, 2000);
	cr_assert_eq(bgp_session_state(r.s), BGP_FSM_ESTABLISHED);
	/* The peer reads nothing from here on; each change is ~25 KB of UPDATEs. */
	while (bgp_session_state(r.s) == BGP_FSM_ESTABLISHED && changes < 50) {
		big_routes(&r, changes & 1);
		run_for(r.l, 2);
		changes++;
	}
	cr_expect_lt(changes, 50, "still Established after %u changes nobody read", changes);
	cr_expect_neq(bgp_session_state(r.s), BGP_FSM_ESTABLISHED);
	read_to_eof(&r, p);
	cr_expect(p->eof, "the connection is closed");
	cr_expect_gt(p->updates, 0);
	cr_expect_eq(p->last_type, BGP_MSG_NOTIFICATION, "last message type %u", p->last_type);
	cr_expect_eq(p->last_code, BGP_ERR_CEASE);
	cr_expect_eq(p->last_subcode, BGP_CEASE_OUT_OF_RESOURCES);
	rig_down(&r);
	free(p);
}

/* The same changes to a peer that reads: nothing overflows, the session stays. */
Test(bgp_session, a_reading_peer_takes_every_change)
{
	struct rig r;
	struct sent o;
	uint8_t b[256];
	size_t n = our_open(b, sizeof(b));
	static uint8_t sink[1 << 16];

	rig_up(&r);
	struct wbuf w = wbuf_init(b + n, sizeof(b) - n);
	cr_assert_gt(bgp_keepalive_build(&w), 0);
	n += w.off;
	cr_assert_eq(write(r.peer, b, n), (ssize_t)n);
	run_for(r.l, 50);
	read_sent(&r, &o);
	for (unsigned i = 0; i < 20; i++) {
		big_routes(&r, i & 1);
		for (int k = 0; k < 20; k++) {
			run_for(r.l, 2);
			while (read(r.peer, sink, sizeof(sink)) > 0)
				;
		}
		cr_assert_eq(bgp_session_state(r.s), BGP_FSM_ESTABLISHED, "change %u", i);
	}
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
	run_until_established(&r, 2000);
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

/* fd 2 into a temporary file for the duration of a test; returns the saved fd. */
static int stderr_capture(FILE **f)
{
	*f = tmpfile();
	cr_assert(*f);
	int saved = dup(STDERR_FILENO);
	cr_assert_geq(saved, 0);
	cr_assert_geq(dup2(fileno(*f), STDERR_FILENO), 0);
	return saved;
}

static size_t stderr_release(int saved, FILE *f, char *out, size_t cap)
{
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
	return n;
}

/*
 * Issue 10, fault 7: the peer's RFC 9003 shutdown communication is free text
 * from the network. It used to be logged as it came, so a newline in it forged
 * a log record of the peer's choosing (log injection). Control characters now
 * go out escaped; the record stays one line.
 */
Test(bgp_session, shutdown_text_is_logged_escaped)
{
	static const char text[] = "maintenance\nanycached[1]: error: bgp: forged\x1b[2J\x7f";
	struct rig r;
	uint8_t b[512];
	char log[8192];
	FILE *f;

	rig_up(&r);
	struct wbuf w = wbuf_init(b, sizeof(b));
	cr_assert_gt(
	    bgp_notification_build_shutdown(&w, BGP_CEASE_ADMIN_SHUTDOWN, text, sizeof(text) - 1),
	    0);
	int saved = stderr_capture(&f);
	cr_assert_eq(write(r.peer, b, w.off), (ssize_t)w.off);
	run_for(r.l, 100);
	stderr_release(saved, f, log, sizeof(log));
	cr_assert(strstr(log, "maintenance"), "the text is logged: %s", log);
	cr_expect_null(strstr(log, "\nanycached[1]"), "a forged record: %s", log);
	cr_expect_null(strchr(log, '\x1b'), "a raw escape sequence: %s", log);
	cr_expect_null(strchr(log, '\x7f'), "a raw DEL: %s", log);
	cr_expect(strstr(log, "maintenance\\x0aanycached[1]"), "escaped: %s", log);
	struct bgp_session_info inf;
	bgp_session_info(r.s, &inf);
	cr_expect(inf.notif_received.valid);
	cr_expect_null(strchr(inf.notif_received.text, '\n'), "%s", inf.notif_received.text);
	rig_down(&r);
}

