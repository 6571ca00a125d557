/* libFuzzer harness: any bytes as a BFD Control packet; an accepted one must rebuild to the same
 * mandatory section, but for Length (always 24) and F when P is also set (§6.8.7 forbids sending
 * both; §6.8.6 does not discard a packet that has them). */
#include <string.h>

#include "bgp/bfd_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bfd_pkt p;
	uint8_t out[BFD_PKT_LEN];
	if (bfd_parse(data, size, &p, NULL) < 0)
		return 0;
	uint8_t pf = p.poll && p.final ? 0x10 : 0;
	p.final = p.final && !pf;
	if (bfd_build(&p, out, sizeof(out)) != BFD_PKT_LEN || out[0] != data[0] ||
	    (out[1] | pf) != data[1] || out[2] != data[2] || memcmp(out + 4, data + 4, 20))
		__builtin_trap();
	return 0;
}
