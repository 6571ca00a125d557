/*
 * http_req.h: an HTTP/1.0 or 1.1 request head (RFC 9112), pure.
 *
 * Just what the metrics endpoint needs: the method, the path of the target
 * (query cut off) and the version, with the head checked as RFC 9112 asks
 * of a server: one request line `method SP target SP HTTP/1.x`, header lines
 * `name: value` with a token name and no whitespace before the colon (§5.1),
 * no obs-fold (§5.2), no control characters, and for HTTP/1.1 exactly one
 * Host header (§3.2). Lines end in CRLF; a bare LF is accepted (§2.2), a bare
 * CR is not. The target is origin-form ("/metrics?x") or absolute-form
 * ("http://host:9253/metrics", §3.2.2); a body is never read (the server
 * answers and closes).
 *
 * Called again with more bytes, it parses from the start (a head is at most
 * a few KiB): an error in the part received so far is reported at once, so
 * a client sending garbage slowly is refused without waiting for the rest.
 */
#ifndef ANYCACHE_CORE_HTTP_REQ_H
#define ANYCACHE_CORE_HTTP_REQ_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_REQ_MAX_METHOD  15
#define HTTP_REQ_MAX_PATH    255
#define HTTP_REQ_MAX_HEADERS 64

struct http_req {
	char method[HTTP_REQ_MAX_METHOD + 1];
	char path[HTTP_REQ_MAX_PATH + 1]; /* starts with '/', no query */
	unsigned minor;                   /* HTTP/1.minor: 0 or 1 */
	size_t head_len;                  /* bytes through the empty line */
};

/*
 * Parses buf[0..len). Returns the head's length (> 0, out filled) once the
 * empty line arrived; 0 when everything so far is well formed but the head
 * is not complete; or minus the HTTP status to answer: -400 malformed, -414
 * path longer than HTTP_REQ_MAX_PATH, -431 more than HTTP_REQ_MAX_HEADERS
 * header lines, -505 an HTTP version other than 1.0/1.1.
 */
int http_req_parse(const uint8_t *buf, size_t len, struct http_req *out);

/* "OK", "Not Found", ... for the statuses the endpoint sends; "Error" otherwise. */
const char *http_reason(int status);

#endif
