/*
 * Unit tests for bgp/bgp_speaker.c's listener: a speaker on a real loop with
 * one passive neighbor (NET.2), its listener on NET.1:179, clients connecting
 * from NET.x; each test has its own NET in 127.53.85-86.0/24 (this file's
 * loopback range: Criterion runs tests in parallel). Each run of the loop is bounded by a timer
 * that stops it.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bgp/bgp_speaker.h"
#include "core/log_limit.h"
#include "core/conf.h"
#include "core/loop.h"
#include "core/timer.h"

static void stop_loop(struct timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	loop_stop(arg);
}

static void run_for(struct loop *l, unsigned ms)
{
	struct timer t;
	timer_init(&t, stop_loop, l);
	loop_timer_arm_in(l, &t, ms);
	cr_assert_eq(loop_run(l), 0);
	loop_timer_cancel(l, &t);
}

struct rig {
	const char *net; /* "127.53.8x." */
	struct loop *l;
	struct bgp_speaker *sp;
};

static void rig_up(struct rig *r, const char *net)
{
	static struct conf_bgp c; /* large */
	char why[256], a[32];
	int fd;

	memset(&c, 0, sizeof(c));
	c.enabled = true;
	c.asn = 65000;
	r->net = net;
	snprintf(a, sizeof(a), "%s1", net);
	cr_assert_eq(netaddr_parse_ip(a, &c.router_id), 0);
	cr_assert_eq(netaddr_parse_ip(a, &c.neighbors[0].local_address), 0);
	c.n_neighbors = 1;
	snprintf(a, sizeof(a), "%s2", net);
	cr_assert_eq(netaddr_parse_ip(a, &c.neighbors[0].address), 0);
	c.neighbors[0].address.port = 179;
	c.neighbors[0].asn = 65001;
	c.neighbors[0].passive = true;
	c.neighbors[0].hold_time_s = 90;
	cr_assert_eq(loop_global_init(), 0);
	cr_assert_eq(loop_new(NULL, &r->l), 0);
	cr_assert_eq(bgp_speaker_new(r->l, &c, NULL, why, sizeof(why), &r->sp), 0, "%s", why);
	run_for(r->l, 20);
	/* The listener is there (a bind failure is only logged by the speaker). */
	snprintf(a, sizeof(a), "%s1", net);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, a, &sa.sin_addr);
	sa.sin_port = htons(179);
	cr_assert_neq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "nobody listens on %s", a);
	close(fd);
}

static void rig_down(struct rig *r)
{
	loop_free(r->l);
	bgp_speaker_free(r->sp);
}

/* A client socket bound to NET.host, not connected yet. */
static int client_socket(const struct rig *r, unsigned host)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	char src[32];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(src, sizeof(src), "%s%u", r->net, host);
	inet_pton(AF_INET, src, &a.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
	return fd;
}

/* Connects fd to the listener (not waited for). */
static void client_connect(const struct rig *r, int fd)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	char dst[32];

	snprintf(dst, sizeof(dst), "%s1", r->net);
	inet_pton(AF_INET, dst, &a.sin_addr);
	a.sin_port = htons(179);
	int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	cr_assert(rc == 0 || errno == EINPROGRESS, "%s", strerror(errno));
}

static int client(const struct rig *r, unsigned host)
{
	int fd = client_socket(r, host);
	client_connect(r, fd);
	return fd;
}

static int stderr_capture(FILE **f)
{
	*f = tmpfile();
	cr_assert(*f);
	int saved = dup(STDERR_FILENO);
	cr_assert_geq(dup2(fileno(*f), STDERR_FILENO), 0);
	return saved;
}

