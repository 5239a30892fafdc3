#pragma once

// The network side of a manager program: with --listen, worker nodes
// (flow-node) lend reducers to its jobs and read partitions for it.
// cluster.cpp implements it over flow::net; a build without networking
// (-DFLOW_BUILD_NET=OFF) links net_stub.cpp instead, which declares no
// options and never listens, so the programs need no #ifdef.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/cli.hpp"
#include "flow/reducer.hpp"

namespace caf {
class actor_system;
class actor_system_config;
} // namespace caf

namespace flow {
class job;
} // namespace flow

namespace flow::net {
class coordinator;
} // namespace flow::net

namespace flow::apps {

/// A manager's worker nodes: its network options, the coordinator they
/// connect to (with --listen) and how jobs are offered to them.
class cluster {
public:
  /// True when this build has networking (flow::net).
  static bool available() noexcept;

  /// Declares --listen, --min-workers and the TLS options with --config
  /// (nothing without networking).
  static void declare_options(arg_parser& args);

  /// Benchmarks' reducer that worker nodes know by name: about 1 µs of CPU
  /// work per element, then a sum by label (only with networking).
  static reducer<std::int64_t> spin_sum_by_label();

  /// No worker nodes until read_options and listen say otherwise.
  cluster();
  /// Closes the coordinator, if any.
  ~cluster();
  /// Movable, not copyable (there is one coordinator).
  cluster(cluster&&) noexcept;
  /// Movable, not copyable.
  cluster& operator=(cluster&&) noexcept;

  /// Reads the options declare_options declared, --config first (throws
  /// usage_error); `prog` names the program in warnings.
  void read_options(arg_parser& args, const std::string& prog);

  /// True with --listen.
  bool listening() const noexcept;

  /// --min-workers: worker nodes to wait for before each job starts.
  std::size_t min_workers() const noexcept;

  /// Loads CAF's network modules into `cfg` when listening.
  void configure(caf::actor_system_config& cfg) const;

  /// Starts listening in `sys` when --listen was given and says where on
  /// stderr ("prog: listening on HOST:PORT"; tests and scripts read the
  /// port from it); throws usage_error when it cannot.
  void listen(caf::actor_system& sys, const std::string& prog);

  /// Waits for the worker nodes --min-workers asks for (see
  /// wait_for_workers in net_options.hpp).
  void wait_for_workers(const std::string& prog) const;

  /// Lets worker nodes run the job's reducer, registered as `name`.
  template <class Pipeline>
  void prepare(Pipeline& p, const char* name) const {
    if (listening())
      p.distribute_as(name);
  }

  /// Offers a started job to the worker nodes.
  void attach(const job& j) const;

  /// The coordinator while listening, else nullptr.
  const flow::net::coordinator* coordinator() const noexcept;

  /// Returns `rc`, or when listening ends the process with it (after
  /// --status-linger, finish_watch()) at once: CAF 0.17's middleman does not
  /// always shut down while peers are connected, and the worker nodes see
  /// the connection go and stop.
  int leave(int rc) const;

private:
  struct state;
  std::unique_ptr<state> state_;
};

} // namespace flow::apps
