/*
 * Issue 9: the control socket and anycachectl, with the real daemon and the
 * real client. Addresses: 127.53.70.x (anycached .1, knotd .2) and, with
 * BIRD as the router (bird_rig.h), 127.53.72.x.
 *   - every command, human and --json (parsed back), against live figures;
 *   - show bgp against BIRD: Established, negotiated hold time and
 *     capabilities, the routes with their attributes, NOTIFICATIONs;
 *   - drain persists across a restart (control.state) until undrain;
 *   - bad requests, a client that never sends, more clients than allowed;
 *   - the daemon not running (no socket, a stale one), the socket not
 *     permitted (anycachectl as nobody through setpriv), control.group.
 */
#include <criterion/criterion.h>
#include <grp.h>
#include <sys/stat.h>

#include "bird_rig.h"
#include "ctl_itest.h"

#define NODE     "127.53.70.1"
#define UPSTREAM "127.53.70.2"

static struct knotd knot;
static struct anycached daemon_;
static char sock[600];
static struct tmpdir extra;

static const char plain_yaml[] = "dns:\n"
                                 "  listen: [\"" NODE ":5300\"]\n"
                                 "  allow: [127.0.0.0/8]\n"
                                 "  upstreams: [\"" UPSTREAM ":5300\"]\n"
                                 "  threads: 2\n"
                                 "health: {interval: 100ms, rise: 2, fall: 2}\n";

static void setup(void)
{
	const char *zones[] = {"example.test", harness_example_zone};
	cr_assert_eq(knotd_start(&knot, UPSTREAM, 5300, zones, 1), 0, "knotd did not start");
}

static void teardown(void)
{
	anycached_stop(&daemon_);
	knotd_stop(&knot);
	if (extra.path[0])
		tmpdir_remove(&extra);
}

/* The daemon with the harness's private control socket (DIR/control.sock). */
static void start_plain(const char *yaml)
{
	cr_assert_eq(anycached_start(&daemon_, yaml, NODE, 5300), 0, "anycached did not answer");
	snprintf(sock, sizeof(sock), "%s/control.sock", daemon_.dir.path);
}

/* Polls show health until every VIP is in `state` (bounded). */
static bool wait_vips(const char *s, const char *state, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	do {
		json_t *h = ctl_json(s, "show health", NULL), *v;
		size_t i;
		bool all = json_array_size(json_object_get(h, "vips")) > 0;
		json_array_foreach(json_object_get(h, "vips"), i, v) all =
		    all && !strcmp(json_string_value(json_object_get(v, "state")), state);
		json_decref(h);
		if (all)
			return true;
		usleep(100 * 1000);
	} while (now_ms() < end);
	return false;
}

TestSuite(control, .init = setup, .fini = teardown, .timeout = 120);

