/* Unit tests for core/loop.c on the real kernel, loopback only. Every test
 * bounds its running time with a watchdog timer or socket timeouts. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/loop.h"

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

static int udp_client(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = 3};
	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int big = 1 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	return fd;
}

/* Watchdog: any loop test that hangs stops and fails instead. */
static bool watchdog_fired;
static void watchdog(struct timer *t, uint64_t now, void *arg)
{
	watchdog_fired = true;
	loop_stop(arg);
}

Test(loop, probe_succeeds)
{
	char why[256];
	int r = loop_probe(why, sizeof(why));
	cr_assert_eq(r, 0, "probe failed: %d %s", r, why);
	cr_assert_eq(loop_global_init(), 0);
	cr_assert_eq(loop_global_init(), 0); /* idempotent */
}

/* ---- UDP echo, loop running in its own thread ---- */

static void echo(struct loop *l, void *ctx, const struct loop_dgram *d)
{
	int r = loop_udp_send(l, d->fd, d->peer, d->peerlen, d->payload, d->len);
	cr_assert_eq(r, 0, "udp_send %d", r);
}

static void *run_thread(void *arg)
{
	return (void *)(intptr_t)loop_run(arg);
}

static void echo_n(const struct loop_config *cfg, unsigned n, bool burst, struct loop_stats *st)
{
	struct loop *l;
	struct sockaddr_in srv;
	int sfd = udp_bound(&srv);
	int cfd = udp_client();
	cr_assert_eq(loop_new(cfg, &l), 0);
	cr_assert_eq(loop_udp_listen(l, sfd, echo, NULL), 0);
	char msg[64], got[64];
	if (burst) /* queued before the loop runs: the kernel sees them all at once */
		for (unsigned i = 0; i < n; i++) {
			int len = snprintf(msg, sizeof(msg), "q%u", i);
			cr_assert_eq(
			    sendto(cfd, msg, (size_t)len, 0, (struct sockaddr *)&srv, sizeof(srv)),
			    len);
		}
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, run_thread, l), 0);
	bool seen[1024] = {0};
	for (unsigned i = 0; i < n; i++) {
		if (!burst) {
			int len = snprintf(msg, sizeof(msg), "q%u", i);
			cr_assert_eq(
			    sendto(cfd, msg, (size_t)len, 0, (struct sockaddr *)&srv, sizeof(srv)),
			    len);
		}
		ssize_t r = recv(cfd, got, sizeof(got) - 1, 0);
		cr_assert_gt(r, 0, "reply %u missing (errno %d)", i, errno);
		got[r] = 0;
		unsigned k;
		cr_assert_eq(sscanf(got, "q%u", &k), 1);
		cr_assert_lt(k, n);
		if (!burst)
			cr_assert_eq(k, i);
		cr_assert(!seen[k], "duplicate reply %u", k);
		seen[k] = true;
	}
	loop_stop(l);
	void *ret;
	pthread_join(th, &ret);
	cr_assert_eq((intptr_t)ret, 0);
	loop_get_stats(l, st);
	cr_assert_eq(st->udp_rx, n);
	loop_free(l);
	close(sfd);
	close(cfd);
}

Test(loop, udp_echo)
{
	struct loop_stats st;
	echo_n(NULL, 300, false, &st);
	cr_assert_geq(st.udp_tx, 299); /* the last send's CQE may race the stop */
	cr_assert_eq(st.udp_tx_err, 0);
	cr_assert_eq(st.udp_tx_noslot, 0);
}

Test(loop, udp_rearm_after_buffer_exhaustion)
{
	struct loop_config cfg = {.rx_bufs = 4};
	struct loop_stats st;
	echo_n(&cfg, 200, true, &st);
	/* 200 queued datagrams, 4 buffers: the multishot must have run dry and
	 * been re-armed, yet every query was answered. */
	cr_assert_geq(st.udp_rx_nobufs, 1);
	cr_assert_geq(st.udp_rearms, 1);
}

