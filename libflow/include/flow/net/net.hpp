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

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "flow/detail/engine.hpp"
#include "flow/job.hpp"
#include "flow/reducer.hpp"

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

private:
  explicit coordinator(std::unique_ptr<impl> ptr);

  std::unique_ptr<impl> impl_;
};

/// The worker side: connects to the coordinator at `to`, lends `reducers`
/// reducers to each of its jobs and serves until the manager goes away.
/// Returns the reason it stopped (an error: a lost or refused connection,
/// or the manager ending). Blocks.
caf::error serve(caf::actor_system& sys, const endpoint& to,
                 const security& sec, std::size_t reducers,
                 const std::string& name);

template <class T>
void register_reducer(const std::string& name, reducer<T> fn) {
  register_erased(name, detail::element_traits<T>::kind,
                  detail::erase_reducer<T>(std::move(fn)));
}

} // namespace flow::net
