#!/bin/sh
# Run every unit test binary of $AMP2S3_BUILD, then the integration suite
# against $AMP2S3_BIN.  Prints one "N passed, N failed" line per suite and a
# total; exits non-zero if anything failed or nothing ran.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${AMP2S3_BUILD:?}" "${AMP2S3_BIN:?}"
export AMP2S3_BIN AMP2S3_BUILD
passed=0 failed=0
tally() { # parse "…: N passed, N failed" lines from a log
	p=$(sed -n 's/.*[^0-9]\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\1/p' "$1" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/.*[^0-9]\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\2/p' "$1" | awk '{s+=$1} END {print s+0}')
	passed=$((passed + p)); failed=$((failed + f))
}
log=$(mktemp); trap 'rm -f "$log"' EXIT
for t in "$AMP2S3_BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	if ! "$t" >"$log" 2>&1; then
		cat "$log"; echo "unit binary $t exited non-zero"
		grep -q ' passed, ' "$log" || failed=$((failed + 1))
	else
		cat "$log"
	fi
	tally "$log"
done
if [ -d "$here/integration" ]; then
	/usr/bin/python3 "$here/integration/run.py" 2>&1 | tee "$log"
	tally "$log"
	grep -q ' passed, ' "$log" || failed=$((failed + 1))
	# A skipped test is not a pass: the suite must run whole.
	if grep -q ' passed, [0-9]* failed, [0-9]* skipped' "$log"; then
		echo "integration tests were skipped: counted as a failure"
		failed=$((failed + 1))
	fi
fi
echo "TOTAL: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
