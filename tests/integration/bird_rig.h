/*
 * bird_rig.h: BIRD 2 as the node's router on loopback, shared by the BGP
 * interop tests (test_bgp_bird.c) and the fate-sharing tests
 * (test_fate_sharing.c). Each test owns one block of addresses
 * (127.53.<net>.x: BIRD on .1, anycached's BGP on .2, DNS VIPs on .4/.5,
 * knotd on .6) and one IPv6 VIP fd53:<net>::4 that it adds to lo and
 * removes again, so the tests run in parallel.
 *
 * BIRD 2 ignores routes for host-scope prefixes (127/8, ::1: "Ignoring bogus
 * route"), so the IPv4 routes are covering prefixes that contain the loopback
 * listeners (64.0.0.0/2 and 96.0.0.0/3 hold 127.53.<net>.4); BIRD exports
 * nothing to the kernel, so these never route anything. Next hops are
 * checked as BGP.next_hop attributes whether or not BIRD can resolve them.
 * Everything here is static: one rig per test process.
 */
#ifndef ANYCACHE_TESTS_BIRD_RIG_H
#define ANYCACHE_TESTS_BIRD_RIG_H

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* SIGTERM sends Cease at once unless a test asks for a drain; any_bgp_extra
 * is appended to the bgp section (e.g. a degraded block). */
static const char *any_health = "health: {drain: 0s}\n";
static const char *any_bgp_extra = "";

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
	         "    - {prefix: \"%s/128\", local-preference: 120, med: 3}\n"
	         "%s",
	         rig.a[4], rig.a[5], rig.vip6, rig.a[6], any_health, as, rig.a[2], rig.a[1],
	         peer_as, rig.a[2], rig.net, pw, rig.vip6, any_bgp_extra);
	cr_assert_eq(anycached_start(&rig.d, yaml, rig.a[4], DNS_PORT), 0, "anycached");
	rig.d_up = true;
}

/* birdc on this rig's BIRD (harness.c: birdc_run). */
static void birdc(const char *cmd, char *out, size_t cap)
{
	birdc_run(rig.bird_sock, cmd, out, cap);
}

/* BIRD's "since" of an Established protocol ("" when not Established). */
static inline void bird_since(const char *proto, char *out, size_t cap)
{
	char buf[4096], want[40];
	out[0] = 0;
	snprintf(want, sizeof(want), "\n%s ", proto);
	for (int i = 0; i < 5 && !out[0]; i++) {
		char cmd[64], name[32], p[32], table[32], state[32], since[64], info[64];
		snprintf(cmd, sizeof(cmd), "show protocols %s", proto);
		birdc(cmd, buf, sizeof(buf));
		const char *at = strstr(buf, want);
		if (at &&
		    sscanf(at + 1, "%31s %31s %31s %31s %63s %63s", name, p, table, state, since,
		           info) == 6 &&
		    !strcmp(info, "Established"))
			snprintf(out, cap, "%s", since);
		else
			usleep(200 * 1000);
	}
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

static inline bool established(void)
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

#endif