Test(loop, udp_send_slots_exhausted)
{
	struct loop_config cfg = {.tx_slots = 2};
	struct loop *l;
	struct sockaddr_in dst;
	int fd = udp_bound(&dst);
	cr_assert_eq(loop_new(&cfg, &l), 0);
	/* Not running: nothing completes, so the third send finds no slot. */
	cr_assert_eq(loop_udp_send(l, fd, (struct sockaddr *)&dst, sizeof(dst), "a", 1), 0);
	cr_assert_eq(loop_udp_send(l, fd, (struct sockaddr *)&dst, sizeof(dst), "b", 1), 0);
	cr_assert_eq(loop_udp_send(l, fd, (struct sockaddr *)&dst, sizeof(dst), "c", 1), -ENOBUFS);
	char big[5000] = {0};
	cr_assert_eq(loop_udp_send(l, fd, (struct sockaddr *)&dst, sizeof(dst), big, sizeof(big)),
	             -EMSGSIZE);
	struct loop_stats st;
	loop_get_stats(l, &st);
	cr_assert_eq(st.udp_tx_noslot, 1);
	loop_free(l);
	close(fd);
}

/* ---- timers ---- */

struct tctx {
	struct loop *l;
	uint64_t deadline, fired_at;
	int order;
};
static int fire_seq;

static void tfire(struct timer *t, uint64_t now, void *arg)
{
	struct tctx *c = arg;
	c->fired_at = clock_now_ms();
	c->order = fire_seq++;
	if (c->order == 2)
		loop_stop(c->l);
}

Test(loop, timers_fire_in_order_not_early)
{
	struct loop *l;
	struct timer t[3], wd;
	struct tctx c[3];
	static const unsigned delay[3] = {60, 20, 40};
	cr_assert_eq(loop_new(NULL, &l), 0);
	uint64_t start = clock_now_ms();
	for (int i = 0; i < 3; i++) {
		c[i] = (struct tctx){.l = l, .deadline = start + delay[i], .order = -1};
		timer_init(&t[i], tfire, &c[i]);
		cr_assert_eq(loop_timer_arm(l, &t[i], c[i].deadline), 0);
	}
	timer_init(&wd, watchdog, l);
	loop_timer_arm(l, &wd, start + 5000);
	cr_assert_eq(loop_run(l), 0);
	cr_assert(!watchdog_fired);
	cr_assert_eq(c[1].order, 0);
	cr_assert_eq(c[2].order, 1);
	cr_assert_eq(c[0].order, 2);
	for (int i = 0; i < 3; i++)
		cr_assert_geq(c[i].fired_at, c[i].deadline, "timer %d early", i);
	struct loop_stats st;
	loop_get_stats(l, &st);
	cr_assert_eq(st.timers_run, 3);
	loop_timer_cancel(l, &wd);
	loop_free(l);
}

/* ---- stop from another thread ---- */

static void *stopper(void *arg)
{
	usleep(50 * 1000);
	loop_stop(arg);
	return NULL;
}

Test(loop, stop_from_other_thread)
{
	struct loop *l;
	pthread_t th;
	cr_assert_eq(loop_new(NULL, &l), 0);
	uint64_t t0 = clock_now_ms();
	cr_assert_eq(pthread_create(&th, NULL, stopper, l), 0);
	cr_assert_eq(loop_run(l), 0); /* no timers, no I/O: only the stop can end it */
	cr_assert_geq(clock_now_ms() - t0, 45);
	pthread_join(th, NULL);
	/* A second run stops again. */
	cr_assert_eq(pthread_create(&th, NULL, stopper, l), 0);
	cr_assert_eq(loop_run(l), 0);
	pthread_join(th, NULL);
	loop_free(l);
}

/* ---- stream: connect/accept/recv/send/close on loopback TCP ---- */

struct stream_test {
	struct loop *l;
	int lfd, cfd, afd;
	char sbuf[64], cbuf[64];
	int connected, accepted, echoed, closed;
	uint64_t accept_id;
	int accept_final_res;
};

static void closed_cb(struct loop *l, void *ctx)
{
	struct stream_test *s = ctx;
	if (++s->closed == 3)
		loop_stop(l);
}

static void client_recv_cb(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct stream_test *s = ctx;
	cr_assert_eq(res, 5);
	cr_assert_eq(memcmp(s->cbuf, "HELLO", 5), 0);
	s->echoed = 1;
	cr_assert_eq(loop_close_fd(l, s->cfd, closed_cb, s), 0);
	cr_assert_eq(loop_close_fd(l, s->afd, closed_cb, s), 0);
	cr_assert_eq(loop_close_fd(l, s->lfd, closed_cb, s), 0);
}

