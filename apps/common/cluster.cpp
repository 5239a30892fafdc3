// The cluster over flow::net (see net_stub.cpp for builds without it).

#include "common/cluster.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "common/app_options.hpp"
#include "common/net_options.hpp"
#include "common/watch.hpp"
#include "flow/error.hpp"
#include "flow/net/net.hpp"

namespace flow::apps {

struct cluster::state {
  net_options net;
  std::optional<flow::net::coordinator> coord;
};

bool cluster::available() noexcept {
  return true;
}

void cluster::declare_options(arg_parser& args) {
  declare_net_options(args, true);
}

reducer<std::int64_t> cluster::spin_sum_by_label() {
  return flow::net::spin_sum_by_label();
}

cluster::cluster() : state_(std::make_unique<state>()) {
}

cluster::~cluster() = default;

cluster::cluster(cluster&&) noexcept = default;

cluster& cluster::operator=(cluster&&) noexcept = default;

void cluster::read_options(arg_parser& args, const std::string& prog) {
  state_->net = read_net_options(args, prog, true);
}

bool cluster::listening() const noexcept {
  return state_->net.listen.has_value();
}

std::size_t cluster::min_workers() const noexcept {
  return state_->net.min_workers.count;
}

void cluster::configure(caf::actor_system_config& cfg) const {
  if (listening())
    flow::net::configure(cfg, state_->net.sec);
}

void cluster::listen(caf::actor_system& sys, const std::string& prog) {
  auto& net = state_->net;
  if (!net.listen)
    return;
  auto coord = flow::net::coordinator::listen(sys, *net.listen, net.sec);
  if (!coord)
    throw usage_error(describe(coord.error()));
  // Tests and scripts read the port from this line (port 0: a free one).
  std::cerr << prog << ": listening on " << net.listen->host << ":"
            << coord->port() << std::endl;
  auto& sp = task_speculation();
  coord->speculation(sp.on, sp.multiplier, sp.floor);
  state_->coord.emplace(std::move(*coord));
}

void cluster::wait_for_workers(const std::string& prog) const {
  if (state_->coord)
    apps::wait_for_workers(*state_->coord, state_->net.min_workers, prog);
}

void cluster::attach(const job& j) const {
  if (state_->coord)
    state_->coord->attach(j);
}

const flow::net::coordinator* cluster::coordinator() const noexcept {
  return state_->coord ? &*state_->coord : nullptr;
}

int cluster::leave(int rc) const {
  if (!state_->coord)
    return rc;
  // _Exit skips guarded_main's finish_watch(): without this, a manager
  // ignored --status-linger and its status page vanished with the job.
  finish_watch();
  std::cout.flush();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(rc);
}

} // namespace flow::apps
