/*
 * ctl_proto.c: the control protocol codec (see ctl_proto.h). JSON through
 * libjansson: duplicate members are rejected at parse time, trailing bytes
 * too (its EOF check), so "exactly one object per line" is checked once.
 */
#include "core/ctl_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const err_names[] = {
    [CTL_E_BAD_REQUEST] = "bad-request",
    [CTL_E_VERSION] = "unsupported-version",
    [CTL_E_UNKNOWN_COMMAND] = "unknown-command",
    [CTL_E_BAD_ARGUMENT] = "bad-argument",
    [CTL_E_NOT_FOUND] = "not-found",
    [CTL_E_NOT_IMPLEMENTED] = "not-implemented",
    [CTL_E_BUSY] = "busy",
    [CTL_E_TOO_LARGE] = "too-large",
    [CTL_E_UNAVAILABLE] = "unavailable",
    [CTL_E_INTERNAL] = "internal",
    [CTL_E_BAD_CONFIG] = "bad-config",
};
#define N_ERRS (sizeof(err_names) / sizeof(err_names[0]))

const char *ctl_err_name(enum ctl_err e)
{
	if ((unsigned)e >= N_ERRS || !err_names[e])
		return "internal";
	return err_names[e];
}

enum ctl_err ctl_err_parse(const char *s)
{
	for (unsigned i = 1; s && i < N_ERRS; i++)
		if (err_names[i] && strcmp(err_names[i], s) == 0)
			return (enum ctl_err)i;
	return 0;
}

/* msglen travels with msg: a macro keeps the call sites short. */
#define FAIL(c, ...) fail_n(code, (c), msg, msglen, __VA_ARGS__)

__attribute__((format(printf, 5, 6))) static int
fail_n(enum ctl_err *code, enum ctl_err c, char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	*code = c;
	if (msg && msglen) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

/* Words of [a-z0-9-] joined by single spaces (no leading/trailing space). */
static bool cmd_valid(const char *s, size_t n)
{
	if (n == 0 || n > CTL_PROTO_MAX_CMD || s[0] == ' ' || s[n - 1] == ' ')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == ' ') {
			if (s[i + 1] == ' ')
				return false;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

int ctl_proto_parse_request(const char *line, size_t len, struct ctl_request *out,
                            enum ctl_err *code, char *msg, size_t msglen)
{
	json_error_t jerr;
	json_t *root, *v, *cmd, *args;
	const char *key;
	json_t *val;
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (len > CTL_PROTO_MAX_REQUEST)
		return FAIL(CTL_E_TOO_LARGE, "a request is at most %u bytes",
		            CTL_PROTO_MAX_REQUEST);
	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return FAIL(CTL_E_BAD_REQUEST, "empty request: send one JSON object per line");
	/* No NUL inside a string value either (JSON_ALLOW_NUL is not given). */
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return FAIL(CTL_E_BAD_REQUEST, "not JSON: %s (column %d)", jerr.text, jerr.column);
	if (!json_is_object(root)) {
		r = FAIL(CTL_E_BAD_REQUEST, "a request is a JSON object");
		goto out;
	}
	json_object_foreach(root, key, val)
	{
		if (strcmp(key, "v") && strcmp(key, "cmd") && strcmp(key, "args")) {
			r = FAIL(CTL_E_BAD_REQUEST, "unknown member '%.40s' (v, cmd, args)", key);
			goto out;
		}
	}
	v = json_object_get(root, "v");
	if (!json_is_integer(v)) {
		r = FAIL(CTL_E_BAD_REQUEST, "\"v\" (the protocol version, an integer) is missing");
		goto out;
	}
	if (json_integer_value(v) != CTL_PROTO_VERSION) {
		r = FAIL(CTL_E_VERSION, "protocol version %lld is not spoken here (only %d)",
		         (long long)json_integer_value(v), CTL_PROTO_VERSION);
		goto out;
	}
	out->v = CTL_PROTO_VERSION;
	cmd = json_object_get(root, "cmd");
	if (!json_is_string(cmd)) {
		r = FAIL(CTL_E_BAD_REQUEST, "\"cmd\" (a string) is missing");
		goto out;
	}
	if (!cmd_valid(json_string_value(cmd), json_string_length(cmd))) {
		r = FAIL(CTL_E_BAD_REQUEST,
		         "\"cmd\" must be lowercase words separated by one space, at most %u bytes",
		         CTL_PROTO_MAX_CMD);
		goto out;
	}
	memcpy(out->cmd, json_string_value(cmd), json_string_length(cmd) + 1);
	args = json_object_get(root, "args");
	if (!args)
		goto out;
	if (!json_is_array(args)) {
		r = FAIL(CTL_E_BAD_REQUEST, "\"args\" must be an array of strings");
		goto out;
	}
	if (json_array_size(args) > CTL_PROTO_MAX_ARGS) {
		r = FAIL(CTL_E_BAD_REQUEST, "at most %u arguments", CTL_PROTO_MAX_ARGS);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(args); i++) {
		json_t *a = json_array_get(args, i);
		if (!json_is_string(a)) {
			r = FAIL(CTL_E_BAD_REQUEST, "argument %zu is not a string", i + 1);
			goto out;
		}
		if (json_string_length(a) > CTL_PROTO_MAX_ARG) {
			r = FAIL(CTL_E_BAD_REQUEST, "argument %zu is longer than %u bytes", i + 1,
			         CTL_PROTO_MAX_ARG);
			goto out;
		}
		memcpy(out->args[i], json_string_value(a), json_string_length(a) + 1);
		out->n_args++;
	}
out:
	json_decref(root);
	if (r)
		out->n_args = 0;
	return r;
}

/* One line: compact JSON (no newline can appear inside it) plus "\n". */
static char *dump_line(const json_t *j, size_t *len)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(9));
	size_t n;
	char *line;

	if (!s)
		return NULL;
	n = strlen(s);
	line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	if (len)
		*len = n + 1;
	return line;
}

