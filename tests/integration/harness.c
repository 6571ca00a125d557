/* Process, file and DNS helpers for integration tests; see harness.h. */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int tmpdir_make(struct tmpdir *t, const char *tag)
{
	snprintf(t->path, sizeof(t->path), "/tmp/anycache-%s-XXXXXX", tag);
	if (!mkdtemp(t->path)) {
		t->path[0] = '\0';
		return -errno;
	}
	return 0;
}

void tmpdir_remove(struct tmpdir *t)
{
	char out[64];

	/* Only ever a directory this harness made under /tmp. */
	if (strncmp(t->path, "/tmp/anycache-", 14) != 0)
		return;
	char *argv[] = {"rm", "-rf", t->path, NULL};
	run_capture(argv, true, out, sizeof(out), 10000);
	t->path[0] = '\0';
}

int write_file(const char *dir, const char *name, const char *text, char *out, size_t outlen)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fputs(text, f);
	if (fclose(f))
		return -errno;
	if (out)
		snprintf(out, outlen, "%s", path);
	return 0;
}

int proc_start(struct proc *p, const char *name, char *const argv[], const char *log)
{
	pid_t parent = getpid();
	pid_t pid;

	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->log, sizeof(p->log), "%s", log);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	p->pid = pid;
	return 0;
}

bool proc_alive(struct proc *p)
{
	int st;

	if (p->pid <= 0)
		return false;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		p->pid = -1;
		return false;
	}
	return true;
}

int proc_wait(struct proc *p, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	int st;

	if (p->pid <= 0)
		return -ECHILD;
	while (now_ms() < end) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid) {
			p->pid = -1;
			return st;
		}
		if (r < 0)
			return -errno;
		sleep_ms(10);
	}
	return -ETIMEDOUT;
}

int proc_freeze(struct proc *p, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	int st;

	if (p->pid <= 0)
		return -ECHILD;
	if (kill(p->pid, SIGSTOP) < 0)
		return -errno;
	while (now_ms() < end) {
		pid_t r = waitpid(p->pid, &st, WNOHANG | WUNTRACED);
		if (r == p->pid && WIFSTOPPED(st))
			return 0;
		if (r < 0)
			return -errno;
		sleep_ms(1);
	}
	return -ETIMEDOUT;
}

int proc_stop(struct proc *p, int sig, int timeout_ms)
{
	int st;

	if (p->pid <= 0)
		return -1;
	kill(p->pid, sig);
	st = proc_wait(p, timeout_ms);
	if (st == -ETIMEDOUT) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &st, 0);
		p->pid = -1;
		return -1;
	}
	return st;
}

void proc_dump_log(const struct proc *p)
{
	char buf[4096];
	FILE *f = fopen(p->log, "r");
	size_t n;
	long size;

	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "---- %s log (%s) ----\n%s\n---- end of %s log ----\n", p->name, p->log,
	        buf, p->name);
}

int run_capture(char *const argv[], bool merge, char *out, size_t cap, int timeout_ms)
{
	int pfd[2];
	pid_t pid;
	size_t used = 0;
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	int st = 0;

	if (cap)
		out[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -errno;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], STDOUT_FILENO);
		if (merge)
			dup2(pfd[1], STDERR_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		int64_t left = (int64_t)(end - now_ms());
		struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			close(pfd[0]);
			return -ETIMEDOUT;
		}
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		char tmp[4096];
		ssize_t n = read(pfd[0], tmp, sizeof(tmp));
		if (n <= 0)
			break;
		if (cap && used < cap - 1) {
			size_t take = (size_t)n < cap - 1 - used ? (size_t)n : cap - 1 - used;
			memcpy(out + used, tmp, take);
			used += take;
			out[used] = '\0';
		}
	}
	close(pfd[0]);
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -ETIMEDOUT;
		}
		sleep_ms(5);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int dns_make_query(uint8_t *buf, size_t cap, uint16_t id, const char *qname, uint16_t qtype,
                   bool edns)
{
	size_t off = 12;
	const char *s = qname;

	if (cap < 512)
		return -EMSGSIZE;
	memset(buf, 0, 12);
	buf[0] = (uint8_t)(id >> 8);
	buf[1] = (uint8_t)id;
	buf[2] = 0x01; /* RD */
	buf[5] = 1;    /* QDCOUNT */
	while (*s) {
		const char *dot = strchr(s, '.');
		size_t n = dot ? (size_t)(dot - s) : strlen(s);
		if (n == 0 || n > 63 || off + n + 1 > 300)
			return -EINVAL;
		buf[off++] = (uint8_t)n;
		memcpy(buf + off, s, n);
		off += n;
		s += n;
		if (*s == '.')
			s++;
	}
	buf[off++] = 0;
	buf[off++] = (uint8_t)(qtype >> 8);
	buf[off++] = (uint8_t)qtype;
	buf[off++] = 0;
	buf[off++] = 1; /* IN */
	if (edns) {
		buf[11] = 1; /* ARCOUNT */
		const uint8_t opt[] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
		memcpy(buf + off, opt, sizeof(opt));
		off += sizeof(opt);
	}
	return (int)off;
}

