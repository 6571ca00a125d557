/*
 * Unit tests for the control socket glue (src/core/ctl_server.c on
 * src/core/stream_srv.c) on a real loop in its own thread, with unix
 * sockets in a private directory: the socket file's making (mode, stale
 * and live sockets, other files in the way), answers at once and later,
 * pipelining and half-close, and the bounds: a client that sends nothing,
 * one that sends too much, one connection too many. Every wait is bounded
 * by socket timeouts and a watchdog timer on the loop.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/ctl_server.h"
#include "core/loop.h"
#include "core/timer.h"

static char dir[40], path[100];
static struct loop *l;
static struct ctl_server *srv;
static pthread_t th;
static bool running;
static struct timer watchdog;

static void on_watchdog(struct timer *t, uint64_t now, void *arg)
{
	loop_stop(arg);
}

static void *run(void *arg)
{
	return (void *)(intptr_t)loop_run(arg);
}

/* "echo ARG": answers {"echo": ARG} at once. */
static void cmd_echo(void *arg, struct ctl_call *c)
{
	json_object_set_new(ctl_call_data(c), "echo", json_string(ctl_call_arg(c, 0)));
	ctl_call_done(c);
}

/* "later": answered from a timer 100 ms on (as a round to the workers would be). */
static struct ctl_call *later_call;
static struct timer later_timer;
static void later_fire(struct timer *t, uint64_t now, void *arg)
{
	json_object_set_new(ctl_call_data(later_call), "late", json_true());
	ctl_call_done(later_call);
	later_call = NULL;
}
static void cmd_later(void *arg, struct ctl_call *c)
{
	later_call = c;
	loop_timer_arm_in(l, &later_timer, 100);
}

static void cmd_fail(void *arg, struct ctl_call *c)
{
	ctl_call_fail(c, CTL_E_NOT_FOUND, "nothing called %s", ctl_call_arg(c, 0));
}

static void start(unsigned max_conns, unsigned timeout_ms)
{
	struct ctl_server_conf cc = {
	    .path = path, .max_conns = max_conns, .timeout_ms = timeout_ms};
	char why[256];

	cr_assert_eq(loop_new(NULL, &l), 0);
	cr_assert_eq(ctl_server_new(l, &cc, why, sizeof(why), &srv), 0, "%s", why);
	cr_assert_eq(ctl_server_register(srv, "echo", 1, 1, "echo WORD", cmd_echo, NULL), 0);
	cr_assert_eq(ctl_server_register(srv, "later", 0, 0, "later", cmd_later, NULL), 0);
	cr_assert_eq(ctl_server_register(srv, "fail", 1, 1, "fail X", cmd_fail, NULL), 0);
	cr_assert_eq(ctl_server_register(srv, "echo", 0, 0, "dup", cmd_echo, NULL), -EEXIST);
	timer_init(&later_timer, later_fire, NULL);
	timer_init(&watchdog, on_watchdog, l);
	loop_timer_arm_in(l, &watchdog, 20000);
	cr_assert_eq(pthread_create(&th, NULL, run, l), 0);
	running = true;
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/anycache-ctltest-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/run/sub/ctl.sock", dir);
}

static void stop_loop(void)
{
	if (!running)
		return;
	loop_stop(l);
	pthread_join(th, NULL);
	running = false;
}

static void teardown(void)
{
	char cmd[128];

	stop_loop();
	if (srv) {
		ctl_server_close(srv);
		loop_drain(l, 1000);
	}
	if (l)
		loop_free(l);
	ctl_server_free(srv);
	srv = NULL;
	l = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	system(cmd);
}

TestSuite(ctl_server, .init = setup, .fini = teardown, .timeout = 30);

static int client(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 3};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
	             strerror(errno));
	return fd;
}

static void say(int fd, const char *s)
{
	cr_assert_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Reads one line (without "\n") into buf; returns its length, or -1 at EOF/timeout. */
static int hear(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t r = recv(fd, buf + n, 1, 0);
		if (r <= 0)
			return -1;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return (int)n;
		}
		n++;
	}
	return -1;
}

