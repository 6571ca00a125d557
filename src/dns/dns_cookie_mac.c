#include "dns/dns_cookie_mac.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>

struct dns_cookie_mac {
	EVP_MAC *alg;
	EVP_MAC_CTX *ctx[DNS_COOKIE_MAX_SECRETS];
	unsigned n;
};

void dns_cookie_mac_free(struct dns_cookie_mac *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < m->n; i++)
		EVP_MAC_CTX_free(m->ctx[i]);
	EVP_MAC_free(m->alg);
	free(m);
}

int dns_cookie_mac_new(const uint8_t (*secrets)[DNS_COOKIE_SECRET_LEN], unsigned n,
                       struct dns_cookie_mac **out)
{
	struct dns_cookie_mac *m;
	/* RFC 9018 §4.4: 64-bit output (OpenSSL's SipHash defaults to 128). */
	size_t size = 8;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
	    OSSL_PARAM_END,
	};

	*out = NULL;
	if (n == 0 || n > DNS_COOKIE_MAX_SECRETS)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->alg = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	if (!m->alg) {
		free(m);
		return -ENOTSUP;
	}
	for (unsigned i = 0; i < n; i++) {
		m->ctx[i] = EVP_MAC_CTX_new(m->alg);
		m->n = i + 1;
		if (!m->ctx[i] ||
		    !EVP_MAC_init(m->ctx[i], secrets[i], DNS_COOKIE_SECRET_LEN, params)) {
			dns_cookie_mac_free(m);
			return -ENOMEM;
		}
	}
	*out = m;
	return 0;
}

int dns_cookie_mac_siphash(void *ctx, unsigned key_idx, const uint8_t *msg, size_t len,
                           uint8_t out[8])
{
	struct dns_cookie_mac *m = ctx;
	size_t ol = 0;

	if (key_idx >= m->n)
		return -EINVAL;
	EVP_MAC_CTX *c = m->ctx[key_idx];
	/* No key: OpenSSL 3 restarts from the keyed state set by dns_cookie_mac_new. */
	if (!EVP_MAC_init(c, NULL, 0, NULL) || !EVP_MAC_update(c, msg, len) ||
	    !EVP_MAC_final(c, out, &ol, 8) || ol != 8)
		return -EIO;
	return 0;
}

struct dns_cookie_keys dns_cookie_mac_keys(struct dns_cookie_mac *m)
{
	struct dns_cookie_keys k = {.mac = dns_cookie_mac_siphash, .ctx = m, .n = m->n};
	return k;
}
