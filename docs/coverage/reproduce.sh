#!/usr/bin/env bash
# Reproduces one country's figures and map in docs/COVERAGE.md from the real datasets:
# imports the country's help points and GeoNames' places into a fresh SQLite file, then
# prints the table and draws docs/coverage/COUNTRY.svg.
#
# Usage: docs/coverage/reproduce.sh in|us|fr [DATA_DIR]   (DATA_DIR defaults to ../shared/data)
# Exit codes: those of the hubdir command that failed; 2 for a bad argument.
set -euo pipefail
cd "$(dirname "$0")/../.."
country=${1:-}
data=${2:-../shared/data}
case "$country" in
  in) file=india-post/india_post_offices.csv; mapping=india-post; code=IN; filter=(--resolution 5) ;;
  us) file=us-imls-pls-outlets/pls_fy18_outlet_pud18i.csv; mapping=us-imls-pls-outlets; code=US
      filter=(--service public-internet --resolution 4) ;;
  fr) file=fr-laposte-points/laposte_poincont2.csv; mapping=fr-laposte-points; code=FR; filter=(--resolution 5) ;;
  *) echo "usage: $0 in|us|fr [DATA_DIR]" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="sqlite://$work/$country.db"
hubdir() { cargo run --release --quiet --bin hubdir -- "$@"; }

echo "importing $file..." >&2
# Rows the mapping rejects (no coordinates, outside the country...) are listed in the report.
hubdir import "$data/$file" --mapping "examples/mappings/$mapping.toml" --db "$db" \
  --errors "$work/site-errors.csv" --max-rejected 100% >&2
# GeoNames' 58 places in Kosovo carry XK, which is not an ISO 3166-1 code: they are rejected.
hubdir population import "$data/geonames-cities1000/cities1000.csv" --layer geonames-cities1000 \
  --db "$db" --errors "$work/population-errors.csv" --max-rejected 100 >&2
hubdir coverage --db "$db" --country "$code" --km 5,10,25 "${filter[@]}" \
  --map "docs/coverage/$country.svg"
