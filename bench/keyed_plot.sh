#!/usr/bin/env bash
# Many keys as a plot (issue 17, targets 1 and 2): for each key count K,
#  - the keyed sum of N elements over K keys, every method of
#    bench/keyed_bench.sh in one run (libflow with its defaults and with one
#    manager shard, a one-thread std::unordered_map loop, a two-thread
#    radix-partitioned aggregation, DuckDB's GROUP BY with 2 threads), all
#    checksums agreeing;
#  - flow-keyed's peak RSS above its baseline per distinct key
#    (`flow-keyed --keys K --elements 2K --summary --no-verify` against
#    `--keys 1` with as many elements), as target 1 measures it at K = 10^7
#    (for K >= 10^5: below, the state is smaller than the RSS's noise).
# Writes bench/results/keyed.csv and bench/results/keyed_memory.csv, plots
# both into docs/img/bench-keyed.png (bench/keyed_plot.gp, gnuplot from
# `scripts/setup.sh --bench`) and prints the tables of docs/benchmarks.md.
#   bash bench/keyed_plot.sh [--elements N] [--runs R] [K ...]
#   bash bench/keyed_plot.sh --plot-only   (plot and print the CSVs again)
# Defaults: N = 10^7, R = 5, K = 10^3 10^4 10^5 10^6 10^7. About 7 minutes
# on 2 cores (DuckDB's npm package is installed into build/duckdb once).
set -euo pipefail
cd "$(dirname "$0")/.."
elements=10000000 runs=5 ks=() measure=1
while (($#)); do
  case "$1" in
    --elements) elements="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --plot-only) measure=0; shift ;;
    -*) echo "keyed_plot: unknown option $1" >&2; exit 2 ;;
    *) ks+=("$1"); shift ;;
  esac
done
((${#ks[@]})) || ks=(1000 10000 100000 1000000 10000000)
for k in "${ks[@]}"; do
  [[ "$k" =~ ^[1-9][0-9]*$ ]] || { echo "keyed_plot: not a key count: $k" >&2; exit 2; }
done
command -v gnuplot >/dev/null || { echo "keyed_plot: needs gnuplot (bash scripts/setup.sh --bench)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "keyed_plot: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
times=bench/results/keyed.csv mem=bench/results/keyed_memory.csv
if ((measure)); then
  cmake --preset release >/dev/null
  cmake --build --preset release -j2 --target flow-keyed >/dev/null
  keyed=build/release/apps/flow-keyed
  mkdir -p bench/results docs/img
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT

  echo "keys,elements,method,median_s,min_s,max_s,runs,distinct_keys" >"$times"
  for k in "${ks[@]}"; do
    echo "keyed_plot: $elements elements over $k keys" >&2
    # keyed_bench.sh fails (exit 1) when the methods' checksums differ.
    bash bench/keyed_bench.sh --keys "$k" --elements "$elements" --runs "$runs" >"$tmp/run.txt"
    awk -F, -v k="$k" -v n="$elements" '$1 == "keyed" {print k "," n "," $3 "," $4 "," $5 "," $6 "," $7 "," $8}' \
      "$tmp/run.txt" >>"$times"
  done

  # Peak RSS (KiB) and distinct keys of one flow-keyed run.
  rss() {
    /usr/bin/time -f '%M' -o "$tmp/rss" "$keyed" --keys "$1" --elements "$2" \
      --summary --no-verify --json >"$tmp/out.json"
    local keys
    keys=$(sed -n 's/.*"keys":\([0-9]*\).*/\1/p' "$tmp/out.json")
    grep -q '"ok":true' "$tmp/out.json" || { echo "keyed_plot: flow-keyed failed: $(cat "$tmp/out.json")" >&2; exit 1; }
    echo "$(tail -1 "$tmp/rss") $keys"
  }
  echo "keys,elements,peak_rss_kib,baseline_kib,distinct_keys,bytes_per_key" >"$mem"
  for k in "${ks[@]}"; do
    # Below 10^5 keys the state is smaller than the noise of a process's RSS.
    ((k >= 100000)) || continue
    n=$((2 * k))
    # Not `< <(rss ...)`: a failing run must stop the script.
    rss 1 "$n" >"$tmp/base"
    rss "$k" "$n" >"$tmp/peak"
    read -r base _ <"$tmp/base"
    read -r peak distinct <"$tmp/peak"
    awk -v k="$k" -v n="$n" -v p="$peak" -v b="$base" -v d="$distinct" \
      'BEGIN {printf "%s,%s,%s,%s,%s,%.1f\n", k, n, p, b, d, (p - b) * 1024 / d}' >>"$mem"
  done
else
  [[ -s "$times" && -s "$mem" ]] || { echo "keyed_plot: no results to plot ($times, $mem)" >&2; exit 2; }
  elements=$(awk -F, 'NR == 2 {print $2}' "$times")
fi

gnuplot -e "elements='$elements'; times='$times'; mem='$mem'; out='docs/img/bench-keyed.png'" bench/keyed_plot.gp

# The tables: seconds (and / DuckDB) per method and key count; bytes per key.
awk -F, 'NR > 1 {
    t[$1, $3] = $4; if (!($1 in seen)) {seen[$1]; ks[++nk] = $1}
    if (!($3 in ms)) {ms[$3]; m[++nm] = $3}
    if ($3 ~ /^duckdb/) d[$1] = $4
  }
  END {
    printf "| method |"; for (i = 1; i <= nk; ++i) printf " %s keys |", ks[i]; print ""
    printf "|---|"; for (i = 1; i <= nk; ++i) printf "---:|"; print ""
    for (j = 1; j <= nm; ++j) {
      printf "| %s |", m[j]
      for (i = 1; i <= nk; ++i) {
        v = t[ks[i], m[j]]
        if (v == "") printf " |"
        else if (m[j] ~ /^duckdb/ || d[ks[i]] == "") printf " %.3f s |", v
        else printf " %.3f s (%.2f×) |", v, v / d[ks[i]]
      }
      print ""
    }
  }' "$times"
echo
echo "| keys (K) | elements | distinct keys | peak RSS | baseline | bytes per distinct key above the baseline |"
echo "|---:|---:|---:|---:|---:|---:|"
awk -F, 'NR > 1 {printf "| %s | %s | %s | %s KiB | %s KiB | %s |\n", $1, $2, $5, $3, $4, $6}' "$mem"
