/* Unit tests for the control protocol codec (src/core/ctl_proto.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctl_proto.h"

static int parse(const char *line, struct ctl_request *r, enum ctl_err *code, char *msg)
{
	return ctl_proto_parse_request(line, strlen(line), r, code, msg, 256);
}

Test(ctl_proto, request_round_trip)
{
	const char *args[] = {"www.example.test"};
	struct ctl_request r;
	enum ctl_err code = 0;
	char msg[256];
	size_t len = 0;
	char *line = ctl_proto_build_request("cache flush", args, 1, &len);

	cr_assert_not_null(line);
	cr_assert_eq(len, strlen(line));
	cr_assert_eq(line[len - 1], '\n');
	cr_assert_null(memchr(line, '\n', len - 1), "one line");
	cr_assert_eq(ctl_proto_parse_request(line, len, &r, &code, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(r.v, 1);
	cr_assert_str_eq(r.cmd, "cache flush");
	cr_assert_eq(r.n_args, 1);
	cr_assert_str_eq(r.args[0], "www.example.test");
	free(line);
	/* No args member at all; CRLF tolerated. */
	cr_assert_eq(parse("{\"v\":1,\"cmd\":\"status\"}\r\n", &r, &code, msg), 0, "%s", msg);
	cr_assert_str_eq(r.cmd, "status");
	cr_assert_eq(r.n_args, 0);
	/* Order of members and whitespace do not matter. */
	cr_assert_eq(
	    parse(" { \"args\" : [ ] , \"cmd\":\"show bgp\", \"v\" : 1 } ", &r, &code, msg), 0,
	    "%s", msg);
	cr_assert_str_eq(r.cmd, "show bgp");
}

