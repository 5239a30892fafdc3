#pragma once

/// @file
/// flow::net: worker nodes lend reducers to jobs of a manager node, over
/// CAF's middleman with mutual TLS (caf_openssl). Batches travel to remote
/// reducers by value and partial aggregates come back, under the same
/// protocol (batch ids, credit, exact accounting) as local reducers.
///
/// @code
/// // manager                                   // worker node
/// flow::net::configure(cfg, sec);              flow::net::configure(cfg, sec);
/// auto coord = flow::net::coordinator::listen( caf::actor_system sys{cfg};
///   sys, {"127.0.0.1", 4242}, sec);            flow::net::serve(sys,
/// auto j = pipeline.distribute_as(               {"10.0.0.1", 4242}, sec, 2,
///   "sum_by_label").start(sys);                  "node-b");
/// coord->attach(*j);
/// @endcode

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "flow/detail/job_spec.hpp"
#include "flow/job.hpp"
#include "flow/reducer.hpp"
#include "flow/result.hpp"
#include "flow/source.hpp"

namespace flow::net {

/// The TLS identity of a node. Mutual authentication is the default: a
/// node needs its certificate, its key and the CA that signed its peers'
/// certificates; a peer whose certificate does not chain to that CA is
/// refused. Plain TCP only with `insecure`.
struct security {
  /// PEM certificate of this node.
  std::string cert;
  /// PEM private key of this node.
  std::string key;
  /// Passphrase of the key (empty: none).
  std::string passphrase;
  /// PEM certificate of the CA that signs every node's certificate.
  std::string ca;
  /// Plain, unauthenticated TCP (warned about).
  bool insecure = false;
};

/// A host and a TCP port.
struct endpoint {
  /// Host name or address; listening defaults to the loopback address.
  std::string host = "127.0.0.1";
  /// TCP port (0 when listening: any free port).
  std::uint16_t port = 0;
};

/// Parses "HOST:PORT" (or ":PORT", meaning 127.0.0.1); errors are
/// errc::invalid_config.
caf::expected<endpoint> parse_endpoint(const std::string& text);

/// Checks `sec`: all three files given and readable unless `insecure`.
caf::error check(const security& sec);

/// Prepares an actor system configuration for the network: loads CAF's
/// middleman and, unless insecure, its OpenSSL module with `sec`'s files,
/// registers libflow's message types, and sets heartbeats (every second;
/// a connection silent for 5 s is dropped). Call before creating the system.
void configure(caf::actor_system_config& cfg, const security& sec);

/// Registers a reducer worker nodes can run under `name` (both the manager
/// and the workers must register it; the built-ins are always there:
/// "sum_by_label" and "spin_sum_by_label" over int64 elements, the latter
/// doing about 1 µs of work per element, and "sum_by_key" over keyed
/// values).
template <class T>
void register_reducer(const std::string& name, reducer<T> fn);

/// Registers a type-erased reducer (used by register_reducer).
void register_erased(const std::string& name, detail::element_kind kind,
                     detail::erased_reducer fn);

/// A reducer that burns about 1 µs of CPU per element before summing it
/// under the batch's label: a stand-in for CPU-heavy work in benchmarks and
/// tests. The sum is exact and equals sum_by_label's.
reducer<std::int64_t> spin_sum_by_label();

// -- tasks: work a node does on its own ----------------------------------------

/// A task kind's function: runs one task (for example: reads one partition of
/// a table from the database and reduces it in a local job) and returns that
/// job's result. Only the result crosses the network, never the rows. Runs
/// on a thread of its own and may block.
using task_fn = std::function<caf::expected<job_result>(
  caf::actor_system& sys, const std::string& payload)>;

/// Registers a task kind. The manager and every worker node register the
/// same kinds: the manager runs a task itself when no node is connected.
void register_task(const std::string& kind, task_fn fn);

/// Runs a task in this process (the registered function); errc::invalid_config
/// for an unknown kind.
caf::expected<job_result> run_task_here(caf::actor_system& sys,
                                        const std::string& kind,
                                        const std::string& payload);

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
  caf::expected<job_result>
  run_task(const std::string& kind, const std::string& payload,
           const std::function<bool()>& wanted = {}) const;

private:
  explicit coordinator(std::unique_ptr<impl> ptr);

  std::unique_ptr<impl> impl_;
};

/// The worker side: connects to the coordinator at `to`, lends `reducers`
/// reducers to each of its jobs, runs up to `reducers` of its tasks at once
/// and serves until the manager goes away.
/// Returns the reason it stopped (an error: a lost or refused connection,
/// or the manager ending). Blocks.
caf::error serve(caf::actor_system& sys, const endpoint& to,
                 const security& sec, std::size_t reducers,
                 const std::string& name);

/// True for `coordinator::run_task`'s error when no worker node is
/// connected (the caller may run the task itself).
bool no_worker_node(const caf::error& err);

/// What the tasks behind a job's task sources did, summed: their own
/// accounting (for a database partition: rows read, aggregated, rejected),
/// which the manager's job, whose elements are the tasks' keys, does not
/// show. Shared by the sources; thread-safe.
class task_ledger {
public:
  /// Adds one task's result; `remote`: run by a worker node.
  void record(const job_result& r, bool remote);

  /// The tasks' results summed: emitted, aggregated, rejected (with
  /// reasons), dead_lettered, batches, written, remote_batches; `sources` is
  /// the number of tasks; keys are not kept.
  job_result totals() const;

  /// Tasks run by worker nodes.
  std::uint64_t remote_tasks() const;

  /// Tasks run in this process (no node was connected).
  std::uint64_t local_tasks() const;

  /// Says the job's answers are not wanted any more (it failed or was
  /// stopped): task sources withdraw their tasks that have not started.
  void cancel() noexcept;

  /// True after `cancel`.
  bool cancelled() const noexcept;

private:
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mtx_;
  job_result totals_;
  std::uint64_t remote_ = 0;
  std::uint64_t local_ = 0;
};

/// A source whose work is one task: its generator (on a thread of its own)
/// runs the task on a worker node through `coord`, or in this process when
/// `coord` is null or no node is connected, checks that the task accounted
/// for every element it read (emitted = aggregated + rejected +
/// dead-lettered), records that in `ledger` and emits the task's keys as
/// elements for `merge_key_results()`. The task's error fails the source.
/// `coord` and `sys` must outlive the job.
source<key_result> task_source(caf::actor_system& sys,
                               const coordinator* coord, std::string kind,
                               std::string payload, std::string name,
                               std::shared_ptr<task_ledger> ledger);

/// The manager's reducer over task sources: merges each key's aggregate.
reducer<key_result> merge_key_results();

template <class T>
void register_reducer(const std::string& name, reducer<T> fn) {
  register_erased(name, detail::element_traits<T>::kind,
                  detail::erase_reducer<T>(std::move(fn)));
}

} // namespace flow::net
