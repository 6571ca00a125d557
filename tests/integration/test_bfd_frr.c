/*
 * BFD between anycached and FRR 8.4's bfdd, coupled to bgpd, in the
 * two-namespace lab of bgp_lab.h (router ns anyc-bf-<pid>: zebra, bfdd,
 * bgpd; node ns anyc-bg-<pid>: anycached). FRR's bgpd reaches bfdd only
 * through zebra, so all three run, as root, with their zserv socket, vty
 * sockets, pid files and logs in the test's directory (zebra programs
 * routes only into the router namespace's own table).
 *
 * Same script as test_bfd_bird.c: BFD Up in FRR, the routes arrive; SIGSTOP
 * anycached: bgpd must drop the session (reset reason "BFD down received")
 * and the routes within the Detection Time (3 x 100 ms; asserted < 1 s);
 * SIGCONT: BFD and the routes come back; SIGTERM exits 0.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgp_lab.h"
#include "harness.h"
#include "netns.h"

#define FRR       "/usr/lib/frr/"
#define ROUTER_AS 65001u
#define NODE_AS   4200000001u

static struct bgp_lab lab;
static struct proc zebra, bfdd;

static void lab_fini(void)
{
	if (lab.any.pid > 0)
		kill(lab.any.pid, SIGCONT);
	/* bgpd (lab.router) first, then the daemons it talks to. */
	if (lab.router.pid > 0)
		proc_stop(&lab.router, SIGTERM, 5000);
	if (bfdd.pid > 0)
		proc_stop(&bfdd, SIGTERM, 5000);
	if (zebra.pid > 0)
		proc_stop(&zebra, SIGTERM, 5000);
	bgp_lab_down(&lab);
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	if (geteuid() != 0)
		harness_skip_all("needs root: network namespaces and veth links");
	if (access(FRR "bgpd", X_OK) || access(FRR "bfdd", X_OK) || access(FRR "zebra", X_OK))
		harness_skip_all("FRR's zebra, bfdd or bgpd not installed (" FRR ")");
	if (access("/usr/bin/vtysh", X_OK) != 0)
		harness_skip_all("FRR's vtysh not installed");
	if (!getenv("ANYCACHED"))
		harness_skip_all("ANYCACHED not set (run through meson test)");
}

static void lab_up(void)
{
	memset(&zebra, 0, sizeof(zebra));
	memset(&bfdd, 0, sizeof(bfdd));
	bgp_lab_net_up(&lab.r, &lab.n, &lab.dir, "bf", "bg", "bfdfrr");
	struct passwd *pw = getpwnam("frr");
	cr_assert(pw, "no frr user");
	cr_assert_eq(chown(lab.dir.path, pw->pw_uid, pw->pw_gid), 0);
}

/* vtysh -c cmd against the daemons in our directory; JSON squeezed of whitespace. */
static int vtysh(const char *cmd, char *out, size_t cap)
{
	char *argv[] = {"vtysh", "--vty_socket", lab.dir.path, "-c", (char *)cmd, NULL};
	out[0] = 0;
	int r = netns_run(&lab.r, argv, out, cap, 5000);
	size_t w = 0;
	bool str = false;
	for (size_t i = 0; out[i]; i++) {
		if (out[i] == '"' && (i == 0 || out[i - 1] != '\\'))
			str = !str;
		if (!str && (out[i] == ' ' || out[i] == '\n' || out[i] == '\t' || out[i] == '\r'))
			continue;
		out[w++] = out[i];
	}
	out[w] = 0;
	return r;
}

