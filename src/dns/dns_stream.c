/*
 * dns_stream.c: RFC 7766 / RFC 7858 connections (see dns_stream.h).
 *
 * Moved out of dns_server.c (issue 10), which keeps the query path; TLS
 * added on the same connection machinery through core/tls_glue.h.
 */
#include "dns/dns_stream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/handover.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/membudget.h"
#include "core/srclimit.h"
#include "core/timer.h"
#include "core/tls_glue.h"
#include "core/wire.h"
#include "dns/dns_wire.h"

#define RX_BASE               4096        /* grows to one whole message when a client needs it */
#define OUT_KEEP              (64u << 10) /* send buffers above this are freed once sent */
#define TLS_RAW               16709       /* one TLS record: 2^14 + 325 (RFC 8446 §5.2) */
#define EVICT_SCAN            16          /* oldest connections looked at for an idle one */
#define ACCEPT_RETRY_MS       1000
#define ACCEPT_EVICT_RETRY_MS 10
#define MAX_LISTENERS         64

/*
 * A listener lives in its own allocation: its accept op may get its final
 * callback from loop_free after the server is gone (srv is NULL by then).
 */
struct listener {
	struct dns_stream *srv;
	int fd;
	bool accepting;
	bool removed, closed; /* dns_stream_unlisten: closing, then closed (slot reusable) */
	struct timer retry;
	struct tls_ctx *tls;
};

/*
 * One connection. LIFETIME: created on accept; conn_close() detaches it from
 * the server at once (slot freed, generation bumped, srv = NULL) and hands
 * the fd to loop_close_fd; the loop's final callbacks for its recv and send
 * see `closing` and touch nothing else; conn_done frees it.
 * BUFFERS: rx holds the plaintext not yet framed. Plain TCP: while `reading`
 * the kernel writes at rx + rx_len, so rx is only compacted or grown when no
 * recv is posted. TLS: the kernel writes ciphertext into raw, and the glue
 * decrypts into rx. out is being sent (untouched until its completion), pend
 * collects answers meanwhile (plaintext, framed); for TLS they are encrypted
 * into out when a send starts.
 */
struct conn {
	struct dns_stream *srv;
	struct membudget *mem; /* conf.mem, kept for conn_done (srv is gone by then) */
	size_t charged;        /* bytes of mem this connection holds */
	int fd;
	uint32_t slot, gen;
	bool closing; /* detached; only the loop's final callbacks remain */
	bool doomed;  /* close at the end of the current event */
	bool reading, sending, rx_eof;
	bool drained; /* the last read left the socket empty: the next waits for data first */
	bool hs_done; /* plain TCP: always */
	unsigned inflight;
	struct conn *older, *newer; /* LRU by last activity */
	struct timer idle;          /* idle, stall and handshake deadlines */
	uint64_t last;              /* loop_now() of the last activity */
	uint64_t send_since;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	struct netaddr src;
	uint8_t *rx;
	size_t rx_len, rx_cap;
	uint8_t *out, *pend;
	size_t out_len, out_cap, pend_len, pend_cap;
	struct tls_conn *tls;
	uint8_t *raw;
};

struct dns_stream {
	struct loop *loop;
	struct dns_stream_conf conf;
	struct netprefix allow[64];
	dns_stream_query_fn fn;
	void *arg;
	struct listener *ls[MAX_LISTENERS];
	unsigned n_ls;
	struct conn **conns;
	uint32_t *slot_gen, *free_slots;
	unsigned n_free;
	struct conn *lru_oldest, *lru_newest;
	struct srclimit *per_source;
	struct dns_stream_stats *st;
};

static uint64_t conn_id(const struct conn *c)
{
	return (uint64_t)c->gen << 32 | c->slot;
}

static struct conn *conn_lookup(const struct dns_stream *s, uint64_t id)
{
	uint32_t slot = (uint32_t)id, gen = (uint32_t)(id >> 32);
	struct conn *c = slot < s->conf.max_conns ? s->conns[slot] : NULL;

	return c && c->gen == gen ? c : NULL;
}

static void lru_unlink(struct dns_stream *s, struct conn *c)
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

static void lru_push(struct dns_stream *s, struct conn *c)
{
	c->older = s->lru_newest;
	c->newer = NULL;
	if (s->lru_newest)
		s->lru_newest->newer = c;
	else
		s->lru_oldest = c;
	s->lru_newest = c;
}

