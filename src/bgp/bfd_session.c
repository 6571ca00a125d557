/*
 * bfd_session.c: single-hop BFD on the loop. See bfd_session.h.
 */
#include "bgp/bfd_session.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/handover.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"

#define SRC_PORT_TRIES 64
#define TOS_CS6        0xc0 /* network control, as BIRD and FRR mark BFD */

struct rxsock {
	struct bfd_mux *m;
	int fd; /* -1 when not open */
	int family;
};

struct bfd_session {
	struct bfd_mux *m;
	struct bfd_session *next;
	struct bfd_session_conf conf;
	struct bfd_fsm fsm;
	bfd_session_fn fn;
	void *arg;
	int fd; /* send socket, bound to its source port */
	struct sockaddr_storage peer_sa;
	socklen_t peer_len;
	struct timer timer;
	char name[NETADDR_STRLEN];
};

struct bfd_mux {
	struct loop *l;
	uint16_t port;
	uint64_t rng;
	bool stopping;
	struct rxsock rx[2]; /* [0] IPv4, [1] IPv6 */
	struct bfd_session *sessions;
	struct bfd_mux_stats st;
};

/* splitmix64: discriminators and source ports (not secrets: GTSM guards the link). */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void run(struct bfd_session *s, const struct bfd_fsm_event *ev);

/* ---------------------------------------------------------------- receive */

static struct bfd_session *by_disc(struct bfd_mux *m, uint32_t disc)
{
	for (struct bfd_session *s = m->sessions; s; s = s->next)
		if (s->fsm.conf.local_disc == disc)
			return s;
	return NULL;
}

static struct bfd_session *by_peer(struct bfd_mux *m, const struct netaddr *a)
{
	for (struct bfd_session *s = m->sessions; s; s = s->next)
		if (netaddr_equal_ip(&s->conf.peer, a))
			return s;
	return NULL;
}

static void on_rx(struct loop *l, void *ctx, const struct loop_dgram *d)
{
	struct rxsock *rs = ctx;
	struct bfd_mux *m = rs->m;
	struct bfd_session *s;
	struct netaddr src;
	struct bfd_pkt pkt;
	enum bfd_discard why;
	int r;

	(void)l;
	m->st.rx++;
	/* RFC 5881 §5: only a neighbor on the link can send with TTL 255. */
	if (d->ttl != BFD_TTL) {
		m->st.rx_ttl++;
		return;
	}
	if (m->stopping || netaddr_from_sockaddr(d->peer, d->peerlen, &src) < 0)
		return;
	r = bfd_parse(d->payload, d->len, &pkt, &why);
	if (r == -ENOTSUP) {
		m->st.rx_auth++;
		return;
	}
	if (r < 0) {
		m->st.rx_bad++;
		return;
	}
	/* RFC 5881 §3: by our discriminator when the peer knows it, else by
	 * address; a single-hop session has one peer address either way. */
	s = pkt.your_disc ? by_disc(m, pkt.your_disc) : by_peer(m, &src);
	if (!s || !netaddr_equal_ip(&s->conf.peer, &src)) {
		m->st.rx_no_session++;
		return;
	}
	struct bfd_fsm_event ev = {.type = BFD_FSM_EV_RX, .pkt = &pkt};
	run(s, &ev);
}

/* ---------------------------------------------------------------- actions */

static void send_pkt(struct bfd_session *s, const struct bfd_pkt *p)
{
	struct bfd_mux *m = s->m;
	uint8_t buf[BFD_PKT_LEN];
	int n = bfd_build(p, buf, sizeof(buf));

	if (n < 0 || s->fd < 0) {
		m->st.tx_err++;
		return;
	}
	if (loop_udp_send(m->l, s->fd, (struct sockaddr *)&s->peer_sa, s->peer_len, buf,
	                  (size_t)n) < 0) {
		m->st.tx_err++;
		return;
	}
	m->st.tx++;
}

static void rearm(struct bfd_session *s)
{
	uint64_t d = bfd_fsm_next_deadline(&s->fsm);

	if (d == BFD_FSM_NEVER || s->m->stopping)
		loop_timer_cancel(s->m->l, &s->timer);
	else
		loop_timer_arm(s->m->l, &s->timer, d);
}

