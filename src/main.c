/*
 * main.c: the composition root of anycached.
 *
 * It alone knows DNS, BGP and health together: it reads the arguments and
 * the configuration, checks the kernel and the listen ports, and builds the
 * threads, each with its own io_uring loop:
 *   dns-0 .. dns-N-1  one DNS service each (its own sockets via SO_REUSEPORT)
 *   ctl               the control plane: BGP (and BFD), the health monitor
 *                     (dns_health.h), the control socket and the metrics
 *                     endpoint (ops.h); it never waits behind a DNS flood
 *   main              signals, taken synchronously with sigwait, so no
 *                     handler runs inside a worker's hot path
 * Threads talk only through loop_post(). Everything below is wired here and
 * nowhere else.
 *
 * A planned stop (SIGTERM/SIGINT) drains (RFC 8326): while a BGP session is
 * Established every VIP goes DRAINING (GRACEFUL_SHUTDOWN, LOCAL_PREF 0) and
 * keeps answering for health.drain, then the routes are withdrawn and every
 * session closed with Cease; only then do the DNS loops stop. A second
 * signal stops at once.
 *
 * `anycachectl restart` (restart.h) starts a successor that takes over every
 * socket and BGP session; once it serves, this process stops reading,
 * answers what it holds and exits without a word to the BGP peers. A
 * successor holds the routes it took over as they are until its own health
 * monitor has judged every VIP (hold_routes below), bounded by
 * HOLD_ROUTES_MS: starting from "every VIP DOWN" would withdraw them.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "anycache_version.h"
#include "bgp/bgp_speaker.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/conf_diff.h"
#include "core/ctl_server.h"
#include "core/handover.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/notify.h"
#include "core/privs.h"
#include "core/timer.h"
#include "dns/dns_cache.h"
#include "dns/dns_health.h"
#include "dns/dns_server.h"
#include "dns/dns_upstream.h"
#include "ops.h"
#include "restart.h"

#define RESOLV_CONF "/etc/resolv.conf"

struct worker {
	unsigned index;
	pthread_t thread;
	bool started;
	struct loop *loop;
	struct dns_server *dns;
	int result;
};

/* The control thread's state; after it starts, touched only on its loop. */
struct ctl {
	pthread_t thread;
	bool started;
	struct loop *loop;
	struct bgp_speaker *bgp;
	struct dns_health *health;
	struct ops *ops;
	struct timer drain_timer;
	struct timer watchdog_timer;
	uint64_t watchdog_ms; /* half of systemd's WatchdogSec; 0 = none */
	bool stopping;
	struct restart *restart;
	bool hold_routes; /* a successor: keep the imported routes until health judged */
	struct timer hold_timer;
	bool ready;       /* READY=1 sent */
	bool stop_begun;  /* STOPPING=1 sent: no READY=1 may follow, no reload */
	atomic_bool done; /* the stop sequence finished: main may stop the loops */
};

/* The running configuration. After the threads start it is written only by
 * a reload, on the ctl thread; the workers hold their own copies. */
static struct conf conf;         /* large (fixed arrays): static, not on the stack */
static const char *conf_path;    /* NULL: the embedded default */
static int64_t conf_loaded_unix; /* when it was read, for anycachectl status */
/* The answer cache every worker reads and fills (dns_server.h). */
static struct dns_shared *shared;
static atomic_int exit_code;
static struct ctl ctl;
/* health.drain_ms as it runs, for the main thread's stop bound (a reload writes conf on ctl). */
static _Atomic uint64_t drain_ms_now;
static struct worker *workers_of; /* the worker array, for reloads */
static unsigned n_workers_of;
/* In-place restart (restart.h): our binary and arguments, the channel from a
 * predecessor (-1: a plain start), and whether a successor took over. */
static char exe_path[PATH_MAX];
static char **saved_argv;
static int handover_sock = -1;
static atomic_bool handed_over;
static atomic_int successor_pid;

/*
 * Capabilities kept after `user:` takes over (core/privs.h), and why:
 * CAP_NET_BIND_SERVICE  DNS listeners (port 53) and BGP's port 179 bound by a
 *                       reload, after the start-up binds made as root.
 * Not CAP_NET_RAW and not CAP_NET_ADMIN: our BFD is plain UDP (RFC 5881 §4:
 * port 3784 and sources 49152-65535, all unprivileged; TTL/hop limit 255
 * and IP_TOS/IPV6_TCLASS CS6 need no capability), TCP MD5 (RFC 2385,
 * TCP_MD5SIG) checks no capability in the kernel, the address watch is an
 * unprivileged rtnetlink socket, and nothing sets SO_MARK, SO_RCVBUFFORCE,
 * IP_TRANSPARENT or SO_BINDTODEVICE. Checked by running those calls as
 * nobody with no capabilities (Linux 6.1's code paths are the same).
 */
static const int kept_caps[] = {CAP_NET_BIND_SERVICE};

#define BGP_SHUTDOWN_TEXT "anycached shutting down" /* RFC 9003 shutdown communication */

/*
 * The cache on disk (dns.cache.persist, dns_cache.h): loaded before any
 * listener opens or route goes out, saved after the last worker stopped and,
 * with persist-interval, by the "persist" thread: a cache reader that never
 * blocks a DNS worker and keeps seconds of file I/O off the ctl loop (BFD).
 */
static struct {
	pthread_t thread;
	bool started;
	bool stop;
	/* The thread's own copy of what it reads (a reload rewrites conf from
	 * the ctl thread while it runs); dns.cache.persist needs a restart. */
	char path[sizeof(((struct conf_cache *)0)->persist)];
	uint64_t interval_ms;
	bool served; /* the workers ran: the cache is worth a save at exit */
	pthread_mutex_t lock;
	pthread_cond_t cond;
} persist = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: anycached [-c FILE] [--check] [-v] [--version] [--help]\n"
	        "\n"
	        "  -c, --config FILE  load the YAML configuration FILE; without it the embedded\n"
	        "                     default: listen on 127.0.0.1 and ::1 port 53, loopback\n"
	        "                     clients only, forward to the " RESOLV_CONF " nameservers,\n"
	        "                     no BGP\n"
	        "      --check        validate the configuration and print it with every default\n"
	        "                     filled in (exit 0), or print every error (an unknown\n"
	        "                     user: included) as\n"
	        "                     FILE:LINE:COLUMN: message (exit 1)\n"
	        "  -v, --verbose      debug logging\n"
	        "  -V, --version      print the version\n"
	        "  -h, --help         this text\n"
	        "\n"
	        "Signals: SIGTERM/SIGINT drain and stop (a second one stops at once); SIGHUP\n"
	        "re-reads the configuration file and applies what changed (as anycachectl\n"
	        "reload; a file with errors is refused and the running configuration stays).\n"
	        "Under systemd (NOTIFY_SOCKET) it reports READY=1 once a VIP answers, STOPPING=1\n"
	        "and STATUS= lines (anycached(8)).\n");
}

