/*
 * stream_srv.h: bounded request/answer connections on a loop (glue).
 *
 * The machinery shared by the control socket (ctl_server.h) and the metrics
 * endpoint (http_server.h): a listening stream socket (unix or TCP) whose
 * clients send a request and read its answer. It runs on the control loop,
 * beside BGP, so no client may stall it or eat its memory:
 *   - at most max_conns connections; one more is accepted and closed at once;
 *   - at most max_request bytes of one request buffered: the protocol layer
 *     sees `last` when the buffer is full and must refuse the request;
 *   - deadlines of timeout_ms close the connection: from the accept, and
 *     from each answer, the next request must arrive whole (a client that
 *     sends nothing, or trickles a request a byte at a time, is cut off);
 *     from the start of an answer's send, it must be sent (a client that
 *     never reads is cut off);
 *   - one request at a time per connection: reading pauses from a complete
 *     request until its answer was handed to the kernel.
 *
 * The protocol layer (`fn`) is called with every byte received and not yet
 * consumed. It returns n > 0 when buf starts with a complete request of n
 * bytes that it took (it must answer it with stream_srv_reply(), at once or
 * later, e.g. after other threads answered a loop_post), 0 when the request
 * is incomplete, < 0 to close the connection without an answer. `last` says
 * no more bytes will come (the buffer is full, or the client shut down its
 * sending side): 0 then closes the connection. A client that half-closes
 * after its request still gets the answer (then the connection closes).
 *
 * A connection is named by a 64-bit id (slot and generation): a late answer
 * to a connection that closed meanwhile finds nothing (-ENOTCONN), never a
 * newer connection in the same slot.
 *
 * Threads: everything on the loop's thread. Lifetime: stream_srv_close()
 * on the loop thread (stops accepting, closes every connection; their
 * loop_close_fd completions finish during loop_drain/loop_free), then
 * stream_srv_free() after loop_free().
 */
#ifndef ANYCACHE_CORE_STREAM_SRV_H
#define ANYCACHE_CORE_STREAM_SRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct stream_srv;

struct stream_srv_conf {
	const char *name;    /* for logs: "control", "metrics" (a constant string) */
	unsigned max_conns;  /* 1.. */
	size_t max_request;  /* bytes buffered for one request, 1.. */
	unsigned timeout_ms; /* for a whole request, and for an answer's send, 1.. */
};

typedef int (*stream_srv_request_fn)(void *arg, uint64_t id, const uint8_t *buf, size_t len,
                                     bool last);

struct stream_srv_stats {
	uint64_t accepted;
	uint64_t refused;  /* at max_conns: closed at once */
	uint64_t timeouts; /* closed for want of progress */
	uint64_t requests; /* taken by the protocol layer */
	unsigned open;
};

/*
 * Takes listen_fd (listening already) and starts accepting. 0 or -errno (then
 * listen_fd is the caller's to close).
 */
int stream_srv_new(struct loop *l, int listen_fd, const struct stream_srv_conf *conf,
                   stream_srv_request_fn fn, void *arg, struct stream_srv **out);

/*
 * The answer to connection id's pending request: takes buf (malloc'd, len
 * bytes; freed here in every case) and sends it all; close_after closes the
 * connection once it is sent. 0, -ENOTCONN (the connection is gone), -EPROTO
 * (no request pending there). A send that cannot start closes the connection
 * from a timer, never inside this call.
 */
int stream_srv_reply(struct stream_srv *s, uint64_t id, char *buf, size_t len, bool close_after);

/* Whether connection id is still open (an answer can still be delivered). */
bool stream_srv_alive(const struct stream_srv *s, uint64_t id);

void stream_srv_get_stats(const struct stream_srv *s, struct stream_srv_stats *out);

/* Loop thread: stop accepting, close the listener and every connection. */
void stream_srv_close(struct stream_srv *s);
/* After loop_free(): frees what is left. NULL is a no-op. */
void stream_srv_free(struct stream_srv *s);

#endif
