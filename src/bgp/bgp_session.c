/*
 * bgp_session.c: one neighbor's FSMs, TCP connections and Adj-RIB-Out on
 * the loop. See bgp_session.h for the contract and bgp_fsm.h for the
 * collision design this follows.
 *
 * A connection (struct bgp_sock) is attached to an FSM slot (0 = primary,
 * 1 = spare) while the FSM owns it. The CLOSE action detaches it: its queued
 * output (typically a NOTIFICATION) is still sent, then loop_close_fd()
 * cancels whatever is left and frees it; a drain timer bounds that to
 * DRAIN_MS so a peer that stopped reading cannot keep a socket forever.
 */
#include "bgp/bgp_session.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bgp/bgp_handover.h"
#include "bgp/bgp_wire.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/netaddr.h"
#include "core/timer.h"
#include "core/wire.h"

#define RBUF_SIZE (2 * BGP_MAX_LEN) /* we never advertise extended messages (RFC 8654) */
#define QBUF_SIZE (32 * 1024)       /* 64 routes in packed UPDATEs need far less */
#define DRAIN_MS  1000u

struct bgp_session;

struct bgp_sock {
	struct bgp_session *s;
	struct loop *l;
	struct bgp_sock *next; /* the session's list of detached (draining) sockets */
	int fd;
	int slot; /* 0/1 while attached, -1 once detached */
	bool outgoing;
	bool connecting, recv_armed, send_armed, closing;
	uint64_t recv_id; /* the recv in flight, for bgp_session_freeze */
	/* loop_close_fd failed: sock_reap frees once no operation is armed, and
	 * closes the fd unless someone else closes it (-EALREADY). */
	bool reap, reap_closes_fd;
	/* loop_close_fd may finish (and free) synchronously: a callback that is
	 * still using the socket pins it, and the free waits for the unpin. */
	int pin;
	bool dead;
	struct timer drain;
	struct bgp_ctx ctx;
	/* A message did not fit the queue: settle() ends the session (Cease 6/8). */
	bool overflow;
	struct netaddr local; /* our end of the connection */
	size_t rlen, qlen, flen;
	uint8_t rbuf[RBUF_SIZE];
	uint8_t q[QBUF_SIZE];   /* queued by the logic */
	uint8_t fly[QBUF_SIZE]; /* handed to loop_send, untouched until its callback */
	struct bgp_msg msg;
	struct bgp_notify err;
};

struct bgp_conn {
	bool used;
	struct bgp_fsm fsm;
	struct bgp_sock *sock;
};

struct bgp_session {
	struct loop *l;
	struct bgp_session_conf conf;
	struct bgp_fsm_conf fsm_conf;
	bool ibgp, stopping, connect_failed, freed;
	/* In-place restart: frozen = no reading, no sending, no timer (the
	 * connection is being handed over); imported = adopted from a predecessor,
	 * started by bgp_session_start without a ManualStart. */
	bool frozen, imported;
	unsigned refresh_mask; /* families the pending ROUTE-REFRESH asked for */
	struct bgp_conn conn[2];
	struct bgp_sock *draining;
	struct timer timer;
	struct bgp_adjout *ao;
	char name[NETADDR_STRLEN];
	/* Our OPEN, built once; our_caps are views into it (for negotiation). */
	uint8_t open_buf[256];
	size_t open_len;
	struct bgp_caps our_caps;
	/* What an operator asks about (bgp_session_info). */
	uint64_t state_since_ms;
	uint64_t updates_sent, prefixes_announced, prefixes_withdrawn;
	struct bgp_session_notif notif_sent, notif_received;
	char last_error[BGP_SESSION_TEXT_MAX + 1];
	uint64_t last_error_ms;
};

/* The last thing that went wrong on this session, for anycachectl show bgp. */
__attribute__((format(printf, 2, 3))) static void set_error(struct bgp_session *s, const char *fmt,
                                                            ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
	va_end(ap);
	s->last_error_ms = loop_now(s->l);
}

static void settle(struct bgp_session *s);
static void step(struct bgp_session *s, int slot, const struct bgp_fsm_event *ev);
static void sock_flush(struct bgp_sock *k);
static void sock_reap(struct bgp_sock *k);

/* ---------------------------------------------------------------- sockets */

static int md5_set(int fd, const struct netaddr *peer, const char *password)
{
	struct tcp_md5sig sig;
	struct sockaddr_storage ss;
	size_t n = strlen(password);

	if (n == 0)
		return 0;
	if (n > TCP_MD5SIG_MAXKEYLEN)
		return -EINVAL;
	memset(&sig, 0, sizeof(sig));
	netaddr_to_sockaddr(peer, &ss);
	memcpy(&sig.tcpm_addr, &ss, sizeof(sig.tcpm_addr));
	sig.tcpm_keylen = (uint16_t)n;
	memcpy(sig.tcpm_key, password, n);
	if (setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, &sig, sizeof(sig)) < 0)
		return -errno;
	return 0;
}

int bgp_session_md5_listen(int fd, const struct conf_neighbor *nb)
{
	return md5_set(fd, &nb->address, nb->password);
}

int bgp_session_md5_unlisten(int fd, const struct netaddr *peer)
{
	struct tcp_md5sig sig;
	struct sockaddr_storage ss;

	/* A zero key length deletes the peer's key (Linux tcp_v4_parse_md5_keys). */
	memset(&sig, 0, sizeof(sig));
	netaddr_to_sockaddr(peer, &ss);
	memcpy(&sig.tcpm_addr, &ss, sizeof(sig.tcpm_addr));
	if (setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, &sig, sizeof(sig)) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static struct bgp_sock *sock_new(struct bgp_session *s, int fd, bool outgoing)
{
	struct bgp_sock *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	k->s = s;
	k->l = s->l;
	k->fd = fd;
	k->slot = -1;
	k->outgoing = outgoing;
	timer_init(&k->drain, NULL, NULL);
	return k;
}

/* Our end of the connection (v4-mapped IPv6 reads as IPv4): the NEXT_HOP. */
static void sock_local(struct bgp_sock *k)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	memset(&k->local, 0, sizeof(k->local));
	if (getsockname(k->fd, (struct sockaddr *)&ss, &sl) == 0)
		netaddr_from_sockaddr((struct sockaddr *)&ss, sl, &k->local);
}

static void close_done(struct loop *l, void *ctx)
{
	struct bgp_sock *k = ctx;
	struct bgp_session *s = k->s;

	(void)l;
	if (s && !s->freed) {
		for (struct bgp_sock **pp = &s->draining; *pp; pp = &(*pp)->next)
			if (*pp == k) {
				*pp = k->next;
				break;
			}
	}
	if (k->pin)
		k->dead = true;
	else
		free(k);
}

static void pin(struct bgp_sock *k)
{
	k->pin++;
}

static void unpin(struct bgp_sock *k)
{
	if (--k->pin > 0)
		return;
	if (k->reap)
		sock_reap(k);
	else if (k->dead)
		free(k);
}

