/*
 * dns_cookie_mac.h: SipHash-2-4 for DNS cookies through OpenSSL 3's EVP_MAC
 * "SIPHASH" (glue; the cookie logic is dns_cookie.h).
 *
 * One context per secret, keyed once; each MAC re-initialises it without a
 * key (OpenSSL keeps the keyed state), so the hot path allocates nothing.
 * Threads: a struct dns_cookie_mac is not shared; each worker makes its own
 * from the node's secrets.
 */
#ifndef ANYCACHE_DNS_COOKIE_MAC_H
#define ANYCACHE_DNS_COOKIE_MAC_H

#include <stdint.h>

#include "dns/dns_cookie.h"

struct dns_cookie_mac;

/* n secrets (1..DNS_COOKIE_MAX_SECRETS), secret 0 the current one. 0 or -errno. */
int dns_cookie_mac_new(const uint8_t (*secrets)[DNS_COOKIE_SECRET_LEN], unsigned n,
                       struct dns_cookie_mac **out);
void dns_cookie_mac_free(struct dns_cookie_mac *m);

/* A dns_cookie_mac_fn; ctx is the struct dns_cookie_mac. */
int dns_cookie_mac_siphash(void *ctx, unsigned key_idx, const uint8_t *msg, size_t len,
                           uint8_t out[8]);

/* The keys for dns_cookie_check over m. */
struct dns_cookie_keys dns_cookie_mac_keys(struct dns_cookie_mac *m);

#endif
