#include "dns/dns_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <linux/sock_diag.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/netaddr.h"
#include "core/timer.h"
#include "dns/dns_answer.h"
#include "dns/dns_cache.h"
#include "dns/dns_forward.h"
#include "dns/dns_inflight.h"
#include "dns/dns_wire.h"

#define SWEEP_INTERVAL_MS 1000
#define SWEEP_BUDGET      1024
#define SOCKBUF_BYTES     (4 << 20)
#define TCP_BACKLOG       1024
#define TCP_RX_BASE       4096        /* grows to one whole message when a client needs it */
#define TCP_OUT_KEEP      (64u << 10) /* send buffers above this are freed once sent */
#define TCP_EVICT_SCAN    16          /* oldest connections looked at for an idle one */
#define ACCEPT_RETRY_MS   1000
#define UDP_REARM_MS      1000
/* RFC 8767 §5 suggests 1.8 s; below the 1 s first retry of common stubs
 * (Windows, dnsperf's default), so the held answer arrives before the
 * client gives up on its first try. */
#define STALE_CLIENT_MS       800
#define ACCEPT_EVICT_RETRY_MS 10
/* Descriptors TCP clients may not take: the process's own (rings, eventfds,
 * listeners, BGP) plus, per worker and upstream, a c-ares channel set with
 * its sockets (opened lazily, replaced on rotation). */
#define FD_RESERVE_BASE         32
#define FD_RESERVE_PER_UPSTREAM DNS_FORWARD_FDS_PER_UPSTREAM

/*
 * A UDP listener lives in its own allocation, like a TCP one: its receive's
 * final callback (on_udp_end) may come from loop_free after the server is
 * gone (srv is NULL by then, and that callback frees it).
 */
struct dns_listener {
	struct dns_server *srv;
	struct netaddr addr;
	int fd;
	bool armed;         /* a receive is posted: health reads this */
	bool closing;       /* removed by a reload: loop_close_fd under way */
	struct timer rearm; /* after the receive died with an error */
};

/*
 * A TCP listener lives in its own allocation: its accept op may get its final
 * callback from loop_free after the server is gone (srv is NULL by then).
 */
struct tcp_listener {
	struct dns_server *srv;
	int fd;
	bool accepting;
	struct timer retry;
};

/*
 * One TCP connection. LIFETIME: created on accept; conn_close() detaches it
 * from the server at once (slot freed, generation bumped, srv = NULL) and
 * hands the fd to loop_close_fd; the loop's final callbacks for its recv and
 * send see `closing` and touch nothing else; conn_done frees it. Upstream
 * answers find their connection by (slot, generation) and drop the answer
 * when it is gone, so no pointer to a connection outlives it.
 * BUFFERS: rx holds the unframed bytes; while `reading` the kernel writes
 * at rx + rx_len, so rx is only compacted or grown when no recv is posted.
 * out is being sent (untouched until its completion), pend collects answers
 * meanwhile; they swap when a send completes.
 */
struct tcp_conn {
	struct dns_server *srv;
	int fd;
	uint32_t slot, gen;
	bool closing; /* detached; only the loop's final callbacks remain */
	bool doomed;  /* close at the end of the current event */
	bool reading, sending, rx_eof;
	unsigned inflight;
	struct tcp_conn *older, *newer; /* LRU by last activity */
	struct timer idle;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	uint8_t *rx;
	size_t rx_len, rx_cap;
	uint8_t *out, *pend;
	size_t out_len, out_cap, pend_len, pend_cap;
};

struct dns_server {
	struct loop *loop;
	unsigned index;
	struct netprefix allow[CONF_MAX_ALLOW];
	unsigned n_allow;
	char identity[CONF_IDENTITY_MAX + 1];
	struct dns_listener *udp[CONF_MAX_LISTEN];
	unsigned n_udp;
	struct tcp_listener *tcp[CONF_MAX_LISTEN];
	unsigned n_tcp;
	struct tcp_conn *conns[DNS_TCP_MAX_CONNS];
	uint32_t slot_gen[DNS_TCP_MAX_CONNS];
	uint32_t free_slots[DNS_TCP_MAX_CONNS];
	unsigned n_free;
	struct tcp_conn *lru_oldest, *lru_newest;
	unsigned fd_reserve;             /* see FD_RESERVE_BASE */
	bool serve_stale;                /* dns.cache.serve-stale > 0: arm STALE_CLIENT_MS */
	struct dns_cache *cache;         /* the process's, shared with every worker (dns_shared) */
	struct dns_inflight *inflight;   /* the process's upstream queries in flight (dns_shared) */
	struct dns_inflight_inbox inbox; /* outcomes of other workers' queries we waited on */
	struct dns_forward *fwd;
	/* Replaced by a reload (dns.upstreams): freed by the sweep once its last
	 * query ended (dns_forward_free may not run inside its callbacks). */
	struct netaddr upstreams[CONF_MAX_UPSTREAMS]; /* what fwd was made with */
	uint64_t
	    answers_base; /* upstream answers of replaced forwarders: the report stays cumulative */
	struct dns_forward *old_fwd[4];
	unsigned n_old_fwd;
	struct timer sweep;
	struct dns_server_stats stats;
	/* Scratch for building answers; the transports copy what they send. */
	uint8_t out[DNS_MSG_MAX + DNS_ANSWER_OPT_LEN];
	uint8_t norm[DNS_MSG_MAX];
};

/*
 * Where an answer goes. UDP: the socket and the client's address (a view
 * into the datagram, or into struct pending once forwarded). TCP: the
 * connection's slot and generation, looked up again when the answer is
 * ready. NONE: a prefetch, nobody waits.
 */
enum target_kind {
	TARGET_NONE = 0,
	TARGET_UDP,
	TARGET_TCP,
};

struct target {
	enum target_kind kind;
	int fd;
	const struct sockaddr *peer;
	socklen_t peerlen;
	uint32_t slot, gen;
	uint64_t t0_us; /* clock_now_us() at receive: the latency histogram */
};

/*
 * A query waiting for the upstream. The client's question is copied here:
 * the request view pointed into a receive buffer that is gone by now.
 */
struct pending {
	struct dns_inflight_node node; /* in the shared in-flight table (dns_inflight.h) */
	struct dns_server *srv;
	struct timer stale; /* RFC 8767 §5 client-response timer */
	bool answered;      /* the client already got a stale answer */
	struct target t;    /* t.peer aimed at peer below for UDP */
	struct sockaddr_storage peer;
	struct dns_request req; /* question pointers re-aimed at qbuf */
	uint8_t qbuf[DNS_NAME_MAX + 4];
};

static const char *sock_error(int err)
{
	switch (err) {
	case EADDRINUSE:
		return "address already in use (is another DNS server running on this port?)";
	case EADDRNOTAVAIL:
		return "address not configured on this host";
	case EACCES:
		return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)";
	default:
		return strerror(err);
	}
}

/*
 * A bound socket for a listen address. listening: TCP listen(2) too (the
 * startup probe only binds). SO_REUSEADDR on TCP so connections of a
 * previous run in TIME_WAIT do not block the bind; a listening socket still
 * does (Linux refuses the bind then), which is what the probe must see.
 */
