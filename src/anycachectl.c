/*
 * anycachectl: the operator's client of anycached's control socket.
 *
 *   anycachectl [-s SOCKET | -c FILE] [--json] [-t SECONDS] COMMAND [ARG]
 *
 * It sends one request (core/ctl_proto.h, version 1) and prints the answer:
 * tables for people, or with --json the answer's data object for scripts.
 * Exit status: 0 done; 1 the daemon refused or failed the command (the
 * message says why: unknown VIP, not implemented, ...); 2 a usage error;
 * 3 the daemon could not be reached or answered garbage (not running, no
 * permission on the socket, timeout).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "anycache_version.h"
#include "core/conf.h"
#include "core/ctl_proto.h"

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

/* The commands anycachectl knows how to split: words of the name, then arguments. */
static const struct {
	const char *cmd;
	unsigned max_args;
	const char *help;
} known[] = {
    {"status", 0, "version, uptime, workers, configuration file and its load time"},
    {"show bgp", 0, "BGP neighbors: state, hold time, capabilities, errors, routes sent"},
    {"show bfd", 0, "BFD sessions"},
    {"show health", 0, "each VIP: state, why, since when, probes; the load figures"},
    {"show upstreams", 0, "each upstream: state, RTT, RTO, failures, DNS 0x20 mismatches"},
    {"show cache", 0, "entries, memory, hit ratio"},
    {"cache flush", 1, "cache flush [NAME]: every entry, or every entry of NAME"},
    {"drain", 1, "drain [VIP]: announce with GRACEFUL_SHUTDOWN, kept across restarts"},
    {"undrain", 1, "undrain [VIP]: end a drain"},
    {"reload", 0, "re-read the configuration file and apply what changed"},
    {"restart", 0,
     "start a successor (same binary path and arguments: also the upgrade) "
     "that takes over every socket and BGP session; exits non-zero if it "
     "did not take over"},
    {"help", 0, "the commands the daemon knows"},
};
#define N_KNOWN (sizeof(known) / sizeof(known[0]))

static bool json_out;

static void usage(FILE *f)
{
	fprintf(f, "usage: anycachectl [-s SOCKET | -c FILE] [--json] [-t SECONDS] COMMAND [ARG]\n"
	           "\n"
	           "  -s, --socket SOCKET  the control socket (default: " CONF_DEFAULT_SOCKET ")\n"
	           "  -c, --config FILE    take control.socket from anycached's configuration\n"
	           "      --json           print the answer's data as JSON (for scripts)\n"
	           "  -t, --timeout SEC    give up after SEC seconds (default 10)\n"
	           "  -V, --version        print the version\n"
	           "\n"
	           "commands:\n");
	for (size_t i = 0; i < N_KNOWN; i++)
		fprintf(f, "  %-16s %s\n", known[i].cmd, known[i].help);
	fprintf(f,
	        "\nexit status: 0 done, 1 refused by the daemon, 2 usage, 3 daemon unreachable\n");
}

/* ---------------------------------------------------------------- transport */

static int connect_socket(const char *path, unsigned timeout_s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = timeout_s};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "anycachectl: %s: path too long for a unix socket\n", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "anycachectl: socket: %s\n", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	switch (errno) {
	case ENOENT:
		fprintf(stderr,
		        "anycachectl: %s does not exist: anycached is not running, or uses another "
		        "control.socket (give it with -s or -c)\n",
		        path);
		break;
	case ECONNREFUSED:
		fprintf(stderr,
		        "anycachectl: nobody answers on %s: anycached is not running (the socket "
		        "file is left from an earlier run)\n",
		        path);
		break;
	case EACCES:
	case EPERM:
		fprintf(stderr,
		        "anycachectl: %s: permission denied: run as root or as a member of the "
		        "socket's group (control.group)\n",
		        path);
		break;
	default:
		fprintf(stderr, "anycachectl: cannot connect to %s: %s\n", path, strerror(errno));
	}
	close(fd);
	return -1;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One answer line (without its newline), or NULL with a message printed. */
