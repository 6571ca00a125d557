/*
 * lab_net.h: the failover lab's network and daemons, all inside network
 * namespaces created here (nothing is sent outside them):
 *
 *   client anyc-flk-<pid>  c0 10.53.50.2/24 ── rk 10.53.50.1/24 ┐
 *                                                                │ router anyc-flr-<pid>
 *   node a anyc-fla-<pid>  n0 10.53.51.2/24 ── ra 10.53.51.1/24 ┤ BIRD 2: iBGP AS 64512 to each
 *   node b anyc-flb-<pid>  n0 10.53.52.2/24 ── rb 10.53.52.1/24 ┤ node, BFD 100 ms x 3, kernel
 *   node c anyc-flc-<pid>  n0 10.53.53.2/24 ── rc 10.53.53.1/24 ┘ export with merge paths (ECMP)
 *
 * Each node: VIP1 10.53.59.4 and VIP2 10.53.59.5 on lo, anycached (like
 * examples/two-node-a.yaml: VIP1 local-pref 200 on a, 150 on b; with ecmp
 * 200 everywhere; hold 10 s, bfd on) forwarding to its own knotd on
 * 127.0.0.1:5300, whose zone lab.test answers `who.lab.test TXT "node-<x>"`
 * with TTL 1 s: every answer names the node whose cache and upstream path
 * served it, and the cache goes back upstream every second, so a dead
 * upstream shows within a second. (CHAOS id.server would name the node too
 * but is answered without the cache or the upstream.)
 */
#ifndef ANYCACHE_TESTS_LAB_NET_H
#define ANYCACHE_TESTS_LAB_NET_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "harness.h"
#include "lab_route.h"
#include "netns.h"

#define LAB_VIP1     "10.53.59.4"
#define LAB_VIP2     "10.53.59.5"
#define LAB_QNAME    "who.lab.test"
#define LAB_MAX_TIDS 64

struct lab_node {
	char id; /* 'a', 'b', 'c' */
	struct netns ns;
	struct proc any, knot;
	char dir[300];
	char addr[20], peer[20];  /* node's end of its link, the router's end */
	bool cut;                 /* XDP drop attached to n0 */
	int xdp_prog;             /* the loaded drop program, -1 none */
	pid_t tids[LAB_MAX_TIDS]; /* threads held by ptrace */
	unsigned ntids;
};

struct lab {
	unsigned n;
	bool ecmp;
	struct netns r, c;
	struct lab_node node[LAB_MAX_NODES];
	struct tmpdir dir;
	struct proc bird;
	char bird_sock[320];
	struct lab_route_watch route;            /* VIP1 at the router, next hops = nodes */
	const char *extra_health[LAB_MAX_NODES]; /* more lines for a node's health section */
	FILE *log;                               /* progress lines (may be NULL) */
	char err[256];                           /* why lab_up or an operation failed */
};

/* The namespace tags this lab uses (for netns_reap_stale). */
extern const char *const lab_ns_tags[];
extern const unsigned lab_ns_ntags;

/*
 * Builds everything for n nodes (2 or 3; ecmp: equal preference) and waits
 * until VIP1's route at the router is the steady one (lab_steady_mask) and
 * every node answers. extra_health_a: lines added to node a's `health:`
 * section (may be NULL). 0, or -errno with lab->err set; lab_down cleans up
 * either way.
 */
int lab_up(struct lab *lab, unsigned n, bool ecmp, const char *extra_health_a, FILE *log);
void lab_down(struct lab *lab);

/* Copies the daemons' logs and configurations into dir (created), for a look after the run. */
void lab_save_logs(struct lab *lab, const char *dir);

/* Node a only, or every node with ecmp. */
int lab_steady_mask(const struct lab *lab);

/* Starts node i's anycached (again) and waits until it answers inside its namespace. */
int lab_node_start(struct lab *lab, unsigned i);
/* Sends sig to node i's anycached. */
int lab_node_signal(struct lab *lab, unsigned i, int sig);
/* Waits for node i's anycached to exit (SIGKILL after timeout_ms); its wait status or -1. */
int lab_node_reap(struct lab *lab, unsigned i, int timeout_ms);

/* How many threads of node i's anycached are named dns-* (0: none yet), or -errno. */
int lab_node_dns_threads(struct lab *lab, unsigned i);

/* Drops (on) or passes again (off) everything arriving on node i's link (XDP). */
int lab_node_cut(struct lab *lab, unsigned i, bool on);
/* Removes or adds back VIP1 on node i's lo. */
int lab_node_vip1(struct lab *lab, unsigned i, bool present);
/* Sends sig to node i's knotd (SIGSTOP: the upstream falls silent). */
int lab_node_knot_signal(struct lab *lab, unsigned i, int sig);
/*
 * Stops (on) or releases the threads of node i's anycached whose name
 * starts with "dns-" (PTRACE_SEIZE + PTRACE_INTERRUPT), the rest of the
 * process runs on. -ENOENT when there is no such thread.
 */
int lab_node_stall_dns(struct lab *lab, unsigned i, bool on);

/* anycached's configuration for node i (written to its directory by lab_node_start). */
void lab_node_yaml(const struct lab *lab, unsigned i, const char *extra_health, char *out,
                   size_t cap);

/* VIP1's route at the router now (see lab_route.h), or -errno. */
int lab_route_mask(struct lab *lab);
/* Polls until the route's mask is want; 0 or -ETIMEDOUT. */
int lab_wait_route(struct lab *lab, int want, int timeout_ms);

#endif
