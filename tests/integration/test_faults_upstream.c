/*
 * Fault injection, the DNS upstream side (issue 10, "Proven robust"): the
 * test itself is anycached's only upstream, a scripted fake on
 * 127.53.85.2:5300 (UDP and TCP, one thread) that answers correctly, with
 * garbage, with the wrong ID, with the wrong question, slowly, never, or with
 * TC=1 over UDP and then a TCP answer cut in the middle. anycached
 * (127.53.85.1:5300, two workers) must give every client a correct answer or
 * a clean failure (SERVFAIL) in bounded time, never crash, and not leak: its
 * open descriptors (/proc/PID/fd) and RSS stay flat over repeated rounds of
 * every fault after a warm-up round.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define NODE     "127.53.85.1"
#define UPSTREAM "127.53.85.2"
#define PORT     5300

enum mode { M_GOOD, M_GARBAGE, M_WRONG_ID, M_WRONG_Q, M_SLOW, M_NEVER, M_TC_CUT, M_COUNT };
static const char *const mode_name[] = {"good", "garbage", "wrong-id",       "wrong-question",
                                        "slow", "never",   "tc-then-tcp-cut"};

static _Atomic int mode = M_GOOD;
static _Atomic bool stop_fake;
static int ufd = -1, tfd = -1;
static pthread_t fake_thread;
static struct anycached d;
static bool d_up;

/* The question's end (12 + name + 4) in q[0..n), or 0. */
static size_t question_end(const uint8_t *q, size_t n)
{
	size_t off = 12;
	while (off < n && q[off] && q[off] < 64)
		off += 1u + q[off];
	return off < n && q[off] == 0 && off + 5 <= n ? off + 5 : 0;
}

/* A correct answer to q: its question, one A 192.0.2.7 TTL 60, no OPT. */
static size_t good_answer(const uint8_t *q, size_t qn, uint8_t *a)
{
	size_t qe = question_end(q, qn);
	if (!qe)
		return 0;
	memcpy(a, q, qe);
	a[2] = 0x81 | (q[2] & 0x10); /* QR, RD (+CD as asked) */
	a[3] = 0x80;                 /* RA, NOERROR */
	a[4] = 0, a[5] = 1, a[6] = 0, a[7] = 1;
	memset(a + 8, 0, 4); /* no authority, no additional (no OPT) */
	static const uint8_t rr[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7};
	memcpy(a + qe, rr, sizeof(rr));
	return qe + sizeof(rr);
}

/* What the fake sends for q over UDP in mode m (0: nothing). */
static size_t udp_reply(int m, const uint8_t *q, size_t qn, uint8_t *a)
{
	size_t n;
	static unsigned salt;

	switch (m) {
	case M_GARBAGE:
		/* Alternately: random bytes, and a header that promises more than follows. */
		if (salt++ & 1) {
			for (n = 0; n < 64; n++)
				a[n] = (uint8_t)rand();
			memcpy(a, q, 2); /* its ID, so only the parser can refuse it */
			return 64;
		}
		memcpy(a, q, 12);
		a[2] |= 0x80;
		a[7] = 9; /* nine answers, none there */
		return 12;
	case M_WRONG_ID:
		n = good_answer(q, qn, a);
		a[0] ^= 0x5a;
		return n;
	case M_WRONG_Q:
		n = good_answer(q, qn, a);
		if (n > 13)
			a[13] = a[13] == 'z' ? 'y' : 'z'; /* the name's first letter */
		return n;
	case M_SLOW: /* fake_main holds it back 300 ms */
		return good_answer(q, qn, a);
	case M_NEVER:
		return 0;
	case M_TC_CUT: {
		size_t qe = question_end(q, qn);
		if (!qe)
			return 0;
		memcpy(a, q, qe);
		a[2] = 0x83 | (q[2] & 0x10); /* QR, TC, RD */
		a[3] = 0x80;
		memset(a + 6, 0, 6);
		return qe;
	}
	default:
		return good_answer(q, qn, a);
	}
}

