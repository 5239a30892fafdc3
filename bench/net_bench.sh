#!/bin/sh
# flow::net on one machine: a CPU-heavy reducer (spin, about 1 us of work per
# element) in-process, and with 1 and 2 worker processes (flow-node) over
# mutual TLS on loopback; then the serialisation cost per batch.
#
#   bash bench/net_bench.sh [RUNS]     (needs the release and bench presets)
#
# Prints medians of RUNS runs (default 3) of flow-keyed's libflow_s.
set -eu
cd "$(dirname "$0")/.."
runs=${1:-3}
bin=build/release/apps
certs=$(mktemp -d)
trap 'rm -rf "$certs"' EXIT
scripts/make-certs.sh "$certs" manager w1 w2 >/dev/null
tls() { echo "--cert $certs/$1.pem --key $certs/$1.key --ca $certs/ca.pem"; }
job="--sizes 4000000 --reducer spin --batch 65536 --json"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
seconds() { grep -o '"libflow_s":[0-9.]*' | head -1 | cut -d: -f2; }

run_local() {
  $bin/flow-keyed $job --reducers "$1" | seconds
}

run_nodes() { # local reducers, worker processes
  local_workers=$1 nodes=$2
  err=$(mktemp)
  # shellcheck disable=SC2046
  $bin/flow-keyed $job --reducers "$local_workers" --listen 127.0.0.1:0 \
    --min-workers "$nodes" $(tls manager) >"$err.out" 2>"$err" &
  mgr=$!
  port=""
  while [ -z "$port" ]; do
    sleep 0.05
    port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$err" | head -1)
  done
  i=1
  while [ "$i" -le "$nodes" ]; do
    # shellcheck disable=SC2046
    $bin/flow-node worker --connect "127.0.0.1:$port" --reducers 1 \
      --name "w$i" --log-level warn $(tls "w$i") >/dev/null 2>&1 &
    i=$((i + 1))
  done
  wait "$mgr"
  seconds <"$err.out"
  rm -f "$err" "$err.out"
  wait 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(uname -srm)"
echo "job: flow-keyed $job (4e6 elements, ~1 us each)"
for cfg in "in-process, 1 reducer:local 1" "in-process, 2 reducers:local 2" \
           "1 local + 1 worker process:nodes 1 1" \
           "1 local + 2 worker processes:nodes 1 2"; do
  name=${cfg%%:*}
  spec=${cfg#*:}
  set -- $spec
  xs=""
  r=1
  while [ "$r" -le "$runs" ]; do
    if [ "$1" = local ]; then
      xs="$xs $(run_local "$2")"
    else
      xs="$xs $(run_nodes "$2" "$3")"
    fi
    r=$((r + 1))
  done
  m=$(echo $xs | tr ' ' '\n' | median)
  printf '%-32s median %s s   (runs:%s)\n' "$name" "$m" "$xs"
done
if [ -x build/bench/bench/flow-net-serialize ]; then
  echo
  build/bench/bench/flow-net-serialize 50
fi