static int listen_socket(const struct netaddr *a, int type, bool reuseport, bool listening,
                         char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	socklen_t sl = netaddr_to_sockaddr(a, &ss);
	char name[NETADDR_STRLEN];
	int one = 1, size = SOCKBUF_BYTES;
	int fd, err;

	fd = socket(a->family, type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = errno;
		goto fail;
	}
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		err = errno;
		goto fail;
	}
	if (type == SOCK_STREAM &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		err = errno;
		goto fail;
	}
	/* An IPv6 listener answers IPv6 only; IPv4 VIPs get their own sockets. */
	if (a->family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) {
		err = errno;
		goto fail;
	}
	if (type == SOCK_DGRAM) {
		/* Best effort: bursts wait in the socket, not on the wire. */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		err = errno;
		goto fail;
	}
	if (listening && listen(fd, TCP_BACKLOG) < 0) {
		err = errno;
		goto fail;
	}
	return fd;
fail:
	snprintf(why, whylen, "%s (%s): %s", netaddr_format(a, true, name, sizeof(name)),
	         type == SOCK_DGRAM ? "udp" : "tcp", sock_error(err));
	if (fd >= 0)
		close(fd);
	return -err;
}

int dns_server_check_listen(const struct conf_dns *dns, char *why, size_t whylen)
{
	static const int types[] = {SOCK_DGRAM, SOCK_STREAM};

	for (unsigned i = 0; i < dns->n_listen; i++) {
		for (unsigned k = 0; k < 2; k++) {
			/* Without SO_REUSEPORT this bind fails if anything holds the port. */
			int fd =
			    listen_socket(&dns->listen[i], types[k], false, false, why, whylen);
			if (fd < 0)
				return fd;
			close(fd);
		}
	}
	return 0;
}

static bool client_allowed(const struct dns_server *s, const struct sockaddr *sa, socklen_t len)
{
	struct netaddr a;

	if (netaddr_from_sockaddr(sa, len, &a))
		return false;
	for (unsigned i = 0; i < s->n_allow; i++)
		if (netprefix_contains(&s->allow[i], &a))
			return true;
	return false;
}

/* ---------------------------------------------------------------- TCP connections */

static struct tcp_conn *conn_lookup(struct dns_server *s, uint32_t slot, uint32_t gen)
{
	struct tcp_conn *c = slot < DNS_TCP_MAX_CONNS ? s->conns[slot] : NULL;

	return c && c->gen == gen ? c : NULL;
}

static void lru_unlink(struct dns_server *s, struct tcp_conn *c)
{
	if (c->older)
		c->older->newer = c->newer;
	else
		s->lru_oldest = c->newer;
	if (c->newer)
		c->newer->older = c->older;
	else
		s->lru_newest = c->older;
	c->older = c->newer = NULL;
}

static void lru_push(struct dns_server *s, struct tcp_conn *c)
{
	c->older = s->lru_newest;
	c->newer = NULL;
	if (s->lru_newest)
		s->lru_newest->newer = c;
	else
		s->lru_oldest = c;
	s->lru_newest = c;
}

/* Activity: a whole message arrived or a send completed. Partial reads do
 * not count, so a client dribbling one byte at a time still times out. */
static void conn_touch(struct tcp_conn *c)
{
	struct dns_server *s = c->srv;

	lru_unlink(s, c);
	lru_push(s, c);
	loop_timer_arm_in(s->loop, &c->idle, DNS_TCP_IDLE_MS);
}

static void conn_done(struct loop *l, void *ctx)
{
	struct tcp_conn *c = ctx;

	(void)l;
	free(c->rx);
	free(c->out);
	free(c->pend);
	free(c);
}

/* Detaches c from the server and closes it; c may be freed before this returns. */
static void conn_close(struct tcp_conn *c)
{
	struct dns_server *s = c->srv;

	if (c->closing)
		return;
	c->closing = true;
	loop_timer_cancel(s->loop, &c->idle);
	lru_unlink(s, c);
	s->conns[c->slot] = NULL;
	s->slot_gen[c->slot]++;
	s->free_slots[s->n_free++] = c->slot;
	s->stats.tcp_conns--;
	c->srv = NULL;
	if (loop_close_fd(s->loop, c->fd, conn_done, c) < 0)
		/* No record to wait on: leaking beats freeing under a live op. */
		log_warn("dns", "tcp: cannot close connection fd %d", c->fd);
}

static size_t conn_queued(const struct tcp_conn *c)
{
	return c->out_len + c->pend_len;
}

static void on_sent(struct loop *l, void *ctx, int res, unsigned flags);

static void conn_flush(struct tcp_conn *c)
{
	uint8_t *b = c->out;
	size_t cap = c->out_cap;
	int r;

	if (c->sending || c->pend_len == 0 || c->closing)
		return;
	c->out = c->pend;
	c->out_cap = c->pend_cap;
	c->out_len = c->pend_len;
	c->pend = b;
	c->pend_cap = cap;
	c->pend_len = 0;
	r = loop_send(c->srv->loop, c->fd, c->out, c->out_len, on_sent, c, NULL);
	if (r < 0)
		c->doomed = true;
	else
		c->sending = true;
}

/* Queues one answer with its RFC 1035 §4.2.2 length prefix. */
static int conn_queue(struct tcp_conn *c, const uint8_t *ans, size_t len)
{
	size_t need = c->pend_len + 2 + len;

	if (c->doomed)
		return -EPIPE;
	if (conn_queued(c) + 2 + len > DNS_TCP_QUEUE_MAX) {
		/* The client does not read its answers: stop spending memory on it. */
		c->srv->stats.tcp_overflow++;
		c->doomed = true;
		return -ENOBUFS;
	}
	if (need > c->pend_cap) {
		size_t cap = c->pend_cap ? c->pend_cap : TCP_RX_BASE;
		uint8_t *b;
		while (cap < need)
			cap *= 2;
		b = realloc(c->pend, cap);
		if (!b) {
			c->doomed = true;
			return -ENOMEM;
		}
		c->pend = b;
		c->pend_cap = cap;
	}
	struct wbuf b = wbuf_init(c->pend + c->pend_len, 2 + len);
	wbuf_u16(&b, (uint16_t)len);
	wbuf_bytes(&b, ans, len);
	c->pend_len += b.off;
	conn_flush(c);
	return 0;
}

static void handle_query(struct dns_server *s, const struct target *t, const uint8_t *pkt,
                         size_t len);
static void on_recv(struct loop *l, void *ctx, int res, unsigned flags);

/*
 * Runs after every event on a connection: serves the whole messages in rx
 * (while the in-flight and queue caps allow), then reads more, or closes.
 * Must be the last thing a handler does with c.
 */