int dns_udp_exchange(const char *addr, uint16_t port, const void *q, size_t qlen, void *ans,
                     size_t anscap, int timeout_ms)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, r;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, addr, &in6->sin6_addr) != 1)
			return -EINVAL;
		sl = sizeof(*in6);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		if (inet_pton(AF_INET, addr, &in->sin_addr) != 1)
			return -EINVAL;
		sl = sizeof(*in);
	}
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 || send(fd, q, qlen, 0) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	r = poll(&pf, 1, timeout_ms);
	if (r <= 0) {
		close(fd);
		return r == 0 ? -ETIMEDOUT : -errno;
	}
	ssize_t n = recv(fd, ans, anscap, 0);
	r = n < 0 ? -errno : (int)n;
	close(fd);
	return r;
}

int wait_dns_udp(const char *addr, uint16_t port, const char *qname, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	uint8_t q[512], a[4096];
	int qlen = dns_make_query(q, sizeof(q), 0x4242, qname, 1, false);

	if (qlen < 0)
		return qlen;
	while (now_ms() < end) {
		if (dns_udp_exchange(addr, port, q, (size_t)qlen, a, sizeof(a), 200) >= 12)
			return 0;
		sleep_ms(50);
	}
	return -ETIMEDOUT;
}

/* 200 octets of TXT string per record, distinct by its two-digit tag. */
#define TXT50        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX"
#define BIG_TXT(tag) "big    TXT  \"" tag TXT50 TXT50 TXT50 TXT50 "\"\n"

/* A zone with the shapes the DNS tests need (RFC 1035 master file syntax). */
const char harness_example_zone[] =
    "$ORIGIN example.test.\n"
    "$TTL 300\n"
    "@      SOA  ns.example.test. hostmaster.example.test. 1 3600 600 86400 60\n"
    "@      NS   ns\n"
    "ns     A    127.0.0.1\n"
    "www    A    192.0.2.80\n"
    "www    AAAA 2001:db8::80\n"
    "@      MX   10 mail\n"
    "mail   A    192.0.2.25\n"
    "alias  CNAME alias2\n"
    "alias2 CNAME www\n"
    "short 2 A   192.0.2.2\n"
    "pre 10 A    192.0.2.10\n"
    "*.wild A    192.0.2.99\n"
    "txt    TXT  \"hello\" \"world\"\n" BIG_TXT("00") BIG_TXT("01") BIG_TXT("02") BIG_TXT("03")
        BIG_TXT("04") BIG_TXT("05") BIG_TXT("06") BIG_TXT("07") BIG_TXT("08") BIG_TXT("09")
            BIG_TXT("10") BIG_TXT("11") BIG_TXT("12") BIG_TXT("13") BIG_TXT("14") BIG_TXT("15");

