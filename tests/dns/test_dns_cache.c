/*
 * Unit tests for the answer cache (src/dns/dns_cache.c). Time is stepped by
 * hand: every call takes now_ms, nothing reads a clock. Answers are built by
 * hand here (known TTL offsets), plus one captured upstream answer.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/wire.h"
#include "dns/dns_cache.h"
#include "dns_test_answer.h"

#define T0  1000000u /* an arbitrary monotonic start, in ms */
#define SEC 1000u

/* Wire names; sizeof() includes the trailing NUL, which is the root label. */
#define NAME(s) ((const uint8_t *)(s)), ((uint16_t)sizeof(s))
static const uint8_t www_lc[] = "\3www\7example\4test";
static const uint8_t www_mixed[] = "\3WwW\7ExAmple\4TEST";
static const uint8_t www_upper[] = "\3WWW\7EXAMPLE\4TEST";

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static struct dns_cache_key key_of(const uint8_t *qname, uint16_t qlen, uint16_t qtype)
{
	struct dns_cache_key k = {.qname = qname, .qname_len = qlen, .qtype = qtype, .qclass = 1};
	return k;
}

static struct dns_cache *mk(struct dns_cache_conf conf)
{
	struct dns_cache *c = NULL;
	cr_assert_eq(dns_cache_new(&conf, 0x1234567890abcdefull, &c), 0);
	cr_assert_not_null(c);
	return c;
}

/* A snapshot of the writers' counters (dns_cache_stats sums the shards). */
static struct dns_cache_stats stats_of(struct dns_cache *c)
{
	struct dns_cache_stats st;
	dns_cache_stats(c, &st);
	return st;
}
#define ST(c) (stats_of(c))

static struct dns_cache_conf defconf(void)
{
	struct dns_cache_conf conf = DNS_CACHE_CONF_DEFAULT;
	conf.size = 1u << 20;
	return conf;
}

/* One A answer for www.example.test with the given TTL, question in `case`. */
static void a_answer(struct ans *a, const uint8_t *qname, uint16_t qlen, uint32_t ttl, uint8_t last)
{
	const uint8_t ip[4] = {192, 0, 2, last};
	ans_begin(a, 0x1111, 0, qname, qlen, 1, 1, 1, 0);
	ans_rr(a, 1, ttl, ip, 4);
}

static int lookup(struct dns_cache *c, const struct dns_cache_key *k, bool stale, uint64_t now,
                  uint8_t *out, unsigned *flags)
{
	return dns_cache_lookup(c, k, 0xbeef, stale, now, out, 1024, flags);
}

Test(dns_cache, hit_is_identical_except_id_case_and_ttl)
{
	struct dns_cache *c = mk(defconf());
	struct ans a;
	a_answer(&a, NAME(www_mixed), 300, 7);
	struct dns_cache_key k = key_of(NAME(www_mixed), 1);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);

	uint8_t out[1024];
	unsigned fl;
	struct dns_cache_key q = key_of(NAME(www_upper), 1);
	int n = lookup(c, &q, false, T0 + 2 * SEC + 500, out, &fl);
	cr_assert_eq(n, (int)a.len);
	cr_assert_eq(fl, DNS_CACHE_F_FRESH);
	cr_assert_eq(out[0], 0xbe);
	cr_assert_eq(out[1], 0xef);
	cr_assert_arr_eq(out + 12, www_upper, sizeof(www_upper), "client's case must come back");
	cr_assert_eq(rd32(out + a.off[0]), 298);
	for (size_t i = 2; i < a.len; i++) {
		if (i >= 12 && i < 12 + sizeof(www_upper))
			continue;
		if (i >= a.off[0] && i < a.off[0] + 4u)
			continue;
		cr_assert_eq(out[i], a.b[i], "byte %zu differs", i);
	}
	cr_assert_eq(ST(c).inserts, 1);
	cr_assert_eq(ST(c).entries, 1);
	dns_cache_free(c);
}

Test(dns_cache, ttls_age_each_on_their_own)
{
	struct dns_cache *c = mk(defconf());
	struct ans a;
	const uint8_t ip[4] = {192, 0, 2, 1};
	ans_begin(&a, 1, 0, NAME(www_lc), 1, 1, 3, 0);
	ans_rr(&a, 1, 300, ip, 4);
	ans_rr(&a, 1, 60, ip, 4);
	ans_rr(&a, 1, 3600, ip, 4);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);

	uint8_t out[1024];
	unsigned fl;
	cr_assert_eq(lookup(c, &k, false, T0 + 10 * SEC, out, &fl), (int)a.len);
	cr_assert_eq(rd32(out + a.off[0]), 290);
	cr_assert_eq(rd32(out + a.off[1]), 50);
	cr_assert_eq(rd32(out + a.off[2]), 3590);
	/* Partial seconds round the age down: never a TTL longer than the truth plus <1 s. */
	cr_assert_eq(lookup(c, &k, false, T0 + 10 * SEC + 999, out, &fl), (int)a.len);
	cr_assert_eq(rd32(out + a.off[1]), 50);
	/* The entry lives as long as its shortest RR: 60 s. */
	cr_assert_eq(lookup(c, &k, false, T0 + 59 * SEC + 999, out, &fl), (int)a.len);
	cr_assert_eq(rd32(out + a.off[1]), 1);
	cr_assert_eq(rd32(out + a.off[0]), 241);
	cr_assert_eq(lookup(c, &k, false, T0 + 60 * SEC, out, &fl), -ENOENT);
	dns_cache_free(c);
}

