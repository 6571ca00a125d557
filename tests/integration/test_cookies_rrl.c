/*
 * Issue 10: DNS cookies (RFC 7873, RFC 9018 server cookies) and response rate
 * limiting with the real daemon over knotd. Addresses 127.53.84.x: anycached
 * on .(10n+1), knotd on .(10n+2) (dns_itest.h), clients from .100-.120.
 *   - kdig +cookie gets a server cookie, and a second query with it is
 *     accepted (echoed); a raw client cookie gets a 24-octet cookie back on
 *     a miss, a cache hit, over TCP and on an error; a wrong server cookie
 *     gets a new good one; a malformed option gets FORMERR;
 *   - rollover: a cookie made under the old secret is accepted and renewed
 *     under the new one;
 *   - a UDP flood from one source over dns.rate-limit gets drops and TC=1
 *     slips while another source is served in full; the same flood with a
 *     valid server cookie is not limited; with a client cookie alone the
 *     slips are BADCOOKIE carrying a good cookie; TCP from the flooded
 *     source is served;
 *   - /metrics counts exactly the drops and slips the clients saw;
 *   - dns.require-cookie: a UDP query with a client cookie alone, or a wrong
 *     server cookie, gets BADCOOKIE with a good cookie and no answer; with
 *     that cookie it is answered; no cookie at all, and TCP, are answered;
 *     kdig +cookie gets through (it retries on BADCOOKIE, RFC 7873 §5.3).
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "ctl_itest.h"
#include "dns_itest.h"

#define NET        84
#define SECRET     "e5e973e5a6b2a43f48e7dc849e37bfcf"
#define SECRET_NEW "445536bcd2513298075a5d379663c962"

TestSuite(cookies_rrl, .fini = down, .timeout = 120);

/* Strict stop: exit 0, no sanitizer report, rings drained (harness.h). */
static void stop_clean(void)
{
	char why[256] = "";
	int r = anycached_stop_clean(&daemon_, 5000, why, sizeof(why));
	knotd_stop(&knot);
	cr_assert_eq(r, 0, "anycached did not stop cleanly: %s", why);
}

/* A query for name with EDNS and a COOKIE option of len octets (len 0: none). */
static int cookie_query(uint8_t *q, size_t cap, uint16_t id, const char *name,
                        const uint8_t *cookie, size_t len)
{
	int n = dns_make_query(q, cap, id, name, 1, true);
	cr_assert_gt(n, 11);
	if (!len)
		return n;
	cr_assert_leq((size_t)n + 4 + len, cap);
	q[n++] = 0;
	q[n++] = 10; /* COOKIE */
	q[n++] = 0;
	q[n++] = (uint8_t)len;
	memcpy(q + n, cookie, len);
	n += (int)len;
	q[n - (int)len - 4 - 2] = 0;
	q[n - (int)len - 4 - 1] = (uint8_t)(4 + len); /* OPT RDLENGTH */
	return n;
}

/* The COOKIE option of an answer into out[40]: its length, or -1 when none. */
static int answer_cookie(const uint8_t *a, size_t n, uint8_t *out)
{
	unsigned total = ANCOUNT(a) + NSCOUNT(a) + ARCOUNT(a);
	for (unsigned i = 0; i < total; i++) {
		size_t off = rr_off(a, n, i);
		off = off ? skip_name(a, n, off) : 0;
		if (!off || off + 10 > n)
			return -1;
		size_t rdlen = rd16(a + off + 8), p = off + 10;
		if (rd16(a + off) != 41)
			continue;
		while (p + 4 <= off + 10 + rdlen && p + 4 <= n) {
			size_t olen = rd16(a + p + 2);
			if (rd16(a + p) == 10 && olen <= 40 && p + 4 + olen <= n) {
				memcpy(out, a + p + 4, olen);
				return (int)olen;
			}
			p += 4 + olen;
		}
	}
	return -1;
}

/* The extended RCODE (RFC 6891 §6.1.3) of an answer with an OPT. */
static unsigned ext_rcode(const uint8_t *a, size_t n)
{
	unsigned total = ANCOUNT(a) + NSCOUNT(a) + ARCOUNT(a);
	for (unsigned i = 0; i < total; i++) {
		size_t off = rr_off(a, n, i);
		off = off ? skip_name(a, n, off) : 0;
		if (off && off + 10 <= n && rd16(a + off) == 41)
			return (unsigned)a[off + 4] << 4 | RCODE(a);
	}
	return RCODE(a);
}