static void sent_cb(struct loop *l, void *ctx, int res, unsigned flags)
{
	cr_assert_eq(res, 5);
}

static void server_recv_cb(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct stream_test *s = ctx;
	cr_assert_eq(res, 5);
	for (int i = 0; i < 5; i++)
		s->sbuf[i] = (char)(s->sbuf[i] - 'a' + 'A');
	cr_assert_eq(loop_send(l, s->afd, s->sbuf, 5, sent_cb, s, NULL), 0);
}

static void accept_cb(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct stream_test *s = ctx;
	if (!(flags & LOOP_F_MORE)) { /* the final callback after loop_close_fd */
		s->accept_final_res = res;
		return;
	}
	cr_assert_geq(res, 0);
	s->afd = res;
	s->accepted = 1;
	cr_assert_eq(loop_recv(l, s->afd, s->sbuf, sizeof(s->sbuf), server_recv_cb, s, NULL), 0);
}

static void connect_cb(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct stream_test *s = ctx;
	cr_assert_eq(res, 0, "connect %d", res);
	s->connected = 1;
	cr_assert_eq(loop_send(l, s->cfd, "hello", 5, sent_cb, s, NULL), 0);
	cr_assert_eq(loop_recv(l, s->cfd, s->cbuf, sizeof(s->cbuf), client_recv_cb, s, NULL), 0);
}

Test(loop, stream_round_trip)
{
	static struct stream_test s;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	struct timer wd;
	cr_assert_eq(loop_global_init(), 0);
	cr_assert_eq(loop_new(NULL, &s.l), 0);
	s.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(s.lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(s.lfd, 16), 0);
	cr_assert_eq(getsockname(s.lfd, (struct sockaddr *)&sin, &sl), 0);
	s.cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	s.afd = -1;
	s.accept_final_res = 1;
	cr_assert_eq(loop_accept(s.l, s.lfd, accept_cb, &s, &s.accept_id), 0);
	cr_assert_eq(
	    loop_connect(s.l, s.cfd, (struct sockaddr *)&sin, sl, 2000, connect_cb, &s, NULL), 0);
	timer_init(&wd, watchdog, s.l);
	loop_timer_arm(s.l, &wd, clock_now_ms() + 5000);
	cr_assert_eq(loop_run(s.l), 0);
	cr_assert(!watchdog_fired);
	cr_assert(s.connected && s.accepted && s.echoed);
	cr_assert_eq(s.closed, 3);
	cr_assert_lt(s.accept_final_res, 0); /* multishot accept ended by the close */
	cr_assert_eq(loop_cancel(s.l, s.accept_id), -ENOENT); /* its id is dead */
	/* The fds really were closed by the loop. */
	cr_assert_eq(fcntl(s.lfd, F_GETFD), -1);
	loop_timer_cancel(s.l, &wd);
	loop_free(s.l);
}

/* loop_close_fd on an fd with a pending recv: the recv's final callback
 * comes first (-ECANCELED), then the fd is closed and done runs. */
static int order_log[4], order_n;
static void pending_recv_cb(struct loop *l, void *ctx, int res, unsigned flags)
{
	cr_assert_eq(res, -ECANCELED);
	order_log[order_n++] = 1;
}
static void pending_done(struct loop *l, void *ctx)
{
	order_log[order_n++] = 2;
	loop_stop(l);
}
struct close_ctx {
	struct loop *l;
	int fd;
};
static void do_close(struct timer *t, uint64_t now, void *arg)
{
	struct close_ctx *c = arg;
	cr_assert_eq(loop_close_fd(c->l, c->fd, pending_done, NULL), 0);
	cr_assert_eq(loop_close_fd(c->l, c->fd, pending_done, NULL), -EALREADY);
}

Test(loop, close_fd_cancels_pending_recv)
{
	struct loop *l;
	int sv[2];
	char buf[16];
	struct timer t, wd;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(loop_new(NULL, &l), 0);
	cr_assert_eq(loop_recv(l, sv[0], buf, sizeof(buf), pending_recv_cb, NULL, NULL), 0);
	struct close_ctx c = {l, sv[0]};
	timer_init(&t, do_close, &c);
	loop_timer_arm(l, &t, clock_now_ms() + 20);
	timer_init(&wd, watchdog, l);
	loop_timer_arm(l, &wd, clock_now_ms() + 5000);
	cr_assert_eq(loop_run(l), 0);
	cr_assert(!watchdog_fired);
	cr_assert_eq(order_n, 2);
	cr_assert_eq(order_log[0], 1);
	cr_assert_eq(order_log[1], 2);
	cr_assert_eq(fcntl(sv[0], F_GETFD), -1);
	loop_timer_cancel(l, &wd);
	loop_free(l);
	close(sv[1]);
}

