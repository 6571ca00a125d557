/*
 * ctl_server.h: the control socket (glue): a unix stream socket speaking
 * ctl_proto.h, served by stream_srv.h on the control loop.
 *
 * It knows neither DNS nor BGP: the composition root registers commands,
 * name -> handler. A handler gets a struct ctl_call, reads its arguments,
 * fills the answer's data object and ends the call with ctl_call_done() or
 * ctl_call_fail(), at once or later (after a round trip to the DNS workers);
 * every call must be ended exactly once, whether or not its client is still
 * connected. "help" is built in: the registered commands with their usage.
 *
 * The socket: its directory is created if missing (0755); a socket file left
 * by a daemon that died is replaced only if nobody answers on it (a live one
 * means another anycached: ctl_server_new fails with -EADDRINUSE); any other
 * kind of file at that path is never removed. It is bound with mode 0660 and
 * the given group (name or number) before it listens, so no client can
 * connect through wider permissions in between; ctl_server_close() removes it
 * (if it is still ours).
 *
 * Threads: everything on the control loop's thread. Lifetime: as
 * stream_srv.h: ctl_server_close() on the loop thread, ctl_server_free()
 * after loop_free(); calls never ended are freed there.
 */
#ifndef ANYCACHE_CORE_CTL_SERVER_H
#define ANYCACHE_CORE_CTL_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/ctl_proto.h"

struct loop;
struct ctl_server;
struct ctl_call;

#define CTL_SERVER_MAX_CONNS  16
#define CTL_SERVER_TIMEOUT_MS 5000 /* a request to arrive whole, an answer to be read */
#define CTL_SERVER_MAX_CMDS   32

typedef void (*ctl_cmd_fn)(void *arg, struct ctl_call *call);

struct ctl_server_conf {
	const char *path;    /* the socket */
	const char *group;   /* NULL or "": the daemon's own group */
	unsigned max_conns;  /* 0: CTL_SERVER_MAX_CONNS */
	unsigned timeout_ms; /* 0: CTL_SERVER_TIMEOUT_MS */
};

/* 0, or -errno with a sentence for the operator in why. */
int ctl_server_new(struct loop *l, const struct ctl_server_conf *conf, char *why, size_t whylen,
                   struct ctl_server **out);
void ctl_server_close(struct ctl_server *s);
void ctl_server_free(struct ctl_server *s);

/*
 * Adds command `cmd` (ctl_proto.h's syntax) taking min_args..max_args
 * arguments; usage is shown by help and on a wrong argument count, e.g.
 * "cache flush [NAME]". 0, -EEXIST, -ENOSPC, -EINVAL.
 */
int ctl_server_register(struct ctl_server *s, const char *cmd, unsigned min_args, unsigned max_args,
                        const char *usage, ctl_cmd_fn fn, void *arg);

/* ---- inside a handler ---- */
unsigned ctl_call_nargs(const struct ctl_call *c);
const char *ctl_call_arg(const struct ctl_call *c, unsigned i); /* "" beyond nargs */
const char *ctl_call_cmd(const struct ctl_call *c);
/* The answer's data object (owned by the call): fill it before ctl_call_done. */
json_t *ctl_call_data(struct ctl_call *c);
/* Whether the client is still there (a handler may skip work for nobody). */
bool ctl_call_alive(const struct ctl_call *c);
/* Ends the call: answers {"ok": true, "data": ...}. c is freed. */
void ctl_call_done(struct ctl_call *c);
/* Ends the call: answers the error (printf-style message). c is freed. */
void ctl_call_fail(struct ctl_call *c, enum ctl_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
