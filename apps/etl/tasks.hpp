#pragma once

// The flow-etl jobs' pieces that worker nodes run too: the element row and
// reducer of `sum`, and the task kinds a distributed `flow-etl sum|clean
// --listen` hands to `flow-node worker` (one database partition each: the
// node reads it in the manager's snapshot, reduces it locally and returns
// only the partial aggregates).

#include <cstdint>
#include <string>

#include <caf/error.hpp>

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

/// A worker node's error opening its partition, as the manager should see
/// it: a connection that cannot be made is the node's fault
/// (errc::invalid_config: the partition goes to another node), anything
/// else is the data's.
caf::error node_error(caf::error err);

/// The task kind of one `sum` partition (payload: a pg::partition_ticket).
inline constexpr const char* sum_task = "etl.sum";

#ifdef FLOW_HAS_NET
/// Registers the flow-etl task kinds with flow::net. `conninfo`: this
/// process's own connection to the database (flow-node's --db); empty: the
/// manager's, without its password, completed by this process's libpq
/// environment (PGPASSWORD, ~/.pgpass).
void register_etl_tasks(const std::string& conninfo);
#endif

} // namespace flow::apps
