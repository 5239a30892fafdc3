#!/usr/bin/env bash
# PostgreSQL benchmark of `flow-etl aggregate` against the server's own
# GROUP BY of the same aggregates, in one run. Two tables of N rows
# (region int, day date, cents bigint, price numeric(12,2), ratio double
# precision), grouped by (region, day):
#   sales     100 regions x 100 days     (10^4 groups)
#   sales_1m  1000 regions x 1000 days   (10^6 groups; fewer when N < 10^6)
# Times, for each table: flow-etl aggregate with 1 and with P partitions,
# with --combine 1 (one partial per batch, as before --combine) and with
# --pushdown (the server computes the partials) (whole
# process, output to /dev/null; peak RSS and CPU from /usr/bin/time), the
# server's COPY of the rows alone (text and binary: the floor of any client
# that reads the rows),
# and the server's GROUP BY through psql (output to /dev/null) under each
# session setting in SETTINGS, with its inexact float8 sum/avg and with
# sum(ratio::numeric)/avg(ratio::numeric), the nearest the server has to
# flow-etl's exactly rounded float sums (exact, but over each double cast to
# 15 significant digits: PostgreSQL's float8_numeric). The fastest server GROUP BY is the reference of the ratios.
# Prints the median of RUNS runs of each as a Markdown table.
#
# usage: bench/etl_aggregate.sh [--db CONNINFO] [--rows N] [--partitions P]
#                               [--runs R] [--only 1e4|1e6] [--no-verify]
#                               [--etl-timeout SECONDS]
#   Without --db: a throwaway cluster (flow-etl init --keep), removed at the end.
#   FLOW_ETL=path/to/flow-etl (default build/release/apps/flow-etl).
#   Before the timed runs, each table is aggregated once with --verify (not
#   timed) so that the figures are of a correct result; --no-verify skips it.
#   --etl-timeout: stop a flow-etl run after SECONDS (reported as "> SECONDS").
set -euo pipefail
cd "$(dirname "$0")/.."

db="" rows=10000000 parts=2 runs=5 only="" verify=1 etl_timeout=0
while (($#)); do
  case "$1" in
    --db) db="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    --partitions) parts="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --no-verify) verify=0; shift ;;
    --etl-timeout) etl_timeout="$2"; shift 2 ;;
    *) echo "etl_aggregate: unknown option $1" >&2; exit 2 ;;
  esac