Test(ctl_proto, malformed_requests_say_why)
{
	static const struct {
		const char *line;
		enum ctl_err code;
		const char *says;
	} cases[] = {
	    {"", CTL_E_BAD_REQUEST, "empty"},
	    {"\n", CTL_E_BAD_REQUEST, "empty"},
	    {"status\n", CTL_E_BAD_REQUEST, "not JSON"},
	    {"[1,2]", CTL_E_BAD_REQUEST, "object"},
	    {"{\"v\":1,\"cmd\":\"status\"} {}", CTL_E_BAD_REQUEST, "not JSON"},
	    {"{\"v\":1,\"cmd\":\"status\",\"cmd\":\"x\"}", CTL_E_BAD_REQUEST, "not JSON"},
	    {"{\"cmd\":\"status\"}", CTL_E_BAD_REQUEST, "\"v\""},
	    {"{\"v\":\"1\",\"cmd\":\"status\"}", CTL_E_BAD_REQUEST, "\"v\""},
	    {"{\"v\":2,\"cmd\":\"status\"}", CTL_E_VERSION, "version 2"},
	    {"{\"v\":1}", CTL_E_BAD_REQUEST, "\"cmd\""},
	    {"{\"v\":1,\"cmd\":7}", CTL_E_BAD_REQUEST, "\"cmd\""},
	    {"{\"v\":1,\"cmd\":\"Show bgp\"}", CTL_E_BAD_REQUEST, "lowercase"},
	    {"{\"v\":1,\"cmd\":\"show  bgp\"}", CTL_E_BAD_REQUEST, "lowercase"},
	    {"{\"v\":1,\"cmd\":\" status\"}", CTL_E_BAD_REQUEST, "lowercase"},
	    {"{\"v\":1,\"cmd\":\"\"}", CTL_E_BAD_REQUEST, "lowercase"},
	    {"{\"v\":1,\"cmd\":\"status\",\"verbose\":true}", CTL_E_BAD_REQUEST, "verbose"},
	    {"{\"v\":1,\"cmd\":\"drain\",\"args\":\"x\"}", CTL_E_BAD_REQUEST, "array"},
	    {"{\"v\":1,\"cmd\":\"drain\",\"args\":[1]}", CTL_E_BAD_REQUEST, "argument 1"},
	    {"{\"v\":1,\"cmd\":\"drain\",\"args\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\","
	     "\"i\"]}",
	     CTL_E_BAD_REQUEST, "at most 8"},
	    {"{\"v\":1,\"cmd\":\"drain\",\"args\":[\"a\\u0000b\"]}", CTL_E_BAD_REQUEST, "not JSON"},
	    {"{\"v\":1,\"cmd\":\"status\"", CTL_E_BAD_REQUEST, "not JSON"},
	    {"{\"v\":1,\"cmd\":\"\xff\"}", CTL_E_BAD_REQUEST, "not JSON"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_request r;
		enum ctl_err code = 0;
		char msg[256] = "";
		cr_expect_eq(parse(cases[i].line, &r, &code, msg), -EBADMSG, "case %zu", i);
		cr_expect_eq(code, cases[i].code, "case %zu: %s (%s)", i, ctl_err_name(code), msg);
		cr_expect_not_null(strstr(msg, cases[i].says), "case %zu: '%s'", i, msg);
		cr_expect_eq(r.n_args, 0);
	}
}

Test(ctl_proto, sizes_are_bounded)
{
	static char line[CTL_PROTO_MAX_REQUEST + 64];
	char arg[CTL_PROTO_MAX_ARG + 2];
	struct ctl_request r;
	enum ctl_err code;
	char msg[256];

	/* An argument of 256 bytes is refused, 255 taken. */
	memset(arg, 'a', sizeof(arg) - 1);
	arg[sizeof(arg) - 1] = '\0';
	snprintf(line, sizeof(line), "{\"v\":1,\"cmd\":\"x\",\"args\":[\"%s\"]}", arg);
	cr_assert_eq(parse(line, &r, &code, msg), -EBADMSG);
	cr_assert_not_null(strstr(msg, "longer than"), "%s", msg);
	arg[CTL_PROTO_MAX_ARG] = '\0';
	snprintf(line, sizeof(line), "{\"v\":1,\"cmd\":\"x\",\"args\":[\"%s\"]}", arg);
	cr_assert_eq(parse(line, &r, &code, msg), 0, "%s", msg);
	cr_assert_eq(strlen(r.args[0]), CTL_PROTO_MAX_ARG);
	/* A line over the limit: too-large, whatever it holds. */
	memset(line, ' ', sizeof(line));
	memcpy(line, "{\"v\":1,\"cmd\":\"x\"}", 17);
	cr_assert_eq(
	    ctl_proto_parse_request(line, CTL_PROTO_MAX_REQUEST + 1, &r, &code, msg, sizeof(msg)),
	    -EBADMSG);
	cr_assert_eq(code, CTL_E_TOO_LARGE);
	cr_assert_eq(
	    ctl_proto_parse_request(line, CTL_PROTO_MAX_REQUEST, &r, &code, msg, sizeof(msg)), 0,
	    "exactly the limit (trailing spaces are JSON whitespace): %s", msg);
	/* Deep nesting is refused by the parser, not by the stack. */
	size_t n = 0;
	n += (size_t)snprintf(line, sizeof(line), "{\"v\":1,\"cmd\":\"x\",\"args\":");
	while (n < CTL_PROTO_MAX_REQUEST - 2)
		line[n++] = '[';
	cr_assert_eq(ctl_proto_parse_request(line, n, &r, &code, msg, sizeof(msg)), -EBADMSG);
	/* The client side refuses what the daemon would. */
	cr_assert_null(ctl_proto_build_request("Bad Cmd", NULL, 0, NULL));
	memset(arg, 'a', sizeof(arg) - 1);
	arg[sizeof(arg) - 1] = '\0';
	const char *a1[] = {arg};
	cr_assert_null(ctl_proto_build_request("x", a1, 1, NULL));
	const char *a2[] = {"caf\xc3"};
	cr_assert_null(ctl_proto_build_request("x", a2, 1, NULL), "invalid UTF-8");
}

Test(ctl_proto, answers_round_trip)
{
	json_t *data = json_pack("{s:s, s:i}", "state", "up", "n", 3), *got = NULL;
	enum ctl_err code = 0;
	char msg[256];
	size_t len;
	char *line = ctl_proto_answer_ok(data, &len);

	cr_assert_not_null(line);
	cr_assert_eq(line[len - 1], '\n');
	cr_assert_null(memchr(line, '\n', len - 1));
	cr_assert_eq(ctl_proto_parse_answer(line, len, &got, &code, msg, sizeof(msg)), 0);
	cr_assert(json_equal(got, data));
	json_decref(got);
	free(line);
	json_decref(data);

	/* A message with a newline or bytes >= 0x80 still gives one valid line. */
	line = ctl_proto_answer_error(CTL_E_NOT_FOUND, "no VIP 'x'\nsecond line \xff", &len);
	cr_assert_not_null(line);
	cr_assert_null(memchr(line, '\n', len - 1));
	cr_assert_eq(ctl_proto_parse_answer(line, len, &got, &code, msg, sizeof(msg)), 1);
	cr_assert_null(got);
	cr_assert_eq(code, CTL_E_NOT_FOUND);
	cr_assert_str_eq(msg, "no VIP 'x'?second line ?");
	free(line);

	/* NULL data is an empty object. */
	line = ctl_proto_answer_ok(NULL, &len);
	cr_assert_str_eq(line, "{\"v\":1,\"ok\":true,\"data\":{}}\n");
	free(line);
}

Test(ctl_proto, malformed_answers)
{
	const char *bad[] = {"",
	                     "x",
	                     "{}",
	                     "{\"v\":1}",
	                     "{\"v\":1,\"ok\":true}",
	                     "{\"v\":1,\"ok\":true,\"data\":[]}",
	                     "{\"v\":1,\"ok\":false}",
	                     "{\"v\":2,\"ok\":true,\"data\":{}}",
	                     NULL};
	for (unsigned i = 0; bad[i]; i++) {
		json_t *d = NULL;
		enum ctl_err code;
		char msg[256];
		cr_expect_eq(ctl_proto_parse_answer(bad[i], strlen(bad[i]), &d, &code, msg, 256),
		             -EBADMSG, "'%s'", bad[i]);
		cr_expect_null(d);
	}
}

Test(ctl_proto, error_names_are_stable)
{
	cr_assert_str_eq(ctl_err_name(CTL_E_BAD_REQUEST), "bad-request");
	cr_assert_str_eq(ctl_err_name(CTL_E_NOT_IMPLEMENTED), "not-implemented");
	cr_assert_str_eq(ctl_err_name(99), "internal");
	for (int e = CTL_E_BAD_REQUEST; e <= CTL_E_INTERNAL; e++)
		cr_assert_eq(ctl_err_parse(ctl_err_name(e)), e);
	cr_assert_eq(ctl_err_parse("nonsense"), 0);
}
