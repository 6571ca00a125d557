/*
 * Issue 10, item 10: ISC's DNS compliance tester (genreport, vendored in
 * tests/tools/genreport) in recursive mode with the full test set
 * (`-R -f`) against anycached forwarding to knotd must find every test ok.
 * Loopback only: anycached on 127.53.83.1, knotd on 127.53.83.2.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define NODE     "127.53.83.1"
#define UPSTREAM "127.53.83.2"
#define PORT     5300

static struct knotd knot;
static struct anycached daemon_;

static const char conf_yaml[] = "dns:\n"
                                "  listen: [\"" NODE ":5300\"]\n"
                                "  allow: [127.0.0.0/8]\n"
                                "  upstreams: [\"" UPSTREAM ":5300\"]\n"
                                "  threads: 2\n"
                                "  identity: compliance-node\n";

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

TestSuite(compliance, .init = setup, .fini = teardown, .timeout = 90);

/*
 * genreport reads "zone server address" lines on stdin and prints one line
 * per address: "zone. @addr (server.): test=result ..." where a result is
 * "ok" (possibly followed by what it saw, ",cookie"), or names what was wrong.
 */
Test(compliance, genreport_recursive_full_all_ok)
{
	const char *tool = getenv("GENREPORT");
	char cmd[1024], out[16384];

	cr_assert(tool && *tool, "GENREPORT not set (tests/integration/meson.build sets it)");
	snprintf(cmd, sizeof(cmd), "echo 'example.test ns.example.test %s' | '%s' -R -f -P %d",
	         NODE, tool, PORT);
	char *argv[] = {"sh", "-c", cmd, NULL};
	int rc = run_capture(argv, true, out, sizeof(out), 60000);
	printf("genreport: %s", out);
	cr_assert_eq(rc, 0, "genreport failed (%d): %s", rc, out);
	cr_assert(strstr(out, "example.test. @" NODE), "no report line for the node: %s", out);

	/* Every "name=result" pair must be "=ok"; count them for the message. */
	unsigned tests = 0, bad = 0;
	char bads[4096] = "";
	const char *p = strchr(out, ':');
	cr_assert(p, "no results: %s", out);
	char line[16384];
	snprintf(line, sizeof(line), "%s", p + 1);
	for (char *save = NULL, *tok = strtok_r(line, " \n", &save); tok;
	     tok = strtok_r(NULL, " \n", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq)
			continue;
		tests++;
		/* genreport adds "ok" only to a test with no fault, and puts what it
		 * merely saw (cookie, nsid, expire, subnet) after it: "ok,cookie". */
		if (strcmp(eq + 1, "ok") != 0 && strncmp(eq + 1, "ok,", 3) != 0) {
			bad++;
			strncat(bads, tok, sizeof(bads) - strlen(bads) - 2);
			strcat(bads, " ");
		}
	}
	printf("genreport: %u tests, %u not ok: %s\n", tests, bad, bads);
	cr_assert_geq(tests, 30, "too few results parsed: %s", out);
	cr_assert_eq(bad, 0, "%u of %u tests not ok: %s", bad, tests, bads);
}
