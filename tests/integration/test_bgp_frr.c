/*
 * Issue 4's interoperability with FRR 8.4's bgpd as the node's router, in a
 * two-namespace lab (FRR wants real interfaces):
 *
 *   router ns anyc-fr-<pid>  r0 10.53.40.1/24 fd53:40::1/64   bgpd -Z (no zebra)
 *   node ns   anyc-fn-<pid>  n0 10.53.40.2/24 fd53:40::2/64   anycached
 *                            lo 10.53.41.4/32 10.53.41.5/32 fd53:41::4/128 (the VIPs)
 *
 * bgpd runs without zebra (-Z: it installs nothing anywhere), as root (-S),
 * with its config, pid file, log and vty socket in the test's temp dir;
 * vtysh --vty_socket DIR reads its JSON. FRR 8.4 filters every eBGP route
 * without a policy (RFC 8212) unless `no bgp ebgp-requires-policy`.
 * anycached's upstream 10.53.40.9 does not exist; nothing needs to answer.
 * .fini stops both daemons by PID and deletes both namespaces.
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
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "bgp_lab.h"
#include "netns.h"

#define BGPD      "/usr/lib/frr/bgpd"
#define ROUTER_AS 65001u
#define NODE_AS   4200000001u

static struct bgp_lab lab;

static void lab_fini(void)
{
	bgp_lab_down(&lab);
}

/* Without root or FRR the whole binary is skipped (exit 77: meson's SKIP). */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	if (geteuid() != 0)
		harness_skip_all("needs root: network namespaces and veth links");
	if (access(BGPD, X_OK) != 0)
		harness_skip_all("FRR's bgpd not installed (" BGPD ")");
	if (access("/usr/bin/vtysh", X_OK) != 0)
		harness_skip_all("FRR's vtysh not installed");
	if (!getenv("ANYCACHED"))
		harness_skip_all("ANYCACHED not set (run through meson test)");
}

static void lab_up(void)
{
	bgp_lab_net_up(&lab.r, &lab.n, &lab.dir, "fr", "fn", "frr");
}

/* vtysh -c cmd against our bgpd; JSON with all whitespace outside strings removed. */
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

static void bgpd_start(uint32_t as, uint32_t peer_as)
{
	char text[2048], conf[512], pidf[512], sock[600], out[256];

	snprintf(text, sizeof(text),
	         "hostname anyc-frr\n"
	         "router bgp %u\n"
	         " bgp router-id 10.53.40.1\n"
	         " no bgp ebgp-requires-policy\n"
	         " no bgp default ipv4-unicast\n"
	         " neighbor 10.53.40.2 remote-as %u\n"
	         " neighbor 10.53.40.2 timers 3 9\n"
	         " neighbor 10.53.40.2 timers connect 1\n"
	         " address-family ipv4 unicast\n"
	         "  neighbor 10.53.40.2 activate\n"
	         " exit-address-family\n"
	         " address-family ipv6 unicast\n"
	         "  neighbor 10.53.40.2 activate\n"
	         " exit-address-family\n",
	         as, peer_as);
	cr_assert_eq(write_file(lab.dir.path, "bgpd.conf", text, conf, sizeof(conf)), 0);
	snprintf(pidf, sizeof(pidf), "%s/bgpd.pid", lab.dir.path);
	snprintf(lab.router_log, sizeof(lab.router_log), "%s/bgpd.log", lab.dir.path);
	char logopt[600], outlog[600];
	snprintf(logopt, sizeof(logopt), "file:%s", lab.router_log);
	snprintf(outlog, sizeof(outlog), "%s/bgpd.out", lab.dir.path);
	/* -P 0: no vty TCP port; -l: BGP only on the link address. */
	char *argv[] = {BGPD, "-Z",           "-S",         "-f", conf,         "-i",
	                pidf, "--vty_socket", lab.dir.path, "-l", "10.53.40.1", "-P",
	                "0",  "--log",        logopt,       NULL};
	cr_assert_eq(netns_proc_start(&lab.router, &lab.r, "bgpd", argv, outlog), 0);
	snprintf(sock, sizeof(sock), "%s/bgpd.vty", lab.dir.path);
	uint64_t end = now_ms() + 10000;
	struct stat sb;
	while (stat(sock, &sb) != 0 && now_ms() < end && proc_alive(&lab.router))
		usleep(50 * 1000);
	bool up = vtysh("show bgp summary json", out, sizeof(out)) == 0;
	if (!up)
		proc_dump_log(&lab.router);
	cr_assert(up, "bgpd's vty did not come up: %s", out);
}