Test(control, every_command_human_and_json)
{
	char out[1 << 16];
	uint8_t q[512], a[4096];
	json_t *j, *u;
	int qlen;

	start_plain(plain_yaml);
	cr_assert(wait_vips(sock, "up", 5000), "the VIP never came up");
	/* Live figures: one miss (forwarded), then hits. */
	j = ctl_json(sock, "show cache", NULL);
	json_int_t lookups0 = json_integer_value(json_object_get(j, "hits")) +
	                      json_integer_value(json_object_get(j, "misses"));
	json_decref(j);
	qlen = dns_make_query(q, sizeof(q), 0x1234, "www.example.test", 1, true);
	for (int i = 0; i < 6; i++)
		cr_assert_gt(dns_udp_exchange(NODE, 5300, q, (size_t)qlen, a, sizeof(a), 3000), 12);

	cr_assert_eq(CTL(sock, out, "status"), 0, "%s", out);
	cr_assert_not_null(strstr(out, "anycached 0."), "%s", out);
	cr_assert_not_null(strstr(out, "running for"), "%s", out);
	cr_assert_not_null(strstr(out, daemon_.conf), "the config file by name: %s", out);
	j = ctl_json(sock, "status", NULL);
	cr_assert_eq(json_integer_value(json_object_get(j, "workers")), 2);
	cr_assert_eq(json_integer_value(json_object_get(j, "pid")), daemon_.proc.pid);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "config"), "file")),
	                 daemon_.conf);
	cr_assert_gt(
	    json_integer_value(json_object_get(json_object_get(j, "config"), "loaded_unix")),
	    1600000000);
	json_decref(j);
	/* -c FILE: the socket named in the daemon's own configuration. */
	char *viac[] = {ctl_bin(), "-c", daemon_.conf, "status", NULL};
	cr_assert_eq(run_capture(viac, true, out, sizeof(out), 10000), 0, "%s", out);

	cr_assert_eq(CTL(sock, out, "show", "health"), 0, "%s", out);
	cr_assert_not_null(strstr(out, NODE ":5300"), "%s", out);
	cr_assert_not_null(strstr(out, " up "), "%s", out);
	j = ctl_json(sock, "show health", NULL);
	u = json_array_get(json_object_get(j, "vips"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(u, "state")), "up");
	cr_assert_eq(json_array_size(json_object_get(u, "reasons")), 0);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(u, "probes"), "last")),
	                 "ok");
	cr_assert(json_is_number(json_object_get(json_object_get(j, "load"), "busy")));
	json_decref(j);

	cr_assert_eq(CTL(sock, out, "show", "upstreams"), 0, "%s", out);
	cr_assert_not_null(strstr(out, UPSTREAM ":5300"), "%s", out);
	cr_assert_not_null(strstr(out, "DNS 0x20: on"), "%s", out);
	j = ctl_json(sock, "show upstreams", NULL);
	u = json_array_get(json_object_get(j, "upstreams"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(u, "state")), "healthy");
	cr_assert_geq(json_integer_value(json_object_get(u, "answers")), 1);
	cr_assert_eq(json_integer_value(json_object_get(u, "mismatches")), 0);
	cr_assert(json_is_integer(json_object_get(u, "srtt_ms")), "measured after an answer");
	cr_assert_eq(json_integer_value(json_object_get(j, "answered")), 2);
	json_decref(j);

	cr_assert_eq(CTL(sock, out, "show", "cache"), 0, "%s", out);
	cr_assert_not_null(strstr(out, "hit ratio"), "%s", out);
	j = ctl_json(sock, "show cache", NULL);
	json_int_t entries = json_integer_value(json_object_get(j, "entries"));
	cr_assert_geq(entries, 1);
	cr_assert_eq(json_integer_value(json_object_get(j, "hits")) +
	                 json_integer_value(json_object_get(j, "misses")) - lookups0,
	             6, "every query was a hit or a miss");
	cr_assert_gt(json_real_value(json_object_get(j, "hit_ratio")), 0.0);
	cr_assert_eq(json_integer_value(json_object_get(j, "limit_bytes")), 64 << 20);
	json_decref(j);

	/* Flush one name: what it held goes, show cache sees it at once. */
	cr_assert_eq(CTL(sock, out, "cache", "flush", "WWW.example.test."), 0, "%s", out);
	cr_assert_not_null(strstr(out, "flushed "), "%s", out);
	j = ctl_json(sock, "show cache", NULL);
	cr_assert_eq(json_integer_value(json_object_get(j, "entries")), 0, "only www was cached");
	cr_assert_eq(json_integer_value(json_object_get(j, "flushed")), 1,
	             "one cache, flushed once");
	json_decref(j);
	cr_assert_gt(dns_udp_exchange(NODE, 5300, q, (size_t)qlen, a, sizeof(a), 3000), 12);
	j = ctl_json(sock, "cache flush", NULL);
	cr_assert_eq(json_integer_value(json_object_get(j, "flushed")), 1,
	             "www again, nothing else");
	cr_assert(json_is_null(json_object_get(j, "name")));
	json_decref(j);

	cr_assert_eq(CTL(sock, out, "show", "bgp"), 0, "%s", out);
	cr_assert_str_eq(out, "bgp: not configured\n");
	cr_assert_eq(CTL(sock, out, "show", "bfd"), 0, "%s", out);
	cr_assert_str_eq(out, "bfd: not configured\n");
	j = ctl_json(sock, "show bfd", NULL);
	cr_assert(json_is_true(json_object_get(j, "available")));
	cr_assert_eq(json_array_size(json_object_get(j, "sessions")), 0, "no neighbor has bfd");
	json_decref(j);

	/* reload of the same file: accepted, nothing to change (test_reload does the rest). */
	cr_assert_eq(CTL(sock, out, "reload"), 0, "%s", out);
	cr_assert_not_null(strstr(out, "nothing changed"), "%s", out);
	cr_assert_eq(CTL_J(sock, out, "reload"), 0, "%s", out);
	j = json_loads(out, 0, NULL);
	cr_assert_eq(json_array_size(json_object_get(j, "applied")), 0, "%s", out);
	cr_assert_eq(json_array_size(json_object_get(j, "restart")), 0, "%s", out);
	json_decref(j);
	j = ctl_json(sock, "status", NULL);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "config"), "reloads")),
	             2);
	json_decref(j);

	cr_assert_eq(CTL(sock, out, "help"), 0, "%s", out);
	cr_assert_not_null(strstr(out, "cache flush [NAME]"), "%s", out);
	/* After all of it: exit 0, no sanitizer report, the socket removed. */
	char why[256];
	cr_assert_eq(anycached_stop_clean(&daemon_, 3000, why, sizeof(why)), 0, "%s", why);
}

