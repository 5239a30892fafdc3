#pragma once

// flow-etl aggregate's checkpoints (--output of a --table, --resume): a
// checkpointed job reads its table in steps, each a job over a few of the
// finely planned ranges, and after every step but the last commits the
// merged states of every group so far in one row of a table in the schema
// flow_resume. A run killed midway continues from the last step committed
// (`flow-etl aggregate ... --resume`); the row is dropped in the transaction
// that commits the output table.
//
//   ranges 0..P-1 ─▶ step 1 ─merge─▶ total ─checkpoint─▶ flow_resume.agg_<hash>
//   ranges P..2P-1 ─▶ step 2 ─merge─▶ total ─checkpoint─▶ (same row, replaced)
//   ...              step S ─merge─▶ total ─▶ output table (checkpoint dropped)

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flow/pg/connection.hpp"
#include "flow/pg/read.hpp"
#include "flow/result.hpp"

namespace flow::apps {

/// What a checkpoint holds: enough to run the remaining steps and to refuse
/// a checkpoint another job left.
struct agg_checkpoint {
  /// Identifies the job: its plan (group columns, aggregates, read columns
  /// and types), table, filter, partition column and mode. A checkpoint is
  /// resumed only by a job with the same fingerprint.
  std::string fingerprint;
  /// Every range the job reads, in step order (steps take `partitions`
  /// consecutive ranges each).
  std::vector<pg::range> ranges;
  /// Ranges per step (the partitions each step reads in parallel).
  std::size_t partitions = 1;
  /// Steps of the whole job.
  std::size_t steps = 1;
  /// Steps whose states `state` holds.
  std::size_t steps_done = 0;
  /// The steps' results merged: every group's states and the accounting
  /// (rows read, aggregated, skipped).
  job_result state;
};

/// The table holding the checkpoint of the job writing `output`: in schema
/// flow_resume, named after a hash of the output's schema-qualified name
/// (`current_schema` when `output` has none), so two jobs with different
/// outputs never share one, and clean's tables (job_...) are never hit.
pg::table_name checkpoint_table(const pg::table_name& output,
                                const std::string& current_schema);

/// The SQL that drops `table` if it exists, for the output's commit.
std::string drop_checkpoint_sql(const pg::table_name& table);

/// One job's checkpoints on a connection of their own, opened on first use
/// and kept for the run: a step's checkpoint then costs one transaction,
/// not a connection. Database errors throw usage_error.
class checkpoint_store {
public:
  /// The checkpoints of the job writing `output`, through `conninfo`.
  checkpoint_store(std::string conninfo, pg::table_name output);

  /// Closes the connection.
  ~checkpoint_store();

  /// The checkpoint table (see checkpoint_table); connects to learn the
  /// current schema when the output has none.
  const pg::table_name& table();

  /// Starts a fingerprint's last line, the job's state columns: a
  /// checkpoint whose fingerprint differs only after it (or has no such
  /// line) is the same job's, written by another version of flow-etl.
  static constexpr const char* layout_line = "\nstate columns ";

  /// The checkpoint, or nothing when there is none. Throws usage_error when
  /// it was left by another job (its fingerprint is not `fingerprint`:
  /// checked before the states are decoded, since another job's states may
  /// be of types this one never registered), or cannot be read or decoded.
  std::optional<agg_checkpoint> load(const std::string& fingerprint);

  /// Commits `ckpt` as the only row of the table (created with its schema
  /// on first use) in one transaction.
  void save(const agg_checkpoint& ckpt);

  /// Drops the table if it exists (a fresh run discards an earlier run's
  /// checkpoint).
  void discard();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// `res` as bytes (CAF's binary serialisation: the states travel as they
/// do to worker nodes).
std::string encode_result(const job_result& res);

/// Reads `encode_result`'s bytes; nothing when they do not decode.
std::optional<job_result> decode_result(const std::string& bytes);

/// `ranges` as text ("lo hi blocks nulls" per line, "-" for an open end).
std::string encode_ranges(const std::vector<pg::range>& ranges);

/// Reads `encode_ranges`'s text; nothing when it is malformed.
std::optional<std::vector<pg::range>> decode_ranges(const std::string& text);

/// Merges `step` (one step's job result) into `total`: every group's states
/// and the accounting. Returns false when two states cannot be merged (an
/// exact sum's overflow): the job then fails as it would in one step.
bool merge_step(job_result& total, const job_result& step);

} // namespace flow::apps
