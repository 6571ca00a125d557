#include "dns/dns_server.h"

#include "anycache_version.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <linux/sock_diag.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/handover.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/membudget.h"
#include "core/netaddr.h"
#include "core/srclimit.h"
#include "core/timer.h"
#include "core/tls_glue.h"
#include "dns/dns_answer.h"
#include "dns/dns_cache.h"
#include "dns/dns_cookie.h"
#include "dns/dns_cookie_mac.h"
#include "dns/dns_forward.h"
#include "dns/dns_inflight.h"
#include "dns/dns_rrl.h"
#include "dns/dns_stream.h"
#include "dns/dns_tap.h"
#include "dns/dns_upstream.h"
#include "dns/dns_wire.h"

#define SWEEP_INTERVAL_MS 1000

/* Every worker's stream server gets dns.tcp-connections slots. */
_Static_assert(CONF_TCP_CONNECTIONS_MAX <= DNS_TCP_MAX_CONNS,
               "dns.tcp-connections beyond what dns_stream accepts");
#define SWEEP_BUDGET      1024
#define SOCKBUF_BYTES     (4 << 20)
#define TCP_BACKLOG       1024
#define UDP_REARM_MS      1000
/* RFC 8767 §5 suggests 1.8 s; below the 1 s first retry of common stubs
 * (Windows, dnsperf's default), so the held answer arrives before the
 * client gives up on its first try. */
#define STALE_CLIENT_MS 800
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

struct dns_server {
	struct loop *loop;
	unsigned index;
	struct netprefix allow[CONF_MAX_ALLOW];
	unsigned n_allow;
	char identity[CONF_IDENTITY_MAX + 1];
	struct dns_listener *udp[CONF_MAX_LISTEN];
	unsigned n_udp;
	int tcp_fd[CONF_MAX_LISTEN];     /* its descriptor (the stream server owns it) */
	int tcp_idx[CONF_MAX_LISTEN];    /* dns.listen[i]'s TCP listener in `stream`, or -1 */
	struct dns_stream *stream;       /* TCP and TLS connections (dns_stream.h) */
	bool serve_stale;                /* dns.cache.serve-stale > 0: arm STALE_CLIENT_MS */
	struct membudget *mem;           /* the process's budget for client-held memory (dns_shared) */
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
	struct dns_tap_queue *tap; /* this worker's dnstap queue (dns_tap.h); NULL: off */
	unsigned tap_msgs;         /* enum dns_tap_msg bits to log */
	struct timer sweep;
	struct dns_server_stats stats;
	struct dns_cookie_mac *cookie_mac; /* this worker's MAC contexts, the node's secrets */
	struct dns_rrl *rrl;               /* the node's (dns_shared), NULL: dns.rate-limit off */
	bool require_cookie;               /* dns.require-cookie */
	/* Scratch for building answers; the transports copy what they send. */
	uint8_t out[DNS_MSG_MAX + DNS_ANSWER_OPT_LEN + DNS_COOKIE_OPT_LEN];
	uint8_t norm[DNS_MSG_MAX];
};

