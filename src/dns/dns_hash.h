/*
 * dns_hash.h: the one home of the DNS letter-case fold and of the keyed hash
 * of a question key, shared by the answer cache, the in-flight table and
 * (later) the forwarder's coalescing index. Pure and header-only: the codec
 * (dns_name.c) uses the fold too and is compiled alone for the fuzzers.
 *
 * A question key is what makes two queries "the same" for caching and for
 * sharing one upstream query: the lowercased qname (RFC 4343), qtype,
 * qclass, and the DO (RFC 3225) and CD (RFC 4035 §3.2.2) bits, because the
 * answers to queries differing in those differ. Its serialized form is the
 * question as it appears on the wire (name | type | class) plus one flag
 * octet, so the cache can compare it directly with a stored answer's
 * question.
 *
 * The hash is SipHash-1-3 (Aumasson & Bernstein) under a per-table random
 * key: clients choose the names, so an unkeyed hash would let them aim every
 * query at one chain.
 */
#ifndef ANYCACHE_DNS_HASH_H
#define ANYCACHE_DNS_HASH_H

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/wire.h"

/* RFC 1035 §3.1: a name in wire form is at most 255 octets. */
#define DNS_HASH_NAME_MAX 255u

/* Flag octet of a serialized key. */
#define DNS_QKEY_DO 0x01u
#define DNS_QKEY_CD 0x02u

/*
 * RFC 4343: only ASCII letters fold. Label length octets are <= 63 and so
 * never in 'A'..'Z' (65..90): a whole wire name can be folded bytewise.
 */
static inline uint8_t dns_lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c | 0x20) : c;
}

struct dns_hash_key {
	uint64_t k0, k1;
};

/* splitmix64 (Steele, Lea, Flood): spreads one seed into well-mixed words. */
static inline uint64_t dns_hash_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The SipHash key for a table, from a random seed (take it from getrandom()). */
static inline struct dns_hash_key dns_hash_key_from_seed(uint64_t seed)
{
	struct dns_hash_key k;
	k.k0 = dns_hash_splitmix64(&seed);
	k.k1 = dns_hash_splitmix64(&seed);
	return k;
}

static inline uint64_t dns_hash_rotl(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

#define DNS_SIPROUND                                                                               \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = dns_hash_rotl(v1, 13);                                                        \
		v1 ^= v0;                                                                          \
		v0 = dns_hash_rotl(v0, 32);                                                        \
		v2 += v3;                                                                          \
		v3 = dns_hash_rotl(v3, 16);                                                        \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = dns_hash_rotl(v3, 21);                                                        \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = dns_hash_rotl(v1, 17);                                                        \
		v1 ^= v2;                                                                          \
		v2 = dns_hash_rotl(v2, 32);                                                        \
	} while (0)

/* SipHash-1-3 of m[0..n), 64-bit output; message words are read little-endian. */
static inline uint64_t dns_siphash13(const struct dns_hash_key *k, const uint8_t *m, size_t n)
{
	uint64_t v0 = k->k0 ^ 0x736f6d6570736575ull;
	uint64_t v1 = k->k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k->k0 ^ 0x6c7967656e657261ull;
	uint64_t v3 = k->k1 ^ 0x7465646279746573ull;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, m + i, 8); /* one unaligned load */
		w = le64toh(w);
		v3 ^= w;
		DNS_SIPROUND;
		v0 ^= w;
	}
	uint64_t b = (uint64_t)n << 56;
	for (unsigned j = 0; i + j < n; j++)
		b |= (uint64_t)m[i + j] << (8 * j);
	v3 ^= b;
	DNS_SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	DNS_SIPROUND;
	DNS_SIPROUND;
	DNS_SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/*
 * A serialized question key: lowercased name | qtype | qclass (the
 * question's wire form, `qlen` = name_len + 4 octets) | flag octet.
 */
struct dns_qkey {
	uint8_t b[DNS_HASH_NAME_MAX + 5];
	uint16_t name_len;
	uint16_t qlen;
	uint8_t flags; /* DNS_QKEY_DO | DNS_QKEY_CD */
	uint64_t hash; /* dns_siphash13 over b[0..qlen + 1) */
};

/*
 * Builds and hashes a key. qname is the name in uncompressed wire form in any
 * letter case (1..255 octets); qname_lc, when the caller already has the
 * lowercased copy (the request parser makes one), saves folding it again.
 * 0, or -EINVAL for a missing or oversized name.
 */
static inline int dns_qkey_build(struct dns_qkey *k, const struct dns_hash_key *hk,
                                 const uint8_t *qname, const uint8_t *qname_lc, size_t len,
                                 uint16_t qtype, uint16_t qclass, bool do_bit, bool cd)
{
	if ((!qname && !qname_lc) || len == 0 || len > DNS_HASH_NAME_MAX)
		return -EINVAL;
	if (qname_lc)
		memcpy(k->b, qname_lc, len);
	else
		for (size_t i = 0; i < len; i++)
			k->b[i] = dns_lower(qname[i]);
	k->flags = (uint8_t)((do_bit ? DNS_QKEY_DO : 0) | (cd ? DNS_QKEY_CD : 0));
	struct wbuf w = wbuf_init(k->b, sizeof(k->b));
	w.off = len;
	wbuf_u16(&w, qtype);
	wbuf_u16(&w, qclass);
	wbuf_u8(&w, k->flags);
	k->name_len = (uint16_t)len;
	k->qlen = (uint16_t)(len + 4);
	k->hash = dns_siphash13(hk, k->b, w.off);
	return 0;
}

#endif
