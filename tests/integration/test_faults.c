/*
 * Issue 10, "faults to fix" items 3, 4, 5, 6 and 9: the real daemon against
 * a scripted upstream (fake_upstream.py: one A record per name, behaviour by
 * flag) or against nothing at all (ICMP port unreachable). Each test fails
 * on the code before the fix; the comment above it says what it showed.
 * Loopback only: test n uses anycached on 127.53.83.(10n+1) and the
 * upstream on 127.53.83.(10n+2) (test_compliance has n = 0).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_itest.h"
#include "harness.h"

#define PORT 5300

static struct anycached daemon_;
static struct proc fake;
static struct tmpdir fdir;
static char node[32], upstream[32], sock[600];

static void fake_start(const char *flags)
{
	char script[512], log[600], cmd[1200];
	const char *src = getenv("ANYCACHE_SRCDIR");

	cr_assert(src, "ANYCACHE_SRCDIR not set");
	snprintf(script, sizeof(script), "%s/tests/integration/fake_upstream.py", src);
	if (!fdir.path[0])
		cr_assert_eq(tmpdir_make(&fdir, "fake"), 0);
	snprintf(log, sizeof(log), "%s/fake.log", fdir.path);
	snprintf(cmd, sizeof(cmd), "exec /usr/bin/python3 -u %s --addr %s --port %d %s", script,
	         upstream, PORT, flags);
	char *argv[] = {"sh", "-c", cmd, NULL};
	cr_assert_eq(proc_start(&fake, "fake-upstream", argv, log), 0);
	for (int i = 0; i < 100; i++) { /* bounded: 5 s */
		FILE *f = fopen(log, "r");
		char line[256] = "";
		if (f) {
			bool ready = fgets(line, sizeof(line), f) && strncmp(line, "ready", 5) == 0;
			fclose(f);
			if (ready)
				return;
		}
		sleep_ms(50);
	}
	proc_dump_log(&fake);
	cr_assert_fail("fake upstream did not start");
}

/* Lines of the fake's log that start with prefix ("Q name. type opt=N"). */
static int fake_count(const char *prefix)
{
	char path[600], line[512];
	int n = 0;

	snprintf(path, sizeof(path), "%s/fake.log", fdir.path);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strncmp(line, prefix, strlen(prefix)) == 0;
	fclose(f);
	return n;
}

/* anycached on .(10n+1) with one worker (policy state is per worker). */
static void node_start_allow(int n, const char *fake_flags, const char *allow)
{
	char conf[1024];

	memset(&fdir, 0, sizeof(fdir));
	snprintf(node, sizeof(node), "127.53.83.%d", 10 * n + 1);
	snprintf(upstream, sizeof(upstream), "127.53.83.%d", 10 * n + 2);
	if (fake_flags)
		fake_start(fake_flags);
	snprintf(conf, sizeof(conf),
	         "dns:\n"
	         "  listen: [\"%s:5300\"]\n"
	         "  allow: [%s]\n"
	         "  upstreams: [\"%s:5300\"]\n"
	         "  threads: 1\n"
	         "  identity: faults-%d\n",
	         node, allow, upstream, n);
	cr_assert_eq(anycached_start(&daemon_, conf, node, PORT), 0, "anycached did not answer");
	snprintf(sock, sizeof(sock), "%s/control.sock", daemon_.dir.path);
}

static void node_start(int n, const char *fake_flags)
{
	node_start_allow(n, fake_flags, "127.0.0.0/8");
}

static void teardown(void)
{
	anycached_stop(&daemon_);
	if (fake.pid > 0)
		proc_stop(&fake, SIGTERM, 2000);
	fake.pid = 0;
	tmpdir_remove(&fdir);
}

TestSuite(faults, .fini = teardown, .timeout = 60);

