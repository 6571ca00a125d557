/*
 * Issue 8, one cache per node: anycached with `threads: 4`, every query from
 * a new UDP socket (a new source port, as a stub sends them), so SO_REUSEPORT
 * spreads them over all four workers.
 *
 * The upstream is knotd behind a small counting relay of our own (a thread
 * of this test on 127.53.14.x:5300 that forwards to knotd and records every
 * question it sees), so what reaches the upstream is counted outside the
 * daemon. The relay can also hold questions whose first label starts with
 * "slow" for RELAY_DELAY_MS, drop those starting with "drop", and stop
 * (close its socket: the daemon then gets ICMP port unreachable at once, as
 * from a stopped knotd).
 *
 *  - after one pass over the names, the next passes reach the upstream zero
 *    times, and every worker answered from the cache;
 *  - with the upstream stopped, cached NXDOMAIN, unexpired and serve-stale
 *    answers come back from every worker (no SERVFAIL anywhere);
 *  - one question missed on all workers at once costs one upstream query,
 *    and every client gets the owner's outcome (an answer, or SERVFAIL);
 *  - an upstream found dead through one worker is dead for every worker:
 *    every worker serves expired answers stale at once (RFC 8767 §4), none
 *    first waits on the dead upstream (one upstream table per node).
 *
 * Which worker answered is read from the daemon's exit log (one line of
 * counters per worker). Loopback only: 127.53.14.{1,2,3} (+10 per test).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl_itest.h"
#include "harness.h"

#define NET            14
#define PORT           5300
#define WORKERS        4
#define RELAY_DELAY_MS 400

static const char shared_zone[] = "$ORIGIN shared.test.\n"
                                  "$TTL 3600\n"
                                  "@ SOA ns.shared.test. hostmaster.shared.test. 1 3600 600 "
                                  "86400 60\n"
                                  "@ NS ns\n"
                                  "ns A 127.0.0.1\n"
                                  "*.n A 192.0.2.1\n"
                                  "*.slow A 192.0.2.7\n"
                                  "*.drop A 192.0.2.8\n"
                                  "*.s 1 A 192.0.2.3\n";

/* ---------------------------------------------------------------- the relay */

#define RELAY_SESS   256
#define RELAY_QUEUE  1024
#define RELAY_NAMES  8192
#define RELAY_NAMELN 64

struct held {
	uint64_t at;
	int sess;
	size_t len;
	uint8_t b[512];
};

static struct relay {
	char addr[32], up[32];
	int lfd;
	pthread_t th;
	bool running;
	atomic_bool stop, pause, paused;
	atomic_bool blackhole; /* read and count every question, forward none: timeouts */
	pthread_mutex_t mu;
	unsigned n_names; /* questions forwarded (or dropped), in order */
	char names[RELAY_NAMES][RELAY_NAMELN];
	struct {
		int fd;
		struct sockaddr_in client;
		uint64_t last;
	} sess[RELAY_SESS];
	struct held q[RELAY_QUEUE];
	unsigned nq;
} relay;

/* The question name in dotted lowercase ("a.b.test"); "" when it does not parse. */
static void qname_of(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t off = 12, o = 0;
	out[0] = 0;
	while (off < n && p[off] && p[off] < 64 && off + 1 + p[off] <= n) {
		for (unsigned i = 0; i < p[off] && o + 2 < cap; i++) {
			uint8_t c = p[off + 1 + i];
			out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		if (o + 1 < cap)
			out[o++] = '.';
		off += 1 + p[off];
	}
	if (o)
		o--; /* no trailing dot */
	out[o] = 0;
}

static int relay_session(const struct sockaddr_in *from)
{
	int lru = 0;
	for (int i = 0; i < RELAY_SESS; i++) {
		if (relay.sess[i].fd >= 0 && relay.sess[i].client.sin_port == from->sin_port &&
		    relay.sess[i].client.sin_addr.s_addr == from->sin_addr.s_addr)
			return i;
		if (relay.sess[i].fd < 0 || relay.sess[i].last < relay.sess[lru].last)
			lru = i;
	}
	if (relay.sess[lru].fd >= 0)
		close(relay.sess[lru].fd);
	struct sockaddr_in up = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	inet_pton(AF_INET, relay.up, &up.sin_addr);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&up, sizeof(up)) < 0) {
		if (fd >= 0)
			close(fd);
		relay.sess[lru].fd = -1;
		return -1;
	}
	relay.sess[lru].fd = fd;
	relay.sess[lru].client = *from;
	return lru;
}

