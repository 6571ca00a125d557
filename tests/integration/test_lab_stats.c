/*
 * The failover lab's figures (lab_stats.c) on made-up probe records: what
 * "lost" and "longest outage" mean must not drift, or the lab's table would
 * compare different things from one run to the next.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "lab_stats.h"

#define MS      1000u
#define TIMEOUT (1000u * MS)

/* n queries every 5 ms from t=1 s, answered by node after 1 ms, flow = index % flows. */
static void fill(struct lab_query *q, size_t n, int node, unsigned flows)
{
	for (size_t i = 0; i < n; i++) {
		q[i].sent_us = 1000000u + i * 5 * MS;
		q[i].recv_us = q[i].sent_us + MS;
		q[i].node = (int8_t)node;
		q[i].rcode = 0;
		q[i].flow = (uint16_t)(i % flows);
	}
}

static void drop(struct lab_query *q, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		q[i].recv_us = 0;
		q[i].node = -1;
	}
}

Test(lab_stats, nothing_lost_no_outage)
{
	static struct lab_query q[100];
	struct lab_stats st;

	fill(q, 100, 0, 8);
	lab_stats_compute(q, 100, TIMEOUT, &st);
	cr_assert_eq(st.sent, 100);
	cr_assert_eq(st.good, 100);
	cr_assert_eq(st.lost, 0);
	cr_assert_eq(st.outage_us, 0);
	cr_assert_eq(st.per_node[0], 100);
}

Test(lab_stats, one_lost_is_a_10ms_outage_at_200qps)
{
	static struct lab_query q[100];
	struct lab_stats st;

	fill(q, 100, 1, 8);
	drop(q, 50, 51);
	lab_stats_compute(q, 100, TIMEOUT, &st);
	cr_assert_eq(st.lost, 1);
	cr_assert_eq(st.outage_us, 10 * MS);
	cr_assert_eq(st.outage_from_us, q[49].sent_us);
	cr_assert_eq(st.outage_to_us, q[51].sent_us);
	cr_assert_eq(st.outage_end_recv_us, q[51].recv_us);
	cr_assert(!st.outage_open);
}

Test(lab_stats, longest_of_two_gaps_and_the_kinds_of_loss)
{
	static struct lab_query q[200];
	struct lab_stats st;

	fill(q, 200, 0, 8);
	drop(q, 10, 13);                               /* 3 lost: 20 ms */
	drop(q, 100, 140);                             /* 40 lost: 205 ms */
	q[120].recv_us = q[120].sent_us + TIMEOUT + 1; /* late: still lost */
	q[121].recv_us = q[121].sent_us + MS;          /* SERVFAIL: lost */
	q[121].rcode = 2;
	q[121].node = 1;
	q[150].node = -1; /* answered, unknown identity: lost */
	q[150].recv_us = q[150].sent_us + MS;
	lab_stats_compute(q, 200, TIMEOUT, &st);
	cr_assert_eq(st.lost, 44);
	cr_assert_eq(st.late, 1);
	cr_assert_eq(st.bad, 2);
	cr_assert_eq(st.good, 156);
	cr_assert_eq(st.outage_us, 205 * MS);
	cr_assert(!st.outage_open);
}

Test(lab_stats, outage_until_the_end_is_open)
{
	static struct lab_query q[100];
	struct lab_stats st;

	fill(q, 100, 0, 8);
	drop(q, 90, 100);
	lab_stats_compute(q, 100, TIMEOUT, &st);
	cr_assert(st.outage_open);
	cr_assert_eq(st.outage_us, q[99].sent_us - q[89].sent_us);
}

Test(lab_stats, bins_by_time_sent)
{
	static struct lab_query q[100];
	struct lab_bin bins[8];

	fill(q, 100, 0, 8); /* 20 per 100 ms */
	for (size_t i = 40; i < 60; i++)
		q[i].node = 1;
	drop(q, 60, 65);
	size_t used = lab_stats_bins(q, 100, TIMEOUT, 1000000u, 100 * MS, bins, 8);
	cr_assert_eq(used, 5);
	cr_assert_eq(bins[0].node[0], 20);
	cr_assert_eq(bins[2].node[1], 20);
	cr_assert_eq(bins[2].node[0], 0);
	cr_assert_eq(bins[3].lost, 5);
	cr_assert_eq(bins[3].node[0], 15);
}

Test(lab_stats, flows_of_the_failed_node_move_others_stay)
{
	static struct lab_query q[400];
	struct lab_flows f;
	const uint64_t t_fail = 1000000u + 200 * 5 * MS, t_restore = 1000000u + 350 * 5 * MS;

	fill(q, 400, 0, 9);
	/* Before: flow % 3 decides the node; after the failure node 0's flows go to node 1. */
	for (size_t i = 0; i < 400; i++) {
		int before = q[i].flow % 3;
		q[i].node = (int8_t)(q[i].sent_us < t_fail || before != 0 ? before : 1);
	}
	lab_stats_flows(q, 400, TIMEOUT, 9, t_fail, t_restore, 0, &f);
	cr_assert_eq(f.on_failed, 3);
	cr_assert_eq(f.moved_failed, 3);
	cr_assert_eq(f.on_others, 6);
	cr_assert_eq(f.moved_others, 0);

	/* One flow of node 2 also moved (a hash-threshold rehash): collateral. */
	for (size_t i = 0; i < 400; i++)
		if (q[i].flow == 2 && q[i].sent_us >= t_fail)
			q[i].node = 1;
	lab_stats_flows(q, 400, TIMEOUT, 9, t_fail, t_restore, 0, &f);
	cr_assert_eq(f.moved_others, 1);
}
