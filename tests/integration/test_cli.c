/*
 * The daemon's command line: --version, --help, --check (valid and invalid
 * configurations) and a clear failure when a listen port is already taken.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static char *bin(void)
{
	char *b = getenv("ANYCACHED");
	cr_assert_not_null(b, "ANYCACHED not set");
	return b;
}

Test(cli, version_and_help, .timeout = 30)
{
	char out[4096];
	char *v[] = {bin(), "--version", NULL};
	char *h[] = {bin(), "--help", NULL};

	cr_assert_eq(run_capture(v, true, out, sizeof(out), 5000), 0);
	cr_assert_not_null(strstr(out, "anycached"), "%s", out);
	cr_assert_eq(run_capture(h, true, out, sizeof(out), 5000), 0);
	cr_assert_not_null(strstr(out, "--check"), "%s", out);
}

Test(cli, unknown_option_is_an_error, .timeout = 30)
{
	char out[4096];
	char *a[] = {bin(), "--bogus", NULL};

	cr_assert_neq(run_capture(a, true, out, sizeof(out), 5000), 0);
	cr_assert_not_null(strstr(out, "--bogus"), "%s", out);
}

Test(cli, check_prints_effective_config, .timeout = 30)
{
	struct tmpdir t;
	char path[512], out[16384];

	cr_assert_eq(tmpdir_make(&t, "cli"), 0);
	write_file(t.path, "ok.yaml", "dns:\n  listen: [127.53.9.1]\n  upstreams: [127.53.9.2]\n",
	           path, sizeof(path));
	char *a[] = {bin(), "--check", "-c", path, NULL};
	int rc = run_capture(a, true, out, sizeof(out), 5000);
	tmpdir_remove(&t);
	cr_assert_eq(rc, 0, "%s", out);
	/* Defaults filled in. */
	cr_assert_not_null(strstr(out, "127.53.9.2"), "%s", out);
	cr_assert_not_null(strstr(out, "max-ttl"), "%s", out);
}

Test(cli, check_reports_errors_with_line_and_column, .timeout = 30)
{
	struct tmpdir t;
	char path[512], out[16384];

	cr_assert_eq(tmpdir_make(&t, "cli"), 0);
	write_file(t.path, "bad.yaml",
	           "dns:\n  listen: [127.53.9.1]\n  upstreams: [127.53.9.2]\n  bogus-key: 1\n",
	           path, sizeof(path));
	char *a[] = {bin(), "--check", "-c", path, NULL};
	int rc = run_capture(a, true, out, sizeof(out), 5000);
	tmpdir_remove(&t);
	cr_assert_eq(rc, 1, "%s", out);
	cr_assert_not_null(strstr(out, "bad.yaml:4:3"), "%s", out);
}

Test(cli, port_in_use_is_reported_and_fatal, .timeout = 30)
{
	struct tmpdir t;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(5301)};
	char path[512], out[16384];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	inet_pton(AF_INET, "127.53.9.3", &sin.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(tmpdir_make(&t, "cli"), 0);
	write_file(t.path, "busy.yaml",
	           "dns:\n  listen: [\"127.53.9.3:5301\"]\n  upstreams: [127.53.9.2]\n", path,
	           sizeof(path));
	char *a[] = {bin(), "-c", path, NULL};
	int rc = run_capture(a, true, out, sizeof(out), 10000);
	tmpdir_remove(&t);
	close(fd);
	cr_assert(rc != 0 && rc != -ETIMEDOUT, "rc %d: %s", rc, out);
	cr_assert_not_null(strstr(out, "127.53.9.3:5301"), "%s", out);
	cr_assert_not_null(strstr(out, "in use"), "%s", out);
}

/*
 * No usable io_uring (kernel without it, seccomp, a container policy): the
 * daemon says why and exits 1 before binding anything. strace injects the
 * io_uring_setup error, so the test needs no kernel or sysctl change.
 */
static void expect_probe_failure(const char *errname, const char *want)
{
	struct tmpdir t;
	char path[512], out[16384], inject[64];

	cr_assert_eq(tmpdir_make(&t, "cli"), 0);
	write_file(t.path, "ok.yaml", "dns:\n  listen: [\"127.53.9.6:5302\"]\n  upstreams: [127.53.9.2]\n",
		   path, sizeof(path));
	snprintf(inject, sizeof(inject), "inject=io_uring_setup:error=%s", errname);
	/* Under an ASan build: LeakSanitizer cannot run under ptrace (strace). */
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[512];
	snprintf(opts, sizeof(opts), "%s%sdetect_leaks=0", asan ? asan : "",
		 asan && *asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	char *a[] = {"strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=io_uring_setup",
		     "-e", inject, bin(), "-c", path, NULL};
	int rc = run_capture(a, true, out, sizeof(out), 10000);
	tmpdir_remove(&t);
	cr_assert_eq(rc, 1, "rc %d: %s", rc, out);
	cr_assert_not_null(strstr(out, want), "%s", out);
}

Test(cli, no_io_uring_is_reported_and_fatal, .timeout = 30)
{
	expect_probe_failure("ENOSYS", "kernel has no io_uring");
	expect_probe_failure("EPERM", "io_uring_setup is not permitted");
}
