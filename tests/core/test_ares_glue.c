/* Unit tests for core/ares_glue.c: a c-ares channel driven by the loop
 * against responders on 127.0.0.1. Bounded by a watchdog timer. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/ares_glue.h"
#include "core/clock.h"
#include "core/loop.h"
#include "core/wire.h"

static bool watchdog_fired;
static void watchdog(struct timer *t, uint64_t now, void *arg)
{
	watchdog_fired = true;
	loop_stop(arg);
}

/* RFC 1035 §4.1: header, one question "example.test. A IN", RD set. */
static int build_query(uint8_t *buf, size_t cap, uint16_t id)
{
	struct wbuf b = wbuf_init(buf, cap);
	wbuf_u16(&b, id);
	wbuf_u16(&b, 0x0100); /* RD */
	wbuf_u16(&b, 1);
	wbuf_u16(&b, 0);
	wbuf_u16(&b, 0);
	wbuf_u16(&b, 0);
	wbuf_u8(&b, 7);
	wbuf_bytes(&b, "example", 7);
	wbuf_u8(&b, 4);
	wbuf_bytes(&b, "test", 4);
	wbuf_u8(&b, 0);
	wbuf_u16(&b, 1); /* A */
	wbuf_u16(&b, 1); /* IN */
	return wbuf_result(&b);
}

/* Responder: echo the query back as a response (QR, RA), NOERROR, no answers. */
static unsigned responder_hits;
static void respond(struct loop *l, void *ctx, const struct loop_dgram *d)
{
	uint8_t out[512];
	if (d->len < 12 || d->len > sizeof(out))
		return;
	memcpy(out, d->payload, d->len);
	out[2] |= 0x80;
	out[3] |= 0x80;
	responder_hits++;
	cr_assert_eq(loop_udp_send(l, d->fd, d->peer, d->peerlen, out, d->len), 0);
}

static int udp_bound(struct sockaddr_in *sin)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)sin, sizeof(*sin)), 0);
	socklen_t sl = sizeof(*sin);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)sin, &sl), 0);
	return fd;
}

struct result {
	struct loop *l;
	int status, calls, alen;
	uint8_t abuf[512];
	uint64_t done_at;
};

static void answer_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct result *r = arg;
	r->calls++;
	r->status = status;
	r->done_at = clock_now_ms();
	r->alen = alen;
	if (abuf && alen > 0 && (size_t)alen <= sizeof(r->abuf))
		memcpy(r->abuf, abuf, (size_t)alen);
	if (r->l)
		loop_stop(r->l);
}

static struct ares_glue *glue_for(struct loop *l, const struct sockaddr_in *srv, int timeout_ms)
{
	struct ares_options o = {.timeout = timeout_ms, .tries = 1};
	struct ares_glue *g;
	char csv[64];
	cr_assert_eq(loop_global_init(), 0);
	cr_assert_eq(ares_glue_new(l, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES, &g), 0);
	snprintf(csv, sizeof(csv), "127.0.0.1:%u", ntohs(srv->sin_port));
	cr_assert_eq(ares_set_servers_ports_csv(ares_glue_channel(g), csv), ARES_SUCCESS);
	return g;
}

Test(ares_glue, send_gets_answer)
{
	struct loop *l;
	struct sockaddr_in srv;
	struct timer wd;
	static struct result res;
	uint8_t q[512];
	int sfd = udp_bound(&srv);
	cr_assert_eq(loop_new(NULL, &l), 0);
	cr_assert_eq(loop_udp_listen(l, sfd, respond, NULL), 0);
	struct ares_glue *g = glue_for(l, &srv, 2000);
	int qlen = build_query(q, sizeof(q), 0xbeef);
	cr_assert_gt(qlen, 12);
	res.l = l;
	ares_send(ares_glue_channel(g), q, qlen, answer_cb, &res);
	ares_glue_kick(g);
	timer_init(&wd, watchdog, l);
	loop_timer_arm(l, &wd, clock_now_ms() + 5000);
	cr_assert_eq(loop_run(l), 0);
	cr_assert(!watchdog_fired);
	cr_assert_eq(res.calls, 1);
	cr_assert_eq(res.status, ARES_SUCCESS, "status %s", ares_strerror(res.status));
	cr_assert_eq(res.alen, qlen);
	cr_assert_eq(res.abuf[0], 0xbe); /* c-ares keeps our query ID */
	cr_assert_eq(res.abuf[1], 0xef);
	cr_assert(res.abuf[2] & 0x80, "QR set");
	cr_assert_eq(responder_hits, 1);
	loop_timer_cancel(l, &wd);
	ares_glue_free(g);
	loop_free(l);
	close(sfd);
}