/*
 * Where an answer goes. UDP: the socket and the client's address (a view
 * into the datagram, or into struct pending once forwarded). TCP (plain or
 * TLS): the stream connection's id, looked up again when the answer is
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
	uint64_t conn;  /* TARGET_TCP: dns_stream.h connection id */
	uint64_t t0_us; /* loop_now_us() of the turn that received it: the latency histogram */
	/* RFC 7873 §5.2.3-5: the COOKIE option every answer to this query carries
	 * (the client's cookie and a good server cookie of ours). */
	bool cookie;
	uint8_t cookie_data[DNS_COOKIE_LEN];
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
	for (unsigned i = 0; i < dns->n_tls_listen; i++) {
		int fd = listen_socket(&dns->tls_listen[i], SOCK_STREAM, false, false, why, whylen);
		if (fd < 0)
			return fd;
		close(fd);
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

/* ---------------------------------------------------------------- the query path */

static void count_rcode(struct dns_server *s, const uint8_t *ans)
{
	s->stats.rcode[ans[3] & 0x0f]++;
}

static void count_latency(struct dns_server *s, const struct target *t)
{
	static const uint32_t bound[DNS_SERVER_LATENCY_N] = DNS_SERVER_LATENCY_BOUNDS_US;
	/* Turn to turn: a hit answered in the turn that received it counts 0 us
	 * (its ~1 us of processing is below the first bound anyway), and no clock
	 * is read per query. */
	uint64_t now = loop_now_us(s->loop);
	uint64_t us = now > t->t0_us ? now - t->t0_us : 0;
	unsigned i = 0;

	while (i < DNS_SERVER_LATENCY_N && us > bound[i])
		i++;
	s->stats.latency[i]++;
	s->stats.latency_us_sum += us;
}

/*
 * dnstap (dns_tap.h): a client message. The wall time of a response's query
 * is its receive time on the monotonic clock carried over. Never waits: a
 * full queue drops the message and counts it.
 */
static void tap_client(struct dns_server *s, const struct target *t, enum dns_tap_msg kind,
                       const uint8_t *msg, size_t len)
{
	uint64_t now = dns_tap_now_us();
	struct dns_tap_event ev = {
	    .kind = kind,
	    .tcp = t->kind == TARGET_TCP,
	    .query_addr = t->peer,
	    .msg = msg,
	    .len = len,
	};

	if (kind == DNS_TAP_CLIENT_QUERY) {
		ev.query_time_us = now;
	} else {
		uint64_t held = loop_now_us(s->loop) - t->t0_us;
		ev.query_time_us = now > held ? now - held : now;
		ev.response_time_us = now;
	}
	if (dns_tap_log(s->tap, &ev) < 0)
		s->stats.dnstap_dropped++;
}

/* dnstap: what the forwarder sent to or took from an upstream (dns_forward_conf.tap). */
static void tap_forwarder(void *arg, bool response, bool tcp, const struct netaddr *up,
                          const uint8_t *msg, size_t len)
{
	struct dns_server *s = arg;
	enum dns_tap_msg kind = response ? DNS_TAP_FORWARDER_RESPONSE : DNS_TAP_FORWARDER_QUERY;
	struct sockaddr_storage ss;
	uint64_t now = dns_tap_now_us();

	if (!(s->tap_msgs & kind))
		return;
	netaddr_to_sockaddr(up, &ss);
	struct dns_tap_event ev = {
	    .kind = kind,
	    .tcp = tcp,
	    .response_addr = (const struct sockaddr *)&ss,
	    .query_time_us = response ? 0 : now,
	    .response_time_us = response ? now : 0,
	    .msg = msg,
	    .len = len,
	};
	if (dns_tap_log(s->tap, &ev) < 0)
		s->stats.dnstap_dropped++;
}

/*
 * Adds the query's COOKIE option to the answer in s->out (RFC 7873 §5.2:
 * every answer to a query that carried one, cache hits and errors alike).
 * Builders left room (COOKIE_ROOM); an answer without our OPT at the end
 * cannot carry it and goes out as it is.
 */
static size_t add_cookie(struct dns_server *s, const struct target *t, size_t len)
{
	int n = dns_cookie_append(s->out, len, sizeof(s->out), t->cookie_data);

	if (n < 0) {
		s->stats.cookie_unsent++;
		return len;
	}
	return (size_t)n;
}

/* Sends a finished answer through its target. */
static void reply(struct dns_server *s, const struct target *t, const uint8_t *ans, size_t len)
{
	int r;

	if (t->cookie && ans == s->out)
		len = add_cookie(s, t, len);

	switch (t->kind) {
	case TARGET_UDP:
		r = loop_udp_send(s->loop, t->fd, t->peer, t->peerlen, ans, len);
		break;
	case TARGET_TCP:
		r = dns_stream_reply(s->stream, t->conn, ans, len);
		break;
	default:
		return;
	}
	if (r < 0) {
		s->stats.tx_fail++;
		return;
	}
	count_rcode(s, ans);
	count_latency(s, t);
	if (s->tap_msgs & DNS_TAP_CLIENT_RESPONSE)
		tap_client(s, t, DNS_TAP_CLIENT_RESPONSE, ans, len);
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

	if (t->cookie)
		limit -= DNS_COOKIE_OPT_LEN; /* reply() adds it: the whole must fit */
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
	if (p->t.kind == TARGET_TCP && !dns_stream_alive(s->stream, p->t.conn))
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
	membudget_give(p->srv->mem, sizeof(*p));
	free(p);
}

/* A waiter's turn, on its own worker: answer exactly as the owner did. */
static void answer_waiter(struct dns_server *s, struct pending *p,
                          const struct dns_inflight_result *res)
{
	bool held = p->t.kind == TARGET_TCP;

	/* The connection may have closed meanwhile: then nobody waits. */
	if (held && !dns_stream_alive(s->stream, p->t.conn))
		p->t.kind = TARGET_NONE;
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
	if (held)
		dns_stream_release(s->stream, p->t.conn); /* reading may resume */
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
	bool held = p->t.kind == TARGET_TCP;
	int n = -EPROTO;

	if (status == -ECANCELED) {
		share_outcome(s, p, NULL, 0, 0); /* shutting down: waiters are not answered */
		pending_free(p);
		return;
	}
	/* The connection may have closed meanwhile: then nobody waits. */
	if (held && !dns_stream_alive(s->stream, p->t.conn))
		p->t.kind = TARGET_NONE;
	/* Every query we send carries our OPT; an answer without one came from
	 * the RFC 6891 §7 fallback (asked again without OPT after a FORMERR), so
	 * it lacks what DO asked for (RRSIGs): served, never cached under a key
	 * that says EDNS (issue 10, item 4). c-ares (TCP) runs without
	 * ARES_FLAG_EDNS, so its own fallback never strips anything. */
	bool had_opt = status == 0 && scan->has_opt;
	if (status == 0)
		n = dns_answer_normalize(ans, len, scan, s->norm, sizeof(s->norm));
	if (n >= 0) {
		bool cacheable;
		enum dns_cache_kind kind = answer_kind(scan, &cacheable);
		uint32_t lo, hi;
		/* The first answer gets the TTLs a cache hit would give: max-ttl
		 * and RFC 2181 §8 apply to every answer, not only cached copies. */
		dns_cache_ttl_bounds(s->cache, cacheable ? kind : DNS_CACHE_POSITIVE, scan->neg_ttl,
		                     &lo, &hi);
		if (dns_answer_clamp_ttls(s->norm, (size_t)n, lo, hi) < 0)
			cacheable = false; /* cannot happen: it scanned */
		if (cacheable && had_opt && scan->tc == false && scan->n_ttl <= DNS_MAX_TTL_OFFSETS)
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
		 * (-EBUSY, -ENOMEM), nor a forged answer (-EPROTO), nor a transport
		 * error (-ENETUNREACH: an ICMP error anyone on the path may forge),
		 * each of which would let someone blank a name out for everyone.
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
	uint64_t conn = p->t.conn;
	pending_free(p);
	if (held)
		dns_stream_release(s->stream, conn); /* reading may resume */
}

static void start_forward(struct dns_server *s, const struct target *t,
                          const struct dns_request *req)
{
	struct pending *p;
	int r;

	/* Every caller waiting for an upstream holds one of these: charged to
	 * the process's budget first (issue 10, item 2). */
	if (!membudget_take(s->mem, sizeof(*p))) {
		s->stats.mem_refused++;
		answer_error(s, t, req, DNS_RCODE_SERVFAIL);
		return;
	}
	p = malloc(sizeof(*p));
	if (!p) {
		membudget_give(s->mem, sizeof(*p));
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
		pending_free(p);
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
		pending_free(p);
		return;
	}
joined:
	if (t->kind == TARGET_TCP)
		dns_stream_hold(s->stream, t->conn);
	/* Without serve-stale nothing can be said early: no timer per miss. */
	if (t->kind != TARGET_NONE && s->serve_stale)
		loop_timer_arm_in(s->loop, &p->stale, STALE_CLIENT_MS);
}

/* ---------------------------------------------------------------- cookies and rate limiting */

/* RFC 9018 §4.3: server cookie timestamps are wall-clock seconds, so that
 * every node of an anycast set reads them alike. */
static uint32_t wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint32_t)ts.tv_sec;
}