Test(dns_cache, min_ttl_raises_and_max_ttl_lowers)
{
	struct dns_cache_conf conf = defconf();
	conf.min_ttl_s = 60;
	conf.max_ttl_s = 300;
	struct dns_cache *c = mk(conf);
	uint8_t out[1024];
	unsigned fl;

	struct ans lo;
	a_answer(&lo, NAME(www_lc), 10, 1);
	struct dns_cache_key klo = key_of(NAME(www_lc), 1);
	cr_assert_eq(
	    dns_cache_insert(c, &klo, lo.b, lo.len, lo.off, lo.n, DNS_CACHE_POSITIVE, 0, T0), 1);
	cr_assert_eq(lookup(c, &klo, false, T0, out, &fl), (int)lo.len);
	cr_assert_eq(rd32(out + lo.off[0]), 60);
	cr_assert_eq(lookup(c, &klo, false, T0 + 30 * SEC, out, &fl), (int)lo.len,
	             "raised to 60 s");
	cr_assert_eq(rd32(out + lo.off[0]), 30);
	cr_assert_eq(lookup(c, &klo, false, T0 + 60 * SEC, out, &fl), -ENOENT);

	struct ans hi;
	a_answer(&hi, NAME(www_lc), 86400, 2);
	struct dns_cache_key khi = key_of(NAME(www_lc), 28); /* another key: AAAA slot */
	hi.b[12 + sizeof(www_lc) + 1] = 28;
	cr_assert_eq(
	    dns_cache_insert(c, &khi, hi.b, hi.len, hi.off, hi.n, DNS_CACHE_POSITIVE, 0, T0), 1);
	cr_assert_eq(lookup(c, &khi, false, T0, out, &fl), (int)hi.len);
	cr_assert_eq(rd32(out + hi.off[0]), 300, "clamped TTL, not the upstream's 86400");
	cr_assert_eq(lookup(c, &khi, false, T0 + 100 * SEC, out, &fl), (int)hi.len);
	cr_assert_eq(rd32(out + hi.off[0]), 200);
	cr_assert_eq(lookup(c, &khi, false, T0 + 300 * SEC, out, &fl), -ENOENT);
	dns_cache_free(c);
}

/* NXDOMAIN with the zone's SOA in authority: SOA TTL 3600, MINIMUM 900. */
static void nx_answer(struct ans *a, uint8_t rcode)
{
	struct wbuf r;
	uint8_t soa[64];
	r = wbuf_init(soa, sizeof(soa));
	wbuf_u16(&r, 0xc00c); /* mname, rname: pointers, enough for the cache */
	wbuf_u16(&r, 0xc00c);
	wbuf_u32(&r, 2024010101);
	wbuf_u32(&r, 7200);
	wbuf_u32(&r, 3600);
	wbuf_u32(&r, 1209600);
	wbuf_u32(&r, 900);
	ans_begin(a, 7, rcode, NAME(www_lc), 1, 1, 0, 1);
	ans_rr(a, 6, 3600, soa, (uint16_t)r.off);
}

Test(dns_cache, negative_uses_soa_min_capped_by_negative_ttl)
{
	struct dns_cache_conf conf = defconf();
	conf.negative_ttl_s = 600;
	struct dns_cache *c = mk(conf);
	uint8_t out[1024];
	unsigned fl;
	struct ans a;
	nx_answer(&a, 3);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	/* The caller passes min(SOA TTL 3600, MINIMUM 900) = 900; the cap 600 wins. */
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_NXDOMAIN, 900, T0),
	             1);
	cr_assert_eq(lookup(c, &k, false, T0, out, &fl), (int)a.len);
	cr_assert_eq(rd32(out + a.off[0]), 600, "SOA TTL is the negative lifetime (RFC 2308 §3)");
	cr_assert_eq(out[3] & 0x0f, 3);
	cr_assert_eq(lookup(c, &k, false, T0 + 599 * SEC + 999, out, &fl), (int)a.len);
	cr_assert_eq(rd32(out + a.off[0]), 1);
	cr_assert_eq(lookup(c, &k, false, T0 + 600 * SEC, out, &fl), -ENOENT);
	dns_cache_free(c);

	/* Below the cap: the SOA MINIMUM (900) rules, not the SOA TTL (3600). */
	conf.negative_ttl_s = 10800;
	c = mk(conf);
	struct ans nd;
	nx_answer(&nd, 0);
	cr_assert_eq(dns_cache_insert(c, &k, nd.b, nd.len, nd.off, nd.n, DNS_CACHE_NODATA, 900, T0),
	             1);
	cr_assert_eq(lookup(c, &k, false, T0 + 100 * SEC, out, &fl), (int)nd.len);
	cr_assert_eq(rd32(out + nd.off[0]), 800);
	cr_assert_eq(lookup(c, &k, false, T0 + 899 * SEC, out, &fl), (int)nd.len);
	cr_assert_eq(lookup(c, &k, false, T0 + 900 * SEC, out, &fl), -ENOENT);
	dns_cache_free(c);
}

Test(dns_cache, servfail_lives_a_few_seconds_and_is_never_stale)
{
	struct dns_cache *c = mk(defconf()); /* servfail 5 s, stale window 1 day */
	uint8_t out[1024];
	unsigned fl;
	struct ans a;
	ans_begin(&a, 9, 2, NAME(www_lc), 1, 1, 0, 0);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, NULL, 0, DNS_CACHE_SERVFAIL, 0, T0), 1);
	cr_assert_eq(lookup(c, &k, false, T0 + 4 * SEC + 999, out, &fl), (int)a.len);
	cr_assert_eq(fl, DNS_CACHE_F_FRESH, "no prefetch for a cached failure");
	cr_assert_eq(lookup(c, &k, true, T0 + 5 * SEC, out, &fl), -ENOENT);
	cr_assert_eq(ST(c).entries, 0, "a dead failure is reclaimed on sight");
	dns_cache_free(c);

	/* RFC 9520 §3.2 bounds: [1 s, 5 min]. */
	struct dns_cache_conf conf = defconf();
	conf.servfail_ttl_s = 0;
	c = mk(conf);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, NULL, 0, DNS_CACHE_SERVFAIL, 0, T0), 1);
	cr_assert_eq(lookup(c, &k, false, T0 + 999, out, &fl), (int)a.len);
	cr_assert_eq(lookup(c, &k, false, T0 + SEC, out, &fl), -ENOENT);
	dns_cache_free(c);
	conf.servfail_ttl_s = 100000;
	c = mk(conf);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, NULL, 0, DNS_CACHE_SERVFAIL, 0, T0), 1);
	cr_assert_eq(lookup(c, &k, false, T0 + 299 * SEC, out, &fl), (int)a.len);
	cr_assert_eq(lookup(c, &k, false, T0 + 300 * SEC, out, &fl), -ENOENT);
	dns_cache_free(c);
}

