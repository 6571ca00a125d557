/* http_req.c: the HTTP/1.x request head parser (see http_req.h). */
#include "core/http_req.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 §5.6.2 tchar. */
static bool tchar(uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field values: VCHAR, obs-text, SP, HTAB (RFC 9110 §5.5). */
static bool vchar_or_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || (c > 0x20 && c != 0x7f);
}

/* Request targets: VCHAR and obs-text; no space, no control. */
static bool target_char(uint8_t c)
{
	return c > 0x20 && c != 0x7f;
}

/*
 * The next line of buf[off..len): its content length in *n (without the
 * terminator) and the terminator's length in *term; 0 if no terminator yet,
 * -1 for a bare CR.
 */
static int next_line(const uint8_t *buf, size_t len, size_t off, size_t *n, size_t *term)
{
	for (size_t i = off; i < len; i++) {
		if (buf[i] == '\n') {
			*n = i - off;
			*term = 1;
			if (*n && buf[i - 1] == '\r') {
				(*n)--;
				*term = 2;
			}
			return 1;
		}
		if (buf[i] == '\r' && i + 1 < len && buf[i + 1] != '\n')
			return -1;
	}
	*n = len - off;
	if (*n && buf[len - 1] == '\r')
		(*n)--;
	return 0;
}

/* What may begin "HTTP/d.d" (the version of a line not complete yet). */
static bool version_prefix_ok(const uint8_t *v, size_t n)
{
	if (n > 8)
		return false;
	for (size_t k = 0; k < n; k++) {
		bool ok = k < 5    ? v[k] == (uint8_t) "HTTP/"[k]
		          : k == 6 ? v[k] == '.'
		                   : v[k] >= '0' && v[k] <= '9';
		if (!ok)
			return false;
	}
	return true;
}

/* The request line; complete: whether all of it (and its end) is there. */
static int request_line(const uint8_t *p, size_t n, bool complete, struct http_req *out)
{
	size_t i = 0, m = 0, t0, tn;

	while (i < n && tchar(p[i]))
		i++;
	m = i;
	if (m > HTTP_REQ_MAX_METHOD)
		return -400;
	if (i == n)
		return complete ? -400 : 0;
	if (m == 0 || p[i] != ' ')
		return -400;
	memcpy(out->method, p, m);
	out->method[m] = '\0';
	t0 = ++i;
	while (i < n && target_char(p[i]))
		i++;
	tn = i - t0;
	if (i == n && !complete)
		return tn > HTTP_REQ_MAX_PATH + 300 ? -414
		                                    : 0; /* 300: an absolute-form authority */
	if (tn == 0 || i == n || p[i] != ' ')
		return -400;
	/* Version: exactly HTTP/1.0 or HTTP/1.1; another HTTP/d.d is 505. */
	const uint8_t *v = p + i + 1;
	size_t vn = n - i - 1;
	if (!complete)
		return version_prefix_ok(v, vn) ? 0 : -400;
	if (vn != 8 || memcmp(v, "HTTP/", 5) || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
	    v[7] < '0' || v[7] > '9')
		return -400;
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return -505;
	out->minor = (unsigned)(v[7] - '0');

	/* Target: absolute-form loses scheme and authority; then cut the query. */
	const uint8_t *t = p + t0;
	if (tn >= 7 && !strncasecmp((const char *)t, "http://", 7)) {
		const uint8_t *slash = memchr(t + 7, '/', tn - 7);
		if (!slash)
			return -400; /* "http://host" has no path: §3.2.2 says "/" but be plain */
		tn -= (size_t)(slash - t);
		t = slash;
	} else if (t[0] != '/') {
		return -400; /* authority-form and asterisk-form are not for GET */
	}
	const uint8_t *q = memchr(t, '?', tn);
	if (q)
		tn = (size_t)(q - t);
	const uint8_t *h = memchr(t, '#', tn);
	if (h)
		return -400; /* a fragment is never sent (RFC 9110 §4.2.1) */
	if (tn > HTTP_REQ_MAX_PATH)
		return -414;
	memcpy(out->path, t, tn);
	out->path[tn] = '\0';
	return 1;
}

/* One header line; *host counts Host fields. */
static int header_line(const uint8_t *p, size_t n, bool complete, unsigned *host)
{
	size_t i = 0;

	if (n && (p[0] == ' ' || p[0] == '\t'))
		return -400; /* obs-fold: RFC 9112 §5.2 lets a server reject it */
	while (i < n && tchar(p[i]))
		i++;
	if (i == n)
		return complete ? -400 : 0;
	if (i == 0 || p[i] != ':')
		return -400; /* also whitespace before the colon, §5.1 */
	for (size_t k = i + 1; k < n; k++)
		if (!vchar_or_ws(p[k]))
			return -400;
	if (complete && i == 4 && !strncasecmp((const char *)p, "host", 4))
		(*host)++;
	return 1;
}

int http_req_parse(const uint8_t *buf, size_t len, struct http_req *out)
{
	size_t off = 0, n, term;
	unsigned headers = 0, host = 0;
	int r, lr;

	memset(out, 0, sizeof(*out));
	/* RFC 9112 §2.2: empty lines before the request line may be ignored. */
	while (off < len && (buf[off] == '\r' || buf[off] == '\n')) {
		if (buf[off] == '\r' && off + 1 < len && buf[off + 1] != '\n')
			return -400;
		off++;
		if (off > 8)
			return -400;
	}
	lr = next_line(buf, len, off, &n, &term);
	if (lr < 0)
		return -400;
	r = request_line(buf + off, n, lr == 1, out);
	if (r <= 0)
		return r;
	off += n + term;
	for (;;) {
		lr = next_line(buf, len, off, &n, &term);
		if (lr < 0)
			return -400;
		if (lr == 0) {
			r = header_line(buf + off, n, false, &host);
			return r < 0 ? r : 0;
		}
		if (n == 0)
			break; /* the empty line: end of the head */
		if (++headers > HTTP_REQ_MAX_HEADERS)
			return -431;
		r = header_line(buf + off, n, true, &host);
		if (r < 0)
			return r;
		off += n + term;
	}
	off += term;
	/* RFC 9112 §3.2: HTTP/1.1 needs exactly one Host; never more than one. */
	if (host > 1 || (out->minor == 1 && host == 0))
		return -400;
	out->head_len = off;
	return (int)off;
}

const char *http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}