Test(control, drain_and_undrain_one_vip_and_all)
{
	char out[8192];
	json_t *j;

	start_plain(plain_yaml);
	cr_assert(wait_vips(sock, "up", 5000));
	cr_assert_eq(CTL(sock, out, "drain", NODE), 0, "%s", out);
	cr_assert_str_eq(out, "drained: " NODE ":5300\n");
	cr_assert(wait_vips(sock, "draining", 3000));
	j = ctl_json(sock, "show health", NULL);
	json_t *v = json_array_get(json_object_get(j, "vips"), 0);
	cr_assert(json_is_true(json_object_get(v, "drained")));
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(v, "reasons"), 0)),
	                 "drain");
	json_decref(j);
	/* The state file says so, for the next start. */
	char path[600], text[512];
	snprintf(path, sizeof(path), "%s/drain.json", daemon_.dir.path);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	text[fread(text, 1, sizeof(text) - 1, f)] = '\0';
	fclose(f);
	cr_assert_str_eq(text, "{\"v\":1,\"all\":false,\"drained\":[\"" NODE ":5300\"]}\n");
	/* Unknown or malformed VIPs are refused with the list of VIPs. */
	cr_assert_eq(CTL(sock, out, "drain", "192.0.2.1"), 1, "%s", out);
	cr_assert_not_null(strstr(out, "VIPs: " NODE ":5300"), "%s", out);
	cr_assert_eq(CTL(sock, out, "drain", NODE ":53"), 1, "another port: %s", out);
	cr_assert_eq(CTL(sock, out, "drain", "not-an-address"), 1, "%s", out);
	cr_assert_not_null(strstr(out, "bad-argument"), "%s", out);
	cr_assert_eq(CTL(sock, out, "undrain"), 0, "%s", out);
	cr_assert_str_eq(out, "drained: none\n");
	cr_assert(wait_vips(sock, "up", 5000), "back up after undrain");
	cr_assert_eq(CTL(sock, out, "drain"), 0, "%s", out);
	cr_assert(wait_vips(sock, "draining", 3000));
	cr_assert_eq(CTL(sock, out, "undrain", NODE ":5300"), 0, "%s", out);
	cr_assert(wait_vips(sock, "up", 5000));
	char why[256];
	cr_assert_eq(anycached_stop_clean(&daemon_, 3000, why, sizeof(why)), 0, "%s", why);
}