static char *read_line(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	while (buf) {
		if (n == cap) {
			if (cap >= CTL_PROTO_MAX_ANSWER) {
				fprintf(stderr, "anycachectl: the answer exceeds %u bytes\n",
				        CTL_PROTO_MAX_ANSWER);
				break;
			}
			char *b = realloc(buf, cap * 2);
			if (!b)
				break;
			buf = b;
			cap *= 2;
		}
		ssize_t r = recv(fd, buf + n, cap - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != ECONNRESET) {
			fprintf(stderr, "anycachectl: no answer from anycached: %s\n",
			        errno == EAGAIN ? "timed out" : strerror(errno));
			break;
		}
		if (r <= 0) {
			fprintf(stderr, "anycachectl: anycached closed the connection without an "
			                "answer (too many clients at once, or it is stopping)\n");
			break;
		}
		char *nl = memchr(buf + n, '\n', (size_t)r);
		n += (size_t)r;
		if (nl) {
			*len = (size_t)(nl - buf);
			return buf;
		}
	}
	free(buf);
	return NULL;
}

/* ---------------------------------------------------------------- formatting */

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static long long integer(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* 42s, 4m12s, 3h05m, 2d03h; "-" when unknown. */
static const char *dur(double s, char *b, size_t n)
{
	unsigned long long t = (unsigned long long)s;

	if (isnan(s) || s < 0)
		snprintf(b, n, "-");
	else if (s < 10)
		snprintf(b, n, "%.1fs", s);
	else if (t < 60)
		snprintf(b, n, "%llus", t);
	else if (t < 3600)
		snprintf(b, n, "%llum%02llus", t / 60, t % 60);
	else if (t < 86400)
		snprintf(b, n, "%lluh%02llum", t / 3600, t % 3600 / 60);
	else
		snprintf(b, n, "%llud%02lluh", t / 86400, t % 86400 / 3600);
	return b;
}

static const char *bytes(double v, char *b, size_t n)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(b, n, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
	return b;
}

static const char *when(long long unix_s, char *b, size_t n)
{
	time_t t = (time_t)unix_s;
	struct tm tm;

	if (!unix_s || !gmtime_r(&t, &tm))
		snprintf(b, n, "-");
	else
		strftime(b, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return b;
}

static void print_status(const json_t *d)
{
	char b1[32], b2[64];
	const json_t *cf = json_object_get(d, "config");

	printf("anycached %s (pid %lld), %s for %s\n", str(d, "version"), integer(d, "pid"),
	       str(d, "state"), dur(num(d, "uptime_s"), b1, sizeof(b1)));
	printf("%-12s %lld\n", "workers", integer(d, "workers"));
	printf("%-12s %lld\n", "VIPs", integer(d, "vips"));
	printf("%-12s %s\n", "BGP", json_is_true(json_object_get(d, "bgp")) ? "on" : "off");
	printf("%-12s %s\n", "metrics",
	       json_is_string(json_object_get(d, "metrics")) ? str(d, "metrics") : "off");
	printf("%-12s %s (loaded %s, %lld reloads since the start)\n", "config",
	       json_is_true(json_object_get(cf, "embedded")) ? "embedded default" : str(cf, "file"),
	       when(integer(cf, "loaded_unix"), b2, sizeof(b2)), integer(cf, "reloads"));
}

static void join_strings(const json_t *a, char *out, size_t n, const char *sep)
{
	size_t off = 0;
	size_t i;
	const json_t *v;

	out[0] = '\0';
	json_array_foreach(a, i, v)
	{
		if (off < n)
			off += (size_t)snprintf(out + off, n - off, "%s%s", i ? sep : "",
			                        json_string_value(v) ? json_string_value(v) : "?");
	}
	if (!off)
		snprintf(out, n, "-");
}

static void print_health(const json_t *d)
{
	const json_t *vips = json_object_get(d, "vips"), *v;
	const json_t *load = json_object_get(d, "load");
	char why[256], age[32], probe[64], rtt[32];
	size_t i;

	printf("%-28s %-9s %-8s %-24s %-18s %s\n", "VIP", "STATE", "FOR", "WHY", "LAST PROBE",
	       "DRAINED");
	json_array_foreach(vips, i, v)
	{
		const json_t *p = json_object_get(v, "probes");
		join_strings(json_object_get(v, "reasons"), why, sizeof(why), ",");
		if (json_is_number(json_object_get(p, "rtt_ms")))
			snprintf(rtt, sizeof(rtt), " %.2fms", num(p, "rtt_ms"));
		else
			rtt[0] = '\0';
		snprintf(probe, sizeof(probe), "%s%s %lld/%lld", str(p, "last"),
		         strcmp(str(p, "last"), "ok") ? "" : rtt, integer(p, "good_in_a_row"),
		         integer(p, "failed_in_a_row"));
		printf("%-28s %-9s %-8s %-24s %-18s %s\n", str(v, "vip"), str(v, "state"),
		       dur(num(v, "state_age_s"), age, sizeof(age)), why, probe,
		       json_is_true(json_object_get(v, "drained")) ? "yes" : "no");
	}
	printf("load: busy %.1f%%, drops %.0f/s, upstream in-flight %.1f%%, probe latency %.2f ms; "
	       "overloaded %s, upstreams down %s%s\n",
	       100 * num(load, "busy"), num(load, "drops_per_s"), 100 * num(load, "inflight_ratio"),
	       num(load, "latency_ms"),
	       json_is_true(json_object_get(d, "overloaded")) ? "yes" : "no",
	       json_is_true(json_object_get(d, "upstreams_down")) ? "yes" : "no",
	       json_is_true(json_object_get(d, "stopping")) ? "; stopping" : "");
}

static void print_notif(const char *what, const json_t *n)
{
	char age[32];

	if (!json_is_object(n)) {
		printf("  last NOTIFICATION %s: none\n", what);
		return;
	}
	printf("  last NOTIFICATION %s: %lld/%lld %s, %s ago%s%s%s\n", what, integer(n, "code"),
	       integer(n, "subcode"), str(n, "name"), dur(num(n, "age_s"), age, sizeof(age)),
	       json_is_string(json_object_get(n, "text")) ? " \"" : "",
	       json_is_string(json_object_get(n, "text")) ? str(n, "text") : "",
	       json_is_string(json_object_get(n, "text")) ? "\"" : "");
}

static void print_route(const json_t *r)
{
	char comm[512], large[512], lp[32], med[32];

	join_strings(json_object_get(r, "communities"), comm, sizeof(comm), " ");
	join_strings(json_object_get(r, "large_communities"), large, sizeof(large), " ");
	if (json_is_integer(json_object_get(r, "local_pref")))
		snprintf(lp, sizeof(lp), "%lld", integer(r, "local_pref"));
	else
		snprintf(lp, sizeof(lp), "-");
	if (json_is_integer(json_object_get(r, "med")))
		snprintf(med, sizeof(med), "%lld", integer(r, "med"));
	else
		snprintf(med, sizeof(med), "-");
	printf("    %-22s local-pref %-5s med %-6s prepend %lld  communities %s  large %s\n",
	       str(r, "prefix"), lp, med, integer(r, "as_path_prepend"), comm, large);
}

static void print_bgp(const json_t *d)
{
	const json_t *list = json_object_get(d, "neighbors"), *n, *r;
	char age[32], caps[256], hold[16];
	size_t i, k;

	if (!json_is_true(json_object_get(d, "enabled"))) {
		printf("bgp: not configured\n");
		return;
	}
	printf("BGP AS %lld, router id %s\n", integer(d, "asn"), str(d, "router_id"));
	printf("%-30s %-10s %-5s %-12s %-8s %-5s %-8s %-7s %s\n", "NEIGHBOR", "AS", "TYPE", "STATE",
	       "FOR", "HOLD", "UPDATES", "ROUTES", "FLAPS");
	json_array_foreach(list, i, n)
	{
		const json_t *routes = json_object_get(n, "routes");
		const json_t *err = json_object_get(n, "last_error");
		if (json_is_integer(json_object_get(n, "hold_time_s")))
			snprintf(hold, sizeof(hold), "%llds", integer(n, "hold_time_s"));
		else
			snprintf(hold, sizeof(hold), "-");
		printf("%-30s %-10lld %-5s %-12s %-8s %-5s %-8lld %-7zu %lld\n", str(n, "address"),
		       integer(n, "asn"), str(n, "type"), str(n, "state"),
		       dur(num(n, "state_age_s"), age, sizeof(age)), hold,
		       integer(n, "updates_sent"), json_array_size(routes), integer(n, "flaps"));
		join_strings(json_object_get(n, "capabilities"), caps, sizeof(caps), " ");
		printf("  capabilities: %s; local address %s; peer router id %s\n", caps,
		       str(n, "local_address"), str(n, "router_id"));
		print_notif("sent", json_object_get(n, "notification_sent"));
		print_notif("received", json_object_get(n, "notification_received"));
		if (json_is_object(err))
			printf("  last error: %s, %s ago\n", str(err, "text"),
			       dur(num(err, "age_s"), age, sizeof(age)));
		printf("  routes announced: %zu\n", json_array_size(routes));
		json_array_foreach(routes, k, r) print_route(r);
	}
}

static void print_bfd(const json_t *d)
{
	const json_t *list = json_object_get(d, "sessions"), *e;
	size_t k;

	if (json_array_size(list) == 0) {
		printf("bfd: not configured\n");
		return;
	}
	printf("%-40s %-10s %-10s %-22s %6s %6s %4s\n", "NEIGHBOR", "STATE", "REMOTE", "DIAG",
	       "TX ms", "RX ms", "MULT");
	json_array_foreach(list, k, e)
	{
		printf("%-40s %-10s %-10s %-22s %6.0f %6.0f %4lld\n",
		       json_string_value(json_object_get(e, "neighbor")) ?: "?",
		       json_string_value(json_object_get(e, "state")) ?: "?",
		       json_string_value(json_object_get(e, "remote_state")) ?: "-",
		       json_string_value(json_object_get(e, "local_diag")) ?: "-",
		       json_number_value(json_object_get(e, "tx_interval_ms")),
		       json_number_value(json_object_get(e, "rx_interval_ms")),
		       (long long)json_integer_value(json_object_get(e, "detect_mult")));
	}
}

static void print_upstreams(const json_t *d)
{
	const json_t *list = json_object_get(d, "upstreams"), *u;
	const json_t *x = json_object_get(d, "dns0x20");
	char srtt[32];
	size_t i;

	printf("%-30s %-8s %-8s %-8s %-6s %-6s %-9s %-9s %-9s %-13s %s\n", "UPSTREAM", "STATE",
	       "SRTT", "RTO", "FAILS", "FAIL%", "QUERIES", "ANSWERS", "TIMEOUTS", "0x20-MISMATCH",
	       "0x20");
	json_array_foreach(list, i, u)
	{
		if (json_is_integer(json_object_get(u, "srtt_ms")))
			snprintf(srtt, sizeof(srtt), "%lldms", integer(u, "srtt_ms"));
		else
			snprintf(srtt, sizeof(srtt), "-");
		char rto[32];
		snprintf(rto, sizeof(rto), "%lldms", integer(u, "rto_ms"));
		printf("%-30s %-8s %-8s %-8s %-6lld %-6.1f %-9lld %-9lld %-9lld %-13lld %s\n",
		       str(u, "address"), str(u, "state"), srtt, rto,
		       integer(u, "consecutive_failures"), 100 * num(u, "failure_rate"),
		       integer(u, "queries"), integer(u, "answers"), integer(u, "timeouts"),
		       integer(u, "mismatches"), str(u, "dns0x20"));
	}
	printf("DNS 0x20: %s, %lld mismatches, %lld spoof retries; %lld queries in flight "
	       "(%lld of %lld workers answered)\n",
	       json_is_true(json_object_get(x, "enabled")) ? "on" : "off", integer(x, "mismatches"),
	       integer(x, "spoof_retries"), integer(d, "inflight"), integer(d, "answered"),
	       integer(d, "workers"));
}

static void print_cache(const json_t *d)
{
	char b1[32], b2[32];

	printf("%-10s %lld\n", "entries", integer(d, "entries"));
	printf("%-10s %s of %s\n", "memory", bytes(num(d, "bytes"), b1, sizeof(b1)),
	       bytes(num(d, "limit_bytes"), b2, sizeof(b2)));
	if (json_is_number(json_object_get(d, "hit_ratio")))
		printf("%-10s %lld (hit ratio %.1f%%)\n", "hits", integer(d, "hits"),
		       100 * num(d, "hit_ratio"));
	else
		printf("%-10s %lld\n", "hits", integer(d, "hits"));
	printf("%-10s %lld\n", "misses", integer(d, "misses"));
	printf("%-10s %lld\n", "stale", integer(d, "stale"));
	printf("%-10s %lld\n", "evictions", integer(d, "evictions"));
	printf("%-10s %lld\n", "flushed", integer(d, "flushed"));
	if (integer(d, "answered") < integer(d, "workers"))
		printf("(%lld of %lld workers answered in time)\n", integer(d, "answered"),
		       integer(d, "workers"));
}

static void print_flush(const json_t *d)
{
	printf("flushed %lld entr%s%s%s\n", integer(d, "flushed"),
	       integer(d, "flushed") == 1 ? "y" : "ies",
	       json_is_string(json_object_get(d, "name")) ? " of " : "",
	       json_is_string(json_object_get(d, "name")) ? str(d, "name") : "");
}

static void print_drain(const json_t *d)
{
	char list[1024];

	join_strings(json_object_get(d, "drained"), list, sizeof(list), " ");
	printf("drained: %s\n", strcmp(list, "-") ? list : "none");
}

static void print_help(const json_t *d)
{
	const json_t *c;
	size_t i;

	printf("protocol version %lld; commands:\n", integer(d, "protocol"));
	json_array_foreach(json_object_get(d, "commands"), i, c) printf("  %s\n", str(c, "usage"));
}

static void print_reload(const json_t *d)
{
	size_t i;
	json_t *v;

	printf("configuration reloaded\n");
	if (!json_array_size(json_object_get(d, "applied")) &&
	    !json_array_size(json_object_get(d, "restart")))
		printf("  nothing changed\n");
	json_array_foreach(json_object_get(d, "applied"), i, v)
	    printf("  applied: %s\n", json_string_value(v));
	json_array_foreach(json_object_get(d, "restart"), i, v)
	    printf("  NOT applied: %s\n", json_string_value(v));
}

static void print_restart(const json_t *d)
{
	printf("restarted: pid %lld took over from pid %lld\n", integer(d, "pid"),
	       integer(d, "old_pid"));
}

static void print_human(const char *cmd, const json_t *d)
{
	static const struct {
		const char *cmd;
		void (*fn)(const json_t *d);
	} printers[] = {
	    {"status", print_status},
	    {"show health", print_health},
	    {"show bgp", print_bgp},
	    {"show bfd", print_bfd},
	    {"show upstreams", print_upstreams},
	    {"show cache", print_cache},
	    {"cache flush", print_flush},
	    {"drain", print_drain},
	    {"undrain", print_drain},
	    {"restart", print_restart},
	    {"help", print_help},
	    {"reload", print_reload},
	};
	for (size_t i = 0; i < sizeof(printers) / sizeof(printers[0]); i++)
		if (!strcmp(printers[i].cmd, cmd)) {
			printers[i].fn(d);
			return;
		}
	char *s = json_dumps(d, JSON_INDENT(2));
	printf("%s\n", s ? s : "{}");
	free(s);
}

/* ---------------------------------------------------------------- main */

/* argv words -> command name and arguments, by the longest known name. */
static int split_command(int argc, char **argv, char *cmd, size_t cmdlen, const char ***args,
                         unsigned *n_args)
{
	size_t best = 0, words = 0;
	unsigned max = CTL_PROTO_MAX_ARGS;

	for (size_t i = 0; i < N_KNOWN; i++) {
		char buf[CTL_PROTO_MAX_CMD + 1] = "";
		size_t w = 0, off = 0;
		for (int k = 0; k < argc && w < 3; k++) {
			off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s", k ? " " : "",
			                        argv[k]);
			w++;
			if (!strcmp(buf, known[i].cmd) && strlen(buf) > best) {
				best = strlen(buf);
				words = w;
				max = known[i].max_args;
			}
		}
	}
	if (!words) {
		/* Not known here: pass the words on, the daemon may know it. */
		words = (size_t)argc;
		max = 0;
	}
	size_t off = 0;
	cmd[0] = '\0';
	for (size_t k = 0; k < words; k++)
		off += (size_t)snprintf(cmd + off, cmdlen - off, "%s%s", k ? " " : "", argv[k]);
	if ((size_t)argc - words > max) {
		fprintf(stderr, "anycachectl: %s takes %s argument%s\n", cmd,
		        max ? "at most one" : "no", max == 1 ? "" : "s");
		return -1;
	}
	*args = (const char **)(argv + words);
	*n_args = (unsigned)((size_t)argc - words);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 't'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static struct conf conf;
	static struct conf_diag diag;
	static struct conf_env env;
	const char *sock = NULL, *cfile = NULL;
	unsigned timeout_s = 10;
	char cmd[256], msg[CTL_PROTO_MAX_MESSAGE];
	const char **args;
	unsigned n_args;
	enum ctl_err code;
	json_t *data = NULL;
	size_t len;
	char *req, *ans;
	int c, fd, r;

	while ((c = getopt_long(argc, argv, "+s:c:t:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			cfile = optarg;
			break;
		case 'j':
			json_out = true;
			break;
		case 't': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v == 0 || v > 3600) {
				fprintf(stderr, "anycachectl: -t wants 1..3600 seconds\n");
				return EXIT_USAGE;
			}
			timeout_s = (unsigned)v;
			break;
		}
		case 'V':
			printf("anycachectl %s (control protocol %d)\n", ANYCACHE_VERSION,
			       CTL_PROTO_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'anycachectl --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (sock && cfile) {
		fprintf(stderr, "anycachectl: give -s or -c, not both\n");
		return EXIT_USAGE;
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (split_command(argc - optind, argv + optind, cmd, sizeof(cmd), &args, &n_args))
		return EXIT_USAGE;
	if (cfile) {
		/* Only control.socket is needed: no resolv.conf for default upstreams. */
		conf_env_read(&env, NULL);
		if (conf_load_file(cfile, &env, &conf, &diag)) {
			conf_diag_print(stderr, &diag);
			return EXIT_USAGE;
		}
		sock = conf.control.socket;
	}
	if (!sock)
		sock = CONF_DEFAULT_SOCKET;
	req = ctl_proto_build_request(cmd, args, n_args, &len);
	if (!req) {
		fprintf(stderr,
		        "anycachectl: '%s' cannot be sent: commands are lowercase words, arguments "
		        "at most %u bytes of UTF-8\n",
		        cmd, CTL_PROTO_MAX_ARG);
		return EXIT_USAGE;
	}
	fd = connect_socket(sock, timeout_s);
	if (fd < 0) {
		free(req);
		return EXIT_UNREACHABLE;
	}
	r = send_all(fd, req, len);
	free(req);
	if (r && (errno == EPIPE || errno == ECONNRESET)) {
		fprintf(stderr, "anycachectl: anycached closed the connection without an answer "
		                "(too many clients at once, or it is stopping)\n");
		close(fd);
		return EXIT_UNREACHABLE;
	}
	if (r) {
		fprintf(stderr, "anycachectl: cannot send to %s: %s\n", sock, strerror(errno));
		close(fd);
		return EXIT_UNREACHABLE;
	}
	ans = read_line(fd, &len);
	close(fd);
	if (!ans)
		return EXIT_UNREACHABLE;
	r = ctl_proto_parse_answer(ans, len, &data, &code, msg, sizeof(msg));
	free(ans);
	if (r < 0) {
		fprintf(stderr, "anycachectl: a garbled answer from %s: %s\n", sock, msg);
		return EXIT_UNREACHABLE;
	}
	if (r == 1) {
		if (json_out) {
			json_t *e = json_pack("{s:{s:s, s:s}}", "error", "code", ctl_err_name(code),
			                      "message", msg);
			char *s = e ? json_dumps(e, JSON_INDENT(2)) : NULL;
			if (s)
				printf("%s\n", s);
			free(s);
			json_decref(e);
		}
		fprintf(stderr, "anycachectl: %s: %s (%s)\n", cmd, msg, ctl_err_name(code));
		return code == CTL_E_VERSION ? EXIT_UNREACHABLE : EXIT_REFUSED;
	}
	if (json_out) {
		char *s = json_dumps(data, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
		if (s)
			printf("%s\n", s);
		free(s);
	} else {
		print_human(cmd, data);
	}
	const json_t *w = json_object_get(data, "warning");
	if (json_is_string(w))
		fprintf(stderr, "anycachectl: warning: %s\n", json_string_value(w));
	else if (json_is_object(w))
		fprintf(stderr, "anycachectl: warning: %s (%s)\n", str(w, "text"), str(w, "error"));
	json_decref(data);
	return fflush(stdout) ? EXIT_UNREACHABLE : 0;
}
