#pragma once

/// @file
/// Database rows as sources: a query streamed with `COPY (...) TO STDOUT`,
/// and partitioned parallel reads of a table, every partition reading one
/// consistent snapshot. Also the aggregate push-down: each partition's partial
/// keyed aggregate computed by the server.
///
/// @code
/// auto read = flow::pg::partitioned_read::open(
///   {conninfo, {"public", "elements"}, {"list_size", "value"}, "value", 4});
/// auto srcs = read->row_sources<flow::keyed_value>(
///   [](const flow::pg::row_view& r) {
///     return flow::keyed_value{r.int64(0), r.int64(1)};
///   });
/// flow::pipeline<flow::keyed_value> p;
/// for (auto& s : *srcs)
///   p.add(std::move(s));
/// auto res = p.reduce(flow::sum_by_key()).run();
/// @endcode

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "flow/aggregate.hpp"
#include "flow/key.hpp"
#include "flow/partial.hpp"
#include "flow/pg/connection.hpp"
#include "flow/pg/row.hpp"
#include "flow/reducer.hpp"
#include "flow/source.hpp"

namespace flow::pg {

// -- ranges of the partition column -----------------------------------------

/// One range of an integer partition column: `lo <= column < hi`, either end
/// open, plus the rows whose column is NULL when `nulls` is set.
struct range {
  /// Inclusive lower bound; none: unbounded.
  std::optional<std::int64_t> lo;
  /// Exclusive upper bound; none: unbounded.
  std::optional<std::int64_t> hi;
  /// True when this range also holds the rows whose column is NULL.
  bool nulls = false;
  /// True when `lo` and `hi` are block numbers of the table's heap (a
  /// partition by `ctid`), not values of a column.
  bool blocks = false;

  /// The SQL predicate selecting this range of the (quoted) column.
  std::string predicate(const std::string& quoted_column) const;

  /// The range for messages, e.g. "[-inf, 100) or NULL".
  std::string display() const;
};

/// Ranges that together cover every int64 and NULL exactly once, cut at
/// `bounds` (sorted here, duplicates dropped): k distinct bounds give k + 1
/// ranges; NULLs go to the first.
std::vector<range> ranges_from_bounds(std::vector<std::int64_t> bounds);

// -- reading rows -----------------------------------------------------------

/// Streams the rows of one `COPY (query) TO STDOUT` in its own connection and
/// transaction. The COPY starts at the first call to `next`, so partitions
/// start in parallel on their generators' threads.
class copy_reader {
public:
  /// Implementation (libpqxx objects), defined in the library.
  struct impl;

  /// A reader over an opened session (see `partitioned_read`, `from_query`).
  explicit copy_reader(std::unique_ptr<impl> ptr);

  /// Moves a reader.
  copy_reader(copy_reader&&) noexcept;

  /// Moves a reader.
  copy_reader& operator=(copy_reader&&) noexcept;

  /// Cancels a COPY still running and closes the connection.
  ~copy_reader();

  /// The next row, or nullptr after the last one. Throws `flow::input_error`
  /// carrying the SQL state on a database error.
  const row_view* next();

  /// Rows read so far.
  std::uint64_t rows() const noexcept;

  /// The rows this reader is expected to read: the planner's estimate for
  /// a partition of a partitioned read (see docs/observability.md); empty
  /// when unknown (a query, a table never analysed).
  std::optional<std::uint64_t> estimate() const noexcept;

  /// Names the reader for messages, e.g. "partition 2/4 of public.elements
  /// [100, 200)".
  const std::string& name() const noexcept;

  /// Throws `flow::input_error` (errc::bad_input) for the current row:
  /// "NAME, row N, column "c": what".
  [[noreturn]] void fail(const decode_error& e) const;

private:
  std::unique_ptr<impl> impl_;
};

/// A source of T decoded by `F` from the rows of a `copy_reader`: a
/// callable `T(const row_view&)`, or `void(const row_view&, T&)`, which
/// decodes into a default-constructed T already in the batch (no move of a
/// large row), or `void(const row_view&, T&, batch_text&)`, which may keep
/// text fields as views into the batch's own `batch_text` (valid as long as
/// the batch: no string per field). Blocking: its generator runs on a thread
/// of its own.
template <class T, class F>
class row_source : public source_impl<T> {
public:
  /// Decodes the rows of `reader` with `decode`.
  row_source(copy_reader reader, F decode)
    : reader_(std::move(reader)), decode_(std::move(decode)) {
    // nop
  }