_Static_assert(sizeof(((struct dns_server_stats *)0)->cookies) / sizeof(uint64_t) ==
                   DNS_COOKIE_VALID + 1,
               "one counter per verdict");

/*
 * RFC 7873 §5.2 for a query with a COOKIE option from client a: a malformed
 * option makes the answer FORMERR (§5.2.2); any other gets our cookie in
 * every answer (t->cookie): a fresh server cookie for a client cookie alone
 * (§5.2.3) or a bad one (§5.2.4), which are then served normally, and the
 * valid one echoed or renewed (§5.2.5).
 */
static enum dns_cookie_verdict check_cookie(struct dns_server *s, struct target *t,
                                            const uint8_t *pkt, const struct dns_request *req,
                                            const struct netaddr *a, uint8_t *rcode)
{
	struct dns_cookie_keys k = dns_cookie_mac_keys(s->cookie_mac);
	struct dns_cookie_result r;

	if (dns_cookie_check(&k, pkt + req->cookie_off, req->cookie_len, a->addr,
	                     a->family == AF_INET ? 4 : 16, wall_seconds(), &r) < 0) {
		s->stats.cookie_errors++; /* the MAC failed: serve without cookies */
		return DNS_COOKIE_NONE;
	}
	s->stats.cookies[r.verdict]++;
	if (r.verdict == DNS_COOKIE_MALFORMED) {
		if (*rcode == DNS_RCODE_NOERROR)
			*rcode = DNS_RCODE_FORMERR;
		return r.verdict;
	}
	t->cookie = true;
	memcpy(t->cookie_data, r.answer, sizeof(t->cookie_data));
	return r.verdict;
}

