#!/bin/bash
# bench/run.sh: anycached against unbound, dnsdist and the kernel-path floor (bench/reflector),
# as CPU per query and ratios measured in one run. See bench/README.md, "Throughput".
#
#   bench/run.sh [--callgrind] [--no-miss] [--miss] [--strace] [--startup] [--out FILE] [--png FILE]
#
# Default: cache hits over UDP at each of RATES and unthrottled (reflectors, anycached, unbound,
# dnsdist), one miss pass, a TCP hit pass (dnsperf -m tcp, 8 connections pipelining up to 500
# queries each) at TCP_RATE for TCP_DUR s, and anycached with `threads: 1` against `threads: 2`
# (both pinned to the one server CPU; hits at T2_RATE and misses at MISS_RATE, T2_DUR s each).
# With --out FILE (or --png FILE) it also draws CPU us per query per server for hit/miss/TCP
# with gnuplot into FILE.png (the name of --out with .png instead of .txt).
# --callgrind: instead of the dnsperf comparison, user-space instructions per cache hit (UDP, and
# TCP pipelining up to 20 on one connection; CG_KINDS="hit tcp-hit miss" picks phases) of
# anycached under valgrind (deterministic; excludes the kernel), with the top functions.
# --miss: only the miss pass (no hits, no reflectors): MISS_REPS rounds, each one pass over
# MISS_NAMES unique names per server at MISS_RATE, anycached, unbound and dnsdist in turn.
# --strace: system calls per miss of anycached and dnsdist, counted by strace -c -f over
# ST_NAMES (5000) unique names at ST_RATE (2000) q/s.
# --perf: where a UDP hit's CPU goes, kernel included: perf record (cpu-clock samples, every
# thread) of the recvmmsg reflector, the io_uring reflector and anycached, each at PERF_RATE
# (the first of RATES) for DUR s; the top symbols as CPU us per query (PERF_TOP, 30). PERF_TCP=1:
# anycached alone, hits over TCP (8 pipelining connections) and then over UDP.
# --hits: UDP hits only, in rounds: HIT_REPS (5) rounds, each server in turn for DUR s at each of
# RATES (four reflectors: recvmmsg, io_uring -u, -m, -p; see bench/reflector.c); per round
# anycached over the cheaper of the recvmmsg and -u reflectors of that round (the floor) and
# over each one, then the medians (issue 8's figure, robust to a disturbed round). BASE=DIR adds
# DIR/anycached (another build) beside it.
# --tcp: only anycached, TCP hits against UDP hits at TCP_RATE, TCP_REPS (5) alternating rounds
# of TCP_DUR s each, the ratio of sched CPU per query per round and their median (issue 8). BASE=DIR adds that build's anycached to every round (A/B).
# BIN=PATH: --tcp and --callgrind measure that anycached binary (e.g. an older build, before/after).
# --startup: time from exec to the first answer (bench/startup: a UDP query every ms, at most
# 5 s), STARTUP_REPS (10) starts of anycached with threads: 1 and with threads: 2; min/median/max.
#
# Every server runs with one worker thread pinned to CPU $SRV_CPU; dnsperf (and knotd, the
# authoritative upstream) run on CPU $GEN_CPU. All traffic stays on 127.54.0.0/24.
# Environment: DUR (s per server and phase, 10), RATES (fixed-rate phases, q/s, "50000 90000"),
# NAMES (cache-hit names, 1000), MISS_RATE (10000 q/s asked), MISS_DUR (5 s), BUILD (build-bench),
# SKIP_BUILD=1 (measure the binaries already built), CG_QUERIES (hits under callgrind, 20000),
# MISS_NAMES (20000) and MISS_REPS (3) for --miss, ST_NAMES and ST_RATE for --strace,
# TCP_RATE (20000 q/s) and TCP_DUR (3 s), T2_RATE (the first of RATES), T2_DUR (3 s), T2_REPS (3).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
DUR=${DUR:-10}
RATES=${RATES:-50000 90000}
NAMES=${NAMES:-1000}
MISS_RATE=${MISS_RATE:-10000}
MISS_DUR=${MISS_DUR:-5}
CG_QUERIES=${CG_QUERIES:-20000}
MISS_NAMES=${MISS_NAMES:-20000}
MISS_REPS=${MISS_REPS:-3}
ST_NAMES=${ST_NAMES:-5000}
ST_RATE=${ST_RATE:-2000}
TCP_RATE=${TCP_RATE:-20000}
TCP_DUR=${TCP_DUR:-3}
T2_DUR=${T2_DUR:-3}
T2_REPS=${T2_REPS:-3}
STARTUP_REPS=${STARTUP_REPS:-10}
SRV_CPU=${SRV_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
PORT=5300
KNOT=127.54.0.10
declare -A ADDR=([anycached]=127.54.0.1 [unbound]=127.54.0.2 [dnsdist]=127.54.0.3
	[reflector]=127.54.0.4 [reflector-uring]=127.54.0.5 [anycached-t2]=127.54.0.7
	[reflector-mmsg]=127.54.0.8 [reflector-poll]=127.54.0.9)
ORDER=(reflector reflector-uring anycached unbound dnsdist)
CALLGRIND=0
PERF=0
MISS=1
MISS_ONLY=0
STRACE=0
STARTUP=0
TCP_ONLY=0
HITS_ONLY=0
OUT=""
PNG=""
while [ $# -gt 0 ]; do
	case "$1" in
	--callgrind) CALLGRIND=1 ;;
	--perf) PERF=1 ;;
	--no-miss) MISS=0 ;;
	--miss) MISS_ONLY=1 ;;
	--strace) STRACE=1 ;;
	--startup) STARTUP=1 ;;
	--tcp) TCP_ONLY=1 ;;
	--hits) HITS_ONLY=1 ;;
	--out) OUT=$2; shift ;;
	--png) PNG=$2; shift ;;
	-h | --help) sed -n '2,39p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

