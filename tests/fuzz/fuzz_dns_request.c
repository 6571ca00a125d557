/* libFuzzer harness: the server's request path and the answer scanner on any bytes. */
#include <errno.h>

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
	int r = dns_scan(data, size, &scan);
	if (r == 0) {
		struct wbuf b = wbuf_init(out, sizeof(out));
		dns_build_truncated(&b, data, size, 512);
	}
	if ((r == 0 || r == -E2BIG) && scan.has_question) {
		/* The forwarder's two question checks must agree, case folding included. */
		uint8_t lc[DNS_NAME_MAX];
		dns_name_lower(lc, data + scan.q_off, scan.qname_len);
		if (dns_match_question(data, size, lc, scan.qname_len, scan.qtype, scan.qclass) !=
		    dns_scan_match_question(data, &scan, lc, scan.qname_len, scan.qtype,
		                            scan.qclass))
			__builtin_trap();
	}
	(void)dns_match_question(data, size, (const uint8_t *)"\3www\7example\0", 13, 1, 1);
	return 0;
}
