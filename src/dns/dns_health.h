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

/* Pure, for tests: the probe query (CH TXT id.server, given ID) and the
 * check of its answer (ID, QR, our question). */
int dns_health_probe_build(uint8_t *buf, size_t cap, uint16_t id);
bool dns_health_probe_answer_ok(const uint8_t *pkt, size_t len, uint16_t id);

#endif
