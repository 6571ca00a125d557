/*
 * harness.h: what integration tests need to run the real daemon against real
 * peers: start processes, wait for them, query them with real clients, and
 * stop everything they started, by PID.
 *
 * Rules every test follows (the project's network rule): traffic only to
 * 127.0.0.0/8 or ::1; every wait is bounded in time; every process started
 * is stopped by PID in the test's teardown, and dies with the test process
 * anyway (PR_SET_PDEATHSIG), so a crashed test leaves nothing behind.
 * Each test uses its own loopback address (127.53.N.x) so tests run in
 * parallel without port clashes.
 */
#ifndef ANYCACHE_TESTS_HARNESS_H
#define ANYCACHE_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in milliseconds, and a sleep of ms milliseconds. */
uint64_t now_ms(void);
void sleep_ms(int ms);

struct proc {
	pid_t pid;
	char name[32];
	char log[512]; /* stdout+stderr of the process */
};

struct tmpdir {
	char path[256];
};

/* mkdtemp under /tmp; tmpdir_remove deletes the tree (rm -rf, bounded). */
int tmpdir_make(struct tmpdir *t, const char *tag);
void tmpdir_remove(struct tmpdir *t);

/* Writes text to dir/name; returns the full path in out (may be NULL). */
int write_file(const char *dir, const char *name, const char *text, char *out, size_t outlen);

/* Starts argv[0] (searched in PATH) with output to log; the child dies with us. */
int proc_start(struct proc *p, const char *name, char *const argv[], const char *log);
bool proc_alive(struct proc *p);
/* Sends sig, waits up to timeout_ms, then SIGKILL; returns the exit status or -1. */
int proc_stop(struct proc *p, int sig, int timeout_ms);
/* SIGSTOP, then waits (up to timeout_ms) until the kernel reports the child
 * stopped: kill() returns before a process running on another CPU has
 * stopped, and a query sent in between would still be answered. 0 or -errno. */
int proc_freeze(struct proc *p, int timeout_ms);
/* Waits for the process to exit by itself; returns its wait status or -ETIMEDOUT. */
int proc_wait(struct proc *p, int timeout_ms);
/* Open descriptors of pid (/proc/PID/fd), or -errno when it is gone. */
int proc_fd_count(pid_t pid);
/* Resident set of pid in kB (VmRSS), or -errno when it is gone. */
long proc_rss_kb(pid_t pid);
/* Prints the tail of the process log to stderr (for failed tests). */
void proc_dump_log(const struct proc *p);

/*
 * Runs a command to completion, capturing stdout (and stderr when merge) into
 * out (NUL-terminated, truncated to cap). Returns the exit code, or -ETIMEDOUT
 * after timeout_ms (the command is killed).
 */
int run_capture(char *const argv[], bool merge, char *out, size_t cap, int timeout_ms);
/* `birdc -s SOCK CMD...` (cmd split at spaces, at most 12 words) into out, 5 s bound. */
int birdc_run(const char *sock, const char *cmd, char *out, size_t cap);
/* How many times `what` occurs in the first 64 KiB of the file at path; -1 unreadable. */
int count_in_file(const char *path, const char *what);
/* The line of text that starts at the first `key` in it, into line ("" when absent). */
void text_line(const char *text, const char *key, char *line, size_t cap);
/*
 * Whether two texts birdc printed carry the same instants: equal, except that
 * each "HH:MM:SS.mmm" may differ by up to 5 ms. BIRD keeps such times on its
 * monotonic clock and converts them to wall time when it prints them, so one
 * instant can read 1 ms apart in two prints; a session that went down and
 * came back moved its time by far more.
 */
bool bird_same_time(const char *a, const char *b);

/* Polls until a DNS server on addr:port answers a UDP query for qname (any RCODE). */
int wait_dns_udp(const char *addr, uint16_t port, const char *qname, int timeout_ms);

/*
 * Sends one raw UDP datagram to addr:port and waits for one answer
 * (returns its length, or -ETIMEDOUT / -errno).
 */
int dns_udp_exchange(const char *addr, uint16_t port, const void *q, size_t qlen, void *ans,
                     size_t anscap, int timeout_ms);

