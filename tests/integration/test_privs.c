/*
 * `user:` end to end: anycached started as root with `user: nobody` binds
 * port 53 and its control socket, then every thread of it runs as nobody
 * with CAP_NET_BIND_SERVICE alone in its permitted, effective, bounding,
 * inheritable and ambient sets (the last two for a restart's exec'd
 * successor) and no new privileges, read from /proc/PID/task/TID/status. DNS over UDP and TCP and
 * the control socket (a drain, which writes the state file as nobody) still work. An unknown user
 * is a configuration error at its file:line:column. Addresses: 127.53.81.31 (anycached),
 * 127.53.81.32 (knotd).
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl_itest.h"

#define NODE     "127.53.81.31"
#define UPSTREAM "127.53.81.32"
#define UPORT    5300

static struct knotd knot;
static struct proc daemon_;
static struct tmpdir dir;

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	if (geteuid() != 0)
		harness_skip_all("needs root: port 53 and a change of user");
	if (!getenv("ANYCACHED"))
		harness_skip_all("ANYCACHED not set (run through meson test)");
	if (!getpwnam("nobody"))
		harness_skip_all("no user 'nobody'");
}

static void fini(void)
{
	if (daemon_.pid > 0)
		proc_stop(&daemon_, SIGKILL, 2000);
	knotd_stop(&knot);
	if (dir.path[0])
		tmpdir_remove(&dir);
}

TestSuite(privs, .fini = fini, .timeout = 90);

/* The value after "Key:" in a status file, whitespace squeezed to one space. */
static void status_field(const char *path, const char *key, char *out, size_t cap)
{
	char line[512];
	FILE *f = fopen(path, "r");

	out[0] = '\0';
	while (f && fgets(line, sizeof(line), f)) {
		size_t k = strlen(key);
		if (strncmp(line, key, k) || line[k] != ':')
			continue;
		size_t o = 0;
		bool sp = false;
		for (const char *p = line + k + 1; *p && *p != '\n' && o + 2 < cap; p++) {
			if (*p == ' ' || *p == '\t') {
				sp = o > 0;
				continue;
			}
			if (sp)
				out[o++] = ' ';
			sp = false;
			out[o++] = *p;
		}
		out[o] = '\0';
	}
	if (f)
		fclose(f);
}

/*
 * Every thread of pid runs as pw with exactly CAP_NET_BIND_SERVICE permitted,
 * effective, inheritable, ambient and bounding, and no new privileges.
 * Supplementary groups as given (the daemon sets them only when it changes
 * user). Returns the number of threads.
 */
static unsigned expect_threads(pid_t pid, const struct passwd *pw, const char *groups)
{
	char want_id[64];
	char tdir[64], st[384], field[256];
	unsigned threads = 0;
	snprintf(want_id, sizeof(want_id), "%u %u %u %u", (unsigned)pw->pw_uid,
	         (unsigned)pw->pw_uid, (unsigned)pw->pw_uid, (unsigned)pw->pw_uid);
	snprintf(tdir, sizeof(tdir), "/proc/%d/task", (int)pid);
	DIR *d = opendir(tdir);
	cr_assert_not_null(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		threads++;
		snprintf(st, sizeof(st), "%s/%s/status", tdir, e->d_name);
		status_field(st, "Uid", field, sizeof(field));
		cr_expect_str_eq(field, want_id, "task %s Uid", e->d_name);
		char gid[64];
		snprintf(gid, sizeof(gid), "%u %u %u %u", (unsigned)pw->pw_gid,
		         (unsigned)pw->pw_gid, (unsigned)pw->pw_gid, (unsigned)pw->pw_gid);
		status_field(st, "Gid", field, sizeof(field));
		cr_expect_str_eq(field, gid, "task %s Gid", e->d_name);
		status_field(st, "Groups", field, sizeof(field));
		cr_expect_str_eq(field, groups, "task %s Groups", e->d_name);
		/* 1 << CAP_NET_BIND_SERVICE (10) and nothing else. */
		status_field(st, "CapEff", field, sizeof(field));
		cr_expect_str_eq(field, "0000000000000400", "task %s CapEff", e->d_name);
		status_field(st, "CapPrm", field, sizeof(field));
		cr_expect_str_eq(field, "0000000000000400", "task %s CapPrm", e->d_name);
		status_field(st, "CapBnd", field, sizeof(field));
		cr_expect_str_eq(field, "0000000000000400", "task %s CapBnd", e->d_name);
		/* Inheritable and ambient: the same one, for a restart's exec'd successor. */
		status_field(st, "CapInh", field, sizeof(field));
		cr_expect_str_eq(field, "0000000000000400", "task %s CapInh", e->d_name);
		status_field(st, "CapAmb", field, sizeof(field));
		cr_expect_str_eq(field, "0000000000000400", "task %s CapAmb", e->d_name);
		status_field(st, "NoNewPrivs", field, sizeof(field));
		cr_expect_str_eq(field, "1", "task %s NoNewPrivs", e->d_name);
	}
	closedir(d);
	return threads;
}

