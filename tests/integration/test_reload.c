/*
 * Issue 9: reload without loss, with the real daemon, knotd as its upstream,
 * BIRD as its BGP peer and dnsperf as the load. Addresses: 127.53.80.x
 * (BIRD .1, anycached's BGP .2, the VIP .4, the listener a reload adds .5,
 * knotd .6, a client the allow list admits only after the reload .8).
 *
 * Under dnsperf load, one reload changes the route's LOCAL_PREF, adds a
 * listener and widens the allow list. Then:
 *   - dnsperf lost no query (the VIP's sockets were never closed);
 *   - BIRD sees the new LOCAL_PREF, on the same session (its "since" time
 *     and anycached's established count unchanged: no flap);
 *   - the added listener answers; the new client is answered, not REFUSED;
 *   - a file with an error is refused through anycachectl with its
 *     FILE:LINE:COLUMN, exit 1, and the daemon serves on with the previous
 *     configuration;
 *   - SIGHUP reloads too; a drained VIP stays drained across a reload; keys
 *     that need a restart are named and the rest applied.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <strings.h>

#include "bird_rig.h"
#include "ctl_itest.h"

#define NET    80
#define VIP    "127.53.80.4"
#define VIP2   "127.53.80.5"
#define CLIENT "127.53.80.8"

static char sock[600];
static char yaml_path[600];

static void setup(void)
{
	(void)rig_init;  /* this test has no IPv6 VIP: its own set-up */
	(void)any_start; /* and its own configuration */
	memset(&rig, 0, sizeof(rig));
	rig.net = NET;
	for (int k = 0; k < 8; k++)
		snprintf(rig.a[k], sizeof(rig.a[k]), "127.53.%d.%d", NET, k);
	cr_assert_eq(tmpdir_make(&rig.dir, "reload"), 0);
	const char *zones[] = {"example.test", harness_example_zone};
	cr_assert_eq(knotd_start(&rig.knot, rig.a[6], DNS_PORT, zones, 1), 0, "knotd");
	rig.knot_up = true;
}

/* The node's configuration: lp = the route's LOCAL_PREF; extra listener and client. */
static const char *upstream = "127.53.80.6"; /* knotd; .7: the second knotd */

static void yaml_for(char *out, size_t cap, unsigned lp, bool grown, const char *more)
{
	snprintf(out, cap,
	         "dns:\n"
	         "  listen: [\"" VIP ":5300\"%s]\n"
	         "  allow: [127.0.0.1/32%s]\n"
	         "  upstreams: [\"%s:5300\"]\n"
	         "  threads: 2\n"
	         "health: {interval: 100ms, rise: 2, fall: 3, drain: 0s}\n"
	         "bgp:\n"
	         "  asn: 65000\n"
	         "  router-id: 127.53.80.2\n"
	         "  neighbors:\n"
	         "    - address: 127.53.80.1\n"
	         "      asn: 65000\n"
	         "      local-address: 127.53.80.2\n"
	         "      hold-time: 9s\n"
	         "  announce:\n"
	         "    - {prefix: 64.0.0.0/2, local-preference: %u}\n"
	         "%s",
	         grown ? ", \"" VIP2 ":5300\"" : "", grown ? ", " CLIENT "/32" : "", upstream, lp,
	         more ? more : "");
}

