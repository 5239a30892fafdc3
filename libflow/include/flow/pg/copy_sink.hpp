#pragma once

/// @file
/// A job's output rows written to PostgreSQL tables with COPY FROM STDIN, in
/// one transaction that swaps staging tables in at commit: readers see the
/// previous tables or the new ones, never a mix, and a failed or killed job
/// leaves the previous tables untouched.
///
/// @code
/// std::vector<flow::pg::output_table> tables{
///   {{"", "ads_clean"}, "id bigint NOT NULL, city text NOT NULL", "id"}};
/// auto snk = std::make_unique<flow::pg::copy_sink>(conninfo, tables);
/// pipeline.sink(flow::sink<flow::pg::copy_row>{std::move(snk)});
/// // a reducer: flow::pg::copy_row r{0, {}};
/// //            flow::pg::append_copy_int(r.line, id); r.line += '\t';
/// //            flow::pg::append_copy_field(r.line, city); r.line += '\n';
/// //            out.emit(std::move(r));
/// @endcode

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "flow/pg/connection.hpp"
#include "flow/pg/read.hpp"
#include "flow/result.hpp"
#include "flow/sink.hpp"

namespace flow::pg {

/// How a table's copy_rows are encoded.
enum class copy_format {
  /// COPY text lines (append_copy_field, append_copy_int).
  text,
  /// COPY binary tuples (begin_binary_row, append_binary_*): no escaping on
  /// the client, and the server parses no text (timestamps, numbers).
  binary,
};

/// One table a copy_sink writes.
struct output_table {
  /// The table the job's output replaces (created if missing).
  table_name target;
  /// Its column definitions, e.g. "id bigint NOT NULL, city text".
  std::string columns;
  /// The primary key's columns ("id"), built in bulk at commit; empty: none.
  /// A duplicate key then fails the commit and nothing becomes visible.
  std::string primary_key;
  /// How the rows for this table are encoded.
  copy_format format = copy_format::text;
};

/// One output row: the index of its table in the sink's list, and the row in
/// that table's format: one line of COPY text (fields separated by tabs,
/// ending in '\n'; build it with append_copy_field) or one COPY binary tuple
/// (begin_binary_row, then one append_binary_* per column). Formatting
/// happens in the reducers, in parallel; the sink only moves bytes.
///
/// A copy_row may also be a **block**: `rows` lines (or tuples) of one table
/// one after another in `line`. A reducer that formats a whole batch into one
/// block per table allocates one string per table instead of one per row, and
/// the sink copies each block once. The job counts `rows` rows for it (its
/// `written` and the sink's rows per table); a block of 0 rows must be empty
/// (`partial::emit` drops an empty one and refuses one that is not).
struct copy_row {
  /// Index into the sink's tables.
  std::uint32_t table = 0;
  /// The COPY text line ('\n' included) or binary tuple; or, for a block,
  /// `rows` of them.
  std::string line;
  /// How many rows `line` holds: 1 for one row.
  std::uint64_t rows = 1;

  /// Makes copy_row a block of rows for flow::partial: valid unless it
  /// claims 0 rows and holds bytes.
  static bool valid_block(const copy_row& r) noexcept {
    return r.rows > 0 || r.line.empty();
  }
};

/// Appends `x` as one COPY text field: NULL (no value) as \N; backslash,
/// tab, newline and carriage return escaped.
void append_copy_field(std::string& out,
                       const std::optional<std::string_view>& x);

/// Appends an integer field.
void append_copy_int(std::string& out, std::int64_t x);

/// Starts a COPY binary tuple of `fields` columns (copy_format::binary).
/// Throws std::invalid_argument above PostgreSQL's 1600 columns.
void begin_binary_row(std::string& out, std::uint16_t fields);

/// Appends a bigint column to a binary tuple.
void append_binary_int(std::string& out, std::int64_t x);

/// Appends a text column (or NULL) to a binary tuple: the bytes as they are,
/// which must be valid in the server's encoding (the server checks).
void append_binary_text(std::string& out,
                        const std::optional<std::string_view>& x);

/// Appends a timestamp (without time zone) column to a binary tuple:
/// microseconds since 2000-01-01 00:00:00 (see timestamp_micros).
void append_binary_timestamp(std::string& out, std::int64_t micros);

/// A date and time of day (proleptic Gregorian calendar, years 1 to 9999, no
/// leap seconds) as PostgreSQL's timestamp: microseconds since 2000-01-01
/// 00:00:00. Throws std::invalid_argument for fields out of range.
std::int64_t timestamp_micros(int year, int month, int day, int hour = 0,
                              int minute = 0, int second = 0);

/// Rows a copy_sink adds at commit from the job's final result (for example
/// the manager's keyed aggregates).
using final_rows_fn = std::function<std::vector<copy_row>(const job_result&)>;

/// Rows a copy_sink writes for a batch's dead letters (for example into a
/// rejects table), in the same transaction as the batch's rows.
using dead_letter_rows_fn
  = std::function<std::vector<copy_row>(const std::vector<dead_letter>&)>;

/// What a resumable copy_sink records with every step it commits: per source,
/// the range it reads and how many of its elements have their output
/// committed.
struct resume_state {
  /// The range each source reads (the interrupted run's plan).
  std::vector<range> plan;
  /// Per source: elements whose output is committed in the staging tables.
  std::vector<std::uint64_t> done;
  /// The staging tables holding the committed output, one per target.
  std::vector<table_name> staging;
};

/// Makes a copy_sink resumable (see `copy_sink::checkpoint`).
struct checkpoint_options {
  /// The range each source reads, stored with the checkpoints.
  std::vector<range> plan;
  /// Resuming: the state `load_resume_state` returned; empty `done`: a
  /// fresh run, which discards any state an earlier run left.
  std::vector<std::uint64_t> resumed;
  /// A step (the rows written so far and every source's progress) is
  /// committed at most this often.
  std::chrono::milliseconds interval{1000};
};

/// Writes copy_rows into staging tables inside one transaction on its own
/// connection; at commit adds the final rows, builds the primary keys, then
/// replaces every target by its staging table and commits. Errors carry the
/// SQL state; passwords are scrubbed from them.
class copy_sink final : public sink_impl<copy_row> {
public:
  /// A sink writing `tables` through `conninfo` (empty: the environment).
  copy_sink(std::string conninfo, std::vector<output_table> tables,
            final_rows_fn final_rows = {},
            std::function<void()> before_commit = {});