/* Cancel everything on the fd and free the socket once the kernel is done. */
static void sock_close(struct bgp_sock *k)
{
	if (k->closing)
		return;
	k->closing = true;
	loop_timer_cancel(k->l, &k->drain);
	int r = loop_close_fd(k->l, k->fd, close_done, k);
	if (r < 0) {
		/*
		 * The loop cannot cancel for us, and close() would not end a receive
		 * in flight (it keeps the file and writes into k->rbuf later). Shut
		 * the connection down instead: an armed receive completes (EOF), a
		 * send fails (EPIPE); k is freed after their final callbacks.
		 */
		log_warn("bgp", "%s: closing a connection: %s; shutting it down instead",
		         k->s && !k->s->freed ? k->s->name : "bgp", strerror(-r));
		k->reap = true;
		k->reap_closes_fd = r != -EALREADY;
		shutdown(k->fd, SHUT_RDWR);
		if (k->pin == 0) /* else the callback's unpin reaps */
			sock_reap(k);
	}
}

/* After a failed loop_close_fd, with k unpinned: frees k once none of its
 * operations is armed (each one's final callback unpins and comes back here). */
static void sock_reap(struct bgp_sock *k)
{
	if (!k->reap || k->recv_armed || k->send_armed || k->connecting)
		return;
	k->reap = false;
	if (k->reap_closes_fd)
		close(k->fd);
	close_done(k->l, k);
}

static void drain_expired(struct timer *t, uint64_t now, void *arg)
{
	struct bgp_sock *k = arg;

	(void)t;
	(void)now;
	sock_close(k);
}

/* The FSM is done with this connection: send what is queued, then close. */
static void sock_detach(struct bgp_session *s, int slot)
{
	struct bgp_sock *k = s->conn[slot].sock;

	if (!k)
		return;
	s->conn[slot].sock = NULL;
	k->slot = -1;
	k->next = s->draining;
	s->draining = k;
	if (k->connecting || (k->qlen == 0 && !k->send_armed)) {
		sock_close(k);
		return;
	}
	timer_init(&k->drain, drain_expired, k);
	loop_timer_arm_in(k->l, &k->drain, DRAIN_MS);
	sock_flush(k);
}

static void send_done_body(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct bgp_sock *k = ctx;
	struct bgp_session *s = k->s;

	(void)l;
	(void)flags;
	k->send_armed = false;
	if (res == -ECANCELED || k->closing)
		return;
	if (res < 0) {
		if (k->slot < 0) {
			sock_close(k);
			return;
		}
		log_info("bgp", "%s: send failed: %s", s->name, strerror(-res));
		set_error(s, "send: %s", strerror(-res));
		struct bgp_fsm_event ev = {.type = BGP_FSM_EV_TCP_CONNECTION_FAILS};
		step(s, k->slot, &ev);
		settle(s);
		return;
	}
	sock_flush(k);
}

static void send_done(struct loop *l, void *ctx, int res, unsigned flags)
{
	pin(ctx);
	send_done_body(l, ctx, res, flags);
	unpin(ctx);
}

/* Hands the queue to the loop when no send is in flight. */
static void sock_flush(struct bgp_sock *k)
{
	if (k->closing || k->send_armed || k->connecting)
		return;
	if (k->qlen == 0) {
		if (k->slot < 0)
			sock_close(k);
		return;
	}
	memcpy(k->fly, k->q, k->qlen);
	k->flen = k->qlen;
	k->qlen = 0;
	int r = loop_send(k->l, k->fd, k->fly, k->flen, send_done, k, NULL);
	if (r < 0) {
		log_warn("bgp", "%s: cannot queue a send: %s", k->s->name, strerror(-r));
		if (k->slot < 0)
			sock_close(k);
		return;
	}
	k->send_armed = true;
}

static struct wbuf q_begin(struct bgp_sock *k)
{
	return wbuf_init(k->q + k->qlen, sizeof(k->q) - k->qlen);
}

/*
 * Appends the message built in b to the queue. A message that did not fit is
 * not queued, and nothing after it may be either: the peer would see a gap in
 * the stream of changes and keep routes we think it lost. So the connection
 * is marked and settle() ends the session with Cease 6/8 (RFC 4486: Out of
 * Resources); the peer then drops every route it learned from us. Returns
 * whether the message was queued.
 */
static bool q_commit(struct bgp_sock *k, struct wbuf *b, const char *what)
{
	if (k->overflow)
		return false;
	if (wbuf_result(b) < 0) {
		log_err("bgp",
		        "%s: output queue full (%zu bytes waiting for a peer that does not "
		        "read), %s not queued: ending the session (Cease, Out of Resources)",
		        k->s->name, k->qlen, what);
		k->overflow = true;
		set_error(k->s, "output queue full: %s not queued", what);
		return false;
	}
	k->qlen += b->off;
	return true;
}

/* ---------------------------------------------------------------- routes */

static void to_bgp_prefix(const struct netprefix *p, struct bgp_prefix *out)
{
	memset(out, 0, sizeof(*out));
	out->fam = p->family == AF_INET ? BGP_FAM_IPV4 : BGP_FAM_IPV6;
	out->len = p->len;
	memcpy(out->addr, p->addr, p->family == AF_INET ? 4 : 16);
}

