/*
 * netns.h: network namespaces and veth links that a test creates itself, so
 * that routers which refuse loopback next hops (GoBGP) or need interfaces
 * (FRR) can be tested without touching any real network. Everything is
 * named anyc-<tag>-<pid> and deleted by the test's teardown.
 */
#ifndef ANYCACHE_TESTS_NETNS_H
#define ANYCACHE_TESTS_NETNS_H

#include <stddef.h>

#include "harness.h"

struct netns {
	char name[48];
};

/* ip netns add NAME; loopback up. 0 or -errno (-EPERM without root: skip). */
int netns_create(struct netns *ns, const char *tag);
void netns_delete(struct netns *ns);

/* Runs a command inside ns (ip netns exec); as run_capture. */
int netns_run(const struct netns *ns, char *const argv[], char *out, size_t cap, int timeout_ms);

/* Starts a long-running process inside ns (it dies with the test process). */
int netns_proc_start(struct proc *p, const struct netns *ns, const char *name, char *const argv[],
                     const char *log);

/*
 * socket(2) created inside ns (setns on the calling thread, then back), so a
 * test process can talk from a namespace without a helper process: a socket
 * stays in the namespace it was created in. fd or -errno.
 */
int netns_socket(const struct netns *ns, int domain, int type, int protocol);

/* A veth pair between a and b with an address (CIDR) on each end, both up. */
int netns_link(const struct netns *a, const char *ifa, const char *cidr_a, const struct netns *b,
               const char *ifb, const char *cidr_b);

/* ip addr add CIDR dev lo inside ns (a VIP). */
int netns_add_lo_addr(const struct netns *ns, const char *cidr);

/* ip addr add CIDR dev DEV inside ns (IPv6: nodad, usable at once). */
int netns_add_addr(const struct netns *ns, const char *dev, const char *cidr);

/*
 * Deletes namespaces anyc-<tag>-<pid> whose test process is gone: what a test
 * killed by its timeout (no .fini) left behind. Only the given tags, only
 * dead PIDs, so other tests running now are never touched.
 */
void netns_reap_stale(const char *const *tags, unsigned ntags);

/*
 * anycached (the ANYCACHED binary) inside ns with conf_yaml written to
 * dir/anycache.yaml, output to dir/anycached.log. It does not wait for DNS:
 * its listeners are only reachable inside the namespace.
 */
int netns_anycached_start(struct proc *p, const struct netns *ns, const char *dir,
                          const char *conf_yaml);

#endif
