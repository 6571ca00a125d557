/*
 * bgp_lab.h: the node side shared by the GoBGP and FRR interop tests: a
 * router namespace (10.53.40.1, fd53:40::1) and a node namespace
 * (10.53.40.2, fd53:40::2) joined by veth, VIPs 10.53.41.4, 10.53.41.5 and
 * fd53:41::4 on the node's lo. The second IPv4 VIP has no MED and no
 * communities, so the tests can check that none are sent.
 */
#ifndef ANYCACHE_TESTS_BGP_LAB_H
#define ANYCACHE_TESTS_BGP_LAB_H

#include <stdint.h>
#include <stdio.h>

/* anycached's configuration on the node: AS `as`, one neighbor (the router) of AS `peer_as`. */
static inline void bgp_lab_node_yaml(char *yaml, size_t cap, uint32_t as, uint32_t peer_as)
{
	snprintf(yaml, cap,
	         "dns:\n"
	         "  listen: [\"10.53.41.4\", \"10.53.41.5\", \"[fd53:41::4]\"]\n"
	         "  allow: [10.53.40.0/24]\n"
	         "  upstreams: [\"10.53.40.9\"]\n"
	         "  threads: 1\n"
	         "bgp:\n"
	         "  asn: %u\n"
	         "  router-id: 10.53.40.2\n"
	         "  neighbors:\n"
	         "    - address: 10.53.40.1\n"
	         "      asn: %u\n"
	         "      local-address: 10.53.40.2\n"
	         "      hold-time: 9s\n"
	         "      next-hop6: \"fd53:40::2\"\n"
	         "  announce:\n"
	         "    - prefix: 10.53.41.4/32\n"
	         "      local-preference: 200\n"
	         "      med: 7\n"
	         "      communities: [\"65000:100\", \"65000:200\"]\n"
	         "      large-communities: [\"4200000001:1:2\"]\n"
	         "    - {prefix: 10.53.41.5/32, local-preference: 150}\n"
	         "    - prefix: \"fd53:41::4/128\"\n"
	         "      local-preference: 120\n"
	         "      med: 3\n"
	         "      communities: [\"65000:300\"]\n"
	         "      large-communities: [\"4200000001:3:4\"]\n",
	         as, peer_as);
}

#endif
