#!/usr/bin/env bash
# The README's two commands. Run as root on Debian 12 (apt-get needs it):
#   bash scripts/dev.sh run    install build dependencies, build, run anycached on its embedded default
#   bash scripts/dev.sh test   install build + test dependencies (peers too), build, run the whole suite
# Other verbs: deps-run, deps-test, build [MESON OPTIONS] (scripts/lab.sh builds with -Dtests=enabled),
#   fuzz [SECONDS] [TARGET...]  every libFuzzer target (or those named) for SECONDS each (default 60),
#                               one after another, on a scratch copy of its seed corpus; prints the
#                               executions per target; a crash fails (its input is kept in fuzz-out/)
#   asan                        builds build-asan (ASan+UBSan) and runs the whole suite there
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
builddir=${ANYCACHE_BUILDDIR:-build}

# Debian 12 packages; README.md says why each is needed.
build_pkgs=(gcc libc6-dev pkg-config meson ninja-build
            liburing-dev libc-ares-dev libssl-dev libcyaml-dev libyaml-dev
            libjansson-dev                      # JSON of the control socket (anycachectl)
            liburcu-dev                          # RCU readers of the shared answer cache
            libcap-dev                           # capabilities kept after `user:` (privs.c)
            libsystemd-dev                       # sd_notify (Type=notify unit)
            libfstrm-dev libprotobuf-c-dev       # dnstap: Frame Streams writer, protobuf encoding
            protobuf-c-compiler)                 # dnstap: protoc-c generates the schema's C at build time
test_pkgs=(libcriterion-dev                     # unit tests
           knot knot-dnsutils bind9-dnsutils    # knotd upstream; kdig/dig clients; dnstap-read
           bird2 gobgpd frr                     # BGP router peers (BIRD 2, GoBGP, FRR)
           clang libclang-rt-14-dev             # libFuzzer targets (the runtime is only "recommended")
           iproute2 procps psmisc               # ip netns / ss / process control in tests
           strace                               # fault injection (io_uring unavailable)
           dnsperf                              # failover lab: the overload scenario's flood
           gnuplot-nox                          # failover lab timeline (scripts/lab.sh), bench/run.sh chart
           prometheus                           # promtool check metrics on a real scrape
           mandoc                               # man page lint (tests/dist)
           systemd)                              # systemd-analyze verify of the unit; not the init (systemd-sysv is)

install_pkgs() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	if ((EUID != 0)); then
		echo "dev.sh: missing packages: ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	echo "dev.sh: installing ${missing[*]}" >&2
	apt-get update -q
	# Tests start their own knotd, BIRD and FRR; the packages' init scripts must
	# not start system-wide ones (on a machine without systemd they would, and a
	# resolver on port 53 would block `run`). policy-rc.d is Debian's switch.
	local policy=/usr/sbin/policy-rc.d made_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
	fi
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		rc=$?
	((made_policy)) && rm -f "$policy"
	return "$rc"
}

