/*
 * test_restart.c: `anycachectl restart` (issue 11) with knotd upstream and
 * BIRD as the router, on 127.53.87.x (bird_rig.h: BIRD .1, anycached .2,
 * VIPs .4/.5, knotd .6).
 *
 *   hitless:  under dnsperf load (UDP) and a TCP client connecting in a
 *             loop, restart: the PID changes, the old process exits 0,
 *             dnsperf lost no query, every TCP connect and query succeeded,
 *             and BIRD never saw the session or the routes go: no new
 *             session (its "since" stays), the routes' age unchanged, no
 *             state change in BIRD's log, and every sample of `show route`
 *             during the restart has the route.
 *   failing:  the binary path now holds a script that exits 1: restart
 *             exits non-zero, the old process keeps serving (same PID,
 *             answers, BGP session untouched); with the real binary back the
 *             next restart succeeds (the BGP session thawed intact).
 *
 * The daemon runs from a copy of the binary in the test's directory, so the
 * failing case can replace it. The test makes itself a child subreaper: the
 * successor (the old daemon's child) becomes our child when the old one
 * exits, and the fixture stops it by PID.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bird_rig.h"
#include "ctl_itest.h"

#define NET 87

static char bin_copy[600], bin_real[512], sock[600];

static void copy_file(const char *from, const char *to)
{
	char tmp[700];
	char buf[65536];
	ssize_t n;
	int in = open(from, O_RDONLY), out;

	cr_assert_geq(in, 0, "open %s", from);
	snprintf(tmp, sizeof(tmp), "%s.tmp", to);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	cr_assert_geq(out, 0, "create %s", tmp);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert_eq(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
	/* rename: the running binary's inode stays, as with a package upgrade. */
	cr_assert_eq(rename(tmp, to), 0);
}

static char notify_path[300];
static int notify_fd = -1;

/* Whether some datagram on the notify socket so far contains `what`. */
static bool notify_saw(const char *what)
{
	char msg[1024];
	bool seen = false;
	for (int i = 0; i < 1000; i++) {
		ssize_t n = recv(notify_fd, msg, sizeof(msg) - 2, MSG_DONTWAIT);
		if (n < 0)
			break;
		msg[n] = '\n'; /* every assignment ends with a newline: exact matches */
		msg[n + 1] = 0;
		seen = seen || strstr(msg, what) != NULL;
	}
	return seen;
}

