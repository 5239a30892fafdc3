#!/usr/bin/env bash
# Bounded keyed state (flow-keyed --max-memory, issue 17 target 4): peak RSS
# and wall time of `flow-keyed --keys K --elements N --summary --no-verify`
# for each bound, the runs taking turns, with the checksum of every run
# compared to the unbounded one's.
#
#   bash bench/spill_bench.sh [RUNS] [KEYS] [ELEMENTS] [BOUND...]
#
# Defaults: 3 runs, 10^7 keys, 2*10^7 elements, bounds none 1 16M 64M 160M
# 256M ("none": no --max-memory; "1": the least bound, 1024 keys). Prints
# one line per bound: the median RSS in MiB and wall time in seconds, and
# the wall time as a ratio of the unbounded run's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FLOW_BIN:-$root/build/release/apps}/flow-keyed
runs=${1:-3}
keys=${2:-10000000}
elements=${3:-20000000}
shift $(( $# < 3 ? $# : 3 ))
bounds=("$@")
[ ${#bounds[@]} -gt 0 ] || bounds=(none 1 16M 64M 160M 256M)
[ -x "$bin" ] || { echo "spill_bench: build first ($bin missing)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ref=""
for ((r = 0; r < runs; ++r)); do
  for b in "${bounds[@]}"; do
    extra=()
    [ "$b" = none ] || extra=(--max-memory "$b")
    /usr/bin/time -f '%M %e' -o "$out/t" "$bin" --keys "$keys" \
      --elements "$elements" --summary --no-verify --json "${extra[@]}" \
      > "$out/o"
    sum=$(grep -o '"checksum":[0-9]*' "$out/o")
    if [ -z "$ref" ]; then ref=$sum; fi
    if [ "$sum" != "$ref" ]; then
      echo "spill_bench: bound $b gave $sum, expected $ref" >&2
      exit 1
    fi
    echo "$b $(cat "$out/t")" >> "$out/all"
  done
done
echo "flow-keyed --keys $keys --elements $elements --summary --no-verify;" \
     "median of $runs; checksums all ${ref#*:}"
printf '%-8s %10s %8s %8s\n' bound rss_MiB wall_s ratio
base=""
for b in "${bounds[@]}"; do
  median() { sort -n | awk '{ x[NR] = $1 } END { print x[int((NR + 1) / 2)] }'; }
  rss=$(awk -v b="$b" '$1 == b { print $2 }' "$out/all" | median)
  wall=$(awk -v b="$b" '$1 == b { print $3 }' "$out/all" | median)
  rss=$(awk -v x="$rss" 'BEGIN { printf "%.1f", x / 1024 }')
  [ -n "$base" ] || base=$wall
  printf '%-8s %10s %8s %8.2f\n' "$b" "$rss" "$wall" \
    "$(awk -v a="$wall" -v b="$base" 'BEGIN { print a / b }')"
done
