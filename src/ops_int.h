/*
 * ops_int.h: what the three parts of operations share (private to src/ops*.c):
 *   ops.c          lifecycle, the rounds to the DNS workers, the drains
 *   ops_cmd.c      the control socket's commands (JSON answers)
 *   ops_metrics.c  the Prometheus page and /health
 * See ops.h for the design.
 */
#ifndef ANYCACHE_OPS_INT_H
#define ANYCACHE_OPS_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/ctl_proto.h"
#include "core/drain_state.h"
#include "core/timer.h"
#include "dns/dns_cache.h"
#include "dns/dns_forward.h"
#include "dns/dns_health.h"
#include "dns/dns_server.h"
#include "dns/dns_wire.h"
#include "ops.h"

struct ctl_server;
struct http_server;

/* One worker's answer to a round, taken on its thread. */
struct wsample {
	struct dns_server_stats st;
	struct dns_forward_stats fwd;
	uint64_t rx_drops;
};

/*
 * One worker as a round sees it. The control thread posts a request
 * (`pending`); the worker fills `s` and clears
 * `pending` on its own thread. Only the fields under mu cross threads.
 */
struct wslot {
	struct ops *o;
	struct loop *loop;
	struct dns_server *dns;
	pthread_mutex_t mu;
	bool pending, fresh;
	uint64_t round; /* the round the posted request belongs to */
	struct wsample s;
	/* Control thread only. */
	struct wsample last;
	bool have_last;
};

/* An upstream as the node sees it: its health is the node's already (one
 * table, dns_upstream.h); the counters are the workers' forwarders' summed. */
struct node_up {
	enum dns_upstream_state state;
	bool measured;
	unsigned srtt_ms, rttvar_ms;
	unsigned rto_ms;
	unsigned consecutive_fail, fail_rate_pm;
	bool no_0x20;    /* asked without DNS 0x20 case (it does not echo case) */
	bool confirming; /* being probed before it is called dead */
	struct dns_forward_upstream_stats c; /* summed */
};

/* Per-node figures: the sum (or merge) of every worker's last answer. */
struct node {
	unsigned workers, answered; /* answered: in this round */
	struct dns_server_stats st;
	struct dns_forward_stats fwd;
	struct dns_cache_stats cache;
	uint64_t rx_drops;
	size_t client_mem, client_mem_limit; /* dns.client-memory: held now, and its limit */
	unsigned n_up;
	struct node_up up[DNS_FORWARD_MAX_UPSTREAMS];
};

typedef void (*waiter_fn)(struct ops *o, void *ctx, const struct node *n);

struct waiter {
	struct waiter *next;
	waiter_fn fn;
	void *ctx;
};

struct ops {
	struct ops_conf c;
	const struct conf *conf;
	char conf_path[CONF_STATE_MAX + 1];
	struct loop *l;
	struct ctl_server *ctl;
	struct http_server *http;
	uint64_t started_ms;
	int64_t started_unix;
	bool stopping, closed;
	unsigned reloads; /* successful reloads since the start */
	/* Rounds. */
	struct wslot *w;
	unsigned n_w;
	uint64_t round;
	bool round_active;
	struct timer round_timer;
	struct waiter *cur, *next;
	unsigned n_waiters;
	struct node node;
	/* Drains. */
	struct drain_state drain;
	struct dns_health_info hinfo; /* scratch */
};

/*
 * Queue fn(o, ctx, node) for the next round (started now if none runs).
 * flush: a cache flush that round carries (NULL: none). 0, -EBUSY (too many
 * waiting, or another flush queued), -ESHUTDOWN (closing), -ENOMEM.
 */
int ops_collect(struct ops *o, waiter_fn fn, void *ctx);

/* Health follows o->drain (every VIP the state names is drained). */
void ops_apply_drains(struct ops *o);

/* Seconds since a loop_now() instant (0 when never). */
double ops_age_s(const struct ops *o, uint64_t since_ms);

/* ops_cmd.c / ops_metrics.c: register on o->ctl / o->http. */
void ops_register_commands(struct ops *o);
void ops_register_routes(struct ops *o);

#endif
