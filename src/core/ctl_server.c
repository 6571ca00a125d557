/*
 * ctl_server.c: the control socket and its command table (see ctl_server.h).
 */
#include "core/ctl_server.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/handover.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/stream_srv.h"

#define SOCKET_MODE 0660
#define DIR_MODE    0755

struct cmd {
	char name[CTL_PROTO_MAX_CMD + 1];
	char usage[96];
	unsigned min_args, max_args;
	ctl_cmd_fn fn;
	void *arg;
};

struct ctl_call {
	struct ctl_server *srv;
	struct ctl_call *prev, *next; /* every call not ended yet */
	uint64_t conn;
	const struct cmd *cmd;
	struct ctl_request req;
	json_t *data;
};

struct ctl_server {
	struct loop *l;
	struct stream_srv *ss;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	struct cmd cmds[CTL_SERVER_MAX_CMDS];
	unsigned n_cmds;
	struct ctl_call *calls;
};

/* ---------------------------------------------------------------- the socket */

/* mkdir -p, each missing component DIR_MODE. */
static int make_dirs(const char *path)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat st;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, DIR_MODE) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, DIR_MODE) < 0 && errno != EEXIST)
		return -errno;
	if (stat(buf, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Numeric gid, or a group name looked up now. */
static int group_id(const char *group, gid_t *gid)
{
	char *end;
	unsigned long v = strtoul(group, &end, 10);
	struct group gr, *res = NULL;
	char buf[4096];

	if (*group && !*end) {
		*gid = (gid_t)v;
		return 0;
	}
	int r = getgrnam_r(group, &gr, buf, sizeof(buf), &res);
	if (r)
		return -r;
	if (!res)
		return -ENOENT;
	*gid = res->gr_gid;
	return 0;
}

/*
 * A socket file is already there: a daemon answering on it keeps it (and
 * we do not start); one nobody answers on was left by a daemon that died.
 */
static int take_over(const struct sockaddr_un *sa, char *why, size_t whylen)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	/* A successor (handover.h) replaces the live socket of its predecessor,
	 * which keeps answering on its own connections (the restart call) and
	 * leaves the path alone when it closes (ctl_server_close). */
	if (handover_active() && S_ISSOCK(st.st_mode)) {
		if (unlink(sa->sun_path) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(why, whylen,
		         "control socket %s: a file that is not a socket is in the way",
		         sa->sun_path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? 0 : -errno;
	close(fd);
	if (r == 0) {
		snprintf(why, whylen,
		         "control socket %s: another anycached answers on it (stop it, or set "
		         "control.socket)",
		         sa->sun_path);
		return -EADDRINUSE;
	}
	if (r != -ECONNREFUSED) {
		snprintf(why, whylen, "control socket %s: cannot tell whether it is in use: %s",
		         sa->sun_path, strerror(-r));
		return r;
	}
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return -errno;
	log_info("control", "removed the stale socket %s (nobody answered on it)", sa->sun_path);
	return 0;
}

static int open_socket(struct ctl_server *s, const struct ctl_server_conf *conf, char *why,
                       size_t whylen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[sizeof(sa.sun_path)];
	struct stat st;
	gid_t gid = (gid_t)-1;
	int fd, r;

	if (!conf->path || !*conf->path || strlen(conf->path) >= sizeof(sa.sun_path)) {
		snprintf(why, whylen, "control socket: the path must have 1 to %zu bytes",
		         sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, conf->path, strlen(conf->path) + 1);
	snprintf(s->path, sizeof(s->path), "%s", conf->path);
	if (conf->group && *conf->group) {
		r = group_id(conf->group, &gid);
		if (r) {
			snprintf(why, whylen, "control.group '%s': %s", conf->group,
			         r == -ENOENT ? "no such group" : strerror(-r));
			return r;
		}
	}
	snprintf(dir, sizeof(dir), "%s", conf->path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = make_dirs(dir);
		if (r) {
			snprintf(why, whylen, "control socket directory %s: %s", dir, strerror(-r));
			return r;
		}
	}
	why[0] = '\0';
	r = take_over(&sa, why, whylen);
	if (r) {
		if (!why[0])
			snprintf(why, whylen, "control socket %s: %s", conf->path, strerror(-r));
		return r;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		r = -errno;
	/* Permissions before listen(): until then a connect is refused anyway. */
	else if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	else if (chmod(conf->path, SOCKET_MODE) < 0 ||
	         (gid != (gid_t)-1 && chown(conf->path, (uid_t)-1, gid) < 0) ||
	         lstat(conf->path, &st) < 0 || listen(fd, 16) < 0) {
		r = -errno;
		unlink(conf->path);
	}
	if (r) {
		snprintf(why, whylen, "control socket %s: %s", conf->path, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	return fd;
}

/* ---------------------------------------------------------------- calls */

static void send_line(struct ctl_server *s, uint64_t conn, char *line, size_t len)
{
	static const char oom[] = "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"internal\","
	                          "\"message\":\"out of memory\"}}\n";

	if (!line) {
		line = strdup(oom);
		len = line ? sizeof(oom) - 1 : 0;
	}
	stream_srv_reply(s->ss, conn, line, len, false);
}

static void send_error(struct ctl_server *s, uint64_t conn, enum ctl_err code, const char *msg,
                       bool close_after)
{
	size_t len = 0;
	char *line = ctl_proto_answer_error(code, msg, &len);

	if (close_after) {
		stream_srv_reply(s->ss, conn, line, len, true);
		return;
	}
	send_line(s, conn, line, len);
}

static void call_free(struct ctl_call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->srv->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	json_decref(c->data);
	free(c);
}

unsigned ctl_call_nargs(const struct ctl_call *c)
{
	return c->req.n_args;
}

const char *ctl_call_arg(const struct ctl_call *c, unsigned i)
{
	return i < c->req.n_args ? c->req.args[i] : "";
}

const char *ctl_call_cmd(const struct ctl_call *c)
{
	return c->req.cmd;
}

json_t *ctl_call_data(struct ctl_call *c)
{
	return c->data;
}

bool ctl_call_alive(const struct ctl_call *c)
{
	return stream_srv_alive(c->srv->ss, c->conn);
}

void ctl_call_done(struct ctl_call *c)
{
	size_t len = 0;
	char *line = ctl_proto_answer_ok(c->data, &len);

	send_line(c->srv, c->conn, line, len);
	call_free(c);
}

void ctl_call_fail(struct ctl_call *c, enum ctl_err code, const char *fmt, ...)
{
	char msg[CTL_PROTO_MAX_MESSAGE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_error(c->srv, c->conn, code, msg, false);
	call_free(c);
}

/* The built-in "help": every command and its usage. */
static void cmd_help(void *arg, struct ctl_call *c)
{
	struct ctl_server *s = arg;
	json_t *list = json_array();

	for (unsigned i = 0; list && i < s->n_cmds; i++)
		json_array_append_new(list, json_pack("{s:s, s:s}", "cmd", s->cmds[i].name, "usage",
		                                      s->cmds[i].usage));
	json_object_set_new(ctl_call_data(c), "protocol", json_integer(CTL_PROTO_VERSION));
	if (!list || json_object_set_new(ctl_call_data(c), "commands", list)) {
		ctl_call_fail(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	ctl_call_done(c);
}

/* stream_srv's protocol callback: one request line at a time. */
static int on_request(void *arg, uint64_t conn, const uint8_t *buf, size_t len, bool last)
{
	struct ctl_server *s = arg;
	const uint8_t *nl = memchr(buf, '\n', len);
	char msg[CTL_PROTO_MAX_MESSAGE];
	enum ctl_err code;
	struct ctl_call *c;
	size_t used;

	if (nl) {
		used = (size_t)(nl - buf) + 1;
	} else if (!last) {
		return 0;
	} else if (len >= CTL_PROTO_MAX_REQUEST) {
		snprintf(msg, sizeof(msg), "a request line is at most %u bytes",
		         CTL_PROTO_MAX_REQUEST);
		send_error(s, conn, CTL_E_TOO_LARGE, msg, true);
		return (int)len;
	} else {
		used = len; /* the client shut down: its last line may lack "\n" */
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		send_line(s, conn, NULL, 0);
		return (int)used;
	}
	if (ctl_proto_parse_request((const char *)buf, used, &c->req, &code, msg, sizeof(msg))) {
		free(c);
		send_error(s, conn, code, msg, false);
		return (int)used;
	}
	for (unsigned i = 0; i < s->n_cmds; i++)
		if (!strcmp(s->cmds[i].name, c->req.cmd))
			c->cmd = &s->cmds[i];
	if (!c->cmd) {
		snprintf(msg, sizeof(msg), "no command '%s' (try: help)", c->req.cmd);
		free(c);
		send_error(s, conn, CTL_E_UNKNOWN_COMMAND, msg, false);
		return (int)used;
	}
	if (c->req.n_args < c->cmd->min_args || c->req.n_args > c->cmd->max_args) {
		snprintf(msg, sizeof(msg), "usage: %s", c->cmd->usage);
		free(c);
		send_error(s, conn, CTL_E_BAD_ARGUMENT, msg, false);
		return (int)used;
	}
	c->data = json_object();
	if (!c->data) {
		free(c);
		send_line(s, conn, NULL, 0);
		return (int)used;
	}
	c->srv = s;
	c->conn = conn;
	c->next = s->calls;
	if (c->next)
		c->next->prev = c;
	s->calls = c;
	c->cmd->fn(c->cmd->arg, c);
	return (int)used;
}

/* ---------------------------------------------------------------- lifecycle */

int ctl_server_register(struct ctl_server *s, const char *cmd, unsigned min_args, unsigned max_args,
                        const char *usage, ctl_cmd_fn fn, void *arg)
{
	struct cmd *c;

	if (!cmd || strlen(cmd) > CTL_PROTO_MAX_CMD || !fn || min_args > max_args ||
	    max_args > CTL_PROTO_MAX_ARGS)
		return -EINVAL;
	for (unsigned i = 0; i < s->n_cmds; i++)
		if (!strcmp(s->cmds[i].name, cmd))
			return -EEXIST;
	if (s->n_cmds == CTL_SERVER_MAX_CMDS)
		return -ENOSPC;
	c = &s->cmds[s->n_cmds++];
	snprintf(c->name, sizeof(c->name), "%s", cmd);
	snprintf(c->usage, sizeof(c->usage), "%s", usage ? usage : cmd);
	c->min_args = min_args;
	c->max_args = max_args;
	c->fn = fn;
	c->arg = arg;
	return 0;
}

int ctl_server_new(struct loop *l, const struct ctl_server_conf *conf, char *why, size_t whylen,
                   struct ctl_server **out)
{
	struct stream_srv_conf sc = {
	    .name = "control",
	    .max_conns = conf->max_conns ? conf->max_conns : CTL_SERVER_MAX_CONNS,
	    .max_request = CTL_PROTO_MAX_REQUEST,
	    .timeout_ms = conf->timeout_ms ? conf->timeout_ms : CTL_SERVER_TIMEOUT_MS,
	};
	struct ctl_server *s = calloc(1, sizeof(*s));
	int fd, r;

	if (!s) {
		snprintf(why, whylen, "control socket: out of memory");
		return -ENOMEM;
	}
	s->l = l;
	fd = open_socket(s, conf, why, whylen);
	if (fd < 0) {
		free(s);
		return fd;
	}
	r = stream_srv_new(l, fd, &sc, on_request, s, &s->ss);
	if (r) {
		snprintf(why, whylen, "control socket %s: %s", conf->path, strerror(-r));
		close(fd);
		unlink(s->path);
		free(s);
		return r;
	}
	ctl_server_register(s, "help", 0, 0, "help", cmd_help, s);
	*out = s;
	return 0;
}

void ctl_server_close(struct ctl_server *s)
{
	struct stat st;

	if (!s || !s->ss)
		return;
	stream_srv_close(s->ss);
	/* Only our own socket: a successor may have replaced it already. */
	if (s->path[0] && lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	s->path[0] = '\0';
}

void ctl_server_free(struct ctl_server *s)
{
	if (!s)
		return;
	while (s->calls)
		call_free(s->calls);
	stream_srv_free(s->ss);
	free(s);
}
