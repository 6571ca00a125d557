#include "dns/dns_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/netaddr.h"
#include "core/timer.h"
#include "dns/dns_answer.h"
#include "dns/dns_cache.h"
#include "dns/dns_forward.h"
#include "dns/dns_wire.h"

#define SWEEP_INTERVAL_MS 1000
#define SWEEP_BUDGET 1024
#define SOCKBUF_BYTES (4 << 20)

struct dns_listener {
	struct dns_server *srv;
	struct netaddr addr;
	int fd;
	bool armed;
};

struct dns_server {
	struct loop *loop;
	unsigned index;
	struct netprefix allow[CONF_MAX_ALLOW];
	unsigned n_allow;
	char identity[CONF_IDENTITY_MAX + 1];
	struct dns_listener udp[CONF_MAX_LISTEN];
	unsigned n_udp;
	struct dns_cache *cache;
	struct dns_forward *fwd;
	struct timer sweep;
	struct dns_server_stats stats;
	/* Scratch for building answers; the loop copies what it sends. */
	uint8_t out[DNS_MSG_MAX + DNS_ANSWER_OPT_LEN];
	uint8_t norm[DNS_MSG_MAX];
};

/*
 * A query waiting for the upstream. The client's question is copied here:
 * the request view pointed into a receive buffer that is gone by now.
 */
struct pending {
	struct dns_server *srv;
	int fd;                      /* -1: a prefetch, no client waits */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	struct dns_request req;      /* question pointers re-aimed at qbuf */
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

static int udp_socket(const struct netaddr *a, bool reuseport, char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	socklen_t sl = netaddr_to_sockaddr(a, &ss);
	char name[NETADDR_STRLEN];
	int one = 1, size = SOCKBUF_BYTES;
	int fd, err;

	fd = socket(a->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = errno;
		goto fail;
	}
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		err = errno;
		goto fail;
	}
	/* An IPv6 listener answers IPv6 only; IPv4 VIPs get their own sockets. */
	if (a->family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) {
		err = errno;
		goto fail;
	}
	/* Best effort: bursts wait in the socket, not on the wire. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		err = errno;
		goto fail;
	}
	return fd;
fail:
	snprintf(why, whylen, "%s (udp): %s", netaddr_format(a, true, name, sizeof(name)),
		 sock_error(err));
	if (fd >= 0)
		close(fd);
	return -err;
}

int dns_server_check_listen(const struct conf_dns *dns, char *why, size_t whylen)
{
	for (unsigned i = 0; i < dns->n_listen; i++) {
		/* Without SO_REUSEPORT this bind fails if anything holds the port. */
		int fd = udp_socket(&dns->listen[i], false, why, whylen);
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

static void count_rcode(struct dns_server *s, const uint8_t *ans)
{
	s->stats.rcode[ans[3] & 0x0f]++;
}

static void send_answer(struct dns_server *s, int fd, const struct sockaddr *peer,
			socklen_t plen, const uint8_t *ans, size_t len)
{
	int r = loop_udp_send(s->loop, fd, peer, plen, ans, len);

	if (r < 0) {
		s->stats.tx_fail++;
		return;
	}
	count_rcode(s, ans);
}

static void answer_error(struct dns_server *s, int fd, const struct sockaddr *peer,
			 socklen_t plen, const struct dns_request *req, uint16_t rcode)
{
	struct wbuf b = wbuf_init(s->out, sizeof(s->out));
	int len;

	if (rcode > 15 && !req->edns)
		rcode = DNS_RCODE_FORMERR;
	len = dns_build_error(&b, req, rcode);
	if (len < 0)
		return;
	if (rcode == DNS_RCODE_BADVERS)
		s->stats.badvers++;
	send_answer(s, fd, peer, plen, s->out, (size_t)len);
}

static struct dns_cache_key request_key(const struct dns_request *req)
{
	struct dns_cache_key k = {
		.qname = req->qname,
		.qname_len = (uint16_t)req->qname_len,
		.qtype = req->qtype,
		.qclass = req->qclass,
		.do_bit = req->do_bit,
		.cd_bit = req->cd,
	};
	return k;
}

/* Finishes s->out (a patched stored-form answer of len bytes) and sends it over UDP. */
static void send_finished(struct dns_server *s, int fd, const struct sockaddr *peer,
			  socklen_t plen, const struct dns_request *req, size_t len)
{
	size_t limit = dns_request_udp_limit(req);
	int n = dns_answer_finish(s->out, len, sizeof(s->out), req, limit);

	if (n < 0) {
		answer_error(s, fd, peer, plen, req, DNS_RCODE_SERVFAIL);
		return;
	}
	if (len + (req->edns ? DNS_ANSWER_OPT_LEN : 0) > limit)
		s->stats.truncated++;
	send_answer(s, fd, peer, plen, s->out, (size_t)n);
}

static enum dns_cache_kind answer_kind(const struct dns_scan *sc, bool *cacheable)
{
	*cacheable = true;
	switch (sc->rcode) {
	case DNS_RCODE_NOERROR:
		return sc->ancount ? DNS_CACHE_POSITIVE : DNS_CACHE_NODATA;
	case DNS_RCODE_NXDOMAIN:
		return DNS_CACHE_NXDOMAIN;
	case DNS_RCODE_SERVFAIL:
		return DNS_CACHE_SERVFAIL;
	default:
		/* REFUSED, NOTIMP, FORMERR: about this query to this upstream, not the name. */
		*cacheable = false;
		return DNS_CACHE_POSITIVE;
	}
}

static void start_forward(struct dns_server *s, int fd, const struct sockaddr *peer,
			  socklen_t plen, const struct dns_request *req);

static void on_upstream(void *ctx, int status, const uint8_t *ans, size_t len,
			struct dns_scan *scan)
{
	struct pending *p = ctx;
	struct dns_server *s = p->srv;
	const struct sockaddr *peer = (const struct sockaddr *)&p->peer;
	struct dns_cache_key key = request_key(&p->req);
	int n = -EPROTO;

