#pragma once

// The `elements` table as the sum job sees it: a row, the manager's key per
// list, and the reducer that folds a batch per list. The manager (flow-etl
// sum) and worker nodes (flow-node, through tasks.hpp) use the same pieces.

#include <cstdint>

#include "flow/pg/row.hpp"
#include "flow/reducer.hpp"

namespace flow::apps {

/// A row of `elements` as the sum reducers see it.
struct element_row {
  /// list_size and list_id packed (see list_key).
  std::int64_t key = 0;
  /// The value (when `has_value`).
  std::int64_t value = 0;
  /// False for a NULL value.
  bool has_value = false;
};

/// The manager's key for a list: list_size in the high 32 bits, list_id in
/// the low ones. Exact and one key per list, so the number of lists of a
/// size is the number of keys with that size, whichever partitions a list's
/// rows fall into.
std::int64_t list_key(std::int32_t list_size, std::int32_t list_id);

/// The list size of a `list_key`.
std::int64_t size_of_key(std::int64_t key);

/// Decodes a row of (list_id, list_size, value).
element_row decode_element_row(const pg::row_view& r);

/// Folds a batch per list locally (rows of one list come in runs), then
/// hands one aggregate per list to the partial; NULL values are rejected.
reducer<element_row> sum_per_list();

} // namespace flow::apps
