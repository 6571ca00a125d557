/*
 * stream_srv.c: bounded request/answer connections (see stream_srv.h).
 *
 * LIFETIME of a connection: created on accept; conn_close() detaches it at
 * once (slot freed, generation bumped, srv pointer kept for nothing but the
 * loop) and hands the fd to loop_close_fd(); the final callbacks of its recv
 * and send see `closing` and touch nothing else; conn_done frees it. Nothing
 * here frees a connection inside a call that a caller may still be inside:
 * stream_srv_reply() never closes (a failed send dooms the connection and its
 * timer, armed at 0, closes it on the next turn).
 */
#include "core/stream_srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"

#define ACCEPT_RETRY_MS 1000

struct sconn {
	struct stream_srv *srv;
	int fd;
	uint32_t slot, gen;
	bool reading, sending, waiting, eof, closing, close_after, doomed;
	struct timer timer;
	size_t rx_len;
	char *tx;
	uint8_t rx[]; /* max_request bytes */
};

struct stream_srv {
	struct loop *l;
	struct stream_srv_conf conf;
	stream_srv_request_fn fn;
	void *arg;
	int lfd;
	bool accepting, closed;
	struct timer accept_retry;
	struct sconn **conns;
	uint32_t *gens;
	struct stream_srv_stats st;
};

static uint64_t id_of(const struct sconn *c)
{
	return (uint64_t)c->gen << 32 | c->slot;
}

static struct sconn *lookup(const struct stream_srv *s, uint64_t id)
{
	uint32_t slot = (uint32_t)id, gen = (uint32_t)(id >> 32);

	if (slot >= s->conf.max_conns || !s->conns[slot] || s->conns[slot]->gen != gen)
		return NULL;
	return s->conns[slot];
}

/* ---------------------------------------------------------------- connections */

static void conn_done(struct loop *l, void *ctx)
{
	struct sconn *c = ctx;

	(void)l;
	free(c->tx);
	free(c);
}

static void conn_close(struct sconn *c)
{
	struct stream_srv *s = c->srv;

	if (c->closing)
		return;
	c->closing = true;
	s->conns[c->slot] = NULL;
	s->gens[c->slot]++;
	s->st.open--;
	loop_timer_cancel(s->l, &c->timer);
	if (loop_close_fd(s->l, c->fd, conn_done, c) < 0) {
		close(c->fd);
		conn_done(s->l, c);
	}
}

/* A new deadline: the connection began, an answer was handed over or sent. */
static void conn_touch(struct sconn *c)
{
	loop_timer_cancel(c->srv->l, &c->timer);
	loop_timer_arm_in(c->srv->l, &c->timer, c->srv->conf.timeout_ms);
}

static void on_timer(struct timer *t, uint64_t now, void *arg)
{
	struct sconn *c = arg;

	(void)t;
	(void)now;
	if (!c->doomed) {
		c->srv->st.timeouts++;
		log_debug(c->srv->conf.name, "connection closed: no progress in %u ms",
		          c->srv->conf.timeout_ms);
	}
	conn_close(c);
}

static void on_recv(struct loop *l, void *ctx, int res, unsigned flags);

/*
 * After every event: hand complete requests to the protocol, then read more
 * or close. Must be the last thing an event handler does with c.
 */
static void conn_pump(struct sconn *c)
{
	struct stream_srv *s = c->srv;

	while (!c->closing && !c->waiting && !c->sending && !c->doomed && c->rx_len) {
		bool last = c->eof || c->rx_len == s->conf.max_request;
		c->waiting = true; /* before fn: it may answer at once */
		int r = s->fn(s->arg, id_of(c), c->rx, c->rx_len, last);
		if (r < 0 || (r == 0 && last)) {
			conn_close(c);
			return;
		}
		if (r == 0) {
			c->waiting = false;
			break;
		}
		s->st.requests++;
		if (c->waiting)
			conn_touch(c); /* the deadline now bounds our own answer */
		size_t n = (size_t)r < c->rx_len ? (size_t)r : c->rx_len;
		memmove(c->rx, c->rx + n, c->rx_len - n);
		c->rx_len -= n;
	}
	if (c->closing || c->doomed || c->waiting || c->sending || c->reading)
		return;
	if (c->eof || c->close_after) {
		conn_close(c);
		return;
	}
	if (loop_recv(s->l, c->fd, c->rx + c->rx_len, s->conf.max_request - c->rx_len, on_recv, c,
	              NULL) < 0) {
		conn_close(c);
		return;
	}
	c->reading = true;
}

static void on_recv(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct sconn *c = ctx;

	(void)l;
	(void)flags;
	c->reading = false;
	if (c->closing || res == -ECANCELED)
		return;
	if (res < 0) {
		conn_close(c);
		return;
	}
	if (res == 0)
		c->eof = true; /* answer what was asked, then close */
	else
		c->rx_len += (size_t)res;
	/* No conn_touch here: a request must arrive whole within timeout_ms, so a
	 * client trickling a byte at a time (slowloris) cannot hold a slot. */
	conn_pump(c);
}

