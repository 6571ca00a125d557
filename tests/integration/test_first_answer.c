/*
 * Issue 2's end-to-end path: a UDP query to an anycached listener is
 * forwarded through c-ares to knotd and the answer comes back with the
 * client's ID and question. Real processes, real client (kdig), loopback only.
 */
#include <criterion/criterion.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "harness.h"

#define NODE     "127.53.1.1"
#define UPSTREAM "127.53.1.2"
#define PORT     5300

static struct knotd knot;
static struct anycached daemon_;

static const char conf_yaml[] = "dns:\n"
                                "  listen: [\"" NODE ":5300\"]\n"
                                "  allow: [127.0.0.0/8]\n"
                                "  upstreams: [\"" UPSTREAM ":5300\"]\n"
                                "  threads: 2\n"
                                "  identity: itest-node\n";

static void setup(void)
{
	const char *zones[] = {"example.test", harness_example_zone};

	cr_assert_eq(knotd_start(&knot, UPSTREAM, PORT, zones, 1), 0, "knotd did not start");
	cr_assert_eq(anycached_start(&daemon_, conf_yaml, NODE, PORT), 0,
	             "anycached did not answer");
}

static void teardown(void)
{
	anycached_stop(&daemon_);
	knotd_stop(&knot);
}

TestSuite(first_answer, .init = setup, .fini = teardown, .timeout = 60);

Test(first_answer, kdig_gets_the_upstream_answer)
{
	char out[4096];
	char *argv[] = {"kdig",     "@" NODE,           "-p", "5300", "+short", "+timeout=2",
	                "+retry=1", "www.example.test", "A",  NULL};
	int rc = run_capture(argv, false, out, sizeof(out), 10000);

	cr_assert_eq(rc, 0, "kdig failed: %s", out);
	cr_assert_str_eq(out, "192.0.2.80\n");
}

Test(first_answer, answer_echoes_id_and_question_case)
{
	uint8_t q[512], a[4096];
	int qlen = dns_make_query(q, sizeof(q), 0xbeef, "wWw.ExAmPlE.tEsT", 28 /* AAAA */, true);
	int n = dns_udp_exchange(NODE, PORT, q, (size_t)qlen, a, sizeof(a), 3000);

	cr_assert_geq(n, 12 + 22, "no answer (%d)", n);
	cr_assert_eq(a[0], 0xbe);
	cr_assert_eq(a[1], 0xef);
	cr_assert(a[2] & 0x80, "QR must be set");
	cr_assert_eq(a[3] & 0x0f, 0, "RCODE must be NOERROR");
	cr_assert_eq(a[5], 1, "QDCOUNT 1");
	cr_assert_geq(a[7], 1, "at least one answer RR");
	/* Question: name as sent, letter case included, then AAAA IN. */
	cr_assert_arr_eq(a + 12, q + 12, 22, "question must be echoed exactly");
}

Test(first_answer, unknown_name_is_nxdomain_not_a_hang)
{
	char out[4096];
	char *argv[] = {
	    "kdig", "@" NODE, "-p", "5300", "+timeout=2", "+retry=0", "nosuch.example.test",
	    "A",    NULL};
	int rc = run_capture(argv, false, out, sizeof(out), 10000);

	cr_assert_eq(rc, 0, "kdig failed: %s", out);
	cr_assert_not_null(strstr(out, "status: NXDOMAIN"), "%s", out);
}

/* After real work (a miss and a hit), SIGTERM: exit 0 in time, no sanitizer report. */
Test(first_answer, sigterm_is_an_orderly_exit)
{
	uint8_t q[512], a[4096];
	char why[256] = "";
	int qlen = dns_make_query(q, sizeof(q), 0x5151, "www.example.test", 1, true);

	for (int i = 0; i < 2; i++)
		cr_assert_gt(dns_udp_exchange(NODE, PORT, q, (size_t)qlen, a, sizeof(a), 3000), 12);
	cr_assert_eq(anycached_stop_clean(&daemon_, 3000, why, sizeof(why)), 0, "%s", why);
}