static void setup(void)
{
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	rig_init(NET);
	const char *b = getenv("ANYCACHED");
	cr_assert_not_null(b);
	snprintf(bin_real, sizeof(bin_real), "%s", b);
	snprintf(bin_copy, sizeof(bin_copy), "%s/anycached", rig.dir.path);
	copy_file(bin_real, bin_copy);
	setenv("ANYCACHED", bin_copy, 1);
	/* Inside dns: (any_start puts it after threads:), then the health section. */
	static char extra[700];
	snprintf(extra, sizeof(extra),
	         "  cache: {persist: \"%s/cache.bin\"}\n"
	         "health: {drain: 0s, interval: 200ms, rise: 2}\n",
	         rig.dir.path);
	any_health = extra;
	bird_start(65000, 65001, NULL);
	/* A NOTIFY_SOCKET of our own (no systemd here): the handover of the
	 * unit's main PID is checked on it (core/notify.h). */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(notify_path, sizeof(notify_path), "%s/notify.sock", rig.dir.path);
	cr_assert_lt(strlen(notify_path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, notify_path, strlen(notify_path) + 1);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(notify_fd, 0);
	cr_assert_eq(bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", notify_path, 1);
	any_start(65001, 65000, NULL);
	unsetenv("NOTIFY_SOCKET");
	snprintf(sock, sizeof(sock), "%s/control.sock", rig.d.dir.path);
	char out[16384];
	cr_assert(wait_routes("64.0.0.0/2", true, 15000, out, sizeof(out)), "no route at BIRD");
}

static void teardown(void)
{
	setenv("ANYCACHED", bin_real, 1);
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
	rig_fini();
}

/* "anyc BGP --- up 15:02:11.123 Established": the "since" column moves
 * only when the session goes down and comes back. */
static void proto_line(char *line, size_t cap)
{
	char out[4096];
	birdc("show protocols anyc", out, sizeof(out));
	text_line(out, "anyc ", line, cap);
	cr_assert(line[0], "no protocol line: %s", out);
}

/* The route's first line carries its age: "[anyc 15:02:11.456]". */
static void route_line(const char *prefix, char *line, size_t cap)
{
	char out[16384];
	birdc("show route all", out, sizeof(out));
	text_line(out, prefix, line, cap);
}

static long status_pid(void)
{
	char out[8192];
	cr_assert_eq(CTL_J(sock, out, "status"), 0, "status: %s", out);
	const char *p = strstr(out, "\"pid\":");
	cr_assert_not_null(p, "%s", out);
	return strtol(p + 6, NULL, 10);
}

static void write_dnsperf_data(char *path, size_t cap)
{
	char text[16384];
	size_t off = 0;
	for (int i = 0; i < 300; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "n%d.wild.example.test A\n",
		                        i);
	off += (size_t)snprintf(text + off, sizeof(text) - off, "www.example.test AAAA\n");
	cr_assert_eq(write_file(rig.dir.path, "queries.txt", text, path, cap), 0);
}

TestSuite(restart, .init = setup, .fini = teardown, .timeout = 150);

Test(restart, hitless_under_load)
{
	char proto0[512], proto1[512], route0[512], route1[512], data[600];
	char perf_log[600], ctl_log[600];
	struct proc perf = {0}, ctl = {0};
	uint8_t q[512], ans[4096];
	pid_t old = rig.d.proc.pid;

	proto_line(proto0, sizeof(proto0));
	route_line("64.0.0.0/2", route0, sizeof(route0));
	cr_assert(route0[0], "route missing");
	int changes0 = count_in_file(rig.bird_log, "State changed");
	cr_assert_eq(status_pid(), old);

	/* dnsperf: 4 s at 3000 q/s over 301 names (first pass misses, then hits). */
	write_dnsperf_data(data, sizeof(data));
	snprintf(perf_log, sizeof(perf_log), "%s/dnsperf.log", rig.dir.path);
	char *pargv[] = {"dnsperf", "-s", rig.a[4], "-p",   "5300", "-d", data,
	                 "-l",      "4",  "-Q",     "3000", "-t",   "3",  NULL};
	cr_assert_eq(proc_start(&perf, "dnsperf", pargv, perf_log), 0);
	sleep_ms(1000);

	snprintf(ctl_log, sizeof(ctl_log), "%s/restart.out", rig.dir.path);
	char *cargv[] = {ctl_bin(), "-s", sock, "restart", NULL};
	cr_assert_eq(proc_start(&ctl, "anycachectl", cargv, ctl_log), 0);

	/* While the restart runs and dnsperf goes on: the route is there in
	 * every sample, and a new TCP connection is never refused. */
	int samples = 0, tcp_ok = 0, st_ctl = -1;
	uint64_t end = now_ms() + 6000;
	while (now_ms() < end && (perf.pid > 0 || ctl.pid > 0)) {
		route_line("64.0.0.0/2", route1, sizeof(route1));
		cr_assert(route1[0], "route gone at BIRD during the restart (sample %d)", samples);
		int ql = dns_make_query(q, sizeof(q), (uint16_t)(0x4000 + samples),
		                        "www.example.test", 1, false);
		cr_assert_gt(ql, 0);
		int al =
		    dns_tcp_exchange(rig.a[4], DNS_PORT, q, (size_t)ql, ans, sizeof(ans), 2000);
		cr_assert_gt(al, 12, "TCP query %d failed: %d", samples, al);
		tcp_ok++;
		samples++;
		if (ctl.pid > 0) {
			int st = proc_wait(&ctl, 1);
			if (st != -ETIMEDOUT)
				st_ctl = st;
		}
		if (perf.pid > 0)
			proc_wait(&perf, 1);
		sleep_ms(50);
	}
	if (ctl.pid > 0)
		st_ctl = proc_wait(&ctl, 15000);
	int st_perf = perf.pid > 0 ? proc_wait(&perf, 10000) : 0;
	char ctl_out[2048] = "";
	FILE *f = fopen(ctl_log, "r");
	if (f) {
		size_t n = fread(ctl_out, 1, sizeof(ctl_out) - 1, f);
		ctl_out[n] = 0;
		fclose(f);
	}
	if (st_ctl != 0) {
		char all[16384];
		birdc("show route all", all, sizeof(all));
		dump_on_failure(all);
	}
	cr_assert_eq(st_ctl, 0, "anycachectl restart failed: %s", ctl_out);
	cr_assert_eq(st_perf, 0, "dnsperf failed");

	/* The PID changed; the old process exited cleanly; rig_fini stops the new one. */
	long now_pid = status_pid();
	cr_assert_neq(now_pid, old, "same PID after restart: %s", ctl_out);
	int st_old = proc_wait(&rig.d.proc, 5000);
	cr_assert_eq(st_old, 0, "old process: status %d", st_old);
	rig.d.proc.pid = (pid_t)now_pid; /* our child now (subreaper) */
	/* systemd would follow it: MAINPID= names the successor (from the old
	 * main process before it exited, and in the successor's READY). */
	char mainpid[32];
	snprintf(mainpid, sizeof(mainpid), "MAINPID=%ld\n", now_pid);
	cr_expect(notify_saw(mainpid), "no %.*s on NOTIFY_SOCKET", (int)strlen(mainpid) - 1, mainpid);

	/* Zero lost queries. */
	char perf_out[8192] = "";
	f = fopen(perf_log, "r");
	cr_assert_not_null(f);
	size_t n = fread(perf_out, 1, sizeof(perf_out) - 1, f);
	perf_out[n] = 0;
	fclose(f);
	const char *lost = strstr(perf_out, "Queries lost:");
	const char *sent = strstr(perf_out, "Queries sent:");
	cr_assert(lost && sent, "dnsperf output: %s", perf_out);
	long nsent = strtol(sent + 13, NULL, 10), nlost = strtol(lost + 13, NULL, 10);
	fprintf(stderr, "restart: dnsperf sent %ld lost %ld; %d TCP queries, %d route samples\n",
	        nsent, nlost, tcp_ok, samples);
	cr_assert_gt(nsent, 5000, "dnsperf sent too little: %s", perf_out);
	cr_assert_eq(nlost, 0, "queries lost across the restart: %s", perf_out);
	cr_assert_gt(samples, 3);

	/* The cache came along (dns.cache.persist saved at the restart, loaded
	 * before serving): the successor answered the rest of the run (every name
	 * cached by the first pass) from the cache, its misses are the handful
	 * at most that were cached after the save. */
	char cache[4096];
	cr_assert_eq(CTL_J(sock, cache, "show", "cache"), 0, "%s", cache);
	const char *h = strstr(cache, "\"hits\":"), *m = strstr(cache, "\"misses\":");
	cr_assert(h && m, "%s", cache);
	long hits = strtol(h + 7, NULL, 10), misses = strtol(m + 9, NULL, 10);
	fprintf(stderr, "restart: the successor's cache: %ld hits, %ld misses\n", hits, misses);
	cr_assert_gt(hits, 1000, "%s", cache);
	cr_assert_leq(misses, 10, "the successor started cold: %s", cache);

	/* BIRD: same session, same route age, no state change logged. */
	proto_line(proto1, sizeof(proto1));
	route_line("64.0.0.0/2", route1, sizeof(route1));
	(void)route_block; /* bird_rig.h's; the first line is what moves here */
	cr_assert(bird_same_time(proto1, proto0), "the BGP session was re-established:\n%s\n%s",
	          proto0, proto1);
	cr_assert(bird_same_time(route1, route0), "the route was withdrawn or replaced:\n%s\n%s",
	          route0, route1);
	cr_assert_eq(count_in_file(rig.bird_log, "State changed"), changes0,
	             "BIRD logged a session state change");
	/* The successor speaks BGP: the session stays up past a hold time (9 s). */
	sleep_ms(9500);
	proto_line(proto1, sizeof(proto1));
	cr_assert_str_eq(proto1, proto0, "the session went down after the restart");
	cr_assert(established());
	cr_assert_eq(wait_dns_udp(rig.a[4], DNS_PORT, "www.example.test", 1000), 0);
	char show[8192];
	cr_assert_eq(CTL(sock, show, "show bgp"), 0, "%s", show);
	cr_assert(strstr(show, "Established"), "%s", show);
}

Test(restart, failing_successor_keeps_the_old_one)
{
	char proto0[512], proto1[512], out[4096], script[600];
	pid_t old = rig.d.proc.pid;

	proto_line(proto0, sizeof(proto0));
	/* The binary path now holds a successor that fails at once. */
	cr_assert_eq(write_file(rig.dir.path, "fail.sh",
	                        "#!/bin/sh\necho failing on purpose\nexit 1\n", script,
	                        sizeof(script)),
	             0);
	chmod(script, 0755);
	cr_assert_eq(rename(script, bin_copy), 0);
	uint64_t t0 = now_ms();
	int st = CTL(sock, out, "restart");
	cr_assert_neq(st, 0, "restart with a failing successor reported success: %s", out);
	cr_assert(strstr(out, "exited"), "no reason given: %s", out);
	cr_assert_lt(now_ms() - t0, 5000, "failure took too long to report");
	/* The old one goes on: same PID, answers, the session untouched. */
	cr_assert(proc_alive(&rig.d.proc));
	cr_assert_eq(status_pid(), old);
	cr_assert_eq(wait_dns_udp(rig.a[4], DNS_PORT, "www.example.test", 1000), 0);
	proto_line(proto1, sizeof(proto1));
	cr_assert_str_eq(proto1, proto0);

	/* A successor that is not there at all: refused at once. */
	cr_assert_eq(unlink(bin_copy), 0);
	st = CTL(sock, out, "restart");
	cr_assert_neq(st, 0, "%s", out);
	cr_assert_eq(status_pid(), old);

	/* The real binary back: the next restart works, BGP thawed intact. */
	copy_file(bin_real, bin_copy);
	st = CTL(sock, out, "restart");
	cr_assert_eq(st, 0, "restart after a failed one: %s", out);
	long now_pid = status_pid();
	cr_assert_neq(now_pid, old);
	cr_assert_eq(proc_wait(&rig.d.proc, 5000), 0);
	rig.d.proc.pid = (pid_t)now_pid;
	proto_line(proto1, sizeof(proto1));
	cr_assert_str_eq(proto1, proto0, "the session was re-established");
	cr_assert_eq(wait_dns_udp(rig.a[4], DNS_PORT, "www.example.test", 1000), 0);
}