build() {
	if [[ ! -f $builddir/build.ninja ]]; then
		meson setup "$builddir" "$@"
	elif (($#)); then
		meson configure "$builddir" "$@"
	fi
	ninja -C "$builddir"
}

run_tests() {
	local log rc=0
	log=$(mktemp)
	# Integration tests start real peers on loopback; two at a time suits a 2-core machine.
	meson test -C "$builddir" --print-errorlogs --num-processes 2 --no-rebuild 2>&1 |
		tee "$log" || rc=$?
	# One closing line that any CI reads: "N passed, N failed, N skipped".
	local ok fail skip tout
	ok=$(awk '/^Ok:/ {print $2}' "$log")
	fail=$(awk '/^Fail:/ {print $2}' "$log")
	skip=$(awk '/^Skipped:/ {print $2}' "$log")
	tout=$(awk '/^Timeout:/ {print $2}' "$log")
	rm -f "$log"
	echo "tests: ${ok:-0} passed, $(( ${fail:-0} + ${tout:-0} )) failed, ${skip:-0} skipped"
	return "$rc"
}

# A libFuzzer target's seed directory, read from its entry in tests/fuzz/meson.build (the one
# place that pairs them): [['NAME', sources..., 'seeds/DIR', ...]].
fuzz_seed_dir() {
	tr '\n' ' ' <tests/fuzz/meson.build | grep -o "\[\['$1',[^]]*'seeds/[a-z_]*'" |
		grep -o "seeds/[a-z_]*" | tail -1 | cut -d/ -f2
}

fuzz() {
	local secs=${1:-60} dir=$builddir/tests/fuzz out=fuzz-out rc=0 t name log execs
	shift || true
	[[ -x $dir/fuzz-bfd ]] || {
		echo "dev.sh fuzz: no libFuzzer targets in $dir (needs clang + libclang-rt-14-dev)" >&2
		return 77
	}
	mkdir -p "$out"
	# liburcu's misaligned reader records: the one UBSan finding we do not own.
	export UBSAN_OPTIONS="suppressions=$top/tests/sanitizers/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
	local targets=("$@")
	((${#targets[@]})) || for t in "$dir"/fuzz-*; do
		[[ -x $t && $t != *seeds* ]] && targets+=("${t##*/fuzz-}")
	done
	for name in "${targets[@]}"; do
		local corpus=$out/corpus-$name seeds
		seeds=$(fuzz_seed_dir "$name")
		if [[ -z $seeds || ! -d tests/fuzz/seeds/$seeds ]]; then
			rc=1
			echo "fuzz $name: FAILED (no seed directory for it in tests/fuzz/meson.build)" >&2
			continue
		fi
		rm -rf "$corpus" && mkdir -p "$corpus"
		cp tests/fuzz/seeds/"$seeds"/* "$corpus"/
		log=$out/$name.log
		# -rss_limit_mb: the answer cache and the loader stay far below it; a leak does not.
		if "$dir/fuzz-$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 \
			-print_final_stats=1 -artifact_prefix="$out/$name-" "$corpus" >"$log" 2>&1; then
			execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
			echo "fuzz $name: ${execs:-?} executions in ${secs} s, no crash"
		else
			rc=1
			echo "fuzz $name: FAILED (see $log; the input is $out/$name-*)" >&2
			grep -m3 -E 'ERROR|SUMMARY|deadly' "$log" >&2 || true
		fi
	done
	return "$rc"
}

case "${1:-}" in
deps-run) install_pkgs "${build_pkgs[@]}" ;;
deps-test) install_pkgs "${build_pkgs[@]}" "${test_pkgs[@]}" ;;
build) install_pkgs "${build_pkgs[@]}"; shift; build "$@" ;;
run)
	install_pkgs "${build_pkgs[@]}"
	build -Dtests=disabled -Dfuzz=disabled
	shift
	exec "$builddir/anycached" "$@"
	;;
test)
	install_pkgs "${build_pkgs[@]}" "${test_pkgs[@]}"
	build -Dtests=enabled -Dfuzz=auto
	run_tests
	;;
fuzz)
	install_pkgs "${build_pkgs[@]}" "${test_pkgs[@]}"
	build -Dtests=enabled -Dfuzz=enabled
	shift
	fuzz "$@"
	;;
asan)
	# AddressSanitizer + UndefinedBehaviorSanitizer over the whole suite. b_lundef=false:
	# meson's default -Wl,--no-undefined does not mix with the sanitizer runtimes.
	# The libFuzzer targets are left out (they carry their own sanitizers).
	install_pkgs "${build_pkgs[@]}" "${test_pkgs[@]}"
	builddir=${ANYCACHE_BUILDDIR:-build-asan}
	build -Db_sanitize=address,undefined -Db_lundef=false -Dtests=enabled -Dfuzz=disabled
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} run_tests
	;;
*)
	echo "usage: bash scripts/dev.sh run|test|build|deps-run|deps-test|fuzz [SECONDS] [TARGET...]|asan" >&2
	exit 2
	;;
esac