static void check_ours(const uint8_t *cookie, int len, const uint8_t *client)
{
	cr_assert_eq(len, 24, "answer cookie of %d octets", len);
	cr_assert_arr_eq(cookie, client, 8, "client cookie not echoed");
	cr_assert_eq(cookie[8], 1, "RFC 9018 version 1");
	uint32_t ts = (uint32_t)cookie[12] << 24 | (uint32_t)cookie[13] << 16 |
	              (uint32_t)cookie[14] << 8 | cookie[15];
	int64_t skew = (int64_t)ts - (int64_t)time(NULL);
	cr_assert(skew > -5 && skew < 5, "timestamp %u is not now", ts);
}

static int ask_cookie(bool tcp, const char *name, const uint8_t *cookie, size_t len, uint8_t *a,
                      size_t cap, uint8_t *got)
{
	uint8_t q[512];
	int qlen = cookie_query(q, sizeof(q), 0x4242, name, cookie, len);
	int n = ask(tcp, q, (size_t)qlen, a, cap);
	return answer_cookie(a, (size_t)n, got);
}

static const uint8_t client_cc[8] = {0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57};

Test(cookies_rrl, server_cookie_learned_and_accepted)
{
	uint8_t a[4096], c1[40], c2[40], c3[40], wrong[24];
	int l;

	up_with(NET, 0, "  cookie-secret: " SECRET "\n");
	/* Client cookie alone, a cache miss: NOERROR and a fresh server cookie (§5.2.3). */
	l = ask_cookie(false, "www.example.test", client_cc, 8, a, sizeof(a), c1);
	cr_assert_eq(RCODE(a), 0);
	cr_assert_gt(ANCOUNT(a), 0);
	check_ours(c1, l, client_cc);
	/* The learned cookie again, now a cache hit: accepted, echoed (§5.2.5). */
	l = ask_cookie(false, "www.example.test", c1, 24, a, sizeof(a), c2);
	cr_assert_eq(RCODE(a), 0);
	cr_assert_gt(ANCOUNT(a), 0);
	cr_assert_eq(l, 24);
	cr_assert_arr_eq(c2, c1, 24, "a fresh valid cookie is echoed as it is");
	/* Over TCP too. */
	l = ask_cookie(true, "www.example.test", c1, 24, a, sizeof(a), c2);
	cr_assert_eq(l, 24);
	cr_assert_arr_eq(c2, c1, 24);
	/* A wrong server cookie: answered normally, with a new good one (§5.2.4). */
	memcpy(wrong, c1, 24);
	wrong[20] ^= 0x55;
	l = ask_cookie(false, "www.example.test", wrong, 24, a, sizeof(a), c3);
	cr_assert_eq(RCODE(a), 0);
	cr_assert_gt(ANCOUNT(a), 0);
	check_ours(c3, l, client_cc);
	cr_assert(memcmp(c3 + 16, wrong + 16, 8) != 0, "the wrong hash came back");
	l = ask_cookie(false, "www.example.test", c3, 24, a, sizeof(a), c2);
	cr_assert_arr_eq(c2, c3, 24, "the new cookie is accepted");
	/* Errors carry it too: NXDOMAIN, REFUSED (CHAOS other than identity). */
	l = ask_cookie(false, "nope.example.test", c1, 24, a, sizeof(a), c2);
	cr_assert_eq(RCODE(a), 3);
	cr_assert_arr_eq(c2, c1, 24);
	/* Malformed (12 octets, RFC 7873 §5.2.2): FORMERR. */
	uint8_t twelve[12] = {0};
	ask_cookie(false, "www.example.test", twelve, 12, a, sizeof(a), c2);
	cr_assert_eq(RCODE(a), 1, "malformed cookie: rcode %u", RCODE(a));
	/* No cookie: no cookie back. */
	l = ask_cookie(false, "www.example.test", NULL, 0, a, sizeof(a), c2);
	cr_assert_eq(l, -1);

	/* kdig +cookie: a server cookie comes back; sent again, it is accepted. */
	char out[8192], arg[64], *p;
	cr_assert_eq(kdig(out, sizeof(out), "+cookie", "www.example.test", "A", NULL, NULL), 0,
	             "%s", out);
	p = strstr(out, "COOKIE: ");
	cr_assert(p, "no COOKIE in kdig's output:\n%s", out);
	char hex[49] = "";
	cr_assert_eq(sscanf(p + 8, "%48[0-9a-fA-F]", hex), 1, "%s", p);
	cr_assert_eq(strlen(hex), 48, "kdig saw a %zu-digit cookie: %s", strlen(hex), p);
	/* kdig printed its own client cookie first, then ours (version 1). */
	cr_assert_eq(strncmp(hex + 16, "01", 2), 0, "%s", hex);
	snprintf(arg, sizeof(arg), "+cookie=%s", hex);
	cr_assert_eq(kdig(out, sizeof(out), arg, "www.example.test", "A", NULL, NULL), 0, "%s",
	             out);
	p = strstr(out, "COOKIE: ");
	cr_assert(p && strncasecmp(p + 8, hex, 48) == 0, "not echoed:\n%s", out);
	cr_assert(strstr(out, "status: NOERROR"), "%s", out);
	stop_clean();
}

