#include "etl/agg_nodes.hpp"

#include <string>

#include <caf/actor_system.hpp>

#include "etl/agg_plan.hpp"
#include "etl/command.hpp"
#include "flow/flow.hpp"
#include "flow/net/net.hpp"

namespace flow::apps {

caf::expected<job> aggregate_over_nodes::start(pg::partitioned_read& read,
                                               const job_plan& plan,
                                               const options& opts,
                                               const cluster& nodes,
                                               caf::actor_system& sys) {
  auto tickets = read.tickets();
  if (!tickets)
    return std::move(tickets.error());
  return start(std::move(*tickets), plan, opts, nodes, sys, true);
}

caf::expected<job>
aggregate_over_nodes::start(std::vector<pg::partition_ticket> tickets,
                            const job_plan& plan, const options& opts,
                            const cluster& nodes, caf::actor_system& sys,
                            bool wait) {
  if (wait)
    nodes.wait_for_workers(etl_prog);
  ledger_ = std::make_shared<flow::net::task_ledger>();
  auto encoded = encode_plan(plan);
  pipeline<key_result> p;
  for (auto& t : tickets) {
    t.extra = {encoded};
    p.add(flow::net::task_source(
      sys, nodes.coordinator(), aggregate_task, t.encode(),
      "partition " + std::to_string(t.index + 1) + "/"
        + std::to_string(t.count) + " of " + source_name(plan.job),
      ledger_, t.estimate));
  }
  return p.aggregate_with(plan.layout)
    .reduce(flow::net::merge_key_results())
    .with(opts)
    .start(sys);
}

task_totals aggregate_over_nodes::totals() const {
  return {ledger_->totals(), ledger_->remote_tasks(), ledger_->local_tasks()};
}

} // namespace flow::apps