/* Connect with a timeout against a listener whose accept queue is full:
 * the kernel drops our SYN, so only the linked timeout can end it. */
static int conn_res = 1;
static void conn_timeout_cb(struct loop *l, void *ctx, int res, unsigned flags)
{
	conn_res = res;
	loop_stop(l);
}

Test(loop, connect_times_out)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	struct loop *l;
	struct timer wd;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(lfd, 0), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	int fill[4];
	for (int i = 0; i < 4; i++) { /* fill the accept queue, never accept */
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		(void)connect(fill[i], (struct sockaddr *)&sin, sl);
	}
	usleep(20 * 1000);
	cr_assert_eq(loop_new(NULL, &l), 0);
	int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint64_t t0 = clock_now_ms();
	cr_assert_eq(
	    loop_connect(l, cfd, (struct sockaddr *)&sin, sl, 150, conn_timeout_cb, NULL, NULL), 0);
	timer_init(&wd, watchdog, l);
	loop_timer_arm(l, &wd, clock_now_ms() + 5000);
	cr_assert_eq(loop_run(l), 0);
	cr_assert(!watchdog_fired);
	cr_assert_eq(conn_res, -ETIMEDOUT, "connect res %d", conn_res);
	cr_assert_geq(clock_now_ms() - t0, 140);
	loop_timer_cancel(l, &wd);
	loop_free(l);
	close(cfd);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
}

/* Timers keep running while a sender floods the UDP listener: the per-turn
 * completion budget puts timers back in front every turn (STYLE.md §8). */
struct flood {
	struct sockaddr_in dst;
	volatile int stop;
};
static void *flooder(void *arg)
{
	struct flood *f = arg;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	while (!f->stop)
		(void)sendto(fd, "flood", 5, MSG_DONTWAIT, (struct sockaddr *)&f->dst,
		             sizeof(f->dst));
	close(fd);
	return NULL;
}
static unsigned ticks;
static struct loop *tick_loop;
static struct timer tick_t;
static void tick(struct timer *t, uint64_t now, void *arg)
{
	if (++ticks == 20)
		loop_stop(tick_loop);
	else
		loop_timer_arm(tick_loop, t, now + 5);
}
static void sink(struct loop *l, void *ctx, const struct loop_dgram *d)
{
	(void)loop_udp_send(l, d->fd, d->peer, d->peerlen, d->payload, d->len);
}

Test(loop, timers_not_starved_by_udp_flood)
{
	static struct flood f;
	struct timer wd;
	pthread_t th[2];
	int sfd = udp_bound(&f.dst);
	cr_assert_eq(loop_new(NULL, &tick_loop), 0);
	cr_assert_eq(loop_udp_listen(tick_loop, sfd, sink, NULL), 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, flooder, &f), 0);
	usleep(20 * 1000);
	timer_init(&tick_t, tick, NULL);
	loop_timer_arm(tick_loop, &tick_t, clock_now_ms() + 5);
	timer_init(&wd, watchdog, tick_loop);
	loop_timer_arm(tick_loop, &wd, clock_now_ms() + 10000);
	cr_assert_eq(loop_run(tick_loop), 0);
	f.stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	cr_assert(!watchdog_fired, "timers starved: %u ticks", ticks);
	cr_assert_eq(ticks, 20);
	struct loop_stats st;
	loop_get_stats(tick_loop, &st);
	cr_assert_gt(st.udp_rx, 0, "the flood reached the loop");
	loop_timer_cancel(tick_loop, &wd);
	loop_free(tick_loop);
	close(sfd);
}

/*
 * loop_drain: once it returns, the kernel holds no reference to our sockets,
 * so closing one frees its port at once (a restarted daemon binds again).
 * Without the drain, io_uring_queue_exit() leaves the cancellation to a
 * kernel worker and the port may still be bound for a moment.
 */
struct drain_run {
	struct loop *l;
	int run, drain;
};

