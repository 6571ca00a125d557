/* http_server.c: the metrics/health HTTP endpoint (see http_server.h). */
#include "core/http_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/handover.h"
#include "core/http_req.h"
#include "core/loop.h"
#include "core/stream_srv.h"

struct route {
	char path[HTTP_REQ_MAX_PATH + 1];
	http_route_fn fn;
	void *arg;
};

struct http_call {
	struct http_server *srv;
	struct http_call *prev, *next; /* every call not answered yet */
	uint64_t conn;
};

struct http_server {
	struct stream_srv *ss;
	struct route routes[HTTP_SERVER_MAX_ROUTES];
	unsigned n_routes;
	struct http_call *calls;
};

/* Status line, the few headers we send, body; Connection: close always. */
static void respond(struct http_server *s, uint64_t conn, int status, const char *ctype,
                    const char *extra, const char *body, size_t len)
{
	char head[256];
	int hn = snprintf(head, sizeof(head),
	                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
	                  "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
	                  status, http_reason(status), ctype, len, extra ? extra : "");
	char *buf = hn > 0 && (size_t)hn < sizeof(head) ? malloc((size_t)hn + len) : NULL;

	if (buf) {
		memcpy(buf, head, (size_t)hn);
		memcpy(buf + hn, body, len);
	}
	/* NULL: the connection is closed without an answer. */
	stream_srv_reply(s->ss, conn, buf, buf ? (size_t)hn + len : 0, true);
}

static void respond_text(struct http_server *s, uint64_t conn, int status, const char *extra)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, http_reason(status));

	respond(s, conn, status, "text/plain; charset=utf-8", extra, body, (size_t)n);
}

static void call_free(struct http_call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->srv->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

void http_call_reply(struct http_call *c, int status, const char *content_type, const char *body,
                     size_t len)
{
	respond(c->srv, c->conn, status, content_type, NULL, body, len);
	call_free(c);
}

static int on_request(void *arg, uint64_t conn, const uint8_t *buf, size_t len, bool last)
{
	struct http_server *s = arg;
	struct http_req req;
	int r = http_req_parse(buf, len, &req);

	if (r == 0 && !last)
		return 0;
	if (r == 0 && len < HTTP_SERVER_MAX_HEAD)
		return -1; /* the client stopped sending mid-head: nothing to answer */
	if (r <= 0) {
		respond_text(s, conn, r == 0 ? 431 : -r, NULL);
		return (int)len;
	}
	/* RFC 9110 §9.1: 405 lists what the resource allows. */
	if (strcmp(req.method, "GET")) {
		respond_text(s, conn, 405, "Allow: GET\r\n");
		return (int)len;
	}
	for (unsigned i = 0; i < s->n_routes; i++) {
		if (strcmp(s->routes[i].path, req.path))
			continue;
		struct http_call *c = calloc(1, sizeof(*c));
		if (!c) {
			respond_text(s, conn, 500, NULL);
			return (int)len;
		}
		c->srv = s;
		c->conn = conn;
		c->next = s->calls;
		if (c->next)
			c->next->prev = c;
		s->calls = c;
		s->routes[i].fn(s->routes[i].arg, c);
		return (int)len; /* a body, if any, is never read: we close after answering */
	}
	respond_text(s, conn, 404, NULL);
	return (int)len;
}

int http_server_route(struct http_server *s, const char *path, http_route_fn fn, void *arg)
{
	if (!path || path[0] != '/' || strlen(path) > HTTP_REQ_MAX_PATH || !fn)
		return -EINVAL;
	if (s->n_routes == HTTP_SERVER_MAX_ROUTES)
		return -ENOSPC;
	struct route *r = &s->routes[s->n_routes++];
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->fn = fn;
	r->arg = arg;
	return 0;
}

int http_server_new(struct loop *l, const struct netaddr *addr, char *why, size_t whylen,
                    struct http_server **out)
{
	struct stream_srv_conf sc = {
	    .name = "metrics",
	    .max_conns = HTTP_SERVER_MAX_CONNS,
	    .max_request = HTTP_SERVER_MAX_HEAD,
	    .timeout_ms = HTTP_SERVER_TIMEOUT_MS,
	};
	struct sockaddr_storage ss;
	socklen_t sl = netaddr_to_sockaddr(addr, &ss);
	char name[NETADDR_STRLEN];
	struct http_server *s;
	int fd, one = 1, r = 0;

	netaddr_format(addr, true, name, sizeof(name));
	/* A successor takes its predecessor's listener (handover.h). */
	fd = handover_take("http", 0, addr, NULL, NULL);
	if (fd < 0) {
		fd = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			r = -errno;
		else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		         (addr->family == AF_INET6 &&
		          setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
		         bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 16) < 0)
			r = -errno;
	}
	if (r) {
		snprintf(why, whylen, "metrics endpoint %s: %s", name, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		snprintf(why, whylen, "metrics endpoint: out of memory");
		return -ENOMEM;
	}
	handover_offer("http", 0, addr, fd);
	r = stream_srv_new(l, fd, &sc, on_request, s, &s->ss);
	if (r) {
		handover_forget(fd);
		snprintf(why, whylen, "metrics endpoint %s: %s", name, strerror(-r));
		close(fd);
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

void http_server_close(struct http_server *s)
{
	if (s)
		stream_srv_close(s->ss);
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	while (s->calls)
		call_free(s->calls);
	stream_srv_free(s->ss);
	free(s);
}
