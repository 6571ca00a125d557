/* The failover lab's figures from the probe's record; see lab_stats.h. */
#include "lab_stats.h"

#include <stdlib.h>
#include <string.h>

bool lab_query_good(const struct lab_query *q, uint64_t timeout_us)
{
	return q->recv_us != 0 && q->recv_us >= q->sent_us &&
	       q->recv_us - q->sent_us <= timeout_us && q->rcode == 0 && q->node >= 0 &&
	       q->node < LAB_MAX_NODES;
}

void lab_stats_compute(const struct lab_query *q, size_t n, uint64_t timeout_us,
                       struct lab_stats *st)
{
	uint64_t last_good;
	bool in_gap = false;

	memset(st, 0, sizeof(*st));
	if (n == 0)
		return;
	/* Before the first query nothing was lost: the record starts "good". */
	last_good = q[0].sent_us;
	for (size_t i = 0; i < n; i++) {
		st->sent++;
		if (q[i].recv_us > q[i].sent_us && q[i].recv_us - q[i].sent_us > st->rtt_max_us)
			st->rtt_max_us = q[i].recv_us - q[i].sent_us;
		if (lab_query_good(&q[i], timeout_us)) {
			st->good++;
			st->per_node[q[i].node]++;
			if (in_gap && q[i].sent_us - last_good > st->outage_us) {
				st->outage_us = q[i].sent_us - last_good;
				st->outage_from_us = last_good;
				st->outage_to_us = q[i].sent_us;
				st->outage_end_recv_us = q[i].recv_us;
				st->outage_open = false;
			}
			last_good = q[i].sent_us;
			in_gap = false;
			continue;
		}
		st->lost++;
		in_gap = true;
		if (q[i].recv_us && q[i].recv_us - q[i].sent_us > timeout_us)
			st->late++;
		else if (q[i].recv_us)
			st->bad++;
	}
	/* A gap still open at the end lasts at least until the last query sent. */
	if (in_gap && q[n - 1].sent_us - last_good >= st->outage_us) {
		st->outage_us = q[n - 1].sent_us - last_good;
		st->outage_from_us = last_good;
		st->outage_to_us = q[n - 1].sent_us;
		st->outage_end_recv_us = 0;
		st->outage_open = true;
	}
}

size_t lab_stats_bins(const struct lab_query *q, size_t n, uint64_t timeout_us, uint64_t t0_us,
                      uint64_t bin_us, struct lab_bin *bins, size_t nbins)
{
	size_t used = 0;

	memset(bins, 0, nbins * sizeof(*bins));
	if (bin_us == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (q[i].sent_us < t0_us)
			continue;
		uint64_t b = (q[i].sent_us - t0_us) / bin_us;
		if (b >= nbins)
			continue;
		if (lab_query_good(&q[i], timeout_us))
			bins[b].node[q[i].node]++;
		else
			bins[b].lost++;
		if (b + 1 > used)
			used = (size_t)b + 1;
	}
	return used;
}

void lab_stats_flows(const struct lab_query *q, size_t n, uint64_t timeout_us, unsigned nflows,
                     uint64_t t_fail_us, uint64_t t_restore_us, int failed_node,
                     struct lab_flows *f)
{
	int8_t *before = malloc(nflows), *after = malloc(nflows);

	memset(f, 0, sizeof(*f));
	if (!before || !after) {
		free(before);
		free(after);
		return;
	}
	memset(before, -1, nflows);
	memset(after, -1, nflows);
	for (size_t i = 0; i < n; i++) {
		if (q[i].flow >= nflows || !lab_query_good(&q[i], timeout_us))
			continue;
		if (q[i].sent_us < t_fail_us)
			before[q[i].flow] = q[i].node;
		else if (q[i].sent_us < t_restore_us)
			after[q[i].flow] = q[i].node;
	}
	for (unsigned fl = 0; fl < nflows; fl++) {
		if (before[fl] < 0 || after[fl] < 0)
			continue; /* not seen on both sides: says nothing */
		if (before[fl] == failed_node) {
			f->on_failed++;
			f->moved_failed += after[fl] != before[fl];
		} else {
			f->on_others++;
			f->moved_others += after[fl] != before[fl];
		}
	}
	free(before);
	free(after);
}
