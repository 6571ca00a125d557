/*
 * ctl_proto.h: the control socket's protocol, version 1 (pure codec).
 *
 * The daemon listens on control.socket (a unix stream socket); anycachectl
 * and scripts (socat, nc -U) talk to it. Framing: a request is ONE LINE, a
 * JSON object followed by "\n", at most CTL_PROTO_MAX_REQUEST bytes with the
 * newline; every request gets exactly one answer, a JSON object on one line
 * ending "\n". Requests on one connection are answered in order, one at a
 * time; the client may send several or close after the first answer.
 *
 *   request  {"v": 1, "cmd": "show health"}
 *            {"v": 1, "cmd": "cache flush", "args": ["www.example.com"]}
 *   answer   {"v": 1, "ok": true, "data": {...}}
 *            {"v": 1, "ok": false, "error": {"code": "unknown-command",
 *                                            "message": "no command 'shw bgp'"}}
 *
 *   v     required: the protocol version. Only 1 exists; a daemon answers
 *         another number with "unsupported-version". A later version adds
 *         members to answers freely (clients ignore what they do not know);
 *         anything a v1 client could misread gets a new v.
 *   cmd   required: lowercase words (a-z, 0-9, -) separated by one space,
 *         at most CTL_PROTO_MAX_CMD bytes.
 *   args  optional: at most CTL_PROTO_MAX_ARGS strings of at most
 *         CTL_PROTO_MAX_ARG bytes each (no NUL).
 *   Any other member, a duplicate member, or trailing bytes after the
 *   object make the request a "bad-request": a typo is never ignored.
 *
 * Error codes (enum ctl_err) are stable strings; messages are for humans.
 *
 * Ownership: parse results are values the caller owns; built lines are
 * malloc'd and the caller frees them; json_t arguments are borrowed.
 */
#ifndef ANYCACHE_CORE_CTL_PROTO_H
#define ANYCACHE_CORE_CTL_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CTL_PROTO_VERSION     1
#define CTL_PROTO_MAX_REQUEST 4096        /* bytes of a request line, newline included */
#define CTL_PROTO_MAX_ANSWER  (16u << 20) /* what a client accepts of one answer line */
#define CTL_PROTO_MAX_CMD     32
#define CTL_PROTO_MAX_ARGS    8
#define CTL_PROTO_MAX_ARG     255  /* a domain name in text form fits */
#define CTL_PROTO_MAX_MESSAGE 2048 /* error messages are cut here (a refused reload lists errors)  \
	                            */

enum ctl_err {
	CTL_E_BAD_REQUEST = 1, /* not one JSON object of the form above */
	CTL_E_VERSION,         /* "v" is not a version this side speaks */
	CTL_E_UNKNOWN_COMMAND, /* no such command */
	CTL_E_BAD_ARGUMENT,    /* the command's arguments are wrong */
	CTL_E_NOT_FOUND,       /* the argument names nothing (a VIP that is not one) */
	CTL_E_NOT_IMPLEMENTED, /* a known command this build cannot do yet */
	CTL_E_BUSY,            /* too many requests in progress: try again */
	CTL_E_TOO_LARGE,       /* the request line exceeds CTL_PROTO_MAX_REQUEST */
	CTL_E_UNAVAILABLE,     /* the daemon cannot answer now (stopping, a part missing) */
	CTL_E_INTERNAL,        /* out of memory or a bug */
	CTL_E_BAD_CONFIG,      /* reload: the configuration file is refused */
};

/* "bad-request", "unsupported-version", ...; "internal" for unknown values. */
const char *ctl_err_name(enum ctl_err e);
/* The inverse; 0 when s names no code. */
enum ctl_err ctl_err_parse(const char *s);

struct ctl_request {
	unsigned v;
	char cmd[CTL_PROTO_MAX_CMD + 1];
	unsigned n_args;
	char args[CTL_PROTO_MAX_ARGS][CTL_PROTO_MAX_ARG + 1];
};

/*
 * Parses one request line of len bytes (a trailing "\n", and "\r\n", are
 * allowed and ignored). 0 with out filled, or -EBADMSG with the error code
 * and a message for the answer in *code / msg (msglen bytes, NUL-terminated).
 * A well-formed request with another version gives CTL_E_VERSION.
 */
int ctl_proto_parse_request(const char *line, size_t len, struct ctl_request *out,
                            enum ctl_err *code, char *msg, size_t msglen);

/* The client's request line, "\n"-terminated, or NULL (bad cmd/args, -ENOMEM). */
char *ctl_proto_build_request(const char *cmd, const char *const *args, unsigned n_args,
                              size_t *len);

/* The answer lines, "\n"-terminated, or NULL (ENOMEM). data may be NULL ({}). */
char *ctl_proto_answer_ok(const json_t *data, size_t *len);
char *ctl_proto_answer_error(enum ctl_err code, const char *message, size_t *len);

/*
 * Client side: parses one answer line. 0 for an "ok" answer (*data: a new
 * reference to its data object; the caller json_decref()s it); 1 for an
 * error answer (*code and msg filled, *data NULL); -EBADMSG for anything
 * else (msg says what).
 */
int ctl_proto_parse_answer(const char *line, size_t len, json_t **data, enum ctl_err *code,
                           char *msg, size_t msglen);

#endif