Test(control, bad_requests_are_answered_not_fatal)
{
	static char big[5000];
	char line[1024], out[4096];
	int fd;

	start_plain(plain_yaml);
	fd = unix_connect(sock);
	cr_assert_geq(fd, 0, "%s", strerror(-fd));
	static const struct {
		const char *req, *code;
	} cases[] = {
	    {"hello\n", "bad-request"},
	    {"{\"v\":1}\n", "bad-request"},
	    {"{\"v\":2,\"cmd\":\"status\"}\n", "unsupported-version"},
	    {"{\"v\":1,\"cmd\":\"status\",\"extra\":1}\n", "bad-request"},
	    {"{\"v\":1,\"cmd\":\"frobnicate\"}\n", "unknown-command"},
	    {"{\"v\":1,\"cmd\":\"status\",\"args\":[\"x\"]}\n", "bad-argument"},
	    {"{\"v\":1,\"cmd\":\"cache flush\",\"args\":[\"a..b\"]}\n", "bad-argument"},
	    {"\n", "bad-request"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(send(fd, cases[i].req, strlen(cases[i].req), MSG_NOSIGNAL),
		             (ssize_t)strlen(cases[i].req));
		cr_assert_gt(read_line(fd, line, sizeof(line)), 0, "case %zu: no answer", i);
		json_t *j = json_loads(line, 0, NULL);
		cr_assert_not_null(j, "case %zu: not JSON: %s", i, line);
		cr_assert(json_is_false(json_object_get(j, "ok")), "%s", line);
		cr_assert_str_eq(
		    json_string_value(json_object_get(json_object_get(j, "error"), "code")),
		    cases[i].code, "case %zu: %s", i, line);
		json_decref(j);
	}
	/* The same connection still serves a good request. */
	send(fd, "{\"v\":1,\"cmd\":\"status\"}\n", 23, MSG_NOSIGNAL);
	cr_assert_gt(read_line(fd, line, sizeof(line)), 0);
	cr_assert_not_null(strstr(line, "\"ok\":true"), "%s", line);
	close(fd);
	/* Too large: answered too-large, then the connection is closed. */
	fd = unix_connect(sock);
	memset(big, 'x', sizeof(big));
	send(fd, big, sizeof(big), MSG_NOSIGNAL);
	cr_assert_gt(read_until_close(fd, out, sizeof(out), 3000), 0);
	cr_assert_not_null(strstr(out, "\"too-large\""), "%s", out);
	close(fd);
	/* anycachectl refuses what it cannot send, and bad usage. */
	cr_assert_eq(CTL(sock, out, "Status"), 2, "%s", out);
	cr_assert_eq(CTL(sock, out, "drain", "a", "b"), 2, "%s", out);
	char *both[] = {ctl_bin(), "-s", sock, "-c", "/x.yaml", "status", NULL};
	cr_assert_eq(run_capture(both, true, out, sizeof(out), 5000), 2, "%s", out);
	/* The daemon is fine. */
	cr_assert_eq(CTL(sock, out, "status"), 0, "%s", out);
	char why[256];
	cr_assert_eq(anycached_stop_clean(&daemon_, 3000, why, sizeof(why)), 0, "%s", why);
}

/* A client that connects and never sends is closed after 5 s; the socket
 * serves others meanwhile; beyond 16 connections the next one is closed. */
Test(control, silent_clients_and_the_connection_cap)
{
	char out[4096];
	int fds[16], extra_fd;
	uint64_t t0;

	start_plain(plain_yaml);
	t0 = now_ms();
	fds[0] = unix_connect(sock);
	cr_assert_geq(fds[0], 0);
	cr_assert_eq(CTL(sock, out, "status"), 0, "a silent client blocks nobody: %s", out);
	for (int i = 1; i < 15; i++) {
		fds[i] = unix_connect(sock);
		cr_assert_geq(fds[i], 0);
	}
	/* 15 silent + anycachectl = 16: still served. */
	cr_assert_eq(CTL(sock, out, "status"), 0, "%s", out);
	fds[15] = unix_connect(sock);
	cr_assert_geq(fds[15], 0);
	usleep(200 * 1000);
	/* The 17th is accepted and closed at once: anycachectl says so, exit 3. */
	extra_fd = unix_connect(sock);
	cr_assert_geq(extra_fd, 0);
	cr_assert_geq(read_until_close(extra_fd, out, sizeof(out), 2000), 0, "closed at once");
	close(extra_fd);
	cr_assert_eq(CTL(sock, out, "status"), 3, "%s", out);
	cr_assert(strstr(out, "without an answer") || strstr(out, "cannot send"), "%s", out);
	/* The silent ones are closed after the timeout (5 s), not before 4 s. */
	cr_assert_geq(read_until_close(fds[0], out, sizeof(out), 8000), 0, "never closed");
	uint64_t took = now_ms() - t0;
	cr_assert_geq(took, 4000, "closed after %llu ms", (unsigned long long)took);
	cr_assert_leq(took, 7500, "closed after %llu ms", (unsigned long long)took);
	for (int i = 0; i < 16; i++)
		close(fds[i]);
	cr_assert_eq(CTL(sock, out, "status"), 0, "served again: %s", out);
	char why[256];
	cr_assert_eq(anycached_stop_clean(&daemon_, 3000, why, sizeof(why)), 0, "%s", why);
}

/* A client that sends a request and never reads is cut off too; the daemon goes on. */
Test(control, client_that_never_reads)
{
	char out[4096];
	int fd;

	start_plain(plain_yaml);
	fd = unix_connect(sock);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	/* Thousands of requests, no read: ~2 MB of answers, far beyond the socket
	 * buffers, so the daemon's send stalls (requests beyond what the kernel
	 * takes are simply not sent). */
	static char many[1 << 17];
	size_t n = 0;
	while (n + 40 < sizeof(many))
		n += (size_t)snprintf(many + n, sizeof(many) - n, "{\"v\":1,\"cmd\":\"help\"}\n");
	for (size_t off = 0; off < n;) {
		ssize_t r = send(fd, many + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	usleep(300 * 1000);
	cr_assert_eq(CTL(sock, out, "status"), 0, "%s", out);
	/* Within the timeout after its last progress the server gives up on it. */
	uint64_t t0 = now_ms();
	bool closed = false;
	while (!closed && now_ms() - t0 < 9000) {
		int err = 0;
		socklen_t el = sizeof(err);
		struct pollfd p = {.fd = fd, .events = POLLRDHUP};
		/* Drain nothing; just watch for the hang-up. */
		closed = poll(&p, 1, 200) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	}
	cr_assert(closed, "a client that never reads is closed");
	close(fd);
	cr_assert_eq(CTL(sock, out, "status"), 0, "%s", out);
}

Test(control, daemon_not_running)
{
	char out[4096], path[600];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	cr_assert_eq(tmpdir_make(&extra, "ctlnone"), 0);
	snprintf(path, sizeof(path), "%s/control.sock", extra.path);
	cr_assert_eq(CTL(path, out, "status"), 3, "%s", out);
	cr_assert_not_null(strstr(out, "does not exist"), "%s", out);
	cr_assert_not_null(strstr(out, "not running"), "%s", out);
	/* A socket file left by a daemon that died: nobody answers. */
	cr_assert_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	cr_assert_eq(CTL(path, out, "status"), 3, "%s", out);
	cr_assert_not_null(strstr(out, "nobody answers"), "%s", out);
	/* A daemon started on it takes the stale socket over. */
	char yaml[1600];
	snprintf(yaml, sizeof(yaml), "%scontrol: {socket: \"%s\", state: \"%s/drain.json\"}\n",
	         plain_yaml, path, extra.path);
	start_plain(yaml);
	cr_assert_eq(CTL(path, out, "status"), 0, "%s", out);
	/* A second daemon on the same socket refuses to start, and says why. */
	struct anycached d2;
	char yaml2[1600];
	snprintf(yaml2, sizeof(yaml2),
	         "dns: {listen: [\"127.53.70.3:5300\"], upstreams: [\"" UPSTREAM ":5300\"]}\n"
	         "control: {socket: \"%s\"}\n",
	         path);
	cr_assert_neq(anycached_start(&d2, yaml2, "127.53.70.3", 5300), 0);
	FILE *f = fopen(d2.proc.log, "r");
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	fclose(f);
	cr_assert_not_null(strstr(out, "another anycached answers on it"), "%s", out);
	anycached_stop(&d2);
	cr_assert_eq(CTL(path, out, "status"), 0, "the first one is untouched: %s", out);
	/* After an orderly stop the socket is gone. */
	char why[256];
	cr_assert_eq(anycached_stop_clean(&daemon_, 3000, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(CTL(path, out, "status"), 3, "%s", out);
	cr_assert_not_null(strstr(out, "does not exist"), "%s", out);
}

/* Mode 0660: nobody is refused; control.group lets that group in. */
Test(control, socket_permissions_and_group)
{
	char out[4096], path[600], yaml[1600];
	struct stat st;
	const char *as_nobody[] = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
	                           NULL};
	const char *as_other[] = {"setpriv", "--reuid=65534", "--regid=1", "--clear-groups", NULL};
	struct group *ng = getgrgid(65534);

	cr_assert_not_null(ng, "no group 65534 on this host");
	cr_assert_eq(tmpdir_make(&extra, "ctlperm"), 0);
	cr_assert_eq(chmod(extra.path, 0755), 0); /* the directory is not what is tested */
	snprintf(path, sizeof(path), "%s/run/control.sock", extra.path);
	snprintf(yaml, sizeof(yaml), "%scontrol: {socket: \"%s\", state: \"%s/drain.json\"}\n",
	         plain_yaml, path, extra.path);
	start_plain(yaml);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0660);
	cr_assert_eq(ctl_run(as_nobody, path, true, out, sizeof(out), "status", NULL), 3, "%s",
	             out);
	cr_assert_not_null(strstr(out, "permission denied"), "%s", out);
	cr_assert_eq(CTL(path, out, "status"), 0, "root is let in: %s", out);
	anycached_stop(&daemon_);

	/* With control.group: that group's members are let in, others are not. */
	snprintf(yaml, sizeof(yaml),
	         "%scontrol: {socket: \"%s\", state: \"%s/drain.json\", group: \"%s\"}\n",
	         plain_yaml, path, extra.path, ng->gr_name);
	start_plain(yaml);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_gid, 65534);
	cr_assert_eq(ctl_run(as_nobody, path, true, out, sizeof(out), "status", NULL), 0, "%s",
	             out);
	cr_assert_eq(ctl_run(as_other, path, true, out, sizeof(out), "status", NULL), 3, "%s", out);
	cr_assert_not_null(strstr(out, "permission denied"), "%s", out);
}

/* ---------------------------------------------------------------- with BIRD */

static char bsock[600];

static void setup72(void)
{
	rig_init(72);
	snprintf(bsock, sizeof(bsock), "%s/ctl.sock", rig.dir.path);
}

TestSuite(control_bgp, .init = setup72, .fini = rig_fini, .timeout = 150);

static void start_with_bird(void)
{
	static char extra_yaml[1024], out[16384];

	snprintf(extra_yaml, sizeof(extra_yaml),
	         "control: {socket: \"%s\", state: \"%s/drain.json\"}\n", bsock, rig.dir.path);
	any_bgp_extra = extra_yaml;
	any_health = "health: {interval: 100ms, rise: 2, fall: 2, hold-down: 1s, drain: 0s}\n";
	bird_start(65000, 65000, NULL);
	any_start(65000, 65000, NULL);
	bool ok = wait_routes("64.0.0.0/2", true, 20000, out, sizeof(out)) &&
	          wait_routes(rig.vip6, true, 5000, out, sizeof(out));
	if (!ok)
		dump_on_failure(out);
	cr_assert(ok, "routes did not arrive at BIRD");
}

Test(control_bgp, show_bgp_against_bird)
{
	char out[1 << 16];
	json_t *j, *n, *routes, *r;
	size_t i;
	bool seen64 = false;

	start_with_bird();
	cr_assert_eq(CTL(bsock, out, "show", "bgp"), 0, "%s", out);
	cr_assert_not_null(strstr(out, "BGP AS 65000, router id 127.53.72.2"), "%s", out);
	cr_assert_not_null(strstr(out, "Established"), "%s", out);
	cr_assert_not_null(strstr(out, "64.0.0.0/2"), "%s", out);
	cr_assert_not_null(strstr(out, "65000:100 65000:200"), "%s", out);
	j = ctl_json(bsock, "show bgp", NULL);
	n = json_array_get(json_object_get(j, "neighbors"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(n, "state")), "Established");
	cr_assert_str_eq(json_string_value(json_object_get(n, "type")), "ibgp");
	cr_assert_eq(json_integer_value(json_object_get(n, "hold_time_s")), 9, "min(9, 9)");
	cr_assert_str_eq(json_string_value(json_object_get(n, "router_id")), "127.53.72.1");
	char caps[256];
	json_t *c;
	caps[0] = '\0';
	json_array_foreach(json_object_get(n, "capabilities"), i, c)
	{
		strcat(caps, json_string_value(c));
		strcat(caps, " ");
	}
	cr_assert_str_eq(caps, "4-octet-as ipv4-unicast ipv6-unicast route-refresh ");
	cr_assert_geq(json_integer_value(json_object_get(n, "updates_sent")), 3,
	              "the routes and End-of-RIB per family");
	routes = json_object_get(n, "routes");
	cr_assert_eq(json_array_size(routes), 3);
	json_array_foreach(routes, i, r)
	{
		if (strcmp(json_string_value(json_object_get(r, "prefix")), "64.0.0.0/2"))
			continue;
		seen64 = true;
		cr_assert_eq(json_integer_value(json_object_get(r, "local_pref")), 200);
		cr_assert_eq(json_integer_value(json_object_get(r, "med")), 7);
		cr_assert_str_eq(
		    json_string_value(json_array_get(json_object_get(r, "communities"), 1)),
		    "65000:200");
		cr_assert_str_eq(
		    json_string_value(json_array_get(json_object_get(r, "large_communities"), 0)),
		    "4200000001:1:2");
	}
	cr_assert(seen64);
	cr_assert(json_is_null(json_object_get(n, "notification_received")));
	json_decref(j);

	/* BIRD restarts the session: its Cease shows, and the session comes back. */
	birdc("restart anyc", out, sizeof(out));
	uint64_t end = now_ms() + 20000;
	bool got = false;
	while (!got && now_ms() < end) {
		j = ctl_json(bsock, "show bgp", NULL);
		n = json_array_get(json_object_get(j, "neighbors"), 0);
		json_t *nr = json_object_get(n, "notification_received");
		got = json_is_object(nr) && json_integer_value(json_object_get(nr, "code")) == 6 &&
		      !strcmp(json_string_value(json_object_get(n, "state")), "Established") &&
		      json_integer_value(json_object_get(n, "flaps")) >= 1;
		json_decref(j);
		if (!got)
			usleep(200 * 1000);
	}
	cr_assert(got, "no Cease from BIRD seen, or the session did not come back");
	cr_assert_eq(CTL(bsock, out, "show", "bgp"), 0, "%s", out);
	cr_assert_not_null(strstr(out, "last NOTIFICATION received: 6/"), "%s", out);
	char why[256];
	rig.d_up = false;
	cr_assert_eq(anycached_stop_clean(&rig.d, 3000, why, sizeof(why)), 0, "%s", why);
}

/* drain (every VIP) survives a restart; undrain brings the routes back. */
Test(control_bgp, drain_persists_across_restart)
{
	char out[1 << 16], blk[4096];

	start_with_bird();
	cr_assert_eq(CTL(bsock, out, "drain"), 0, "%s", out);
	/* RFC 8326: GRACEFUL_SHUTDOWN on the routes while still answering. */
	bool ok = wait_routes("(65535,0)", true, 5000, out, sizeof(out));
	if (!ok)
		dump_on_failure(out);
	cr_assert(ok, "no GRACEFUL_SHUTDOWN at BIRD after drain");
	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_assert_not_null(strstr(blk, "BGP.local_pref: 0"), "%s", blk);

	/* Restart: the drain holds; a drained VIP that starts DOWN stays DOWN
	 * (health_fsm.h), so nothing is announced until undrain. */
	anycached_stop(&rig.d);
	rig.d_up = false;
	cr_assert(wait_routes("64.0.0.0/2", false, 15000, out, sizeof(out)), "withdrawn at stop");
	any_start(65000, 65000, NULL);
	json_t *j = ctl_json(bsock, "show health", NULL), *v;
	size_t i;
	json_array_foreach(json_object_get(j, "vips"), i, v)
	{
		cr_assert(json_is_true(json_object_get(v, "drained")), "drained after the restart");
		cr_assert_neq(strcmp(json_string_value(json_object_get(v, "state")), "up"), 0);
	}
	json_decref(j);
	sleep_ms(2000);
	birdc("show route all", out, sizeof(out));
	cr_assert_null(strstr(out, "64.0.0.0/2"), "announced while drained: %s", out);
	cr_assert_eq(CTL(bsock, out, "undrain"), 0, "%s", out);
	ok = wait_routes("64.0.0.0/2", true, 15000, out, sizeof(out));
	if (!ok)
		dump_on_failure(out);
	cr_assert(ok, "no route after undrain");
	route_block(out, "64.0.0.0/2", blk, sizeof(blk));
	cr_assert_null(strstr(blk, "(65535,0)"), "%s", blk);
	cr_assert_not_null(strstr(blk, "BGP.local_pref: 200"), "%s", blk);
}
