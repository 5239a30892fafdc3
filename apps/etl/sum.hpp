#pragma once

// flow-etl's `sum`: keyed sums per list size over the elements table, read
// by parallel partitions in one snapshot (or pushed down to the server, or
// handed to worker nodes with --listen) and verified against the server's
// own GROUP BY in that snapshot.
//
//   partition 1 (value in [lo, b1))  ─┐  COPY (...) TO STDOUT, one snapshot
//   partition 2 (value in [b1, b2))  ─┼─batches─▶ reducers ─▶ manager
//   partition P (value in [bP, hi))  ─┘  (key = list size, list) {key: sum}

namespace flow::apps {

/// `flow-etl sum`: argv[0] is "sum".
int cmd_sum(int argc, char** argv);

} // namespace flow::apps