static void *relay_main(void *arg)
{
	(void)arg;
	struct pollfd pf[1 + RELAY_SESS];
	uint8_t buf[4096];

	while (!atomic_load(&relay.stop)) {
		if (atomic_load(&relay.pause) && relay.lfd >= 0) {
			close(relay.lfd); /* the daemon's sends now get port unreachable */
			relay.lfd = -1;
			atomic_store(&relay.paused, true);
		}
		uint64_t now = now_ms();
		/* Release held questions that are due. */
		for (unsigned i = 0; i < relay.nq;) {
			struct held *h = &relay.q[i];
			if (h->at > now) {
				i++;
				continue;
			}
			if (relay.sess[h->sess].fd >= 0)
				(void)send(relay.sess[h->sess].fd, h->b, h->len, 0);
			relay.q[i] = relay.q[--relay.nq];
		}
		int n = 0;
		pf[n++] = (struct pollfd){.fd = relay.lfd, .events = POLLIN};
		for (int i = 0; i < RELAY_SESS; i++)
			pf[n++] = (struct pollfd){.fd = relay.sess[i].fd, .events = POLLIN};
		if (poll(pf, (nfds_t)n, 20) <= 0)
			continue;
		if (relay.lfd >= 0 && (pf[0].revents & POLLIN)) {
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t len =
			    recvfrom(relay.lfd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
			if (len >= 12 && (size_t)len <= sizeof(relay.q[0].b)) {
				char name[RELAY_NAMELN];
				qname_of(buf, (size_t)len, name, sizeof(name));
				pthread_mutex_lock(&relay.mu);
				if (relay.n_names < RELAY_NAMES)
					snprintf(relay.names[relay.n_names++], RELAY_NAMELN, "%s",
					         name);
				pthread_mutex_unlock(&relay.mu);
				int s = atomic_load(&relay.blackhole) ? -1 : relay_session(&from);
				if (s >= 0 && strncmp(name, "drop", 4) != 0) {
					relay.sess[s].last = now;
					if (strncmp(name, "slow", 4) == 0 &&
					    relay.nq < RELAY_QUEUE) {
						struct held *h = &relay.q[relay.nq++];
						h->at = now + RELAY_DELAY_MS;
						h->sess = s;
						h->len = (size_t)len;
						memcpy(h->b, buf, (size_t)len);
					} else {
						(void)send(relay.sess[s].fd, buf, (size_t)len, 0);
					}
				}
			}
		}
		for (int i = 0; i < RELAY_SESS; i++) {
			if (relay.sess[i].fd < 0 || !(pf[1 + i].revents & POLLIN))
				continue;
			ssize_t len = recv(relay.sess[i].fd, buf, sizeof(buf), 0);
			if (len > 0 && relay.lfd >= 0)
				(void)sendto(relay.lfd, buf, (size_t)len, 0,
				             (struct sockaddr *)&relay.sess[i].client,
				             sizeof(relay.sess[i].client));
		}
	}
	return NULL;
}

static void relay_start(const char *addr, const char *up)
{
	memset(&relay, 0, sizeof(relay));
	pthread_mutex_init(&relay.mu, NULL);
	snprintf(relay.addr, sizeof(relay.addr), "%s", addr);
	snprintf(relay.up, sizeof(relay.up), "%s", up);
	for (int i = 0; i < RELAY_SESS; i++)
		relay.sess[i].fd = -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	inet_pton(AF_INET, addr, &a.sin_addr);
	relay.lfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(relay.lfd, 0);
	cr_assert_eq(bind(relay.lfd, (struct sockaddr *)&a, sizeof(a)), 0, "relay bind %s: %s",
	             addr, strerror(errno));
	cr_assert_eq(pthread_create(&relay.th, NULL, relay_main, NULL), 0);
	relay.running = true;
}

/* Stops forwarding for good: the listening socket is closed (bounded wait). */
static void relay_pause(void)
{
	atomic_store(&relay.pause, true);
	for (int i = 0; i < 100 && !atomic_load(&relay.paused); i++)
		sleep_ms(10);
	cr_assert(atomic_load(&relay.paused), "relay did not stop");
}

static void relay_stop(void)
{
	if (!relay.running)
		return;
	atomic_store(&relay.stop, true);
	pthread_join(relay.th, NULL);
	relay.running = false;
	if (relay.lfd >= 0)
		close(relay.lfd);
	for (int i = 0; i < RELAY_SESS; i++)
		if (relay.sess[i].fd >= 0)
			close(relay.sess[i].fd);
}

/* Questions seen so far; with a name, only those for it. */
static unsigned relay_count(const char *name)
{
	unsigned n = 0;
	pthread_mutex_lock(&relay.mu);
	for (unsigned i = 0; i < relay.n_names; i++)
		n += !name || strcmp(relay.names[i], name) == 0;
	pthread_mutex_unlock(&relay.mu);
	return n;
}

/* ---------------------------------------------------------------- daemon and clients */

static struct knotd knot;
static struct anycached daemon_;
static char node[32];
static char ctl_sock[64];

static void up(int n)
{
	const char *zones[] = {"example.test", harness_example_zone, "shared.test", shared_zone};
	char up_addr[32], relay_addr[32], conf[1024];

	snprintf(node, sizeof(node), "127.53.%d.%d", NET, 10 * n + 1);
	snprintf(up_addr, sizeof(up_addr), "127.53.%d.%d", NET, 10 * n + 2);
	snprintf(relay_addr, sizeof(relay_addr), "127.53.%d.%d", NET, 10 * n + 3);
	snprintf(ctl_sock, sizeof(ctl_sock), "/tmp/anycache-shared-%d-%d.sock", (int)getpid(), n);
	snprintf(conf, sizeof(conf),
	         "dns:\n"
	         "  listen: [\"%s:%d\"]\n"
	         "  allow: [127.0.0.0/8]\n"
	         "  upstreams: [\"%s:%d\"]\n"
	         "  threads: %d\n"
	         "  identity: shared-cache-%d\n"
	         "  cache: {serve-stale: 1h}\n"
	         "control: {socket: \"%s\"}\n",
	         node, PORT, relay_addr, PORT, WORKERS, n, ctl_sock);
	cr_assert_eq(knotd_start(&knot, up_addr, PORT, zones, 2), 0, "knotd did not start");
	relay_start(relay_addr, up_addr);
	harness_verbose = true;
	cr_assert_eq(anycached_start(&daemon_, conf, node, PORT), 0, "anycached did not answer");
}

static void down(void)
{
	anycached_stop(&daemon_);
	if (ctl_sock[0])
		unlink(ctl_sock);
	relay_stop();
	knotd_stop(&knot);
}

TestSuite(shared_cache, .fini = down, .timeout = 150);

struct worker_line {
	bool seen;
	unsigned long long udp, noerror, nxdomain, servfail, hits, misses, stale;
};

/* Stops the daemon (SIGTERM, clean exit) and reads each worker's exit line
 * (debug level: the daemon runs with -v, harness_verbose). */
static void stop_and_read_workers(struct worker_line w[WORKERS])
{
	char line[1024];

	memset(w, 0, WORKERS * sizeof(*w));
	cr_assert_eq(proc_stop(&daemon_.proc, SIGTERM, 10000), 0, "anycached did not exit cleanly");
	FILE *f = fopen(daemon_.proc.log, "r");
	cr_assert_not_null(f, "no log at %s", daemon_.proc.log);
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "main: dns-");
		unsigned i;
		struct worker_line x = {.seen = true};
		if (!p ||
		    sscanf(p,
		           "main: dns-%u: udp %llu tcp %*u queries; answers NOERROR %llu "
		           "NXDOMAIN %llu SERVFAIL %llu REFUSED %*u FORMERR %*u NOTIMP %*u; "
		           "cache hits %llu misses %llu stale %llu",
		           &i, &x.udp, &x.noerror, &x.nxdomain, &x.servfail, &x.hits, &x.misses,
		           &x.stale) != 8 ||
		    i >= WORKERS)
			continue;
		w[i] = x;
	}
	fclose(f);
	for (unsigned i = 0; i < WORKERS; i++) {
		cr_assert(w[i].seen, "no exit line for worker %u", i);
		fprintf(stderr,
		        "worker %u: udp %llu, NOERROR %llu NXDOMAIN %llu SERVFAIL %llu, hits %llu "
		        "misses %llu stale %llu\n",
		        i, w[i].udp, w[i].noerror, w[i].nxdomain, w[i].servfail, w[i].hits,
		        w[i].misses, w[i].stale);
	}
}