# ---- dependencies: install from Debian only what is missing ----
need=()
command -v unbound >/dev/null || [ -x /usr/sbin/unbound ] || need+=(unbound)
command -v dnsdist >/dev/null || [ -x /usr/bin/dnsdist ] || need+=(dnsdist)
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v knotd >/dev/null || [ -x /usr/sbin/knotd ] || need+=(knot)
if [ "$CALLGRIND" = 1 ] && ! command -v valgrind >/dev/null; then need+=(valgrind); fi
if [ "$STRACE" = 1 ] && ! command -v strace >/dev/null; then need+=(strace); fi
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then need+=(linux-perf); fi
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	# The benchmark starts its own servers: keep the packages' init scripts
	# from starting system-wide unbound/dnsdist (port 53) on a machine
	# without systemd (policy-rc.d is Debian's switch for that).
	made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d &&
			made_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2 || inst_rc=$?
	[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
	[ "${inst_rc:-0}" = 0 ] || exit "$inst_rc"
fi
export PATH=$PATH:/usr/sbin
[ -z "$PNG" ] && [ -n "$OUT" ] && PNG=${OUT%.txt}.png

# ---- build anycached and the reflector in release mode ----
if [ ! -d "$BUILD" ]; then
	meson setup "$BUILD" "$ROOT" --buildtype=release -Dtests=disabled >&2
fi
# SKIP_BUILD=1 measures the binaries already in $BUILD (the tree may be mid-edit by others).
if [ "${SKIP_BUILD:-0}" != 1 ]; then
	ninja -C "$BUILD" anycached bench/reflector bench/startup >&2 ||
		{ echo "run.sh: build failed (SKIP_BUILD=1 uses the existing binaries)" >&2; exit 1; }
fi

WORK=$(mktemp -d /tmp/anycache-bench.XXXXXX)
declare -A PID=()
cleanup() {
	local p
	for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
	PID=()
}
trap 'cleanup' EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

log() { echo "== $*" >&2; }

# "median min max" of the numbers on stdin, one per line (an even count's median is the mean
# of the middle two). The rounds' figures: robust to a round disturbed by other work.
median_range() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'
}

# Waits until a server answers a query for a cached name (or fails after 10 s).
wait_up() {
	local name=$1 i
	for i in $(seq 1 100); do
		if ! kill -0 "${PID[$name]}" 2>/dev/null; then
			echo "run.sh: $name exited; log:" >&2
			tail -20 "$WORK/$name.log" >&2 || true
			exit 1
		fi
		if kdig +retry=0 +timeout=1 @"${ADDR[$name]}" -p $PORT h0.bench.test A 2>/dev/null |
			grep -q 'status: NOERROR'; then
			return 0
		fi
		sleep 0.1
	done
	echo "run.sh: $name does not answer on ${ADDR[$name]}:$PORT" >&2
	exit 1
}

# Fails the run (keeping $WORK) when a server died.
alive() {
	if ! kill -0 "${PID[$1]}" 2>/dev/null; then
		echo "run.sh: $1 died; its log ($WORK/$1.log):" >&2
		tail -20 "$WORK/$1.log" >&2 || true
		exit 1
	fi
}

# "utime stime" of a whole process (all threads), in clock ticks.
cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
# "run_ns wakeups" over all threads of a process: CPU time in ns from schedstat (exact, where
# /proc/PID/stat counts 10 ms ticks) and voluntary context switches (times a thread went to
# sleep waiting for work: one per wake-up).
cpu_ns_wakeups() {
	local t ns=0 w=0 a b
	for t in /proc/"$1"/task/*; do
		read -r a _ <"$t/schedstat" 2>/dev/null || continue
		b=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$t/status" 2>/dev/null) || b=0
		ns=$((ns + a))
		w=$((w + ${b:-0}))
	done
	echo "$ns $w"
}
HZ=$(getconf CLK_TCK)

# ---- the zone and the query files ----
{
	echo '$ORIGIN bench.test.'
	echo '$TTL 86400'
	echo '@ SOA ns hostmaster 1 3600 600 86400 86400'
	echo '@ NS ns'
	echo "ns A $KNOT"
	for i in $(seq 0 $((NAMES - 1))); do echo "h$i A 192.0.2.$((i % 250 + 1))"; done
	echo '*.miss A 192.0.2.254'
} >"$WORK/bench.test.zone"
for i in $(seq 0 $((NAMES - 1))); do echo "h$i.bench.test A"; done >"$WORK/hit.txt"
# Unique names: every query a cache miss (more than MISS_RATE*MISS_DUR per server, 3 servers).
awk -v n=$((MISS_RATE * MISS_DUR * 3 + 1000)) 'BEGIN { for (i = 0; i < n; i++) printf "m%d.miss.bench.test A\n", i }' \
	>"$WORK/miss.txt"

# ---- knotd: the authoritative upstream, on the generator's CPU ----
mkdir -p "$WORK/knot"
cat >"$WORK/knot.conf" <<EOF
server:
    rundir: "$WORK/knot"
    user: root:root
    listen: $KNOT@$PORT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "$WORK/knot"
zone:
  - domain: bench.test.
    storage: "$WORK"
    file: "bench.test.zone"
EOF
taskset -c "$GEN_CPU" knotd -c "$WORK/knot.conf" >"$WORK/knotd.log" 2>&1 &
PID[knotd]=$!
for i in $(seq 1 50); do
	kdig +retry=0 +timeout=1 @$KNOT -p $PORT h0.bench.test A 2>/dev/null | grep -q NOERROR && break
	sleep 0.1
done

# ---- configurations ----
cat >"$WORK/anycached.yaml" <<EOF
dns:
  listen: ["${ADDR[anycached]}:$PORT"]
  allow: [127.0.0.0/8]
  upstreams: ["$KNOT:$PORT"]
  threads: 1
  cache:
    size: 256MiB
control:
  socket: "$WORK/anycached.sock"
EOF
# The same with two workers, on its own address (issue 8: threads 1 against 2).
sed -e "s/${ADDR[anycached]}:/${ADDR[anycached-t2]}:/" -e "s/anycached.sock/t2.sock/" \
	-e "s/threads: 1/threads: 2/" "$WORK/anycached.yaml" >"$WORK/anycached-t2.yaml"
cat >"$WORK/unbound.conf" <<EOF
server:
    interface: ${ADDR[unbound]}@$PORT
    port: $PORT
    num-threads: 1
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "$WORK"
    pidfile: "$WORK/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    local-zone: "test." nodefault
    module-config: "iterator"
    msg-cache-size: 128m
    rrset-cache-size: 256m
    so-rcvbuf: 8m
    so-sndbuf: 8m
    outgoing-range: 4096
    num-queries-per-thread: 4096
remote-control:
    control-enable: no
forward-zone:
    name: "."
    forward-addr: $KNOT@$PORT
EOF
cat >"$WORK/dnsdist.conf" <<EOF
setLocal("${ADDR[dnsdist]}:$PORT")
setACL({"127.0.0.0/8"})
setSecurityPollSuffix("")
newServer({address="$KNOT:$PORT", checkName="h0.bench.test."})
pc = newPacketCache(1000000, {maxTTL=86400, minTTL=0})
getPool(""):setCache(pc)
EOF

start() {
	local name=$1
	shift
	taskset -c "$SRV_CPU" "$@" >"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
}

# BASE=DIR: DIR/anycached (another build, e.g. before a change) as anycached-base, beside
# anycached on its own address; fails (1) without BASE.
start_base() {
	[ -n "${BASE:-}" ] || return 1
	ADDR[anycached-base]=127.54.0.6
	sed -e "s/${ADDR[anycached]}:/${ADDR[anycached-base]}:/" -e "s/anycached.sock/base.sock/" \
		"$WORK/anycached.yaml" >"$WORK/anycached-base.yaml"
	start anycached-base "$BASE/anycached" -c "$WORK/anycached-base.yaml"
}

# ---- one dnsperf run; prints "sent completed lost qps rcodes cpu_us_per_q user_us_per_q
# sched_us_per_q wakeups_per_q"; a 5th argument "tcp" sends over TCP (8 connections, each
# pipelining up to 500 queries, RFC 7766 §6.2.1.1) ----
measure() {
	local name=$1 file=$2 dur=$3 rate=$4 mode=${5:-udp} pid=${PID[$1]} u0 s0 u1 s1 n0 w0 n1 w1 out args
	args=(-s "${ADDR[$name]}" -p $PORT -d "$file" -c 8 -q 500 -t 2 -m "$mode")
	# dur "pass": one pass over the file (every name once), else that many seconds.
	if [ "$dur" = pass ]; then args+=(-n 1); else args+=(-l "$dur"); fi
	[ "$rate" != max ] && args+=(-Q "$rate")
	alive "$name"
	read -r u0 s0 <<<"$(cpu_ticks "$pid")"
	read -r n0 w0 <<<"$(cpu_ns_wakeups "$pid")"
	out=$(taskset -c "$GEN_CPU" dnsperf "${args[@]}" 2>&1)
	alive "$name"
	read -r u1 s1 <<<"$(cpu_ticks "$pid")"
	read -r n1 w1 <<<"$(cpu_ns_wakeups "$pid")"
	echo "$out" >"$WORK/dnsperf-$name-$(basename "$file" .txt)-$rate-$mode.log"
	echo "$out" | awk -v ut=$((u1 - u0)) -v st=$((s1 - s0)) -v hz="$HZ" -v ns=$((n1 - n0)) \
		-v wk=$((w1 - w0)) '
		/Queries sent:/ { sent = $3 }
		/Queries completed:/ { done = $3 }
		/Queries lost:/ { lost = $3 }
		/Queries per second:/ { qps = $4 }
		/Response codes:/ { sub(/.*Response codes: */, ""); gsub(/ \(/, "("); gsub(/ /, ""); rc = $0 }
		END { if (rc == "") rc = "none";
		      printf "%d %d %d %.0f %s %.2f %.2f %.2f %.2f\n", sent, done, lost, qps, rc,
		             done ? (ut + st) / hz * 1e6 / done : 0, done ? ut / hz * 1e6 / done : 0,
		             done ? ns / 1000 / done : 0, done ? wk / done : 0 }'
}