static void conn_pump(struct tcp_conn *c)
{
	struct dns_server *s = c->srv;
	size_t off = 0;

	if (c->closing)
		return;
	while (!c->reading && !c->doomed && c->inflight < DNS_TCP_MAX_INFLIGHT &&
	       conn_queued(c) < DNS_TCP_QUEUE_PAUSE && c->rx_len - off >= 2) {
		size_t mlen = wire_get_u16_at(c->rx + off);
		if (mlen < DNS_HDR_LEN) {
			/* Not even a header: nothing to answer, the framing is lost. */
			s->stats.tcp_bad_len++;
			c->doomed = true;
			break;
		}
		if (c->rx_len - off < 2 + mlen)
			break;
		struct target t = {
		    .kind = TARGET_TCP,
		    .fd = c->fd,
		    .peer = (const struct sockaddr *)&c->peer,
		    .peerlen = c->peerlen,
		    .slot = c->slot,
		    .gen = c->gen,
		    .t0_us = clock_now_us(),
		};
		s->stats.tcp_rx++;
		conn_touch(c);
		handle_query(s, &t, c->rx + off + 2, mlen);
		off += 2 + mlen;
	}
	if (off) {
		memmove(c->rx, c->rx + off, c->rx_len - off);
		c->rx_len -= off;
	}
	if (c->doomed) {
		conn_close(c);
		return;
	}
	if (c->rx_eof) {
		/* RFC 7766 §6.2.4 half-close: answer what was asked, then close. */
		if (c->inflight == 0 && !c->sending && c->pend_len == 0 &&
		    (c->rx_len < 2 || c->rx_len < 2u + wire_get_u16_at(c->rx)))
			conn_close(c);
		return;
	}
	if (c->reading || c->inflight >= DNS_TCP_MAX_INFLIGHT ||
	    conn_queued(c) >= DNS_TCP_QUEUE_PAUSE)
		return;
	size_t want = c->rx_len >= 2 ? 2u + wire_get_u16_at(c->rx) : 0;
	if (want > c->rx_cap) {
		/* One whole message must fit; at most 2 + 65535 bytes. */
		uint8_t *b = realloc(c->rx, want);
		if (!b) {
			conn_close(c);
			return;
		}
		c->rx = b;
		c->rx_cap = want;
	} else if (c->rx_len == 0 && c->rx_cap > TCP_RX_BASE) {
		uint8_t *b = realloc(c->rx, TCP_RX_BASE);
		if (b) {
			c->rx = b;
			c->rx_cap = TCP_RX_BASE;
		}
	}
	if (loop_recv(s->loop, c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, on_recv, c, NULL) <
	    0) {
		conn_close(c);
		return;
	}
	c->reading = true;
}

static void on_recv(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct tcp_conn *c = ctx;

	(void)l;
	(void)flags;
	if (c->closing)
		return;
	c->reading = false;
	if (res < 0) {
		conn_close(c);
		return;
	}
	if (res == 0)
		c->rx_eof = true;
	else
		c->rx_len += (size_t)res;
	conn_pump(c);
}

static void on_sent(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct tcp_conn *c = ctx;

	(void)l;
	(void)flags;
	if (c->closing)
		return;
	c->sending = false;
	if (res < 0) {
		conn_close(c);
		return;
	}
	c->out_len = 0;
	if (c->out_cap > TCP_OUT_KEEP) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	conn_touch(c);
	conn_flush(c);
	conn_pump(c);
}

static void on_idle(struct timer *t, uint64_t now, void *arg)
{
	struct tcp_conn *c = arg;
	struct dns_server *s = c->srv;

	/* Queries upstream end within the forwarder's timeout: wait for them. */
	if (c->inflight) {
		loop_timer_arm(s->loop, t, now + DNS_TCP_IDLE_MS);
		return;
	}
	s->stats.tcp_idle_closed++;
	conn_close(c);
}

/* At the cap: close the least recently active connection that has nothing in flight. */
static bool evict_idle(struct dns_server *s)
{
	struct tcp_conn *c = s->lru_oldest;

	for (unsigned i = 0; c && i < TCP_EVICT_SCAN; i++, c = c->newer) {
		if (c->inflight == 0 && !c->sending && c->pend_len == 0) {
			s->stats.tcp_evicted++;
			conn_close(c);
			return true;
		}
	}
	return false;
}

/*
 * Whether fd lies in the descriptors kept for the upstream side. accept()
 * returns the lowest free number, so fd tells how full the table is. Read
 * the limit each time: it may change under us (prlimit), and an accept is
 * rare next to a query.
 */
static bool fd_short(const struct dns_server *s, int fd)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return false;
	return (rlim_t)fd + s->fd_reserve >= rl.rlim_cur;
}

static void conn_new(struct dns_server *s, int fd)
{
	struct tcp_conn *c;
	int one = 1;

	s->stats.tcp_accepted++;
	/* At the cap, or where idle clients would starve c-ares of sockets
	 * (every cache miss would then be a SERVFAIL): make room the same way. */
	if ((s->n_free == 0 || fd_short(s, fd)) && !evict_idle(s)) {
		s->stats.tcp_refused++;
		close(fd); /* no op was ever started on it */
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c)
		c->rx = malloc(TCP_RX_BASE);
	if (!c || !c->rx) {
		free(c);
		close(fd);
		return;
	}
	c->peerlen = sizeof(c->peer);
	if (getpeername(fd, (struct sockaddr *)&c->peer, &c->peerlen) < 0) {
		free(c->rx);
		free(c);
		close(fd);
		return;
	}
	/* Answers are whole messages: do not hold them back for Nagle. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->srv = s;
	c->fd = fd;
	c->rx_cap = TCP_RX_BASE;
	c->slot = s->free_slots[--s->n_free];
	c->gen = s->slot_gen[c->slot];
	s->conns[c->slot] = c;
	s->stats.tcp_conns++;
	timer_init(&c->idle, on_idle, c);
	lru_push(s, c);
	loop_timer_arm_in(s->loop, &c->idle, DNS_TCP_IDLE_MS);
	conn_pump(c);
}

static void tcp_accept_arm(struct tcp_listener *tl);

static void on_accept(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct tcp_listener *tl = ctx;

	(void)l;
	if (!tl->srv) {
		/* Server gone (shutdown): the final callback may still carry an fd. */
		if (res >= 0)
			close(res);
		return;
	}
	if (res >= 0)
		conn_new(tl->srv, res);
	if (flags & LOOP_F_MORE)
		return;
	tl->accepting = false;
	if (res == -ECANCELED || res == -ESHUTDOWN)
		return; /* closed or the loop is draining: stay down */
	if ((res == -EMFILE || res == -ENFILE) && evict_idle(tl->srv)) {
		/* An idle client gives its descriptor back once its close
		 * completes (a turn or so): accept again soon, as at the cap,
		 * not at once (that would evict one more per retry). */
		loop_timer_arm_in(tl->srv->loop, &tl->retry, ACCEPT_EVICT_RETRY_MS);
	} else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
		/* Out of descriptors or memory: try again later, not in a tight loop. */
		loop_timer_arm_in(tl->srv->loop, &tl->retry, ACCEPT_RETRY_MS);
	} else {
		tcp_accept_arm(tl);
	}
}

static void on_accept_retry(struct timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	tcp_accept_arm(arg);
}

static void tcp_accept_arm(struct tcp_listener *tl)
{
	if (tl->accepting || !tl->srv)
		return;
	if (loop_accept(tl->srv->loop, tl->fd, on_accept, tl, NULL) < 0) {
		loop_timer_arm_in(tl->srv->loop, &tl->retry, ACCEPT_RETRY_MS);
		return;
	}
	tl->accepting = true;
}

static void listener_done(struct loop *l, void *ctx)
{
	(void)l;
	free(ctx);
}

/* ---------------------------------------------------------------- the query path */

static void count_rcode(struct dns_server *s, const uint8_t *ans)
{
	s->stats.rcode[ans[3] & 0x0f]++;
}

