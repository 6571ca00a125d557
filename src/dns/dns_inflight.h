/*
 * dns_inflight.h: the process-wide table of upstream queries in flight, so
 * that one upstream query per question key (lowercased qname, qtype, qclass,
 * DO, CD: dns_hash.h) is in flight per PROCESS, whichever worker the
 * clients' queries reached (SO_REUSEPORT spreads a stub's source ports over
 * all of them).
 *
 * Roles. The first worker to miss a key becomes its OWNER: its node is
 * linked here and it sends the upstream query. A worker that misses the same
 * key meanwhile becomes a WAITER: its node hangs under the owner's. When the
 * owner's outcome is known (its answer already inserted into the shared
 * cache), dns_inflight_finish() unlinks the owner and hands back its waiters,
 * and dns_inflight_deliver() gives each the outcome itself (a reference-
 * counted copy of the answer the owner's client got, or none for SERVFAIL)
 * and pushes it into its worker's inbox. Waiters thus answer exactly as the
 * owner did, even when the answer was not cacheable (TTL 0, REFUSED) or was
 * evicted meanwhile; a serve-stale answer is shared the same way.
 *
 * Inboxes. One per worker: a lock-free stack the owner's thread pushes onto
 * and the worker takes whole (dns_inflight_take). The push that finds the
 * inbox unarmed calls the caller's wake function once (dns_server.c posts to
 * the worker's loop with loop_post()), so a burst of deliveries costs one
 * wake-up; a wake that fails (the loop's post queue is full) disarms the
 * inbox again, and the worker's periodic timer takes it anyway.
 *
 * Bounds: at most max_waiters waiters per key and max_total in the process
 * (counted); beyond, dns_inflight_join() says FULL and the caller forwards on
 * its own (the forwarder bounds that with its max_outstanding).
 *
 * Threads: every function may be called from any thread, except
 * dns_inflight_cancel_inbox and dns_inflight_free (shutdown: no other thread
 * uses the table then). Each shard has a mutex, held for the table update
 * only: never while delivering or waking.
 * Ownership: nodes are the caller's memory, embedded in its per-query state;
 * a node and the name it points to must stay alive while linked (an owner
 * until dns_inflight_finish, a waiter until it was taken from its inbox or
 * cancelled). An outcome holds one reference per waiter it was delivered
 * to; each drops it with dns_inflight_result_put.
 */
#ifndef ANYCACHE_DNS_INFLIGHT_H
#define ANYCACHE_DNS_INFLIGHT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dns_inflight;

#define DNS_INFLIGHT_MAX_WAITERS 64    /* per key, as the forwarder's own coalescing */
#define DNS_INFLIGHT_MAX_TOTAL   16384 /* per process */

enum dns_inflight_role {
	DNS_INFLIGHT_OWNER = 0, /* linked as the key's owner: send the query, then finish */
	DNS_INFLIGHT_WAITER,    /* linked under the owner: the outcome comes to the inbox */
	DNS_INFLIGHT_BUSY,      /* in flight already and the caller may not wait (prefetch) */
	DNS_INFLIGHT_FULL,      /* in flight already, no room to wait: not linked */
};

/* RFC 8767 §4 answer served stale: the waiter counts it like the owner. */
#define DNS_INFLIGHT_F_STALE 1u

/* What the owner's client got, shared read-only by the waiters. */
struct dns_inflight_result {
	atomic_uint refs;
	unsigned flags; /* DNS_INFLIGHT_F_STALE */
	uint16_t len;
	uint8_t ans[]; /* the stored-form answer (dns_answer.h) before per-client finishing */
};

struct dns_inflight_inbox {
	struct dns_inflight_node *_Atomic head;
	atomic_bool armed; /* a wake-up was asked for and the inbox not taken since */
};

struct dns_inflight_node {
	/* Set by the caller before dns_inflight_join. */
	const uint8_t *name_lc; /* lowercased uncompressed qname, 1..255 octets */
	uint16_t name_len;
	uint16_t qtype, qclass;
	bool do_bit, cd;
	struct dns_inflight_inbox *inbox; /* where a waiter's outcome goes */
	/* The table's. After delivery, `result` is the outcome (NULL: SERVFAIL). */
	struct dns_inflight_result *result;
	struct dns_inflight_node *next;    /* owner: hash chain; waiter: owner's list, inbox */
	struct dns_inflight_node *waiters; /* owner: its waiters, newest first */
	uint64_t hash;
	unsigned n_waiters;
	uint8_t state;
};

/* Wakes the worker owning `inbox` so that it takes it soon; arg as given to deliver. */
typedef void (*dns_inflight_wake_fn)(struct dns_inflight_inbox *inbox, void *arg);

/*
 * shards: rounded up to a power of two (ask for 4 x the worker threads).
 * max_waiters/max_total 0 take the defaults above. seed keys the hash.
 * 0, -EINVAL, -ENOMEM.
 */
int dns_inflight_new(unsigned shards, unsigned max_waiters, unsigned max_total, uint64_t seed,
                     struct dns_inflight **out);
void dns_inflight_free(struct dns_inflight *t);

/* Links n as the key's owner or one of its waiters (may_wait), see the enum. */
enum dns_inflight_role dns_inflight_join(struct dns_inflight *t, struct dns_inflight_node *n,
                                         bool may_wait);

/*
 * The owner's outcome is known: unlinks the owner (a no-op for a node that is
 * not an owner) and returns its waiters, now the caller's to deliver, oldest
 * first (NULL when none). The key is free for a new owner from here on.
 */
struct dns_inflight_node *dns_inflight_finish(struct dns_inflight *t,
                                              struct dns_inflight_node *owner);

/*
 * An outcome for delivery: a copy of the stored-form answer (len bytes) with
 * flags, and no reference yet. NULL when out of memory (deliver NULL then:
 * the waiters answer SERVFAIL).
 */
struct dns_inflight_result *dns_inflight_result_new(const uint8_t *ans, size_t len, unsigned flags);
void dns_inflight_result_put(struct dns_inflight_result *r);

/*
 * Gives every waiter of `list` (from dns_inflight_finish) the outcome `res`
 * (NULL = no answer: SERVFAIL), one reference each (a result nobody took is
 * freed), pushes it into its inbox and calls wake(inbox, arg) for each inbox
 * that was not armed. Never under a lock; wake may run on this thread.
 */
void dns_inflight_deliver(struct dns_inflight_node *list, struct dns_inflight_result *res,
                          dns_inflight_wake_fn wake, void *arg);

/*
 * On the inbox's worker: disarms it and takes every delivered node, oldest
 * first (NULL when empty). The caller answers each from node->result, drops
 * the reference and frees the node.
 */
struct dns_inflight_node *dns_inflight_take(struct dns_inflight_inbox *inbox);

/*
 * Shutdown only (no other thread uses the table): unlinks every waiter whose
 * inbox is `inbox` and returns them (their result is NULL), so a worker being
 * freed leaves no node of its own in the table.
 */
struct dns_inflight_node *dns_inflight_cancel_inbox(struct dns_inflight *t,
                                                    struct dns_inflight_inbox *inbox);

struct dns_inflight_stats {
	unsigned owners;  /* keys in flight */
	unsigned waiters; /* waiting now (the bounded count) */
};
void dns_inflight_stats(struct dns_inflight *t, struct dns_inflight_stats *out);

#endif