/*
 * The connection's one deadline: idle_ms after its last activity, but never
 * later than stall_ms after the start of a send still in flight (activity
 * on the receiving side is no excuse for a send that does not move). During
 * a TLS handshake the handshake deadline set at accept stays.
 */
static uint64_t conn_due(const struct conn *c, uint64_t from)
{
	const struct dns_stream *s = c->srv;
	uint64_t d = from + s->conf.idle_ms;

	if (c->sending && c->send_since + s->conf.stall_ms < d)
		d = c->send_since + s->conf.stall_ms;
	return d;
}

/*
 * Activity: a whole message arrived or a send completed. Partial reads do
 * not count, so a client dribbling one byte at a time still times out. The
 * timer is lazy (issue 8: re-arming it per query cost two heap updates per
 * pipelined query): activity only moves `last`, and on_idle re-arms for
 * what is left when it fires early.
 */
static void conn_touch(struct conn *c)
{
	struct dns_stream *s = c->srv;

	if (s->lru_newest != c) {
		lru_unlink(s, c);
		lru_push(s, c);
	}
	c->last = loop_now(s->loop);
	if (c->hs_done && !timer_armed(&c->idle))
		loop_timer_arm(s->loop, &c->idle, conn_due(c, c->last));
}

/*
 * The connection side of the process's one memory budget (issue 10, item
 * 2): its struct and buffers are charged before they are allocated, so
 * connections that do not read cannot hold more than the budget in all.
 */
static bool conn_mem_take(struct conn *c, size_t n)
{
	if (c->mem && !membudget_take(c->mem, n)) {
		if (c->srv)
			c->srv->st->mem_refused++;
		return false;
	}
	c->charged += n;
	return true;
}

static void conn_mem_give(struct conn *c, size_t n)
{
	if (c->mem)
		membudget_give(c->mem, n);
	c->charged -= n;
}

static void conn_done(struct loop *l, void *ctx)
{
	struct conn *c = ctx;

	(void)l;
	conn_mem_give(c, c->charged);
	tls_conn_free(c->tls);
	free(c->raw);
	free(c->rx);
	free(c->out);
	free(c->pend);
	free(c);
}

/* Detaches c from the server and closes it; c may be freed before this returns. */
static void conn_close(struct conn *c)
{
	struct dns_stream *s = c->srv;

	if (c->closing)
		return;
	c->closing = true;
	loop_timer_cancel(s->loop, &c->idle);
	lru_unlink(s, c);
	srclimit_put(s->per_source, &c->src);
	s->conns[c->slot] = NULL;
	s->slot_gen[c->slot]++;
	s->free_slots[s->n_free++] = c->slot;
	s->st->conns--;
	c->srv = NULL;
	if (loop_close_fd(s->loop, c->fd, conn_done, c) < 0)
		/* No record to wait on: leaking beats freeing under a live op. */
		log_warn("dns", "stream: cannot close connection fd %d", c->fd);
}

static size_t conn_queued(const struct conn *c)
{
	return c->out_len + c->pend_len + (c->tls ? tls_conn_out_pending(c->tls) : 0);
}

/*
 * An orderly close (idle, the client's own close, eviction, stop): over TLS
 * with nothing left to send, our close_notify goes first (RFC 8446 §6.1,
 * RFC 7858 §3.4), so the client can tell our close from a cut. It is one
 * small record into an idle socket: written at once with a non-blocking
 * send(2) beside the loop (no send of ours is in flight, so no record can
 * overtake another); if the buffer is full, the close goes on without it.
 * Errors and stalls close without it (conn_close).
 */
static void conn_close_orderly(struct conn *c)
{
	uint8_t alert[128]; /* one alert record: 24 bytes in TLS 1.3, 31 in 1.2 with GCM */

	if (c->tls && c->hs_done && !c->closing && !c->sending && conn_queued(c) == 0 &&
	    tls_conn_shutdown(c->tls) == 0 && tls_conn_out_pending(c->tls) <= sizeof(alert)) {
		size_t n = tls_conn_take_out(c->tls, alert, sizeof(alert));
		if (n && send(c->fd, alert, n, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)n)
			c->srv->st->tls_close_notify++;
	}
	conn_close(c);
}

static void on_sent(struct loop *l, void *ctx, int res, unsigned flags);

