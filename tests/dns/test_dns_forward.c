/* Tests of dns/dns_forward.c (our UDP path over socket pools, c-ares for TCP)
 * against scripted responders on 127.0.0.1, each a thread serving one UDP and one
 * TCP socket. Every test is bounded by a watchdog timer on the loop. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/loop.h"
#include "dns/dns_forward.h"
#include "dns/dns_wire.h"

/* ---- responder ---- */

enum mode {
	M_ANSWER,
	M_DROP,
	M_WRONG_CASE,   /* answers with the question's letter case flipped */
	M_JUNK_FIRST,   /* a wrong ID, then a wrong name, then the right answer */
	M_TC,           /* UDP: TC=1, empty; TCP: the full answer */
	M_FORMERR_EDNS, /* FORMERR without OPT to queries with OPT (an old server) */
	M_SERVFAIL,
	M_REFUSED,
	M_AUTH,  /* authoritative only: REFUSED for ". NS", answers the rest */
	M_CROSS, /* holds the first query; answers the second to the first's port, then to its
	            own, then answers the first */
};

#define MAX_SEEN 64

struct responder {
	int ufd, tfd;
	uint16_t port;
	_Atomic int mode;
	_Atomic int wrong_case_left; /* M_WRONG_CASE: this many, then answer (-1: forever) */
	_Atomic unsigned udp_q, tcp_q, root_ns_q;
	_Atomic int stop;
	pthread_t th;
	pthread_mutex_t mu;
	unsigned n_seen;
	uint16_t sport[MAX_SEEN];
	bool had_opt[MAX_SEEN];
	bool rd[MAX_SEEN];
	uint8_t qname[MAX_SEEN][64];
	struct sockaddr_in held_peer; /* M_CROSS: the first query, held */
	uint8_t held[512];
	size_t held_len;
};

/* Offset after the question, or -1. */
static int question_end(const uint8_t *q, size_t len)
{
	size_t off = 12;
	while (off < len && q[off] != 0) {
		if (q[off] > 63)
			return -1;
		off += 1u + q[off];
	}
	off += 1 + 4;
	return off <= len ? (int)off : -1;
}

/* Builds the reply to q into out; returns its length, 0 for no reply. */
static size_t build_reply(struct responder *r, const uint8_t *q, size_t qlen, bool tcp,
                          uint8_t *out, int how)
{
	int qe = question_end(q, qlen);
	bool opt = qlen >= 12 && (q[10] | q[11]);
	size_t n;
	unsigned nans = 1;

	if (qe < 0)
		return 0;
	memcpy(out, q, (size_t)qe);
	out[2] = 0x80 | (q[2] & 0x01); /* QR, RD copied */
	out[3] = 0x80;                 /* RA, NOERROR */
	out[4] = 0;
	out[5] = 1;
	memset(out + 6, 0, 6);
	n = (size_t)qe;
	switch (how) {
	case M_SERVFAIL:
		out[3] |= 2;
		nans = 0;
		break;
	case M_REFUSED:
		out[3] |= 5;
		nans = 0;
		break;
	case M_AUTH:
		if (q[12] == 0) {
			out[3] |= 5;
			nans = 0;
		}
		break;
	case M_FORMERR_EDNS:
		if (opt) {
			out[3] |= 1;
			return n; /* no OPT: c-ares falls back */
		}
		break;
	case M_TC:
		if (!tcp) {
			out[2] |= 0x02;
			nans = 0;
		} else {
			nans = 40; /* 640+ octets: more than 512 */
		}
		break;
	case M_WRONG_CASE:
		for (size_t i = 13; i < (size_t)qe - 4; i++)
			if ((out[i] | 0x20) >= 'a' && (out[i] | 0x20) <= 'z') {
				out[i] ^= 0x20;
				break;
			}
		break;
	}
	for (unsigned i = 0; i < nans; i++) {
		static const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0,   1, 0, 0,
		                             0,    60,   0, 4, 192, 0, 2, 0};
		memcpy(out + n, rr, sizeof(rr));
		out[n + sizeof(rr) - 1] = (uint8_t)(i + 1);
		n += sizeof(rr);
	}
	out[7] = (uint8_t)nans;
	if (opt) {
		static const uint8_t o[] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
		memcpy(out + n, o, sizeof(o));
		n += sizeof(o);
		out[11] = 1;
	}
	(void)r;
	return n;
}