/* Sends the Adj-RIB-Out diff on the Established connection of slot. */
static void sync_routes(struct bgp_session *s, int slot)
{
	struct bgp_conn *c = &s->conn[slot];
	struct bgp_sock *k = c->sock;
	static struct bgp_adjout_diff d; /* one loop thread per speaker; 20 KB off the stack */
	struct bgp_prefix pf[BGP_ADJOUT_MAX_ROUTES];
	unsigned mask = 0;
	int r;

	if (!k || c->fsm.state != BGP_FSM_ESTABLISHED || s->frozen)
		return;
	if (c->fsm.afi_ipv4)
		mask |= BGP_ADJOUT_AF_IPV4;
	if (c->fsm.afi_ipv6)
		mask |= BGP_ADJOUT_AF_IPV6;
	r = bgp_adjout_diff(s->ao, mask, &d);
	if (r < 0) {
		log_err("bgp", "%s: Adj-RIB-Out diff failed: %s", s->name, strerror(-r));
		return;
	}
	if (r == 0 && !d.eor_v4 && !d.eor_v6)
		return;

	/* Withdrawals first: IPv4 (Withdrawn Routes), then IPv6 (MP_UNREACH_NLRI). */
	for (int fam = 0; fam < 2; fam++) {
		size_t from = fam ? d.n_withdraw_v4 : 0, to = fam ? d.n_withdraw : d.n_withdraw_v4;
		for (size_t i = from; i < to; i++)
			to_bgp_prefix(&d.withdraw[i], &pf[i - from]);
		if (to > from) {
			struct wbuf b = q_begin(k);
			bgp_withdraw_build(&b, pf, to - from);
			if (!q_commit(k, &b, "withdrawal"))
				return;
			s->updates_sent++;
		}
	}

	for (size_t g = 0; g < d.n_groups; g++) {
		const struct bgp_adjout_group *grp = &d.groups[g];
		const struct bgp_adjout_attrs *at = &grp->attrs;
		uint32_t path[1 + BGP_ADJOUT_MAX_PREPEND];
		struct bgp_large_community large[BGP_ADJOUT_MAX_LARGE_COMMUNITIES];
		struct bgp_route_attrs ra;

		memset(&ra, 0, sizeof(ra));
		ra.origin = BGP_ORIGIN_IGP;
		if (!s->ibgp) {
			/* RFC 4271 §5.1.2: eBGP prepends our AS; the prepend is degraded policy. */
			size_t n =
			    1 + (at->prepend > BGP_ADJOUT_MAX_PREPEND ? BGP_ADJOUT_MAX_PREPEND
			                                              : at->prepend);
			for (size_t i = 0; i < n; i++)
				path[i] = s->conf.local_as;
			ra.as_path = path;
			ra.as_path_n = n;
		}
		if (grp->family == AF_INET) {
			/* RFC 4271 §5.1.3: our own address on the shared subnet. */
			const struct netaddr *nh = s->conf.nb.local_address.family == AF_INET
			                               ? &s->conf.nb.local_address
			                               : &k->local;
			if (nh->family != AF_INET) {
				log_warn("bgp",
				         "%s: no IPv4 next hop on this session; IPv4 routes "
				         "not announced",
				         s->name);
				d.groups[g].count = 0; /* not sent: not marked sent */
				continue;
			}
			memcpy(ra.nh4, nh->addr, 4);
		} else {
			/* RFC 4760 §3: IPv6 next hop in MP_REACH_NLRI. */
			const struct netaddr *nh =
			    s->conf.nb.has_next_hop6 ? &s->conf.nb.next_hop6 : &k->local;
			if (nh->family != AF_INET6) {
				log_warn("bgp",
				         "%s: no next-hop6 for an IPv4 session; IPv6 routes "
				         "not announced",
				         s->name);
				d.groups[g].count = 0; /* not sent: not marked sent */
				continue;
			}
			memcpy(ra.nh6, nh->addr, 16);
		}
		ra.has_med = at->has_med;
		ra.med = at->med;
		ra.has_local_pref = s->ibgp; /* RFC 4271 §5.1.5: never to an external peer */
		ra.local_pref = at->local_pref;
		ra.communities = at->communities;
		ra.n_communities = at->n_communities;
		for (size_t i = 0; i < at->n_large_communities; i++) {
			large[i].global = at->large_communities[i].global;
			large[i].local1 = at->large_communities[i].local1;
			large[i].local2 = at->large_communities[i].local2;
		}
		ra.large = large;
		ra.n_large = at->n_large_communities;
		for (size_t i = 0; i < grp->count; i++)
			to_bgp_prefix(&d.announce[grp->first + i], &pf[i]);
		struct wbuf b = q_begin(k);
		r = bgp_update_build(&b, &k->ctx, &ra, pf, grp->count);
		/* Our attributes always fit one message (the caps in bgp_adjout.h),
		 * so a failure means the queue is full: q_commit ends the session. */
		if (r < 0 && r != -EMSGSIZE)
			log_err("bgp", "%s: cannot build UPDATE: %s", s->name, strerror(-r));
		if (r < 0 && !b.err)
			b.err = r;
		if (!q_commit(k, &b, "UPDATE"))
			return;
		s->updates_sent++;
	}
	/* RFC 4724 §2: End-of-RIB after the initial announcement, per family. */
	if (d.eor_v4 && (mask & BGP_ADJOUT_AF_IPV4)) {
		struct wbuf b = q_begin(k);
		bgp_eor_build(&b, BGP_FAM_IPV4);
		if (!q_commit(k, &b, "End-of-RIB"))
			return;
		s->updates_sent++;
	}
	if (d.eor_v6 && (mask & BGP_ADJOUT_AF_IPV6)) {
		struct wbuf b = q_begin(k);
		bgp_eor_build(&b, BGP_FAM_IPV6);
		if (!q_commit(k, &b, "End-of-RIB"))
			return;
		s->updates_sent++;
	}
	/* Everything in d is queued (a group without a next hop was taken out). */
	bgp_adjout_mark_sent(s->ao, &d);
	s->prefixes_announced += d.n_announce;
	s->prefixes_withdrawn += d.n_withdraw;
	bgp_fsm_update_sent(&c->fsm, loop_now(s->l));
	log_info("bgp", "%s: sent %zu announcements, %zu withdrawals", s->name, d.n_announce,
	         d.n_withdraw);
}

/* ---------------------------------------------------------------- FSM glue */

static void connect_done(struct loop *l, void *ctx, int res, unsigned flags);
static void recv_done(struct loop *l, void *ctx, int res, unsigned flags);

static void arm_recv(struct bgp_sock *k)
{
	if (k->recv_armed || k->closing || k->slot < 0 || k->s->frozen)
		return;
	int r = loop_recv(k->l, k->fd, k->rbuf + k->rlen, sizeof(k->rbuf) - k->rlen, recv_done, k,
	                  &k->recv_id);
	if (r < 0) {
		log_warn("bgp", "%s: cannot arm recv: %s", k->s->name, strerror(-r));
		return;
	}
	k->recv_armed = true;
}

static void start_connect(struct bgp_session *s)
{
	const struct conf_neighbor *nb = &s->conf.nb;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct bgp_sock *k;
	int fd, r, one = 1;

	if (s->conn[0].sock)
		sock_detach(s, 0);
	fd = socket(nb->address.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warn("bgp", "%s: socket: %s", s->name, strerror(errno));
		goto fail;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (nb->local_address.family) {
		struct netaddr la = nb->local_address;
		la.port = 0;
		sl = netaddr_to_sockaddr(&la, &ss);
		if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
			log_warn("bgp", "%s: bind to local-address: %s", s->name, strerror(errno));
			close(fd);
			goto fail;
		}
	}
	r = md5_set(fd, &nb->address, nb->password);
	if (r < 0) {
		log_warn("bgp", "%s: TCP_MD5SIG: %s", s->name, strerror(-r));
		close(fd);
		goto fail;
	}
	k = sock_new(s, fd, true);
	if (!k) {
		close(fd);
		goto fail;
	}
	sl = netaddr_to_sockaddr(&nb->address, &ss);
	/* No timeout of our own: the ConnectRetry timer bounds the attempt. */
	r = loop_connect(s->l, fd, (struct sockaddr *)&ss, sl, 0, connect_done, k, NULL);
	if (r < 0) {
		close(fd);
		free(k);
		goto fail;
	}
	k->connecting = true;
	k->slot = 0;
	s->conn[0].sock = k;
	return;
fail:
	/* Reported to the FSM from the timer, not from inside its action list. */
	s->connect_failed = true;
}

