/* libFuzzer harness: the metrics endpoint's HTTP request head parser on any bytes. */
#include <string.h>

#include "core/http_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_req r;
	int n = http_req_parse(data, size, &r);

	if (n > 0) {
		/* A complete head lies within the input, with a path that starts with '/'. */
		if ((size_t)n > size || r.path[0] != '/' || strlen(r.path) > HTTP_REQ_MAX_PATH ||
		    r.minor > 1)
			__builtin_trap();
	} else if (n != 0 && n != -400 && n != -414 && n != -431 && n != -505) {
		__builtin_trap();
	}
	/* Every prefix parses without a crash and is never "complete" beyond its length. */
	for (size_t k = size > 64 ? size - 64 : 0; k < size; k++)
		if (http_req_parse(data, k, &r) > (int)k)
			__builtin_trap();
	return 0;
}
