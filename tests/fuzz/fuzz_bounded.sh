#!/bin/sh
# The suite's bounded fuzz run ('fuzz' suite): one libFuzzer target for SECONDS
# on a scratch copy of its seed corpus (new inputs never land in the tree).
# A crash, leak, timeout or sanitizer report fails the test; the input that
# caused it is copied to the build directory's fuzz-crash-NAME-* files.
# Usage: fuzz_bounded.sh FUZZ_BINARY SEED_DIR SECONDS
set -eu
bin=$1 seeds=$2 secs=$3
name=$(basename "$bin")
work=$(mktemp -d /tmp/anycache-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
cp "$seeds"/* "$work"/
# liburcu's misaligned reader records: the one UBSan finding we do not own.
UBSAN_OPTIONS="suppressions=$(dirname "$0")/../sanitizers/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export UBSAN_OPTIONS
rc=0
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
	-artifact_prefix="$work/crash-" "$work" >"$work/log" 2>&1 || rc=$?
grep -E 'stat::number_of_executed_units' "$work/log" | sed "s/^/$name: /" || true
if [ "$rc" != 0 ]; then
	tail -40 "$work/log"
	for f in "$work"/crash-*; do
		[ -e "$f" ] && cp "$f" "$(dirname "$bin")/fuzz-crash-$name-$(basename "$f")"
	done
	exit 1
fi
