/*
 * Issue 7: the routes follow what the process really does, seen from BIRD 2
 * (the rig: bird_rig.h; nets 26..29, 31). Each test breaks one thing and checks
 * the router's table:
 *   - the IPv6 VIP's address removed from lo: its route only is withdrawn at
 *     once (rtnetlink), and comes back when the address does;
 *   - every DNS worker thread stopped (ptrace) while ctl runs: withdrawn
 *     within fall x interval, back after recovery;
 *   - SIGTERM: GRACEFUL_SHUTDOWN (65535:0) and LOCAL_PREF 0 while it still
 *     answers for health.drain, then withdrawn, exit 0;
 *   - every upstream dead: DEGRADED attributes, never withdrawn;
 *   - load over health.overload: DEGRADED, and UP again once it is gone.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "bird_rig.h"

#define FAST_HEALTH "health: {interval: 100ms, rise: 2, fall: 2, hold-down: 1s, drain: 0s}\n"

static void setup26(void)
{
	rig_init(26);
}
static void setup27(void)
{
	rig_init(27);
}
static void setup28(void)
{
	rig_init(28);
}
static void setup29(void)
{
	rig_init(29);
}

static void start_all(void)
{
	static char out[16384];

	bird_start(65000, 65000, NULL);
	any_start(65000, 65000, NULL);
	bool ok = wait_routes(rig.vip6, true, 15000, out, sizeof(out)) &&
	          wait_routes("64.0.0.0/2", true, 5000, out, sizeof(out));
	if (!ok)
		dump_on_failure(out);
	cr_assert(ok, "routes did not arrive");
}

static int ip6_lo(const char *verb)
{
	char pfx[48], out[256];
	snprintf(pfx, sizeof(pfx), "%s/128", rig.vip6);
	char *argv[] = {"ip", "-6", "addr", (char *)verb, pfx, "dev", "lo", "nodad", NULL};
	if (!strcmp(verb, "del"))
		argv[7] = NULL;
	return run_capture(argv, true, out, sizeof(out), 5000);
}

Test(fate_sharing, vip_address_removed_withdraws_its_route_only, .init = setup26, .fini = rig_fini,
     .timeout = 60)
{
	static char out[16384];
	char route[64];

	any_health = FAST_HEALTH;
	start_all();
	snprintf(route, sizeof(route), "%s/128", rig.vip6);
	uint64_t t0 = now_ms();
	cr_assert_eq(ip6_lo("del"), 0);
	bool gone = wait_routes(route, false, 3000, out, sizeof(out));
	uint64_t dt = now_ms() - t0;
	if (!gone)
		dump_on_failure(out);
	cr_assert(gone, "route of the removed VIP still announced");
	fprintf(stderr, "fate_sharing: VIP removed -> withdrawn at BIRD in %llu ms\n",
	        (unsigned long long)dt);
	cr_expect_lt(dt, 1000, "withdrawn after %llu ms (target <= 1 s)", (unsigned long long)dt);
	cr_expect(strstr(out, "64.0.0.0/2"), "the IPv4 VIPs' route must stay:\n%s", out);

	/* Back: `rise` good probes and the hold-down (1 s), then announced again. */
	t0 = now_ms();
	cr_assert_eq(ip6_lo("add"), 0);
	bool back = wait_routes(route, true, 8000, out, sizeof(out));
	if (!back)
		dump_on_failure(out);
	cr_assert(back, "route did not come back with its address");
	fprintf(stderr, "fate_sharing: VIP re-added -> announced in %llu ms\n",
	        (unsigned long long)(now_ms() - t0));
	char why[512];
	cr_assert_eq(anycached_stop_clean(&rig.d, 5000, why, sizeof(why)), 0, "%s", why);
	rig.d_up = false;
}

/* Stops (or resumes) every thread of pid whose name starts with "dns-". */
static unsigned dns_threads(pid_t pid, pid_t *tids, unsigned max)
{
	char path[64];
	unsigned n = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d)) && n < max) {
		char comm[64] = "", cp[400];
		if (e->d_name[0] == '.')
			continue;
		snprintf(cp, sizeof(cp), "%s/%s/comm", path, e->d_name);
		FILE *f = fopen(cp, "r");
		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			fclose(f);
		}
		if (!strncmp(comm, "dns-", 4))
			tids[n++] = (pid_t)atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return n;
}