static void stderr_release(int saved, FILE *f, char *out, size_t cap)
{
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static double cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/*
 * Issue 10, fault 7: anyone who can reach port 179 may connect. Each refused
 * connection used to log one line: a loop of connects filled the log. Now
 * log.c's limit per call site lets LOG_LIMIT_BURST out per window and counts
 * the rest into one "suppressed N" summary.
 */
Test(bgp_speaker, refused_connections_are_logged_rate_limited)
{
	struct rig r;
	static char log[1 << 16];
	int fds[40];
	FILE *f;

	rig_up(&r, "127.53.85.");
	int saved = stderr_capture(&f);
	for (int i = 0; i < 40; i++) {
		fds[i] = client(&r, 10 + (unsigned)i);
		run_for(r.l, 2);
	}
	run_for(r.l, 50);
	stderr_release(saved, f, log, sizeof(log));
	for (int i = 0; i < 40; i++)
		close(fds[i]);
	unsigned n = count(log, "refused");
	cr_expect_geq(n, 1u, "the first refusal is logged: %s", log);
	cr_expect_leq(n, (unsigned)LOG_LIMIT_BURST, "%u records for 40 refusals:\n%s", n, log);
	rig_down(&r);
}

static int highest_fd(void)
{
	int hi = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	cr_assert(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > hi)
			hi = atoi(e->d_name);
	closedir(d);
	return hi;
}

/*
 * Issue 10, fault 7: an accept that failed (EMFILE: no descriptor left) was
 * re-armed at once; the connection stays queued, so the accept failed again
 * at once: a busy loop on the control thread. Now it backs off.
 */
Test(bgp_speaker, failing_accept_backs_off)
{
	struct rig r;
	struct rlimit old, lim;
	static char log[1 << 16];
	FILE *f;

	/* io_uring takes the limit when the accept is armed (io_accept_prep): lower it first. */
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)highest_fd() + 64;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	rig_up(&r, "127.53.86.");
	int saved = stderr_capture(&f);
	int c = client_socket(&r, 2); /* the neighbor: its connection would be taken */
	/* Then use up every descriptor below it. */
	int fill[128], nfill = 0;
	while (nfill < 128 && (fill[nfill] = dup(c)) >= 0)
		nfill++;
	cr_assert_eq(errno, EMFILE);
	client_connect(&r, c);
	struct loop_stats st0, st1;
	loop_get_stats(r.l, &st0);
	double t0 = cpu_ms();
	run_for(r.l, 500);
	double used = cpu_ms() - t0;
	loop_get_stats(r.l, &st1);
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	stderr_release(saved, f, log, sizeof(log));
	/* Backing off from 10 ms to 1 s: a handful of tries in 500 ms, not thousands. */
	uint64_t done = st1.completions - st0.completions;
	cr_expect_leq(done, 20, "%llu completions in 500 ms", (unsigned long long)done);
	cr_expect_lt(used, 50.0, "%.0f ms of CPU in 500 ms with accept failing", used);
	/* One line per try (the back-off bounds them), within log.c's burst per call site. */
	unsigned lines = count(log, "accept on");
	cr_expect(lines >= 1 && lines <= LOG_LIMIT_BURST, "%u lines: %s", lines, log);
	close(c);
	rig_down(&r);
}

/*
 * Reload (bgp_speaker_set_neighbors), on 127.53.89.10x: the speaker on .101,
 * passive neighbors .102 (A), .103 (B), .104 (C). A client from a neighbor's
 * address gets our OPEN; the messages it read are scanned for a NOTIFICATION.
 */
static void nb_set(struct conf_bgp *c, unsigned n, const unsigned *hosts, const uint32_t *hold)
{
	char a[32];

	memset(c, 0, sizeof(*c));
	c->enabled = true;
	c->asn = 65000;
	cr_assert_eq(netaddr_parse_ip("127.53.89.101", &c->router_id), 0);
	c->n_neighbors = n;
	for (unsigned i = 0; i < n; i++) {
		struct conf_neighbor *nb = &c->neighbors[i];
		snprintf(a, sizeof(a), "127.53.89.%u", hosts[i]);
		cr_assert_eq(netaddr_parse_ip(a, &nb->address), 0);
		nb->address.port = 179;
		cr_assert_eq(netaddr_parse_ip("127.53.89.101", &nb->local_address), 0);
		nb->asn = 65001;
		nb->passive = true;
		nb->hold_time_s = hold ? hold[i] : 90;
	}
}

/* Every message the client has received so far: the NOTIFICATION's code/subcode
 * (0/0: none), whether an OPEN came, whether the peer closed. */
struct seen {
	bool open, eof;
	uint8_t code, subcode;
	uint8_t buf[8192];
	size_t len;
};

