#!/usr/bin/env bash
# Sets up, builds and runs libflow's whole test suite: first under
# AddressSanitizer + UndefinedBehaviorSanitizer (preset "asan"; suppressions
# in tests/sanitizers/ explain each one), then the thread tests of tests/tsan
# under ThreadSanitizer (preset "tsan": libflow and those tests only), then a
# short run of every fuzz target on its seed corpus (preset "fuzz", clang:
# about a minute, see docs/fuzzing.md), then the release build, ending with
# ctest's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake --preset asan
cmake --build --preset asan -j2
ctest --preset asan
cmake --preset tsan
cmake --build --preset tsan -j2
ctest --preset tsan
cmake --preset fuzz
cmake --build --preset fuzz -j2
ctest --preset fuzz
cmake --preset release
cmake --build --preset release -j2
ctest --preset release
