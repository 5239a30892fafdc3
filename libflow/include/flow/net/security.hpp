#pragma once

/// @file
/// flow::net's connection settings: where a node listens or connects, its TLS
/// identity, and the actor system configuration both sides need.

#include <cstdint>
#include <chrono>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

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
  /// Liveness: a peer (the manager, a worker node) from which nothing,
  /// not even a heartbeat, arrived for this long is declared lost; its
  /// reducers and tasks go elsewhere. Heartbeats go every fifth of it, at
  /// most every second. Not a security setting, but one of the connection
  /// that `configure` applies with the others.
  std::chrono::milliseconds peer_timeout{5000};
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

} // namespace flow::net
