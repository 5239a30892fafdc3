#pragma once

// flow-etl's `aggregate`: GROUP BY any columns of the user's own table (or
// query), any of the aggregates of agg_spec.hpp, read by parallel partitions
// in one snapshot, verified against the server's own GROUP BY on request,
// written to an output table that is replaced atomically.
//
//   partition 1 ─┐  COPY (SELECT group cols, value cols ... WHERE filter)
//   partition 2 ─┼─batches─▶ reducers: key = composite of the group columns,
//   partition P ─┘           one aggregator state per (column, kind) ─▶ manager
//
// `flow-etl run FILE` (run.cpp) runs the jobs of a TOML file through the
// same functions.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "etl/agg_spec.hpp"
#include "flow/options.hpp"
#include "flow/pg/connection.hpp"
#include "flow/pg/read.hpp"
#include "flow/result.hpp"

namespace caf {
class actor_system;
} // namespace caf

namespace flow::apps {

class cluster;

/// One aggregate job: what it reads, groups, computes and writes.
struct agg_job {
  /// A name for messages (job files: the job's name; the command line:
  /// "aggregate").
  std::string name = "aggregate";
  /// The table read (empty table name: `query` is read instead).
  pg::table_name table;
  /// A SELECT whose rows are read (one stream), instead of a table.
  std::string query;
  /// SQL filter, ANDed to the read (the user's own SQL).
  std::string where;
  /// Group columns (exact names); empty: one group over all rows.
  std::vector<std::string> group_by;
  /// The aggregates.
  std::vector<agg_expr> aggs;
  /// The output table (in the table's schema, or `output_schema`); empty:
  /// no output table.
  std::string output;
  /// The output table's schema; empty: the source table's schema (or the
  /// search path).
  std::string output_schema;
};

/// --batch's description for `aggregate` and `run`, whose batches hold
/// fewer of wide rows when it is not given (agg_plan.hpp,
/// default_batch_rows).
inline constexpr const char* wide_batch_help
  = "rows per batch (one message); the default is for rows of up to six "
    "columns: wider rows get fewer (about 10 MB a batch)";

/// How jobs are run.
struct agg_run_options {
  /// Partitions of a table read; 0: one per core (1 for a table larger
  /// than a quarter of the server's shared buffers).
  std::size_t partitions = 0;
  /// The partition column, or "ctid".
  std::string by = "ctid";
  /// Print JSON lines instead of an aligned table.
  bool json = false;
  /// Compare every result with the server's GROUP BY in the same snapshot.
  bool verify = false;
  /// Let the server compute the partial aggregates it can compute exactly,
  /// per partition (tables only).
  bool pushdown = false;
  /// Pipeline options.
  flow::options opts;
  /// `--batch` as given; 0: each job's batches hold default_batch_rows of
  /// its rows (opts.batch_size is then not used).
  std::size_t batch_rows = 0;
  /// With --listen: the worker nodes that read and reduce the partitions of
  /// table reads (null or not listening: this process reads them).
  const cluster* nodes = nullptr;
  /// A snapshot every job of a run reads (exported by run_aggregate_jobs
  /// when it runs several jobs); empty: each job takes its own.
  std::string snapshot;
  /// A --table job with an output reads in steps of about this many rows
  /// (the planner's estimate) and commits a checkpoint after each but the
  /// last (docs/etl.md); 0: in one go, no checkpoints (job files).
  std::uint64_t checkpoint_rows = 0;
  /// Continue the interrupted run of the job from its checkpoint.
  bool resume = false;
  /// When a job loses its database connection midway: try it again up to
  /// this many times (backoff 0.5 s doubling to 8 s), from its last
  /// checkpoint when it has one, else from the start (docs/etl.md,
  /// "Connection loss"). 0: fail at once.
  std::size_t reconnects = 0;
  /// Internal: this is a reconnect; continue from the job's checkpoint if
  /// it left one, else start afresh.
  bool resume_if_any = false;
};

/// Runs `jobs` in order and prints their results; several jobs all read one
/// snapshot, taken before the first. With `atomic`, every
/// output table is written in one transaction after the last job (all or
/// none); otherwise each job's output is committed when the job ends.
/// Returns the exit code (0, 1 when a result did not verify); throws
/// usage_error (exit 2) on bad input, with nothing written.
int run_aggregate_jobs(const std::string& conninfo,
                       const std::vector<agg_job>& jobs,
                       const agg_run_options& run, bool atomic,
                       caf::actor_system& sys);

/// A job run for a preset, as the preset sees it (flow-etl sum prints its
/// own format from it).
struct agg_preset_result {
  /// Stopped by a signal: `groups` holds what was merged, partial, and
  /// `query` is empty.
  bool stopped = false;
  /// The merged result: accounting, dead letters, and the states.
  const job_result* res = nullptr;
  /// The rows' accounting: the job's, or over worker nodes the tasks'.
  const job_result* rows = nullptr;
  /// How it was read: "table", "push-down", "distributed".
  std::string mode;
  /// Partitions read.
  std::size_t partitions = 0;
  /// The job's time, from planning the read to the last merge.
  double seconds = 0;
  /// Over worker nodes: true.
  bool distributed = false;
  /// Over worker nodes: the tasks worker nodes ran.
  std::uint64_t node_tasks = 0;
  /// Over worker nodes: the tasks this process ran (no node took them).
  std::uint64_t local_tasks = 0;
  /// One row per group, ordered by group: the group columns' values, then
  /// the aggregates' (the job's order), as SQL text; nullopt for NULL.
  std::vector<std::vector<std::optional<std::string>>> groups;
  /// Runs a query in the job's snapshot, only while `consume` runs.
  std::function<caf::expected<pg::text_rows>(const std::string&)> query;
};

/// Runs one job for a preset without printing anything: `check` (when
/// given) sees the source's columns as the catalog describes them before
/// anything is planned or read, and may throw usage_error; `consume` gets
/// the result while the job's snapshot is still held (or, stopped by a
/// signal, the partial result) and returns the exit code. --pushdown that
/// cannot push every aggregate is a usage_error here (a preset names its
/// aggregates). Throws usage_error on bad input, as run_aggregate_jobs.
int run_aggregate_preset(
  const std::string& conninfo, const agg_job& job, const agg_run_options& run,
  caf::actor_system& sys,
  const std::function<void(const std::vector<column_info>&)>& check,
  const std::function<int(const agg_preset_result&)>& consume);

/// Checks `job` against the database without reading its rows: the table
/// or query exists, every column exists and every aggregate applies to its
/// column's type, the output table's name is valid. Throws usage_error
/// naming the problem.
void check_aggregate_job(const std::string& conninfo, const agg_job& job);

/// Makes this process's database sessions print timestamps with time zone
/// in UTC and dates in ISO form (PGTZ, PGDATESTYLE), as the decoding of
/// dates and timestamps expects. Call before any thread starts (setenv).
void prepare_session_environment();

/// `flow-etl aggregate`: argv[0] is "aggregate".
int cmd_aggregate(int argc, char** argv);

} // namespace flow::apps
