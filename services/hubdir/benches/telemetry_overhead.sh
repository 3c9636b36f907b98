#!/usr/bin/env bash
# FindNearest saturated QPS with telemetry off, and with traces and metrics exported over OTLP
# to a real receiver (integration-tests/python/otlp_receiver.py, counting only), on the same
# database, in alternating runs: off, on, off, on, ... Prints each run's hubdir-loadgen table
# and the receiver's counts. BENCHMARKS.md, "Telemetry overhead", gives the figures.
#
#   cargo build --release -p hubdir --bins
#   services/hubdir/benches/telemetry_overhead.sh            # every trace kept
#   RATIO=0.01 services/hubdir/benches/telemetry_overhead.sh # trace_sample_ratio = 0.01
#
# Variables: SITES (demo sites, 100000), ROUNDS (pairs of runs, 2), SECONDS_PER_PHASE (10),
# RATIO (unset: every trace), HUBDIR_PYTHON (a Python with integration-tests/requirements.txt).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release
python=${HUBDIR_PYTHON:-python3}
sites=${SITES:-100000}
rounds=${ROUNDS:-2}
seconds=${SECONDS_PER_PHASE:-10}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"

echo "== loading $sites demo sites into $work/bench.db"
"$bin/hubdir" serve --node-id zw --demo --demo-sites "$sites" --db "sqlite://$work/bench.db" \
  --listen 127.0.0.1:0 2> demo.log &
until grep -q "discovery index loaded" demo.log; do sleep 1; done
kill -TERM %1; wait %1 || true

"$python" "$root/integration-tests/python/otlp_receiver.py" "$work/received.json" --count-only > receiver.out &
receiver=$!
until grep -q listening receiver.out; do sleep 0.2; done
port=$(sed -n 's/^listening //p' receiver.out)

run() { # $1: off | on
  local config="$work/$1.toml"
  : > "$config"
  if [ "$1" = on ]; then
    printf '[telemetry]\notlp_endpoint = "http://127.0.0.1:%s"\nmetrics_interval_secs = 10\n' "$port" > "$config"
    [ -n "${RATIO:-}" ] && printf 'trace_sample_ratio = %s\n' "$RATIO" >> "$config"
  fi
  "$bin/hubdir" serve --node-id zw --config "$config" --db "sqlite://$work/bench.db" \
    --listen 127.0.0.1:50151 2> "node-$1.log" &
  local node=$!
  until grep -q "discovery index loaded" "node-$1.log"; do sleep 0.5; done
  echo "== telemetry $1"
  "$bin/hubdir-loadgen" --address http://127.0.0.1:50151 --seconds "$seconds" --rate 1000 | grep -E "^\| (RPC|FindNearest|health)"
  kill -TERM "$node"; wait "$node" || true
}

for _ in $(seq "$rounds"); do run off; run on; done
kill -TERM "$receiver"; wait "$receiver" || true
echo "== received: $(cat "$work/received.json")"