Test(dns_cache, expired_is_miss_unless_stale_allowed_within_window)
{
	struct dns_cache_conf conf = defconf();
	conf.stale_window_s = 100;
	struct dns_cache *c = mk(conf);
	uint8_t out[1024];
	unsigned fl;
	struct ans a;
	const uint8_t ip[4] = {192, 0, 2, 9};
	ans_begin(&a, 1, 0, NAME(www_lc), 1, 1, 2, 0);
	ans_rr(&a, 1, 60, ip, 4);
	ans_rr(&a, 1, 3600, ip, 4);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);

	cr_assert_eq(lookup(c, &k, false, T0 + 60 * SEC, out, &fl), -ENOENT);
	cr_assert_eq(fl, 0);
	cr_assert_eq(ST(c).entries, 1, "kept for serve-stale");
	cr_assert_eq(lookup(c, &k, true, T0 + 60 * SEC, out, &fl), (int)a.len);
	cr_assert_eq(fl, DNS_CACHE_F_STALE);
	cr_assert_eq(rd32(out + a.off[0]), 30, "RFC 8767 §4");
	cr_assert_eq(rd32(out + a.off[1]), 30);
	cr_assert_eq(lookup(c, &k, true, T0 + 159 * SEC + 999, out, &fl), (int)a.len);
	cr_assert_eq(fl, DNS_CACHE_F_STALE);
	cr_assert_eq(lookup(c, &k, true, T0 + 160 * SEC, out, &fl), -ENOENT);
	cr_assert_eq(ST(c).entries, 0, "beyond the window: reclaimed lazily");
	cr_assert_eq(ST(c).reclaimed, 1);
	dns_cache_free(c);
}

Test(dns_cache, prefetch_only_in_last_tenth_and_only_once)
{
	struct dns_cache *c = mk(defconf());
	uint8_t out[1024];
	unsigned fl;
	struct ans a;
	a_answer(&a, NAME(www_lc), 100, 1);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);
	cr_assert_eq(lookup(c, &k, false, T0 + 89 * SEC + 999, out, &fl), (int)a.len);
	cr_assert_eq(fl, DNS_CACHE_F_FRESH);
	cr_assert_eq(lookup(c, &k, false, T0 + 90 * SEC, out, &fl), (int)a.len);
	cr_assert_eq(fl, DNS_CACHE_F_FRESH | DNS_CACHE_F_PREFETCH);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(lookup(c, &k, false, T0 + 95 * SEC + i, out, &fl), (int)a.len);
		cr_assert_eq(fl, DNS_CACHE_F_FRESH, "only the first late hit asks for a refresh");
	}

	/* The refresh is a new entry: its own last tenth signals again. */
	cr_assert_eq(
	    dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0 + 96 * SEC),
	    1);
	cr_assert_eq(lookup(c, &k, false, T0 + 97 * SEC, out, &fl), (int)a.len);
	cr_assert_eq(fl, DNS_CACHE_F_FRESH);
	cr_assert_eq(rd32(out + a.off[0]), 99);
	cr_assert_eq(lookup(c, &k, false, T0 + 186 * SEC, out, &fl), (int)a.len);
	cr_assert_eq(fl, DNS_CACHE_F_FRESH | DNS_CACHE_F_PREFETCH);
	dns_cache_free(c);
}

/* "\6nNNNNN\4test" for i: all names the same length, so all entries cost the same. */
static void name_of(unsigned i, uint8_t name[13])
{
	char tmp[8];
	snprintf(tmp, sizeof(tmp), "n%05u", i % 100000u);
	name[0] = 6;
	memcpy(name + 1, tmp, 6);
	memcpy(name + 7, "\4test", 6);
}

static int insert_i(struct dns_cache *c, unsigned i, uint64_t now)
{
	uint8_t name[13];
	name_of(i, name);
	struct ans a;
	a_answer(&a, name, sizeof(name), 3600, (uint8_t)i);
	struct dns_cache_key k = key_of(name, sizeof(name), 1);
	return dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, now);
}

static int lookup_i(struct dns_cache *c, unsigned i, uint64_t now)
{
	uint8_t name[13], out[1024];
	unsigned fl;
	name_of(i, name);
	struct dns_cache_key k = key_of(name, sizeof(name), 1);
	return lookup(c, &k, false, now, out, &fl);
}

Test(dns_cache, size_bound_holds_under_heavy_insertion)
{
	struct dns_cache_conf conf = defconf();
	conf.size = 64 * 1024;
	struct dns_cache *c = mk(conf);
	size_t max_entries = 0;
	for (unsigned i = 0; i < 100000; i++) {
		cr_assert_eq(insert_i(c, i, T0 + i), 1);
		cr_assert_leq(ST(c).bytes, conf.size, "bound broken at insert %u", i);
		if (ST(c).entries > max_entries)
			max_entries = ST(c).entries;
	}
	cr_assert_eq(ST(c).inserts, 100000);
	cr_assert_eq(ST(c).inserts - ST(c).evictions - ST(c).reclaimed - ST(c).replaced,
	             ST(c).entries);
	cr_assert_gt(max_entries, 300, "64 KiB must hold hundreds of ~50-byte answers");
	/* The newest entry is always there, the first long gone. */
	cr_assert_gt(lookup_i(c, 99999, T0 + 100000), 0);
	cr_assert_eq(lookup_i(c, 0, T0 + 100000), -ENOENT);
	dns_cache_free(c);
}

Test(dns_cache, clock_evicts_cold_before_hot)
{
	struct dns_cache_conf conf = defconf();
	conf.size = 64 * 1024;
	struct dns_cache *c = mk(conf);
	/* Fill to the brim: all entries cost the same, so the capacity is known exactly. */
	cr_assert_eq(insert_i(c, 0, T0), 1);
	size_t per = ST(c).bytes - ST(c).table_bytes;
	unsigned cap = (unsigned)((conf.size - ST(c).table_bytes) / per);
	for (unsigned i = 1; i < cap; i++)
		cr_assert_eq(insert_i(c, i, T0), 1);
	cr_assert_eq(ST(c).evictions, 0);
	cr_assert_gt(cap, 100);

	unsigned hot = cap / 2;
	for (unsigned i = 0; i < hot; i++)
		cr_assert_gt(lookup_i(c, i, T0 + SEC), 0);
	unsigned fresh = cap / 4;
	for (unsigned i = 0; i < fresh; i++)
		cr_assert_eq(insert_i(c, cap + i, T0 + 2 * SEC), 1);
	cr_assert_geq(ST(c).evictions, fresh - 1);

	for (unsigned i = 0; i < hot; i++)
		cr_assert_gt(lookup_i(c, i, T0 + 3 * SEC), 0, "hot entry %u was evicted", i);
	unsigned cold_gone = 0;
	for (unsigned i = hot; i < cap; i++)
		cold_gone += lookup_i(c, i, T0 + 3 * SEC) == -ENOENT;
	cr_assert_eq(cold_gone, ST(c).evictions, "every eviction hit a cold entry");
	for (unsigned i = 0; i < fresh; i++)
		cr_assert_gt(lookup_i(c, cap + i, T0 + 3 * SEC), 0, "new entry %u evicted", i);
	dns_cache_free(c);
}

