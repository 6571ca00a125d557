/*
 * Unit tests for the HTTP request head parser (src/core/http_req.c):
 * well-formed heads, malformed ones, oversize ones, and heads that arrive
 * a byte at a time (a slow client): complete only at the end, wrong at the
 * first byte that makes them wrong.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/http_req.h"

static int parse(const char *s, struct http_req *r)
{
	return http_req_parse((const uint8_t *)s, strlen(s), r);
}

Test(http_req, well_formed)
{
	struct http_req r;
	const char *h = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9253\r\n"
	                "User-Agent: Prometheus/2.42\r\nAccept: */*\r\n\r\n";

	cr_assert_eq(parse(h, &r), (int)strlen(h));
	cr_assert_str_eq(r.method, "GET");
	cr_assert_str_eq(r.path, "/metrics");
	cr_assert_eq(r.minor, 1);
	/* 1.0 needs no Host; the query is cut; bare LF accepted; body not counted. */
	cr_assert_eq(parse("GET /health?verbose=1 HTTP/1.0\n\nBODY", &r), 32);
	cr_assert_str_eq(r.path, "/health");
	cr_assert_eq(r.minor, 0);
	/* Absolute form. */
	cr_assert_gt(parse("GET http://node:9253/metrics HTTP/1.1\r\nhost: node\r\n\r\n", &r), 0);
	cr_assert_str_eq(r.path, "/metrics");
	/* Another method parses: the server answers 405. */
	cr_assert_gt(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n", &r), 0);
	cr_assert_str_eq(r.method, "POST");
	/* Leading empty lines (RFC 9112 §2.2). */
	cr_assert_gt(parse("\r\nGET / HTTP/1.0\r\n\r\n", &r), 0);
	/* Empty header value, tab in value. */
	cr_assert_gt(parse("GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\nX-B: a\tb\r\n\r\n", &r), 0);
}

Test(http_req, malformed)
{
	static const struct {
		const char *head;
		int status;
	} cases[] = {
	    {"GET\r\n\r\n", -400},
	    {"GET /\r\n\r\n", -400},
	    {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", -400},
	    {"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", -400},
	    {"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", -400},
	    {"GET metrics HTTP/1.1\r\nHost: x\r\n\r\n", -400},
	    {"GET * HTTP/1.1\r\nHost: x\r\n\r\n", -400},
	    {"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", -400},
	    {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", -505},
	    {"GET / HTTP/1.2\r\nHost: x\r\n\r\n", -505},
	    {"GET / HTTP/1.1x\r\nHost: x\r\n\r\n", -400},
	    {"GET / FTP/1.1\r\nHost: x\r\n\r\n", -400},
	    {"GET / HTTP/1.1\r\n\r\n", -400},                       /* no Host (§3.2) */
	    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400}, /* two */
	    {"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", -400},
	    {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", -400}, /* space before the colon (§5.1) */
	    {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", -400}, /* obs-fold (§5.2) */
	    {"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", -400},
	    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01\r\n\r\n", -400},
	    {"GET / HTTP/1.1\rHost: x\r\n\r\n", -400}, /* bare CR */
	    {"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", -400},
	    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", -400}, /* a TLS ClientHello */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_req r;
		cr_expect_eq(parse(cases[i].head, &r), cases[i].status, "case %zu", i);
	}
}

Test(http_req, oversize)
{
	static char h[8192];
	struct http_req r;
	char path[300];

	memset(path, 'a', sizeof(path));
	path[0] = '/';
	snprintf(h, sizeof(h), "GET %.256s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	cr_assert_eq(parse(h, &r), -414, "a path of 256 bytes");
	snprintf(h, sizeof(h), "GET %.255s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	cr_assert_gt(parse(h, &r), 0, "255 is fine");
	/* The 65th header line. */
	size_t n = (size_t)snprintf(h, sizeof(h), "GET / HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 63; i++)
		n += (size_t)snprintf(h + n, sizeof(h) - n, "X-%d: y\r\n", i);
	snprintf(h + n, sizeof(h) - n, "\r\n");
	cr_assert_gt(parse(h, &r), 0, "64 header lines");
	snprintf(h + n, sizeof(h) - n, "X-last: y\r\n\r\n");
	cr_assert_eq(parse(h, &r), -431);
	/* A long target is refused before its line ends. */
	memset(h, 'a', sizeof(h));
	memcpy(h, "GET /", 5);
	cr_assert_eq(http_req_parse((const uint8_t *)h, 1000, &r), -414);
}

/* A byte at a time: incomplete (0) until the last byte, never an error. */
Test(http_req, slow_client_byte_by_byte)
{
	const char *h = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n";
	size_t n = strlen(h);
	struct http_req r;

	for (size_t i = 1; i < n; i++)
		cr_assert_eq(http_req_parse((const uint8_t *)h, i, &r), 0, "after %zu bytes", i);
	cr_assert_eq(http_req_parse((const uint8_t *)h, n, &r), (int)n);
	cr_assert_str_eq(r.path, "/metrics");
}

/* Garbage is refused at the first byte that cannot start a valid head. */
Test(http_req, garbage_refused_early)
{
	struct http_req r;

	cr_assert_eq(parse("\x16", &r), -400);
	cr_assert_eq(parse("GET /x HTTP/x", &r), -400);
	cr_assert_eq(parse("GET /x HTTP/3", &r), 0, "may still become HTTP/3.0 (then 505)");
	cr_assert_eq(parse("GET /x HTTQ", &r), -400);
	cr_assert_eq(parse("GET /x HTTP/1.1\r\nBad Header", &r), -400);
	cr_assert_eq(parse("GET /x HTTP/1.1\r\n ", &r), -400);
	cr_assert_eq(parse("GET /x HTTP/1.1\r\nX:\x01", &r), -400);
	cr_assert_eq(parse("GET /x HTTP/1.1\r\nHost: a\r\n", &r), 0, "still fine");
	cr_assert_eq(parse("GET /x HT", &r), 0, "still fine");
}

Test(http_req, reasons)
{
	cr_assert_str_eq(http_reason(200), "OK");
	cr_assert_str_eq(http_reason(405), "Method Not Allowed");
	cr_assert_str_eq(http_reason(503), "Service Unavailable");
	cr_assert_str_eq(http_reason(299), "Error");
}
