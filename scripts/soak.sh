#!/bin/sh
# Repeats jobs (flow-keyed with worker nodes, flow-etl sum with worker nodes,
# flow-etl clean, in one process and with worker nodes) for SECONDS while
# injecting faults at random, checking every result against a run without
# faults (scripts/soak.py says which faults).
#
#   scripts/soak.sh SECONDS [--bin DIR] [--seed N] [--keep-logs DIR]
set -eu
[ $# -ge 1 ] || { echo "usage: $0 SECONDS [--bin DIR] [--seed N] [--keep-logs DIR]" >&2; exit 2; }
exec python3 "$(dirname "$0")/soak.py" "$@"
