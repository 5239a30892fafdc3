#!/usr/bin/env bash
# Sets up, builds and runs libflow's whole test suite; ends with ctest's
# summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake --preset release
cmake --build --preset release -j2
ctest --preset release
