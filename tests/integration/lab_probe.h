/*
 * lab_probe.h: the failover lab's client. A thread that sends one DNS query
 * for the node-identity TXT name to VIP1 every 1/rate seconds from inside the
 * client namespace, spread over LAB_FLOWS sockets (source ports, so the
 * router's L4 ECMP hash and the nodes' SO_REUSEPORT see many flows), matches
 * answers by ID, and records every query (struct lab_query). The same thread
 * watches the router's kernel route to VIP1 (rtnetlink) and timestamps its
 * changes, next to the failure and restore marks the scenario puts in.
 *
 * Ownership: the record (q, ev) belongs to the probe and stays readable
 * after lab_probe_stop until lab_probe_free. While the thread runs, read it
 * only through lab_probe_recent / lab_probe_route (they take the lock).
 */
#ifndef ANYCACHE_TESTS_LAB_PROBE_H
#define ANYCACHE_TESTS_LAB_PROBE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lab_route.h"
#include "lab_stats.h"
#include "netns.h"

#define LAB_FLOWS      64
#define LAB_MAX_EVENTS 256

struct lab_probe_conf {
	const struct netns *client; /* the probe's sockets live here */
	const struct netns *router; /* the route watched lives here */
	const char *vip;            /* IPv4 address queried (port 53) */
	const char *qname;          /* TXT name whose answer names the node */
	unsigned rate;              /* queries per second, 1..1000 */
	unsigned timeout_ms;        /* per query */
	unsigned max_seconds;       /* the record's length; the thread stops sending after it */
	struct lab_route_watch route;
};

enum lab_event_kind { LAB_EV_FAIL, LAB_EV_RESTORE, LAB_EV_ROUTE, LAB_EV_NOTE };

struct lab_event {
	uint64_t t_us;
	enum lab_event_kind kind;
	int mask; /* LAB_EV_ROUTE: the route's next hops (lab_route.h) */
	char text[64];
};

struct lab_probe {
	struct lab_probe_conf conf;
	int fd[LAB_FLOWS];
	int nl;
	uint8_t qmsg[512]; /* the query; its ID is patched per query */
	size_t qlen;
	struct lab_query *q;
	size_t cap, n;
	struct lab_event ev[LAB_MAX_EVENTS];
	unsigned nev;
	int route_mask; /* -1 until the first dump answered */
	uint64_t t0_us;
	pthread_mutex_t mu;
	pthread_t thr;
	bool running;
	atomic_bool stop;
};

/* CLOCK_MONOTONIC in microseconds (the probe's time base). */
uint64_t lab_now_us(void);

/* Opens the sockets, starts the thread. 0 or -errno (nothing left open then). */
int lab_probe_start(struct lab_probe *p, const struct lab_probe_conf *c);

/* Stops sending, waits one timeout for the last answers, joins the thread. */
void lab_probe_stop(struct lab_probe *p);

/* Frees the record (after stop). */
void lab_probe_free(struct lab_probe *p);

/* Adds a timestamped mark (failure injected, restored, a note); returns its time. Any thread. */
uint64_t lab_probe_mark(struct lab_probe *p, enum lab_event_kind k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Queries sent in the window_us before the last 50 ms: how many, how many good, by node. */
struct lab_recent {
	unsigned sent, good;
	unsigned per_node[LAB_MAX_NODES];
};
void lab_probe_recent(struct lab_probe *p, uint64_t window_us, struct lab_recent *r);

/* The router's route to the VIP as last seen (-1: not known yet). */
int lab_probe_route(struct lab_probe *p);

/*
 * Parses an answer: its ID, RCODE and the node named by its first TXT
 * record ("node-a" -> 0 ...; -1 when absent or unknown). The question must
 * equal qsec (the query's question section) octet for octet. 0 or -EBADMSG.
 */
int lab_answer_parse(const uint8_t *a, size_t n, const uint8_t *qsec, size_t qseclen, uint16_t *id,
                     uint8_t *rcode, int8_t *node);

#endif