Test(dns_cache, key_covers_type_class_do_cd_and_ignores_case)
{
	struct dns_cache *c = mk(defconf());
	uint8_t out[1024];
	unsigned fl;
	struct ans a;
	a_answer(&a, NAME(www_lc), 300, 1);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);

	struct dns_cache_key q = key_of(NAME(www_mixed), 1);
	cr_assert_eq(lookup(c, &q, false, T0, out, &fl), (int)a.len);
	q.qtype = 28;
	cr_assert_eq(lookup(c, &q, false, T0, out, &fl), -ENOENT);
	q.qtype = 1;
	q.qclass = 3;
	cr_assert_eq(lookup(c, &q, false, T0, out, &fl), -ENOENT);
	q.qclass = 1;
	q.do_bit = true;
	cr_assert_eq(lookup(c, &q, false, T0, out, &fl), -ENOENT);
	q.do_bit = false;
	q.cd_bit = true;
	cr_assert_eq(lookup(c, &q, false, T0, out, &fl), -ENOENT);
	const uint8_t other[] = "\3wwx\7example\4test";
	struct dns_cache_key o = key_of(NAME(other), 1);
	cr_assert_eq(lookup(c, &o, false, T0, out, &fl), -ENOENT);

	/* A DO answer is its own entry; both coexist and each returns its own bytes. */
	struct ans d;
	a_answer(&d, NAME(www_upper), 300, 2);
	struct dns_cache_key kd = key_of(NAME(www_upper), 1);
	kd.do_bit = true;
	cr_assert_eq(dns_cache_insert(c, &kd, d.b, d.len, d.off, d.n, DNS_CACHE_POSITIVE, 0, T0),
	             1);
	cr_assert_eq(ST(c).entries, 2);
	q.cd_bit = false;
	q.do_bit = true;
	cr_assert_eq(lookup(c, &q, false, T0, out, &fl), (int)d.len);
	cr_assert_eq(out[d.len - 1], 2);
	q.do_bit = false;
	cr_assert_eq(lookup(c, &q, false, T0, out, &fl), (int)a.len);
	cr_assert_eq(out[a.len - 1], 1);

	/* qtype 65 (HTTPS) has a 0x41 ('A') byte: only the name folds case. */
	struct ans h;
	a_answer(&h, NAME(www_lc), 300, 3);
	h.b[12 + sizeof(www_lc) + 1] = 65;
	struct dns_cache_key kh = key_of(NAME(www_lc), 65);
	cr_assert_eq(dns_cache_insert(c, &kh, h.b, h.len, h.off, h.n, DNS_CACHE_POSITIVE, 0, T0),
	             1);
	cr_assert_eq(lookup(c, &kh, false, T0, out, &fl), (int)h.len);
	dns_cache_free(c);
}

Test(dns_cache, short_output_buffer_is_emsgsize_and_untouched)
{
	struct dns_cache *c = mk(defconf());
	struct ans a;
	a_answer(&a, NAME(www_lc), 300, 1);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);
	uint8_t out[1024];
	memset(out, 0xaa, sizeof(out));
	unsigned fl = 99;
	cr_assert_eq(dns_cache_lookup(c, &k, 1, false, T0, out, a.len - 1, &fl), -EMSGSIZE);
	for (size_t i = 0; i < sizeof(out); i++)
		cr_assert_eq(out[i], 0xaa, "byte %zu written", i);
	cr_assert_eq(dns_cache_lookup(c, &k, 1, false, T0 + SEC, out, a.len, &fl), (int)a.len);
	cr_assert_eq(rd32(out + a.off[0]), 299, "the entry survived intact");
	cr_assert_eq(out[a.len], 0xaa);
	dns_cache_free(c);
}

Test(dns_cache, insert_replaces_and_frees_the_old_value)
{
	struct dns_cache *c = mk(defconf());
	uint8_t out[1024];
	unsigned fl;
	struct ans a, b;
	a_answer(&a, NAME(www_lc), 300, 1);
	a_answer(&b, NAME(www_mixed), 600, 2);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);
	size_t one = ST(c).bytes;
	cr_assert_eq(
	    dns_cache_insert(c, &k, b.b, b.len, b.off, b.n, DNS_CACHE_POSITIVE, 0, T0 + 10 * SEC),
	    1);
	cr_assert_eq(ST(c).entries, 1);
	cr_assert_eq(ST(c).replaced, 1);
	cr_assert_eq(ST(c).bytes, one);
	cr_assert_eq(lookup(c, &k, false, T0 + 20 * SEC, out, &fl), (int)b.len);
	cr_assert_eq(out[b.len - 1], 2);
	cr_assert_eq(rd32(out + b.off[0]), 590);

	/* TTL 0 upstream: "do not cache"; the older answer goes too. */
	struct ans z;
	a_answer(&z, NAME(www_lc), 0, 3);
	cr_assert_eq(dns_cache_insert(c, &k, z.b, z.len, z.off, z.n, DNS_CACHE_POSITIVE, 0, T0), 0);
	cr_assert_eq(ST(c).entries, 0);
	cr_assert_eq(ST(c).bytes, ST(c).table_bytes);
	dns_cache_free(c);
}