/*
 * The embedded default listens on 127.0.0.1 and ::1. A host (or container)
 * without IPv6 has no ::1: serve 127.0.0.1 alone and say so, rather than
 * refuse to start. A listen address written in a configuration file stays a
 * hard requirement.
 */
static void drop_missing_loopbacks(struct conf_dns *dns)
{
	struct netaddr keep[CONF_MAX_LISTEN];
	unsigned kept = 0;

	for (unsigned i = 0; i < dns->n_listen; i++) {
		struct netaddr a = dns->listen[i];
		struct sockaddr_storage ss;
		socklen_t sl;
		char name[NETADDR_STRLEN];
		int fd, err = 0;

		a.port = 0; /* probe the address only: the port check comes later */
		sl = netaddr_to_sockaddr(&a, &ss);
		fd = socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) < 0)
			err = errno;
		if (fd >= 0)
			close(fd);
		if (err == EAFNOSUPPORT || err == EADDRNOTAVAIL) {
			log_warn("main", "default listener %s skipped: %s",
			         netaddr_format(&dns->listen[i], true, name, sizeof(name)),
			         err == EAFNOSUPPORT ? "no IPv6 on this host"
			                             : "address not configured on this host");
			continue;
		}
		keep[kept++] = dns->listen[i];
	}
	if (kept == 0)
		return; /* nothing usable: the listen check reports the first one */
	memcpy(dns->listen, keep, kept * sizeof(keep[0]));
	dns->n_listen = kept;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];

	snprintf(name, sizeof(name), "dns-%u", w->index);
	pthread_setname_np(pthread_self(), name); /* top -H, perf, /proc/PID/task/N/comm */
	w->result = loop_run(w->loop);
	/* Same thread (the ring's single issuer): hand every socket back to us
	 * now, so a restarted daemon finds its ports free (loop.h). */
	if (loop_drain(w->loop, 1000))
		log_warn("main", "worker %u: requests still in flight after 1 s", w->index);
	if (w->result < 0) {
		/* A dead query loop must not keep anything announced: stop everything. */
		log_err("main", "worker %u: event loop failed: %s", w->index, strerror(-w->result));
		atomic_store(&exit_code, 1);
		kill(getpid(), SIGTERM);
	}
	return NULL;
}

/*
 * Soft RLIMIT_NOFILE up to the hard limit: the usual soft default (1024)
 * is less than the TCP connection caps of two workers alone
 * (DNS_TCP_MAX_CONNS each) plus the upstream sockets.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("main", "cannot raise the open file limit: %s", strerror(errno));
}

static void log_startup(const struct conf *c, const struct loop *l)
{
	char buf[NETADDR_STRLEN];
	char list[1024];
	size_t off = 0;

	for (unsigned i = 0; i < c->dns.n_listen && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? " " : "",
		                        netaddr_format(&c->dns.listen[i], true, buf, sizeof(buf)));
	log_info("main", "anycached %s: %u workers, listening on %s (io_uring setup flags %#x)",
	         ANYCACHE_VERSION, c->dns.threads, list, (unsigned)loop_setup_flags(l));
	off = 0;
	for (unsigned i = 0; i < c->dns.n_upstreams && off < sizeof(list); i++)
		off +=
		    (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? " " : "",
		                     netaddr_format(&c->dns.upstreams[i], true, buf, sizeof(buf)));
	log_info("main", "forwarding to %s; BGP %s", list, c->bgp.enabled ? "on" : "off");
}

/* ------------------------------------------------------------------ persist */

static void persist_save(const char *why)
{
	struct dns_cache *c = dns_shared_cache(shared);
	struct dns_cache_stats st;
	uint64_t t0 = clock_now_ms();

	dns_cache_stats(c, &st);
	int r = dns_cache_save(c, persist.path, clock_wall_ms(), t0);
	if (r)
		log_warn("main", "cache not saved to %s (%s): %s", persist.path, why, strerror(-r));
	else
		log_info("main", "cache saved to %s (%s): %zu entries in %llu ms", persist.path,
		         why, st.entries, (unsigned long long)(clock_now_ms() - t0));
}

/* Before the listeners: a file that fails its checks is logged and left alone. */
static void persist_load(void)
{
	uint64_t t0 = clock_now_ms();
	int r;

	/* Copied once, before any other thread runs (see persist). */
	memcpy(persist.path, conf.dns.cache.persist, sizeof(persist.path));
	persist.interval_ms = conf.dns.cache.persist_interval_ms;
	if (!persist.path[0])
		return;
	r = dns_cache_load(dns_shared_cache(shared), persist.path, clock_wall_ms(), t0);
	if (r == -ENOENT)
		log_info("main", "no saved cache at %s: starting cold", persist.path);
	else if (r < 0)
		log_warn("main", "saved cache %s ignored: %s", persist.path,
		         r == -EBADMSG           ? "damaged, truncated or not a cache file"
		         : r == -EPROTONOSUPPORT ? "written by a newer anycached"
		         : r == -ESTALE          ? "saved in the future (the clock went back)"
		                                 : strerror(-r));
	else
		log_info("main", "cache loaded from %s: %d entries in %llu ms", persist.path, r,
		         (unsigned long long)(clock_now_ms() - t0));
}

static void *persist_main(void *arg)
{
	struct timespec at;

	(void)arg;
	pthread_setname_np(pthread_self(), "persist");
	pthread_mutex_lock(&persist.lock);
	while (!persist.stop) {
		clock_gettime(CLOCK_MONOTONIC, &at);
		uint64_t ns = (uint64_t)at.tv_nsec + persist.interval_ms * 1000000u;
		at.tv_sec += (time_t)(ns / 1000000000u);
		at.tv_nsec = (long)(ns % 1000000000u);
		while (!persist.stop &&
		       pthread_cond_timedwait(&persist.cond, &persist.lock, &at) != ETIMEDOUT)
			;
		if (persist.stop)
			break;
		pthread_mutex_unlock(&persist.lock);
		persist_save("periodic");
		pthread_mutex_lock(&persist.lock);
	}
	pthread_mutex_unlock(&persist.lock);
	return NULL;
}

static void persist_start(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&persist.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (!persist.path[0] || !persist.interval_ms)
		return;
	int r = pthread_create(&persist.thread, NULL, persist_main, NULL);
	if (r)
		log_warn("main", "cannot start the persist thread (%s): cache saved on stop only",
		         strerror(r));
	persist.started = r == 0;
}