static void record(struct responder *r, const uint8_t *q, size_t len, uint16_t sport)
{
	pthread_mutex_lock(&r->mu);
	if (r->n_seen < MAX_SEEN) {
		r->sport[r->n_seen] = sport;
		r->had_opt[r->n_seen] = len >= 12 && (q[10] | q[11]);
		r->rd[r->n_seen] = len >= 3 && (q[2] & 1);
		size_t ql = len > 12 ? len - 12 : 0;
		memcpy(r->qname[r->n_seen], q + 12, ql < 64 ? ql : 64);
		r->n_seen++;
	}
	pthread_mutex_unlock(&r->mu);
	if (len >= 17 && q[12] == 0 && q[14] == 2)
		r->root_ns_q++;
}

static void serve_udp(struct responder *r)
{
	uint8_t q[2048], out[4096];
	struct sockaddr_in peer;
	socklen_t pl = sizeof(peer);
	ssize_t n = recvfrom(r->ufd, q, sizeof(q), 0, (struct sockaddr *)&peer, &pl);
	int how = r->mode;
	size_t len;

	if (n < 12)
		return;
	r->udp_q++;
	record(r, q, (size_t)n, ntohs(peer.sin_port));
	if (how == M_DROP)
		return;
	if (how == M_WRONG_CASE) {
		int left = r->wrong_case_left;
		if (left == 0)
			how = M_ANSWER;
		else if (left > 0)
			r->wrong_case_left = left - 1;
	}
	len = build_reply(r, q, (size_t)n, false, out, how);
	if (!len)
		return;
	if (how == M_JUNK_FIRST) {
		uint8_t bad[4096];
		memcpy(bad, out, len);
		bad[1] ^= 0x5a; /* wrong ID */
		sendto(r->ufd, bad, len, 0, (struct sockaddr *)&peer, pl);
		memcpy(bad, out, len);
		bad[1 + 12] ^= 0x01; /* other name, same length */
		if (bad[13] == out[13])
			bad[13] = 'q';
		sendto(r->ufd, bad, len, 0, (struct sockaddr *)&peer, pl);
	}
	if (how == M_CROSS) {
		if (!r->held_len && len <= sizeof(r->held)) {
			memcpy(r->held, out, len);
			r->held_len = len;
			r->held_peer = peer;
			return;
		}
		/* Marked NXDOMAIN: taking it would show in the result. */
		out[3] |= DNS_RCODE_NXDOMAIN;
		sendto(r->ufd, out, len, 0, (struct sockaddr *)&r->held_peer, pl);
		out[3] &= (uint8_t)~DNS_RCODE_NXDOMAIN;
		sendto(r->ufd, out, len, 0, (struct sockaddr *)&peer, pl);
		sendto(r->ufd, r->held, r->held_len, 0, (struct sockaddr *)&r->held_peer, pl);
		r->held_len = 0;
		return;
	}
	sendto(r->ufd, out, len, 0, (struct sockaddr *)&peer, pl);
}

static void serve_tcp(struct responder *r)
{
	uint8_t q[2048], out[4096 + 2];
	int c = accept(r->tfd, NULL, NULL);
	if (c < 0)
		return;
	struct timeval tv = {.tv_sec = 2};
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		uint8_t lp[2];
		if (recv(c, lp, 2, MSG_WAITALL) != 2)
			break;
		size_t ql = (size_t)lp[0] << 8 | lp[1];
		if (ql > sizeof(q) || recv(c, q, ql, MSG_WAITALL) != (ssize_t)ql)
			break;
		r->tcp_q++;
		size_t len = build_reply(r, q, ql, true, out + 2, r->mode);
		out[0] = (uint8_t)(len >> 8);
		out[1] = (uint8_t)len;
		if (send(c, out, len + 2, MSG_NOSIGNAL) < 0)
			break;
	}
	close(c);
}

static void *responder_main(void *arg)
{
	struct responder *r = arg;
	while (!r->stop) {
		struct pollfd p[2] = {{r->ufd, POLLIN, 0}, {r->tfd, POLLIN, 0}};
		if (poll(p, 2, 50) <= 0)
			continue;
		if (p[0].revents & POLLIN)
			serve_udp(r);
		if (p[1].revents & POLLIN)
			serve_tcp(r);
	}
	return NULL;
}