/* TCP: one query read, then (tc-then-tcp-cut) a length prefix and half the answer, close. */
static void tcp_serve(int c)
{
	uint8_t q[600], a[700];
	size_t got = 0;
	struct pollfd pf = {.fd = c, .events = POLLIN};

	while (got < 2 || got < 2u + (size_t)(q[0] << 8 | q[1])) {
		if (poll(&pf, 1, 1000) <= 0)
			break;
		ssize_t k = read(c, q + got, sizeof(q) - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (got >= 2 + 12) {
		size_t n = good_answer(q + 2, got - 2, a + 2);
		a[0] = (uint8_t)(n >> 8), a[1] = (uint8_t)n;
		if (atomic_load(&mode) == M_TC_CUT)
			n = n / 2; /* the prefix promises the whole answer */
		ssize_t w = write(c, a, 2 + n);
		(void)w;
	}
	close(c);
}

/* Slow answers wait here, each for its own 300 ms (an upstream is slow per query). */
#define SLOW_MS  300
#define SLOW_MAX 64
static struct slow {
	uint64_t due;
	struct sockaddr_storage to;
	socklen_t tolen;
	size_t len;
	uint8_t a[512];
} slow_q[SLOW_MAX];
static unsigned n_slow;

static void slow_flush(void)
{
	uint64_t now = now_ms();
	for (unsigned i = 0; i < n_slow;) {
		if (slow_q[i].due > now) {
			i++;
			continue;
		}
		sendto(ufd, slow_q[i].a, slow_q[i].len, 0, (struct sockaddr *)&slow_q[i].to,
		       slow_q[i].tolen);
		slow_q[i] = slow_q[--n_slow];
	}
}

static void *fake_main(void *arg)
{
	uint8_t q[1500], a[1500];
	(void)arg;

	while (!atomic_load(&stop_fake)) {
		struct pollfd pf[2] = {{.fd = ufd, .events = POLLIN},
		                       {.fd = tfd, .events = POLLIN}};
		slow_flush();
		if (poll(pf, 2, 10) <= 0)
			continue;
		if (pf[1].revents & POLLIN) {
			int c = accept(tfd, NULL, NULL);
			if (c >= 0)
				tcp_serve(c);
		}
		if (pf[0].revents & POLLIN) {
			struct sockaddr_storage from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(ufd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
			if (n < 12)
				continue;
			int m = atomic_load(&mode);
			size_t r = udp_reply(m, q, (size_t)n, a);
			if (r && m == M_SLOW && n_slow < SLOW_MAX && r <= sizeof(slow_q[0].a)) {
				struct slow *sq = &slow_q[n_slow++];
				sq->due = now_ms() + SLOW_MS;
				memcpy(&sq->to, &from, fl);
				sq->tolen = fl;
				memcpy(sq->a, a, r);
				sq->len = r;
			} else if (r) {
				sendto(ufd, a, r, 0, (struct sockaddr *)&from, fl);
			}
		}
	}
	return NULL;
}

static void fake_start(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	int one = 1;

	inet_pton(AF_INET, UPSTREAM, &a.sin_addr);
	ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	tfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(ufd >= 0 && tfd >= 0);
	setsockopt(tfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert_eq(bind(ufd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
	cr_assert_eq(bind(tfd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
	cr_assert_eq(listen(tfd, 64), 0);
	atomic_store(&stop_fake, false);
	cr_assert_eq(pthread_create(&fake_thread, NULL, fake_main, NULL), 0);
}

static void fini(void)
{
	if (d_up)
		anycached_stop(&d);
	d_up = false;
	if (ufd >= 0) {
		atomic_store(&stop_fake, true);
		pthread_join(fake_thread, NULL);
		close(ufd);
		close(tfd);
		ufd = tfd = -1;
	}
}

static void init(void)
{
	static const char yaml[] = "dns:\n"
	                           "  listen: [\"" NODE ":5300\"]\n"
	                           "  allow: [127.0.0.0/8]\n"
	                           "  upstreams: [\"" UPSTREAM ":5300\"]\n"
	                           "  threads: 2\n";
	fake_start();
	cr_assert_eq(anycached_start(&d, yaml, NODE, PORT), 0, "anycached did not start");
	d_up = true;
}

/* ---------------------------------------------------------------- the client */

struct tally {
	unsigned noerror_ok, servfail, other, missing;
};

static unsigned seq;

/*
 * n queries for distinct names (no cache hit, no coalescing) sent at once over
 * UDP; every answer collected for up to 5 s (anycached's budget is 2.5 s).
 */
static struct tally burst(unsigned n)
{
	struct tally t = {0};
	uint8_t q[512], a[1500];
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	bool seen[256] = {0};

	cr_assert(fd >= 0 && n <= 256);
	inet_pton(AF_INET, NODE, &to.sin_addr);
	unsigned base = seq;
	for (unsigned i = 0; i < n; i++) {
		char name[64];
		snprintf(name, sizeof(name), "f%u.faults.test", seq++);
		int ql = dns_make_query(q, sizeof(q), (uint16_t)i, name, 1, (i & 1) != 0);
		cr_assert_gt(ql, 0);
		cr_assert_eq(sendto(fd, q, (size_t)ql, 0, (struct sockaddr *)&to, sizeof(to)), ql);
	}
	(void)base;
	unsigned got = 0;
	uint64_t end = now_ms() + 5000;
	while (got < n && now_ms() < end) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t k = recv(fd, a, sizeof(a), 0);
		if (k < 12)
			continue;
		unsigned id = (unsigned)(a[0] << 8 | a[1]);
		if (id >= n || seen[id])
			continue;
		seen[id] = true;
		got++;
		unsigned rc = a[3] & 15, an = (unsigned)(a[6] << 8 | a[7]);
		/* A correct answer carries the fake's A record: 192.0.2.7. */
		bool has_addr = memmem(a, (size_t)k, "\x00\x04\xc0\x00\x02\x07", 6) != NULL;
		if (rc == 0 && an == 1 && has_addr)
			t.noerror_ok++;
		else if (rc == 2)
			t.servfail++;
		else
			t.other++;
	}
	t.missing = n - got;
	close(fd);
	return t;
}

/* Until a good answer comes back (the upstream may be marked dead for a while). */
static void wait_good(void)
{
	uint64_t end = now_ms() + 15000;
	atomic_store(&mode, M_GOOD);
	while (now_ms() < end) {
		struct tally t = burst(1);
		if (t.noerror_ok == 1)
			return;
		sleep_ms(200);
	}
	cr_assert_fail("no good answer within 15 s after the faults");
}

/* The harness's measures, asserting that anycached is still there. */
static unsigned fd_count(pid_t pid)
{
	int n = proc_fd_count(pid);
	cr_assert_geq(n, 0, "anycached is gone");
	return (unsigned)n;
}

static long rss_kb(pid_t pid)
{
	long kb = proc_rss_kb(pid);
	cr_assert_geq(kb, 0, "anycached is gone");
	return kb;
}

/* One round: every mode in turn, 24 queries each; checks each mode's outcome. */
static void round_of_faults(unsigned r)
{
	for (int m = 0; m < M_COUNT; m++) {
		if (m == M_GOOD || m == M_SLOW)
			wait_good(); /* a correct answer is expected: the upstream must be back */
		atomic_store(&mode, m);
		struct tally t = burst(24);
		cr_log_info("round %u %-16s ok %2u servfail %2u other %2u missing %2u", r,
		            mode_name[m], t.noerror_ok, t.servfail, t.other, t.missing);
		cr_assert(proc_alive(&d.proc), "anycached died in mode %s", mode_name[m]);
		/* Every client hears back: a correct answer or SERVFAIL, nothing else. */
		cr_expect_eq(t.missing, 0, "%s: %u queries unanswered", mode_name[m], t.missing);
		cr_expect_eq(t.other, 0, "%s: %u wrong answers", mode_name[m], t.other);
		if (m == M_GOOD || m == M_SLOW)
			cr_expect_eq(t.noerror_ok, 24, "%s: %u correct answers of 24", mode_name[m],
			             t.noerror_ok);
		else
			cr_expect_eq(t.noerror_ok, 0, "%s: answers accepted from a broken upstream",
			             mode_name[m]);
	}
}

Test(faults_upstream, every_fault_a_clean_failure_and_no_leak, .init = init, .fini = fini,
     .timeout = 170)
{
	pid_t pid = d.proc.pid;

	/* Warm-up: pools, caches and buffers reach their size. Two rounds: each
	 * worker opens its 16 upstream sockets as random picks first land on
	 * them, and after one round (~100 picks a worker) one of the 32 was
	 * still unopened about one run in twenty, which read as "descriptors
	 * grew" (46 -> 51 once); after two, about one in ten thousand. */
	round_of_faults(0);
	round_of_faults(1);
	wait_good();
	unsigned fd0 = fd_count(pid);
	long rss0 = rss_kb(pid);
	for (unsigned r = 2; r <= 4; r++)
		round_of_faults(r);
	wait_good();
	unsigned fd1 = fd_count(pid);
	long rss1 = rss_kb(pid);
	cr_log_info("fds %u -> %u, RSS %ld -> %ld kB", fd0, fd1, rss0, rss1);
	cr_expect_leq(fd1, fd0 + 2, "descriptors grew: %u -> %u", fd0, fd1);
	/* 5 %, or 1 MiB for a small process (allocator arenas settle in steps). */
#if defined(__SANITIZE_ADDRESS__)
	/* ASan holds freed memory in quarantine: RSS grows with churn. The leak check
	 * there is LeakSanitizer's report at exit (anycached_stop_clean). */
	(void)rss1;
#else
	long slack = rss0 / 20 > 1024 ? rss0 / 20 : 1024;
	cr_expect_leq(rss1, rss0 + slack, "RSS grew: %ld -> %ld kB", rss0, rss1);
#endif
	char why[256];
	d_up = false;
	cr_assert_eq(anycached_stop_clean(&d, 5000, why, sizeof(why)), 0, "%s", why);
}