Test(cookies_rrl, secret_rollover)
{
	uint8_t a[4096], c1[40], c2[40], c3[40];
	int l;

	up_with(NET, 1, "  cookie-secret: " SECRET "\n");
	l = ask_cookie(false, "www.example.test", client_cc, 8, a, sizeof(a), c1);
	check_ours(c1, l, client_cc);
	stop_clean();
	/* The new secret, the old one still accepted. */
	up_with(NET, 1,
	        "  cookie-secret: " SECRET_NEW "\n"
	        "  cookie-secret-old: " SECRET "\n");
	l = ask_cookie(false, "www.example.test", c1, 24, a, sizeof(a), c2);
	check_ours(c2, l, client_cc);
	cr_assert(memcmp(c2 + 16, c1 + 16, 8) != 0, "answers use the new secret");
	/* Proof it was accepted, not merely replaced: it is exempt from a limit
	 * is checked below; here the renewed cookie is echoed next time. */
	l = ask_cookie(false, "www.example.test", c2, 24, a, sizeof(a), c3);
	cr_assert_arr_eq(c3, c2, 24);
	stop_clean();
	/* The old secret gone: the first cookie is not ours any more, but the
	 * renewed one is. */
	up_with(NET, 1, "  cookie-secret: " SECRET_NEW "\n");
	l = ask_cookie(false, "www.example.test", c2, 24, a, sizeof(a), c3);
	cr_assert_arr_eq(c3, c2, 24);
	stop_clean();
}

struct flood {
	unsigned sent, answers, tc, badcookie, full, with_cookie;
};

/*
 * n queries as fast as the socket takes them from src, then every answer that
 * arrives within 1 s. cookie (len octets) is put in each query.
 */
static struct flood flood_from(const char *src, unsigned n, const uint8_t *cookie, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET}, da = {.sin_family = AF_INET};
	struct flood f = {0};
	uint8_t q[512], a[4096], c[40];
	int fd = socket(AF_INET, SOCK_DGRAM, 0), size = 1 << 20;

	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	inet_pton(AF_INET, src, &sa.sin_addr);
	inet_pton(AF_INET, node, &da.sin_addr);
	da.sin_port = htons(PORT);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&da, sizeof(da)), 0);
	for (unsigned i = 0; i < n; i++) {
		int qlen = cookie_query(q, sizeof(q), (uint16_t)i, "www.example.test", cookie, len);
		if (send(fd, q, (size_t)qlen, 0) == qlen)
			f.sent++;
	}
	uint64_t end = now_ms() + 1000;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (now_ms() < end && f.answers < f.sent) {
		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			break;
		ssize_t r = recv(fd, a, sizeof(a), 0);
		if (r < 12)
			continue;
		f.answers++;
		if (TC(a) && ANCOUNT(a) == 0)
			f.tc++;
		else if (ext_rcode(a, (size_t)r) == 23)
			f.badcookie++;
		else if (RCODE(a) == 0 && ANCOUNT(a) > 0)
			f.full++;
		if (answer_cookie(a, (size_t)r, c) == 24)
			f.with_cookie++;
	}
	close(fd);
	return f;
}