Test(privs, runs_as_nobody_with_only_bind_service)
{
	const char *zones[] = {"example.test", harness_example_zone};
	struct passwd *pw = getpwnam("nobody");
	char conf[2048], path[512], log[512], out[8192], sock[300];

	cr_assert_not_null(pw);
	cr_assert_eq(knotd_start(&knot, UPSTREAM, UPORT, zones, 1), 0);
	cr_assert_eq(tmpdir_make(&dir, "privs"), 0);
	/* The drain-state file and the socket's removal at exit need a directory
	 * the user may write (systemd's StateDirectory=/RuntimeDirectory= do it). */
	cr_assert_eq(chown(dir.path, pw->pw_uid, pw->pw_gid), 0);
	snprintf(sock, sizeof(sock), "%s/control.sock", dir.path);
	snprintf(conf, sizeof(conf),
	         "dns:\n  listen: [\"" NODE ":53\"]\n  upstreams: [\"" UPSTREAM ":%d\"]\n"
	         "  threads: 2\n"
	         "health: {interval: 100ms, rise: 2}\n"
	         "control: {socket: \"%s\", state: \"%s/drain.json\"}\n"
	         "user: nobody\n",
	         UPORT, sock, dir.path);
	cr_assert_eq(write_file(dir.path, "anycache.yaml", conf, path, sizeof(path)), 0);
	snprintf(log, sizeof(log), "%s/anycached.log", dir.path);
	char *argv[] = {getenv("ANYCACHED"), "-c", path, NULL};
	cr_assert_eq(proc_start(&daemon_, "anycached", argv, log), 0);
	int r = wait_dns_udp(NODE, 53, "www.example.test", 10000);
	if (r)
		proc_dump_log(&daemon_);
	cr_assert_eq(r, 0, "no answer on " NODE ":53");

	/* Every thread (main, log, dns-0, dns-1, ctl): the same identity. */
	char groups[16];
	snprintf(groups, sizeof(groups), "%u", (unsigned)pw->pw_gid); /* the primary alone */
	unsigned threads = expect_threads(daemon_.pid, pw, groups);
	cr_expect_geq(threads, 5, "main, log, dns-0, dns-1, ctl: %u threads", threads);

	/* DNS still works: a miss forwarded to knotd (UDP), then TCP. */
	uint8_t q[512], a[4096];
	int qlen = dns_make_query(q, sizeof(q), 0x5151, "mx.example.test", 15, true);
	int n = dns_udp_exchange(NODE, 53, q, (size_t)qlen, a, sizeof(a), 3000);
	cr_expect_gt(n, 12, "UDP answer %d", n);
	n = dns_tcp_exchange(NODE, 53, q, (size_t)qlen, a, sizeof(a), 3000);
	cr_expect_gt(n, 12, "TCP answer %d", n);

	/* The control socket: status, and a drain that writes the state file as nobody. */
	cr_expect_eq(CTL(sock, out, "status"), 0, "%s", out);
	cr_expect(strstr(out, "workers") != NULL, "%s", out);
	cr_expect_eq(CTL(sock, out, "drain"), 0, "%s", out);
	char state[512];
	struct stat sb;
	snprintf(state, sizeof(state), "%s/drain.json", dir.path);
	cr_expect_eq(stat(state, &sb), 0, "no drain state written");
	cr_expect_eq(sb.st_uid, pw->pw_uid, "the state file is the user's");
	cr_expect_eq(CTL(sock, out, "undrain"), 0, "%s", out);

	int status = proc_stop(&daemon_, SIGTERM, 10000);
	cr_expect(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d",
	          status);
	cr_expect_neq(access(sock, F_OK), 0, "the control socket was removed at exit");
	char text[8192] = "";
	FILE *f = fopen(log, "r");
	if (f) {
		size_t got = fread(text, 1, sizeof(text) - 1, f);
		text[got] = '\0';
		fclose(f);
	}
	cr_expect(strstr(text, "running as nobody") != NULL, "%s", text);
}