  /// Up to `max` decoded rows; empty at the end.
  slice<T> next(std::size_t max) override {
    if constexpr (std::is_invocable_v<F&, const row_view&, T&, batch_text&>)
      return next_with_text(max);
    else
      return next_plain(max);
  }

  /// True after the last row.
  bool exhausted() const override {
    return done_;
  }

  /// Always true: reads block on the network.
  bool blocking() const override {
    return true;
  }

  /// The reader's name.
  std::string name() const override {
    return reader_.name();
  }

  /// The planner's estimate of the rows, when known.
  std::optional<std::uint64_t> size_hint() const override {
    return reader_.estimate();
  }

  /// True: a row estimate, never exact.
  bool size_is_estimate() const override {
    return true;
  }

private:
  /// A batch's elements and the text they view, freed together.
  struct text_batch {
    std::vector<T> items;
    batch_text text;
  };

  slice<T> next_with_text(std::size_t max) {
    auto b = std::make_shared<text_batch>();
    fill(b->items, max, &b->text);
    auto data = b->items.data();
    auto n = b->items.size();
    return slice<T>{std::shared_ptr<const void>{std::move(b)}, data, n};
  }

  slice<T> next_plain(std::size_t max) {
    std::vector<T> xs;
    fill(xs, max, nullptr);
    return slice<T>::owning(std::move(xs));
  }

  /// Decodes up to `max` rows into `xs` (`text`: the batch's store, for a
  /// decoder that keeps text).
  void fill(std::vector<T>& xs, std::size_t max, batch_text* text) {
    xs.reserve(std::min<std::size_t>(max, 65536));
    while (xs.size() < max) {
      auto row = reader_.next();
      if (row == nullptr) {
        done_ = true;
        break;
      }
      try {
        if constexpr (std::is_invocable_v<F&, const row_view&, T&,
                                          batch_text&>) {
          xs.emplace_back();
          decode_(*row, xs.back(), *text);
        } else if constexpr (std::is_invocable_v<F&, const row_view&, T&>) {
          (void) text;
          xs.emplace_back();
          decode_(*row, xs.back());
        } else {
          (void) text;
          xs.emplace_back(decode_(*row));
        }
      } catch (const decode_error& e) {
        reader_.fail(e);
      }
    }
  }

  copy_reader reader_;
  F decode_;
  bool done_ = false;
};

/// The rows of one query (any SELECT) as a source, read in a transaction of
/// its own on a connection opened now (`conninfo` empty: the environment).
template <class T, class F>
caf::expected<source<T>> from_query(const std::string& conninfo,
                                    const std::string& select, F decode);

/// Opens the reader behind `from_query` (defined in the library).
caf::expected<copy_reader> open_query(const std::string& conninfo,
                                      const std::string& select);

/// Opens a reader of `select` in a read-only REPEATABLE READ transaction
/// that imports `snapshot` (exported by another transaction with
/// `pg_export_snapshot()`, e.g. `partitioned_read::snapshot_id`), so the
/// query sees exactly what the exporting transaction sees.
caf::expected<copy_reader> open_query(const std::string& conninfo,
                                      const std::string& select,
                                      const std::string& snapshot);

template <class T, class F>
caf::expected<source<T>> from_query(const std::string& conninfo,
                                    const std::string& select, F decode) {
  auto reader = open_query(conninfo, select);
  if (!reader)
    return std::move(reader.error());
  return source<T>{std::make_unique<row_source<T, F>>(std::move(*reader),
                                                      std::move(decode))};
}

// -- aggregate push-down ----------------------------------------------------

/// One group's partial aggregate as computed by the server: the element of
/// push-down sources. Its `agg.count` is a number of rows.
struct keyed_aggregate {
  /// The group's key.
  flow::key key;
  /// Sum (exact), count, min and max of the group's non-NULL values.
  aggregate agg;
};

/// The reducer for push-down sources: merges every group's aggregate under
/// its key, exactly as the manager merges any reducer's partials.
inline reducer<keyed_aggregate> merge_by_key() {
  return [](const batch_ref<keyed_aggregate>& b, partial& out) {
    for (auto& x : b.items)
      out.add(x.key, x.agg);
  };
}

/// What the server aggregates per partition.
struct pushdown_spec {
  /// The grouping columns (unquoted names); the key function sees them as
  /// fields 0 .. n-1.
  std::vector<std::string> group_columns;
  /// The integer column summed (NULL values are ignored, as SQL's sum does).
  std::string value_column;
  /// Makes the group's key from its grouping fields.
  std::function<flow::key(const row_view&)> key;
};

/// How many block-range ("ctid") partitions to read `table` with, given
/// `cores` to spare. PostgreSQL scans a table larger than a quarter of its
/// shared buffers through a small ring of buffers, so that one scan does not
/// evict everything else; a TID range scan does not, so parallel block ranges
/// of such a table churn the whole buffer pool (and, measured on 10^7 rows
/// with 128 MB of shared buffers, ran 1.5x slower than one scan). Such a
/// table gets 1 partition, a smaller one `cores`.
caf::expected<std::size_t> ctid_partitions(const std::string& conninfo,
                                           const table_name& table,
                                           std::size_t cores);

// -- one partition, for another process -------------------------------------

/// One partition of a partitioned read, described so that another process
/// (a worker node, see flow::net) can read it on a connection of its own in
/// the read's exported snapshot. It never holds a password: the reading side
/// completes the connection from its own environment or `--db`.
struct partition_ticket {
  /// The read's connection string without its password.
  std::string conninfo;
  /// The table.
  table_name table;
  /// The columns each row holds (unquoted names).
  std::vector<std::string> columns;
  /// The partition column (or "ctid").
  std::string partition_column;
  /// This partition's range.
  range part;
  /// This partition's index and the number of partitions (for messages).
  std::size_t index = 0;
  /// Number of partitions of the read.
  std::size_t count = 1;
  /// The exported snapshot to import.
  std::string snapshot;
  /// Rows to skip at the start (see `read_spec::offsets`).
  std::uint64_t offset = 0;
  /// The read's SQL filter (see `read_spec::filter`); empty: none.
  std::string filter;
  /// Fields the task that reads the partition needs besides (opaque here),
  /// e.g. where to stage its output; they travel with the ticket.
  std::vector<std::string> extra;
  /// The planner's estimate of the partition's rows (as its reader's
  /// `copy_reader::estimate`), when known. The manager's, for progress
  /// (flow::net::task_source): not encoded, it does not travel.
  std::optional<std::uint64_t> estimate;

