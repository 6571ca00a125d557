/*
 * startup.c: time from exec to the first DNS answer, for bench/run.sh --startup.
 *
 *   startup -s ADDR -p PORT [-n REPS] [-q NAME] [-o LOG] -- COMMAND ARGS...
 *
 * Each repetition forks and execs COMMAND (e.g. `anycached -c CONF`), then sends
 * a UDP query for NAME/A to ADDR:PORT every millisecond until an answer with one
 * of the IDs sent comes back, at most TIMEOUT_MS; then it stops the server with
 * SIGTERM (SIGKILL after 2 s) and waits for it, so the next repetition starts
 * from the same state. The clock starts just before fork(), so the figure also
 * holds fork and exec, as a service manager would see it.
 *
 * Output: one line per repetition (ms and the answer's RCODE), then
 * "startup: min M median D max X ms over N" (a missing answer fails the run).
 * Loopback only: ADDR must be in 127.0.0.0/8, the network rule of the project.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/wire.h"

enum { MAX_REPS = 100, TIMEOUT_MS = 5000, KILL_WAIT_MS = 2000 };

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A query for NAME/A/IN with ID id, RD set (RFC 1035 §4.1.1, §4.1.2). */
static int build_query(uint8_t *buf, size_t cap, const char *name, uint16_t id)
{
	struct wbuf b = wbuf_init(buf, cap);
	const char *p = name;

	wbuf_u16(&b, id);
	wbuf_u16(&b, 0x0100);
	wbuf_u16(&b, 1);
	wbuf_u16(&b, 0);
	wbuf_u16(&b, 0);
	wbuf_u16(&b, 0);
	while (*p) {
		size_t n = strcspn(p, ".");

		if (n == 0 || n > 63)
			return -EINVAL;
		wbuf_u8(&b, (uint8_t)n);
		wbuf_bytes(&b, p, n);
		p += n;
		if (*p == '.')
			p++;
	}
	wbuf_u8(&b, 0);
	wbuf_u16(&b, 1);
	wbuf_u16(&b, 1);
	return b.err ? b.err : (int)b.off;
}

static void stop(pid_t pid)
{
	int st;

	kill(pid, SIGTERM);
	for (int i = 0; i < KILL_WAIT_MS; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return;
		usleep(1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One start: ms from fork to the first answer, or -1 when none came within TIMEOUT_MS. */
static double one_start(const struct sockaddr_in *sa, const char *name, const char *log, char **cmd,
                        int *rcode)
{
	uint8_t q[300], r[1500];
	uint16_t first_id = (uint16_t)(rand() & 0xf000);
	unsigned sent = 0;
	double t0, t;
	pid_t pid;
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		perror("startup: socket");
		exit(1);
	}
	t0 = now_ms();
	pid = fork();
	if (pid < 0) {
		perror("startup: fork");
		exit(1);
	}
	if (pid == 0) {
		int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (lfd >= 0) {
			dup2(lfd, 1);
			dup2(lfd, 2);
		}
		execvp(cmd[0], cmd);
		_exit(127);
	}
	for (t = now_ms(); t - t0 < TIMEOUT_MS; t = now_ms()) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int ql = build_query(q, sizeof(q), name, (uint16_t)(first_id + sent));

		if (ql < 0) {
			fprintf(stderr, "startup: bad name %s\n", name);
			exit(2);
		}
		/* Errors (ECONNREFUSED while nothing listens yet) only mean: not yet. */
		if (send(fd, q, (size_t)ql, 0) == ql)
			sent++;
		if (poll(&pfd, 1, 1) <= 0)
			continue;
		for (;;) {
			ssize_t n = recv(fd, r, sizeof(r), 0);
			struct wire w;
			uint16_t id, flags;

			if (n < 0)
				break;
			w = wire_init(r, (size_t)n);
			id = wire_u16(&w);
			flags = wire_u16(&w);
			if (w.err || !(flags & 0x8000) || (uint16_t)(id - first_id) >= sent)
				continue;
			t = now_ms();
			*rcode = flags & 0xf;
			close(fd);
			stop(pid);
			return t - t0;
		}
	}
	close(fd);
	stop(pid);
	return -1;
}

int main(int argc, char **argv)
{
	const char *addr = NULL, *name = "h0.bench.test", *log = "/dev/null";
	struct sockaddr_in sa = {.sin_family = AF_INET};
	double ms[MAX_REPS];
	int port = 0, reps = 10, opt;

	while ((opt = getopt(argc, argv, "s:p:n:q:o:")) != -1) {
		switch (opt) {
		case 's':
			addr = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'n':
			reps = atoi(optarg);
			break;
		case 'q':
			name = optarg;
			break;
		case 'o':
			log = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (!addr || port <= 0 || port > 65535 || reps < 1 || reps > MAX_REPS || optind >= argc ||
	    inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		goto usage;
	if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "startup: %s is not in 127.0.0.0/8\n", addr);
		return 2;
	}
	sa.sin_port = htons((uint16_t)port);
	srand((unsigned)getpid());
	for (int i = 0; i < reps; i++) {
		int rcode = -1;

		ms[i] = one_start(&sa, name, log, argv + optind, &rcode);
		if (ms[i] < 0) {
			fprintf(stderr, "startup: run %d: no answer within %d ms\n", i + 1,
			        TIMEOUT_MS);
			return 1;
		}
		printf("  run %2d: %7.2f ms to the first answer (rcode %d)\n", i + 1, ms[i], rcode);
		usleep(50 * 1000);
	}
	qsort(ms, (size_t)reps, sizeof(ms[0]), cmp_double);
	printf("startup: min %.2f median %.2f max %.2f ms over %d starts\n", ms[0],
	       reps % 2 ? ms[reps / 2] : (ms[reps / 2 - 1] + ms[reps / 2]) / 2, ms[reps - 1], reps);
	return 0;

usage:
	fprintf(stderr,
	        "usage: startup -s ADDR -p PORT [-n REPS] [-q NAME] [-o LOG] -- COMMAND ARGS...\n");
	return 2;
}
