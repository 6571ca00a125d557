/*
 * Tests for src/core/conf_diff.c: configurations loaded from text (pure,
 * fabricated environment), compared, every change named.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/conf.h"
#include "core/conf_diff.h"

static const char *BASE = "dns:\n"
                          "  listen: [192.0.2.1, 192.0.2.2, \"[2001:db8::1]:53\"]\n"
                          "  allow: [192.0.2.0/24, 10.0.0.0/8]\n"
                          "  upstreams: [198.51.100.1, 198.51.100.2]\n"
                          "  threads: 2\n"
                          "bgp:\n"
                          "  asn: 65000\n"
                          "  router-id: 192.0.2.1\n"
                          "  neighbors:\n"
                          "    - {address: 192.0.2.254, asn: 65001}\n"
                          "    - {address: 192.0.2.253, asn: 65002, hold-time: 30}\n"
                          "  announce:\n"
                          "    - {prefix: 192.0.2.0/25, local-preference: 100}\n"
                          "    - {prefix: 192.0.2.2/32, communities: [\"65000:1\"]}\n";

static void load(const char *text, struct conf *c)
{
	struct conf_env env = {.ncpu = 4, .hostname = "node"};
	struct conf_diag d;
	int rc = conf_load_buffer(text, strlen(text), "t", &env, c, &d);

	if (rc)
		conf_diag_print(stderr, &d);
	cr_assert_eq(rc, 0, "%s", text);
}

/* BASE with the first occurrence of `from` replaced by `to`. */
static void load_edit(const char *from, const char *to, struct conf *c)
{
	char buf[4096];
	const char *p = strstr(BASE, from);

	cr_assert(p, "%s not in BASE", from);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - BASE), BASE, to, p + strlen(from));
	load(buf, c);
}

static struct conf a, b;
static struct conf_diff d;

static unsigned count(enum conf_change_kind k)
{
	unsigned n = 0;
	for (unsigned i = 0; i < d.n; i++)
		n += d.c[i].kind == k;
	return n;
}

static const char *line(unsigned i)
{
	static char buf[128];
	return conf_change_format(&d.c[i], &a, &b, buf, sizeof(buf));
}

Test(conf_diff, identical_is_empty)
{
	load(BASE, &a);
	load(BASE, &b);
	conf_diff(&a, &b, &d);
	cr_expect_eq(d.n, 0);
	cr_expect_eq(d.restart, 0);
}

Test(conf_diff, reordered_lists_change_nothing)
{
	load(BASE, &a);
	load_edit("[192.0.2.1, 192.0.2.2, \"[2001:db8::1]:53\"]",
	          "[\"[2001:db8::1]:53\", 192.0.2.2, 192.0.2.1]", &b);
	conf_diff(&a, &b, &d);
	cr_expect_eq(d.n, 0);
	load_edit("[192.0.2.0/24, 10.0.0.0/8]", "[10.0.0.0/8, 192.0.2.0/24]", &b);
	conf_diff(&a, &b, &d);
	cr_expect_eq(d.n, 0);
}

Test(conf_diff, listeners_added_and_removed)
{
	load(BASE, &a);
	load_edit("\"[2001:db8::1]:53\"]", "192.0.2.3, \"192.0.2.1:5353\"]", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 3);
	cr_expect_str_eq(line(0), "dns.listen [2001:db8::1]:53: removed");
	cr_expect_str_eq(line(1), "dns.listen 192.0.2.3:53: added");
	cr_expect_str_eq(line(2), "dns.listen 192.0.2.1:5353: added");
	cr_expect_eq(d.c[0].index, 2);
	cr_expect_eq(d.c[1].index, 2);
	cr_expect_eq(d.c[2].index, 3);
}

