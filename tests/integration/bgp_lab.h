/*
 * bgp_lab.h: the node side shared by the GoBGP and FRR interop tests: a
 * router namespace (10.53.40.1, fd53:40::1) and a node namespace
 * (10.53.40.2, fd53:40::2) joined by veth, VIPs 10.53.41.4, 10.53.41.5 and
 * fd53:41::4 on the node's lo. The second IPv4 VIP has no MED and no
 * communities, so the tests can check that none are sent.
 */
#ifndef ANYCACHE_TESTS_BGP_LAB_H
#define ANYCACHE_TESTS_BGP_LAB_H

#include <criterion/criterion.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "netns.h"

/* One lab: the two namespaces, the router daemon, anycached, their temp dir. */
struct bgp_lab {
	struct netns r, n;
	struct tmpdir dir;
	struct proc router, any;
	char router_log[512];
};

/* Stops both daemons by PID and deletes the namespaces (also after a failure). */
static inline void bgp_lab_down(struct bgp_lab *lab)
{
	if (lab->any.pid > 0)
		proc_stop(&lab->any, SIGTERM, 5000);
	if (lab->router.pid > 0)
		proc_stop(&lab->router, SIGTERM, 5000);
	netns_delete(&lab->n);
	netns_delete(&lab->r);
	if (lab->dir.path[0])
		tmpdir_remove(&lab->dir);
}

/*
 * Writes conf_text as the lab's bird.conf, starts BIRD in the router
 * namespace with its control socket at sock (lab->dir/bird.ctl) and waits
 * (at most 10 s) until that socket exists.
 */
static inline void bgp_lab_bird_start(struct bgp_lab *lab, const char *conf_text, char *sock,
                                      size_t sockcap)
{
	char conf[512], log[600];
	struct stat sb;

	cr_assert_eq(write_file(lab->dir.path, "bird.conf", conf_text, conf, sizeof(conf)), 0);
	snprintf(sock, sockcap, "%s/bird.ctl", lab->dir.path);
	snprintf(log, sizeof(log), "%s/bird.out", lab->dir.path);
	char *argv[] = {"bird", "-f", "-c", conf, "-s", sock, NULL};
	cr_assert_eq(netns_proc_start(&lab->router, &lab->r, "bird", argv, log), 0);
	uint64_t end = now_ms() + 10000;
	while (stat(sock, &sb) != 0 && now_ms() < end && proc_alive(&lab->router))
		usleep(50 * 1000);
	cr_assert(stat(sock, &sb) == 0, "BIRD's control socket did not appear");
}

/*
 * Builds the lab's network: router namespace r and node namespace n (named
 * anyc-<tag_r>/<tag_n>-<pid>, stale ones of dead test processes reaped
 * first), the veth link, and the VIPs on n's lo; dir is the test's temp dir.
 */
static inline void bgp_lab_net_up(struct netns *r, struct netns *n, struct tmpdir *dir,
                                  const char *tag_r, const char *tag_n, const char *dir_tag)
{
	const char *const tags[] = {tag_r, tag_n};

	netns_reap_stale(tags, 2);
	cr_assert_eq(tmpdir_make(dir, dir_tag), 0);
	cr_assert_eq(netns_create(r, tag_r), 0);
	cr_assert_eq(netns_create(n, tag_n), 0);
	cr_assert_eq(netns_link(r, "r0", "10.53.40.1/24", n, "n0", "10.53.40.2/24"), 0);
	cr_assert_eq(netns_add_addr(r, "r0", "fd53:40::1/64"), 0);
	cr_assert_eq(netns_add_addr(n, "n0", "fd53:40::2/64"), 0);
	cr_assert_eq(netns_add_lo_addr(n, "10.53.41.4/32"), 0);
	cr_assert_eq(netns_add_lo_addr(n, "10.53.41.5/32"), 0);
	cr_assert_eq(netns_add_lo_addr(n, "fd53:41::4/128"), 0);
}

/* anycached's configuration on the node: AS `as`, one neighbor (the router) of AS `peer_as`. */
static inline void bgp_lab_node_yaml(char *yaml, size_t cap, uint32_t as, uint32_t peer_as)
{
	snprintf(yaml, cap,
	         "dns:\n"
	         "  listen: [\"10.53.41.4\", \"10.53.41.5\", \"[fd53:41::4]\"]\n"
	         "  allow: [10.53.40.0/24]\n"
	         "  upstreams: [\"10.53.40.9\"]\n"
	         "  threads: 1\n"
	         "health: {drain: 0s}\n" /* SIGTERM: Cease at once */
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

/* The node of the BFD labs (test_bfd_bird.c, test_bfd_frr.c): BFD 100 ms x 3
 * with the router, a 9 s hold time only BFD can beat, a short drain. */
static inline void bgp_lab_bfd_node_yaml(char *yaml, size_t cap, uint32_t as, uint32_t peer_as)
{
	snprintf(yaml, cap,
	         "dns:\n"
	         "  listen: [\"10.53.41.4\", \"10.53.41.5\", \"[fd53:41::4]\"]\n"
	         "  allow: [10.53.40.0/24]\n"
	         "  upstreams: [\"10.53.40.9\"]\n"
	         "  threads: 1\n"
	         "health: {drain: 1s}\n" /* SIGTERM: a short drain, then Cease */
	         "bgp:\n"
	         "  asn: %u\n"
	         "  router-id: 10.53.40.2\n"
	         "  neighbors:\n"
	         "    - address: 10.53.40.1\n"
	         "      asn: %u\n"
	         "      local-address: 10.53.40.2\n"
	         "      hold-time: 9s\n"
	         "      next-hop6: \"fd53:40::2\"\n"
	         "      bfd: true\n"
	         "  announce:\n"
	         "    - prefix: 10.53.41.4/32\n"
	         "    - prefix: 10.53.41.5/32\n"
	         "    - prefix: \"fd53:41::4/128\"\n"
	         "bfd:\n"
	         "  interval: 100ms\n"
	         "  multiplier: 3\n",
	         as, peer_as);
}

/* Polls cond (every 100 ms, bounded by timeout_ms) until it holds. */
static inline bool bgp_lab_wait_for(bool (*cond)(char *, size_t), int timeout_ms, char *out,
                                    size_t cap)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	do {
		if (cond(out, cap))
			return true;
		usleep(100 * 1000);
	} while (now_ms() < end);
	return false;
}

#endif
