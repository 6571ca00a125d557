/*
 * dns_health.h: the DNS side of fate sharing (glue, on the control loop).
 *
 * Once every health.interval it gathers, for each VIP (dns.listen entry),
 * what the data path really does, steps that VIP's health machine
 * (core/health_fsm.h) and hands the resulting snapshot to the composition
 * root, which gives it to the BGP announcement policy:
 *   - every worker's heartbeat and report: a request is posted to each
 *     worker loop (loop_post); the worker answers with dns_server_report()
 *     on its own thread. A worker with no answer for fall x interval is
 *     stalled (the kernel keeps steering its share of flows to it), so every
 *     VIP is DOWN until it answers again. The report carries listener state
 *     (a dead receive makes its VIP DOWN), load figures and whether every
 *     upstream is dead.
 *   - a self-probe per VIP per interval: a CHAOS TXT id.server query (no
 *     upstream needed, RFC 4892) from a socket bound to the VIP to the VIP's
 *     listener, through the kernel, answered by the same sockets and loops
 *     that answer clients. Any well-formed answer to our question counts
 *     (REFUSED too: the ACL answered, so the loop did); no answer within the
 *     interval is a failure. Binding to the VIP also means a probe can never
 *     leave the host for another node that announces the same address.
 *   - rtnetlink address events (core/addrwatch.h): an address removed from
 *     the host is DOWN at once; added back, it rises after `rise` probes.
 *
 * Threads: created and used on the control loop's thread; the worker side
 * runs inside dns_server_report() on each worker's thread. The posted
 * requests refer to slots owned here: free only after every worker loop was
 * drained (no post of ours can run after that).
 */
#ifndef ANYCACHE_DNS_HEALTH_H
#define ANYCACHE_DNS_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"
#include "core/health.h"
#include "core/health_fsm.h"

struct loop;
struct dns_server;
struct dns_health;

struct dns_health_worker {
	struct loop *loop;
	struct dns_server *dns;
};

/* Runs on the control loop whenever a VIP's state or reason changed. */
typedef void (*dns_health_fn)(void *arg, const struct health_snapshot *snap);

int dns_health_new(struct loop *ctl, const struct conf *conf, const struct dns_health_worker *w,
                   unsigned n_workers, dns_health_fn fn, void *arg, struct dns_health **out);
/* After the control loop was drained (loop_drain) and every worker loop too. */
void dns_health_free(struct dns_health *h);

/* Planned stop or maintenance: every VIP DRAINING (or back) from the next tick. */
void dns_health_drain(struct dns_health *h, bool on);

void dns_health_snapshot(const struct dns_health *h, struct health_snapshot *out);

/*
 * Operator drain (anycachectl drain/undrain): VIP `vip` (its dns.listen
 * index), or every VIP when vip < 0, DRAINING (or back) from the next tick,
 * independent of the stop's dns_health_drain(). 0, or -ENOENT.
 */
int dns_health_admin_drain(struct dns_health *h, int vip, bool on);

/* The same for the VIP listening on addr (address and port). 0, or -ENOENT. */
int dns_health_admin_drain_addr(struct dns_health *h, const struct netaddr *addr, bool on);

/*
 * Reload (control loop): timers and thresholds from conf.health; VIPs
 * follow conf.dns.listen by address: a kept VIP keeps its state (a drained
 * one stays drained), a removed one is forgotten, a new one starts DOWN and
 * rises after `rise` good probes. The snapshot callback runs at once.
 * Indexes (dns_health_admin_drain, snapshots) count the VIPs in place.
 */
void dns_health_reconf(struct dns_health *h, const struct conf *conf);

/* What the control socket shows of one VIP. */
struct dns_health_vip_info {
	struct netaddr addr;
	enum health_state state;
	uint32_t reason; /* enum health_reason bits */
	uint64_t since_ms;
	bool admin_drain;
	bool addr_present;
	unsigned good, bad;     /* consecutive probe successes / failures */
	uint64_t hold_ms;       /* this DOWN period's hold-down */
	int last_probe;         /* enum health_probe of the last result (NONE: none yet) */
	uint64_t last_probe_ms; /* when that result was taken */
	uint64_t last_rtt_us;   /* the last successful probe's round trip */
};

struct dns_health_info {
	uint64_t interval_ms;
	unsigned n_workers;
	struct health_load load; /* the last interval's figures (health_fsm.h) */
	bool overloaded, stalled, upstreams_down;
	bool stop_drain; /* dns_health_drain(): the planned stop */
	unsigned n_vips;
	struct dns_health_vip_info vip[HEALTH_MAX_VIPS];
};

/* On the control loop's thread. */
void dns_health_info(const struct dns_health *h, struct dns_health_info *out);

/* Pure, for tests: the probe query (CH TXT id.server, given ID) and the
 * check of its answer (ID, QR, our question). */
int dns_health_probe_build(uint8_t *buf, size_t cap, uint16_t id);
bool dns_health_probe_answer_ok(const uint8_t *pkt, size_t len, uint16_t id);

#endif
