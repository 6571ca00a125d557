/*
 * failover_lab: issue 7's failover lab as a command (scripts/lab.sh runs it).
 * Builds the namespaces, BIRD, knotd and anycached nodes (lab_net.h), runs
 * every scenario (lab_scen.h) or the --short set, prints the table and
 * writes the CSVs and a gnuplot script to --out. Needs root.
 *
 *   failover_lab [--short] [--out DIR] [--only kill9,sigstop,...]
 *                [--rate QPS] [--timeout-ms MS] [--anycached PATH]
 *
 * Exit status: 0 every scenario run met its target (skips allowed), 1 some
 * missed it, 2 the lab itself failed (a scenario ERROR or no lab at all).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lab_scen.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: failover_lab [--short] [--out DIR] [--only NAME,...] [--rate QPS]\n"
	           "                    [--timeout-ms MS] [--anycached PATH]\n"
	           "scenarios:");
	for (unsigned i = 0; i < lab_nscenarios; i++)
		fprintf(f, " %s%s", lab_scenarios[i].name, lab_scenarios[i].in_short ? "*" : "");
	fprintf(f, "\n(* = in --short)\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"short", no_argument, NULL, 's'},
	    {"out", required_argument, NULL, 'o'},
	    {"only", required_argument, NULL, 'n'},
	    {"rate", required_argument, NULL, 'r'},
	    {"timeout-ms", required_argument, NULL, 't'},
	    {"anycached", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct lab_opts o = {.log = stderr, .rate = 200, .timeout_ms = 1000};
	static struct lab_result res[16];
	int c;

	while ((c = getopt_long(argc, argv, "so:n:r:t:a:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.short_mode = true;
			break;
		case 'o':
			o.outdir = optarg;
			break;
		case 'n':
			o.only = optarg;
			break;
		case 'r':
			o.rate = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			o.timeout_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'a':
			setenv("ANYCACHED", optarg, 1);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (o.rate == 0 || o.rate > 1000 || o.timeout_ms == 0 || o.timeout_ms > 10000) {
		fprintf(stderr, "failover_lab: --rate 1..1000, --timeout-ms 1..10000\n");
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr,
		        "failover_lab: needs root (network namespaces, veth, XDP, ptrace)\n");
		return 2;
	}
	if (!getenv("ANYCACHED")) {
		fprintf(stderr, "failover_lab: set ANYCACHED or pass --anycached PATH\n");
		return 2;
	}
	int n = lab_run(&o, res, sizeof(res) / sizeof(res[0]));
	if (n < 0)
		return 2;
	printf("\n");
	lab_print_table(stdout, res, (size_t)n);
	int rc = 0;
	for (int i = 0; i < n; i++) {
		if (res[i].verdict == LAB_ERROR)
			rc = 2;
		else if (res[i].verdict == LAB_FAIL && rc == 0)
			rc = 1;
	}
	return rc;
}