static void client_read(int fd, struct seen *s)
{
	ssize_t n;
	while (s->len < sizeof(s->buf)) {
		n = recv(fd, s->buf + s->len, sizeof(s->buf) - s->len, MSG_DONTWAIT);
		if (n > 0) {
			s->len += (size_t)n;
			continue;
		}
		/* 0: the peer closed; ECONNRESET: closed with data unread. */
		s->eof |= n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
		break;
	}
	for (size_t off = 0; off + 19 <= s->len;) {
		size_t ml = (size_t)s->buf[off + 16] << 8 | s->buf[off + 17];
		if (ml < 19 || off + ml > s->len)
			break;
		if (s->buf[off + 18] == 1)
			s->open = true;
		if (s->buf[off + 18] == 3 && ml >= 21) {
			s->code = s->buf[off + 19];
			s->subcode = s->buf[off + 20];
		}
		off += ml;
	}
}

static int nb_client(unsigned host)
{
	struct rig r = {.net = "127.53.89."};
	int fd = client_socket(&r, host);
	struct sockaddr_in a = {.sin_family = AF_INET};
	inet_pton(AF_INET, "127.53.89.101", &a.sin_addr);
	a.sin_port = htons(179);
	int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	cr_assert(rc == 0 || errno == EINPROGRESS, "%s", strerror(errno));
	return fd;
}

Test(bgp_speaker, reload_neighbors_cease_and_new_sessions)
{
	static struct conf_bgp c;
	static struct seen sa, sb, sc, sb2, sa2;
	struct loop *l;
	struct bgp_speaker *sp;
	char why[256];
	const unsigned ac[] = {102, 104}, cb[] = {104, 103};
	const uint32_t hold1[] = {90, 90}, hold2[] = {90, 30};

	cr_assert_eq(loop_global_init(), 0);
	cr_assert_eq(loop_new(NULL, &l), 0);
	nb_set(&c, 2, ac, NULL);
	cr_assert_eq(bgp_speaker_new(l, &c, NULL, why, sizeof(why), &sp), 0, "%s", why);
	run_for(l, 20);
	int fa = nb_client(102), fc = nb_client(104);
	run_for(l, 100);
	client_read(fa, &sa);
	client_read(fc, &sc);
	cr_assert(sa.open && sc.open, "our OPEN to A %d, to C %d", sa.open, sc.open);
	const struct bgp_session *c_sess = bgp_speaker_session(sp, 1);

	/* A removed, C kept (moved to index 0), B added. */
	nb_set(&c, 2, cb, hold1);
	cr_assert_eq(bgp_speaker_set_neighbors(sp, &c), 0);
	cr_assert_eq(bgp_speaker_neighbors(sp), 2);
	cr_expect_eq(bgp_speaker_session(sp, 0), c_sess, "C's session was replaced");
	int fb = nb_client(103);
	run_for(l, 200);
	client_read(fa, &sa);
	client_read(fb, &sb);
	memset(&sc, 0, sizeof(sc));
	client_read(fc, &sc);
	cr_expect_eq(sa.code, 6, "A: no Cease (code %u)", sa.code);
	cr_expect_eq(sa.subcode, 3, "A: Cease subcode %u, not 3 Peer De-configured", sa.subcode);
	cr_expect(sa.eof, "A's connection stays open");
	cr_expect(sb.open, "B got no OPEN: the added neighbor is not accepted");
	cr_expect_eq(sc.code, 0, "C (unchanged) got a NOTIFICATION");
	cr_expect(!sc.eof, "C (unchanged) was closed");
	/* A is no neighbor any more: refused. */
	int fa2 = nb_client(102);
	run_for(l, 100);
	client_read(fa2, &sa2);
	cr_expect(!sa2.open && sa2.eof, "A's new connection was not refused");

	/* B's hold time changed: Cease 6/6, and B is accepted again on a new session. */
	nb_set(&c, 2, cb, hold2);
	cr_assert_eq(bgp_speaker_set_neighbors(sp, &c), 0);
	cr_expect_eq(bgp_speaker_session(sp, 0), c_sess);
	run_for(l, 200);
	client_read(fb, &sb);
	cr_expect_eq(sb.code, 6);
	cr_expect_eq(sb.subcode, 6, "B: Cease subcode %u, not 6 Other Configuration Change",
	             sb.subcode);
	int fb2 = nb_client(103);
	run_for(l, 100);
	client_read(fb2, &sb2);
	cr_expect(sb2.open, "the changed neighbor's new session does not accept");

	/* Nothing changed: nothing happens. */
	cr_assert_eq(bgp_speaker_set_neighbors(sp, &c), 0);
	cr_expect_eq(bgp_speaker_session(sp, 0), c_sess);
	run_for(l, 50);
	memset(&sc, 0, sizeof(sc));
	client_read(fc, &sc);
	cr_expect(!sc.eof && sc.code == 0, "C was touched");

	close(fa);
	close(fa2);
	close(fb);
	close(fb2);
	close(fc);
	loop_free(l);
	bgp_speaker_free(sp);
}