static void run_actions(struct bgp_session *s, int slot, const struct bgp_fsm_actions *a)
{
	struct bgp_conn *c = &s->conn[slot];

	for (unsigned i = 0; i < a->n; i++) {
		struct bgp_sock *k = c->sock;
		struct wbuf b;

		switch (a->act[i]) {
		case BGP_FSM_ACT_CONNECT:
			if (slot == 0 && !s->stopping)
				start_connect(s);
			break;
		case BGP_FSM_ACT_CLOSE:
			sock_detach(s, slot);
			break;
		case BGP_FSM_ACT_SEND_OPEN:
			if (!k)
				break;
			b = q_begin(k);
			wbuf_bytes(&b, s->open_buf, s->open_len);
			q_commit(k, &b, "OPEN");
			break;
		case BGP_FSM_ACT_SEND_KEEPALIVE:
			if (!k)
				break;
			b = q_begin(k);
			bgp_keepalive_build(&b);
			q_commit(k, &b, "KEEPALIVE");
			break;
		case BGP_FSM_ACT_SEND_NOTIFICATION:
			log_info("bgp", "%s: sending NOTIFICATION %u/%u", s->name, a->notif.code,
			         a->notif.subcode);
			s->notif_sent = (struct bgp_session_notif){.valid = true,
			                                           .code = a->notif.code,
			                                           .subcode = a->notif.subcode,
			                                           .at_ms = loop_now(s->l)};
			set_error(s, "sent NOTIFICATION %u/%u", a->notif.code, a->notif.subcode);
			if (!k)
				break;
			b = q_begin(k);
			bgp_notification_build(&b, a->notif.code, a->notif.subcode, a->notif.data,
			                       a->notif.len);
			if (wbuf_result(&b) < 0 || k->overflow) {
				/* The connection closes after it (RFC 4271 §4.5): whole
				 * messages still waiting behind the send in flight are
				 * moot, the NOTIFICATION is not. */
				k->qlen = 0;
				k->overflow = false;
				b = q_begin(k);
				bgp_notification_build(&b, a->notif.code, a->notif.subcode,
				                       a->notif.data, a->notif.len);
			}
			q_commit(k, &b, "NOTIFICATION");
			break;
		case BGP_FSM_ACT_ESTABLISHED:
			log_info("bgp", "%s: session established (AS %u, hold %us)", s->name,
			         c->fsm.peer_as, c->fsm.hold_time);
			sync_routes(s, slot);
			break;
		case BGP_FSM_ACT_DOWN:
			log_info("bgp", "%s: session down", s->name);
			bgp_adjout_reset_sent(s->ao);
			break;
		case BGP_FSM_ACT_RESEND_ALL:
			/* RFC 2918 §4: the peer asked for one family's routes again. */
			bgp_adjout_resend(s->ao, s->refresh_mask);
			s->refresh_mask = 0;
			sync_routes(s, slot);
			break;
		}
	}
}

static void step(struct bgp_session *s, int slot, const struct bgp_fsm_event *ev)
{
	struct bgp_conn *c = &s->conn[slot];
	struct bgp_fsm_actions a;
	enum bgp_fsm_state before = c->fsm.state;
	int r;

	if (!c->used)
		return;
	r = bgp_fsm_step(&c->fsm, ev, loop_now(s->l), &a);
	if (r < 0) {
		/* -EPROTO: a connection this FSM cannot own; close it ourselves. */
		if (ev->type == BGP_FSM_EV_TCP_CONNECTION_ACCEPTED ||
		    ev->type == BGP_FSM_EV_TCP_CONNECTION_CONFIRMED)
			sock_detach(s, slot);
		return;
	}
	if (c->fsm.state != before && slot == 0)
		s->state_since_ms = loop_now(s->l);
	if (c->fsm.state != before)
		log_debug("bgp", "%s%s: %s -> %s on %s", s->name, slot ? " (spare)" : "",
		          bgp_fsm_state_name(before), bgp_fsm_state_name(c->fsm.state),
		          bgp_fsm_event_name(ev->type));
	run_actions(s, slot, &a);
}

static void dump(struct bgp_session *s, int slot)
{
	struct bgp_fsm_event ev = {.type = BGP_FSM_EV_COLLISION_DUMP};

	log_info("bgp", "%s: connection collision, closing the %s connection", s->name,
	         s->conn[slot].sock && s->conn[slot].sock->outgoing ? "outgoing" : "incoming");
	step(s, slot, &ev);
}

static bool connecting_state(enum bgp_fsm_state st)
{
	return st == BGP_FSM_IDLE || st == BGP_FSM_CONNECT || st == BGP_FSM_ACTIVE;
}

static void rearm(struct bgp_session *s);

/*
 * A connection whose queue overflowed (q_commit) ends here, outside any
 * action list. The FSM treats it like any error it must report: NOTIFICATION
 * (queued in place of whatever waits behind the send in flight, so it always
 * fits), close, DOWN (the Adj-RIB-Out forgets what it sent), backoff as after
 * any failure. Only a connection that queued something (OpenSent or later)
 * can overflow.
 */
static void out_of_resources(struct bgp_session *s)
{
	for (int slot = 0; slot < 2; slot++) {
		struct bgp_sock *k = s->conn[slot].sock;
		if (!s->conn[slot].used || !k || !k->overflow)
			continue;
		struct bgp_fsm_event ev = {.type = BGP_FSM_EV_MESSAGE_ERROR,
		                           .code = BGP_ERR_CEASE,
		                           .subcode = BGP_CEASE_OUT_OF_RESOURCES};
		step(s, slot, &ev); /* SEND_NOTIFICATION makes room (run_actions) */
	}
}

/* Collision housekeeping after any step (bgp_fsm.h's rules), then output and timer. */
static void settle(struct bgp_session *s)
{
	out_of_resources(s);
	for (int guard = 0; guard < 4 && s->conn[1].used; guard++) {
		struct bgp_conn *p = &s->conn[0], *sp = &s->conn[1];

		if (connecting_state(sp->fsm.state)) {
			sock_detach(s, 1);
			sp->used = false;
		} else if (p->fsm.state == BGP_FSM_ESTABLISHED) {
			dump(s, 1);
		} else if (sp->fsm.state == BGP_FSM_ESTABLISHED || connecting_state(p->fsm.state)) {
			/* The spare's connection wins: it becomes the primary's. */
			if (!connecting_state(p->fsm.state))
				dump(s, 0);
			sock_detach(s, 0);
			bgp_fsm_take_over(&p->fsm, &sp->fsm);
			p->sock = sp->sock;
			sp->sock = NULL;
			sp->used = false;
			if (p->sock)
				p->sock->slot = 0;
		} else {
			break;
		}
	}
	for (int i = 0; i < 2; i++)
		if (s->conn[i].sock)
			sock_flush(s->conn[i].sock);
	rearm(s);
}

