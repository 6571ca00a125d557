/*
 * http_server.h: a minimal HTTP/1.x endpoint (glue) for metrics and health.
 *
 * GET only, one request per connection (every answer says Connection: close
 * and the connection closes after it), served by stream_srv.h on the control
 * loop, never by a DNS worker: at most HTTP_SERVER_MAX_CONNS connections, a
 * request head of at most HTTP_SERVER_MAX_HEAD bytes, HTTP_SERVER_TIMEOUT_MS
 * for the head to arrive whole and as much for the answer to be read. The
 * head is checked by http_req.h; a malformed one gets 400 (414, 431, 505
 * where those say more), another method 405 with "Allow: GET", a path nobody
 * registered 404.
 *
 * The composition root registers paths (exact match, query ignored); a
 * handler answers with http_call_reply(), at once or later, exactly once.
 *
 * Threads and lifetime: as ctl_server.h.
 */
#ifndef ANYCACHE_CORE_HTTP_SERVER_H
#define ANYCACHE_CORE_HTTP_SERVER_H

#include <stddef.h>

#include "core/netaddr.h"

struct loop;
struct http_server;
struct http_call;

#define HTTP_SERVER_MAX_CONNS  16
#define HTTP_SERVER_MAX_HEAD   4096
#define HTTP_SERVER_TIMEOUT_MS 5000
#define HTTP_SERVER_MAX_ROUTES 8

typedef void (*http_route_fn)(void *arg, struct http_call *call);

/* Binds and listens on addr (TCP). 0, or -errno with a sentence in why. */
int http_server_new(struct loop *l, const struct netaddr *addr, char *why, size_t whylen,
                    struct http_server **out);
void http_server_close(struct http_server *s);
void http_server_free(struct http_server *s);

/* Exact path ("/metrics"). 0, -ENOSPC, -EINVAL. */
int http_server_route(struct http_server *s, const char *path, http_route_fn fn, void *arg);

/*
 * Ends the call: sends status, Content-Type and body (len bytes; copied) and
 * closes the connection. call is freed.
 */
void http_call_reply(struct http_call *call, int status, const char *content_type, const char *body,
                     size_t len);

#endif
