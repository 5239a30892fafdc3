#pragma once

// The network options of every program that listens or connects: --listen
// or --connect, --cert, --key, --passphrase, --ca, --insecure, --config (the
// same names in a `name = value` file), and --min-workers for managers.

#include <cstddef>
#include <optional>
#include <string>

#include "cli.hpp"
#include "flow/net/net.hpp"

namespace flow::apps {

/// What the network options say.
struct net_options {
  flow::net::security sec;
  /// Where a manager listens (--listen), if it does.
  std::optional<flow::net::endpoint> listen;
  /// Worker nodes to wait for before each job starts.
  std::size_t min_workers = 0;
};

/// Declares the TLS options and --config; with `manager`, also --listen and
/// --min-workers.
void declare_net_options(arg_parser& args, bool manager);

/// Reads them (the parser applied --config); throws usage_error. TLS files are
/// required unless --insecure, which prints a warning.
net_options read_net_options(const arg_parser& args, const std::string& prog,
                             bool manager);

/// Waits (at most 2 minutes) until `n` worker nodes are connected to
/// `coord`, saying so on stderr; throws usage_error when they are not.
void wait_for_workers(const flow::net::coordinator& coord, std::size_t n,
                      const std::string& prog);

} // namespace flow::apps
