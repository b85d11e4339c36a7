#!/bin/sh
# The whole test suite, as CI runs it: install what is missing, then unit and
# integration tests for the plain build, the address+undefined sanitizer
# build and the thread sanitizer build.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
make -j2 check
