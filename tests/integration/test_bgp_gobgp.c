/*
 * Issue 4's interoperability with GoBGP 3.10 as the node's router. GoBGP
 * refuses loopback next hops, so each test builds a two-namespace lab:
 *
 *   router ns anyc-gr-<pid>  r0 10.53.40.1/24 fd53:40::1/64   gobgpd, gRPC 127.0.0.1:50051
 *   node ns   anyc-gn-<pid>  n0 10.53.40.2/24 fd53:40::2/64   anycached
 *                            lo 10.53.41.4/32 10.53.41.5/32 fd53:41::4/128 (the VIPs)
 *
 * anycached's upstream 10.53.40.9 does not exist: nothing answers and nothing
 * needs to, the routes depend only on the listeners being bound and served.
 * All traffic stays inside the two namespaces. The routes are read with
 * `gobgp global rib -a ipv4|ipv6 -j` (one JSON line, attributes by type
 * code) inside the router namespace; .fini stops both daemons by PID and
 * deletes both namespaces, also when a test fails.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "bgp_lab.h"
#include "netns.h"

#define ROUTER_AS 65001u
#define NODE_AS   4200000001u /* 4-octet: needs RFC 6793 on both sides */

static struct bgp_lab lab;

static bool in_path(const char *bin)
{
	char out[512];
	char *argv[] = {"sh", "-c", "command -v \"$0\"", (char *)bin, NULL};
	return run_capture(argv, true, out, sizeof(out), 5000) == 0;
}

static void lab_fini(void)
{
	bgp_lab_down(&lab);
}

/* Without root or GoBGP the whole binary is skipped (exit 77: meson's SKIP). */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	if (geteuid() != 0)
		harness_skip_all("needs root: network namespaces and veth links");
	if (!in_path("gobgpd") || !in_path("gobgp"))
		harness_skip_all("gobgpd/gobgp not installed");
	if (!getenv("ANYCACHED"))
		harness_skip_all("ANYCACHED not set (run through meson test)");
}

/* The two namespaces, the veth link and the VIPs; skips without root or gobgpd. */
static void lab_up(void)
{
	bgp_lab_net_up(&lab.r, &lab.n, &lab.dir, "gr", "gn", "gobgp");
}

static void gobgpd_start(uint32_t as, uint32_t peer_as)
{
	char text[2048], conf[512];

	snprintf(text, sizeof(text),
	         "[global.config]\n"
	         "  as = %u\n"
	         "  router-id = \"10.53.40.1\"\n"
	         "  local-address-list = [\"10.53.40.1\"]\n"
	         "[[neighbors]]\n"
	         "  [neighbors.config]\n"
	         "    neighbor-address = \"10.53.40.2\"\n"
	         "    peer-as = %u\n"
	         "  [neighbors.timers.config]\n"
	         "    connect-retry = 1\n"
	         "    hold-time = 9\n"
	         "    keepalive-interval = 3\n"
	         "  [[neighbors.afi-safis]]\n"
	         "    [neighbors.afi-safis.config]\n"
	         "      afi-safi-name = \"ipv4-unicast\"\n"
	         "  [[neighbors.afi-safis]]\n"
	         "    [neighbors.afi-safis.config]\n"
	         "      afi-safi-name = \"ipv6-unicast\"\n",
	         as, peer_as);
	cr_assert_eq(write_file(lab.dir.path, "gobgpd.toml", text, conf, sizeof(conf)), 0);
	snprintf(lab.router_log, sizeof(lab.router_log), "%s/gobgpd.log", lab.dir.path);
	char *argv[] = {"gobgpd",          "-f", conf, "--api-hosts", "127.0.0.1:50051",
	                "--pprof-disable", NULL};
	cr_assert_eq(netns_proc_start(&lab.router, &lab.r, "gobgpd", argv, lab.router_log), 0);
}

static void any_start(uint32_t as, uint32_t peer_as)
{
	char yaml[2048];

	bgp_lab_node_yaml(yaml, sizeof(yaml), as, peer_as);
	cr_assert_eq(netns_anycached_start(&lab.any, &lab.n, lab.dir.path, yaml), 0);
}

/* `gobgp global rib -a fam -j` inside the router namespace (one JSON line). */
static int rib(const char *fam, char *out, size_t cap)
{
	char *argv[] = {"gobgp", "-u", "127.0.0.1", "-p", "50051", "global",
	                "rib",   "-a", (char *)fam, "-j", NULL};
	out[0] = 0;
	return netns_run(&lab.r, argv, out, cap, 5000);
}

/*
 * The JSON value after "key": ({...} or [...]) copied into val; empty when
 * absent. Brackets inside strings are not expected in this output.
 */