static void count_latency(struct dns_server *s, const struct target *t)
{
	static const uint32_t bound[DNS_SERVER_LATENCY_N] = DNS_SERVER_LATENCY_BOUNDS_US;
	uint64_t us = clock_now_us() - t->t0_us;
	unsigned i = 0;

	while (i < DNS_SERVER_LATENCY_N && us > bound[i])
		i++;
	s->stats.latency[i]++;
	s->stats.latency_us_sum += us;
}

/* Sends a finished answer through its target. */
static void reply(struct dns_server *s, const struct target *t, const uint8_t *ans, size_t len)
{
	int r;

	switch (t->kind) {
	case TARGET_UDP:
		r = loop_udp_send(s->loop, t->fd, t->peer, t->peerlen, ans, len);
		break;
	case TARGET_TCP: {
		struct tcp_conn *c = conn_lookup(s, t->slot, t->gen);
		r = c ? conn_queue(c, ans, len) : -ENOTCONN;
		break;
	}
	default:
		return;
	}
	if (r < 0) {
		s->stats.tx_fail++;
		return;
	}
	count_rcode(s, ans);
	count_latency(s, t);
}

static void answer_error(struct dns_server *s, const struct target *t,
                         const struct dns_request *req, uint16_t rcode)
{
	struct wbuf b = wbuf_init(s->out, sizeof(s->out));
	int len;

	if (t->kind == TARGET_NONE)
		return;
	if (rcode > 15 && !req->edns)
		rcode = DNS_RCODE_FORMERR;
	len = dns_build_error(&b, req, rcode);
	if (len < 0)
		return;
	if (rcode == DNS_RCODE_BADVERS)
		s->stats.badvers++;
	reply(s, t, s->out, (size_t)len);
}

static struct dns_cache_key request_key(const struct dns_request *req)
{
	struct dns_cache_key k = {
	    .qname = req->qname,
	    .qname_lc = req->qname_lc,
	    .qname_len = (uint16_t)req->qname_len,
	    .qtype = req->qtype,
	    .qclass = req->qclass,
	    .do_bit = req->do_bit,
	    .cd_bit = req->cd,
	};
	return k;
}

/*
 * Finishes s->out (a patched stored-form answer of len bytes) for the
 * transport and sends it: UDP is cut to the client's size (RFC 6891 §7),
 * TCP carries the whole answer (RFC 7766 §8).
 */
static void send_finished(struct dns_server *s, const struct target *t,
                          const struct dns_request *req, size_t len)
{
	size_t limit = t->kind == TARGET_TCP ? DNS_MSG_MAX : dns_request_udp_limit(req);
	int n = dns_answer_finish(s->out, len, sizeof(s->out), req, limit);

	if (n < 0) {
		answer_error(s, t, req, DNS_RCODE_SERVFAIL);
		return;
	}
	if (len + (req->edns ? DNS_ANSWER_OPT_LEN : 0) > limit)
		s->stats.truncated++;
	reply(s, t, s->out, (size_t)n);
}

static enum dns_cache_kind answer_kind(const struct dns_scan *sc, bool *cacheable)
{
	*cacheable = true;
	switch (sc->rcode) {
	case DNS_RCODE_NOERROR:
		if (sc->ancount)
			return DNS_CACHE_POSITIVE;
		/* RFC 2308 §5: no SOA, no negative TTL (a referral looks the same). */
		*cacheable = sc->has_soa;
		return DNS_CACHE_NODATA;
	case DNS_RCODE_NXDOMAIN:
		*cacheable = sc->has_soa;
		return DNS_CACHE_NXDOMAIN;
	case DNS_RCODE_SERVFAIL:
		return DNS_CACHE_SERVFAIL;
	default:
		/* REFUSED, NOTIMP, FORMERR: about this query to this upstream, not the name. */
		*cacheable = false;
		return DNS_CACHE_POSITIVE;
	}
}

/*
 * RFC 9520 §3.2: a resolution failure (timeouts, every upstream refusing) is
 * cached for a short time, so clients retrying every second do not each cost
 * a full failover round upstream. Only when nothing, not even a stale
 * answer, is cached for the key: a failure never displaces real data.
 */
static void remember_failure(struct dns_server *s, const struct dns_cache_key *key,
                             const struct dns_request *req)
{
	struct dns_request plain = *req;
	struct wbuf b = wbuf_init(s->norm, sizeof(s->norm));
	int n;

	plain.edns = false; /* the stored form has no OPT (dns_answer.h) */
	n = dns_build_error(&b, &plain, DNS_RCODE_SERVFAIL);
	if (n > 0)
		dns_cache_insert(s->cache, key, s->norm, (size_t)n, NULL, 0, DNS_CACHE_SERVFAIL, 0,
		                 loop_now(s->loop));
}

/* A stored-form answer into s->out with the client's ID and question letter case. */
static void out_from_stored(struct dns_server *s, const struct dns_request *req, const uint8_t *ans,
                            size_t len)
{
	struct wbuf b = wbuf_init(s->out, sizeof(s->out));

	wbuf_bytes(&b, ans, len);
	wbuf_put_u16_at(&b, 0, req->id);
	memcpy(s->out + DNS_HDR_LEN, req->qname, req->qname_len);
}

static void on_inbox(struct loop *l, void *arg);

/* Another worker delivered to our inbox (any thread): have our loop take it. */
static void wake_worker(struct dns_inflight_inbox *ib, void *arg)
{
	struct dns_server *w =
	    (struct dns_server *)((char *)ib - offsetof(struct dns_server, inbox));

	(void)arg;
	/* -EAGAIN (its post queue is full) or -ESHUTDOWN: disarm, so the next
	 * delivery tries again; the worker's sweep timer takes the inbox anyway. */
	if (loop_post(w->loop, on_inbox, w) < 0)
		atomic_store(&ib->armed, false);
}

/*
 * The owner's outcome goes to every worker that waited on the same question
 * (dns_inflight.h): the stored-form answer its own client got (ans, len;
 * flags DNS_INFLIGHT_F_STALE for a serve-stale answer), or none (SERVFAIL).
 * A no-op when p did not own its key. Called after the cache insert, so a
 * query arriving from now on finds the answer there.
 */
static void share_outcome(struct dns_server *s, struct pending *p, const uint8_t *ans, size_t len,
                          unsigned flags)
{
	struct dns_inflight_node *w = dns_inflight_finish(s->inflight, &p->node);

	if (w)
		dns_inflight_deliver(w, ans ? dns_inflight_result_new(ans, len, flags) : NULL,
		                     wake_worker, NULL);
}

/*
 * RFC 8767 §5, the client-response timer: a client whose question has an
 * expired answer in the cache gets that answer after STALE_CLIENT_MS even
 * though the upstream query goes on (its answer still refreshes the cache).
 * Without it, a silent upstream makes every client wait the whole upstream
 * budget (2.5 s) while the node holds something to say, until the upstream
 * is known dead; a stub's first retry comes after 1 s.
 */
static void on_stale_timer(struct timer *t, uint64_t now, void *arg)
{
	struct pending *p = arg;
	struct dns_server *s = p->srv;
	struct dns_cache_key key = request_key(&p->req);
	unsigned flags = 0;

	(void)t;
	if (p->answered || p->t.kind == TARGET_NONE)
		return;
	if (p->t.kind == TARGET_TCP && !conn_lookup(s, p->t.slot, p->t.gen))
		return; /* gone: the final outcome does the bookkeeping */
	int n = dns_cache_lookup(s->cache, &key, p->req.id, true, now, s->out,
	                         sizeof(s->out) - DNS_ANSWER_OPT_LEN, &flags);
	if (n <= 0)
		return; /* nothing held: the client waits for the upstream */
	if (flags & DNS_CACHE_F_STALE)
		s->stats.stale_answers++;
	p->answered = true;
	send_finished(s, &p->t, &p->req, (size_t)n);
}

