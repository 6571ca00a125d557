/*
 * lab_stats.h: what the failover lab's probe recorded, and the figures drawn
 * from it. Pure: no clock, no sockets; the probe fills an array of
 * struct lab_query in the order the queries were sent and these functions
 * read it (tests/integration/test_lab_stats.c checks them on made-up runs).
 *
 * Definitions (the same for every scenario, so figures compare):
 * - a query is GOOD when an answer came within the timeout, with RCODE
 *   NOERROR and a TXT naming a known node; LOST otherwise (no answer, a late
 *   answer, an error RCODE or an unknown identity are counted apart too);
 * - an OUTAGE is a run of lost queries between two good ones; its length is
 *   the time between the sending of the last good query before it and of the
 *   first good one after it (answers come back within a round trip of
 *   ~0.1 ms here, so this is also the time between those two answers). One
 *   query lost at 200 q/s is a 10 ms outage. A run still going at the end
 *   of the record is "open": it never recovered.
 */
#ifndef ANYCACHE_TESTS_LAB_STATS_H
#define ANYCACHE_TESTS_LAB_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LAB_MAX_NODES 3

/* One probe query. Times are CLOCK_MONOTONIC microseconds. */
struct lab_query {
	uint64_t sent_us;
	uint64_t recv_us; /* 0: no answer (yet) */
	uint16_t flow;    /* which of the probe's sockets (source ports) sent it */
	int8_t node;      /* node that answered (TXT identity), -1 none or unknown */
	uint8_t rcode;
};

struct lab_stats {
	unsigned sent, good, lost;
	unsigned late; /* answered after the timeout (counted in lost) */
	unsigned bad;  /* answered in time but RCODE != 0 or unknown node (in lost) */
	unsigned per_node[LAB_MAX_NODES]; /* good answers per node */
	uint64_t outage_us;               /* longest outage, 0 when nothing was lost */
	uint64_t outage_from_us, outage_to_us;
	uint64_t outage_end_recv_us; /* when the answer that ended it arrived */
	bool outage_open;            /* the longest outage reached the end of the record */
	uint64_t rtt_max_us;         /* slowest answer, late ones included */
};

/* True when q counts as answered (see the definitions above). */
bool lab_query_good(const struct lab_query *q, uint64_t timeout_us);

/* Figures over q[0..n), which are in the order sent. */
void lab_stats_compute(const struct lab_query *q, size_t n, uint64_t timeout_us,
                       struct lab_stats *st);

/* Good answers per node and lost queries in one time bin, by time sent. */
struct lab_bin {
	unsigned node[LAB_MAX_NODES];
	unsigned lost;
};

/*
 * Spreads q over nbins bins of bin_us starting at t0_us (queries outside are
 * ignored); returns the number of bins that hold anything sent.
 */
size_t lab_stats_bins(const struct lab_query *q, size_t n, uint64_t timeout_us, uint64_t t0_us,
                      uint64_t bin_us, struct lab_bin *bins, size_t nbins);

/*
 * ECMP: which flows changed node. For each flow, the node of its last good
 * answer sent before t_fail and of its last good answer sent before
 * t_restore (after t_fail). Flows first on failed_node must move (their
 * share); a flow first on a surviving node that ends elsewhere is collateral.
 */
struct lab_flows {
	unsigned on_failed, moved_failed; /* flows of the failed node, and how many moved */
	unsigned on_others, moved_others; /* flows of surviving nodes, and how many moved */
};
void lab_stats_flows(const struct lab_query *q, size_t n, uint64_t timeout_us, unsigned nflows,
                     uint64_t t_fail_us, uint64_t t_restore_us, int failed_node,
                     struct lab_flows *f);

#endif
