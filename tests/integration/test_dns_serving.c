/*
 * Issue 3, serving: every answer shape (A/AAAA/MX, CNAME chain, NXDOMAIN and
 * NODATA with SOA, wildcard, an RRset over 3000 bytes), the echo rules, the
 * request validation answers and CHAOS identity, over UDP and over TCP, with
 * kdig and with raw packets. knotd (the upstream) and anycached run per test
 * on 127.53.3.x.
 */
#include "dns_itest.h"

#define NET         3
#define REFUSED_SRC "127.53.3.200" /* outside allow's 127.53.3.0/25 */

TestSuite(dns_serving, .fini = down, .timeout = 90);

static void kdig_expect(bool tcp, const char *name, const char *type, const char *want)
{
	char out[8192];
	int rc = kdig(out, sizeof(out), "+short", tcp ? "+tcp" : "+notcp", name, type, NULL);
	cr_assert_eq(rc, 0, "kdig %s %s failed: %s", name, type, out);
	cr_assert_str_eq(out, want, "%s %s over %s", name, type, tcp ? "TCP" : "UDP");
}

Test(dns_serving, a_aaaa_mx_cname_wildcard_over_udp_and_tcp)
{
	up_with(NET, 1, NULL);
	for (int tcp = 0; tcp < 2; tcp++) {
		kdig_expect(tcp, "www.example.test", "A", "192.0.2.80\n");
		kdig_expect(tcp, "www.example.test", "AAAA", "2001:db8::80\n");
		kdig_expect(tcp, "example.test", "MX", "10 mail.example.test.\n");
		kdig_expect(tcp, "alias.example.test", "A",
		            "alias2.example.test.\nwww.example.test.\n192.0.2.80\n");
		kdig_expect(tcp, "anything.wild.example.test", "A", "192.0.2.99\n");
	}
}

Test(dns_serving, nxdomain_and_nodata_carry_the_soa)
{
	uint8_t a[4096];

	up_with(NET, 2, NULL);
	for (int tcp = 0; tcp < 2; tcp++) {
		int n = ask_name(tcp, "nosuch.example.test", 1, true, a, sizeof(a));
		cr_assert_eq(RCODE(a), 3, "NXDOMAIN");
		cr_assert_eq(ANCOUNT(a), 0);
		cr_assert_eq(NSCOUNT(a), 1);
		cr_assert_eq(rr_type(a, (size_t)n, 0), 6, "SOA in the authority section");

		n = ask_name(tcp, "www.example.test", 15 /* MX */, false, a, sizeof(a));
		cr_assert_eq(RCODE(a), 0, "NODATA is NOERROR");
		cr_assert_eq(ANCOUNT(a), 0);
		cr_assert_eq(NSCOUNT(a), 1);
		cr_assert_eq(rr_type(a, (size_t)n, 0), 6, "SOA in the authority section");
		cr_assert_eq(ARCOUNT(a), 0, "no OPT without EDNS in the query");
	}
}