done
etl="${FLOW_ETL:-build/release/apps/flow-etl}"
[[ -x /usr/bin/time ]] || { echo "etl_aggregate: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
work=$(mktemp -d)
stop_cmd=""
cleanup() {
  rm -rf "$work"
  [[ -n "$stop_cmd" ]] && eval "$stop_cmd" >/dev/null 2>&1 || true
}
trap cleanup EXIT
if [[ -z "$db" ]]; then
  "$etl" init --rows 100 --ads 100 --keep 2>"$work/init.log"
  db=$(sed -n "s/^  --db '\(.*\)'$/\1/p" "$work/init.log")
  stop_cmd=$(sed -n 's/^  stop and remove it with: //p' "$work/init.log")
fi

# The data: deterministic functions of the row number i (no random()).
# cents: integers in [-500000, 499999]; price: 0.00 .. 99999.99; ratio:
# doubles in [0, 100) with full mantissas (so that an inexact float sum
# differs from the exact one).
make_table() { # name, regions, days
  local name=$1 nr=$2 nd=$3
  if [[ "$(psql "$db" -Atc "SELECT count(*) FROM $name" 2>/dev/null)" == "$rows" ]]; then
    return
  fi
  psql "$db" -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
DROP TABLE IF EXISTS $name;
CREATE TABLE $name (region int, day date, cents bigint, price numeric(12,2),
                    ratio double precision);
INSERT INTO $name
SELECT (i % $nr)::int,
       date '2024-01-01' + ((i / $nr) % $nd)::int,
       (i * 2654435761) % 1000000 - 500000,
       ((i * 40503) % 10000000)::numeric / 100,
       ((i * 2654435761) % 1000000007)::float8 / 1000000007 * 100
FROM generate_series(1::bigint, $rows) AS i;
VACUUM ANALYZE $name;
SQL
}

tables=()
[[ "$only" != 1e6 ]] && { make_table sales 100 100; tables+=(sales); }
[[ "$only" != 1e4 ]] && { make_table sales_1m 1000 1000; tables+=(sales_1m); }
echo "etl_aggregate: tables ready" >&2
((runs > 0)) || exit 0  # --runs 0: only make the tables (with --db: kept)

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Runs "$@" with stdout to /dev/null; prints "wall_s peak_rss_kib cpu_s"
# (wall "inf" when timeout(1) stopped it).
measure() {
  local t0 t1 rc=0
  t0=$(now)
  /usr/bin/time -f '%M %U %S' -o "$work/time" "$@" >/dev/null 2>"$work/err" || rc=$?
  t1=$(now)
  if ((rc == 124)); then
    t1=inf
    echo "etl_aggregate: stopped after ${etl_timeout} s: $*" >&2
    tail -3 "$work/err" >&2
  elif ((rc != 0)); then
    echo "etl_aggregate: failed ($rc): $*" >&2; cat "$work/err" >&2; exit 1
  fi
  read -r rss usr sys < <(grep -v '^Command' "$work/time" | tail -1)
  echo "$([[ $t1 == inf ]] && echo inf || echo "$t1 - $t0" | bc -l) $rss $(echo "$usr + $sys" | bc -l)"
}
etl_limit=()
((etl_timeout > 0)) && etl_limit=(timeout "$etl_timeout")

aggs='sum(cents), count(*), avg(cents), min(cents), max(cents), sum(price), avg(price), min(price), max(price), sum(ratio), avg(ratio), min(ratio), max(ratio)'
cols_float='sum(cents), count(*), avg(cents), min(cents), max(cents), sum(price), avg(price), min(price), max(price), sum(ratio), avg(ratio), min(ratio), max(ratio)'
# The server's "exact" float sum and mean (what flow-etl's --verify compares
# with): exact over 15-digit roundings of the doubles.
cols_exact='sum(cents), count(*), avg(cents), min(cents), max(cents), sum(price), avg(price), min(price), max(price), sum(ratio::numeric)::float8, avg(ratio::numeric)::float8, min(ratio), max(ratio)'
# The server's session settings to try (PGOPTIONS); the first is the
# cluster's default. The default max_parallel_workers_per_gather is
# reported; the explicit 2 is skipped when it is the default.
default_workers=$(psql "$db" -Atc "SHOW max_parallel_workers_per_gather")
settings=("")
[[ "$default_workers" != 2 ]] && settings+=("-c max_parallel_workers_per_gather=2")
# Enough memory for the server's hash table too (flow-etl keeps every group in memory).
settings+=("-c max_parallel_workers_per_gather=2 -c work_mem=1GB")
label_of() { [[ -z "$1" ]] && echo "default (max_parallel_workers_per_gather = $default_workers, work_mem = $(psql "$db" -Atc 'SHOW work_mem'))" || echo "${1//-c /}"; }

# A command, not a shell function: /usr/bin/time runs it.
# ETL_EXTRA: more flow-etl options, e.g. "--progress 60" (split on spaces).
etl_run=("$etl" aggregate --db "$db" --group-by region,day --agg "$aggs" ${ETL_EXTRA:-})

# Plans, for the record (are the workers used?).
for t in "${tables[@]}"; do
  for s in "${settings[@]}"; do
    echo "--- $t, $(label_of "$s"), exact:" >&2
    PGOPTIONS="$s" psql "$db" -XAtc "EXPLAIN SELECT region, day, $cols_exact FROM $t GROUP BY region, day" \
      | grep -E 'Gather|Aggregate|Scan|Sort|Workers' >&2 || true
  done
done
if ((verify)); then
  for t in "${tables[@]}"; do
    # Not fatal: the server's ratio::numeric keeps 15 significant digits of
    # each double (float8_numeric), so full-mantissa sums can differ in the
    # last place from flow-etl's exactly rounded ones.
    { "$etl" aggregate --db "$db" --table "$t" --group-by region,day --agg "$aggs" --verify \
        2>"$work/verify.err" || true; } | tail -1 >&2
    echo "etl_aggregate: --verify on $t: $(grep -c 'is .*GROUP BY says' "$work/verify.err" || true) mismatching values (first 20 shown), kinds: $(grep -o ': [a-z_]* is' "$work/verify.err" | sort | uniq -c | tr -s ' \n' ' ')" >&2
  done
fi

declare -A samples
keys=()
add() { samples[$1]+="$2;"; [[ " ${keys[*]} " == *" $1 "* ]] || keys+=("$1"); }
for ((r = 1; r <= runs; ++r)); do
  for t in "${tables[@]}"; do
    for p in $(printf '%s\n' 1 "$parts" | sort -un); do
      add "$t|etl|$p" "$(measure "${etl_limit[@]}" "${etl_run[@]}" --table "$t" --partitions "$p")"
    done
    # One partial per batch, as before --combine (default 8).
    add "$t|etl1|1" "$(measure "${etl_limit[@]}" "${etl_run[@]}" --table "$t" --partitions 1 --combine 1)"
    # Push-down: the server computes every partial, the float sums exactly
    # in integer limbs (per exponent bucket when the values' range is too
    # wide); default partitions: one (the server's parallel workers), or
    # for many groups one block range per core, each grouped by sorting.
    add "$t|etlpd|1" "$(measure "${etl_limit[@]}" "${etl_run[@]}" --table "$t" --pushdown)"
    # The floor of any client that reads the rows: the server's COPY of
    # them alone, as text (what flow-etl reads) and binary.
    for f in text binary; do
      add "$t|copy|$f" "$(measure psql "$db" -XAtc \
        "COPY (SELECT region, day, cents, price, ratio FROM $t) TO STDOUT (FORMAT $f)")"
    done
    for i in "${!settings[@]}"; do
      add "$t|float|$i" "$(measure env "PGOPTIONS=${settings[$i]}" psql "$db" -XAtc \
        "SELECT region, day, $cols_float FROM $t GROUP BY region, day")"
      add "$t|exact|$i" "$(measure env "PGOPTIONS=${settings[$i]}" psql "$db" -XAtc \
        "SELECT region, day, $cols_exact FROM $t GROUP BY region, day")"
    done
  done
  echo "etl_aggregate: run $r/$runs done" >&2
done

# field f (1 wall, 2 rss, 3 cpu) of sample k, median over the runs
m() { tr ';' '\n' <<<"${samples[$1]}" | grep . | awk -v f="$2" '{print $f}' | median; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f MiB", k / 1024}'; }
echo "| table | what | median wall of $runs (s) | CPU user+sys (s) | peak RSS | / fastest server GROUP BY |"
echo "|---|---|---:|---:|---:|---:|"
for t in "${tables[@]}"; do
  best="" best_key=""
  for k in "${keys[@]}"; do
    [[ "$k" == "$t|float|"* || "$k" == "$t|exact|"* ]] || continue
    w=$(m "$k" 1)
    if [[ -z "$best" ]] || (($(echo "$w < $best" | bc -l))); then best=$w; best_key=$k; fi
  done
  # Row i is in group i mod (regions x days): min(N, regions x days) groups.
  groups=$([[ $t == sales ]] && echo $((rows < 10000 ? rows : 10000)) || echo $((rows < 1000000 ? rows : 1000000)))
  for k in "${keys[@]}"; do
    [[ "$k" == "$t|"* ]] || continue
    IFS='|' read -r _ kind arg <<<"$k"
    case "$kind" in
      etl) what="\`flow-etl aggregate --partitions $arg\` (whole process)"; rss=$(mib "$(m "$k" 2)") ;;
      etl1) what="\`flow-etl aggregate --partitions $arg --combine 1\` (one partial per batch)"; rss=$(mib "$(m "$k" 2)") ;;
      etlpd) what="\`flow-etl aggregate --pushdown\` (the server's partials, float sums exact; default partitions)"; rss=$(mib "$(m "$k" 2)") ;;
      copy) what="server COPY of the rows alone, $arg, through psql (no aggregation)"; rss="" ;;
      float) what="server GROUP BY, float8 sum/avg of ratio (inexact), $(label_of "${settings[$arg]}")"; rss="" ;;
      exact) what="server GROUP BY, sum/avg(ratio::numeric) (exact over 15-digit roundings), $(label_of "${settings[$arg]}")"; rss="" ;;
    esac
    [[ "$k" == "$best_key" ]] && what="**$what** (reference)"
    w=$(m "$k" 1)
    if [[ "$w" == inf ]]; then
      wt="> $etl_timeout (stopped)" ratio="> $(echo "$etl_timeout / $best" | bc -l | xargs printf '%.1f')×"
    else
      wt=$(printf '%.2f' "$w") ratio=$(echo "$w / $best" | bc -l | xargs printf '%.2f×')
    fi
    printf "| %s (%s rows, %s groups) | %s | %s | %s | %s | %s |\n" \
      "$t" "$rows" "$groups" "$what" "$wt" \
      "$([[ $kind == etl* ]] && printf '%.2f' "$(m "$k" 3)" || echo "psql only")" \
      "$rss" "$ratio"
  done
done