static void json_value(const char *all, const char *key, char *val, size_t cap)
{
	char pat[128];
	val[0] = 0;
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(all, pat);
	if (!p)
		return;
	p += strlen(pat);
	int depth = 0;
	const char *e = p;
	do {
		if (*e == '{' || *e == '[')
			depth++;
		else if (*e == '}' || *e == ']')
			depth--;
		e++;
	} while (*e && depth > 0);
	size_t n = (size_t)(e - p) < cap - 1 ? (size_t)(e - p) : cap - 1;
	memcpy(val, p, n);
	val[n] = 0;
}

/* Polls until every prefix in want[] is in the RIB of its family. */
static bool wait_routes(const char *const *want, unsigned n, int timeout_ms, char *v4, char *v6,
                        size_t cap)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	do {
		rib("ipv4", v4, cap);
		rib("ipv6", v6, cap);
		unsigned found = 0;
		for (unsigned i = 0; i < n; i++) {
			char pat[64];
			snprintf(pat, sizeof(pat), "\"%s\":[", want[i]);
			found += strstr(strchr(want[i], ':') ? v6 : v4, pat) != NULL;
		}
		if (found == n)
			return true;
		usleep(100 * 1000);
	} while (now_ms() < end);
	return false;
}

static const char *const all_routes[] = {"10.53.41.4/32", "10.53.41.5/32", "fd53:41::4/128"};

static void dump(const char *v4, const char *v6)
{
	fprintf(stderr, "---- gobgp rib ipv4 ----\n%s\n---- ipv6 ----\n%s\n", v4, v6);
	proc_dump_log(&lab.any);
	proc_dump_log(&lab.router);
}

Test(bgp_gobgp, ebgp_4octet_attributes_and_next_hops, .init = lab_up, .fini = lab_fini,
     .timeout = 60)
{
	static char v4[16384], v6[16384], r[4096];

	gobgpd_start(ROUTER_AS, NODE_AS);
	any_start(NODE_AS, ROUTER_AS);
	bool ok = wait_routes(all_routes, 3, 20000, v4, v6, sizeof(v4));
	if (!ok)
		dump(v4, v6);
	cr_assert(ok, "routes did not arrive in GoBGP");

	json_value(v4, "10.53.41.4/32", r, sizeof(r));
	cr_expect(strstr(r, "{\"type\":1,\"value\":0}"), "ORIGIN IGP: %s", r);
	cr_expect(strstr(r, "{\"type\":2,\"as_paths\":[{\"segment_type\":2,\"num\":1,"
	                    "\"asns\":[4200000001]}]}"),
	          "AS_PATH exactly [4200000001]: %s", r);
	cr_expect(strstr(r, "{\"type\":3,\"nexthop\":\"10.53.40.2\"}"), "NEXT_HOP: %s", r);
	cr_expect(strstr(r, "{\"type\":4,\"metric\":7}"), "MED: %s", r);
	cr_expect(!strstr(r, "\"type\":5,"), "no LOCAL_PREF to an eBGP peer: %s", r);
	/* 65000:100 and 65000:200 as 32-bit values: 65000 << 16 | n. */
	cr_expect(strstr(r, "{\"type\":8,\"communities\":[4259840100,4259840200]}"),
	          "COMMUNITIES: %s", r);
	cr_expect(strstr(r, "{\"type\":32,\"value\":[{\"ASN\":4200000001,\"LocalData1\":1,"
	                    "\"LocalData2\":2}]}"),
	          "LARGE_COMMUNITIES: %s", r);
	cr_expect(strstr(r, "\"best\":true"), "%s", r);

	json_value(v4, "10.53.41.5/32", r, sizeof(r));
	cr_expect(strstr(r, "{\"type\":3,\"nexthop\":\"10.53.40.2\"}"), "%s", r);
	cr_expect(strstr(r, "\"asns\":[4200000001]}]}"), "%s", r);
	cr_expect(!strstr(r, "\"type\":4,"), "no MED configured: none sent: %s", r);
	cr_expect(!strstr(r, "\"type\":8,") && !strstr(r, "\"type\":32,"), "%s", r);

	/* IPv6 over the IPv4 session: MP_REACH_NLRI (type 14) with next-hop6. */
	json_value(v6, "fd53:41::4/128", r, sizeof(r));
	cr_expect(strstr(r, "{\"type\":14,\"nexthop\":\"fd53:40::2\",\"afi\":2,\"safi\":1,"
	                    "\"value\":[{\"prefix\":\"fd53:41::4/128\"}]}"),
	          "MP_REACH_NLRI next hop: %s", r);
	cr_expect(strstr(r, "{\"type\":2,\"as_paths\":[{\"segment_type\":2,\"num\":1,"
	                    "\"asns\":[4200000001]}]}"),
	          "%s", r);
	cr_expect(strstr(r, "{\"type\":4,\"metric\":3}"), "%s", r);
	cr_expect(strstr(r, "{\"type\":8,\"communities\":[4259840300]}"), "%s", r);
	cr_expect(strstr(r, "{\"type\":32,\"value\":[{\"ASN\":4200000001,\"LocalData1\":3,"
	                    "\"LocalData2\":4}]}"),
	          "%s", r);
	cr_expect(!strstr(r, "\"type\":5,"), "%s", r);
	cr_expect(!strstr(r, "\"type\":3,"), "IPv6 route without a NEXT_HOP attribute: %s", r);
}