static void *run_and_drain(void *arg)
{
	struct drain_run *d = arg;
	d->run = loop_run(d->l);
	d->drain = loop_drain(d->l, 1000);
	return NULL;
}

static void nop_dgram(struct loop *l, void *ctx, const struct loop_dgram *d)
{
}

Test(loop, drain_releases_sockets_before_exit)
{
	for (int round = 0; round < 20; round++) {
		struct sockaddr_in sin;
		struct drain_run d = {0};
		pthread_t th;
		int fd = udp_bound(&sin);

		cr_assert_eq(loop_new(NULL, &d.l), 0);
		cr_assert_eq(loop_udp_listen(d.l, fd, nop_dgram, NULL), 0);
		cr_assert_eq(pthread_create(&th, NULL, run_and_drain, &d), 0);
		usleep(2000);
		loop_stop(d.l);
		pthread_join(th, NULL);
		cr_assert_eq(d.run, 0);
		cr_assert_eq(d.drain, 0, "drain timed out");
		close(fd);
		/* The port must be free now, before loop_free. */
		int again = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		cr_assert_eq(bind(again, (struct sockaddr *)&sin, sizeof(sin)), 0,
		             "round %d: port still bound after drain: %s", round, strerror(errno));
		close(again);
		loop_free(d.l);
	}
}

/* A multishot accept whose owner re-arms it on every final completion (as a
 * server does after errors) must not keep loop_drain from finishing. */
static void rearming_accept(struct loop *l, void *ctx, int res, unsigned flags)
{
	if (res >= 0)
		close(res);
	if (!(flags & LOOP_F_MORE))
		(void)loop_accept(l, *(int *)ctx, rearming_accept, ctx, NULL);
}

Test(loop, drain_finishes_although_callbacks_re_arm)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct drain_run d = {0};
	pthread_t th;
	static int lfd;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(lfd, 8), 0);
	cr_assert_eq(loop_new(NULL, &d.l), 0);
	cr_assert_eq(loop_accept(d.l, lfd, rearming_accept, &lfd, NULL), 0);
	cr_assert_eq(pthread_create(&th, NULL, run_and_drain, &d), 0);
	usleep(2000);
	uint64_t t0 = clock_now_ms();
	loop_stop(d.l);
	pthread_join(th, NULL);
	cr_assert_eq(d.drain, 0, "drain timed out: the re-armed accept kept it busy");
	cr_assert_lt(clock_now_ms() - t0, 500);
	close(lfd);
	loop_free(d.l);
}

/* ---- loop_post: work handed from other threads ---- */

#define POSTERS    4
#define POSTS_EACH 2000
struct post_test {
	struct loop *l;
	pthread_t owner;
	_Atomic unsigned ran, wrong_thread, out_of_order, refused;
	unsigned last[POSTERS]; /* only the loop thread writes these */
};
struct post_arg {
	struct post_test *t;
	unsigned poster, seq;
};
static struct post_arg post_args[POSTERS][POSTS_EACH];

static void post_fn(struct loop *l, void *arg)
{
	struct post_arg *a = arg;
	struct post_test *t = a->t;
	if (!pthread_equal(pthread_self(), t->owner))
		t->wrong_thread++;
	if (a->seq != t->last[a->poster] + 1)
		t->out_of_order++;
	t->last[a->poster] = a->seq;
	if (++t->ran == POSTERS * POSTS_EACH)
		loop_stop(l);
}

static void *poster(void *arg)
{
	struct post_arg *row = arg;
	for (unsigned i = 0; i < POSTS_EACH; i++) {
		int r;
		/* -EAGAIN is back-pressure: wait for the loop, bounded. */
		for (unsigned tries = 0;
		     (r = loop_post(row[i].t->l, post_fn, &row[i])) == -EAGAIN && tries < 100000;
		     tries++)
			usleep(50);
		if (r)
			row[i].t->refused++;
	}
	return NULL;
}