/* dnsperf's "Queries lost:" and "Queries completed:" from its output file. */
static void dnsperf_figures(const char *log, long *sent, long *completed, long *lost)
{
	char buf[1 << 14];
	FILE *f = fopen(log, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	const char *p;
	*sent = *completed = *lost = -1;
	if ((p = strstr(buf, "Queries sent:")))
		sscanf(p, "Queries sent: %ld", sent);
	if ((p = strstr(buf, "Queries completed:")))
		sscanf(p, "Queries completed: %ld", completed);
	if ((p = strstr(buf, "Queries lost:")))
		sscanf(p, "Queries lost: %ld", lost);
	fprintf(stderr, "dnsperf across the reload: sent %ld, completed %ld, lost %ld\n", *sent,
	        *completed, *lost);
	if (*lost != 0)
		fprintf(stderr, "---- dnsperf ----\n%s\n", buf);
}

static int rcode_from(const char *src, const char *addr)
{
	uint8_t q[512], a[4096];
	int qlen = dns_make_query(q, sizeof(q), 0x4242, "www.example.test", 1, true);
	int n =
	    src ? dns_udp_exchange_from(src, addr, DNS_PORT, q, (size_t)qlen, a, sizeof(a), 2000)
	        : dns_udp_exchange(addr, DNS_PORT, q, (size_t)qlen, a, sizeof(a), 2000);
	return n >= 12 ? (a[3] & 0x0f) : -1;
}

/* anycached's view of its one session: Established since when, how many flaps. */
static void session_of_ours(double *since_unix, json_int_t *flaps)
{
	json_t *j = ctl_json(sock, "show bgp", NULL);
	json_t *nb = json_array_get(json_object_get(j, "neighbors"), 0);
	cr_assert_not_null(nb);
	cr_assert(!strcasecmp(json_string_value(json_object_get(nb, "state")), "established"),
	          "state %s", json_string_value(json_object_get(nb, "state")));
	*since_unix = json_number_value(json_object_get(nb, "state_since_unix"));
	*flaps = json_integer_value(json_object_get(nb, "flaps"));
	json_decref(j);
}

/* The same over TCP (the stream server's listener). */
static int tcp_rcode(const char *addr)
{
	uint8_t q[512], a[4096];
	int qlen = dns_make_query(q, sizeof(q), 0x4343, "www.example.test", 1, true);
	int n = dns_tcp_exchange(addr, DNS_PORT, q, (size_t)qlen, a, sizeof(a), 2000);
	return n >= 12 ? (a[3] & 0x0f) : -1;
}

static bool wait_vip_state(const char *vip, const char *state, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	do {
		json_t *h = ctl_json(sock, "show health", NULL), *v;
		size_t i;
		bool ok = false;
		json_array_foreach(json_object_get(h, "vips"), i, v)
		{
			const char *a = json_string_value(json_object_get(v, "vip"));
			if (a && !strncmp(a, vip, strlen(vip)))
				ok = !strcmp(json_string_value(json_object_get(v, "state")), state);
		}
		json_decref(h);
		if (ok)
			return true;
		usleep(100 * 1000);
	} while (now_ms() < end);
	return false;
}

TestSuite(reload, .init = setup, .fini = rig_fini, .timeout = 150);

Test(reload, under_load_no_loss_no_flap_then_bad_file_refused)
{
	static char yaml[4096], out[1 << 16], blk[2048];
	char since0[64], since1[64], log[700], data[700];
	struct proc perf = {0};

	bird_start(65000, 65000, NULL);
	yaml_for(yaml, sizeof(yaml), 100, false, NULL);
	cr_assert_eq(anycached_start(&rig.d, yaml, VIP, DNS_PORT), 0, "anycached");
	rig.d_up = true;
	snprintf(sock, sizeof(sock), "%s/control.sock", rig.d.dir.path);
	snprintf(yaml_path, sizeof(yaml_path), "%s", rig.d.conf);
	bool ok = wait_routes("64.0.0.0/2", true, 20000, out, sizeof(out));
	if (!ok)
		dump_on_failure(out);
	cr_assert(ok, "the route never reached BIRD");
	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_assert(strstr(blk, "\tBGP.local_pref: 100\n"), "%s", blk);
	bird_since("anyc", since0, sizeof(since0));
	cr_assert(since0[0], "BIRD's session is not Established");
	double our_since0;
	json_int_t flaps0;
	session_of_ours(&our_since0, &flaps0);
	/* Before: the client outside the allow list is REFUSED, VIP2 is silent. */
	cr_assert_eq(rcode_from(CLIENT, VIP), 5, "REFUSED before the reload");
	cr_assert_eq(rcode_from(NULL, VIP2), -1, "nothing listens on " VIP2 " yet");

	/* dnsperf: 7 s at 3000 q/s from 127.0.0.1 (allowed throughout). */
	snprintf(data, sizeof(data), "%s/queries.txt", rig.dir.path);
	FILE *f = fopen(data, "w");
	cr_assert_not_null(f);
	fprintf(f, "www.example.test A\nexample.test MX\nexample.test AAAA\n");
	fclose(f);
	snprintf(log, sizeof(log), "%s/dnsperf.log", rig.dir.path);
	char *argv[] = {"dnsperf", "-s", VIP,  "-p",   "5300", "-a", "127.0.0.1", "-d", data,
	                "-l",      "7",  "-Q", "3000", "-c",   "4",  "-t",        "3",  NULL};
	cr_assert_eq(proc_start(&perf, "dnsperf", argv, log), 0, "dnsperf did not start");
	sleep_ms(2000);

	/* The reload: LOCAL_PREF 100 -> 300, listener VIP2 added, CLIENT allowed. */
	yaml_for(yaml, sizeof(yaml), 300, true, NULL);
	cr_assert_eq(anycached_rewrite_conf(&rig.d, yaml), 0);
	int rc = CTL(sock, out, "reload");
	cr_expect_eq(rc, 0, "%s", out);
	cr_expect(strstr(out, "applied: dns.listen " VIP2 ":5300: added"), "%s", out);
	cr_expect(strstr(out, "applied: dns.allow: changed"), "%s", out);
	cr_expect(strstr(out, "applied: bgp.announce 64.0.0.0/2: attributes changed"), "%s", out);
	cr_expect(!strstr(out, "NOT applied"), "%s", out);

	/* dnsperf ends on its own (-l 7, then at most -t 3 for the last answers). */
	int st = proc_wait(&perf, 15000);
	cr_expect_eq(st, 0, "dnsperf exit %d", st);
	long sent, completed, lost;
	dnsperf_figures(log, &sent, &completed, &lost);
	cr_expect_gt(sent, 10000, "dnsperf sent %ld", sent);
	cr_expect_eq(lost, 0, "dnsperf lost %ld of %ld queries across the reload", lost, sent);
	cr_expect_eq(completed, sent);

	ok = wait_routes("BGP.local_pref: 300", true, 10000, out, sizeof(out));
	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_expect(ok, "BIRD never saw LOCAL_PREF 300:\n%s", blk);
	bird_since("anyc", since1, sizeof(since1));
	cr_expect(bird_same_time(since1, since0),
	          "the BGP session restarted (BIRD: since %s, then %s)", since0, since1);
	/* Our side: the same session (Established since the same instant, no flap). */
	double our_since1;
	json_int_t flaps1;
	session_of_ours(&our_since1, &flaps1);
	cr_expect_eq(flaps1, flaps0, "anycached counts a flap");
	cr_expect(our_since1 > our_since0 - 1.5 && our_since1 < our_since0 + 1.5,
	          "Established since %.3f, then %.3f", our_since0, our_since1);
	json_t *j;

	/* The added listener answers (after its VIP rises), the new client is admitted. */
	cr_expect_eq(rcode_from(NULL, VIP2), 0, "the added listener does not answer");
	cr_expect_eq(tcp_rcode(VIP2), 0, "the added listener does not answer over TCP");
	cr_expect(wait_vip_state(VIP2, "up", 5000), "VIP2 never came up");
	cr_expect_eq(rcode_from(CLIENT, VIP), 0, "the widened allow list is not applied");
	j = ctl_json(sock, "status", NULL);
	json_t *cf = json_object_get(j, "config");
	cr_expect_eq(json_integer_value(json_object_get(cf, "reloads")), 1);
	json_int_t loaded = json_integer_value(json_object_get(cf, "loaded_unix"));
	cr_expect_gt(loaded, 1600000000);
	json_decref(j);

	/* A bad file: refused with FILE:LINE:COLUMN, exit 1, the running one stays. */
	yaml_for(yaml, sizeof(yaml), 999, true, NULL);
	char *bad = strstr(yaml, "rise: 2");
	cr_assert_not_null(bad);
	memcpy(bad, "rise: x", 7);
	cr_assert_eq(anycached_rewrite_conf(&rig.d, yaml), 0);
	rc = CTL(sock, out, "reload");
	cr_expect_eq(rc, 1, "a bad file must fail: %s", out);
	char want[800];
	const char *line6 = strstr(yaml, "\nhealth:") + 1;
	snprintf(want, sizeof(want), "%s:6:%d: health.rise: expected an integer", rig.d.conf,
	         (int)(bad + 6 - line6) + 1);
	cr_expect(strstr(out, want), "no %s in:\n%s", want, out);
	cr_expect(strstr(out, "(bad-config)"), "%s", out);
	cr_expect(strstr(out, "the running one stays"), "%s", out);
	cr_expect(proc_alive(&rig.d.proc), "the daemon died on a bad file");
	cr_expect_eq(rcode_from(NULL, VIP), 0);
	cr_expect_eq(rcode_from(NULL, VIP2), 0);
	cr_expect_eq(rcode_from(CLIENT, VIP), 0, "the old allow list still applies");
	sleep_ms(500);
	birdc("show route all", out, sizeof(out));
	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_expect(strstr(blk, "\tBGP.local_pref: 300\n"), "the bad file's 999 went out:\n%s", blk);
	j = ctl_json(sock, "status", NULL);
	cf = json_object_get(j, "config");
	cr_expect_eq(json_integer_value(json_object_get(cf, "reloads")), 1);
	cr_expect_eq(json_integer_value(json_object_get(cf, "loaded_unix")), loaded);
	json_decref(j);
	bird_since("anyc", since1, sizeof(since1));
	cr_expect(bird_same_time(since1, since0), "the session restarted (%s, then %s)", since0,
	          since1);
	/* Exit 0, no sanitizer report (the closed and added listeners' memory included). */
	char why[256];
	rig.d_up = false;
	cr_expect_eq(anycached_stop_clean(&rig.d, 5000, why, sizeof(why)), 0, "%s", why);
}

Test(reload, sighup_drain_kept_restart_keys_named)
{
	static char yaml[4096], out[1 << 16], blk[2048];
	char since0[64], since1[64];

	bird_start(65000, 65000, NULL);
	yaml_for(yaml, sizeof(yaml), 100, true, NULL);
	cr_assert_eq(anycached_start(&rig.d, yaml, VIP, DNS_PORT), 0, "anycached");
	rig.d_up = true;
	snprintf(sock, sizeof(sock), "%s/control.sock", rig.d.dir.path);
	bool ok = wait_routes("64.0.0.0/2", true, 20000, out, sizeof(out));
	if (!ok)
		dump_on_failure(out);
	cr_assert(ok, "the route never reached BIRD");
	bird_since("anyc", since0, sizeof(since0));
	cr_assert(since0[0]);
	cr_assert(wait_vip_state(VIP2, "up", 5000));
	/* Something in the cache, to see it kept across the reloads below. */
	cr_assert_eq(rcode_from(NULL, VIP), 0);
	json_t *cj = ctl_json(sock, "show cache", NULL);
	json_int_t entries0 = json_integer_value(json_object_get(cj, "entries"));
	json_decref(cj);
	cr_assert_geq(entries0, 1);
	cr_assert_eq(CTL(sock, out, "drain", VIP2), 0, "%s", out);
	cr_assert(wait_vip_state(VIP2, "draining", 3000));

	/* SIGHUP: LOCAL_PREF 250, threads 3 (needs a restart), VIP2 still drained. */
	yaml_for(yaml, sizeof(yaml), 250, true, NULL);
	char *t = strstr(yaml, "threads: 2");
	cr_assert_not_null(t);
	t[9] = '3';
	cr_assert_eq(anycached_rewrite_conf(&rig.d, yaml), 0);
	cr_assert_eq(kill(rig.d.proc.pid, SIGHUP), 0);
	ok = wait_routes("BGP.local_pref: 250", true, 10000, out, sizeof(out));
	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_expect(ok, "SIGHUP did not reload:\n%s", blk);
	cr_expect(wait_vip_state(VIP2, "draining", 1000), "the drain was lost across the reload");
	cr_expect(wait_vip_state(VIP, "up", 1000));
	json_t *j = ctl_json(sock, "status", NULL);
	cr_expect_eq(json_integer_value(json_object_get(j, "workers")), 2, "threads stay 2");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "config"), "reloads")),
	             1);
	json_decref(j);
	/* The log names what waits for a restart. */
	char line[256];
	(void)line;
	FILE *f = fopen(rig.d.proc.log, "r");
	cr_assert_not_null(f);
	bool named = false;
	while (fgets(out, sizeof(out), f))
		named |= strstr(out, "dns.threads: changed, needs a restart") != NULL;
	fclose(f);
	cr_expect(named, "the log does not say dns.threads needs a restart");
	/* anycachectl says it too (the file still differs in threads). */
	cr_expect_eq(CTL(sock, out, "reload"), 0, "%s", out);
	cr_expect(strstr(out, "NOT applied: dns.threads: changed, needs a restart"), "%s", out);
	/* Removing the listener closes it; the session never moved. */
	yaml_for(yaml, sizeof(yaml), 250, false, NULL);
	cr_assert_eq(anycached_rewrite_conf(&rig.d, yaml), 0);
	cr_expect_eq(CTL(sock, out, "reload"), 0, "%s", out);
	cr_expect(strstr(out, "applied: dns.listen " VIP2 ":5300: removed"), "%s", out);
	uint64_t end = now_ms() + 3000;
	while (rcode_from(NULL, VIP2) != -1 && now_ms() < end)
		sleep_ms(100);
	cr_expect_eq(rcode_from(NULL, VIP2), -1, "the removed listener still answers");
	cr_expect_eq(tcp_rcode(VIP2), -1, "the removed listener still accepts TCP");
	cr_expect_eq(tcp_rcode(VIP), 0);
	cr_expect_eq(rcode_from(NULL, VIP), 0);

	/* Upstreams: a second knotd with its own zone; the cache keeps what it holds. */
	static struct knotd knot2;
	static const char moved_zone[] = "$ORIGIN moved.test.\n$TTL 300\n"
	                                 "@ SOA ns.moved.test. hostmaster.moved.test. 1 3600 600 "
	                                 "86400 60\n@ NS ns\nns A 127.0.0.1\nwww A 192.0.2.99\n";
	const char *zones2[] = {"moved.test", moved_zone};
	cr_assert_eq(knotd_start(&knot2, rig.a[7], DNS_PORT, zones2, 1), 0, "second knotd");
	uint8_t q[512], a[4096];
	int qlen = dns_make_query(q, sizeof(q), 0x7777, "www.moved.test", 1, true);
	int n = dns_udp_exchange(VIP, DNS_PORT, q, (size_t)qlen, a, sizeof(a), 3000);
	cr_expect(n < 12 || (a[3] & 0x0f) != 0, "moved.test answered before the switch");
	upstream = "127.53.80.7";
	yaml_for(yaml, sizeof(yaml), 250, false, NULL);
	cr_assert_eq(anycached_rewrite_conf(&rig.d, yaml), 0);
	cr_expect_eq(CTL(sock, out, "reload"), 0, "%s", out);
	cr_expect(strstr(out, "applied: dns.upstreams: changed"), "%s", out);
	/* Another name: the failure above is cached for a few seconds (the cache is kept). */
	qlen = dns_make_query(q, sizeof(q), 0x7778, "ns.moved.test", 1, true);
	n = dns_udp_exchange(VIP, DNS_PORT, q, (size_t)qlen, a, sizeof(a), 3000);
	cr_expect(n >= 12 && (a[3] & 0x0f) == 0, "the new upstream is not used (n %d)", n);
	cj = ctl_json(sock, "show cache", NULL);
	cr_expect_geq(json_integer_value(json_object_get(cj, "entries")), entries0,
	              "the cache was not kept");
	json_decref(cj);
	cj = ctl_json(sock, "show upstreams", NULL);
	cr_expect_str_eq(json_string_value(json_object_get(
	                     json_array_get(json_object_get(cj, "upstreams"), 0), "address")),
	                 "127.53.80.7:5300");
	json_decref(cj);
	/* The health shown is the running table's: with the new upstream gone,
	 * three questions fail there (port unreachable) and "show upstreams" says
	 * so; a view left on the table from before the reload showed "suspect"
	 * with 1 failure (the REFUSED for www.moved.test above). */
	knotd_stop(&knot2);
	for (int i = 0; i < 3; i++) {
		char name[32];
		snprintf(name, sizeof(name), "gone%d.moved.test", i);
		qlen = dns_make_query(q, sizeof(q), (uint16_t)(0x7779 + i), name, 1, true);
		dns_udp_exchange(VIP, DNS_PORT, q, (size_t)qlen, a, sizeof(a), 4000);
	}
	cj = ctl_json(sock, "show upstreams", NULL);
	json_t *u0 = json_array_get(json_object_get(cj, "upstreams"), 0);
	cr_expect_geq(json_integer_value(json_object_get(u0, "consecutive_failures")), 3,
	              "show upstreams does not show the new upstream's failures");
	json_decref(cj);
	upstream = "127.53.80.6";

	bird_since("anyc", since1, sizeof(since1));
	cr_expect(bird_same_time(since1, since0), "the session restarted (BIRD: since %s, then %s)",
	          since0, since1);
	if (!bird_same_time(since0, since1)) {
		birdc("show protocols all anyc", out, sizeof(out));
		fprintf(stderr, "%s\n", out);
		proc_dump_log(&rig.d.proc);
	}
	char why[256];
	rig.d_up = false;
	cr_expect_eq(anycached_stop_clean(&rig.d, 5000, why, sizeof(why)), 0, "%s", why);
}
