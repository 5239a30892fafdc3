#pragma once

// flow-etl's `sum` over worker nodes (`sum --listen`): every partition is a
// task a node reads in the manager's snapshot and reduces; the manager's
// job merges the keys the tasks return. Built with networking only
// (nodes_stub.cpp stands in without it).

#include <cstdint>
#include <memory>

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

/// A sum whose partitions are tasks for worker nodes.
class sum_over_nodes {
public:
  /// Waits for --min-workers nodes, then starts the manager's job over the
  /// tasks of `read`'s partitions of `table`.
  caf::expected<job> start(pg::partitioned_read& read,
                           const pg::table_name& table, const options& opts,
                           const cluster& nodes, caf::actor_system& sys);

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
