#!/usr/bin/env bash
# Sets up, builds and runs libflow's main job: the tutorial's Examples 1 and 2
# (flow-sum and flow-keyed on their defaults), each verified exactly.
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
exit "$status"
