#!/usr/bin/env bash
# Start to ready on PostgreSQL (BENCHMARKS.md, "Start from the index snapshot"): a node on
# SITES demo sites in a schema of its own, started three times with the same binary:
#   1. from the store (`HUBDIR_INDEX__SNAPSHOT=false`): every site read and validated;
#   2. with a snapshot file (`HUBDIR_INDEX__SNAPSHOT_FILE`): built from the store, then a
#      snapshot written (not timed);
#   3. the same again: from the snapshot.
# Ready is when `GET /v1/nearest` answers 200 (the index loaded).
#
#   cargo build --release -p hubdir --bins
#   POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test SITES=100000 services/hubdir/benches/start-postgres.sh
#
# The schema (`hubdir_bench_start_<SITES>`) is kept between runs: its demo sites load once.
# Exit codes: 0 measured; 1 a step failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release
base=${POSTGRES_URL:?set POSTGRES_URL}
sites=${SITES:-100000}
schema=hubdir_bench_start_$sites
url="$base?options=-c%20search_path%3D$schema"
work=$(mktemp -d)
port=50181
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"

# Starts the node (extra environment in "$@"), waits until it answers, sets $pid and $ready.
serve() {
  local log=$1; shift
  local start; start=$(date +%s.%N)
  env "$@" "$bin/hubdir" serve --db "$url" --listen 127.0.0.1:$port 2> "$log" &
  pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$port/v1/nearest?lat=1&lng=1"; do
    kill -0 $pid 2>/dev/null || { tail -5 "$log" >&2; exit 1; }
    sleep 0.05
  done
  ready=$(echo "$(date +%s.%N) - $start" | bc)
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }

loaded=$(psql -qtA "$base" -c "SELECT count(*) FROM information_schema.tables WHERE table_schema = '$schema' AND table_name = 'sites'")
if [ "$loaded" = 0 ] || [ "$(psql -qtA "$base" -c "SELECT count(*) FROM $schema.sites")" != "$sites" ]; then
  psql -q "$base" -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema"
  HUBDIR_INDEX__SNAPSHOT=false "$bin/hubdir" serve --demo --demo-sites "$sites" --db "$url" \
    --listen 127.0.0.1:$port 2> load.log &
  pid=$!
  until grep -q 'discovery index loaded' load.log; do kill -0 $pid || { tail -5 load.log >&2; exit 1; }; sleep 0.2; done
  stop
fi
serve store.log HUBDIR_INDEX__SNAPSHOT=false
from_store=$ready
stop
serve write.log HUBDIR_INDEX__SNAPSHOT_FILE="$work/index"
until grep -q 'index snapshot written' write.log; do sleep 0.05; done
stop
serve snapshot.log HUBDIR_INDEX__SNAPSHOT_FILE="$work/index"
from_snapshot=$ready
grep -q 'from="snapshot"' snapshot.log || { echo "the node did not start from its snapshot" >&2; exit 1; }
stop
echo "| sites | ready from the store, s | ready from the snapshot, s | snapshot ÷ store |"
echo "|---:|---:|---:|---:|"
printf '| %s | %.1f | %.1f | %.3f |\n' "$sites" "$from_store" "$from_snapshot" "$(echo "$from_snapshot / $from_store" | bc -l)"
