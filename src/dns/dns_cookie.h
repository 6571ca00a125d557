/*
 * dns_cookie.h: DNS Cookies (RFC 7873) with the interoperable server cookie
 * of RFC 9018 (pure).
 *
 * The server cookie is Version (1) | Reserved (3) | Timestamp (4, seconds
 * since the epoch) | Hash (8), where Hash = SipHash-2-4 keyed with the
 * server secret over Client Cookie | Version | Reserved | Timestamp | Client
 * IP (4 or 16 octets), RFC 9018 §4.4. Every node behind a VIP shares the
 * secret, so a cookie learned from one node is good on all of them (§3).
 *
 * This module never computes SipHash itself: the MAC comes in through a
 * function pointer, so the codec and the checks stay pure and testable; the
 * one implementation (OpenSSL 3's EVP_MAC "SIPHASH") is dns_cookie_mac.c.
 * Secrets are referred to by index: 0 is the current one (every cookie we
 * make uses it), 1.. are older ones still accepted (rollover, RFC 9018 §5).
 *
 * Ownership: the check reads the option data where the request parser found
 * it (a view into the packet) and writes what to answer into the caller's
 * struct, which owns its copy: the answer may go out long after the packet
 * is gone (a cache miss).
 */
#ifndef ANYCACHE_DNS_COOKIE_H
#define ANYCACHE_DNS_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_COOKIE_CLIENT_LEN  8 /* RFC 7873 §4 */
#define DNS_COOKIE_SERVER_MIN  8 /* RFC 7873 §4: server cookie 8..32 octets */
#define DNS_COOKIE_SERVER_MAX  32
#define DNS_COOKIE_SERVER_LEN  16 /* RFC 9018 §4: what we make */
#define DNS_COOKIE_LEN         (DNS_COOKIE_CLIENT_LEN + DNS_COOKIE_SERVER_LEN)
#define DNS_COOKIE_OPT_LEN     (4 + DNS_COOKIE_LEN) /* option code, length, data */
#define DNS_COOKIE_SECRET_LEN  16                   /* SipHash-2-4 key */
#define DNS_COOKIE_VERSION     1                    /* RFC 9018 §4.1 */
#define DNS_COOKIE_MAX_SECRETS 2                    /* the current one and one being rolled out */
/*
 * RFC 9018 §4.3: accept cookies made up to 1 hour ago and up to 5 minutes
 * "in the future" (clock skew between the nodes of an anycast set); make a
 * new one once the client's is older than half an hour.
 */
#define DNS_COOKIE_MAX_AGE_S   3600
#define DNS_COOKIE_MAX_AHEAD_S 300
#define DNS_COOKIE_RENEW_S     1800

/*
 * SipHash-2-4 with secret number key_idx, 64-bit output in out (the octets
 * SipHash produces, little-endian, as RFC 9018 puts them on the wire).
 * Returns 0 or -errno.
 */
typedef int (*dns_cookie_mac_fn)(void *ctx, unsigned key_idx, const uint8_t *msg, size_t len,
                                 uint8_t out[8]);

struct dns_cookie_keys {
	dns_cookie_mac_fn mac;
	void *ctx;
	unsigned n; /* secrets 0..n-1; 1..DNS_COOKIE_MAX_SECRETS */
};

/* RFC 7873 §5.2: what the request's COOKIE option says. */
enum dns_cookie_verdict {
	DNS_COOKIE_NONE = 0,    /* §5.2.1: no COOKIE option */
	DNS_COOKIE_MALFORMED,   /* §5.2.2: length not 8 or 16..40: FORMERR */
	DNS_COOKIE_CLIENT_ONLY, /* §5.2.3 */
	DNS_COOKIE_BAD,         /* §5.2.4: not ours, other version, expired, or another secret */
	DNS_COOKIE_VALID,       /* §5.2.5: made by us, for this client, recently */
};

struct dns_cookie_result {
	enum dns_cookie_verdict verdict;
	bool renewed; /* VALID but a new server cookie was made (old secret or age) */
	/* For CLIENT_ONLY, BAD and VALID: the COOKIE option data to answer with,
	 * the client's cookie and a good server cookie of ours (RFC 7873 §5.2.3-5). */
	uint8_t answer[DNS_COOKIE_LEN];
};

/*
 * Judges the COOKIE option data opt[0..len) of a request from client address
 * ip (4 or 16 octets) at wall-clock time now_s (seconds since the epoch,
 * compared in serial-number arithmetic, RFC 9018 §4.3, RFC 1982), and fills
 * r. A valid server cookie younger than DNS_COOKIE_RENEW_S made with secret
 * 0 is echoed as it is (§5.2.5 allows copying it; it saves a MAC); any other
 * answer carries a new one made with secret 0 and timestamp now_s.
 * Returns 0, or -errno from the MAC (r->verdict is then unusable).
 */
int dns_cookie_check(const struct dns_cookie_keys *k, const uint8_t *opt, size_t len,
                     const uint8_t *ip, size_t ip_len, uint32_t now_s, struct dns_cookie_result *r);

/*
 * Makes the RFC 9018 server cookie for client cookie cc, reserved octets
 * (zero in what we make; kept when verifying, Appendix A.3), timestamp ts,
 * with secret key_idx, into out[16]. Returns 0 or -errno.
 */
int dns_cookie_server(const struct dns_cookie_keys *k, unsigned key_idx,
                      const uint8_t cc[DNS_COOKIE_CLIENT_LEN], const uint8_t reserved[3],
                      uint32_t ts, const uint8_t *ip, size_t ip_len,
                      uint8_t out[DNS_COOKIE_SERVER_LEN]);

/*
 * Adds a COOKIE option with data cookie[0..DNS_COOKIE_LEN) to the message
 * buf[0..len), whose last record must be an OPT with the root owner and no
 * options (what every builder of ours puts last when the query had EDNS).
 * Returns the new length, -EMSGSIZE when cap is too small, or -EINVAL when
 * the message does not end with such an OPT (it is left unchanged).
 */
int dns_cookie_append(uint8_t *buf, size_t len, size_t cap, const uint8_t *cookie);

#endif
