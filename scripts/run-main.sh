#!/usr/bin/env bash
# Sets up, builds and runs libflow's main job: the tutorial's Examples 1 and 2
# (flow-sum and flow-keyed on their defaults), each verified exactly; then the
# PostgreSQL part: flow-etl init, sum and clean in throwaway clusters; then
# the distributed part: flow-keyed and flow-etl clean each with a worker node
# over mutual TLS.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake --preset release
cmake --build --preset release -j2

status=0
echo "== flow-sum (the tutorial's Example 1)"
build/release/apps/flow-sum || status=$?
echo "== flow-keyed (the tutorial's Example 2)"
# With the status page: the address is printed on stderr (open it while
# the job runs; docs/observability.md).
build/release/apps/flow-keyed --status 127.0.0.1:0 || status=$?
echo "== flow-etl (the tutorial's lists as rows in PostgreSQL)"
# No --db and no PG* environment: flow-etl starts a throwaway cluster, and
# sum runs init in it first (the tutorial's lists scaled to 10^6 rows).
build/release/apps/flow-etl sum || status=$?
echo "== flow-etl sum --pushdown (the server aggregates each partition)"
build/release/apps/flow-etl sum --pushdown || status=$?
echo "== flow-etl clean (the data-cleaning job: ads -> ads_clean, ads_rejects, ads_summary)"
build/release/apps/flow-etl clean || status=$?
# A throwaway CA and node certificates for the distributed steps.
certs=$(mktemp -d)
scripts/make-certs.sh "$certs" manager worker >/dev/null

# with_worker PROGRAM ARGS...: runs PROGRAM as a manager listening on a free
# loopback port (mutual TLS) and one flow-node worker that joins it.
with_worker() {
  local log manager port rc=0
  log=$(mktemp)
  "$@" --listen 127.0.0.1:0 --min-workers 1 --cert "$certs/manager.pem" \
    --key "$certs/manager.key" --ca "$certs/ca.pem" 2> >(tee "$log" >&2) &
  manager=$!
  port=""
  for _ in $(seq 1 600); do
    port=$(sed -n 's/.*: listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  build/release/apps/flow-node worker --connect "127.0.0.1:$port" \
    --reducers 1 --name worker --log-level warn --cert "$certs/worker.pem" \
    --key "$certs/worker.key" --ca "$certs/ca.pem" 2>/dev/null &
  wait "$manager" || rc=$?
  wait 2>/dev/null || true
  rm -f "$log"
  return "$rc"
}

echo "== flow-keyed with a worker node (flow::net: a second process over mutual TLS)"
with_worker build/release/apps/flow-keyed --preset 2 --batch 16384 \
  --reducers 1 || status=$?
echo "== flow-etl clean with a worker node (it reads and cleans its partitions itself)"
with_worker build/release/apps/flow-etl clean --partitions 4 || status=$?
rm -rf "$certs"
exit "$status"
