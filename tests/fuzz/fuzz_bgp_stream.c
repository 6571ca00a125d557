/*
 * libFuzzer harness: BGP stream framing (bgp_frame, as bgp_session's frame()
 * uses it) and every framed message through the message parser. The stream
 * arrives in chunks whose sizes come from the first input byte; the messages
 * framed and the framing error must be the same whatever the chunking, every
 * framing error names a NOTIFICATION (RFC 4271 §6.1), and every framed
 * message lies inside the stream.
 */
#include <string.h>

#include "bgp/bgp_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 256

struct framed {
	size_t n, len[MAX_MSGS];
	int end;
	uint8_t code, subcode;
};

static void run(const uint8_t *stream, size_t len, unsigned step, const struct bgp_ctx *ctx,
                struct framed *f)
{
	static struct bgp_msg m;
	static struct bgp_notify err;
	size_t have = 0, off = 0;

	memset(f, 0, sizeof(*f));
	while (have < len) {
		size_t chunk = step ? 1 + (have * 13 + step) % step : len;
		have += chunk < len - have ? chunk : len - have;
		for (;;) {
			struct bgp_hdr hdr;
			int r = bgp_frame(stream + off, have - off, ctx, &hdr, &err);
			if (r < 0) {
				if (err.code != BGP_ERR_HEADER)
					__builtin_trap();
				f->end = r;
				f->code = err.code;
				f->subcode = err.subcode;
				return;
			}
			if (r == 0)
				break;
			if (off + (size_t)r > have || (size_t)r < BGP_HDR_LEN)
				__builtin_trap();
			if (f->n < MAX_MSGS)
				f->len[f->n] = (size_t)r;
			f->n++;
			if (bgp_msg_parse(stream + off, (size_t)r, ctx, &m, &err) < 0 &&
			    m.hdr.type != BGP_MSG_NOTIFICATION && err.code == 0)
				__builtin_trap();
			off += (size_t)r;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct bgp_ctx ctx[2] = {
	    {.as4 = true, .addpath_rx = {true, false}, .ext_msg = true}, {.as4 = false}};
	static struct framed whole, chunked;

	if (size < 1)
		return 0;
	const struct bgp_ctx *c = &ctx[data[0] >> 7];
	run(data + 1, size - 1, 0, c, &whole);
	run(data + 1, size - 1, data[0] % 64 + 1, c, &chunked);
	if (whole.n != chunked.n || whole.end != chunked.end || whole.code != chunked.code ||
	    whole.subcode != chunked.subcode)
		__builtin_trap();
	size_t n = whole.n < MAX_MSGS ? whole.n : MAX_MSGS;
	if (memcmp(whole.len, chunked.len, n * sizeof(size_t)))
		__builtin_trap();
	return 0;
}