/* One event: packets out first, then the timer, then the owner hears of a change. */
static void run(struct bfd_session *s, const struct bfd_fsm_event *ev)
{
	struct bfd_fsm_actions a;
	int r = bfd_fsm_step(&s->fsm, ev, loop_now(s->m->l), &a);

	if (r == -EBADMSG) {
		s->m->st.rx_discarded++;
		log_debug("bfd", "%s: packet discarded: %s", s->name, bfd_discard_name(a.discard));
		return;
	}
	if (r < 0)
		return;
	if (a.discard != BFD_OK)
		s->m->st.rx_discarded++;
	for (unsigned i = 0; i < a.n_send; i++)
		send_pkt(s, &a.send[i]);
	rearm(s);
	if (!a.state_changed)
		return;
	if (a.to == BFD_STATE_UP || a.from == BFD_STATE_UP)
		log_info("bfd", "%s: %s -> %s (%s%s)", s->name, bfd_state_name(a.from),
		         bfd_state_name(a.to), bfd_diag_name(a.diag),
		         a.remote_state == BFD_STATE_ADMIN_DOWN ? ", peer AdminDown" : "");
	else
		log_debug("bfd", "%s: %s -> %s (%s)", s->name, bfd_state_name(a.from),
		          bfd_state_name(a.to), bfd_diag_name(a.diag));
	if (s->fn) {
		struct bfd_session_change c = {
		    .from = a.from, .to = a.to, .diag = a.diag, .remote_state = a.remote_state};
		s->fn(s->arg, s, &c);
	}
}

static void on_timer(struct timer *t, uint64_t now, void *arg)
{
	struct bfd_session *s = arg;
	struct bfd_fsm_event ev = {.type = BFD_FSM_EV_TIMER};

	(void)t;
	(void)now;
	if (!s->m->stopping)
		run(s, &ev);
}

/* ---------------------------------------------------------------- sockets */

static int rx_open(struct bfd_mux *m, int family)
{
	struct rxsock *rs = &m->rx[family == AF_INET6];
	struct netaddr any = {.family = family, .port = m->port};
	struct sockaddr_storage ss;
	socklen_t sl = netaddr_to_sockaddr(&any, &ss);
	int fd, one = 1, r;

	if (rs->fd >= 0)
		return 0;
	/* A successor shares its predecessor's socket (core/handover.h): port
	 * 3784 cannot be bound twice. */
	fd = handover_take("bfd-rx", 0, &any, NULL, NULL);
	if (fd < 0) {
		fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
			r = -errno;
			close(fd);
			return r;
		}
	}
	rs->m = m;
	rs->family = family;
	r = loop_udp_listen_cmsg(m->l, fd, on_rx, rs);
	if (r < 0) {
		close(fd);
		return r;
	}
	rs->fd = fd;
	handover_offer("bfd-rx", 0, &any, fd);
	return 0;
}

/* RFC 5881 §4: a source port of its own in 49152-65535, kept for the session;
 * §5: TTL / hop limit 255. */
static int tx_open(struct bfd_mux *m, const struct bfd_session_conf *c)
{
	int fam = c->peer.family, fd, r = -EADDRINUSE;
	int ttl = BFD_TTL, tos = TOS_CS6;
	unsigned span = BFD_SRC_PORT_HI - BFD_SRC_PORT_LO + 1;
	unsigned start = (unsigned)(rng_next(&m->rng) % span);

	fd = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (fam == AF_INET6) {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl)) < 0)
			goto fail_errno;
		setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
	} else {
		if (setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) < 0)
			goto fail_errno;
		setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
	}
	for (unsigned i = 0; i < SRC_PORT_TRIES; i++) {
		struct netaddr la = {.family = fam};
		struct sockaddr_storage ss;
		if (c->local.family == fam)
			memcpy(la.addr, c->local.addr, sizeof(la.addr));
		la.port = (uint16_t)(BFD_SRC_PORT_LO + (start + i * 7919u) % span);
		socklen_t sl = netaddr_to_sockaddr(&la, &ss);
		if (bind(fd, (struct sockaddr *)&ss, sl) == 0)
			return fd;
		r = -errno;
		if (r != -EADDRINUSE)
			break;
	}
	close(fd);
	return r;