/* Whether the server closed fd within ms (EOF or reset, nothing else read). */
static bool closed_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char b[64];
	uint64_t end = clock_now_ms() + (uint64_t)ms;

	while (clock_now_ms() < end) {
		if (poll(&p, 1, 50) > 0) {
			ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);
			if (r <= 0)
				return r == 0 || errno != EAGAIN;
		}
	}
	return false;
}

Test(ctl_server, socket_mode_and_answers)
{
	struct stat st;
	char line[512];
	int fd;

	start(4, 2000);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0660);
	fd = client();
	say(fd, "{\"v\":1,\"cmd\":\"echo\",\"args\":[\"hello\"]}\n");
	cr_assert_gt(hear(fd, line, sizeof(line)), 0);
	cr_assert_str_eq(line, "{\"v\":1,\"ok\":true,\"data\":{\"echo\":\"hello\"}}");
	/* Pipelined: three requests in one write, answered in order on one connection. */
	say(fd, "{\"v\":1,\"cmd\":\"later\"}\n{\"v\":1,\"cmd\":\"fail\",\"args\":[\"x\"]}\n"
	        "{\"v\":1,\"cmd\":\"echo\",\"args\":[\"3\"]}\n");
	cr_assert_gt(hear(fd, line, sizeof(line)), 0);
	cr_assert_str_eq(line, "{\"v\":1,\"ok\":true,\"data\":{\"late\":true}}");
	cr_assert_gt(hear(fd, line, sizeof(line)), 0);
	cr_assert_str_eq(line,
	                 "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"not-found\",\"message\":"
	                 "\"nothing called x\"}}");
	cr_assert_gt(hear(fd, line, sizeof(line)), 0);
	cr_assert_str_eq(line, "{\"v\":1,\"ok\":true,\"data\":{\"echo\":\"3\"}}");
	/* Bad requests are answered and the connection stays usable. */
	say(fd, "nonsense\n");
	cr_assert_gt(hear(fd, line, sizeof(line)), 0);
	cr_assert_not_null(strstr(line, "\"bad-request\""), "%s", line);
	say(fd, "{\"v\":1,\"cmd\":\"nope\"}\n");
	cr_assert_gt(hear(fd, line, sizeof(line)), 0);
	cr_assert_not_null(strstr(line, "\"unknown-command\""), "%s", line);
	say(fd, "{\"v\":1,\"cmd\":\"echo\"}\n");
	cr_assert_gt(hear(fd, line, sizeof(line)), 0);
	cr_assert_not_null(strstr(line, "usage: echo WORD"), "%s", line);
	say(fd, "{\"v\":1,\"cmd\":\"help\"}\n");
	cr_assert_gt(hear(fd, line, sizeof(line)), 0);
	cr_assert_not_null(strstr(line, "\"echo WORD\""), "%s", line);
	close(fd);
	/* Half-close: the last line without "\n" is still answered, then EOF. */
	fd = client();
	say(fd, "{\"v\":1,\"cmd\":\"echo\",\"args\":[\"bye\"]}");
	shutdown(fd, SHUT_WR);
	cr_assert_gt(hear(fd, line, sizeof(line)), 0);
	cr_assert_str_eq(line, "{\"v\":1,\"ok\":true,\"data\":{\"echo\":\"bye\"}}");
	cr_assert(closed_within(fd, 1000));
	close(fd);
	/* A client gone before its late answer: nothing breaks. */
	fd = client();
	say(fd, "{\"v\":1,\"cmd\":\"later\"}\n");
	close(fd);
	usleep(300 * 1000);
	fd = client();
	say(fd, "{\"v\":1,\"cmd\":\"echo\",\"args\":[\"alive\"]}\n");
	cr_assert_gt(hear(fd, line, sizeof(line)), 0);
	close(fd);
	/* Closing removes the socket file. */
	stop_loop();
	ctl_server_close(srv);
	cr_assert_neq(lstat(path, &st), 0);
}