/* After the workers stopped: the last save sees everything they stored. */
static void persist_finish(void)
{
	if (persist.started) {
		pthread_mutex_lock(&persist.lock);
		persist.stop = true;
		pthread_cond_signal(&persist.cond);
		pthread_mutex_unlock(&persist.lock);
		pthread_join(persist.thread, NULL);
		persist.started = false;
	}
	if (persist.served && shared && persist.path[0])
		persist_save("stop");
}

/* ---------------------------------------------------------------- ctl thread */

static void *ctl_main(void *arg)
{
	int r;

	(void)arg;
	pthread_setname_np(pthread_self(), "ctl");
	r = loop_run(ctl.loop);
	ops_close(ctl.ops); /* no command or scrape may start once the loop stopped */
	if (loop_drain(ctl.loop, 1000))
		log_warn("main", "ctl: requests still in flight after 1 s");
	if (r < 0) {
		/* No control plane: nothing may stay announced on a stale view. */
		log_err("main", "ctl: event loop failed: %s", strerror(-r));
		atomic_store(&exit_code, 1);
		atomic_store(&ctl.done, true);
		kill(getpid(), SIGTERM);
	}
	return NULL;
}

/*
 * The service manager hears of it (core/notify.h): READY=1 once a VIP first
 * leaves DOWN, that is once every listener is bound and `rise` self-probes
 * answered (health.h: every VIP starts DOWN/starting); STATUS= on each
 * change after.
 */
static void notify_health(const struct health_snapshot *snap)
{
	unsigned up = 0, degraded = 0, draining = 0;

	for (unsigned i = 0; i < snap->n; i++) {
		up += snap->vip[i].state == HEALTH_UP;
		degraded += snap->vip[i].state == HEALTH_DEGRADED;
		draining += snap->vip[i].state == HEALTH_DRAINING;
	}
	char status[160];
	snprintf(status, sizeof(status), "serving %u of %u VIPs (%u up, %u degraded, %u draining)",
	         up + degraded + draining, snap->n, up, degraded, draining);
	if (ctl.stop_begun)
		return; /* STOPPING's STATUS stands */
	if (!ctl.ready && up + degraded + draining > 0) {
		ctl.ready = true;
		notify_ready(status);
		log_info("main", "ready: %s", status);
	} else if (ctl.ready) {
		notify_status("%s", status);
	}
}

/* Health changed: the announcement policy gets the new snapshot. */
static void on_health(void *arg, const struct health_snapshot *snap)
{
	(void)arg;
	notify_health(snap);
	if (ctl.hold_routes) {
		for (unsigned i = 0; i < snap->n; i++)
			if (snap->vip[i].reason & HEALTH_R_STARTING)
				return; /* not judged yet: the predecessor's routes stand */
		ctl.hold_routes = false;
		loop_timer_cancel(ctl.loop, &ctl.hold_timer);
		log_info("main", "every VIP judged after the restart: routes follow health again");
	}
	if (ctl.bgp && !ctl.stopping)
		bgp_speaker_set_health(ctl.bgp, snap);
}

/* A VIP that never rose: health decides anyway (it withdraws what is DOWN). */
static void hold_expired(struct timer *t, uint64_t now, void *arg)
{
	struct health_snapshot snap;

	(void)t;
	(void)now;
	(void)arg;
	if (!ctl.hold_routes)
		return;
	ctl.hold_routes = false;
	log_warn("main", "some VIP not judged UP since the restart: routes follow health now");
	dns_health_snapshot(ctl.health, &snap);
	if (ctl.bgp && !ctl.stopping)
		bgp_speaker_set_health(ctl.bgp, &snap);
}

/* ---------------------------------------------------------------- restart */

static void restart_done(void *arg, int err, pid_t pid, const char *why)
{
	struct ctl_call *c = arg;
	json_t *d = ctl_call_data(c);

	if (err) {
		ctl_call_fail(c, CTL_E_UNAVAILABLE, "restart failed: %s",
		              why ? why : strerror(-err));
		return;
	}
	json_object_set_new(d, "pid", json_integer(pid));
	json_object_set_new(d, "old_pid", json_integer(getpid()));
	ctl_call_done(c);
}

static void ctl_restart(void *arg, struct ctl_call *c)
{
	int r;

	(void)arg;
	if (!ctl.restart || ctl.stopping) {
		ctl_call_fail(c, CTL_E_UNAVAILABLE, "restart is not available now");
		return;
	}
	r = restart_start(ctl.restart, restart_done, c);
	if (r == -EBUSY)
		ctl_call_fail(c, CTL_E_BUSY, "a restart is already running");
	else if (r < 0)
		ctl_call_fail(c, CTL_E_UNAVAILABLE, "cannot start the successor %s: %s", exe_path,
		              strerror(-r));
}

/*
 * Control thread, before the successor starts: with dns.cache.persist, the
 * cache goes to the file the successor loads before it serves, so it
 * answers hits from its first query (what is cached between this save and
 * the handover, a few hundred milliseconds' worth, is missed once). The
 * save runs on the control loop: seconds for a cache of gigabytes (BFD and
 * BGP wait that long), milliseconds for the usual sizes.
 */
static void restart_save_cache(void *arg)
{
	(void)arg;
	if (persist.path[0])
		persist_save("restart");
}

/* Control thread: the successor serves and our queries are answered. */
static void retired(void *arg, pid_t successor)
{
	(void)arg;
	/* Under systemd the successor is the service from now on: said by the
	 * main process itself, before it exits, so the unit neither stops nor
	 * kills the cgroup when we go (core/notify.h). */
	notify_mainpid(successor);
	atomic_store(&successor_pid, (int)successor);
	atomic_store(&handed_over, true);
	kill(getpid(), SIGTERM);
}

/* WATCHDOG=1 from the control loop: it says that loop turns. A stalled DNS
 * worker is the health machine's business (it withdraws that VIP). */
static void watchdog_tick(struct timer *t, uint64_t now, void *arg)
{
	(void)now;
	(void)arg;
	notify_watchdog();
	loop_timer_arm_in(ctl.loop, t, ctl.watchdog_ms);
}

static void bgp_stopped(void *arg)
{
	(void)arg;
	atomic_store(&ctl.done, true);
}

/* End of the drain: withdraw everything, then Cease to every peer. */
static void withdraw_and_close(struct timer *t, uint64_t now, void *arg)
{
	struct health_snapshot down;

	(void)t;
	(void)now;
	(void)arg;
	if (!ctl.bgp) {
		atomic_store(&ctl.done, true);
		return;
	}
	/* Explicit withdrawals first, then Cease on the same stream: the
	 * router drops the routes even if it keeps a closed session's. */
	dns_health_snapshot(ctl.health, &down);
	for (unsigned i = 0; i < down.n; i++)
		down.vip[i].state = HEALTH_DOWN;
	bgp_speaker_set_health(ctl.bgp, &down);
	ctl.stopping = true;
	bgp_speaker_shutdown(ctl.bgp, BGP_SHUTDOWN_TEXT, bgp_stopped, NULL);
}

