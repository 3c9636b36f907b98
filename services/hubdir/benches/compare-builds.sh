#!/usr/bin/env bash
# Two release builds on one SQLite file, alternately twice (before, after, before, after): RSS
# when ready, then hubdir-loadgen (the AFTER build's, for both) for 5 s per phase; prints the
# saturated FindNearest and health rows (BENCHMARKS.md, "Start from the index snapshot").
#
#   BEFORE=<dir with release/hubdir> AFTER=<dir with release/hubdir and hubdir-loadgen> \
#     DB=/tmp/hubdir-scale/demo-1000000.db SITES=1000000 services/hubdir/benches/compare-builds.sh
#
# Exit codes: 0 measured; 1 a step failed.
set -euo pipefail
db=${DB:?set DB to a SQLite file of demo sites}
before=${BEFORE:?}/release
after=${AFTER:?}/release
sites=${SITES:-1000000}
port=50171
run() { # label binary
  local label=$1 bin=$2
  env -u HUBDIR_INDEX__SNAPSHOT "$bin/hubdir" serve --db "sqlite://$db" --listen 127.0.0.1:$port 2> "/tmp/compare-$label.log" &
  local pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$port/v1/nearest?lat=1&lng=1"; do sleep 0.2; done
  local rss=$(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) * 1024 ))
  "$after/hubdir-loadgen" --address "http://127.0.0.1:$port" --seconds 5 --rate 1000 > "/tmp/compare-$label.txt"
  kill -TERM $pid; wait $pid || true
  echo "$label rss/site=$(( rss / sites )) $(grep -E '^\| (FindNearest|health Check \(floor\)) \| saturation' "/tmp/compare-$label.txt" | tr -s ' ' | tr '\n' ' ')"
}
run before1 "$before"
run after1 "$after"
run before2 "$before"
run after2 "$after"