int knotd_start(struct knotd *k, const char *addr, uint16_t port, const char *const *zones,
                unsigned nzones)
{
	char conf[8192], path[512], log[512];
	size_t off;
	int r;

	memset(k, 0, sizeof(*k));
	snprintf(k->addr, sizeof(k->addr), "%s", addr);
	k->port = port;
	r = tmpdir_make(&k->dir, "knotd");
	if (r)
		return r;
	/* knotd as root needs an explicit user and a writable rundir (PLATFORM.md). */
	off = (size_t)snprintf(conf, sizeof(conf),
	                       "server:\n"
	                       "    rundir: \"%s\"\n"
	                       "    user: root:root\n"
	                       "    listen: %s@%u\n"
	                       "    background-workers: 1\n"
	                       "    udp-workers: 1\n"
	                       "    tcp-workers: 1\n"
	                       "database:\n"
	                       "    storage: \"%s\"\n"
	                       "control:\n"
	                       "    listen: \"%s/knot.sock\"\n"
	                       "log:\n"
	                       "  - target: stderr\n"
	                       "    any: info\n"
	                       "template:\n"
	                       "  - id: default\n"
	                       "    storage: \"%s\"\n"
	                       "    zonefile-sync: -1\n"
	                       "    journal-content: none\n"
	                       "zone:\n",
	                       k->dir.path, addr, port, k->dir.path, k->dir.path, k->dir.path);
	for (unsigned i = 0; i < nzones; i++) {
		char fname[300];
		snprintf(fname, sizeof(fname), "%s.zone", zones[2 * i]);
		r = write_file(k->dir.path, fname, zones[2 * i + 1], NULL, 0);
		if (r)
			return r;
		off += (size_t)snprintf(conf + off, sizeof(conf) - off,
		                        "  - domain: %s\n    file: \"%s/%s\"\n", zones[2 * i],
		                        k->dir.path, fname);
	}
	r = write_file(k->dir.path, "knot.conf", conf, path, sizeof(path));
	if (r)
		return r;
	snprintf(log, sizeof(log), "%s/knotd.log", k->dir.path);
	char *argv[] = {"knotd", "-c", path, NULL};
	r = proc_start(&k->proc, "knotd", argv, log);
	if (r)
		return r;
	r = wait_dns_udp(addr, port, zones[0], 10000);
	if (r) {
		proc_dump_log(&k->proc);
		return r;
	}
	return 0;
}

void knotd_stop(struct knotd *k)
{
	if (k->proc.pid > 0)
		proc_stop(&k->proc, SIGTERM, 5000);
	tmpdir_remove(&k->dir);
}

char *harness_private_control(const char *dir, const char *yaml)
{
	size_t n = strlen(yaml) + 2 * strlen(dir) + 96;
	char *out = malloc(n);

	if (!out)
		return NULL;
	if (!strncmp(yaml, "control:", 8) || strstr(yaml, "\ncontrol:")) {
		snprintf(out, n, "%s", yaml);
		return out;
	}
	snprintf(out, n,
	         "%s%scontrol:\n  socket: \"%s/control.sock\"\n  state: \"%s/drain.json\"\n", yaml,
	         *yaml && yaml[strlen(yaml) - 1] != '\n' ? "\n" : "", dir, dir);
	return out;
}

bool harness_verbose;

int anycached_rewrite_conf(struct anycached *d, const char *conf_yaml)
{
	char tmp[700];
	char *text = harness_private_control(d->dir.path, conf_yaml);
	if (!text)
		return -ENOMEM;
	int r = write_file(d->dir.path, "next.yaml", text, tmp, sizeof(tmp));
	free(text);
	if (r)
		return r;
	return rename(tmp, d->conf) < 0 ? -errno : 0;
}

int anycached_start(struct anycached *d, const char *conf_yaml, const char *addr, uint16_t port)
{
	char log[512];
	const char *bin = getenv("ANYCACHED");
	int r;

	memset(d, 0, sizeof(*d));
	if (!bin)
		return -ENOENT;
	r = tmpdir_make(&d->dir, "anycached");
	if (r)
		return r;
	char *text = harness_private_control(d->dir.path, conf_yaml);
	if (!text)
		return -ENOMEM;
	r = write_file(d->dir.path, "anycache.yaml", text, d->conf, sizeof(d->conf));
	free(text);
	if (r)
		return r;
	snprintf(log, sizeof(log), "%s/anycached.log", d->dir.path);
	char *argv[] = {(char *)bin, "-c", d->conf, harness_verbose ? "-v" : NULL, NULL};
	r = proc_start(&d->proc, "anycached", argv, log);
	if (r)
		return r;
	/* Bounded wait, cut short when the daemon exits (a config error, say). */
	for (int i = 0; i < 40; i++) {
		r = wait_dns_udp(addr, port, "www.example.test", 250);
		if (r == 0)
			return 0;
		if (!proc_alive(&d->proc)) {
			r = -ESRCH;
			break;
		}
	}
	proc_dump_log(&d->proc);
	return r;
}

int anycached_stop(struct anycached *d)
{
	int st = -1;

	if (d->proc.pid > 0) {
		st = proc_stop(&d->proc, SIGTERM, 5000);
		if (st != 0)
			proc_dump_log(&d->proc);
	}
	tmpdir_remove(&d->dir);
	return st;
}

static int make_sockaddr(const char *addr, uint16_t port, struct sockaddr_storage *ss,
                         socklen_t *sl)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, addr, &in6->sin6_addr) != 1)
			return -EINVAL;
		*sl = sizeof(*in6);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		if (inet_pton(AF_INET, addr, &in->sin_addr) != 1)
			return -EINVAL;
		*sl = sizeof(*in);
	}
	return 0;
}

