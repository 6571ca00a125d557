#!/bin/bash
# bench/cookies.sh: what DNS cookies and response rate limiting cost anycached per cache hit,
# end to end: dnsperf at a fixed rate against one pinned worker, CPU time of the whole process
# (schedstat, exact) per answered query, for each phase:
#   plain      EDNS, no cookie (the baseline)
#   client     a client cookie alone in every query: the server makes a cookie for each (1 MAC)
#   valid      a valid server cookie in every query: verified and echoed (1 MAC)
#   rrl        plain, with dns.rate-limit on (a limit far above the rate: accounting only)
# Rounds alternate the phases (ROUNDS, 3) so drifting load on a shared machine hits them alike.
# --callgrind: instead, user-space instructions per hit for each phase (deterministic; excludes
# the kernel), both daemons under valgrind, CG_QUERIES (20000) hits per phase.
# Environment: RATE (q/s, 20000), DUR (s per phase and round, 4), NAMES (1000), BUILD (build),
# SRV_CPU (1), GEN_CPU (0). Traffic stays on 127.54.0.20-23; run under the itest lock.
set -euo pipefail
CALLGRIND=0
[ "${1:-}" = --callgrind ] && CALLGRIND=1
CG_QUERIES=${CG_QUERIES:-20000}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
RATE=${RATE:-20000}
DUR=${DUR:-4}
ROUNDS=${ROUNDS:-3}
NAMES=${NAMES:-1000}
SRV_CPU=${SRV_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
PORT=5300
NODE=127.54.0.21
NODE_RRL=127.54.0.20
KNOT=127.54.0.22
CLIENT=127.54.0.23
SECRET=e5e973e5a6b2a43f48e7dc849e37bfcf
CC=2464c4abcf10c957

WORK=$(mktemp -d /tmp/anycache-cookies.XXXXXX)
declare -A PID=()
cleanup() {
	for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

cpu_ns() {
	local t ns=0 a
	for t in /proc/"$1"/task/*; do
		read -r a _ <"$t/schedstat" 2>/dev/null || continue
		ns=$((ns + a))
	done
	echo "$ns"
}

{
	echo '$ORIGIN bench.test.'
	echo '$TTL 86400'
	echo '@ SOA ns hostmaster 1 3600 600 86400 86400'
	echo '@ NS ns'
	echo "ns A $KNOT"
	for i in $(seq 0 $((NAMES - 1))); do echo "h$i A 192.0.2.$((i % 250 + 1))"; done
} >"$WORK/bench.test.zone"
for i in $(seq 0 $((NAMES - 1))); do echo "h$i.bench.test A"; done >"$WORK/hit.txt"
mkdir -p "$WORK/knot"
cat >"$WORK/knot.conf" <<KEOF
server:
    rundir: "$WORK/knot"
    user: root:root
    listen: $KNOT@$PORT
log:
  - target: stderr
    any: warning
database:
    storage: "$WORK/knot"
zone:
  - domain: bench.test.
    storage: "$WORK"
    file: "bench.test.zone"
KEOF
taskset -c "$GEN_CPU" knotd -c "$WORK/knot.conf" >"$WORK/knotd.log" 2>&1 &
PID[knotd]=$!

node_conf() { # addr extra
	printf 'dns:\n  listen: ["%s:%s"]\n  allow: [127.0.0.0/8]\n  upstreams: ["%s:%s"]\n  threads: 1\n  cookie-secret: %s\n%s' \
		"$1" "$PORT" "$KNOT" "$PORT" "$SECRET" "$2"
	printf 'control: {socket: "%s/ctl-%s.sock", state: "%s/drain-%s.json"}\n' "$WORK" "$1" "$WORK" "$1"
}
node_conf $NODE "" >"$WORK/plain.yaml"
node_conf $NODE_RRL "  rate-limit: {responses-per-second: 1000000, ipv4-prefix: 32}
" >"$WORK/rrl.yaml"
VG=()
if [ "$CALLGRIND" = 1 ]; then
	VG=(valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-plain.out")
fi
taskset -c "$SRV_CPU" "${VG[@]}" "$BUILD/anycached" -c "$WORK/plain.yaml" >"$WORK/a.log" 2>&1 &
PID[plain]=$!
[ "$CALLGRIND" = 1 ] && VG=(valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-rrl.out")
taskset -c "$SRV_CPU" "${VG[@]}" "$BUILD/anycached" -c "$WORK/rrl.yaml" >"$WORK/b.log" 2>&1 &
PID[rrl]=$!
for a in $NODE $NODE_RRL; do
	for i in $(seq 1 100); do
		kdig +retry=0 +timeout=1 @$a -p $PORT h0.bench.test A 2>/dev/null | grep -q NOERROR && break
		sleep 0.3
	done
done
# Warm both caches.
for a in $NODE $NODE_RRL; do
	taskset -c "$GEN_CPU" dnsperf -s $a -p $PORT -d "$WORK/hit.txt" -n 2 -c 4 -q 100 >/dev/null
done
# The server cookie for CLIENT (it is bound to the client's address, RFC 9018 §4.4).
SC=$(kdig -b $CLIENT @$NODE -p $PORT +cookie=$CC h0.bench.test A | awk '/COOKIE:/ { print $3; exit }')
[ ${#SC} -eq 48 ] || { echo "no server cookie from kdig: '$SC'" >&2; exit 1; }

run() { # phase
	local addr=$NODE pid=${PID[plain]} extra=() n0 n1 out
	case $1 in
	client) extra=(-E "10:$CC") ;;
	valid) extra=(-E "10:$SC") ;;
	rrl) addr=$NODE_RRL pid=${PID[rrl]} ;;
	esac
	n0=$(cpu_ns "$pid")
	out=$(taskset -c "$GEN_CPU" dnsperf -s $addr -p $PORT -a $CLIENT -d "$WORK/hit.txt" -e \
		"${extra[@]}" -c 8 -q 500 -t 2 -l "$DUR" -Q "$RATE" 2>&1)
	n1=$(cpu_ns "$pid")
	echo "$out" | awk -v ns=$((n1 - n0)) -v ph="$1" '
		/Queries completed:/ { done = $3 }
		/Queries lost:/ { lost = $3 }
		/Response codes:/ { sub(/.*Response codes: */, ""); rc = $0 }
		END { printf "%-8s completed %8d lost %5d  %6.2f us/q  (%s)\n", ph, done, lost,
		             done ? ns / 1000 / done : 0, rc }'
}