/* An RRL slip: no records, TC=1, so a real client retries over TCP. */
static void answer_slip(struct dns_server *s, const struct target *t, const struct dns_request *req)
{
	struct wbuf b = wbuf_init(s->out, sizeof(s->out));
	int n = dns_build_error(&b, req, DNS_RCODE_NOERROR);

	if (n < 0)
		return;
	wire_set_u16_at(s->out + 2, (uint16_t)(wire_get_u16_at(s->out + 2) | DNS_FLAG_TC));
	reply(s, t, s->out, (size_t)n);
}

/*
 * Cookies, then response rate limiting (dns_rrl.h), before anything else is
 * spent on the query. TCP and a valid server cookie prove the source
 * address (RFC 7873 §5.2.5), so neither is ever limited. A limited query
 * is dropped or slips. The slip for a query with a client cookie is
 * BADCOOKIE with a fresh server cookie (RFC 7873 §5.2.3, choice 2): the
 * client retries at once with that cookie (§5.3), which is valid and so
 * exempt, without falling back to TCP; one without a cookie gets TC=1.
 * Either is no larger than the query: nothing to amplify. Returns true
 * when the query is finished here.
 */
static bool cookie_and_rrl(struct dns_server *s, struct target *t, const uint8_t *pkt,
                           const struct dns_request *req, uint8_t *rcode)
{
	enum dns_cookie_verdict v = DNS_COOKIE_NONE;
	bool udp_limited = s->rrl && t->kind == TARGET_UDP;
	struct netaddr a;

	if ((!req->has_cookie && !udp_limited) || netaddr_from_sockaddr(t->peer, t->peerlen, &a))
		return false;
	if (req->has_cookie)
		v = check_cookie(s, t, pkt, req, &a, rcode);
	/* dns.require-cookie (RFC 7873 §5.2.3 and §5.2.4, choice 2): a client
	 * that speaks cookies proves its address with one of ours before UDP
	 * answers it. BADCOOKIE carries a good one and is no larger than the
	 * query; the client retries with it at once (§5.3). TCP proves the
	 * address by itself; a client with no cookie at all is not cookie-aware
	 * and is served (RFC 7873 §5.2.1); without our cookie to give (t->cookie
	 * false: the MAC failed), it is served too. */
	if (s->require_cookie && t->kind == TARGET_UDP && t->cookie &&
	    (v == DNS_COOKIE_CLIENT_ONLY || v == DNS_COOKIE_BAD)) {
		s->stats.cookie_required++;
		answer_error(s, t, req, DNS_RCODE_BADCOOKIE);
		return true;
	}
	if (!udp_limited || v == DNS_COOKIE_VALID)
		return false;
	switch (dns_rrl_account(s->rrl, &a, loop_now(s->loop))) {
	case DNS_RRL_PASS:
		return false;
	case DNS_RRL_DROP:
		s->stats.rrl_dropped++;
		return true;
	case DNS_RRL_SLIP:
		break;
	}
	s->stats.rrl_slipped++;
	if (t->cookie)
		answer_error(s, t, req, DNS_RCODE_BADCOOKIE);
	else
		answer_slip(s, t, req);
	return true;
}

/*
 * The one query path for both transports: parse, cookies and rate limit,
 * allow, identity, cache, forward. pkt is a view (datagram or TCP receive
 * buffer) valid only during the call; what outlives it is copied into
 * struct pending (the target, with its cookie, by value).
 */
static void handle_query(struct dns_server *s, const struct target *from, const uint8_t *pkt,
                         size_t len)
{
	struct dns_request req;
	struct target tq = *from;
	const struct target *t = &tq;
	uint8_t rcode;

	if (s->tap_msgs & DNS_TAP_CLIENT_QUERY)
		tap_client(s, t, DNS_TAP_CLIENT_QUERY, pkt, len);
	/* The ACL before any record section is walked: a stranger's records
	 * cost us the header and the question only (issue 10, item 8). */
	if (dns_request_parse_head(pkt, len, &req) < 0) {
		s->stats.dropped++;
		return;
	}
	/* Rate limiting before the ACL (a REFUSED reflects too). The cookie is
	 * the head's: a query's OPT is its only record (RFC 7873 §5.1 clients
	 * send no other), so a stranger's records are still never walked. */
	uint8_t cookie_rcode = DNS_RCODE_NOERROR;
	if (cookie_and_rrl(s, &tq, pkt, &req, &cookie_rcode))
		return;
	/* TCP and TLS sources were checked once, at accept (dns_stream.c). */
	if (t->kind == TARGET_UDP && !client_allowed(s, t->peer, t->peerlen)) {
		s->stats.refused_acl++;
		answer_error(s, t, &req, DNS_RCODE_REFUSED);
		return;
	}
	(void)dns_request_parse_rest(pkt, len, &req, &rcode);
	if (rcode == DNS_RCODE_NOERROR)
		rcode = cookie_rcode; /* a malformed cookie: FORMERR (RFC 7873 §5.2.2) */
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
	rcode = dns_request_local_rcode(&req);
	if (rcode != DNS_RCODE_NOERROR) {
		/* Zone transfers and mail meta-queries: answered here, never forwarded. */
		s->stats.refused_meta++;
		answer_error(s, t, &req, rcode);
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
	    .t0_us = loop_now_us(l),
	};

	li->srv->stats.udp_rx++;
	handle_query(li->srv, &t, d->payload, d->len);
}

