/*
 * Issue 4's interoperability: anycached's BGP speaker against BIRD 2 as the
 * node's router, on loopback. Each test owns one block of addresses
 * (127.53.2N.x, BIRD on .1, anycached's BGP on .2, DNS VIPs on .4/.5, knotd
 * on .9) and one IPv6 VIP fd53:2N::4 that it adds to lo and removes again,
 * so the tests run in parallel.
 *
 * BIRD 2 ignores routes for host-scope prefixes (127/8, ::1: "Ignoring bogus
 * route"), so the IPv4 routes are covering prefixes that contain the loopback
 * listeners (64.0.0.0/2 and 96.0.0.0/3 hold 127.53.2N.4); BIRD exports nothing
 * to the kernel, so these never route anything. Next hops are checked as
 * BGP.next_hop attributes whether or not BIRD can resolve them.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define DNS_PORT 5300

struct rig {
	int net;       /* 20..29 */
	char a[8][32]; /* a[k] = 127.53.<net>.k */
	char vip6[32];
	bool v6added;
	struct tmpdir dir;
	struct proc bird;
	char bird_conf[512], bird_sock[512], bird_log[512];
	struct knotd knot;
	bool knot_up;
	struct anycached d;
	bool d_up;
};

static struct rig rig;

static void rig_fini(void)
{
	if (rig.d_up)
		anycached_stop(&rig.d);
	if (rig.bird.pid > 0)
		proc_stop(&rig.bird, SIGTERM, 3000);
	if (rig.knot_up)
		knotd_stop(&rig.knot);
	if (rig.v6added) {
		char pfx[48], out[256];
		snprintf(pfx, sizeof(pfx), "%s/128", rig.vip6);
		char *argv[] = {"ip", "-6", "addr", "del", pfx, "dev", "lo", NULL};
		run_capture(argv, true, out, sizeof(out), 5000);
	}
	if (rig.dir.path[0])
		tmpdir_remove(&rig.dir);
}

static void rig_init(int net)
{
	char pfx[48], out[256];

	memset(&rig, 0, sizeof(rig));
	rig.net = net;
	for (int k = 0; k < 8; k++)
		snprintf(rig.a[k], sizeof(rig.a[k]), "127.53.%d.%d", net, k);
	snprintf(rig.vip6, sizeof(rig.vip6), "fd53:%d::4", net);
	cr_assert_eq(tmpdir_make(&rig.dir, "bgpbird"), 0);
	snprintf(pfx, sizeof(pfx), "%s/128", rig.vip6);
	char *argv[] = {"ip", "-6", "addr", "add", pfx, "dev", "lo", NULL};
	int rc = run_capture(argv, true, out, sizeof(out), 5000);
	cr_assert(rc == 0 || strstr(out, "exists") || strstr(out, "already assigned"),
	          "cannot add %s to lo: %s", pfx, out);
	rig.v6added = true;
	const char *zones[] = {"example.test", harness_example_zone};
	cr_assert_eq(knotd_start(&rig.knot, rig.a[6], DNS_PORT, zones, 1), 0, "knotd");
	rig.knot_up = true;
}

/* BIRD as the router: as `as`, neighbor anycached (`peer_as`) on .2. */
static void bird_start(uint32_t as, uint32_t peer_as, const char *password)
{
	char text[4096], pw[128] = "";

	if (password)
		snprintf(pw, sizeof(pw), "  password \"%s\";\n", password);
	snprintf(rig.bird_log, sizeof(rig.bird_log), "%s/bird.log", rig.dir.path);
	snprintf(text, sizeof(text),
	         "log \"%s\" all;\n"
	         "router id %s;\n"
	         "protocol device { }\n"
	         "protocol bgp anyc {\n"
	         "  local %s as %u;\n"
	         "  neighbor %s as %u;\n"
	         "  strict bind yes;\n"
	         "  multihop 2;\n"
	         "  hold time 9;\n"
	         "  error wait time 1, 5;\n"
	         "  connect delay time 1;\n"
	         "  connect retry time 2;\n"
	         "%s"
	         "  ipv4 { import all; export none; };\n"
	         "  ipv6 { import all; export none; };\n"
	         "}\n",
	         rig.bird_log, rig.a[1], rig.a[1], as, rig.a[2], peer_as, pw);
	cr_assert_eq(
	    write_file(rig.dir.path, "bird.conf", text, rig.bird_conf, sizeof(rig.bird_conf)), 0);
	snprintf(rig.bird_sock, sizeof(rig.bird_sock), "%s/bird.ctl", rig.dir.path);
	char log[600];
	snprintf(log, sizeof(log), "%s/bird.out", rig.dir.path);
	char *argv[] = {"bird", "-f", "-c", rig.bird_conf, "-s", rig.bird_sock, NULL};
	cr_assert_eq(proc_start(&rig.bird, "bird", argv, log), 0, "bird did not start");
}

/* SIGTERM sends Cease at once unless a test asks for a drain. */
static const char *any_health = "health: {drain: 0s}\n";

