/*
 * cache_bench: micro-benchmark of the DNS answer cache (src/dns/dns_cache.c),
 * single- and multi-threaded.
 *
 * Inserts N typical answers (60-120 bytes, 1-3 A records, some with a TXT
 * pad) and prints the exact memory charged per entry; times one thread's
 * inserts, hits (keys in random order and random letter case, so the table
 * and entries are not all in L1), misses and hits on one hot key; then, for
 * each thread count and synchronisation, T threads doing lookups on the one
 * shared cache at once, reported as lookups per second per thread.
 *
 * Synchronisations (-s): "rcu" is the cache as built (lock-free RCU readers).
 * The others model the designs it was chosen against by taking, around each
 * real lookup, the read side of a per-shard lock of that kind (one per 64-byte
 * line, 4 x the largest thread count of them, the key's shard by its index):
 * "mutex" (pthread mutex), "spin" (pthread spinlock), "rwlock" (pthread
 * rwlock, read side), "seqlock" (read the shard's sequence before and after
 * the copy, retry if a writer ran). Their cost over "rcu" is what that design
 * would add to a hit. With -w, that permille of operations are inserts
 * (replacing an existing name), which take the model lock's write side too.
 * Key sets (-k): "uniform" (random names), "hot" (every thread asks one name,
 * the worst case for a per-shard lock: one line for all threads).
 *
 * Usage: cache_bench [-n entries (100000)] [-l lookups per thread (2000000)]
 *                    [-t threads (1,2,4)] [-s syncs (rcu,mutex,spin,rwlock,seqlock)]
 *                    [-k keys (uniform,hot)] [-w insert permille (0)] [-r repeats (3)]
 *                    [-q (skip the single-thread part)]
 * Each threaded cell is run `repeats` times and the best run is reported: on a
 * shared machine the slow runs measure the neighbours, not the cache.
 * Not a test: the numbers depend on the machine; bench/README.md records what
 * was measured and on what.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#define _LGPL_SOURCE /* the read side inlined, as in dns_cache.c */
#include <urcu/urcu-bp.h>

#include "core/wire.h"
#include "dns/dns_cache.h"

#define MAX_THREADS 64

struct item {
	uint8_t name[32];
	uint8_t qname_len;
};

struct answer {
	uint8_t ans[128];
	uint16_t off[4];
	uint8_t len, n_ttl;
};

static uint64_t rng_state = 0x853c49e6748fea9bull;

/* xorshift64*: deterministic, so runs are comparable */
static uint32_t rnd_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (uint32_t)((*s * 0x2545f4914f6cdd1dull) >> 32);
}

static uint32_t rnd(void)
{
	return rnd_next(&rng_state);
}

static double ns_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* "\x08h%07u\x07example\x03com\x00" (miss names use 'm' instead of 'h'). */
static void make_name(struct item *it, char tag, unsigned i)
{
	char lbl[16];
	snprintf(lbl, sizeof(lbl), "%c%07u", tag, i);
	struct wbuf w = wbuf_init(it->name, sizeof(it->name));
	wbuf_u8(&w, 8);
	wbuf_bytes(&w, lbl, 8);
	wbuf_bytes(&w, "\7example\3com", 13); /* with the string's NUL: the root label */
	it->qname_len = (uint8_t)w.off;
}

