/*
 * BFD (RFC 5880/5881) between anycached and BIRD 2, coupled to BGP (RFC 5882),
 * in the two-namespace lab of bgp_lab.h:
 *
 *   router ns anyc-bb-<pid>  r0 10.53.40.1/24 fd53:40::1/64   bird (BGP + BFD 100 ms x 3)
 *   node ns   anyc-bn-<pid>  n0 10.53.40.2/24 fd53:40::2/64   anycached (bfd: 100ms x 3)
 *                            lo 10.53.41.4/32 10.53.41.5/32 fd53:41::4/128 (the VIPs)
 *
 * The test: the BFD session comes Up on both sides and the routes arrive;
 * SIGSTOP freezes anycached (BGP's TCP stays open, the hold timer is 9 s), so
 * only BFD can tell BIRD: it must drop the BGP session and the routes within
 * the Detection Time (3 x 100 ms), measured and asserted under 1 s; SIGCONT
 * brings BFD and the routes back; SIGTERM still exits 0.
 *
 * birdc talks to BIRD's control socket, a file in the test's directory, so
 * it runs outside the namespace. .fini stops both daemons by PID and deletes
 * both namespaces.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgp_lab.h"
#include "ctl_itest.h"
#include "harness.h"
#include "netns.h"

#define ROUTER_AS 65001u
#define NODE_AS   4200000001u

static struct bgp_lab lab;
static char bird_sock[600];

static void lab_fini(void)
{
	/* A frozen daemon cannot take its SIGTERM. */
	if (lab.any.pid > 0)
		kill(lab.any.pid, SIGCONT);
	bgp_lab_down(&lab);
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	if (geteuid() != 0)
		harness_skip_all("needs root: network namespaces and veth links");
	if (access("/usr/sbin/bird", X_OK) != 0)
		harness_skip_all("BIRD 2 not installed (/usr/sbin/bird)");
	if (!getenv("ANYCACHED"))
		harness_skip_all("ANYCACHED not set (run through meson test)");
}

static void lab_up(void)
{
	bgp_lab_net_up(&lab.r, &lab.n, &lab.dir, "bb", "bn", "bfdbird");
}

static void birdc(const char *cmd, char *out, size_t cap)
{
	birdc_run(bird_sock, cmd, out, cap);
}

static void bird_start(void)
{
	char text[2048];

	snprintf(lab.router_log, sizeof(lab.router_log), "%s/bird.log", lab.dir.path);
	snprintf(text, sizeof(text),
	         "log \"%s\" all;\n"
	         "router id 10.53.40.1;\n"
	         "protocol device { }\n"
	         "protocol bfd {\n"
	         "  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; "
	         "multiplier 3; };\n"
	         "}\n"
	         "protocol bgp anyc {\n"
	         "  local 10.53.40.1 as %u;\n"
	         "  neighbor 10.53.40.2 as %u;\n"
	         "  hold time 9;\n"
	         "  error wait time 1, 5;\n"
	         "  connect delay time 1;\n"
	         "  connect retry time 2;\n"
	         "  bfd on;\n"
	         "  ipv4 { import all; export none; };\n"
	         "  ipv6 { import all; export none; };\n"
	         "}\n",
	         lab.router_log, ROUTER_AS, NODE_AS);
	bgp_lab_bird_start(&lab, text, bird_sock, sizeof(bird_sock));
}

static void any_start(void)
{
	char yaml[2048];

	bgp_lab_bfd_node_yaml(yaml, sizeof(yaml), NODE_AS, ROUTER_AS);
	cr_assert_eq(netns_anycached_start(&lab.any, &lab.n, lab.dir.path, yaml), 0);
}

/* BIRD's BFD session toward the node, as `show bfd sessions` prints it. */
static bool bfd_up(char *out, size_t cap)
{
	char line[256];
	birdc("show bfd sessions", out, cap);
	text_line(out, "10.53.40.2", line, sizeof(line));
	return strstr(line, " Up ") != NULL;
}

static bool bgp_established(char *out, size_t cap)
{
	birdc("show protocols all anyc", out, cap);
	return strstr(out, "BGP state:          Established") != NULL;
}

static bool have_routes(char *out, size_t cap)
{
	birdc("show route all", out, cap);
	return strstr(out, "10.53.41.4/32") && strstr(out, "10.53.41.5/32") &&
	       strstr(out, "fd53:41::4/128");
}

static bool no_routes(char *out, size_t cap)
{
	birdc("show route all", out, cap);
	return !strstr(out, "10.53.41.");
}

static void dump(const char *what)
{
	static char out[16384];
	fprintf(stderr, "---- %s ----\n", what);
	birdc("show bfd sessions", out, sizeof(out));
	fprintf(stderr, "%s\n", out);
	birdc("show protocols all anyc", out, sizeof(out));
	fprintf(stderr, "%s\n", out);
	proc_dump_log(&lab.any);
	struct proc p = lab.router;
	snprintf(p.log, sizeof(p.log), "%s", lab.router_log);
	proc_dump_log(&p);
}