static void pending_free(struct pending *p)
{
	loop_timer_cancel(p->srv->loop, &p->stale);
	free(p);
}

/* A waiter's turn, on its own worker: answer exactly as the owner did. */
static void answer_waiter(struct dns_server *s, struct pending *p,
                          const struct dns_inflight_result *res)
{
	struct tcp_conn *c = NULL;

	if (p->t.kind == TARGET_TCP) {
		c = conn_lookup(s, p->t.slot, p->t.gen);
		if (c)
			c->inflight--;
		else
			p->t.kind = TARGET_NONE;
	}
	if (!res)
		s->stats.upstream_fail++;
	if (p->t.kind != TARGET_NONE && !p->answered) {
		if (res) { /* len <= UINT16_MAX: s->out holds it with our OPT */
			if (res->flags & DNS_INFLIGHT_F_STALE)
				s->stats.stale_answers++;
			out_from_stored(s, &p->req, res->ans, res->len);
			send_finished(s, &p->t, &p->req, res->len);
		} else {
			answer_error(s, &p->t, &p->req, DNS_RCODE_SERVFAIL);
		}
	}
	if (c)
		conn_pump(c);
}

static void free_waiters(struct dns_inflight_node *n)
{
	while (n) {
		struct dns_inflight_node *nx = n->next;
		dns_inflight_result_put(n->result);
		pending_free((struct pending *)((char *)n - offsetof(struct pending, node)));
		n = nx;
	}
}

static void on_inbox(struct loop *l, void *arg)
{
	struct dns_server *s = arg;
	struct dns_inflight_node *n = dns_inflight_take(&s->inbox);

	(void)l;
	while (n) {
		struct dns_inflight_node *nx = n->next;
		struct pending *p = (struct pending *)((char *)n - offsetof(struct pending, node));
		answer_waiter(s, p, n->result);
		dns_inflight_result_put(n->result);
		pending_free(p);
		n = nx;
	}
}

static void on_upstream(void *ctx, int status, const uint8_t *ans, size_t len,
                        struct dns_scan *scan)
{
	struct pending *p = ctx;
	struct dns_server *s = p->srv;
	struct dns_cache_key key = request_key(&p->req);
	struct tcp_conn *c = NULL;
	int n = -EPROTO;

	if (status == -ECANCELED) {
		share_outcome(s, p, NULL, 0, 0); /* shutting down: waiters are not answered */
		pending_free(p);
		return;
	}
	if (p->t.kind == TARGET_TCP) {
		/* The connection may have closed meanwhile: then nobody waits. */
		c = conn_lookup(s, p->t.slot, p->t.gen);
		if (c)
			c->inflight--;
		else
			p->t.kind = TARGET_NONE;
	}
	if (status == 0)
		n = dns_answer_normalize(ans, len, scan, s->norm, sizeof(s->norm));
	if (n >= 0) {
		bool cacheable;
		enum dns_cache_kind kind = answer_kind(scan, &cacheable);
		if (cacheable && scan->tc == false && scan->n_ttl <= DNS_MAX_TTL_OFFSETS)
			dns_cache_insert(s->cache, &key, s->norm, (size_t)n, scan->ttl_off,
			                 (unsigned)scan->n_ttl, kind, scan->neg_ttl,
			                 loop_now(s->loop));
		share_outcome(s, p, s->norm, (size_t)n, 0);
		if (p->t.kind != TARGET_NONE && !p->answered) {
			out_from_stored(s, &p->req, s->norm, (size_t)n);
			send_finished(s, &p->t, &p->req, (size_t)n);
		}
	} else {
		/* RFC 8767 §4: an expired answer beats no answer when upstreams fail. */
		unsigned flags = 0;
		int r = dns_cache_lookup(s->cache, &key, p->req.id, true, loop_now(s->loop), s->out,
		                         sizeof(s->out) - DNS_ANSWER_OPT_LEN, &flags);
		s->stats.upstream_fail++;
		/*
		 * Only the upstreams' failure is remembered: not a local shortage
		 * (-EBUSY, -ENOMEM) nor a forged answer (-EPROTO), which would let
		 * a spoofer blank a name out for everyone.
		 */
		if (r <= 0 && (status == -ETIMEDOUT || status == -ECONNREFUSED))
			remember_failure(s, &key, &p->req);
		/* Before send_finished, which finishes s->out in place for this client. */
		share_outcome(s, p, r > 0 ? s->out : NULL, r > 0 ? (size_t)r : 0,
		              DNS_INFLIGHT_F_STALE);
		if (p->t.kind != TARGET_NONE && !p->answered) {
			if (r > 0) {
				s->stats.stale_answers++;
				send_finished(s, &p->t, &p->req, (size_t)r);
			} else {
				answer_error(s, &p->t, &p->req, DNS_RCODE_SERVFAIL);
			}
		}
	}
	pending_free(p);
	if (c)
		conn_pump(c);
}

static void start_forward(struct dns_server *s, const struct target *t,
                          const struct dns_request *req)
{
	struct pending *p = malloc(sizeof(*p));
	int r;

	if (!p) {
		answer_error(s, t, req, DNS_RCODE_SERVFAIL);
		return;
	}
	p->srv = s;
	p->t = *t;
	p->answered = false;
	timer_init(&p->stale, on_stale_timer, p);
	if (t->kind == TARGET_UDP) {
		memcpy(&p->peer, t->peer, t->peerlen);
		p->t.peer = (const struct sockaddr *)&p->peer;
	} else {
		p->t.peer = NULL;
		p->t.peerlen = 0;
	}
	p->req = *req;
	memcpy(p->qbuf, req->question, req->question_len);
	p->req.question = p->qbuf;
	p->req.qname = p->qbuf;
	p->node = (struct dns_inflight_node){
	    .name_lc = p->req.qname_lc,
	    .name_len = (uint16_t)p->req.qname_len,
	    .qtype = req->qtype,
	    .qclass = req->qclass,
	    .do_bit = req->do_bit,
	    .cd = req->cd,
	    .inbox = &s->inbox,
	};
	/* One upstream query per question in the whole process: whoever asked first owns it. */
	switch (dns_inflight_join(s->inflight, &p->node, t->kind != TARGET_NONE)) {
	case DNS_INFLIGHT_BUSY: /* a prefetch of a name being fetched already */
		free(p);
		return;
	case DNS_INFLIGHT_WAITER:
		s->stats.inflight_joined++;
		goto joined;
	case DNS_INFLIGHT_FULL: /* no room to wait: our own query (the forwarder bounds it) */
		s->stats.inflight_full++;
		break;
	case DNS_INFLIGHT_OWNER:
		break;
	}
	r = dns_forward_query(s->fwd, req->qname_lc, req->qname_len, req->qtype, req->qclass,
	                      req->cd, req->do_bit, on_upstream, p);
	if (r < 0) {
		s->stats.upstream_fail++;
		share_outcome(s, p, NULL, 0, 0);
		answer_error(s, t, req, DNS_RCODE_SERVFAIL);
		free(p);
		return;
	}
joined:
	if (t->kind == TARGET_TCP) {
		struct tcp_conn *c = conn_lookup(s, t->slot, t->gen);
		if (c)
			c->inflight++;
	}
	/* Without serve-stale nothing can be said early: no timer per miss. */
	if (t->kind != TARGET_NONE && s->serve_stale)
		loop_timer_arm_in(s->loop, &p->stale, STALE_CLIENT_MS);
}