/* Posted by the main thread on SIGTERM/SIGINT. */
static void ctl_begin_stop(struct loop *l, void *arg)
{
	(void)arg;
	ops_stopping(ctl.ops);
	ctl.stop_begun = true;
	timer_init(&ctl.drain_timer, withdraw_and_close, NULL);
	if (ctl.bgp && conf.health.drain_ms && bgp_speaker_any_established(ctl.bgp)) {
		char status[96];
		snprintf(status, sizeof(status), "draining for %llu ms",
		         (unsigned long long)conf.health.drain_ms);
		notify_stopping(status);
		log_info("main", "draining for %llu ms (RFC 8326 graceful shutdown)",
		         (unsigned long long)conf.health.drain_ms);
		dns_health_drain(ctl.health, true);
		loop_timer_arm_in(l, &ctl.drain_timer, conf.health.drain_ms);
	} else {
		notify_stopping("stopping");
		loop_timer_arm_in(l, &ctl.drain_timer, 0);
	}
}

/* ---------------------------------------------------------------- reload */

/* One copy of the new configuration shared by every worker's reconf post. */
struct reload_job {
	atomic_uint refs;
	struct conf conf;
	struct dns_upstream_set *ups; /* dns.upstreams changed: the node's new table */
};

static void reload_job_put(struct reload_job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) == 1) {
		dns_upstream_set_free(j->ups);
		free(j);
	}
}

/* On a worker's thread: its listeners, allow list and identity follow. */
static void worker_reconf(struct loop *l, void *arg)
{
	struct reload_job *j = arg;
	unsigned i;

	for (i = 0; i < n_workers_of; i++)
		if (workers_of[i].loop == l)
			break;
	if (i < n_workers_of && workers_of[i].dns)
		dns_server_reconf(workers_of[i].dns, &j->conf, j->ups);
	reload_job_put(j);
}

static void reload_line(struct ops_reload_result *res, enum ops_reload_line kind, const char *text)
{
	if (res->n == OPS_RELOAD_LINES) {
		res->more++;
		return;
	}
	res->kind[res->n] = kind;
	snprintf(res->text[res->n], sizeof(res->text[0]), "%s", text);
	res->n++;
}

/*
 * What this build cannot change in a running process: it stays as it runs
 * (copied back from the old configuration, so status tells the truth and
 * the next reload compares against what runs) and is reported.
 */
static bool applies_live(enum conf_change_kind k)
{
	switch (k) {
	case CONF_CHANGE_LISTEN_ADD:
	case CONF_CHANGE_LISTEN_DEL:
	case CONF_CHANGE_ALLOW:
	case CONF_CHANGE_IDENTITY:
	case CONF_CHANGE_ROUTE_ADD:
	case CONF_CHANGE_ROUTE_DEL:
	case CONF_CHANGE_ROUTE_ATTR:
	case CONF_CHANGE_DEGRADED:
	case CONF_CHANGE_HEALTH:
	case CONF_CHANGE_CACHE:
	case CONF_CHANGE_MEMORY:
	case CONF_CHANGE_BFD:
	case CONF_CHANGE_UPSTREAMS:
	case CONF_CHANGE_NEIGHBOR_ADD:
	case CONF_CHANGE_NEIGHBOR_DEL:
		return true;
	default:
		return false;
	}
}

static void keep_running(struct conf *next, const struct conf *old, const struct conf_diff *d)
{
	for (unsigned i = 0; i < d->n; i++) {
		switch (d->c[i].kind) {
		case CONF_CHANGE_RESTART:
			if (!strcmp(d->c[i].key, "bgp")) {
				next->bgp = old->bgp;
			} else if (!strcmp(d->c[i].key, "bgp.asn")) {
				next->bgp.asn = old->bgp.asn;
			} else if (!strcmp(d->c[i].key, "bgp.router-id")) {
				next->bgp.router_id = old->bgp.router_id;
			} else if (!strcmp(d->c[i].key, "dns.threads")) {
				next->dns.threads = old->dns.threads;
			} else if (!strcmp(d->c[i].key, "dns.cache.persist")) {
				memcpy(next->dns.cache.persist, old->dns.cache.persist,
				       sizeof(old->dns.cache.persist));
				next->dns.cache.persist_interval_ms =
				    old->dns.cache.persist_interval_ms;
			} else if (!strcmp(d->c[i].key, "dnstap")) {
				next->dnstap = old->dnstap;
			} else if (!strcmp(d->c[i].key, "user")) {
				memcpy(next->user, old->user, sizeof(old->user));
			} else if (!strcmp(d->c[i].key, "dns.require-cookie")) {
				next->dns.require_cookie = old->dns.require_cookie;
			} else if (!strcmp(d->c[i].key, "dns.rate-limit")) {
				next->dns.rate_limit = old->dns.rate_limit;
			} else if (!strcmp(d->c[i].key, "dns.cookie-secret")) {
				memcpy(next->dns.cookie_secret, old->dns.cookie_secret,
				       sizeof(old->dns.cookie_secret));
				memcpy(next->dns.cookie_secret_old, old->dns.cookie_secret_old,
				       sizeof(old->dns.cookie_secret_old));
				next->dns.has_cookie_secret = old->dns.has_cookie_secret;
				next->dns.has_cookie_secret_old = old->dns.has_cookie_secret_old;
			} else if (!strcmp(d->c[i].key, "dns.tcp-connections")) {
				next->dns.tcp_connections = old->dns.tcp_connections;
			} else if (!strcmp(d->c[i].key, "dns.tcp-per-source")) {
				next->dns.tcp_per_source = old->dns.tcp_per_source;
			} else if (!strcmp(d->c[i].key, "dns.tcp-source-prefix")) {
				next->dns.tcp_prefix4 = old->dns.tcp_prefix4;
				next->dns.tcp_prefix6 = old->dns.tcp_prefix6;
			} else if (!strcmp(d->c[i].key, "dns.tls-listen")) {
				memcpy(next->dns.tls_listen, old->dns.tls_listen,
				       sizeof(old->dns.tls_listen));
				next->dns.n_tls_listen = old->dns.n_tls_listen;
			} else if (!strcmp(d->c[i].key, "dns.tls-certificate")) {
				memcpy(next->dns.tls_certificate, old->dns.tls_certificate,
				       sizeof(old->dns.tls_certificate));
				memcpy(next->dns.tls_key, old->dns.tls_key,
				       sizeof(old->dns.tls_key));
			} else if (!strncmp(d->c[i].key, "control.", 8)) {
				next->control = old->control;
			}
			break;
		default:
			break;
		}
	}
}

