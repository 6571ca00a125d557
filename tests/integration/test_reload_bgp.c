/*
 * Issue 9: BGP neighbors added, removed and changed by a reload, with the
 * real daemon and BIRD as two routers. Addresses: 127.53.89.x (BIRD's
 * protocol anyc1 on .1 toward anycached's .2, anyc2 on .3 toward anycached's
 * .7: BIRD locks a neighbor address, so two protocols cannot share one; the
 * VIP .4, metrics .5, knotd .6).
 *
 * Starting with anyc1 as the only neighbor:
 *   - a reload adding .3 (from our .7, a BGP listener the reload opens):
 *     anyc2's session comes up and gets the route;
 *     anyc1's session is untouched (BIRD's "since" unchanged);
 *   - anycachectl restart hands both sessions over (the one the reload
 *     added too): neither of BIRD's "since" times moves;
 *   - a reload removing .1: BIRD's anyc1 received Cease "Peer
 *     de-configured" (6/3, RFC 4486) and lost the route; anyc2 untouched;
 *   - a reload changing .3's hold time: Cease "Other configuration change"
 *     (6/6), and the session comes back with the route;
 *   - anycachectl show bgp and /metrics list the current neighbors; the
 *     daemon stops clean (no sanitizer report from the freed sessions).
 */
#include <criterion/criterion.h>
#include <strings.h>
#include <sys/prctl.h>

#include "bird_rig.h"
#include "ctl_itest.h"

#define NET 89
#define VIP "127.53.89.4"
#define N1  "127.53.89.1"
#define N3  "127.53.89.3"

static char sock[600];

static void setup(void)
{
	/* The restart's successor is re-parented to us (as in test_restart.c). */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	(void)rig_init;  /* no IPv6 VIP here: its own set-up */
	(void)any_start; /* and its own configuration */
	(void)bird_start;
	(void)established;
	(void)dump_on_failure;
	(void)route_block;
	(void)wait_routes;
	memset(&rig, 0, sizeof(rig));
	rig.net = NET;
	for (int k = 0; k < 8; k++)
		snprintf(rig.a[k], sizeof(rig.a[k]), "127.53.%d.%d", NET, k);
	cr_assert_eq(tmpdir_make(&rig.dir, "reloadbgp"), 0);
	const char *zones[] = {"example.test", harness_example_zone};
	cr_assert_eq(knotd_start(&rig.knot, rig.a[6], DNS_PORT, zones, 1), 0, "knotd");
	rig.knot_up = true;
}

/* One BIRD, two routers: protocol anyc1 on .1 toward .2, anyc2 on .3 toward .7. */
static void bird2_start(void)
{
	char text[4096], log[600];
	static const char proto[] = "protocol bgp %s {\n"
	                            "  local %s as 65000;\n"
	                            "  neighbor %s as 65000;\n"
	                            "  strict bind yes;\n"
	                            "  hold time 9;\n"
	                            "  error wait time 1, 2;\n"
	                            "  connect delay time 1;\n"
	                            "  connect retry time 2;\n"
	                            "  ipv4 { import all; export none; };\n"
	                            "}\n";
	int n;

	snprintf(rig.bird_log, sizeof(rig.bird_log), "%s/bird.log", rig.dir.path);
	n = snprintf(text, sizeof(text), "log \"%s\" all;\nrouter id %s;\nprotocol device { }\n",
	             rig.bird_log, N1);
	n += snprintf(text + n, sizeof(text) - (size_t)n, proto, "anyc1", N1, "127.53.89.2");
	snprintf(text + n, sizeof(text) - (size_t)n, proto, "anyc2", N3, "127.53.89.7");
	cr_assert_eq(
	    write_file(rig.dir.path, "bird.conf", text, rig.bird_conf, sizeof(rig.bird_conf)), 0);
	snprintf(rig.bird_sock, sizeof(rig.bird_sock), "%s/bird.ctl", rig.dir.path);
	snprintf(log, sizeof(log), "%s/bird.out", rig.dir.path);
	char *argv[] = {"bird", "-f", "-c", rig.bird_conf, "-s", rig.bird_sock, NULL};
	cr_assert_eq(proc_start(&rig.bird, "bird", argv, log), 0, "bird did not start");
}

