/*
 * libFuzzer harness: the cache file loader (dns_cache_load_buf) on any bytes,
 * checksum skipped so the fuzzer reaches the record parser and the per-entry
 * checks. Whatever it loads must be an answer the codec accepts.
 */
#include <stdlib.h>

#include "dns/dns_cache.h"
#include "dns/dns_wire.h"

#define WALL 1764900000000ull
#define MONO 50000000ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(void *arg, const struct dns_cache_entry_view *v)
{
	struct dns_scan sc;
	(void)arg;
	if (dns_scan(v->answer, v->len, &sc) != 0 || !sc.qr || sc.qdcount != 1 || sc.has_opt ||
	    v->kind == DNS_CACHE_SERVFAIL)
		__builtin_trap();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dns_cache *c;
	struct dns_cache_conf conf = DNS_CACHE_CONF_DEFAULT;
	struct dns_cache_load_stats st;

	conf.size = 1u << 20;
	if (!c && dns_cache_new(&conf, 7, &c))
		abort();
	int r =
	    dns_cache_load_buf(c, data, size, WALL + 1000, MONO, DNS_CACHE_LOAD_NOCHECKSUM, &st);
	if (r > 0 && (unsigned)r != st.loaded)
		__builtin_trap();
	dns_cache_walk(c, MONO, check, NULL);
	dns_cache_flush(c);
	return 0;
}
