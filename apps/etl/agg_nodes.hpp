#pragma once

// flow-etl aggregate over worker nodes (`aggregate --listen`): every
// partition is a task a node reads in the manager's snapshot and reduces
// into partial states; the manager's job merges the groups the tasks
// return. Built with networking only (nodes_stub.cpp stands in without it).

#include <cstdint>
#include <memory>
#include <vector>

#include <caf/expected.hpp>

#include "common/cluster.hpp"
#include "flow/job.hpp"
#include "flow/options.hpp"
#include "flow/pg/read.hpp"
#include "flow/result.hpp"

namespace caf {
class actor_system;
} // namespace caf

namespace flow::net {
class task_ledger;
} // namespace flow::net

namespace flow::apps {

struct job_plan;

/// What the partitions' tasks accounted: the rows' own counts (read,
/// rejected) and where the tasks ran.
struct task_totals {
  /// The rows' accounting, summed over the tasks.
  job_result rows;
  /// Tasks worker nodes ran.
  std::uint64_t node_tasks = 0;
  /// Tasks this process ran (no node was there to take them).
  std::uint64_t local_tasks = 0;
};

/// An aggregate whose partitions are tasks for worker nodes.
class aggregate_over_nodes {
public:
  /// Waits for --min-workers nodes, then starts the manager's job over the
  /// tasks of `read`'s partitions, each carrying `plan`.
  caf::expected<job> start(pg::partitioned_read& read, const job_plan& plan,
                           const options& opts, const cluster& nodes,
                           caf::actor_system& sys);

  /// The same over `tickets` (one step of a checkpointed job: some of the
  /// snapshot's ranges); waits for --min-workers only with `wait` (a later
  /// step goes on with the nodes still there, or here).
  caf::expected<job> start(std::vector<pg::partition_ticket> tickets,
                           const job_plan& plan, const options& opts,
                           const cluster& nodes, caf::actor_system& sys,
                           bool wait);

  /// True once started.
  bool started() const noexcept {
    return ledger_ != nullptr;
  }

  /// The tasks' accounting.
  task_totals totals() const;

private:
  std::shared_ptr<flow::net::task_ledger> ledger_;
};

} // namespace flow::apps