/* The loader's own check (conf_section.c), for upstreams it did not see. */
static bool listen_is_upstream(const struct netaddr *l, const struct netaddr *u)
{
	static const uint8_t zero[16];

	if (netaddr_equal(l, u))
		return true;
	return l->family == u->family && l->port == u->port &&
	       memcmp(l->addr, zero, sizeof(zero)) == 0 && netaddr_is_loopback(u);
}

/*
 * The reload, on the ctl thread (SIGHUP or anycachectl reload): read and
 * check the file (nothing changes when it is refused), then apply the
 * difference: new listeners are checked bindable first (else the whole
 * reload is refused), each worker opens/closes its listeners and takes the
 * allow list on its own thread (loop_post), BGP re-runs the policy with the
 * new routes (only changed routes are sent; sessions untouched), neighbors
 * added/removed/changed get new sessions or a Cease (bgp_speaker.h), health
 * follows the VIPs and timers, and the drains are re-applied by address.
 */
static int reload_apply(void *arg, struct ops_reload_result *res)
{
	static struct conf_env env;
	static struct conf_diag diag;
	static struct conf_diff d;
	struct reload_job *job;
	char line[OPS_RELOAD_TEXT], why[160];
	bool workers = false, upstreams = false, routes = false, health = false, cache = false,
	     bfd = false;
	bool neighbors = false, memory = false;
	int r;

	(void)arg;
	memset(res, 0, sizeof(*res));
	if (!conf_path) {
		reload_line(res, OPS_RELOAD_ERROR,
		            "started without -c: the embedded default has no file to re-read");
		return -ENOENT;
	}
	job = calloc(1, sizeof(*job));
	if (!job) {
		reload_line(res, OPS_RELOAD_ERROR, "out of memory");
		return -ENOMEM;
	}
	conf_env_read(&env, RESOLV_CONF);
	r = conf_load_file(conf_path, &env, &job->conf, &diag);
	if (r) {
		log_err("main", "reload: %s refused (%u error%s), the running configuration stays",
		        conf_path, diag.count, diag.count == 1 ? "" : "s");
		for (unsigned i = 0; i < diag.count; i++) {
			log_err("main", "%s", diag.msgs[i].text);
			reload_line(res, OPS_RELOAD_ERROR, diag.msgs[i].text);
		}
		res->more += diag.overflow;
		free(job);
		return r;
	}
	conf_diff(&conf, &job->conf, &d);

	/* New listeners must be bindable, as at start (a second daemon on the port). */
	struct conf_dns added = {0};
	for (unsigned i = 0; i < d.n; i++)
		if (d.c[i].kind == CONF_CHANGE_LISTEN_ADD)
			added.listen[added.n_listen++] = job->conf.dns.listen[d.c[i].index];
	if (added.n_listen && dns_server_check_listen(&added, why, sizeof(why))) {
		snprintf(line, sizeof(line), "%s: cannot listen on %s", conf_path, why);
		log_err("main", "reload: %s; the running configuration stays", line);
		reload_line(res, OPS_RELOAD_ERROR, line);
		free(job);
		return -EADDRINUSE;
	}

	keep_running(&job->conf, &conf, &d);
	/* The loader checked this against the file's upstreams; these are the ones that will run.
	 */
	for (unsigned i = 0; i < added.n_listen; i++)
		for (unsigned k = 0; k < job->conf.dns.n_upstreams; k++)
			if (listen_is_upstream(&added.listen[i], &job->conf.dns.upstreams[k])) {
				char a[NETADDR_STRLEN];
				snprintf(
				    line, sizeof(line),
				    "%s: dns.listen %s would answer the running upstream %s "
				    "(queries would loop; dns.upstreams changes need a restart)",
				    conf_path, netaddr_format(&added.listen[i], true, a, sizeof(a)),
				    netaddr_format(&job->conf.dns.upstreams[k], true, why,
				                   sizeof(why)));
				log_err("main", "reload: %s; the running configuration stays",
				        line);
				reload_line(res, OPS_RELOAD_ERROR, line);
				free(job);
				return -ELOOP;
			}
	for (unsigned i = 0; i < d.n; i++) {
		const struct conf_change *c = &d.c[i];
		bool live = applies_live(c->kind);
		conf_change_format(c, &conf, &job->conf, line, sizeof(line));
		if (!live && c->kind != CONF_CHANGE_RESTART) {
			size_t l = strlen(line);
			snprintf(line + l, sizeof(line) - l, ", needs a restart");
		}
		log_msg(live ? LOG_LVL_INFO : LOG_LVL_WARN, "main", "reload: %s", line);
		reload_line(res, live ? OPS_RELOAD_APPLIED : OPS_RELOAD_RESTART, line);
		switch (c->kind) {
		case CONF_CHANGE_LISTEN_ADD:
		case CONF_CHANGE_LISTEN_DEL:
			workers = health = true;
			break;
		case CONF_CHANGE_ALLOW:
		case CONF_CHANGE_IDENTITY:
			workers = true;
			break;
		case CONF_CHANGE_UPSTREAMS:
			workers = upstreams = true;
			break;
		case CONF_CHANGE_ROUTE_ADD:
		case CONF_CHANGE_ROUTE_DEL:
		case CONF_CHANGE_ROUTE_ATTR:
		case CONF_CHANGE_DEGRADED:
			routes = true;
			break;
		case CONF_CHANGE_HEALTH:
			health = true;
			break;
		case CONF_CHANGE_BFD:
			bfd = true;
			break;
		case CONF_CHANGE_NEIGHBOR_ADD:
		case CONF_CHANGE_NEIGHBOR_DEL:
			neighbors = true;
			break;
		case CONF_CHANGE_CACHE:
			cache = workers = true; /* workers: serve-stale's client timer */
			break;
		case CONF_CHANGE_MEMORY:
			memory = true;
			break;
		default:
			break;
		}
	}

	struct conf_cache old_cache = conf.dns.cache;
	/* The neighbors first, against the old set (bgp_speaker keeps its own
	 * copy): when the speaker refuses, the running set stays in conf too, so
	 * the next reload and a restart's handover (by index) see what runs. */
	if (neighbors && ctl.bgp && (r = bgp_speaker_set_neighbors(ctl.bgp, &job->conf.bgp)) < 0) {
		snprintf(line, sizeof(line), "bgp.neighbors: not changed (%s), needs a restart",
		         r == -EBUSY ? "a restart or stop is under way" : strerror(-r));
		log_err("main", "reload: %s", line);
		reload_line(res, OPS_RELOAD_RESTART, line);
		memcpy(job->conf.bgp.neighbors, conf.bgp.neighbors, sizeof(conf.bgp.neighbors));
		job->conf.bgp.n_neighbors = conf.bgp.n_neighbors;
	}
	conf = job->conf; /* what runs from now on */
	atomic_store(&drain_ms_now, conf.health.drain_ms);
	conf_loaded_unix = (int64_t)time(NULL);
	ops_conf_loaded(ctl.ops, conf_loaded_unix);
	if (cache && dns_shared_reconf(shared, &conf)) {
		log_err("main", "reload: dns.cache.size too small for the cache's table: the cache "
		                "keeps its limits (a restart can make a smaller table)");
		conf.dns.cache = old_cache;
		job->conf.dns.cache = old_cache;
	}
	if (memory)
		dns_shared_set_client_memory(shared, &conf);
	if (routes && ctl.bgp)
		bgp_speaker_set_routes(ctl.bgp, &conf.bgp);
	if (bfd && ctl.bgp)
		bgp_speaker_set_bfd(ctl.bgp, &conf.bfd);
	if (health)
		dns_health_reconf(ctl.health, &conf);
	ops_reapply_drains(ctl.ops);
	/* One upstream table for the node, handed to every worker (dns_upstream.h). */
	if (upstreams && (r = dns_upstreams_new(&job->conf, &job->ups)) < 0)
		log_err("main",
		        "reload: dns.upstreams: no table for them (%s): the workers keep "
		        "the running ones",
		        strerror(-r));
	else if (upstreams)
		dns_shared_set_upstreams(shared, job->ups);
	if (workers) {
		atomic_store(&job->refs, n_workers_of + 1);
		for (unsigned i = 0; i < n_workers_of; i++) {
			r = loop_post(workers_of[i].loop, worker_reconf, job);
			if (r < 0) {
				log_err("main", "reload: worker %u cannot take it: %s", i,
				        strerror(-r));
				reload_job_put(job);
			}
		}
		reload_job_put(job);
	} else {
		free(job);
	}
	unsigned waiting = 0;
	for (unsigned i = 0; i < res->n; i++)
		waiting += res->kind[i] == OPS_RELOAD_RESTART;
	log_info("main", "reload: %s loaded (%u change%s, %u waiting for a restart)", conf_path,
	         d.n, d.n == 1 ? "" : "s", waiting);
	return 0;
}

