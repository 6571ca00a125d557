#!/bin/sh
# soak.sh: issue 10's soak. dnsperf keeps anycached under load for DURATION
# seconds (default 600) while the script flaps its upstream (knotd stopped for
# UP_DOWN_S seconds every UP_FLAP_S) and its BGP peer (BIRD restarted every
# PEER_FLAP_S), and samples anycached's RSS and open descriptors every SAMPLE_S.
#
# Passes when anycached is alive at the end, RSS and the descriptor count
# after the warm-up (WARMUP_S) stay within 5 % of their first post-warm-up
# sample (descriptors: within 5 % or 2, for small counts), and anycached lost
# no BGP session the script did not cause (its "session down" lines are at
# most the number of BIRD restarts).
#
# Usage: bench/soak.sh [BUILD_DIR] [DURATION]   (root: binds port 179)
# Environment: RATE (dnsperf -Q, 20000 q/s), SAMPLE_S (5), WARMUP_S (60),
#   UP_FLAP_S (60), UP_DOWN_S (5), PEER_FLAP_S (150), OUT (a directory to keep
#   the samples and logs in; default: a temporary one, removed).
# A benchmark: run it under the integration lock (flock /tmp/anycache-itest.lock).
# Loopback only: 127.53.86.101 BIRD, .102 anycached BGP, .104 DNS VIP, .106 knotd.
set -eu

BUILD=${1:-build}
DURATION=${2:-600}
RATE=${RATE:-20000}
SAMPLE_S=${SAMPLE_S:-5}
WARMUP_S=${WARMUP_S:-60}
UP_FLAP_S=${UP_FLAP_S:-60}
UP_DOWN_S=${UP_DOWN_S:-5}
PEER_FLAP_S=${PEER_FLAP_S:-150}
ANYCACHED=$(cd "$(dirname "$0")/.." && pwd)/$BUILD/anycached
[ -x "$ANYCACHED" ] || { echo "no $ANYCACHED (build first)"; exit 1; }
[ "$WARMUP_S" -lt "$DURATION" ] || { echo "WARMUP_S must be under DURATION"; exit 2; }
export PATH="$PATH:/usr/sbin"
for c in bird birdc knotd dnsperf; do
	command -v "$c" >/dev/null || { echo "missing $c (bash scripts/dev.sh deps-test)"; exit 77; }
done

D=${OUT:-$(mktemp -d /tmp/soak.XXXXXX)}
mkdir -p "$D"
PIDS=""
KNOT_PID=""
BIRD_PID=""
cleanup() {
	for p in $PIDS $KNOT_PID $BIRD_PID; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in $PIDS $KNOT_PID $BIRD_PID; do kill -9 "$p" 2>/dev/null || true; done
	[ -n "${OUT:-}" ] || rm -rf "$D"
}
trap cleanup EXIT INT TERM

# A zone whose wildcard answers live 2 s: the cache keeps missing, so the
# upstream path (and its failures while knotd is down) is under load too.
cat >"$D/example.test.zone" <<'EOF'
$TTL 3600
@	SOA ns hostmaster 1 3600 600 86400 2
@	NS ns
ns	A 192.0.2.53
www	A 192.0.2.80
*	2	A 192.0.2.99
EOF
mkdir -p "$D/knot"
cat >"$D/knot.conf" <<EOF
server:
    rundir: "$D/knot"
    user: root:root
    listen: 127.53.86.106@5300
database:
    storage: "$D/knot"
zone:
  - domain: example.test
    storage: "$D"
    file: example.test.zone
log:
  - target: stderr
    any: warning
EOF
knot_start() {
	knotd -c "$D/knot.conf" >>"$D/knot.log" 2>&1 &
	KNOT_PID=$!
}
knot_start

cat >"$D/bird.conf" <<EOF
log "$D/bird.log" all;
router id 127.53.86.101;
protocol device { }
protocol bgp anyc {
  local 127.53.86.101 as 65000;
  neighbor 127.53.86.102 as 65000;
  strict bind yes;
  hold time 3;
  error wait time 1, 5;
  connect delay time 1;
  ipv4 { import all; export none; };
}
EOF
bird_start() {
	bird -f -c "$D/bird.conf" -s "$D/bird.ctl" >>"$D/bird.out" 2>&1 &
	BIRD_PID=$!
}
bird_start

cat >"$D/anycache.yaml" <<EOF
dns:
  listen: ["127.53.86.104:5300"]
  allow: [127.0.0.0/8]
  upstreams: ["127.53.86.106:5300"]
  threads: 2
control: {socket: "$D/control.sock", state: "$D/drain.json"}
bgp:
  asn: 65000
  router-id: 127.53.86.102
  neighbors:
    - {address: 127.53.86.101, asn: 65000, local-address: 127.53.86.102, hold-time: 3s}
  announce:
    - {prefix: 127.53.86.104/32}
EOF
"$ANYCACHED" -c "$D/anycache.yaml" >"$D/anycached.log" 2>&1 &
APID=$!
PIDS="$PIDS $APID"

