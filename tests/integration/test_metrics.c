/*
 * Issue 9: the metrics endpoint with the real daemon. Addresses 127.53.71.x
 * (anycached .1 with metrics on :9253, knotd .2) and, with BIRD (bird_rig.h),
 * 127.53.73.x.
 *   - a real scrape passes `promtool check metrics` and carries what the
 *     daemon did (queries by transport and RCODE, cache, latency histogram,
 *     upstreams, VIP health; BGP sessions with BIRD);
 *   - /health: 200 while a VIP is up, 503 while drained, 200 again;
 *   - HTTP that is not a plain GET: 400, 404, 405, 414/431/505, and clients
 *     that send nothing or too much are cut off.
 */
#include <criterion/criterion.h>
#include <math.h>

#include "bird_rig.h"
#include "ctl_itest.h"

#define NODE     "127.53.71.1"
#define UPSTREAM "127.53.71.2"
#define MPORT    9253

static struct knotd knot;
static struct anycached daemon_;
static char sock[600];
static char page[1 << 18];

static const char yaml[] = "dns:\n"
                           "  listen: [\"" NODE ":5300\"]\n"
                           "  allow: [127.0.0.0/8]\n"
                           "  upstreams: [\"" UPSTREAM ":5300\"]\n"
                           "  threads: 2\n"
                           "health: {interval: 100ms, rise: 2, fall: 2, hold-down: 0s}\n";

static struct tmpdir cdir;
static char y[2048]; /* the configuration it runs */

static void setup(void)
{
	const char *zones[] = {"example.test", harness_example_zone};

	cr_assert_eq(knotd_start(&knot, UPSTREAM, 5300, zones, 1), 0, "knotd did not start");
	cr_assert_eq(tmpdir_make(&cdir, "metricsctl"), 0);
	snprintf(sock, sizeof(sock), "%s/ctl.sock", cdir.path);
	snprintf(y, sizeof(y),
	         "%scontrol: {metrics: \"" NODE "\", socket: \"%s\", state: \"%s/drain.json\"}\n",
	         yaml, sock, cdir.path);
	cr_assert_eq(anycached_start(&daemon_, y, NODE, 5300), 0, "anycached did not answer");
}

static void teardown(void)
{
	anycached_stop(&daemon_);
	knotd_stop(&knot);
	tmpdir_remove(&cdir);
}

TestSuite(metrics, .init = setup, .fini = teardown, .timeout = 120);

/* GET path over HTTP/1.1; the response in page, its status returned. */
static int get(const char *path)
{
	char req[256];
	int status;

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: " NODE "\r\nUser-Agent: test\r\n\r\n",
	         path);
	cr_assert_gt(http_exchange(NODE, MPORT, req, page, sizeof(page), &status), 0,
	             "no answer to GET %s", path);
	return status;
}

/* promtool check metrics on the body of the last response. */
static void promtool_check(void)
{
	char path[600], out[8192];
	struct tmpdir t;

	cr_assert_eq(tmpdir_make(&t, "promtool"), 0);
	cr_assert_eq(write_file(t.path, "scrape.txt", http_body(page), path, sizeof(path)), 0);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
	char *argv[] = {"sh", "-c", cmd, NULL};
	int rc = run_capture(argv, true, out, sizeof(out), 30000);
	tmpdir_remove(&t);
	cr_assert_eq(rc, 0, "promtool check metrics failed:\n%s", out);
	cr_assert_str_eq(out, "", "promtool has remarks:\n%s", out);
}

static bool wait_health(int want, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	do {
		if (get("/health") == want)
			return true;
		sleep_ms(100);
	} while (now_ms() < end);
	return false;
}