/* A few spaced queries from src: how many got a full answer. */
static unsigned polite_from(const char *src, unsigned n)
{
	uint8_t q[512], a[4096];
	unsigned ok = 0;
	int qlen = dns_make_query(q, sizeof(q), 7, "www.example.test", 1, true);

	for (unsigned i = 0; i < n; i++) {
		int r = dns_udp_exchange_from(src, node, PORT, q, (size_t)qlen, a, sizeof(a), 1000);
		if (r >= 12 && RCODE(a) == 0 && ANCOUNT(a) > 0 && !TC(a))
			ok++;
		sleep_ms(150);
	}
	return ok;
}

/*
 * up_with instance n, its dns: keys `dns` and a control section in a fresh
 * directory cdir, with /metrics on the node's own address (see metric).
 */
static void up_with_control(int n, const char *dns, struct tmpdir *cdir)
{
	char extra[1024];

	cr_assert_eq(tmpdir_make(cdir, "cookiesrrl"), 0);
	snprintf(extra, sizeof(extra),
	         "%scontrol: {metrics: \"127.53.%d.%d\", socket: \"%s/ctl.sock\", "
	         "state: \"%s/drain.json\"}\n",
	         dns, NET, 10 * n + 1, cdir->path, cdir->path);
	up_with(NET, n, extra);
}

/* One sample of the running node's /metrics (up_with_control). */
static double metric(const char *sample)
{
	static char page[65536];
	int status;

	cr_assert_gt(http_exchange(node, 9253, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", page,
	                           sizeof(page), &status),
	             0);
	cr_assert_eq(status, 200);
	return scrape_value(http_body(page), sample);
}

Test(cookies_rrl, rate_limit_drops_and_slips)
{
	uint8_t a[4096], cookie[40];
	struct flood f;
	unsigned dropped = 0, slipped = 0;
	struct tmpdir cdir;
	int l;

	up_with_control(2,
	                "  cookie-secret: " SECRET "\n"
	                "  rate-limit:\n"
	                "    responses-per-second: 10\n"
	                "    window: 1s\n"
	                "    slip: 2\n"
	                "    ipv4-prefix: 32\n",
	                &cdir);
	/* Fill the cache from a source of its own. */
	polite_from("127.53.84.110", 1);

	/* 300 queries at once from one source: 10 answered (the bucket), the rest
	 * limited, every 2nd of those slipping as an empty TC=1 answer. */
	f = flood_from("127.53.84.100", 300, NULL, 0);
	cr_log_info("flood: sent %u, answers %u (full %u, tc %u)", f.sent, f.answers, f.full, f.tc);
	cr_assert_eq(f.sent, 300);
	cr_assert(f.full >= 10 && f.full <= 25, "full answers %u", f.full);
	cr_assert(f.tc >= 100 && f.tc <= 150, "TC=1 slips %u", f.tc);
	cr_assert_lt(f.answers, f.sent, "nothing was dropped");
	dropped += f.sent - f.answers;
	slipped += f.tc;
	/* Meanwhile another source is served in full. */
	cr_assert_eq(polite_from("127.53.84.101", 5), 5);
	/* And the flooded source itself over TCP: not limited. */
	ask_name(true, "www.example.test", 1, true, a, sizeof(a));
	cr_assert_eq(RCODE(a), 0);
	cr_assert_gt(ANCOUNT(a), 0);

	/* With a valid server cookie the same flood is not limited at all. */
	l = ask_cookie(false, "www.example.test", client_cc, 8, a, sizeof(a), cookie);
	cr_assert_eq(l, 24);
	/* The cookie is bound to the client address (RFC 9018 §4.4): learn it
	 * from the flooding source. */
	{
		uint8_t q[512];
		int qlen = cookie_query(q, sizeof(q), 9, "www.example.test", client_cc, 8);
		int n = dns_udp_exchange_from("127.53.84.102", node, PORT, q, (size_t)qlen, a,
		                              sizeof(a), 2000);
		cr_assert_geq(n, 12);
		cr_assert_eq(answer_cookie(a, (size_t)n, cookie), 24);
	}
	f = flood_from("127.53.84.102", 300, cookie, 24);
	cr_log_info("cookie flood: sent %u, answers %u (full %u, tc %u)", f.sent, f.answers, f.full,
	            f.tc);
	cr_assert_eq(f.full, 300, "valid cookie: %u of 300 answered in full", f.full);
	cr_assert_eq(f.with_cookie, 300);

	/* A client cookie alone is no proof: limited, and the slips are
	 * BADCOOKIE with a fresh server cookie (RFC 7873 §5.2.3). */
	f = flood_from("127.53.84.103", 300, client_cc, 8);
	cr_log_info("client-cookie flood: answers %u (full %u, badcookie %u, tc %u)", f.answers,
	            f.full, f.badcookie, f.tc);
	cr_assert(f.full >= 10 && f.full <= 25, "full answers %u", f.full);
	cr_assert(f.badcookie >= 100 && f.badcookie <= 150, "BADCOOKIE slips %u", f.badcookie);
	cr_assert_eq(f.tc, 0);
	cr_assert_eq(f.with_cookie, f.answers, "every answer carries the cookie");
	dropped += f.sent - f.answers;
	slipped += f.badcookie;
	/* The node counted what the clients saw. */
	cr_assert_eq(metric("anycache_rrl_dropped_total"), (double)dropped);
	cr_assert_eq(metric("anycache_rrl_slipped_total"), (double)slipped);
	cr_assert_geq(metric("anycache_cookies_total{verdict=\"valid\"}"), 300);
	stop_clean();
	tmpdir_remove(&cdir);
}