if [ "$CALLGRIND" = 1 ]; then
	# User-space instructions per query, deterministic. One anycached under callgrind: warm
	# up, zero the counters, CG_QUERIES hits, dump; CG_QUERIES/4 misses (unique names forwarded
	# to knotd), dump. A dump writes the counts since the previous one. Each phase's cost over
	# its query count is the figure (timers that fired meanwhile are included; they are tiny).
	# The kernel's share (syscalls, io_uring, UDP) is not counted. Dumps go through vgdb
	# (callgrind_control), so nothing depends on the daemon exiting cleanly under valgrind.
	for ((i = 0; i < CG_QUERIES; i++)); do echo "h$((i % NAMES)).bench.test A"; done >"$WORK/cg-hit.txt"
	head -n $((CG_QUERIES / 4)) "$WORK/miss.txt" >"$WORK/cg-miss.txt"
	start anycached valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
		"${BIN:-$BUILD/anycached}" -c "$WORK/anycached.yaml"
	wait_up anycached
	taskset -c "$GEN_CPU" dnsperf -s "${ADDR[anycached]}" -p $PORT -d "$WORK/hit.txt" \
		-n 2 -c 1 -q 20 >"$WORK/cg-warm.log" 2>&1
	# taskset execs valgrind, which execs its tool: the PID start() recorded is callgrind's.
	vpid=${PID[anycached]}
	callgrind_control -z "$vpid" >/dev/null
	n=0
	# tcp-hit: the same hits over one TCP connection pipelining up to 20 queries (issue 8).
	cp "$WORK/cg-hit.txt" "$WORK/cg-tcp-hit.txt"
	for kind in ${CG_KINDS:-hit tcp-hit miss}; do
		mode=udp
		[ "$kind" = tcp-hit ] && mode=tcp
		taskset -c "$GEN_CPU" dnsperf -s "${ADDR[anycached]}" -p $PORT -d "$WORK/cg-$kind.txt" \
			-n 1 -c 1 -q 20 -m "$mode" >"$WORK/cg-$kind-run.log" 2>&1
		callgrind_control -d "$vpid" >/dev/null
		n=$((n + 1))
		done_q=$(awk '/Queries completed:/ { print $3 }' "$WORK/cg-$kind-run.log")
		ir=$(callgrind_annotate "$WORK/cg.out.$n" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(/,/, "", $1); print $1 }')
		echo "callgrind: anycached user-space instructions per cache $kind: $((ir / done_q))" \
			"($ir / $done_q queries; $(awk '/Response codes:/ { sub(/.*codes: */, ""); print }' "$WORK/cg-$kind-run.log"))"
		echo "top functions, instructions per $kind (self cost):"
		callgrind_annotate --threshold=100 "$WORK/cg.out.$n" 2>/dev/null |
			awk -v q="$done_q" -v ir="$ir" '/^ *[0-9,]+ .*:/ && !/PROGRAM TOTALS/ { n = $1; gsub(/,/, "", n); n += 0; if (n >= 0.99 * ir) next;
				k = $0; sub(/^ *[0-9,]+ +(\([ 0-9.%]+\) +)?/, "", k);
				if (n / q >= 5) printf "  %7.1f  %s\n", n / q, k }' | sort -rn | head -25
		echo
	done
	# SIGKILL: a graceful drain under valgrind can take minutes. Waited for, so no callgrind
	# outlives the run holding the bench lock (it inherits the descriptor flock holds).
	kill -9 "$vpid" 2>/dev/null || true
	wait "$vpid" 2>/dev/null || true
	# CG_KEEP=DIR keeps the raw profiles (cg.out.1 hits, cg.out.2 misses) for callgrind_annotate.
	[ -n "${CG_KEEP:-}" ] && mkdir -p "$CG_KEEP" && cp "$WORK"/cg.out.* "$CG_KEEP"/
	cleanup
	rm -rf "$WORK"
	exit 0