i=0
until birdc -s "$D/bird.ctl" show protocols anyc 2>/dev/null | grep -q Established; do
	i=$((i + 1))
	[ $i -lt 150 ] || { echo "session did not come up"; tail "$D/anycached.log"; exit 1; }
	sleep 0.1
done

# 5000 names: 1000 www hits and 4000 wildcard names that expire every 2 s.
: >"$D/queries"
n=0
while [ $n -lt 1000 ]; do
	echo "www.example.test A" >>"$D/queries"
	echo "h$n.example.test A" >>"$D/queries"
	echo "h$((n + 1000)).example.test A" >>"$D/queries"
	echo "h$((n + 2000)).example.test A" >>"$D/queries"
	echo "h$((n + 3000)).example.test A" >>"$D/queries"
	n=$((n + 1))
done
dnsperf -s 127.53.86.104 -p 5300 -d "$D/queries" -l "$DURATION" -c 10 -q 500 -Q "$RATE" \
	>"$D/dnsperf.out" 2>&1 &
DPID=$!
PIDS="$PIDS $DPID"

sample() {
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$APID/status" 2>/dev/null || echo 0)
	fds=$(ls "/proc/$APID/fd" 2>/dev/null | wc -l)
	echo "$1	$rss	$fds" >>"$D/samples.tsv"
}
printf 't_s\trss_kb\tfds\n' >"$D/samples.tsv"
start=$(date +%s)
up_flaps=0
peer_flaps=0
next_up=$UP_FLAP_S
next_peer=$PEER_FLAP_S
next_sample=0
knot_back=0
while :; do
	t=$(($(date +%s) - start))
	[ "$t" -lt "$DURATION" ] || break
	kill -0 "$APID" 2>/dev/null || { echo "FAIL: anycached died at ${t}s"; tail "$D/anycached.log"; exit 1; }
	if [ "$t" -ge "$next_sample" ]; then
		sample "$t"
		next_sample=$((next_sample + SAMPLE_S))
	fi
	if [ "$t" -ge "$next_up" ] && [ "$knot_back" = 0 ]; then
		kill "$KNOT_PID" 2>/dev/null || true
		wait "$KNOT_PID" 2>/dev/null || true
		knot_back=$((t + UP_DOWN_S))
		up_flaps=$((up_flaps + 1))
		next_up=$((next_up + UP_FLAP_S))
	fi
	if [ "$knot_back" != 0 ] && [ "$t" -ge "$knot_back" ]; then
		knot_start
		knot_back=0
	fi
	if [ "$t" -ge "$next_peer" ]; then
		kill "$BIRD_PID" 2>/dev/null || true
		wait "$BIRD_PID" 2>/dev/null || true
		bird_start
		peer_flaps=$((peer_flaps + 1))
		next_peer=$((next_peer + PEER_FLAP_S))
	fi
	sleep 1
done
[ "$knot_back" = 0 ] || knot_start
wait "$DPID" 2>/dev/null || true
sample "$DURATION"
alive=1
kill -0 "$APID" 2>/dev/null || alive=0

echo "soak: ${DURATION}s, dnsperf asked ${RATE} q/s; upstream flaps $up_flaps (knotd down ${UP_DOWN_S}s each), BIRD restarts $peer_flaps"
grep -E 'Queries sent|Queries completed|Queries lost|Response codes|Queries per second|Average Latency' \
	"$D/dnsperf.out" || tail -5 "$D/dnsperf.out"
lost=$(grep -c 'session down' "$D/anycached.log" || true)
echo "BGP sessions lost (anycached's log): $lost; caused by the script: $peer_flaps"
awk -v w="$WARMUP_S" -F'\t' 'NR > 1 && $1 >= w {
	if (!n++) { r0 = $2; f0 = $3; rmin = rmax = $2; fmin = fmax = $3 }
	if ($2 < rmin) rmin = $2; if ($2 > rmax) rmax = $2
	if ($3 < fmin) fmin = $3; if ($3 > fmax) fmax = $3 }
	END {
	rdev = (rmax - r0 > r0 - rmin ? rmax - r0 : r0 - rmin) / r0 * 100
	fdev = fmax - f0 > f0 - fmin ? fmax - f0 : f0 - fmin
	ftol = f0 * 0.05 > 2 ? f0 * 0.05 : 2
	printf "after %d s warm-up, %d samples: RSS %d kB first, %d..%d kB (max deviation %.1f %%); fds %d first, %d..%d\n",
		w, n, r0, rmin, rmax, rdev, f0, fmin, fmax
	exit !(rdev <= 5 && fdev <= ftol) }' "$D/samples.tsv" && flat=1 || flat=0
[ -z "${OUT:-}" ] || echo "samples and logs: $D"
if [ "$alive" = 1 ] && [ "$flat" = 1 ] && [ "$lost" -le "$peer_flaps" ]; then
	echo "PASS"
	exit 0
fi
echo "FAIL (alive $alive, flat $flat, sessions lost $lost of $peer_flaps caused)"
exit 1
