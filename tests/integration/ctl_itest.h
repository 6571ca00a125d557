/*
 * ctl_itest.h: running the real anycachectl (ANYCACHECTL, set by meson)
 * against a daemon's control socket, and raw clients of that socket and of
 * the metrics endpoint, for test_control.c and test_metrics.c. Loopback and
 * unix sockets only; every wait bounded.
 */
#ifndef ANYCACHE_TESTS_CTL_ITEST_H
#define ANYCACHE_TESTS_CTL_ITEST_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

static inline char *ctl_bin(void)
{
	char *b = getenv("ANYCACHECTL");
	cr_assert_not_null(b, "ANYCACHECTL not set (run through meson test)");
	return b;
}

/*
 * Runs `[prefix...] anycachectl -s sock words...` (words: NULL-terminated);
 * stdout (and stderr when merge) into out. Returns the exit status.
 */
static inline int ctl_run(const char *const *prefix, const char *sock, bool merge, char *out,
                          size_t cap, ...)
{
	char *argv[32];
	int n = 0;
	va_list ap;

	for (; prefix && prefix[n]; n++)
		argv[n] = (char *)prefix[n];
	argv[n++] = ctl_bin();
	argv[n++] = "-s";
	argv[n++] = (char *)sock;
	va_start(ap, cap);
	for (char *w = va_arg(ap, char *); w && n < 31; w = va_arg(ap, char *))
		argv[n++] = w;
	va_end(ap);
	argv[n] = NULL;
	return run_capture(argv, merge, out, cap, 15000);
}

#define CTL(sock, out, ...) ctl_run(NULL, (sock), true, (out), sizeof(out), __VA_ARGS__, NULL)
#define CTL_J(sock, out, ...)                                                                      \
	ctl_run(NULL, (sock), false, (out), sizeof(out), "--json", __VA_ARGS__, NULL)

/* `anycachectl --json ...`, parsed: the data object (json_decref it). */
static inline json_t *ctl_json(const char *sock, const char *cmd, const char *arg)
{
	static char out[1 << 17];
	json_error_t e;
	char *argv[8] = {ctl_bin(), "-s", (char *)sock, "--json"};
	int n = 4;
	char c1[64], *w2 = NULL;

	snprintf(c1, sizeof(c1), "%s", cmd);
	argv[n++] = c1;
	if ((w2 = strchr(c1, ' '))) {
		*w2++ = '\0';
		argv[n++] = w2;
	}
	if (arg)
		argv[n++] = (char *)arg;
	argv[n] = NULL;
	int rc = run_capture(argv, false, out, sizeof(out), 15000);
	cr_assert_eq(rc, 0, "anycachectl --json %s: exit %d: %s", cmd, rc, out);
	json_t *j = json_loads(out, 0, &e);
	cr_assert_not_null(j, "%s: not JSON (%s): %s", cmd, e.text, out);
	cr_assert(json_is_object(j));
	return j;
}

/* A raw unix-socket client: fd with 3 s timeouts, or -errno. */
static inline int unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 3};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Everything the peer sends until it closes (or timeout_ms): bytes read, -ETIMEDOUT. */
static inline int read_until_close(int fd, char *buf, size_t cap, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	size_t n = 0;

	buf[0] = '\0';
	for (;;) {
		int64_t left = (int64_t)(end - now_ms());
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
		if (r <= 0)
			return (int)n;
		n += (size_t)r;
		buf[n] = '\0';
		if (n == cap - 1)
			return (int)n;
	}
}

/* One line from fd (without "\n"), or -1. */
static inline int read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t r = recv(fd, buf + n, 1, 0);
		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return (int)n;
}

/* TCP to addr:port (IPv4), 3 s timeouts; fd or -errno. */
static inline int tcp_connect4(const char *addr, uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct timeval tv = {.tv_sec = 3};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, addr, &sin.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* One HTTP exchange: sends req as is, returns the whole response (status in *status). */
static inline int http_exchange(const char *addr, uint16_t port, const char *req, char *out,
                                size_t cap, int *status)
{
	int fd = tcp_connect4(addr, port);

	*status = 0;
	if (fd < 0)
		return fd;
	send(fd, req, strlen(req), MSG_NOSIGNAL);
	int n = read_until_close(fd, out, cap, 5000);
	close(fd);
	if (n > 12 && !strncmp(out, "HTTP/1.1 ", 9))
		*status = atoi(out + 9);
	return n;
}

/* The body of an HTTP response in buf (after the blank line), or "". */
static inline const char *http_body(const char *buf)
{
	const char *b = strstr(buf, "\r\n\r\n");
	return b ? b + 4 : "";
}

/* The value of the sample `line_start` (exact name and labels) in a scrape, or NAN. */
static inline double scrape_value(const char *page, const char *line_start)
{
	size_t n = strlen(line_start);
	for (const char *p = page; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, line_start, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return 0.0 / 0.0;
}

#endif