/*
 * The one query path for both transports: parse, allow, identity, cache,
 * forward. pkt is a view (datagram or TCP receive buffer) valid only during
 * the call; what outlives it is copied into struct pending.
 */
static void handle_query(struct dns_server *s, const struct target *t, const uint8_t *pkt,
                         size_t len)
{
	struct dns_request req;
	uint8_t rcode;

	if (dns_request_parse(pkt, len, &req, &rcode) < 0) {
		s->stats.dropped++;
		return;
	}
	if (!client_allowed(s, t->peer, t->peerlen)) {
		s->stats.refused_acl++;
		answer_error(s, t, &req, DNS_RCODE_REFUSED);
		return;
	}
	if (rcode != DNS_RCODE_NOERROR) {
		answer_error(s, t, &req, rcode);
		return;
	}
	if (dns_request_is_identity(&req)) {
		struct wbuf b = wbuf_init(s->out, sizeof(s->out));
		int n = dns_build_identity(&b, &req, s->identity);
		s->stats.identity++;
		if (n > 0)
			reply(s, t, s->out, (size_t)n);
		return;
	}
	if (req.qclass != DNS_CLASS_IN) {
		/* We forward the Internet class only; CHAOS beyond identity is not ours. */
		answer_error(s, t, &req, DNS_RCODE_REFUSED);
		return;
	}

	struct dns_cache_key key = request_key(&req);
	unsigned flags = 0;
	int n = dns_cache_lookup(s->cache, &key, req.id, false, loop_now(s->loop), s->out,
	                         sizeof(s->out) - DNS_ANSWER_OPT_LEN, &flags);
	if (n > 0) {
		s->stats.cache_hits++;
		send_finished(s, t, &req, (size_t)n);
		if (flags & DNS_CACHE_F_PREFETCH) {
			/* Refresh a popular name before it expires: no client waits on this. */
			struct target none = {.kind = TARGET_NONE};
			s->stats.prefetches++;
			start_forward(s, &none, &req);
		}
		return;
	}
	s->stats.cache_misses++;
	/* RFC 8767 §4: with every upstream known dead, an expired answer goes
	 * out at once instead of after the query's whole upstream budget (a
	 * stub gives up sooner). The forwarder's probes notice a revival. */
	if (t->kind != TARGET_NONE && dns_forward_all_dead(s->fwd)) {
		n = dns_cache_lookup(s->cache, &key, req.id, true, loop_now(s->loop), s->out,
		                     sizeof(s->out) - DNS_ANSWER_OPT_LEN, &flags);
		if (n > 0 && (flags & DNS_CACHE_F_STALE)) {
			s->stats.stale_answers++;
			send_finished(s, t, &req, (size_t)n);
			return;
		}
	}
	start_forward(s, t, &req);
}

static void on_datagram(struct loop *l, void *ctx, const struct loop_dgram *d)
{
	struct dns_listener *li = ctx;
	struct target t = {
	    .kind = TARGET_UDP,
	    .fd = d->fd,
	    .peer = d->peer,
	    .peerlen = d->peerlen,
	    .t0_us = clock_now_us(),
	};

	(void)l;
	li->srv->stats.udp_rx++;
	handle_query(li->srv, &t, d->payload, d->len);
}

static void on_udp_end(struct loop *l, void *ctx, int res, unsigned flags);

/* Re-arm a listener whose receive died; health has it DOWN meanwhile. */
static void on_udp_rearm(struct timer *t, uint64_t now, void *arg)
{
	struct dns_listener *li = arg;
	int r;

	(void)now;
	if (li->armed || li->fd < 0)
		return;
	r = loop_udp_listen_ex(li->srv->loop, li->fd, on_datagram, on_udp_end, li);
	if (r == 0) {
		li->armed = true;
		return;
	}
	loop_timer_arm_in(li->srv->loop, t, UDP_REARM_MS);
}

/*
 * The listener's receive reported an error. With LOOP_F_MORE it is still
 * armed (an ICMP error queued on the socket): count it and carry on.
 * Otherwise it stopped for good: mark it so the worker's report makes the
 * VIP DOWN at the next health tick, and try again after UDP_REARM_MS.
 */
static void on_udp_end(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct dns_listener *li = ctx;
	char b[NETADDR_STRLEN];

	if (flags & LOOP_F_MORE)
		return; /* a listener is not connected: nothing to learn from ICMP */
	li->armed = false;
	if (li->closing)
		return; /* removed by a reload: udp_listener_closed frees it */
	if (!li->srv) {
		free(li); /* the server is gone (dns_server_free) */
		return;
	}
	if (res == -ECANCELED)
		return; /* closing */
	li->srv->stats.listener_deaths++;
	log_err("dns", "worker %u: UDP listener %s stopped: %s; retrying every %u ms",
	        li->srv->index, netaddr_format(&li->addr, true, b, sizeof(b)), strerror(-res),
	        UDP_REARM_MS);
	loop_timer_arm_in(l, &li->rearm, UDP_REARM_MS);
}

static void on_sweep(struct timer *t, uint64_t now, void *arg)
{
	struct dns_server *s = arg;

	dns_cache_sweep(s->cache, now, SWEEP_BUDGET);
	for (unsigned i = 0; i < s->n_old_fwd;) {
		if (dns_forward_stats(s->old_fwd[i])->outstanding) {
			i++;
			continue;
		}
		dns_forward_free(s->old_fwd[i]);
		s->old_fwd[i] = s->old_fwd[--s->n_old_fwd];
	}
	/* A wake-up that could not be posted (the loop's post queue was full). */
	if (atomic_load(&s->inbox.head))
		on_inbox(s->loop, s);
	loop_timer_arm(s->loop, t, now + SWEEP_INTERVAL_MS);
}

/* What every worker of the process shares. */
struct dns_shared {
	struct dns_cache *cache;
	struct dns_inflight *inflight;
};

static uint64_t random_seed(void)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)arc4random() << 32 | arc4random();
	return seed;
}

int dns_shared_reconf(struct dns_shared *sh, const struct conf *conf)
{
	struct dns_cache_conf cc = DNS_CACHE_CONF_DEFAULT;

	cc.size = (size_t)conf->dns.cache.size_bytes;
	cc.min_ttl_s = conf->dns.cache.min_ttl_s;
	cc.max_ttl_s = conf->dns.cache.max_ttl_s;
	cc.negative_ttl_s = conf->dns.cache.negative_ttl_s;
	cc.stale_window_s = conf->dns.cache.serve_stale_s;
	return dns_cache_set_limits(sh->cache, &cc, clock_now_ms());
}