Test(bgp_gobgp, ibgp_local_preference, .init = lab_up, .fini = lab_fini, .timeout = 60)
{
	static char v4[16384], v6[16384], r[4096];

	gobgpd_start(ROUTER_AS, ROUTER_AS);
	any_start(ROUTER_AS, ROUTER_AS);
	bool ok = wait_routes(all_routes, 3, 20000, v4, v6, sizeof(v4));
	if (!ok)
		dump(v4, v6);
	cr_assert(ok, "routes did not arrive in GoBGP");

	json_value(v4, "10.53.41.4/32", r, sizeof(r));
	cr_expect(strstr(r, "{\"type\":5,\"value\":200}"), "LOCAL_PREF: %s", r);
	/* Present but empty (RFC 4271 §5.1.2: an originating speaker's iBGP AS_PATH). */
	cr_expect(strstr(r, "{\"type\":2,\"as_paths\":[]}"), "iBGP: empty AS_PATH: %s", r);
	cr_expect(strstr(r, "{\"type\":3,\"nexthop\":\"10.53.40.2\"}"), "%s", r);
	cr_expect(strstr(r, "{\"type\":4,\"metric\":7}"), "%s", r);
	cr_expect(strstr(r, "{\"type\":8,\"communities\":[4259840100,4259840200]}"), "%s", r);
	json_value(v4, "10.53.41.5/32", r, sizeof(r));
	cr_expect(strstr(r, "{\"type\":5,\"value\":150}"), "%s", r);
	json_value(v6, "fd53:41::4/128", r, sizeof(r));
	cr_expect(strstr(r, "{\"type\":5,\"value\":120}"), "%s", r);
	cr_expect(strstr(r, "\"nexthop\":\"fd53:40::2\""), "%s", r);
	cr_expect(strstr(r, "{\"type\":2,\"as_paths\":[]}"), "%s", r);
}

Test(bgp_gobgp, sigterm_cease_withdraws_at_once, .init = lab_up, .fini = lab_fini, .timeout = 60)
{
	static char v4[16384], v6[16384], log[65536];

	gobgpd_start(ROUTER_AS, NODE_AS);
	any_start(NODE_AS, ROUTER_AS);
	bool ok = wait_routes(all_routes, 3, 20000, v4, v6, sizeof(v4));
	if (!ok)
		dump(v4, v6);
	cr_assert(ok, "routes did not arrive in GoBGP");

	uint64_t t0 = now_ms(), dt = 0;
	cr_assert_eq(kill(lab.any.pid, SIGTERM), 0);
	bool gone = false;
	while (!gone && now_ms() - t0 < 3000) {
		rib("ipv4", v4, sizeof(v4));
		rib("ipv6", v6, sizeof(v6));
		/* An empty RIB is exactly "{}"; an error from gobgp is not. */
		gone = strncmp(v4, "{}", 2) == 0 && strncmp(v6, "{}", 2) == 0;
		dt = now_ms() - t0;
		if (!gone)
			usleep(20 * 1000);
	}
	if (!gone)
		dump(v4, v6);
	cr_assert(gone, "routes still in GoBGP 3 s after SIGTERM");
	cr_expect_lt(dt, 2000, "withdrawn after %llu ms", (unsigned long long)dt);
	fprintf(stderr, "gobgp: routes gone %llu ms after SIGTERM\n", (unsigned long long)dt);

	int st = proc_wait(&lab.any, 5000);
	cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "anycached must exit 0 (wait status %d)", st);

	/* A Cease, not a hold timer expiry nor a bare TCP close. */
	FILE *f = fopen(lab.router_log, "r");
	cr_assert(f);
	size_t n = fread(log, 1, sizeof(log) - 1, f);
	log[n] = 0;
	fclose(f);
	cr_expect(strstr(log, "notification-received code 6(cease) subcode 2(administrative "
	                      "shutdown)"),
	          "%s", log);
	cr_expect(strstr(log, "\"Communicated-Reason\":\"anycached shutting down\""),
	          "RFC 9003 text: %s", log);
	cr_expect(!strstr(log, "hold timer expired"), "%s", log);
}