Test(loop, post_runs_on_loop_thread_in_order)
{
	static struct post_test t;
	struct timer wd;
	pthread_t th[POSTERS];

	cr_assert_eq(loop_new(NULL, &t.l), 0);
	t.owner = pthread_self();
	timer_init(&wd, watchdog, t.l);
	loop_timer_arm_in(t.l, &wd, 10000);
	for (unsigned p = 0; p < POSTERS; p++) {
		for (unsigned i = 0; i < POSTS_EACH; i++)
			post_args[p][i] = (struct post_arg){&t, p, i + 1};
		cr_assert_eq(pthread_create(&th[p], NULL, poster, post_args[p]), 0);
	}
	cr_assert_eq(loop_run(t.l), 0);
	for (unsigned p = 0; p < POSTERS; p++)
		pthread_join(th[p], NULL);
	cr_assert(!watchdog_fired, "posts did not all run within 10 s (ran %u)", t.ran);
	cr_assert_eq(t.refused, 0);
	cr_assert_eq(t.ran, POSTERS * POSTS_EACH);
	cr_assert_eq(t.wrong_thread, 0);
	cr_assert_eq(t.out_of_order, 0);
	loop_free(t.l);
}

static unsigned drained_posts;
static void count_post(struct loop *l, void *arg)
{
	(void)l;
	(void)arg;
	drained_posts++;
}

Test(loop, post_queue_bounded_then_drained_and_closed)
{
	struct loop *l;
	unsigned accepted = 0;
	int r;

	cr_assert_eq(loop_new(NULL, &l), 0);
	/* Not running: posts queue up to the bound, then back-pressure. */
	while ((r = loop_post(l, count_post, NULL)) == 0 && accepted <= LOOP_POST_MAX)
		accepted++;
	cr_assert_eq(r, -EAGAIN);
	cr_assert_eq(accepted, LOOP_POST_MAX);
	/* loop_free runs every accepted post exactly once (they own state). */
	loop_free(l);
	cr_assert_eq(drained_posts, LOOP_POST_MAX);

	drained_posts = 0;
	cr_assert_eq(loop_new(NULL, &l), 0);
	cr_assert_eq(loop_post(l, count_post, NULL), 0);
	cr_assert_eq(loop_drain(l, 100), 0);
	cr_assert_eq(drained_posts, 1);
	cr_assert_eq(loop_post(l, count_post, NULL), -ESHUTDOWN);
	loop_free(l);
	cr_assert_eq(drained_posts, 1);
}

/*
 * loop_udp_listen_cmsg: the received TTL / hop limit reaches the callback
 * (BFD's GTSM check, RFC 5881 §5); plain loop_udp_listen reports -1.
 */
struct ttl_seen {
	int ttl[8];
	char data[8][16];
	unsigned n, want;
};

static void ttl_record(struct loop *l, void *ctx, const struct loop_dgram *d)
{
	struct ttl_seen *s = ctx;
	if (s->n < 8) {
		s->ttl[s->n] = d->ttl;
		snprintf(s->data[s->n], sizeof(s->data[0]), "%.*s", (int)d->len, d->payload);
		s->n++;
	}
	if (s->n == s->want)
		loop_stop(l);
}

/* Sends one datagram per hop value from a fresh socket of family fam to dst. */
static void send_with_hops(int fam, const struct sockaddr *dst, socklen_t dl, const int *hops,
                           unsigned n)
{
	int fd = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	for (unsigned i = 0; i < n; i++) {
		char m[16];
		int len = snprintf(m, sizeof(m), "hops%d", hops[i]);
		if (fam == AF_INET6)
			cr_assert_eq(
			    setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops[i], sizeof(int)),
			    0);
		else
			cr_assert_eq(setsockopt(fd, IPPROTO_IP, IP_TTL, &hops[i], sizeof(int)), 0);
		cr_assert_eq(sendto(fd, m, (size_t)len, 0, dst, dl), len);
	}
	close(fd);
}

static void run_until_stopped(struct loop *l)
{
	struct timer wd;
	watchdog_fired = false;
	timer_init(&wd, watchdog, l);
	loop_timer_arm(l, &wd, clock_now_ms() + 5000);
	cr_assert_eq(loop_run(l), 0);
	cr_assert(!watchdog_fired, "datagrams did not arrive");
	loop_timer_cancel(l, &wd);
}

Test(loop, udp_listen_cmsg_reports_the_ipv4_ttl)
{
	static const int hops[] = {255, 17, 1};
	struct ttl_seen s = {.want = 3};
	struct sockaddr_in srv;
	struct loop *l;
	int sfd = udp_bound(&srv);
	cr_assert_eq(loop_new(NULL, &l), 0);
	cr_assert_eq(loop_udp_listen_cmsg(l, sfd, ttl_record, &s), 0);
	send_with_hops(AF_INET, (struct sockaddr *)&srv, sizeof(srv), hops, 3);
	run_until_stopped(l);
	for (unsigned i = 0; i < 3; i++) {
		char want[16];
		snprintf(want, sizeof(want), "hops%d", hops[i]);
		cr_expect_str_eq(s.data[i], want, "the payload follows the control area");
		cr_expect_eq(s.ttl[i], hops[i], "datagram %u: ttl %d", i, s.ttl[i]);
	}
	loop_free(l);
	close(sfd);
}

