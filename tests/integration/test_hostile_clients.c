/*
 * Hostile clients against the real daemon: for a bounded time, one thread
 * sends garbage and abuse (random datagrams, mutated queries, TCP that
 * connects and says nothing, announces 65535 bytes and dribbles, pipelines
 * without reading, half-closes, resets, opens hundreds of connections at
 * once) while a well-behaved client keeps asking real questions. The good
 * client must keep getting correct answers (at least 99% within 1 s, none
 * wrong); afterwards anycached must still answer, exit 0 on SIGTERM within
 * 2 s and (under a sanitizer build) leave no sanitizer report in its log.
 *
 * The randomness is seeded from the clock; every failure message carries
 * the seed (HOSTILE_SEED=<n> in the environment replays the same choices).
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define NODE     "127.53.13.1"
#define UPSTREAM "127.53.13.2"
#define PORT     5300

#define RUN_MS       8000 /* hostile phase */
#define GOOD_GAP_MS  10   /* between the good client's queries */
#define GOOD_WAIT_MS 1000 /* an answer later than this counts as missed */
#define MASS_CONNS   300  /* "hundreds of connections at once" */
#define MAX_IDLE     64   /* connect-and-say-nothing sockets kept open */
#define MAX_DRIBBLE  16   /* 65535-byte announcements being dribbled */
#define MAX_FLOODERS 4    /* pipelining, never reading */
#define FLOOD_MSGS   4000 /* queries one flooder writes at most */

static struct knotd knot;
static struct anycached daemon_;
static uint64_t seed;

/* xorshift64*: reproducible from the printed seed. */
static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static unsigned rnd_below(uint64_t *s, unsigned n)
{
	return n ? (unsigned)(rnd_next(s) % n) : 0;
}

static const char conf_yaml[] = "dns:\n"
                                "  listen: [\"" NODE ":5300\"]\n"
                                "  allow: [127.0.0.0/8]\n"
                                "  upstreams: [\"" UPSTREAM ":5300\"]\n"
                                "  threads: 2\n"
                                "  identity: hostile-node\n"
                                /* The abusers share 127.0.0.1 with the good client and
                                 * must reach the worker cap and EMFILE: no per-source
                                 * cap here (test_dns_stream.c tests it). */
                                "  tcp-per-source: 100000\n";

static void setup(void)
{
	const char *zones[] = {"example.test", harness_example_zone};
	const char *env = getenv("HOSTILE_SEED");

	seed = env ? strtoull(env, NULL, 0) : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	if (seed == 0)
		seed = 1;
	fprintf(stderr, "hostile_clients: seed %llu\n", (unsigned long long)seed);
	cr_assert_eq(knotd_start(&knot, UPSTREAM, PORT, zones, 1), 0, "knotd did not start");
	cr_assert_eq(anycached_start(&daemon_, conf_yaml, NODE, PORT), 0,
	             "anycached did not answer");
}

static void teardown(void)
{
	anycached_stop(&daemon_); /* no-op when the test stopped it already */
	knotd_stop(&knot);
}

TestSuite(hostile_clients, .init = setup, .fini = teardown, .timeout = 120);

/* ---------------------------------------------------------------- sockets */

static struct sockaddr_in node_sa(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	inet_pton(AF_INET, NODE, &sa.sin_addr);
	return sa;
}

/* A non-blocking TCP socket with a connect in progress (or done), or -1. */
static int tcp_open_nb(void)
{
	struct sockaddr_in sa = node_sa();
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Waits (bounded) until a non-blocking connect finished; 0 or -1. */
static int tcp_wait_connected(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t el = sizeof(err);

	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err)
		return -1;
	return 0;
}

