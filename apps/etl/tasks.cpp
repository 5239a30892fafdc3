// The flow-etl task kinds worker nodes run: a partition read in the
// manager's snapshot, reduced by a local job, answered with its result.
// Built with networking only (nodes_stub.cpp stands in without it).

#include "etl/tasks.hpp"

#include <utility>

#include "common/test_hooks.hpp"
#include "etl/agg_plan.hpp"
#include "etl/clean_nodes.hpp"
#include "etl/elements.hpp"
#include "etl/node_error.hpp"
#include "flow/flow.hpp"
#include "flow/pg/read.hpp"
#include "flow/net/net.hpp"

namespace flow::apps {

namespace {

caf::expected<job_result> run_sum_partition(caf::actor_system& sys,
                                            const std::string& conninfo,
                                            const std::string& payload) {
  auto ticket = pg::partition_ticket::decode(payload);
  if (!ticket)
    return std::move(ticket.error());
  auto reader = pg::open_partition(*ticket, conninfo);
  if (!reader)
    return node_error(std::move(reader.error()));
  auto decode = [](const pg::row_view& r) { return decode_element_row(r); };
  pipeline<element_row> p;
  p.add(source<element_row>{
    std::make_unique<pg::row_source<element_row, decltype(decode)>>(
      std::move(*reader), decode)});
  options opts;
  opts.batch_size = 16384;
  opts.reducers = flow::default_reducers();
  return p.reduce(with_test_delay(sum_per_list())).with(opts).run(sys);
}

} // namespace

void register_etl_tasks(const std::string& conninfo) {
  // sum and aggregate partitions only read (in the run's snapshot) and
  // return states: a second attempt is harmless. clean's stage their rows
  // under names of their own attempt and publish them under the
  // partition's at their commit only if no other attempt did
  // (clean_nodes.cpp, claim_sql): a second attempt is harmless too.
  net::register_task(
    sum_task,
    [conninfo](caf::actor_system& sys, const std::string& payload) {
      return run_sum_partition(sys, conninfo, payload);
    },
    true);
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
