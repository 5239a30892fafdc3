#pragma once

// flow-etl's `clean` job spread over worker nodes (`clean --listen`): the
// manager's side and the partition task each node runs. Built with
// networking only; without it, nodes_stub.cpp makes run_distributed_clean
// an error (never reached: there is no --listen then).

#include <cstddef>
#include <string>

#include <caf/expected.hpp>

#include "common/cluster.hpp"
#include "etl/clean_job.hpp"
#include "flow/result.hpp"

namespace caf {
class actor_system;
} // namespace caf


namespace flow::apps {

/// The task kind of one `clean` partition on a worker node.
inline constexpr const char* clean_partition_task = "etl.clean";

/// A worker node's part of a distributed clean: reads the partition the
/// payload names (in the manager's snapshot, through `conninfo`; empty: the
/// ticket's), cleans it in a local job and commits its clean and rejected
/// rows to the staging tables the payload names; returns that job's result
/// (per-city aggregates and the accounting).
caf::expected<job_result> run_clean_partition(caf::actor_system& sys,
                                              const std::string& conninfo,
                                              const std::string& payload);

/// The clean job as the manager of worker nodes (`clean --listen`): each
/// partition is read, cleaned and staged by a node (by this process when
/// none is connected; a lost node's partition goes to another), the
/// manager merges the per-city aggregates, and its sink adopts the staged
/// rows, writes ads_summary and swaps all three tables in one transaction.
/// The run records its plan in flow_dist (`d<tag>_plan`); with
/// `cfg.resume` it continues a killed manager's run: the partitions its
/// nodes had committed are kept (their cities read back for the summary),
/// the others are read again in a new snapshot.
caf::expected<clean_report>
run_distributed_clean(caf::actor_system& sys, const clean_config& cfg,
                      const cluster& nodes);

} // namespace flow::apps