/*
 * Reload and the listeners, on 127.53.89.12x: neighbor D (.122, passive,
 * TCP MD5 "s3cret") listened for on .121. A key on the listener makes the
 * kernel drop D's SYNs that carry no MD5 option (RFC 2385), so a plain
 * connect from .122 only completes once the key is gone.
 */
static void md5_set_one(struct conf_bgp *c, unsigned host, const char *local, const char *pw)
{
	nb_set(c, 1, &host, NULL);
	cr_assert_eq(netaddr_parse_ip("127.53.89.121", &c->router_id), 0);
	cr_assert_eq(netaddr_parse_ip(local, &c->neighbors[0].local_address), 0);
	snprintf(c->neighbors[0].password, sizeof(c->neighbors[0].password), "%s", pw);
}

/* A plain TCP connect from 127.53.89.src to dst:179: 1 connected, 0 still
 * waiting (its SYN dropped), -errno refused or failed. */
static int plain_connect(struct loop *l, unsigned src, const char *dst, int *fdp)
{
	struct rig r = {.net = "127.53.89."};
	int fd = client_socket(&r, src);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(179)};
	inet_pton(AF_INET, dst, &a.sin_addr);
	int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	cr_assert(rc == 0 || errno == EINPROGRESS, "%s", strerror(errno));
	run_for(l, 300);
	int err = 0;
	socklen_t el = sizeof(err);
	cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el), 0);
	struct sockaddr_in p;
	socklen_t pl = sizeof(p);
	*fdp = fd;
	if (err)
		return -err;
	return getpeername(fd, (struct sockaddr *)&p, &pl) == 0 ? 1 : 0;
}

Test(bgp_speaker, reload_takes_md5_keys_off_and_closes_unused_listeners)
{
	static struct conf_bgp c;
	struct loop *l;
	struct bgp_speaker *sp;
	char why[256];
	int f1, f2, f3, f4;

	cr_assert_eq(loop_global_init(), 0);
	cr_assert_eq(loop_new(NULL, &l), 0);
	md5_set_one(&c, 122, "127.53.89.121", "s3cret");
	cr_assert_eq(bgp_speaker_new(l, &c, NULL, why, sizeof(why), &sp), 0, "%s", why);
	run_for(l, 20);
	cr_assert_eq(plain_connect(l, 122, "127.53.89.121", &f1), 0,
	             "D connected without MD5 while the listener holds its key");

	/* D's password removed: its key leaves the listener, plain TCP gets in. */
	md5_set_one(&c, 122, "127.53.89.121", "");
	cr_assert_eq(bgp_speaker_set_neighbors(sp, &c), 0);
	cr_assert_eq(plain_connect(l, 122, "127.53.89.121", &f2), 1,
	             "the key stayed on the listener after the password was removed");

	/* D now listened for on .123: nobody uses .121 any more, its listener
	 * closes (refused); .123 answers. */
	md5_set_one(&c, 122, "127.53.89.123", "");
	cr_assert_eq(bgp_speaker_set_neighbors(sp, &c), 0);
	run_for(l, 50); /* the close completes (else a connect lands in its backlog: reset) */
	int r3 = plain_connect(l, 122, "127.53.89.121", &f3);
	cr_assert_eq(r3, -ECONNREFUSED, "the unused listener on .121 is still open (%d)", r3);
	cr_assert_eq(plain_connect(l, 122, "127.53.89.123", &f4), 1, "no listener on .123");

	close(f1);
	close(f2);
	close(f3);
	close(f4);
	loop_free(l);
	bgp_speaker_free(sp);
}
