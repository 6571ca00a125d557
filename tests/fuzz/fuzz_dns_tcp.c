/*
 * libFuzzer harness: DNS over TCP stream framing (dns_tcp_frame, as
 * dns_server's conn_pump uses it). The stream arrives in chunks whose sizes
 * come from the first input byte; the messages framed must be the same
 * whatever the chunking, each must lie inside the stream, and each goes
 * through the request parser.
 */
#include <string.h>

#include "dns/dns_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 512

struct framed {
	size_t n, off[MAX_MSGS], len[MAX_MSGS];
	int end; /* 0: ran out of bytes, -EBADMSG: framing lost */
};

/* Feeds stream[0..len) in chunks of 1..step bytes, framing as a server would. */
static void run(const uint8_t *stream, size_t len, unsigned step, struct framed *f)
{
	size_t have = 0, off = 0; /* bytes received; start of the unconsumed ones */

	memset(f, 0, sizeof(*f));
	while (have < len) {
		size_t chunk = step ? 1 + (have * 7 + step) % step : len;
		have += chunk < len - have ? chunk : len - have;
		for (;;) {
			int r = dns_tcp_frame(stream + off, have - off);
			if (r < 0) {
				f->end = r;
				return;
			}
			if (r == 0)
				break;
			if (off + 2 + (size_t)r > have || (size_t)r < DNS_HDR_LEN)
				__builtin_trap();
			if (f->n < MAX_MSGS) {
				f->off[f->n] = off + 2;
				f->len[f->n] = (size_t)r;
			}
			f->n++;
			struct dns_request req;
			uint8_t rcode;
			(void)dns_request_parse(stream + off + 2, (size_t)r, &req, &rcode);
			off += 2 + (size_t)r;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct framed whole, chunked;

	if (size < 1)
		return 0;
	run(data + 1, size - 1, 0, &whole);
	run(data + 1, size - 1, data[0] % 64 + 1, &chunked);
	if (whole.n != chunked.n || whole.end != chunked.end)
		__builtin_trap();
	size_t n = whole.n < MAX_MSGS ? whole.n : MAX_MSGS;
	if (memcmp(whole.off, chunked.off, n * sizeof(size_t)) ||
	    memcmp(whole.len, chunked.len, n * sizeof(size_t)))
		__builtin_trap();
	return 0;
}
