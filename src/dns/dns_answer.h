/*
 * dns_answer.h: turning an upstream answer into a client answer (pure).
 *
 * The path is: upstream answer --normalize--> stored form (cache) --patch ID,
 * question case, TTLs (dns_cache_lookup, or the forwarder's fresh copy)-->
 * finish for this client (header bits, OPT, truncation).
 *
 * The stored form has no OPT: the upstream's OPT carries its own buffer
 * size, cookies and NSID, none of which a client may see (RFC 7873 §5.3,
 * RFC 6891 §7); each client gets our own OPT iff it sent one. AA is cleared
 * (we are not authoritative, RFC 1035 §4.1.1) and RA set (we recurse).
 */
#ifndef ANYCACHE_DNS_ANSWER_H
#define ANYCACHE_DNS_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns_wire.h"

/* Room a finished answer needs beyond the stored form: our OPT RR. */
#define DNS_ANSWER_OPT_LEN 11

/*
 * Writes the stored form of `ans` (scanned into *s) to out. Returns its
 * length, -EMSGSIZE, or -EPROTO when the answer cannot be passed on as it is
 * (no question, or an extended RCODE only meaningful between us and the
 * upstream, e.g. BADCOOKIE). On success *s describes `out`: exactly what
 * dns_scan(out) would give, patched rather than scanned again (the cut at the
 * OPT moves no offset before it). An answer with more records than
 * DNS_MAX_TTL_OFFSETS is still returned, with s->n_ttl > DNS_MAX_TTL_OFFSETS
 * to say it must not be cached. Additional records that follow
 * the OPT are dropped with it (their compression pointers could not move).
 */
int dns_answer_normalize(const uint8_t *ans, size_t len, struct dns_scan *s, uint8_t *out,
                         size_t cap);

/*
 * Clamps the TTL of every record of a stored-form answer (no OPT: every RR
 * has a real TTL) to [lo, hi] in place, a TTL with the top bit set read as
 * 0 first (RFC 2181 §8). Walks the message itself, so answers with more
 * records than dns_scan tracks are clamped too. 0, or -EBADMSG (then buf is
 * untouched: the walk checks the whole message before it writes).
 */
int dns_answer_clamp_ttls(uint8_t *buf, size_t len, uint32_t lo, uint32_t hi);

/*
 * Finishes a stored-form answer in buf[0..len) for request `req`: RD and CD
 * echo the query, AD is cleared unless the client sent DO or AD (RFC 6840
 * §5.7-5.8), our OPT is appended when the client sent EDNS, and if the
 * result exceeds `limit` it is cut to header + question (+ OPT) with TC=1
 * (RFC 1035 §4.2.1, RFC 6891 §7). cap must leave DNS_ANSWER_OPT_LEN bytes
 * of room. Returns the final length or -EMSGSIZE.
 */
int dns_answer_finish(uint8_t *buf, size_t len, size_t cap, const struct dns_request *req,
                      size_t limit);

#endif