fi

# Unique names for one server and round: every query is a cache miss everywhere.
miss_names() { awk -v n="$2" -v p="$1" 'BEGIN { for (i = 0; i < n; i++) printf "%s-%d.miss.bench.test A\n", p, i }'; }

if [ "$MISS_ONLY" = 1 ]; then
	# The miss pass alone: each round, each cache gets one pass over its own MISS_NAMES
	# unique names at MISS_RATE; the servers take turns, so a disturbance on the shared
	# VM shows as one bad round rather than as one server's bad luck. BASE=DIR adds
	# DIR/anycached (another build, e.g. before a change) as anycached-base.
	MISS_SERVERS=(anycached unbound dnsdist)
	start anycached "$BUILD/anycached" -c "$WORK/anycached.yaml"
	start_base && MISS_SERVERS=(anycached anycached-base unbound dnsdist)
	start unbound unbound -d -c "$WORK/unbound.conf"
	start dnsdist dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf"
	for s in "${MISS_SERVERS[@]}"; do wait_up "$s"; done
	declare -A M=()
	for ((rep = 1; rep <= MISS_REPS; rep++)); do
		for s in "${MISS_SERVERS[@]}"; do
			miss_names "r$rep$s" "$MISS_NAMES" >"$WORK/pass-$s-$rep.txt"
			log "miss round $rep: $s, $MISS_NAMES unique names at $MISS_RATE q/s"
			M[$rep,$s]=$(measure "$s" "$WORK/pass-$s-$rep.txt" pass "$MISS_RATE")
		done
	done
	{
		echo "anycache miss pass, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
		echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs," \
			"kernel $(uname -r)"
		echo "versions: anycached $(cd "$ROOT" && git describe --always --dirty 2>/dev/null)" \
			"(release build)${BASE:+, anycached-base from $BASE}, unbound $(unbound -V | awk 'NR==1{print $2}')," \
			"$(dnsdist --version | head -1 | awk '{print $1, $2}'), knotd $(knotd --version | awk '{print $NF}')"
		echo "setup: servers pinned to CPU $SRV_CPU (1 worker each), dnsperf and knotd on CPU $GEN_CPU;" \
			"per round and server one pass over $MISS_NAMES unique names (*.miss wildcard) at $MISS_RATE q/s," \
			"dnsperf -c 8 -q 500"
		echo "CPU us/q = CPU time of all the server's threads (/proc/PID/task/*/schedstat, exact) / queries"
		echo "completed; ticks and user = utime+stime and utime (/proc/PID/stat, 10 ms ticks);"
		echo "wakeups/q = voluntary context switches per query (a thread slept waiting for work)"
		printf '  %-5s %-15s %6s %6s %5s %9s %6s %6s %9s  %s\n' round server sent done lost "CPU us/q" ticks user wakeups/q rcodes
		for ((rep = 1; rep <= MISS_REPS; rep++)); do
			for s in "${MISS_SERVERS[@]}"; do
				read -r sent done lost qps rc us uus ns wk <<<"${M[$rep,$s]}"
				printf '  %-5s %-15s %6s %6s %5s %9s %6s %6s %9s  %s (%s q/s)\n' "$rep" "$s" "$sent" "$done" "$lost" "$ns" "$us" "$uus" "$wk" "$rc" "$qps"
			done
			read -r _ _ _ _ _ _ _ a _ <<<"${M[$rep,anycached]}"
			read -r _ _ _ _ _ _ _ u _ <<<"${M[$rep,unbound]}"
			read -r _ _ _ _ _ _ _ d _ <<<"${M[$rep,dnsdist]}"
			b=0
			[ -n "${BASE:-}" ] && read -r _ _ _ _ _ _ _ b _ <<<"${M[$rep,anycached-base]}"
			awk -v a="$a" -v u="$u" -v d="$d" -v b="$b" -v r="$rep" 'BEGIN {
				printf "  round %s: anycached/dnsdist = %.2f, anycached/unbound = %.2f", r,
				       (d > 0 ? a / d : 0), (u > 0 ? a / u : 0)
				if (b > 0) printf ", anycached/anycached-base = %.2f, anycached-base/dnsdist = %.2f", a / b, (d > 0 ? b / d : 0)
				printf "\n" }'
		done
		# Medians over the rounds: robust to a round disturbed by other work on the VM.
		for s in "${MISS_SERVERS[@]}"; do
			read -r m lo hi <<<"$(for ((rep = 1; rep <= MISS_REPS; rep++)); do
				read -r _ _ _ _ _ _ _ v _ <<<"${M[$rep,$s]}"
				echo "$v"
			done | median_range)"
			printf '  median %-15s %7.2f us/q (min %.2f, max %.2f)\n' "$s" "$m" "$lo" "$hi"
		done
		for o in dnsdist unbound ${BASE:+anycached-base}; do
			read -r m lo hi <<<"$(for ((rep = 1; rep <= MISS_REPS; rep++)); do
				read -r _ _ _ _ _ _ _ a _ <<<"${M[$rep,anycached]}"
				read -r _ _ _ _ _ _ _ b _ <<<"${M[$rep,$o]}"
				awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f\n", (b > 0 ? a / b : 0) }'
			done | median_range)"
			printf '  median ratio anycached/%s = %.2f (rounds: %.2f-%.2f)\n' "$o" "$m" "$lo" "$hi"
		done
	} | if [ -n "$OUT" ]; then tee "$OUT"; else cat; fi
	cleanup
	rm -rf "$WORK"
	exit 0
fi