if [ "$CALLGRIND" = 1 ]; then
	# Same phases, one dnsperf pass of CG_QUERIES hits each; counters zeroed before and
	# dumped after each (callgrind_control), instructions over queries completed.
	for ((i = 0; i < CG_QUERIES; i++)); do echo "h$((i % NAMES)).bench.test A"; done >"$WORK/cg-hit.txt"
	declare -A VPID=([plain]=$(pgrep -f -- "--callgrind-out-file=$WORK/cg-plain.out" | head -1)
		[rrl]=$(pgrep -f -- "--callgrind-out-file=$WORK/cg-rrl.out" | head -1))
	declare -A DUMPS=([plain]=0 [rrl]=0)
	for ph in plain client valid rrl; do
		d=plain addr=$NODE extra=()
		case $ph in
		client) extra=(-E "10:$CC") ;;
		valid) extra=(-E "10:$SC") ;;
		rrl) d=rrl addr=$NODE_RRL ;;
		esac
		callgrind_control -z "${VPID[$d]}" >/dev/null 2>&1
		taskset -c "$GEN_CPU" dnsperf -s $addr -p $PORT -a $CLIENT -d "$WORK/cg-hit.txt" -e \
			"${extra[@]}" -n 1 -c 1 -q 20 >"$WORK/cg-$ph.log" 2>&1
		callgrind_control -d "${VPID[$d]}" >/dev/null 2>&1
		DUMPS[$d]=$((DUMPS[$d] + 1))
		done_q=$(awk '/Queries completed:/ { print $3 }' "$WORK/cg-$ph.log")
		ir=$(callgrind_annotate "$WORK/cg-$d.out.${DUMPS[$d]}" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(/,/, "", $1); print $1 }')
		echo "callgrind $ph: $((ir / done_q)) instructions per hit ($ir / $done_q)"
	done
	for d in plain rrl; do kill -9 "${VPID[$d]}" 2>/dev/null || true; done
	exit 0
fi

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "anycached 1 worker on CPU $SRV_CPU; dnsperf and knotd on CPU $GEN_CPU; $RATE q/s, ${DUR}s per phase, $NAMES names, all hits"
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r:"
	for ph in plain client valid rrl; do run $ph; done
done
