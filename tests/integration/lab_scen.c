/* The failover lab's scenarios and runner; see lab_scen.h. */
#include "lab_scen.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lab_probe.h"

#define NODE_A         0u
#define RECOVERY_MS    45000u
#define RECORD_SECONDS 300u

/*
 * health.overload for the overload scenario: only the busy ratio checked,
 * low enough that the flood below trips it and the probe's 200 q/s does not.
 * Node a then announces VIP1 with bgp.degraded's LOCAL_PREF 100, below b's 150.
 */
#define LAB_OVERLOAD_YAML "  overload: {busy: 10%, drops: 0, inflight: 0, latency: 0}\n"
#define OVERLOAD_QPS      "4000"

static struct proc flood; /* dnsperf of the overload scenario */
static char flood_data[320];

/* ---- failures on node a, and their undoing ---- */

static int inj_kill9(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_signal(lab, NODE_A, SIGKILL);
}

static int res_start(struct lab *lab, const struct lab_scenario *sc)
{
	lab_node_reap(lab, NODE_A, 10000);
	return lab_node_start(lab, NODE_A);
}

static int inj_stop(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_signal(lab, NODE_A, SIGSTOP);
}

static int res_cont(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_signal(lab, NODE_A, SIGCONT);
}

static int inj_cut(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_cut(lab, NODE_A, true);
}

static int res_cut(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_cut(lab, NODE_A, false);
}

static int inj_vipdel(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_vip1(lab, NODE_A, false);
}

static int res_vipdel(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_vip1(lab, NODE_A, true);
}

/* A silent upstream (stopped knotd): what an unreachable one looks like from a. */
static int inj_upstream(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_knot_signal(lab, NODE_A, SIGSTOP);
}

static int res_upstream(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_knot_signal(lab, NODE_A, SIGCONT);
}

static int check_overload(struct lab *lab, char *why, size_t cap)
{
	if (lab->extra_health[NODE_A])
		return 0;
	snprintf(why, cap,
	         "health.overload is not in the config parser yet (anycached --check "
	         "refuses it): coded, skipped");
	return -ENOTSUP;
}

/* dnsperf from the client: cache misses (unique names under *.load.lab.test) to VIP1. */
static int inj_overload(struct lab *lab, const struct lab_scenario *sc)
{
	char secs[16], log[360];
	FILE *f;

	snprintf(flood_data, sizeof(flood_data), "%s/flood.txt", lab->dir.path);
	f = fopen(flood_data, "w");
	if (!f)
		return -errno;
	for (unsigned i = 0; i < 20000; i++)
		fprintf(f, "q%u.load.lab.test TXT\n", i);
	fclose(f);
	snprintf(secs, sizeof(secs), "%u", (sc->hold_ms + 999) / 1000);
	snprintf(log, sizeof(log), "%s/dnsperf.log", lab->dir.path);
	char *argv[] = {"dnsperf", "-s",         LAB_VIP1, "-d", flood_data, "-l", secs,
	                "-Q",      OVERLOAD_QPS, "-c",     "16", "-t",       "1",  NULL};
	return netns_proc_start(&flood, &lab->c, "dnsperf", argv, log);
}

static int res_overload(struct lab *lab, const struct lab_scenario *sc)
{
	if (flood.pid > 0)
		proc_stop(&flood, SIGINT, 3000);
	return 0;
}

static int check_dns_threads(struct lab *lab, char *why, size_t cap)
{
	int n = lab_node_dns_threads(lab, NODE_A);

	if (n > 0)
		return 0;
	snprintf(why, cap, "anycached has no thread named dns-* yet (issue 7 names them): skipped");
	return -ENOTSUP;
}

static int inj_stall(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_stall_dns(lab, NODE_A, true);
}

static int res_stall(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_stall_dns(lab, NODE_A, false);
}

static int inj_term(struct lab *lab, const struct lab_scenario *sc)
{
	return lab_node_signal(lab, NODE_A, SIGTERM);
}

/* A planned restart: SIGTERM, wait for the exit, start again at once. */
static int inj_restart(struct lab *lab, const struct lab_scenario *sc)
{
	int r = lab_node_signal(lab, NODE_A, SIGTERM);

	if (r)
		return r;
	lab_node_reap(lab, NODE_A, 10000);
	return lab_node_start(lab, NODE_A);
}