/* Builds a response of 60-120 bytes; returns its length, fills TTL offsets. */
static size_t make_answer(const struct item *it, uint8_t *buf, size_t cap, uint16_t *off,
                          unsigned *n_ttl)
{
	unsigned n_a = 1 + rnd() % 3;
	size_t target = 60 + rnd() % 61;
	size_t base = 12 + it->qname_len + 4 + n_a * 16u;
	bool pad = base + 12 <= target; /* a TXT RR costs 12 bytes before its rdata */
	struct wbuf w = wbuf_init(buf, cap);
	wbuf_u16(&w, (uint16_t)rnd());
	wbuf_u16(&w, 0x8180);
	wbuf_u16(&w, 1);
	wbuf_u16(&w, (uint16_t)(n_a + pad));
	wbuf_u16(&w, 0);
	wbuf_u16(&w, 0);
	wbuf_bytes(&w, it->name, it->qname_len);
	wbuf_u16(&w, 1);
	wbuf_u16(&w, 1);
	*n_ttl = 0;
	for (unsigned i = 0; i < n_a; i++) {
		wbuf_u16(&w, 0xc00c);
		wbuf_u16(&w, 1);
		wbuf_u16(&w, 1);
		off[(*n_ttl)++] = (uint16_t)w.off;
		wbuf_u32(&w, 300 + rnd() % 3300);
		wbuf_u16(&w, 4);
		wbuf_u32(&w, rnd());
	}
	if (pad) {
		size_t rdlen = target - base - 12;
		wbuf_u16(&w, 0xc00c);
		wbuf_u16(&w, 16);
		wbuf_u16(&w, 1);
		off[(*n_ttl)++] = (uint16_t)w.off;
		wbuf_u32(&w, 3600);
		wbuf_u16(&w, (uint16_t)rdlen);
		uint8_t txt[64];
		memset(txt, 'x', sizeof(txt));
		txt[0] = (uint8_t)(rdlen - 1);
		wbuf_bytes(&w, txt, rdlen);
	}
	return w.err ? 0 : w.off;
}

/* 0x20-style random case, as clients and resolvers send it. */
static void randomize_case(uint8_t *name, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (name[i] >= 'a' && name[i] <= 'z' && (rnd() & 1))
			name[i] = (uint8_t)(name[i] - 32);
}

static struct dns_cache_key key_of(const struct item *it)
{
	struct dns_cache_key k = {
	    .qname = it->name, .qname_len = it->qname_len, .qtype = 1, .qclass = 1};
	return k;
}

/* ---- the modelled per-shard locks ---- */

enum sync { SYNC_RCU, SYNC_MUTEX, SYNC_SPIN, SYNC_RWLOCK, SYNC_SEQLOCK, SYNC_N };
static const char *const sync_name[SYNC_N] = {"rcu", "mutex", "spin", "rwlock", "seqlock"};

struct model_lock {
	pthread_mutex_t m;
	pthread_spinlock_t s;
	pthread_rwlock_t rw;
	atomic_uint seq; /* odd while a writer runs */
} __attribute__((aligned(64)));

static struct model_lock *locks;
static unsigned n_locks; /* power of two */

static void model_read_lock(enum sync s, struct model_lock *l)
{
	switch (s) {
	case SYNC_MUTEX:
		pthread_mutex_lock(&l->m);
		break;
	case SYNC_SPIN:
		pthread_spin_lock(&l->s);
		break;
	case SYNC_RWLOCK:
		pthread_rwlock_rdlock(&l->rw);
		break;
	default:
		break;
	}
}

static void model_read_unlock(enum sync s, struct model_lock *l)
{
	switch (s) {
	case SYNC_MUTEX:
		pthread_mutex_unlock(&l->m);
		break;
	case SYNC_SPIN:
		pthread_spin_unlock(&l->s);
		break;
	case SYNC_RWLOCK:
		pthread_rwlock_unlock(&l->rw);
		break;
	default:
		break;
	}
}

static void model_write_lock(enum sync s, struct model_lock *l)
{
	switch (s) {
	case SYNC_MUTEX:
		pthread_mutex_lock(&l->m);
		break;
	case SYNC_SPIN:
		pthread_spin_lock(&l->s);
		break;
	case SYNC_RWLOCK:
		pthread_rwlock_wrlock(&l->rw);
		break;
	case SYNC_SEQLOCK:
		/* Writers exclude each other on the mutex, then make the sequence odd. */
		pthread_mutex_lock(&l->m);
		atomic_fetch_add_explicit(&l->seq, 1, memory_order_acq_rel);
		break;
	default:
		break;
	}
}

static void model_write_unlock(enum sync s, struct model_lock *l)
{
	if (s == SYNC_SEQLOCK) {
		atomic_fetch_add_explicit(&l->seq, 1, memory_order_release);
		pthread_mutex_unlock(&l->m);
		return;
	}
	model_read_unlock(s, l);
}