/* Posted by the main thread on SIGHUP. */
static void ctl_reload_signal(struct loop *l, void *arg)
{
	struct ops_reload_result *res = calloc(1, sizeof(*res));

	(void)l;
	(void)arg;
	if (!res) {
		log_err("main", "SIGHUP: out of memory, configuration unchanged");
		return;
	}
	if (ctl.stop_begun)
		log_warn("main", "SIGHUP: stopping, configuration unchanged");
	else
		reload_apply(NULL, res); /* it logs every line itself */
	free(res);
}

static int ctl_setup(struct worker *w, unsigned n, char *why, size_t whylen)
{
	struct dns_health_worker hw[CONF_MAX_THREADS];
	int r;

	r = loop_new(NULL, &ctl.loop);
	if (r) {
		snprintf(why, whylen, "ctl: cannot create io_uring: %s", strerror(-r));
		return r;
	}
	if (conf.bgp.enabled) {
		r = bgp_speaker_new(ctl.loop, &conf.bgp, &conf.bfd, why, whylen, &ctl.bgp);
		if (r)
			return r;
	}
	for (unsigned i = 0; i < n; i++) {
		hw[i].loop = w[i].loop;
		hw[i].dns = w[i].dns;
	}
	r = dns_health_new(ctl.loop, &conf, hw, n, on_health, NULL, &ctl.health);
	if (r) {
		snprintf(why, whylen, "health monitor: %s", strerror(-r));
		return r;
	}
	struct ops_worker ow[CONF_MAX_THREADS];
	for (unsigned i = 0; i < n; i++) {
		ow[i].loop = w[i].loop;
		ow[i].dns = w[i].dns;
	}
	struct ops_conf oc = {
	    .conf = &conf,
	    .conf_path = conf_path,
	    .conf_loaded_unix = conf_loaded_unix,
	    .ctl = ctl.loop,
	    .workers = ow,
	    .n_workers = n,
	    .bgp = ctl.bgp,
	    .health = ctl.health,
	    .cache = dns_shared_cache(shared),
	    .shared = shared,
	    .reload = reload_apply,
	    .restart = exe_path[0] ? ctl_restart : NULL,
	};
	/* The control socket and drains left in place, before any route goes out. */
	r = ops_new(&oc, why, whylen, &ctl.ops);
	if (r)
		return r;
	static struct loop *wl[CONF_MAX_THREADS];
	static struct dns_server *wd[CONF_MAX_THREADS];
	for (unsigned i = 0; i < n; i++) {
		wl[i] = w[i].loop;
		wd[i] = w[i].dns;
	}
	struct restart_conf rc = {.ctl = ctl.loop,
	                          .bgp = ctl.bgp,
	                          .conf = &conf,
	                          .worker_loops = wl,
	                          .worker_dns = wd,
	                          .n_workers = n,
	                          .exe = exe_path,
	                          .argv = saved_argv,
	                          .retired = retired,
	                          .before_spawn = restart_save_cache};
	r = restart_new(&rc, &ctl.restart);
	if (r) {
		snprintf(why, whylen, "restart: %s", strerror(-r));
		return r;
	}
	timer_init(&ctl.hold_timer, hold_expired, NULL);
	ctl.watchdog_ms = notify_watchdog_ms() / 2;
	if (ctl.watchdog_ms) {
		timer_init(&ctl.watchdog_timer, watchdog_tick, NULL);
		loop_timer_arm_in(ctl.loop, &ctl.watchdog_timer, ctl.watchdog_ms);
	}
	/* Every VIP starts DOWN: announced only after `rise` good probes. */
	if (ctl.bgp && !ctl.hold_routes) {
		struct health_snapshot snap;
		dns_health_snapshot(ctl.health, &snap);
		bgp_speaker_set_health(ctl.bgp, &snap);
	}
	return 0;
}

/*
 * Main thread: run the stop sequence on the control loop and wait for it,
 * bounded; a second SIGTERM/SIGINT cuts the drain short.
 */
