/*
 * Tests for src/core/privs.c: user lookup, the one-thread rule, and (as
 * root) a drop to nobody in a child process, read back from
 * /proc/self/status. The daemon's own drop is tested end to end by
 * tests/integration/test_privs.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/privs.h"

Test(privs, lookup)
{
	struct privs_user u;

	cr_assert_eq(privs_lookup("root", &u), 0);
	cr_expect_eq(u.uid, 0);
	cr_expect_str_eq(u.name, "root");
	cr_assert_eq(privs_lookup("0", &u), 0, "a number is a uid");
	cr_expect_str_eq(u.name, "root");
	cr_expect_eq(privs_lookup("no-such-user-anycache", &u), -ENOENT);
	cr_expect_eq(privs_lookup("4000000000", &u), -ENOENT);
	cr_expect_eq(privs_lookup("", &u), -EINVAL);
}

static void *sleeper(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

Test(privs, refuses_with_a_second_thread)
{
	struct privs_user u;
	pthread_t t;
	char why[256];
	int keep = CAP_NET_BIND_SERVICE;

	cr_assert_eq(privs_lookup("root", &u), 0);
	cr_assert_eq(pthread_create(&t, NULL, sleeper, NULL), 0);
	cr_expect_geq(privs_thread_count(), 2);
	cr_expect_eq(privs_drop(&u, &keep, 1, why, sizeof(why)), -EBUSY);
	cr_expect(strstr(why, "threads running") != NULL, "%s", why);
}

/* The hex value of a "Key:\t..." line of /proc/self/status. */
static unsigned long long status_hex(const char *key)
{
	char line[256];
	unsigned long long v = ~0ull;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':')
			sscanf(line + strlen(key) + 1, "%llx", &v);
	if (f)
		fclose(f);
	return v;
}

Test(privs, root_to_nobody_keeps_exactly_bind_service)
{
	struct privs_user u;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	cr_assert_eq(privs_lookup("nobody", &u), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char why[256];
		int keep = CAP_NET_BIND_SERVICE;
		int r = privs_drop(&u, &keep, 1, why, sizeof(why));
		if (r) {
			fprintf(stderr, "privs_drop: %s\n", why);
			_exit(10);
		}
		unsigned long long want = 1ull << CAP_NET_BIND_SERVICE;
		if (getuid() != u.uid || geteuid() != u.uid || getgid() != u.gid)
			_exit(11);
		if (status_hex("CapEff") != want || status_hex("CapPrm") != want ||
		    status_hex("CapBnd") != want || status_hex("CapInh") != want ||
		    status_hex("CapAmb") != want)
			_exit(12);
		if (setuid(0) == 0 || getgroups(0, NULL) != 1)
			_exit(13);
		_exit(0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", WEXITSTATUS(st));
}

/*
 * After the drop: a second call with threads running is a no-op (the state
 * is already the target), and a successor exec'd as the user (a restart)
 * starts with the same single capability, through the ambient set.
 */
Test(privs, already_dropped_is_a_noop_and_exec_keeps_the_capability)
{
	struct privs_user u;
	int out[2];

	if (geteuid() != 0)
		cr_skip_test("needs root");
	cr_assert_eq(privs_lookup("nobody", &u), 0);
	cr_assert_eq(pipe(out), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char why[256];
		int keep = CAP_NET_BIND_SERVICE;
		pthread_t t;
		close(out[0]);
		if (privs_drop(&u, &keep, 1, why, sizeof(why)))
			_exit(10);
		if (pthread_create(&t, NULL, sleeper, NULL))
			_exit(11);
		if (privs_drop(&u, &keep, 1, why, sizeof(why)) != 0)
			_exit(12);
		dup2(out[1], STDOUT_FILENO);
		execl("/bin/grep", "grep", "-E", "^(CapPrm|CapEff|CapAmb|NoNewPrivs)",
		      "/proc/self/status", (char *)NULL);
		_exit(13);
	}
	close(out[1]);
	char buf[512] = "";
	size_t off = 0;
	ssize_t n;
	while (off < sizeof(buf) - 1 && (n = read(out[0], buf + off, sizeof(buf) - 1 - off)) > 0)
		off += (size_t)n;
	close(out[0]);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", WEXITSTATUS(st));
	cr_expect(strstr(buf, "CapPrm:\t0000000000000400") != NULL, "%s", buf);
	cr_expect(strstr(buf, "CapEff:\t0000000000000400") != NULL, "%s", buf);
	cr_expect(strstr(buf, "CapAmb:\t0000000000000400") != NULL, "%s", buf);
	cr_expect(strstr(buf, "NoNewPrivs:\t1") != NULL, "%s", buf);
}
