/* Unit tests for core/srclimit.c: connections per source prefix. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>

#include "core/srclimit.h"

static struct netaddr ip(const char *s)
{
	struct netaddr a;
	cr_assert_eq(netaddr_parse_ip(s, &a), 0, "%s", s);
	return a;
}

Test(srclimit, caps_each_source_and_frees_on_put)
{
	struct srclimit *t;
	struct netaddr a = ip("192.0.2.1"), b = ip("192.0.2.2");

	cr_assert_eq(srclimit_new(100, 3, 32, 64, 1, &t), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(srclimit_take(t, &a), 0);
	cr_assert_eq(srclimit_take(t, &a), -EUSERS);
	cr_assert_eq(srclimit_take(t, &b), 0, "another /32 is not affected");
	cr_assert_eq(srclimit_count(t, &a), 3);
	srclimit_put(t, &a);
	cr_assert_eq(srclimit_take(t, &a), 0);
	for (int i = 0; i < 3; i++)
		srclimit_put(t, &a);
	srclimit_put(t, &b);
	cr_assert_eq(srclimit_sources(t), 0);
	srclimit_free(t);
}

Test(srclimit, prefixes_group_sources)
{
	struct srclimit *t;
	struct netaddr a = ip("198.51.100.7"), b = ip("198.51.100.200"), c = ip("198.51.101.1");
	struct netaddr x = ip("2001:db8:0:1::1"), y = ip("2001:db8:0:1:ffff::2"),
	               z = ip("2001:db8:0:2::1");

	cr_assert_eq(srclimit_new(100, 2, 24, 64, 7, &t), 0);
	cr_assert_eq(srclimit_take(t, &a), 0);
	cr_assert_eq(srclimit_take(t, &b), 0);
	cr_assert_eq(srclimit_take(t, &a), -EUSERS, "same /24");
	cr_assert_eq(srclimit_take(t, &c), 0, "next /24");
	cr_assert_eq(srclimit_take(t, &x), 0);
	cr_assert_eq(srclimit_take(t, &y), 0);
	cr_assert_eq(srclimit_take(t, &x), -EUSERS, "same /64");
	cr_assert_eq(srclimit_take(t, &z), 0);
	cr_assert_eq(srclimit_sources(t), 4);
	srclimit_free(t);
	/* Odd prefix lengths cut inside a byte. */
	cr_assert_eq(srclimit_new(10, 1, 31, 127, 7, &t), 0);
	struct netaddr p = ip("10.0.0.2"), q = ip("10.0.0.3"), r = ip("10.0.0.4");
	cr_assert_eq(srclimit_take(t, &p), 0);
	cr_assert_eq(srclimit_take(t, &q), -EUSERS);
	cr_assert_eq(srclimit_take(t, &r), 0);
	srclimit_free(t);
}

Test(srclimit, capacity_and_bad_arguments)
{
	struct srclimit *t;
	char s[32];

	cr_assert_eq(srclimit_new(0, 1, 32, 64, 0, &t), -EINVAL);
	cr_assert_eq(srclimit_new(1, 0, 32, 64, 0, &t), -EINVAL);
	cr_assert_eq(srclimit_new(1, 1, 33, 64, 0, &t), -EINVAL);
	cr_assert_eq(srclimit_new(1, 1, 32, 129, 0, &t), -EINVAL);
	cr_assert_eq(srclimit_new(5, 1, 32, 64, 0, &t), 0);
	for (int i = 0; i < 5; i++) {
		snprintf(s, sizeof(s), "10.1.0.%d", i);
		struct netaddr a = ip(s);
		cr_assert_eq(srclimit_take(t, &a), 0);
	}
	struct netaddr more = ip("10.1.1.1");
	cr_assert_eq(srclimit_take(t, &more), -ENOSPC);
	srclimit_free(t);

	/* The capacity counts connections, not sources: one source with room
	 * of its own still finds the table full, and a put makes room. */
	cr_assert_eq(srclimit_new(3, 10, 32, 64, 0, &t), 0);
	struct netaddr one = ip("10.2.0.1"), two = ip("10.2.0.2");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(srclimit_take(t, &one), 0);
	cr_assert_eq(srclimit_total(t), 3);
	cr_assert_eq(srclimit_take(t, &one), -ENOSPC);
	cr_assert_eq(srclimit_take(t, &two), -ENOSPC);
	srclimit_put(t, &one);
	cr_assert_eq(srclimit_total(t), 2);
	cr_assert_eq(srclimit_take(t, &two), 0);
	srclimit_free(t);

	/* A source at its own cap hears so first, even when the table is full. */
	cr_assert_eq(srclimit_new(2, 2, 32, 64, 0, &t), 0);
	cr_assert_eq(srclimit_take(t, &one), 0);
	cr_assert_eq(srclimit_take(t, &one), 0);
	cr_assert_eq(srclimit_take(t, &one), -EUSERS);
	struct netaddr none = {0};
	cr_assert_eq(srclimit_take(t, &none), -EAFNOSUPPORT);
	srclimit_free(t);
}