Test(loop, udp_listen_cmsg_reports_the_ipv6_hop_limit)
{
	static const int hops[] = {255, 64};
	struct ttl_seen s = {.want = 2};
	struct sockaddr_in6 srv = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	socklen_t sl = sizeof(srv);
	struct loop *l;
	int sfd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(sfd, 0);
	if (bind(sfd, (struct sockaddr *)&srv, sizeof(srv)) != 0) {
		close(sfd);
		cr_skip_test("no ::1 here");
	}
	cr_assert_eq(getsockname(sfd, (struct sockaddr *)&srv, &sl), 0);
	cr_assert_eq(loop_new(NULL, &l), 0);
	cr_assert_eq(loop_udp_listen_cmsg(l, sfd, ttl_record, &s), 0);
	send_with_hops(AF_INET6, (struct sockaddr *)&srv, sizeof(srv), hops, 2);
	run_until_stopped(l);
	cr_expect_eq(s.ttl[0], 255);
	cr_expect_eq(s.ttl[1], 64);
	cr_expect_str_eq(s.data[1], "hops64");
	loop_free(l);
	close(sfd);
}

Test(loop, udp_listen_without_cmsg_reports_no_ttl)
{
	static const int hops[] = {255};
	struct ttl_seen s = {.want = 1};
	struct sockaddr_in srv;
	struct loop *l;
	int sfd = udp_bound(&srv);
	cr_assert_eq(loop_new(NULL, &l), 0);
	cr_assert_eq(loop_udp_listen(l, sfd, ttl_record, &s), 0);
	send_with_hops(AF_INET, (struct sockaddr *)&srv, sizeof(srv), hops, 1);
	run_until_stopped(l);
	cr_expect_eq(s.ttl[0], -1);
	cr_expect_str_eq(s.data[0], "hops255");
	cr_expect_eq(loop_udp_listen_cmsg(l, -1, ttl_record, &s), -EINVAL);
	loop_free(l);
	close(sfd);
}

/*
 * Issue 10, fault 8: closing a connection must not cost a scan of every op
 * slot and send slot (a client churning connect/close would buy max_ops +
 * tx_slots steps per close). The same number of close cycles (a socketpair,
 * a recv held on it, loop_close_fd) with a 128-times larger op table must
 * not take more than a few times as long; a scan per close made the large
 * table about a hundred times slower (tens of MiB read per close).
 */
struct churn {
	struct loop *l;
	unsigned left;
	int peer;
	char buf[16];
};

static void churn_next(struct churn *c);

static void churn_recv_cb(struct loop *l, void *ctx, int res, unsigned flags)
{
	(void)l;
	(void)ctx;
	(void)flags;
	cr_assert_eq(res, -ECANCELED);
}

static void churn_closed(struct loop *l, void *ctx)
{
	struct churn *c = ctx;
	(void)l;
	close(c->peer);
	churn_next(c);
}

static void churn_next(struct churn *c)
{
	int sv[2];
	if (c->left == 0) {
		loop_stop(c->l);
		return;
	}
	c->left--;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	c->peer = sv[1];
	cr_assert_eq(loop_recv(c->l, sv[0], c->buf, sizeof(c->buf), churn_recv_cb, c, NULL), 0);
	cr_assert_eq(loop_close_fd(c->l, sv[0], churn_closed, c), 0);
}

static void churn_start(struct timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	churn_next(arg);
}