static void any_start(uint32_t as, uint32_t peer_as, const char *password)
{
	char yaml[4096], pw[128] = "";

	if (password)
		snprintf(pw, sizeof(pw), "      password: \"%s\"\n", password);
	snprintf(yaml, sizeof(yaml),
	         "dns:\n"
	         "  listen: [\"%s:5300\", \"%s:5300\", \"[%s]:5300\"]\n"
	         "  allow: [127.0.0.0/8]\n"
	         "  upstreams: [\"%s:5300\"]\n"
	         "  threads: 2\n"
	         "%s"
	         "bgp:\n"
	         "  asn: %u\n"
	         "  router-id: %s\n"
	         "  neighbors:\n"
	         "    - address: %s\n"
	         "      asn: %u\n"
	         "      local-address: %s\n"
	         "      hold-time: 9s\n"
	         "      next-hop6: \"fd53:%d::2\"\n"
	         "%s"
	         "  announce:\n"
	         "    - prefix: 64.0.0.0/2\n"
	         "      local-preference: 200\n"
	         "      med: 7\n"
	         "      communities: [\"65000:100\", \"65000:200\"]\n"
	         "      large-communities: [\"4200000001:1:2\"]\n"
	         "    - {prefix: 96.0.0.0/3, local-preference: 150}\n"
	         "    - {prefix: \"%s/128\", local-preference: 120, med: 3}\n",
	         rig.a[4], rig.a[5], rig.vip6, rig.a[6], any_health, as, rig.a[2], rig.a[1],
	         peer_as, rig.a[2], rig.net, pw, rig.vip6);
	cr_assert_eq(anycached_start(&rig.d, yaml, rig.a[4], DNS_PORT), 0, "anycached");
	rig.d_up = true;
}

/* birdc takes the command as separate words. */
static void birdc(const char *cmd, char *out, size_t cap)
{
	char c[128];
	char *words[16] = {"birdc", "-s", rig.bird_sock};
	int n = 3;

	snprintf(c, sizeof(c), "%s", cmd);
	for (char *t = strtok(c, " "); t && n < 15; t = strtok(NULL, " "))
		words[n++] = t;
	words[n] = NULL;
	out[0] = 0;
	run_capture(words, true, out, cap, 5000);
}

/* Polls `show route all` until `what` appears (want) or disappears (!want). */
static bool wait_routes(const char *what, bool want, int timeout_ms, char *out, size_t cap)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	do {
		birdc("show route all", out, cap);
		if ((strstr(out, what) != NULL) == want)
			return true;
		usleep(100 * 1000);
	} while (now_ms() < end);
	return false;
}

static bool established(void)
{
	char out[8192];
	birdc("show protocols all anyc", out, sizeof(out));
	return strstr(out, "BGP state:          Established") != NULL;
}

/* The attribute block of one route in `show route all` output. */
static void route_block(const char *all, const char *prefix, char *blk, size_t cap)
{
	const char *p = strstr(all, prefix);
	blk[0] = 0;
	if (!p)
		return;
	const char *e = strchr(p, '\n');
	while (e && e[1] == '\t')
		e = strchr(e + 1, '\n');
	size_t n = e ? (size_t)(e - p) + 1 : strlen(p); /* keep the last newline */
	if (n >= cap)
		n = cap - 1;
	memcpy(blk, p, n);
	blk[n] = 0;
}

static void dump_on_failure(const char *out)
{
	fprintf(stderr, "---- birdc show route all ----\n%s\n", out);
	proc_dump_log(&rig.d.proc);
}

static void setup20(void)
{
	rig_init(20);
}
static void setup21(void)
{
	rig_init(21);
}
static void setup22(void)
{
	rig_init(22);
}
static void setup23(void)
{
	rig_init(23);
}
static void setup24(void)
{
	rig_init(24);
}
static void setup25(void)
{
	rig_init(25);
}