/* A whole query on a TCP or TLS connection (dns_stream.h). */
static void on_stream_query(void *arg, uint64_t conn, const struct sockaddr *peer,
                            socklen_t peerlen, const uint8_t *msg, size_t len)
{
	struct dns_server *s = arg;
	struct target t = {
	    .kind = TARGET_TCP,
	    .peer = peer,
	    .peerlen = peerlen,
	    .conn = conn,
	    .t0_us = loop_now_us(s->loop),
	};

	s->stats.tcp_rx++;
	handle_query(s, &t, msg, len);
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
	struct dns_rrl *rrl; /* NULL: dns.rate-limit off */
	/* The cookie secrets, current first (dns_cookie.h). */
	uint8_t cookie_secrets[DNS_COOKIE_MAX_SECRETS][DNS_COOKIE_SECRET_LEN];
	unsigned n_cookie_secrets;
	struct tls_ctx *tls;  /* dns.tls-listen: one context, so tickets resume on any worker */
	struct dns_tap *tap;  /* dnstap output, one queue per worker; NULL: off */
	struct membudget mem; /* pending queries and TCP/TLS buffers, every worker */
	/* Upstream health, one table for the node (dns_upstream.h): the one
	 * every worker's forwarder reports into, read here for the node's view
	 * (dns_shared_upstream_info). A reload with other upstreams makes a new
	 * one, set here and handed to the workers (dns_shared_set_upstreams). */
	struct dns_upstream_set *upstreams;
	/* TCP/TLS connections per source prefix and in all, for the node:
	 * dns.tcp-per-source and dns.tcp-connections are caps per node,
	 * whichever worker the kernel gave a connection to. */
	struct srclimit *sources;
};

/* dns.cookie-secret(-old), or one random secret for this process alone. */
static int shared_cookie_secrets(struct dns_shared *sh, const struct conf_dns *d)
{
	_Static_assert(CONF_COOKIE_SECRET_LEN == DNS_COOKIE_SECRET_LEN, "secret size");
	if (!d->has_cookie_secret) {
		if (getrandom(sh->cookie_secrets[0], DNS_COOKIE_SECRET_LEN, 0) !=
		    DNS_COOKIE_SECRET_LEN)
			return -EIO;
		sh->n_cookie_secrets = 1;
		log_info("dns", "cookies: no dns.cookie-secret, a random one: server cookies are "
		                "good on this node only, until it restarts");
		return 0;
	}
	memcpy(sh->cookie_secrets[0], d->cookie_secret, DNS_COOKIE_SECRET_LEN);
	sh->n_cookie_secrets = 1;
	if (d->has_cookie_secret_old)
		memcpy(sh->cookie_secrets[sh->n_cookie_secrets++], d->cookie_secret_old,
		       DNS_COOKIE_SECRET_LEN);
	return 0;
}

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

void dns_shared_set_client_memory(struct dns_shared *sh, const struct conf *conf)
{
	membudget_set_limit(&sh->mem, (size_t)conf->dns.client_memory_bytes);
}

size_t dns_shared_client_memory(const struct dns_shared *sh, size_t *limit)
{
	if (limit)
		*limit = membudget_limit(&sh->mem);
	return membudget_used(&sh->mem);
}

int dns_upstreams_new(const struct conf *conf, struct dns_upstream_set **out)
{
	return dns_upstream_set_new(NULL, conf->dns.n_upstreams, out);
}

void dns_shared_set_upstreams(struct dns_shared *sh, struct dns_upstream_set *ups)
{
	struct dns_upstream_set *old = sh->upstreams;
	sh->upstreams = dns_upstream_set_ref(ups);
	dns_upstream_set_free(old);
}

