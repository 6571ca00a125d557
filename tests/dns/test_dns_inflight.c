/*
 * Unit tests for the process-wide in-flight table (src/dns/dns_inflight.c):
 * roles, bounds, delivery through inboxes with one wake-up per burst, the
 * shutdown cancel, and several threads owning, waiting and finishing at once.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns/dns_inflight.h"

static const uint8_t www[] = "\3www\7example\4test";
static const uint8_t mail[] = "\4mail\7example\4test";

static struct dns_inflight *mk(unsigned max_waiters, unsigned max_total)
{
	struct dns_inflight *t = NULL;
	cr_assert_eq(dns_inflight_new(8, max_waiters, max_total, 42, &t), 0);
	cr_assert_not_null(t);
	return t;
}

static void node_init(struct dns_inflight_node *n, const uint8_t *name, size_t len, uint16_t qtype,
                      struct dns_inflight_inbox *ib)
{
	memset(n, 0, sizeof(*n));
	n->name_lc = name;
	n->name_len = (uint16_t)len;
	n->qtype = qtype;
	n->qclass = 1;
	n->inbox = ib;
}

static atomic_uint wakes;

static void count_wake(struct dns_inflight_inbox *ib, void *arg)
{
	(void)ib;
	(void)arg;
	atomic_fetch_add(&wakes, 1);
}

static unsigned list_len(const struct dns_inflight_node *n)
{
	unsigned k = 0;
	for (; n; n = n->next)
		k++;
	return k;
}

Test(dns_inflight, first_owns_later_wait_and_get_the_outcome_in_order)
{
	struct dns_inflight *t = mk(0, 0);
	struct dns_inflight_inbox ib1 = {0}, ib2 = {0};
	struct dns_inflight_node o, w[3];
	node_init(&o, www, sizeof(www), 1, &ib1);
	cr_assert_eq(dns_inflight_join(t, &o, true), DNS_INFLIGHT_OWNER);
	for (int i = 0; i < 3; i++) {
		node_init(&w[i], www, sizeof(www), 1, i == 1 ? &ib2 : &ib1);
		cr_assert_eq(dns_inflight_join(t, &w[i], true), DNS_INFLIGHT_WAITER);
	}
	struct dns_inflight_stats st;
	dns_inflight_stats(t, &st);
	cr_assert_eq(st.owners, 1);
	cr_assert_eq(st.waiters, 3);

	struct dns_inflight_node *list = dns_inflight_finish(t, &o);
	cr_assert_eq(list, &w[0], "oldest first");
	cr_assert_eq(list_len(list), 3);
	dns_inflight_stats(t, &st);
	cr_assert_eq(st.owners, 0);
	cr_assert_eq(st.waiters, 0);
	/* The key is free again at once: the next miss owns a new query. */
	struct dns_inflight_node again;
	node_init(&again, www, sizeof(www), 1, &ib1);
	cr_assert_eq(dns_inflight_join(t, &again, true), DNS_INFLIGHT_OWNER);
	cr_assert_null(dns_inflight_finish(t, &again));

	const uint8_t ans[] = {1, 2, 3, 4};
	struct dns_inflight_result *r = dns_inflight_result_new(ans, sizeof(ans), 0);
	cr_assert_not_null(r);
	atomic_store(&wakes, 0);
	dns_inflight_deliver(list, r, count_wake, NULL);
	cr_assert_eq(atomic_load(&wakes), 2, "one wake per inbox, not per waiter");
	cr_assert_eq(atomic_load(&r->refs), 3);

	struct dns_inflight_node *got = dns_inflight_take(&ib1);
	cr_assert_eq(got, &w[0]);
	cr_assert_eq(got->next, &w[2]);
	cr_assert_null(got->next->next);
	cr_assert_eq(got->result, r);
	cr_assert_arr_eq(got->result->ans, ans, sizeof(ans));
	got = dns_inflight_take(&ib2);
	cr_assert_eq(got, &w[1]);
	cr_assert_null(got->next);
	cr_assert_null(dns_inflight_take(&ib1), "taken whole");
	dns_inflight_result_put(r);
	dns_inflight_result_put(r);
	cr_assert_eq(atomic_load(&r->refs), 1);
	dns_inflight_result_put(r); /* the last reference frees it (ASan checks) */

	/* A taken inbox is disarmed: the next delivery wakes again. */
	struct dns_inflight_node o2, w2;
	node_init(&o2, mail, sizeof(mail), 1, &ib1);
	node_init(&w2, mail, sizeof(mail), 1, &ib1);
	cr_assert_eq(dns_inflight_join(t, &o2, true), DNS_INFLIGHT_OWNER);
	cr_assert_eq(dns_inflight_join(t, &w2, true), DNS_INFLIGHT_WAITER);
	dns_inflight_deliver(dns_inflight_finish(t, &o2), NULL, count_wake, NULL);
	cr_assert_eq(atomic_load(&wakes), 3);
	got = dns_inflight_take(&ib1);
	cr_assert_eq(got, &w2);
	cr_assert_null(got->result, "no outcome: the waiter answers SERVFAIL");
	dns_inflight_free(t);
}

