// The flow-etl task kinds worker nodes run: a partition read in the
// manager's snapshot, reduced by a local job, answered with its result.
// Built with networking only (nodes_stub.cpp stands in without it).

#include "etl/tasks.hpp"

#include "etl/agg_plan.hpp"
#include "etl/clean_nodes.hpp"
#include "flow/net/net.hpp"

namespace flow::apps {

void register_etl_tasks(const std::string& conninfo) {
  // aggregate partitions (sum's too: sum is a preset of aggregate) only
  // read (in the run's snapshot) and return states: a second attempt is
  // harmless. clean's stage their rows
  // under names of their own attempt and publish them under the
  // partition's at their commit only if no other attempt did
  // (clean_nodes.cpp, claim_sql): a second attempt is harmless too.
  net::register_task(
    aggregate_task,
    [conninfo](caf::actor_system& sys, const std::string& payload) {
      return run_aggregate_partition(sys, conninfo, payload);
    },
    true);
  net::register_task(clean_partition_task,
                     [conninfo](caf::actor_system& sys,
                                const std::string& payload) {
                       return run_clean_partition(sys, conninfo, payload);
                     },
                     true);
}

} // namespace flow::apps
