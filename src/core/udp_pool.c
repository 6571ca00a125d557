/*
 * udp_pool.c: connected UDP sockets rotated by use and age (see udp_pool.h).
 *
 * A socket is IN_SERVICE (in a slot), RETIRED (out of its slot, kept open
 * while held) or CLOSING (loop_close_fd issued; freed by its done
 * callback). Every socket not yet freed is on the pool's `all` list, so
 * udp_pool_free can tell the ones still closing that the pool is gone:
 * their callbacks may come after the pool's memory is returned.
 */
#include "core/udp_pool.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/rand.h"

enum sock_state { SOCK_IN_SERVICE, SOCK_RETIRED, SOCK_CLOSING };

struct udp_sock {
	struct udp_pool *pool; /* NULL once the pool is freed */
	int fd;
	uint16_t port;
	enum sock_state state;
	bool deaf; /* its receive stopped for good: replace at the next pick */
	unsigned refs;
	unsigned sends;
	uint64_t born;
	struct udp_sock *prev, *next; /* the pool's `all` list */
};

struct udp_pool {
	struct loop *l;
	struct rand *rng;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	struct udp_pool_conf c;
	udp_pool_dgram_fn on_dgram;
	udp_pool_error_fn on_error;
	void *ctx;
	struct udp_sock *slot[UDP_POOL_MAX];
	struct udp_sock *all;
	struct udp_pool_stats st;
};