  /// The ticket as one string (length-prefixed fields), to cross a network.
  std::string encode() const;

  /// Parses `encode`'s output; errors are errc::bad_input.
  static caf::expected<partition_ticket> decode(const std::string& text);
};

/// Opens a reader of `ticket`'s partition: a connection of its own
/// (`conninfo`; empty: the ticket's, completed by the environment), a
/// transaction that imports the ticket's snapshot. Fails (SQL state 22023
/// "invalid snapshot identifier") once the exporting transaction ended.
caf::expected<copy_reader> open_partition(const partition_ticket& ticket,
                                          const std::string& conninfo = {});

// -- partitioned reads ------------------------------------------------------

/// What a partitioned read reads.
struct read_spec {
  /// libpq connection string or URI; empty: the standard environment.
  std::string conninfo;
  /// The table (or view) to read.
  table_name table;
  /// The columns each row holds, in order (unquoted names).
  std::vector<std::string> columns;
  /// The integer column (smallint, integer or bigint) whose ranges make the
  /// partitions, or "ctid": ranges of the table's blocks (TID range scans),
  /// so each partition reads only its share of the heap, perfectly balanced
  /// by size whatever the data.
  std::string partition_column;
  /// How many partitions to aim for (fewer when the column has fewer
  /// distinct values).
  std::size_t partitions = 1;
  /// Tables up to this many pages get exact quantiles of the whole column;
  /// larger ones quantiles of a sample of about this many pages.
  std::int64_t sample_pages = 2000;
  /// The ranges to read instead of planning new ones (resuming a job:
  /// the interrupted run's plan). Empty: plan.
  std::vector<range> plan;
  /// Rows to skip at the start of each partition (resuming: the rows whose
  /// output an interrupted run committed). Empty: none. Partitions are read
  /// in the heap's physical order (no synchronized or parallel scans), so
  /// the same rows are skipped as long as the table did not change.
  std::vector<std::uint64_t> offsets;
  /// A filter in SQL (the user's own, trusted as a query is), ANDed to each
  /// partition's range predicate; empty: every row. Tickets carry it, so a
  /// worker node reads the same rows.
  std::string filter;
  /// Grouped reads (`grouped_readers`, `aggregate_readers`) group by sorting
  /// (`enable_hashagg` off in their sessions): for many groups, whose hash
  /// tables PostgreSQL spills to disk at its default `work_mem`, sorting a
  /// partition's rows is faster (docs/etl.md, "Push-down"). Row reads
  /// ignore it.
  bool sort_groups = false;
  /// Grouped reads raise their sessions' `work_mem` to at least this many
  /// bytes (never lower it): a hash aggregate of a few thousand groups of
  /// many `numeric` states spills to disk at PostgreSQL's default 4 MB.
  /// 0: the server's setting. Row reads ignore it.
  std::int64_t min_work_mem = 0;
  /// A snapshot exported by another, still open transaction
  /// (`pg_export_snapshot()`) for the read to import instead of exporting
  /// its own: several reads then see the same rows. Empty: export one.
  std::string snapshot;
};

/// Rows of text fields (NULL: no value), as a query returns them.
using text_rows = std::vector<std::vector<std::optional<std::string>>>;

/// A partitioned parallel read of one table in one consistent snapshot. A
/// coordinating REPEATABLE READ transaction exports its snapshot and plans
/// the ranges (balanced quantiles of the partition column); every partition's
/// transaction imports that snapshot with SET TRANSACTION SNAPSHOT before the
/// coordinator lets go, so all partitions see the same rows.
class partitioned_read {
public:
  /// Coordinator state (libpqxx objects), defined in the library.
  struct impl;