/* Random takes and puts against a plain array model: deletion (backward
 * shift) must never lose or duplicate a source, whatever the collisions. */
Test(srclimit, matches_a_model_under_churn)
{
	enum { SRC = 300, CAPACITY = 600, STEPS = 200000 };
	static unsigned model[SRC];
	struct srclimit *t;
	uint64_t x = 88172645463325252ull;
	unsigned sources = 0, total = 0, full = 0;

	/* Up to 4 per source could make 1200: the capacity of 600 binds too. */
	cr_assert_eq(srclimit_new(CAPACITY, 4, 32, 128, 42, &t), 0);
	for (int step = 0; step < STEPS; step++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		unsigned i = (unsigned)(x % SRC);
		char s[32];
		snprintf(s, sizeof(s), "10.%u.%u.1", i / 256, i % 256);
		struct netaddr a = ip(s);
		if ((x >> 32) & 1) {
			int r = srclimit_take(t, &a);
			if (model[i] == 4) {
				cr_assert_eq(r, -EUSERS);
			} else if (total == CAPACITY) {
				cr_assert_eq(r, -ENOSPC);
				full++;
			} else {
				cr_assert_eq(r, 0);
				sources += model[i] == 0;
				model[i]++;
				total++;
			}
		} else if (model[i]) {
			srclimit_put(t, &a);
			model[i]--;
			total--;
			sources -= model[i] == 0;
		}
		cr_assert_eq(srclimit_count(t, &a), model[i]);
	}
	cr_assert_eq(srclimit_sources(t), sources);
	cr_assert_eq(srclimit_total(t), total);
	cr_assert_gt(full, 0, "the capacity never bound: the model proves nothing about it");
	for (unsigned i = 0; i < SRC; i++) {
		char s[32];
		snprintf(s, sizeof(s), "10.%u.%u.1", i / 256, i % 256);
		struct netaddr a = ip(s);
		cr_assert_eq(srclimit_count(t, &a), model[i], "source %u", i);
	}
	srclimit_free(t);
}

/* ---- one table per node: the workers take and give back at once ---- */

#define SHARERS 4
#define ROUNDS  20000
#define CAP     1 /* two threads on two cores at once: takes are refused, the cap binds */

static struct srclimit *shared_t;
static atomic_uint held, over_cap, refused;
static pthread_barrier_t start_line; /* every thread starts at once */

static void *share_take_put(void *arg)
{
	struct netaddr a;
	(void)arg;
	pthread_barrier_wait(&start_line);
	cr_assert_eq(netaddr_parse("192.0.2.7", 0, &a), 0);
	for (unsigned i = 0; i < ROUNDS; i++) {
		int r = srclimit_take(shared_t, &a);
		if (r == -EUSERS) {
			atomic_fetch_add(&refused, 1);
			continue;
		}
		cr_assert_eq(r, 0);
		if (atomic_fetch_add(&held, 1) + 1 > CAP)
			atomic_fetch_add(&over_cap, 1);
		/* Now and then give the CPU away while holding the one place: the
		 * others then run into the cap even when the scheduler would
		 * otherwise run the threads one after another (a loaded machine,
		 * one CPU), which the barrier alone did not prevent. */
		if (i % 64 == 0)
			sched_yield();
		atomic_fetch_sub(&held, 1);
		srclimit_put(shared_t, &a);
	}
	return NULL;
}

Test(srclimit, workers_share_one_table_and_never_pass_the_cap)
{
	pthread_t th[SHARERS];
	cr_assert_eq(srclimit_new(64, CAP, 32, 64, 7, &shared_t), 0);
	pthread_barrier_init(&start_line, NULL, SHARERS);
	for (unsigned i = 0; i < SHARERS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, share_take_put, NULL), 0);
	for (unsigned i = 0; i < SHARERS; i++)
		pthread_join(th[i], NULL);
	struct netaddr a;
	cr_assert_eq(netaddr_parse("192.0.2.7", 0, &a), 0);
	/* Every take was given back: nothing left, the table empty. */
	cr_assert_eq(srclimit_count(shared_t, &a), 0);
	cr_assert_eq(srclimit_sources(shared_t), 0);
	cr_assert_eq(atomic_load(&over_cap), 0);
	cr_assert_gt(atomic_load(&refused), 0, "the cap never bound: the test proves nothing");
	pthread_barrier_destroy(&start_line);
	srclimit_free(shared_t);
}