Test(dns_serving, big_txt_truncated_on_udp_whole_on_tcp)
{
	uint8_t q[512], a[65536];
	int qlen = dns_make_query(q, sizeof(q), 0x7777, "big.example.test", 16, true);
	size_t qsec = (size_t)qlen - 12 - 11;
	int n;

	up_with(NET, 3, NULL);
	/* TCP first: the answer is whole, 16 TXT records, > 3000 bytes, with our OPT. */
	n = ask(true, q, (size_t)qlen, a, sizeof(a));
	cr_assert_gt(n, 3000, "n %d rcode %d an %d tc %d", n, RCODE(a), ANCOUNT(a), TC(a));
	cr_assert_not(TC(a));
	cr_assert_eq(ANCOUNT(a), 16);
	cr_assert_eq(ARCOUNT(a), 1);
	/* UDP with EDNS 1232: header + question + OPT, TC=1. */
	n = ask(false, q, (size_t)qlen, a, sizeof(a));
	cr_assert(TC(a));
	cr_assert_eq(n, (int)(12 + qsec + 11));
	cr_assert_eq(ANCOUNT(a), 0);
	cr_assert_eq(ARCOUNT(a), 1);
	cr_assert_eq(rd16(a + 12 + qsec + 1), 41, "OPT kept");
	/* UDP without EDNS: 512 limit, header + question, no OPT. */
	qlen = dns_make_query(q, sizeof(q), 0x7778, "big.example.test", 16, false);
	n = ask(false, q, (size_t)qlen, a, sizeof(a));
	cr_assert(TC(a));
	cr_assert_eq(n, qlen);
	cr_assert_eq(ARCOUNT(a), 0);
	/* A real client retries over TCP by itself and gets all 16. */
	char out[16384];
	cr_assert_eq(kdig(out, sizeof(out), "+short", "big.example.test", "TXT", NULL, NULL), 0,
	             "%s", out);
	/* Count the TXT lines only: after a TC retry kdig prints an empty line first. */
	int lines = 0;
	for (char *p = out; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
		if (*p == '"')
			lines++;
	cr_assert_eq(lines, 16, "kdig got %d TXT records: %s", lines, out);
}

Test(dns_serving, echoes_id_case_and_opt_iff_asked)
{
	uint8_t q[512], a[4096];

	up_with(NET, 4, NULL);
	for (int tcp = 0; tcp < 2; tcp++) {
		for (int edns = 0; edns < 2; edns++) {
			for (int round = 0; round < 2; round++) { /* miss, then cache hit */
				uint16_t id = (uint16_t)(0xa000 + tcp * 16 + edns * 4 + round);
				int qlen =
				    dns_make_query(q, sizeof(q), id, "WwW.eXaMpLe.TeSt", 1, edns);
				int n = ask(tcp, q, (size_t)qlen, a, sizeof(a));
				cr_assert_eq(rd16(a), id);
				cr_assert_arr_eq(a + 12, q + 12, 22, "question as sent");
				cr_assert_eq(RCODE(a), 0);
				cr_assert_eq(ANCOUNT(a), 1);
				cr_assert_eq(ARCOUNT(a), edns ? 1 : 0);
				if (edns)
					cr_assert_eq(rd16(a + n - 11 + 1), 41, "OPT last");
			}
		}
	}
}

/* Query variants that must be refused, answered with an error, or dropped. */
enum bad { QR1, SHORT, QD2, LONG_LABEL, PTR_SELF, PTR_FWD, TRAILING, STATUS, UPDATE, EDNS1 };

static int make_bad(enum bad b, uint8_t *q)
{
	int n = dns_make_query(q, 512, 0x0bad, "www.example.test", 1, b == EDNS1);
	switch (b) {
	case QR1:
		q[2] |= 0x80;
		break;
	case SHORT:
		return 7;
	case QD2:
		q[5] = 2;
		memcpy(q + n, q + 12, (size_t)n - 12); /* the question again */
		n += n - 12;
		break;
	case LONG_LABEL:
		q[12] = 64;
		memset(q + 13, 'a', 64);
		memcpy(q + 77, "\0\0\1\0\1", 5);
		n = 82;
		break;
	case PTR_SELF:
	case PTR_FWD:
		/* An answer RR whose owner is a compression pointer to itself or beyond. */
		q[7] = 1;
		q[n] = 0xc0;
		q[n + 1] = (uint8_t)(b == PTR_SELF ? n : n + 20);
		memcpy(q + n + 2, "\0\1\0\1\0\0\0\0\0\0", 10);
		n += 12;
		break;
	case TRAILING:
		memcpy(q + n, "xyz", 3);
		n += 3;
		break;
	case STATUS:
		q[2] |= 2 << 3;
		break;
	case UPDATE:
		q[2] |= 5 << 3;
		break;
	case EDNS1:
		q[n - 11 + 6] = 1; /* OPT TTL: ext-rcode, VERSION, flags */
		break;
	}
	return n;
}

static void check_bad(bool tcp, enum bad b, const uint8_t *a, int n)
{
	static const int want[] = {[QD2] = 1,      [LONG_LABEL] = 1, [PTR_SELF] = 1, [PTR_FWD] = 1,
	                           [TRAILING] = 1, [STATUS] = 4,     [UPDATE] = 4,   [EDNS1] = 0};
	cr_assert_geq(n, 12, "case %d over %s: no answer (%d)", b, tcp ? "TCP" : "UDP", n);
	cr_assert_eq(rd16(a), 0x0bad);
	cr_assert(a[2] & 0x80, "QR");
	cr_assert_eq(RCODE(a), want[b], "case %d over %s: rcode %d", b, tcp ? "TCP" : "UDP",
	             RCODE(a));
	if (b == EDNS1) {
		/* BADVERS = 16: low 4 bits 0 in the header, upper 8 bits 1 in the OPT. */
		cr_assert_eq(ARCOUNT(a), 1);
		cr_assert_eq(rd16(a + n - 11 + 1), 41);
		cr_assert_eq(a[n - 11 + 5], 1, "extended RCODE 1 -> BADVERS");
	}
}

static void normal_still_answered(bool tcp)
{
	char out[256];
	cr_assert_eq(kdig(out, sizeof(out), "+short", tcp ? "+tcp" : "+notcp", "www.example.test",
	                  "A", NULL),
	             0, "%s", out);
	cr_assert_str_eq(out, "192.0.2.80\n");
}

Test(dns_serving, bad_requests_over_udp_then_normal_answers)
{
	uint8_t q[512], a[4096];

	up_with(NET, 5, NULL);
	for (enum bad b = QR1; b <= EDNS1; b++) {
		int qlen = make_bad(b, q);
		int n = dns_udp_exchange(node, PORT, q, (size_t)qlen, a, sizeof(a), 700);
		if (b == QR1 || b == SHORT)
			cr_assert_eq(n, -ETIMEDOUT, "case %d must be dropped, got %d", b, n);
		else
			check_bad(false, b, a, n);
		normal_still_answered(false);
	}
}

Test(dns_serving, bad_requests_over_tcp_then_normal_answers)
{
	uint8_t q[600], a[4096], good[512];
	int glen = dns_make_query(good, sizeof(good), 0x600d, "www.example.test", 1, false);

	up_with(NET, 6, NULL);
	for (enum bad b = QD2; b <= EDNS1; b++) {
		/* The error and a good query on one connection: the connection lives on. */
		int qlen = make_bad(b, q);
		int fd = dns_tcp_connect(node, PORT, 3000);
		uint8_t pfx[2] = {0, (uint8_t)qlen}, gpfx[2] = {0, (uint8_t)glen};
		cr_assert_geq(fd, 0);
		cr_assert_eq(dns_tcp_write(fd, pfx, 2), 0);
		cr_assert_eq(dns_tcp_write(fd, q, (size_t)qlen), 0);
		check_bad(true, b, a, dns_tcp_read_msg(fd, a, sizeof(a), 3000));
		cr_assert_eq(dns_tcp_write(fd, gpfx, 2), 0);
		cr_assert_eq(dns_tcp_write(fd, good, (size_t)glen), 0);
		cr_assert_geq(dns_tcp_read_msg(fd, a, sizeof(a), 3000), 12);
		cr_assert_eq(rd16(a), 0x600d);
		cr_assert_eq(RCODE(a), 0);
		close(fd);
	}
	/* QR=1 over TCP gets no answer; the next query on the connection does. */
	int qlen = make_bad(QR1, q);
	int fd = dns_tcp_connect(node, PORT, 3000);
	uint8_t pfx[2] = {0, (uint8_t)qlen}, gpfx[2] = {0, (uint8_t)glen};
	cr_assert_eq(dns_tcp_write(fd, pfx, 2), 0);
	cr_assert_eq(dns_tcp_write(fd, q, (size_t)qlen), 0);
	cr_assert_eq(dns_tcp_write(fd, gpfx, 2), 0);
	cr_assert_eq(dns_tcp_write(fd, good, (size_t)glen), 0);
	cr_assert_geq(dns_tcp_read_msg(fd, a, sizeof(a), 3000), 12);
	cr_assert_eq(rd16(a), 0x600d, "first answer is the good query's");
	close(fd);
	/* A length prefix below a header's size closes the connection. */
	fd = dns_tcp_connect(node, PORT, 3000);
	uint8_t tiny[2 + 5] = {0, 5, 1, 2, 3, 4, 5};
	cr_assert_eq(dns_tcp_write(fd, tiny, sizeof(tiny)), 0);
	cr_assert_eq(dns_tcp_wait_closed(fd, 3000), 0, "length 5 must close the connection");
	close(fd);
	normal_still_answered(true);
	normal_still_answered(false);
}

Test(dns_serving, client_outside_allow_is_refused)
{
	uint8_t q[512], a[4096];
	int qlen = dns_make_query(q, sizeof(q), 0x5eed, "www.example.test", 1, true);

	up_with(NET, 7, NULL);
	int n = dns_udp_exchange_from(REFUSED_SRC, node, PORT, q, (size_t)qlen, a, sizeof(a), 3000);
	cr_assert_geq(n, 12, "no answer (%d)", n);
	cr_assert_eq(rd16(a), 0x5eed);
	cr_assert_eq(RCODE(a), 5, "REFUSED");
	cr_assert_eq(ANCOUNT(a), 0);
	cr_assert_eq(ARCOUNT(a), 1, "OPT echoed even on REFUSED");
	normal_still_answered(false);
	normal_still_answered(true);
}

Test(dns_serving, chaos_identity)
{
	char out[256];

	up_with(NET, 8, NULL);
	for (int tcp = 0; tcp < 2; tcp++) {
		const char *names[] = {"id.server", "hostname.bind", "ID.Server"};
		for (int i = 0; i < 3; i++) {
			char at[40];
			snprintf(at, sizeof(at), "@%s", node);
			char *argv[] = {
			    "kdig", at,   "-p", "5300", "+short",         tcp ? "+tcp" : "+notcp",
			    "-c",   "CH", "-t", "TXT",  (char *)names[i], NULL};
			cr_assert_eq(run_capture(argv, false, out, sizeof(out), 10000), 0, "%s",
			             out);
			cr_assert_str_eq(out, "\"itest-node-8\"\n", "%s over %s", names[i],
			                 tcp ? "TCP" : "UDP");
		}
	}
}

/* An IPv6 listener serves IPv6 clients over UDP and TCP (its own socket: V6ONLY). */
Test(dns_serving, ipv6_listener_over_udp_and_tcp)
{
	const char *zones[] = {"example.test", harness_example_zone};
	static const char conf[] = "dns:\n"
	                           "  listen: [\"127.53.3.61:5300\", \"[::1]:5361\"]\n"
	                           "  allow: [127.0.0.0/8, \"::1/128\"]\n"
	                           "  upstreams: [\"127.53.3.62:5300\"]\n"
	                           "  threads: 2\n";
	uint8_t q[512], a[4096];

	snprintf(node, sizeof(node), "127.53.3.61");
	cr_assert_eq(knotd_start(&knot, "127.53.3.62", PORT, zones, 1), 0, "knotd did not start");
	cr_assert_eq(anycached_start(&daemon_, conf, node, PORT), 0, "anycached did not answer");
	int qlen = dns_make_query(q, sizeof(q), 0x6666, "www.example.test", 28, true);
	int n = dns_udp_exchange("::1", 5361, q, (size_t)qlen, a, sizeof(a), 3000);
	cr_assert_gt(n, 12, "no UDP answer over ::1 (%d)", n);
	cr_assert_eq(rd16(a), 0x6666);
	cr_assert_eq(RCODE(a), 0);
	cr_assert_eq(ANCOUNT(a), 1);
	char out[4096];
	char *argv[] = {"kdig", "@::1",   "-p",         "5361",
	                "+tcp", "+short", "+timeout=2", "www.example.test",
	                "AAAA", NULL};
	cr_assert_eq(run_capture(argv, false, out, sizeof(out), 10000), 0, "%s", out);
	cr_assert_str_eq(out, "2001:db8::80\n", "TCP over ::1");
}
