#!/usr/bin/env bash
# Sets up, builds and runs libflow's main job: the tutorial's Examples 1 and 2
# (flow-sum and flow-keyed on their defaults), each verified exactly; then the
# PostgreSQL part: flow-etl init, sum and clean in throwaway clusters.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake --preset release
cmake --build --preset release -j2

status=0
echo "== flow-sum (the tutorial's Example 1)"
build/release/apps/flow-sum || status=$?
echo "== flow-keyed (the tutorial's Example 2)"
build/release/apps/flow-keyed || status=$?
echo "== flow-etl (the tutorial's lists as rows in PostgreSQL)"
# No --db and no PG* environment: flow-etl starts a throwaway cluster, and
# sum runs init in it first (the tutorial's lists scaled to 10^6 rows).
build/release/apps/flow-etl sum || status=$?
echo "== flow-etl sum --pushdown (the server aggregates each partition)"
build/release/apps/flow-etl sum --pushdown || status=$?
echo "== flow-etl clean (the data-cleaning job: ads -> ads_clean, ads_rejects, ads_summary)"
build/release/apps/flow-etl clean || status=$?
exit "$status"
