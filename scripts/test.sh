#!/bin/sh
# The whole test suite, as CI runs it: install what is missing, then unit and
# integration tests for the plain build, the address+undefined sanitizer
# build and the thread sanitizer build, a short fuzz run of every target and
# a smoke run of the benchmarks (which checks they work, never timings).
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
make -j2 check
make -s -C bench
/usr/bin/python3 bench/bench.py smoke
if [ -x scripts/fuzz.sh ]; then
	scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
fi
