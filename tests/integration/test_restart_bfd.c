/*
 * test_restart_bfd.c: `anycachectl restart` with BFD on (issue 11): BIRD runs
 * BFD 100 ms x 3 coupled to BGP, so a successor that went quiet for 300 ms,
 * or came back with new discriminators, would take the BGP session and the
 * routes down. Two namespaces of our own (10.53.62.0/24):
 *
 *   router ns anyc-rb-<pid>  r0 10.53.62.1/28   bird (BGP + BFD 100 ms x 3)
 *   node ns   anyc-rn-<pid>  n0 10.53.62.2/28   anycached (bfd: 100ms x 3)
 *                            lo 10.53.62.68/32 10.53.62.69/32 (the VIPs)
 *
 * The test: BFD Up and the routes at BIRD; restart; while it runs and for
 * two seconds after the old process exited, every sample has BIRD's BFD
 * session Up and the routes present; afterwards BIRD's BFD session and BGP
 * session keep their "since" times and BIRD logged no state change. .fini
 * stops both daemons by PID (the successor is our child: we are its
 * subreaper) and deletes both namespaces.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgp_lab.h"
#include "ctl_itest.h"
#include "harness.h"
#include "netns.h"

#define ROUTER_AS 65001u
#define NODE_AS   65002u

static struct bgp_lab lab;
static char bird_sock[600];

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
	const char *const tags[] = {"rb", "rn"};

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	netns_reap_stale(tags, 2);
	cr_assert_eq(tmpdir_make(&lab.dir, "restartbfd"), 0);
	cr_assert_eq(netns_create(&lab.r, "rb"), 0);
	cr_assert_eq(netns_create(&lab.n, "rn"), 0);
	cr_assert_eq(netns_link(&lab.r, "r0", "10.53.62.1/28", &lab.n, "n0", "10.53.62.2/28"), 0);
	cr_assert_eq(netns_add_lo_addr(&lab.n, "10.53.62.68/32"), 0);
	cr_assert_eq(netns_add_lo_addr(&lab.n, "10.53.62.69/32"), 0);
}

static void lab_fini(void)
{
	bgp_lab_down(&lab);
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
	         "router id 10.53.62.1;\n"
	         "protocol device { }\n"
	         "protocol bfd {\n"
	         "  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; "
	         "multiplier 3; };\n"
	         "}\n"
	         "protocol bgp anyc {\n"
	         "  local 10.53.62.1 as %u;\n"
	         "  neighbor 10.53.62.2 as %u;\n"
	         "  hold time 9;\n"
	         "  error wait time 1, 5;\n"
	         "  connect delay time 1;\n"
	         "  connect retry time 2;\n"
	         "  bfd on;\n"
	         "  ipv4 { import all; export none; };\n"
	         "}\n",
	         lab.router_log, ROUTER_AS, NODE_AS);
	bgp_lab_bird_start(&lab, text, bird_sock, sizeof(bird_sock));
}

static void any_start(void)
{
	char yaml[2048];

	snprintf(yaml, sizeof(yaml),
	         "dns:\n"
	         "  listen: [\"10.53.62.68\", \"10.53.62.69\"]\n"
	         "  allow: [10.53.62.0/24]\n"
	         "  upstreams: [\"10.53.62.9\"]\n"
	         "  threads: 2\n"
	         "health: {drain: 0s}\n"
	         "bgp:\n"
	         "  asn: %u\n"
	         "  router-id: 10.53.62.2\n"
	         "  neighbors:\n"
	         "    - address: 10.53.62.1\n"
	         "      asn: %u\n"
	         "      local-address: 10.53.62.2\n"
	         "      hold-time: 9s\n"
	         "      bfd: true\n"
	         "  announce:\n"
	         "    - prefix: 10.53.62.68/32\n"
	         "    - prefix: 10.53.62.69/32\n"
	         "bfd:\n"
	         "  interval: 100ms\n"
	         "  multiplier: 3\n",
	         NODE_AS, ROUTER_AS);
	cr_assert_eq(netns_anycached_start(&lab.any, &lab.n, lab.dir.path, yaml), 0);
}

static bool bfd_up(char *out, size_t cap)
{
	char line[256];
	birdc("show bfd sessions", out, cap);
	text_line(out, "10.53.62.2", line, sizeof(line));
	return strstr(line, " Up ") != NULL;
}

static bool have_routes(char *out, size_t cap)
{
	birdc("show route", out, cap);
	return strstr(out, "10.53.62.68/32") && strstr(out, "10.53.62.69/32");
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

static long status_pid(const char *sock)
{
	char out[8192];
	cr_assert_eq(CTL_J(sock, out, "status"), 0, "status: %s", out);
	const char *p = strstr(out, "\"pid\":");
	cr_assert_not_null(p, "%s", out);
	return strtol(p + 6, NULL, 10);
}

Test(restart_bfd, bfd_and_bgp_stay_up, .init = lab_up, .fini = lab_fini, .timeout = 120)
{
	static char out[16384];
	char bfd0[256], bfd1[256], proto0[256], proto1[256], sock[600], ctl_log[700];
	struct proc ctl = {0};

	bird_start();
	any_start();
	bool ok = bgp_lab_wait_for(bfd_up, 20000, out, sizeof(out)) &&
	          bgp_lab_wait_for(have_routes, 20000, out, sizeof(out));
	if (!ok)
		dump("no BFD or no routes");
	cr_assert(ok, "BFD Up and the routes at BIRD first");
	sleep_ms(1500); /* the Poll Sequences end: BFD at 100 ms */
	birdc("show bfd sessions", out, sizeof(out));
	text_line(out, "10.53.62.2", bfd0, sizeof(bfd0));
	birdc("show protocols anyc", out, sizeof(out));
	text_line(out, "anyc ", proto0, sizeof(proto0));
	cr_assert(strstr(bfd0, " Up ") && proto0[0], "%s / %s", bfd0, proto0);
	int changes0 = count_in_file(lab.router_log, "State changed");

	snprintf(sock, sizeof(sock), "%s/control.sock", lab.dir.path);
	pid_t old = lab.any.pid;
	cr_assert_eq(status_pid(sock), old);
	snprintf(ctl_log, sizeof(ctl_log), "%s/restart.out", lab.dir.path);
	char *cargv[] = {ctl_bin(), "-s", sock, "restart", NULL};
	cr_assert_eq(proc_start(&ctl, "anycachectl", cargv, ctl_log), 0);

	/* During the restart and 2 s after the old process left: BFD Up, routes there. */
	int samples = 0, st_ctl = -ETIMEDOUT;
	uint64_t end = now_ms() + 15000, gone_at = 0;
	while (now_ms() < end) {
		bool up = bfd_up(out, sizeof(out));
		if (!up)
			dump("BFD not Up during the restart");
		cr_assert(up, "BIRD's BFD session left Up (sample %d)", samples);
		bool routes = have_routes(out, sizeof(out));
		cr_assert(routes, "routes gone at BIRD (sample %d): %s", samples, out);
		samples++;
		if (ctl.pid > 0)
			st_ctl = proc_wait(&ctl, 1);
		if (!gone_at && lab.any.pid == old && proc_wait(&lab.any, 1) != -ETIMEDOUT) {
			gone_at = now_ms();
			lab.any.pid = -1;
		}
		if (gone_at && now_ms() - gone_at > 2000)
			break;
		sleep_ms(30);
	}
	if (ctl.pid > 0)
		st_ctl = proc_wait(&ctl, 10000);
	char ctl_out[1024] = "";
	FILE *f = fopen(ctl_log, "r");
	if (f) {
		size_t n = fread(ctl_out, 1, sizeof(ctl_out) - 1, f);
		ctl_out[n] = 0;
		fclose(f);
	}
	if (st_ctl != 0)
		dump("restart failed");
	cr_assert_eq(st_ctl, 0, "anycachectl restart: %s", ctl_out);
	cr_assert(gone_at, "the old process did not exit");
	long now_pid = status_pid(sock);
	cr_assert_neq(now_pid, old);
	lab.any.pid = (pid_t)now_pid; /* our child now: .fini stops it */
	fprintf(stderr, "restart_bfd: %d samples of BIRD, BFD Up and routes present in all\n",
	        samples);

	birdc("show bfd sessions", out, sizeof(out));
	text_line(out, "10.53.62.2", bfd1, sizeof(bfd1));
	birdc("show protocols anyc", out, sizeof(out));
	text_line(out, "anyc ", proto1, sizeof(proto1));
	/* The "since" columns: a BFD or BGP session that went down and came back moved them. */
	cr_assert(strstr(bfd1, " Up "), "%s", bfd1);
	char *s0 = strstr(bfd0, " Up "), *s1 = strstr(bfd1, " Up ");
	cr_assert(s0 && s1 && bird_same_time(s0, s1), "BFD session restarted:\n%s\n%s", bfd0, bfd1);
	cr_assert(bird_same_time(proto0, proto1), "BGP session restarted:\n%s\n%s", proto0, proto1);
	cr_assert_eq(count_in_file(lab.router_log, "State changed"), changes0,
	             "BIRD logged a state change");
}