Test(fate_sharing, dns_threads_stalled_withdraw_then_recover, .init = setup27, .fini = rig_fini,
     .timeout = 60)
{
	static char out[16384];
	pid_t tids[64];
	int st;

	any_health = FAST_HEALTH;
	start_all();
	unsigned n = dns_threads(rig.d.proc.pid, tids, 64);
	cr_assert_eq(n, 2, "threads named dns-0, dns-1 (found %u)", n);
	/* ptrace stops one thread alone; SIGSTOP would stop ctl too (BFD's job). */
	uint64_t t0 = now_ms();
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(ptrace(PTRACE_SEIZE, tids[i], 0, 0), 0, "seize: %s", strerror(errno));
		cr_assert_eq(ptrace(PTRACE_INTERRUPT, tids[i], 0, 0), 0);
		cr_assert_eq(waitpid(tids[i], &st, __WALL), tids[i]);
	}
	bool gone = wait_routes("[anyc ", false, 3000, out, sizeof(out));
	uint64_t dt = now_ms() - t0;
	for (unsigned i = 0; i < n; i++)
		ptrace(PTRACE_DETACH, tids[i], 0, 0);
	if (!gone)
		dump_on_failure(out);
	cr_assert(gone, "routes still announced with every DNS thread stopped");
	fprintf(stderr, "fate_sharing: dns-* stopped -> withdrawn at BIRD in %llu ms\n",
	        (unsigned long long)dt);
	cr_expect_lt(dt, 1000, "withdrawn after %llu ms (target <= 1 s)", (unsigned long long)dt);
	cr_assert(wait_routes("64.0.0.0/2", true, 8000, out, sizeof(out)),
	          "routes did not come back after the threads resumed");
	char why[512];
	cr_assert_eq(anycached_stop_clean(&rig.d, 5000, why, sizeof(why)), 0, "%s", why);
	rig.d_up = false;
}

Test(fate_sharing, sigterm_drains_with_graceful_shutdown_then_withdraws, .init = setup28,
     .fini = rig_fini, .timeout = 60)
{
	static char out[16384], blk[2048];
	uint8_t q[512], a[4096];

	any_health = "health: {interval: 100ms, rise: 2, drain: 2s}\n";
	start_all();
	uint64_t t0 = now_ms();
	cr_assert_eq(kill(rig.d.proc.pid, SIGTERM), 0);
	/* RFC 8326 §4: 65535:0 added, and LOCAL_PREF 0 to iBGP. */
	bool gshut = wait_routes("(65535,0)", true, 1500, out, sizeof(out));
	if (!gshut)
		dump_on_failure(out);
	cr_assert(gshut, "no GRACEFUL_SHUTDOWN community while draining");
	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_expect(strstr(blk, "\tBGP.local_pref: 0\n"), "%s", blk);
	cr_expect(strstr(blk, "(65000,100) (65000,200)"), "configured communities kept:\n%s", blk);
	/* Still answering while the router moves traffic away. */
	sleep_ms(500);
	int ql = dns_make_query(q, sizeof(q), 0x8326, "www.example.test", 1, false);
	cr_assert_gt(dns_udp_exchange(rig.a[4], DNS_PORT, q, (size_t)ql, a, sizeof(a), 1000), 0,
	             "no answer during the drain");
	cr_assert(proc_alive(&rig.d.proc));
	bool gone = wait_routes("[anyc ", false, 4000, out, sizeof(out));
	uint64_t dt = now_ms() - t0;
	cr_assert(gone, "routes still there after the drain:\n%s", out);
	cr_expect_geq(dt, 1800, "withdrawn after %llu ms: before the 2 s drain ended",
	              (unsigned long long)dt);
	int stc = proc_wait(&rig.d.proc, 5000);
	rig.d_up = false;
	cr_assert(stc >= 0 && WIFEXITED(stc) && WEXITSTATUS(stc) == 0, "exit status %d", stc);
	birdc("show protocols all anyc", out, sizeof(out));
	cr_expect(strstr(out, "anycached shutting down"), "no Cease text:\n%s", out);
}

