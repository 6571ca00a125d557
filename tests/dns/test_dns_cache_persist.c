/*
 * Unit tests for the cache on disk (src/dns/dns_cache_persist.c): round trip,
 * aging by wall time, the monotonic clock of a rebooted host, and a damaged
 * file at every byte offset (flipped or cut), which must be refused whole or
 * give only entries the codec accepts. Time is stepped by hand.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/wire.h"
#include "dns/dns_cache.h"
#include "dns/dns_wire.h"
#include "dns_test_answer.h"

#define T0      50000000u        /* monotonic ms at save */
#define W0      1764900000000ull /* wall ms at save */
#define SEC     1000u
#define NAME(s) ((const uint8_t *)(s)), ((uint16_t)sizeof(s))

static const uint8_t www[] = "\3www\7example\4test";
static const uint8_t nx[] = "\2nx\7example\4test";
static const uint8_t sec[] = "\3sec\7example\4test";
static const uint8_t fail[] = "\4fail\7example\4test";

static void a_answer(struct ans *a, const uint8_t *q, size_t qlen, uint32_t ttl)
{
	const uint8_t ip[4] = {192, 0, 2, 1};
	ans_begin(a, 0, 0, q, qlen, 1, 1, 1, 0);
	ans_rr(a, DNS_TYPE_A, ttl, ip, 4);
}

/* NXDOMAIN with an SOA (root mname/rname) whose TTL and MINIMUM are given. */
static void nx_answer(struct ans *a, uint32_t soa_ttl, uint32_t minimum)
{
	uint8_t rd[22] = {0};
	struct wbuf w = wbuf_init(rd + 2, 20);
	wbuf_u32(&w, 1);
	wbuf_u32(&w, 3600);
	wbuf_u32(&w, 600);
	wbuf_u32(&w, 86400);
	wbuf_u32(&w, minimum);
	ans_begin(a, 0, DNS_RCODE_NXDOMAIN, NAME(nx), 1, 1, 0, 1);
	ans_rr(a, DNS_TYPE_SOA, soa_ttl, rd, sizeof(rd));
}

static struct dns_cache_key key_of(const uint8_t *q, uint16_t qlen, bool do_bit)
{
	struct dns_cache_key k = {
	    .qname = q, .qname_len = qlen, .qtype = 1, .qclass = 1, .do_bit = do_bit};
	return k;
}

static struct dns_cache *mk(uint32_t stale_s)
{
	struct dns_cache_conf conf = DNS_CACHE_CONF_DEFAULT;
	struct dns_cache *c = NULL;
	conf.size = 1u << 20;
	conf.stale_window_s = stale_s;
	cr_assert_eq(dns_cache_new(&conf, 42, &c), 0);
	return c;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The TTL of the first RR of a hit, or -1 on a miss; *fl gets the flags. */
static long ttl_of(struct dns_cache *c, struct dns_cache_key k, bool stale, uint64_t now,
                   unsigned *fl, uint16_t off)
{
	uint8_t out[512];
	unsigned f = 0;
	int n = dns_cache_lookup(c, &k, 1, stale, now, out, sizeof(out), &f);
	if (fl)
		*fl = f;
	return n > 0 ? (long)rd32(out + off) : -1;
}

static char dir[] = "/tmp/anycache-persist-XXXXXX";
static char path[256];

static void mkdir_tmp(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/cache.bin", dir);
}

static void rm_tmp(void)
{
	char tmp[300];
	unlink(path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	rmdir(dir);
}

static uint8_t *slurp(const char *p, size_t *len)
{
	struct stat sb;
	int fd = open(p, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &sb), 0);
	uint8_t *b = malloc((size_t)sb.st_size + 1);
	cr_assert_eq(read(fd, b, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return b;
}

/* A cache with A www (300 s), NXDOMAIN nx (SOA 900/120), A sec with DO, a SERVFAIL. */
static struct dns_cache *filled(uint16_t *a_off, uint16_t *nx_off)
{
	struct dns_cache *c = mk(86400);
	struct ans a;
	struct dns_cache_key k;

	a_answer(&a, NAME(www), 300);
	k = key_of(NAME(www), false);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);
	*a_off = a.off[0];
	nx_answer(&a, 900, 120);
	k = key_of(NAME(nx), false);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_NXDOMAIN, 120, T0),
	             1);
	*nx_off = a.off[0];
	a_answer(&a, NAME(sec), 600);
	k = key_of(NAME(sec), true);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, a.off, a.n, DNS_CACHE_POSITIVE, 0, T0), 1);
	ans_begin(&a, 0, DNS_RCODE_SERVFAIL, NAME(fail), 1, 1, 0, 0);
	k = key_of(NAME(fail), false);
	cr_assert_eq(dns_cache_insert(c, &k, a.b, a.len, NULL, 0, DNS_CACHE_SERVFAIL, 0, T0), 1);
	return c;
}