int dns_udp_exchange_from(const char *src, const char *addr, uint16_t port, const void *q,
                          size_t qlen, void *ans, size_t anscap, int timeout_ms)
{
	struct sockaddr_storage ss, from;
	socklen_t sl, fl;
	int fd, r;

	if (make_sockaddr(addr, port, &ss, &sl) || make_sockaddr(src, 0, &from, &fl))
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&from, fl) < 0 ||
	    connect(fd, (struct sockaddr *)&ss, sl) < 0 || send(fd, q, qlen, 0) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	r = poll(&pf, 1, timeout_ms);
	if (r <= 0) {
		close(fd);
		return r == 0 ? -ETIMEDOUT : -errno;
	}
	ssize_t n = recv(fd, ans, anscap, 0);
	r = n < 0 ? -errno : (int)n;
	close(fd);
	return r;
}

int dns_tcp_connect(const char *addr, uint16_t port, int timeout_ms)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	int fd;

	if (make_sockaddr(addr, port, &ss, &sl))
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Bounds connect() (SO_SNDTIMEO applies to it) and every later write. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int dns_tcp_write(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes before the deadline: len, 0 at EOF, -errno. */
static int read_full(int fd, uint8_t *p, size_t len, uint64_t end)
{
	size_t got = 0;

	while (got < len) {
		int64_t left = (int64_t)(end - now_ms());
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (left <= 0)
			return -ETIMEDOUT;
		int r = poll(&pf, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		ssize_t n = recv(fd, p + got, len - got, 0);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno == ECONNRESET ? 0 : -errno;
		}
		got += (size_t)n;
	}
	return (int)len;
}

int dns_tcp_read_msg(int fd, void *buf, size_t cap, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	uint8_t pfx[2];
	int r = read_full(fd, pfx, 2, end);
	size_t len;

	if (r <= 0)
		return r;
	len = (size_t)(pfx[0] << 8 | pfx[1]);
	if (len > cap)
		return -EMSGSIZE;
	if (len == 0)
		return -EBADMSG;
	r = read_full(fd, buf, len, end);
	return r == 0 ? -EPIPE : r;
}

int dns_tcp_wait_closed(int fd, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	uint8_t tmp[4096];

	for (;;) {
		int64_t left = (int64_t)(end - now_ms());
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (left <= 0)
			return -ETIMEDOUT;
		int r = poll(&pf, 1, (int)left);
		if (r <= 0)
			continue;
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return 0;
	}
}

int dns_tcp_exchange(const char *addr, uint16_t port, const void *q, size_t qlen, void *ans,
                     size_t anscap, int timeout_ms)
{
	uint8_t pfx[2] = {(uint8_t)(qlen >> 8), (uint8_t)qlen};
	int fd = dns_tcp_connect(addr, port, timeout_ms);
	int r;

	if (fd < 0)
		return fd;
	r = dns_tcp_write(fd, pfx, 2);
	if (!r)
		r = dns_tcp_write(fd, q, qlen);
	if (!r)
		r = dns_tcp_read_msg(fd, ans, anscap, timeout_ms);
	close(fd);
	return r == 0 ? -EPIPE : r;
}

void knotd_pause(struct knotd *k)
{
	if (k->proc.pid > 0)
		proc_stop(&k->proc, SIGTERM, 5000);
}

int knotd_resume(struct knotd *k)
{
	char path[600], log[600];
	const char *zone = "example.test";

	snprintf(path, sizeof(path), "%s/knot.conf", k->dir.path);
	snprintf(log, sizeof(log), "%s/knotd.log", k->dir.path);
	char *argv[] = {"knotd", "-c", path, NULL};
	int r = proc_start(&k->proc, "knotd", argv, log);
	if (r)
		return r;
	return wait_dns_udp(k->addr, k->port, zone, 10000);
}

int log_sanitizer_report(const char *path, char *line, size_t linecap)
{
	static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
	                                    "runtime error:", "WARNING: ThreadSanitizer",
	                                    "SUMMARY: UndefinedBehaviorSanitizer"};
	char buf[1024];
	FILE *f = fopen(path, "r");
	int found = 0;

	if (!f)
		return -errno;
	while (!found && fgets(buf, sizeof(buf), f)) {
		for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
			if (strstr(buf, marks[i])) {
				if (line && linecap)
					snprintf(line, linecap, "%s", buf);
				found = 1;
				break;
			}
		}
	}
	fclose(f);
	return found;
}