const struct lab_scenario lab_scenarios[] = {
    {"kill9", "kill -9", "<= 50 ms", LAB_T_OUTAGE, 50, 10000, 3000, true, false, true, inj_kill9,
     res_start, NULL},
    {"sigstop", "process hung (SIGSTOP)", "<= 320 ms", LAB_T_OUTAGE, 320, 15000, 3000, true, false,
     true, inj_stop, res_cont, NULL},
    {"cut", "node cut off (all input dropped)", "<= 320 ms", LAB_T_OUTAGE, 320, 15000, 4000, true,
     false, false, inj_cut, res_cut, NULL},
    {"vipdel", "VIP1 deleted from a's loopback", "<= 1 s (goal 150 ms)", LAB_T_OUTAGE, 1000, 5000,
     3000, true, false, true, inj_vipdel, res_vipdel, NULL},
    {"upstream", "a's upstreams unreachable", "<= 1 % lost, no withdrawal", LAB_T_LOSS_NO_WITHDRAW,
     0, 8000, 4000, false, false, false, inj_upstream, res_upstream, NULL},
    {"overload", "a overloaded (low thresholds)", "moves off a, <= 1 % lost", LAB_T_DEGRADE, 0,
     6000, 4000, false, false, false, inj_overload, res_overload, check_overload},
    {"dnsstall", "a's dns-* threads stalled", "<= 1 s", LAB_T_OUTAGE, 1000, 8000, 4000, true, false,
     false, inj_stall, res_stall, check_dns_threads},
    {"sigterm", "SIGTERM", "0 lost", LAB_T_ZERO_LOST, 0, 10000, 4000, true, false, true, inj_term,
     res_start, NULL},
    {"restart", "restart (SIGTERM, start again)", "0 lost", LAB_T_ZERO_LOST, 0, 0, 0, false, false,
     false, inj_restart, NULL, NULL},
    {"ecmp", "3 nodes ECMP, kill -9 a", "only a's share moves", LAB_T_SHARE_ONLY, 0, 10000, 3000,
     true, true, false, inj_kill9, res_start, NULL},
};
const unsigned lab_nscenarios = sizeof(lab_scenarios) / sizeof(lab_scenarios[0]);

const char *lab_verdict_name(enum lab_verdict v)
{
	switch (v) {
	case LAB_PASS:
		return "PASS";
	case LAB_FAIL:
		return "FAIL";
	case LAB_SKIP:
		return "SKIP";
	case LAB_ERROR:
		return "ERROR";
	}
	return "?";
}

