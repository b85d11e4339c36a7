#!/bin/bash
# The whole test suite, as CI runs it: install what is missing, then unit and
# integration tests for the plain build, the address+undefined sanitizer
# build and the thread sanitizer build, a smoke run of the benchmarks (which
# checks they work, never timings) and a short fuzz run of every target.
# Ends with one line adding up every suite: "all: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
{
	make -j2 check
	make -s -C bench
	/usr/bin/python3 bench/bench.py smoke
	scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
} 2>&1 | tee "$log"
# Sum the per-build TOTAL lines and the fuzz line.
grep -E '^(TOTAL|fuzz): [0-9]+ passed, [0-9]+ failed' "$log" |
	sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/' |
	awk '{ p += $1; f += $2 } END { printf "all: %d passed, %d failed\n", p, f; exit (f != 0 || p == 0) }'