if [ "$STRACE" = 1 ]; then
	# System calls per miss: strace attaches to every thread of the running server after
	# it answered once, counts (-c) while dnsperf sends ST_NAMES unique names at ST_RATE,
	# and prints its table when interrupted.
	for s in anycached dnsdist; do
		case $s in
		anycached) start anycached "$BUILD/anycached" -c "$WORK/anycached.yaml" ;;
		dnsdist) start dnsdist dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf" ;;
		esac
		wait_up "$s"
		miss_names "st$s" "$ST_NAMES" >"$WORK/st-$s.txt"
		targs=()
		for t in /proc/"${PID[$s]}"/task/*; do targs+=(-p "${t##*/}"); done
		strace -c -f -o "$WORK/strace-$s.txt" "${targs[@]}" 2>/dev/null &
		spid=$!
		sleep 1
		taskset -c "$GEN_CPU" dnsperf -s "${ADDR[$s]}" -p $PORT -d "$WORK/st-$s.txt" -n 1 \
			-c 8 -q 500 -t 2 -Q "$ST_RATE" >"$WORK/st-$s.log" 2>&1
		kill -INT "$spid"
		wait "$spid" || true
		done_q=$(awk '/Queries completed:/ { print $3 }' "$WORK/st-$s.log")
		{
			echo "$s: system calls per miss, strace -c -f, $ST_NAMES unique names at $ST_RATE q/s," \
				"$done_q answered"
			awk -v q="$done_q" '$1 ~ /^[0-9.]+$/ && NF >= 5 { name = $NF; calls = $4;
				if (calls !~ /^[0-9]+$/ || name == "total") next;
				tot += calls; if (name != "io_uring_enter") oth += calls;
				printf "  %-18s %8d calls  %6.2f per query\n", name, calls, calls / q }
				END { printf "  total %.2f per query, %.2f besides io_uring_enter\n", tot / q, oth / q }' \
				"$WORK/strace-$s.txt"
			echo
		} | if [ -n "$OUT" ]; then tee -a "$OUT"; else cat; fi
		kill "${PID[$s]}"
		wait "${PID[$s]}" 2>/dev/null || true
		unset "PID[$s]"
	done
	cleanup
	rm -rf "$WORK"
	exit 0
fi

if [ "$STARTUP" = 1 ]; then
	# Start to serving: bench/startup forks and execs anycached STARTUP_REPS times and
	# polls it with a UDP query for h0.bench.test/A every millisecond (bounded to 5 s);
	# the first answer ends a start (it went to knotd and back: one upstream round trip).
	{
		echo "anycache start to serving, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
		echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs," \
			"kernel $(uname -r); anycached $(cd "$ROOT" && git describe --always --dirty 2>/dev/null) (release build)"
		echo "from fork+exec of anycached -c CONF to the first UDP answer (a query every 1 ms, unpinned)"
		for t in anycached anycached-t2; do
			echo "$t (threads: $([ $t = anycached ] && echo 1 || echo 2)), $STARTUP_REPS starts:"
			"$BUILD/bench/startup" -s "${ADDR[$t]}" -p $PORT -n "$STARTUP_REPS" -o "$WORK/$t-startup.log" \
				-- "$BUILD/anycached" -c "$WORK/$t.yaml" ||
				{ echo "run.sh: startup failed; log:" >&2; tail -20 "$WORK/$t-startup.log" >&2; exit 1; }
		done
	} | if [ -n "$OUT" ]; then tee "$OUT"; else cat; fi
	cleanup
	rm -rf "$WORK"
	exit 0
fi

if [ "$PERF" = 1 ]; then
	# Sampled, so approximate (cpu-clock at 10 kHz: about 5000 samples per second of CPU), but it
	# sees the kernel, which callgrind does not. A symbol's share of the samples times the
	# server's CPU per query (schedstat, exact) gives its CPU us per query.
	PERF_RATE=${PERF_RATE:-${RATES%% *}}
	start reflector "$BUILD/bench/reflector" -l "${ADDR[reflector]}:$PORT"
	start reflector-uring "$BUILD/bench/reflector" -u -l "${ADDR[reflector-uring]}:$PORT"
	start anycached "${BIN:-$BUILD/anycached}" -c "$WORK/anycached.yaml"
	for s in reflector reflector-uring anycached; do wait_up "$s"; done
	taskset -c "$GEN_CPU" dnsperf -s "${ADDR[anycached]}" -p $PORT -d "$WORK/hit.txt" -n 3 -c 1 \
		-q 50 >"$WORK/warm-anycached.log" 2>&1
	{
		echo "perf profile of hits at $PERF_RATE q/s, ${DUR}s each, $(date -u '+%Y-%m-%d %H:%M:%S UTC')," \
			"anycached $(cd "$ROOT" && git describe --always --dirty 2>/dev/null) ${BIN:-}"
		# PERF_TCP=1: anycached only, over TCP (dnsperf -m tcp) and then over UDP at PERF_RATE.
		runs=("reflector udp" "reflector-uring udp" "anycached udp")
		[ "${PERF_TCP:-0}" = 1 ] && runs=("anycached tcp" "anycached udp")
		for run in "${runs[@]}"; do
			read -r s mode <<<"$run"
			taskset -c "$GEN_CPU" perf record -q -e cpu-clock -F 10000 -p "${PID[$s]}" -o "$WORK/perf-$s-$mode.data" \
				>/dev/null 2>&1 &
			ppid=$!
			sleep 0.2
			read -r sent done _ _ _ _ _ ns wk <<<"$(measure "$s" "$WORK/hit.txt" "$DUR" "$PERF_RATE" "$mode")"
			kill -INT "$ppid"
			wait "$ppid" 2>/dev/null || true
			echo
			echo "$s over $mode: $done of $sent answered, $ns CPU us/query (schedstat), $wk wake-ups/query," \
				"$(awk '/^AnonHugePages/ { print $2, $3 }' "/proc/${PID[$s]}/smaps_rollup") in huge pages"
			perf report -i "$WORK/perf-$s-$mode.data" --no-children --sort dso,sym --stdio 2>/dev/null |
				awk -v us="$ns" -v top="${PERF_TOP:-30}" '
				/^ *[0-9.]+%/ { p = $1; sub(/%/, "", p); k = ($3 == "[k]") ? "kernel" : "user";
					share[k] += p; if (shown++ < top) { $1 = ""; printf "  %6.3f us  %5.1f%%  %s\n", p * us / 100, p, $0 } }
				END { printf "  kernel %.1f%% (%.2f us/q), user %.1f%% (%.2f us/q)\n",
					share["kernel"], share["kernel"] * us / 100, share["user"], share["user"] * us / 100 }'
		done
	} | if [ -n "$OUT" ]; then tee "$OUT"; else cat; fi
	# PERF_KEEP=DIR keeps the samples (perf-<server>.data) for perf report or perf annotate.
	[ -n "${PERF_KEEP:-}" ] && mkdir -p "$PERF_KEEP" && cp "$WORK"/perf-*.data "$PERF_KEEP"/
	cleanup
	rm -rf "$WORK"
	exit 0
fi

