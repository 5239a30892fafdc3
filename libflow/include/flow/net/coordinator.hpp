#pragma once

/// @file
/// flow::net's manager side: the coordinator publishes an entry actor that
/// worker nodes join, lends them the jobs attached to it and hands them tasks.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "flow/job.hpp"
#include "flow/net/security.hpp"
#include "flow/result.hpp"

namespace flow::net {

/// The manager side: publishes an entry actor at an endpoint; worker nodes
/// connect to it and lend reducers to every job attached here, including
/// jobs that are already running when they join.
class coordinator {
public:
  /// Internal state (CAF actors), defined in the library.
  struct impl;

  /// Publishes the entry actor at `at` (TLS unless `sec.insecure`).
  static caf::expected<coordinator> listen(caf::actor_system& sys,
                                           const endpoint& at,
                                           const security& sec);

  /// Moves a coordinator.
  coordinator(coordinator&&) noexcept;

  /// Moves a coordinator.
  coordinator& operator=(coordinator&&) noexcept;

  /// Stops accepting nodes; connected nodes see the entry go away.
  ~coordinator();

  /// Speculation of straggling tasks (docs/distribution.md,
  /// "Speculation"): a task of a repeatable kind (register_task) that a node
  /// has run longer than `multiplier` times the median time of the completed
  /// tasks of its kind, and at least `floor`, runs again on another node
  /// with room once no task waits; the first answer is the task's, the other
  /// is dropped. On by default, with a multiplier of 2 and a floor of 1 s.
  void speculation(bool on, double multiplier,
                   std::chrono::milliseconds floor) const;

  /// The port the entry actor listens on.
  std::uint16_t port() const noexcept;

  /// Offers `j` (built with `pipeline::distribute_as`) to every worker
  /// node, now and when one joins later, until the job ends.
  void attach(const job& j) const;

  /// Blocks until at least `n` worker nodes are connected or `timeout`
  /// passed; true when they are.
  bool wait_for_nodes(std::size_t n, std::chrono::milliseconds timeout) const;

  /// Worker nodes connected now.
  std::size_t nodes() const;

  /// Worker nodes that joined since listen(), including those that left.
  std::size_t joined() const;

  /// Runs a task on a worker node and returns its result. A node runs as
  /// many tasks at once as it lends reducers (`serve`'s `reducers`); more
  /// wait in a queue and go to the least busy node with room as soon as one
  /// has some (also a node that joins later). A node lost before answering
  /// (killed, silent, disconnected) hands its tasks back to the front of the
  /// queue; with no node left (or none to start with) the error is
  /// errc::no_workers (see `no_worker_node`).
  /// An error the task itself returns is returned as is (no retry: it would
  /// fail again). Blocks.
  /// While it waits, `wanted` (if given) is asked every quarter of a
  /// second; once it says no, a task still queued is withdrawn (errc::
  /// cancelled); a running one finishes on its node. If the coordinator is
  /// destroyed meanwhile, the error is errc::actor_down. A node that fails a
  /// task with errc::invalid_config (it does not know the kind, cannot reach
  /// the database) gets no more tasks and the task goes to another node.
  /// `started` (if given) hears the name of the node the task went to,
  /// each time it goes to one (on this thread, before the answer); while a
  /// second attempt runs (speculation) both names, "w1, w2", and, before a
  /// speculated task's answer, the name of the node whose answer counts.
  caf::expected<job_result>
  run_task(const std::string& kind, const std::string& payload,
           const std::function<bool()>& wanted = {},
           const std::function<void(const std::string&)>& started = {}) const;

private:
  explicit coordinator(std::unique_ptr<impl> ptr);

  std::unique_ptr<impl> impl_;
};

} // namespace flow::net
