#pragma once

// flow-etl's `clean` job: raw ads in, cleaned ads, rejects with reasons and a
// per-city summary out, all three tables visible at once or not at all.
//
//   ads ──partitioned COPY TO (one snapshot)──▶ generators (one per block range)
//     ──batches──▶ reducers: normalise city, price → cents, posted_at → timestamp
//         ├─ emit(clean row) / emit(reject row + reason) ──▶ sink: COPY FROM
//         │                                   into staging tables, one transaction
//         └─ add(city, cents) ──▶ manager {city: ads, total, min, max}
//   commit: ads_summary from the manager's final aggregates, then the three
//   staging tables replace ads_clean, ads_rejects, ads_summary.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "flow/options.hpp"
#include "flow/pg/connection.hpp"
#include "flow/pg/copy_sink.hpp"
#include "flow/result.hpp"

namespace caf {
class actor_system;
} // namespace caf

namespace flow::apps {

/// What a clean run reads and writes.
struct clean_config {
  /// libpq connection string; empty: the environment.
  std::string conninfo;
  /// The raw ads table.
  pg::table_name ads;
  /// The output tables.
  pg::table_name clean;
  pg::table_name rejects;
  pg::table_name summary;
  /// Partitions of the parallel read (block ranges); 0: as many as there
  /// are cores, or 1 for a table larger than a quarter of the server's
  /// shared buffers (see pg::ctid_partitions).
  std::size_t partitions = 0;
  /// Pipeline options.
  flow::options opts;
  /// Continue an interrupted run from its checkpoints (--resume).
  bool resume = false;
  /// How often a run that lost its database connection is resumed from its
  /// checkpoints before the job fails.
  std::size_t reconnects = 5;
  /// How often the sink commits a step (output plus checkpoints).
  std::chrono::milliseconds checkpoint_interval{1000};
  /// Test hook: called by the sink before it commits (throwing from it makes
  /// the run fail at the last moment).
  std::function<void()> before_commit;
};

/// The counts a clean run reports, read back from the server after commit.
struct clean_report {
  job_result res;
  std::uint64_t ads = 0;
  std::uint64_t clean_rows = 0;
  std::uint64_t reject_rows = 0;
  std::uint64_t in_both = 0;
  std::uint64_t in_neither = 0;
  std::uint64_t summary_rows = 0;
  /// The job: read, clean, write and commit.
  double seconds = 0;
  /// Reading the counts back from the committed tables.
  double verify_seconds = 0;
  /// Ads whose output earlier, interrupted attempts had committed (resumed
  /// or reconnected runs), and how many attempts were resumed.
  std::uint64_t resumed_ads = 0;
  std::size_t resumes = 0;
  /// Cities in the summary the job computed (manager plus resumed output).
  std::size_t summary_keys = 0;
  /// Partitions the run read.
  std::size_t partitions = 0;
  /// Distributed runs: partitions worker nodes read, and read here.
  std::uint64_t node_tasks = 0;
  std::uint64_t local_tasks = 0;

  /// Every row of ads in exactly one of the two tables, and the tables agree
  /// with the job's accounting.
  bool ok() const;
};

/// The per-city aggregates of the clean rows in `tables` (staged output that
/// earlier, interrupted runs committed): a resumed run's manager sees only
/// the rest, and ads_summary must cover all.
caf::expected<std::map<std::string, aggregate>>
committed_summary(const std::string& conninfo,
                  const std::vector<pg::table_name>& tables);

/// ads_summary's rows: the manager's aggregates plus what earlier runs
/// committed (`seed`); counts the cities into `summary_keys`.
pg::final_rows_fn
summary_with(std::map<std::string, aggregate> seed,
             std::shared_ptr<std::size_t> summary_keys);

/// Runs the clean job, resumable: output and per-partition checkpoints are
/// committed in steps (the targets change only at the end). A run that loses
/// its database connection is resumed from its checkpoints up to
/// `cfg.reconnects` times with backoff. Errors carry the SQL state where
/// there is one.
caf::expected<clean_report> run_clean(caf::actor_system& sys,
                                      const clean_config& cfg);

} // namespace flow::apps
