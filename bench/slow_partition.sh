#!/usr/bin/env bash
# The issue-18 straggler on database partitions: flow-etl sum --listen with
# four partitions and two worker nodes (flow-node, one partition at a time
# each, mutual TLS on loopback), the second node stopped and continued in a
# 0.9 s / 0.1 s cycle (so its heartbeats still arrive) from the moment it
# joined. Undisturbed, throttled with speculation (the default) and throttled
# with --no-speculation, in turns, RUNS times each.
#
# usage: bench/slow_partition.sh [--rows N] [--runs R]   (release preset)
#   A throwaway cluster (flow-etl init --keep), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=4000000 runs=3
while (($#)); do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "slow_partition: unknown option $1" >&2; exit 2 ;;
  esac
done
bin=build/release/apps
log=$(mktemp)
"$bin/flow-etl" init --rows "$rows" --keep 2>"$log"
db=$(sed -n "s/^  --db '\(.*\)'$/\1/p" "$log")
stop_cmd=$(sed -n 's/^  stop and remove it with: //p' "$log")
rm -f "$log"
certs=$(mktemp -d)
trap 'eval "$stop_cmd" >/dev/null 2>&1 || true; rm -rf "$certs"' EXIT
scripts/make-certs.sh "$certs" manager w1 w2 >/dev/null
tls() { echo "--cert $certs/$1.pem --key $certs/$1.key --ca $certs/ca.pem"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { grep -o "\"$1\":[0-9.]*" | head -1 | cut -d: -f2; }

# run MODE (calm, slow, slow-nospec): prints "seconds speculated".
run() {
  local extra="" out w1 w2 mgr port
  [[ "$1" == slow-nospec ]] && extra="--no-speculation"
  out=$(mktemp)
  # shellcheck disable=SC2046
  "$bin/flow-etl" sum --db "$db" --partitions 4 --json $extra \
    --listen 127.0.0.1:0 --min-workers 2 $(tls manager) >"$out.out" 2>"$out" &
  mgr=$!
  port=""
  while [[ -z "$port" ]]; do
    sleep 0.05
    port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$out" | head -1)
  done
  # shellcheck disable=SC2046
  "$bin/flow-node" worker --connect "127.0.0.1:$port" --reducers 1 --name w1 \
    --log-level warn $(tls w1) >/dev/null 2>&1 &
  w1=$!
  # shellcheck disable=SC2046
  "$bin/flow-node" worker --connect "127.0.0.1:$port" --reducers 1 --name w2 \
    --log-level info $(tls w2) >/dev/null 2>"$out.w2" &
  w2=$!
  if [[ "$1" != calm ]]; then
    until grep -q "joined the manager" "$out.w2" 2>/dev/null; do sleep 0.01; done
    while kill -0 "$mgr" 2>/dev/null; do
      kill -STOP "$w2" 2>/dev/null || true
      sleep 0.9
      kill -CONT "$w2" 2>/dev/null || true
      sleep 0.1
    done
  fi
  wait "$mgr" || true
  kill -CONT "$w2" 2>/dev/null || true
  wait "$w1" "$w2" 2>/dev/null || true
  echo "$(field libflow_s <"$out.out") $(field speculated <"$out.out")"
  rm -f "$out" "$out.out" "$out.w2"
}

echo "machine: $(nproc) cores, $(uname -srm)"
echo "job: flow-etl sum --partitions 4 --listen, $rows rows; 2 worker nodes"
calm="" slow="" nospec="" spec=""
for ((r = 1; r <= runs; ++r)); do
  set -- $(run calm); calm="$calm $1"
  set -- $(run slow); slow="$slow $1"; spec="$spec $2"
  set -- $(run slow-nospec); nospec="$nospec $1"
done
mc=$(echo $calm | tr ' ' '\n' | median)
ms=$(echo $slow | tr ' ' '\n' | median)
mn=$(echo $nospec | tr ' ' '\n' | median)
printf '%-40s median %6s s   (runs:%s)\n' "undisturbed" "$mc" "$calm"
printf '%-40s median %6s s = %.2fx   (runs:%s; speculated:%s)\n' \
  "one node stopped 0.9 s of every 1 s" "$ms" "$(echo "$ms / $mc" | bc -l)" "$slow" "$spec"
printf '%-40s median %6s s = %.2fx   (runs:%s)\n' \
  "the same, --no-speculation" "$mn" "$(echo "$mn / $mc" | bc -l)" "$nospec"
