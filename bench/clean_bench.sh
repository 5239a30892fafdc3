#!/usr/bin/env bash
# PostgreSQL benchmark of `flow-etl clean` against the server's own floor, in
# one run: the job's time, and what the server alone needs to produce the
# same output with a client that costs nothing (psql reading ads to
# /dev/null while another psql loads the job's own output, already cleaned,
# from files in COPY's binary format into tables created in the same
# transaction, then builds the primary keys). No client can beat that floor
# on the same machine; the ratio says how close the job gets to it.
# Prints the median of RUNS runs of each as a Markdown table.
#
# usage: bench/clean_bench.sh [--db CONNINFO] [--ads N] [--runs R]
#   Without --db: a throwaway cluster (flow-etl init --keep), removed at the end.
#   FLOW_ETL=path/to/flow-etl (default build/release/apps/flow-etl).
set -euo pipefail
cd "$(dirname "$0")/.."

db="" ads=1000000 runs=5
while (($#)); do
  case "$1" in
    --db) db="$2"; shift 2 ;;
    --ads) ads="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "clean_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
etl="${FLOW_ETL:-build/release/apps/flow-etl}"
work=$(mktemp -d)
stop_cmd=""
cleanup() {
  rm -rf "$work"
  [[ -n "$stop_cmd" ]] && eval "$stop_cmd" >/dev/null 2>&1 || true
}
trap cleanup EXIT
if [[ -z "$db" ]]; then
  "$etl" init --rows 100 --ads "$ads" --keep 2>"$work/init.log"
  db=$(sed -n "s/^  --db '\(.*\)'$/\1/p" "$work/init.log")
  stop_cmd=$(sed -n 's/^  stop and remove it with: //p' "$work/init.log")
elif [[ "$(psql "$db" -Atc 'SELECT count(*) FROM ads' 2>/dev/null)" != "$ads" ]]; then
  "$etl" init --db "$db" --rows 100 --ads "$ads"
fi
psql "$db" -qAtc "VACUUM ANALYZE ads" >/dev/null

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
etl_time() { # the job's own time (read, clean, write, summary, keys, commit)
  "$etl" clean --db "$db" --json | head -1 \
    | sed -n 's/.*"libflow_s":\([0-9.e-]*\).*/\1/p'
}

# The job's output, as the floor loads it.
etl_time >/dev/null
psql "$db" -qAtc "COPY ads_clean TO STDOUT (FORMAT binary)" >"$work/clean.bin"
psql "$db" -qAtc "COPY ads_rejects TO STDOUT (FORMAT binary)" >"$work/rejects.bin"

# $1: "keys" to build the primary keys as the job does, "none" not to.
floor() {
  local keys=$1 t0 t1
  local pk_clean="" pk_rejects=""
  if [[ "$keys" == keys ]]; then
    pk_clean="ALTER TABLE floor_clean ADD PRIMARY KEY (id);"
    pk_rejects="ALTER TABLE floor_rejects ADD PRIMARY KEY (id);"
  fi
  t0=$(now)
  psql "$db" -qAtc "COPY (SELECT id, title, city, price, posted_at FROM ads) TO STDOUT" >/dev/null &
  local reader=$!
  psql "$db" -qAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
BEGIN;
CREATE TABLE floor_clean (LIKE ads_clean);
CREATE TABLE floor_rejects (LIKE ads_rejects);
\copy floor_clean FROM '$work/clean.bin' WITH (FORMAT binary)
\copy floor_rejects FROM '$work/rejects.bin' WITH (FORMAT binary)
$pk_clean
$pk_rejects
ROLLBACK;
SQL
  wait "$reader"
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

declare -A samples
for ((r = 1; r <= runs; ++r)); do
  samples[etl]+="$(etl_time) "
  samples[floor_keys]+="$(floor keys) "
  samples[floor_none]+="$(floor none) "
  echo "clean_bench: run $r/$runs done" >&2
done

m() { tr ' ' '\n' <<<"${samples[$1]}" | grep . | median; }
rate() { echo "$ads / $1" | bc; }
etl=$(m etl) keys=$(m floor_keys) none=$(m floor_none)
echo "| what ($ads ads) | median of $runs (s) | rows/s |"
echo "|---|---|---|"
echo "| \`flow-etl clean\` (job time: read, clean, write both tables, summary, primary keys, swap, commit) | $etl | $(rate "$etl") |"
echo "| server floor: read ads, load the same output (binary, same transaction), primary keys; no client work | $keys | $(rate "$keys") |"
echo "| server floor without the primary keys | $none | $(rate "$none") |"
echo
echo "flow-etl clean / floor: $(echo "scale=2; $etl / $keys" | bc -l)x"