Test(dns_cache_persist, round_trip_ages_by_wall_time)
{
	uint16_t aoff, nxoff;
	struct dns_cache *c = filled(&aoff, &nxoff);
	mkdir_tmp();
	/* Saved 10 s after the inserts; loaded 5 s of wall time later. */
	cr_assert_eq(dns_cache_save(c, path, W0, T0 + 10 * SEC), 0);
	char tmp[300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	cr_assert_eq(access(tmp, F_OK), -1, "no temporary file may stay behind");
	dns_cache_free(c);

	struct dns_cache *d = mk(86400);
	uint64_t t1 = 7u * T0; /* another process, another monotonic origin */
	cr_assert_eq(dns_cache_load(d, path, W0 + 5 * SEC, t1), 3, "SERVFAIL is not saved");
	unsigned fl;
	cr_assert_eq(ttl_of(d, key_of(NAME(www), false), false, t1, &fl, aoff), 285);
	cr_assert_eq(fl, DNS_CACHE_F_FRESH);
	/* Negative: min(SOA TTL, MINIMUM) = 120, aged 15 s (RFC 2308 §5). */
	struct dns_cache_key kn = key_of(NAME(nx), false);
	cr_assert_eq(ttl_of(d, kn, false, t1, &fl, nxoff), 105);
	/* DO is part of the key: only a DO query finds it. */
	cr_assert_eq(ttl_of(d, key_of(NAME(sec), false), false, t1, NULL, aoff), -1);
	cr_assert_eq(ttl_of(d, key_of(NAME(sec), true), false, t1, NULL, aoff), 585);
	cr_assert_eq(ttl_of(d, key_of(NAME(fail), false), true, t1, NULL, 0), -1);
	/* The aged entry expires when the original would have. */
	cr_assert_eq(ttl_of(d, key_of(NAME(www), false), false, t1 + 285 * SEC, NULL, aoff), -1);
	cr_assert_eq(ttl_of(d, key_of(NAME(www), false), false, t1 + 284 * SEC, NULL, aoff), 1);
	dns_cache_free(d);
	rm_tmp();
}

Test(dns_cache_persist, expired_entries_go_stale_or_away)
{
	uint16_t aoff, nxoff;
	struct dns_cache *c = filled(&aoff, &nxoff);
	mkdir_tmp();
	cr_assert_eq(dns_cache_save(c, path, W0, T0), 0);
	dns_cache_free(c);

	/* 200 s later: nx (120 s) is stale, www (300 s) fresh with 100 s left. */
	struct dns_cache *d = mk(86400);
	cr_assert_eq(dns_cache_load(d, path, W0 + 200 * SEC, T0), 3);
	unsigned fl;
	cr_assert_eq(ttl_of(d, key_of(NAME(www), false), false, T0, &fl, aoff), 100);
	cr_assert_eq(ttl_of(d, key_of(NAME(nx), false), false, T0, &fl, nxoff), -1);
	cr_assert_eq(ttl_of(d, key_of(NAME(nx), false), true, T0, &fl, nxoff), DNS_CACHE_STALE_TTL);
	cr_assert_eq(fl, DNS_CACHE_F_STALE);
	dns_cache_free(d);

	/* Without serve-stale the expired one is not loaded at all. */
	d = mk(0);
	cr_assert_eq(dns_cache_load(d, path, W0 + 200 * SEC, T0), 2);
	dns_cache_free(d);

	/* Past every stale window: nothing. */
	uint8_t *img;
	size_t len;
	struct dns_cache_load_stats st;
	img = slurp(path, &len);
	d = mk(100);
	cr_assert_eq(dns_cache_load_buf(d, img, len, W0 + 1000 * SEC, T0, 0, &st), 0);
	cr_assert_eq(st.entries, 3);
	cr_assert_eq(st.expired, 3);
	cr_assert_eq(st.invalid, 0);
	free(img);
	dns_cache_free(d);
	rm_tmp();
}

/* After a reboot the monotonic clock is younger than the entries. */
Test(dns_cache_persist, young_monotonic_clock)
{
	uint16_t aoff, nxoff;
	struct dns_cache *c = filled(&aoff, &nxoff);
	mkdir_tmp();
	cr_assert_eq(dns_cache_save(c, path, W0, T0 + 30 * SEC), 0);
	dns_cache_free(c);
	struct dns_cache *d = mk(86400);
	/* Aged 90 s on a clock that reads 2 s. */
	cr_assert_eq(dns_cache_load(d, path, W0 + 60 * SEC, 2 * SEC), 3);
	unsigned fl;
	cr_assert_eq(ttl_of(d, key_of(NAME(www), false), false, 2 * SEC, &fl, aoff), 210);
	cr_assert_eq(ttl_of(d, key_of(NAME(www), false), false, 2 * SEC + 209 * SEC, &fl, aoff), 1);
	cr_assert_eq(ttl_of(d, key_of(NAME(www), false), false, 2 * SEC + 210 * SEC, &fl, aoff),
	             -1);
	cr_assert_eq(ttl_of(d, key_of(NAME(nx), false), false, 2 * SEC, &fl, nxoff), 30);
	cr_assert_eq(ttl_of(d, key_of(NAME(nx), false), false, 2 * SEC + 30 * SEC, &fl, nxoff), -1);
	dns_cache_free(d);
	/* Aged 150 s: nx is stale, and a stale entry cannot be placed on so young
	 * a clock (its insertion would predate the clock's zero): dropped. */
	d = mk(86400);
	cr_assert_eq(dns_cache_load(d, path, W0 + 120 * SEC, 2 * SEC), 2);
	cr_assert_eq(ttl_of(d, key_of(NAME(www), false), false, 2 * SEC, &fl, aoff), 150);
	dns_cache_free(d);
	rm_tmp();
}

Test(dns_cache_persist, live_entries_win)
{
	uint16_t aoff, nxoff;
	struct dns_cache *c = filled(&aoff, &nxoff);
	mkdir_tmp();
	cr_assert_eq(dns_cache_save(c, path, W0, T0), 0);
	struct dns_cache_load_stats st;
	size_t len;
	uint8_t *img = slurp(path, &len);
	cr_assert_eq(dns_cache_load_buf(c, img, len, W0 + SEC, T0 + SEC, 0, &st), 0);
	cr_assert_eq(st.kept, 3);
	free(img);
	dns_cache_free(c);
	rm_tmp();
}

Test(dns_cache_persist, refused_files)
{
	uint16_t aoff, nxoff;
	struct dns_cache *c = filled(&aoff, &nxoff);
	mkdir_tmp();
	cr_assert_eq(dns_cache_load(c, path, W0, T0), -ENOENT);
	char bad[300];
	snprintf(bad, sizeof(bad), "%s/no/such/dir/cache", dir);
	cr_assert_eq(dns_cache_save(c, bad, W0, T0), -ENOENT);
	cr_assert_eq(dns_cache_save(c, path, W0, T0), 0);
	size_t len;
	uint8_t *img = slurp(path, &len);
	struct dns_cache *d = mk(86400);
	/* Saved "in the future": the wall clock went back, no age can be known. */
	cr_assert_eq(dns_cache_load_buf(d, img, len, W0 - 1, T0, 0, NULL), -ESTALE);
	/* A future format version is not read. */
	img[9] = 2;
	cr_assert_eq(dns_cache_load_buf(d, img, len, W0, T0, 0, NULL), -EPROTONOSUPPORT);
	img[9] = 1;
	img[0] = 'X';
	cr_assert_eq(dns_cache_load_buf(d, img, len, W0, T0, 0, NULL), -EBADMSG);
	img[0] = 'A';
	cr_assert_eq(dns_cache_load_buf(d, img, len, W0, T0, 0, NULL), 3);
	struct dns_cache_stats cs;
	dns_cache_stats(d, &cs);
	cr_assert_eq(cs.entries, 3);
	free(img);
	dns_cache_free(d);
	dns_cache_free(c);
	rm_tmp();
}

/* Every entry a damaged file left in the cache must scan as a DNS answer. */
static int check_entry(void *arg, const struct dns_cache_entry_view *v)
{
	struct dns_scan sc;
	(*(unsigned *)arg)++;
	cr_assert_eq(dns_scan(v->answer, v->len, &sc), 0);
	cr_assert(sc.qr && sc.qdcount == 1 && !sc.has_opt);
	cr_assert(v->kind != DNS_CACHE_SERVFAIL);
	return 0;
}

Test(dns_cache_persist, damage_at_every_offset)
{
	uint16_t aoff, nxoff;
	struct dns_cache *c = filled(&aoff, &nxoff);
	mkdir_tmp();
	cr_assert_eq(dns_cache_save(c, path, W0, T0), 0);
	dns_cache_free(c);
	size_t len;
	uint8_t *img = slurp(path, &len);
	uint8_t *cp = malloc(len);
	unsigned partial = 0;

	for (size_t i = 0; i < len; i++) {
		/* Cut: always refused, the cache stays empty. */
		struct dns_cache *d = mk(86400);
		memcpy(cp, img, len);
		int r = dns_cache_load_buf(d, cp, i, W0, T0, 0, NULL);
		cr_assert_lt(r, 0, "cut at %zu accepted", i);
		/* Flipped: the checksum refuses it. */
		cp[i] ^= 0xff;
		r = dns_cache_load_buf(d, cp, len, W0, T0, 0, NULL);
		cr_assert_lt(r, 0, "flip at %zu accepted", i);
		struct dns_cache_stats cs;
		dns_cache_stats(d, &cs);
		cr_assert_eq(cs.entries, 0);
		/* With the checksum skipped (what the fuzzer does): each single bit
		 * flip either fails or gives only entries the codec accepts. */
		for (int bit = 0; bit < 8; bit++) {
			memcpy(cp, img, len);
			cp[i] ^= (uint8_t)(1u << bit);
			r = dns_cache_load_buf(d, cp, len, W0, T0, DNS_CACHE_LOAD_NOCHECKSUM, NULL);
			unsigned n = 0;
			dns_cache_walk(d, T0, check_entry, &n);
			cr_assert(r < 0 || (unsigned)r <= 3);
			if (r >= 0 && r < 3)
				partial++;
			dns_cache_flush(d);
		}
		dns_cache_free(d);
	}
	/* Some flips hit the checked parts of an answer: those entries were skipped. */
	cr_assert_gt(partial, 0);
	free(cp);
	free(img);
	rm_tmp();
}
