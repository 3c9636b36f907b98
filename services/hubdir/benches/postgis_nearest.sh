#!/usr/bin/env bash
# FindNearest's query, answered by PostGIS from the same sites and the same positions, so that
# `hubdir-loadgen --positions FILE` has a like-for-like peer (BENCHMARKS.md, "End to end
# against PostGIS").
#
#   services/hubdir/benches/postgis_nearest.sh NODE.db POSITIONS.csv [CLIENTS] [SECONDS]
#
# NODE.db is the node's SQLite file (the sites it serves); POSITIONS.csv is what
# `hubdir-loadgen positions` wrote. The sites are copied into PostgreSQL (PostGIS 3,
# `geography(Point)` with a GiST index; once, while the table holds the same number of sites),
# with each site's full body as the node stores it; again whenever the node's sites changed). Each query asks for the 10 open sites
# nearest a position and returns, as FindNearest does in its FULL view, each site's name, full
# body and distance. pgbench drives it (`-M prepared`, CLIENTS clients, default 8, saturated,
# each query at a position picked at random from the file), after a 2 s warm-up, and logs every
# transaction, from which p50 and p99 are read. Needs psql, pgbench, sqlite3
# and postgresql-15-postgis-3 (`apt-get install postgresql-15-postgis-3`).
#
# Exit codes: 0 measured; 1 a step failed; 2 usage.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,17p' "$0" >&2
    exit 2
fi
db=$1 positions=$2 clients=${3:-8} seconds=${4:-10}
pg=${HUBDIR_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
psql() { command psql "$pg" -v ON_ERROR_STOP=1 -q "$@"; }

psql -c "CREATE EXTENSION IF NOT EXISTS postgis"
sites=$(sqlite3 "$db" "SELECT count(*) FROM sites")
# What the copy was made from, kept as the table's comment: reused only while it matches.
source="$(realpath "$db") $(sqlite3 "$db" "SELECT count(*), max(update_time_us), total(origin_seq) FROM sites")"
loaded=
if [ "$(psql -tA -c "SELECT to_regclass('bench_e2e_sites') IS NOT NULL")" = t ]; then
    loaded=$(psql -tA -c "SELECT obj_description('bench_e2e_sites'::regclass)")
fi
if [ "$loaded" != "$source" ]; then
    echo "copying $sites sites into PostGIS" >&2
    psql -c "DROP TABLE IF EXISTS bench_e2e_sites, bench_e2e_staging;
             CREATE UNLOGGED TABLE bench_e2e_staging (name text, lat float8, lng float8, status text, site text)"
    sqlite3 -csv "$db" "SELECT name, latitude, longitude, status, body FROM sites" |
        psql -c "\copy bench_e2e_staging FROM STDIN WITH (FORMAT csv)"
    psql -c "CREATE TABLE bench_e2e_sites AS
               SELECT name, status = 'OPEN' AS open, site,
                      ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography AS geog
               FROM bench_e2e_staging;
             DROP TABLE bench_e2e_staging;
             ALTER TABLE bench_e2e_sites ADD PRIMARY KEY (name);
             CREATE INDEX ON bench_e2e_sites USING gist (geog);
             ANALYZE bench_e2e_sites"
    psql -c "COMMENT ON TABLE bench_e2e_sites IS '$source'"
fi
psql -c "DROP TABLE IF EXISTS bench_e2e_positions;
         CREATE TABLE bench_e2e_positions (id serial PRIMARY KEY, lat float8, lng float8, geog geography)"
psql -c "\copy bench_e2e_positions (lat, lng) FROM '$positions' WITH (FORMAT csv, HEADER)"
psql -c "UPDATE bench_e2e_positions SET geog = ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography; ANALYZE bench_e2e_positions"
count=$(psql -tA -c "SELECT count(*) FROM bench_e2e_positions")
open_status=$(psql -tA -c "SELECT count(*) FROM bench_e2e_sites WHERE open")
echo "PostGIS: $sites sites ($open_status open), $count positions, $clients clients, $seconds s" >&2

cat > "$work/nearest.sql" <<'SQL'
\set i random(1, :positions)
SELECT s.name, s.site, ST_Distance(s.geog, q.geog) AS distance_meters
FROM bench_e2e_positions q
CROSS JOIN LATERAL (
    SELECT name, site, geog FROM bench_e2e_sites WHERE open ORDER BY geog <-> q.geog LIMIT 10
) s
WHERE q.id = :i;
SQL
# Warm up (as hubdir-loadgen does before measuring), then measure.
(cd "$work" && pgbench "$pg" -n -M prepared -c "$clients" -j 2 -T 2 -D positions="$count" -f nearest.sql > /dev/null)
(cd "$work" && pgbench "$pg" -n -M prepared -c "$clients" -j 2 -T "$seconds" -D positions="$count" \
    -f nearest.sql --log --log-prefix=tx > pgbench.out)
grep -E "tps|failed" "$work/pgbench.out" >&2
# Per-transaction log: client, transaction, latency in µs (or "failed"), ...
cat "$work"/tx.* | awk '$3 ~ /^[0-9]+$/ {print $3}' | sort -n > "$work/latencies"
n=$(wc -l < "$work/latencies")
p50=$(sed -n "$(( n / 2 + 1 ))p" "$work/latencies")
p99=$(sed -n "$(( n * 99 / 100 + 1 ))p" "$work/latencies")
tps=$(grep -oP 'tps = \K[0-9.]+' "$work/pgbench.out" | head -1)
echo "| PostGIS (pgbench, $clients clients) | saturation | ${tps%.*} | $p50 | $p99 | $(grep -oP 'failed transactions: \K[0-9]+' "$work/pgbench.out" || echo 0) |"