Test(dns_inflight, key_is_name_type_class_do_cd)
{
	struct dns_inflight *t = mk(0, 0);
	struct dns_inflight_inbox ib = {0};
	struct dns_inflight_node n[6];
	node_init(&n[0], www, sizeof(www), 1, &ib);
	node_init(&n[1], www, sizeof(www), 28, &ib);
	node_init(&n[2], www, sizeof(www), 1, &ib);
	n[2].qclass = 3;
	node_init(&n[3], www, sizeof(www), 1, &ib);
	n[3].do_bit = true;
	node_init(&n[4], www, sizeof(www), 1, &ib);
	n[4].cd = true;
	node_init(&n[5], mail, sizeof(mail), 1, &ib);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(dns_inflight_join(t, &n[i], true), DNS_INFLIGHT_OWNER, "node %d", i);
	struct dns_inflight_stats st;
	dns_inflight_stats(t, &st);
	cr_assert_eq(st.owners, 6);
	for (int i = 0; i < 6; i++)
		cr_assert_null(dns_inflight_finish(t, &n[i]));
	dns_inflight_free(t);
}

Test(dns_inflight, waiters_are_bounded_per_key_and_per_process)
{
	struct dns_inflight *t = mk(4, 6);
	struct dns_inflight_inbox ib = {0};
	struct dns_inflight_node a, b, wa[5], wb[3], pre;
	node_init(&a, www, sizeof(www), 1, &ib);
	node_init(&b, mail, sizeof(mail), 1, &ib);
	cr_assert_eq(dns_inflight_join(t, &a, true), DNS_INFLIGHT_OWNER);
	cr_assert_eq(dns_inflight_join(t, &b, true), DNS_INFLIGHT_OWNER);
	for (int i = 0; i < 4; i++) {
		node_init(&wa[i], www, sizeof(www), 1, &ib);
		cr_assert_eq(dns_inflight_join(t, &wa[i], true), DNS_INFLIGHT_WAITER);
	}
	node_init(&wa[4], www, sizeof(www), 1, &ib);
	cr_assert_eq(dns_inflight_join(t, &wa[4], true), DNS_INFLIGHT_FULL, "4 per key");
	for (int i = 0; i < 2; i++) {
		node_init(&wb[i], mail, sizeof(mail), 1, &ib);
		cr_assert_eq(dns_inflight_join(t, &wb[i], true), DNS_INFLIGHT_WAITER);
	}
	node_init(&wb[2], mail, sizeof(mail), 1, &ib);
	cr_assert_eq(dns_inflight_join(t, &wb[2], true), DNS_INFLIGHT_FULL, "6 in the process");
	/* A prefetch never waits: the name is being fetched already. */
	node_init(&pre, mail, sizeof(mail), 1, &ib);
	cr_assert_eq(dns_inflight_join(t, &pre, false), DNS_INFLIGHT_BUSY);
	struct dns_inflight_stats st;
	dns_inflight_stats(t, &st);
	cr_assert_eq(st.waiters, 6);

	/* Finishing one key gives its room back to the process. */
	struct dns_inflight_node *l = dns_inflight_finish(t, &a);
	cr_assert_eq(list_len(l), 4);
	dns_inflight_stats(t, &st);
	cr_assert_eq(st.waiters, 2);
	cr_assert_eq(dns_inflight_join(t, &wb[2], true), DNS_INFLIGHT_WAITER);
	dns_inflight_deliver(l, NULL, count_wake, NULL);
	dns_inflight_deliver(dns_inflight_finish(t, &b), NULL, count_wake, NULL);
	cr_assert_eq(list_len(dns_inflight_take(&ib)), 7);
	dns_inflight_free(t);
}

Test(dns_inflight, cancel_inbox_takes_only_that_workers_waiters)
{
	struct dns_inflight *t = mk(0, 0);
	struct dns_inflight_inbox mine = {0}, other = {0};
	struct dns_inflight_node o, w[4];
	node_init(&o, www, sizeof(www), 1, &other);
	cr_assert_eq(dns_inflight_join(t, &o, true), DNS_INFLIGHT_OWNER);
	for (int i = 0; i < 4; i++) {
		node_init(&w[i], www, sizeof(www), 1, i % 2 ? &mine : &other);
		cr_assert_eq(dns_inflight_join(t, &w[i], true), DNS_INFLIGHT_WAITER);
	}
	struct dns_inflight_node *gone = dns_inflight_cancel_inbox(t, &mine);
	cr_assert_eq(list_len(gone), 2);
	for (struct dns_inflight_node *n = gone; n; n = n->next)
		cr_assert_eq(n->inbox, &mine);
	struct dns_inflight_stats st;
	dns_inflight_stats(t, &st);
	cr_assert_eq(st.waiters, 2);
	struct dns_inflight_node *left = dns_inflight_finish(t, &o);
	cr_assert_eq(list_len(left), 2);
	cr_assert_eq(left, &w[0]);
	cr_assert_eq(left->next, &w[2]);
	dns_inflight_free(t);
}

