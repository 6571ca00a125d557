/*
 * Issue 10: the stream server (dns_stream.c) on the real daemon, 127.53.82.x.
 * Fault 1: sources outside dns.allow are closed at accept; a cap per source;
 * a client that never reads cannot keep its connection by asking every few
 * seconds. DNS-over-TLS (RFC 7858): kdig +tls gets the answer; pipelined
 * queries on one TLS connection answered out of order; TLS 1.2 and 1.3
 * sessions resume; a client stopping mid-handshake is cut at the handshake
 * timeout; a bad certificate path stops the start with a clear message.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "dns_itest.h"

#define NET      82
#define TLS_PORT 8853

static struct tmpdir certdir;
static char cert[300], key[300];

/* Strict stop: exit 0 within 2 s, drained rings, no sanitizer report (ASan builds). */
static void down_all(void)
{
	char why[600];

	if (daemon_.proc.pid > 0) {
		int r = anycached_stop_clean(&daemon_, 2000, why, sizeof(why));
		knotd_stop(&knot);
		if (certdir.path[0])
			tmpdir_remove(&certdir);
		cr_expect_eq(r, 0, "%s", why);
		return;
	}
	knotd_stop(&knot);
	if (certdir.path[0])
		tmpdir_remove(&certdir);
}

TestSuite(dns_stream, .fini = down_all, .timeout = 120);

/* A self-signed P-256 certificate from openssl req, in a temporary directory. */
static void make_cert(void)
{
	char out[4096];

	cr_assert_eq(tmpdir_make(&certdir, "dot"), 0);
	snprintf(cert, sizeof(cert), "%s/cert.pem", certdir.path);
	snprintf(key, sizeof(key), "%s/key.pem", certdir.path);
	char *argv[] = {"openssl",
	                "req",
	                "-x509",
	                "-newkey",
	                "ec",
	                "-pkeyopt",
	                "ec_paramgen_curve:P-256",
	                "-nodes",
	                "-keyout",
	                key,
	                "-out",
	                cert,
	                "-days",
	                "2",
	                "-subj",
	                "/CN=dot.example.test",
	                NULL};
	cr_assert_eq(run_capture(argv, true, out, sizeof(out), 20000), 0, "openssl req: %s", out);
}

/* up_with plus dns.tls-listen on the node address, port TLS_PORT. */
static void up_tls(int n, const char *extra)
{
	char yaml[2048];

	if (!certdir.path[0])
		make_cert();
	snprintf(yaml, sizeof(yaml),
	         "  tls-listen: [\"127.53.%d.%d:%d\"]\n"
	         "  tls-certificate: %s\n"
	         "  tls-key: %s\n%s",
	         NET, 10 * n + 1, TLS_PORT, cert, key, extra ? extra : "");
	up_with(NET, n, yaml);
}

/* A blocking TCP connection to addr:port from src (NULL: the kernel's
 * choice, 127.0.0.1), with receive/send timeouts; fd or -errno. */