static void session_timer(struct timer *t, uint64_t now, void *arg)
{
	struct bgp_session *s = arg;
	struct bgp_fsm_event tick = {.type = BGP_FSM_EV_TICK};

	(void)t;
	(void)now;
	if (s->frozen)
		return; /* bgp_session_thaw re-arms it */
	if (s->connect_failed) {
		struct bgp_fsm_event ev = {.type = BGP_FSM_EV_TCP_CONNECTION_FAILS};
		s->connect_failed = false;
		step(s, 0, &ev);
	}
	step(s, 0, &tick);
	if (s->conn[1].used)
		step(s, 1, &tick);
	settle(s);
}

static void rearm(struct bgp_session *s)
{
	uint64_t d = bgp_fsm_next_deadline(&s->conn[0].fsm);

	if (s->conn[1].used) {
		uint64_t d1 = bgp_fsm_next_deadline(&s->conn[1].fsm);
		if (d1 < d)
			d = d1;
	}
	if (s->connect_failed)
		d = loop_now(s->l);
	if (d == BGP_FSM_NEVER || s->frozen)
		loop_timer_cancel(s->l, &s->timer);
	else
		loop_timer_arm(s->l, &s->timer, d);
}

static void connect_done_body(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct bgp_sock *k = ctx;
	struct bgp_session *s = k->s;

	(void)l;
	(void)flags;
	k->connecting = false;
	if (res == -ECANCELED || k->closing)
		return;
	if (k->slot < 0) {
		sock_close(k);
		return;
	}
	if (res < 0) {
		struct bgp_fsm_event ev = {.type = BGP_FSM_EV_TCP_CONNECTION_FAILS};
		log_debug("bgp", "%s: connect: %s", s->name, strerror(-res));
		set_error(s, "connect: %s", strerror(-res));
		sock_detach(s, k->slot);
		step(s, 0, &ev);
		settle(s);
		return;
	}
	sock_local(k);
	struct bgp_fsm_event ev = {.type = BGP_FSM_EV_TCP_CONNECTION_CONFIRMED};
	step(s, k->slot, &ev);
	arm_recv(k);
	settle(s);
}

static void connect_done(struct loop *l, void *ctx, int res, unsigned flags)
{
	pin(ctx);
	connect_done_body(l, ctx, res, flags);
	unpin(ctx);
}

static void fill_open(const struct bgp_open *o, struct bgp_fsm_open *f)
{
	f->version = o->version;
	f->peer_as = o->asn;
	f->hold_time = o->hold;
	f->bgp_id = o->bgp_id;
	f->cap_as4 = o->caps.as4;
	f->cap_mp_ipv4 = o->caps.mp[BGP_FAM_IPV4];
	f->cap_mp_ipv6 = o->caps.mp[BGP_FAM_IPV6];
	f->cap_route_refresh = o->caps.route_refresh;
}

static void message_error(struct bgp_session *s, int slot, const struct bgp_notify *err)
{
	struct bgp_fsm_event ev = {.type = BGP_FSM_EV_MESSAGE_ERROR,
	                           .code = err->code ? err->code : BGP_ERR_HEADER,
	                           .subcode = err->subcode,
	                           .data = err->data,
	                           .data_len = err->datalen};

	log_warn("bgp", "%s: bad message from the peer, NOTIFICATION %u/%u", s->name, ev.code,
	         ev.subcode);
	step(s, slot, &ev);
}

/* One complete message of len bytes at buf, from the connection of k. */
static void handle_msg(struct bgp_session *s, struct bgp_sock *k, const uint8_t *buf, size_t len)
{
	struct bgp_fsm_event ev;
	struct bgp_msg *m = &k->msg;
	int r, slot = k->slot;

	/* bgp_fsm.h: a due Tick goes before a message received at the same time. */
	if (loop_now(s->l) >= bgp_fsm_next_deadline(&s->conn[slot].fsm)) {
		ev = (struct bgp_fsm_event){.type = BGP_FSM_EV_TICK};
		step(s, slot, &ev);
		if (k->slot < 0)
			return;
	}
	memset(&k->err, 0, sizeof(k->err));
	r = bgp_msg_parse(buf, len, &k->ctx, m, &k->err);
	if (r < 0) {
		message_error(s, slot, &k->err);
		return;
	}
	memset(&ev, 0, sizeof(ev));
	switch (m->hdr.type) {
	case BGP_MSG_OPEN: {
		int other = slot ^ 1;
		if (bgp_open_check_as(&m->u.open, s->conf.nb.asn, &k->err) < 0) {
			message_error(s, slot, &k->err);
			return;
		}
		/* RFC 4271 §6.8 (bgp_fsm.h): the other connection decides. */
		if (s->conn[other].used && s->conn[other].sock) {
			enum bgp_fsm_state st = s->conn[other].fsm.state;
			if (st == BGP_FSM_ESTABLISHED) {
				dump(s, slot);
				return;
			}
			if (st == BGP_FSM_OPENCONFIRM) {
				enum bgp_collision c = bgp_collision_resolve(
				    s->conf.bgp_id, s->conf.local_as, m->u.open.bgp_id,
				    m->u.open.asn, s->conn[other].sock->outgoing);
				if (c == BGP_COLLISION_CLOSE_NEW) {
					dump(s, slot);
					return;
				}
				dump(s, other);
				settle(s); /* may move k into the primary slot */
				slot = k->slot;
				if (slot < 0)
					return;
			}
		}
		bgp_ctx_negotiate(&s->our_caps, &m->u.open.caps, &k->ctx);
		ev.type = BGP_FSM_EV_OPEN_RECEIVED;
		fill_open(&m->u.open, &ev.open);
		break;
	}
	case BGP_MSG_UPDATE:
		if (r != BGP_UPD_OK)
			log_info("bgp", "%s: UPDATE error %u/%u handled as %s (RFC 7606)", s->name,
			         k->err.code, k->err.subcode,
			         r == BGP_UPD_ATTR_DISCARD ? "attribute discard"
			                                   : "treat-as-withdraw");
		/* We originate only: the content is validated and dropped. */
		ev.type = BGP_FSM_EV_UPDATE_RECEIVED;
		break;
	case BGP_MSG_NOTIFICATION: {
		const struct bgp_notification *n = &m->u.notification;
		/* RFC 9003 text is the peer's: escaped, it cannot forge a log record. */
		char text[4 * BGP_SHUTDOWN_MAX + 1];
		bool has_text = n->has_shutdown && n->shutdown_utf8; /* else it is not text */
		if (has_text)
			bgp_shutdown_text_escape(n->shutdown, n->shutdown_len, text, sizeof(text));
		if (has_text)
			log_info("bgp", "%s: NOTIFICATION %u/%u from the peer: \"%s\"", s->name,
			         n->code, n->subcode, text);
		else
			log_info("bgp", "%s: NOTIFICATION %u/%u from the peer", s->name, n->code,
			         n->subcode);
		ev.type = BGP_FSM_EV_NOTIFICATION_RECEIVED;
		ev.code = n->code;
		ev.subcode = n->subcode;
		s->notif_received = (struct bgp_session_notif){
		    .valid = true, .code = n->code, .subcode = n->subcode, .at_ms = loop_now(s->l)};
		if (has_text)
			bgp_shutdown_text_escape(n->shutdown, n->shutdown_len,
			                         s->notif_received.text,
			                         sizeof(s->notif_received.text));
		set_error(s, "received NOTIFICATION %u/%u", n->code, n->subcode);
		break;
	}
	case BGP_MSG_KEEPALIVE:
		ev.type = BGP_FSM_EV_KEEPALIVE_RECEIVED;
		break;
	case BGP_MSG_ROUTE_REFRESH: {
		const struct bgp_fsm *f = &s->conn[slot].fsm;
		/* RFC 6608 §3: before Established it is an unexpected message (5/1,
		 * 5/2), whatever it asks for: the FSM says so. In OpenSent no family
		 * is negotiated yet, so the checks below would drop it silently. */
		if (f->state != BGP_FSM_ESTABLISHED) {
			ev.type = BGP_FSM_EV_ROUTE_REFRESH_RECEIVED;
			break;
		}
		/* RFC 7313 §3.2: only a plain request asks us to resend. */
		if (m->u.rr.subtype != BGP_RR_REQUEST)
			return;
		/* RFC 2918 §4: one family at a time; one we did not negotiate is ignored. */
		uint8_t fam = bgp_fam_of(m->u.rr.afi, m->u.rr.safi);
		if (fam == BGP_FAM_IPV4 && f->afi_ipv4)
			s->refresh_mask |= BGP_ADJOUT_AF_IPV4;
		else if (fam == BGP_FAM_IPV6 && f->afi_ipv6)
			s->refresh_mask |= BGP_ADJOUT_AF_IPV6;
		else {
			log_debug("bgp",
			          "%s: ROUTE-REFRESH for AFI %u SAFI %u not negotiated: ignored",
			          s->name, m->u.rr.afi, m->u.rr.safi);
			return;
		}
		ev.type = BGP_FSM_EV_ROUTE_REFRESH_RECEIVED;
		break;
	}
	default:
		return;
	}
	step(s, slot, &ev);
}