/* One FRR daemon from DIR/<name>.conf, waiting for its vty socket. */
static void frr_start(struct proc *p, const char *name, const char *conf_text, const char *extra1,
                      const char *extra2)
{
	char conf[512], pidf[512], sock[600], zserv[600], logopt[600], outlog[600];
	struct stat sb;

	snprintf(sock, sizeof(sock), "%s.conf", name);
	cr_assert_eq(write_file(lab.dir.path, sock, conf_text, conf, sizeof(conf)), 0);
	snprintf(pidf, sizeof(pidf), "%s/%s.pid", lab.dir.path, name);
	snprintf(zserv, sizeof(zserv), "%s/zserv.api", lab.dir.path);
	snprintf(logopt, sizeof(logopt), "file:%s/%s.log", lab.dir.path, name);
	snprintf(outlog, sizeof(outlog), "%s/%s.out", lab.dir.path, name);
	char bin[128];
	snprintf(bin, sizeof(bin), FRR "%s", name);
	/* zebra and bfdd have no --skip_runas: they run as frr (in group frrvty,
	 * which they insist on), in a directory lab_up gave to frr. */
	bool own = strcmp(name, "bgpd") != 0;
	char *argv[24] = {bin,  "-f",  conf, "-i", pidf,    "--vty_socket", lab.dir.path,
	                  "-z", zserv, "-P", "0",  "--log", logopt,         NULL};
	int n = 13;
	if (own) {
		argv[n++] = "-u";
		argv[n++] = "frr";
		argv[n++] = "-g";
		argv[n++] = "frr";
	} else {
		argv[n++] = "-S";
	}
	if (extra1)
		argv[n++] = (char *)extra1;
	if (extra2)
		argv[n++] = (char *)extra2;
	argv[n] = NULL;
	cr_assert_eq(netns_proc_start(p, &lab.r, name, argv, outlog), 0);
	snprintf(sock, sizeof(sock), "%s/%s.vty", lab.dir.path, name);
	uint64_t end = now_ms() + 10000;
	while (stat(sock, &sb) != 0 && now_ms() < end && proc_alive(p))
		usleep(50 * 1000);
	if (stat(sock, &sb) != 0)
		proc_dump_log(p);
	cr_assert(stat(sock, &sb) == 0, "%s's vty socket did not appear", name);
}

static void frr_up(void)
{
	char bgpd_conf[2048], ctl[600];

	frr_start(&zebra, "zebra", "hostname anyc-zebra\n", NULL, NULL);
	snprintf(ctl, sizeof(ctl), "--bfdctl=%s/bfdd.sock", lab.dir.path);
	frr_start(&bfdd, "bfdd",
	          "hostname anyc-bfdd\n"
	          "bfd\n"
	          " profile fast\n"
	          "  detect-multiplier 3\n"
	          "  receive-interval 100\n"
	          "  transmit-interval 100\n"
	          " exit\n"
	          "exit\n",
	          ctl, NULL);
	snprintf(bgpd_conf, sizeof(bgpd_conf),
	         "hostname anyc-bgpd\n"
	         "router bgp %u\n"
	         " bgp router-id 10.53.40.1\n"
	         " no bgp ebgp-requires-policy\n"
	         " no bgp default ipv4-unicast\n"
	         " neighbor 10.53.40.2 remote-as %u\n"
	         " neighbor 10.53.40.2 timers 3 9\n"
	         " neighbor 10.53.40.2 timers connect 1\n"
	         " neighbor 10.53.40.2 bfd profile fast\n"
	         " address-family ipv4 unicast\n"
	         "  neighbor 10.53.40.2 activate\n"
	         " exit-address-family\n"
	         " address-family ipv6 unicast\n"
	         "  neighbor 10.53.40.2 activate\n"
	         " exit-address-family\n",
	         ROUTER_AS, NODE_AS);
	snprintf(lab.router_log, sizeof(lab.router_log), "%s/bgpd.log", lab.dir.path);
	frr_start(&lab.router, "bgpd", bgpd_conf, "-l", "10.53.40.1");
}

static void any_start(void)
{
	char yaml[2048];

	bgp_lab_bfd_node_yaml(yaml, sizeof(yaml), NODE_AS, ROUTER_AS);
	cr_assert_eq(netns_anycached_start(&lab.any, &lab.n, lab.dir.path, yaml), 0);
}

static bool bfd_up(char *out, size_t cap)
{
	vtysh("show bfd peers json", out, cap);
	return strstr(out, "\"peer\":\"10.53.40.2\"") && strstr(out, "\"status\":\"up\"");
}

static bool established(char *out, size_t cap)
{
	vtysh("show bgp neighbors 10.53.40.2 json", out, cap);
	return strstr(out, "\"bgpState\":\"Established\"") != NULL;
}

static bool have_routes(char *out, size_t cap)
{
	static char v6[16384];
	vtysh("show bgp ipv6 unicast json", v6, sizeof(v6));
	vtysh("show bgp ipv4 unicast json", out, cap);
	return strstr(out, "\"10.53.41.4/32\"") && strstr(out, "\"10.53.41.5/32\"") &&
	       strstr(v6, "\"fd53:41::4/128\"");
}

static bool no_routes(char *out, size_t cap)
{
	vtysh("show bgp ipv4 unicast json", out, cap);
	return !strstr(out, "10.53.41.");
}

