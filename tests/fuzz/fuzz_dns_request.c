/* libFuzzer harness: the server's request path and the answer scanner on any bytes. */
#include "dns/dns_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_request req;
	struct dns_scan scan;
	uint8_t rcode, out[1500];
	if (dns_request_parse(data, size, &req, &rcode) == 0) {
		struct wbuf b = wbuf_init(out, sizeof(out));
		int n = dns_build_error(&b, &req,
		                        rcode == DNS_RCODE_NOERROR ? DNS_RCODE_SERVFAIL : rcode);
		if (n > 0 && dns_scan(out, (size_t)n, &scan) != 0)
			__builtin_trap(); /* what we build must scan */
	}
	if (dns_scan(data, size, &scan) == 0) {
		struct wbuf b = wbuf_init(out, sizeof(out));
		dns_build_truncated(&b, data, size, 512);
	}
	return 0;
}
