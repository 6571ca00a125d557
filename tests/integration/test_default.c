/*
 * The embedded default (no -c): listen on 127.0.0.1 and ::1 port 53, answer
 * loopback clients, BGP off. Run inside network namespaces the test creates,
 * so port 53 is ours: one with IPv6 (both listeners answer) and one where
 * IPv6 is disabled, as in many containers (::1 is skipped with a warning,
 * 127.0.0.1 still answers). Only CHAOS id.server is asked, which anycached
 * answers itself: nothing is forwarded to the resolv.conf upstreams.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netns.h"

static struct netns ns;
static struct proc daemon_;
static struct tmpdir dir;

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	if (geteuid() != 0)
		harness_skip_all("needs root: network namespaces and port 53");
	if (!getenv("ANYCACHED"))
		harness_skip_all("ANYCACHED not set (run through meson test)");
}

static void fini(void)
{
	if (daemon_.pid > 0)
		proc_stop(&daemon_, SIGKILL, 2000);
	netns_delete(&ns);
	if (dir.path[0])
		tmpdir_remove(&dir);
}

TestSuite(embedded_default, .fini = fini, .timeout = 60);

/* Starts the no-config daemon in ns; returns once id.server answers on addr. */
static void start_default(const char *addr)
{
	char log[512], out[512];
	char *argv[] = {getenv("ANYCACHED"), NULL};
	char at[64];

	cr_assert_eq(tmpdir_make(&dir, "default"), 0);
	snprintf(log, sizeof(log), "%s/anycached.log", dir.path);
	cr_assert_eq(netns_proc_start(&daemon_, &ns, "anycached", argv, log), 0);
	snprintf(at, sizeof(at), "@%s", addr);
	char *q[] = {"kdig", at, "+short", "+timeout=1", "+retry=0", "id.server", "CH", "TXT", NULL};
	for (int i = 0; i < 50; i++) {
		if (netns_run(&ns, q, out, sizeof(out), 5000) == 0 && out[0] == '"')
			return;
		if (!proc_alive(&daemon_))
			break;
		usleep(100 * 1000);
	}
	proc_dump_log(&daemon_);
	cr_assert_fail("the default daemon did not answer on %s", addr);
}

static void expect_identity(const char *addr, bool tcp)
{
	char out[512], at[64], host[256];
	char *q[] = {"kdig", at, "+short", "+timeout=2", "+retry=0", tcp ? "+tcp" : "+notcp",
		     "id.server", "CH", "TXT", NULL};

	snprintf(at, sizeof(at), "@%s", addr);
	cr_assert_eq(netns_run(&ns, q, out, sizeof(out), 5000), 0, "%s", out);
	cr_assert_eq(gethostname(host, sizeof(host)), 0);
	char want[300];
	snprintf(want, sizeof(want), "\"%s\"\n", host);
	cr_assert_str_eq(out, want, "identity over %s on %s", tcp ? "TCP" : "UDP", addr);
}

static bool log_has(const char *needle)
{
	char buf[1024];
	FILE *f = fopen(daemon_.log, "r");
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(buf, sizeof(buf), f))
		found = strstr(buf, needle) != NULL;
	fclose(f);
	return found;
}

static void stop_expect_clean(void)
{
	int st = proc_stop(&daemon_, SIGTERM, 3000);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %#x", st);
	cr_assert_not(log_has("still in flight"));
}

Test(embedded_default, serves_127_0_0_1_and_ipv6_loopback_on_port_53)
{
	cr_assert_eq(netns_create(&ns, "def6"), 0);
	start_default("127.0.0.1");
	for (int tcp = 0; tcp < 2; tcp++) {
		expect_identity("127.0.0.1", tcp);
		expect_identity("::1", tcp);
	}
	cr_assert(log_has("listening on 127.0.0.1:53 [::1]:53"), "startup line");
	cr_assert(log_has("BGP off"));
	stop_expect_clean();
}

Test(embedded_default, without_ipv6_serves_127_0_0_1_and_warns)
{
	char out[256];
	char *off[] = {"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", NULL};
	char *off_lo[] = {"sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=1", NULL};

	cr_assert_eq(netns_create(&ns, "def4"), 0);
	cr_assert_eq(netns_run(&ns, off, out, sizeof(out), 5000), 0, "%s", out);
	cr_assert_eq(netns_run(&ns, off_lo, out, sizeof(out), 5000), 0, "%s", out);
	start_default("127.0.0.1");
	expect_identity("127.0.0.1", false);
	expect_identity("127.0.0.1", true);
	cr_assert(log_has("default listener [::1]:53 skipped"), "a warning names ::1");
	cr_assert(log_has("listening on 127.0.0.1:53 ("), "only 127.0.0.1 listed");
	stop_expect_clean();
}