/* Starts a send of what is queued, unless one is in flight. */
static void conn_flush(struct conn *c)
{
	struct dns_stream *s = c->srv;
	int r;

	if (c->sending || c->closing || c->doomed)
		return;
	if (c->tls) {
		if (c->pend_len && tls_conn_write(c->tls, c->pend, c->pend_len) < 0) {
			c->doomed = true;
			return;
		}
		c->pend_len = 0;
		size_t n = tls_conn_out_pending(c->tls);
		if (n == 0)
			return;
		if (n > c->out_cap) {
			uint8_t *b = NULL;
			if (!conn_mem_take(c, n - c->out_cap)) {
				c->doomed = true;
				return;
			}
			b = realloc(c->out, n);
			if (!b) {
				conn_mem_give(c, n - c->out_cap);
				c->doomed = true;
				return;
			}
			c->out = b;
			c->out_cap = n;
		}
		c->out_len = tls_conn_take_out(c->tls, c->out, n);
	} else {
		uint8_t *b = c->out;
		size_t cap = c->out_cap;
		if (c->pend_len == 0)
			return;
		c->out = c->pend;
		c->out_cap = c->pend_cap;
		c->out_len = c->pend_len;
		c->pend = b;
		c->pend_cap = cap;
		c->pend_len = 0;
	}
	r = loop_send(s->loop, c->fd, c->out, c->out_len, on_sent, c, NULL);
	if (r < 0) {
		c->doomed = true;
		return;
	}
	c->sending = true;
	c->send_since = loop_now(s->loop);
	if (c->hs_done &&
	    (!timer_armed(&c->idle) || c->idle.deadline > c->send_since + s->conf.stall_ms))
		loop_timer_arm(s->loop, &c->idle, c->send_since + s->conf.stall_ms);
}