unsigned dns_shared_upstream_info(const struct dns_shared *sh, unsigned idx,
                                  struct dns_upstream_info *out)
{
	unsigned n = dns_upstream_count(sh->upstreams);
	if (idx < n)
		dns_upstream_get(sh->upstreams, idx, out);
	return n;
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
	membudget_init(&sh->mem, (size_t)conf->dns.client_memory_bytes);
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
	r = dns_upstreams_new(conf, &sh->upstreams);
	if (r) {
		snprintf(why, whylen, "upstream table: %s", strerror(-r));
		dns_shared_free(sh);
		return r;
	}
	r = srclimit_new(conf->dns.tcp_connections, conf->dns.tcp_per_source, conf->dns.tcp_prefix4,
	                 conf->dns.tcp_prefix6, random_seed(), &sh->sources);
	if (r) {
		snprintf(why, whylen, "connections per source: %s", strerror(-r));
		dns_shared_free(sh);
		return r;
	}
	r = shared_cookie_secrets(sh, &conf->dns);
	if (r) {
		snprintf(why, whylen, "cookie secret: %s", strerror(-r));
		dns_shared_free(sh);
		return r;
	}
	if (conf->dns.rate_limit.enabled) {
		const struct conf_rate_limit *rl = &conf->dns.rate_limit;
		struct dns_rrl_conf c = {
		    .rate = rl->rate,
		    .window_s = rl->window_s,
		    .slip = rl->slip,
		    .v4_prefix = rl->v4_prefix,
		    .v6_prefix = rl->v6_prefix,
		    .entries = rl->entries,
		};
		r = dns_rrl_new(&c, random_seed(), &sh->rrl);
		if (r) {
			snprintf(why, whylen, "rate-limit table: %s", strerror(-r));
			dns_shared_free(sh);
			return r;
		}
	}
	if (conf->dns.n_tls_listen) {
		r = tls_ctx_new(conf->dns.tls_certificate, conf->dns.tls_key, why, whylen,
		                &sh->tls);
		if (r) {
			dns_shared_free(sh);
			return r;
		}
	}
	if (conf->dnstap.enabled) {
		struct dns_tap_conf tc = {
		    .path = conf->dnstap.path,
		    .socket = conf->dnstap.socket,
		    .messages = conf->dnstap.messages,
		    .identity = conf->dns.identity,
		    .version = "anycached " ANYCACHE_VERSION,
		    .queues = threads,
		};
		r = dns_tap_new(&tc, why, whylen, &sh->tap);
		if (r) {
			dns_shared_free(sh);
			return r;
		}
	}
	*out = sh;
	return 0;
}

void dns_shared_free(struct dns_shared *sh)
{
	if (!sh)
		return;
	tls_ctx_free(sh->tls);
	dns_tap_free(sh->tap); /* after every worker: flushes what they logged */
	dns_inflight_free(sh->inflight);
	dns_cache_free(sh->cache);
	dns_rrl_free(sh->rrl);
	dns_upstream_set_free(sh->upstreams);
	srclimit_free(sh->sources);
	free(sh);
}

struct dns_cache *dns_shared_cache(struct dns_shared *sh)
{
	return sh->cache;
}

/*
 * Opens dns.listen entry a at index k = n_udp: its UDP listener, and its TCP
 * listener in the stream server (tcp_idx[k]); SO_REUSEPORT, so every worker
 * has its own sockets. 0, or -errno with a sentence in why; on failure what
 * was opened stays at k (dns_server_free or remove_listener takes it back).
 */
static int add_listener(struct dns_server *s, const struct netaddr *a, char *why, size_t whylen)
{
	struct dns_listener *li = calloc(1, sizeof(*li));
	unsigned k = s->n_udp;
	int r;

	if (!li || k >= CONF_MAX_LISTEN) {
		free(li);
		snprintf(why, whylen,
		         k >= CONF_MAX_LISTEN ? "too many listeners" : "out of memory");
		return k >= CONF_MAX_LISTEN ? -ENOSPC : -ENOMEM;
	}
	li->fd = -1;
	timer_init(&li->rearm, on_udp_rearm, li);
	li->srv = s;
	li->addr = *a;
	s->udp[k] = li;
	s->tcp_idx[k] = -1;
	s->tcp_fd[k] = -1;
	s->n_udp = k + 1;
	/* A successor reads its predecessor's very socket (core/handover.h). */
	r = handover_take("dns-udp", s->index, &li->addr, NULL, NULL);
	if (r < 0)
		r = listen_socket(&li->addr, SOCK_DGRAM, true, false, why, whylen);
	if (r < 0)
		return r;
	li->fd = r;
	handover_offer("dns-udp", s->index, &li->addr, r);
	r = loop_udp_listen_ex(s->loop, li->fd, on_datagram, on_udp_end, li);
	if (r) {
		snprintf(why, whylen, "listening on the loop: %s", strerror(-r));
		return r;
	}
	li->armed = true;
	r = handover_take("dns-tcp", s->index, a, NULL, NULL);
	if (r < 0)
		r = listen_socket(a, SOCK_STREAM, true, true, why, whylen);
	if (r < 0)
		return r;
	handover_offer("dns-tcp", s->index, a, r);
	s->tcp_fd[k] = r;
	r = dns_stream_listen(s->stream, r, NULL);
	if (r < 0) {
		snprintf(why, whylen, "accepting on the loop: %s", strerror(-r));
		return r;
	}
	s->tcp_idx[k] = r;
	return 0;
}