static void any_start(uint32_t as, uint32_t peer_as)
{
	char yaml[2048];

	bgp_lab_node_yaml(yaml, sizeof(yaml), as, peer_as);
	cr_assert_eq(netns_anycached_start(&lab.any, &lab.n, lab.dir.path, yaml), 0);
}

/* The table of both families, squeezed. */
static void tables(char *v4, char *v6, size_t cap)
{
	vtysh("show bgp ipv4 unicast json", v4, cap);
	vtysh("show bgp ipv6 unicast json", v6, cap);
}

static const char *const all_routes[] = {"10.53.41.4/32", "10.53.41.5/32", "fd53:41::4/128"};

static bool have_all(const char *v4, const char *v6)
{
	for (unsigned i = 0; i < 3; i++) {
		char pat[64];
		snprintf(pat, sizeof(pat), "\"%s\":[{\"valid\":true", all_routes[i]);
		if (!strstr(strchr(all_routes[i], ':') ? v6 : v4, pat))
			return false;
	}
	return true;
}

static bool wait_routes(int timeout_ms, char *v4, char *v6, size_t cap)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	do {
		tables(v4, v6, cap);
		if (have_all(v4, v6))
			return true;
		usleep(100 * 1000);
	} while (now_ms() < end);
	return false;
}

static void dump(const char *v4, const char *v6)
{
	fprintf(stderr, "---- FRR ipv4 ----\n%s\n---- ipv6 ----\n%s\n", v4, v6);
	proc_dump_log(&lab.any);
	struct proc p = lab.router;
	snprintf(p.log, sizeof(p.log), "%s", lab.router_log);
	proc_dump_log(&p);
}

/* One route's detail (`show bgp ipv4|ipv6 unicast PREFIX json`), squeezed. */
static void route(const char *prefix, char *out, size_t cap)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "show bgp %s unicast %s json",
	         strchr(prefix, ':') ? "ipv6" : "ipv4", prefix);
	vtysh(cmd, out, cap);
}

