#!/bin/sh
# bgp_under_load.sh: issue 4's measurement. dnsperf floods anycached at full
# speed for DURATION seconds (default 60) while BIRD 2 holds an iBGP session to
# it with a 3 s hold time (keepalive every second). Passes when the session
# never drops; prints the largest gap between KEEPALIVEs BIRD received (from
# BIRD's own message log, millisecond timestamps) and dnsperf's figures.
#
# Usage: bench/bgp_under_load.sh [BUILD_DIR] [DURATION]   (root: binds port 179)
# Loopback only: 127.53.29.1 BIRD, .2 anycached BGP, .4 DNS VIP, .6 knotd.
set -eu

BUILD=${1:-build}
DURATION=${2:-60}
ANYCACHED=$(cd "$(dirname "$0")/.." && pwd)/$BUILD/anycached
[ -x "$ANYCACHED" ] || { echo "no $ANYCACHED (build first)"; exit 1; }
export PATH="$PATH:/usr/sbin"
# What it needs, from Debian, installed if missing (without starting the
# packages' own services: policy-rc.d is Debian's switch for that).
need=""
command -v bird >/dev/null && command -v birdc >/dev/null || need="$need bird2"
command -v knotd >/dev/null || need="$need knot"
command -v dnsperf >/dev/null || need="$need dnsperf"
if [ -n "$need" ]; then
	[ "$(id -u)" = 0 ] || { echo "missing:$need (run as root to install)"; exit 77; }
	made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d &&
			made_policy=1
	fi
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >&2 || inst_rc=$?
	[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
	[ "${inst_rc:-0}" = 0 ] || exit "$inst_rc"
fi

D=$(mktemp -d /tmp/bgp_under_load.XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

cat >"$D/example.test.zone" <<'EOF'
$TTL 3600
@	SOA ns hostmaster 1 3600 600 86400 3600
@	NS ns
ns	A 192.0.2.53
www	A 192.0.2.80
EOF
mkdir -p "$D/knot"
cat >"$D/knot.conf" <<EOF
server:
    rundir: "$D/knot"
    user: root:root
    listen: 127.53.29.6@5300
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
knotd -c "$D/knot.conf" >"$D/knot.log" 2>&1 &
PIDS="$PIDS $!"

cat >"$D/bird.conf" <<EOF
log "$D/bird.log" all;
router id 127.53.29.1;
debug protocols all;
protocol device { }
protocol bgp anyc {
  local 127.53.29.1 as 65000;
  neighbor 127.53.29.2 as 65000;
  strict bind yes;
  hold time 3;
  error wait time 1, 5;
  connect delay time 1;
  ipv4 { import all; export none; };
}
EOF
bird -f -c "$D/bird.conf" -s "$D/bird.ctl" >"$D/bird.out" 2>&1 &
PIDS="$PIDS $!"

cat >"$D/anycache.yaml" <<EOF
dns:
  listen: ["127.53.29.4:5300"]
  allow: [127.0.0.0/8]
  upstreams: ["127.53.29.6:5300"]
bgp:
  asn: 65000
  router-id: 127.53.29.2
  neighbors:
    - {address: 127.53.29.1, asn: 65000, local-address: 127.53.29.2, hold-time: 3s}
  announce:
    - {prefix: 64.0.0.0/2}
EOF
"$ANYCACHED" -c "$D/anycache.yaml" >"$D/anycached.log" 2>&1 &
APID=$!
PIDS="$PIDS $APID"

i=0
until birdc -s "$D/bird.ctl" show protocols anyc 2>/dev/null | grep -q Established; do
	i=$((i + 1))
	[ $i -lt 150 ] || { echo "session did not come up"; cat "$D/anycached.log"; exit 1; }
	sleep 0.1
done
kdig @127.53.29.4 -p 5300 +short www.example.test A >/dev/null 2>&1 || true
# BIRD moves the protocol's "since" once more as the channels come up just
# after Established: let it settle before taking the reference.
sleep 2
before=$(birdc -s "$D/bird.ctl" show protocols anyc | grep anyc)
echo "before: $before"
: >"$D/bird.log.mark"
start_line=$(wc -l <"$D/bird.log")

printf 'www.example.test A\n' >"$D/queries"
dnsperf -s 127.53.29.4 -p 5300 -d "$D/queries" -l "$DURATION" -c 10 -q 1000 >"$D/dnsperf.out" 2>&1

after=$(birdc -s "$D/bird.ctl" show protocols anyc | grep anyc)
echo "after:  $after"
grep -E 'Queries sent|Queries completed|Queries lost|Queries per second|Average Latency' "$D/dnsperf.out" || cat "$D/dnsperf.out"

tail -n +"$((start_line + 1))" "$D/bird.log" >"$D/bird.during"
flaps=$(grep -cE 'State changed|Hold timer expired|Error:' "$D/bird.during" || true)
echo "session state changes / errors in BIRD's log during the load: $flaps"
grep 'anyc: Got KEEPALIVE' "$D/bird.during" | awk '{
	split($2, t, ":"); ms = (t[1] * 3600 + t[2] * 60 + t[3]) * 1000;
	if (n++) { g = ms - last; if (g > max) max = g; sum += g }
	last = ms }
	END { if (n > 1) printf "KEEPALIVEs received by BIRD: %d, gap avg %.0f ms, max %.0f ms\n", n, sum / (n - 1), max;
	      else print "no KEEPALIVE lines in BIRD log" }'
kill -0 "$APID" || { echo "anycached died"; exit 1; }
if [ "$flaps" -ne 0 ] || ! echo "$after" | grep -q Established || [ "$(echo "$before" | awk '{print $5}')" != "$(echo "$after" | awk '{print $5}')" ]; then
	echo "FAIL: the session dropped under load"
	exit 1
fi
echo "PASS: session stayed Established for ${DURATION}s of dnsperf at full speed"