fail_errno:
	r = -errno;
	close(fd);
	return r;
}

/* ---------------------------------------------------------------- public */

int bfd_mux_new(struct loop *l, uint16_t port, uint64_t seed, struct bfd_mux **out)
{
	struct bfd_mux *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->l = l;
	m->port = port ? port : BFD_PORT;
	m->rng = seed;
	m->rx[0].fd = m->rx[1].fd = -1;
	*out = m;
	return 0;
}

int bfd_session_new(struct bfd_mux *m, const struct bfd_session_conf *conf, bfd_session_fn fn,
                    void *arg, struct bfd_session **out)
{
	struct bfd_session *s;
	struct netaddr peer;
	int r;

	if (!conf || (conf->peer.family != AF_INET && conf->peer.family != AF_INET6) ||
	    !conf->interval_ms || conf->interval_ms > UINT32_MAX / 1000 || !conf->multiplier ||
	    conf->multiplier > 255 ||
	    (conf->local.family && conf->local.family != conf->peer.family))
		return -EINVAL;
	if (by_peer(m, &conf->peer))
		return -EEXIST;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->m = m;
	s->conf = *conf;
	s->fn = fn;
	s->arg = arg;
	s->fd = -1;
	netaddr_format(&conf->peer, false, s->name, sizeof(s->name));
	peer = conf->peer;
	if (!peer.port)
		peer.port = BFD_PORT;
	s->peer_len = netaddr_to_sockaddr(&peer, &s->peer_sa);

	struct bfd_fsm_conf fc = {.desired_min_tx_us = conf->interval_ms * 1000,
	                          .required_min_rx_us = conf->interval_ms * 1000,
	                          .detect_mult = (uint8_t)conf->multiplier,
	                          .seed = rng_next(&m->rng)};
	/* RFC 5880 §6.8.1: nonzero and unique on this system. */
	do
		fc.local_disc = (uint32_t)rng_next(&m->rng);
	while (fc.local_disc == 0 || by_disc(m, fc.local_disc));
	r = bfd_fsm_init(&s->fsm, &fc);
	if (r < 0)
		goto fail;
	r = rx_open(m, conf->peer.family);
	if (r < 0)
		goto fail;
	/* RFC 5881 §4: the session keeps its source port, across a restart too. */
	r = handover_take("bfd-tx", 0, &conf->peer, NULL, NULL);
	if (r < 0)
		r = tx_open(m, conf);
	if (r < 0)
		goto fail;
	s->fd = r;
	handover_offer("bfd-tx", 0, &conf->peer, r);
	timer_init(&s->timer, on_timer, s);
	s->next = m->sessions;
	m->sessions = s;
	*out = s;
	return 0;
fail:
	free(s);
	return r;
}

void bfd_session_start(struct bfd_session *s)
{
	struct bfd_fsm_event ev = {.type = BFD_FSM_EV_ADMIN_UP};

	if (!s->m->stopping)
		run(s, &ev);
}

int bfd_session_set_timers(struct bfd_session *s, uint32_t interval_ms, unsigned multiplier)
{
	struct bfd_fsm_event ev = {.type = BFD_FSM_EV_SET_TIMERS,
	                           .desired_min_tx_us = interval_ms * 1000,
	                           .required_min_rx_us = interval_ms * 1000,
	                           .detect_mult = (uint8_t)multiplier};

	if (!interval_ms || interval_ms > UINT32_MAX / 1000 || !multiplier || multiplier > 255)
		return -EINVAL;
	if (!s->m->stopping)
		run(s, &ev);
	return 0;
}

void bfd_session_stop(struct bfd_session *s)
{
	struct bfd_fsm_event ev = {.type = BFD_FSM_EV_ADMIN_DOWN};

	if (!s->m->stopping)
		run(s, &ev);
}