Test(dns_cache, rejects_answers_that_do_not_match_or_bad_offsets)
{
	struct dns_cache *c = mk(defconf());
	struct ans a;
	a_answer(&a, NAME(www_lc), 300, 1);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	const uint8_t other[] = "\3wwx\7example\4test";
	struct dns_cache_key ko = key_of(NAME(other), 1);
	cr_assert_eq(dns_cache_insert(c, &ko, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0),
	             -EINVAL);
	struct dns_cache_key kt = key_of(NAME(www_lc), 28);
	cr_assert_eq(dns_cache_insert(c, &kt, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0),
	             -EINVAL);

	uint16_t in_question = 20, past_end = (uint16_t)(a.len - 3);
	cr_assert_eq(
	    dns_cache_insert(c, &k, a.b, a.len, &in_question, 1, DNS_CACHE_POSITIVE, 0, T0),
	    -EINVAL);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, &past_end, 1, DNS_CACHE_POSITIVE, 0, T0),
	             -EINVAL);
	uint16_t many[8] = {a.off[0], a.off[0], a.off[0], a.off[0],
	                    a.off[0], a.off[0], a.off[0], a.off[0]};
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, many, 8, DNS_CACHE_POSITIVE, 0, T0),
	             -EINVAL, "more TTLs than the bytes could hold RRs");
	cr_assert_eq(dns_cache_insert(c, &k, a.b, 20, a.off, 0, DNS_CACHE_NXDOMAIN, 60, T0),
	             -EINVAL, "truncated question");
	uint8_t query[1024];
	memcpy(query, a.b, a.len);
	query[2] &= 0x7f; /* QR clear: not a response */
	cr_assert_eq(dns_cache_insert(c, &k, query, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0),
	             -EINVAL);
	struct dns_cache_key kbad = key_of(www_lc, 0, 1); /* empty name */
	cr_assert_eq(dns_cache_insert(c, &kbad, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0),
	             -EINVAL);

	/* RFC 2181 §8: a TTL with the top bit set is 0, so not cached. */
	struct ans neg;
	a_answer(&neg, NAME(www_lc), 0x80000010u, 1);
	cr_assert_eq(
	    dns_cache_insert(c, &k, neg.b, neg.len, neg.off, neg.n, DNS_CACHE_POSITIVE, 0, T0), 0);
	cr_assert_eq(ST(c).entries, 0);
	dns_cache_free(c);

	struct dns_cache_conf conf = defconf();
	conf.min_ttl_s = 10;
	conf.max_ttl_s = 5;
	struct dns_cache *bad = NULL;
	cr_assert_eq(dns_cache_new(&conf, 1, &bad), -EINVAL);
	conf = defconf();
	conf.size = 100;
	cr_assert_eq(dns_cache_new(&conf, 1, &bad), -EINVAL);
	cr_assert_null(bad);
}

Test(dns_cache, sweep_reclaims_dead_entries_within_budget)
{
	struct dns_cache_conf conf = defconf();
	conf.stale_window_s = 10;
	struct dns_cache *c = mk(conf);
	for (unsigned i = 0; i < 10; i++) {
		uint8_t name[13];
		name_of(i, name);
		struct ans a;
		a_answer(&a, name, sizeof(name), i < 6 ? 1 : 3600, 1);
		struct dns_cache_key k = key_of(name, sizeof(name), 1);
		cr_assert_eq(
		    dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);
	}
	cr_assert_eq(dns_cache_sweep(c, T0 + 10 * SEC, 100), 0, "still inside the stale window");
	unsigned freed = dns_cache_sweep(c, T0 + 11 * SEC, 3);
	cr_assert_leq(freed, 3);
	freed += dns_cache_sweep(c, T0 + 11 * SEC, 100);
	cr_assert_eq(freed, 6);
	cr_assert_eq(ST(c).entries, 4);
	cr_assert_eq(ST(c).reclaimed, 6);
	for (unsigned i = 6; i < 10; i++)
		cr_assert_gt(lookup_i(c, i, T0 + 11 * SEC), 0);
	dns_cache_free(c);
}

Test(dns_cache, overhead_is_measured_and_under_150_bytes)
{
	struct dns_cache *c = mk(defconf());
	for (unsigned i = 0; i < 1000; i++)
		cr_assert_eq(insert_i(c, i, T0), 1);
	size_t ans_len = ST(c).answer_bytes / ST(c).entries;
	size_t per_entry = (ST(c).bytes - ST(c).table_bytes) / ST(c).entries;
	cr_assert_eq((ST(c).bytes - ST(c).table_bytes) % ST(c).entries, 0);
	cr_assert_eq(per_entry - ans_len, dns_cache_entry_overhead(ans_len, 1),
	             "the charged bytes are what the header says");
	cr_assert_leq(dns_cache_entry_overhead(ans_len, 1), 150);
	cr_assert_leq(dns_cache_entry_overhead(100, 3), 150);
	dns_cache_free(c);
}

/* A real upstream answer (unbound, www.example.test A, TTL 3600 at offset 40). */
Test(dns_cache, captured_unbound_answer_round_trips)
{
	const char *dir = getenv("ANYCACHE_VECTORS");
	cr_assert_not_null(dir, "ANYCACHE_VECTORS not set");
	char path[512];
	snprintf(path, sizeof(path), "%s/dns/010-unbound-response-www-a-noedns.bin", dir);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	uint8_t msg[512];
	size_t len = fread(msg, 1, sizeof(msg), f);
	fclose(f);
	cr_assert_eq(len, 50);
	cr_assert_eq(rd32(msg + 40), 3600);

	struct dns_cache *c = mk(defconf());
	uint16_t off = 40;
	struct dns_cache_key k = key_of(NAME(www_upper), 1);
	cr_assert_eq(dns_cache_insert(c, &k, msg, len, &off, 1, DNS_CACHE_POSITIVE, 0, T0), 1);
	uint8_t out[512];
	unsigned fl;
	cr_assert_eq(dns_cache_lookup(c, &k, 0x569a, false, T0 + 600 * SEC, out, sizeof(out), &fl),
	             50);
	cr_assert_eq(rd32(out + 40), 3000);
	cr_assert_arr_eq(out + 12, www_upper, sizeof(www_upper));
	memcpy(out + 12, msg + 12, sizeof(www_upper));
	memcpy(out + 40, msg + 40, 4);
	cr_assert_arr_eq(out, msg, len);
	dns_cache_free(c);
}

/*
 * Every captured response the codec's scanner accepts goes through the cache:
 * offsets from dns_scan(), lookup at insertion time returns the same bytes
 * except the ID and each TTL, which reads its clamped value.
 */
#include <dirent.h>

#include "dns/dns_wire.h"