/* dns_udp_exchange from a chosen local source address (e.g. one outside dns.allow). */
int dns_udp_exchange_from(const char *src, const char *addr, uint16_t port, const void *q,
                          size_t qlen, void *ans, size_t anscap, int timeout_ms);

/*
 * DNS over TCP (RFC 1035 §4.2.2, RFC 7766): a blocking connected socket
 * (fd, or -errno); raw bytes out (all of them); one length-prefixed message
 * in (its length, 0 when the server closed, -ETIMEDOUT). dns_tcp_exchange
 * does connect + framed query + one answer + close.
 */
int dns_tcp_connect(const char *addr, uint16_t port, int timeout_ms);
int dns_tcp_write(int fd, const void *buf, size_t len);
int dns_tcp_read_msg(int fd, void *buf, size_t cap, int timeout_ms);
/* Waits until the server closes fd (EOF or reset); 0, or -ETIMEDOUT. */
int dns_tcp_wait_closed(int fd, int timeout_ms);
int dns_tcp_exchange(const char *addr, uint16_t port, const void *q, size_t qlen, void *ans,
                     size_t anscap, int timeout_ms);

/* Builds a simple query (RD set, optional EDNS 1232); returns its length. */
int dns_make_query(uint8_t *buf, size_t cap, uint16_t id, const char *qname, uint16_t qtype,
                   bool edns);

/* knotd as an authoritative upstream for the zones given as (name, text) pairs. */
struct knotd {
	struct proc proc;
	struct tmpdir dir;
	char addr[64];
	uint16_t port;
};
int knotd_start(struct knotd *k, const char *addr, uint16_t port, const char *const *zones,
                unsigned nzones);
void knotd_stop(struct knotd *k);
/* Stops the knotd process only (its directory stays), and starts it again. */
void knotd_pause(struct knotd *k);
int knotd_resume(struct knotd *k);

/* The zone most DNS tests use: example.test with A/AAAA/MX/CNAME/TXT/wildcard data,
 * and big.example.test: 16 TXT records of 200 octets (an RRset over 3000 bytes). */
extern const char harness_example_zone[];

/*
 * The configuration text a test's daemon really gets: yaml plus, unless it
 * has a control section, `control: {socket: DIR/control.sock, state:
 * DIR/drain.json}`. The default socket (/run/anycache/control.sock) is one
 * per machine: two daemons started side by side would refuse each other.
 * malloc'd (NULL: ENOMEM).
 */
char *harness_private_control(const char *dir, const char *yaml);

/* anycached built in this tree (ANYCACHED env var, set by meson). */
struct anycached {
	struct proc proc;
	struct tmpdir dir;
	char conf[512];
};
/* Writes conf_yaml to a file and starts the daemon; waits until addr:port answers.
 * With harness_verbose set it runs with -v (per-worker exit lines, "dns-N: ..."). */
extern bool harness_verbose;
int anycached_start(struct anycached *d, const char *conf_yaml, const char *addr, uint16_t port);
/* Replaces d's configuration file with conf_yaml (the same private control
 * section added as at start), by rename: a reload never reads half of it.
 * 0 or -errno. */
int anycached_rewrite_conf(struct anycached *d, const char *conf_yaml);
/* SIGTERM, bounded wait; returns the exit status (0 = clean shutdown) or -1. */
int anycached_stop(struct anycached *d);

/*
 * Whether a process log holds a sanitizer report (ASan, LSan, UBSan, TSan):
 * 1 with the first report line in line (may be NULL), 0 if clean, -errno.
 * Under a sanitizer build the daemon inherits ASAN_OPTIONS/UBSAN_OPTIONS.
 */
int log_sanitizer_report(const char *path, char *line, size_t linecap);
/*
 * anycached_stop, strict: SIGTERM, then it must exit with status 0 within
 * timeout_ms, leave no sanitizer report in its log and have drained its
 * rings (no "still in flight" warning). 0, or -1 with the
 * reason in why (the log is printed to stderr then). Removes its directory.
 */
int anycached_stop_clean(struct anycached *d, int timeout_ms, char *why, size_t whylen);

/*
 * Skips the whole test binary in a way meson counts as SKIP (exit 77).
 * cr_skip_test() is reported as a pass by Criterion, so a run without the
 * peer would read "passed". Call it from a ReportHook(PRE_ALL).
 */
void harness_skip_all(const char *why) __attribute__((noreturn));

#endif