/* One query from a new socket (so a new source port); the answer's length. */
static int ask(const char *name, uint8_t *a, size_t cap)
{
	uint8_t q[512];
	int qlen = dns_make_query(q, sizeof(q), 0x5a5a, name, 1, true);
	cr_assert_gt(qlen, 0);
	int n = dns_udp_exchange(node, PORT, q, (size_t)qlen, a, cap, 3000);
	cr_assert_geq(n, 12, "no answer for %s (%d)", name, n);
	return n;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

#define RCODE(a)   ((a)[3] & 0x0f)
#define ANCOUNT(a) rd16((a) + 6)

/* The TTL of the first record after the question (uncompressed qname in our answers). */
static uint32_t first_ttl(const uint8_t *a, size_t n)
{
	size_t off = 12;
	while (off < n && a[off])
		off += 1 + a[off];
	off += 1 + 4; /* root, qtype, qclass */
	off += (off < n && (a[off] & 0xc0) == 0xc0) ? 2 : 0;
	cr_assert_leq(off + 8, n, "no record in the answer");
	return (uint32_t)a[off + 4] << 24 | (uint32_t)a[off + 5] << 16 | (uint32_t)a[off + 6] << 8 |
	       a[off + 7];
}

#define NAMES 200 /* of each kind */

static void expect(const char *name, int rcode, uint8_t *a, int *len)
{
	*len = ask(name, a, 4096);
	cr_assert_eq(RCODE(a), rcode, "%s: RCODE %d, expected %d", name, RCODE(a), rcode);
}

Test(shared_cache, later_passes_reach_the_upstream_zero_times)
{
	uint8_t a[4096];
	char name[64];
	int n;

	up(0);
	unsigned base = relay_count(NULL);
	for (int pass = 0; pass < 3; pass++) {
		for (int i = 0; i < NAMES; i++) {
			snprintf(name, sizeof(name), "h%d.n.shared.test", i);
			expect(name, 0, a, &n);
			cr_assert_eq(ANCOUNT(a), 1);
			cr_assert_leq(first_ttl(a, (size_t)n), 3600);
			snprintf(name, sizeof(name), "x%d.shared.test", i);
			expect(name, 3, a, &n); /* NXDOMAIN, cached (RFC 2308) */
		}
		unsigned seen = relay_count(NULL) - base;
		fprintf(stderr, "pass %d: %u upstream queries for %d names\n", pass + 1, seen,
		        2 * NAMES);
		if (pass == 0)
			cr_assert_eq(seen, 2 * NAMES,
			             "one upstream query per name, not per worker");
		else
			cr_assert_eq(seen, 2 * NAMES, "pass %d reached the upstream %u times",
			             pass + 1, seen - 2 * NAMES);
	}
	struct worker_line w[WORKERS];
	stop_and_read_workers(w);
	unsigned long long misses = 0;
	for (unsigned i = 0; i < WORKERS; i++) {
		cr_assert_gt(w[i].hits, 0, "worker %u answered nothing from the shared cache", i);
		cr_assert_eq(w[i].servfail, 0);
		misses += w[i].misses;
	}
	/* Every miss was a first sighting; the startup probes add a few. */
	cr_assert_geq(misses, 2 * NAMES);
	cr_assert_leq(misses, 2 * NAMES + 64);
}

Test(shared_cache, upstream_down_every_worker_serves_negative_fresh_and_stale)
{
	uint8_t a[4096];
	char name[64];
	int n;

	up(1);
	for (int i = 0; i < NAMES; i++) {
		snprintf(name, sizeof(name), "h%d.n.shared.test", i);
		expect(name, 0, a, &n);
		snprintf(name, sizeof(name), "x%d.shared.test", i);
		expect(name, 3, a, &n);
		snprintf(name, sizeof(name), "t%d.s.shared.test", i);
		expect(name, 0, a, &n);
		cr_assert_leq(first_ttl(a, (size_t)n), 1);
	}
	sleep_ms(2100); /* the *.s answers (TTL 1) expire */
	knotd_pause(&knot);
	relay_pause();
	for (int i = 0; i < NAMES; i++) {
		snprintf(name, sizeof(name), "h%d.n.shared.test", i);
		expect(name, 0, a, &n);
		uint32_t ttl = first_ttl(a, (size_t)n);
		cr_assert(ttl > 3000 && ttl <= 3600, "%s: TTL %u, unexpired from the cache", name,
		          ttl);
		snprintf(name, sizeof(name), "x%d.shared.test", i);
		expect(name, 3, a, &n);
		snprintf(name, sizeof(name), "t%d.s.shared.test", i);
		expect(name, 0, a, &n);
		cr_assert_eq(ANCOUNT(a), 1);
		cr_assert_eq(first_ttl(a, (size_t)n), 30, "%s: served stale (RFC 8767 §4)", name);
	}
	struct worker_line w[WORKERS];
	stop_and_read_workers(w);
	for (unsigned i = 0; i < WORKERS; i++) {
		/* Hits only come from the second round: the first asked each name once. */
		cr_assert_gt(w[i].hits, 0,
		             "worker %u served no cached answer with the upstream down", i);
		cr_assert_gt(w[i].stale, 0, "worker %u served nothing stale", i);
		cr_assert_eq(w[i].servfail, 0, "worker %u answered SERVFAIL", i);
	}
}

struct burst {
	int fd[64];
	unsigned n;
};

/* Sends one question from n new sockets at once; the answers are read later. */
static void burst_send(struct burst *b, const char *name, unsigned n)
{
	uint8_t q[512];
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	inet_pton(AF_INET, node, &to.sin_addr);
	int qlen = dns_make_query(q, sizeof(q), 0x7777, name, 1, true);
	cr_assert_gt(qlen, 0);
	b->n = n;
	for (unsigned i = 0; i < n; i++) {
		b->fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		cr_assert_geq(b->fd[i], 0);
		cr_assert_eq(connect(b->fd[i], (struct sockaddr *)&to, sizeof(to)), 0);
		cr_assert_eq(send(b->fd[i], q, (size_t)qlen, 0), qlen);
	}
}

/* Every socket's answer within timeout_ms: counts by RCODE (0 and 2). */
static void burst_read(struct burst *b, int timeout_ms, unsigned *noerror, unsigned *servfail)
{
	uint8_t a[4096];
	*noerror = *servfail = 0;
	for (unsigned i = 0; i < b->n; i++) {
		struct pollfd p = {.fd = b->fd[i], .events = POLLIN};
		if (poll(&p, 1, timeout_ms) == 1) {
			ssize_t n = recv(b->fd[i], a, sizeof(a), 0);
			if (n >= 12 && RCODE(a) == 0 && ANCOUNT(a) == 1)
				(*noerror)++;
			else if (n >= 12 && RCODE(a) == 2)
				(*servfail)++;
		}
		close(b->fd[i]);
	}
}

Test(shared_cache, one_upstream_query_for_a_question_missed_on_every_worker)
{
	struct burst b;
	unsigned ok, fail;
	char name[64];

	up(2);
	for (int k = 0; k < 4; k++) {
		/* The relay holds it 400 ms: 32 clients on all workers miss meanwhile. */
		snprintf(name, sizeof(name), "slow%d.slow.shared.test", k);
		burst_send(&b, name, 32);
		burst_read(&b, 3000, &ok, &fail);
		cr_assert_eq(ok, 32, "%s: %u of 32 answered", name, ok);
		cr_assert_eq(relay_count(name), 1, "%s: %u upstream queries", name,
		             relay_count(name));
	}
	/* Never answered upstream: every waiter gets the owner's SERVFAIL, and the one
	 * query's tries are all the upstream saw (one query per worker would be >= 4). */
	snprintf(name, sizeof(name), "drop0.drop.shared.test");
	burst_send(&b, name, 32);
	burst_read(&b, 5000, &ok, &fail);
	cr_assert_eq(fail, 32, "%u SERVFAIL, %u answers of 32", fail, ok);
	fprintf(stderr, "%s: %u upstream tries for 32 clients\n", name, relay_count(name));
	cr_assert_geq(relay_count(name), 1);
	cr_assert_leq(relay_count(name), 3);
	struct worker_line w[WORKERS];
	stop_and_read_workers(w);
	unsigned busy = 0;
	for (unsigned i = 0; i < WORKERS; i++)
		busy += w[i].misses > 0;
	cr_assert_geq(busy, 2, "the bursts reached several workers");
}

/* The upstream's state as `anycachectl show upstreams` gives it ("dead", ...). */
static void upstream_state(char *out, size_t cap)
{
	json_t *j = ctl_json(ctl_sock, "show upstreams", NULL);
	json_t *u = json_array_get(json_object_get(j, "upstreams"), 0);
	const char *st = json_string_value(json_object_get(u, "state"));
	snprintf(out, cap, "%s", st ? st : "?");
	json_decref(j);
}

Test(shared_cache, an_upstream_found_dead_by_one_worker_is_dead_for_every_worker)
{
	enum { EXPIRED = 40 };
	uint8_t a[4096];
	char name[64], state[32] = "";
	int n;

	up(3);
	/* Answers with TTL 1 from every worker, and an RTT sample: the RTO drops
	 * to its floor, so timeouts below come in 100-200 ms. */
	for (int i = 0; i < EXPIRED; i++) {
		snprintf(name, sizeof(name), "e%d.s.shared.test", i);
		expect(name, 0, a, &n);
	}
	sleep_ms(2100); /* they expire */

	/* The upstream goes silent. Three new questions from ONE socket (one
	 * source port: SO_REUSEPORT gives them all to one worker) time out;
	 * that worker probes, the probe times out too: the upstream is dead. */
	atomic_store(&relay.blackhole, true);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	inet_pton(AF_INET, node, &to.sin_addr);
	for (int i = 0; i < 3; i++) {
		uint8_t q[512];
		snprintf(name, sizeof(name), "dead%d.n.shared.test", i);
		int qlen = dns_make_query(q, sizeof(q), (uint16_t)(0x100 + i), name, 1, true);
		cr_assert_eq(sendto(fd, q, (size_t)qlen, 0, (struct sockaddr *)&to, sizeof(to)),
		             qlen);
	}
	for (int i = 0; i < 100; i++) { /* at most 10 s */
		upstream_state(state, sizeof(state));
		if (strcmp(state, "dead") == 0)
			break;
		sleep_ms(100);
	}
	close(fd);
	cr_assert_str_eq(state, "dead", "the upstream never died in the node's view");

	/* Every expired name from a new socket (spread over the four workers):
	 * each must come back stale at once. A worker that still thought the
	 * upstream alive would first send it the question and wait at least its
	 * RTO for nothing. */
	unsigned slow = 0, max_ms = 0;
	unsigned before = relay_count(NULL);
	for (int i = 0; i < EXPIRED; i++) {
		snprintf(name, sizeof(name), "e%d.s.shared.test", i);
		uint64_t t0 = now_ms();
		expect(name, 0, a, &n);
		unsigned ms = (unsigned)(now_ms() - t0);
		cr_assert_eq(first_ttl(a, (size_t)n), 30, "%s: not served stale", name);
		slow += ms >= 80;
		if (ms > max_ms)
			max_ms = ms;
	}
	unsigned asked = relay_count(NULL) - before;
	cr_log_info("%d expired names: slowest answer %u ms; %u questions reached the upstream "
	            "(probes)",
	            EXPIRED, max_ms, asked);
	cr_assert_eq(slow, 0, "%u of %d stale answers waited on the dead upstream (slowest %u ms)",
	             slow, EXPIRED, max_ms);
	/* Only the node's probes may reach it meanwhile (at most one per second,
	 * doubling), never a client's question. */
	cr_assert_leq(asked, 3, "%u questions went to the dead upstream", asked);
}