if [ "$HITS_ONLY" = 1 ]; then
	HIT_SERVERS=(reflector reflector-uring reflector-mmsg reflector-poll anycached)
	start reflector "$BUILD/bench/reflector" -l "${ADDR[reflector]}:$PORT"
	start reflector-uring "$BUILD/bench/reflector" -u -l "${ADDR[reflector-uring]}:$PORT"
	start reflector-mmsg "$BUILD/bench/reflector" -m -l "${ADDR[reflector-mmsg]}:$PORT"
	start reflector-poll "$BUILD/bench/reflector" -p -l "${ADDR[reflector-poll]}:$PORT"
	start anycached "${BIN:-$BUILD/anycached}" -c "$WORK/anycached.yaml"
	start_base && HIT_SERVERS+=(anycached-base)
	for s in "${HIT_SERVERS[@]}"; do wait_up "$s"; done
	for s in "${HIT_SERVERS[@]}"; do
		[[ $s == anycached* ]] || continue
		taskset -c "$GEN_CPU" dnsperf -s "${ADDR[$s]}" -p $PORT -d "$WORK/hit.txt" -n 3 -c 1 \
			-q 50 >"$WORK/warm-$s.log" 2>&1
	done
	declare -A H=()
	{
		echo "anycache UDP hits in rounds, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
		echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs," \
			"kernel $(uname -r); anycached $(cd "$ROOT" && git describe --always --dirty 2>/dev/null)" \
			"${BIN:-}${BASE:+, anycached-base from $BASE}"
		echo "setup: servers pinned to CPU $SRV_CPU, dnsperf and knotd on CPU $GEN_CPU; $NAMES names, dnsperf" \
			"-c 8 -q 500; ${HIT_REPS:-5} rounds of ${DUR}s per server and rate, servers in turn;"
		echo "CPU us/q from schedstat (all threads, exact); floor = the cheaper reflector of the round"
		printf '  %-5s %-6s %-16s %8s %8s %9s %6s %9s\n' round rate server done lost "CPU us/q" user wakeups/q
		for ((rep = 1; rep <= ${HIT_REPS:-5}; rep++)); do
			for rate in $RATES; do
				for s in "${HIT_SERVERS[@]}"; do
					log "hits round $rep: $s at $rate q/s for ${DUR}s"
					H[$rep,$rate,$s]=$(measure "$s" "$WORK/hit.txt" "$DUR" "$rate")
					read -r _ done lost _ _ _ uus ns wk <<<"${H[$rep,$rate,$s]}"
					printf '  %-5s %-6s %-16s %8s %8s %9s %6s %9s\n' "$rep" "$rate" "$s" "$done" "$lost" "$ns" "$uus" "$wk"
				done
			done
		done
		for rate in $RATES; do
			for s in "${HIT_SERVERS[@]}"; do
				[[ $s == anycached* || $s == reflector-* ]] || continue
				for o in floor reflector reflector-uring reflector-mmsg reflector-poll; do
					[ "$o" = "$s" ] && continue
					read -r m lo hi <<<"$(for ((rep = 1; rep <= ${HIT_REPS:-5}; rep++)); do
						read -r _ _ _ _ _ _ _ a _ <<<"${H[$rep,$rate,$s]}"
						read -r _ _ _ _ _ _ _ r _ <<<"${H[$rep,$rate,reflector]}"
						read -r _ _ _ _ _ _ _ u _ <<<"${H[$rep,$rate,reflector-uring]}"
						if [ "$o" = floor ]; then
							b=$r
						else
							read -r _ _ _ _ _ _ _ b _ <<<"${H[$rep,$rate,$o]}"
						fi
						awk -v a="$a" -v b="$b" -v u="$u" -v o="$o" 'BEGIN {
							if (o == "floor" && u < b) b = u
							printf "%.3f\n", (b > 0 ? a / b : 0) }'
					done | median_range)"
					printf '  %s q/s: %s / %s, median %.2f (rounds %.2f-%.2f)\n' "$rate" "$s" "$o" \
						"$m" "$lo" "$hi"
				done
			done
		done
	} | if [ -n "$OUT" ]; then tee "$OUT"; else cat; fi
	cleanup
	rm -rf "$WORK"
	exit 0
fi

if [ "$TCP_ONLY" = 1 ]; then
	start anycached "${BIN:-$BUILD/anycached}" -c "$WORK/anycached.yaml"
	TCP_SERVERS=(anycached)
	start_base && TCP_SERVERS+=(anycached-base)
	for s in "${TCP_SERVERS[@]}"; do
		wait_up "$s"
		taskset -c "$GEN_CPU" dnsperf -s "${ADDR[$s]}" -p $PORT -d "$WORK/hit.txt" -n 3 -c 1 \
			-q 50 >"$WORK/warm-$s.log" 2>&1
	done
	declare -A TR=()
	{
		echo "anycached TCP against UDP hits, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), ${BIN:-$BUILD/anycached}" \
			"${BASE:+, anycached-base from $BASE}"
		echo "  $TCP_RATE q/s, ${TCP_DUR}s per pass; sched us per query (tcp / udp = ratio):"
		for ((i = 0; i < ${TCP_REPS:-5}; i++)); do
			for s in "${TCP_SERVERS[@]}"; do
				read -r _ dt _ _ rt _ _ t _ <<<"$(measure "$s" "$WORK/hit.txt" "$TCP_DUR" "$TCP_RATE" tcp)"
				read -r _ du _ _ ru _ _ u _ <<<"$(measure "$s" "$WORK/hit.txt" "$TCP_DUR" "$TCP_RATE")"
				TR[$i,$s]="$t $u"
				r=$(awk -v a="$t" -v b="$u" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
				echo "  round $i $s: tcp $t us ($dt answered, $rt), udp $u us ($du answered, $ru): $r"
			done
		done
		for s in "${TCP_SERVERS[@]}"; do
			read -r m lo hi <<<"$(for ((i = 0; i < ${TCP_REPS:-5}; i++)); do
				awk -v p="${TR[$i,$s]}" 'BEGIN { split(p, x, " "); printf "%.3f\n", (x[2] > 0 ? x[1] / x[2] : 0) }'
			done | median_range)"
			printf '  %s median TCP/UDP: %.2f (rounds %.2f-%.2f)\n' "$s" "$m" "$lo" "$hi"
		done
		if [ -n "${BASE:-}" ]; then
			for k in 1 2; do
				read -r m lo hi <<<"$(for ((i = 0; i < ${TCP_REPS:-5}; i++)); do
					awk -v a="${TR[$i,anycached]}" -v b="${TR[$i,anycached-base]}" -v k=$k 'BEGIN {
						split(a, x, " "); split(b, y, " "); printf "%.3f\n", (y[k] > 0 ? x[k] / y[k] : 0) }'
				done | median_range)"
				printf '  %s anycached / anycached-base median: %.3f (rounds %.3f-%.3f)\n' \
					"$( [ $k = 1 ] && echo TCP || echo UDP )" "$m" "$lo" "$hi"
			done
		fi
	} | if [ -n "$OUT" ]; then tee "$OUT"; else cat; fi
	cleanup
	rm -rf "$WORK"
	exit 0
