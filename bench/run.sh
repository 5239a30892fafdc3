#!/usr/bin/env bash
# Runs every benchmark of libflow in one go and writes bench/results/bench.csv
# and docs/img/bench-sum.png. Takes about 10 minutes on a 2-core machine.
#   bash bench/run.sh [--runs=N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:---runs=5}"

bash scripts/setup.sh --bench
cmake --preset bench
cmake --build --preset bench -j2

mkdir -p bench/results docs/img
out=bench/results/bench.csv
build/bench/bench/flow-bench all "$runs" > "$out"
# The same latency figures under CAF's default work-stealing scheduler.
build/bench/bench/flow-bench overhead "$runs" --policy=stealing | sed 1d >> "$out"
build/bench/bench/flow-bench small --policy=stealing | sed 1d >> "$out"
python3 bench/python_sum.py "$runs" >> "$out"
python3 bench/proc_bench.py build/bench >> "$out"
gnuplot -e "csv='$out'; out='docs/img/bench-sum.png'" bench/plot.gp
python3 bench/report.py "$out"