	if (status == -ECANCELED) {
		free(p);
		return;
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
		if (p->fd >= 0) {
			memcpy(s->out, s->norm, (size_t)n);
			s->out[0] = (uint8_t)(p->req.id >> 8);
			s->out[1] = (uint8_t)p->req.id;
			memcpy(s->out + DNS_HDR_LEN, p->req.qname, p->req.qname_len);
			send_finished(s, p->fd, peer, p->peerlen, &p->req, (size_t)n);
		}
		free(p);
		return;
	}
	s->stats.upstream_fail++;
	if (p->fd >= 0) {
		/* RFC 8767 §4: an expired answer beats no answer when upstreams fail. */
		unsigned flags = 0;
		int r = dns_cache_lookup(s->cache, &key, p->req.id, true, loop_now(s->loop),
					 s->out, sizeof(s->out) - DNS_ANSWER_OPT_LEN, &flags);
		if (r > 0) {
			s->stats.stale_answers++;
			send_finished(s, p->fd, peer, p->peerlen, &p->req, (size_t)r);
		} else {
			answer_error(s, p->fd, peer, p->peerlen, &p->req, DNS_RCODE_SERVFAIL);
		}
	}
	free(p);
}

static void start_forward(struct dns_server *s, int fd, const struct sockaddr *peer,
			  socklen_t plen, const struct dns_request *req)
{
	struct pending *p = malloc(sizeof(*p));
	int r;

	if (!p) {
		if (fd >= 0)
			answer_error(s, fd, peer, plen, req, DNS_RCODE_SERVFAIL);
		return;
	}
	p->srv = s;
	p->fd = fd;
	p->peerlen = 0;
	if (fd >= 0) {
		memcpy(&p->peer, peer, plen);
		p->peerlen = plen;
	}
	p->req = *req;
	memcpy(p->qbuf, req->question, req->question_len);
	p->req.question = p->qbuf;
	p->req.qname = p->qbuf;
	r = dns_forward_query(s->fwd, req->qname_lc, req->qname_len, req->qtype, req->qclass,
			      req->cd, req->do_bit, on_upstream, p);
	if (r < 0) {
		s->stats.upstream_fail++;
		if (fd >= 0)
			answer_error(s, fd, peer, plen, req, DNS_RCODE_SERVFAIL);
		free(p);
	}
}

static void on_datagram(struct loop *l, void *ctx, const struct loop_dgram *d)
{
	struct dns_listener *li = ctx;
	struct dns_server *s = li->srv;
	struct dns_request req;
	uint8_t rcode;

	s->stats.udp_rx++;
	if (dns_request_parse(d->payload, d->len, &req, &rcode) < 0) {
		s->stats.dropped++;
		return;
	}
	if (!client_allowed(s, d->peer, d->peerlen)) {
		s->stats.refused_acl++;
		answer_error(s, d->fd, d->peer, d->peerlen, &req, DNS_RCODE_REFUSED);
		return;
	}
	if (rcode != DNS_RCODE_NOERROR) {
		answer_error(s, d->fd, d->peer, d->peerlen, &req, rcode);
		return;
	}
	if (dns_request_is_identity(&req)) {
		struct wbuf b = wbuf_init(s->out, sizeof(s->out));
		int len = dns_build_identity(&b, &req, s->identity);
		s->stats.identity++;
		if (len > 0)
			send_answer(s, d->fd, d->peer, d->peerlen, s->out, (size_t)len);
		return;
	}
	if (req.qclass != DNS_CLASS_IN) {
		/* We forward the Internet class only; CHAOS beyond identity is not ours. */
		answer_error(s, d->fd, d->peer, d->peerlen, &req, DNS_RCODE_REFUSED);
		return;
	}

	struct dns_cache_key key = request_key(&req);
	unsigned flags = 0;
	int n = dns_cache_lookup(s->cache, &key, req.id, false, loop_now(l), s->out,
				 sizeof(s->out) - DNS_ANSWER_OPT_LEN, &flags);
	if (n > 0) {
		s->stats.cache_hits++;
		send_finished(s, d->fd, d->peer, d->peerlen, &req, (size_t)n);
		if (flags & DNS_CACHE_F_PREFETCH) {
			/* Refresh a popular name before it expires: no client waits on this. */
			s->stats.prefetches++;
			start_forward(s, -1, NULL, 0, &req);
		}
		return;
	}
	s->stats.cache_misses++;
	start_forward(s, d->fd, d->peer, d->peerlen, &req);
}

static void on_sweep(struct timer *t, uint64_t now, void *arg)
{
	struct dns_server *s = arg;

	dns_cache_sweep(s->cache, now, SWEEP_BUDGET);
	loop_timer_arm(s->loop, t, now + SWEEP_INTERVAL_MS);
}

int dns_server_new(struct loop *l, const struct conf *conf, unsigned index, char *why,
		   size_t whylen, struct dns_server **out)
{
	struct dns_cache_conf cc = DNS_CACHE_CONF_DEFAULT;
	struct dns_forward_conf fc = {0};
	struct dns_server *s;
	uint64_t seed;
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
	snprintf(s->identity, sizeof(s->identity), "%s", conf->dns.identity);
	for (unsigned i = 0; i < CONF_MAX_LISTEN; i++)
		s->udp[i].fd = -1;

	cc.size = (size_t)(conf->dns.cache.size_bytes / threads);
	cc.min_ttl_s = conf->dns.cache.min_ttl_s;
	cc.max_ttl_s = conf->dns.cache.max_ttl_s;
	cc.negative_ttl_s = conf->dns.cache.negative_ttl_s;
	cc.stale_window_s = conf->dns.cache.serve_stale_s;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)arc4random() << 32 | arc4random();
	r = dns_cache_new(&cc, seed, &s->cache);
	if (r) {
		snprintf(why, whylen, "cache of %zu bytes per worker: %s", cc.size, strerror(-r));
		goto fail;
	}

