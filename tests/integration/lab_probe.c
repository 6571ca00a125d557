/* The failover lab's probe thread; see lab_probe.h. */
#include "lab_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/wire.h"
#include "harness.h"

#define QTYPE_TXT 16
/* Answers still on their way: the recent window ends this long before now. */
#define RECENT_LAG_US 50000u

uint64_t lab_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Skips a (possibly compressed) owner name: labels, then a 0 or a pointer. */
static void skip_name(struct wire *w)
{
	for (int i = 0; i < 128 && !w->err; i++) {
		uint8_t len = wire_u8(w);
		if (len == 0)
			return;
		if ((len & 0xc0) == 0xc0) {
			wire_skip(w, 1);
			return;
		}
		if (len > 63) {
			wire_fail(w, -EBADMSG);
			return;
		}
		wire_skip(w, len);
	}
	wire_fail(w, -EBADMSG);
}

int lab_answer_parse(const uint8_t *a, size_t n, const uint8_t *qsec, size_t qseclen, uint16_t *id,
                     uint8_t *rcode, int8_t *node)
{
	struct wire w = wire_init(a, n);
	uint16_t flags, qd, an;

	*id = wire_u16(&w);
	flags = wire_u16(&w);
	qd = wire_u16(&w);
	an = wire_u16(&w);
	wire_skip(&w, 4); /* NSCOUNT, ARCOUNT */
	const uint8_t *q = wire_ptr(&w, qseclen);
	if (w.err || !(flags & 0x8000) || qd != 1 || memcmp(q, qsec, qseclen) != 0)
		return -EBADMSG;
	*rcode = flags & 0x0f;
	*node = -1;
	/* RFC 1035 §4.1.3: owner, TYPE, CLASS, TTL, RDLENGTH, RDATA. At most 8 looked at. */
	for (unsigned i = 0; i < an && i < 8 && !w.err; i++) {
		skip_name(&w);
		uint16_t type = wire_u16(&w);
		wire_skip(&w, 6);
		uint16_t rdlen = wire_u16(&w);
		struct wire rd = wire_sub(&w, rdlen);
		if (type != QTYPE_TXT)
			continue;
		/* RFC 1035 §3.3.14: <character-string>s; the first is "node-<letter>". */
		uint8_t slen = wire_u8(&rd);
		const uint8_t *s = wire_ptr(&rd, slen);
		if (!rd.err && slen == 6 && memcmp(s, "node-", 5) == 0 && s[5] >= 'a' &&
		    s[5] < 'a' + LAB_MAX_NODES)
			*node = (int8_t)(s[5] - 'a');
		break;
	}
	return w.err ? -EBADMSG : 0;
}

static void add_event(struct lab_probe *p, uint64_t t, enum lab_event_kind k, int mask,
                      const char *text)
{
	pthread_mutex_lock(&p->mu);
	if (p->nev < LAB_MAX_EVENTS) {
		struct lab_event *e = &p->ev[p->nev++];
		e->t_us = t;
		e->kind = k;
		e->mask = mask;
		snprintf(e->text, sizeof(e->text), "%s", text);
	}
	pthread_mutex_unlock(&p->mu);
}

uint64_t lab_probe_mark(struct lab_probe *p, enum lab_event_kind k, const char *fmt, ...)
{
	uint64_t t = lab_now_us();
	char text[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	add_event(p, t, k, -1, text);
	return t;
}

static void send_one(struct lab_probe *p, size_t seq)
{
	unsigned flow = (unsigned)(seq % LAB_FLOWS);

	/* The record holds at most 65535 queries: the ID is the sequence number. */
	p->qmsg[0] = (uint8_t)(seq >> 8);
	p->qmsg[1] = (uint8_t)seq;
	pthread_mutex_lock(&p->mu);
	p->q[seq].sent_us = lab_now_us();
	p->q[seq].recv_us = 0;
	p->q[seq].flow = (uint16_t)flow;
	p->q[seq].node = -1;
	p->q[seq].rcode = 0;
	p->n = seq + 1;
	pthread_mutex_unlock(&p->mu);
	/* A failed send (no route, say) is a query that gets no answer: lost. */
	(void)send(p->fd[flow], p->qmsg, p->qlen, MSG_DONTWAIT);
}

static void recv_flow(struct lab_probe *p, unsigned flow)
{
	uint8_t buf[1500];

	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(p->fd[flow], buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			return; /* EAGAIN, or an ICMP error reported on the connected socket */
		uint64_t t = lab_now_us();
		uint16_t id;
		uint8_t rcode;
		int8_t node;
		if (lab_answer_parse(buf, (size_t)n, p->qmsg + 12, p->qlen - 12, &id, &rcode,
		                     &node))
			continue;
		pthread_mutex_lock(&p->mu);
		if (id < p->n && p->q[id].flow == flow && p->q[id].recv_us == 0) {
			p->q[id].recv_us = t;
			p->q[id].rcode = rcode;
			p->q[id].node = node;
		}
		pthread_mutex_unlock(&p->mu);
	}
}

static void read_routes(struct lab_probe *p)
{
	int mask;
	bool done = false;

	pthread_mutex_lock(&p->mu);
	mask = p->route_mask;
	pthread_mutex_unlock(&p->mu);
	int prev = mask;
	int r = lab_route_read(p->nl, &p->conf.route, &mask, &done);
	if (r == -ENOBUFS) {
		lab_route_request_dump(p->nl);
		return;
	}
	if (r > 0 || (done && prev < 0)) {
		if (mask < 0)
			mask = 0; /* a dump without the route: there is none */
		pthread_mutex_lock(&p->mu);
		p->route_mask = mask;
		pthread_mutex_unlock(&p->mu);
		if (mask != prev) {
			char text[32];
			lab_route_mask_text(mask, text, sizeof(text));
			add_event(p, lab_now_us(), LAB_EV_ROUTE, mask, text);
		}
	}
}

static void *probe_main(void *arg)
{
	struct lab_probe *p = arg;
	const uint64_t period = 1000000u / p->conf.rate;
	const uint64_t timeout = (uint64_t)p->conf.timeout_ms * 1000u;
	struct pollfd pf[LAB_FLOWS + 1];
	size_t seq = 0;
	uint64_t last_sent = 0;

	for (unsigned i = 0; i < LAB_FLOWS; i++)
		pf[i] = (struct pollfd){.fd = p->fd[i], .events = POLLIN};
	pf[LAB_FLOWS] = (struct pollfd){.fd = p->nl, .events = POLLIN};
	lab_route_request_dump(p->nl);
	p->t0_us = lab_now_us();
	/* Bounded: sends stop at cap (max_seconds) or on stop; then one timeout of answers. */
	for (;;) {
		uint64_t now = lab_now_us();
		bool sending = !atomic_load(&p->stop) && seq < p->cap;
		if (!sending && now > last_sent + timeout + 20000u)
			break;
		/* On schedule: query k leaves at t0 + k/rate (a late thread catches up, 20 at
		 * most). */
		for (int burst = 0; sending && burst < 20 && now >= p->t0_us + seq * period;
		     burst++) {
			send_one(p, seq++);
			last_sent = now;
			sending = seq < p->cap;
		}
		uint64_t wait = 10000u;
		if (sending && p->t0_us + seq * period > now &&
		    p->t0_us + seq * period - now < wait)
			wait = p->t0_us + seq * period - now;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait * 1000};
		if (ppoll(pf, LAB_FLOWS + 1, &ts, NULL) <= 0)
			continue;
		for (unsigned i = 0; i < LAB_FLOWS; i++)
			if (pf[i].revents)
				recv_flow(p, i);
		if (pf[LAB_FLOWS].revents)
			read_routes(p);
	}
	return NULL;
}

