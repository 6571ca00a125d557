/*
 * libFuzzer harness: the control protocol (core/ctl_proto.h), both sides.
 * A request that parses is built again from its parts and must parse to the
 * same request; any line given to the client's answer parser must come back
 * as ok, error or -EBADMSG; an error answer carrying the input as its message
 * must parse back as that error.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctl_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctl_request a, b;
	enum ctl_err code;
	char msg[CTL_PROTO_MAX_MESSAGE + 1];
	const char *line = (const char *)data;

	if (ctl_proto_parse_request(line, size, &a, &code, msg, sizeof(msg)) == 0) {
		const char *args[CTL_PROTO_MAX_ARGS];
		size_t len;
		for (unsigned i = 0; i < a.n_args; i++)
			args[i] = a.args[i];
		char *again = ctl_proto_build_request(a.cmd, args, a.n_args, &len);
		if (!again)
			__builtin_trap(); /* what parsed must build */
		if (ctl_proto_parse_request(again, len, &b, &code, msg, sizeof(msg)) != 0 ||
		    strcmp(a.cmd, b.cmd) || a.n_args != b.n_args)
			__builtin_trap();
		for (unsigned i = 0; i < a.n_args; i++)
			if (strcmp(a.args[i], b.args[i]))
				__builtin_trap();
		free(again);
	} else if (strnlen(msg, sizeof(msg)) == sizeof(msg)) {
		__builtin_trap(); /* the message is NUL-terminated */
	}

	json_t *d = NULL;
	int r = ctl_proto_parse_answer(line, size, &d, &code, msg, sizeof(msg));
	if (r != 0 && r != 1 && r != -EBADMSG)
		__builtin_trap();
	if ((r == 0) != (d != NULL))
		__builtin_trap();
	json_decref(d);

	/* Our own error answer with these bytes as its message. */
	char text[CTL_PROTO_MAX_MESSAGE];
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	memcpy(text, data, n);
	text[n] = '\0';
	size_t alen;
	char *ans = ctl_proto_answer_error(CTL_E_BAD_REQUEST, text, &alen);
	if (ans) {
		d = NULL;
		if (ctl_proto_parse_answer(ans, alen, &d, &code, msg, sizeof(msg)) != 1 ||
		    code != CTL_E_BAD_REQUEST)
			__builtin_trap();
		free(ans);
	}
	return 0;
}