/* ---- the multi-threaded run ---- */

enum keys { KEYS_UNIFORM, KEYS_HOT };

struct run {
	struct dns_cache *c;
	const struct item *hit;
	const struct answer *ans; /* for inserts (-w) */
	unsigned n;
	unsigned iters;
	unsigned write_permille;
	enum sync sync;
	enum keys keys;
	uint64_t now;
	pthread_barrier_t start;
};

struct thread_res {
	struct run *r;
	unsigned idx;
	pthread_t th;
	double ns;
	uint64_t sink, retries, writes;
	int err;
};

static void *lookup_thread(void *p)
{
	struct thread_res *tr = p;
	struct run *r = tr->r;
	uint64_t s = 0x9e3779b97f4a7c15ull * (tr->idx + 1);
	uint8_t out[512];
	unsigned flags;

	urcu_bp_register_thread(); /* outside the timed loop, like a worker's first query */
	pthread_barrier_wait(&r->start);
	double a = ns_now();
	for (unsigned i = 0; i < r->iters; i++) {
		uint32_t x = rnd_next(&s);
		unsigned idx = r->keys == KEYS_HOT ? 0 : x % r->n;
		const struct item *it = &r->hit[idx];
		struct dns_cache_key k = key_of(it);
		struct model_lock *l = &locks[idx & (n_locks - 1)];
		if (r->write_permille && (x >> 22) % 1000 < r->write_permille) {
			const struct answer *an = &r->ans[idx];
			model_write_lock(r->sync, l);
			int rc = dns_cache_insert(r->c, &k, an->ans, an->len, an->off, an->n_ttl,
			                          DNS_CACHE_POSITIVE, 0, r->now);
			model_write_unlock(r->sync, l);
			tr->writes++;
			if (rc != 1)
				tr->err = rc ? rc : -EAGAIN;
			continue;
		}
		int rc;
		if (r->sync == SYNC_SEQLOCK) {
			unsigned s0;
			for (;;) {
				s0 = atomic_load_explicit(&l->seq, memory_order_acquire);
				if (s0 & 1) {
					tr->retries++;
					continue;
				}
				rc = dns_cache_lookup(r->c, &k, (uint16_t)i, false, r->now, out,
				                      sizeof(out), &flags);
				atomic_thread_fence(memory_order_acquire);
				if (atomic_load_explicit(&l->seq, memory_order_relaxed) == s0)
					break;
				tr->retries++;
			}
		} else {
			model_read_lock(r->sync, l);
			rc = dns_cache_lookup(r->c, &k, (uint16_t)i, false, r->now, out,
			                      sizeof(out), &flags);
			model_read_unlock(r->sync, l);
		}
		if (rc < 0) { /* every name is cached: a miss is a bug */
			fprintf(stderr, "thread %u: lookup of name %u failed: %d\n", tr->idx, idx,
			        rc);
			tr->err = rc;
			break;
		}
		tr->sink += out[rc - 1];
	}
	tr->ns = ns_now() - a;
	urcu_bp_unregister_thread();
	return NULL;
}

/* Returns the mean lookups/s per thread, or < 0 on a failed run. */
static double run_threads(struct run *r, unsigned nthreads, double *agg, uint64_t *retries)
{
	struct thread_res tr[MAX_THREADS];

	pthread_barrier_init(&r->start, NULL, nthreads);
	for (unsigned t = 0; t < nthreads; t++) {
		tr[t] = (struct thread_res){.r = r, .idx = t};
		if (pthread_create(&tr[t].th, NULL, lookup_thread, &tr[t]))
			return -1;
	}
	double sum = 0;
	*agg = 0;
	*retries = 0;
	int err = 0;
	for (unsigned t = 0; t < nthreads; t++) {
		pthread_join(tr[t].th, NULL);
		double per = (double)r->iters / (tr[t].ns / 1e9);
		sum += per;
		*agg += per;
		*retries += tr[t].retries;
		if (tr[t].err)
			err = tr[t].err;
	}
	pthread_barrier_destroy(&r->start);
	if (err) {
		fprintf(stderr, "run failed: %d\n", err);
		return -1;
	}
	return sum / nthreads;
}