Test(dns_cache, captured_responses_scanned_by_codec_round_trip)
{
	const char *dir = getenv("ANYCACHE_VECTORS");
	cr_assert_not_null(dir);
	char path[512];
	snprintf(path, sizeof(path), "%s/dns", dir);
	DIR *d = opendir(path);
	cr_assert_not_null(d);
	struct dns_cache *c = mk(defconf());
	unsigned pos = 0, neg = 0;
	static struct dns_scan s;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strstr(de->d_name, "-response-") || !strstr(de->d_name, ".bin"))
			continue;
		snprintf(path, sizeof(path), "%s/dns/%s", dir, de->d_name);
		FILE *f = fopen(path, "rb");
		cr_assert_not_null(f);
		static uint8_t msg[65536], out[65536];
		size_t len = fread(msg, 1, sizeof(msg), f);
		fclose(f);
		if (dns_scan(msg, len, &s) < 0 || !s.has_question || s.qdcount != 1 || s.tc ||
		    s.opcode != 0)
			continue;
		enum dns_cache_kind kind;
		uint32_t hi;
		if (s.rcode == 0 && !s.negative && s.has_answer_ttl) {
			kind = DNS_CACHE_POSITIVE;
			hi = 86400;
		} else if ((s.rcode == 3 || (s.rcode == 0 && s.negative)) && s.has_soa) {
			kind = s.rcode == 3 ? DNS_CACHE_NXDOMAIN : DNS_CACHE_NODATA;
			hi = s.neg_ttl < 3600 ? s.neg_ttl : 3600;
		} else {
			continue;
		}
		cr_assert_eq(s.q_off, 12);
		struct dns_cache_key k = {.qname = msg + s.q_off,
		                          .qname_len = (uint16_t)s.qname_len,
		                          .qtype = s.qtype,
		                          .qclass = s.qclass,
		                          .do_bit = s.do_bit,
		                          .cd_bit = (s.flags & 0x0010) != 0};
		int rc = dns_cache_insert(c, &k, msg, len, s.ttl_off, (unsigned)s.n_ttl, kind,
		                          s.neg_ttl, T0);
		cr_assert_geq(rc, 0, "%s: insert %d", de->d_name, rc);
		if (rc == 0)
			continue; /* a zero TTL somewhere: not cacheable, by rule */
		unsigned fl;
		rc = dns_cache_lookup(c, &k, (uint16_t)~s.id, false, T0, out, sizeof(out), &fl);
		cr_assert_eq(rc, (int)len, "%s", de->d_name);
		cr_assert_eq(out[0], (uint8_t)(~s.id >> 8));
		cr_assert_eq(out[1], (uint8_t)~s.id);
		for (size_t i = 0; i < s.n_ttl; i++) {
			uint32_t t = rd32(msg + s.ttl_off[i]);
			t = (t & 0x80000000u) ? 0 : t > hi ? hi : t;
			cr_assert_eq(rd32(out + s.ttl_off[i]), t, "%s: RR %zu", de->d_name, i);
			memcpy(out + s.ttl_off[i], msg + s.ttl_off[i], 4);
		}
		out[0] = msg[0];
		out[1] = msg[1];
		cr_assert_arr_eq(out, msg, len, "%s: bytes differ beyond ID/TTL", de->d_name);
		kind == DNS_CACHE_POSITIVE ? pos++ : neg++;
	}
	closedir(d);
	cr_log_info("cached and round-tripped: %u positive, %u negative", pos, neg);
	cr_assert_gt(pos, 20, "only %u positive vectors cached", pos);
	cr_assert_gt(neg, 3, "only %u negative vectors cached", neg);
	dns_cache_free(c);
}

/* A caller's lowercased name (qname_lc) finds the same entry, and the hit still
 * carries the client's own letter case from qname. */
Test(dns_cache, precomputed_lowercase_name_is_used)
{
	struct dns_cache *c = mk(defconf());
	uint8_t out[1024];
	unsigned fl;
	struct ans a;
	a_answer(&a, NAME(www_lc), 300, 1);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);

	struct dns_cache_key q = key_of(NAME(www_mixed), 1);
	q.qname_lc = www_lc;
	cr_assert_eq(lookup(c, &q, false, T0, out, &fl), (int)a.len);
	cr_assert_arr_eq(out + 12, www_mixed, sizeof(www_mixed) - 1,
	                 "the client's case comes back");
	/* qname_lc is trusted as the key: a different lowercase name is a miss. */
	const uint8_t other[] = "\3wwx\7example\4test";
	q.qname_lc = other;
	cr_assert_eq(lookup(c, &q, false, T0, out, &fl), -ENOENT);
	dns_cache_free(c);
}

/* ---- operator flushes ---- */

static const uint8_t mail_lc[] = "\4mail\7example\4test";

static void put_a(struct dns_cache *c, const uint8_t *qname, uint16_t qlen, uint16_t qtype,
                  bool do_bit)
{
	struct ans a;
	const uint8_t rd[16] = {192, 0, 2, 1};
	ans_begin(&a, 1, 0, qname, qlen, qtype, 1, 1, 0);
	ans_rr(&a, qtype, 300, rd, qtype == 28 ? 16 : 4);
	struct dns_cache_key k = key_of(qname, qlen, qtype);
	k.do_bit = do_bit;
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);
}

Test(dns_cache, flush_name_takes_every_type_and_bit_of_that_name_only)
{
	struct dns_cache *c = mk(defconf());
	uint8_t out[1024];
	unsigned fl;

	put_a(c, NAME(www_lc), 1, false);
	put_a(c, NAME(www_lc), 1, true);
	put_a(c, NAME(www_lc), 28, false);
	put_a(c, NAME(mail_lc), 1, false);
	cr_assert_eq(ST(c).entries, 4);
	/* Any letter case names the same entries (RFC 4343). */
	cr_assert_eq(dns_cache_flush_name(c, NAME(www_upper)), 3);
	cr_assert_eq(ST(c).entries, 1);
	cr_assert_eq(ST(c).flushed, 3);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	cr_assert_eq(lookup(c, &k, true, T0 + SEC, out, &fl), -ENOENT);
	k = key_of(NAME(mail_lc), 1);
	cr_assert_gt(lookup(c, &k, false, T0 + SEC, out, &fl), 0, "another name stays");
	/* Nothing of that name left: 0, and a bad name is 0 too. */
	cr_assert_eq(dns_cache_flush_name(c, NAME(www_lc)), 0);
	cr_assert_eq(dns_cache_flush_name(c, NULL, 0), 0);
	cr_assert_eq(dns_cache_flush_name(c, www_lc, 300), 0);
	dns_cache_free(c);
}