/* Closes with a reset (SO_LINGER 0) instead of a FIN. */
static void close_rst(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Whatever the server sent us, thrown away (non-blocking). */
static void drain(int fd)
{
	uint8_t buf[8192];

	for (int i = 0; i < 64; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break;
}

/* ---------------------------------------------------------------- hostile payloads */

/* A valid query for one of the zone's names (or a random one under it). */
static size_t valid_query(uint64_t *s, uint8_t *q, size_t cap)
{
	static const char *const names[] = {"www.example.test", "mail.example.test",
	                                    "txt.example.test", "alias.example.test",
	                                    "big.example.test", "example.test"};
	static const uint16_t types[] = {1, 28, 15, 16, 255, 6, 2};
	char name[64];
	int n;

	if (rnd_below(s, 4) == 0)
		snprintf(name, sizeof(name), "h%08x.wild.example.test", (unsigned)rnd_next(s));
	else
		snprintf(name, sizeof(name), "%s", names[rnd_below(s, 6)]);
	n = dns_make_query(q, cap, (uint16_t)rnd_next(s), name, types[rnd_below(s, 7)],
	                   rnd_below(s, 2));
	return n > 0 ? (size_t)n : 0;
}

/* Offset just past the question name of a query built by dns_make_query. */
static size_t qname_end(const uint8_t *q, size_t len)
{
	size_t off = 12;

	while (off < len && q[off])
		off += 1u + q[off];
	return off < len ? off + 1 : len;
}

/*
 * One mutation of a valid query, of the kinds parsers get wrong: bit flips,
 * truncation, count fields at 65535, compression pointers to themselves or
 * forward, a 64-octet label, an overlong name, OPT with absurd option
 * lengths, trailing garbage. Returns the new length.
 */
static size_t mutate(uint64_t *s, uint8_t *q, size_t len, size_t cap)
{
	size_t qe = qname_end(q, len);

	switch (rnd_below(s, 11)) {
	case 0: /* bit flips */
		for (unsigned i = 0, n = 1 + rnd_below(s, 8); i < n; i++)
			q[rnd_below(s, (unsigned)len)] ^= (uint8_t)(1u << rnd_below(s, 8));
		return len;
	case 1: /* truncation */
		return rnd_below(s, (unsigned)len);
	case 2: { /* one count field at 65535 */
		unsigned f = 4 + 2 * rnd_below(s, 4);
		q[f] = q[f + 1] = 0xff;
		return len;
	}
	case 3: /* all counts at 65535 */
		memset(q + 4, 0xff, 8);
		return len;
	case 4: /* the question name is a pointer to itself */
		q[12] = 0xc0;
		q[13] = 12;
		memset(q + 14, 0, 4);
		q[15] = 1, q[17] = 1;
		return 18;
	case 5: { /* a pointer forward, past itself */
		q[12] = 0xc0;
		q[13] = (uint8_t)(14 + rnd_below(s, 200));
		q[14] = 0, q[15] = 1, q[16] = 0, q[17] = 1;
		return 18 + rnd_below(s, 40);
	}
	case 6: { /* a label of 64 octets */
		size_t off = 12;
		q[off++] = 64;
		memset(q + off, 'a', 64);
		off += 64;
		q[off++] = 0;
		q[off++] = 0, q[off++] = 1, q[off++] = 0, q[off++] = 1;
		q[5] = 1;
		memset(q + 6, 0, 6);
		return off;
	}
	case 7: { /* a name of 300+ octets in 63-octet labels */
		size_t off = 12;
		for (int i = 0; i < 5; i++) {
			q[off++] = 63;
			memset(q + off, 'b', 63);
			off += 63;
		}
		q[off++] = 0;
		q[off++] = 0, q[off++] = 1, q[off++] = 0, q[off++] = 1;
		q[5] = 1;
		memset(q + 6, 0, 6);
		return off;
	}
	case 8: { /* OPT whose option length runs far past its RDATA */
		size_t off = qe + 4;
		if (off + 11 + 8 > cap)
			return len;
		q[off++] = 0;                /* root */
		q[off++] = 0, q[off++] = 41; /* OPT */
		q[off++] = 0x04, q[off++] = 0xd0;
		memset(q + off, 0, 4), off += 4;
		uint16_t rdlen = (uint16_t)(rnd_below(s, 2) ? 8 : 0xffff);
		q[off++] = (uint8_t)(rdlen >> 8), q[off++] = (uint8_t)rdlen;
		q[off++] = 0, q[off++] = 10; /* COOKIE */
		q[off++] = 0xff, q[off++] = 0xff;
		memset(q + off, 0x5a, 4), off += 4;
		q[10] = 0, q[11] = 1;
		return off;
	}
	case 9: { /* two OPTs, the second with a zero-length option list but huge version */
		size_t off = qe + 4;
		for (int k = 0; k < 2 && off + 11 <= cap; k++) {
			q[off++] = 0;
			q[off++] = 0, q[off++] = 41;
			q[off++] = 0xff, q[off++] = 0xff;
			q[off++] = 0, q[off++] = (uint8_t)(k ? 0xff : 0), q[off++] = 0x80,
			q[off++] = 0;
			q[off++] = 0, q[off++] = 0;
		}
		q[10] = 0, q[11] = 2;
		return off;
	}
	default: { /* trailing garbage, or QR/opcode bits set */
		if (rnd_below(s, 2)) {
			size_t extra = rnd_below(s, 64);
			if (len + extra > cap)
				extra = cap - len;
			for (size_t i = 0; i < extra; i++)
				q[len + i] = (uint8_t)rnd_next(s);
			return len + extra;
		}
		q[2] = (uint8_t)rnd_next(s);
		return len;
	}
	}
}

/* ---------------------------------------------------------------- the hostile thread */

struct hostile {
	uint64_t rng;
	uint64_t end;
	/* what was sent */
	uint64_t udp_random, udp_mutated, tcp_conns, tcp_msgs, tcp_bytes, rsts;
	int udp;
	int idle[MAX_IDLE];
	unsigned n_idle;
	int dribble[MAX_DRIBBLE];
	unsigned n_dribble;
	int flood[MAX_FLOODERS];
	unsigned n_flood;
	unsigned mass_rounds;
};

static void udp_random_burst(struct hostile *h)
{
	uint8_t buf[1500];

	for (int i = 0; i < 40; i++) {
		size_t len =
		    rnd_below(&h->rng, 8) == 0 ? rnd_below(&h->rng, 1500) : rnd_below(&h->rng, 80);
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)rnd_next(&h->rng);
		if (len > 2 && rnd_below(&h->rng, 2))
			buf[2] &= 0x7f; /* look like a query: QR=0 */
		if (send(h->udp, buf, len, MSG_DONTWAIT) >= 0)
			h->udp_random++;
	}
	drain(h->udp);
}

static void udp_mutated_burst(struct hostile *h)
{
	uint8_t q[1024];

	for (int i = 0; i < 40; i++) {
		size_t len = valid_query(&h->rng, q, sizeof(q));
		if (!len)
			continue;
		len = mutate(&h->rng, q, len, sizeof(q));
		if (send(h->udp, q, len, MSG_DONTWAIT) >= 0)
			h->udp_mutated++;
	}
	drain(h->udp);
}

/* Writes a length-prefixed message, best effort (non-blocking socket). */
static bool tcp_put(struct hostile *h, int fd, const uint8_t *m, size_t len)
{
	uint8_t buf[1100];

	if (len > sizeof(buf) - 2)
		return false;
	buf[0] = (uint8_t)(len >> 8);
	buf[1] = (uint8_t)len;
	memcpy(buf + 2, m, len);
	ssize_t n = send(fd, buf, len + 2, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n > 0) {
		h->tcp_bytes += (uint64_t)n;
		if ((size_t)n == len + 2)
			h->tcp_msgs++;
	}
	return n == (ssize_t)(len + 2);
}

static void tcp_idle(struct hostile *h)
{
	int fd;

	if (h->n_idle == MAX_IDLE) {
		close_rst(h->idle[0]);
		h->rsts++;
		memmove(h->idle, h->idle + 1, (MAX_IDLE - 1) * sizeof(int));
		h->n_idle--;
	}
	fd = tcp_open_nb();
	if (fd >= 0) {
		h->idle[h->n_idle++] = fd;
		h->tcp_conns++;
	}
}

/* Announce 65535 octets, then send one octet per step. */
static void tcp_dribble(struct hostile *h)
{
	static const uint8_t big[2] = {0xff, 0xff};
	uint8_t b = (uint8_t)rnd_next(&h->rng);

	for (unsigned i = 0; i < h->n_dribble; i++)
		if (send(h->dribble[i], &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
			h->tcp_bytes++;
	if (h->n_dribble < MAX_DRIBBLE) {
		int fd = tcp_open_nb();
		if (fd < 0)
			return;
		h->tcp_conns++;
		if (tcp_wait_connected(fd, 200) == 0 &&
		    send(fd, big, 2, MSG_NOSIGNAL | MSG_DONTWAIT) == 2)
			h->tcp_bytes += 2;
		h->dribble[h->n_dribble++] = fd;
	}
}

/* Pipelines queries with big answers and never reads: the write queue fills. */
static void tcp_flood(struct hostile *h)
{
	uint8_t q[512];
	int n = dns_make_query(q, sizeof(q), 1, "big.example.test", 16, true);
	int fd;

	if (h->n_flood == MAX_FLOODERS) {
		/* Retire one: reset half of them (close during a partial write). */
		unsigned k = rnd_below(&h->rng, MAX_FLOODERS);
		if (rnd_below(&h->rng, 2)) {
			close_rst(h->flood[k]);
			h->rsts++;
		} else {
			close(h->flood[k]);
		}
		h->flood[k] = h->flood[--h->n_flood];
	}
	fd = tcp_open_nb();
	if (fd < 0)
		return;
	h->tcp_conns++;
	if (tcp_wait_connected(fd, 200) == 0) {
		for (int i = 0; i < FLOOD_MSGS; i++) {
			q[0] = (uint8_t)(i >> 8), q[1] = (uint8_t)i;
			if (!tcp_put(h, fd, q, (size_t)n))
				break;
		}
	}
	h->flood[h->n_flood++] = fd;
}

/* Queries, then shutdown(SHUT_WR): RFC 7766 §6.2.4 half-close. */
static void tcp_half_close(struct hostile *h)
{
	uint8_t q[512];
	int fd = tcp_open_nb();

	if (fd < 0)
		return;
	h->tcp_conns++;
	if (tcp_wait_connected(fd, 200) == 0) {
		for (int i = 0; i < 3; i++) {
			size_t len = valid_query(&h->rng, q, sizeof(q));
			if (len)
				tcp_put(h, fd, q, len);
		}
		shutdown(fd, SHUT_WR);
		sleep_ms(2);
		drain(fd);
	}
	close(fd);
}

/* Queries that miss the cache (go upstream), then an immediate reset. */
static void tcp_rst_pending(struct hostile *h)
{
	uint8_t q[512];
	int fd = tcp_open_nb();

	if (fd < 0)
		return;
	h->tcp_conns++;
	if (tcp_wait_connected(fd, 200) == 0) {
		for (int i = 0; i < 8; i++) {
			char name[64];
			snprintf(name, sizeof(name), "r%08x.wild.example.test",
			         (unsigned)rnd_next(&h->rng));
			int n = dns_make_query(q, sizeof(q), (uint16_t)i, name, 1, false);
			if (n > 0)
				tcp_put(h, fd, q, (size_t)n);
		}
		if (rnd_below(&h->rng, 2))
			sleep_ms(1); /* sometimes after the server read them, sometimes before */
	}
	close_rst(fd);
	h->rsts++;
}

/* Mutated queries over TCP, some with a lying length prefix. */
static void tcp_mutated(struct hostile *h)
{
	uint8_t q[1024];
	int fd = tcp_open_nb();

	if (fd < 0)
		return;
	h->tcp_conns++;
	if (tcp_wait_connected(fd, 200) == 0) {
		for (int i = 0; i < 6; i++) {
			size_t len = valid_query(&h->rng, q, sizeof(q));
			if (!len)
				continue;
			len = mutate(&h->rng, q, len, sizeof(q));
			if (rnd_below(&h->rng, 4) == 0) {
				/* Prefix says something else than what follows. */
				uint8_t pfx[2] = {(uint8_t)rnd_next(&h->rng),
				                  (uint8_t)rnd_next(&h->rng)};
				send(fd, pfx, 2, MSG_NOSIGNAL | MSG_DONTWAIT);
				send(fd, q, len, MSG_NOSIGNAL | MSG_DONTWAIT);
				h->tcp_msgs++;
			} else {
				tcp_put(h, fd, q, len);
			}
		}
		sleep_ms(1);
		drain(fd);
	}
	if (rnd_below(&h->rng, 2)) {
		close_rst(fd);
		h->rsts++;
	} else {
		close(fd);
	}
}

/* Hundreds of connections at once, each with a query; half reset, half closed. */
static void tcp_mass(struct hostile *h)
{
	static int fds[MASS_CONNS];
	uint8_t q[512];
	unsigned n = 0;

	for (unsigned i = 0; i < MASS_CONNS; i++) {
		int fd = tcp_open_nb();
		if (fd >= 0)
			fds[n++] = fd;
	}
	h->tcp_conns += n;
	sleep_ms(20);
	for (unsigned i = 0; i < n; i++) {
		size_t len = valid_query(&h->rng, q, sizeof(q));
		if (len)
			tcp_put(h, fds[i], q, len);
	}
	sleep_ms(50);
	for (unsigned i = 0; i < n; i++) {
		drain(fds[i]);
		if (i % 2) {
			close_rst(fds[i]);
			h->rsts++;
		} else {
			close(fds[i]);
		}
	}
	h->mass_rounds++;
}

static void *hostile_main(void *arg)
{
	struct hostile *h = arg;
	unsigned step = 0;

	while (now_ms() < h->end) {
		switch (step++ % 12) {
		case 0:
		case 6:
			udp_random_burst(h);
			break;
		case 1:
		case 7:
			udp_mutated_burst(h);
			break;
		case 2:
			tcp_idle(h);
			break;
		case 3:
			tcp_dribble(h);
			break;
		case 4:
			if (step % 48 == 5)
				tcp_flood(h);
			else
				tcp_half_close(h);
			break;
		case 5:
			tcp_rst_pending(h);
			break;
		case 8:
			tcp_mutated(h);
			break;
		case 9:
			/* Twice per run: at about a third and two thirds. */
			if (h->mass_rounds < 2 &&
			    now_ms() + RUN_MS * (2 - h->mass_rounds) / 3 >= h->end)
				tcp_mass(h);
			break;
		default:
			break;
		}
		sleep_ms(2);
	}
	return NULL;
}

static void hostile_close_all(struct hostile *h)
{
	for (unsigned i = 0; i < h->n_idle; i++)
		close(h->idle[i]);
	for (unsigned i = 0; i < h->n_dribble; i++)
		close_rst(h->dribble[i]);
	for (unsigned i = 0; i < h->n_flood; i++)
		close_rst(h->flood[i]);
	h->n_idle = h->n_dribble = h->n_flood = 0;
	close(h->udp);
}

/* ---------------------------------------------------------------- the good client */

/* Whether ans is a correct answer to q (a question for an A record) holding addr. */
static bool answer_ok(const uint8_t *q, size_t qlen, const uint8_t *a, int alen,
                      const uint8_t addr[4], char *why, size_t whylen)
{
	size_t qe = qname_end(q, qlen) + 4, off;
	unsigned an;

	if (alen < 12 || (size_t)alen < qe) {
		snprintf(why, whylen, "answer of %d octets", alen);
		return false;
	}
	if (a[0] != q[0] || a[1] != q[1] || !(a[2] & 0x80) || (a[3] & 0x0f) != 0 || (a[2] & 0x02)) {
		snprintf(why, whylen, "header id %02x%02x flags %02x%02x", a[0], a[1], a[2], a[3]);
		return false;
	}
	if (memcmp(a + 12, q + 12, qe - 12) != 0) {
		snprintf(why, whylen, "question not echoed");
		return false;
	}
	an = (unsigned)(a[6] << 8 | a[7]);
	off = qe;
	for (unsigned i = 0; i < an; i++) {
		/* Owner: a pointer or labels. */
		while (off < (size_t)alen && a[off] && (a[off] & 0xc0) != 0xc0)
			off += 1u + a[off];
		off += off < (size_t)alen && a[off] ? 2 : 1;
		if (off + 10 > (size_t)alen)
			break;
		uint16_t type = (uint16_t)(a[off] << 8 | a[off + 1]);
		uint16_t rdlen = (uint16_t)(a[off + 8] << 8 | a[off + 9]);
		off += 10;
		if (off + rdlen > (size_t)alen)
			break;
		if (type == 1 && rdlen == 4 && memcmp(a + off, addr, 4) == 0)
			return true;
		off += rdlen;
	}
	snprintf(why, whylen, "no A %u.%u.%u.%u among %u answers", addr[0], addr[1], addr[2],
	         addr[3], an);
	return false;
}

struct good_stats {
	unsigned sent, answered, in_time, wrong, tcp_sent;
	uint64_t worst_ms;
	char first_wrong[400];
};

static void good_query(uint64_t *rng, unsigned i, struct good_stats *g)
{
	static const uint8_t www[4] = {192, 0, 2, 80}, mail[4] = {192, 0, 2, 25},
	                     wild[4] = {192, 0, 2, 99};
	uint8_t q[512], a[4096];
	char name[64], why[160];
	const uint8_t *want;
	bool tcp = i % 4 == 3;
	int qlen, n;

	switch (i % 3) {
	case 0:
		snprintf(name, sizeof(name), "www.example.test");
		want = www;
		break;
	case 1:
		snprintf(name, sizeof(name), "mail.example.test");
		want = mail;
		break;
	default:
		/* A new name each time: a cache miss, answered through the upstream. */
		snprintf(name, sizeof(name), "g%u-%04x.wild.example.test", i,
		         (unsigned)rnd_next(rng) & 0xffff);
		want = wild;
		break;
	}
	qlen = dns_make_query(q, sizeof(q), (uint16_t)rnd_next(rng), name, 1, i % 2);
	cr_assert_gt(qlen, 0);
	uint64_t t0 = now_ms();
	n = tcp ? dns_tcp_exchange(NODE, PORT, q, (size_t)qlen, a, sizeof(a), GOOD_WAIT_MS)
	        : dns_udp_exchange(NODE, PORT, q, (size_t)qlen, a, sizeof(a), GOOD_WAIT_MS);
	uint64_t dt = now_ms() - t0;
	g->sent++;
	g->tcp_sent += tcp;
	if (n <= 0)
		return;
	g->answered++;
	if (dt > g->worst_ms)
		g->worst_ms = dt;
	if (dt <= GOOD_WAIT_MS)
		g->in_time++;
	if (!answer_ok(q, (size_t)qlen, a, n, want, why, sizeof(why))) {
		if (!g->wrong)
			snprintf(g->first_wrong, sizeof(g->first_wrong), "%s %s over %s: %s", name,
			         "A", tcp ? "TCP" : "UDP", why);
		g->wrong++;
	}
}

Test(hostile_clients, good_client_survives_abuse)
{
	struct hostile *h = calloc(1, sizeof(*h));
	struct good_stats g = {0};
	struct sockaddr_in sa = node_sa();
	uint64_t grng = seed * 0x9E3779B97F4A7C15ULL | 1;
	pthread_t th;
	char why[600];

	cr_assert_not_null(h);
	h->rng = seed;
	h->udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(h->udp, 0);
	cr_assert_eq(connect(h->udp, (struct sockaddr *)&sa, sizeof(sa)), 0);
	h->end = now_ms() + RUN_MS;
	cr_assert_eq(pthread_create(&th, NULL, hostile_main, h), 0);

	for (unsigned i = 0; now_ms() < h->end; i++) {
		good_query(&grng, i, &g);
		sleep_ms(GOOD_GAP_MS);
	}
	pthread_join(th, NULL);

	fprintf(stderr,
	        "hostile_clients (seed %llu): hostile sent %llu random + %llu mutated datagrams, "
	        "%llu TCP connections (%llu reset), %llu TCP messages, %llu TCP octets, "
	        "%u mass rounds of %d; good client %u queries (%u TCP), %u answered, "
	        "%u within %d ms, %u wrong, worst %llu ms\n",
	        (unsigned long long)seed, (unsigned long long)h->udp_random,
	        (unsigned long long)h->udp_mutated, (unsigned long long)h->tcp_conns,
	        (unsigned long long)h->rsts, (unsigned long long)h->tcp_msgs,
	        (unsigned long long)h->tcp_bytes, h->mass_rounds, MASS_CONNS, g.sent, g.tcp_sent,
	        g.answered, g.in_time, GOOD_WAIT_MS, g.wrong, (unsigned long long)g.worst_ms);

	/* The daemon must have lived through it all. */
	cr_assert(proc_alive(&daemon_.proc), "seed %llu: anycached died", (unsigned long long)seed);
	cr_expect_eq(g.wrong, 0, "seed %llu: %u wrong answers, first: %s", (unsigned long long)seed,
	             g.wrong, g.first_wrong);
	cr_expect_geq(g.in_time * 100u, g.sent * 99u,
	              "seed %llu: only %u of %u good queries answered within %d ms",
	              (unsigned long long)seed, g.in_time, g.sent, GOOD_WAIT_MS);
	cr_expect_geq(g.sent, 200, "seed %llu: the good client asked only %u times",
	              (unsigned long long)seed, g.sent);

	/* Still answering, over both transports, with the abusers still connected. */
	static const uint8_t www[4] = {192, 0, 2, 80};
	uint8_t q[512], a[4096];
	int qlen = dns_make_query(q, sizeof(q), 0x4242, "www.example.test", 1, true);
	int n = dns_udp_exchange(NODE, PORT, q, (size_t)qlen, a, sizeof(a), 2000);
	cr_expect(n > 0 && answer_ok(q, (size_t)qlen, a, n, www, why, sizeof(why)),
	          "seed %llu: no correct UDP answer after the abuse (%d)", (unsigned long long)seed,
	          n);
	n = dns_tcp_exchange(NODE, PORT, q, (size_t)qlen, a, sizeof(a), 2000);
	cr_expect(n > 0 && answer_ok(q, (size_t)qlen, a, n, www, why, sizeof(why)),
	          "seed %llu: no correct TCP answer after the abuse (%d)", (unsigned long long)seed,
	          n);

	hostile_close_all(h);
	free(h);
	/* Exit 0 within 2 s of SIGTERM, and no sanitizer report (ASan build). */
	cr_assert_eq(anycached_stop_clean(&daemon_, 2000, why, sizeof(why)), 0, "seed %llu: %s",
	             (unsigned long long)seed, why);
}

/*
 * The daemon is stopped while the abuse is still connected: idle sockets,
 * a dribbler, a flooder with a full write queue and queries pending
 * upstream. Shutdown must not trip over any of them.
 */
Test(hostile_clients, sigterm_with_abusers_connected)
{
	struct hostile *h = calloc(1, sizeof(*h));
	struct sockaddr_in sa = node_sa();
	char why[600];

	cr_assert_not_null(h);
	h->rng = seed;
	h->udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(h->udp, 0);
	cr_assert_eq(connect(h->udp, (struct sockaddr *)&sa, sizeof(sa)), 0);
	for (int i = 0; i < 8; i++)
		tcp_idle(h);
	for (int i = 0; i < 4; i++)
		tcp_dribble(h);
	tcp_flood(h);
	tcp_flood(h);
	/* Cache misses in flight on a connection that stays open. */
	int fd = tcp_open_nb();
	cr_assert_geq(fd, 0);
	cr_assert_eq(tcp_wait_connected(fd, 1000), 0);
	for (int i = 0; i < 16; i++) {
		uint8_t q[512];
		char name[64];
		snprintf(name, sizeof(name), "s%d-%08x.wild.example.test", i,
		         (unsigned)rnd_next(&h->rng));
		int n = dns_make_query(q, sizeof(q), (uint16_t)i, name, 1, false);
		cr_assert_gt(n, 0);
		tcp_put(h, fd, q, (size_t)n);
	}
	udp_mutated_burst(h);
	sleep_ms(100);
	cr_assert(proc_alive(&daemon_.proc), "seed %llu: anycached died", (unsigned long long)seed);
	cr_assert_eq(anycached_stop_clean(&daemon_, 2000, why, sizeof(why)), 0, "seed %llu: %s",
	             (unsigned long long)seed, why);
	close(fd);
	hostile_close_all(h);
	free(h);
}

/*
 * Out of descriptors (EMFILE): idle connections that say nothing fill the
 * daemon's fd table before its per-worker connection cap is reached. A new
 * client must still get an answer within a second or two, not wait for the
 * idle timeout (10 s): the daemon must close its oldest idle connection to
 * make room, as it does at the cap.
 */
Test(hostile_clients, emfile_does_not_lock_out_new_clients)
{
	struct rlimit lim = {.rlim_cur = 256, .rlim_max = 256};
	static int idle[400];
	uint8_t q[512], a[4096];
	char why[600];
	unsigned n = 0;

	/* The daemon only: the test itself keeps its own limit. */
	cr_assert_eq(prlimit(daemon_.proc.pid, RLIMIT_NOFILE, &lim, NULL), 0, "prlimit: %s",
	             strerror(errno));
	for (unsigned i = 0; i < 400; i++) {
		int fd = tcp_open_nb();
		if (fd >= 0)
			idle[n++] = fd;
	}
	cr_assert_geq(n, 300);
	sleep_ms(300); /* the daemon accepts what it can and runs out of descriptors */

	int qlen = dns_make_query(q, sizeof(q), 0x7777, "www.example.test", 1, false);
	uint64_t t0 = now_ms();
	int r = dns_tcp_exchange(NODE, PORT, q, (size_t)qlen, a, sizeof(a), 3000);
	uint64_t dt = now_ms() - t0;
	static const uint8_t www[4] = {192, 0, 2, 80};
	cr_expect(r > 0 && answer_ok(q, (size_t)qlen, a, r, www, why, sizeof(why)),
	          "no TCP answer with the fd table full of idle connections (%d after %llu ms: %s)",
	          r, (unsigned long long)dt, r > 0 ? why : "-");
	/* UDP and the upstream path keep working too (a cache miss). */
	qlen = dns_make_query(q, sizeof(q), 0x7778, "emfile.wild.example.test", 1, false);
	r = dns_udp_exchange(NODE, PORT, q, (size_t)qlen, a, sizeof(a), 3000);
	static const uint8_t wild[4] = {192, 0, 2, 99};
	cr_expect(r > 0 && answer_ok(q, (size_t)qlen, a, r, wild, why, sizeof(why)),
	          "no UDP answer for a cache miss with the fd table full (%d: %s)", r,
	          r > 0 ? why : "-");
	for (unsigned i = 0; i < n; i++)
		close(idle[i]);
	cr_assert_eq(anycached_stop_clean(&daemon_, 2000, why, sizeof(why)), 0, "%s", why);
}

/* The soft open-file limit is raised to the hard one at startup. */
Test(hostile_clients, soft_fd_limit_is_raised)
{
	struct rlimit mine, low;
	struct anycached d2;
	char path[64], line[256], why[600];
	unsigned long long soft = 0, hard = 0;
	FILE *f;

	/* A second daemon, started with soft 512 (hard unchanged). */
	anycached_stop(&daemon_);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &mine), 0);
	cr_assert_gt(mine.rlim_max, 512);
	low = mine;
	low.rlim_cur = 512;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	int r = anycached_start(&d2, conf_yaml, NODE, PORT);
	setrlimit(RLIMIT_NOFILE, &mine);
	cr_assert_eq(r, 0, "anycached did not answer");
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)d2.proc.pid);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Max open files %llu %llu", &soft, &hard) == 2)
			break;
	fclose(f);
	cr_expect_eq(soft, (unsigned long long)mine.rlim_max, "soft limit %llu, hard %llu", soft,
	             hard);
	cr_assert_eq(anycached_stop_clean(&d2, 2000, why, sizeof(why)), 0, "%s", why);
}