Test(ares_glue, silent_server_times_out_through_timer)
{
	struct loop *l;
	struct sockaddr_in srv;
	struct timer wd;
	static struct result res;
	uint8_t q[512];
	int sfd = udp_bound(&srv); /* bound, never read: queries vanish */
	cr_assert_eq(loop_new(NULL, &l), 0);
	struct ares_glue *g = glue_for(l, &srv, 200);
	int qlen = build_query(q, sizeof(q), 0x4242);
	res.l = l;
	uint64_t t0 = clock_now_ms();
	ares_send(ares_glue_channel(g), q, qlen, answer_cb, &res);
	ares_glue_kick(g);
	timer_init(&wd, watchdog, l);
	loop_timer_arm(l, &wd, clock_now_ms() + 5000);
	cr_assert_eq(loop_run(l), 0);
	cr_assert(!watchdog_fired, "the glue's timer never ran c-ares timeouts");
	cr_assert_eq(res.calls, 1);
	cr_assert_eq(res.status, ARES_ETIMEOUT, "status %s", ares_strerror(res.status));
	cr_assert_geq(res.done_at - t0, 190, "timed out after only %lu ms",
	              (unsigned long)(res.done_at - t0));
	loop_timer_cancel(l, &wd);
	ares_glue_free(g);
	loop_free(l);
	close(sfd);
}

/* Freeing the glue with a query outstanding reports ARES_EDESTRUCTION and
 * releases every watch (ASan/valgrind would flag a leak). */
Test(ares_glue, free_with_pending_query)
{
	struct loop *l;
	struct sockaddr_in srv;
	static struct result res;
	uint8_t q[512];
	int sfd = udp_bound(&srv);
	cr_assert_eq(loop_new(NULL, &l), 0);
	struct ares_glue *g = glue_for(l, &srv, 2000);
	int qlen = build_query(q, sizeof(q), 7);
	ares_send(ares_glue_channel(g), q, qlen, answer_cb, &res);
	ares_glue_kick(g);
	ares_glue_free(g);
	cr_assert_eq(res.calls, 1);
	cr_assert_eq(res.status, ARES_EDESTRUCTION);
	loop_free(l);
	close(sfd);
}

/*
 * c-ares 1.18 reads a TCP answer in two ares_process_fd() calls: first the
 * 2-byte length, then the message. When both arrive in one segment only one
 * readiness event comes, so the glue must poll level-triggered or the rest of
 * the answer is never read (seen with knotd's 3.5 KB answers after TC=1).
 */
struct tcp_responder {
	int lfd;
	uint16_t port;
};

static void *tcp_respond_once(void *arg)
{
	struct tcp_responder *t = arg;
	uint8_t buf[2 + 512];
	int fd = accept(t->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	if (n >= 2 + 12) {
		/* Length prefix and answer (the query echoed with QR) in ONE write. */
		buf[2 + 2] |= 0x80;
		send(fd, buf, (size_t)n, MSG_NOSIGNAL);
	}
	/* Keep the connection open until the client is done. */
	recv(fd, buf, sizeof(buf), 0);
	close(fd);
	return NULL;
}

Test(ares_glue, tcp_answer_in_one_segment_is_read_completely)
{
	struct tcp_responder t;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	struct ares_options o = {.timeout = 2000, .tries = 1, .flags = ARES_FLAG_USEVC};
	struct ares_glue *g;
	struct loop *l;
	struct timer wd;
	static struct result res;
	pthread_t th;
	uint8_t q[512];
	char csv[64];

	t.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(t.lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(t.lfd, 4), 0);
	cr_assert_eq(getsockname(t.lfd, (struct sockaddr *)&sin, &sl), 0);
	cr_assert_eq(pthread_create(&th, NULL, tcp_respond_once, &t), 0);

	cr_assert_eq(loop_global_init(), 0);
	cr_assert_eq(loop_new(NULL, &l), 0);
	cr_assert_eq(ares_glue_new(l, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS, &g),
	             0);
	snprintf(csv, sizeof(csv), "127.0.0.1:%u", ntohs(sin.sin_port));
	cr_assert_eq(ares_set_servers_ports_csv(ares_glue_channel(g), csv), ARES_SUCCESS);
	int qlen = build_query(q, sizeof(q), 0x7cb1);
	res.l = l;
	ares_send(ares_glue_channel(g), q, qlen, answer_cb, &res);
	ares_glue_kick(g);
	timer_init(&wd, watchdog, l);
	loop_timer_arm(l, &wd, clock_now_ms() + 5000);
	cr_assert_eq(loop_run(l), 0);
	cr_assert_not(watchdog_fired);
	cr_assert_eq(res.calls, 1);
	cr_assert_eq(res.status, ARES_SUCCESS, "status %s", ares_strerror(res.status));
	cr_assert_eq(res.alen, qlen);
	cr_assert_eq(res.abuf[0], 0x7c);
	loop_timer_cancel(l, &wd);
	ares_glue_free(g); /* closes the TCP socket: the responder's recv returns */
	loop_free(l);
	pthread_join(th, NULL);
	close(t.lfd);
}