Test(dns_cache, flush_all_empties_and_the_cache_still_works)
{
	struct dns_cache *c = mk(defconf());
	size_t table = ST(c).table_bytes;
	uint8_t out[1024];
	unsigned fl;

	cr_assert_eq(dns_cache_flush(c), 0, "empty cache");
	put_a(c, NAME(www_lc), 1, false);
	put_a(c, NAME(mail_lc), 1, false);
	put_a(c, NAME(mail_lc), 28, false);
	cr_assert_eq(dns_cache_flush(c), 3);
	cr_assert_eq(ST(c).entries, 0);
	cr_assert_eq(ST(c).bytes, table, "every entry's charge given back");
	cr_assert_eq(ST(c).answer_bytes, 0);
	put_a(c, NAME(www_lc), 1, false);
	struct dns_cache_key k = key_of(NAME(www_lc), 1);
	cr_assert_gt(lookup(c, &k, false, T0 + SEC, out, &fl), 0);
	cr_assert_eq(dns_cache_flush_name(c, NAME(www_lc)), 1);
	cr_assert_eq(ST(c).entries, 0);
	dns_cache_free(c);
}

/* ---- one cache per process: shards and concurrent use ---- */

Test(dns_cache, shards_round_to_power_of_two_and_shrink_for_small_sizes)
{
	struct dns_cache_conf conf = defconf();
	conf.size = 64u << 20;
	conf.shards = 12;
	struct dns_cache *c = mk(conf);
	cr_assert_eq(ST(c).shards, 16);
	cr_assert_eq(ST(c).bytes, ST(c).table_bytes);
	cr_assert_leq(ST(c).table_bytes + 16 * ST(c).shard_bytes, conf.size);
	dns_cache_free(c);

	/* 1 MiB cannot give 16 shards DNS_CACHE_SHARD_MIN each: 4 of 256 KiB. */
	conf.size = 1u << 20;
	c = mk(conf);
	cr_assert_eq(ST(c).shards, 4);
	cr_assert_geq(ST(c).shard_bytes * 4 + ST(c).table_bytes, conf.size - 4);
	dns_cache_free(c);
}

/* Every shard holds its own share; the sum never passes conf.size. */
Test(dns_cache, size_bound_holds_with_shards)
{
	struct dns_cache_conf conf = defconf();
	conf.size = 2u << 20;
	conf.shards = 8;
	struct dns_cache *c = mk(conf);
	cr_assert_eq(ST(c).shards, 8);
	for (unsigned i = 0; i < 100000; i++) {
		cr_assert_eq(insert_i(c, i, T0 + i), 1);
		if (i % 1000 == 999)
			cr_assert_leq(ST(c).bytes, conf.size, "bound broken at insert %u", i);
	}
	struct dns_cache_stats st = ST(c);
	cr_assert_gt(st.evictions, 0);
	cr_assert_eq(st.inserts - st.evictions - st.reclaimed - st.replaced, st.entries);
	/* Equal shares fill evenly: more than 90% of the budget is in use. */
	cr_assert_gt(st.bytes, conf.size / 10 * 9, "%zu of %zu bytes used", st.bytes, conf.size);
	cr_assert_gt(lookup_i(c, 99999, T0 + 100000), 0);
	dns_cache_free(c);
}

/* An answer whose A record carries i, so a reader can check it got its own name's answer. */
static void answer_i(unsigned i, uint8_t name[13], struct ans *a, uint32_t ttl)
{
	const uint8_t ip[4] = {10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
	name_of(i, name);
	ans_begin(a, 0x1111, 0, name, 13, 1, 1, 1, 0);
	ans_rr(a, 1, ttl, ip, 4);
}

#define MT_THREADS 4
#define MT_NAMES   4096
#define MT_ROUNDS  60000

struct mt_arg {
	struct dns_cache *c;
	unsigned seed;
	unsigned hits, bad, prefetch;
	uint64_t now;
};

/*
 * Readers and writers at once on a small cache (evictions all the time, so
 * entries are retired while other threads may be reading them). Every hit
 * must be exactly its own name's answer: a torn or freed entry would show.
 */
static void *mt_worker(void *p)
{
	struct mt_arg *m = p;
	unsigned x = m->seed;
	for (unsigned r = 0; r < MT_ROUNDS; r++) {
		x = x * 1103515245u + 12345u;
		unsigned i = (x >> 8) % MT_NAMES;
		uint8_t name[13], out[1024];
		struct ans a;
		answer_i(i, name, &a, 3600);
		struct dns_cache_key k = key_of(name, sizeof(name), 1);
		if ((x >> 4) % 4 == 0) {
			int rc = dns_cache_insert(m->c, &k, a.b, a.len, a.off, a.n,
			                          DNS_CACHE_POSITIVE, 0, T0);
			if (rc != 1)
				m->bad++;
			continue;
		}
		unsigned fl;
		int n = dns_cache_lookup(m->c, &k, 0x2222, false, T0 + SEC, out, sizeof(out), &fl);
		if (n == -ENOENT)
			continue;
		m->hits++;
		if (n != (int)a.len || memcmp(out + 2, a.b + 2, a.off[0] - 2) != 0 ||
		    rd32(out + a.off[0]) != 3599 ||
		    memcmp(out + a.off[0] + 4, a.b + a.off[0] + 4, a.len - a.off[0] - 4) != 0)
			m->bad++;
	}
	return NULL;
}

Test(dns_cache, concurrent_readers_and_writers_see_whole_entries)
{
	struct dns_cache_conf conf = defconf();
	conf.size = 256u << 10; /* 4096 names of 112 bytes do not all fit: CLOCK keeps evicting */
	conf.shards = 4;        /* lowered to 1: all writers on one lock */
	struct dns_cache *c = mk(conf);
	pthread_t th[MT_THREADS];
	struct mt_arg m[MT_THREADS];
	for (unsigned t = 0; t < MT_THREADS; t++) {
		m[t] = (struct mt_arg){.c = c, .seed = 77 + t};
		cr_assert_eq(pthread_create(&th[t], NULL, mt_worker, &m[t]), 0);
	}
	unsigned hits = 0;
	for (unsigned t = 0; t < MT_THREADS; t++) {
		pthread_join(th[t], NULL);
		cr_assert_eq(m[t].bad, 0, "thread %u saw %u wrong answers", t, m[t].bad);
		hits += m[t].hits;
	}
	cr_assert_gt(hits, MT_ROUNDS, "the readers found entries (%u hits)", hits);
	struct dns_cache_stats st = ST(c);
	cr_assert_gt(st.evictions, 1000);
	cr_assert_leq(st.bytes, conf.size);
	cr_assert_eq(st.inserts - st.evictions - st.reclaimed - st.replaced, st.entries);
	dns_cache_free(c);
}

static void *prefetch_worker(void *p)
{
	struct mt_arg *m = p;
	uint8_t name[13], out[1024];
	struct ans a;
	answer_i(7, name, &a, 100);
	struct dns_cache_key k = key_of(name, sizeof(name), 1);
	for (unsigned r = 0; r < 20000; r++) {
		unsigned fl;
		int n = dns_cache_lookup(m->c, &k, 1, false, m->now, out, sizeof(out), &fl);
		if (n <= 0)
			m->bad++;
		else if (fl & DNS_CACHE_F_PREFETCH)
			m->prefetch++;
	}
	return NULL;
}

/* The refresh of a popular entry is asked for once per process, not once per worker. */
Test(dns_cache, prefetch_is_handed_out_once_across_threads)
{
	struct dns_cache *c = mk(defconf());
	uint8_t name[13];
	struct ans a;
	answer_i(7, name, &a, 100);
	struct dns_cache_key k = key_of(name, sizeof(name), 1);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);
	pthread_t th[MT_THREADS];
	struct mt_arg m[MT_THREADS];
	for (unsigned t = 0; t < MT_THREADS; t++) {
		m[t] = (struct mt_arg){.c = c, .now = T0 + 95 * SEC};
		cr_assert_eq(pthread_create(&th[t], NULL, prefetch_worker, &m[t]), 0);
	}
	unsigned total = 0;
	for (unsigned t = 0; t < MT_THREADS; t++) {
		pthread_join(th[t], NULL);
		cr_assert_eq(m[t].bad, 0);
		total += m[t].prefetch;
	}
	cr_assert_eq(total, 1, "%u PREFETCH flags for one entry", total);
	dns_cache_free(c);
}