static void ctl_stop(const sigset_t *sigs)
{
	uint64_t bound = atomic_load(&drain_ms_now) + BGP_SPEAKER_SHUTDOWN_MS + 1000;
	struct timespec step = {.tv_sec = 0, .tv_nsec = 20 * 1000000};

	if (!ctl.started || loop_post(ctl.loop, ctl_begin_stop, NULL) < 0)
		return;
	for (uint64_t waited = 0; waited < bound && !atomic_load(&ctl.done); waited += 20) {
		int sig = sigtimedwait(sigs, NULL, &step);
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("main", "second signal: stopping now");
			return;
		}
	}
	if (!atomic_load(&ctl.done))
		log_warn("main", "stop sequence did not finish in time");
}

/*
 * The exit summary an operator checks after a stop: one line for the node
 * (what a user sees is per node), then one per worker at debug level for
 * whoever chases an imbalance between workers.
 */
static void sum_stats(struct dns_server_stats *t, struct dns_forward_stats *u,
                      const struct dns_server_stats *st, const struct dns_forward_stats *up)
{
	t->udp_rx += st->udp_rx;
	t->tcp_rx += st->tcp_rx;
	for (unsigned k = 0; k < 16; k++)
		t->rcode[k] += st->rcode[k];
	t->cache_hits += st->cache_hits;
	t->cache_misses += st->cache_misses;
	t->stale_answers += st->stale_answers;
	t->upstream_fail += st->upstream_fail;
	t->dropped += st->dropped;
	t->tx_fail += st->tx_fail;
	u->sent += up->sent;
	u->answers += up->answers;
	u->rtt_ms_sum += up->rtt_ms_sum;
	u->timeouts += up->timeouts;
	u->servfail += up->servfail;
	u->refused += up->refused;
	u->mismatches += up->mismatches;
	u->coalesced += up->coalesced;
	u->busy += up->busy;
}

static void log_stats(enum log_level lvl, const char *who, const struct dns_server_stats *st,
                      const struct dns_forward_stats *up)
{
	log_msg(lvl, "main",
	        "%s: udp %llu tcp %llu queries; answers NOERROR %llu NXDOMAIN %llu "
	        "SERVFAIL %llu REFUSED %llu FORMERR %llu NOTIMP %llu; cache hits %llu misses %llu "
	        "stale %llu; upstream failures %llu; dropped %llu; send failures %llu",
	        who, (unsigned long long)st->udp_rx, (unsigned long long)st->tcp_rx,
	        (unsigned long long)st->rcode[0], (unsigned long long)st->rcode[3],
	        (unsigned long long)st->rcode[2], (unsigned long long)st->rcode[5],
	        (unsigned long long)st->rcode[1], (unsigned long long)st->rcode[4],
	        (unsigned long long)st->cache_hits, (unsigned long long)st->cache_misses,
	        (unsigned long long)st->stale_answers, (unsigned long long)st->upstream_fail,
	        (unsigned long long)st->dropped, (unsigned long long)st->tx_fail);
	log_msg(lvl, "main",
	        "%s: upstream tries %llu answers %llu (avg RTT %llu ms) timeouts %llu "
	        "SERVFAIL %llu REFUSED %llu mismatches %llu coalesced %llu busy %llu",
	        who, (unsigned long long)up->sent, (unsigned long long)up->answers,
	        (unsigned long long)(up->answers ? up->rtt_ms_sum / up->answers : 0),
	        (unsigned long long)up->timeouts, (unsigned long long)up->servfail,
	        (unsigned long long)up->refused, (unsigned long long)up->mismatches,
	        (unsigned long long)up->coalesced, (unsigned long long)up->busy);
}

static void log_exit_stats(const struct worker *w, unsigned n)
{
	struct dns_server_stats total = {0};
	struct dns_forward_stats utotal = {0};
	char who[32];

	for (unsigned i = 0; i < n; i++) {
		if (!w[i].started || !w[i].dns)
			continue;
		const struct dns_server_stats *st = dns_server_stats(w[i].dns);
		const struct dns_forward_stats *up = dns_server_upstream_stats(w[i].dns);
		snprintf(who, sizeof(who), "dns-%u", i);
		log_stats(LOG_LVL_DEBUG, who, st, up);
		sum_stats(&total, &utotal, st, up);
	}
	log_stats(LOG_LVL_INFO, "node", &total, &utotal);
}

/*
 * `user:` looked up now, after loading (the loader never reads the passwd
 * database): an unknown user is a configuration error at its position.
 */
static int lookup_user(const char *path, const struct conf_diag *diag, struct privs_user *u)
{
	int r;

	if (!conf.user[0])
		return 0;
	r = privs_lookup(conf.user, u);
	if (r == 0)
		return 0;
	fprintf(stderr, "%s:%u:%u: user: %s '%s'\n", path ? path : "<config>", diag->user_line,
	        diag->user_col, r == -ENOENT ? "no such user" : strerror(-r), conf.user);
	return r;
}

/* Every privileged socket is bound and no thread is running yet: become
 * `user:` for the whole process (core/privs.h). */
static int drop_privileges(const struct privs_user *u)
{
	char why[256];
	int r;

	if (!conf.user[0]) {
		if (geteuid() == 0)
			log_info("main", "running as root (set user: to drop privileges)");
		return 0;
	}
	r = privs_drop(u, kept_caps, sizeof(kept_caps) / sizeof(kept_caps[0]), why, sizeof(why));
	if (r) {
		log_err("main", "user %s: %s", u->name, why);
		return r;
	}
	log_info("main", "running as %s (uid %u, gid %u), capabilities kept: cap_net_bind_service",
	         u->name, (unsigned)u->uid, (unsigned)u->gid);
	return 0;
}