char *ctl_proto_build_request(const char *cmd, const char *const *args, unsigned n_args,
                              size_t *len)
{
	json_t *root, *a;
	char *line = NULL;

	if (!cmd || !cmd_valid(cmd, strlen(cmd)) || n_args > CTL_PROTO_MAX_ARGS)
		return NULL;
	root = json_pack("{s:i, s:s}", "v", CTL_PROTO_VERSION, "cmd", cmd);
	if (!root)
		return NULL;
	if (n_args) {
		a = json_array();
		if (!a || json_object_set_new(root, "args", a))
			goto out;
		for (unsigned i = 0; i < n_args; i++) {
			/* json_string refuses invalid UTF-8: the daemon would too. */
			json_t *s =
			    strlen(args[i]) <= CTL_PROTO_MAX_ARG ? json_string(args[i]) : NULL;
			if (!s || json_array_append_new(a, s))
				goto out;
		}
	}
	line = dump_line(root, len);
	if (line && strlen(line) > CTL_PROTO_MAX_REQUEST) {
		free(line);
		line = NULL;
	}
out:
	json_decref(root);
	return line;
}

char *ctl_proto_answer_ok(const json_t *data, size_t *len)
{
	json_t *root = json_pack("{s:i, s:b}", "v", CTL_PROTO_VERSION, "ok", 1);
	char *line;

	if (!root)
		return NULL;
	if (json_object_set_new(root, "data", data ? json_deep_copy(data) : json_object()) ||
	    !json_object_get(root, "data")) {
		json_decref(root);
		return NULL;
	}
	line = dump_line(root, len);
	json_decref(root);
	return line;
}

char *ctl_proto_answer_error(enum ctl_err code, const char *message, size_t *len)
{
	char m[CTL_PROTO_MAX_MESSAGE];
	json_t *root;
	char *line;

	/* Cut, and never let invalid UTF-8 make the answer unbuildable. */
	snprintf(m, sizeof(m), "%s", message ? message : "");
	for (char *p = m; *p; p++)
		if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
			*p = '?';
	root = json_pack("{s:i, s:b, s:{s:s, s:s}}", "v", CTL_PROTO_VERSION, "ok", 0, "error",
	                 "code", ctl_err_name(code), "message", m);
	if (!root)
		return NULL;
	line = dump_line(root, len);
	json_decref(root);
	return line;
}

int ctl_proto_parse_answer(const char *line, size_t len, json_t **data, enum ctl_err *code,
                           char *msg, size_t msglen)
{
	json_error_t jerr;
	json_t *root, *ok, *v;
	enum ctl_err dummy;
	int r;

	*data = NULL;
	if (!code)
		code = &dummy;
	if (len && line[len - 1] == '\n')
		len--;
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return FAIL(CTL_E_BAD_REQUEST, "the answer is not JSON: %s", jerr.text);
	v = json_object_get(root, "v");
	ok = json_object_get(root, "ok");
	if (!json_is_object(root) || !json_is_integer(v) || !json_is_boolean(ok)) {
		r = FAIL(CTL_E_BAD_REQUEST, "the answer lacks \"v\" or \"ok\"");
		goto out;
	}
	if (json_integer_value(v) != CTL_PROTO_VERSION) {
		r = FAIL(CTL_E_VERSION, "the daemon answered with protocol version %lld",
		         (long long)json_integer_value(v));
		goto out;
	}
	if (json_is_true(ok)) {
		json_t *d = json_object_get(root, "data");
		if (!json_is_object(d)) {
			r = FAIL(CTL_E_BAD_REQUEST, "an ok answer without a \"data\" object");
			goto out;
		}
		*data = json_incref(d);
		r = 0;
		goto out;
	}
	json_t *e = json_object_get(root, "error");
	const char *c = json_string_value(json_object_get(e, "code"));
	const char *m = json_string_value(json_object_get(e, "message"));
	if (!c) {
		r = FAIL(CTL_E_BAD_REQUEST, "an error answer without an error code");
		goto out;
	}
	*code = ctl_err_parse(c);
	if (!*code)
		*code = CTL_E_INTERNAL;
	if (msg && msglen)
		snprintf(msg, msglen, "%s", m ? m : c);
	r = 1;
out:
	json_decref(root);
	return r;
}