Test(fate_sharing, upstreams_dead_degrade_never_withdraw, .init = setup29, .fini = rig_fini,
     .timeout = 90)
{
	static char out[16384], blk[2048];
	uint8_t q[512], a[4096];

	any_health = FAST_HEALTH;
	any_bgp_extra = "  degraded: {local-preference: 50, communities: [\"65000:666\"]}\n";
	start_all();
	knotd_pause(&rig.knot);
	/* Uncached names, so every query needs the (dead) upstream. */
	for (int i = 0; i < 12; i++) {
		char name[64];
		snprintf(name, sizeof(name), "miss%d.example.test", i);
		int ql = dns_make_query(q, sizeof(q), (uint16_t)(0x4000 + i), name, 1, false);
		dns_udp_exchange(rig.a[4], DNS_PORT, q, (size_t)ql, a, sizeof(a), 3000);
	}
	bool degraded = wait_routes("(65000,666)", true, 5000, out, sizeof(out));
	if (!degraded)
		dump_on_failure(out);
	cr_assert(degraded, "no degraded attributes with every upstream dead");
	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_expect(strstr(blk, "\tBGP.local_pref: 50\n"), "%s", blk);
	cr_expect(strstr(blk, "(65000,100) (65000,200) (65000,666)"), "%s", blk);
	/* A shared cause never withdraws (every node sees it at once). */
	for (int i = 0; i < 10; i++) {
		birdc("show route all", out, sizeof(out));
		cr_assert(strstr(out, "64.0.0.0/2"), "withdrawn for a dead upstream:\n%s", out);
		sleep_ms(200);
	}
	cr_assert_eq(knotd_resume(&rig.knot), 0);
	char why[512];
	cr_assert_eq(anycached_stop_clean(&rig.d, 5000, why, sizeof(why)), 0, "%s", why);
	rig.d_up = false;
}

static void setup31(void)
{
	rig_init(31);
}

/* Load from this process: bursts of one cached question for ms, bounded. */
static unsigned blast(const char *addr, int ms)
{
	uint8_t q[512], a[4096];
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(DNS_PORT)};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int ql = dns_make_query(q, sizeof(q), 0x0b1a, "www.example.test", 1, false);
	unsigned answers = 0;

	cr_assert_geq(fd, 0);
	inet_pton(AF_INET, addr, &sin.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	for (uint64_t end = now_ms() + (uint64_t)ms; now_ms() < end;) {
		for (int i = 0; i < 64; i++)
			if (send(fd, q, (size_t)ql, MSG_DONTWAIT) < 0)
				break;
		while (recv(fd, a, sizeof(a), MSG_DONTWAIT) > 0)
			answers++;
	}
	close(fd);
	return answers;
}

Test(fate_sharing, overload_degrades_then_recovers, .init = setup31, .fini = rig_fini,
     .timeout = 90)
{
	static char out[16384], blk[2048];

	/* Busy 2% of the time counts as overload here; an idle loop is ~0%. */
	any_health = "health: {interval: 100ms, rise: 3, fall: 2, hold-down: 1s, drain: 0s,\n"
	             "         overload: {busy: 0.02, drops: 0, inflight: 0, latency: 0}}\n";
	any_bgp_extra = "  degraded: {local-preference: 50, communities: [\"65000:777\"]}\n";
	start_all();
	birdc("show route all", out, sizeof(out));
	cr_assert(!strstr(out, "(65000,777)"), "degraded while idle:\n%s", out);
	unsigned got = blast(rig.a[4], 3000);
	birdc("show route all", out, sizeof(out));
	fprintf(stderr, "fate_sharing: overload run answered %u queries in 3 s\n", got);
	cr_assert(strstr(out, "(65000,777)"), "no degraded attributes under load:\n%s", out);
	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_expect(strstr(blk, "\tBGP.local_pref: 50\n"), "%s", blk);
	/* Back under 80% of the threshold for `rise` intervals: UP attributes. */
	cr_assert(wait_routes("(65000,777)", false, 5000, out, sizeof(out)),
	          "still degraded after the load stopped:\n%s", out);
	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_expect(strstr(blk, "\tBGP.local_pref: 200\n"), "%s", blk);
	char why[512];
	cr_assert_eq(anycached_stop_clean(&rig.d, 5000, why, sizeof(why)), 0, "%s", why);
	rig.d_up = false;
}