static void on_sent(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct sconn *c = ctx;

	(void)l;
	(void)flags;
	c->sending = false;
	free(c->tx);
	c->tx = NULL;
	if (c->closing || res == -ECANCELED)
		return;
	if (res < 0 || c->close_after) {
		conn_close(c);
		return;
	}
	conn_touch(c);
	conn_pump(c);
}

static void conn_new(struct stream_srv *s, int fd)
{
	struct sconn *c;
	unsigned slot;

	for (slot = 0; slot < s->conf.max_conns; slot++)
		if (!s->conns[slot])
			break;
	if (slot == s->conf.max_conns) {
		s->st.refused++;
		log_debug(s->conf.name, "connection refused: %u open", s->conf.max_conns);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c) + s->conf.max_request);
	if (!c) {
		close(fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	c->slot = slot;
	c->gen = s->gens[slot];
	timer_init(&c->timer, on_timer, c);
	s->conns[slot] = c;
	s->st.open++;
	s->st.accepted++;
	conn_touch(c);
	conn_pump(c);
}

int stream_srv_reply(struct stream_srv *s, uint64_t id, char *buf, size_t len, bool close_after)
{
	struct sconn *c = lookup(s, id);

	if (!c) {
		free(buf);
		return -ENOTCONN;
	}
	if (!c->waiting || c->sending) {
		free(buf);
		return -EPROTO;
	}
	c->waiting = false;
	c->close_after = c->close_after || close_after;
	if (!buf || len == 0 || loop_send(s->l, c->fd, buf, len, on_sent, c, NULL) < 0) {
		free(buf);
		/* Closed from the timer: the caller may be inside conn_pump. */
		c->doomed = true;
		loop_timer_cancel(s->l, &c->timer);
		loop_timer_arm_in(s->l, &c->timer, 0);
		return 0;
	}
	c->tx = buf;
	c->sending = true;
	conn_touch(c); /* a client that never reads gets timeout_ms from here */
	return 0;
}

bool stream_srv_alive(const struct stream_srv *s, uint64_t id)
{
	return lookup(s, id) != NULL;
}

/* ---------------------------------------------------------------- listener */

static void on_accept(struct loop *l, void *ctx, int res, unsigned flags);

static void accept_arm(struct stream_srv *s)
{
	if (s->accepting || s->closed)
		return;
	if (loop_accept(s->l, s->lfd, on_accept, s, NULL) < 0) {
		loop_timer_arm_in(s->l, &s->accept_retry, ACCEPT_RETRY_MS);
		return;
	}
	s->accepting = true;
}

static void on_accept_retry(struct timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	accept_arm(arg);
}

static void on_accept(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct stream_srv *s = ctx;

	(void)l;
	if (!(flags & LOOP_F_MORE))
		s->accepting = false;
	if (res >= 0) {
		if (s->closed)
			close(res);
		else
			conn_new(s, res);
	}
	if (res == -ECANCELED || s->closed || s->accepting)
		return;
	if (res < 0) {
		/* EMFILE and the like: try again later rather than spin. */
		log_warn(s->conf.name, "accept: %s", strerror(-res));
		loop_timer_arm_in(s->l, &s->accept_retry, ACCEPT_RETRY_MS);
		return;
	}
	accept_arm(s); /* the kernel ended the multishot (CQ overflow) */
}

int stream_srv_new(struct loop *l, int listen_fd, const struct stream_srv_conf *conf,
                   stream_srv_request_fn fn, void *arg, struct stream_srv **out)
{
	struct stream_srv *s;
	int r;

	if (!conf->max_conns || !conf->max_request || !conf->timeout_ms || !fn)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->conns = calloc(conf->max_conns, sizeof(*s->conns));
	s->gens = calloc(conf->max_conns, sizeof(*s->gens));
	if (!s->conns || !s->gens) {
		free(s->conns);
		free(s->gens);
		free(s);
		return -ENOMEM;
	}
	s->l = l;
	s->conf = *conf;
	s->fn = fn;
	s->arg = arg;
	s->lfd = listen_fd;
	timer_init(&s->accept_retry, on_accept_retry, s);
	r = loop_accept(l, listen_fd, on_accept, s, NULL);
	if (r < 0) {
		free(s->conns);
		free(s->gens);
		free(s);
		return r;
	}
	s->accepting = true;
	*out = s;
	return 0;
}

void stream_srv_get_stats(const struct stream_srv *s, struct stream_srv_stats *out)
{
	*out = s->st;
}

void stream_srv_close(struct stream_srv *s)
{
	if (!s || s->closed)
		return;
	s->closed = true;
	loop_timer_cancel(s->l, &s->accept_retry);
	if (loop_close_fd(s->l, s->lfd, NULL, NULL) < 0)
		close(s->lfd);
	s->lfd = -1;
	for (unsigned i = 0; i < s->conf.max_conns; i++)
		if (s->conns[i])
			conn_close(s->conns[i]);
}

void stream_srv_free(struct stream_srv *s)
{
	if (!s)
		return;
	/* Never closed (a start that failed): the loop is gone, its final
	 * callbacks ran; what is still attached is ours to release. */
	for (unsigned i = 0; i < s->conf.max_conns; i++) {
		struct sconn *c = s->conns[i];
		if (!c)
			continue;
		close(c->fd);
		conn_done(NULL, c);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	free(s->conns);
	free(s->gens);
	free(s);
}