	fc.upstreams = conf->dns.upstreams;
	fc.n_upstreams = conf->dns.n_upstreams;
	r = dns_forward_new(l, &fc, &s->fwd);
	if (r) {
		snprintf(why, whylen, "upstream forwarder: %s", strerror(-r));
		goto fail;
	}

	for (unsigned i = 0; i < conf->dns.n_listen; i++) {
		struct dns_listener *li = &s->udp[i];
		li->srv = s;
		li->addr = conf->dns.listen[i];
		r = udp_socket(&li->addr, true, why, whylen);
		if (r < 0)
			goto fail;
		li->fd = r;
		s->n_udp = i + 1;
		r = loop_udp_listen(l, li->fd, on_datagram, li);
		if (r) {
			snprintf(why, whylen, "listening on the loop: %s", strerror(-r));
			goto fail;
		}
		li->armed = true;
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
	/* Pending upstream queries get -ECANCELED and free themselves. */
	dns_forward_free(s->fwd);
	for (unsigned i = 0; i < s->n_udp; i++)
		if (s->udp[i].fd >= 0)
			close(s->udp[i].fd);
	dns_cache_free(s->cache);
	free(s);
}

const struct dns_server_stats *dns_server_stats(const struct dns_server *s)
{
	return &s->stats;
}

void dns_server_health(const struct dns_server *s, struct health_snapshot *out)
{
	out->n = 0;
	for (unsigned i = 0; i < s->n_udp && out->n < HEALTH_MAX_VIPS; i++) {
		out->vip[out->n].addr = s->udp[i].addr;
		out->vip[out->n].state = s->udp[i].armed ? HEALTH_SERVING : HEALTH_DOWN;
		out->n++;
	}
}
