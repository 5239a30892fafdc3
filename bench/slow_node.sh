#!/bin/sh
# A straggler: flow-keyed with one local reducer and two worker processes
# (flow-node, one reducer each, mutual TLS on loopback), the second node
# throttled to about a tenth of its speed (SIGSTOP 90 ms / SIGCONT 10 ms,
# so its heartbeats still arrive) from the moment it lent its reducer.
# Undisturbed, throttled with speculation (the default) and throttled with
# --no-speculation, in turns, RUNS times each.
#
#   bash bench/slow_node.sh [RUNS]     (needs the release preset)
#
# Prints the medians of flow-keyed's libflow_s, the ratios to the
# undisturbed run, and the batches speculated.
set -eu
cd "$(dirname "$0")/.."
runs=${1:-5}
bin=build/release/apps
certs=$(mktemp -d)
trap 'rm -rf "$certs"' EXIT
scripts/make-certs.sh "$certs" manager w1 w2 >/dev/null
tls() { echo "--cert $certs/$1.pem --key $certs/$1.key --ca $certs/ca.pem"; }
job="--sizes 3000000,3000000 --reducer spin --batch 65536 --json \
--speculation-floor 300 --reducers 1"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { grep -o "\"$1\":[0-9.]*" | head -1 | cut -d: -f2; }

# run MODE (calm, slow, slow-nospec): prints "seconds speculated".
run() {
  extra=""
  [ "$1" = slow-nospec ] && extra="--no-speculation"
  out=$(mktemp)
  # shellcheck disable=SC2046
  $bin/flow-keyed $job $extra --listen 127.0.0.1:0 --min-workers 2 \
    $(tls manager) >"$out.out" 2>"$out" &
  mgr=$!
  port=""
  while [ -z "$port" ]; do
    sleep 0.05
    port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$out" | head -1)
  done
  # shellcheck disable=SC2046
  $bin/flow-node worker --connect "127.0.0.1:$port" --reducers 1 --name w1 \
    --log-level warn $(tls w1) >/dev/null 2>&1 &
  w1=$!
  # shellcheck disable=SC2046
  $bin/flow-node worker --connect "127.0.0.1:$port" --reducers 1 --name w2 \
    --log-level info $(tls w2) >/dev/null 2>"$out.w2" &
  w2=$!
  if [ "$1" != calm ]; then
    until grep -q "lent 1 reducers" "$out.w2" 2>/dev/null; do sleep 0.01; done
    while kill -0 "$mgr" 2>/dev/null; do
      kill -STOP "$w2" 2>/dev/null || true
      sleep 0.09
      kill -CONT "$w2" 2>/dev/null || true
      sleep 0.01
    done
  fi
  wait "$mgr" || true
  kill -CONT "$w2" 2>/dev/null || true
  wait "$w1" "$w2" 2>/dev/null || true
  echo "$(field libflow_s <"$out.out") $(field speculated <"$out.out")"
  rm -f "$out" "$out.out" "$out.w2"
}

echo "machine: $(nproc) cores, $(uname -srm)"
echo "job: flow-keyed $job; 1 local reducer + 2 worker processes"
calm="" slow="" nospec="" spec=""
r=1
while [ "$r" -le "$runs" ]; do
  set -- $(run calm); calm="$calm $1"
  set -- $(run slow); slow="$slow $1"; spec="$spec $2"
  set -- $(run slow-nospec); nospec="$nospec $1"
  r=$((r + 1))
done
mc=$(echo $calm | tr ' ' '\n' | median)
ms=$(echo $slow | tr ' ' '\n' | median)
mn=$(echo $nospec | tr ' ' '\n' | median)
printf '%-40s median %6s s   (runs:%s)\n' "undisturbed" "$mc" "$calm"
printf '%-40s median %6s s = %.2fx   (runs:%s; speculated:%s)\n' \
  "one node at 1/10, speculation" "$ms" "$(echo "$ms / $mc" | bc -l)" "$slow" "$spec"
printf '%-40s median %6s s = %.2fx   (runs:%s)\n' \
  "one node at 1/10, --no-speculation" "$mn" "$(echo "$mn / $mc" | bc -l)" "$nospec"