/* Queues one answer with its RFC 1035 §4.2.2 length prefix. */
static int conn_queue(struct conn *c, const uint8_t *ans, size_t len)
{
	size_t need = c->pend_len + 2 + len;

	if (c->doomed)
		return -EPIPE;
	if (conn_queued(c) + 2 + len > DNS_TCP_QUEUE_MAX) {
		/* The client does not read its answers: stop spending memory on it. */
		c->srv->st->overflow++;
		c->doomed = true;
		return -ENOBUFS;
	}
	if (need > c->pend_cap) {
		size_t cap = c->pend_cap ? c->pend_cap : RX_BASE;
		uint8_t *b;
		while (cap < need)
			cap *= 2;
		if (!conn_mem_take(c, cap - c->pend_cap)) {
			c->doomed = true;
			return -ENOBUFS;
		}
		b = realloc(c->pend, cap);
		if (!b) {
			conn_mem_give(c, cap - c->pend_cap);
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

static void on_recv(struct loop *l, void *ctx, int res, unsigned flags);

static bool paused(const struct conn *c)
{
	return c->inflight >= DNS_TCP_MAX_INFLIGHT || conn_queued(c) >= DNS_TCP_QUEUE_PAUSE;
}

/* rx made to hold the whole message it starts (at most 2 + 65535 bytes), or
 * shrunk back when empty. Only while the kernel is not writing into it. */
static int rx_reserve(struct conn *c)
{
	size_t want = c->rx_len >= 2 ? 2u + wire_get_u16_at(c->rx) : 0;

	if (want > c->rx_cap) {
		uint8_t *b = NULL;
		if (!conn_mem_take(c, want - c->rx_cap))
			return -ENOBUFS;
		b = realloc(c->rx, want);
		if (!b) {
			conn_mem_give(c, want - c->rx_cap);
			return -ENOMEM;
		}
		c->rx = b;
		c->rx_cap = want;
	} else if (c->rx_len == 0 && c->rx_cap > RX_BASE) {
		uint8_t *b = realloc(c->rx, RX_BASE);
		if (b) {
			conn_mem_give(c, c->rx_cap - RX_BASE);
			c->rx = b;
			c->rx_cap = RX_BASE;
		}
	}
	return 0;
}

/* Serves the whole messages in rx while the caps allow; false: c closed. */
static bool serve_rx(struct conn *c)
{
	struct dns_stream *s = c->srv;
	size_t off = 0;
	bool any = false;

	while (!c->doomed && !paused(c)) {
		int fr = dns_tcp_frame(c->rx + off, c->rx_len - off);
		if (fr < 0) {
			/* Not even a header: nothing to answer, the framing is lost. */
			s->st->bad_len++;
			c->doomed = true;
			break;
		}
		if (fr == 0)
			break;
		size_t mlen = (size_t)fr;
		if (!any) {
			conn_touch(c);
			any = true;
		}
		s->fn(s->arg, conn_id(c), (const struct sockaddr *)&c->peer, c->peerlen,
		      c->rx + off + 2, mlen);
		off += 2 + mlen;
	}
	if (off) {
		memmove(c->rx, c->rx + off, c->rx_len - off);
		c->rx_len -= off;
	}
	if (c->doomed) {
		conn_close(c);
		return false;
	}
	return true;
}

/* TLS: decrypts what the glue holds into rx. 1 got bytes, 0 nothing more
 * for now, -1 c closed. */
static int tls_pull(struct conn *c)
{
	struct dns_stream *s = c->srv;

	if (rx_reserve(c) < 0) {
		conn_close(c);
		return -1;
	}
	int n = tls_conn_read(c->tls, c->rx + c->rx_len, c->rx_cap - c->rx_len);
	if (!c->hs_done && tls_conn_established(c->tls)) {
		c->hs_done = true;
		s->st->tls_handshakes++;
		s->st->tls_resumed += tls_conn_resumed(c->tls);
		conn_touch(c); /* the idle deadline replaces the handshake's */
	}
	if (n > 0) {
		c->rx_len += (size_t)n;
		return 1;
	}
	if (n == -EPIPE) {
		c->rx_eof = true; /* close_notify: as a half-close */
	} else if (n < 0) {
		if (!c->hs_done)
			s->st->tls_failed++;
		conn_close(c);
		return -1;
	}
	conn_flush(c); /* handshake messages, tickets */
	return 0;
}

/*
 * Runs after every event on a connection: serves the whole messages held
 * (while the in-flight and queue caps allow), then reads more, or closes.
 * Must be the last thing a handler does with c.
 */
static void conn_pump(struct conn *c)
{
	struct dns_stream *s = c->srv;

	if (c->closing)
		return;
	for (;;) {
		if (!serve_rx(c))
			return;
		if (!c->tls || paused(c))
			break;
		int r = tls_pull(c);
		if (r < 0)
			return;
		if (r == 0)
			break;
	}
	if (c->doomed) {
		conn_close(c);
		return;
	}
	if (c->rx_eof) {
		/* RFC 7766 §6.2.4 half-close: answer what was asked, then close. */
		if (c->inflight == 0 && !c->sending && conn_queued(c) == 0 &&
		    (c->rx_len < 2 || c->rx_len < 2u + wire_get_u16_at(c->rx)))
			conn_close_orderly(c); /* a TLS client's close_notify gets ours */
		return;
	}
	if (c->reading || paused(c))
		return;
	int r;
	/* A client that pipelines waits for answers; the socket a read drained is
	 * nearly always still empty when the answers are out (LOOP_RECV_WAIT). */
	unsigned opts = c->drained ? LOOP_RECV_WAIT : 0;
	if (c->tls) {
		r = loop_recv_opt(s->loop, c->fd, c->raw, TLS_RAW, opts, on_recv, c, NULL);
	} else {
		if (rx_reserve(c) < 0) {
			conn_close(c);
			return;
		}
		r = loop_recv_opt(s->loop, c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, opts,
		                  on_recv, c, NULL);
	}
	if (r < 0) {
		conn_close(c);
		return;
	}
	c->reading = true;
}

static void on_recv(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct conn *c = ctx;

	(void)l;
	if (c->closing)
		return;
	c->reading = false;
	c->drained = flags & LOOP_F_DRAINED;
	if (res < 0) {
		conn_close(c);
		return;
	}
	if (res == 0)
		c->rx_eof = true;
	else if (!c->tls)
		c->rx_len += (size_t)res;
	else if (tls_conn_feed(c->tls, c->raw, (size_t)res) < 0) {
		conn_close(c);
		return;
	}
	conn_pump(c);
}

static void on_sent(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct conn *c = ctx;

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
	if (c->out_cap > OUT_KEEP) {
		conn_mem_give(c, c->out_cap);
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	if (c->hs_done)
		conn_touch(c);
	conn_flush(c);
	conn_pump(c);
}

static void on_idle(struct timer *t, uint64_t now, void *arg)
{
	struct conn *c = arg;
	struct dns_stream *s = c->srv;

	if (!c->hs_done) {
		s->st->tls_hs_timeouts++;
		conn_close(c);
		return;
	}
	if (c->sending && now >= c->send_since + s->conf.stall_ms) {
		/* The client does not read: its answers cannot leave. */
		s->st->stalled++;
		conn_close(c);
		return;
	}
	uint64_t due = conn_due(c, c->last);
	if (now < due) {
		loop_timer_arm(s->loop, t, due); /* active since it was armed */
		return;
	}
	/* Queries upstream end within the forwarder's timeout: wait for them. */
	if (c->inflight || c->sending) {
		loop_timer_arm(s->loop, t, conn_due(c, now));
		return;
	}
	s->st->idle_closed++;
	conn_close_orderly(c);
}

/* At the cap: close the least recently active connection that has nothing in flight. */
static bool evict_idle(struct dns_stream *s)
{
	struct conn *c = s->lru_oldest;

	for (unsigned i = 0; c && i < EVICT_SCAN; i++, c = c->newer) {
		if (c->inflight == 0 && !c->sending && conn_queued(c) == 0) {
			s->st->evicted++;
			conn_close_orderly(c);
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
static bool fd_short(const struct dns_stream *s, int fd)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return false;
	return (rlim_t)fd + s->conf.fd_reserve >= rl.rlim_cur;
}

static bool source_allowed(const struct dns_stream *s, const struct netaddr *a)
{
	for (unsigned i = 0; i < s->conf.n_allow; i++)
		if (netprefix_contains(&s->allow[i], a))
			return true;
	return false;
}

static void conn_new(struct listener *tl, int fd)
{
	struct dns_stream *s = tl->srv;
	struct sockaddr_storage peer;
	socklen_t peerlen = sizeof(peer);
	struct netaddr src;
	struct conn *c;
	int one = 1;

	s->st->accepted++;
	if (getpeername(fd, (struct sockaddr *)&peer, &peerlen) < 0 ||
	    netaddr_from_sockaddr((struct sockaddr *)&peer, peerlen, &src) < 0) {
		close(fd);
		return;
	}
	/* Issue 10, fault 1: outside dns.allow nothing is read, nothing is held. */
	if (!source_allowed(s, &src)) {
		s->st->refused_acl++;
		close(fd); /* no op was ever started on it */
		return;
	}
	/* At the cap, or where idle clients would starve c-ares of sockets
	 * (every cache miss would then be a SERVFAIL): make room the same way. */
	if ((s->n_free == 0 || fd_short(s, fd)) && !evict_idle(s)) {
		s->st->refused++;
		close(fd);
		return;
	}
	int r = srclimit_take(s->per_source, &src);
	/* The node is at dns.tcp-connections: room is made the same way, from
	 * this worker's idle clients (another worker's are not ours to close). */
	if (r == -ENOSPC && evict_idle(s))
		r = srclimit_take(s->per_source, &src);
	if (r < 0) {
		if (r == -EUSERS)
			s->st->refused_source++;
		else
			s->st->refused++;
		close(fd);
		return;
	}
	size_t charge = sizeof(*c) + RX_BASE + (tl->tls ? TLS_RAW : 0);
	if (s->conf.mem && !membudget_take(s->conf.mem, charge)) {
		s->st->mem_refused++;
		srclimit_put(s->per_source, &src);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c)
		c->rx = malloc(RX_BASE);
	if (c && c->rx && tl->tls &&
	    (!(c->raw = malloc(TLS_RAW)) || tls_conn_new(tl->tls, &c->tls)))
		c->rx = (free(c->rx), NULL);
	if (!c || !c->rx) {
		if (s->conf.mem)
			membudget_give(s->conf.mem, charge);
		if (c)
			free(c->raw);
		free(c);
		srclimit_put(s->per_source, &src);
		close(fd);
		return;
	}
	c->mem = s->conf.mem;
	c->charged = charge;
	/* Answers are whole messages: do not hold them back for Nagle. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->peer = peer;
	c->peerlen = peerlen;
	c->src = src;
	c->srv = s;
	c->fd = fd;
	c->rx_cap = RX_BASE;
	c->hs_done = c->tls == NULL;
	c->slot = s->free_slots[--s->n_free];
	c->gen = s->slot_gen[c->slot];
	s->conns[c->slot] = c;
	s->st->conns++;
	timer_init(&c->idle, on_idle, c);
	c->last = loop_now(s->loop);
	lru_push(s, c);
	loop_timer_arm_in(s->loop, &c->idle, c->tls ? s->conf.handshake_ms : s->conf.idle_ms);
	conn_pump(c);
}

static void accept_arm(struct listener *tl);

static void on_accept(struct loop *l, void *ctx, int res, unsigned flags)
{
	struct listener *tl = ctx;

	(void)l;
	if (!tl->srv) {
		/* Server gone (shutdown): the final callback may still carry an fd. */
		if (res >= 0)
			close(res);
		return;
	}
	if (res >= 0)
		conn_new(tl, res);
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
		accept_arm(tl);
	}
}

static void on_accept_retry(struct timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	accept_arm(arg);
}

static void accept_arm(struct listener *tl)
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

/* ---------------------------------------------------------------- API */

int dns_stream_new(struct loop *l, const struct dns_stream_conf *conf, dns_stream_query_fn fn,
                   void *arg, struct dns_stream_stats *st, struct dns_stream **out)
{
	struct dns_stream *s;
	uint64_t seed = 0;
	int r;

	*out = NULL;
	if (!fn || !st || conf->max_conns < 1 || conf->max_conns > DNS_TCP_MAX_CONNS ||
	    conf->per_source < 1 || conf->n_allow > 64 || !conf->idle_ms || !conf->stall_ms ||
	    !conf->handshake_ms)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = l;
	s->conf = *conf;
	memcpy(s->allow, conf->allow, conf->n_allow * sizeof(*s->allow));
	s->conf.allow = s->allow;
	s->fn = fn;
	s->arg = arg;
	s->st = st;
	s->conns = calloc(conf->max_conns, sizeof(*s->conns));
	s->slot_gen = calloc(conf->max_conns, sizeof(*s->slot_gen));
	s->free_slots = calloc(conf->max_conns, sizeof(*s->free_slots));
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)(uintptr_t)s;
	if (conf->sources) {
		s->per_source = conf->sources; /* the node's: borrowed */
		r = 0;
	} else {
		r = srclimit_new(conf->max_conns, conf->per_source, conf->prefix4, conf->prefix6,
		                 seed, &s->per_source);
	}
	if (r || !s->conns || !s->slot_gen || !s->free_slots) {
		dns_stream_free(s);
		return r ? r : -ENOMEM;
	}
	for (unsigned i = 0; i < conf->max_conns; i++)
		s->free_slots[i] = conf->max_conns - 1 - i;
	s->n_free = conf->max_conns;
	*out = s;
	return 0;
}

int dns_stream_listen(struct dns_stream *s, int listen_fd, struct tls_ctx *tls)
{
	struct listener *tl;
	int r;

	/* The slot of a listener a reload closed, once its close completed. */
	for (unsigned i = 0; i < s->n_ls; i++) {
		if (!s->ls[i]->removed || !s->ls[i]->closed)
			continue;
		if (!(tl = calloc(1, sizeof(*tl)))) {
			close(listen_fd);
			return -ENOMEM;
		}
		free(s->ls[i]);
		s->ls[i] = tl;
		tl->fd = listen_fd;
		tl->tls = tls;
		tl->srv = s;
		timer_init(&tl->retry, on_accept_retry, tl);
		r = loop_accept(s->loop, tl->fd, on_accept, tl, NULL);
		if (r < 0) {
			dns_stream_unlisten(s, i);
			return r;
		}
		tl->accepting = true;
		return (int)i;
	}
	if (s->n_ls == MAX_LISTENERS || !(tl = calloc(1, sizeof(*tl)))) {
		close(listen_fd);
		return s->n_ls == MAX_LISTENERS ? -ENOSPC : -ENOMEM;
	}
	tl->fd = listen_fd;
	tl->tls = tls;
	tl->srv = s;
	timer_init(&tl->retry, on_accept_retry, tl);
	s->ls[s->n_ls] = tl;
	r = loop_accept(s->loop, tl->fd, on_accept, tl, NULL);
	if (r < 0)
		return r; /* dns_stream_free closes it */
	tl->accepting = true;
	return (int)s->n_ls++;
}

static void unlisten_done(struct loop *l, void *ctx)
{
	struct listener *tl = ctx;

	(void)l;
	tl->closed = true; /* the struct stays in its slot until reused or freed */
}

void dns_stream_unlisten(struct dns_stream *s, unsigned idx)
{
	struct listener *tl = idx < s->n_ls ? s->ls[idx] : NULL;

	if (!tl || tl->removed)
		return;
	tl->removed = true;
	loop_timer_cancel(s->loop, &tl->retry);
	tl->srv = NULL; /* on_accept closes what still arrives */
	if (tl->fd < 0 || loop_close_fd(s->loop, tl->fd, unlisten_done, tl) < 0) {
		if (tl->fd >= 0)
			close(tl->fd);
		tl->closed = true;
	}
	tl->fd = -1;
}

void dns_stream_set_allow(struct dns_stream *s, const struct netprefix *allow, unsigned n)
{
	if (n > sizeof(s->allow) / sizeof(s->allow[0]))
		n = sizeof(s->allow) / sizeof(s->allow[0]);
	memcpy(s->allow, allow, n * sizeof(*s->allow));
	s->conf.n_allow = n;
	/* A narrowed list applies to connections already open too: the ACL is
	 * checked at accept only, so one accepted before the reload would keep
	 * asking forever. Their answers in flight find no connection. */
	for (struct conn *c = s->lru_oldest, *next; c; c = next) {
		struct netaddr src;
		next = c->newer;
		if (netaddr_from_sockaddr((struct sockaddr *)&c->peer, c->peerlen, &src) == 0 &&
		    source_allowed(s, &src))
			continue;
		s->st->refused_acl++;
		conn_close(c);
	}
}

bool dns_stream_listener_ok(const struct dns_stream *s, unsigned idx)
{
	return idx < s->n_ls && s->ls[idx]->fd >= 0;
}

int dns_stream_reply(struct dns_stream *s, uint64_t conn, const uint8_t *msg, size_t len)
{
	struct conn *c = conn_lookup(s, conn);

	return c ? conn_queue(c, msg, len) : -ENOTCONN;
}

void dns_stream_hold(struct dns_stream *s, uint64_t conn)
{
	struct conn *c = conn_lookup(s, conn);

	if (c)
		c->inflight++;
}

void dns_stream_release(struct dns_stream *s, uint64_t conn)
{
	struct conn *c = conn_lookup(s, conn);

	if (!c)
		return;
	if (c->inflight)
		c->inflight--;
	conn_pump(c);
}

bool dns_stream_alive(const struct dns_stream *s, uint64_t conn)
{
	return conn_lookup(s, conn) != NULL;
}

void dns_stream_stop_listening(struct dns_stream *s)
{
	for (unsigned i = 0; i < s->n_ls; i++) {
		struct listener *tl = s->ls[i];
		loop_timer_cancel(s->loop, &tl->retry);
		if (tl->fd < 0)
			continue;
		handover_forget(tl->fd);
		/* The accept's final callback (-ECANCELED) only marks it stopped. */
		if (loop_close_fd(s->loop, tl->fd, NULL, NULL) < 0)
			close(tl->fd);
		tl->fd = -1;
	}
}

bool dns_stream_idle(const struct dns_stream *s)
{
	for (const struct conn *c = s->lru_oldest; c; c = c->newer)
		if (c->inflight || conn_queued(c) || c->sending)
			return false;
	return true;
}

void dns_stream_free(struct dns_stream *s)
{
	if (!s)
		return;
	while (s->lru_oldest)
		conn_close_orderly(s->lru_oldest); /* a stop is an orderly close too */
	/* A listener that failed to start was never counted in n_ls. */
	for (unsigned i = 0; i < s->n_ls + (s->n_ls < MAX_LISTENERS && s->ls[s->n_ls]); i++) {
		struct listener *tl = s->ls[i];
		if (tl->removed) {
			/* Closed by a reload; its close completed when the loop drained. */
			free(tl);
			continue;
		}
		loop_timer_cancel(s->loop, &tl->retry);
		tl->srv = NULL;
		if (tl->fd < 0 || loop_close_fd(s->loop, tl->fd, listener_done, tl) < 0)
			free(tl);
	}
	if (!s->conf.sources)
		srclimit_free(s->per_source);
	free(s->conns);
	free(s->slot_gen);
	free(s->free_slots);
	free(s);
}
