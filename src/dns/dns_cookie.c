/*
 * dns_cookie.c: the COOKIE option checks of RFC 7873 §5.2 and the server
 * cookie of RFC 9018 §4. Pure: the MAC is injected (dns_cookie.h).
 */
#include "dns/dns_cookie.h"

#include <errno.h>
#include <string.h>

#include "core/wire.h"
#include "dns/dns_wire.h"

/* The MAC input: client cookie | version | reserved | timestamp | client IP. */
#define MAC_IN_MAX (DNS_COOKIE_CLIENT_LEN + 8 + 16)

int dns_cookie_server(const struct dns_cookie_keys *k, unsigned key_idx,
                      const uint8_t cc[DNS_COOKIE_CLIENT_LEN], const uint8_t reserved[3],
                      uint32_t ts, const uint8_t *ip, size_t ip_len,
                      uint8_t out[DNS_COOKIE_SERVER_LEN])
{
	uint8_t in[MAC_IN_MAX];
	struct wbuf b = wbuf_init(in, sizeof(in));
	int r;

	if ((ip_len != 4 && ip_len != 16) || key_idx >= k->n)
		return -EINVAL;
	wbuf_bytes(&b, cc, DNS_COOKIE_CLIENT_LEN);
	wbuf_u8(&b, DNS_COOKIE_VERSION);
	wbuf_bytes(&b, reserved, 3);
	wbuf_u32(&b, ts);
	size_t head = b.off; /* version .. timestamp start the server cookie */
	wbuf_bytes(&b, ip, ip_len);
	if (b.err)
		return b.err;
	r = k->mac(k->ctx, key_idx, in, b.off, out + 8);
	if (r < 0)
		return r;
	memcpy(out, in + DNS_COOKIE_CLIENT_LEN, head - DNS_COOKIE_CLIENT_LEN);
	return 0;
}

/* Constant time: how many octets match tells an attacker nothing. */
static bool same8(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;

	for (unsigned i = 0; i < 8; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

static int fresh(const struct dns_cookie_keys *k, const uint8_t *cc, const uint8_t *ip,
                 size_t ip_len, uint32_t now_s, struct dns_cookie_result *r)
{
	static const uint8_t zero[3];

	memcpy(r->answer, cc, DNS_COOKIE_CLIENT_LEN);
	return dns_cookie_server(k, 0, cc, zero, now_s, ip, ip_len,
	                         r->answer + DNS_COOKIE_CLIENT_LEN);
}

int dns_cookie_check(const struct dns_cookie_keys *k, const uint8_t *opt, size_t len,
                     const uint8_t *ip, size_t ip_len, uint32_t now_s, struct dns_cookie_result *r)
{
	struct wire w = wire_init(opt, len);
	uint8_t cc[DNS_COOKIE_CLIENT_LEN], reserved[3], mine[DNS_COOKIE_SERVER_LEN];
	const uint8_t *hash;

	memset(r, 0, sizeof(*r));
	/* RFC 7873 §5.2.2: shorter than a client cookie, longer than 40 octets,
	 * or a server cookie shorter than 8 octets (lengths 9..15). */
	if (len < DNS_COOKIE_CLIENT_LEN || len > DNS_COOKIE_CLIENT_LEN + DNS_COOKIE_SERVER_MAX ||
	    (len > DNS_COOKIE_CLIENT_LEN && len < DNS_COOKIE_CLIENT_LEN + DNS_COOKIE_SERVER_MIN)) {
		r->verdict = DNS_COOKIE_MALFORMED;
		return 0;
	}
	wire_bytes(&w, cc, sizeof(cc));
	if (len == DNS_COOKIE_CLIENT_LEN) {
		r->verdict = DNS_COOKIE_CLIENT_ONLY;
		return fresh(k, cc, ip, ip_len, now_s, r);
	}
	/* Only a 16-octet version-1 cookie can be ours (RFC 9018 §4.1). */
	uint8_t version = wire_u8(&w);
	wire_bytes(&w, reserved, sizeof(reserved));
	uint32_t ts = wire_u32(&w);
	hash = wire_ptr(&w, 8);
	int32_t age = (int32_t)(now_s - ts); /* RFC 1982 serial arithmetic */
	r->verdict = DNS_COOKIE_BAD;
	if (wire_end(&w) != 0 || version != DNS_COOKIE_VERSION || age > DNS_COOKIE_MAX_AGE_S ||
	    age < -DNS_COOKIE_MAX_AHEAD_S)
		return fresh(k, cc, ip, ip_len, now_s, r);
	for (unsigned i = 0; i < k->n; i++) {
		int e = dns_cookie_server(k, i, cc, reserved, ts, ip, ip_len, mine);
		if (e < 0)
			return e;
		if (!same8(mine + 8, hash))
			continue;
		r->verdict = DNS_COOKIE_VALID;
		if (i == 0 && age < DNS_COOKIE_RENEW_S) {
			memcpy(r->answer, opt, DNS_COOKIE_LEN);
			return 0;
		}
		/* RFC 9018 §4.3 (half its life gone) and §5 (answers use the new secret). */
		r->renewed = true;
		return fresh(k, cc, ip, ip_len, now_s, r);
	}
	return fresh(k, cc, ip, ip_len, now_s, r);
}

int dns_cookie_append(uint8_t *buf, size_t len, size_t cap, const uint8_t *cookie)
{
	/* Our OPT (RFC 6891 §6.1.2): root owner, TYPE 41, CLASS, TTL, RDLENGTH 0. */
	const size_t opt_len = 11;

	if (len < DNS_HDR_LEN + opt_len || wire_get_u16_at(buf + 10) == 0)
		return -EINVAL;
	const uint8_t *o = buf + len - opt_len;
	if (o[0] != 0 || wire_get_u16_at(o + 1) != DNS_TYPE_OPT || wire_get_u16_at(o + 9) != 0)
		return -EINVAL;
	if (cap < len || cap - len < DNS_COOKIE_OPT_LEN)
		return -EMSGSIZE;
	struct wbuf b = wbuf_init(buf + len, DNS_COOKIE_OPT_LEN);
	wbuf_u16(&b, DNS_EDNS_OPT_COOKIE);
	wbuf_u16(&b, DNS_COOKIE_LEN);
	wbuf_bytes(&b, cookie, DNS_COOKIE_LEN);
	wire_set_u16_at(buf + len - 2, DNS_COOKIE_OPT_LEN);
	return (int)(len + DNS_COOKIE_OPT_LEN);
}
