#pragma once

// The network options of every program that listens or connects: --listen
// or --connect, --cert, --key, --passphrase, --ca, --insecure, --config (the
// same names in a `name = value` file), and --min-workers for managers.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "cli.hpp"
#include "flow/net/net.hpp"

namespace flow::apps {

/// How many worker nodes a manager waits for before each job
/// (--min-workers), and for how long (--min-workers-timeout).
struct node_quorum {
  /// Nodes that must be connected at once; 0: start at once.
  std::size_t count = 0;
  /// Then the job fails instead of waiting on.
  std::chrono::seconds timeout{120};
};

/// What the network options say.
struct net_options {
  flow::net::security sec;
  /// Where a manager listens (--listen), if it does.
  std::optional<flow::net::endpoint> listen;
  /// Worker nodes to wait for before each job starts.
  node_quorum min_workers;
};

/// Declares the TLS options and --config; with `manager`, also --listen,
/// --min-workers and --min-workers-timeout.
void declare_net_options(arg_parser& args, bool manager);

/// Reads them (the parser applied --config); throws usage_error. TLS files are
/// required unless --insecure, which prints a warning.
net_options read_net_options(const arg_parser& args, const std::string& prog,
                             bool manager);

/// Waits until `q.count` worker nodes are connected to `coord` at once,
/// saying on stderr how many are, and when the wait is over ("N worker
/// nodes connected, starting"); a node that leaves meanwhile is counted out
/// again. Throws usage_error (one line: how many joined, how many are
/// still connected) when `q.timeout` passes first.
void wait_for_workers(const flow::net::coordinator& coord,
                      const node_quorum& q, const std::string& prog);

} // namespace flow::apps
