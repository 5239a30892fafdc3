// flow-etl's distributed pieces in a build without networking
// (-DFLOW_BUILD_NET=OFF): there is no --listen then (see
// common/net_stub.cpp), so none of these is reached; they exist so that
// aggregate.cpp, clean.cpp and command.cpp need no #ifdef.

#include "etl/agg_nodes.hpp"
#include "etl/clean_nodes.hpp"
#include "etl/tasks.hpp"
#include "flow/error.hpp"

namespace flow::apps {

namespace {

caf::error no_networking() {
  return make_error(errc::invalid_config,
                    "flow-etl was built without networking (FLOW_BUILD_NET)");
}

} // namespace

void register_etl_tasks(const std::string&) {
}

caf::expected<job> aggregate_over_nodes::start(pg::partitioned_read&,
                                               const job_plan&,
                                               const options&, const cluster&,
                                               caf::actor_system&) {
  return no_networking();
}

caf::expected<job>
aggregate_over_nodes::start(std::vector<pg::partition_ticket>,
                            const job_plan&, const options&, const cluster&,
                            caf::actor_system&, bool) {
  return no_networking();
}

task_totals aggregate_over_nodes::totals() const {
  return {};
}

caf::expected<clean_report> run_distributed_clean(caf::actor_system&,
                                                  const clean_config&,
                                                  const cluster&) {
  return no_networking();
}

} // namespace flow::apps
