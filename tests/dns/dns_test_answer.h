/*
 * dns_test_answer.h: answers built by hand for the cache tests (the TTL
 * offsets known): a header (QR|RD|RA + rcode), the question, then RRs owned
 * by the question name. Test code only.
 */
#ifndef ANYCACHE_TESTS_DNS_TEST_ANSWER_H
#define ANYCACHE_TESTS_DNS_TEST_ANSWER_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "core/wire.h"

struct ans {
	uint8_t b[1024];
	size_t len;
	uint16_t off[32];
	unsigned n;
	struct wbuf w;
};

/* Header (QR|RD|RA + rcode), question, then RRs added with ans_rr(). */
static inline void ans_begin(struct ans *a, uint16_t id, uint8_t rcode, const uint8_t *qname,
                             size_t qlen, uint16_t qtype, uint16_t qclass, uint16_t an, uint16_t ns)
{
	memset(a, 0, sizeof(*a));
	a->w = wbuf_init(a->b, sizeof(a->b));
	wbuf_u16(&a->w, id);
	wbuf_u16(&a->w, (uint16_t)(0x8180 | rcode));
	wbuf_u16(&a->w, 1);
	wbuf_u16(&a->w, an);
	wbuf_u16(&a->w, ns);
	wbuf_u16(&a->w, 0);
	wbuf_bytes(&a->w, qname, qlen);
	wbuf_u16(&a->w, qtype);
	wbuf_u16(&a->w, qclass);
	a->len = a->w.off;
}

/* An RR owned by the question name (compression pointer to offset 12). */
static inline void ans_rr(struct ans *a, uint16_t type, uint32_t ttl, const void *rdata,
                          uint16_t rdlen)
{
	wbuf_u16(&a->w, 0xc00c);
	wbuf_u16(&a->w, type);
	wbuf_u16(&a->w, 1);
	a->off[a->n++] = (uint16_t)a->w.off;
	wbuf_u32(&a->w, ttl);
	wbuf_u16(&a->w, rdlen);
	wbuf_bytes(&a->w, rdata, rdlen);
	cr_assert_eq(a->w.err, 0);
	a->len = a->w.off;
}

#endif