Test(conf_diff, allow_upstreams_identity_cache)
{
	load(BASE, &a);
	load_edit("10.0.0.0/8", "10.0.0.0/9", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_eq(d.c[0].kind, CONF_CHANGE_ALLOW);
	/* Upstream order is the forwarder's order: it counts. */
	load_edit("[198.51.100.1, 198.51.100.2]", "[198.51.100.2, 198.51.100.1]", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_eq(d.c[0].kind, CONF_CHANGE_UPSTREAMS);
	load_edit("  threads: 2\n", "  identity: other\n  threads: 2\n  cache: {size: 1MiB}\n", &b);
	conf_diff(&a, &b, &d);
	cr_expect_eq(count(CONF_CHANGE_IDENTITY), 1);
	cr_expect_eq(count(CONF_CHANGE_CACHE), 1);
	cr_expect_eq(d.n, 2);
}

Test(conf_diff, route_attributes_only_the_changed_route)
{
	load(BASE, &a);
	load_edit("local-preference: 100", "local-preference: 200", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_eq(d.c[0].kind, CONF_CHANGE_ROUTE_ATTR);
	cr_expect_str_eq(line(0), "bgp.announce 192.0.2.0/25: attributes changed");
	load_edit("\"65000:1\"", "\"65000:2\"", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_str_eq(line(0), "bgp.announce 192.0.2.2/32: attributes changed");
	/* Spelling the default out is no change. */
	load_edit("{prefix: 192.0.2.2/32, ", "{prefix: 192.0.2.2/32, local-preference: 100, ", &b);
	conf_diff(&a, &b, &d);
	cr_expect_eq(d.n, 0);
	load_edit("    - {prefix: 192.0.2.2/32, communities: [\"65000:1\"]}\n", "", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_str_eq(line(0), "bgp.announce 192.0.2.2/32: removed");
}

Test(conf_diff, neighbors_unchanged_sessions_stay)
{
	load(BASE, &a);
	/* Changing one neighbor's hold time resets that one only. */
	load_edit("hold-time: 30", "hold-time: 60", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 2);
	cr_expect_str_eq(line(0), "bgp.neighbors 192.0.2.253: removed");
	cr_expect_str_eq(line(1), "bgp.neighbors 192.0.2.253: added");
	load_edit("    - {address: 192.0.2.254, asn: 65001}\n",
	          "    - {address: 192.0.2.252, asn: 65003}\n", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 2);
	cr_expect_str_eq(line(0), "bgp.neighbors 192.0.2.254: removed");
	cr_expect_str_eq(line(1), "bgp.neighbors 192.0.2.252: added");
}

Test(conf_diff, restart_keys_named)
{
	load(BASE, &a);
	load_edit("  threads: 2\n", "  threads: 3\n", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_eq(d.restart, 1);
	cr_expect_str_eq(line(0), "dns.threads: changed, needs a restart");
	load_edit("asn: 65000", "asn: 65010", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_str_eq(line(0), "bgp.asn: changed, needs a restart");
	char buf[4096];
	snprintf(buf, sizeof(buf),
	         "%scontrol: {socket: /tmp/x.sock, metrics: 127.0.0.1}\n"
	         "health: {rise: 5}\nbfd: {multiplier: 4}\n",
	         BASE);
	load(buf, &b);
	conf_diff(&a, &b, &d);
	cr_expect_eq(d.restart, 2);
	cr_expect_eq(count(CONF_CHANGE_HEALTH), 1);
	cr_expect_eq(count(CONF_CHANGE_BFD), 1);
	cr_expect_eq(d.n, 4);
	/* BGP switched off altogether. */
	load("dns: {listen: [192.0.2.1], upstreams: [198.51.100.1], threads: 2, "
	     "allow: [192.0.2.0/24, 10.0.0.0/8]}\n",
	     &b);
	conf_diff(&a, &b, &d);
	cr_expect_eq(d.restart, 1);
	cr_expect_eq(count(CONF_CHANGE_LISTEN_DEL), 2);
	cr_expect_eq(count(CONF_CHANGE_UPSTREAMS), 1);
}

Test(conf_diff, stream_server_keys_need_a_restart)
{
	load(BASE, &a);
	load_edit("  threads: 2\n", "  threads: 2\n  tcp-per-source: 8\n", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_str_eq(line(0), "dns.tcp-per-source: changed, needs a restart");
	load_edit("  threads: 2\n", "  threads: 2\n  tcp-connections: 100\n", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_str_eq(line(0), "dns.tcp-connections: changed, needs a restart");
	load_edit("  threads: 2\n", "  threads: 2\n  require-cookie: true\n", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_str_eq(line(0), "dns.require-cookie: changed, needs a restart");
}

Test(conf_diff, persist_and_dnstap_need_a_restart_cache_limits_do_not)
{
	char buf[4096];

	load(BASE, &a);
	snprintf(buf, sizeof(buf), "%sdnstap: {file: /tmp/x.tap}\n", BASE);
	load(buf, &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_str_eq(line(0), "dnstap: changed, needs a restart");
	load_edit("  threads: 2\n", "  threads: 2\n  cache: {persist: /tmp/c.bin, max-ttl: 1h}\n",
	          &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 2);
	cr_expect_eq(count(CONF_CHANGE_CACHE), 1);
	cr_expect_eq(d.restart, 1);
}

Test(conf_diff, client_memory_changes_live)
{
	load(BASE, &a);
	load_edit("  threads: 2\n", "  threads: 2\n  client-memory: 64MiB\n", &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_eq(count(CONF_CHANGE_MEMORY), 1);
	cr_expect_eq(d.restart, 0);
	cr_expect_str_eq(line(0), "dns.client-memory: changed");
}

Test(conf_diff, user_needs_a_restart)
{
	char buf[4096];

	load(BASE, &a);
	snprintf(buf, sizeof(buf), "user: nobody\n%s", BASE);
	load(buf, &b);
	conf_diff(&a, &b, &d);
	cr_assert_eq(d.n, 1);
	cr_expect_str_eq(line(0), "user: changed, needs a restart");
}