static void stop_all(struct worker *w, unsigned n)
{
	if (ctl.loop)
		loop_stop(ctl.loop);
	if (ctl.started)
		pthread_join(ctl.thread, NULL);
	for (unsigned i = 0; i < n; i++)
		if (w[i].loop)
			loop_stop(w[i].loop);
	for (unsigned i = 0; i < n; i++)
		if (w[i].started)
			pthread_join(w[i].thread, NULL);
	/* Every loop is drained now: no post or probe of the monitor is in flight. */
	if (ctl.loop && !ctl.started) {
		ops_close(ctl.ops);
		loop_drain(ctl.loop, 1000);
	}
	dns_health_free(ctl.health);
	ctl.health = NULL;
	log_exit_stats(w, n);
	persist_finish();
	for (unsigned i = 0; i < n; i++) {
		dns_server_free(w[i].dns);
		if (w[i].loop)
			loop_free(w[i].loop);
	}
	if (ctl.loop)
		loop_free(ctl.loop);
	ctl.loop = NULL;
	ops_free(ctl.ops); /* after every loop: no round or connection is left */
	ctl.ops = NULL;
	restart_free(ctl.restart);
	ctl.restart = NULL;
	dns_shared_free(shared); /* after every server */
	shared = NULL;
	/* After loop_free: its final callbacks still touch the speaker's sockets. */
	bgp_speaker_free(ctl.bgp);
	ctl.bgp = NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
	    {"verbose", no_argument, NULL, 'v'},      {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	static struct conf_diag diag;
	static struct conf_env env;
	static struct worker workers[CONF_MAX_THREADS];
	struct privs_user user = {0};
	const char *path = NULL;
	bool check = false;
	char why[512];
	sigset_t sigs;
	unsigned n;
	int c, r;

	while ((c = getopt_long(argc, argv, "c:vVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'v':
			log_set_level(LOG_LVL_DEBUG);
			break;
		case 'V':
			printf("anycached %s\n", ANYCACHE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'anycached --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "anycached: unexpected argument '%s'\nTry 'anycached --help'.\n",
		        argv[optind]);
		return 2;
	}

	saved_argv = argv;
	if (restart_exe(argv[0], exe_path, sizeof(exe_path)) < 0)
		exe_path[0] = '\0'; /* anycachectl restart says it is unavailable */
	conf_path = path;
	conf_loaded_unix = (int64_t)time(NULL);
	conf_env_read(&env, RESOLV_CONF);
	if (path) {
		r = conf_load_file(path, &env, &conf, &diag);
		if (r) {
			conf_diag_print(stderr, &diag);
			return 1;
		}
	} else {
		conf_default(&conf, &env);
		drop_missing_loopbacks(&conf.dns);
	}
	atomic_store(&drain_ms_now, conf.health.drain_ms);
	if (conf.dns.n_upstreams == 0) {
		fprintf(stderr,
		        "anycached: no upstream resolver: %s has no usable nameserver "
		        "(set dns.upstreams in a configuration file)\n",
		        RESOLV_CONF);
		return 1;
	}
	if (lookup_user(path, &diag, &user))
		return 1;
	if (check) {
		if (conf_print(stdout, &conf))
			return 1;
		return fflush(stdout) ? 1 : 0;
	}

	r = loop_global_init();
	if (r) {
		log_err("main", "initialisation failed: %s", strerror(-r));
		return 1;
	}
	r = loop_probe(why, sizeof(why));
	if (r) {
		log_err("main", "%s", why);
		return 1;
	}
	raise_fd_limit();
	r = restart_inherit(why, sizeof(why));
	if (r < 0 && r != -ENOENT) {
		log_err("main", "%s", why); /* the predecessor goes on serving */
		return 1;
	}
	handover_sock = r;
	/* A successor shares its predecessor's ports on purpose. */
	r = handover_sock >= 0 ? 0 : dns_server_check_listen(&conf.dns, why, sizeof(why));
	if (r) {
		log_err("main", "cannot listen on %s", why);
		return 1;
	}

	/* Workers inherit this mask; only the main thread takes signals. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	n = conf.dns.threads;
	workers_of = workers;
	n_workers_of = n;
	if (dns_shared_new(&conf, why, sizeof(why), &shared)) {
		log_err("main", "%s", why);
		return 1;
	}
	persist_load();
	for (unsigned i = 0; i < n; i++) {
		workers[i].index = i;
		r = loop_new(NULL, &workers[i].loop);
		if (r) {
			log_err("main", "worker %u: cannot create io_uring: %s", i, strerror(-r));
			stop_all(workers, n);
			return 1;
		}
		r = dns_server_new(workers[i].loop, &conf, i, shared, why, sizeof(why),
		                   &workers[i].dns);
		if (r) {
			log_err("main", "worker %u: %s", i, why);
			stop_all(workers, n);
			return 1;
		}
	}
	ctl.hold_routes = handover_sock >= 0 && conf.bgp.enabled;
	r = ctl_setup(workers, n, why, sizeof(why));
	if (r) {
		log_err("main", "%s", why);
		stop_all(workers, n);
		return 1;
	}
	if (handover_sock >= 0) {
		r = restart_adopt(handover_sock, ctl.bgp, &conf.bgp, why, sizeof(why));
		if (r < 0) {
			log_err("main", "%s", why);
			stop_all(workers, n);
			return 1;
		}
		log_info("main", "taking over from the predecessor: %d BGP session%s", r,
		         r == 1 ? "" : "s");
		if (ctl.hold_routes && r == 0) {
			/* Nothing announced to keep: start as usual, every VIP DOWN. */
			struct health_snapshot snap;
			ctl.hold_routes = false;
			dns_health_snapshot(ctl.health, &snap);
			bgp_speaker_set_health(ctl.bgp, &snap);
		} else if (ctl.hold_routes) {
			loop_timer_arm_in(ctl.loop, &ctl.hold_timer,
			                  (conf.health.rise + 2) * conf.health.interval_ms + 2000);
		}
		handover_release_unused();
	}
	log_startup(&conf, workers[0].loop);
	if (drop_privileges(&user)) {
		stop_all(workers, n);
		return 1;
	}
	/* After the drop (it needs one thread) and before the workers: from
	 * now on no worker writes to stderr itself (log.h). */
	r = log_start();
	if (r)
		log_warn("main", "no log thread (%s): records are written directly", strerror(-r));
	for (unsigned i = 0; i < n; i++) {
		r = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
		if (r) {
			log_err("main", "worker %u: cannot start thread: %s", i, strerror(r));
			stop_all(workers, n);
			log_stop();
			return 1;
		}
		workers[i].started = true;
	}
	r = pthread_create(&ctl.thread, NULL, ctl_main, NULL);
	if (r) {
		log_err("main", "cannot start the ctl thread: %s", strerror(r));
		stop_all(workers, n);
		log_stop();
		return 1;
	}
	ctl.started = true;
	if (handover_sock >= 0) {
		r = restart_serving(handover_sock);
		handover_sock = -1;
		if (r < 0)
			log_warn("main", "could not tell the predecessor we serve: %s",
			         strerror(-r));
	}
	persist.served = true;
	persist_start();

	for (;;) {
		int sig;
		if (sigwait(&sigs, &sig))
			continue;
		if (sig == SIGHUP) {
			log_info("main", "SIGHUP: reloading %s", conf_path ? conf_path : "(none)");
			if (loop_post(ctl.loop, ctl_reload_signal, NULL) < 0)
				log_err("main", "SIGHUP: the ctl thread cannot take it");
			continue;
		}
		if (atomic_load(&handed_over)) {
			log_info("main", "handed over to pid %d: exiting",
			         atomic_load(&successor_pid));
			break;
		}
		log_info("main", "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
		break;
	}
	if (!atomic_load(&handed_over))
		ctl_stop(&sigs);
	stop_all(workers, n);
	log_info("main", "stopped");
	log_stop();
	return atomic_load(&exit_code);
}