void bfd_session_free(struct bfd_session *s)
{
	struct bfd_mux *m;

	if (!s)
		return;
	m = s->m;
	/* AdminDown first (RFC 5882 §3.2): the peer does not count it as a path failure. */
	bfd_session_stop(s);
	s->fn = NULL;
	for (struct bfd_session **pp = &m->sessions; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	loop_timer_cancel(m->l, &s->timer);
	/* Only the loop's send slots use the fd (they copied the packet), never s. */
	if (s->fd >= 0) {
		handover_forget(s->fd);
		if (loop_close_fd(m->l, s->fd, NULL, NULL) < 0)
			close(s->fd);
	}
	free(s);
}

void bfd_mux_shutdown(struct bfd_mux *m)
{
	if (m->stopping)
		return;
	/* The peers hear AdminDown (RFC 5882 §3.2: not a path failure) before
	 * the BGP Cease, so they need not wait for a Detection Time. */
	for (struct bfd_session *s = m->sessions; s; s = s->next) {
		bfd_session_stop(s);
		s->fn = NULL;
	}
	m->stopping = true;
	for (struct bfd_session *s = m->sessions; s; s = s->next) {
		loop_timer_cancel(m->l, &s->timer);
		/* The AdminDown just queued goes out before the close completes. */
		if (s->fd >= 0 && loop_close_fd(m->l, s->fd, NULL, NULL) == 0)
			s->fd = -1;
	}
	for (int i = 0; i < 2; i++)
		if (m->rx[i].fd >= 0 && loop_close_fd(m->l, m->rx[i].fd, NULL, NULL) == 0)
			m->rx[i].fd = -1;
}

void bfd_mux_free(struct bfd_mux *m)
{
	if (!m)
		return;
	while (m->sessions) {
		struct bfd_session *s = m->sessions;
		m->sessions = s->next;
		if (s->fd >= 0)
			close(s->fd);
		free(s);
	}
	for (int i = 0; i < 2; i++)
		if (m->rx[i].fd >= 0)
			close(m->rx[i].fd);
	free(m);
}

enum bfd_state bfd_session_state(const struct bfd_session *s)
{
	return s->fsm.state;
}

const struct bfd_fsm *bfd_session_fsm(const struct bfd_session *s)
{
	return &s->fsm;
}

void bfd_mux_get_stats(const struct bfd_mux *m, struct bfd_mux_stats *out)
{
	*out = m->st;
}

/* ---------------------------------------------------------------- restart */

int bfd_session_export(const struct bfd_session *s, uint8_t *buf, size_t cap)
{
	return bfd_fsm_export(&s->fsm, buf, cap);
}

int bfd_session_import(struct bfd_session *s, const uint8_t *buf, size_t len)
{
	struct bfd_fsm f;
	int r = bfd_fsm_import(&f, buf, len, loop_now(s->m->l));

	if (r < 0)
		return r;
	for (struct bfd_session *o = s->m->sessions; o; o = o->next)
		if (o != s && o->fsm.conf.local_disc == f.conf.local_disc)
			return -EEXIST;
	s->fsm = f;
	log_info("bfd", "%s: session taken over from the predecessor (%s)", s->name,
	         bfd_state_name(f.state));
	return 0;
}

void bfd_mux_handed_over(struct bfd_mux *m)
{
	if (m->stopping)
		return;
	m->stopping = true; /* on_rx and on_timer do nothing from now on */
	for (struct bfd_session *s = m->sessions; s; s = s->next) {
		s->fn = NULL;
		loop_timer_cancel(m->l, &s->timer);
		if (s->fd >= 0) {
			handover_forget(s->fd);
			if (loop_close_fd(m->l, s->fd, NULL, NULL) == 0)
				s->fd = -1;
		}
	}
	for (int i = 0; i < 2; i++)
		if (m->rx[i].fd >= 0) {
			handover_forget(m->rx[i].fd);
			if (loop_close_fd(m->l, m->rx[i].fd, NULL, NULL) == 0)
				m->rx[i].fd = -1;
		}
}