Test(privs, unknown_user_is_a_config_error_with_position)
{
	char path[512], out[2048];

	cr_assert_eq(tmpdir_make(&dir, "privs"), 0);
	cr_assert_eq(write_file(dir.path, "bad.yaml",
	                        "dns:\n  upstreams: [\"" UPSTREAM ":5300\"]\n"
	                        "user:   no-such-user-anycache\n",
	                        path, sizeof(path)),
	             0);
	char *argv[] = {getenv("ANYCACHED"), "--check", "-c", path, NULL};
	int r = run_capture(argv, true, out, sizeof(out), 10000);
	cr_expect_eq(r, 1, "exit %d: %s", r, out);
	char want[600];
	snprintf(want, sizeof(want), "%s:3:9: user: no such user 'no-such-user-anycache'", path);
	cr_expect(strstr(out, want) != NULL, "want '%s' in:\n%s", want, out);
	/* A started daemon refuses the same way, before binding anything. */
	char *argv2[] = {getenv("ANYCACHED"), "-c", path, NULL};
	r = run_capture(argv2, true, out, sizeof(out), 10000);
	cr_expect_eq(r, 1, "exit %d: %s", r, out);
	cr_expect(strstr(out, want) != NULL, "%s", out);
}

/*
 * The unit's way (User=anycache, AmbientCapabilities=CAP_NET_BIND_SERVICE),
 * played with setpriv: started as nobody with the ambient capability, the
 * daemon binds port 53 itself and (user: names itself) is left as it is:
 * CAP_NET_BIND_SERVICE alone, in every set.
 */
Test(privs, started_as_the_user_with_an_ambient_capability)
{
	const char *zones[] = {"example.test", harness_example_zone};
	struct passwd *pw = getpwnam("nobody");
	char conf[2048], path[512], log[512], gid[16];

	cr_assert_not_null(pw);
	cr_assert_eq(knotd_start(&knot, UPSTREAM, UPORT, zones, 1), 0);
	cr_assert_eq(tmpdir_make(&dir, "privs"), 0);
	cr_assert_eq(chown(dir.path, pw->pw_uid, pw->pw_gid), 0);
	snprintf(conf, sizeof(conf),
	         "dns:\n  listen: [\"" NODE ":53\"]\n  upstreams: [\"" UPSTREAM ":%d\"]\n"
	         "  threads: 2\n"
	         "health: {interval: 100ms, rise: 2}\n"
	         "control: {socket: \"%s/control.sock\", state: \"%s/drain.json\"}\n"
	         "user: nobody\n",
	         UPORT, dir.path, dir.path);
	cr_assert_eq(write_file(dir.path, "anycache.yaml", conf, path, sizeof(path)), 0);
	cr_assert_eq(chown(path, pw->pw_uid, pw->pw_gid), 0);
	snprintf(log, sizeof(log), "%s/anycached.log", dir.path);
	snprintf(gid, sizeof(gid), "%u", (unsigned)pw->pw_gid);
	char *argv[] = {"setpriv",
	                "--reuid=nobody",
	                "--regid",
	                gid,
	                "--clear-groups",
	                "--inh-caps=-all,+net_bind_service",
	                "--ambient-caps=+net_bind_service",
	                "--bounding-set=-all,+net_bind_service",
	                getenv("ANYCACHED"),
	                "-c",
	                path,
	                NULL};
	cr_assert_eq(proc_start(&daemon_, "setpriv", argv, log), 0);
	int r = wait_dns_udp(NODE, 53, "www.example.test", 10000);
	if (r)
		proc_dump_log(&daemon_);
	cr_assert_eq(r, 0, "no answer on " NODE ":53");
	/* setpriv --clear-groups: none, and the daemon (not root) leaves them. */
	cr_expect_geq(expect_threads(daemon_.pid, pw, ""), 5);
	int status = proc_stop(&daemon_, SIGTERM, 10000);
	cr_expect(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d",
	          status);
}
