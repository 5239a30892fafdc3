// The cluster of a build without networking (-DFLOW_BUILD_NET=OFF): no
// network options, never listening, every job local.

#include <stdexcept>

#include "common/cluster.hpp"
#include "common/keyed_aggs.hpp"

namespace flow::apps {

struct cluster::state {};

bool cluster::available() noexcept {
  return false;
}

void cluster::declare_options(arg_parser&) {
  // No --listen, no TLS options: the programs accept what they can do.
}

reducer<std::int64_t> cluster::spin_sum_by_label() {
  throw std::logic_error("spin_sum_by_label: built without networking");
}

cluster::cluster() = default;

cluster::~cluster() = default;

cluster::cluster(cluster&&) noexcept = default;

cluster& cluster::operator=(cluster&&) noexcept = default;

void cluster::read_options(arg_parser&, const std::string&) {
}

bool cluster::listening() const noexcept {
  return false;
}

std::size_t cluster::min_workers() const noexcept {
  return 0;
}

void cluster::configure(caf::actor_system_config&) const {
}

void cluster::listen(caf::actor_system&, const std::string&) {
}

void cluster::wait_for_workers(const std::string&) const {
}

void cluster::attach(const job&) const {
}

const flow::net::coordinator* cluster::coordinator() const noexcept {
  return nullptr;
}

int cluster::leave(int rc) const {
  return rc;
}

void register_keyed_agg_factory() {
  // No worker nodes without networking.
}

} // namespace flow::apps
