#!/bin/sh
# Demo on a fresh machine: install, build, start the project's stand-in
# Export API on 127.0.0.1 (three days of synthetic data), run
# `amp2s3 all --dev` over those days in a scratch directory, show the result.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh --build
command -v python3 >/dev/null 2>&1 || scripts/install-deps.sh
make -s

work=$(mktemp -d /tmp/amp2s3-demo.XXXXXX)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

/usr/bin/python3 tests/server/export_api.py --port-file "$work/port" \
	--generate 20250101T00 20250103T23 --events-per-hour 200 --parts-per-hour 2 --empty-every 7 \
	--api-key demo-key --secret-key demo-secret &
server_pid=$!
i=0
while [ ! -s "$work/port" ]; do   # readiness: the port file appears
	i=$((i + 1)); [ $i -le 100 ] || { echo "demo: server did not start" >&2; exit 1; }
	kill -0 "$server_pid" 2>/dev/null || { echo "demo: server died" >&2; exit 1; }
	sleep 0.1
done
port=$(cat "$work/port")

cd "$work"
printf 'AMP_API_KEY=demo-key\nAMP_SECRET_KEY=demo-secret\nAMP_API_URL=http://127.0.0.1:%s/api/2/export\n' "$port" > .env
chmod 600 .env
echo "== amp2s3 all --dev --start-date 20250101T00 --end-date 20250103T23 -j 4 (in $work)"
"$root/amp2s3" all --dev --start-date 20250101T00 --end-date 20250103T23 -j 4 || exit $?
echo "== s3_dev/python-import/: $(ls s3_dev/python-import | wc -l) hour objects"
ls -l s3_dev/python-import | head -8
echo "   ..."
echo "== empty hours: $(find s3_dev/python-import -size 0 | wc -l), events: $(cat s3_dev/python-import/*.jsonl | wc -l)"
echo "== first event of 2025-01-01_00:"
head -c 300 s3_dev/python-import/2025-01-01_00.jsonl; echo
echo "== rerun: nothing left to do"
"$root/amp2s3" all --dev --start-date 20250101T00 --end-date 20250103T23
echo "== data/ is empty again: $(ls data | wc -l) files"
echo "== amp2s3 status --dev"
"$root/amp2s3" status --dev --start-date 20250101T00 --end-date 20250103T23