static void udp_listener_closed(struct loop *l, void *ctx)
{
	(void)l;
	free(ctx);
}

/*
 * Closes listener k at run time (a reload removed its address) and moves the
 * last one into its place. TCP connections it accepted stay until they end.
 * The UDP receive's final callback sees `closing` and leaves the listener to
 * udp_listener_closed.
 */
static void remove_listener(struct dns_server *s, unsigned k)
{
	struct dns_listener *li = s->udp[k];

	/* Closing: a later restart must not be handed these descriptors. */
	if (s->tcp_fd[k] >= 0)
		handover_forget(s->tcp_fd[k]);
	if (li->fd >= 0)
		handover_forget(li->fd);
	if (s->tcp_idx[k] >= 0)
		dns_stream_unlisten(s->stream, (unsigned)s->tcp_idx[k]);
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
	s->udp[k] = s->udp[s->n_udp];
	s->tcp_idx[k] = s->tcp_idx[s->n_udp];
	s->tcp_fd[k] = s->tcp_fd[s->n_udp];
}

/*
 * New upstreams: a new forwarder takes every query from now on; the old one
 * finishes what it has in flight (answers still reach their clients) and is
 * freed by the sweep. Its counters and RTT estimates start again.
 */
static void replace_upstreams(struct dns_server *s, const struct conf *conf,
                              struct dns_upstream_set *ups)
{
	const struct dns_forward_stats *fs = dns_forward_stats(s->fwd);
	struct dns_forward_conf fc = {0};
	struct dns_forward *nf;
	bool same = fs->n_upstreams == conf->dns.n_upstreams;
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
	if (!ups) {
		log_err("dns", "worker %u: upstreams not replaced: no upstream table for them",
		        s->index);
		return;
	}
	fc.upstreams = conf->dns.upstreams;
	fc.n_upstreams = conf->dns.n_upstreams;
	fc.max_outstanding = DNS_SERVER_UPSTREAM_INFLIGHT;
	fc.shared_policy = ups;
	if (s->tap_msgs & (DNS_TAP_FORWARDER_QUERY | DNS_TAP_FORWARDER_RESPONSE)) {
		fc.tap = tap_forwarder;
		fc.tap_arg = s;
	}
	r = dns_forward_new(s->loop, &fc, &nf);
	if (r) {
		log_err("dns", "worker %u: upstreams not replaced: %s", s->index, strerror(-r));
		return;
	}
	s->answers_base += fs->answers;
	s->old_fwd[s->n_old_fwd++] = s->fwd;
	s->fwd = nf;
	memcpy(s->upstreams, conf->dns.upstreams, sizeof(s->upstreams));
	if (s->index == 0)
		log_info("dns", "upstreams replaced (reload); queries in flight finish on the old");
}