static int ask(const char *name, uint16_t type, bool edns, bool do_bit, uint8_t *a, size_t cap)
{
	uint8_t q[512];
	int qlen = dns_make_query(q, sizeof(q), 0x5151, name, type, edns);
	cr_assert_gt(qlen, 0);
	if (do_bit)
		q[qlen - 4] |= 0x80; /* the OPT's DO bit (RFC 3225) */
	return dns_udp_exchange(node, PORT, q, (size_t)qlen, a, cap, 3000);
}

static uint32_t first_ttl(const uint8_t *a, int n)
{
	size_t off = 12;
	while (off < (size_t)n && a[off]) /* the question's name (never compressed) */
		off += 1 + a[off];
	off += 1 + 4 + 2 + 2 + 2; /* root, qtype, qclass, the answer's pointer, type, class */
	cr_assert_leq(off + 4, (size_t)n, "no answer record");
	return (uint32_t)a[off] << 24 | (uint32_t)a[off + 1] << 16 | (uint32_t)a[off + 2] << 8 |
	       a[off + 3];
}

#define RCODE(a)   ((a)[3] & 0x0f)
#define ANCOUNT(a) ((a)[6] << 8 | (a)[7])

/*
 * Item 3: AXFR and IXFR were forwarded (the upstream then REFUSED them, a
 * hard failure for its health). Now REFUSED (zone transfers) and NOTIMP
 * (MAILA, MAILB) here, and the upstream never sees them.
 */
Test(faults, meta_qtypes_answered_here_not_forwarded)
{
	static const struct {
		uint16_t type;
		uint8_t rcode;
	} t[] = {{252, 5}, {251, 5}, {253, 4}, {254, 4}};
	uint8_t a[1024];

	node_start(1, "");
	for (unsigned i = 0; i < 4; i++) {
		int n = ask("zone.faults.test", t[i].type, true, false, a, sizeof(a));
		cr_assert_geq(n, 12);
		cr_assert_eq(RCODE(a), t[i].rcode, "qtype %u: rcode %u", t[i].type, RCODE(a));
	}
	cr_assert_geq(ask("zone.faults.test", 1, true, false, a, sizeof(a)), 12);
	cr_assert_eq(RCODE(a), 0);
	cr_assert_eq(fake_count("Q zone.faults.test. 1 "), 1, "the A query went upstream");
	cr_assert_eq(fake_count("Q zone.faults.test. 25"), 0, "no meta-QTYPE went upstream");
}

/*
 * Item 4: an upstream that answers FORMERR without OPT to EDNS queries gets
 * the query again without OPT (RFC 6891 §7); that answer (no RRSIGs
 * possible) was cached under the DO=1 key. Now it is served, not cached:
 * the second DO=1 query goes upstream again.
 */
Test(faults, answer_without_opt_never_cached_for_do)
{
	uint8_t a[1024];

	node_start(2, "--formerr-edns");
	for (int i = 0; i < 2; i++) {
		int n = ask("do.faults.test", 1, true, true, a, sizeof(a));
		cr_assert_geq(n, 12);
		cr_assert_eq(RCODE(a), 0);
		cr_assert_eq(ANCOUNT(a), 1);
	}
	cr_assert_eq(fake_count("Q do.faults.test. 1 opt=1"), 2, "one EDNS try per client query");
	cr_assert_eq(fake_count("Q do.faults.test. 1 opt=0"), 2, "and one plain retry each");
}

/*
 * Item 9: the first answer carried the upstream's TTLs as they were; only
 * cached copies were clamped. Now max-ttl (86400 by default) and RFC 2181
 * §8 (top bit set = 0) apply to the first answer too.
 */
Test(faults, first_answer_ttls_clamped)
{
	static const struct {
		const char *name;
		uint32_t ttl;
	} t[] = {{"ttl2147483649.faults.test", 0},
	         {"ttl999999.faults.test", 86400},
	         {"ttl60.faults.test", 60}};
	uint8_t a[1024];

	node_start(3, "");
	for (unsigned i = 0; i < 3; i++) {
		int n = ask(t[i].name, 1, true, false, a, sizeof(a));
		cr_assert_geq(n, 12);
		cr_assert_eq(RCODE(a), 0);
		cr_assert_eq(first_ttl(a, n), t[i].ttl, "%s: TTL %u", t[i].name, first_ttl(a, n));
	}
}

