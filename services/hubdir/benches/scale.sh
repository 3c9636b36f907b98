#!/usr/bin/env bash
# The scale curve (BENCHMARKS.md, "Scale"): for each size, a node serving that many demo
# sites from SQLite. Prints one table row per size:
#   - ready from the store: seconds from the process's start until `GET /v1/nearest` answers
#     200 (the index loaded; health turns SERVING at the same moment), with the index
#     snapshot off, so every site is read from the database (the baseline);
#   - ready from the snapshot: the same, starting from the index snapshot a previous start
#     wrote (`[index]`);
#   - RSS when ready (VmRSS, from the snapshot), and the process's peak (VmHWM) at the end of
#     the load below;
#   - the SQLite file's size (with its WAL), and the snapshot's, per site;
#   - FindNearest over gRPC, saturated, and the health floor, from `hubdir-loadgen` (k = 10,
#     FULL view, positions uniform on the sphere, SECONDS_PER_PHASE each).
# Then it draws the curve with matplotlib (BENCHMARKS.md links the picture).
#
#   cargo build --release -p hubdir --bins
#   SIZES="100000 1000000" services/hubdir/benches/scale.sh
#
# Variables: SIZES (demo sites per point), DATA_DIR (where the databases are kept between
# runs: loading a million demo sites takes 5 to 13 minutes), SECONDS_PER_PHASE (5), PLOT
# (the picture to write, docs/benchmarks/scale.svg), HUBDIR_PYTHON (a Python where
# matplotlib can be installed). Exit codes: 0 measured; 1 a step failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release
sizes=${SIZES:-"100000 1000000"}
data=${DATA_DIR:-/tmp/hubdir-scale}
seconds=${SECONDS_PER_PHASE:-5}
plot=${PLOT:-$root/docs/benchmarks/scale.svg}
python=${HUBDIR_PYTHON:-python3}
port=50161
mkdir -p "$data"
cd "$data"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

# Waits until `$2` succeeds, while process $1 lives; else prints log $3 and fails.
wait_for() {
  local pid=$1 check=$2 log=$3
  until eval "$check"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the node stopped before it was ready:" >&2
      tail -5 "$log" >&2
      exit 1
    fi
    sleep 0.05
  done
}
rows="$data/rows.tsv"
: > "$rows"

echo "| sites | ready from the store, s | ready from the snapshot, s | RSS ready B/site | peak RSS B/site | SQLite B/site | snapshot B/site | FindNearest QPS | health QPS | ratio | FindNearest p50 µs |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
# Starts a node on $db (extra environment in "$@"), and waits until it answers: sets $pid and
# $ready (seconds since its start).
serve() {
  local log=$1; shift
  local start; start=$(date +%s.%N)
  env "$@" "$bin/hubdir" serve --db "sqlite://$db" --listen 127.0.0.1:$port 2> "$log" &
  pid=$!
  wait_for $pid "curl -sf -o /dev/null 'http://127.0.0.1:$port/v1/nearest?lat=1&lng=1'" "$log"
  ready=$(echo "$(date +%s.%N) - $start" | bc)
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }
for n in $sizes; do
  db="$data/demo-$n.db"
  if [ ! -f "$db.loaded" ]; then
    rm -f "$db" "$db-wal" "$db-shm"
    HUBDIR_INDEX__SNAPSHOT=false "$bin/hubdir" serve --demo --demo-sites "$n" --db "sqlite://$db" \
      --listen 127.0.0.1:$port 2> "load-$n.log" &
    loader=$!
    wait_for $loader "grep -q 'discovery index loaded' load-$n.log" "load-$n.log"
    kill -TERM $loader; wait $loader || true
    touch "$db.loaded"
  fi
  # The baseline: every site read from the store.
  serve "store-$n.log" HUBDIR_INDEX__SNAPSHOT=false
  ready_store=$ready
  stop
  # A start that writes a snapshot (after loading from the store), then one that reads it.
  rm -f "$db.index"
  serve "snapshot-$n.log"
  wait_for $pid "grep -q 'index snapshot written' snapshot-$n.log" "snapshot-$n.log"
  stop
  serve "serve-$n.log"
  grep -q 'from="snapshot"\|from=snapshot' "serve-$n.log" || { echo "the node did not start from its snapshot:" >&2; tail -5 "serve-$n.log" >&2; exit 1; }
  rss_ready=$(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) * 1024 ))
  "$bin/hubdir-loadgen" --address "http://127.0.0.1:$port" --seconds "$seconds" --rate 1000 > "loadgen-$n.txt"
  peak=$(( $(awk '/VmHWM/ {print $2}' /proc/$pid/status) * 1024 ))
  stop
  bytes=$(( $(stat -c %s "$db") + $( [ -f "$db-wal" ] && stat -c %s "$db-wal" || echo 0) ))
  snapshot=$(stat -c %s "$db.index")
  floor=$(awk -F'|' '/health Check \(floor\) \| saturation/ {gsub(/ /,"",$4); print $4}' "loadgen-$n.txt")
  nearest=$(awk -F'|' '/^\| FindNearest \| saturation/ {gsub(/ /,"",$4); print $4}' "loadgen-$n.txt")
  p50=$(awk -F'|' '/^\| FindNearest \| saturation/ {gsub(/ /,"",$5); print $5}' "loadgen-$n.txt")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$ready" "$rss_ready" "$peak" "$bytes" "$nearest" "$floor" \
    "$ready_store" "$snapshot" >> "$rows"
  printf '| %s | %.1f | %.1f | %d | %d | %d | %d | %s | %s | %.2f | %s |\n' "$n" "$ready_store" "$ready" \
    $(( rss_ready / n )) $(( peak / n )) $(( bytes / n )) $(( snapshot / n )) "$nearest" "$floor" \
    "$(echo "$nearest / $floor" | bc -l)" "$p50"
done

"$python" -c "import matplotlib" 2>/dev/null || "$python" -m pip install -q matplotlib
mkdir -p "$(dirname "$plot")"
"$python" - "$rows" "$plot" <<'PY'
import sys
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
rows = [list(map(float, line.split("\t"))) for line in open(sys.argv[1]) if line.strip()]
n = [r[0] for r in rows]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
axes[0].plot(n, [r[7] for r in rows], "o-", label="from the store")
axes[0].plot(n, [r[1] for r in rows], "o-", label="from the index snapshot")
axes[0].set_title("start to ready (s)")
axes[0].legend()
axes[1].plot(n, [r[2] / r[0] for r in rows], "o-", label="RSS when ready")
axes[1].plot(n, [r[3] / r[0] for r in rows], "o-", label="peak RSS (load included)")
axes[1].plot(n, [r[4] / r[0] for r in rows], "o-", label="SQLite file")
axes[1].plot(n, [r[8] / r[0] for r in rows], "o-", label="index snapshot file")
axes[1].set_title("bytes per site")
axes[1].legend()
axes[2].plot(n, [r[5] for r in rows], "o-", label="FindNearest")
axes[2].plot(n, [r[6] for r in rows], "o-", label="health Check (floor)")
axes[2].set_title("gRPC QPS, saturated")
axes[2].legend()
for ax in axes:
    ax.set_xscale("log")
    ax.set_xlabel("sites")
    ax.set_ylim(bottom=0)
fig.tight_layout()
fig.savefig(sys.argv[2])
print("wrote", sys.argv[2])
PY