/* 1 when a line of the file contains needle, 0 when none does, -errno. */
static int log_contains(const char *path, const char *needle)
{
	char buf[1024];
	FILE *f = fopen(path, "r");
	int found = 0;

	if (!f)
		return -errno;
	while (!found && fgets(buf, sizeof(buf), f))
		found = strstr(buf, needle) != NULL;
	fclose(f);
	return found;
}

int anycached_stop_clean(struct anycached *d, int timeout_ms, char *why, size_t whylen)
{
	char line[512];
	int st, rep, r = 0;

	if (d->proc.pid <= 0) {
		snprintf(why, whylen, "anycached was not running");
		tmpdir_remove(&d->dir);
		return -1;
	}
	kill(d->proc.pid, SIGTERM);
	st = proc_wait(&d->proc, timeout_ms);
	if (st == -ETIMEDOUT) {
		snprintf(why, whylen, "no exit within %d ms of SIGTERM", timeout_ms);
		/* Bounded still: a stuck daemon is killed, not waited on forever. */
		st = proc_stop(&d->proc, SIGKILL, 5000);
		r = -1;
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(why, whylen, "exit status %#x (%s %d)", (unsigned)st,
		         WIFSIGNALED(st) ? "signal" : "code",
		         WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		r = -1;
	}
	rep = log_sanitizer_report(d->proc.log, line, sizeof(line));
	if (rep > 0 && r == 0) {
		snprintf(why, whylen, "sanitizer report in the log: %s", line);
		r = -1;
	}
	/* An orderly exit hands every socket back before it ends (loop_drain). */
	if (r == 0 && log_contains(d->proc.log, "still in flight") > 0) {
		snprintf(why, whylen, "a worker's ring was not drained at exit");
		r = -1;
	}
	if (r)
		proc_dump_log(&d->proc);
	tmpdir_remove(&d->dir);
	return r;
}

void harness_skip_all(const char *why)
{
	fprintf(stderr, "SKIP: %s\n", why);
	fflush(stderr);
	exit(77);
}

int proc_fd_count(pid_t pid)
{
	char path[64];
	int n = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return -errno;
	struct dirent *e;
	while ((e = readdir(dir)))
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

long proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -ENOENT;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int birdc_run(const char *sock, const char *cmd, char *out, size_t cap)
{
	char c[128];
	char *words[16] = {"birdc", "-s", (char *)sock};
	int n = 3;

	snprintf(c, sizeof(c), "%s", cmd);
	for (char *t = strtok(c, " "); t && n < 15; t = strtok(NULL, " "))
		words[n++] = t;
	words[n] = NULL;
	out[0] = 0;
	return run_capture(words, true, out, cap, 5000);
}

int count_in_file(const char *path, const char *what)
{
	static char buf[1 << 16];
	FILE *f = fopen(path, "r");
	int n = 0;
	if (!f)
		return -1;
	size_t len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = 0;
	for (const char *p = buf; (p = strstr(p, what)); p++)
		n++;
	return n;
}

void text_line(const char *text, const char *key, char *line, size_t cap)
{
	const char *l = strstr(text, key);
	line[0] = 0;
	if (!l)
		return;
	const char *e = strchr(l, '\n');
	size_t n = e ? (size_t)(e - l) : strlen(l);
	if (n >= cap)
		n = cap - 1;
	memcpy(line, l, n);
	line[n] = 0;
}

/* "HH:MM:SS.mmm" at p: its ms of the day, or -1. */
static long bird_time_at(const char *p)
{
	for (int k = 0; k < 12; k++) {
		bool digit = p[k] >= '0' && p[k] <= '9';
		if (k == 2 || k == 5 ? p[k] != ':' : k == 8 ? p[k] != '.' : !digit)
			return -1;
	}
	long h = (p[0] - '0') * 10 + (p[1] - '0'), m = (p[3] - '0') * 10 + (p[4] - '0');
	long s = (p[6] - '0') * 10 + (p[7] - '0');
	long ms = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	return ((h * 60 + m) * 60 + s) * 1000 + ms;
}

bool bird_same_time(const char *a, const char *b)
{
	while (*a && *b) {
		long ta = bird_time_at(a), tb = bird_time_at(b);
		if (ta >= 0 && tb >= 0) {
			long d = labs(ta - tb);
			if (d > 5 && 86400000 - d > 5) /* across midnight too */
				return false;
			a += 12;
			b += 12;
			continue;
		}
		if (*a++ != *b++)
			return false;
	}
	return *a == *b;
}