/*
 * Item 5: with nothing listening at the upstream, the kernel turns the ICMP
 * port unreachable into ECONNREFUSED on our socket; the query's SERVFAIL
 * was then remembered for 5 s (anyone who can forge that ICMP blanks the
 * name). Now a transport error is never remembered: once the upstream
 * listens, the very next query is answered.
 */
Test(faults, icmp_unreachable_is_not_remembered)
{
	uint8_t a[1024];

	node_start(4, NULL);
	uint64_t t0 = now_ms();
	int n = ask("icmp.faults.test", 1, true, false, a, sizeof(a));
	cr_assert_geq(n, 12);
	cr_assert_eq(RCODE(a), 2, "SERVFAIL while nothing listens");
	cr_assert_lt(now_ms() - t0, 1500, "the ICMP error ends it early, no timeout");
	fake_start("");
	n = ask("icmp.faults.test", 1, true, false, a, sizeof(a));
	cr_assert_geq(n, 12);
	cr_assert_lt(now_ms() - t0, 4000, "inside the old 5 s SERVFAIL memory");
	cr_assert_eq(RCODE(a), 0, "answered once the upstream listens, rcode %u", RCODE(a));
	cr_assert_eq(ANCOUNT(a), 1);
}

/*
 * Item 6: an upstream that answers with the question lowercased (ignores
 * the 0x20 case) got 100 % SERVFAIL: every answer looked like a spoof. Now
 * it is detected, logged once, and served without case randomisation;
 * `anycachectl show upstreams` says so.
 */
Test(faults, upstream_ignoring_0x20_is_served_without_it)
{
	char name[64];
	uint8_t a[1024];

	node_start(5, "--lowercase");
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "CaSe%d.Faults.Test", i);
		int n = ask(name, 1, true, false, a, sizeof(a));
		cr_assert_geq(n, 12);
		cr_assert_eq(RCODE(a), 0, "%s: rcode %u", name, RCODE(a));
		cr_assert_eq(ANCOUNT(a), 1);
		cr_assert_eq(memcmp(a + 13, "CaSe", 4), 0, "the client's case comes back");
	}
	json_t *j = ctl_json(sock, "show upstreams", NULL);
	json_t *u = json_array_get(json_object_get(j, "upstreams"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(u, "dns0x20")), "off");
	cr_assert_gt(json_integer_value(json_object_get(u, "case_ignored")), 0);
	cr_assert_str_neq(json_string_value(json_object_get(u, "state")), "dead");
	json_decref(j);
	char out[4096];
	cr_assert_eq(CTL(sock, out, "show", "upstreams"), 0);
	cr_assert(strstr(out, " off\n"), "the 0x20 column: %s", out);
	/* Logged once (one worker), not per query. */
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "grep -c 'does not echo DNS 0x20' %s", daemon_.proc.log);
	char *argv[] = {"sh", "-c", cmd, NULL};
	cr_assert_eq(run_capture(argv, false, out, sizeof(out), 5000), 0);
	cr_assert_str_eq(out, "1\n");
}

/*
 * Item 3: timeouts on a zone the client chose to be slow and REFUSED for
 * names it chose made the one healthy upstream DEAD after three in a row.
 * Now those only make it confirming; its probe of the last good name is
 * answered and it stays alive.
 */