/* A number field of the neighbor's JSON ("updatesRecv" etc.), -1 when absent. */
static long nbr_num(const char *nbr, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(nbr, pat);
	return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

static void check_common(const char *r4, const char *r4b, const char *r6)
{
	cr_expect(strstr(r4, "\"origin\":\"IGP\""), "%s", r4);
	cr_expect(strstr(r4, "\"origin\":\"IGP\",\"metric\":7,"), "MED: %s", r4);
	cr_expect(strstr(r4, "\"community\":{\"string\":\"65000:100 65000:200\""), "%s", r4);
	cr_expect(strstr(r4, "\"largeCommunity\":{\"string\":\"4200000001:1:2\""), "%s", r4);
	cr_expect(strstr(r4, "\"nexthops\":[{\"ip\":\"10.53.40.2\",\"afi\":\"ipv4\""), "%s", r4);
	cr_expect(strstr(r4b, "\"nexthops\":[{\"ip\":\"10.53.40.2\",\"afi\":\"ipv4\""), "%s", r4b);
	/* A path's MED follows its origin; the next hop's IGP metric is another field. */
	cr_expect(!strstr(r4b, "\"origin\":\"IGP\",\"metric\":"), "no MED configured: %s", r4b);
	cr_expect(!strstr(r4b, "\"community\"") && !strstr(r4b, "\"largeCommunity\""), "%s", r4b);
	cr_expect(strstr(r6, "\"origin\":\"IGP\",\"metric\":3,"), "%s", r6);
	cr_expect(strstr(r6, "\"community\":{\"string\":\"65000:300\""), "%s", r6);
	cr_expect(strstr(r6, "\"largeCommunity\":{\"string\":\"4200000001:3:4\""), "%s", r6);
	cr_expect(strstr(r6, "\"nexthops\":[{\"ip\":\"fd53:40::2\",\"afi\":\"ipv6\","
	                     "\"scope\":\"global\""),
	          "MP_REACH next hop: %s", r6);
}

Test(bgp_frr, ebgp_4octet_attributes_and_next_hops, .init = lab_up, .fini = lab_fini, .timeout = 60)
{
	static char v4[16384], v6[16384], r4[8192], r4b[8192], r6[8192];

	bgpd_start(ROUTER_AS, NODE_AS);
	any_start(NODE_AS, ROUTER_AS);
	bool ok = wait_routes(20000, v4, v6, sizeof(v4));
	if (!ok)
		dump(v4, v6);
	cr_assert(ok, "routes did not arrive in FRR");

	route("10.53.41.4/32", r4, sizeof(r4));
	route("10.53.41.5/32", r4b, sizeof(r4b));
	route("fd53:41::4/128", r6, sizeof(r6));
	check_common(r4, r4b, r6);
	const char *path = "\"aspath\":{\"string\":\"4200000001\",\"segments\":[{\"type\":"
	                   "\"as-sequence\",\"list\":[4200000001]}],\"length\":1}";
	cr_expect(strstr(r4, path), "AS_PATH exactly [4200000001]: %s", r4);
	cr_expect(strstr(r4b, path), "%s", r4b);
	cr_expect(strstr(r6, path), "%s", r6);
	cr_expect(!strstr(r4, "\"locPrf\""), "no LOCAL_PREF to eBGP: %s", r4);
	cr_expect(strstr(r4, "\"peer\":{\"peerId\":\"10.53.40.2\",\"routerId\":\"10.53.40.2\","
	                     "\"type\":\"external\"}"),
	          "%s", r4);

	char *nbr = r4;
	vtysh("show bgp neighbors 10.53.40.2 json", nbr, sizeof(r4));
	cr_expect(strstr(nbr, "\"remoteAs\":4200000001"), "%s", nbr);
	cr_expect(strstr(nbr, "\"4byteAs\":\"advertisedAndReceived\""), "%s", nbr);
	cr_expect(strstr(nbr, "\"gracefulRestartCapability\":\"advertised\""),
	          "anycached must not advertise graceful restart: %s", nbr);
}

Test(bgp_frr, ibgp_local_preference, .init = lab_up, .fini = lab_fini, .timeout = 60)
{
	static char v4[16384], v6[16384], r4[8192], r4b[8192], r6[8192];

	bgpd_start(ROUTER_AS, ROUTER_AS);
	any_start(ROUTER_AS, ROUTER_AS);
	bool ok = wait_routes(20000, v4, v6, sizeof(v4));
	if (!ok)
		dump(v4, v6);
	cr_assert(ok, "routes did not arrive in FRR");
	route("10.53.41.4/32", r4, sizeof(r4));
	route("10.53.41.5/32", r4b, sizeof(r4b));
	route("fd53:41::4/128", r6, sizeof(r6));
	check_common(r4, r4b, r6);
	cr_expect(strstr(r4, "\"locPrf\":200,"), "%s", r4);
	cr_expect(strstr(r4b, "\"locPrf\":150,"), "%s", r4b);
	cr_expect(strstr(r6, "\"locPrf\":120,"), "%s", r6);
	const char *empty = "\"aspath\":{\"string\":\"Local\",\"segments\":[],\"length\":0}";
	cr_expect(strstr(r4, empty), "iBGP: empty AS_PATH: %s", r4);
	cr_expect(strstr(r6, empty), "%s", r6);
	cr_expect(strstr(r4, "\"type\":\"internal\""), "%s", r4);
}

Test(bgp_frr, route_refresh_resends_everything, .init = lab_up, .fini = lab_fini, .timeout = 60)
{
	static char v4[16384], v6[16384], nbr[16384], r4[8192];

	bgpd_start(ROUTER_AS, NODE_AS);
	any_start(NODE_AS, ROUTER_AS);
	bool ok = wait_routes(20000, v4, v6, sizeof(v4));
	if (!ok)
		dump(v4, v6);
	cr_assert(ok, "routes did not arrive in FRR");
	/* Let the End-of-RIBs arrive before counting. */
	usleep(500 * 1000);
	vtysh("show bgp neighbors 10.53.40.2 json", nbr, sizeof(nbr));
	long upd0 = nbr_num(nbr, "updatesRecv"), rr0 = nbr_num(nbr, "routeRefreshSent");
	long est0 = nbr_num(nbr, "connectionsEstablished");
	cr_assert(strstr(nbr, "\"routeRefresh\":\"advertisedAndReceived"), "%s", nbr);
	cr_assert_geq(upd0, 3, "%s", nbr);
	cr_assert_eq(est0, 1, "%s", nbr);

	/* Without soft-reconfiguration inbound, FRR asks the peer: ROUTE-REFRESH per family. */
	vtysh("clear bgp * soft in", v4, sizeof(v4));
	uint64_t end = now_ms() + 10000;
	long upd = upd0;
	do {
		usleep(200 * 1000);
		vtysh("show bgp neighbors 10.53.40.2 json", nbr, sizeof(nbr));
		upd = nbr_num(nbr, "updatesRecv");
	} while (upd - upd0 < 3 && now_ms() < end);
	long rr = nbr_num(nbr, "routeRefreshSent");
	cr_expect_geq(rr - rr0, 2, "one ROUTE-REFRESH per family: %ld -> %ld", rr0, rr);
	/* Three attribute sets (two IPv4, one IPv6): at least three UPDATEs again. */
	cr_expect_geq(upd - upd0, 3, "UPDATEs after the refresh: %ld -> %ld", upd0, upd);
	fprintf(stderr, "frr: refresh: %ld ROUTE-REFRESH sent, %ld UPDATEs received\n", rr - rr0,
	        upd - upd0);
	cr_expect(strstr(nbr, "\"bgpState\":\"Established\""), "%s", nbr);
	cr_expect_eq(nbr_num(nbr, "connectionsEstablished"), 1, "session stayed up: %s", nbr);
	cr_expect_eq(nbr_num(nbr, "connectionsDropped"), 0, "%s", nbr);
	cr_expect_eq(nbr_num(nbr, "notificationsRecv"), 0, "%s", nbr);
	cr_expect_eq(nbr_num(nbr, "notificationsSent"), 0, "%s", nbr);
	tables(v4, v6, sizeof(v4));
	cr_expect(have_all(v4, v6), "routes after the refresh:\n%s\n%s", v4, v6);
	route("10.53.41.4/32", r4, sizeof(r4));
	cr_expect(strstr(r4, "\"community\":{\"string\":\"65000:100 65000:200\""), "%s", r4);
	cr_expect(proc_alive(&lab.any));
}

Test(bgp_frr, sigterm_cease_withdraws_at_once, .init = lab_up, .fini = lab_fini, .timeout = 60)
{
	static char v4[16384], v6[16384], nbr[16384];

	bgpd_start(ROUTER_AS, NODE_AS);
	any_start(NODE_AS, ROUTER_AS);
	bool ok = wait_routes(20000, v4, v6, sizeof(v4));
	if (!ok)
		dump(v4, v6);
	cr_assert(ok, "routes did not arrive in FRR");

	uint64_t t0 = now_ms(), dt = 0;
	cr_assert_eq(kill(lab.any.pid, SIGTERM), 0);
	bool gone = false;
	while (!gone && now_ms() - t0 < 3000) {
		tables(v4, v6, sizeof(v4));
		gone = !strstr(v4, "10.53.41.") && !strstr(v6, "fd53:41::4") &&
		       strstr(v4, "\"routes\":{}") && strstr(v6, "\"routes\":{}");
		dt = now_ms() - t0;
		if (!gone)
			usleep(20 * 1000);
	}
	if (!gone)
		dump(v4, v6);
	cr_assert(gone, "routes still in FRR 3 s after SIGTERM");
	cr_expect_lt(dt, 2000, "withdrawn after %llu ms", (unsigned long long)dt);
	fprintf(stderr, "frr: routes gone %llu ms after SIGTERM\n", (unsigned long long)dt);

	int st = proc_wait(&lab.any, 5000);
	cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "anycached must exit 0 (wait status %d)", st);
	vtysh("show bgp neighbors 10.53.40.2 json", nbr, sizeof(nbr));
	cr_expect(strstr(nbr, "\"lastNotificationReason\":\"Cease\\/Administrative Shutdown\""),
	          "a Cease, not a hold timer expiry: %s", nbr);
	cr_expect(strstr(nbr, "\"lastShutdownDescription\":\"anycached shutting down\""),
	          "RFC 9003 text: %s", nbr);
	cr_expect(strstr(nbr, "\"lastResetDueTo\":\"BGP Notification received\""), "%s", nbr);
}