/* More names than a quarter of the buckets: many sit behind another in their chain. */
#define REFRESH_NAMES 1024

struct refresh_arg {
	struct dns_cache *c;
	atomic_bool stop;
	unsigned misses, hits;
};

static void *refresh_reader(void *p)
{
	struct refresh_arg *m = p;
	while (!atomic_load(&m->stop)) {
		for (unsigned i = 0; i < REFRESH_NAMES; i++) {
			uint8_t name[13], out[1024];
			unsigned fl;
			name_of(i, name);
			struct dns_cache_key k = key_of(name, sizeof(name), 1);
			int n =
			    dns_cache_lookup(m->c, &k, 1, false, T0 + SEC, out, sizeof(out), &fl);
			if (n > 0)
				m->hits++;
			else
				m->misses++;
		}
	}
	return NULL;
}

/* Replacing an entry (a refresh) links the new answer before the old one goes. */
Test(dns_cache, refresh_never_opens_a_miss_window)
{
	static struct refresh_arg m;
	struct dns_cache_conf conf = defconf();
	conf.size = 256u << 10; /* 2048 buckets */
	struct dns_cache *c = mk(conf);
	for (unsigned i = 0; i < REFRESH_NAMES; i++)
		cr_assert_eq(insert_i(c, i, T0), 1);
	m.c = c;
	atomic_init(&m.stop, false);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, refresh_reader, &m), 0);
	for (unsigned r = 0; r < 200000; r++)
		cr_assert_eq(insert_i(c, (r * 7919u) % REFRESH_NAMES, T0), 1);
	atomic_store(&m.stop, true);
	pthread_join(th, NULL);
	cr_assert_gt(m.hits, 0);
	cr_assert_eq(m.misses, 0, "%u lookups missed during refreshes", m.misses);
	cr_assert_eq(ST(c).replaced, 200000);
	cr_assert_eq(ST(c).evictions, 0);
	dns_cache_free(c);
}

/* Reload: new limits on a cache in use; what it holds is kept (or evicted to fit). */
Test(dns_cache, set_limits_keeps_entries_and_shrinks_to_fit)
{
	struct dns_cache_conf conf = defconf();
	struct dns_cache *c = mk(conf);
	uint8_t out[1024];
	unsigned fl;

	for (unsigned i = 0; i < 2000; i++)
		cr_assert_eq(insert_i(c, i, T0), 1);
	size_t before = ST(c).entries;
	cr_assert_eq(before, 2000, "1 MiB holds 2000 small answers");

	/* Same size, new TTL bounds: every entry stays, new inserts get the new bounds. */
	conf.max_ttl_s = 120;
	cr_assert_eq(dns_cache_set_limits(c, &conf, T0), 0);
	cr_assert_eq(ST(c).entries, before);
	cr_assert_gt(lookup_i(c, 7, T0 + 1000 * SEC), 0, "stored under the old 3600 s");
	cr_assert_eq(insert_i(c, 5000, T0), 1);
	struct ans a;
	uint8_t name[13];
	name_of(5000, name);
	a_answer(&a, name, sizeof(name), 3600, 0);
	struct dns_cache_key k = key_of(name, sizeof(name), 1);
	cr_assert_gt(lookup(c, &k, false, T0, out, &fl), 0);
	cr_assert_eq(rd32(out + a.off[0]), 120, "the new max-ttl");

	/* Smaller: evicted at once down to the new bound, the rest kept. */
	conf.size = 128 * 1024;
	cr_assert_eq(dns_cache_set_limits(c, &conf, T0), 0);
	cr_assert_leq(ST(c).bytes, conf.size);
	cr_assert_gt(ST(c).entries, 100);
	cr_assert_lt(ST(c).entries, before);
	cr_assert_eq(ST(c).shard_bytes * ST(c).shards + ST(c).table_bytes <= conf.size, true);
	/* Refused: min > max, or a size the table alone fills. */
	conf.min_ttl_s = 500;
	cr_assert_eq(dns_cache_set_limits(c, &conf, T0), -EINVAL);
	conf.min_ttl_s = 0;
	conf.size = 1024;
	cr_assert_eq(dns_cache_set_limits(c, &conf, T0), -EINVAL);
	dns_cache_free(c);
}