/* ---- threads: every waiter gets exactly its key's outcome, exactly once ---- */

#define MT_THREADS 4
#define MT_KEYS    8
#define MT_NODES   256
#define MT_ROUNDS  20000

static uint8_t mt_name[MT_KEYS][16];
static struct dns_inflight *mt_table;

struct mt {
	struct dns_inflight_inbox inbox;
	struct dns_inflight_node node[MT_NODES];
	bool busy[MT_NODES];
	bool owner[MT_NODES]; /* an owner still "waiting for its upstream" */
	unsigned key[MT_NODES];
	unsigned waiting, owned, joined, delivered, bad;
	unsigned seed;
};

static void mt_take(struct mt *m)
{
	for (struct dns_inflight_node *n = dns_inflight_take(&m->inbox), *nx; n; n = nx) {
		nx = n->next;
		unsigned i = (unsigned)(n - m->node);
		if (i >= MT_NODES || !m->busy[i] || !n->result || n->result->ans[0] != m->key[i])
			m->bad++;
		dns_inflight_result_put(n->result);
		m->busy[i] = false;
		m->waiting--;
		m->delivered++;
	}
}

/* The owned queries' answers arrive: finish each and deliver its outcome. */
static void mt_finish(struct mt *m)
{
	for (unsigned i = 0; i < MT_NODES; i++) {
		if (!m->owner[i])
			continue;
		uint8_t ans[1] = {(uint8_t)m->key[i]};
		struct dns_inflight_node *l = dns_inflight_finish(mt_table, &m->node[i]);
		dns_inflight_deliver(l, l ? dns_inflight_result_new(ans, 1, 0) : NULL, count_wake,
		                     NULL);
		m->owner[i] = m->busy[i] = false;
	}
}

static void *mt_run(void *p)
{
	struct mt *m = p;
	for (unsigned r = 0; r < MT_ROUNDS; r++) {
		m->seed = m->seed * 1103515245u + 12345u;
		unsigned k = (m->seed >> 8) % MT_KEYS, i;
		for (i = 0; i < MT_NODES && m->busy[i]; i++)
			;
		if (i == MT_NODES) {
			mt_finish(m);
			mt_take(m);
			continue;
		}
		struct dns_inflight_node *n = &m->node[i];
		node_init(n, mt_name[k], 15, 1, &m->inbox);
		switch (dns_inflight_join(mt_table, n, true)) {
		case DNS_INFLIGHT_OWNER: /* finished a few rounds later, as after a round trip */
			m->owned++;
			m->busy[i] = m->owner[i] = true;
			m->key[i] = k;
			break;
		case DNS_INFLIGHT_WAITER:
			m->busy[i] = true;
			m->key[i] = k;
			m->waiting++;
			m->joined++;
			break;
		default:
			break;
		}
		if (r % 16 == 0) {
			mt_finish(m);
			mt_take(m);
		}
	}
	/* Every thread finishes what it owns before it waits: all waiters get delivered. */
	mt_finish(m);
	for (int tries = 0; m->waiting && tries < 100000; tries++) {
		mt_take(m);
		sched_yield();
	}
	return NULL;
}

Test(dns_inflight, threads_own_wait_and_finish_at_once)
{
	static struct mt m[MT_THREADS];
	pthread_t th[MT_THREADS];
	for (unsigned k = 0; k < MT_KEYS; k++) {
		mt_name[k][0] = 13; /* "\015key-X-example\0" */
		memcpy(mt_name[k] + 1, "key-0-example", 13);
		mt_name[k][5] = (uint8_t)('a' + k);
		mt_name[k][14] = 0;
	}
	mt_table = mk(8, 0);
	for (unsigned t = 0; t < MT_THREADS; t++) {
		memset(&m[t], 0, sizeof(m[t]));
		m[t].seed = 1 + t;
		cr_assert_eq(pthread_create(&th[t], NULL, mt_run, &m[t]), 0);
	}
	unsigned owned = 0, joined = 0, delivered = 0;
	for (unsigned t = 0; t < MT_THREADS; t++) {
		pthread_join(th[t], NULL);
		cr_assert_eq(m[t].bad, 0, "thread %u: %u wrong outcomes", t, m[t].bad);
		cr_assert_eq(m[t].waiting, 0, "thread %u: %u never delivered", t, m[t].waiting);
		owned += m[t].owned;
		joined += m[t].joined;
		delivered += m[t].delivered;
	}
	cr_assert_eq(joined, delivered);
	cr_assert_gt(joined, 100, "threads did share queries (%u joined, %u owned)", joined, owned);
	struct dns_inflight_stats st;
	dns_inflight_stats(mt_table, &st);
	cr_assert_eq(st.owners, 0);
	cr_assert_eq(st.waiters, 0);
	dns_inflight_free(mt_table);
}
