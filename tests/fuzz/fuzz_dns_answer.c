/*
 * libFuzzer harness: an upstream answer through the server's miss path:
 * normalise -> cache insert -> lookup, with the invariants that path relies on
 * (dns_answer.h, dns_cache.h): the normalised form scans exactly as reported,
 * a stored answer is found at once, comes back with the client's ID, the same
 * length and question, scans again, and no TTL above max-ttl.
 */
#include <errno.h>
#include <string.h>

#include "core/wire.h"
#include "dns/dns_answer.h"
#include "dns/dns_cache.h"
#include "dns/dns_wire.h"

#define MAX_TTL 3600u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same_scan(const struct dns_scan *a, const struct dns_scan *b)
{
	if (a->qdcount != b->qdcount || a->ancount != b->ancount || a->nscount != b->nscount ||
	    a->arcount != b->arcount || a->has_question != b->has_question ||
	    a->q_off != b->q_off || a->qname_len != b->qname_len || a->qtype != b->qtype ||
	    a->rcode != b->rcode || a->n_ttl != b->n_ttl || a->has_soa != b->has_soa ||
	    a->neg_ttl != b->neg_ttl)
		__builtin_trap();
	size_t n = a->n_ttl < DNS_MAX_TTL_OFFSETS ? a->n_ttl : DNS_MAX_TTL_OFFSETS;
	if (memcmp(a->ttl_off, b->ttl_off, n * sizeof(a->ttl_off[0])))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dns_cache *cache;
	static uint8_t norm[65536], out[65536 + DNS_ANSWER_OPT_LEN];
	static uint64_t now = 1000000;
	struct dns_scan s, s2;

	if (!cache) {
		struct dns_cache_conf conf = DNS_CACHE_CONF_DEFAULT;
		conf.size = 4u << 20;
		conf.max_ttl_s = MAX_TTL;
		if (dns_cache_new(&conf, 42, &cache) < 0)
			__builtin_trap();
	}
	now += 1500; /* entries age and expire between inputs */
	/* As dns_forward does: the answer is scanned, -E2BIG (too many records to
	 * track) still passes on, anything else is refused before normalising. */
	int sr = dns_scan(data, size, &s);
	if (sr < 0 && sr != -E2BIG)
		return 0;
	int n = dns_answer_normalize(data, size, &s, norm, sizeof(norm));
	if (n < 0)
		return 0;
	if ((size_t)n > size || dns_scan(norm, (size_t)n, &s2) != (s.n_ttl > DNS_MAX_TTL_OFFSETS
	                                                               ? -E2BIG
	                                                               : 0))
		__builtin_trap();
	check_same_scan(&s, &s2);
	if (!s.has_question || s.tc || s.n_ttl > DNS_MAX_TTL_OFFSETS)
		return 0;
	enum dns_cache_kind kind = DNS_CACHE_POSITIVE;
	if (s.rcode == DNS_RCODE_SERVFAIL)
		kind = DNS_CACHE_SERVFAIL;
	else if (s.rcode == DNS_RCODE_NXDOMAIN)
		kind = DNS_CACHE_NXDOMAIN;
	else if (s.rcode == DNS_RCODE_NOERROR && !s.ancount)
		kind = DNS_CACHE_NODATA;
	struct dns_cache_key key = {.qname = norm + s.q_off,
	                            .qname_len = (uint16_t)s.qname_len,
	                            .qtype = s.qtype,
	                            .qclass = s.qclass,
	                            .do_bit = size & 1,
	                            .cd_bit = size & 2};
	int r = dns_cache_insert(cache, &key, norm, (size_t)n, s.ttl_off, (unsigned)s.n_ttl, kind,
	                         s.neg_ttl, now);
	if (r != 0 && r != 1 && r != -EINVAL && r != -ENOMEM)
		__builtin_trap();
	if (r != 1)
		return 0;
	unsigned flags = 0;
	int m = dns_cache_lookup(cache, &key, 0xbeef, false, now, out, sizeof(out), &flags);
	if (m != n || !(flags & DNS_CACHE_F_FRESH))
		__builtin_trap(); /* stored now, with a lifetime: a fresh hit of the same size */
	if (wire_get_u16_at(out) != 0xbeef)
		__builtin_trap();
	if (dns_scan(out, (size_t)m, &s2) != 0 || !s2.has_question ||
	    memcmp(out + s2.q_off, norm + s.q_off, s.q_len))
		__builtin_trap();
	for (size_t i = 0; i < s2.n_ttl; i++) {
		uint32_t ttl = (uint32_t)wire_get_u16_at(out + s2.ttl_off[i]) << 16 |
		               wire_get_u16_at(out + s2.ttl_off[i] + 2);
		if (kind == DNS_CACHE_POSITIVE && ttl > MAX_TTL)
			__builtin_trap();
	}
	/* A bounded cache under the fuzzer: start over now and then. */
	if ((now / 1500) % 4096 == 0)
		dns_cache_flush(cache);
	return 0;
}