fi

# ---- start the servers ----
start reflector "$BUILD/bench/reflector" -l "${ADDR[reflector]}:$PORT"
start reflector-uring "$BUILD/bench/reflector" -u -l "${ADDR[reflector-uring]}:$PORT"
start anycached "$BUILD/anycached" -c "$WORK/anycached.yaml"
start unbound unbound -d -c "$WORK/unbound.conf"
start dnsdist dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf"
for s in "${ORDER[@]}"; do wait_up "$s"; done

# Warm-up: every cache holds every name before anything is measured.
for s in anycached unbound dnsdist; do
	taskset -c "$GEN_CPU" dnsperf -s "${ADDR[$s]}" -p $PORT -d "$WORK/hit.txt" -n 3 -c 1 -q 50 \
		>"$WORK/warm-$s.log" 2>&1
	alive "$s"
done

declare -A R=()
for phase in $RATES max; do
	for s in "${ORDER[@]}"; do
		log "hit $s at $phase q/s for ${DUR}s"
		R[hit,$s,$phase]=$(measure "$s" "$WORK/hit.txt" "$DUR" "$phase")
	done
done
if [ "$MISS" = 1 ]; then
	for s in anycached unbound dnsdist; do
		log "miss $s at $MISS_RATE q/s for ${MISS_DUR}s"
		# Each server gets its own slice of unique names (dnsperf reads the file from the top).
		tail -n +$(( $(printf '%s\n' anycached unbound dnsdist | grep -n "^$s$" | cut -d: -f1) * MISS_RATE * MISS_DUR - MISS_RATE * MISS_DUR + 1 )) \
			"$WORK/miss.txt" >"$WORK/miss-$s.txt"
		R[miss,$s]=$(measure "$s" "$WORK/miss-$s.txt" "$MISS_DUR" "$MISS_RATE")
	done
fi
# TCP hits: the caches only (the reflectors speak UDP), 8 connections pipelining.
for s in anycached unbound dnsdist; do
	log "tcp hit $s at $TCP_RATE q/s for ${TCP_DUR}s"
	R[tcp,$s]=$(measure "$s" "$WORK/hit.txt" "$TCP_DUR" "$TCP_RATE" tcp)
done
# anycached over UDP at the TCP rate: TCP against UDP at the same work per second.
log "udp hit anycached at $TCP_RATE q/s for ${TCP_DUR}s"
R[tcpudp,anycached]=$(measure anycached "$WORK/hit.txt" "$TCP_DUR" "$TCP_RATE")
# threads: 1 against threads: 2, the same CPU for both (the cost of a second worker on one
# core: steering, wake-ups, shared-cache synchronisation), hits then misses.
T2_RATE=${T2_RATE:-${RATES%% *}}
start anycached-t2 "$BUILD/anycached" -c "$WORK/anycached-t2.yaml"
wait_up anycached-t2
taskset -c "$GEN_CPU" dnsperf -s "${ADDR[anycached-t2]}" -p $PORT -d "$WORK/hit.txt" -n 3 -c 8 -q 50 \
	>"$WORK/warm-anycached-t2.log" 2>&1
# T2_REPS rounds, the two taking turns, so a burst of other work on the shared VM spoils
# one round rather than one side; the report gives each round and the median ratio.
for ((rep = 1; rep <= T2_REPS; rep++)); do
	for s in anycached anycached-t2; do
		log "threads round $rep: $s hits at $T2_RATE q/s, misses at $MISS_RATE q/s, ${T2_DUR}s each"
		R[t2hit$rep,$s]=$(measure "$s" "$WORK/hit.txt" "$T2_DUR" "$T2_RATE")
		miss_names "t2r$rep$s" $((MISS_RATE * T2_DUR + 1000)) >"$WORK/t2miss-$s.txt"
		R[t2miss$rep,$s]=$(measure "$s" "$WORK/t2miss-$s.txt" "$T2_DUR" "$MISS_RATE")
	done
done
# The chart takes the round with the median threads 2 / threads 1 hit ratio.
t2med() {
	local k=$1 rep a b
	for ((rep = 1; rep <= T2_REPS; rep++)); do
		read -r _ _ _ _ _ _ _ a _ <<<"${R[$k$rep,anycached]}"
		read -r _ _ _ _ _ _ _ b _ <<<"${R[$k$rep,anycached-t2]}"
		awk -v a="$a" -v b="$b" -v r="$rep" 'BEGIN { printf "%.2f %d\n", (a > 0 ? b / a : 0), r }'
	done | sort -n | awk '{ v[NR] = $1; r[NR] = $2 } END { m = int((NR + 1) / 2); print v[m], r[m], v[1], v[NR] }'
}
for k in t2hit t2miss; do
	read -r _ mr _ _ <<<"$(t2med $k)"
	R[$k,anycached]=${R[$k$mr,anycached]}
	R[$k,anycached-t2]=${R[$k$mr,anycached-t2]}
done

