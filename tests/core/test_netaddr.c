/* Unit tests for address and prefix parsing (src/core/netaddr.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <criterion/criterion.h>
#include <netinet/in.h>

#include "core/netaddr.h"

Test(netaddr, parses_forms_with_and_without_port)
{
	struct netaddr a;
	char buf[NETADDR_STRLEN];

	cr_assert_eq(netaddr_parse("192.0.2.1", 53, &a), 0);
	cr_assert_eq(a.family, AF_INET);
	cr_assert_eq(a.port, 53);
	cr_assert_str_eq(netaddr_format(&a, true, buf, sizeof(buf)), "192.0.2.1:53");

	cr_assert_eq(netaddr_parse("192.0.2.1:5353", 53, &a), 0);
	cr_assert_eq(a.port, 5353);

	cr_assert_eq(netaddr_parse("2001:db8::53", 53, &a), 0);
	cr_assert_eq(a.family, AF_INET6);
	cr_assert_str_eq(netaddr_format(&a, true, buf, sizeof(buf)), "[2001:db8::53]:53");

	cr_assert_eq(netaddr_parse("[2001:db8::53]:8053", 53, &a), 0);
	cr_assert_eq(a.port, 8053);
	cr_assert_str_eq(netaddr_format(&a, false, buf, sizeof(buf)), "2001:db8::53");
}

Test(netaddr, rejects_bad_input)
{
	static const char *const bad[] = {
	    "",
	    "localhost",
	    "192.0.2.256",
	    "192.0.2.1:",
	    "192.0.2.1:0",
	    "192.0.2.1:65536",
	    "192.0.2.1:53x",
	    "[2001:db8::1]53",
	    "[192.0.2.1]:53",
	    "[2001:db8::1",
	    "2001:db8::1:53:",
	    "1.2.3.4:-1",
	    "[::1]:+53",
	};
	struct netaddr a;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(netaddr_parse(bad[i], 53, &a), -EINVAL, "accepted \"%s\"", bad[i]);
	cr_assert_eq(netaddr_parse(NULL, 53, &a), -EINVAL);
	/* Brackets without a port are allowed: the default port applies. */
	cr_assert_eq(netaddr_parse("[2001:db8::1]", 53, &a), 0);
	cr_assert_eq(a.port, 53);
}

Test(netprefix, parses_and_contains)
{
	struct netprefix p;
	struct netaddr a;
	char buf[NETADDR_STRLEN];

	cr_assert_eq(netprefix_parse("192.168.0.0/24", &p), 0);
	cr_assert_eq(p.len, 24);
	cr_assert_str_eq(netprefix_format(&p, buf, sizeof(buf)), "192.168.0.0/24");
	netaddr_parse_ip("192.168.0.77", &a);
	cr_assert(netprefix_contains(&p, &a));
	netaddr_parse_ip("192.168.1.77", &a);
	cr_assert_not(netprefix_contains(&p, &a));
	netaddr_parse_ip("::1", &a);
	cr_assert_not(netprefix_contains(&p, &a), "families never match");

	cr_assert_eq(netprefix_parse("2001:db8::53", &p), 0, "a bare address is a host prefix");
	cr_assert_eq(p.len, 128);
	cr_assert_eq(netprefix_parse("10.0.0.0/9", &p), 0);
	netaddr_parse_ip("10.127.255.255", &a);
	cr_assert(netprefix_contains(&p, &a));
	netaddr_parse_ip("10.128.0.0", &a);
	cr_assert_not(netprefix_contains(&p, &a));
	cr_assert_eq(netprefix_parse("0.0.0.0/0", &p), 0);
	cr_assert(netprefix_contains(&p, &a));
}

Test(netprefix, rejects_host_bits_and_bad_lengths)
{
	struct netprefix p;

	cr_assert_eq(netprefix_parse("192.168.0.1/24", &p), -EINVAL);
	cr_assert_eq(netprefix_parse("192.168.0.0/33", &p), -EINVAL);
	cr_assert_eq(netprefix_parse("2001:db8::/129", &p), -EINVAL);
	cr_assert_eq(netprefix_parse("192.168.0.0/", &p), -EINVAL);
	cr_assert_eq(netprefix_parse("192.168.0.0/-1", &p), -EINVAL);
	cr_assert_eq(netprefix_parse("192.168.0.0/24x", &p), -EINVAL);
	cr_assert_eq(netprefix_parse("example.com/24", &p), -EINVAL);
}

Test(netaddr, sockaddr_round_trip_and_v4_mapped)
{
	struct netaddr a, b;
	struct sockaddr_storage ss;
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};

	netaddr_parse("[2001:db8::1]:99", 53, &a);
	socklen_t len = netaddr_to_sockaddr(&a, &ss);
	cr_assert_eq(netaddr_from_sockaddr((struct sockaddr *)&ss, len, &b), 0);
	cr_assert(netaddr_equal(&a, &b));

	inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
	cr_assert_eq(netaddr_from_sockaddr((struct sockaddr *)&in6, sizeof(in6), &b), 0);
	cr_assert_eq(b.family, AF_INET, "v4-mapped sources are treated as IPv4");
	cr_assert(netaddr_is_loopback(&b));
	cr_assert_eq(b.port, 1234);
}
