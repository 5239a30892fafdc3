#pragma once

/// @file
/// flow::net's tasks: work a node does on its own (for a database job, one
/// partition read and reduced where it runs), and the manager's side of them:
/// a source per task, a ledger of their accounting, and the reducer that
/// merges their keys.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "flow/reducer.hpp"
#include "flow/result.hpp"
#include "flow/source.hpp"

namespace flow::net {

class coordinator;

/// A task kind's function: runs one task (for example: reads one partition of
/// a table from the database and reduces it in a local job) and returns that
/// job's result. Only the result crosses the network, never the rows. Runs
/// on a thread of its own and may block.
using task_fn = std::function<caf::expected<job_result>(
  caf::actor_system& sys, const std::string& payload)>;

/// Runs a task in this process (the registered function); errc::invalid_config
/// for an unknown kind.
caf::expected<job_result> run_task_here(caf::actor_system& sys,
                                        const std::string& kind,
                                        const std::string& payload);

/// True for `coordinator::run_task`'s error when no worker node is
/// connected (the caller may run the task itself).
bool no_worker_node(const caf::error& err);

/// What the tasks behind a job's task sources did, summed: their own
/// accounting (for a database partition: rows read, aggregated, rejected),
/// which the manager's job, whose elements are the tasks' keys, does not
/// show. Shared by the sources; thread-safe.
class task_ledger {
public:
  /// Adds one task's result; `remote`: run by a worker node.
  void record(const job_result& r, bool remote);

  /// The tasks' results summed: emitted, aggregated, rejected (with
  /// reasons), dead_lettered, batches, written, remote_batches; `sources` is
  /// the number of tasks; keys are not kept.
  job_result totals() const;

  /// Tasks run by worker nodes.
  std::uint64_t remote_tasks() const;

  /// Tasks run in this process (no node was connected).
  std::uint64_t local_tasks() const;

  /// Says the job's answers are not wanted any more (it failed or was
  /// stopped): task sources withdraw their tasks that have not started.
  void cancel() noexcept;

  /// True after `cancel`.
  bool cancelled() const noexcept;

private:
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mtx_;
  job_result totals_;
  std::uint64_t remote_ = 0;
  std::uint64_t local_ = 0;
};

/// A source whose work is one task: its generator (on a thread of its own)
/// runs the task on a worker node through `coord`, or in this process when
/// `coord` is null or no node is connected, checks that the task accounted
/// for every element it read (emitted = aggregated + rejected +
/// dead-lettered), records that in `ledger` and emits the task's keys as
/// elements for `merge_key_results()`. The task's error fails the source.
/// `coord` and `sys` must outlive the job.
/// The source reports the task (`source_impl::task`: the job's statistics,
/// /status and /metrics): `rows_estimate`, the rows it is expected to read
/// when known (a partition's planner estimate, `partition_ticket::
/// estimate`), the node it went to, and once done the rows it read,
/// aggregated, rejected and dead-lettered.
source<key_result> task_source(caf::actor_system& sys,
                               const coordinator* coord, std::string kind,
                               std::string payload, std::string name,
                               std::shared_ptr<task_ledger> ledger,
                               std::optional<std::uint64_t> rows_estimate
                               = std::nullopt);

/// The manager's reducer over task sources: merges each key's aggregate.
reducer<key_result> merge_key_results();

} // namespace flow::net
