/*
 * Tests for src/core/conf*.c: examples, golden print, round trip, every bad
 * case with its exact messages, resolv.conf parsing and value parsers.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/conf.h"
#include "core/conf_pos.h"
/* Only the defaults macro (header-only): the cache's own idea of the defaults. */
#include "dns/dns_cache.h"

static const char *srcdir(void)
{
	const char *s = getenv("ANYCACHE_SRCDIR");
	cr_assert(s, "ANYCACHE_SRCDIR is not set (run through meson test)");
	return s;
}

static void path_in(char *buf, size_t size, const char *sub, const char *name)
{
	snprintf(buf, size, "%s/%s%s%s", srcdir(), sub, name ? "/" : "", name ? name : "");
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	cr_assert(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	cr_assert(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static char resolv[512];
static struct conf_env env; /* this machine, with tests/conf/resolv.conf */

static void setup(void)
{
	path_in(resolv, sizeof(resolv), "tests/conf/resolv.conf", NULL);
	conf_env_read(&env, resolv);
}

/* Loads path, prints, loads the print: the struct must be byte-identical. */
static void check_round_trip(const char *path)
{
	static struct conf a, b;
	struct conf_diag d;
	char *text = NULL;
	size_t len = 0;
	FILE *mf;
	int rc;

	rc = conf_load_file(path, &env, &a, &d);
	if (rc)
		conf_diag_print(stderr, &d);
	cr_assert_eq(rc, 0, "%s does not load", path);
	mf = open_memstream(&text, &len);
	cr_assert_eq(conf_print(mf, &a), 0);
	fclose(mf);
	rc = conf_load_buffer(text, len, "printed", &env, &b, &d);
	if (rc)
		conf_diag_print(stderr, &d);
	cr_assert_eq(rc, 0, "print of %s does not load:\n%s", path, text);
	cr_expect(memcmp(&a, &b, sizeof(a)) == 0, "round trip of %s differs:\n%s", path, text);
	free(text);
}

static unsigned for_each_yaml(const char *sub, void (*fn)(const char *))
{
	char dir[512], path[1024];
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	path_in(dir, sizeof(dir), sub, NULL);
	d = opendir(dir);
	cr_assert(d, "cannot open %s", dir);
	while ((de = readdir(d))) {
		if (!has_suffix(de->d_name, ".yaml"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fn(path);
		n++;
	}
	closedir(d);
	return n;
}

TestSuite(conf, .init = setup);

Test(conf, examples_load_and_round_trip)
{
	cr_expect_geq(for_each_yaml("examples", check_round_trip), 3);
}

Test(conf, good_cases_round_trip)
{
	cr_expect_geq(for_each_yaml("tests/conf/good", check_round_trip), 4);
}

Test(conf, two_node_examples)
{
	static struct conf a, b;
	struct conf_diag d;
	char pa[512], pb[512], buf[NETADDR_STRLEN];

	path_in(pa, sizeof(pa), "examples/two-node-a.yaml", NULL);
	path_in(pb, sizeof(pb), "examples/two-node-b.yaml", NULL);
	cr_assert_eq(conf_load_file(pa, &env, &a, &d), 0);
	cr_assert_eq(conf_load_file(pb, &env, &b, &d), 0);

	cr_expect(a.bgp.enabled && b.bgp.enabled);
	cr_expect_eq(a.bgp.asn, 64512);
	cr_expect_str_eq(netaddr_format(&a.bgp.router_id, false, buf, sizeof(buf)), "192.168.0.2");
	cr_expect_str_eq(netaddr_format(&b.bgp.router_id, false, buf, sizeof(buf)), "192.168.0.3");
	cr_assert_eq(a.bgp.n_neighbors, 1);
	cr_expect_str_eq(netaddr_format(&a.bgp.neighbors[0].address, true, buf, sizeof(buf)),
	                 "192.168.0.1:179");
	cr_expect_eq(a.bgp.neighbors[0].asn, 64512);
	cr_expect_eq(a.bgp.neighbors[0].hold_time_s, 10);
	cr_expect_str_eq(netaddr_format(&b.bgp.neighbors[0].local_address, false, buf, sizeof(buf)),
	                 "192.168.0.3");
	cr_assert_eq(a.bgp.n_routes, 2);
	cr_assert_eq(b.bgp.n_routes, 2);
	cr_expect_str_eq(netprefix_format(&a.bgp.routes[0].prefix, buf, sizeof(buf)),
	                 "192.168.0.4/32");
	cr_expect_eq(a.bgp.routes[0].local_pref, 200);
	cr_expect_eq(a.bgp.routes[1].local_pref, 150);
	cr_expect_eq(b.bgp.routes[0].local_pref, 150);
	cr_expect_eq(b.bgp.routes[1].local_pref, 200);
	cr_expect_not(a.bgp.routes[0].has_med);
	cr_expect_eq(a.dns.n_listen, 2);
	cr_expect_eq(a.dns.n_allow, 1);
	cr_expect_str_eq(netprefix_format(&a.dns.allow[0], buf, sizeof(buf)), "192.168.0.0/24");
	cr_expect_str_eq(a.dns.identity, "dns-a");
	cr_expect_str_eq(b.dns.identity, "dns-b");
}

Test(conf, full_example_values)
{
	static struct conf c;
	struct conf_diag d;
	char p[512], buf[NETADDR_STRLEN];

	path_in(p, sizeof(p), "examples/full.yaml", NULL);
	cr_assert_eq(conf_load_file(p, &env, &c, &d), 0);
	cr_expect_eq(c.dns.n_listen, 3);
	cr_expect_str_eq(netaddr_format(&c.dns.listen[2], true, buf, sizeof(buf)),
	                 "[2001:db8::53]:53");
	cr_expect_eq(c.dns.n_upstreams, 2);
	cr_expect_eq(c.dns.threads, 2);
	cr_expect_eq(c.dns.cache.size_bytes, 256ull << 20);
	cr_expect_eq(c.dns.cache.min_ttl_s, 0);
	cr_expect_eq(c.dns.cache.max_ttl_s, 86400);
	cr_expect_eq(c.dns.cache.negative_ttl_s, 3600);
	cr_expect_eq(c.dns.cache.serve_stale_s, 86400);
	cr_expect_eq(c.dns.tcp_per_source, 64);
	cr_expect_eq(c.dns.tcp_connections, 4096);
	cr_expect_eq(c.dns.tcp_prefix6, 64);
	cr_assert_eq(c.dns.n_tls_listen, 2);
	cr_expect_eq(c.dns.tls_listen[0].port, 853);
	cr_expect_str_eq(c.dns.tls_key, "/etc/anycache/dot-key.pem");
	const struct conf_neighbor *n = &c.bgp.neighbors[0];
	cr_expect_str_eq(n->password, "s3cret");
	cr_expect(n->bfd);
	cr_expect_not(n->passive);
	cr_expect(n->has_next_hop6);
	cr_expect_eq(n->next_hop6.family, AF_INET6);
	cr_assert_eq(c.bgp.n_routes, 3);
	cr_expect(c.bgp.routes[0].has_med);
	cr_expect_eq(c.bgp.routes[0].med, 0);
	cr_expect_eq(c.bgp.routes[0].n_communities, 1);
	cr_expect_eq(c.bgp.routes[0].communities[0], (64512u << 16) | 100);
	cr_expect_eq(c.bgp.routes[0].n_large_communities, 1);
	cr_expect_eq(c.bgp.routes[0].large_communities[0][0], 64512);
	cr_expect_eq(c.bgp.routes[0].large_communities[0][1], 1);
	cr_expect_eq(c.bgp.routes[0].large_communities[0][2], 2);
	cr_expect_eq(c.bgp.routes[1].local_pref, 150);
	cr_expect(c.bgp.degraded.enabled);
	cr_expect_eq(c.bgp.degraded.local_pref, 50);
	cr_expect_eq(c.bgp.degraded.med, 1000);
	cr_expect_eq(c.bgp.degraded.prepend, 3);
	cr_expect_eq(c.bgp.degraded.communities[0], (64512u << 16) | 666);
	cr_expect_eq(c.bfd.interval_ms, 100);
	cr_expect_eq(c.bfd.multiplier, 3);
	cr_expect_eq(c.health.interval_ms, 200);
	cr_expect_eq(c.health.rise, 3);
	cr_expect_eq(c.health.fall, 2);
	cr_expect_eq(c.health.drain_ms, 5000);
	cr_expect_eq(c.health.hold_down_ms, 10000);
	cr_expect_eq(c.health.overload.busy_pm, 900);
	cr_expect_eq(c.health.overload.drops_per_s, 100);
	cr_expect_eq(c.health.overload.inflight_pm, 800);
	cr_expect_eq(c.health.overload.latency_ms, 500);
	cr_expect(c.control.has_metrics);
	cr_expect_eq(c.control.metrics.port, 9253);
}

Test(conf, golden_print)
{
	static struct conf c;
	struct conf_diag d;
	char p[512], e[512], *text = NULL, *want;
	size_t len = 0;
	FILE *mf;

	path_in(p, sizeof(p), "tests/conf/good/golden.yaml", NULL);
	path_in(e, sizeof(e), "tests/conf/good/golden.expected", NULL);
	cr_assert_eq(conf_load_file(p, &env, &c, &d), 0);
	mf = open_memstream(&text, &len);
	cr_assert_eq(conf_print(mf, &c), 0);
	fclose(mf);
	want = slurp(e);
	cr_expect_str_eq(text, want);
	cr_expect_str_eq(c.dns.identity, "node \"one\" \\ east");
	cr_expect_eq(c.dns.cache.size_bytes, 1536 * 1024);
	cr_expect(c.bgp.neighbors[0].passive);
	cr_expect_eq(c.bgp.neighbors[0].hold_time_s, 0);
	cr_expect_eq(c.bgp.neighbors[1].hold_time_s, CONF_DEFAULT_HOLD_TIME_S);
	cr_expect_eq(c.bgp.neighbors[1].address.port, 1179);
	cr_expect_eq(c.bgp.neighbors[0].address.port, 179);
	cr_expect_eq(c.bgp.asn, 4200000000u);
	free(text);
	free(want);
}

/*
 * Each bad/NAME.yaml must give exactly the lines of NAME.expect ("L:C: msg").
 * Loaded from inside bad/ by relative name, so the messages (which name the
 * files) do not depend on where the tree is checked out. NAME.resolv, when
 * present, replaces ../resolv.conf.
 */
static unsigned n_bad;

static void check_bad(const char *path)
{
	static struct conf c;
	struct conf_diag d;
	char exp[300], res[300], name[256], got[CONF_DIAG_MAX * (CONF_DIAG_TEXT + 1)] = "";
	const char *base = strrchr(path, '/') + 1;
	size_t nl = strlen(base) - 5, bl = strlen(base);
	char *want;
	int rc;

	snprintf(name, sizeof(name), "%.*s", (int)nl, base);
	snprintf(exp, sizeof(exp), "%s.expect", name);
	snprintf(res, sizeof(res), "%s.resolv", name);
	if (access(res, R_OK) != 0)
		snprintf(res, sizeof(res), "../resolv.conf");
	struct conf_env e;
	conf_env_read(&e, res);
	rc = conf_load_file(base, &e, &c, &d);
	cr_expect_eq(rc, -EINVAL, "%s: rc %d", name, rc);
	cr_expect_gt(d.count, 0, "%s: no message", name);
	for (unsigned i = 0; i < d.count; i++) {
		const char *t = d.msgs[i].text;
		char line[CONF_DIAG_TEXT + 2];
		unsigned l, col;

		cr_assert(strncmp(t, base, bl) == 0 && t[bl] == ':',
		          "%s: message lacks the file name: %s", name, t);
		snprintf(line, sizeof(line), "%s\n", t + bl + 1);
		strcat(got, line);
		cr_expect_eq(sscanf(line, "%u:%u:", &l, &col), 2);
		cr_expect_eq(l, d.msgs[i].line);
		cr_expect_eq(col, d.msgs[i].column);
	}
	want = slurp(exp);
	cr_expect_str_eq(got, want, "%s", name);
	free(want);
	n_bad++;
}

Test(conf, bad_cases)
{
	char dir[512];

	path_in(dir, sizeof(dir), "tests/conf/bad", NULL);
	cr_assert_eq(chdir(dir), 0);
	for_each_yaml("tests/conf/bad", check_bad);
	cr_expect_geq(n_bad, 30);
}

Test(conf, missing_file)
{
	static struct conf c;
	struct conf_diag d;

	cr_expect_eq(conf_load_file("/nonexistent/anycache.yaml", &env, &c, &d), -ENOENT);
	cr_assert_eq(d.count, 1);
	cr_expect(strstr(d.msgs[0].text, "/nonexistent/anycache.yaml:1:1: cannot read") ==
	          d.msgs[0].text);
}

Test(conf, diag_overflow_and_null_diag)
{
	static struct conf c;
	struct conf_diag d;
	char text[8192] = "dns:\n  listen: [";

	for (int i = 0; i < CONF_MAX_LISTEN; i++)
		strcat(text, i ? ", bad" : "bad");
	strcat(text, "]\n  allow: [");
	for (int i = 0; i < 40; i++)
		strcat(text, i ? ", x" : "x");
	strcat(text, "]\n");
	cr_expect_eq(conf_load_buffer(text, strlen(text), "t", &env, &c, &d), -EINVAL);
	cr_expect_eq(d.count, CONF_DIAG_MAX);
	cr_expect_eq(d.overflow, CONF_MAX_LISTEN + 40 - CONF_DIAG_MAX);
	cr_expect_str_eq(d.msgs[0].text, "t:2:12: dns.listen[0]: invalid address 'bad'");
	cr_expect_eq(conf_load_buffer(text, strlen(text), "t", &env, &c, NULL), -EINVAL);
}

Test(conf, too_many_entries)
{
	static struct conf c;
	struct conf_diag d;
	char text[8192] = "dns:\n  listen: [";

	for (int i = 0; i <= CONF_MAX_LISTEN; i++) {
		char a[32];
		snprintf(a, sizeof(a), "%s10.0.0.%d", i ? ", " : "", i + 1);
		strcat(text, a);
	}
	strcat(text, "]\n");
	cr_expect_eq(conf_load_buffer(text, strlen(text), "t", &env, &c, &d), -EINVAL);
	cr_assert_eq(d.count, 1);
	cr_expect_str_eq(d.msgs[0].text, "t:2:11: dns.listen: too many entries (33, at most 32)");
}

Test(conf, defaults)
{
	static struct conf c, e;
	struct conf_diag d;
	char buf[NETADDR_STRLEN];

	conf_default(&c, &env);
	cr_expect_eq(c.dns.n_listen, 2);
	cr_expect_str_eq(netaddr_format(&c.dns.listen[0], true, buf, sizeof(buf)), "127.0.0.1:53");
	cr_expect_str_eq(netaddr_format(&c.dns.listen[1], true, buf, sizeof(buf)), "[::1]:53");
	cr_expect_eq(c.dns.n_allow, 2);
	cr_expect_str_eq(netprefix_format(&c.dns.allow[0], buf, sizeof(buf)), "127.0.0.0/8");
	cr_expect_str_eq(netprefix_format(&c.dns.allow[1], buf, sizeof(buf)), "::1/128");
	cr_assert_eq(c.dns.n_upstreams, 1);
	cr_expect_str_eq(netaddr_format(&c.dns.upstreams[0], true, buf, sizeof(buf)),
	                 "192.0.2.53:53");
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cr_expect_eq(c.dns.threads, ncpu > CONF_MAX_THREADS ? CONF_MAX_THREADS : (unsigned)ncpu);
	char host[256] = "";
	gethostname(host, sizeof(host));
	cr_expect_str_eq(c.dns.identity, host);
	cr_expect_eq(c.dns.cache.size_bytes, 64ull << 20);
	cr_expect_eq(c.dns.cache.max_ttl_s, 86400);
	cr_expect_eq(c.dns.cache.negative_ttl_s, 3600);
	cr_expect_eq(c.dns.cache.serve_stale_s, 86400);
	cr_expect_not(c.bgp.enabled);
	cr_expect_eq(c.bfd.interval_ms, 300);
	cr_expect_eq(c.bfd.multiplier, 3);
	cr_expect_eq(c.health.interval_ms, 200);
	cr_expect_eq(c.health.rise, 3);
	cr_expect_eq(c.health.fall, 2);
	cr_expect_eq(c.health.drain_ms, 5000);
	cr_expect_eq(c.health.hold_down_ms, 10000);
	cr_expect_eq(c.health.overload.busy_pm, 900);
	cr_expect_eq(c.health.overload.drops_per_s, 100);
	cr_expect_eq(c.health.overload.inflight_pm, 800);
	cr_expect_eq(c.health.overload.latency_ms, 500);
	cr_expect_str_eq(c.control.socket, "/run/anycache/control.sock");
	cr_expect_str_eq(c.control.group, "");
	cr_expect_str_eq(c.control.state, "/var/lib/anycache/drain.json");
	cr_expect_not(c.control.has_metrics);
	/* An empty file yields the same struct as conf_default. */
	cr_assert_eq(conf_load_buffer("", 0, "empty", &env, &e, &d), 0);
	cr_expect(memcmp(&c, &e, sizeof(c)) == 0);
}

/*
 * Issue 10, item 9: one default negative TTL. The daemon takes the loader's
 * (conf_default); the cache's built-in default must say the same, or a
 * cache made without a config (tests, tools) caches negatives longer.
 */
Test(conf, negative_ttl_default_is_one_value)
{
	static struct conf c;
	struct dns_cache_conf cc = DNS_CACHE_CONF_DEFAULT;

	conf_default(&c, &env);
	cr_expect_eq(c.dns.cache.negative_ttl_s, cc.negative_ttl_s, "conf %u, dns_cache.h %u",
	             c.dns.cache.negative_ttl_s, cc.negative_ttl_s);
	cr_expect_eq(c.dns.cache.max_ttl_s, cc.max_ttl_s);
	cr_expect_eq(c.dns.cache.min_ttl_s, cc.min_ttl_s);
}

Test(conf, neighbor_and_route_defaults)
{
	static struct conf c;
	struct conf_diag d;
	const char *t = "dns: {listen: [192.0.2.1]}\n"
	                "bgp:\n  asn: 65000\n  router-id: 192.0.2.1\n"
	                "  neighbors: [{address: 192.0.2.254, asn: 65001}]\n"
	                "  announce: [{prefix: 192.0.2.1/32}]\n";

	cr_assert_eq(conf_load_buffer(t, strlen(t), "t", &env, &c, &d), 0);
	cr_expect(c.bgp.enabled);
	cr_expect_eq(c.bgp.neighbors[0].address.port, 179);
	cr_expect_eq(c.bgp.neighbors[0].hold_time_s, 90);
	cr_expect_not(c.bgp.neighbors[0].passive);
	cr_expect_not(c.bgp.neighbors[0].bfd);
	cr_expect_eq(c.bgp.neighbors[0].local_address.family, 0);
	cr_expect_not(c.bgp.neighbors[0].has_next_hop6);
	cr_expect_str_eq(c.bgp.neighbors[0].password, "");
	cr_expect_eq(c.bgp.routes[0].local_pref, 100);
	cr_expect_not(c.bgp.routes[0].has_med);
	cr_expect_not(c.bgp.degraded.enabled);
	/* dns.allow stays loopback only when absent. */
	cr_expect_eq(c.dns.n_allow, 2);
}

Test(conf, resolv_parsing)
{
	struct netaddr ns[8];
	char buf[NETADDR_STRLEN];
	const char *text = "# generated\n"
	                   "; another comment\n"
	                   "search example.net\n"
	                   "nameserver 192.0.2.1\n"
	                   "nameserver\t2001:db8::53   # trailing comment\n"
	                   "nameserver fe80::1%eth0\n"
	                   "nameserver not-an-address\n"
	                   "nameserverX 192.0.2.9\n"
	                   "garbage line with words\n"
	                   "   nameserver 192.0.2.2\n"
	                   "nameserver 192.0.2.3\n"
	                   "nameserver 192.0.2.4";

	int n = conf_parse_resolv(text, ns, 8);
	cr_assert_eq(n, 5);
	cr_expect_str_eq(netaddr_format(&ns[0], true, buf, sizeof(buf)), "192.0.2.1:53");
	cr_expect_str_eq(netaddr_format(&ns[1], true, buf, sizeof(buf)), "[2001:db8::53]:53");
	cr_expect_str_eq(netaddr_format(&ns[2], true, buf, sizeof(buf)), "192.0.2.2:53");
	cr_expect_str_eq(netaddr_format(&ns[4], true, buf, sizeof(buf)), "192.0.2.4:53");
	cr_expect_eq(conf_parse_resolv(text, ns, 2), 2);
	cr_expect_eq(conf_parse_resolv("", ns, 8), 0);
	cr_expect_eq(conf_parse_resolv("nameserver", ns, 8), 0);
}

Test(conf, resolv_defaults_skip_self_and_cap)
{
	static struct conf c;
	struct conf_diag d;
	char path[] = "/tmp/anycache-test-resolv-XXXXXX", buf[NETADDR_STRLEN];
	int fd = mkstemp(path);
	const char *rc = "nameserver 127.0.0.1\nnameserver ::1\nnameserver 192.0.2.1\n"
	                 "nameserver 192.0.2.2\nnameserver 192.0.2.3\nnameserver 192.0.2.4\n";

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, rc, strlen(rc)), (ssize_t)strlen(rc));
	close(fd);
	struct conf_env e;
	conf_env_read(&e, path);
	/* Default listen is 127.0.0.1 and ::1 port 53: both are skipped, then glibc's 3. */
	cr_assert_eq(conf_load_buffer("", 0, "t", &e, &c, &d), 0);
	cr_assert_eq(c.dns.n_upstreams, CONF_RESOLV_MAXNS);
	cr_expect_str_eq(netaddr_format(&c.dns.upstreams[0], true, buf, sizeof(buf)),
	                 "192.0.2.1:53");
	cr_expect_str_eq(netaddr_format(&c.dns.upstreams[2], true, buf, sizeof(buf)),
	                 "192.0.2.3:53");
	/* Listening elsewhere on port 5353: loopback upstreams are not ourselves. */
	const char *t = "dns: {listen: [\"127.0.0.1:5353\"]}\n";
	cr_assert_eq(conf_load_buffer(t, strlen(t), "t", &e, &c, &d), 0);
	cr_expect_str_eq(netaddr_format(&c.dns.upstreams[0], true, buf, sizeof(buf)),
	                 "127.0.0.1:53");
	/* A wildcard listener on 53 answers on loopback too. */
	t = "dns: {listen: [\"0.0.0.0\"]}\n";
	cr_assert_eq(conf_load_buffer(t, strlen(t), "t", &e, &c, &d), 0);
	cr_expect_str_eq(netaddr_format(&c.dns.upstreams[0], true, buf, sizeof(buf)), "[::1]:53");
	/* No resolv.conf at all: an error naming dns.upstreams. */
	conf_env_read(&e, "/nonexistent/resolv.conf");
	cr_expect_eq(conf_load_buffer("", 0, "t", &e, &c, &d), -EINVAL);
	cr_assert_eq(d.count, 1);
	cr_expect(strstr(d.msgs[0].text, "t:1:1: dns.upstreams: not given") == d.msgs[0].text);
	unlink(path);
}

Test(conf, durations)
{
	uint64_t v;

	cr_expect_eq(conf_parse_duration_ms("10", &v), 0);
	cr_expect_eq(v, 10000);
	cr_expect_eq(conf_parse_duration_ms("0", &v), 0);
	cr_expect_eq(v, 0);
	cr_expect_eq(conf_parse_duration_ms("100ms", &v), 0);
	cr_expect_eq(v, 100);
	cr_expect_eq(conf_parse_duration_ms("10s", &v), 0);
	cr_expect_eq(v, 10000);
	cr_expect_eq(conf_parse_duration_ms("3m", &v), 0);
	cr_expect_eq(v, 180000);
	cr_expect_eq(conf_parse_duration_ms("2h", &v), 0);
	cr_expect_eq(v, 7200000);
	cr_expect_eq(conf_parse_duration_ms("1d", &v), 0);
	cr_expect_eq(v, 86400000);
	cr_expect_eq(conf_parse_duration_ms("18446744073709551615ms", &v), 0);
	cr_expect_eq(v, UINT64_MAX);
	cr_expect_eq(conf_parse_duration_ms("18446744073709551616ms", &v), -ERANGE);
	cr_expect_eq(conf_parse_duration_ms("18446744073709552s", &v), -ERANGE);
	cr_expect_eq(conf_parse_duration_ms("18446744073709551s", &v), 0);
	cr_expect_eq(v, 18446744073709551000ull);
	cr_expect_eq(conf_parse_duration_ms("213503982335d", &v), -ERANGE);
	cr_expect_eq(conf_parse_duration_ms("1.5s", &v), -EINVAL);
	cr_expect_eq(conf_parse_duration_ms("", &v), -EINVAL);
	cr_expect_eq(conf_parse_duration_ms("s", &v), -EINVAL);
	cr_expect_eq(conf_parse_duration_ms("-1", &v), -EINVAL);
	cr_expect_eq(conf_parse_duration_ms("+1", &v), -EINVAL);
	cr_expect_eq(conf_parse_duration_ms(" 1", &v), -EINVAL);
	cr_expect_eq(conf_parse_duration_ms("1 s", &v), -EINVAL);
	cr_expect_eq(conf_parse_duration_ms("1S", &v), -EINVAL);
	cr_expect_eq(conf_parse_duration_ms("1w", &v), -EINVAL);
	cr_expect_eq(conf_parse_duration_ms("1sec", &v), -EINVAL);
	cr_expect_eq(conf_parse_duration_ms(NULL, &v), -EINVAL);
}

Test(conf, sizes)
{
	uint64_t v;

	cr_expect_eq(conf_parse_size("0", &v), 0);
	cr_expect_eq(v, 0);
	cr_expect_eq(conf_parse_size("4096", &v), 0);
	cr_expect_eq(v, 4096);
	cr_expect_eq(conf_parse_size("4KiB", &v), 0);
	cr_expect_eq(v, 4096);
	cr_expect_eq(conf_parse_size("256MiB", &v), 0);
	cr_expect_eq(v, 256ull << 20);
	cr_expect_eq(conf_parse_size("3GiB", &v), 0);
	cr_expect_eq(v, 3ull << 30);
	cr_expect_eq(conf_parse_size("17179869184GiB", &v), -ERANGE);
	cr_expect_eq(conf_parse_size("99999999999999999999", &v), -ERANGE);
	cr_expect_eq(conf_parse_size("1.5MiB", &v), -EINVAL);
	cr_expect_eq(conf_parse_size("256MB", &v), -EINVAL);
	cr_expect_eq(conf_parse_size("256M", &v), -EINVAL);
	cr_expect_eq(conf_parse_size("MiB", &v), -EINVAL);
	cr_expect_eq(conf_parse_size("-1", &v), -EINVAL);
}

Test(conf, ratios)
{
	uint32_t v;

	cr_expect_eq(conf_parse_ratio_pm("0", &v), 0);
	cr_expect_eq(v, 0);
	cr_expect_eq(conf_parse_ratio_pm("1", &v), 0);
	cr_expect_eq(v, 1000);
	cr_expect_eq(conf_parse_ratio_pm("0.9", &v), 0);
	cr_expect_eq(v, 900);
	cr_expect_eq(conf_parse_ratio_pm("0.95", &v), 0);
	cr_expect_eq(v, 950);
	cr_expect_eq(conf_parse_ratio_pm("0.125", &v), 0);
	cr_expect_eq(v, 125);
	cr_expect_eq(conf_parse_ratio_pm("1.000", &v), 0);
	cr_expect_eq(v, 1000);
	cr_expect_eq(conf_parse_ratio_pm("90%", &v), 0);
	cr_expect_eq(v, 900);
	cr_expect_eq(conf_parse_ratio_pm("92.5%", &v), 0);
	cr_expect_eq(v, 925);
	cr_expect_eq(conf_parse_ratio_pm("100%", &v), 0);
	cr_expect_eq(v, 1000);
	cr_expect_eq(conf_parse_ratio_pm("0%", &v), 0);
	cr_expect_eq(v, 0);
	cr_expect_eq(conf_parse_ratio_pm("1.001", &v), -ERANGE);
	cr_expect_eq(conf_parse_ratio_pm("2", &v), -ERANGE);
	cr_expect_eq(conf_parse_ratio_pm("100.1%", &v), -ERANGE);
	cr_expect_eq(conf_parse_ratio_pm("99999999999999999999", &v), -ERANGE);
	cr_expect_eq(conf_parse_ratio_pm("0.1234", &v), -EINVAL);
	cr_expect_eq(conf_parse_ratio_pm("92.55%", &v), -EINVAL);
	cr_expect_eq(conf_parse_ratio_pm(".9", &v), -EINVAL);
	cr_expect_eq(conf_parse_ratio_pm("0.", &v), -EINVAL);
	cr_expect_eq(conf_parse_ratio_pm("-0.5", &v), -EINVAL);
	cr_expect_eq(conf_parse_ratio_pm("0,9", &v), -EINVAL);
	cr_expect_eq(conf_parse_ratio_pm("90 %", &v), -EINVAL);
	cr_expect_eq(conf_parse_ratio_pm("%", &v), -EINVAL);
	cr_expect_eq(conf_parse_ratio_pm("", &v), -EINVAL);
	cr_expect_eq(conf_parse_ratio_pm(NULL, &v), -EINVAL);
}

/* Every per mille value prints as a ratio that loads back to itself. */
Test(conf, ratio_print_round_trip)
{
	static struct conf a, b;
	struct conf_diag d;

	for (uint32_t pm = 0; pm <= 1000; pm += 1) {
		char *text = NULL;
		size_t len = 0;
		conf_default(&a, &env);
		a.health.overload.busy_pm = pm;
		a.health.overload.inflight_pm = 1000 - pm;
		FILE *mf = open_memstream(&text, &len);
		cr_assert_eq(conf_print(mf, &a), 0);
		fclose(mf);
		cr_assert_eq(conf_load_buffer(text, len, "p", &env, &b, &d), 0, "%s", text);
		cr_assert_eq(b.health.overload.busy_pm, pm);
		cr_assert_eq(b.health.overload.inflight_pm, 1000 - pm);
		free(text);
	}
}

/* Every prefix of a valid file must load or fail cleanly, never crash. */
Test(conf, truncated_inputs_do_not_crash)
{
	static struct conf c;
	struct conf_diag d;
	char p[512];
	char *text;

	path_in(p, sizeof(p), "examples/full.yaml", NULL);
	text = slurp(p);
	for (size_t n = 0; n <= strlen(text); n++) {
		int rc = conf_load_buffer(text, n, "t", &env, &c, &d);
		cr_assert(rc == 0 || rc == -EINVAL, "prefix %zu: rc %d", n, rc);
		cr_assert(rc == 0 || d.count > 0, "prefix %zu: error without message", n);
	}
	free(text);
}

/*
 * The configuration contract (README, issue 2): every key with the kind of
 * node it takes. The schema check reads libcyaml's own schema, so this table
 * pins that schema: it must list exactly these paths with these kinds.
 */
static const struct {
	const char *path;
	enum conf_node_kind kind;
} contract[] = {
    {"", CONF_NODE_MAPPING},
    {"dns", CONF_NODE_MAPPING},
    {"dns.listen", CONF_NODE_SEQUENCE},
    {"dns.listen[]", CONF_NODE_SCALAR},
    {"dns.allow", CONF_NODE_SEQUENCE},
    {"dns.allow[]", CONF_NODE_SCALAR},
    {"dns.upstreams", CONF_NODE_SEQUENCE},
    {"dns.upstreams[]", CONF_NODE_SCALAR},
    {"dns.threads", CONF_NODE_SCALAR},
    {"dns.identity", CONF_NODE_SCALAR},
    {"dns.cache", CONF_NODE_MAPPING},
    {"dns.cache.size", CONF_NODE_SCALAR},
    {"dns.cache.min-ttl", CONF_NODE_SCALAR},
    {"dns.cache.max-ttl", CONF_NODE_SCALAR},
    {"dns.cache.negative-ttl", CONF_NODE_SCALAR},
    {"dns.cache.serve-stale", CONF_NODE_SCALAR},
    {"dns.cookie-secret", CONF_NODE_SCALAR},
    {"dns.cookie-secret-old", CONF_NODE_SCALAR},
    {"dns.require-cookie", CONF_NODE_SCALAR},
    {"dns.rate-limit", CONF_NODE_MAPPING},
    {"dns.rate-limit.responses-per-second", CONF_NODE_SCALAR},
    {"dns.rate-limit.window", CONF_NODE_SCALAR},
    {"dns.rate-limit.slip", CONF_NODE_SCALAR},
    {"dns.rate-limit.ipv4-prefix", CONF_NODE_SCALAR},
    {"dns.rate-limit.ipv6-prefix", CONF_NODE_SCALAR},
    {"dns.rate-limit.table-size", CONF_NODE_SCALAR},
    {"dns.tcp-connections", CONF_NODE_SCALAR},
    {"dns.tcp-per-source", CONF_NODE_SCALAR},
    {"dns.tcp-source-prefix-v4", CONF_NODE_SCALAR},
    {"dns.tcp-source-prefix-v6", CONF_NODE_SCALAR},
    {"dns.tls-listen", CONF_NODE_SEQUENCE},
    {"dns.tls-listen[]", CONF_NODE_SCALAR},
    {"dns.tls-certificate", CONF_NODE_SCALAR},
    {"dns.tls-key", CONF_NODE_SCALAR},
    {"dns.client-memory", CONF_NODE_SCALAR},
    {"dns.cache.persist", CONF_NODE_SCALAR},
    {"dns.cache.persist-interval", CONF_NODE_SCALAR},
    {"bgp", CONF_NODE_MAPPING},
    {"bgp.asn", CONF_NODE_SCALAR},
    {"bgp.router-id", CONF_NODE_SCALAR},
    {"bgp.neighbors", CONF_NODE_SEQUENCE},
    {"bgp.neighbors[]", CONF_NODE_MAPPING},
    {"bgp.neighbors[].address", CONF_NODE_SCALAR},
    {"bgp.neighbors[].asn", CONF_NODE_SCALAR},
    {"bgp.neighbors[].local-address", CONF_NODE_SCALAR},
    {"bgp.neighbors[].port", CONF_NODE_SCALAR},
    {"bgp.neighbors[].passive", CONF_NODE_SCALAR},
    {"bgp.neighbors[].hold-time", CONF_NODE_SCALAR},
    {"bgp.neighbors[].password", CONF_NODE_SCALAR},
    {"bgp.neighbors[].bfd", CONF_NODE_SCALAR},
    {"bgp.neighbors[].next-hop6", CONF_NODE_SCALAR},
    {"bgp.announce", CONF_NODE_SEQUENCE},
    {"bgp.announce[]", CONF_NODE_MAPPING},
    {"bgp.announce[].prefix", CONF_NODE_SCALAR},
    {"bgp.announce[].local-preference", CONF_NODE_SCALAR},
    {"bgp.announce[].med", CONF_NODE_SCALAR},
    {"bgp.announce[].communities", CONF_NODE_SEQUENCE},
    {"bgp.announce[].communities[]", CONF_NODE_SCALAR},
    {"bgp.announce[].large-communities", CONF_NODE_SEQUENCE},
    {"bgp.announce[].large-communities[]", CONF_NODE_SCALAR},
    {"bgp.degraded", CONF_NODE_MAPPING},
    {"bgp.degraded.local-preference", CONF_NODE_SCALAR},
    {"bgp.degraded.med", CONF_NODE_SCALAR},
    {"bgp.degraded.prepend", CONF_NODE_SCALAR},
    {"bgp.degraded.communities", CONF_NODE_SEQUENCE},
    {"bgp.degraded.communities[]", CONF_NODE_SCALAR},
    {"bfd", CONF_NODE_MAPPING},
    {"bfd.interval", CONF_NODE_SCALAR},
    {"bfd.multiplier", CONF_NODE_SCALAR},
    {"health", CONF_NODE_MAPPING},
    {"health.interval", CONF_NODE_SCALAR},
    {"health.rise", CONF_NODE_SCALAR},
    {"health.fall", CONF_NODE_SCALAR},
    {"health.drain", CONF_NODE_SCALAR},
    {"health.hold-down", CONF_NODE_SCALAR},
    {"health.overload", CONF_NODE_MAPPING},
    {"health.overload.busy", CONF_NODE_SCALAR},
    {"health.overload.drops", CONF_NODE_SCALAR},
    {"health.overload.inflight", CONF_NODE_SCALAR},
    {"health.overload.latency", CONF_NODE_SCALAR},
    {"control", CONF_NODE_MAPPING},
    {"control.socket", CONF_NODE_SCALAR},
    {"control.metrics", CONF_NODE_SCALAR},
    {"control.group", CONF_NODE_SCALAR},
    {"control.state", CONF_NODE_SCALAR},
    {"dnstap", CONF_NODE_MAPPING},
    {"dnstap.file", CONF_NODE_SCALAR},
    {"dnstap.socket", CONF_NODE_SCALAR},
    {"dnstap.messages", CONF_NODE_SEQUENCE},
    {"dnstap.messages[]", CONF_NODE_SCALAR},
    {"user", CONF_NODE_SCALAR},
};
#define N_CONTRACT (sizeof(contract) / sizeof(contract[0]))

struct walk_seen {
	bool seen[N_CONTRACT];
	unsigned n;
};

static void on_schema_path(const char *path, enum conf_node_kind kind, void *ctx)
{
	struct walk_seen *w = ctx;
	unsigned i;

	w->n++;
	for (i = 0; i < N_CONTRACT; i++)
		if (strcmp(contract[i].path, path) == 0)
			break;
	cr_assert_lt(i, N_CONTRACT, "schema path '%s' is not in the contract table", path);
	cr_expect_eq(kind, contract[i].kind, "'%s': schema kind %d, contract %d", path, kind,
	             contract[i].kind);
	cr_expect_not(w->seen[i], "'%s' walked twice", path);
	w->seen[i] = true;
}

Test(conf, schema_matches_contract_table)
{
	struct walk_seen w = {{false}, 0};

	conf_schema_walk(on_schema_path, &w);
	for (unsigned i = 0; i < N_CONTRACT; i++)
		cr_expect(w.seen[i], "contract path '%s' is missing from the schema",
		          contract[i].path);
	cr_expect_eq(w.n, N_CONTRACT);
}

/* "{a: {b: [{c: LEAF}]}}" for "a.b[].c"; "" is the leaf itself. */
static void doc_for(const char *path, const char *leaf, char *out, size_t size)
{
	char comp[16][64];
	unsigned n = 0;
	const char *p = path;

	while (*p && n < 16) {
		if (*p == '.') {
			p++;
		} else if (strncmp(p, "[]", 2) == 0) {
			snprintf(comp[n++], sizeof(comp[0]), "[]");
			p += 2;
		} else {
			size_t l = strcspn(p, ".[");
			snprintf(comp[n++], sizeof(comp[0]), "%.*s", (int)l, p);
			p += l;
		}
	}
	snprintf(out, size, "%s", leaf);
	for (unsigned i = n; i-- > 0;) {
		char tmp[1024];
		if (strcmp(comp[i], "[]") == 0)
			snprintf(tmp, sizeof(tmp), "[%s]", out);
		else
			snprintf(tmp, sizeof(tmp), "{%s: %s}", comp[i], out);
		snprintf(out, size, "%s", tmp);
	}
}

static void index_path(const char *path, char *out, size_t size)
{
	size_t o = 0;

	for (const char *p = path; *p && o + 4 < size; p++) {
		out[o++] = *p;
		if (*p == '[' && p[1] == ']')
			out[o++] = '0';
	}
	out[o] = '\0';
}

/* Counts messages containing needle; the others may be value errors. */
static unsigned count_msgs(const struct conf_diag *d, const char *needle)
{
	unsigned n = 0;

	for (unsigned i = 0; i < d->count; i++)
		n += strstr(d->msgs[i].text, needle) != NULL;
	return n;
}

/* Column (1-based) of the last occurrence of needle: the leaf doc_for put in. */
static size_t leaf_col(const char *doc, const char *needle)
{
	const char *last = NULL;

	for (const char *p = doc; (p = strstr(p, needle)); p++)
		last = p;
	cr_assert(last);
	return (size_t)(last - doc) + 1;
}

static const char *kind_text(enum conf_node_kind k)
{
	return k == CONF_NODE_SCALAR    ? "a single value"
	       : k == CONF_NODE_MAPPING ? "a mapping"
	                                : "a list";
}

/* Each key given the wrong kind: one "wrong type" message, at its value, no other. */
Test(conf, every_key_wrong_kind_reported_once)
{
	static struct conf c;
	struct conf_diag d;

	for (unsigned i = 1; i < N_CONTRACT; i++) {
		enum conf_node_kind k = contract[i].kind;
		const char *wrong = k == CONF_NODE_SCALAR    ? "[x]"
		                    : k == CONF_NODE_MAPPING ? "x"
		                                             : "{x: 1}";
		char doc[1024], ip[128], want[300];

		doc_for(contract[i].path, wrong, doc, sizeof(doc));
		index_path(contract[i].path, ip, sizeof(ip));
		snprintf(want, sizeof(want), "t:1:%zu: %s: wrong type: expected %s, got %s",
		         leaf_col(doc, wrong), ip, kind_text(k),
		         kind_text(k == CONF_NODE_SCALAR    ? CONF_NODE_SEQUENCE
		                   : k == CONF_NODE_MAPPING ? CONF_NODE_SCALAR
		                                            : CONF_NODE_MAPPING));
		cr_expect_eq(conf_load_buffer(doc, strlen(doc), "t", &env, &c, &d), -EINVAL, "%s",
		             doc);
		cr_expect_eq(count_msgs(&d, "wrong type"), 1, "%s", doc);
		cr_expect_eq(count_msgs(&d, "unknown key"), 0, "%s", doc);
		cr_expect_eq(count_msgs(&d, want), 1, "%s: want '%s'", doc, want);
	}
}

/* An unknown key in every mapping: one message each, at the key. */
Test(conf, every_mapping_unknown_key_reported_once)
{
	static struct conf c;
	struct conf_diag d;
	unsigned maps = 0;

	for (unsigned i = 0; i < N_CONTRACT; i++) {
		char doc[1024], ip[128], want[256];

		if (contract[i].kind != CONF_NODE_MAPPING)
			continue;
		maps++;
		doc_for(contract[i].path, "{zz-unknown: 1}", doc, sizeof(doc));
		index_path(contract[i].path, ip, sizeof(ip));
		snprintf(want, sizeof(want), "t:1:%zu: unknown key '%s%szz-unknown'",
		         leaf_col(doc, "zz-unknown"), ip, ip[0] ? "." : "");
		cr_expect_eq(conf_load_buffer(doc, strlen(doc), "t", &env, &c, &d), -EINVAL, "%s",
		             doc);
		cr_expect_eq(count_msgs(&d, "unknown key"), 1, "%s", doc);
		cr_expect_eq(count_msgs(&d, want), 1, "%s: want '%s'", doc, want);
	}
	cr_expect_eq(maps, 13); /* dns.rate-limit and dnstap among them */
}

Test(conf, dns_cookie_secret_and_rate_limit)
{
	static struct conf c;
	struct conf_diag d;
	char p[512], *text = NULL;
	size_t len = 0;
	static const uint8_t cur[16] = {0xe5, 0xe9, 0x73, 0xe5, 0xa6, 0xb2, 0xa4, 0x3f,
	                                0x48, 0xe7, 0xdc, 0x84, 0x9e, 0x37, 0xbf, 0xcf};

	path_in(p, sizeof(p), "tests/conf/good/dns-security.yaml", NULL);
	cr_assert_eq(conf_load_file(p, &env, &c, &d), 0);
	cr_expect(c.dns.has_cookie_secret);
	cr_expect_arr_eq(c.dns.cookie_secret, cur, 16);
	cr_expect(c.dns.has_cookie_secret_old);
	cr_expect_eq(c.dns.cookie_secret_old[0], 0xdd);
	cr_expect(c.dns.require_cookie);
	cr_expect(c.dns.rate_limit.enabled);
	cr_expect_eq(c.dns.rate_limit.rate, 20);
	cr_expect_eq(c.dns.rate_limit.window_s, 2);
	cr_expect_eq(c.dns.rate_limit.slip, 2);
	cr_expect_eq(c.dns.rate_limit.v4_prefix, 24);
	cr_expect_eq(c.dns.rate_limit.v6_prefix, 48);
	cr_expect_eq(c.dns.rate_limit.entries, 65536);
	cr_expect_eq(c.dns.client_memory_bytes, 32ull << 20);
	/* Printed and loaded back: the same struct. */
	FILE *mf = open_memstream(&text, &len);
	cr_assert_eq(conf_print(mf, &c), 0);
	fclose(mf);
	static struct conf back;
	cr_assert_eq(conf_load_buffer(text, len, "printed", &env, &back, &d), 0, "%s", text);
	cr_expect_eq(memcmp(&c, &back, sizeof(c)), 0, "%s", text);
	free(text);
	/* Absent: no secret (a random one at start) and no rate limit. */
	path_in(p, sizeof(p), "tests/conf/good/dns-only.yaml", NULL);
	cr_assert_eq(conf_load_file(p, &env, &c, &d), 0);
	cr_expect_not(c.dns.has_cookie_secret);
	cr_expect_not(c.dns.rate_limit.enabled);
	cr_expect_eq(c.dns.client_memory_bytes, 256ull << 20);
}

/* Loading is pure: a fabricated machine gives its defaults, nothing is read. */
Test(conf, fabricated_env)
{
	static struct conf c;
	struct conf_diag d;
	struct conf_env e = {.ncpu = 200, .hostname = "fab-node-7"};
	char buf[NETADDR_STRLEN];

	cr_assert_eq(netaddr_parse("127.0.0.1", 53, &e.nameservers[0]), 0); /* ourselves */
	cr_assert_eq(netaddr_parse("198.51.100.9", 53, &e.nameservers[1]), 0);
	e.n_nameservers = 2;
	snprintf(e.resolv_conf, sizeof(e.resolv_conf), "/fabricated/resolv.conf");
	cr_assert_eq(conf_load_buffer("", 0, "t", &e, &c, &d), 0);
	cr_expect_eq(c.dns.threads, CONF_MAX_THREADS);
	cr_expect_str_eq(c.dns.identity, "fab-node-7");
	cr_assert_eq(c.dns.n_upstreams, 1);
	cr_expect_str_eq(netaddr_format(&c.dns.upstreams[0], true, buf, sizeof(buf)),
	                 "198.51.100.9:53");
	e.ncpu = -1; /* sysconf failed: one worker */
	e.n_nameservers = 0;
	cr_expect_eq(conf_load_buffer("", 0, "t", &e, &c, &d), -EINVAL);
	cr_assert_eq(d.count, 1);
	cr_expect_str_eq(d.msgs[0].text, "t:1:1: dns.upstreams: not given and "
	                                 "/fabricated/resolv.conf has no usable nameserver");
	const char *t = "dns: {upstreams: [192.0.2.1]}\n";
	cr_assert_eq(conf_load_buffer(t, strlen(t), "t", &e, &c, &d), 0);
	cr_expect_eq(c.dns.threads, 1);
	/* NULL env: one CPU, no host name, no resolv.conf. */
	cr_assert_eq(conf_load_buffer(t, strlen(t), "t", NULL, &c, &d), 0);
	cr_expect_eq(c.dns.threads, 1);
	cr_expect_str_eq(c.dns.identity, "");
}
