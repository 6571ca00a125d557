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

#include "dns_itest.h"

#define NET 83

/* anycached on 127.53.83.1 (threads 2), knotd on .2: dns_itest.h's pair. */
static void setup(void)
{
	up_with(NET, 0, NULL);
}

TestSuite(compliance, .init = setup, .fini = down, .timeout = 90);

/*
 * genreport reads "zone server address" lines on stdin and prints one line
 * per address: "zone. @addr (server.): test=result ..." where a result is
 * "ok" (possibly followed by what it saw, ",cookie"), or names what was wrong.
 */
Test(compliance, genreport_recursive_full_all_ok)
{
	const char *tool = getenv("GENREPORT");
	char cmd[1024], out[16384], want[64];

	cr_assert(tool && *tool, "GENREPORT not set (tests/integration/meson.build sets it)");
	snprintf(cmd, sizeof(cmd), "echo 'example.test ns.example.test %s' | '%s' -R -f -P %d",
	         node, tool, PORT);
	char *argv[] = {"sh", "-c", cmd, NULL};
	int rc = run_capture(argv, true, out, sizeof(out), 60000);
	printf("genreport: %s", out);
	cr_assert_eq(rc, 0, "genreport failed (%d): %s", rc, out);
	snprintf(want, sizeof(want), "example.test. @%s", node);
	cr_assert(strstr(out, want), "no report line for the node: %s", out);

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