static void dump(const char *what)
{
	static char out[16384];
	fprintf(stderr, "---- %s ----\n", what);
	vtysh("show bfd peers", out, sizeof(out));
	fprintf(stderr, "%s\n", out);
	vtysh("show bgp neighbors 10.53.40.2 json", out, sizeof(out));
	fprintf(stderr, "%s\n", out);
	proc_dump_log(&lab.any);
	struct proc p = lab.router;
	snprintf(p.log, sizeof(p.log), "%s", lab.router_log);
	proc_dump_log(&p);
	snprintf(p.log, sizeof(p.log), "%s/bfdd.log", lab.dir.path);
	proc_dump_log(&p);
}

Test(bfd_frr, freeze_drops_bgp_within_detection_time, .init = lab_up, .fini = lab_fini,
     .timeout = 120)
{
	static char out[32768];

	frr_up();
	any_start();
	bool ok = bgp_lab_wait_for(bfd_up, 20000, out, sizeof(out));
	if (!ok)
		dump("BFD did not come up");
	cr_assert(ok, "FRR's BFD peer is not up");
	ok = bgp_lab_wait_for(have_routes, 20000, out, sizeof(out));
	if (!ok)
		dump("no routes");
	cr_assert(ok, "the routes did not arrive");
	cr_assert(established(out, sizeof(out)));
	sleep_ms(1500);
	cr_assert(bfd_up(out, sizeof(out)), "%s", out);
	vtysh("show bfd peers json", out, sizeof(out));
	cr_expect(strstr(out, "\"remote-receive-interval\":100"), "our 100 ms: %s", out);
	cr_expect(strstr(out, "\"remote-detect-multiplier\":3"), "%s", out);

	uint64_t t0 = now_ms(), t_bgp = 0, t_routes = 0;
	cr_assert_eq(kill(lab.any.pid, SIGSTOP), 0);
	while (now_ms() - t0 < 5000 && !(t_bgp && t_routes)) {
		if (!t_bgp && !established(out, sizeof(out)))
			t_bgp = now_ms() - t0;
		if (!t_routes && no_routes(out, sizeof(out)))
			t_routes = now_ms() - t0;
		usleep(10 * 1000);
	}
	fprintf(stderr,
	        "bfd_frr: SIGSTOP -> bgpd's session down after %llu ms, routes gone after %llu ms "
	        "(BFD 100 ms x 3)\n",
	        (unsigned long long)t_bgp, (unsigned long long)t_routes);
	if (!t_bgp || !t_routes)
		dump("still up after the freeze");
	cr_assert(t_bgp, "bgpd kept the session for 5 s: BFD did not take it down");
	cr_assert(t_routes, "the routes stayed for 5 s");
	cr_expect_lt(t_bgp, 1000, "BGP down after %llu ms", (unsigned long long)t_bgp);
	cr_expect_lt(t_routes, 1000, "routes gone after %llu ms", (unsigned long long)t_routes);
	vtysh("show bgp neighbors 10.53.40.2 json", out, sizeof(out));
	/* FRR 8.4 itself closes with Cease/BFD Down (RFC 9384), as anycached does. */
	const char *nt = strstr(out, "\"lastNotificationReason\"");
	cr_expect(nt && !strncmp(nt, "\"lastNotificationReason\":\"Cease\\/BFD Down\"", 42),
	          "%.80s", nt ? nt : "(no lastNotificationReason)");

	uint64_t t1 = now_ms();
	cr_assert_eq(kill(lab.any.pid, SIGCONT), 0);
	ok = bgp_lab_wait_for(bfd_up, 20000, out, sizeof(out)) &&
	     bgp_lab_wait_for(have_routes, 40000, out, sizeof(out));
	if (!ok)
		dump("did not come back");
	cr_assert(ok, "BFD and the routes did not come back after SIGCONT");
	fprintf(stderr, "bfd_frr: SIGCONT -> BFD up and routes back after %llu ms\n",
	        (unsigned long long)(now_ms() - t1));

	int st = proc_stop(&lab.any, SIGTERM, 8000);
	cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "anycached must exit 0 (wait status %d)", st);
	memset(&lab.any, 0, sizeof(lab.any));
	/* Our AdminDown went out before the Cease: FRR's peer is down, not up. */
	vtysh("show bfd peers json", out, sizeof(out));
	cr_expect(!strstr(out, "\"status\":\"up\""), "%s", out);
}
