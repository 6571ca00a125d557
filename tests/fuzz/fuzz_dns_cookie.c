/* libFuzzer harness: a request's COOKIE option through the RFC 7873 checks, and the
 * cookie added to the answer built for it (which must still scan). */
#include <string.h>

#include "dns/dns_cookie.h"
#include "dns/dns_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not SipHash: any deterministic function of key and message serves the checks. */
static int fake_mac(void *ctx, unsigned idx, const uint8_t *msg, size_t len, uint8_t out[8])
{
	uint64_t h = 0xcbf29ce484222325ull ^ idx;
	(void)ctx;
	for (size_t i = 0; i < len; i++)
		h = (h ^ msg[i]) * 0x100000001b3ull;
	memcpy(out, &h, 8);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t ip[16] = {192, 0, 2, 1};
	struct dns_cookie_keys k = {.mac = fake_mac, .n = 2};
	struct dns_cookie_result r, again;
	struct dns_request req;
	uint8_t rcode, out[1500];

	if (dns_request_parse(data, size, &req, &rcode) != 0 || !req.has_cookie)
		return 0;
	if (dns_cookie_check(&k, data + req.cookie_off, req.cookie_len, ip, 4, 1000000, &r) != 0)
		__builtin_trap();
	if ((r.verdict == DNS_COOKIE_MALFORMED) != (req.cookie_len < 8 || req.cookie_len > 40 ||
	                                            (req.cookie_len > 8 && req.cookie_len < 16)))
		__builtin_trap();
	if (r.verdict == DNS_COOKIE_MALFORMED)
		return 0;
	/* What we hand out is good when it comes back. */
	uint8_t mine[DNS_COOKIE_LEN];
	memcpy(mine, r.answer, sizeof(mine));
	if (dns_cookie_check(&k, mine, sizeof(mine), ip, 4, 1000000, &again) != 0 ||
	    again.verdict != DNS_COOKIE_VALID)
		__builtin_trap();
	struct wbuf b = wbuf_init(out, sizeof(out));
	int n = dns_build_error(&b, &req, DNS_RCODE_BADCOOKIE);
	if (n > 0) {
		struct dns_scan scan;
		int m = dns_cookie_append(out, (size_t)n, sizeof(out), r.answer);
		if (m > 0 && dns_scan(out, (size_t)m, &scan) != 0)
			__builtin_trap();
	}
	return 0;
}