/* Frames whole messages out of the byte stream (RFC 4271 §4.1). */
static void frame(struct bgp_session *s, struct bgp_sock *k)
{
	size_t off = 0;

	while (k->slot >= 0) {
		struct bgp_hdr hdr;
		int n = bgp_frame(k->rbuf + off, k->rlen - off, &k->ctx, &hdr, &k->err);
		if (n < 0) {
			message_error(s, k->slot, &k->err);
			break;
		}
		if (n == 0)
			break;
		handle_msg(s, k, k->rbuf + off, (size_t)n);
		settle(s);
		off += (size_t)n;
	}
	if (k->slot < 0)
		return;
	memmove(k->rbuf, k->rbuf + off, k->rlen - off);
	k->rlen -= off;
}

static void recv_done_body(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct bgp_sock *k = ctx;
	struct bgp_session *s = k->s;

	(void)l;
	(void)flags;
	k->recv_armed = false;
	if (res == -ECANCELED || k->closing)
		return;
	if (k->slot < 0) {
		/* Draining: what the peer says no longer matters. */
		if (res <= 0)
			sock_close(k);
		return;
	}
	if (res <= 0) {
		struct bgp_fsm_event ev = {.type = BGP_FSM_EV_TCP_CONNECTION_FAILS};
		log_info("bgp", "%s: connection %s", s->name,
		         res == 0 ? "closed by the peer" : strerror(-res));
		set_error(s, "connection %s", res == 0 ? "closed by the peer" : strerror(-res));
		int slot = k->slot;
		sock_detach(s, slot);
		step(s, slot, &ev);
		settle(s);
		return;
	}
	k->rlen += (size_t)res;
	if (s->frozen)
		return; /* kept unframed for the successor (or for bgp_session_thaw) */
	frame(s, k);
	if (k->slot >= 0)
		arm_recv(k);
	settle(s);
}

static void recv_done(struct loop *l, void *ctx, int res, unsigned flags)
{
	pin(ctx);
	recv_done_body(l, ctx, res, flags);
	unpin(ctx);
}

/* ---------------------------------------------------------------- public */

int bgp_session_new(struct loop *l, const struct bgp_session_conf *conf, struct bgp_session **out)
{
	struct bgp_session *s = calloc(1, sizeof(*s));
	struct bgp_open_cfg oc;
	struct bgp_msg *m;
	struct bgp_notify *err;
	int r;

	if (!s)
		return -ENOMEM;
	s->l = l;
	s->conf = *conf;
	s->ibgp = conf->nb.asn == conf->local_as;
	netaddr_format(&conf->nb.address, false, s->name, sizeof(s->name));
	s->fsm_conf = (struct bgp_fsm_conf){
	    .local_as = conf->local_as,
	    .peer_as = conf->nb.asn,
	    .bgp_id = conf->bgp_id,
	    .hold_time = (uint16_t)conf->nb.hold_time_s,
	    .passive = conf->nb.passive,
	    .connect_retry_ms = conf->connect_retry_ms,
	    .seed = conf->seed,
	};
	r = bgp_fsm_init(&s->conn[0].fsm, &s->fsm_conf);
	if (r < 0)
		goto fail;
	s->conn[0].used = true;
	s->ao = bgp_adjout_new();
	if (!s->ao) {
		r = -ENOMEM;
		goto fail;
	}
	/* Our OPEN never changes: build it once and parse it back for our caps.
	 * No graceful restart (README: it would blackhole a dead VIP). */
	oc = (struct bgp_open_cfg){.asn = conf->local_as,
	                           .hold = (uint16_t)conf->nb.hold_time_s,
	                           .bgp_id = conf->bgp_id,
	                           .fam = {true, true},
	                           .route_refresh = true,
	                           .as4 = true};
	struct wbuf b = wbuf_init(s->open_buf, sizeof(s->open_buf));
	r = bgp_open_build(&b, &oc);
	if (r < 0)
		goto fail;
	s->open_len = b.off;
	m = malloc(sizeof(*m));
	err = malloc(sizeof(*err));
	struct bgp_ctx ctx = {0};
	r = (m && err) ? bgp_msg_parse(s->open_buf, s->open_len, &ctx, m, err) : -ENOMEM;
	if (r >= 0)
		s->our_caps = m->u.open.caps;
	free(m);
	free(err);
	if (r < 0)
		goto fail;
	timer_init(&s->timer, session_timer, s);
	*out = s;
	return 0;
fail:
	bgp_adjout_free(s->ao);
	free(s);
	return r < 0 ? r : -EINVAL;
}

static void sock_free_now(struct bgp_sock *k)
{
	if (!k->closing)
		close(k->fd);
	free(k);
}