int dns_shared_new(const struct conf *conf, char *why, size_t whylen, struct dns_shared **out)
{
	struct dns_cache_conf cc = DNS_CACHE_CONF_DEFAULT;
	unsigned threads = conf->dns.threads ? conf->dns.threads : 1;
	struct dns_shared *sh = calloc(1, sizeof(*sh));
	int r;

	*out = NULL;
	if (!sh) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	cc.size = (size_t)conf->dns.cache.size_bytes;
	cc.min_ttl_s = conf->dns.cache.min_ttl_s;
	cc.max_ttl_s = conf->dns.cache.max_ttl_s;
	cc.negative_ttl_s = conf->dns.cache.negative_ttl_s;
	cc.stale_window_s = conf->dns.cache.serve_stale_s;
	/* Writers (misses) of different workers rarely meet on a shard (bench/README.md). */
	cc.shards = DNS_SHARED_SHARDS_PER_THREAD * threads;
	r = dns_cache_new(&cc, random_seed(), &sh->cache);
	if (r) {
		snprintf(why, whylen, "cache of %zu bytes: %s", cc.size, strerror(-r));
		dns_shared_free(sh);
		return r;
	}
	r = dns_inflight_new(DNS_SHARED_SHARDS_PER_THREAD * threads, 0, 0, random_seed(),
	                     &sh->inflight);
	if (r) {
		snprintf(why, whylen, "in-flight table: %s", strerror(-r));
		dns_shared_free(sh);
		return r;
	}
	*out = sh;
	return 0;
}

void dns_shared_free(struct dns_shared *sh)
{
	if (!sh)
		return;
	dns_inflight_free(sh->inflight);
	dns_cache_free(sh->cache);
	free(sh);
}

struct dns_cache *dns_shared_cache(struct dns_shared *sh)
{
	return sh->cache;
}

/*
 * Opens a UDP and a TCP listener on a (SO_REUSEPORT: every worker has its
 * own) at index n_udp == n_tcp: the pair shares its index. 0, or -errno
 * with a sentence in why; on failure what was opened stays in the arrays
 * (dns_server_free or remove_listener takes it back).
 */
static int add_listener(struct dns_server *s, const struct netaddr *a, char *why, size_t whylen)
{
	struct dns_listener *li = calloc(1, sizeof(*li));
	struct tcp_listener *tl = calloc(1, sizeof(*tl));
	unsigned k = s->n_udp;
	int r;

	if (!li || !tl || k >= CONF_MAX_LISTEN) {
		free(li);
		free(tl);
		snprintf(why, whylen,
		         k >= CONF_MAX_LISTEN ? "too many listeners" : "out of memory");
		return k >= CONF_MAX_LISTEN ? -ENOSPC : -ENOMEM;
	}
	li->fd = -1;
	timer_init(&li->rearm, on_udp_rearm, li);
	li->srv = s;
	li->addr = *a;
	tl->fd = -1;
	timer_init(&tl->retry, on_accept_retry, tl);
	s->udp[k] = li;
	s->tcp[k] = tl;
	s->n_udp = s->n_tcp = k + 1;
	r = listen_socket(&li->addr, SOCK_DGRAM, true, false, why, whylen);
	if (r < 0)
		return r;
	li->fd = r;
	r = loop_udp_listen_ex(s->loop, li->fd, on_datagram, on_udp_end, li);
	if (r) {
		snprintf(why, whylen, "listening on the loop: %s", strerror(-r));
		return r;
	}
	li->armed = true;
	r = listen_socket(a, SOCK_STREAM, true, true, why, whylen);
	if (r < 0)
		return r;
	tl->fd = r;
	tl->srv = s;
	r = loop_accept(s->loop, tl->fd, on_accept, tl, NULL);
	if (r) {
		snprintf(why, whylen, "accepting on the loop: %s", strerror(-r));
		return r;
	}
	tl->accepting = true;
	return 0;
}

static void udp_listener_closed(struct loop *l, void *ctx)
{
	(void)l;
	free(ctx);
}

/*
 * Closes listener pair k at run time (a reload removed its address) and
 * moves the last pair into its place. Connections it accepted stay until
 * they end. The UDP receive's final callback sees `closing` and leaves the
 * listener to udp_listener_closed.
 */
static void remove_listener(struct dns_server *s, unsigned k)
{
	struct dns_listener *li = s->udp[k];
	struct tcp_listener *tl = s->tcp[k];

	loop_timer_cancel(s->loop, &tl->retry);
	tl->srv = NULL;
	if (tl->fd < 0 || loop_close_fd(s->loop, tl->fd, listener_done, tl) < 0) {
		if (tl->fd >= 0)
			close(tl->fd);
		free(tl);
	}
	loop_timer_cancel(s->loop, &li->rearm);
	li->closing = true;
	if (li->fd < 0 || loop_close_fd(s->loop, li->fd, udp_listener_closed, li) < 0) {
		if (li->fd >= 0)
			close(li->fd);
		li->fd = -1;
		li->srv = NULL;
		li->closing = false;
		if (!li->armed)
			free(li); /* else the receive's final callback frees it */
	}
	s->n_udp--;
	s->n_tcp--;
	s->udp[k] = s->udp[s->n_udp];
	s->tcp[k] = s->tcp[s->n_tcp];
}

/*
 * New upstreams: a new forwarder takes every query from now on; the old one
 * finishes what it has in flight (answers still reach their clients) and is
 * freed by the sweep. Its counters and RTT estimates start again.
 */
static void replace_upstreams(struct dns_server *s, const struct conf *conf)
{
	const struct dns_forward_stats *fs = dns_forward_stats(s->fwd);
	struct dns_forward_conf fc = {0};
	struct dns_forward *nf;
	bool same = fs->n_upstreams == conf->dns.n_upstreams;
	unsigned threads = conf->dns.threads ? conf->dns.threads : 1;
	int r;

	for (unsigned i = 0; same && i < conf->dns.n_upstreams; i++)
		same = netaddr_equal(&s->upstreams[i], &conf->dns.upstreams[i]);
	if (same)
		return;
	if (s->n_old_fwd == sizeof(s->old_fwd) / sizeof(s->old_fwd[0])) {
		log_err("dns", "worker %u: upstreams not replaced: earlier forwarders still busy",
		        s->index);
		return;
	}
	fc.upstreams = conf->dns.upstreams;
	fc.n_upstreams = conf->dns.n_upstreams;
	fc.max_outstanding = DNS_SERVER_UPSTREAM_INFLIGHT;
	r = dns_forward_new(s->loop, &fc, &nf);
	if (r) {
		log_err("dns", "worker %u: upstreams not replaced: %s", s->index, strerror(-r));
		return;
	}
	s->answers_base += fs->answers;
	s->old_fwd[s->n_old_fwd++] = s->fwd;
	s->fwd = nf;
	memcpy(s->upstreams, conf->dns.upstreams, sizeof(s->upstreams));
	s->fd_reserve = FD_RESERVE_BASE + threads * conf->dns.n_upstreams * FD_RESERVE_PER_UPSTREAM;
	if (s->index == 0)
		log_info("dns", "upstreams replaced (reload); queries in flight finish on the old");
}

