/*
 * anycached's BGP session glue against a misbehaving peer: the test itself is
 * the peer. It speaks to the real daemon over real TCP on loopback, plays
 * scripted byte sequences (built with the project's codec, or raw bytes for
 * the malformed ones) and asserts exactly what anycached sends back.
 *
 * Addresses (127.53.30.x, this file only): the peer (us) on .1, anycached's
 * BGP on .2 (neighbor .1, local-address .2, active, hold time 3 s), DNS VIPs
 * 127.53.30.4 and fd53:30::4 (announced as 64.0.0.0/2 and fd53:30::4/128),
 * knotd on .9. eBGP: anycached AS 65000, the peer AS 65001.
 *
 * After a failed session anycached waits out an IdleHold backoff (5 s, then
 * 10 s, 20 s... with jitter) before it connects again; only the first test
 * waits for that. The others come back at once by connecting TO anycached's
 * listener, which the FSM accepts in Idle/Active while administratively up.
 * Nothing listens on .1:179 outside that first test, so anycached's own
 * attempts are refused and never collide with ours.
 *
 * Every scenario ends by checking that the process is alive and its DNS
 * answers; every test ends with a strict SIGTERM stop (exit 0 within 3 s, no
 * sanitizer report, rings drained).
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bgp/bgp_wire.h"
#include "harness.h"

#define PEER_ADDR "127.53.30.1"
#define ANY_ADDR  "127.53.30.2"
#define VIP4      "127.53.30.4"
#define VIP6      "fd53:30::4"
#define KNOT_ADDR "127.53.30.9"
#define DNS_PORT  5300
#define LOCAL_AS  65000u
#define PEER_AS   65001u
#define PEER_ID   0x7f351e01u /* 127.53.30.1 */
#define ANY_ID    0x7f351e02u /* 127.53.30.2, anycached's router-id */
#define HOLD_S    3

struct rig {
	struct knotd knot;
	bool knot_up, v6added;
	struct anycached d;
	bool d_up;
	int lfd; /* our listener on .1:179, -1 when none */
};

static struct rig rig = {.lfd = -1};

static void v6_addr(const char *op)
{
	char out[256];
	char *argv[] = {"ip", "-6", "addr", (char *)op, VIP6 "/128", "dev", "lo", NULL};
	int rc = run_capture(argv, true, out, sizeof(out), 5000);
	if (!strcmp(op, "add"))
		cr_assert(rc == 0 || strstr(out, "exists") || strstr(out, "already assigned"),
		          "cannot add " VIP6 " to lo: %s", out);
}

static void rig_fini(void)
{
	if (rig.lfd >= 0)
		close(rig.lfd);
	if (rig.d_up)
		anycached_stop(&rig.d);
	if (rig.knot_up)
		knotd_stop(&rig.knot);
	if (rig.v6added)
		v6_addr("del");
	rig.lfd = -1;
}

static int peer_listen(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(BGP_PORT)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	inet_pton(AF_INET, PEER_ADDR, &a.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind %s:179: %s", PEER_ADDR,
	             strerror(errno));
	cr_assert_eq(listen(fd, 4), 0);
	return fd;
}