# ---- report ----
report() {
	local s f
	echo "anycache throughput bench, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs," \
		"kernel $(uname -r)"
	echo "versions: anycached $(cd "$ROOT" && git describe --always --dirty 2>/dev/null)" \
		"($("$BUILD/anycached" --version | awk '{print $2}'), release build, $(cc --version | head -1))," \
		"unbound $(unbound -V | awk 'NR==1{print $2}'), $(dnsdist --version | head -1 | awk '{print $1, $2}')," \
		"knotd $(knotd --version | awk '{print $NF}'), dnsperf $(dpkg-query -W -f '${Version}' dnsperf 2>/dev/null)"
	echo "setup: servers pinned to CPU $SRV_CPU with 1 worker thread each; dnsperf and knotd on CPU $GEN_CPU;" \
		"dnsperf -c 8 -q 500, ${DUR}s per server and phase; $NAMES names, warmed (3 passes) before measuring"
	echo "At a fixed rate every server does the same work per second: compare CPU us/q there. At 'max'"
	echo "dnsperf (one core) is the limit, each server sees a different rate, so batching differs."
	echo "user = the utime share of CPU us/q (the rest is kernel: syscalls, UDP, io_uring)"
	echo "CPU us/q = (utime+stime of the whole server process, all threads, from /proc/PID/stat) / queries completed"
	echo
	for phase in $RATES max; do
		echo "cache hits, dnsperf at ${phase} q/s:"
		printf '  %-16s %9s %9s %7s %9s %7s  %s\n' server sent done lost "CPU us/q" "user" "rcodes (QPS)"
		for s in "${ORDER[@]}"; do
			read -r sent done lost qps rc us uus _ <<<"${R[hit,$s,$phase]}"
			printf '  %-16s %9s %9s %7s %9s %7s  %s (%s q/s)\n' "$s" "$sent" "$done" "$lost" "$us" "$uus" "$rc" "$qps"
		done
		read -r _ _ _ _ _ a _ <<<"${R[hit,anycached,$phase]}"
		for s in reflector reflector-uring unbound dnsdist; do
			read -r _ _ _ _ _ b _ <<<"${R[hit,$s,$phase]}"
			f=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
			echo "  CPU per query anycached/$s = $f"
		done
		echo
	done
	if [ "$MISS" = 1 ]; then
		echo "cache misses (unique names, each forwarded to knotd), dnsperf asks ${MISS_RATE} q/s for ${MISS_DUR}s:"
		printf '  %-16s %9s %9s %7s %9s %7s  %s\n' server sent done lost "CPU us/q" "user" "rcodes (QPS)"
		for s in anycached unbound dnsdist; do
			read -r sent done lost qps rc us uus _ <<<"${R[miss,$s]}"
			printf '  %-16s %9s %9s %7s %9s %7s  %s (%s q/s)\n' "$s" "$sent" "$done" "$lost" "$us" "$uus" "$rc" "$qps"
		done
		echo
	fi
	echo "cache hits over TCP (dnsperf -m tcp, 8 connections, up to 500 queries in flight each), ${TCP_RATE} q/s for ${TCP_DUR}s:"
	printf '  %-16s %9s %9s %7s %9s %7s %9s  %s\n' server sent done lost "CPU us/q" "user" "sched us" "rcodes (QPS)"
	for s in anycached unbound dnsdist; do
		read -r sent done lost qps rc us uus ns _ <<<"${R[tcp,$s]}"
		printf '  %-16s %9s %9s %7s %9s %7s %9s  %s (%s q/s)\n' "$s" "$sent" "$done" "$lost" "$us" "$uus" "$ns" "$rc" "$qps"
	done
	read -r sent done lost qps rc us uus ns _ <<<"${R[tcpudp,anycached]}"
	printf '  %-16s %9s %9s %7s %9s %7s %9s  %s (%s q/s)\n' "anycached (UDP)" "$sent" "$done" "$lost" "$us" "$uus" "$ns" "$rc" "$qps"
	echo "  ratios from sched us (exact; ticks are 10 ms, coarse over ${TCP_DUR}s):"
	read -r _ _ _ _ _ _ _ a _ <<<"${R[tcp,anycached]}"
	read -r _ _ _ _ _ _ _ u _ <<<"${R[tcpudp,anycached]}"
	for s in unbound dnsdist; do
		read -r _ _ _ _ _ _ _ b _ <<<"${R[tcp,$s]}"
		echo "  TCP CPU per query anycached/$s = $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
	done
	echo "  anycached TCP/UDP at ${TCP_RATE} q/s = $(awk -v a="$a" -v b="$u" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
	echo
	echo "anycached threads: 1 against threads: 2 (both pinned to CPU $SRV_CPU), ${T2_DUR}s per pass, $T2_REPS rounds;"
	echo "hits at ${T2_RATE} q/s, misses (unique names) at ${MISS_RATE} q/s; '!' = under 95 % of the asked"
	echo "rate answered (dnsperf starved by other load): that round is not at equal work:"
	printf '  %-5s %-8s %-16s %9s %9s %7s %9s %7s %9s %9s  %s\n' round pass server sent done lost "CPU us/q" "user" "sched us" wakeups/q "rcodes (QPS)"
	for k in t2hit t2miss; do
		for ((rep = 1; rep <= T2_REPS; rep++)); do
			for s in anycached anycached-t2; do
				read -r sent done lost qps rc us uus ns wk <<<"${R[$k$rep,$s]}"
				f=$(awk -v q="$qps" -v r="$([ $k = t2hit ] && echo "$T2_RATE" || echo "$MISS_RATE")" 'BEGIN { print (q < 0.95 * r ? "!" : "") }')
				printf '  %-5s %-8s %-16s %9s %9s %7s %9s %7s %9s %9s  %s (%s q/s)%s\n' "$rep" "${k#t2}" "$s" "$sent" "$done" "$lost" "$us" "$uus" "$ns" "$wk" "$rc" "$qps" "$f"
			done
		done
		read -r m _ lo hi <<<"$(t2med $k)"
		echo "  ${k#t2}: CPU per query (sched us) threads 2 / threads 1, median $m (rounds $lo-$hi)"
	done
	echo
}
# The chart: CPU us per query per server (schedstat, exact), UDP hits at the first fixed rate, misses, TCP hits
# (threads: 2 from its own passes). gnuplot leaves a gap where a server has no figure.
chart() {
	local png=$1 r1=${RATES%% *} s h m t
	{
		for s in "${ORDER[@]}" anycached-t2; do
			if [ "$s" = anycached-t2 ]; then
				read -r _ _ _ _ _ _ _ h _ <<<"${R[t2hit,$s]}"
				read -r _ _ _ _ _ _ _ m _ <<<"${R[t2miss,$s]}"
				t=-
			else
				read -r _ _ _ _ _ _ _ h _ <<<"${R[hit,$s,$r1]}"
				m=-
				[ -n "${R[miss,$s]:-}" ] && read -r _ _ _ _ _ _ _ m _ <<<"${R[miss,$s]}"
				t=-
				[ -n "${R[tcp,$s]:-}" ] && read -r _ _ _ _ _ _ _ t _ <<<"${R[tcp,$s]}"
			fi
			echo "$s $h $m $t"
		done
	} >"$WORK/chart.dat"
	gnuplot <<EOF
set terminal pngcairo size 900,500 font ",10"
set output "$png"
set title "CPU µs per query, server pinned to one core ($(date -u +%Y-%m-%d), $(cd "$ROOT" && git describe --always --dirty 2>/dev/null))"
set ylabel "CPU µs per query (schedstat run time / answers)"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top left
set grid ytics
set yrange [0:*]
set xtics noenhanced
plot "$WORK/chart.dat" using 2:xtic(1) title "hit, UDP ${r1} q/s", \
     "" using 3 title "miss, UDP ${MISS_RATE} q/s", \
     "" using 4 title "hit, TCP ${TCP_RATE} q/s"
EOF
	echo "chart: $png" >&2
}
if [ -n "$OUT" ]; then
	report | tee "$OUT"
else
	report
fi
[ -n "$PNG" ] && chart "$PNG"
for s in reflector reflector-uring; do
	kill "${PID[$s]}"
	wait "${PID[$s]}" || true
	unset "PID[$s]"
	tail -1 "$WORK/$s.log" >&2
done
cleanup
rm -rf "$WORK"