/* The node: neighbors .1 and/or .3 (hold3: .3's hold time in seconds). */
static void yaml_for(char *out, size_t cap, bool with1, bool with3, unsigned hold3)
{
	char n1[256] = "", n3[256] = "";

	if (with1)
		snprintf(n1, sizeof(n1),
		         "    - {address: " N1 ", asn: 65000, local-address: 127.53.89.2, "
		         "hold-time: 9s}\n");
	if (with3)
		snprintf(n3, sizeof(n3),
		         "    - {address: " N3 ", asn: 65000, local-address: 127.53.89.7, "
		         "hold-time: %us}\n",
		         hold3);
	snprintf(out, cap,
	         "dns:\n"
	         "  listen: [\"" VIP ":5300\"]\n"
	         "  upstreams: [\"127.53.89.6:5300\"]\n"
	         "  threads: 1\n"
	         "health: {interval: 100ms, rise: 2, fall: 3, drain: 0s}\n"
	         "bgp:\n"
	         "  asn: 65000\n"
	         "  router-id: 127.53.89.2\n"
	         "  neighbors:\n"
	         "%s%s"
	         "  announce:\n"
	         "    - {prefix: 64.0.0.0/2, local-preference: 200}\n"
	         "control: {metrics: \"127.53.89.5:9100\", socket: \"%s/c.sock\"}\n",
	         n1, n3, rig.dir.path);
}

/* Whether BIRD holds 64.0.0.0/2 from proto (want) or not (!want), within timeout. */
static bool wait_route_from(const char *proto, bool want, int timeout_ms)
{
	char cmd[64], out[8192];
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	snprintf(cmd, sizeof(cmd), "show route protocol %s", proto);
	do {
		birdc(cmd, out, sizeof(out));
		if ((strstr(out, "64.0.0.0/2") != NULL) == want)
			return true;
		usleep(100 * 1000);
	} while (now_ms() < end);
	return false;
}

/* BIRD's last error for proto contains what (case-insensitive), within timeout. */
static bool wait_last_error(const char *proto, const char *what, int timeout_ms, char *out,
                            size_t cap)
{
	char cmd[64];
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	snprintf(cmd, sizeof(cmd), "show protocols all %s", proto);
	do {
		birdc(cmd, out, cap);
		const char *e = strstr(out, "Last error:");
		if (e && strcasestr(e, what))
			return true;
		usleep(100 * 1000);
	} while (now_ms() < end);
	return false;
}

/* anycached's neighbors as "addr:state," in order. */
static void our_neighbors(char *out, size_t cap)
{
	json_t *j = ctl_json(sock, "show bgp", NULL), *nb;
	size_t i, off = 0;
	out[0] = 0;
	json_array_foreach(json_object_get(j, "neighbors"), i, nb)
	{
		const char *a = json_string_value(json_object_get(nb, "address"));
		const char *s = json_string_value(json_object_get(nb, "state"));
		off += (size_t)snprintf(out + off, cap - off, "%s:%s,", a ? a : "?", s ? s : "?");
		if (off >= cap)
			break;
	}
	json_decref(j);
}

static bool wait_ours(const char *want, int timeout_ms, char *out, size_t cap)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	do {
		our_neighbors(out, cap);
		if (!strcasecmp(out, want))
			return true;
		usleep(100 * 1000);
	} while (now_ms() < end);
	return false;
}

/* GET /metrics: 0 and the page, or -1. */
static int get_metrics(char *out, size_t cap)
{
	int status;
	int n = http_exchange("127.53.89.5", 9100,
	                      "GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n", out,
	                      cap - 1, &status);
	out[n > 0 ? n : 0] = 0;
	return n > 0 && status == 200 ? 0 : -1;
}