Test(metrics, scrape_passes_promtool_and_counts)
{
	uint8_t q[512], a[4096];
	int qlen = dns_make_query(q, sizeof(q), 0x4444, "www.example.test", 1, true);

	cr_assert(wait_health(200, 5000), "never healthy");
	cr_assert_eq(get("/metrics"), 200);
	double lookups0 = scrape_value(http_body(page), "anycache_cache_hits_total") +
	                  scrape_value(http_body(page), "anycache_cache_misses_total");
	double udp0 = scrape_value(http_body(page), "anycache_queries_total{transport=\"udp\"}");
	for (int i = 0; i < 5; i++)
		cr_assert_gt(dns_udp_exchange(NODE, 5300, q, (size_t)qlen, a, sizeof(a), 3000), 12);
	qlen = dns_make_query(q, sizeof(q), 0x4445, "nosuch.example.test", 1, true);
	cr_assert_gt(dns_tcp_exchange(NODE, 5300, q, (size_t)qlen, a, sizeof(a), 3000), 12);

	cr_assert_eq(get("/metrics"), 200);
	cr_assert_not_null(strstr(page, "Content-Type: text/plain; version=0.0.4"), "%.300s", page);
	cr_assert_not_null(strstr(page, "Connection: close"));
	promtool_check();
	const char *b = http_body(page);
	cr_assert_geq(scrape_value(b, "anycache_queries_total{transport=\"udp\"}"), 5);
	cr_assert_eq(scrape_value(b, "anycache_queries_total{transport=\"tcp\"}"), 1);
	cr_assert_eq(scrape_value(b, "anycache_responses_total{rcode=\"NXDOMAIN\"}"), 1);
	cr_assert_geq(scrape_value(b, "anycache_responses_total{rcode=\"NOERROR\"}"), 5);
	cr_assert_eq(scrape_value(b, "anycache_cache_hits_total") +
	                 scrape_value(b, "anycache_cache_misses_total") - lookups0,
	             6, "every query was a hit or a miss");
	cr_assert_geq(scrape_value(b, "anycache_queries_total{transport=\"udp\"}") - udp0, 5);
	cr_assert_geq(scrape_value(b, "anycache_cache_entries"), 2);
	cr_assert_gt(scrape_value(b, "anycache_cache_bytes"), 0);
	/* Every answer is in the histogram (the probes' identity answers too). */
	double count = scrape_value(b, "anycache_answer_latency_seconds_count");
	cr_assert_geq(count, 6);
	cr_assert_eq(scrape_value(b, "anycache_answer_latency_seconds_bucket{le=\"+Inf\"}"), count);
	cr_assert_gt(scrape_value(b, "anycache_answer_latency_seconds_sum"), 0);
	cr_assert_geq(
	    scrape_value(b, "anycache_upstream_answers_total{upstream=\"" UPSTREAM ":5300\"}"), 1);
	cr_assert_eq(scrape_value(b, "anycache_upstream_state{upstream=\"" UPSTREAM
	                             ":5300\",state=\"healthy\"}"),
	             1);
	cr_assert_eq(scrape_value(b, "anycache_vip_state{vip=\"" NODE ":5300\",state=\"up\"}"), 1);
	/* Present (zero here: no cookies asked): a missing family reads NAN. */
	cr_assert_eq(scrape_value(b, "anycache_cookie_errors_total"), 0);
	cr_assert_eq(scrape_value(b, "anycache_cookie_unsent_total"), 0);
	cr_assert_eq(scrape_value(b, "anycache_workers"), 2);
	cr_assert_eq(scrape_value(b, "anycache_workers_answered"), 2);
	cr_assert(!isnan(scrape_value(b, "anycache_loop_busy_ratio")));
	cr_assert(!isnan(scrape_value(b, "anycache_receive_drops_total")));
	cr_assert_eq(scrape_value(b, "anycache_log_dropped_total"), 0, "the log queue never filled");
	cr_assert(!isnan(scrape_value(b, "anycache_build_info{version=\"0.1.0\"}")));
	/* Counters never go backwards between scrapes. */
	double before = scrape_value(b, "anycache_queries_total{transport=\"udp\"}");
	cr_assert_eq(get("/metrics"), 200);
	cr_assert_geq(scrape_value(http_body(page), "anycache_queries_total{transport=\"udp\"}"),
	              before);
	char why[256];
	cr_assert_eq(anycached_stop_clean(&daemon_, 3000, why, sizeof(why)), 0, "%s", why);
}