static bool log_has(const char *needle)
{
	static char text[1 << 20];
	FILE *f = fopen(rig.d.proc.log, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	return strstr(text, needle) != NULL;
}

/* anycached with `listen_first`: our listener is up before it starts. */
static void rig_start(bool listen_first)
{
	static char yaml[2048];
	const char *zones[] = {"example.test", harness_example_zone};

	memset(&rig, 0, sizeof(rig));
	rig.lfd = -1;
	v6_addr("add");
	rig.v6added = true;
	cr_assert_eq(knotd_start(&rig.knot, KNOT_ADDR, DNS_PORT, zones, 1), 0, "knotd");
	rig.knot_up = true;
	if (listen_first)
		rig.lfd = peer_listen();
	snprintf(yaml, sizeof(yaml),
	         "dns:\n"
	         "  listen: [\"" VIP4 ":5300\", \"[" VIP6 "]:5300\"]\n"
	         "  allow: [127.0.0.0/8]\n"
	         "  upstreams: [\"" KNOT_ADDR ":5300\"]\n"
	         "  threads: 1\n"
	         "health: {drain: 0s}\n" /* SIGTERM: Cease at once (drain: test_bgp_bird) */
	         "bgp:\n"
	         "  asn: %u\n"
	         "  router-id: " ANY_ADDR "\n"
	         "  neighbors:\n"
	         "    - address: " PEER_ADDR "\n"
	         "      asn: %u\n"
	         "      local-address: " ANY_ADDR "\n"
	         "      passive: false\n"
	         "      hold-time: %ds\n"
	         "      next-hop6: \"fd53:30::2\"\n"
	         "  announce:\n"
	         "    - {prefix: 64.0.0.0/2, med: 7}\n"
	         "    - {prefix: \"" VIP6 "/128\"}\n",
	         LOCAL_AS, PEER_AS, HOLD_S);
	cr_assert_eq(anycached_start(&rig.d, yaml, VIP4, DNS_PORT), 0, "anycached did not start");
	rig.d_up = true;
	/* The VIPs are announced once their self-probes pass: wait for that, so
	 * the session's first UPDATE carries them. */
	uint64_t end = now_ms() + 5000;
	while (!(log_has("VIP " VIP4 ":5300 down -> up") &&
	         log_has("VIP [" VIP6 "]:5300 down -> up")) &&
	       now_ms() < end)
		sleep_ms(20);
	cr_assert(now_ms() < end, "the VIPs did not come up");
}

/* After every scenario: no crash, no sanitizer report, DNS still answers. */
static void check_alive(const char *scenario)
{
	uint8_t q[512], a[4096];
	char line[256];
	int ql = dns_make_query(q, sizeof(q), 0x5330, "www.example.test", 1, false);

	if (!proc_alive(&rig.d.proc))
		proc_dump_log(&rig.d.proc);
	cr_assert(proc_alive(&rig.d.proc), "%s: anycached died", scenario);
	cr_assert_eq(log_sanitizer_report(rig.d.proc.log, line, sizeof(line)), 0, "%s: %s",
	             scenario, line);
	cr_assert_gt(dns_udp_exchange(VIP4, DNS_PORT, q, (size_t)ql, a, sizeof(a), 2000), 0,
	             "%s: DNS stopped answering", scenario);
}

/* ---------------------------------------------------------------- raw I/O */

static int wait_in(int fd, uint64_t deadline)
{
	for (;;) {
		int64_t left = (int64_t)(deadline - now_ms());
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, left > 0 ? (int)left : 0);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Exactly n bytes: n, 0 at EOF, -ETIMEDOUT or -errno (a reset). */
static int read_n(int fd, uint8_t *p, size_t n, uint64_t deadline)
{
	size_t got = 0;

	while (got < n) {
		int r = wait_in(fd, deadline);
		if (r < 0)
			return r;
		ssize_t k = recv(fd, p + got, n - got, 0);
		if (k == 0)
			return 0;
		if (k < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		got += (size_t)k;
	}
	return (int)n;
}

static void send_raw(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		cr_assert_gt(k, 0, "send: %s", strerror(errno));
		b += k;
		n -= (size_t)k;
	}
}

/* One byte per send(): with TCP_NODELAY and a pause, one segment each. */
static void send_trickle(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		send_raw(fd, b + i, 1);
		usleep(1000);
	}
}

/* Our connection TO anycached's listener, from the neighbor address. */
static int peer_connect(void)
{
	struct sockaddr_in src = {.sin_family = AF_INET},
	                   dst = {.sin_family = AF_INET, .sin_port = htons(BGP_PORT)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	inet_pton(AF_INET, PEER_ADDR, &src.sin_addr);
	inet_pton(AF_INET, ANY_ADDR, &dst.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0, "%s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	cr_assert_eq(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0, "connect: %s",
	             strerror(errno));
	return fd;
}

static void rst_close(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* ---------------------------------------------------------------- a peer session */

struct peer {
	int fd;
	bool answer_ka;     /* answer each KEEPALIVE with one (keeps the hold timer up) */
	uint64_t last_sent; /* ms, our last message */
	struct bgp_ctx ctx;
	unsigned n_ka, n_update;
	bool eor4, eor6;
	unsigned seen4, seen6; /* announcements of 64.0.0.0/2 and fd53:30::4/128 */
	unsigned other;        /* announcements of anything else */
	uint64_t notif_at;     /* ms, when a NOTIFICATION arrived */
	uint8_t buf[BGP_MAX_LEN];
	struct bgp_msg m;
	struct bgp_notify err;
};

static struct peer P;

static void peer_send(struct peer *p, const void *b, size_t n)
{
	send_raw(p->fd, b, n);
	p->last_sent = now_ms();
}

static size_t keepalive(uint8_t *out)
{
	struct wbuf b = wbuf_init(out, BGP_HDR_LEN);
	return (size_t)bgp_keepalive_build(&b);
}

static void send_keepalive(struct peer *p)
{
	uint8_t ka[BGP_HDR_LEN];
	peer_send(p, ka, keepalive(ka));
}

static void account_update(struct peer *p)
{
	const struct bgp_update *u = &p->m.u.update;
	struct bgp_nlri_iter it;
	struct bgp_prefix pf;

	p->n_update++;
	if (u->eor) {
		if (u->eor_fam == BGP_FAM_IPV4)
			p->eor4 = true;
		else
			p->eor6 = true;
		return;
	}
	const struct bgp_nlri *sets[2] = {&u->nlri, &u->mp_reach};
	for (int i = 0; i < 2; i++) {
		if (!sets[i]->p || sets[i]->fam == BGP_FAM_NONE)
			continue;
		bgp_nlri_iter_init(&it, sets[i]);
		while (bgp_nlri_next(&it, &pf)) {
			static const uint8_t v6[16] = {0xfd, 0x53, 0, 0x30, [15] = 4};
			if (pf.fam == BGP_FAM_IPV4 && pf.len == 2 && pf.addr[0] == 64)
				p->seen4++;
			else if (pf.fam == BGP_FAM_IPV6 && pf.len == 128 &&
			         !memcmp(pf.addr, v6, 16))
				p->seen6++;
			else
				p->other++;
		}
	}
}

/*
 * The next message from anycached, parsed into p->m (anycached must never
 * send anything our codec rejects). Returns its type, 0 when anycached closed
 * the connection (EOF or reset), -ETIMEDOUT.
 */
static int peer_next(struct peer *p, int timeout_ms)
{
	uint64_t dl = now_ms() + (uint64_t)timeout_ms;
	int r = read_n(p->fd, p->buf, BGP_HDR_LEN, dl);

	if (r == -ETIMEDOUT)
		return r;
	if (r <= 0)
		return 0;
	size_t len = (size_t)p->buf[16] << 8 | p->buf[17];
	cr_assert(len >= BGP_HDR_LEN && len <= BGP_MAX_LEN, "anycached sent length %zu", len);
	if (len > BGP_HDR_LEN) {
		r = read_n(p->fd, p->buf + BGP_HDR_LEN, len - BGP_HDR_LEN, dl);
		cr_assert_gt(r, 0, "anycached's message of %zu bytes was cut (%d)", len, r);
	}
	r = bgp_msg_parse(p->buf, len, &p->ctx, &p->m, &p->err);
	cr_assert_geq(r, 0, "anycached sent a message our codec rejects (%u/%u)", p->err.code,
	              p->err.subcode);
	switch (p->m.hdr.type) {
	case BGP_MSG_KEEPALIVE:
		p->n_ka++;
		if (p->answer_ka)
			send_keepalive(p);
		break;
	case BGP_MSG_UPDATE:
		account_update(p);
		break;
	case BGP_MSG_NOTIFICATION:
		p->notif_at = now_ms();
		break;
	default:
		break;
	}
	return p->m.hdr.type;
}

static const char *type_name(int t)
{
	static const char *n[] = {"closed",       "OPEN",      "UPDATE",
	                          "NOTIFICATION", "KEEPALIVE", "ROUTE-REFRESH"};
	return t >= 0 && t <= 5 ? n[t] : t == -ETIMEDOUT ? "timeout" : "?";
}

struct open_spec {
	uint8_t version;
	uint16_t my_as, hold;
	uint32_t id;
	bool as4;
	uint32_t as4_asn;
};

static const struct open_spec good = {4, PEER_AS, HOLD_S, PEER_ID, true, PEER_AS};

/* Our OPEN: MP IPv4+IPv6 unicast, route refresh, 4-octet AS when spec->as4. */
static size_t open_make(uint8_t *out, size_t cap, const struct open_spec *o)
{
	static const uint8_t caps[] = {1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1, 2, 0};
	struct wbuf b = wbuf_init(out, cap);
	size_t st = bgp_msg_begin(&b, BGP_MSG_OPEN);
	uint8_t capl = (uint8_t)(sizeof(caps) + (o->as4 ? 6 : 0));

	wbuf_u8(&b, o->version);
	wbuf_u16(&b, o->my_as);
	wbuf_u16(&b, o->hold);
	wbuf_u32(&b, o->id);
	wbuf_u8(&b, (uint8_t)(2 + capl));
	wbuf_u8(&b, 2);
	wbuf_u8(&b, capl);
	wbuf_bytes(&b, caps, sizeof(caps));
	if (o->as4) {
		wbuf_u8(&b, BGP_CAPA_AS4);
		wbuf_u8(&b, 4);
		wbuf_u32(&b, o->as4_asn);
	}
	int n = bgp_msg_end(&b, st, BGP_MAX_LEN);
	cr_assert_gt(n, 0);
	return (size_t)n;
}

/* Checks anycached's OPEN in p->m: RFC 4271 §4.2 fields and our config. */
static void check_their_open(struct peer *p)
{
	const struct bgp_open *o = &p->m.u.open;

	cr_assert_eq(o->version, 4);
	cr_assert_eq(o->my_as, LOCAL_AS);
	cr_assert_eq(o->asn, LOCAL_AS);
	cr_assert_eq(o->hold, HOLD_S);
	cr_assert_eq(o->bgp_id, ANY_ID);
	cr_assert(o->caps.mp[BGP_FAM_IPV4] && o->caps.mp[BGP_FAM_IPV6]);
	cr_assert(o->caps.route_refresh && o->caps.as4 && !o->caps.gr);
}

static void peer_reset(struct peer *p, int fd)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->answer_ka = true;
	/* Both sides send capability 65: AS_PATH with 4-octet ASNs (RFC 6793). */
	p->ctx.as4 = true;
}

/*
 * Connects to anycached and reads its OPEN (OpenSent on its side). anycached
 * may not yet have noticed that the previous connection is gone (it refuses a
 * connection while Established): retry for up to 3 s.
 */
static void peer_open_sent(struct peer *p)
{
	uint64_t end = now_ms() + 3000;
	int t;

	for (;;) {
		peer_reset(p, peer_connect());
		t = peer_next(p, 1000);
		if (t == BGP_MSG_OPEN || now_ms() > end)
			break;
		close(p->fd);
		usleep(50 * 1000);
	}
	cr_assert_eq(t, BGP_MSG_OPEN, "no OPEN from anycached (%s)", type_name(t));
	check_their_open(p);
}

/* From OpenSent (its OPEN read): our OPEN and KEEPALIVE, to End-of-RIB for both families. */
static void peer_establish_from_opensent(struct peer *p)
{
	uint8_t b[256];
	size_t n = open_make(b, sizeof(b), &good);

	n += keepalive(b + n);
	peer_send(p, b, n);
	uint64_t end = now_ms() + 3000;
	while (!(p->eor4 && p->eor6) && now_ms() < end) {
		int t = peer_next(p, 1000);
		cr_assert(t == BGP_MSG_KEEPALIVE || t == BGP_MSG_UPDATE,
		          "waiting for Established: %s", type_name(t));
	}
	cr_assert(p->n_ka >= 1 && p->eor4 && p->eor6, "no End-of-RIB for both families");
}

/* A full well-behaved session on a connection to anycached's listener. */
static void peer_establish(struct peer *p)
{
	peer_open_sent(p);
	peer_establish_from_opensent(p);
}

/* Reads (answering keepalives) until both routes were announced at least once. */
static void peer_wait_routes(struct peer *p, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while (!(p->seen4 && p->seen6) && now_ms() < end) {
		int t = peer_next(p, 500);
		cr_assert(t == -ETIMEDOUT || t == BGP_MSG_KEEPALIVE || t == BGP_MSG_UPDATE, "%s",
		          type_name(t));
	}
	cr_assert(p->seen4 && p->seen6, "routes not announced (v4 %u, v6 %u)", p->seen4, p->seen6);
}

/*
 * The NOTIFICATION anycached must send (skipping keepalives and UPDATEs before
 * it), then it must close the connection without sending anything else.
 */
static void expect_notification(struct peer *p, const char *scenario, uint8_t code, uint8_t sub,
                                const void *data, size_t datalen)
{
	uint64_t end = now_ms() + 5000;
	int t;

	do
		t = peer_next(p, 3000);
	while ((t == BGP_MSG_KEEPALIVE || t == BGP_MSG_UPDATE) && now_ms() < end);
	cr_assert_eq(t, BGP_MSG_NOTIFICATION, "%s: expected NOTIFICATION %u/%u, got %s", scenario,
	             code, sub, type_name(t));
	const struct bgp_notification *n = &p->m.u.notification;
	cr_assert(n->code == code && n->subcode == sub, "%s: NOTIFICATION %u/%u, expected %u/%u",
	          scenario, n->code, n->subcode, code, sub);
	cr_assert_eq(n->datalen, datalen, "%s: %zu bytes of data, expected %zu", scenario,
	             n->datalen, datalen);
	if (datalen)
		cr_assert_arr_eq(n->data, data, datalen, "%s: wrong NOTIFICATION data", scenario);
	t = peer_next(p, 2000);
	cr_assert_eq(t, 0, "%s: after the NOTIFICATION: %s instead of a close", scenario,
	             type_name(t));
	close(p->fd);
	p->fd = -1;
	check_alive(scenario);
}

/* anycached closes the connection with no NOTIFICATION (keepalives may come first). */
static void expect_silent_close(struct peer *p, const char *scenario)
{
	uint64_t end = now_ms() + 3000;
	int t;

	do
		t = peer_next(p, 2000);
	while ((t == BGP_MSG_KEEPALIVE || t == BGP_MSG_UPDATE) && now_ms() < end);
	cr_assert_eq(t, 0, "%s: %s instead of a close", scenario, type_name(t));
	close(p->fd);
	p->fd = -1;
	check_alive(scenario);
}

/* Nothing but keepalives for ms (keepalive every hold/3 = 1 s): the session stays up. */
static void expect_quiet(struct peer *p, const char *scenario, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	unsigned ka0 = p->n_ka;

	while (now_ms() < end) {
		int t = peer_next(p, (int)(end - now_ms()) + 1);
		if (t == -ETIMEDOUT)
			break;
		cr_assert_eq(t, BGP_MSG_KEEPALIVE, "%s: unexpected %s", scenario, type_name(t));
	}
	int want = ms / 1000 - 1;
	cr_assert_geq((int)(p->n_ka - ka0), want, "%s: keepalives stopped", scenario);
}

/* 19-byte header with any marker byte, length and type, plus body bytes. */
static size_t raw_msg(uint8_t *out, uint8_t marker, uint16_t len, uint8_t type, const void *body,
                      size_t bodylen)
{
	memset(out, marker, BGP_MARKER_LEN);
	out[16] = (uint8_t)(len >> 8);
	out[17] = (uint8_t)len;
	out[18] = type;
	if (bodylen)
		memcpy(out + BGP_HDR_LEN, body, bodylen);
	return BGP_HDR_LEN + bodylen;
}

static size_t update_msg(uint8_t *out, const void *attrs, size_t alen, const void *nlri,
                         size_t nlen)
{
	uint8_t body[512];
	size_t n = 0;

	body[n++] = 0;
	body[n++] = 0; /* no withdrawn routes */
	body[n++] = (uint8_t)(alen >> 8);
	body[n++] = (uint8_t)alen;
	if (alen) /* memcpy from NULL is undefined even for 0 bytes */
		memcpy(body + n, attrs, alen);
	n += alen;
	if (nlen)
		memcpy(body + n, nlri, nlen);
	n += nlen;
	return raw_msg(out, 0xff, (uint16_t)(BGP_HDR_LEN + n), BGP_MSG_UPDATE, body, n);
}

static size_t route_refresh(uint8_t *out, uint16_t afi, uint8_t safi)
{
	struct wbuf b = wbuf_init(out, BGP_ROUTE_REFRESH_LEN);
	return (size_t)bgp_route_refresh_build(&b, afi, safi, BGP_RR_REQUEST);
}

static size_t eor4(uint8_t *out)
{
	struct wbuf b = wbuf_init(out, 64);
	return (size_t)bgp_eor_build(&b, BGP_FAM_IPV4);
}

/* A well-formed UPDATE for 198.51.100.0/24 (anycached validates and drops it). */
static const uint8_t upd_attrs[] = {
    0x40, 1, 1, 0,                          /* ORIGIN IGP */
    0x40, 2, 6, 2,   1,  0,  0, 0xfd, 0xe9, /* AS_PATH: AS_SEQUENCE 65001 (4-octet) */
    0x40, 3, 4, 127, 53, 30, 1,             /* NEXT_HOP */
};
static const uint8_t upd_nlri[] = {24, 198, 51, 100};

static size_t good_update(uint8_t *out)
{
	return update_msg(out, upd_attrs, sizeof(upd_attrs), upd_nlri, sizeof(upd_nlri));
}

static void cease(struct peer *p, const char *scenario)
{
	uint8_t b[64];
	struct wbuf w = wbuf_init(b, sizeof(b));
	int n = bgp_notification_build_shutdown(&w, BGP_CEASE_ADMIN_SHUTDOWN, "next", 4);

	cr_assert_gt(n, 0);
	peer_send(p, b, (size_t)n);
	expect_silent_close(p, scenario);
}

/*
 * The end of every test: SIGTERM on an Established session. anycached must
 * exit 0 within 3 s (rings drained, no sanitizer report) and have sent its
 * withdrawals and then Cease 6/2 with its RFC 9003 text.
 */
static void finish(struct peer *p)
{
	char why[512];
	int r = anycached_stop_clean(&rig.d, 3000, why, sizeof(why));
	int t;

	rig.d_up = false;
	cr_assert_eq(r, 0, "stop: %s", why);
	/* The routes are withdrawn explicitly first (UPDATE), then Cease. */
	do
		t = peer_next(p, 1000);
	while (t == BGP_MSG_KEEPALIVE || t == BGP_MSG_UPDATE);
	cr_assert_eq(t, BGP_MSG_NOTIFICATION, "no Cease on SIGTERM: %s", type_name(t));
	const struct bgp_notification *n = &p->m.u.notification;
	cr_assert(n->code == 6 && n->subcode == 2 && n->has_shutdown && n->shutdown_utf8);
	cr_assert_eq(n->shutdown_len, strlen("anycached shutting down"));
	cr_assert_arr_eq(n->shutdown, "anycached shutting down", n->shutdown_len);
	close(p->fd);
	p->fd = -1;
}

static void setup_listen(void)
{
	rig_start(true);
}

static void setup(void)
{
	rig_start(false);
}

static int accept_within(int lfd, int timeout_ms)
{
	int r = wait_in(lfd, now_ms() + (uint64_t)timeout_ms);
	if (r < 0)
		return r;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(fd, 0, "accept: %s", strerror(errno));
	return fd;
}

/*
 * anycached connects to us (passive: false); the peer's Cease with broken
 * RFC 9003 data is logged without a crash; anycached comes back by itself
 * after its IdleHold backoff; a well-formed shutdown text is logged as text.
 */
Test(bgp_peer, outbound_session_cease_texts_and_backoff, .init = setup_listen, .fini = rig_fini,
     .timeout = 60)
{
	int fd = accept_within(rig.lfd, 7000);
	cr_assert_geq(fd, 0, "anycached did not connect to " PEER_ADDR ":179");
	peer_reset(&P, fd);
	int t = peer_next(&P, 2000);
	cr_assert_eq(t, BGP_MSG_OPEN, "%s", type_name(t));
	check_their_open(&P);
	peer_establish_from_opensent(&P);
	peer_wait_routes(&P, 5000);
	cr_assert_eq(P.other, 0, "anycached announced something not configured");

	/* Cease 6/2: length octet 200 over 4 octets of data, invalid UTF-8 inside. */
	static const uint8_t bad_text[] = {6, 2, 200, 0xff, 0xfe, 'x', 0xc0};
	uint8_t b[BGP_MAX_LEN];
	size_t n = raw_msg(b, 0xff, (uint16_t)(BGP_HDR_LEN + sizeof(bad_text)),
	                   BGP_MSG_NOTIFICATION, bad_text, sizeof(bad_text));
	uint64_t t0 = now_ms();
	peer_send(&P, b, n);
	expect_silent_close(&P, "Cease 6/2, length octet past the data");
	cr_assert(log_has("NOTIFICATION 6/2 from the peer\n"), "not logged (or logged as text)");

	/*
	 * RFC 4271 §8.1.1 IdleHold (bgp_fsm.h): the connect that led to this
	 * session used the 5 s step, so this first failure waits the doubled
	 * 10 s with -25% jitter: 7.5..10 s.
	 */
	fd = accept_within(rig.lfd, 12000);
	uint64_t dt = now_ms() - t0;
	cr_assert_geq(fd, 0, "anycached did not reconnect within 12 s");
	cr_log_info("anycached reconnected %llu ms after the peer's Cease", (unsigned long long)dt);
	cr_assert(dt >= 7400 && dt <= 10500, "reconnected after %llu ms, expected 7.5..10 s",
	          (unsigned long long)dt);
	peer_reset(&P, fd);
	t = peer_next(&P, 2000);
	cr_assert_eq(t, BGP_MSG_OPEN, "%s", type_name(t));
	peer_establish_from_opensent(&P);
	check_alive("reconnect after backoff");

	/* A well-formed RFC 9003 text is logged as such. */
	static const char txt[] = "maintenance \xe2\x9c\x93 back soon";
	struct wbuf w = wbuf_init(b, sizeof(b));
	int m = bgp_notification_build_shutdown(&w, BGP_CEASE_ADMIN_SHUTDOWN, txt, sizeof(txt) - 1);
	cr_assert_gt(m, 0);
	peer_send(&P, b, (size_t)m);
	expect_silent_close(&P, "Cease 6/2 with UTF-8 text");
	cr_assert(
	    log_has("NOTIFICATION 6/2 from the peer: \"maintenance \xe2\x9c\x93 back soon\""));

	/* From here on we connect to anycached. Cease 6/4 (RFC 9003 too): an
	 * overlong encoding within a consistent length is not text. */
	close(rig.lfd);
	rig.lfd = -1;
	peer_establish(&P);
	static const uint8_t overlong[] = {6, 4, 3, 'a', 0xc0, 0xaf};
	n = raw_msg(b, 0xff, (uint16_t)(BGP_HDR_LEN + sizeof(overlong)), BGP_MSG_NOTIFICATION,
	            overlong, sizeof(overlong));
	peer_send(&P, b, n);
	expect_silent_close(&P, "Cease 6/4, invalid UTF-8");
	cr_assert(log_has("NOTIFICATION 6/4 from the peer\n"));

	/* A NOTIFICATION with a code nobody defined is just a NOTIFICATION. */
	peer_establish(&P);
	static const uint8_t odd[] = {200, 77};
	n = raw_msg(b, 0xff, (uint16_t)(BGP_HDR_LEN + sizeof(odd)), BGP_MSG_NOTIFICATION, odd,
	            sizeof(odd));
	peer_send(&P, b, n);
	expect_silent_close(&P, "NOTIFICATION 200/77");

	peer_establish(&P);
	finish(&P);
}

/* RFC 4271 §6.1 in Established: every header error, then a clean session again. */
Test(bgp_peer, header_errors, .init = setup, .fini = rig_fini, .timeout = 60)
{
	static const struct {
		const char *name;
		bool bad_marker;
		uint16_t len;
		uint8_t type;
		size_t bodylen;
		uint8_t sub;
		uint8_t data[2];
		size_t datalen;
	} cases[] = {
	    {"marker with a zero octet", true, 19, BGP_MSG_KEEPALIVE, 0, 1, {0}, 0},
	    {"length 18", false, 18, BGP_MSG_KEEPALIVE, 0, 2, {0, 18}, 2},
	    {"length 4097", false, 4097, BGP_MSG_UPDATE, 0, 2, {0x10, 0x01}, 2},
	    {"type 9", false, 19, 9, 0, 3, {9}, 1},
	    {"KEEPALIVE with a body", false, 20, BGP_MSG_KEEPALIVE, 1, 2, {0, 20}, 2},
	    {"OPEN of 28 octets", false, 28, BGP_MSG_OPEN, 9, 2, {0, 28}, 2},
	    {"ROUTE-REFRESH of 24 octets", false, 24, BGP_MSG_ROUTE_REFRESH, 5, 2, {0, 24}, 2},
	};
	static const uint8_t body[16] = {0};
	uint8_t b[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		peer_establish(&P);
		size_t n = raw_msg(b, 0xff, cases[i].len, cases[i].type, body, cases[i].bodylen);
		if (cases[i].bad_marker)
			b[7] = 0;
		peer_send(&P, b, n);
		expect_notification(&P, cases[i].name, BGP_ERR_HEADER, cases[i].sub, cases[i].data,
		                    cases[i].datalen);
	}
	peer_establish(&P);
	finish(&P);
}

/* RFC 4271 §6.2: anycached in OpenSent gets a bad OPEN. */
Test(bgp_peer, open_errors, .init = setup, .fini = rig_fini, .timeout = 60)
{
	static const uint8_t v4[2] = {0, 4};
	struct {
		const char *name;
		struct open_spec o;
		uint8_t sub;
		const uint8_t *data;
		size_t datalen;
	} cases[] = {
	    {"version 3", good, 1, v4, 2},
	    {"2-octet AS 65002, no AS4 capability", good, 2, NULL, 0},
	    {"AS_TRANS and AS4 capability 65002", good, 2, NULL, 0},
	    {"2-octet AS right, AS4 capability 65002", good, 2, NULL, 0},
	    {"BGP identifier 0", good, 3, NULL, 0},
	    {"hold time 1", good, 6, NULL, 0},
	    {"hold time 2", good, 6, NULL, 0},
	};
	cases[0].o.version = 3;
	cases[1].o.my_as = 65002;
	cases[1].o.as4 = false;
	cases[2].o.my_as = BGP_AS_TRANS;
	cases[2].o.as4_asn = 65002;
	cases[3].o.as4_asn = 65002;
	cases[4].o.id = 0;
	cases[5].o.hold = 1;
	cases[6].o.hold = 2;
	uint8_t b[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		peer_open_sent(&P);
		size_t n = open_make(b, sizeof(b), &cases[i].o);
		peer_send(&P, b, n);
		expect_notification(&P, cases[i].name, BGP_ERR_OPEN, cases[i].sub, cases[i].data,
		                    cases[i].datalen);
	}

	/*
	 * Optional Parameters Length 10 past the message end (the message length
	 * itself is consistent): RFC 4271 §6.2 has no subcode for it, so §4.5's
	 * "Unspecific" (0) applies.
	 */
	peer_open_sent(&P);
	size_t n = open_make(b, sizeof(b), &good);
	b[BGP_HDR_LEN + 9] += 10;
	peer_send(&P, b, n);
	expect_notification(&P, "optional parameters overrun", BGP_ERR_OPEN, 0, NULL, 0);

	/* An unknown optional parameter type (not 2): 2/4 Unsupported Optional Parameter. */
	peer_open_sent(&P);
	n = open_make(b, sizeof(b), &good);
	b[BGP_HDR_LEN + 10] = 9;
	peer_send(&P, b, n);
	expect_notification(&P, "optional parameter type 9", BGP_ERR_OPEN, 4, NULL, 0);

	/* AS_TRANS with the right AS4 capability is fine (RFC 6793 §4.1). */
	struct open_spec trans = good;
	trans.my_as = BGP_AS_TRANS;
	peer_open_sent(&P);
	n = open_make(b, sizeof(b), &trans);
	n += keepalive(b + n);
	peer_send(&P, b, n);
	uint64_t end = now_ms() + 3000;
	int t;
	do
		t = peer_next(&P, 2000);
	while ((t == BGP_MSG_KEEPALIVE || t == BGP_MSG_UPDATE) && !(P.eor4 && P.eor6) &&
	       now_ms() < end);
	cr_assert(P.eor4 && P.eor6, "AS_TRANS + AS4 capability not accepted (%s)", type_name(t));
	finish(&P);
}

/* RFC 6608: unexpected messages in OpenSent, OpenConfirm and Established. */
Test(bgp_peer, fsm_errors, .init = setup, .fini = rig_fini, .timeout = 60)
{
	uint8_t b[256];
	size_t n;
	static const uint8_t upd[1] = {BGP_MSG_UPDATE}, ka[1] = {BGP_MSG_KEEPALIVE},
	                     op[1] = {BGP_MSG_OPEN}, rr[1] = {BGP_MSG_ROUTE_REFRESH};

	peer_open_sent(&P);
	peer_send(&P, b, eor4(b));
	expect_notification(&P, "UPDATE in OpenSent", BGP_ERR_FSM, 1, upd, 1);

	peer_open_sent(&P);
	peer_send(&P, b, keepalive(b));
	expect_notification(&P, "KEEPALIVE in OpenSent", BGP_ERR_FSM, 1, ka, 1);

	peer_open_sent(&P);
	peer_send(&P, b, route_refresh(b, BGP_AFI_IPV4, BGP_SAFI_UNICAST));
	expect_notification(&P, "ROUTE-REFRESH in OpenSent", BGP_ERR_FSM, 1, rr, 1);

	peer_open_sent(&P);
	n = open_make(b, sizeof(b), &good);
	n += route_refresh(b + n, BGP_AFI_IPV4, BGP_SAFI_UNICAST);
	peer_send(&P, b, n);
	expect_notification(&P, "ROUTE-REFRESH in OpenConfirm", BGP_ERR_FSM, 2, rr, 1);

	/* OpenConfirm: our OPEN, its KEEPALIVE, then an UPDATE instead of ours. */
	peer_open_sent(&P);
	P.answer_ka = false;
	peer_send(&P, b, open_make(b, sizeof(b), &good));
	int t = peer_next(&P, 2000);
	cr_assert_eq(t, BGP_MSG_KEEPALIVE, "%s", type_name(t));
	peer_send(&P, b, eor4(b));
	expect_notification(&P, "UPDATE in OpenConfirm", BGP_ERR_FSM, 2, upd, 1);

	/*
	 * A second OPEN on the Established connection. Not a collision (RFC 4271
	 * §6.8 is about a second connection): RFC 6608 §3's unexpected message in
	 * Established, 5/3.
	 */
	peer_establish(&P);
	n = open_make(b, sizeof(b), &good);
	peer_send(&P, b, n);
	expect_notification(&P, "OPEN in Established", BGP_ERR_FSM, 3, op, 1);

	peer_establish(&P);
	finish(&P);
}

/* RFC 7606 in Established: treat-as-withdraw keeps the session, a bad MP_REACH resets it. */
Test(bgp_peer, update_errors, .init = setup, .fini = rig_fini, .timeout = 60)
{
	uint8_t b[512], a[64];
	size_t n;

	peer_establish(&P);
	/* MED of 3 octets: RFC 7606 §7.4, treat-as-withdraw, no NOTIFICATION. */
	memcpy(a, upd_attrs, sizeof(upd_attrs));
	static const uint8_t med3[] = {0x80, 4, 3, 0, 0, 1};
	memcpy(a + sizeof(upd_attrs), med3, sizeof(med3));
	n = update_msg(b, a, sizeof(upd_attrs) + sizeof(med3), upd_nlri, sizeof(upd_nlri));
	peer_send(&P, b, n);
	expect_quiet(&P, "MED of 3 octets", 2500);
	cr_assert(log_has("UPDATE error 3/5 handled as treat-as-withdraw"));
	/* A well-formed UPDATE still passes on the same session. */
	peer_send(&P, b, good_update(b));
	expect_quiet(&P, "well-formed UPDATE after treat-as-withdraw", 1200);
	check_alive("treat-as-withdraw");

	/*
	 * MP_REACH_NLRI for IPv6 with a 5-octet next hop: RFC 7606 §7.11 session
	 * reset; RFC 4271 §6.3: Optional Attribute Error (3/9), the attribute as data.
	 */
	static const uint8_t mp[] = {0x80, 14, 19, 0,    2,    1, 5,    0xfd, 0x53, 0, 0,
	                             0,    0,  64, 0xfd, 0x53, 0, 0x30, 0,    0,    0, 0};
	memcpy(a, upd_attrs, 13); /* ORIGIN and AS_PATH: MP-only UPDATEs need no NEXT_HOP */
	memcpy(a + 13, mp, sizeof(mp));
	n = update_msg(b, a, 13 + sizeof(mp), NULL, 0);
	peer_send(&P, b, n);
	expect_notification(&P, "MP_REACH with a 5-octet next hop", BGP_ERR_UPDATE, 9, mp,
	                    sizeof(mp));

	/* An attribute list that overruns the message before anything to withdraw: reset 3/1. */
	peer_establish(&P);
	static const uint8_t overrun[] = {0x40, 1, 9, 0};
	n = update_msg(b, overrun, sizeof(overrun), NULL, 0);
	peer_send(&P, b, n);
	expect_notification(&P, "attribute overrun", BGP_ERR_UPDATE, 1, NULL, 0);

	peer_establish(&P);
	finish(&P);
}

/* RFC 4271 §6.5: the peer falls silent; Hold Timer Expired within hold + 1 s. */
Test(bgp_peer, hold_timer_expires, .init = setup, .fini = rig_fini, .timeout = 60)
{
	peer_establish(&P);
	P.answer_ka = false;
	uint64_t t0 = P.last_sent;
	unsigned ka0 = P.n_ka;
	expect_notification(&P, "hold timer", BGP_ERR_HOLD, 0, NULL, 0);
	uint64_t dt = P.notif_at - t0;
	cr_log_info("4/0 %llu ms after our last message", (unsigned long long)dt);
	cr_assert_geq(dt, HOLD_S * 1000 - 100, "4/0 after %llu ms", (unsigned long long)dt);
	cr_assert_leq(dt, HOLD_S * 1000 + 1000, "4/0 after %llu ms", (unsigned long long)dt);
	cr_assert_geq(P.n_ka - ka0, 2, "anycached kept sending keepalives meanwhile");
	peer_establish(&P);
	finish(&P);
}

/* The peer's TCP goes away mid-message, with FIN or RST: anycached takes a new one. */
Test(bgp_peer, tcp_close_mid_message, .init = setup, .fini = rig_fini, .timeout = 60)
{
	uint8_t b[256];
	size_t n;

	peer_establish(&P);
	peer_send(&P, b, keepalive(b) - 9); /* half a header */
	close(P.fd);
	usleep(100 * 1000);
	check_alive("FIN after half a header");

	peer_establish(&P);
	n = good_update(b);
	peer_send(&P, b, n - 8); /* the header and half the body */
	close(P.fd);
	usleep(100 * 1000);
	check_alive("FIN after half a body");

	peer_establish(&P);
	peer_send(&P, b, n - 8);
	rst_close(P.fd);
	usleep(100 * 1000);
	check_alive("RST after half a body");

	peer_establish(&P);
	rst_close(P.fd);
	usleep(100 * 1000);
	check_alive("RST in Established");

	peer_open_sent(&P);
	peer_send(&P, b, open_make(b, sizeof(b), &good) - 20);
	rst_close(P.fd);
	usleep(100 * 1000);
	check_alive("RST in OpenSent, half an OPEN");

	cr_assert(log_has("connection closed by the peer"));
	cr_assert(log_has("Connection reset by peer"));
	peer_establish(&P);
	finish(&P);
}

static void collect(struct peer *p, const char *scenario, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (now_ms() < end) {
		int t = peer_next(p, (int)(end - now_ms()) + 1);
		if (t == -ETIMEDOUT)
			break;
		cr_assert(t == BGP_MSG_KEEPALIVE || t == BGP_MSG_UPDATE, "%s: %s", scenario,
		          type_name(t));
	}
}

/* RFC 2918 §4: ROUTE-REFRESH resends the one family asked for; others are ignored. */
Test(bgp_peer, route_refresh, .init = setup, .fini = rig_fini, .timeout = 60)
{
	uint8_t b[64];

	peer_establish(&P);
	peer_wait_routes(&P, 5000);

	P.seen4 = P.seen6 = P.n_update = 0;
	P.eor4 = P.eor6 = false;
	peer_send(&P, b, route_refresh(b, BGP_AFI_IPV4, BGP_SAFI_UNICAST));
	collect(&P, "ROUTE-REFRESH IPv4", 800);
	cr_assert_eq(P.seen4, 1, "IPv4 route resent %u times", P.seen4);
	cr_assert_eq(P.seen6, 0, "IPv6 route resent on an IPv4 refresh");
	cr_assert_eq(P.other, 0);
	cr_log_info("after an IPv4 refresh: %u UPDATEs, End-of-RIB v4 %d", P.n_update, P.eor4);

	/* AFI 25 (L2VPN) and IPv4 SAFI 128: never negotiated, ignored. */
	P.seen4 = P.seen6 = 0;
	peer_send(&P, b, route_refresh(b, 25, 65));
	peer_send(&P, b, route_refresh(b, BGP_AFI_IPV4, 128));
	expect_quiet(&P, "ROUTE-REFRESH for AFI 25", 2100);
	cr_assert_eq(P.seen4 + P.seen6, 0);

	/* Subtype 2 (EoRR, RFC 7313) is no request: ignored too. */
	struct wbuf w = wbuf_init(b, sizeof(b));
	peer_send(&P, b, (size_t)bgp_route_refresh_build(&w, BGP_AFI_IPV4, 1, BGP_RR_EORR));
	expect_quiet(&P, "EoRR", 300);

	peer_send(&P, b, route_refresh(b, BGP_AFI_IPV6, BGP_SAFI_UNICAST));
	collect(&P, "ROUTE-REFRESH IPv6", 800);
	cr_assert_eq(P.seen6, 1, "IPv6 route resent %u times", P.seen6);
	cr_assert_eq(P.seen4, 0, "IPv4 route resent on an IPv6 refresh");
	check_alive("route refresh");
	finish(&P);
}

/* RFC 4271 §4.1 framing: many messages in one segment, one message in many segments. */
Test(bgp_peer, framing, .init = setup, .fini = rig_fini, .timeout = 60)
{
	uint8_t b[1024];
	size_t n = 0;

	/* Routes up first, so what follows counts them deterministically. */
	peer_establish(&P);
	peer_wait_routes(&P, 5000);
	cease(&P, "Cease to start over");

	/* OPEN, KEEPALIVE, KEEPALIVE, UPDATE, ROUTE-REFRESH v4, KEEPALIVE in one write. */
	peer_open_sent(&P);
	n = open_make(b, sizeof(b), &good);
	n += keepalive(b + n);
	n += keepalive(b + n);
	n += good_update(b + n);
	n += route_refresh(b + n, BGP_AFI_IPV4, BGP_SAFI_UNICAST);
	n += keepalive(b + n);
	peer_send(&P, b, n);
	collect(&P, "one segment", 1000);
	cr_assert(P.eor4 && P.eor6, "not Established from one segment");
	cr_assert_eq(P.seen4, 2, "IPv4 route: %u announcements (initial + refresh)", P.seen4);
	cr_assert_eq(P.seen6, 1);
	cease(&P, "Cease after one segment");

	/* The same, one octet per segment. */
	peer_open_sent(&P);
	n = open_make(b, sizeof(b), &good);
	n += keepalive(b + n);
	send_trickle(P.fd, b, n);
	P.last_sent = now_ms();
	collect(&P, "one octet per segment", 800);
	cr_assert(P.eor4 && P.eor6, "not Established from single-octet segments");
	n = good_update(b);
	n += route_refresh(b + n, BGP_AFI_IPV6, BGP_SAFI_UNICAST);
	send_trickle(P.fd, b, n);
	P.last_sent = now_ms();
	collect(&P, "UPDATE and ROUTE-REFRESH trickled", 800);
	cr_assert_eq(P.seen6, 2, "IPv6 route: %u announcements (initial + refresh)", P.seen6);
	check_alive("framing");
	finish(&P);
}