static void say(const struct lab_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(const struct lab_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (!o->log)
		return;
	va_start(ap, fmt);
	fprintf(o->log, "lab: ");
	vfprintf(o->log, fmt, ap);
	fprintf(o->log, "\n");
	fflush(o->log);
	va_end(ap);
}

/* Whether the recent answers are what the steady lab gives: a alone, or every node (ECMP). */
static bool steady_answers(const struct lab *lab, const struct lab_recent *rc, unsigned rate)
{
	if (rc->sent < rate / 2 || rc->good * 10 < rc->sent * 9)
		return false;
	if (!lab->ecmp)
		return rc->per_node[NODE_A] == rc->good;
	for (unsigned i = 0; i < lab->n; i++)
		if (rc->per_node[i] == 0)
			return false;
	return true;
}

static void judge(struct lab_result *res)
{
	const struct lab_scenario *sc = res->sc;
	const struct lab_stats *st = &res->st;
	bool loss_ok = (uint64_t)st->lost * 100 <= st->sent;
	size_t off = strlen(res->note);
	char *note = res->note + off;
	size_t cap = sizeof(res->note) - off;

	switch (sc->kind) {
	case LAB_T_OUTAGE:
		res->verdict = !st->outage_open && st->outage_us <= (uint64_t)sc->target_ms * 1000u
		                   ? LAB_PASS
		                   : LAB_FAIL;
		if (st->outage_open)
			snprintf(note, cap, "%sstill out at the end", off ? "; " : "");
		break;
	case LAB_T_ZERO_LOST:
		res->verdict = st->lost == 0 ? LAB_PASS : LAB_FAIL;
		break;
	case LAB_T_LOSS_NO_WITHDRAW:
		/* "No withdrawal": the router always has a route to VIP1. A move to
		 * b is DEGRADED doing its job where node a has a bgp.degraded
		 * section (this lab gives it one for the overload scenario). */
		res->verdict = loss_ok && res->gone == 0 ? LAB_PASS : LAB_FAIL;
		snprintf(note, cap, "%s%u withdrawal(s), %u route change(s) at the router",
		         off ? "; " : "", res->gone, res->withdrawals);
		break;
	case LAB_T_SHARE_ONLY:
		res->verdict = res->flows.on_failed > 0 && res->flows.on_others > 0 &&
		                       res->flows.moved_failed == res->flows.on_failed &&
		                       res->flows.moved_others == 0
		                   ? LAB_PASS
		                   : LAB_FAIL;
		snprintf(note, cap, "%sflows of a moved %u/%u, of b+c moved %u/%u", off ? "; " : "",
		         res->flows.moved_failed, res->flows.on_failed, res->flows.moved_others,
		         res->flows.on_others);
		break;
	case LAB_T_DEGRADE:
		res->verdict = loss_ok && res->withdrawals > 0 ? LAB_PASS : LAB_FAIL;
		snprintf(note, cap, "%s%u route change(s) at the router", off ? "; " : "",
		         res->withdrawals);
		break;
	}
}

/* 100 ms bins, every query, the marks: <outdir>/<name>{,-queries,-events}.csv. */
static void write_csv(const struct lab_opts *o, const struct lab_result *res,
                      const struct lab_probe *pr, uint64_t t_fail)
{
	char path[512];
	FILE *f;
	const uint64_t bin_us = 100000u, timeout = (uint64_t)o->timeout_ms * 1000u;

	if (!o->outdir || pr->n == 0)
		return;
	size_t nbins = (size_t)((pr->q[pr->n - 1].sent_us - pr->q[0].sent_us) / bin_us) + 1;
	struct lab_bin *bins = calloc(nbins, sizeof(*bins));
	snprintf(path, sizeof(path), "%s/%s.csv", o->outdir, res->sc->name);
	if (bins && (f = fopen(path, "w"))) {
		size_t used =
		    lab_stats_bins(pr->q, pr->n, timeout, pr->q[0].sent_us, bin_us, bins, nbins);
		fprintf(f, "t_s,a,b,c,lost\n");
		for (size_t b = 0; b < used; b++) {
			double t =
			    ((double)pr->q[0].sent_us + (double)(b * bin_us) - (double)t_fail) /
			    1e6;
			fprintf(f, "%.1f,%u,%u,%u,%u\n", t, bins[b].node[0], bins[b].node[1],
			        bins[b].node[2], bins[b].lost);
		}
		fclose(f);
	}
	free(bins);
	snprintf(path, sizeof(path), "%s/%s-queries.csv", o->outdir, res->sc->name);
	if ((f = fopen(path, "w"))) {
		fprintf(f, "seq,sent_ms,rtt_ms,flow,node,rcode,good\n");
		for (size_t i = 0; i < pr->n; i++) {
			const struct lab_query *q = &pr->q[i];
			double sent = ((double)q->sent_us - (double)t_fail) / 1e3;
			fprintf(f, "%zu,%.3f,", i, sent);
			if (q->recv_us)
				fprintf(f, "%.3f", (double)(q->recv_us - q->sent_us) / 1e3);
			fprintf(f, ",%u,%c,%u,%d\n", q->flow, q->node >= 0 ? 'a' + q->node : '-',
			        q->rcode, lab_query_good(q, timeout));
		}
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/%s-events.csv", o->outdir, res->sc->name);
	if ((f = fopen(path, "w"))) {
		static const char *const kinds[] = {"fail", "restore", "route", "note"};
		fprintf(f, "t_s,kind,text\n");
		for (unsigned i = 0; i < pr->nev; i++)
			fprintf(f, "%.3f,%s,%s\n", ((double)pr->ev[i].t_us - (double)t_fail) / 1e6,
			        kinds[pr->ev[i].kind], pr->ev[i].text);
		fclose(f);
	}
}

/* Everything after the probe stopped: figures, marks, verdict, files. */
static void conclude(const struct lab_opts *o, struct lab *lab, struct lab_result *res,
                     struct lab_probe *pr, uint64_t t_fail, uint64_t t_restore)
{
	const uint64_t timeout = (uint64_t)o->timeout_ms * 1000u;
	int steady = lab_steady_mask(lab);

	lab_stats_compute(pr->q, pr->n, timeout, &res->st);
	lab_stats_flows(pr->q, pr->n, timeout, LAB_FLOWS, t_fail, t_restore, NODE_A, &res->flows);
	res->start_s = pr->n ? ((double)pr->q[0].sent_us - (double)t_fail) / 1e6 : 0;
	res->end_s = pr->n ? ((double)pr->q[pr->n - 1].sent_us - (double)t_fail) / 1e6 : 0;
	res->restore_s = ((double)t_restore - (double)t_fail) / 1e6;
	for (unsigned i = 0; i < pr->nev; i++) {
		const struct lab_event *e = &pr->ev[i];
		if (e->kind != LAB_EV_ROUTE || e->t_us < t_fail)
			continue;
		/* Only changes while a is failed count against "no withdrawal". */
		if (e->mask != steady && e->t_us <= t_restore) {
			res->withdrawals++;
			res->gone += e->mask == 0;
		}
		if (res->nroutes < 16) {
			res->routes[res->nroutes].t_s = ((double)e->t_us - (double)t_fail) / 1e6;
			snprintf(res->routes[res->nroutes].text, sizeof(res->routes[0].text), "%s",
			         e->text);
			res->nroutes++;
		}
	}
	/* Answered only after the restore (a stopped process answers its queue on SIGCONT). */
	res->outage_by_restore = res->st.outage_us && res->st.outage_end_recv_us >= t_restore;
	if (res->outage_by_restore)
		snprintf(res->note, sizeof(res->note), "the outage ended only with the restore");
	if (res->st.late) {
		size_t off = strlen(res->note);
		snprintf(res->note + off, sizeof(res->note) - off,
		         "%s%u answered after the %u ms timeout (slowest %.1f s)", off ? "; " : "",
		         res->st.late, o->timeout_ms, (double)res->st.rtt_max_us / 1e6);
	}
	judge(res);
	write_csv(o, res, pr, t_fail);
}

static void run_one(const struct lab_opts *o, struct lab *lab, const struct lab_scenario *sc,
                    struct lab_result *res, bool *broken)
{
	const unsigned pre_ms = o->short_mode ? 1000 : 2000, post_ms = o->short_mode ? 500 : 1000;
	const unsigned settle_ms = o->short_mode ? 500 : 1000;
	const unsigned hold_ms = o->short_mode ? sc->hold_short_ms : sc->hold_ms;
	struct lab_probe_conf pc = {.client = &lab->c,
	                            .router = &lab->r,
	                            .vip = LAB_VIP1,
	                            .qname = LAB_QNAME,
	                            .rate = o->rate,
	                            .timeout_ms = o->timeout_ms,
	                            .max_seconds = RECORD_SECONDS,
	                            .route = lab->route};
	struct lab_probe pr;
	struct lab_recent rc;
	int r;

	memset(res, 0, sizeof(*res));
	res->sc = sc;
	res->rate = o->rate;
	res->timeout_ms = o->timeout_ms;
	if (sc->check && sc->check(lab, res->note, sizeof(res->note))) {
		res->verdict = LAB_SKIP;
		say(o, "%s: skipped: %s", sc->name, res->note);
		return;
	}
	say(o, "%s: %s on node a", sc->name, sc->title);
	if ((r = lab_probe_start(&pr, &pc))) {
		snprintf(res->note, sizeof(res->note), "probe did not start: %s", strerror(-r));
		res->verdict = LAB_ERROR;
		*broken = true;
		return;
	}
	sleep_ms((int)pre_ms);
	lab_probe_recent(&pr, (uint64_t)(pre_ms - 300) * 1000u, &rc);
	if (!steady_answers(lab, &rc, o->rate)) {
		snprintf(res->note, sizeof(res->note),
		         "not steady before the failure: %u sent, %u answered (a %u, b %u, c %u)",
		         rc.sent, rc.good, rc.per_node[0], rc.per_node[1], rc.per_node[2]);
		res->verdict = LAB_ERROR;
		*broken = true;
		lab_probe_free(&pr);
		say(o, "%s: %s", sc->name, res->note);
		return;
	}

	uint64_t t_fail = lab_probe_mark(&pr, LAB_EV_FAIL, "%s", sc->title);
	if ((r = sc->inject(lab, sc))) {
		snprintf(res->note, sizeof(res->note), "injecting the failure failed: %s (%s)",
		         strerror(-r), lab->err);
		res->verdict = LAB_ERROR;
		*broken = true;
	}
	/* Hold: bounded by hold_ms; ends 1 s after the traffic has left a where asked. */
	uint64_t hold_end = now_ms() + hold_ms, moved_at = 0;
	while (!r && now_ms() < hold_end) {
		sleep_ms(50);
		if (!sc->until_failover)
			continue;
		lab_probe_recent(&pr, 500000u, &rc);
		if (!moved_at && rc.sent > 0 && rc.good * 10 >= rc.sent * 9 &&
		    rc.per_node[NODE_A] == 0) {
			moved_at = now_ms();
			if (moved_at + settle_ms < hold_end)
				hold_end = moved_at + settle_ms;
		}
	}
	uint64_t t_restore = lab_probe_mark(&pr, LAB_EV_RESTORE, "restore");
	if (!r && sc->restore && (r = sc->restore(lab, sc))) {
		snprintf(res->note, sizeof(res->note), "restoring failed: %s (%s)", strerror(-r),
		         lab->err);
		res->verdict = LAB_ERROR;
		*broken = true;
	}
	/* Recovery: a (every node with ECMP) carries VIP1 again, answers steady for 1 s. */
	uint64_t rec_end = now_ms() + RECOVERY_MS;
	while (!r && now_ms() < rec_end) {
		sleep_ms(100);
		lab_probe_recent(&pr, 1000000u, &rc);
		if (lab_probe_route(&pr) == lab_steady_mask(lab) &&
		    steady_answers(lab, &rc, o->rate)) {
			res->recovered = true;
			break;
		}
	}
	res->recovery_s = (double)(lab_now_us() - t_restore) / 1e6 - 1.0;
	if (!r && !res->recovered) {
		snprintf(res->note, sizeof(res->note), "a did not serve VIP1 again within %u s",
		         RECOVERY_MS / 1000);
		*broken = true;
	}
	sleep_ms((int)post_ms);
	lab_probe_stop(&pr);
	if (res->verdict != LAB_ERROR)
		conclude(o, lab, res, &pr, t_fail, t_restore);
	lab_probe_free(&pr);
	say(o, "%s: %s: %u/%u lost, longest outage %.0f ms; %s", sc->name,
	    lab_verdict_name(res->verdict), res->st.lost, res->st.sent,
	    (double)res->st.outage_us / 1e3, res->note);
}

static bool selected(const struct lab_opts *o, const struct lab_scenario *sc)
{
	if (!o->only)
		return !o->short_mode || sc->in_short;
	size_t len = strlen(sc->name);
	for (const char *p = o->only; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == len && strncmp(p, sc->name, n) == 0)
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

/* Whether anycached's config parser takes LAB_OVERLOAD_YAML (--check on node a's config). */
static bool overload_supported(void)
{
	const char *bin = getenv("ANYCACHED");
	struct lab probe_lab;
	struct tmpdir d;
	char yaml[4096], path[400], out[2048];
	bool ok = false;

	if (!bin || tmpdir_make(&d, "labcheck"))
		return false;
	memset(&probe_lab, 0, sizeof(probe_lab));
	probe_lab.n = 2;
	probe_lab.node[0].id = 'a';
	snprintf(probe_lab.node[0].addr, sizeof(probe_lab.node[0].addr), "10.53.51.2");
	snprintf(probe_lab.node[0].peer, sizeof(probe_lab.node[0].peer), "10.53.51.1");
	lab_node_yaml(&probe_lab, 0, LAB_OVERLOAD_YAML, yaml, sizeof(yaml));
	if (write_file(d.path, "overload.yaml", yaml, path, sizeof(path)) == 0) {
		char *argv[] = {(char *)bin, "-c", path, "--check", NULL};
		ok = run_capture(argv, true, out, sizeof(out), 10000) == 0;
	}
	tmpdir_remove(&d);
	return ok;
}

/* The daemons' logs into <outdir>/logs-<shape>-<n> (n counts rebuilds after a broken run). */
static void save_logs(const struct lab_opts *o, struct lab *lab, bool ecmp, unsigned builds)
{
	char dir[600];

	if (!o->outdir)
		return;
	snprintf(dir, sizeof(dir), "%s/logs-%s-%u", o->outdir, ecmp ? "ecmp" : "two-node", builds);
	lab_save_logs(lab, dir);
}

/* Runs the selected scenarios of one lab shape; rebuilds the lab after a broken run. */
static size_t run_lab(const struct lab_opts *o, bool ecmp, struct lab_result *res, size_t cap,
                      size_t used, int *err)
{
	struct lab lab;
	bool up = false, broken = false;
	const char *overload = NULL;
	unsigned builds = 0;

	for (unsigned k = 0; k < lab_nscenarios && used < cap; k++) {
		const struct lab_scenario *sc = &lab_scenarios[k];
		if (sc->ecmp != ecmp || !selected(o, sc))
			continue;
		if (!up || broken) {
			if (up) {
				save_logs(o, &lab, ecmp, builds);
				lab_down(&lab);
			}
			builds++;
			if (!ecmp && !overload && overload_supported())
				overload = LAB_OVERLOAD_YAML;
			int r = lab_up(&lab, ecmp ? 3 : 2, ecmp, overload, o->log);
			up = true;
			broken = false;
			if (r) {
				fprintf(stderr, "lab: cannot build the %s lab: %s\n",
				        ecmp ? "ECMP" : "two-node", lab.err);
				*err = r;
				break;
			}
		}
		run_one(o, &lab, sc, &res[used++], &broken);
	}
	if (up) {
		save_logs(o, &lab, ecmp, builds);
		lab_down(&lab);
	}
	return used;
}

static void write_summary(const struct lab_opts *o, const struct lab_result *res, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/summary.csv", o->outdir);
	if (!(f = fopen(path, "w")))
		return;
	fprintf(f, "scenario,title,result,sent,lost,late,bad,outage_ms,outage_open,"
	           "outage_by_restore,slowest_ms,target,route_changes,recovery_s,note\n");
	for (size_t i = 0; i < n; i++) {
		const struct lab_result *r = &res[i];
		fprintf(f, "%s,\"%s\",%s,%u,%u,%u,%u,%.1f,%d,%d,%.1f,\"%s\",%u,%.1f,\"%s\"\n",
		        r->sc->name, r->sc->title, lab_verdict_name(r->verdict), r->st.sent,
		        r->st.lost, r->st.late, r->st.bad, (double)r->st.outage_us / 1e3,
		        r->st.outage_open, r->outage_by_restore, (double)r->st.rtt_max_us / 1e3,
		        r->sc->target, r->withdrawals, r->recovery_s, r->note);
	}
	fclose(f);
}

/* timeline.gp: one panel per scenario that ran; `gnuplot timeline.gp` makes timeline.png. */
static void write_gnuplot(const struct lab_opts *o, const struct lab_result *res, size_t n)
{
	char path[512];
	unsigned panels = 0;
	FILE *f;

	for (size_t i = 0; i < n; i++)
		panels += res[i].verdict == LAB_PASS || res[i].verdict == LAB_FAIL;
	if (panels == 0)
		return;
	snprintf(path, sizeof(path), "%s/timeline.gp", o->outdir);
	if (!(f = fopen(path, "w")))
		return;
	fprintf(f,
	        "# anycache failover lab: answers per 100 ms from each node; run: gnuplot "
	        "timeline.gp\n"
	        "set terminal pngcairo size 1400,%u font ',9'\n"
	        "set output 'timeline.png'\n"
	        "set datafile separator ','\n"
	        "set key outside right top\n"
	        "set xlabel 's from the failure'\n"
	        "set ylabel 'per 100 ms'\n"
	        "set yrange [0:%u]\n"
	        "set multiplot layout %u,1 title 'anycache failover lab: probe %u q/s to VIP1 "
	        "(timeout %u ms); answers per 100 ms by node, lost in red; failure at 0 (solid), "
	        "restore (dashed), router route to VIP1 changes (dotted)'\n",
	        220 * panels + 60, res[0].rate / 10 + res[0].rate / 40 + 1, panels, res[0].rate,
	        res[0].timeout_ms);
	for (size_t i = 0; i < n; i++) {
		const struct lab_result *r = &res[i];
		if (r->verdict != LAB_PASS && r->verdict != LAB_FAIL)
			continue;
		fprintf(
		    f,
		    "unset arrow\nunset label\n"
		    "set title \"%s: lost %u/%u, longest outage %.0f ms%s (target %s): %s\"\n"
		    "set xrange [%.1f:%.1f]\n"
		    "set arrow from 0, graph 0 to 0, graph 1 nohead lw 2 lc rgb 'black'\n"
		    "set arrow from %.3f, graph 0 to %.3f, graph 1 nohead dt 2 lc rgb 'black'\n",
		    r->sc->title, r->st.lost, r->st.sent, (double)r->st.outage_us / 1e3,
		    r->st.outage_open      ? " (open)"
		    : r->outage_by_restore ? " (ended by the restore)"
		                           : "",
		    r->sc->target, lab_verdict_name(r->verdict), r->start_s, r->end_s, r->restore_s,
		    r->restore_s);
		for (unsigned k = 0; k < r->nroutes; k++)
			fprintf(
			    f,
			    "set arrow from %.3f, graph 0 to %.3f, graph 1 nohead dt 3 lc rgb "
			    "'gray40'\n"
			    "set label \"route: %s\" at %.3f, graph 0.93 font ',8' offset 0.3,0\n",
			    r->routes[k].t_s, r->routes[k].t_s, r->routes[k].text,
			    r->routes[k].t_s);
		fprintf(
		    f,
		    "plot '%s.csv' every ::1 using 1:2 with steps lw 2 lc rgb '#1f77b4' title 'a', "
		    "'' every ::1 using 1:3 with steps lw 2 lc rgb '#2ca02c' title 'b', "
		    "'' every ::1 using 1:4 with steps lw 2 lc rgb '#ff7f0e' title 'c', "
		    "'' every ::1 using 1:5 with steps lw 2 lc rgb 'red' title 'lost'\n",
		    r->sc->name);
	}
	fprintf(f, "unset multiplot\n");
	fclose(f);
}

int lab_run(const struct lab_opts *opts, struct lab_result *res, size_t cap)
{
	struct lab_opts o = *opts;
	int err = 0;
	size_t n;

	if (!o.rate)
		o.rate = 200;
	if (!o.timeout_ms)
		o.timeout_ms = 1000;
	if (o.outdir)
		mkdir(o.outdir, 0755);
	n = run_lab(&o, false, res, cap, 0, &err);
	if (!err)
		n = run_lab(&o, true, res, cap, n, &err);
	if (o.outdir) {
		write_summary(&o, res, n);
		write_gnuplot(&o, res, n);
	}
	return n == 0 && err ? err : (int)n;
}

void lab_print_table(FILE *f, const struct lab_result *res, size_t n)
{
	fprintf(f, "%-34s %13s %16s  %-28s %s\n", "scenario (failure on node a)", "lost",
	        "longest outage", "target", "result");
	for (size_t i = 0; i < n; i++) {
		const struct lab_result *r = &res[i];
		char lost[32] = "-", outage[32] = "-";
		if (r->verdict == LAB_PASS || r->verdict == LAB_FAIL) {
			snprintf(lost, sizeof(lost), "%u/%u", r->st.lost, r->st.sent);
			/* ">": the outage was cut short by the restore or the end of the run. */
			const char *more = r->st.outage_open || r->outage_by_restore ? ">" : "";
			if (r->st.outage_us >= 1000000u)
				snprintf(outage, sizeof(outage), "%s%.2f s", more,
				         (double)r->st.outage_us / 1e6);
			else
				snprintf(outage, sizeof(outage), "%s%.0f ms", more,
				         (double)r->st.outage_us / 1e3);
		}
		fprintf(f, "%-34s %13s %16s  %-28s %s%s%s\n", r->sc->title, lost, outage,
		        r->sc->target, lab_verdict_name(r->verdict), r->note[0] ? ": " : "",
		        r->note);
	}
}