  /// Rolls back when neither committed nor aborted.
  ~copy_sink() override;

  /// Connects, begins the transaction and creates the staging tables (in
  /// checkpoint mode: discards a previous run's state, or finds the one it
  /// resumes), so the first batch finds them ready. Not for a sink that
  /// adopts tables (`adopt`): it writes nothing before its commit and
  /// connects then, holding no transaction open during the job.
  void open() override;

  /// COPYs one batch's rows, one COPY per table that has rows.
  void write(const std::vector<copy_row>& rows) override;

  /// Makes the sink resumable. The staging tables then live in the schema
  /// `flow_resume` under names derived from the first target, and the rows
  /// are committed there in steps, each together with every source's
  /// progress (the contiguous prefix of its elements whose rows are
  /// written). A run that is killed or loses its connection leaves them;
  /// `load_resume_state` reads the progress and a new run given it as
  /// `resumed` continues, skipping those elements. The targets still change
  /// only at the final commit, in one transaction. Out-of-order batches are
  /// held until the batches before them are written.
  void checkpoint(checkpoint_options opts);

  /// The progress an interrupted resumable run left for these targets, or
  /// an error (errc::invalid_config) when there is none.
  static caf::expected<resume_state>
  load_resume_state(const std::string& conninfo,
                    const std::vector<output_table>& tables);

  /// In checkpoint mode: writes the batch's rows once every earlier batch of
  /// its source is written, and commits a step when one is due.
  void write_batch(const batch_info& b,
                   const std::vector<copy_row>& rows) override;

  /// True in checkpoint mode (progress needs every batch).
  bool wants_every_batch() const override;

  /// Sets how dead letters become rows; without it they are not written
  /// (they stay in the job's result).
  void on_dead_letters(dead_letter_rows_fn fn);

  /// Writes the rows `on_dead_letters` makes of `letters`.
  void write_dead_letters(const std::vector<dead_letter>& letters) override;

  /// Adds the rows of `staged` (a table with `tables[table]`'s columns,
  /// written and committed by another process, e.g. a worker node's own
  /// copy_sink) to table `table`'s output at commit, in the same
  /// transaction, and drops `staged` there. Call before the job starts.
  void adopt(std::size_t table, table_name staged);

  /// Runs `sql` in the commit's transaction, after the swap and just
  /// before COMMIT (e.g. dropping a job's resume state together with the
  /// output that makes it obsolete). Call before `commit`.
  void at_commit(std::string sql);

  /// Final rows, adopted tables, primary keys, the swap, COMMIT.
  void commit(const job_result& result) override;

  /// Closes the connection: the server rolls the transaction back.
  void abort() noexcept override;

  /// Names the targets.
  std::string name() const override;

  /// Each target (by its display name) and the rows this sink has COPYed
  /// into its staging table so far: the batches' rows, dead letters, the
  /// final rows at commit and adopted tables' rows (not the rows an
  /// interrupted run committed before a resume).
  std::vector<output_rows> outputs_written() const override;

  /// Seconds spent in write() so far.
  double write_seconds() const noexcept;

  /// Implementation (libpq), defined in the library.
  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace flow::pg