void dns_server_reconf(struct dns_server *s, const struct conf *conf)
{
	char why[256], b[NETADDR_STRLEN];

	replace_upstreams(s, conf);

	memcpy(s->allow, conf->dns.allow, sizeof(s->allow));
	s->n_allow = conf->dns.n_allow;
	s->serve_stale = conf->dns.cache.serve_stale_s > 0;
	snprintf(s->identity, sizeof(s->identity), "%s", conf->dns.identity);
	for (unsigned k = 0; k < s->n_udp;) {
		bool keep = false;
		for (unsigned i = 0; i < conf->dns.n_listen && !keep; i++)
			keep = netaddr_equal(&s->udp[k]->addr, &conf->dns.listen[i]);
		if (keep) {
			k++;
			continue;
		}
		if (s->index == 0)
			log_info("dns", "listener %s closed (reload)",
			         netaddr_format(&s->udp[k]->addr, true, b, sizeof(b)));
		remove_listener(s, k);
	}
	for (unsigned i = 0; i < conf->dns.n_listen; i++) {
		bool have = false;
		for (unsigned k = 0; k < s->n_udp && !have; k++)
			have = netaddr_equal(&s->udp[k]->addr, &conf->dns.listen[i]);
		if (have)
			continue;
		unsigned before = s->n_udp;
		int r = add_listener(s, &conf->dns.listen[i], why, sizeof(why));
		if (r) {
			/* Health sees it not listening: its VIP stays DOWN. */
			log_err("dns", "worker %u: new listener %s: %s", s->index,
			        netaddr_format(&conf->dns.listen[i], true, b, sizeof(b)), why);
			if (s->n_udp > before)
				remove_listener(s, s->n_udp - 1);
		} else if (s->index == 0) {
			log_info("dns", "listener %s opened (reload)",
			         netaddr_format(&conf->dns.listen[i], true, b, sizeof(b)));
		}
	}
}

int dns_server_new(struct loop *l, const struct conf *conf, unsigned index,
                   struct dns_shared *shared, char *why, size_t whylen, struct dns_server **out)
{
	struct dns_forward_conf fc = {0};
	struct dns_server *s;
	unsigned threads = conf->dns.threads ? conf->dns.threads : 1;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	s->loop = l;
	s->index = index;
	memcpy(s->allow, conf->dns.allow, sizeof(s->allow));
	s->n_allow = conf->dns.n_allow;
	s->serve_stale = conf->dns.cache.serve_stale_s > 0;
	s->fd_reserve = FD_RESERVE_BASE + threads * conf->dns.n_upstreams * FD_RESERVE_PER_UPSTREAM;
	snprintf(s->identity, sizeof(s->identity), "%s", conf->dns.identity);

	s->cache = shared->cache;
	s->inflight = shared->inflight;

	memcpy(s->upstreams, conf->dns.upstreams, sizeof(s->upstreams));
	fc.upstreams = conf->dns.upstreams;
	fc.n_upstreams = conf->dns.n_upstreams;
	fc.max_outstanding = DNS_SERVER_UPSTREAM_INFLIGHT;
	r = dns_forward_new(l, &fc, &s->fwd);
	if (r) {
		snprintf(why, whylen, "upstream forwarder: %s", strerror(-r));
		goto fail;
	}

	for (unsigned i = 0; i < DNS_TCP_MAX_CONNS; i++)
		s->free_slots[i] = DNS_TCP_MAX_CONNS - 1 - i;
	s->n_free = DNS_TCP_MAX_CONNS;
	for (unsigned i = 0; i < conf->dns.n_listen; i++) {
		r = add_listener(s, &conf->dns.listen[i], why, whylen);
		if (r)
			goto fail;
	}
	timer_init(&s->sweep, on_sweep, s);
	loop_timer_arm_in(l, &s->sweep, SWEEP_INTERVAL_MS);
	*out = s;
	return 0;
fail:
	dns_server_free(s);
	return r < 0 ? r : -EINVAL;
}

void dns_server_free(struct dns_server *s)
{
	if (!s)
		return;
	loop_timer_cancel(s->loop, &s->sweep);
	/*
	 * Shutdown order (no worker thread runs now): our waiters leave the shared
	 * table first, so no other worker's owner can deliver to us once we are
	 * gone; then our own queries end (-ECANCELED: their waiters on workers not
	 * yet freed get an empty outcome in their inbox, the wake-up is refused by
	 * their drained loop, and they free it when their turn comes); then what
	 * was delivered to us and never taken.
	 */
	if (s->inflight)
		free_waiters(dns_inflight_cancel_inbox(s->inflight, &s->inbox));
	/* Pending upstream queries get -ECANCELED and free themselves. */
	dns_forward_free(s->fwd);
	for (unsigned i = 0; i < s->n_old_fwd; i++)
		dns_forward_free(s->old_fwd[i]);
	free_waiters(dns_inflight_take(&s->inbox));
	while (s->lru_oldest)
		conn_close(s->lru_oldest);
	for (unsigned i = 0; i < s->n_tcp; i++) {
		struct tcp_listener *tl = s->tcp[i];
		loop_timer_cancel(s->loop, &tl->retry);
		tl->srv = NULL;
		if (tl->fd < 0 || loop_close_fd(s->loop, tl->fd, listener_done, tl) < 0)
			free(tl);
	}
	for (unsigned i = 0; i < s->n_udp; i++) {
		struct dns_listener *li = s->udp[i];
		loop_timer_cancel(s->loop, &li->rearm);
		if (li->fd >= 0)
			close(li->fd);
		li->fd = -1;
		li->srv = NULL;
		if (!li->armed)
			free(li); /* else the receive's final callback frees it */
	}
	free(s);
}

const struct dns_server_stats *dns_server_stats(const struct dns_server *s)
{
	return &s->stats;
}

const struct dns_forward_stats *dns_server_upstream_stats(const struct dns_server *s)
{
	return dns_forward_stats(s->fwd);
}

void dns_server_upstream_info(const struct dns_server *s, unsigned idx,
                              struct dns_upstream_info *out)
{
	dns_forward_upstream_info(s->fwd, idx, out);
}

void dns_server_report(const struct dns_server *s, struct dns_server_report *out)
{
	const struct dns_forward_stats *fs = dns_forward_stats(s->fwd);
	struct loop_stats ls;
	unsigned dead = 0;

	memset(out, 0, sizeof(*out));
	loop_get_stats(s->loop, &ls);
	out->at_us = clock_now_us();
	out->wait_us = ls.wait_us;
	for (unsigned i = 0; i < s->n_udp && i < 64; i++) {
		uint32_t mem[SK_MEMINFO_VARS];
		socklen_t ml = sizeof(mem);
		const struct dns_listener *li = s->udp[i];
		out->listen[i] = li->addr;
		out->n_listen = i + 1;
		if (li->armed && li->fd >= 0 && i < s->n_tcp && s->tcp[i]->fd >= 0)
			out->listen_ok |= 1ull << i;
		/* Datagrams the kernel dropped because we did not read fast enough. */
		if (li->fd >= 0 && getsockopt(li->fd, SOL_SOCKET, SO_MEMINFO, mem, &ml) == 0 &&
		    ml > SK_MEMINFO_DROPS * sizeof(uint32_t))
			out->rx_drops += mem[SK_MEMINFO_DROPS];
	}
	out->inflight = fs->outstanding;
	out->inflight_max = DNS_SERVER_UPSTREAM_INFLIGHT;
	out->upstream_answers = s->answers_base + fs->answers;
	for (unsigned i = 0; i < fs->n_upstreams; i++) {
		struct dns_upstream_info ui;
		dns_forward_upstream_info(s->fwd, i, &ui);
		dead += ui.state == DNS_UPSTREAM_DEAD;
	}
	out->upstreams_down = fs->n_upstreams && dead == fs->n_upstreams;
}
