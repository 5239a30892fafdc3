#!/bin/sh
# The embedding benchmark (issue 17, target 5; docs/benchmarks.md,
# "Embedding"): installs the release build into a temporary prefix, builds
# bench/embed against it with find_package(flow) as an application would,
# and times one sum per fresh process of N int64 in memory:
# pipeline::run() with default options against oneTBB's parallel_reduce
# (128-bit, exact as libflow's; and int64), alternating, RUNS times each.
#
#   bash bench/embed.sh [RUNS] [N...]     (needs the release preset built)
#
# Prints the medians and the ratios libflow / oneTBB.
set -eu
cd "$(dirname "$0")/.."
runs=${1:-9}
shift 2>/dev/null || true
sizes=${*:-10000000 100000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install build/release --prefix "$work/prefix" >/dev/null
cmake -S bench/embed -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/build" -j2 >/dev/null
bin=$work/build/flow-embed-bench

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
seconds() { grep -o '"seconds":[0-9.]*' | cut -d: -f2; }

printf '%-10s %10s %10s %10s %12s %12s\n' n flow_ms tbb_ms tbb64_ms \
  flow/tbb flow/tbb64
for n in $sizes; do
  : >"$work/flow"; : >"$work/tbb"; : >"$work/tbb64"
  sums=""
  i=0
  while [ $i -lt "$runs" ]; do
    for m in flow tbb tbb64; do
      out=$("$bin" $m "$n")
      echo "$out" | seconds >>"$work/$m"
      [ $m = tbb64 ] || sums="$sums $(echo "$out" | grep -o '"sum":"[-0-9]*"')"
    done
    i=$((i + 1))
  done
  # Every run of both exact methods must agree.
  if [ "$(echo $sums | tr ' ' '\n' | sort -u | wc -l)" -ne 1 ]; then
    echo "embed.sh: the sums differ: $sums" >&2
    exit 1
  fi
  f=$(median <"$work/flow"); t=$(median <"$work/tbb"); t64=$(median <"$work/tbb64")
  awk -v n="$n" -v f="$f" -v t="$t" -v u="$t64" 'BEGIN {
    printf "%-10s %10.2f %10.2f %10.2f %12.2f %12.2f\n", n, f * 1000,
      t * 1000, u * 1000, f / t, f / u }'
done
