/*
 * lab_scen.h: the failover lab's scenarios (issue 7) and their runner. Each
 * scenario: steady traffic from the probe to VIP1 (served by node a), a
 * failure injected on node a at a known instant, a hold (ended early once
 * the traffic has left a, where that is what the scenario waits for), the
 * restore, a bounded wait until a serves VIP1 again, and the figures judged
 * against the target. Runs as the CLI (failover_lab.c) and as the
 * short integration test (test_failover.c).
 */
#ifndef ANYCACHE_TESTS_LAB_SCEN_H
#define ANYCACHE_TESTS_LAB_SCEN_H

#include <stdbool.h>
#include <stdio.h>

#include "lab_net.h"
#include "lab_stats.h"

enum lab_target {
	LAB_T_OUTAGE,           /* longest outage <= target_ms */
	LAB_T_ZERO_LOST,        /* no query lost */
	LAB_T_LOSS_NO_WITHDRAW, /* <= 1 % lost and the router never moved VIP1 */
	LAB_T_SHARE_ONLY,       /* ECMP: the failed node's flows move, no other flow does */
	LAB_T_DEGRADE,          /* overload: the router moves VIP1 off a, <= 1 % lost */
};

struct lab_scenario;
typedef int (*lab_step_fn)(struct lab *lab, const struct lab_scenario *sc);
/* 0 when the scenario can run on this daemon; otherwise why not, in why. */
typedef int (*lab_check_fn)(struct lab *lab, char *why, size_t cap);

struct lab_scenario {
	const char *name;   /* short id: CSV file names, --only */
	const char *title;  /* the wording */
	const char *target; /* the target, as printed */
	enum lab_target kind;
	unsigned target_ms;
	unsigned hold_ms, hold_short_ms; /* longest time failed (full / --short) */
	bool until_failover;             /* end the hold 1 s after the traffic has left a */
	bool ecmp;                       /* runs in the three-node ECMP lab */
	bool in_short;                   /* part of --short (and of the integration test) */
	lab_step_fn inject, restore;
	lab_check_fn check; /* NULL: always runs */
};

extern const struct lab_scenario lab_scenarios[];
extern const unsigned lab_nscenarios;

enum lab_verdict { LAB_PASS, LAB_FAIL, LAB_SKIP, LAB_ERROR };

struct lab_result {
	const struct lab_scenario *sc;
	enum lab_verdict verdict;
	char note[400];
	struct lab_stats st;
	struct lab_flows flows;
	unsigned withdrawals;   /* route changes to VIP1 away from the steady next hops */
	unsigned gone;          /* of those, times the router had no route to VIP1 at all */
	bool outage_by_restore; /* the longest outage ended only when the failure was undone */
	bool recovered;
	double recovery_s; /* from the restore until a served VIP1 again */
	unsigned rate, timeout_ms;
	/* The timeline, in seconds from the failure instant (for the picture). */
	double start_s, restore_s, end_s;
	unsigned nroutes;
	struct {
		double t_s;
		char text[16];
	} routes[16];
};

struct lab_opts {
	bool short_mode;
	const char *outdir;  /* CSV + gnuplot script; NULL: none */
	const char *only;    /* comma-separated scenario names; NULL: all (of the mode) */
	unsigned rate;       /* default 200 q/s */
	unsigned timeout_ms; /* default 1000 ms */
	FILE *log;           /* progress (may be NULL) */
};

/*
 * Runs the scenarios of the mode (or opts->only) and fills res (at most cap
 * entries). Builds the labs it needs and always tears them down. Returns how
 * many results, or -errno when no lab could be built (the reason printed).
 */
int lab_run(const struct lab_opts *opts, struct lab_result *res, size_t cap);

/* The table: scenario, lost, longest outage, target, result. */
void lab_print_table(FILE *f, const struct lab_result *res, size_t n);

const char *lab_verdict_name(enum lab_verdict v);

#endif