static unsigned parse_list(const char *s, unsigned *out, unsigned max)
{
	unsigned n = 0;
	char *end;
	while (*s && n < max) {
		unsigned long v = strtoul(s, &end, 10);
		if (end == s || v == 0 || v > MAX_THREADS)
			return 0;
		out[n++] = (unsigned)v;
		s = *end == ',' ? end + 1 : end;
	}
	return n;
}

int main(int argc, char **argv)
{
	unsigned n = 100000, iters = 2000000, write_permille = 0;
	unsigned threads[16] = {1, 2, 4}, n_threads = 3, max_threads = 0;
	bool want_sync[SYNC_N] = {true, true, true, true, true};
	bool want_keys[2] = {true, true};
	bool quick = false;
	unsigned repeats = 3;
	int o;

	while ((o = getopt(argc, argv, "n:l:t:s:k:w:r:qh")) != -1) {
		switch (o) {
		case 'n':
			n = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'l':
			iters = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			n_threads = parse_list(optarg, threads, 16);
			break;
		case 's':
			for (unsigned i = 0; i < SYNC_N; i++)
				want_sync[i] = strstr(optarg, sync_name[i]) != NULL;
			break;
		case 'k':
			want_keys[KEYS_UNIFORM] = strstr(optarg, "uniform") != NULL;
			want_keys[KEYS_HOT] = strstr(optarg, "hot") != NULL;
			break;
		case 'w':
			write_permille = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'q':
			quick = true;
			break;
		case 'r':
			repeats = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr,
			        "usage: see the comment at the top of bench/cache_bench.c\n");
			return 2;
		}
	}
	if (n == 0 || n > 10000000 || iters == 0 || n_threads == 0 || write_permille > 1000 ||
	    repeats == 0 || repeats > 100)
		return 2;
	for (unsigned i = 0; i < n_threads; i++)
		max_threads = threads[i] > max_threads ? threads[i] : max_threads;

	struct dns_cache_conf conf = DNS_CACHE_CONF_DEFAULT;
	/* ~200 B per entry: nearly full (realistic table share) but no eviction during the run */
	conf.size = (size_t)n * 200 + (4u << 20);
	conf.shards = 4 * max_threads; /* what dns_shared_new() asks for */
	struct dns_cache *c;
	if (dns_cache_new(&conf, 0x9e3779b97f4a7c15ull, &c) < 0)
		return 1;

	struct item *hit = calloc(n, sizeof(*hit));
	struct item *miss = calloc(n, sizeof(*miss));
	struct answer *ans = calloc(n, sizeof(*ans));
	if (!hit || !miss || !ans)
		return 1;
	const uint64_t now = 1000000;
	double t0 = ns_now();
	size_t min_len = SIZE_MAX, max_len = 0;
	for (unsigned i = 0; i < n; i++) {
		unsigned n_ttl;
		make_name(&hit[i], 'h', i);
		make_name(&miss[i], 'm', i);
		size_t len =
		    make_answer(&hit[i], ans[i].ans, sizeof(ans[i].ans), ans[i].off, &n_ttl);
		if (len == 0 || n_ttl > 4)
			return 1;
		ans[i].len = (uint8_t)len;
		ans[i].n_ttl = (uint8_t)n_ttl;
		min_len = len < min_len ? len : min_len;
		max_len = len > max_len ? len : max_len;
	}
	/* Timed alone: answers were built above. The heap is read around the inserts
	 * to check the cache's own accounting against what glibc really used. */
	size_t heap0 = mallinfo2().uordblks;
	double a = ns_now();
	for (unsigned i = 0; i < n; i++) {
		struct dns_cache_key k = key_of(&hit[i]);
		int rc = dns_cache_insert(c, &k, ans[i].ans, ans[i].len, ans[i].off, ans[i].n_ttl,
		                          DNS_CACHE_POSITIVE, 0, now);
		if (rc != 1) {
			fprintf(stderr, "insert %u: %d\n", i, rc);
			return 1;
		}
	}
	double ins_ns = ns_now() - a;
	size_t heap1 = mallinfo2().uordblks;
	for (unsigned i = 0; i < n; i++)
		randomize_case(hit[i].name, hit[i].qname_len);
	double setup_s = (ns_now() - t0) / 1e9;

	struct dns_cache_stats st;
	dns_cache_stats(c, &st);
	if (st.evictions || st.entries != n) {
		fprintf(stderr, "cache too small: %" PRIu64 " evictions\n", st.evictions);
		return 1;
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("machine            %ld online CPUs; %u entries, %u shards of %zu bytes\n", cpus, n,
	       st.shards, st.shard_bytes);
	size_t entry_bytes = st.bytes - st.table_bytes;
	printf("entries            %zu (answers %zu..%zu bytes, mean %.1f)\n", st.entries, min_len,
	       max_len, (double)st.answer_bytes / (double)st.entries);
	printf("insert             %.1f ns/insert (setup total %.2f s)\n", ins_ns / n, setup_s);
	printf(
	    "overhead/entry     %.2f bytes beyond the answer (header, TTL table, malloc slack)\n",
	    (double)(entry_bytes - st.answer_bytes) / (double)st.entries);
	printf("heap/entry         %.2f bytes beyond the answer, measured (glibc mallinfo2 in-use "
	       "bytes around the inserts)\n",
	       ((double)(heap1 - heap0) - (double)st.answer_bytes) / (double)st.entries);
	printf("table/entry        %.2f bytes (hash table, shards, cache struct: %zu bytes)\n",
	       (double)st.table_bytes / (double)st.entries, st.table_bytes);
	printf("total/entry        %.2f bytes charged per entry, answer included\n",
	       (double)st.bytes / (double)st.entries);
	printf("examples           overhead(60 B, 1 TTL) = %zu, overhead(120 B, 3 TTL) = %zu\n",
	       dns_cache_entry_overhead(60, 1), dns_cache_entry_overhead(120, 3));

	uint8_t out[512];
	unsigned flags;
	uint64_t sink = 0;
	if (!quick) {
		/* One thread, the same loops as before the cache was shared. */
		uint32_t *order = malloc((size_t)iters * sizeof(*order));
		if (!order)
			return 1;
		for (unsigned i = 0; i < iters; i++)
			order[i] = rnd() % n;
		a = ns_now();
		for (unsigned i = 0; i < iters; i++) {
			struct dns_cache_key k = key_of(&hit[order[i]]);
			int rc = dns_cache_lookup(c, &k, (uint16_t)i, false, now + 5000, out,
			                          sizeof(out), &flags);
			if (rc < 0) {
				fprintf(stderr, "unexpected miss: %d\n", rc);
				return 1;
			}
			sink += out[rc - 1];
		}
		double hit_ns = (ns_now() - a) / iters;
		a = ns_now();
		for (unsigned i = 0; i < iters; i++) {
			struct dns_cache_key k = key_of(&miss[order[i]]);
			int rc = dns_cache_lookup(c, &k, (uint16_t)i, false, now + 5000, out,
			                          sizeof(out), &flags);
			if (rc != -ENOENT)
				return 1;
			sink += (uint64_t)-rc;
		}
		double miss_ns = (ns_now() - a) / iters;
		a = ns_now();
		struct dns_cache_key hk = key_of(&hit[0]);
		for (unsigned i = 0; i < iters; i++)
			sink += (uint64_t)dns_cache_lookup(c, &hk, (uint16_t)i, false, now + 5000,
			                                   out, sizeof(out), &flags);
		double hot_ns = (ns_now() - a) / iters;
		free(order);
		printf("hit (random keys)  %.1f ns/lookup over %u lookups, one thread\n", hit_ns,
		       iters);
		printf("hit (one hot key)  %.1f ns/lookup\n", hot_ns);
		printf("miss               %.1f ns/lookup\n", miss_ns);

		/* What each read side costs alone, uncontended (one thread, L1-hot lock). */
		struct model_lock one;
		pthread_mutex_init(&one.m, NULL);
		pthread_spin_init(&one.s, PTHREAD_PROCESS_PRIVATE);
		pthread_rwlock_init(&one.rw, NULL);
		atomic_init(&one.seq, 0);
		const unsigned reps = 10000000;
		printf("read side alone    ");
		for (unsigned sy = 0; sy < SYNC_N; sy++) {
			a = ns_now();
			for (unsigned i = 0; i < reps; i++) {
				if (sy == SYNC_RCU) {
					urcu_bp_read_lock();
					urcu_bp_read_unlock();
				} else if (sy == SYNC_SEQLOCK) {
					unsigned s0 =
					    atomic_load_explicit(&one.seq, memory_order_acquire);
					atomic_thread_fence(memory_order_acquire);
					sink += atomic_load_explicit(&one.seq,
					                             memory_order_relaxed) == s0;
				} else {
					model_read_lock((enum sync)sy, &one);
					model_read_unlock((enum sync)sy, &one);
				}
			}
			printf("%s %.1f ns%s", sync_name[sy], (ns_now() - a) / reps,
			       sy + 1 < SYNC_N ? ", " : "\n");
		}
	}

	/* ---- threads ---- */
	n_locks = 1;
	while (n_locks < 4 * max_threads)
		n_locks *= 2;
	locks = aligned_alloc(64, n_locks * sizeof(*locks));
	if (!locks)
		return 1;
	for (unsigned i = 0; i < n_locks; i++) {
		pthread_mutex_init(&locks[i].m, NULL);
		pthread_spin_init(&locks[i].s, PTHREAD_PROCESS_PRIVATE);
		pthread_rwlock_init(&locks[i].rw, NULL);
		atomic_init(&locks[i].seq, 0);
	}
	printf("\nlookups per second per thread (mean over threads; aggregate in brackets),\n"
	       "%u lookups per thread, best of %u runs, %s inserts, %u model locks%s\n",
	       iters, repeats, write_permille ? "with" : "no", n_locks,
	       (unsigned)cpus < max_threads ? "; MORE THREADS THAN CPUS: threads share cores" : "");
	if (write_permille)
		printf("(%u inserts per 1000 operations)\n", write_permille);
	printf("%-8s %-8s", "keys", "sync");
	for (unsigned t = 0; t < n_threads; t++)
		printf("  %9u thr%s", threads[t], threads[t] > 1 ? "s" : " ");
	printf("\n");
	struct run r = {.c = c,
	                .hit = hit,
	                .ans = ans,
	                .n = n,
	                .iters = iters,
	                .write_permille = write_permille,
	                .now = now + 5000};
	for (unsigned k = 0; k < 2; k++) {
		if (!want_keys[k])
			continue;
		for (unsigned sy = 0; sy < SYNC_N; sy++) {
			if (!want_sync[sy])
				continue;
			r.sync = (enum sync)sy;
			r.keys = (enum keys)k;
			printf("%-8s %-8s", k == KEYS_HOT ? "hot" : "uniform", sync_name[sy]);
			fflush(stdout);
			for (unsigned t = 0; t < n_threads; t++) {
				double agg = 0, per = 0;
				for (unsigned rp = 0; rp < repeats; rp++) {
					double a1;
					uint64_t retries;
					double p1 = run_threads(&r, threads[t], &a1, &retries);
					if (p1 < 0)
						return 1;
					if (p1 > per) {
						per = p1;
						agg = a1;
					}
				}
				printf("  %5.2fM (%5.2fM)", per / 1e6, agg / 1e6);
				fflush(stdout);
			}
			printf("\n");
		}
	}
	printf("(sink %" PRIu64 ")\n", sink);

	free(locks);
	free(ans);
	free(hit);
	free(miss);
	dns_cache_free(c);
	return 0;
}
