#pragma once

/// @file
/// What a source that hands its reading to a task (flow::net's task
/// sources: a database partition that a worker node reads and reduces
/// itself) reports about the rows behind its elements. Its elements are the
/// task's keyed results, not rows, so the element counters of
/// flow/job_stats.hpp cannot show the rows; these do (docs/observability.md).

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace flow {

/// Where a task is in its life.
enum class task_state {
  /// Waiting for a worker node with room (or not asked for yet).
  queued,
  /// Running on a worker node or in this process.
  running,
  /// Ended with a result that accounts for every row it read.
  done,
  /// Ended with an error.
  failed,
};

/// The name of a state: "queued", "running", "done" or "failed".
const char* to_string(task_state x) noexcept;

/// A task's rows and whereabouts, as its source knows them now.
struct task_stats {
  /// Where it is.
  task_state state = task_state::queued;
  /// The worker node running it (or that ran it); empty while queued and
  /// when it runs in this process. While a second attempt runs on another
  /// node (speculation), both names, "w1, w2"; once done, the node whose
  /// answer counted.
  std::string node;
  /// True once it runs in this process (no worker node was connected).
  bool local = false;
  /// Rows it reads in all, when known before it runs (for a database
  /// partition, the planner's estimate); empty otherwise.
  std::optional<std::uint64_t> rows_total;
  /// True when `rows_total` is an estimate.
  bool rows_total_is_estimate = false;
  /// Rows the task read, aggregated, rejected and dead-lettered: its own
  /// accounting, known once it is done (0 before: a node reports them with
  /// its result, not row by row).
  std::uint64_t rows_read = 0;
  std::uint64_t rows_aggregated = 0;
  std::uint64_t rows_rejected = 0;
  std::uint64_t rows_dead_lettered = 0;
};

/// A task's statistics shared between its source (on the generator's
/// thread), which updates them, and the job's manager, which copies them
/// into each `job_stats`. Thread-safe.
class task_monitor {
public:
  /// A monitor of a task that reads `rows_total` rows (an estimate when
  /// `estimate`), when known.
  explicit task_monitor(std::optional<std::uint64_t> rows_total = {},
                        bool estimate = false);

  /// A copy of the statistics now.
  task_stats snapshot() const;

  /// The task was handed to worker node `node` (again, when its previous
  /// node was lost).
  void started_on(const std::string& node);

  /// The task runs in this process.
  void started_here();

  /// The task ended with this accounting of its rows.
  void finished(std::uint64_t read, std::uint64_t aggregated,
                std::uint64_t rejected, std::uint64_t dead_lettered);

  /// The task ended with an error.
  void failed();

private:
  mutable std::mutex mtx_;
  task_stats stats_;
};

} // namespace flow
