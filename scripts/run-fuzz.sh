#!/usr/bin/env bash
# Builds libflow's libFuzzer targets (preset "fuzz": clang, ASan + UBSan) and
# runs each one for longer than ctest's short runs, one target at a time, on
# its seed corpus (docs/fuzzing.md).
#   bash scripts/run-fuzz.sh                  60 seconds per target
#   bash scripts/run-fuzz.sh 600              600 seconds per target
#   bash scripts/run-fuzz.sh --runs 1000000   that many executions per target
#   bash scripts/run-fuzz.sh 60 price city    only the named targets
# What a run finds stays in build/fuzz/long-run/<target>/corpus, so the next
# run starts from there; the seeds in tests/fuzz/corpus are only read. A
# crashing input goes to build/fuzz/long-run/<target>/artifacts/, the whole
# output to .../log.txt. Exits non-zero if any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: $0 [SECONDS | --runs N] [TARGET...]" >&2
  exit 2
}

limit=(-max_total_time=60)
if [ "${1:-}" = "--runs" ]; then
  [[ "${2:-}" =~ ^[0-9]+$ ]] || usage
  limit=("-runs=$2")
  shift 2
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  limit=("-max_total_time=$1")
  shift
elif [[ "${1:-}" == -* ]]; then
  usage
fi
wanted=("$@")

cmake --preset fuzz
cmake --build --preset fuzz -j2

# name, executable and maximum input length of each target, from CMake.
targets=build/fuzz/tests/fuzz/fuzz_targets.txt
failed=()
ran=0
while read -r name exe max_len; do
  if ((${#wanted[@]} > 0)) && [[ ! " ${wanted[*]} " == *" $name "* ]]; then
    continue
  fi
  ran=$((ran + 1))
  work=build/fuzz/long-run/$name
  mkdir -p "$work/corpus" "$work/artifacts"
  echo "run-fuzz: $name: $exe ${limit[*]} -max_len=$max_len" \
       "$work/corpus tests/fuzz/corpus/$name"
  status=ok
  "$exe" "${limit[@]}" "-max_len=$max_len" -timeout=10 -print_final_stats=1 \
    "-artifact_prefix=$work/artifacts/" "$work/corpus" \
    "tests/fuzz/corpus/$name" </dev/null >"$work/log.txt" 2>&1 || status=FAILED
  done_line=$(grep -E '^Done [0-9]+ runs' "$work/log.txt" | tail -n 1 || true)
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$work/log.txt")
  units=$(awk '/stat::number_of_executed_units/ {print $2}' "$work/log.txt")
  corpus=$(find "$work/corpus" -type f | wc -l)
  printf 'run-fuzz: %-12s %-6s %s executions, %s/s, corpus %s files; %s\n' \
    "$name" "$status" "${units:-?}" "${rate:-?}" "$corpus" \
    "${done_line:-no \"Done\" line, see $work/log.txt}"
  if [ "$status" != ok ]; then
    failed+=("$name")
    grep -E 'property violated|ERROR: |SUMMARY: |Test unit written' \
      "$work/log.txt" | sed 's/^/run-fuzz:   /' || true
  fi
done <"$targets"

if ((ran == 0)); then
  echo "run-fuzz: no target named ${wanted[*]}; see $targets" >&2
  exit 2
fi
if ((${#failed[@]} > 0)); then
  echo "run-fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "run-fuzz: all $ran targets ran clean"