Test(faults, client_chosen_failures_do_not_kill_upstream)
{
	uint8_t q[512], a[1024];
	char name[64];
	int fds[8];

	node_start(6, "--silent slow.faults.test. --refuse refused.faults.test.");
	cr_assert_geq(ask("good.faults.test", 1, true, false, a, sizeof(a)), 12);
	cr_assert_eq(RCODE(a), 0);
	/* Eight bad names at once, so no good answer comes between them. */
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "n%d.%s.faults.test", i, i & 1 ? "refused" : "slow");
		int qlen = dns_make_query(q, sizeof(q), (uint16_t)(0x7000 + i), name, 1, true);
		fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(PORT)};
		inet_pton(AF_INET, node, &sa.sin_addr);
		cr_assert_eq(sendto(fds[i], q, (size_t)qlen, 0, (struct sockaddr *)&sa, sizeof(sa)),
		             qlen);
	}
	sleep_ms(3500); /* the slow names' whole budget (2.5 s) and the probe */
	for (int i = 0; i < 8; i++)
		close(fds[i]);
	cr_assert_geq(fake_count("Q n"), 8);
	json_t *j = ctl_json(sock, "show upstreams", NULL);
	json_t *u = json_array_get(json_object_get(j, "upstreams"), 0);
	const char *state = json_string_value(json_object_get(u, "state"));
	cr_assert_str_neq(state, "dead", "killed by names the client chose");
	cr_assert_gt(json_integer_value(json_object_get(u, "probes")), 0, "a confirming probe");
	json_decref(j);
	cr_assert_geq(fake_count("Q good.faults.test. 1"), 2, "the probe asked the good name");
	cr_assert_geq(ask("good2.faults.test", 1, true, false, a, sizeof(a)), 12);
	cr_assert_eq(RCODE(a), 0);
}

/*
 * Item 8: the ACL was checked after dns_request_parse had walked every
 * record section. Measured on b31b7a7 over TCP from a source outside
 * dns.allow: 4000 messages of 64 KiB with 5900 records each cost the daemon
 * 280-440 ms of CPU against 70-90 ms for the same bytes of padding. Since
 * the stream server (main 0506731) TCP and TLS sources are refused at
 * accept, and a UDP datagram is at most one 2 KiB receive buffer (about 170
 * records); the UDP path now checks the ACL after the header and question
 * (dns_request_parse_head, tests/dns: head_does_not_walk_records). Here:
 * what a stranger gets from that path is still right, REFUSED with the
 * question, and our OPT when the query's only record is one.
 */
Test(faults, acl_refused_from_header_and_question)
{
	uint8_t q[2048], a[512];

	node_start_allow(7, NULL, "127.53.83.79/32");
	int qlen = dns_make_query(q, sizeof(q), 0x4711, "acl.faults.test", 1, true);
	cr_assert_gt(qlen, 0);
	int n =
	    dns_udp_exchange_from("127.53.83.72", node, PORT, q, (size_t)qlen, a, sizeof(a), 3000);
	cr_assert_eq(n, qlen, "header, question and OPT: %d", n);
	cr_assert_eq(RCODE(a), 5);
	cr_assert_eq(memcmp(a + 12, q + 12, (size_t)qlen - 12 - 11), 0, "the question echoed");
	cr_assert_eq(a[10] << 8 | a[11], 1, "our OPT");
	/* A datagram full of records after the question: REFUSED all the same. */
	memset(q + qlen - 11, 0, sizeof(q) - (size_t)qlen + 11);
	unsigned records = 160;
	q[6] = 0;
	q[7] = (uint8_t)records;
	q[10] = q[11] = 0;
	for (unsigned i = 0; i < records; i++) {
		uint8_t *r = q + qlen - 11 + 11 * i;
		r[2] = 1;
		r[4] = 1;
	}
	n = dns_udp_exchange_from("127.53.83.72", node, PORT, q, (size_t)qlen - 11 + 11 * records,
	                          a, sizeof(a), 3000);
	cr_assert_geq(n, 12);
	cr_assert_eq(RCODE(a), 5);
	cr_assert_eq(a[4] << 8 | a[5], 1, "the question echoed");
}
