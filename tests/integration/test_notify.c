/*
 * sd_notify (Type=notify) against a fake service manager: the test binds
 * the NOTIFY_SOCKET datagram socket itself (no systemd runs here). READY=1
 * must come only once the daemon answers on its VIP (listeners bound and
 * `rise` self-probes passed), with a STATUS= line; SIGTERM must bring
 * STOPPING=1 before the process exits 0. With a BGP session up (BIRD),
 * STOPPING=1 comes at the start of the drain, while the VIP still answers
 * and its route is still at the router.
 * Addresses: 127.53.81.11 (anycached), 127.53.81.12 (knotd); the BIRD rig
 * (bird_rig.h) on 127.53.81.1-6.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bird_rig.h"
#include "harness.h"

#define NODE     "127.53.81.11"
#define UPSTREAM "127.53.81.12"
#define PORT     5300

static struct knotd knot;
static struct proc daemon_;
static struct tmpdir dir;
static int nfd = -1;

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	if (geteuid() != 0)
		harness_skip_all("needs root: an IPv6 address on lo for the BIRD rig");
	if (!getenv("ANYCACHED"))
		harness_skip_all("ANYCACHED not set (run through meson test)");
}

static void fini(void)
{
	rig_fini();
	if (daemon_.pid > 0)
		proc_stop(&daemon_, SIGKILL, 2000);
	knotd_stop(&knot);
	if (nfd >= 0)
		close(nfd);
	if (dir.path[0])
		tmpdir_remove(&dir);
}

TestSuite(notify, .fini = fini, .timeout = 60);

/* The test's NOTIFY_SOCKET, bound in dir. */
static void notify_socket(char *path, size_t cap)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(path, cap, "%s/notify.sock", dir.path);
	cr_assert_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(nfd, 0);
	cr_assert_eq(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
}

/* One datagram from the notify socket within ms; 1 got, 0 none. */
static int recv_notify(int ms, char *msg, size_t cap)
{
	struct pollfd p = {.fd = nfd, .events = POLLIN};

	if (poll(&p, 1, ms) <= 0)
		return 0;
	ssize_t n = recv(nfd, msg, cap - 1, MSG_DONTWAIT);
	if (n < 0)
		return 0;
	msg[n] = '\0';
	return 1;
}

Test(notify, ready_after_answers_and_stopping_on_sigterm)
{
	const char *zones[] = {"example.test", harness_example_zone};
	char conf[1024], path[512], log[512], sockpath[300], msg[1024];

	cr_assert_eq(knotd_start(&knot, UPSTREAM, PORT, zones, 1), 0);
	cr_assert_eq(tmpdir_make(&dir, "notify"), 0);
	notify_socket(sockpath, sizeof(sockpath));

	/* rise 5 x 200 ms: a second between the bind and READY, room to see order. */
	snprintf(conf, sizeof(conf),
	         "dns:\n  listen: [\"" NODE ":%d\"]\n  upstreams: [\"" UPSTREAM ":%d\"]\n"
	         "  threads: 1\n"
	         "health: {interval: 200ms, rise: 5}\n"
	         "control: {socket: \"%s/control.sock\", state: \"%s/drain.json\"}\n",
	         PORT, PORT, dir.path, dir.path);
	cr_assert_eq(write_file(dir.path, "anycache.yaml", conf, path, sizeof(path)), 0);
	snprintf(log, sizeof(log), "%s/anycached.log", dir.path);
	char *argv[] = {getenv("ANYCACHED"), "-c", path, NULL};
	setenv("NOTIFY_SOCKET", sockpath, 1);
	int r = proc_start(&daemon_, "anycached", argv, log);
	unsetenv("NOTIFY_SOCKET");
	cr_assert_eq(r, 0);

	/* Poll both, bounded: the first answer on the VIP and READY=1. */
	uint64_t t0 = now_ms(), first_answer = 0, ready = 0;
	uint8_t q[512], a[2048];
	int qlen = dns_make_query(q, sizeof(q), 0x1234, "www.example.test", 1, false);
	char ready_msg[1024] = "";
	while (!ready && now_ms() - t0 < 15000 && proc_alive(&daemon_)) {
		if (recv_notify(20, msg, sizeof(msg))) {
			cr_expect(strstr(msg, "STOPPING=1") == NULL, "STOPPING before READY: %s",
			          msg);
			if (strstr(msg, "READY=1")) {
				ready = now_ms();
				snprintf(ready_msg, sizeof(ready_msg), "%s", msg);
				break;
			}
		}
		if (!first_answer &&
		    dns_udp_exchange(NODE, PORT, q, (size_t)qlen, a, sizeof(a), 50) > 12)
			first_answer = now_ms();
	}
	if (!ready)
		proc_dump_log(&daemon_);
	cr_assert_gt(ready, 0, "no READY=1 in 15 s");
	cr_expect_gt(first_answer, 0, "READY=1 came before the VIP answered anything");
	cr_expect_leq(first_answer, ready);
	/* At READY it answers, at once. */
	cr_expect_gt(dns_udp_exchange(NODE, PORT, q, (size_t)qlen, a, sizeof(a), 1000), 12);
	cr_expect(strstr(ready_msg, "STATUS=serving 1 of 1 VIPs") != NULL, "%s", ready_msg);
	/* rise 5 at 200 ms: not before about 0.8 s after the start. */
	cr_expect_geq(ready - t0, 700, "READY after %llu ms: too early for 5 probes",
	              (unsigned long long)(ready - t0));

	cr_assert_eq(kill(daemon_.pid, SIGTERM), 0);
	bool stopping = false;
	for (int i = 0; i < 100 && !stopping; i++)
		if (recv_notify(50, msg, sizeof(msg)) && strstr(msg, "STOPPING=1"))
			stopping = true;
	cr_expect(stopping, "no STOPPING=1 after SIGTERM");
	int st = proc_wait(&daemon_, 10000);
	cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
	daemon_.pid = 0;
}

