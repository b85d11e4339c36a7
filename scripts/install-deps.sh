#!/bin/sh
# Install what amp2s3 needs to build and test, from Debian's packages and
# the npm registry.  Idempotent; silent when everything is present.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --build  build dependencies only
set -eu
build="build-essential pkg-config libcurl4-openssl-dev zlib1g-dev libyajl-dev libzip-dev libarchive-dev libexpat1-dev libssl-dev libinih-dev"
test="gnuplot-nox curl python3 python3-botocore python3-boto3 python3-yaml python3-pyte awscli nodejs npm systemd groff-base man-db clang libclang-rt-14-dev"
want=$build
[ "${1:-}" = "--build" ] || want="$build $test"

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
# node/npm may come from elsewhere than Debian: accept working binaries.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	missing=$(echo "$missing" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
fi
missing=$(echo $missing)
if [ -n "$missing" ]; then
	echo "install-deps: installing $missing" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ "${1:-}" != "--build" ] && [ -x tests/s3/setup.sh ]; then
	tests/s3/setup.sh
fi
