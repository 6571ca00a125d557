/*
 * ops.h: operations, the composition root's second half (beside main.c;
 * ops.c, ops_cmd.c, ops_metrics.c, sharing ops_int.h).
 *
 * It alone wires the control socket (core/ctl_server.h), the metrics and
 * health endpoint (core/http_server.h) and the persisted drains
 * (core/drain_state.h) to DNS, BGP and health: it registers the commands
 * (status, show bgp|bfd|health|upstreams|cache, cache flush, drain, undrain,
 * reload, restart) and the paths /metrics and /health, and renders their answers.
 *
 * Per-node figures, never per worker. What lives on the control thread (BGP,
 * health) is read directly. What the DNS workers hold is collected by a
 * round: one request posted to every worker (loop_post), answered on the
 * worker's own thread into its slot, merged when every worker answered or
 * after OPS_ROUND_BOUND_MS; a worker that did not answer counts with its last
 * answer (counters never go backwards) and the answer says how many did.
 * Requests that arrive during a round wait for the next one, so what they
 * see was taken after they asked (a "show cache" after a "cache flush" sees
 * the flush). One round serves every waiting request.
 *
 * Threads: built on the main thread before any loop runs; afterwards every
 * call comes from the control loop's thread, except the workers' side of a
 * round (on each worker's thread, inside ops.c).
 * Lifetime: ops_close() on the control thread after its loop_run returned
 * and before loop_drain (closes the listeners and connections, unlinks the
 * socket); ops_free() once every loop was drained and freed.
 */
#ifndef ANYCACHE_OPS_H
#define ANYCACHE_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"

struct loop;
struct dns_server;
struct dns_health;
struct bgp_speaker;
struct ctl_call;
struct ops;

#define OPS_ROUND_BOUND_MS 1000 /* the longest a request waits for the workers */
#define OPS_MAX_WAITERS    64   /* requests waiting for rounds (both endpoints) */

struct ops_worker {
	struct loop *loop;
	struct dns_server *dns;
};

/* What a reload did, line by line, for anycachectl and the log. */
#define OPS_RELOAD_LINES 64
#define OPS_RELOAD_TEXT  256

enum ops_reload_line {
	OPS_RELOAD_ERROR,   /* the file is refused: FILE:LINE:COLUMN: message */
	OPS_RELOAD_APPLIED, /* a change now in effect */
	OPS_RELOAD_RESTART, /* a change that waits for a restart */
};

struct ops_reload_result {
	unsigned n;
	unsigned more; /* lines beyond OPS_RELOAD_LINES */
	enum ops_reload_line kind[OPS_RELOAD_LINES];
	char text[OPS_RELOAD_LINES][OPS_RELOAD_TEXT];
};

/*
 * The composition root's reload, on the control thread: 0 (applied, maybe
 * in part: see the lines), -EINVAL (the file is refused, nothing changed),
 * or another -errno (cannot read it, a listener cannot bind...: refused).
 */
typedef int (*ops_reload_fn)(void *arg, struct ops_reload_result *out);

struct ops_conf {
	const struct conf *conf;  /* must outlive ops */
	const char *conf_path;    /* NULL: the embedded default */
	int64_t conf_loaded_unix; /* time(NULL) when it was read */
	struct loop *ctl;
	const struct ops_worker *workers;
	unsigned n_workers;
	struct bgp_speaker *bgp; /* NULL without BGP */
	struct dns_cache *cache; /* the node's one cache: thread-safe, read and flushed here */
	struct dns_shared
	    *shared; /* the node's DNS tables (client memory, upstream health); may be NULL */
	struct dns_health *health;
	ops_reload_fn reload; /* NULL: reload answers not-implemented */
	void *reload_arg;
	/* `restart` (restart.h): the handler ends the call itself; NULL = not offered. */
	void (*restart)(void *arg, struct ctl_call *c);
	void *restart_arg;
};

/*
 * Opens the control socket (and the metrics endpoint when configured),
 * reads control.state and drains what it lists. 0, or -errno with a
 * sentence for the operator in why (the daemon does not start then).
 */
int ops_new(const struct ops_conf *c, char *why, size_t whylen, struct ops **out);
/* A configuration was (re)loaded at `unix` (status shows it). Control thread. */
void ops_conf_loaded(struct ops *o, int64_t unix_time);
/* After a reload changed the VIPs: drains follow the drain state again (by address). */
void ops_reapply_drains(struct ops *o);
/* The planned stop began (status shows it). Control thread. */
void ops_stopping(struct ops *o);
void ops_close(struct ops *o);
void ops_free(struct ops *o);

#endif