Test(metrics, health_follows_the_vips)
{
	char out[4096];

	cr_assert(wait_health(200, 5000), "never healthy");
	cr_assert_not_null(strstr(http_body(page), "ok: 1 of 1 VIPs up"), "%s", page);
	cr_assert_eq(CTL(sock, out, "drain"), 0, "%s", out);
	cr_assert(wait_health(503, 3000), "still 200 while drained");
	cr_assert_not_null(strstr(http_body(page), "unavailable"), "%s", page);
	cr_assert_eq(get("/metrics"), 200);
	cr_assert_eq(scrape_value(http_body(page), "anycache_vip_drained{vip=\"" NODE ":5300\"}"),
	             1);
	cr_assert_eq(scrape_value(http_body(page),
	                          "anycache_vip_state{vip=\"" NODE ":5300\",state=\"draining\"}"),
	             1);
	cr_assert_eq(CTL(sock, out, "undrain"), 0, "%s", out);
	cr_assert(wait_health(200, 5000), "not healthy again after undrain");
	/* HTTP/1.0 without Host is fine too. */
	int status;
	cr_assert_gt(
	    http_exchange(NODE, MPORT, "GET /health HTTP/1.0\r\n\r\n", page, sizeof(page), &status),
	    0);
	cr_assert_eq(status, 200);
}