Test(bgp_bird, ibgp_routes_carry_exact_attributes, .init = setup20, .fini = rig_fini, .timeout = 60)
{
	static char out[16384], blk[2048];

	bird_start(65000, 65000, NULL);
	any_start(65000, 65000, NULL);
	bool ok = wait_routes("fd53:20::4/128", true, 15000, out, sizeof(out)) &&
	          wait_routes("96.0.0.0/3", true, 5000, out, sizeof(out)) &&
	          wait_routes("64.0.0.0/2", true, 5000, out, sizeof(out));
	if (!ok)
		dump_on_failure(out);
	cr_assert(ok, "routes did not arrive");

	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_assert(strstr(blk, "[anyc "), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.origin: IGP\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.as_path: \n"), "iBGP: empty AS_PATH\n%s", blk);
	cr_expect(strstr(blk, "\tBGP.next_hop: 127.53.20.2\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.med: 7\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.local_pref: 200\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.community: (65000,100) (65000,200)\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.large_community: (4200000001, 1, 2)\n"), "%s", blk);

	route_block(out, "96.0.0.0/3", blk, sizeof(blk));
	cr_expect(strstr(blk, "\tBGP.local_pref: 150\n"), "%s", blk);
	cr_expect(!strstr(blk, "BGP.med"), "no MED configured: none sent\n%s", blk);
	cr_expect(!strstr(blk, "BGP.community"), "%s", blk);

	route_block(out, "fd53:20::4/128", blk, sizeof(blk));
	cr_expect(strstr(blk, "\tBGP.next_hop: fd53:20::2\n"), "MP_REACH next hop\n%s", blk);
	cr_expect(strstr(blk, "\tBGP.local_pref: 120\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.med: 3\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.as_path: \n"), "%s", blk);
}

Test(bgp_bird, ebgp_4octet_asn_path_is_our_as, .init = setup21, .fini = rig_fini, .timeout = 60)
{
	static char out[16384], blk[2048];

	bird_start(65001, 4200000001u, NULL);
	any_start(4200000001u, 65001, NULL);
	bool ok = wait_routes("fd53:21::4/128", true, 15000, out, sizeof(out)) &&
	          wait_routes("64.0.0.0/2", true, 5000, out, sizeof(out));
	if (!ok)
		dump_on_failure(out);
	cr_assert(ok, "routes did not arrive");
	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_expect(strstr(blk, "\tBGP.as_path: 4200000001\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.next_hop: 127.53.21.2\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.med: 7\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.community: (65000,100) (65000,200)\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.large_community: (4200000001, 1, 2)\n"), "%s", blk);
	route_block(out, "fd53:21::4/128", blk, sizeof(blk));
	cr_expect(strstr(blk, "\tBGP.as_path: 4200000001\n"), "%s", blk);
	cr_expect(strstr(blk, "\tBGP.next_hop: fd53:21::2\n"), "%s", blk);
	birdc("show protocols all anyc", out, sizeof(out));
	cr_expect(strstr(out, "Neighbor AS:      4200000001"), "%s", out);
}

Test(bgp_bird, sigterm_sends_cease_and_withdraws, .init = setup22, .fini = rig_fini, .timeout = 60)
{
	static char out[16384];

	bird_start(65000, 65000, NULL);
	any_start(65000, 65000, NULL);
	cr_assert(wait_routes("64.0.0.0/2", true, 15000, out, sizeof(out)), "no route");
	uint64_t t0 = now_ms();
	int st = anycached_stop(&rig.d);
	rig.d_up = false;
	cr_expect_eq(st, 0, "anycached must exit 0 (status %d)", st);
	bool gone = wait_routes("[anyc ", false, 2000, out, sizeof(out));
	uint64_t dt = now_ms() - t0;
	cr_assert(gone, "routes still there:\n%s", out);
	cr_expect_lt(dt, 2500, "withdrawn after %llu ms", (unsigned long long)dt);
	birdc("show protocols all anyc", out, sizeof(out));
	cr_expect(strstr(out, "Message:        anycached shutting down"),
	          "BIRD did not get the RFC 9003 text:\n%s", out);
}

Test(bgp_bird, restarted_bird_gets_routes_again, .init = setup23, .fini = rig_fini, .timeout = 90)
{
	static char out[16384];

	bird_start(65000, 65000, NULL);
	any_start(65000, 65000, NULL);
	cr_assert(wait_routes("64.0.0.0/2", true, 15000, out, sizeof(out)), "no route");
	proc_stop(&rig.bird, SIGTERM, 3000);
	memset(&rig.bird, 0, sizeof(rig.bird));
	usleep(300 * 1000);
	bird_start(65000, 65000, NULL);
	bool ok = wait_routes("fd53:23::4/128", true, 25000, out, sizeof(out)) &&
	          wait_routes("64.0.0.0/2", true, 5000, out, sizeof(out));
	if (!ok)
		dump_on_failure(out);
	cr_assert(ok, "routes did not come back after the BIRD restart");
	cr_assert(proc_alive(&rig.d.proc));
}

Test(bgp_bird, md5_matching_passwords_establish, .init = setup24, .fini = rig_fini, .timeout = 60)
{
	static char out[16384];

	bird_start(65000, 65000, "s3cret-24");
	any_start(65000, 65000, "s3cret-24");
	bool ok = wait_routes("64.0.0.0/2", true, 15000, out, sizeof(out));
	if (!ok)
		dump_on_failure(out);
	cr_assert(ok, "no route over TCP MD5");
	cr_expect(established());
}

Test(bgp_bird, md5_mismatched_passwords_never_establish, .init = setup25, .fini = rig_fini,
     .timeout = 60)
{
	static char out[16384];

	bird_start(65000, 65000, "bird-side");
	any_start(65000, 65000, "node-side");
	for (int i = 0; i < 8; i++) {
		cr_assert(!established(), "established with mismatched MD5 keys");
		sleep(1);
	}
	birdc("show route all", out, sizeof(out));
	cr_expect(!strstr(out, "[anyc "), "%s", out);
	cr_expect(proc_alive(&rig.d.proc), "anycached must keep running");
	char a[4096];
	uint8_t q[512];
	int ql = dns_make_query(q, sizeof(q), 0x1234, "www.example.test", 1, false);
	cr_expect_gt(dns_udp_exchange(rig.a[4], DNS_PORT, q, (size_t)ql, a, sizeof(a), 3000), 0,
	             "DNS must keep answering");
}