static void dump_bird(const char *proto)
{
	static char out[1 << 15];
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "show protocols all %s", proto);
	birdc(cmd, out, sizeof(out));
	fprintf(stderr, "---- birdc %s ----\n%s\n", cmd, out);
	FILE *f = fopen(rig.bird_log, "r");
	size_t n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
	if (f)
		fclose(f);
	out[n] = 0;
	fprintf(stderr, "---- bird.log ----\n%s\n", n > 6000 ? out + n - 6000 : out);
	proc_dump_log(&rig.d.proc);
}

TestSuite(reload_bgp, .init = setup, .fini = rig_fini, .timeout = 150);

Test(reload_bgp, neighbors_added_removed_changed_live)
{
	static char yaml[4096], out[1 << 15];
	char s1a[64], s1b[64], s2a[64], s2b[64], ours[512];

	harness_verbose = true; /* the BGP debug lines, for a failure's log */
	bird2_start();
	yaml_for(yaml, sizeof(yaml), true, false, 9);
	cr_assert_eq(anycached_start(&rig.d, yaml, VIP, DNS_PORT), 0, "anycached");
	rig.d_up = true;
	snprintf(sock, sizeof(sock), "%s/c.sock", rig.dir.path);
	bool ok = wait_route_from("anyc1", true, 20000);
	if (!ok)
		proc_dump_log(&rig.d.proc);
	cr_assert(ok, "the route never reached BIRD's anyc1");
	bird_since("anyc1", s1a, sizeof(s1a));
	cr_assert(s1a[0], "anyc1 is not Established");
	cr_assert(!wait_route_from("anyc2", true, 500), "anyc2 has a route before the reload");

	/* Add .3: a new session, the route on it; anyc1 untouched. */
	yaml_for(yaml, sizeof(yaml), true, true, 9);
	cr_assert_eq(anycached_rewrite_conf(&rig.d, yaml), 0);
	int rc = CTL(sock, out, "reload");
	cr_expect_eq(rc, 0, "%s", out);
	cr_expect(strstr(out, "applied: bgp.neighbors " N3 ": added"), "%s", out);
	cr_expect(!strstr(out, "NOT applied"), "%s", out);
	uint64_t t0 = now_ms();
	ok = wait_route_from("anyc2", true, 20000);
	fprintf(stderr, "added neighbor: route at BIRD's anyc2 %llu ms after the reload\n",
	        (unsigned long long)(now_ms() - t0));
	if (!ok)
		dump_bird("anyc2");
	cr_assert(ok, "the added neighbor never got the route");
	cr_expect(
	    wait_ours(N1 ":179:Established," N3 ":179:Established,", 5000, ours, sizeof(ours)),
	    "show bgp: %s", ours);
	bird_since("anyc1", s1b, sizeof(s1b));
	cr_expect(bird_same_time(s1b, s1a), "anyc1 restarted (since %s, then %s)", s1a, s1b);
	bird_since("anyc2", s2a, sizeof(s2a));
	cr_expect(s2a[0], "anyc2 is not Established");
	char metrics[1 << 15];
	cr_expect_eq(get_metrics(metrics, sizeof(metrics)), 0);
	cr_expect(strstr(metrics, "neighbor=\"" N3 "\""), "/metrics lacks " N3);

	/* A restart: the successor takes both sessions, the added one included. */
	json_t *st = ctl_json(sock, "status", NULL);
	pid_t old = (pid_t)json_integer_value(json_object_get(st, "pid"));
	json_decref(st);
	rc = CTL(sock, out, "restart");
	cr_assert_eq(rc, 0, "restart: %s", out);
	st = ctl_json(sock, "status", NULL);
	pid_t now = (pid_t)json_integer_value(json_object_get(st, "pid"));
	json_decref(st);
	cr_assert(now > 0 && now != old, "pid %d then %d", (int)old, (int)now);
	cr_assert_eq(proc_wait(&rig.d.proc, 5000), 0, "the old process did not exit cleanly");
	rig.d.proc.pid = now; /* our child now (subreaper) */
	bird_since("anyc1", s1b, sizeof(s1b));
	cr_expect(bird_same_time(s1b, s1a), "anyc1 restarted across the handover (%s, then %s)",
	          s1a, s1b);
	bird_since("anyc2", s2b, sizeof(s2b));
	cr_expect(bird_same_time(s2b, s2a),
	          "anyc2 (added by the reload) was not handed over (%s, then %s)", s2a, s2b);
	cr_expect(
	    wait_ours(N1 ":179:Established," N3 ":179:Established,", 5000, ours, sizeof(ours)),
	    "show bgp after the restart: %s", ours);

	/* Remove .1: Cease 6/3 at anyc1, its route gone; anyc2 untouched. */
	yaml_for(yaml, sizeof(yaml), false, true, 9);
	cr_assert_eq(anycached_rewrite_conf(&rig.d, yaml), 0);
	rc = CTL(sock, out, "reload");
	cr_expect_eq(rc, 0, "%s", out);
	cr_expect(strstr(out, "applied: bgp.neighbors " N1 ": removed"), "%s", out);
	ok = wait_last_error("anyc1", "de-configured", 5000, out, sizeof(out));
	cr_expect(ok, "BIRD's anyc1 did not receive Cease 6/3:\n%s", out);
	cr_expect(strstr(out, "Received:"), "%s", out);
	cr_expect(wait_route_from("anyc1", false, 5000), "anyc1 still holds the route");
	cr_expect(wait_ours(N3 ":179:Established,", 5000, ours, sizeof(ours)), "show bgp: %s",
	          ours);
	bird_since("anyc2", s2b, sizeof(s2b));
	cr_expect(bird_same_time(s2b, s2a), "anyc2 restarted (since %s, then %s)", s2a, s2b);
	cr_expect(wait_route_from("anyc2", true, 100), "anyc2 lost the route");
	/* BIRD retries anyc1 (error wait 1-2 s): anycached refuses it, not a neighbor. */
	sleep_ms(2500);
	bird_since("anyc1", s1b, sizeof(s1b));
	cr_expect(!s1b[0], "anyc1 came back up without being a neighbor");
	cr_expect_eq(get_metrics(metrics, sizeof(metrics)), 0);
	cr_expect(!strstr(metrics, "neighbor=\"" N1 "\""), "/metrics still lists " N1);

	/* Change .3's hold time: Cease 6/6, then a new session with the route. */
	yaml_for(yaml, sizeof(yaml), false, true, 12);
	cr_assert_eq(anycached_rewrite_conf(&rig.d, yaml), 0);
	rc = CTL(sock, out, "reload");
	cr_expect_eq(rc, 0, "%s", out);
	cr_expect(strstr(out, "applied: bgp.neighbors " N3 ": removed"), "%s", out);
	cr_expect(strstr(out, "applied: bgp.neighbors " N3 ": added"), "%s", out);
	ok = wait_last_error("anyc2", "configuration change", 5000, out, sizeof(out));
	cr_expect(ok, "BIRD's anyc2 did not receive Cease 6/6:\n%s", out);
	t0 = now_ms();
	uint64_t end = now_ms() + 20000;
	do
		bird_since("anyc2", s2b, sizeof(s2b));
	while ((!s2b[0] || bird_same_time(s2b, s2a)) && now_ms() < end);
	fprintf(stderr, "changed neighbor: re-established %llu ms after the Cease was seen\n",
	        (unsigned long long)(now_ms() - t0));
	cr_expect(s2b[0] && !bird_same_time(s2b, s2a), "anyc2 never came back (since %s)", s2b);
	cr_expect(wait_route_from("anyc2", true, 5000), "anyc2 has no route after the change");
	json_t *j = ctl_json(sock, "show bgp", NULL);
	json_t *nb = json_array_get(json_object_get(j, "neighbors"), 0);
	cr_expect_eq(json_array_size(json_object_get(j, "neighbors")), 1);
	json_decref(j);
	(void)nb;

	char why[256];
	rig.d_up = false;
	cr_expect_eq(anycached_stop_clean(&rig.d, 5000, why, sizeof(why)), 0, "%s", why);
}