Test(metrics, http_other_than_a_plain_get)
{
	static const struct {
		const char *req;
		int status;
	} cases[] = {
	    {"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405},
	    {"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405},
	    {"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404},
	    {"GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n", 404},
	    {"GET /metrics HTTP/1.1\r\n\r\n", 400},
	    {"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505},
	    {"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400},
	    {"hello\r\n\r\n", 400},
	    {"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400},
	};
	int status;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_gt(http_exchange(NODE, MPORT, cases[i].req, page, sizeof(page), &status),
		             0, "case %zu: no answer", i);
		cr_assert_eq(status, cases[i].status, "case %zu: %.200s", i, page);
	}
	cr_assert_eq(http_exchange(NODE, MPORT, cases[0].req, page, sizeof(page), &status) > 0 &&
	                 strstr(page, "\r\nAllow: GET\r\n") != NULL,
	             1, "405 says what is allowed: %s", page);
	/* A long path, and a head that never ends within 4 KiB. */
	static char big[6000];
	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "GET /", 5);
	cr_assert_gt(http_exchange(NODE, MPORT, big, page, sizeof(page), &status), 0);
	cr_assert_eq(status, 414);
	snprintf(big, sizeof(big), "GET /metrics HTTP/1.1\r\nHost: x\r\n");
	size_t n = strlen(big);
	while (n + 20 < sizeof(big))
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-Pad: %05zu\r\n", n);
	cr_assert_gt(http_exchange(NODE, MPORT, big, page, sizeof(page), &status), 0);
	cr_assert_eq(status, 431, "%.200s", page);
	/* Still serving. */
	cr_assert_eq(get("/metrics"), 200);
}

Test(metrics, slow_and_silent_clients_are_cut_off)
{
	int fds[16], fd;
	char buf[512];
	uint64_t t0 = now_ms();

	/* 16 silent connections fill the endpoint; a 17th is closed at once. */
	for (int i = 0; i < 16; i++) {
		fds[i] = tcp_connect4(NODE, MPORT);
		cr_assert_geq(fds[i], 0);
	}
	sleep_ms(200);
	fd = tcp_connect4(NODE, MPORT);
	cr_assert_geq(fd, 0);
	cr_assert_eq(read_until_close(fd, buf, sizeof(buf), 2000), 0, "closed without an answer");
	close(fd);
	/* The control socket (another server on the same loop) is not affected. */
	char out[4096];
	cr_assert_eq(CTL(sock, out, "status"), 0, "%s", out);
	/* The silent ones go after the 5 s timeout. */
	cr_assert_geq(read_until_close(fds[1], buf, sizeof(buf), 9000), 0, "never closed");
	uint64_t took = now_ms() - t0;
	cr_assert_geq(took, 4000, "%llu ms", (unsigned long long)took);
	cr_assert_leq(took, 8000, "%llu ms", (unsigned long long)took);
	for (int i = 0; i < 16; i++)
		close(fds[i]);
	cr_assert_eq(get("/health"), 200, "served again");
	/* Half a head, then nothing: cut after the timeout, no answer. */
	fd = tcp_connect4(NODE, MPORT);
	send(fd, "GET /metrics HTTP/1.1\r\nHo", 25, MSG_NOSIGNAL);
	t0 = now_ms();
	cr_assert_eq(read_until_close(fd, buf, sizeof(buf), 9000), 0);
	cr_assert_geq(now_ms() - t0, 4000);
	close(fd);
	char why[256];
	cr_assert_eq(anycached_stop_clean(&daemon_, 3000, why, sizeof(why)), 0, "%s", why);
}

/* ---------------------------------------------------------------- with BIRD */

static void setup73(void)
{
	rig_init(73);
}

TestSuite(metrics_bgp, .init = setup73, .fini = rig_fini, .timeout = 120);

Test(metrics_bgp, bgp_session_and_routes_in_a_scrape)
{
	static char extra[512], out[16384];
	int status;

	snprintf(extra, sizeof(extra),
	         "control: {metrics: \"127.53.73.4:%d\", socket: \"%s/c.sock\"}\n", MPORT,
	         rig.dir.path);
	any_bgp_extra = extra;
	any_health = "health: {interval: 100ms, rise: 2, fall: 2, hold-down: 1s, drain: 0s}\n";
	bird_start(65000, 65000, NULL);
	any_start(65000, 65000, NULL);
	bool ok = wait_routes("64.0.0.0/2", true, 20000, out, sizeof(out));
	if (!ok)
		dump_on_failure(out);
	cr_assert(ok);
	cr_assert_gt(http_exchange("127.53.73.4", MPORT,
	                           "GET /metrics HTTP/1.1\r\nHost: node\r\n\r\n", page,
	                           sizeof(page), &status),
	             0);
	cr_assert_eq(status, 200);
	promtool_check();
	(void)route_block; /* bird_rig.h's, used by the other BIRD tests */
	const char *b = http_body(page);
	cr_assert_eq(scrape_value(b, "anycache_bgp_session_state{neighbor=\"127.53.73.1\","
	                             "state=\"established\"}"),
	             1, "%s", b);
	cr_assert_eq(scrape_value(b, "anycache_bgp_session_state{neighbor=\"127.53.73.1\","
	                             "state=\"idle\"}"),
	             0);
	cr_assert_eq(scrape_value(b, "anycache_bgp_routes_announced{neighbor=\"127.53.73.1\"}"), 3);
	cr_assert_geq(scrape_value(b, "anycache_bgp_updates_sent_total{neighbor=\"127.53.73.1\"}"),
	              3);
	cr_assert_eq(scrape_value(b, "anycache_vip_state{vip=\"127.53.73.4:5300\",state=\"up\"}"),
	             1);
}

/* dns.client-memory: what clients make the node hold, against its limit,
 * and the limit follows a reload (applied live, nothing restarts). */
Test(metrics, client_memory_gauges_follow_a_reload)
{
	char conf[2300], out[4096];

	cr_assert_eq(get("/metrics"), 200);
	cr_assert_eq(scrape_value(http_body(page), "anycache_client_memory_limit_bytes"),
	             256.0 * 1024 * 1024);
	cr_assert_geq(scrape_value(http_body(page), "anycache_client_memory_bytes"), 0);
	snprintf(conf, sizeof(conf), "%s", y);
	char *dns = strstr(conf, "  threads: 2\n");
	cr_assert_not_null(dns);
	snprintf(conf + (dns - conf), sizeof(conf) - (size_t)(dns - conf),
	         "  threads: 2\n  client-memory: 8MiB\n%s", strstr(y, "  threads: 2\n") + 13);
	cr_assert_eq(anycached_rewrite_conf(&daemon_, conf), 0);
	cr_assert_eq(CTL(sock, out, "reload"), 0, "%s", out);
	cr_expect(strstr(out, "dns.client-memory: changed"), "%s", out);
	cr_assert_eq(get("/metrics"), 200);
	cr_assert_eq(scrape_value(http_body(page), "anycache_client_memory_limit_bytes"),
	             8.0 * 1024 * 1024);
	promtool_check();
}
