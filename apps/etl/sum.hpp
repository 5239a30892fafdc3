#pragma once

// flow-etl's `sum`: keyed sums per list size over the elements table, a
// preset of `aggregate` (aggregate.hpp): GROUP BY list_size, list_id with
// count(*), sum, count, min and max of value, read by parallel partitions
// in one snapshot (or pushed down to the server, or handed to worker nodes
// with --listen), folded per list size and verified against the server's
// own GROUP BY in that snapshot.
//
//   partition 1 ─┐  COPY (...) TO STDOUT, one snapshot
//   partition 2 ─┼─batches─▶ reducers ─▶ manager {(list_size, list_id): states}
//   partition P ─┘                            └─▶ folded per list_size

namespace flow::apps {

/// `flow-etl sum`: argv[0] is "sum".
int cmd_sum(int argc, char** argv);

} // namespace flow::apps
