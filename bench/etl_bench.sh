#!/usr/bin/env bash
# PostgreSQL benchmark: the keyed sums over 10^7 rows of elements, in one run:
# flow-etl sum (row path and --pushdown), the raw COPY of the same columns
# through psql (one stream and P parallel streams), the server's own GROUP BY,
# and Python psycopg2 (one server-side cursor; multiprocessing over ranges).
# Prints the median of RUNS runs of each as a Markdown table.
#
# usage: bench/etl_bench.sh [--db CONNINFO] [--rows N] [--partitions P] [--runs R]
#   Without --db: a throwaway cluster (flow-etl init --keep), removed at the end.
#   FLOW_ETL=path/to/flow-etl (default build/release/apps/flow-etl).
set -euo pipefail
cd "$(dirname "$0")/.."

db="" rows=10000000 parts=2 runs=5
while (($#)); do
  case "$1" in
    --db) db="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    --partitions) parts="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "etl_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
etl="${FLOW_ETL:-build/release/apps/flow-etl}"
stop_cmd=""
if [[ -z "$db" ]]; then
  log=$(mktemp)
  "$etl" init --rows "$rows" --keep 2>"$log"
  db=$(sed -n "s/^  --db '\(.*\)'$/\1/p" "$log")
  stop_cmd=$(sed -n 's/^  stop and remove it with: //p' "$log")
  rm -f "$log"
  trap 'eval "$stop_cmd" >/dev/null 2>&1 || true' EXIT
elif [[ "$(psql "$db" -Atc 'SELECT count(*) FROM elements' 2>/dev/null)" != "$rows" ]]; then
  "$etl" init --db "$db" --rows "$rows"
fi
psql "$db" -qAtc "VACUUM ANALYZE elements" >/dev/null

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_cmd() {
  local t0 t1
  t0=$(now)
  "$@" >/dev/null || { echo "etl_bench: failed: $*" >&2; exit 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}
# Debian's python3 (python3-psycopg2), not whatever python3 comes first in PATH.
py="${PYTHON:-/usr/bin/python3}"

# Ranges of value for the parallel streams: the same quantiles flow-etl uses.
qs=$(awk -v p="$parts" 'BEGIN {for (i = 1; i < p; ++i) printf "%s%.17g", (i > 1 ? "," : ""), i / p}')
bounds=$(psql "$db" -Atc "SELECT array_to_string(percentile_disc(ARRAY[$qs]::float8[]) WITHIN GROUP (ORDER BY value), ' ') FROM elements TABLESAMPLE SYSTEM (4) REPEATABLE (42)")
preds=() lo=""
for b in $bounds; do
  preds+=("${lo:+value >= $lo AND }value < $b"); lo=$b
done
preds+=("${lo:+value >= $lo}"); [[ -z "${preds[-1]}" ]] && preds[-1]="true"

# The raw reads take the columns the row path reads: list_id (for the exact
# list count), list_size and value.
cols="list_id, list_size, value"
copy_one() { psql "$db" -Atc "COPY (SELECT $cols FROM elements) TO STDOUT" >/dev/null; }
copy_par() {
  local pids=()
  for p in "${preds[@]}"; do
    psql "$db" -Atc "COPY (SELECT $cols FROM elements WHERE $p) TO STDOUT" >/dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
}
# The server's own GROUP BY: the cheapest one (sum and count per size, as in
# the issue's orientation figures), and one giving what flow-etl sum gives
# (per size: sum, count, min, max and the number of lists).
group_by() { psql "$db" -Atc "SELECT list_size, sum(value), count(*) FROM elements GROUP BY list_size" >/dev/null; }
group_by_same() {
  psql "$db" -Atc "SELECT list_size, sum(s), sum(c), min(lo), max(hi), count(*) FROM (SELECT list_size, list_id, sum(value) s, count(value) c, min(value) lo, max(value) hi FROM elements GROUP BY list_size, list_id HAVING count(value) > 0) l GROUP BY list_size" >/dev/null
}
etl_time() { # the job's own time (read + reduce + merge), from --json
  "$etl" sum --db "$db" --json "$@" | head -1 \
    | sed -n 's/.*"libflow_s":\([0-9.e-]*\).*/\1/p'
}

declare -A samples
for ((r = 1; r <= runs; ++r)); do
  # The default partitioning (1 partition for a table larger than a quarter
  # of shared_buffers, else one per core), and P block ranges.
  samples[etl_rows]+="$(etl_time) "
  samples[etl_rows_p]+="$(etl_time --partitions "$parts") "
  samples[etl_wall]+="$(time_cmd "$etl" sum --db "$db" --partitions "$parts") "
  # Push-down's default: one partition, which the server runs with its own
  # parallel workers (fixed ranges on top of them only add processes).
  samples[etl_push]+="$(etl_time --pushdown --partitions 1) "
  samples[etl_push_p]+="$(etl_time --pushdown --partitions "$parts") "
  samples[copy_one]+="$(time_cmd copy_one) "
  samples[copy_par]+="$(time_cmd copy_par) "
  samples[group_by]+="$(time_cmd group_by) "
  samples[group_by_same]+="$(time_cmd group_by_same) "
  samples[py_cursor]+="$(time_cmd "$py" bench/etl_psycopg2.py "$db" cursor) "
  samples[py_multi]+="$(time_cmd "$py" bench/etl_psycopg2.py "$db" multi "$parts") "
  echo "etl_bench: run $r/$runs done" >&2
done

m() { tr ' ' '\n' <<<"${samples[$1]}" | grep . | median; }
echo "| what | median of $runs (s) |"
echo "|---|---|"
echo "| \`flow-etl sum\` (default partitions, job time: read, decode, reduce, merge) | $(m etl_rows) |"
echo "| \`flow-etl sum --partitions $parts\` (job time) | $(m etl_rows_p) |"
echo "| \`flow-etl sum\` whole program (connect, job, reference GROUP BY with count(DISTINCT), print) | $(m etl_wall) |"
echo "| \`flow-etl sum --pushdown\` (default: 1 partition, server's parallel workers; job time) | $(m etl_push) |"
echo "| \`flow-etl sum --pushdown --partitions $parts\` (job time) | $(m etl_push_p) |"
echo "| \`COPY (SELECT $cols FROM elements) TO STDOUT\`, psql to /dev/null, 1 stream | $(m copy_one) |"
echo "| the same COPY as $parts parallel range streams | $(m copy_par) |"
echo "| server \`SELECT list_size, sum(value), count(*) ... GROUP BY list_size\` | $(m group_by) |"
echo "| server GROUP BY giving flow-etl sum's result (per size: sum, count, min, max, lists) | $(m group_by_same) |"
echo "| Python psycopg2, one server-side cursor | $(m py_cursor) |"
echo "| Python psycopg2, multiprocessing over $parts value ranges | $(m py_multi) |"
