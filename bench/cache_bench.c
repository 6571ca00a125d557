/*
 * cache_bench: micro-benchmark of the DNS answer cache (src/dns/dns_cache.c).
 *
 * Inserts N typical answers (60-120 bytes, 1-3 A records, some with a TXT
 * pad), then times lookups that hit (keys in random order and random letter
 * case, so the table and entries are not all in L1) and lookups that miss,
 * and prints the exact memory charged per entry.
 *
 * Usage: cache_bench [entries (100000)] [lookups (5000000)]
 * Single-threaded, like the cache itself. Not a test: the numbers depend on
 * the machine; bench/README.md records what was measured.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/wire.h"
#include "dns/dns_cache.h"

struct item {
	uint8_t name[32];
	uint8_t qname_len;
};

static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint32_t rnd(void)
{
	/* xorshift64*: deterministic, so runs are comparable */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
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

int main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100000;
	unsigned iters = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 5000000;
	if (n == 0 || n > 10000000 || iters == 0)
		return 2;

	struct dns_cache_conf conf = DNS_CACHE_CONF_DEFAULT;
	/* ~200 B per entry: nearly full (realistic table share) but no eviction during the run */
	conf.size = (size_t)n * 200 + (1u << 20);
	struct dns_cache *c;
	if (dns_cache_new(&conf, 0x9e3779b97f4a7c15ull, &c) < 0)
		return 1;

	struct item *hit = calloc(n, sizeof(*hit));
	struct item *miss = calloc(n, sizeof(*miss));
	if (!hit || !miss)
		return 1;
	struct pending {
		uint8_t ans[128];
		uint16_t off[4];
		uint8_t len, n_ttl;
	} *pend = calloc(n, sizeof(*pend));
	if (!pend)
		return 1;
	const uint64_t now = 1000000;
	double t0 = ns_now();
	size_t min_len = SIZE_MAX, max_len = 0;
	for (unsigned i = 0; i < n; i++) {
		unsigned n_ttl;
		make_name(&hit[i], 'h', i);
		make_name(&miss[i], 'm', i);
		size_t len =
		    make_answer(&hit[i], pend[i].ans, sizeof(pend[i].ans), pend[i].off, &n_ttl);
		if (len == 0 || n_ttl > 4)
			return 1;
		pend[i].len = (uint8_t)len;
		pend[i].n_ttl = (uint8_t)n_ttl;
		min_len = len < min_len ? len : min_len;
		max_len = len > max_len ? len : max_len;
	}
	/* Timed alone: answers were built above. */
	double a = ns_now();
	for (unsigned i = 0; i < n; i++) {
		struct dns_cache_key k = {
		    .qname = hit[i].name, .qname_len = hit[i].qname_len, .qtype = 1, .qclass = 1};
		int rc = dns_cache_insert(c, &k, pend[i].ans, pend[i].len, pend[i].off,
		                          pend[i].n_ttl, DNS_CACHE_POSITIVE, 0, now);
		if (rc != 1) {
			fprintf(stderr, "insert %u: %d\n", i, rc);
			return 1;
		}
	}
	double ins_ns = ns_now() - a;
	free(pend);
	for (unsigned i = 0; i < n; i++)
		randomize_case(hit[i].name, hit[i].qname_len);
	double setup_s = (ns_now() - t0) / 1e9;

	/* Random visiting order, prepared before timing. */
	uint32_t *order = malloc((size_t)iters * sizeof(*order));
	if (!order)
		return 1;
	for (unsigned i = 0; i < iters; i++)
		order[i] = rnd() % n;

	uint8_t out[512];
	unsigned flags;
	uint64_t sink = 0;
	a = ns_now();
	for (unsigned i = 0; i < iters; i++) {
		const struct item *it = &hit[order[i]];
		struct dns_cache_key k = {
		    .qname = it->name, .qname_len = it->qname_len, .qtype = 1, .qclass = 1};
		int rc = dns_cache_lookup(c, &k, (uint16_t)i, false, now + 5000, out, sizeof(out),
		                          &flags);
		if (rc < 0) {
			fprintf(stderr, "unexpected miss: %d\n", rc);
			return 1;
		}
		sink += out[rc - 1];
	}
	double hit_ns = (ns_now() - a) / iters;

	a = ns_now();
	for (unsigned i = 0; i < iters; i++) {
		const struct item *it = &miss[order[i]];
		struct dns_cache_key k = {
		    .qname = it->name, .qname_len = it->qname_len, .qtype = 1, .qclass = 1};
		int rc = dns_cache_lookup(c, &k, (uint16_t)i, false, now + 5000, out, sizeof(out),
		                          &flags);
		if (rc != -ENOENT)
			return 1;
		sink += (uint64_t)-rc;
	}
	double miss_ns = (ns_now() - a) / iters;

	/* One hot key, the best case: everything in L1. */
	a = ns_now();
	struct dns_cache_key hk = {
	    .qname = hit[0].name, .qname_len = hit[0].qname_len, .qtype = 1, .qclass = 1};
	for (unsigned i = 0; i < iters; i++)
		sink += (uint64_t)dns_cache_lookup(c, &hk, (uint16_t)i, false, now + 5000, out,
		                                   sizeof(out), &flags);
	double hot_ns = (ns_now() - a) / iters;

	struct dns_cache_stats stv;
	dns_cache_stats(c, &stv);
	const struct dns_cache_stats *st = &stv;
	if (st->evictions || st->entries != n) {
		fprintf(stderr, "cache too small: %" PRIu64 " evictions\n", st->evictions);
		return 1;
	}
	size_t entry_bytes = st->bytes - st->table_bytes;
	printf("entries            %zu (answers %zu..%zu bytes, mean %.1f)\n", st->entries, min_len,
	       max_len, (double)st->answer_bytes / (double)st->entries);
	printf("insert             %.1f ns/insert (setup total %.2f s)\n", ins_ns / n, setup_s);
	printf("hit (random keys)  %.1f ns/lookup over %u lookups\n", hit_ns, iters);
	printf("hit (one hot key)  %.1f ns/lookup\n", hot_ns);
	printf("miss               %.1f ns/lookup\n", miss_ns);
	printf(
	    "overhead/entry     %.2f bytes beyond the answer (header, TTL table, malloc slack)\n",
	    (double)(entry_bytes - st->answer_bytes) / (double)st->entries);
	printf("table/entry        %.2f bytes (hash table + cache struct: %zu bytes)\n",
	       (double)st->table_bytes / (double)st->entries, st->table_bytes);
	printf("total/entry        %.2f bytes charged per entry, answer included\n",
	       (double)st->bytes / (double)st->entries);
	printf("examples           overhead(60 B, 1 TTL) = %zu, overhead(120 B, 3 TTL) = %zu\n",
	       dns_cache_entry_overhead(60, 1), dns_cache_entry_overhead(120, 3));
	printf("(sink %" PRIu64 ")\n", sink);

	free(order);
	free(hit);
	free(miss);
	dns_cache_free(c);
	return 0;
}
