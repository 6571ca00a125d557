#!/usr/bin/env bash
# Issue 7's failover lab (README "Failover lab"), one command, as root on Debian 12:
#   bash scripts/lab.sh [--short] [--only kill9,sigstop,...] [--out DIR]
# Installs what dev.sh's `test` installs, builds with tests, runs every scenario in network
# namespaces it creates and deletes (tests/integration/failover_lab), prints the table, and
# writes into DIR (default lab-out/): summary.csv, <scenario>.csv (answers per 100 ms per node,
# lost), <scenario>-queries.csv (every query), <scenario>-events.csv (failure, restore, router
# route changes), timeline.gp and timeline.png, logs-*/ (the daemons' logs).
# Exit status: failover_lab's (0 every target met, 1 some missed, 2 the lab failed).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
builddir=${ANYCACHE_BUILDDIR:-build}
out=lab-out
args=()
while (($#)); do
	case "$1" in
	--out) out=$2; shift 2 ;;
	--out=*) out=${1#--out=}; shift ;;
	*) args+=("$1"); shift ;;
	esac
done

bash scripts/dev.sh deps-test
bash scripts/dev.sh build -Dtests=enabled
mkdir -p "$out"
rm -rf "$out"/*.csv "$out"/timeline.gp "$out"/timeline.png "$out"/logs-*
rc=0
# Integration tests and labs share one lock: their timings must not be disturbed by each other.
flock /tmp/anycache-itest.lock \
	"$builddir/tests/integration/failover_lab" --anycached "$builddir/anycached" --out "$out" \
	"${args[@]}" || rc=$?
if [[ -f $out/timeline.gp ]]; then
	(cd "$out" && gnuplot timeline.gp) && echo "lab: timeline: $out/timeline.png, raw data: $out/*.csv"
fi
exit "$rc"