void bgp_session_free(struct bgp_session *s)
{
	if (!s)
		return;
	s->freed = true;
	for (int i = 0; i < 2; i++)
		if (s->conn[i].sock)
			sock_free_now(s->conn[i].sock);
	/* loop_free already finished every close in progress (and freed those). */
	while (s->draining) {
		struct bgp_sock *k = s->draining;
		s->draining = k->next;
		if (!k->closing)
			sock_free_now(k);
	}
	bgp_adjout_free(s->ao);
	free(s);
}

void bgp_session_start(struct bgp_session *s)
{
	struct bgp_fsm_event ev = {.type = BGP_FSM_EV_MANUAL_START};

	if (s->imported) {
		/* Adopted Established: go on reading where the predecessor stopped. */
		s->imported = false;
		bgp_session_thaw(s);
		return;
	}
	step(s, 0, &ev);
	settle(s);
}

int bgp_session_set_routes(struct bgp_session *s, const struct bgp_adjout_attrs *sets,
                           size_t n_sets, const struct bgp_adjout_route *routes, size_t n_routes)
{
	int r = bgp_adjout_set_desired(s->ao, sets, n_sets, routes, n_routes);

	if (r < 0)
		return r;
	for (int i = 0; i < 2; i++)
		if (s->conn[i].used)
			sync_routes(s, i);
	settle(s);
	return 0;
}

void bgp_session_accept(struct bgp_session *s, int fd)
{
	struct bgp_fsm_event ev = {.type = BGP_FSM_EV_TCP_CONNECTION_ACCEPTED};
	enum bgp_fsm_state st = s->conn[0].fsm.state;
	struct bgp_sock *k;
	int slot, one = 1;

	/* In Idle the FSM decides: it takes a peer's reconnect unless stopped. */
	if (s->stopping || st == BGP_FSM_ESTABLISHED || s->conn[1].used) {
		log_debug("bgp", "%s: incoming connection refused (%s)", s->name,
		          bgp_fsm_state_name(st));
		close(fd);
		return;
	}
	k = sock_new(s, fd, false);
	if (!k) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sock_local(k);
	if (st == BGP_FSM_IDLE || st == BGP_FSM_CONNECT || st == BGP_FSM_ACTIVE) {
		/* bgp_fsm.h: the primary takes it; our own connect() is dropped. */
		sock_detach(s, 0);
		slot = 0;
	} else {
		/* OpenSent/OpenConfirm: a spare FSM runs it until the collision is decided. */
		struct bgp_fsm_conf sc = s->fsm_conf;
		struct bgp_fsm_event start = {.type = BGP_FSM_EV_MANUAL_START};
		struct bgp_fsm_actions a;
		sc.passive = true;
		sc.seed ^= 0x9e3779b97f4a7c15ull;
		bgp_fsm_init(&s->conn[1].fsm, &sc);
		s->conn[1].used = true;
		bgp_fsm_step(&s->conn[1].fsm, &start, loop_now(s->l), &a);
		slot = 1;
	}
	k->slot = slot;
	s->conn[slot].sock = k;
	pin(k);
	step(s, slot, &ev);
	if (k->slot >= 0)
		arm_recv(k);
	settle(s);
	unpin(k);
}

static void stop(struct bgp_session *s, const char *text, uint8_t subcode)
{
	struct bgp_fsm_event ev = {.type = BGP_FSM_EV_MANUAL_STOP,
	                           .shutdown = text,
	                           .shutdown_len = text ? strlen(text) : 0,
	                           .subcode = subcode};

	s->stopping = true;
	s->connect_failed = false;
	if (s->conn[1].used) {
		step(s, 1, &ev);
		sock_detach(s, 1);
		s->conn[1].used = false;
	}
	step(s, 0, &ev);
	sock_detach(s, 0);
	settle(s);
}

void bgp_session_shutdown(struct bgp_session *s, const char *text)
{
	stop(s, text, BGP_CEASE_ADMIN_SHUTDOWN);
}

void bgp_session_retire(struct bgp_session *s, uint8_t subcode)
{
	log_info("bgp", "%s: %s by a reload: Cease 6/%u", s->name,
	         subcode == BGP_CEASE_PEER_DECONFIGURED ? "removed" : "changed", subcode);
	stop(s, NULL, subcode);
}

int bgp_session_discard(struct bgp_session *s)
{
	if (!s)
		return 0;
	if (!bgp_session_quiet(s))
		return -EBUSY;
	/*
	 * Quiet: every connection's final callback has run (close_done took it
	 * off the draining list), so no loop operation holds a pointer into s;
	 * the Tick timer is the last thing the loop knows of it.
	 */
	loop_timer_cancel(s->l, &s->timer);
	bgp_session_free(s);
	return 0;
}

bool bgp_session_quiet(const struct bgp_session *s)
{
	return !s->conn[0].sock && !s->conn[1].used && !s->draining;
}

enum bgp_fsm_state bgp_session_state(const struct bgp_session *s)
{
	return s->conn[0].fsm.state;
}

/*
 * BFD says the forwarding path to the neighbor is gone (RFC 5882 §4.3): do
 * what BIRD does, stop the session now instead of waiting out the hold timer.
 *
 * A NOTIFICATION is sent first (Cease, subcode 10 "BFD Down", RFC 9384):
 * when the path is really dead it is simply lost, and the queue drains for at
 * most DRAIN_MS without delaying the teardown or the retry; but BFD also goes
 * Down when only BFD failed (the peer's BFD process, a one-way loss, our own
 * loop stalled past the Detection Time) and then TCP still works: the peer
 * learns why at once instead of seeing a bare close, which RFC 4271 §6 asks
 * for anyway ("the NOTIFICATION message is sent and the connection closed").
 * BIRD sends a Cease in the same place. The FSM treats it like any error it
 * sends (MESSAGE_ERROR): NOTIFICATION, CLOSE, DOWN, then IdleHold and an
 * AutomaticStart on its backoff, so a path that comes back brings BGP back.
 */
void bgp_session_bfd_down(struct bgp_session *s)
{
	struct bgp_fsm_event ev = {
	    .type = BGP_FSM_EV_MESSAGE_ERROR, .code = BGP_ERR_CEASE, .subcode = BGP_CEASE_BFD_DOWN};

	if (s->stopping)
		return;
	for (int i = 1; i >= 0; i--) {
		enum bgp_fsm_state st = s->conn[i].fsm.state;
		if (!s->conn[i].used || connecting_state(st))
			continue;
		log_warn("bgp", "%s: BFD session down: closing the BGP session (%s)", s->name,
		         bgp_fsm_state_name(st));
		step(s, i, &ev);
	}
	settle(s);
}

