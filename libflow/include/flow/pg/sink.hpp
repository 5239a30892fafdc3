#pragma once

/// @file
/// The aggregate sink: a job's final keyed aggregates written to a table,
/// replacing it atomically.

#include <functional>
#include <string>

#include <caf/error.hpp>

#include "flow/pg/connection.hpp"
#include "flow/result.hpp"

namespace flow::pg {

/// Options of `write_aggregates`.
struct sink_options {
  /// Called inside the transaction after the rows are written and before the
  /// swap; throwing from it aborts the write (tests inject failures here).
  std::function<void()> before_swap;
};

/// Writes `res.keys` to `table` as rows (key, sum numeric, count, min, max,
/// sources): `key` is bigint, or text when any key is a string; `min`/`max`
/// are NULL for an empty aggregate; `sources` is the key's source count (for
/// `flow-etl sum`, the number of lists). The rows go to a staging table with
/// `COPY ... FROM STDIN` in one transaction that then drops `table` and
/// renames the staging table in its place: readers see the old table or the
/// new one, and any failure leaves the old one untouched. Returns the error,
/// with its SQL state, or none.
caf::error write_aggregates(const std::string& conninfo,
                            const table_name& table, const job_result& res,
                            const sink_options& opts = {});

} // namespace flow::pg