Test(bfd_bird, freeze_drops_bgp_within_detection_time, .init = lab_up, .fini = lab_fini,
     .timeout = 120)
{
	static char out[16384];

	bird_start();
	any_start();
	bool ok = bgp_lab_wait_for(bfd_up, 20000, out, sizeof(out));
	if (!ok)
		dump("BFD did not come up");
	cr_assert(ok, "BIRD's BFD session to the node is not Up");
	ok = bgp_lab_wait_for(have_routes, 20000, out, sizeof(out));
	if (!ok)
		dump("no routes");
	cr_assert(ok, "the routes did not arrive");
	cr_assert(bgp_established(out, sizeof(out)));
	/* Our side says so too (the daemon logs BFD Up at info level). */
	static char up_log[65536];
	FILE *f = fopen(lab.any.log, "r");
	size_t un = f ? fread(up_log, 1, sizeof(up_log) - 1, f) : 0;
	up_log[un] = 0;
	if (f)
		fclose(f);
	cr_expect(strstr(up_log, "bfd: 10.53.40.1: Init -> Up") ||
	              strstr(up_log, "bfd: 10.53.40.1: Down -> Up"),
	          "anycached did not log BFD Up:\n%s", up_log);
	/* Let the Poll Sequences finish and the session run at 100 ms. */
	sleep_ms(1500);
	cr_assert(bfd_up(out, sizeof(out)), "%s", out);
	/* The operator's view agrees: anycachectl show bfd, at the negotiated 100 ms. */
	char sock[600], ctl[4096];
	snprintf(sock, sizeof(sock), "%s/control.sock", lab.dir.path);
	cr_assert_eq(CTL(sock, ctl, "show", "bfd"), 0, "%s", ctl);
	cr_assert(strstr(ctl, "10.53.40.1") && strstr(ctl, " Up ") && strstr(ctl, "100"),
	          "anycachectl show bfd:\n%s", ctl);

	/* Freeze: TCP stays open and quiet, BGP's hold timer is 9 s: only BFD can tell. */
	uint64_t t0 = now_ms(), t_bgp = 0, t_routes = 0;
	cr_assert_eq(kill(lab.any.pid, SIGSTOP), 0);
	while (now_ms() - t0 < 5000 && !(t_bgp && t_routes)) {
		if (!t_bgp && !bgp_established(out, sizeof(out)))
			t_bgp = now_ms() - t0;
		if (!t_routes && no_routes(out, sizeof(out)))
			t_routes = now_ms() - t0;
		usleep(10 * 1000);
	}
	fprintf(stderr,
	        "bfd_bird: SIGSTOP -> BIRD's BGP session down after %llu ms, routes gone after "
	        "%llu ms (BFD 100 ms x 3)\n",
	        (unsigned long long)t_bgp, (unsigned long long)t_routes);
	if (!t_bgp || !t_routes)
		dump("still up after the freeze");
	cr_assert(t_bgp, "BIRD kept the BGP session for 5 s: BFD did not take it down");
	cr_assert(t_routes, "the routes stayed for 5 s");
	cr_expect_lt(t_bgp, 1000, "BGP down after %llu ms", (unsigned long long)t_bgp);
	cr_expect_lt(t_routes, 1000, "routes gone after %llu ms", (unsigned long long)t_routes);
	birdc("show protocols all anyc", out, sizeof(out));
	cr_expect(strstr(out, "BFD session down"), "BIRD's reason:\n%s", out);

	/* Thaw: BFD comes back, then BGP and the routes. */
	uint64_t t1 = now_ms();
	cr_assert_eq(kill(lab.any.pid, SIGCONT), 0);
	ok = bgp_lab_wait_for(bfd_up, 20000, out, sizeof(out)) &&
	     bgp_lab_wait_for(have_routes, 40000, out, sizeof(out));
	if (!ok)
		dump("did not come back");
	cr_assert(ok, "BFD and the routes did not come back after SIGCONT");
	fprintf(stderr, "bfd_bird: SIGCONT -> BFD Up and routes back after %llu ms\n",
	        (unsigned long long)(now_ms() - t1));
	cr_expect(proc_alive(&lab.any));
	/* Thawed, our side went Down: by its own Detection Time long past
	 * (diagnostic 1), or, when BIRD's Down packet was read before that timer
	 * ran, by the neighbor's signal (diagnostic 3; RFC 5880 §6.8.6): which
	 * comes first is a race on thaw. Either way BFD closed the BGP session. */
	static char logtext[65536];
	FILE *lf = fopen(lab.any.log, "r");
	size_t ln = lf ? fread(logtext, 1, sizeof(logtext) - 1, lf) : 0;
	logtext[ln] = 0;
	if (lf)
		fclose(lf);
	cr_expect(strstr(logtext, "Up -> Down (Control Detection Time Expired)") ||
	              strstr(logtext, "Up -> Down (Neighbor Signaled Session Down)"),
	          "%s", logtext);
	cr_expect(strstr(logtext, "BFD session down: closing the BGP session"), "%s", logtext);

	/* SIGTERM: a clean exit (AdminDown, Cease, drain). */
	int st = proc_stop(&lab.any, SIGTERM, 8000);
	cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "anycached must exit 0 (wait status %d)", st);
	memset(&lab.any, 0, sizeof(lab.any));
	cr_expect(bgp_lab_wait_for(no_routes, 3000, out, sizeof(out)), "routes after SIGTERM:\n%s",
	          out);
}
