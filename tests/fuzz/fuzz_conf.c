/*
 * libFuzzer harness: the YAML configuration loader (conf_load_buffer, through
 * libcyaml and libyaml). Any bytes load or are refused with diagnostics; a
 * configuration that loads prints (conf_print) to YAML that loads back to the
 * identical struct (conf.h's promise) and prints the same text again.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *print(const struct conf *c, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f || conf_print(f, c) != 0)
		__builtin_trap();
	fclose(f);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct conf a, b;
	static struct conf_diag diag;

	int r = conf_load_buffer((const char *)data, size, "fuzz", NULL, &a, &diag);
	if (r != 0) {
		if (r != -EINVAL && r != -ENOMEM)
			__builtin_trap();
		if (diag.count == 0)
			__builtin_trap(); /* a refusal says why */
		return 0;
	}
	size_t l1, l2;
	char *t1 = print(&a, &l1);
	if (conf_load_buffer(t1, l1, "printed", NULL, &b, &diag) != 0)
		__builtin_trap();
	if (memcmp(&a, &b, sizeof(a)))
		__builtin_trap();
	char *t2 = print(&b, &l2);
	if (l1 != l2 || memcmp(t1, t2, l1))
		__builtin_trap();
	free(t1);
	free(t2);
	return 0;
}