Test(notify, stopping_at_the_start_of_the_bgp_drain)
{
	char sockpath[300], msg[1024], out[16384];
	uint8_t q[512], a[2048];
	int qlen = dns_make_query(q, sizeof(q), 0x4321, "www.example.test", 1, false);

	rig_init(81);
	cr_assert_eq(tmpdir_make(&dir, "notify"), 0);
	notify_socket(sockpath, sizeof(sockpath));
	bird_start(65000, 65001, NULL);
	any_health = "health: {interval: 100ms, rise: 2, drain: 3s}\n";
	setenv("NOTIFY_SOCKET", sockpath, 1);
	any_start(65001, 65000, NULL);
	unsetenv("NOTIFY_SOCKET");
	cr_assert(wait_routes("64.0.0.0/2", true, 20000, out, sizeof(out)), "no route at BIRD");

	/* READY=1 first (it may have come before the route did). */
	bool ready = false;
	for (int i = 0; i < 100 && !ready; i++)
		ready = recv_notify(50, msg, sizeof(msg)) && strstr(msg, "READY=1");
	cr_assert(ready, "no READY=1");
	while (recv_notify(0, msg, sizeof(msg)))
		; /* STATUS= updates */

	uint64_t t0 = now_ms();
	cr_assert_eq(kill(rig.d.proc.pid, SIGTERM), 0);
	bool stopping = false;
	for (int i = 0; i < 40 && !stopping; i++)
		stopping = recv_notify(50, msg, sizeof(msg)) && strstr(msg, "STOPPING=1");
	cr_assert(stopping, "no STOPPING=1 within 2 s of SIGTERM");
	cr_expect(strstr(msg, "STATUS=draining for 3000 ms") != NULL, "%s", msg);
	cr_expect_lt(now_ms() - t0, 1000, "STOPPING=1 late: the drain is 3 s");
	/* During the drain: still answering, the route still at the router. */
	cr_expect_gt(dns_udp_exchange(rig.a[4], DNS_PORT, q, (size_t)qlen, a, sizeof(a), 1000), 12,
	             "no answer during the drain");
	/* The route carries GRACEFUL_SHUTDOWN (RFC 8326) once the drain is sent. */
	char blk[4096] = "";
	for (int i = 0; i < 20 && !strstr(blk, "(65535,0)"); i++) {
		birdc("show route all", out, sizeof(out));
		route_block(out, "64.0.0.0/2", blk, sizeof(blk));
		usleep(50 * 1000);
	}
	if (!strstr(blk, "(65535,0)"))
		dump_on_failure(out);
	cr_expect(strstr(blk, "(65535,0)") != NULL, "no GRACEFUL_SHUTDOWN during the drain");
	/* Then withdrawn, and the daemon exits 0. */
	cr_expect(wait_routes("64.0.0.0/2", false, 10000, out, sizeof(out)), "never withdrawn");
	int st = proc_wait(&rig.d.proc, 10000);
	cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
	cr_expect_geq(now_ms() - t0, 2900, "exited before the drain ended");
	rig.d.proc.pid = 0;
}
