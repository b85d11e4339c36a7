#!/bin/sh
# setup.sh: install the test S3 server, s3rver 3.7.1 (pinned by
# package.json and package-lock.json), into tests/s3/node_modules.
# Idempotent and quiet: does nothing when the pinned version is there.
# Exits non-zero with one line on stderr if it cannot install.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
want=3.7.1

installed() {
	[ -f node_modules/s3rver/package.json ] &&
		grep -q "\"version\": \"$want\"" node_modules/s3rver/package.json
}

installed && exit 0
command -v npm >/dev/null 2>&1 || {
	echo "tests/s3/setup.sh: npm not found (Debian: apt-get install npm)" >&2
	exit 1
}
# Concurrent test runs: one installs, the others wait for it.
if command -v flock >/dev/null 2>&1 && [ -z "${S3SETUP_LOCKED:-}" ]; then
	S3SETUP_LOCKED=1 exec flock "${TMPDIR:-/tmp}/amp2s3-s3setup.$(id -u).lock" \
		"$here/$(basename "$0")" "$@"
fi
installed && exit 0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
	cat "$log" >&2
	echo "tests/s3/setup.sh: npm ci failed (network? registry?)" >&2
	exit 1
fi
installed || {
	echo "tests/s3/setup.sh: s3rver $want not installed after npm ci" >&2
	exit 1
}