static void responder_start(struct responder *r, int mode)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	int one = 1;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	r->mode = mode;
	r->wrong_case_left = -1;
	/* The TCP port must equal the UDP port; another process may hold it. */
	for (int attempt = 0;; attempt++) {
		sin.sin_port = 0;
		r->ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		cr_assert_geq(r->ufd, 0);
		cr_assert_eq(bind(r->ufd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		cr_assert_eq(getsockname(r->ufd, (struct sockaddr *)&sin, &sl), 0);
		r->port = ntohs(sin.sin_port);
		r->tfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(r->tfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(r->tfd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			break;
		close(r->ufd);
		close(r->tfd);
		cr_assert_lt(attempt, 50, "no port free for both UDP and TCP");
	}
	cr_assert_eq(listen(r->tfd, 8), 0);
	cr_assert_eq(pthread_create(&r->th, NULL, responder_main, r), 0);
}

static void responder_stop(struct responder *r)
{
	r->stop = 1;
	pthread_join(r->th, NULL);
	close(r->ufd);
	close(r->tfd);
}

static unsigned distinct_ports(struct responder *r)
{
	unsigned n = 0;
	pthread_mutex_lock(&r->mu);
	for (unsigned i = 0; i < r->n_seen; i++) {
		bool dup = false;
		for (unsigned j = 0; j < i; j++)
			dup |= r->sport[j] == r->sport[i];
		n += !dup;
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

/* ---- forwarder side ---- */

struct result {
	int calls, status;
	uint16_t rcode, ancount;
	bool tc;
	uint64_t at;
};

static struct loop *L;
static struct result res[64];
static int done, want;
static bool in_query, cb_inside_query, watchdog_fired;
static struct timer wd;

static void on_result(void *ctx, int status, const uint8_t *ans, size_t len, struct dns_scan *scan)
{
	struct result *r = ctx;
	if (in_query)
		cb_inside_query = true;
	r->calls++;
	r->status = status;
	r->at = clock_now_ms();
	if (status == 0) {
		cr_assert_not_null(ans);
		cr_assert_not_null(scan);
		cr_assert_geq(len, 12u);
		r->rcode = scan->rcode;
		r->ancount = scan->ancount;
		r->tc = scan->tc;
	}
	if (++done >= want)
		loop_stop(L);
}

static void watchdog(struct timer *t, uint64_t now, void *arg)
{
	watchdog_fired = true;
	loop_stop(L);
}

static void setup(void)
{
	cr_assert_eq(loop_global_init(), 0);
	cr_assert_eq(loop_new(NULL, &L), 0);
	memset(res, 0, sizeof(res));
	done = want = 0;
	cb_inside_query = watchdog_fired = false;
	timer_init(&wd, watchdog, NULL);
}

static void teardown(void)
{
	loop_free(L);
}

TestSuite(dns_forward, .init = setup, .fini = teardown, .timeout = 30);

static struct netaddr up_addr(const struct responder *r)
{
	struct netaddr a = {.family = AF_INET, .port = r->port};
	a.addr[0] = 127;
	a.addr[3] = 1;
	return a;
}

static const uint8_t WWW[] = "\3www\7example\4test";
#define WWW_LEN sizeof(WWW) /* the string's NUL is the root label */

static int query(struct dns_forward *f, const uint8_t *name, size_t len, struct result *r)
{
	in_query = true;
	int rc = dns_forward_query(f, name, len, 1, 1, false, true, on_result, r);
	in_query = false;
	return rc;
}

/* Runs the loop until `n` more callbacks came (or the 10 s watchdog). */
static void run_for(int n)
{
	want = done + n;
	loop_timer_arm(L, &wd, clock_now_ms() + 10000);
	cr_assert_eq(loop_run(L), 0);
	loop_timer_cancel(L, &wd);
	cr_assert_not(watchdog_fired, "watchdog: %d of %d callbacks", done, want);
}

static struct dns_forward *fwd(struct netaddr *ups, unsigned n, struct dns_forward_conf *c)
{
	struct dns_forward *f;
	c->upstreams = ups;
	c->n_upstreams = n;
	cr_assert_eq(dns_forward_new(L, c, &f), 0);
	return f;
}

Test(dns_forward, answer_with_our_query_shape)
{
	struct responder r;
	responder_start(&r, M_ANSWER);
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {0};
	struct dns_forward *f = fwd(&a, 1, &c);
	static const uint8_t mixed[] = "\3wWw\7ExAmPlE\4TeSt";

	cr_assert_eq(query(f, mixed, sizeof(mixed), &res[0]), 0);
	cr_assert_eq(res[0].calls, 0, "never called from inside dns_forward_query");
	run_for(1);
	cr_assert_eq(res[0].status, 0);
	cr_assert_eq(res[0].rcode, 0);
	cr_assert_eq(res[0].ancount, 1);
	cr_assert_not(cb_inside_query);
	cr_assert_eq(r.n_seen, 1);
	cr_assert(r.had_opt[0], "our OPT is always sent");
	cr_assert(r.rd[0], "RD=1");
	cr_assert_eq(strncasecmp((char *)r.qname[0], (char *)WWW, WWW_LEN), 0);
	const struct dns_forward_stats *st = dns_forward_stats(f);
	cr_assert_eq(st->sent, 1);
	cr_assert_eq(st->answers, 1);
	cr_assert_eq(st->up[0].answers, 1);
	cr_assert_eq(st->outstanding, 0);
	cr_assert_eq(st->mismatches, 0);
	dns_forward_free(f);
	responder_stop(&r);
}

Test(dns_forward, wrong_case_is_a_spoof_retried_once_on_another_port)
{
	struct responder r;
	responder_start(&r, M_WRONG_CASE);
	r.wrong_case_left = 1;
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {.sockets = 4};
	struct dns_forward *f = fwd(&a, 1, &c);

	cr_assert_eq(query(f, WWW, WWW_LEN, &res[0]), 0);
	run_for(1);
	cr_assert_eq(res[0].status, 0);
	const struct dns_forward_stats *st = dns_forward_stats(f);
	cr_assert_eq(st->mismatches, 1);
	cr_assert_eq(st->up[0].mismatches, 1);
	cr_assert_eq(st->spoof_retries, 1);
	cr_assert_eq(r.udp_q, 2);
	cr_assert_eq(distinct_ports(&r), 2, "the retry uses another channel");
	dns_forward_free(f);
	responder_stop(&r);
}

/*
 * Issue 10, item 6: an upstream that never echoes the 0x20 case (here it
 * flips every letter) got 100 % SERVFAIL (-EPROTO after the spoof retry).
 * Two mismatches in a row with our ID on our port: it does not echo case;
 * the answer is taken, and later queries go out lowercase (ID and port
 * checks stay) and are answered.
 */
Test(dns_forward, upstream_that_never_echoes_case_is_served_without_0x20)
{
	struct responder r;
	responder_start(&r, M_WRONG_CASE);
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {0};
	struct dns_forward *f = fwd(&a, 1, &c);
	static const uint8_t n[3][20] = {"\1a\7example\4test", "\1b\7example\4test",
	                                 "\1c\7example\4test"};

	cr_assert_eq(query(f, WWW, WWW_LEN, &res[0]), 0);
	run_for(1);
	cr_assert_eq(res[0].status, 0, "answered, not SERVFAIL");
	const struct dns_forward_stats *st = dns_forward_stats(f);
	cr_assert_eq(st->mismatches, 1, "the first one still counts as a likely spoof");
	cr_assert_eq(st->up[0].case_ignored, 1);
	struct dns_upstream_info in;
	dns_forward_upstream_info(f, 0, &in);
	cr_assert_eq(in.state, DNS_UPSTREAM_HEALTHY, "not the upstream's fault");
	cr_assert(in.no_0x20);
	unsigned seen = r.n_seen;
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(query(f, n[i], 16, &res[1 + i]), 0);
		run_for(1);
		cr_assert_eq(res[1 + i].status, 0);
	}
	cr_assert_eq(r.n_seen, seen + 3, "one try each: no spoof retries");
	for (unsigned k = seen; k < r.n_seen; k++)
		cr_assert_eq(memcmp(r.qname[k] + 3, "example", 7), 0, "sent lowercase");
	cr_assert_eq(dns_forward_stats(f)->mismatches, 1);
	cr_assert_eq(dns_forward_stats(f)->failures, 0);
	dns_forward_free(f);
	responder_stop(&r);
}

Test(dns_forward, wrong_id_and_wrong_question_are_ignored)
{
	struct responder r;
	responder_start(&r, M_JUNK_FIRST);
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {0};
	struct dns_forward *f = fwd(&a, 1, &c);

	cr_assert_eq(query(f, WWW, WWW_LEN, &res[0]), 0);
	run_for(1);
	cr_assert_eq(res[0].status, 0);
	cr_assert_eq(res[0].ancount, 1);
	cr_assert_eq(r.udp_q, 1, "we waited past the junk for the real answer");
	cr_assert_eq(dns_forward_stats(f)->unmatched, 2);
	cr_assert_eq(dns_forward_stats(f)->mismatches, 0, "another name is not a 0x20 spoof");
	dns_forward_free(f);
	responder_stop(&r);
}

Test(dns_forward, truncated_udp_answer_is_retried_over_tcp)
{
	struct responder r;
	responder_start(&r, M_TC);
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {0};
	struct dns_forward *f = fwd(&a, 1, &c);

	cr_assert_eq(query(f, WWW, WWW_LEN, &res[0]), 0);
	run_for(1);
	cr_assert_eq(res[0].status, 0);
	cr_assert_not(res[0].tc, "never a truncated answer");
	cr_assert_eq(res[0].ancount, 40);
	cr_assert_eq(r.udp_q, 1);
	cr_assert_eq(r.tcp_q, 1);
	dns_forward_free(f);
	responder_stop(&r);
}

Test(dns_forward, formerr_without_opt_is_asked_again_without_opt)
{
	struct responder r;
	responder_start(&r, M_FORMERR_EDNS);
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {.sockets = 1};
	struct dns_forward *f = fwd(&a, 1, &c);

	cr_assert_eq(query(f, WWW, WWW_LEN, &res[0]), 0);
	run_for(1);
	cr_assert_eq(res[0].status, 0, "the plain query was answered");
	cr_assert_eq(dns_forward_stats(f)->edns_fallbacks, 1);
	cr_assert_eq(r.udp_q, 2);
	cr_assert(r.had_opt[0]);
	cr_assert_not(r.had_opt[1], "our OPT (the last 11 octets) cut off");
	cr_assert_eq(r.sport[1], r.sport[0], "the same try: same socket");
	cr_assert_eq(memcmp(r.qname[1], r.qname[0], WWW_LEN), 0, "same 0x20 case");
	/* Only that try went plain: the next query has our OPT again. */
	r.mode = M_ANSWER;
	cr_assert_eq(query(f, WWW, WWW_LEN, &res[1]), 0);
	run_for(1);
	cr_assert_eq(res[1].status, 0);
	cr_assert_eq(r.udp_q, 3);
	cr_assert(r.had_opt[2], "EDNS again");
	dns_forward_free(f);
	responder_stop(&r);
}

Test(dns_forward, formerr_fallback_with_the_longest_name)
{
	struct responder r;
	responder_start(&r, M_FORMERR_EDNS);
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {0};
	struct dns_forward *f = fwd(&a, 1, &c);
	uint8_t name[DNS_NAME_MAX];
	size_t off = 0;

	/* 63 + 63 + 63 + 61 octet labels and the root: 255 octets, the most RFC 1035 allows. */
	for (int l = 0; l < 4; l++) {
		unsigned n = l < 3 ? 63 : 61;
		name[off++] = (uint8_t)n;
		memset(name + off, 'a' + l, n);
		off += n;
	}
	name[off++] = 0;
	cr_assert_eq(off, DNS_NAME_MAX);
	cr_assert_eq(query(f, name, off, &res[0]), 0);
	run_for(1);
	cr_assert_eq(res[0].status, 0);
	cr_assert_eq(dns_forward_stats(f)->edns_fallbacks, 1);
	cr_assert_eq(r.udp_q, 2);
	dns_forward_free(f);
	responder_stop(&r);
}

Test(dns_forward, timeout_fails_over_to_the_next_upstream)
{
	struct responder r0, r1;
	responder_start(&r0, M_DROP);
	responder_start(&r1, M_ANSWER);
	struct netaddr a[2] = {up_addr(&r0), up_addr(&r1)};
	struct dns_upstream_conf pc = {.initial_rto_ms = 200};
	struct dns_forward_conf c = {.policy = &pc};
	struct dns_forward *f = fwd(a, 2, &c);
	uint64_t t0 = clock_now_ms();

	cr_assert_eq(query(f, WWW, WWW_LEN, &res[0]), 0);
	run_for(1);
	uint64_t took = res[0].at - t0;
	cr_assert_eq(res[0].status, 0);
	cr_assert_geq(took, 190);
	cr_assert_lt(took, 600, "failover within the RTO, took %llu ms", (unsigned long long)took);
	const struct dns_forward_stats *st = dns_forward_stats(f);
	cr_assert_eq(st->up[0].timeouts, 1);
	cr_assert_eq(st->up[1].answers, 1);
	cr_assert_eq(st->retries, 1);
	dns_forward_free(f);
	responder_stop(&r0);
	responder_stop(&r1);
}

Test(dns_forward, servfail_and_refused_fail_over_at_once)
{
	struct responder r0, r1, r2;
	responder_start(&r0, M_SERVFAIL);
	responder_start(&r1, M_REFUSED);
	responder_start(&r2, M_ANSWER);
	struct netaddr a[3] = {up_addr(&r0), up_addr(&r1), up_addr(&r2)};
	struct dns_forward_conf c = {0};
	struct dns_forward *f = fwd(a, 3, &c);
	uint64_t t0 = clock_now_ms();

	cr_assert_eq(query(f, WWW, WWW_LEN, &res[0]), 0);
	run_for(1);
	cr_assert_eq(res[0].status, 0);
	cr_assert_eq(res[0].rcode, 0);
	cr_assert_lt(res[0].at - t0, 150, "no waiting for a timeout");
	const struct dns_forward_stats *st = dns_forward_stats(f);
	cr_assert_eq(st->servfail, 1);
	cr_assert_eq(st->refused, 1);
	cr_assert_eq(st->up[0].servfail, 1);
	cr_assert_eq(st->up[1].refused, 1);
	cr_assert_eq(st->up[2].answers, 1);
	/* Bounded tries: only SERVFAIL and REFUSED left -> error, no answer. */
	r2.mode = M_SERVFAIL;
	cr_assert_eq(query(f, WWW, WWW_LEN, &res[1]), 0);
	run_for(1);
	cr_assert_eq(res[1].status, -ECONNREFUSED);
	dns_forward_free(f);
	responder_stop(&r0);
	responder_stop(&r1);
	responder_stop(&r2);
}

Test(dns_forward, total_time_is_bounded)
{
	struct responder r0, r1;
	responder_start(&r0, M_DROP);
	responder_start(&r1, M_DROP);
	struct netaddr a[2] = {up_addr(&r0), up_addr(&r1)};
	struct dns_forward_conf c = {.timeout_ms = 700};
	struct dns_forward *f = fwd(a, 2, &c);
	uint64_t t0 = clock_now_ms();

	cr_assert_eq(query(f, WWW, WWW_LEN, &res[0]), 0);
	run_for(1);
	uint64_t took = res[0].at - t0;
	cr_assert_eq(res[0].status, -ETIMEDOUT);
	cr_assert_geq(took, 690);
	cr_assert_lt(took, 900, "took %llu ms", (unsigned long long)took);
	cr_assert_eq(r0.udp_q + r1.udp_q, 2, "both upstreams tried once");
	dns_forward_free(f);
	responder_stop(&r0);
	responder_stop(&r1);
}

Test(dns_forward, dead_upstream_is_skipped_reprobed_and_revived)
{
	struct responder r0, r1;
	responder_start(&r0, M_DROP);
	responder_start(&r1, M_ANSWER);
	struct netaddr a[2] = {up_addr(&r0), up_addr(&r1)};
	struct dns_upstream_conf pc = {.initial_rto_ms = 100, .probe_min_ms = 300, .dead_after = 1};
	struct dns_forward_conf c = {.policy = &pc, .timeout_ms = 1000};
	struct dns_forward *f = fwd(a, 2, &c);
	struct dns_upstream_info in;
	static const uint8_t n[3][20] = {"\1a\7example\4test", "\1b\7example\4test",
	                                 "\1c\7example\4test"};

	for (int i = 0; i < 3; i++) {
		cr_assert_eq(query(f, n[i], 16, &res[i]), 0);
		run_for(1);
		cr_assert_eq(res[i].status, 0);
	}
	/* Not dead yet: confirming, and its probe (timeout_ms) fails too. */
	dns_forward_upstream_info(f, 0, &in);
	cr_assert(in.confirming || in.state == DNS_UPSTREAM_DEAD);
	loop_timer_arm(L, &wd, clock_now_ms() + 1200);
	want = 1000;
	loop_run(L);
	watchdog_fired = false; /* it was the wait's end */
	dns_forward_upstream_info(f, 0, &in);
	cr_assert_eq(in.state, DNS_UPSTREAM_DEAD);
	unsigned before = r0.udp_q;
	cr_assert_eq(query(f, WWW, WWW_LEN, &res[3]), 0);
	run_for(1);
	cr_assert_eq(res[3].status, 0);
	cr_assert_eq(r0.udp_q, before, "no client query to a dead upstream");
	/* It comes back as an authoritative-only server that refuses ". NS": the
	 * probe asks the question that failed there, so it notices anyway. */
	r0.mode = M_AUTH;
	unsigned seen0 = r0.n_seen;
	loop_timer_arm(L, &wd, clock_now_ms() + 1500);
	want = 1000;
	loop_run(L);
	dns_forward_upstream_info(f, 0, &in);
	cr_assert_eq(in.state, DNS_UPSTREAM_HEALTHY);
	cr_assert_eq(in.revivals, 1);
	cr_assert_eq(r0.root_ns_q, 0, "probes ask the failed client question, not \". NS\"");
	cr_assert_gt(r0.n_seen, seen0);
	cr_assert(dns_name_equal(r0.qname[seen0], 16, n[0], 16), "the probe asked a.example.test");
	cr_assert_geq(dns_forward_stats(f)->probes, 1);
	dns_forward_free(f);
	responder_stop(&r0);
	responder_stop(&r1);
}

Test(dns_forward, identical_queries_share_one_upstream_query)
{
	struct responder r;
	responder_start(&r, M_ANSWER);
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {.max_waiters = 4};
	struct dns_forward *f = fwd(&a, 1, &c);
	static const uint8_t other[] = "\3WWW\7EXAMPLE\4TEST";

	for (int i = 0; i < 10; i++)
		cr_assert_eq(query(f, i % 2 ? other : WWW, WWW_LEN, &res[i]), 0);
	/* Different DO bit: a different key. */
	in_query = true;
	cr_assert_eq(dns_forward_query(f, WWW, WWW_LEN, 1, 1, false, false, on_result, &res[10]),
	             0);
	in_query = false;
	cr_assert_eq(res[0].calls, 0);
	run_for(11);
	for (int i = 0; i < 11; i++) {
		cr_assert_eq(res[i].calls, 1, "waiter %d", i);
		cr_assert_eq(res[i].status, 0, "waiter %d", i);
		cr_assert_eq(res[i].ancount, 1);
	}
	const struct dns_forward_stats *st = dns_forward_stats(f);
	/* 1 query with 4 waiters, 6 callers found it full, 1 other key. */
	cr_assert_eq(st->coalesced, 3);
	cr_assert_eq(st->coalesce_full, 6);
	cr_assert_eq(r.udp_q, 8);
	cr_assert_eq(st->answers, 8);
	cr_assert_not(cb_inside_query);
	dns_forward_free(f);
	responder_stop(&r);
}

Test(dns_forward, beyond_max_outstanding_fails_at_once)
{
	struct responder r;
	responder_start(&r, M_ANSWER);
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {.max_outstanding = 2};
	struct dns_forward *f = fwd(&a, 1, &c);
	static const uint8_t n[3][20] = {"\1a\7example\4test", "\1b\7example\4test",
	                                 "\1c\7example\4test"};

	cr_assert_eq(query(f, n[0], 16, &res[0]), 0);
	cr_assert_eq(query(f, n[1], 16, &res[1]), 0);
	cr_assert_eq(query(f, n[2], 16, &res[2]), -EBUSY);
	/* Issue 10, item 2: a caller joining a query in flight counts too. */
	cr_assert_eq(query(f, n[0], 16, &res[3]), -EBUSY, "joining holds a caller too");
	cr_assert_eq(dns_forward_stats(f)->busy, 2);
	run_for(2);
	cr_assert_eq(res[2].calls, 0, "no callback after an immediate failure");
	dns_forward_free(f);
	responder_stop(&r);
}

Test(dns_forward, sockets_rotate_so_source_ports_change)
{
	struct responder r;
	responder_start(&r, M_ANSWER);
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {.sockets = 2, .rotate_queries = 2};
	struct dns_forward *f = fwd(&a, 1, &c);
	uint8_t name[] = "\1a\7example\4test";

	for (int i = 0; i < 20; i++) {
		name[1] = (uint8_t)('a' + i);
		cr_assert_eq(query(f, name, sizeof(name), &res[i]), 0);
		run_for(1);
		cr_assert_eq(res[i].status, 0);
	}
	const struct dns_forward_stats *st = dns_forward_stats(f);
	cr_assert_geq(st->socket_rotations, 6);
	cr_assert_geq(distinct_ports(&r), 7, "ports: %u", distinct_ports(&r));
	cr_assert_geq(st->sockets_closed, 5, "retired sockets close once their tries are over");
	cr_assert_leq(st->sockets_opened, 12, "a socket serves its 2 queries: %llu opened",
	              (unsigned long long)st->sockets_opened);
	dns_forward_free(f);
	responder_stop(&r);
}

Test(dns_forward, an_answer_on_another_socket_is_ignored)
{
	struct responder r;
	responder_start(&r, M_CROSS);
	struct netaddr a = up_addr(&r);
	/* One query per socket: the two tries go out from two ports. */
	struct dns_forward_conf c = {.sockets = 1, .rotate_queries = 1};
	struct dns_forward *f = fwd(&a, 1, &c);
	static const uint8_t n[2][20] = {"\1a\7example\4test", "\1b\7example\4test"};

	cr_assert_eq(query(f, n[0], 16, &res[0]), 0);
	cr_assert_eq(query(f, n[1], 16, &res[1]), 0);
	run_for(2);
	cr_assert_eq(res[0].status, 0);
	cr_assert_eq(res[1].status, 0);
	cr_assert_eq(res[0].rcode, DNS_RCODE_NOERROR);
	cr_assert_eq(res[1].rcode, DNS_RCODE_NOERROR, "the answer from the wrong socket was taken");
	cr_assert_eq(r.udp_q, 2);
	cr_assert_eq(distinct_ports(&r), 2);
	/* The second answer went to the first try's socket first, while that try still
	 * waited there: right ID and question, wrong socket. */
	const struct dns_forward_stats *st = dns_forward_stats(f);
	cr_assert_eq(st->unmatched, 1);
	cr_assert_eq(st->answers, 2);
	dns_forward_free(f);
	responder_stop(&r);
}

Test(dns_forward, port_unreachable_fails_over_at_once)
{
	struct responder r0, r1;
	responder_start(&r0, M_ANSWER);
	responder_start(&r1, M_ANSWER);
	struct netaddr a[2] = {up_addr(&r0), up_addr(&r1)};
	struct dns_forward_conf c = {0};
	struct dns_forward *f = fwd(a, 2, &c);

	/* Nobody listens at upstream 0's port any more: the kernel answers with ICMP. */
	responder_stop(&r0);
	uint64_t t0 = clock_now_ms();
	cr_assert_eq(query(f, WWW, WWW_LEN, &res[0]), 0);
	run_for(1);
	cr_assert_eq(res[0].status, 0);
	cr_assert_lt(res[0].at - t0, 200, "no waiting for an RTO");
	const struct dns_forward_stats *st = dns_forward_stats(f);
	cr_assert_geq(st->socket_errors, 1);
	cr_assert_eq(st->up[0].failures, 1);
	cr_assert_eq(st->up[1].answers, 1);
	dns_forward_free(f);
	responder_stop(&r1);
}

Test(dns_forward, free_cancels_pending_queries)
{
	struct responder r;
	responder_start(&r, M_DROP);
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {0};
	struct dns_forward *f = fwd(&a, 1, &c);

	cr_assert_eq(query(f, WWW, WWW_LEN, &res[0]), 0);
	cr_assert_eq(query(f, WWW, WWW_LEN, &res[1]), 0);
	dns_forward_free(f);
	cr_assert_eq(res[0].calls, 1);
	cr_assert_eq(res[0].status, -ECANCELED);
	cr_assert_eq(res[1].status, -ECANCELED);
	responder_stop(&r);
}

/*
 * Issue 10, item 2: callers that join queries in flight are inside the
 * in-flight bound. Before, 64 copies of each of max_outstanding slow names
 * were all taken (65 x the bound); now at most max_outstanding callers
 * wait, whatever mix of names and copies, and every one is answered.
 */
Test(dns_forward, waiters_count_against_max_outstanding)
{
	struct responder r;
	responder_start(&r, M_ANSWER);
	struct netaddr a = up_addr(&r);
	struct dns_forward_conf c = {.max_outstanding = 8, .max_waiters = 64};
	struct dns_forward *f = fwd(&a, 1, &c);
	uint8_t name[] = "\1a\7example\4test";
	int taken = 0, busy = 0;

	for (int i = 0; i < 4; i++) {
		name[1] = (uint8_t)('a' + i);
		for (int k = 0; k < 10; k++) {
			int rc = query(f, name, sizeof(name), &res[taken < 64 ? taken : 63]);
			if (rc == 0)
				taken++;
			else
				busy += rc == -EBUSY;
		}
	}
	cr_assert_eq(taken, 8, "callers held: %d", taken);
	cr_assert_eq(busy, 32);
	const struct dns_forward_stats *st = dns_forward_stats(f);
	cr_assert_eq(st->outstanding + st->waiters, 8);
	run_for(8);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(res[i].status, 0);
	cr_assert_eq(dns_forward_stats(f)->waiters, 0);
	cr_assert_eq(dns_forward_stats(f)->outstanding, 0);
	dns_forward_free(f);
	responder_stop(&r);
}