static void close_all(struct lab_probe *p)
{
	for (unsigned i = 0; i < LAB_FLOWS; i++)
		if (p->fd[i] >= 0)
			close(p->fd[i]);
	if (p->nl >= 0)
		close(p->nl);
	free(p->q);
	p->q = NULL;
}

int lab_probe_start(struct lab_probe *p, const struct lab_probe_conf *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
	int qlen, r = 0;

	memset(p, 0, sizeof(*p));
	p->conf = *c;
	p->nl = -1;
	p->route_mask = -1;
	for (unsigned i = 0; i < LAB_FLOWS; i++)
		p->fd[i] = -1;
	if (c->rate == 0 || c->rate > 1000 || c->timeout_ms == 0 ||
	    inet_pton(AF_INET, c->vip, &sa.sin_addr) != 1)
		return -EINVAL;
	qlen = dns_make_query(p->qmsg, sizeof(p->qmsg), 0, c->qname, QTYPE_TXT, false);
	if (qlen < 0)
		return qlen;
	p->qlen = (size_t)qlen;
	p->cap = (size_t)c->rate * c->max_seconds;
	if (p->cap > 65535)
		p->cap = 65535;
	p->q = calloc(p->cap, sizeof(*p->q));
	if (!p->q)
		return -ENOMEM;
	for (unsigned i = 0; i < LAB_FLOWS && !r; i++) {
		p->fd[i] = netns_socket(c->client, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (p->fd[i] < 0)
			r = p->fd[i];
		else if (connect(p->fd[i], (struct sockaddr *)&sa, sizeof(sa)) < 0)
			r = -errno;
	}
	if (!r) {
		p->nl = lab_route_open(c->router, true);
		r = p->nl < 0 ? p->nl : 0;
	}
	if (!r) {
		pthread_mutex_init(&p->mu, NULL);
		atomic_init(&p->stop, false);
		r = -pthread_create(&p->thr, NULL, probe_main, p);
		if (r)
			pthread_mutex_destroy(&p->mu);
	}
	if (r) {
		close_all(p);
		return r;
	}
	p->running = true;
	return 0;
}

void lab_probe_stop(struct lab_probe *p)
{
	if (!p->running)
		return;
	atomic_store(&p->stop, true);
	pthread_join(p->thr, NULL);
	p->running = false;
	for (unsigned i = 0; i < LAB_FLOWS; i++) {
		close(p->fd[i]);
		p->fd[i] = -1;
	}
	close(p->nl);
	p->nl = -1;
}

void lab_probe_free(struct lab_probe *p)
{
	lab_probe_stop(p);
	if (p->q) {
		free(p->q);
		p->q = NULL;
		pthread_mutex_destroy(&p->mu);
	}
}

void lab_probe_recent(struct lab_probe *p, uint64_t window_us, struct lab_recent *r)
{
	uint64_t hi = lab_now_us() - RECENT_LAG_US, lo = hi - window_us;
	uint64_t timeout = (uint64_t)p->conf.timeout_ms * 1000u;

	memset(r, 0, sizeof(*r));
	pthread_mutex_lock(&p->mu);
	for (size_t i = p->n; i-- > 0;) {
		const struct lab_query *q = &p->q[i];
		if (q->sent_us > hi)
			continue;
		if (q->sent_us < lo)
			break;
		r->sent++;
		if (lab_query_good(q, timeout)) {
			r->good++;
			r->per_node[q->node]++;
		}
	}
	pthread_mutex_unlock(&p->mu);
}

int lab_probe_route(struct lab_probe *p)
{
	pthread_mutex_lock(&p->mu);
	int m = p->route_mask;
	pthread_mutex_unlock(&p->mu);
	return m;
}