Test(ctl_server, silent_client_is_closed_after_the_timeout)
{
	uint64_t t0;
	int fd;

	start(4, 300);
	fd = client();
	t0 = clock_now_ms();
	cr_assert(closed_within(fd, 2000), "a client that sends nothing is closed");
	cr_assert_geq(clock_now_ms() - t0, 250);
	close(fd);
	/* A request trickled slower than the timeout is cut too. */
	fd = client();
	say(fd, "{\"v\":1,");
	cr_assert(closed_within(fd, 2000));
	close(fd);
	/* A byte every 50 ms is still a request that never arrives whole within
	 * 300 ms: cut off as well (slowloris). */
	fd = client();
	t0 = clock_now_ms();
	bool cut = false;
	for (int i = 0; i < 40 && !cut; i++) {
		cut = send(fd, " ", 1, MSG_NOSIGNAL) < 0 || closed_within(fd, 50);
	}
	cr_assert(cut, "a trickling client kept its connection");
	cr_assert_lt(clock_now_ms() - t0, 1000);
	close(fd);
}

Test(ctl_server, oversize_request_is_refused_and_closed)
{
	static char big[CTL_PROTO_MAX_REQUEST + 100];
	char line[512];
	int fd;

	start(4, 2000);
	fd = client();
	memset(big, ' ', sizeof(big));
	send(fd, big, sizeof(big), MSG_NOSIGNAL);
	cr_assert_gt(hear(fd, line, sizeof(line)), 0);
	cr_assert_not_null(strstr(line, "\"too-large\""), "%s", line);
	cr_assert(closed_within(fd, 1000));
	close(fd);
}

Test(ctl_server, one_connection_too_many_is_closed_at_once)
{
	char line[256];
	int a, b, c;

	start(2, 5000);
	a = client();
	b = client();
	c = client();
	cr_assert(closed_within(c, 1000), "the third of max 2");
	close(c);
	say(a, "{\"v\":1,\"cmd\":\"echo\",\"args\":[\"a\"]}\n");
	cr_assert_gt(hear(a, line, sizeof(line)), 0, "the others are served");
	close(a);
	usleep(100 * 1000);
	c = client();
	say(c, "{\"v\":1,\"cmd\":\"echo\",\"args\":[\"c\"]}\n");
	cr_assert_gt(hear(c, line, sizeof(line)), 0, "a freed slot is reused");
	close(b);
	close(c);
}

Test(ctl_server, stale_socket_replaced_live_one_refused)
{
	struct ctl_server_conf cc = {.path = path};
	struct ctl_server *second;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char why[256], sub[128];
	struct loop *l2;
	int fd;

	/* A socket file nobody listens on: left by a daemon that died. */
	snprintf(sub, sizeof(sub), "%s/run", dir);
	mkdir(sub, 0755);
	snprintf(sub, sizeof(sub), "%s/run/sub", dir);
	mkdir(sub, 0755);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	start(4, 2000);
	close(client());
	/* While it runs, a second server on the same path is refused. */
	cr_assert_eq(loop_new(NULL, &l2), 0);
	cr_assert_eq(ctl_server_new(l2, &cc, why, sizeof(why), &second), -EADDRINUSE);
	cr_assert_not_null(strstr(why, "another anycached"), "%s", why);
	loop_free(l2);
	close(client()); /* and the first still answers */
}

Test(ctl_server, other_files_are_never_removed)
{
	struct ctl_server_conf cc = {.path = path, .group = "no-such-group-here"};
	char why[256], sub[128];
	struct stat st;

	cr_assert_eq(loop_new(NULL, &l), 0);
	cr_assert_eq(ctl_server_new(l, &cc, why, sizeof(why), &srv), -ENOENT);
	cr_assert_not_null(strstr(why, "no such group"), "%s", why);
	srv = NULL;
	snprintf(sub, sizeof(sub), "%s/run", dir);
	mkdir(sub, 0755);
	snprintf(sub, sizeof(sub), "%s/run/sub", dir);
	mkdir(sub, 0755);
	FILE *f = fopen(path, "w");
	fputs("precious", f);
	fclose(f);
	cc.group = "0"; /* a numeric gid is taken as is */
	cr_assert_eq(ctl_server_new(l, &cc, why, sizeof(why), &srv), -EEXIST);
	srv = NULL;
	cr_assert_not_null(strstr(why, "not a socket"), "%s", why);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISREG(st.st_mode), "left alone");
	unlink(path);
	cr_assert_eq(ctl_server_new(l, &cc, why, sizeof(why), &srv), 0, "%s", why);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert_eq(st.st_gid, 0);
}
