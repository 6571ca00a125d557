/* libFuzzer harness: header then body of any bytes, in both AS widths; errors must name a
 * NOTIFICATION. */
#include "bgp/bgp_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct bgp_ctx ctx[2] = {
	    {.as4 = true, .addpath_rx = {true, false}, .ext_msg = true}, {.as4 = false}};
	static struct bgp_msg m;
	static struct bgp_notify err;
	for (int i = 0; i < 2; i++)
		if (bgp_msg_parse(data, size, &ctx[i], &m, &err) < 0 && size >= BGP_HDR_LEN &&
		    m.hdr.type != BGP_MSG_NOTIFICATION && err.code == 0)
			__builtin_trap(); /* every rejection of a framed message says what to send
			                   */
	return 0;
}
