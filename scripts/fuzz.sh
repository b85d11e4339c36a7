#!/bin/sh
# fuzz.sh [SECONDS]: build every libFuzzer target (make fuzz-build) and run
# each for SECONDS (default $FUZZ_SECONDS, else 60) on a scratch copy of its
# seed corpus fuzz/corpus/<name>/, so the repository's corpus never grows.
# Prints one line per target (executions, executions per second) and, last,
# "fuzz: N passed, N failed"; exits non-zero if any target crashed, found a
# leak or a timeout, or executed nothing.  Crash inputs and the log of a
# failed target are kept in $FUZZ_ARTIFACTS (default build/fuzz/artifacts).
#
# Environment: FUZZ_CC (clang), FUZZ_TARGETS (all of the Makefile's
# FUZZ_TARGETS), FUZZ_JOBS (targets run
# at once; default: the number of CPUs), FUZZ_ARGS (extra libFuzzer flags).
set -u
cd "$(dirname "$0")/.." || exit 1

secs=${1:-${FUZZ_SECONDS:-60}}
case $secs in
'' | *[!0-9]*) secs=0 ;;
esac
if [ "$secs" -lt 1 ]; then
	echo "usage: scripts/fuzz.sh [SECONDS]  (SECONDS >= 1)" >&2
	exit 2
fi
# The default targets are the Makefile's FUZZ_TARGETS (one list to keep).
targets=${FUZZ_TARGETS:-$(make -s --no-print-directory fuzz-targets)}
art=${FUZZ_ARTIFACTS:-build/fuzz/artifacts}
ntargets=0
for t in $targets; do ntargets=$((ntargets + 1)); done

summary() { # passed failed
	echo "fuzz: $1 passed, $2 failed"
	[ "$2" -eq 0 ] && [ "$1" -gt 0 ]
	exit $?
}

cc=${FUZZ_CC:-}
if [ -z "$cc" ]; then
	for c in clang clang-14; do
		if command -v "$c" >/dev/null 2>&1; then
			cc=$c
			break
		fi
	done
fi
if [ -z "$cc" ]; then
	echo "fuzz: clang not found (Debian: apt-get install clang" \
	    "libclang-rt-14-dev)" >&2
	summary 0 "$ntargets"
fi
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
if ! make -s -j"$jobs" fuzz-build FUZZ_CC="$cc" >&2; then
	echo "fuzz: build failed" >&2
	summary 0 "$ntargets"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/amp2s3-fuzz.XXXXXX") || exit 1
pids=""
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2154 # $p is the trap's own loop variable
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; exit 130' INT TERM
mkdir -p "$art"

# Start target $1 in the background (its pid appended to $pids and to
# $batch): on a scratch copy of its corpus, log in $work/$1.log.
start() {
	t=$1
	mkdir -p "$work/corpus/$t" "$art/$t"
	if [ -d "fuzz/corpus/$t" ]; then
		cp -R "fuzz/corpus/$t/." "$work/corpus/$t/"
	fi
	set -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
	    -print_final_stats=1 -artifact_prefix="$art/$t/"
	if [ -f "fuzz/$t.dict" ]; then
		set -- "$@" -dict="fuzz/$t.dict"
	fi
	# shellcheck disable=SC2086 # FUZZ_ARGS: several flags
	"build/fuzz/fuzz_$t" "$@" ${FUZZ_ARGS:-} "$work/corpus/$t" \
	    >"$work/$t.log" 2>&1 &
	pids="$pids $!"
	batch="$batch $t:$!"
}

# Wait for the targets of $batch; each exit status goes to $work/<t>.rc.
finish() {
	for tp in $batch; do
		wait "${tp#*:}"
		echo $? >"$work/${tp%%:*}.rc"
	done
	batch=""
}

# Run the targets, at most $jobs at once.
batch=""
running=0
for t in $targets; do
	if [ ! -x "build/fuzz/fuzz_$t" ]; then
		echo "fuzz: no target build/fuzz/fuzz_$t" >"$work/$t.log"
		echo 1 >"$work/$t.rc"
		continue
	fi
	start "$t"
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		finish
		running=0
	fi
done
finish

passed=0
failed=0
for t in $targets; do
	log=$work/$t.log
	rc=$(cat "$work/$t.rc" 2>/dev/null || echo 1)
	runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' \
	    "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' \
	    "$log" | tail -n 1)
	runs=${runs:-0}
	rate=${rate:-0}
	if [ "$rc" -eq 0 ] && [ "$runs" -gt 0 ]; then
		passed=$((passed + 1))
		echo "fuzz_$t: ok, $runs runs in ${secs}s ($rate/s)"
	else
		failed=$((failed + 1))
		cp "$log" "$art/fuzz_$t.log"
		echo "fuzz_$t: FAILED (exit $rc, $runs runs); log:" \
		    "$art/fuzz_$t.log"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*property violated|.*runtime error)' \
		    "$log" | head -n 5 | sed 's/^/  /'
		grep -E '^(artifact_prefix|Test unit written to)' "$log" |
		    sed 's/^/  /'
	fi
done
summary "$passed" "$failed"