  /// Connects, exports a snapshot and plans the ranges. Errors carry the SQL
  /// state (missing table or column, permission denied, unreachable server).
  static caf::expected<partitioned_read> open(read_spec spec);

  /// Moves a read.
  partitioned_read(partitioned_read&&) noexcept;

  /// Moves a read.
  partitioned_read& operator=(partitioned_read&&) noexcept;

  /// Ends the coordinating transaction if still open.
  ~partitioned_read();

  /// The planned ranges, one per partition.
  const std::vector<range>& ranges() const noexcept;

  /// The exported snapshot's id.
  const std::string& snapshot_id() const noexcept;

  /// The spec this read was opened with.
  const read_spec& spec() const noexcept;

  /// Runs `sql` in the coordinating transaction, hence in the snapshot (for
  /// reference queries). Fails after `release`.
  caf::expected<text_rows> query(const std::string& sql);

  /// True when the server ended the coordinating session (the connection
  /// is lost: a terminated backend, a restart), which takes a snapshot it
  /// exported with it. False while it is alive, after `release`, and when
  /// only its transaction failed (an SQL error).
  bool exporter_lost();

  /// Commits the coordinating transaction (the partitions keep their
  /// imported snapshots). Also done by the destructor.
  void release();

  /// One reader per range, each in a transaction that has imported the
  /// snapshot, selecting `spec().columns` of its range.
  caf::expected<std::vector<copy_reader>> readers();

  /// One ticket per range: what another process needs to read that range
  /// in this read's snapshot (valid until `release`).
  caf::expected<std::vector<partition_ticket>> tickets() const;

  /// One reader per range of `SELECT select_list FROM table WHERE <range>
  /// [AND <filter>] [GROUP BY group_by]`: any partial aggregates the server
  /// computes per partition (`select_list` and `group_by` are SQL the caller
  /// built from quoted names). The server may use parallel workers when
  /// there is one range (with several, each runs without: see etl.md).
  caf::expected<std::vector<copy_reader>>
  grouped_readers(const std::string& select_list,
                  const std::string& group_by);

  /// One reader per range computing the range's grouped partial aggregate on
  /// the server: rows of (group columns..., sum, count, min, max).
  caf::expected<std::vector<copy_reader>>
  aggregate_readers(const pushdown_spec& spec);

  /// One row source per range, rows decoded by `decode`.
  template <class T, class F>
  caf::expected<std::vector<source<T>>> row_sources(F decode) {
    auto rs = readers();
    if (!rs)
      return std::move(rs.error());
    std::vector<source<T>> result;
    for (auto& r : *rs)
      result.emplace_back(
        std::make_unique<row_source<T, F>>(std::move(r), decode));
    return result;
  }

  /// One push-down source per range: the server aggregates the range per
  /// group; the elements are the groups' partial aggregates (reduce them with
  /// `merge_by_key()`).
  caf::expected<std::vector<source<keyed_aggregate>>>
  aggregate_sources(const pushdown_spec& spec);

private:
  explicit partitioned_read(std::unique_ptr<impl> ptr);

  std::unique_ptr<impl> impl_;
};

} // namespace flow::pg