void bgp_session_info(const struct bgp_session *s, struct bgp_session_info *out)
{
	const struct bgp_fsm *f = &s->conn[0].fsm;
	bool open = f->state == BGP_FSM_OPENCONFIRM || f->state == BGP_FSM_ESTABLISHED;

	memset(out, 0, sizeof(*out));
	out->peer = s->conf.nb.address;
	out->peer_as = s->conf.nb.asn;
	out->local_as = s->conf.local_as;
	out->ibgp = s->ibgp;
	out->passive = s->conf.nb.passive;
	out->state = f->state;
	out->state_since_ms = s->state_since_ms;
	if (open) {
		out->hold_time = f->hold_time;
		out->keepalive_ms = f->keepalive_ms;
		out->peer_bgp_id = f->peer_bgp_id;
		out->as4 = f->peer_as4;
		out->ipv4 = f->afi_ipv4;
		out->ipv6 = f->afi_ipv6;
		out->route_refresh = f->route_refresh;
	}
	if (s->conn[0].sock)
		out->local = s->conn[0].sock->local;
	out->flaps = f->flaps;
	out->updates_sent = s->updates_sent;
	out->prefixes_announced = s->prefixes_announced;
	out->prefixes_withdrawn = s->prefixes_withdrawn;
	out->notif_sent = s->notif_sent;
	out->notif_received = s->notif_received;
	memcpy(out->last_error, s->last_error, sizeof(out->last_error));
	out->last_error_ms = s->last_error_ms;
}

size_t bgp_session_routes(const struct bgp_session *s, struct netprefix *prefixes,
                          struct bgp_adjout_attrs *attrs, size_t max)
{
	return bgp_adjout_sent_list(s->ao, prefixes, attrs, max);
}

/* ---------------------------------------------------------------- restart */

int bgp_session_freeze(struct bgp_session *s)
{
	struct bgp_sock *k = s->conn[0].sock;

	if (s->conn[0].fsm.state != BGP_FSM_ESTABLISHED || s->conn[1].used || !k || k->closing ||
	    s->stopping)
		return -ENOTCONN;
	if (!s->frozen) {
		s->frozen = true;
		loop_timer_cancel(s->l, &s->timer);
		if (k->recv_armed)
			loop_cancel(s->l, k->recv_id);
		sock_flush(k); /* whole messages already queued go out first */
	}
	return !k->recv_armed && !k->send_armed && k->qlen == 0 ? 1 : 0;
}

int bgp_session_export(const struct bgp_session *s, struct bgp_handover_session *out, int *fd)
{
	const struct bgp_sock *k = s->conn[0].sock;

	if (!s->frozen || !k || k->recv_armed || k->send_armed || k->qlen ||
	    s->conn[0].fsm.state != BGP_FSM_ESTABLISHED || k->rlen > BGP_HANDOVER_RBUF_MAX)
		return -EBUSY;
	memset(out, 0, sizeof(*out));
	out->local_as = s->conf.local_as;
	out->bgp_id = s->conf.bgp_id;
	out->conf_peer_as = s->conf.nb.asn;
	out->peer = s->conf.nb.address;
	out->outgoing = k->outgoing;
	bgp_fsm_export(&s->conn[0].fsm, &out->fsm);
	out->ctx_as4 = k->ctx.as4;
	out->ctx_ext_msg = k->ctx.ext_msg;
	out->ctx_addpath_rx[0] = k->ctx.addpath_rx[BGP_FAM_IPV4];
	out->ctx_addpath_rx[1] = k->ctx.addpath_rx[BGP_FAM_IPV6];
	out->rlen = k->rlen;
	memcpy(out->rbuf, k->rbuf, k->rlen);
	out->n_routes = bgp_adjout_sent_list(s->ao, out->prefix, out->attrs, BGP_ADJOUT_MAX_ROUTES);
	out->eor_v4_owed = bgp_adjout_eor_owed(s->ao, AF_INET);
	out->eor_v6_owed = bgp_adjout_eor_owed(s->ao, AF_INET6);
	out->updates_sent = s->updates_sent;
	out->prefixes_announced = s->prefixes_announced;
	out->prefixes_withdrawn = s->prefixes_withdrawn;
	*fd = k->fd;
	return 0;
}

void bgp_session_thaw(struct bgp_session *s)
{
	struct bgp_sock *k = s->conn[0].sock;

	if (!s->frozen)
		return;
	s->frozen = false;
	if (k && k->slot >= 0 && !k->closing) {
		pin(k);
		frame(s, k); /* what arrived while frozen */
		if (k->slot >= 0)
			arm_recv(k);
		unpin(k);
	}
	for (int i = 0; i < 2; i++)
		if (s->conn[i].used)
			sync_routes(s, i); /* health changes held back meanwhile */
	settle(s);
}

void bgp_session_handed_over(struct bgp_session *s)
{
	struct bgp_sock *k = s->conn[0].sock;

	s->stopping = true;
	loop_timer_cancel(s->l, &s->timer);
	if (!k)
		return;
	log_info("bgp", "%s: session handed over to the successor", s->name);
	s->conn[0].sock = NULL;
	k->slot = -1;
	k->next = s->draining;
	s->draining = k;
	k->qlen = 0;
	sock_close(k);
}

int bgp_session_import(struct bgp_session *s, const struct bgp_handover_session *in, int fd)
{
	struct bgp_sock *k;
	int r;

	if (in->local_as != s->conf.local_as || in->bgp_id != s->conf.bgp_id ||
	    in->conf_peer_as != s->conf.nb.asn || !netaddr_equal_ip(&in->peer, &s->conf.nb.address))
		return -ESTALE;
	if (in->rlen > sizeof(k->rbuf) || s->conn[0].sock || s->conn[0].fsm.state != BGP_FSM_IDLE)
		return -EINVAL;
	r = bgp_adjout_restore(s->ao, in->prefix, in->attrs, in->n_routes, in->eor_v4_owed,
	                       in->eor_v6_owed);
	if (r < 0)
		return r == -ENOSPC ? -EINVAL : r;
	r = bgp_fsm_import(&s->conn[0].fsm, &in->fsm);
	if (r < 0) {
		bgp_adjout_reset_sent(s->ao);
		return r;
	}
	k = sock_new(s, fd, in->outgoing);
	if (!k) {
		bgp_fsm_init(&s->conn[0].fsm, &s->fsm_conf);
		bgp_adjout_reset_sent(s->ao);
		return -ENOMEM;
	}
	k->slot = 0;
	k->ctx.as4 = in->ctx_as4;
	k->ctx.ext_msg = in->ctx_ext_msg;
	k->ctx.addpath_rx[BGP_FAM_IPV4] = in->ctx_addpath_rx[0];
	k->ctx.addpath_rx[BGP_FAM_IPV6] = in->ctx_addpath_rx[1];
	k->rlen = in->rlen;
	memcpy(k->rbuf, in->rbuf, in->rlen);
	sock_local(k);
	s->conn[0].sock = k;
	s->updates_sent = in->updates_sent;
	s->prefixes_announced = in->prefixes_announced;
	s->prefixes_withdrawn = in->prefixes_withdrawn;
	s->state_since_ms = loop_now(s->l);
	s->frozen = true; /* until bgp_session_start, on the loop's thread */
	s->imported = true;
	log_info("bgp", "%s: Established session taken over from the predecessor (hold %us)",
	         s->name, s->conn[0].fsm.hold_time);
	return 0;
}