/* Microseconds for n close cycles on a loop with max_ops op slots (best of 3). */
static uint64_t churn_us(unsigned max_ops, unsigned n)
{
	struct loop_config cfg = {.max_ops = max_ops};
	uint64_t best = UINT64_MAX;
	for (int round = 0; round < 3; round++) {
		struct churn c = {.left = n};
		struct timer t, wd;
		cr_assert_eq(loop_new(&cfg, &c.l), 0);
		timer_init(&t, churn_start, &c);
		loop_timer_arm(c.l, &t, clock_now_ms());
		timer_init(&wd, watchdog, c.l);
		loop_timer_arm(c.l, &wd, clock_now_ms() + 20000);
		uint64_t t0 = clock_now_us();
		cr_assert_eq(loop_run(c.l), 0);
		uint64_t dt = clock_now_us() - t0;
		cr_assert(!watchdog_fired);
		cr_assert_eq(c.left, 0);
		loop_timer_cancel(c.l, &wd);
		loop_free(c.l);
		if (dt < best)
			best = dt;
	}
	return best;
}

Test(loop, close_fd_cost_does_not_grow_with_the_op_table)
{
	enum { N = 400 };
	cr_assert_eq(loop_global_init(), 0);
	uint64_t small = churn_us(1024, N), large = churn_us(1024 * 128, N);
	fprintf(stderr, "close cycle: %.1f us with 1024 op slots, %.1f us with 131072\n",
	        (double)small / N, (double)large / N);
	cr_assert_lt(large, 4 * small + 20000, "close scales with the op table: %llu vs %llu us",
	             (unsigned long long)large, (unsigned long long)small);
}

/* loop_recv reports whether a read drained the socket (LOOP_F_DRAINED), and a
 * LOOP_RECV_WAIT receive on an empty socket waits for data, then reads it. */
struct drain_ctx {
	struct loop *l;
	int fd, peer, step;
	char buf[64];
	int res[3];
	unsigned flags[3];
};
static void drain_recv_cb(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct drain_ctx *d = ctx;
	d->res[d->step] = res;
	d->flags[d->step] = flags;
	d->step++;
	if (d->step == 1)
		cr_assert_eq(loop_recv(l, d->fd, d->buf, sizeof(d->buf), drain_recv_cb, d, NULL),
		             0);
	else if (d->step == 2)
		cr_assert_eq(loop_recv_opt(l, d->fd, d->buf, sizeof(d->buf), LOOP_RECV_WAIT,
		                           drain_recv_cb, d, NULL),
		             0);
	else
		loop_stop(l);
}
static void drain_late_write(struct timer *t, uint64_t now, void *arg)
{
	struct drain_ctx *d = arg;
	cr_assert_eq(write(d->peer, "abc", 3), 3);
}

Test(loop, recv_reports_drained_and_waits_for_data)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), cfd, afd;
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(lfd, 1), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(cfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(afd, 0);
	cr_assert_eq(write(cfd, "0123456789", 10), 10);

	struct loop *l;
	struct timer t, wd;
	struct drain_ctx d = {.fd = afd, .peer = cfd};
	cr_assert_eq(loop_new(NULL, &l), 0);
	d.l = l;
	cr_assert_eq(loop_recv_opt(l, afd, d.buf, 4, 2u, drain_recv_cb, &d, NULL), -EINVAL);
	/* Let the ten bytes arrive before the first read (loopback is immediate,
	 * but the first read must find them all queued). */
	for (int i = 0; i < 100; i++) {
		int inq = 0;
		if (ioctl(afd, FIONREAD, &inq) == 0 && inq == 10)
			break;
		usleep(1000);
	}
	cr_assert_eq(loop_recv(l, afd, d.buf, 4, drain_recv_cb, &d, NULL), 0);
	timer_init(&t, drain_late_write, &d);
	loop_timer_arm(l, &t, clock_now_ms() + 30);
	timer_init(&wd, watchdog, l);
	loop_timer_arm(l, &wd, clock_now_ms() + 5000);
	cr_assert_eq(loop_run(l), 0);
	cr_assert(!watchdog_fired);
	cr_assert_eq(d.step, 3);
	cr_assert_eq(d.res[0], 4);
	cr_assert_eq(d.flags[0] & LOOP_F_DRAINED, 0,
	             "6 bytes were left, yet the read said drained");
	cr_assert_eq(d.res[1], 6);
	cr_assert_neq(d.flags[1] & LOOP_F_DRAINED, 0, "the read of the rest did not say drained");
	cr_assert_eq(d.res[2], 3, "the waiting receive read %d", d.res[2]);
	cr_assert_eq(memcmp(d.buf, "abc", 3), 0);
	loop_timer_cancel(l, &wd);
	loop_free(l);
	close(afd);
	close(cfd);
	close(lfd);
}