void dns_server_reconf(struct dns_server *s, const struct conf *conf, struct dns_upstream_set *ups)
{
	char why[256], b[NETADDR_STRLEN];

	replace_upstreams(s, conf, ups);

	memcpy(s->allow, conf->dns.allow, sizeof(s->allow));
	s->n_allow = conf->dns.n_allow;
	dns_stream_set_allow(s->stream, conf->dns.allow, conf->dns.n_allow);
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
	for (unsigned i = 0; i < CONF_MAX_LISTEN; i++)
		s->tcp_idx[i] = -1;
	s->serve_stale = conf->dns.cache.serve_stale_s > 0;
	snprintf(s->identity, sizeof(s->identity), "%s", conf->dns.identity);

	s->cache = shared->cache;
	s->inflight = shared->inflight;
	s->mem = &shared->mem;
	s->tap = dns_tap_queue(shared->tap, index);
	s->tap_msgs = s->tap ? dns_tap_messages(shared->tap) : 0;
	if (s->tap_msgs & (DNS_TAP_FORWARDER_QUERY | DNS_TAP_FORWARDER_RESPONSE)) {
		fc.tap = tap_forwarder;
		fc.tap_arg = s;
	}
	s->rrl = shared->rrl;
	s->require_cookie = conf->dns.require_cookie;
	r = dns_cookie_mac_new((const uint8_t(*)[DNS_COOKIE_SECRET_LEN])shared->cookie_secrets,
	                       shared->n_cookie_secrets, &s->cookie_mac);
	if (r) {
		snprintf(why, whylen, "cookie MAC (OpenSSL SIPHASH): %s", strerror(-r));
		goto fail;
	}

	memcpy(s->upstreams, conf->dns.upstreams, sizeof(s->upstreams));
	fc.upstreams = conf->dns.upstreams;
	fc.n_upstreams = conf->dns.n_upstreams;
	fc.max_outstanding = DNS_SERVER_UPSTREAM_INFLIGHT;
	fc.shared_policy = shared->upstreams;
	r = dns_forward_new(l, &fc, &s->fwd);
	if (r) {
		snprintf(why, whylen, "upstream forwarder: %s", strerror(-r));
		goto fail;
	}

	struct dns_stream_conf sc = {
	    .allow = conf->dns.allow,
	    .n_allow = conf->dns.n_allow,
	    .max_conns = conf->dns.tcp_connections, /* a worker may be handed them all */
	    .per_source = conf->dns.tcp_per_source,
	    .prefix4 = conf->dns.tcp_prefix4,
	    .prefix6 = conf->dns.tcp_prefix6,
	    .fd_reserve =
	        FD_RESERVE_BASE + threads * conf->dns.n_upstreams * FD_RESERVE_PER_UPSTREAM,
	    .idle_ms = DNS_TCP_IDLE_MS,
	    .stall_ms = DNS_TCP_STALL_MS,
	    .handshake_ms = DNS_TLS_HANDSHAKE_MS,
	    .mem = &shared->mem,
	    .sources = shared->sources,
	};
	r = dns_stream_new(l, &sc, on_stream_query, s, &s->stats.tcp, &s->stream);
	if (r) {
		snprintf(why, whylen, "stream server: %s", strerror(-r));
		goto fail;
	}
	for (unsigned i = 0; i < conf->dns.n_listen; i++) {
		r = add_listener(s, &conf->dns.listen[i], why, whylen);
		if (r)
			goto fail;
	}
	/* DNS-over-TLS listeners: only in the stream server (a reload leaves them). */
	for (unsigned i = 0; i < conf->dns.n_tls_listen; i++) {
		const struct netaddr *a = &conf->dns.tls_listen[i];
		/* A successor accepts on its predecessor's very socket (core/handover.h). */
		r = handover_take("dns-tls", index, a, NULL, NULL);
		if (r < 0)
			r = listen_socket(a, SOCK_STREAM, true, true, why, whylen);
		if (r < 0)
			goto fail;
		handover_offer("dns-tls", index, a, r);
		r = dns_stream_listen(s->stream, r, shared->tls);
		if (r < 0) {
			snprintf(why, whylen, "accepting on the loop: %s", strerror(-r));
			goto fail;
		}
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
	dns_cookie_mac_free(s->cookie_mac);
	dns_stream_free(s->stream);
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

void dns_server_stop_listening(struct dns_server *s)
{
	for (unsigned i = 0; i < s->n_udp; i++) {
		struct dns_listener *li = s->udp[i];
		loop_timer_cancel(s->loop, &li->rearm);
		if (li->fd < 0)
			continue;
		handover_forget(li->fd);
		/* The final callback (-ECANCELED) only marks it unarmed. */
		if (loop_close_fd(s->loop, li->fd, NULL, NULL) < 0)
			close(li->fd);
		li->fd = -1;
	}
	dns_stream_stop_listening(s->stream);
}

bool dns_server_idle(const struct dns_server *s)
{
	return !dns_forward_stats(s->fwd)->outstanding && dns_stream_idle(s->stream);
}

const struct dns_server_stats *dns_server_stats(const struct dns_server *s)
{
	return &s->stats;
}

const struct dns_forward_stats *dns_server_upstream_stats(const struct dns_server *s)
{
	return dns_forward_stats(s->fwd);
}

void dns_server_report(const struct dns_server *s, struct dns_server_report *out)
{
	const struct dns_forward_stats *fs = dns_forward_stats(s->fwd);
	struct loop_stats ls;
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
		if (li->armed && li->fd >= 0 && s->stream && s->tcp_idx[i] >= 0 &&
		    dns_stream_listener_ok(s->stream, (unsigned)s->tcp_idx[i]))
			out->listen_ok |= 1ull << i;
		/* Datagrams the kernel dropped because we did not read fast enough. */
		if (li->fd >= 0 && getsockopt(li->fd, SOL_SOCKET, SO_MEMINFO, mem, &ml) == 0 &&
		    ml > SK_MEMINFO_DROPS * sizeof(uint32_t))
			out->rx_drops += mem[SK_MEMINFO_DROPS];
	}
	out->inflight = fs->outstanding + fs->waiters; /* both count against the bound */
	out->inflight_max = DNS_SERVER_UPSTREAM_INFLIGHT;
	out->upstream_answers = s->answers_base + fs->answers;
	out->upstreams_down = dns_forward_all_dead(s->fwd);
}
