#!/usr/bin/env bash
# Keyed sum with many keys (issue 17, target 2), one run, same data in
# memory: libflow (from_shared + sum_by_key, default options; and with one
# manager shard, the manager merging alone, as before shards), a sequential
# std::unordered_map loop, a two-thread radix-partitioned aggregation
# (bench/keyed_bench.cpp) and DuckDB's GROUP BY with 2 threads
# (bench/duckdb_groupby.mjs; DuckDB from its npm package, installed into
# build/duckdb on first use, bench only). Every method's checksum must
# agree. Prints the CSV lines and the ratios to DuckDB.
#   bash bench/keyed_bench.sh [--keys K] [--elements N] [--runs R]
#                             [--batch B]   (libflow also with batches of B)
set -euo pipefail
cd "$(dirname "$0")/.."
keys=1000000 elements=10000000 runs=5 batch=0
while (($#)); do
  case "$1" in
    --keys) keys="$2"; shift 2 ;;
    --elements) elements="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    *) echo "keyed_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
cmake --preset bench >/dev/null
cmake --build --preset bench -j2 --target flow-keyed-bench >/dev/null
duck=build/duckdb
if [ ! -d "$duck/node_modules/@duckdb/node-api" ]; then
  mkdir -p "$duck"
  npm install --prefix "$duck" --no-save --no-audit --no-fund \
    @duckdb/node-api@1.5.6-r.1 >/dev/null
fi
cp bench/duckdb_groupby.mjs "$duck/"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
build/bench/bench/flow-keyed-bench --keys "$keys" --elements "$elements" \
  --runs "$runs" --csv "$tmp/data.csv" >"$tmp/out.csv" 2>"$tmp/flow.err"
build/bench/bench/flow-keyed-bench --keys "$keys" --elements "$elements" \
  --runs "$runs" --shards 1 2>/dev/null | grep libflow >>"$tmp/out.csv"
if [ "$batch" != 0 ]; then
  build/bench/bench/flow-keyed-bench --keys "$keys" --elements "$elements" \
    --runs "$runs" --batch "$batch" 2>/dev/null | grep libflow >>"$tmp/out.csv"
  build/bench/bench/flow-keyed-bench --keys "$keys" --elements "$elements" \
    --runs "$runs" --batch "$batch" --shards 1 2>/dev/null \
    | grep libflow >>"$tmp/out.csv"
fi
node "$duck/duckdb_groupby.mjs" "$tmp/data.csv" "${elements}x${keys}" \
  "$runs" 2 >>"$tmp/out.csv" 2>"$tmp/duck.err"
cat "$tmp/out.csv"
flow_sum=$(awk '{print $2}' "$tmp/flow.err")
duck_sum=$(awk '{print $3}' "$tmp/duck.err")
if [ "$flow_sum" != "$duck_sum" ]; then
  echo "keyed_bench: checksums differ: $flow_sum (C++) vs $duck_sum (DuckDB)" >&2
  exit 1
fi
echo "checksum $flow_sum (all methods agree)"
awk -F, '/duckdb/ {d = $4} $1 == "keyed" {t[$3] = $4}
  END {for (m in t) printf "%-24s %8.3f s  %.2fx DuckDB\n", m, t[m], t[m] / d}' \
  "$tmp/out.csv"