static int connect_from(const char *src, const char *addr, uint16_t port, int rcvbuf)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct timeval tv = {.tv_sec = 3};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, addr, &sa.sin_addr);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (src) {
		struct sockaddr_in me = {.sin_family = AF_INET};
		inet_pton(AF_INET, src, &me.sin_addr);
		if (bind(fd, (struct sockaddr *)&me, sizeof(me)) < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* ------------------------------------------------------------ fault 1 */

Test(dns_stream, source_outside_allow_is_closed_at_accept)
{
	uint8_t q[600], a[4096];
	size_t len = 0;

	up_with(NET, 1, NULL); /* allow: 127.0.0.1/32, 127.53.82.0/25 */
	frame(q, &len, 0x0a01, "www.example.test", 1, 1);
	/* 127.53.82.200 is outside: no answer (before: REFUSED), the server closes. */
	int fd = connect_from("127.53.82.200", node, PORT, 0);
	cr_assert_geq(fd, 0, "connect: %d", fd);
	(void)dns_tcp_write(fd, q, len);
	int n = dns_tcp_read_msg(fd, a, sizeof(a), 3000);
	cr_assert_leq(n, 0, "a source outside dns.allow got an answer over TCP (rcode %d)",
	              n >= 12 ? RCODE(a) : -1);
	cr_assert_neq(n, -ETIMEDOUT, "the connection was kept open");
	close(fd);
	/* Inside: answered. */
	fd = connect_from("127.53.82.60", node, PORT, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(dns_tcp_write(fd, q, len), 0);
	n = dns_tcp_read_msg(fd, a, sizeof(a), 3000);
	cr_assert_geq(n, 12);
	cr_assert_eq(RCODE(a), 0);
	close(fd);
}

/*
 * The ACL is checked at accept; a reload that narrows dns.allow must also
 * close connections already open from sources it no longer admits (else one
 * accepted before the reload asks forever). Allowed ones stay.
 */
Test(dns_stream, narrowed_allow_closes_open_connections_on_reload)
{
	uint8_t q[600], a[4096];
	size_t len = 0;
	char text[4096];

	up_with(NET, 8, NULL); /* allow: 127.0.0.1/32, 127.53.82.0/25 */
	frame(q, &len, 0x0b01, "www.example.test", 1, 1);
	int gone = connect_from("127.53.82.100", node, PORT, 0);
	int kept = connect_from("127.53.82.60", node, PORT, 0);
	cr_assert(gone >= 0 && kept >= 0);
	for (int i = 0; i < 2; i++) {
		int fd = i ? kept : gone;
		cr_assert_eq(dns_tcp_write(fd, q, len), 0);
		cr_assert_geq(dns_tcp_read_msg(fd, a, sizeof(a), 3000), 12, "answered before");
	}
	/* The same file with 127.53.82.0/26 (…0-63) instead of the /25; SIGHUP. */
	FILE *f = fopen(daemon_.conf, "r");
	cr_assert_not_null(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	char *p = strstr(text, "127.53.82.0/25");
	cr_assert_not_null(p, "%s", text);
	memcpy(p, "127.53.82.0/26", 14);
	f = fopen(daemon_.conf, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, n, f), n);
	fclose(f);
	cr_assert_eq(kill(daemon_.proc.pid, SIGHUP), 0);
	/* Bounded: the connection from .100 is closed by the server (EOF). */
	struct pollfd pf = {.fd = gone, .events = POLLIN};
	ssize_t got = -1;
	for (int i = 0; i < 50 && got != 0; i++)
		if (poll(&pf, 1, 100) > 0)
			got = read(gone, a, sizeof(a));
	cr_assert_eq(got, 0, "the connection from a source the reload refuses stayed open");
	close(gone);
	/* .60 is still inside: its connection is kept and answered. */
	cr_assert_eq(dns_tcp_write(kept, q, len), 0);
	cr_assert_geq(dns_tcp_read_msg(kept, a, sizeof(a), 3000), 12, "allowed one closed");
	close(kept);
}

Test(dns_stream, connections_per_source_are_capped)
{
	enum { CAP = 4, OPEN = 10 };
	int fds[OPEN];
	uint8_t q[600], a[4096];
	size_t len = 0;

	/* The cap is the node's: with two workers, SO_REUSEPORT spreads the ten
	 * connections over both, and still only four are served in all. */
	itest_threads = 2;
	up_with(NET, 2, "  tcp-per-source: 4\n");
	frame(q, &len, 0x0b01, "www.example.test", 1, 1);
	for (int i = 0; i < OPEN; i++) {
		fds[i] = connect_from("127.53.82.61", node, PORT, 0);
		cr_assert_geq(fds[i], 0);
	}
	/* The server closes the ones above the cap at accept; the others answer. */
	int served = 0, closed = 0;
	for (int i = 0; i < OPEN; i++) {
		if (dns_tcp_write(fds[i], q, len) == 0 &&
		    dns_tcp_read_msg(fds[i], a, sizeof(a), 2000) >= 12)
			served++;
		else
			closed++;
	}
	cr_assert_eq(served, CAP, "%d of %d connections from one source served", served, OPEN);
	cr_assert_eq(closed, OPEN - CAP);
	/* Another source is not affected. */
	int fd = connect_from("127.53.82.62", node, PORT, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(dns_tcp_write(fd, q, len), 0);
	cr_assert_geq(dns_tcp_read_msg(fd, a, sizeof(a), 2000), 12);
	close(fd);
	/* Closing gives the slots back. */
	for (int i = 0; i < OPEN; i++)
		close(fds[i]);
	sleep_ms(300);
	fd = connect_from("127.53.82.61", node, PORT, 0);
	cr_assert_eq(dns_tcp_write(fd, q, len), 0);
	cr_assert_geq(dns_tcp_read_msg(fd, a, sizeof(a), 2000), 12);
	close(fd);
}

/*
 * The bytes the kernel holds unsent on the server's side of the connection
 * from src_port (/proc/net/tcp tx_queue), or -1.
 */
static long server_send_q(const char *server, uint16_t src_port)
{
	char line[512], want_local[16], want_rem_port[8];
	struct in_addr ia;
	long q = -1;
	FILE *f = fopen("/proc/net/tcp", "r");

	if (!f)
		return -1;
	inet_pton(AF_INET, server, &ia);
	snprintf(want_local, sizeof(want_local), "%08X:%04X", ia.s_addr, PORT);
	snprintf(want_rem_port, sizeof(want_rem_port), ":%04X", src_port);
	while (fgets(line, sizeof(line), f)) {
		char local[64], rem[64];
		unsigned long tx, rx;
		if (sscanf(line, "%*d: %63s %63s %*x %lx:%lx", local, rem, &tx, &rx) != 4)
			continue;
		if (strcmp(local, want_local) == 0 && strstr(rem, want_rem_port) &&
		    strlen(strstr(rem, want_rem_port)) == 5)
			q = (long)tx;
	}
	fclose(f);
	return q;
}

/*
 * A client that never reads: large answers until the server's socket buffer
 * is full (its Send-Q stops growing; loopback autotunes it to megabytes), so
 * the server's send stops moving with less than the 64 KiB queued at which
 * it stops reading; then one small query every 3 s, each read and answered,
 * which used to reset the idle timer and keep the connection (unevictable,
 * a send in flight) forever. It must now be closed DNS_TCP_STALL_MS (10 s)
 * after the send stopped: the client reads what was sent and meets EOF.
 */
Test(dns_stream, a_client_that_never_reads_is_cut_off)
{
	static uint8_t q[8192], a[70000];
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	size_t len = 0;

	up_with(NET, 3, NULL);
	/* Warm the cache first: the answers come at once. */
	cr_assert_geq(ask_name(true, "big.example.test", 16, false, a, sizeof(a)), 3000);
	int fd = connect_from("127.53.82.63", node, PORT, 2048);
	cr_assert_geq(fd, 0);
	getsockname(fd, (struct sockaddr *)&me, &ml);
	/* Five answers (~16 KB) per batch, until two batches leave Send-Q as it was. */
	for (int i = 0; i < 5; i++)
		frame(q, &len, (uint16_t)(0x0c00 + i), "big.example.test", 16, 1);
	long last = -1;
	int flat = 0, batches = 0;
	for (; batches < 2000 && flat < 2; batches++) {
		cr_assert_eq(dns_tcp_write(fd, q, len), 0);
		sleep_ms(15);
		long sq = server_send_q(node, ntohs(me.sin_port));
		cr_assert_geq(sq, 0, "server socket not in /proc/net/tcp");
		flat = sq == last ? flat + 1 : 0;
		last = sq;
	}
	cr_assert_eq(flat, 2, "Send-Q kept growing (%ld bytes)", last);
	uint64_t t0 = now_ms();
	for (int i = 0; i < 5; i++) {
		sleep_ms(3000);
		len = 0;
		frame(q, &len, (uint16_t)(0x0d00 + i), "id.server", 16, 3);
		if (dns_tcp_write(fd, q, len) < 0)
			break; /* reset: closed already */
	}
	/* Read what was sent; a live connection ends in a timeout, a closed one in EOF. */
	int n, msgs = 0;
	while ((n = dns_tcp_read_msg(fd, a, sizeof(a), 2000)) > 0)
		msgs++;
	cr_assert_neq(n, -ETIMEDOUT,
	              "still open %llu ms after its send stopped moving (%d answers read after "
	              "%d batches, Send-Q %ld)",
	              (unsigned long long)(now_ms() - t0), msgs, batches, last);
	close(fd);
	cr_assert(proc_alive(&daemon_.proc));
}

/* ------------------------------------------------------------ DNS-over-TLS */

/* The sample `name` (exact, with labels) from node's /metrics on port mport, or -1. */
static double metric(uint16_t mport, const char *name)
{
	static char page[1 << 17];
	size_t got = 0, n = strlen(name);
	int fd = connect_from(NULL, node, mport, 0);
	ssize_t r;

	if (fd < 0)
		return -1;
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	(void)dns_tcp_write(fd, req, sizeof(req) - 1);
	while (got < sizeof(page) - 1 && (r = read(fd, page + got, sizeof(page) - 1 - got)) > 0)
		got += (size_t)r;
	close(fd);
	page[got] = 0;
	for (const char *p = page; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

Test(dns_stream, kdig_tls_gets_the_answer)
{
	char out[8192], at[40], port[8], extra[1024];

	make_cert();
	/* A control section of our own: the metrics endpoint on the node address. */
	snprintf(extra, sizeof(extra),
	         "control: {metrics: \"127.53.%d.41:9353\", socket: \"%s/c.sock\", state: "
	         "\"%s/drain.json\"}\n",
	         NET, certdir.path, certdir.path);
	up_tls(4, extra);
	snprintf(at, sizeof(at), "@%s", node);
	snprintf(port, sizeof(port), "%d", TLS_PORT);
	char *argv[] = {"kdig", "+tls",       at,         "-p",
	                port,   "+timeout=3", "+retry=0", "www.example.test",
	                "A",    NULL};
	cr_assert_eq(run_capture(argv, true, out, sizeof(out), 15000), 0, "kdig: %s", out);
	cr_assert(strstr(out, "192.0.2.80"), "no answer over TLS: %s", out);
	cr_assert(strstr(out, "TLS session"), "not TLS: %s", out);
	/* Plain TCP and UDP on the same node still work. */
	uint8_t a[512];
	cr_assert_geq(ask_name(true, "www.example.test", 1, false, a, sizeof(a)), 12);
	/* Counted: one handshake (kdig's), none failed yet; then a failed one. */
	cr_assert_geq(metric(9353, "anycache_tls_handshakes_total"), 1);
	cr_assert_eq(metric(9353, "anycache_tls_handshake_failures_total"), 0);
	int fd = connect_from(NULL, node, TLS_PORT, 0);
	cr_assert_geq(fd, 0);
	(void)dns_tcp_write(fd, "GET / HTTP/1.0\r\n\r\n", 18); /* not TLS */
	cr_assert_eq(dns_tcp_wait_closed(fd, 3000), 0, "garbage handshake not closed");
	close(fd);
	cr_assert_eq(metric(9353, "anycache_tls_handshake_failures_total"), 1);
}

struct tls_client {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

static void tls_open(struct tls_client *c, int max_version, SSL_SESSION *resume)
{
	c->fd = connect_from(NULL, node, TLS_PORT, 0);
	cr_assert_geq(c->fd, 0, "connect: %d", c->fd);
	if (!c->ctx) {
		c->ctx = SSL_CTX_new(TLS_client_method());
		cr_assert(c->ctx);
		SSL_CTX_set_max_proto_version(c->ctx, max_version);
		SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_CLIENT);
	}
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	if (resume)
		SSL_set_session(c->ssl, resume);
	cr_assert_eq(SSL_connect(c->ssl), 1, "TLS handshake failed: %s",
	             ERR_error_string(ERR_get_error(), NULL));
}

static int tls_read_msg(struct tls_client *c, uint8_t *buf, size_t cap)
{
	uint8_t hdr[2];
	if (SSL_read(c->ssl, hdr, 1) != 1 || SSL_read(c->ssl, hdr + 1, 1) != 1)
		return -1;
	size_t n = (size_t)hdr[0] << 8 | hdr[1], got = 0;
	cr_assert_leq(n, cap);
	while (got < n) {
		int r = SSL_read(c->ssl, buf + got, (int)(n - got));
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return (int)n;
}

static void tls_close(struct tls_client *c)
{
	SSL_shutdown(c->ssl);
	SSL_free(c->ssl);
	close(c->fd);
}

/* Three queries in one write: a miss, CHAOS identity, a miss (as test_dns_tcp). */
static void pipelined_round(struct tls_client *c, uint16_t base)
{
	uint8_t q[2048], a[4096];
	size_t len = 0;
	uint16_t got[3];

	frame(q, &len, base + 1, "mail.example.test", 1, 1);
	frame(q, &len, base + 2, "id.server", 16, 3);
	frame(q, &len, base + 3, "nosuch.example.test", 28, 1);
	cr_assert_eq(SSL_write(c->ssl, q, (int)len), (int)len);
	for (int i = 0; i < 3; i++) {
		int n = tls_read_msg(c, a, sizeof(a));
		cr_assert_geq(n, 12, "answer %d missing", i);
		got[i] = rd16(a);
	}
	cr_assert_eq((got[0] ^ got[1] ^ got[2]), (uint16_t)((base + 1) ^ (base + 2) ^ (base + 3)));
	(void)got;
}

static void pipelined_and_resumed(int version)
{
	struct tls_client c = {0};

	tls_open(&c, version, NULL);
	cr_assert_eq(SSL_version(c.ssl), version);
	pipelined_round(&c, 0x1000);
	/* Several rounds on one connection (RFC 7858 §3.4: reuse). */
	pipelined_round(&c, 0x2000);
	SSL_SESSION *sess = SSL_get1_session(c.ssl);
	cr_assert(sess && SSL_SESSION_is_resumable(sess), "no resumable session (ticket)");
	tls_close(&c);
	tls_open(&c, version, sess);
	cr_assert(SSL_session_reused(c.ssl), "the session was not resumed");
	pipelined_round(&c, 0x3000);
	tls_close(&c);
	SSL_SESSION_free(sess);
	SSL_CTX_free(c.ctx);
}

Test(dns_stream, tls13_pipelined_queries_and_resumption)
{
	up_tls(5, NULL);
	pipelined_and_resumed(TLS1_3_VERSION);
}

Test(dns_stream, tls12_pipelined_queries_and_resumption)
{
	up_tls(6, NULL);
	pipelined_and_resumed(TLS1_2_VERSION);
}

/*
 * RFC 8446 §6.1: each side sends close_notify before closing its write
 * side. After ours, the client must read the server's close_notify (an
 * orderly end, SSL_ERROR_ZERO_RETURN), not a bare EOF (which a client has
 * to treat as a possible truncation).
 */
static void close_notify_answered(int version)
{
	struct tls_client c = {0};
	struct timeval tv = {.tv_sec = 3};
	uint8_t buf[64];

	tls_open(&c, version, NULL);
	pipelined_round(&c, 0x4000);
	setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(SSL_shutdown(c.ssl), 0, "our close_notify was not sent");
	int r = SSL_read(c.ssl, buf, sizeof(buf));
	int e = SSL_get_error(c.ssl, r);
	cr_assert_eq(e, SSL_ERROR_ZERO_RETURN,
	             "the server closed without close_notify (SSL_read %d, error %d: %s)", r, e,
	             ERR_error_string(ERR_get_error(), NULL));
	cr_assert_eq(SSL_shutdown(c.ssl), 1, "the shutdown is not complete on both sides");
	SSL_free(c.ssl);
	close(c.fd);
	SSL_CTX_free(c.ctx);
}

Test(dns_stream, tls13_close_notify_is_answered_with_ours)
{
	up_tls(7, NULL);
	close_notify_answered(TLS1_3_VERSION);
}

Test(dns_stream, tls12_close_notify_is_answered_with_ours)
{
	up_tls(8, NULL);
	close_notify_answered(TLS1_2_VERSION);
}

/* A ClientHello that never completes, and a client that says nothing:
 * both cut at the handshake timeout (5 s), not at the idle timeout. */
Test(dns_stream, stalled_handshake_is_cut_at_the_timeout)
{
	/* A record header announcing 512 bytes, then 5 of them. */
	static const uint8_t part[10] = {0x16, 0x03, 0x01, 0x02, 0x00,
	                                 0x01, 0x00, 0x01, 0xfc, 0x03};

	up_tls(7, NULL);
	int half = connect_from(NULL, node, TLS_PORT, 0);
	int mute = connect_from(NULL, node, TLS_PORT, 0);
	cr_assert(half >= 0 && mute >= 0);
	uint64_t t0 = now_ms();
	cr_assert_eq(dns_tcp_write(half, part, sizeof(part)), 0);
	cr_assert_eq(dns_tcp_wait_closed(half, 9000), 0, "half handshake not closed");
	uint64_t dt = now_ms() - t0;
	cr_assert_eq(dns_tcp_wait_closed(mute, 2000), 0, "silent client not closed");
	cr_assert_geq(dt, 4500, "closed too early: %llu ms", (unsigned long long)dt);
	cr_assert_leq(dt, 7000, "closed too late: %llu ms", (unsigned long long)dt);
	close(half);
	close(mute);
	/* A complete handshake afterwards works. */
	struct tls_client c = {0};
	tls_open(&c, TLS1_3_VERSION, NULL);
	pipelined_round(&c, 0x4000);
	tls_close(&c);
	SSL_CTX_free(c.ctx);
}

Test(dns_stream, bad_certificate_path_is_a_startup_error)
{
	char yaml[1024], log[600], text[8192] = "";
	struct anycached d;

	snprintf(yaml, sizeof(yaml),
	         "dns:\n"
	         "  listen: [\"127.53.82.81:5300\"]\n"
	         "  tls-listen: [\"127.53.82.81:%d\"]\n"
	         "  tls-certificate: /nonexistent/dot-cert.pem\n"
	         "  tls-key: /nonexistent/dot-key.pem\n"
	         "  upstreams: [\"127.53.82.82:5300\"]\n"
	         "  threads: 1\n",
	         TLS_PORT);
	cr_assert_neq(anycached_start(&d, yaml, "127.53.82.81", PORT), 0, "started anyway");
	snprintf(log, sizeof(log), "%s/anycached.log", d.dir.path);
	FILE *f = fopen(log, "r");
	cr_assert(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = 0;
	fclose(f);
	cr_assert(strstr(text, "tls-certificate /nonexistent/dot-cert.pem: No such file"),
	          "log: %s", text);
	tmpdir_remove(&d.dir);
}
