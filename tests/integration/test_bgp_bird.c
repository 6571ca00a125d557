/*
 * Issue 4's interoperability: anycached's BGP speaker against BIRD 2 as the
 * node's router, on loopback (the rig: bird_rig.h; nets 20..25).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bird_rig.h"

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