static void unlink_sock(struct udp_pool *p, struct udp_sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		p->all = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

static void sock_closed(struct loop *l, void *ctx)
{
	struct udp_sock *s = ctx;

	(void)l;
	if (s->pool)
		unlink_sock(s->pool, s);
	free(s);
}

static void close_sock(struct udp_pool *p, struct udp_sock *s)
{
	s->state = SOCK_CLOSING;
	p->st.closed++;
	/* Cancels its receive and any send still in flight, then closes. */
	int r = loop_close_fd(p->l, s->fd, sock_closed, s);
	if (r < 0)
		log_err("udp_pool", "cannot close socket %d (%s): it stays open", s->fd,
		        strerror(-r));
}

/* Out of service: no more sends; closed once nobody holds it. */
static void retire(struct udp_pool *p, struct udp_sock *s)
{
	if (s->state != SOCK_IN_SERVICE)
		return;
	for (unsigned i = 0; i < p->c.size; i++)
		if (p->slot[i] == s)
			p->slot[i] = NULL;
	s->state = SOCK_RETIRED;
	p->st.retired++;
	if (s->refs == 0)
		close_sock(p, s);
}

static void sock_dgram(struct loop *l, void *ctx, const struct loop_dgram *d)
{
	struct udp_sock *s = ctx;
	struct udp_pool *p = s->pool;

	(void)l;
	if (!p || s->state == SOCK_CLOSING)
		return;
	p->st.datagrams++;
	p->on_dgram(p->ctx, s, d->payload, d->len);
}

static void sock_error(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct udp_sock *s = ctx;
	struct udp_pool *p = s->pool;

	(void)l;
	if (!p || s->state == SOCK_CLOSING || res == -ECANCELED)
		return;
	p->st.errors++;
	if (!(flags & LOOP_F_MORE)) {
		/* The receive stopped for good: nothing sent on s can be answered. */
		log_warn("udp_pool", "receive on socket %d (port %u) stopped: %s", s->fd, s->port,
		         strerror(-res));
		s->deaf = true;
	}
	p->on_error(p->ctx, s, res);
	if (s->deaf && s->state == SOCK_IN_SERVICE && s->pool)
		retire(p, s);
}

static int open_sock(struct udp_pool *p, uint64_t now, struct udp_sock **out)
{
	struct sockaddr_storage local;
	socklen_t ll = sizeof(local);
	struct udp_sock *s;
	int fd, r;

	/* Blocking is fine: io_uring waits for room instead of failing with EAGAIN. */
	fd = socket(p->peer.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* connect() binds a random ephemeral port and filters what may come in. */
	if (connect(fd, (const struct sockaddr *)&p->peer, p->peerlen) < 0 ||
	    getsockname(fd, (struct sockaddr *)&local, &ll) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->pool = p;
	s->fd = fd;
	s->born = now;
	s->port = ntohs(local.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&local)->sin6_port
	                                            : ((struct sockaddr_in *)&local)->sin_port);
	r = loop_udp_listen_ex(p->l, fd, sock_dgram, sock_error, s);
	if (r < 0) {
		close(fd);
		free(s);
		return r;
	}
	s->next = p->all;
	if (p->all)
		p->all->prev = s;
	p->all = s;
	p->st.opened++;
	*out = s;
	return 0;
}

int udp_pool_new(struct loop *l, struct rand *rng, const struct sockaddr *peer, socklen_t peerlen,
                 const struct udp_pool_conf *conf, udp_pool_dgram_fn on_dgram,
                 udp_pool_error_fn on_error, void *ctx, struct udp_pool **out)
{
	struct udp_pool_conf c = {0};
	struct udp_pool *p;

	if (conf)
		c = *conf;
	if (!c.size)
		c.size = 16;
	if (!c.max_sends)
		c.max_sends = 2000;
	if (!c.max_age_ms)
		c.max_age_ms = 60000;
	if (c.size > UDP_POOL_MAX || !peer || peerlen > sizeof(p->peer) || !on_dgram || !on_error ||
	    (peer->sa_family != AF_INET && peer->sa_family != AF_INET6))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->l = l;
	p->rng = rng;
	memcpy(&p->peer, peer, peerlen);
	p->peerlen = peerlen;
	p->c = c;
	p->on_dgram = on_dgram;
	p->on_error = on_error;
	p->ctx = ctx;
	*out = p;
	return 0;
}

void udp_pool_free(struct udp_pool *p)
{
	if (!p)
		return;
	while (p->all) {
		struct udp_sock *s = p->all;
		unlink_sock(p, s);
		s->pool = NULL;
		if (s->state != SOCK_CLOSING) {
			s->state = SOCK_CLOSING;
			if (loop_close_fd(p->l, s->fd, sock_closed, s) < 0)
				log_err("udp_pool", "cannot close socket %d", s->fd);
		}
	}
	free(p);
}

static bool due(const struct udp_pool *p, const struct udp_sock *s, uint64_t now)
{
	return s->deaf || s->sends >= p->c.max_sends || now >= s->born + p->c.max_age_ms;
}

struct udp_sock *udp_pool_pick(struct udp_pool *p, const struct udp_sock *avoid, uint64_t now,
                               int *err)
{
	unsigned n = p->c.size;
	unsigned i = rand_uniform(p->rng, n);
	struct udp_sock *s, *fresh = NULL;
	int r;

	if (avoid && n > 1 && p->slot[i] == avoid)
		i = (i + 1 + rand_uniform(p->rng, n - 1)) % n;
	s = p->slot[i];
	if (s && !due(p, s, now))
		return s;
	r = open_sock(p, now, &fresh);
	if (r < 0) {
		p->st.open_failures++;
		if (s && !s->deaf) {
			/* Better an old port than no answer: the next pick tries again. */
			return s;
		}
		*err = r;
		return NULL;
	}
	if (s)
		retire(p, s);
	p->slot[i] = fresh;
	return fresh;
}

int udp_pool_send(struct udp_pool *p, struct udp_sock *s, const void *buf, size_t len)
{
	int r = loop_udp_send(p->l, s->fd, NULL, 0, buf, len);

	if (r < 0) {
		p->st.send_failures++;
		return r;
	}
	s->sends++;
	p->st.sends++;
	return 0;
}

void udp_sock_hold(struct udp_sock *s)
{
	s->refs++;
}

void udp_pool_put(struct udp_pool *p, struct udp_sock *s)
{
	if (s->refs > 0)
		s->refs--;
	if (s->refs == 0 && s->state == SOCK_RETIRED)
		close_sock(p, s);
}

uint16_t udp_sock_port(const struct udp_sock *s)
{
	return s->port;
}

void udp_pool_get_stats(const struct udp_pool *p, struct udp_pool_stats *out)
{
	*out = p->st;
	out->in_service = out->retiring = 0;
	for (const struct udp_sock *s = p->all; s; s = s->next) {
		if (s->state == SOCK_IN_SERVICE)
			out->in_service++;
		else if (s->state == SOCK_RETIRED)
			out->retiring++;
	}
}