Test(cookies_rrl, require_cookie_answers_badcookie_first)
{
	uint8_t a[4096], c1[40], c2[40], wrong[24];
	struct tmpdir cdir;
	int l;

	up_with_control(3, "  cookie-secret: " SECRET "\n  require-cookie: true\n", &cdir);
	/* A client cookie alone over UDP: BADCOOKIE (RFC 7873 §5.2.3, choice 2),
	 * no records, our good cookie in it. */
	l = ask_cookie(false, "www.example.test", client_cc, 8, a, sizeof(a), c1);
	cr_assert_eq(ext_rcode(a, sizeof(a)), 23, "rcode %u", ext_rcode(a, sizeof(a)));
	cr_assert_eq(ANCOUNT(a), 0);
	check_ours(c1, l, client_cc);
	/* Retried with it (§5.3): answered, the cookie echoed. */
	l = ask_cookie(false, "www.example.test", c1, 24, a, sizeof(a), c2);
	cr_assert_eq(ext_rcode(a, sizeof(a)), 0);
	cr_assert_gt(ANCOUNT(a), 0);
	cr_assert_eq(l, 24);
	cr_assert_arr_eq(c2, c1, 24);
	/* A wrong server cookie (§5.2.4): BADCOOKIE with a new good one. */
	memcpy(wrong, c1, 24);
	wrong[20] ^= 0x55;
	l = ask_cookie(false, "www.example.test", wrong, 24, a, sizeof(a), c2);
	cr_assert_eq(ext_rcode(a, sizeof(a)), 23);
	cr_assert_eq(ANCOUNT(a), 0);
	check_ours(c2, l, client_cc);
	/* No cookie at all: not cookie-aware, served (§5.2.1). */
	l = ask_cookie(false, "www.example.test", NULL, 0, a, sizeof(a), c2);
	cr_assert_eq(RCODE(a), 0);
	cr_assert_gt(ANCOUNT(a), 0);
	cr_assert_eq(l, -1);
	/* TCP proves the address: a client cookie alone is answered. */
	l = ask_cookie(true, "www.example.test", client_cc, 8, a, sizeof(a), c2);
	cr_assert_eq(ext_rcode(a, sizeof(a)), 0);
	cr_assert_gt(ANCOUNT(a), 0);
	check_ours(c2, l, client_cc);
	/* kdig +cookie: BADCOOKIE first, then its retry with our cookie is answered. */
	char out[8192];
	cr_assert_eq(kdig(out, sizeof(out), "+cookie", "www.example.test", "A", NULL, NULL), 0,
	             "%s", out);
	cr_assert(strstr(out, "status: NOERROR"), "kdig did not get through:\n%s", out);
	/* Two BADCOOKIEs here, at least one for kdig. */
	double req = metric("anycache_cookie_required_total");
	cr_assert(req >= 3 && req <= 4, "anycache_cookie_required_total %.0f", req);
	stop_clean();
	tmpdir_remove(&cdir);
}
