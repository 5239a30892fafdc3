#pragma once

/// @file
/// A private, throwaway PostgreSQL cluster in a temporary directory: for
/// tests and for `flow-etl` runs without a configured database.
///
/// @code
/// auto cluster = flow::pg::temp_cluster::start();
/// if (!cluster)
///   return fail(flow::describe(cluster.error()));
/// pqxx::connection conn{(*cluster)->conninfo()};
/// // ... the server stops and its directory goes when *cluster is destroyed
/// @endcode

#include <memory>
#include <string>

#include <caf/expected.hpp>

namespace flow::pg {

/// How to start a throwaway cluster.
struct cluster_options {
  /// Where initdb, pg_ctl and postgres live.
  std::string bin_dir = "/usr/lib/postgresql/15/bin";
  /// The operating-system user that runs the server when the caller is root
  /// (PostgreSQL refuses to run as root). Empty: $FLOW_PG_USER, else the
  /// first of `flowpg` (created by scripts/setup.sh), `postgres`, `nobody`
  /// that exists. Ignored when not root: the server runs as the caller.
  std::string run_as;
  /// Directory for the cluster's temporary directory; empty: $TMPDIR when it
  /// is short enough for a socket path, else /tmp.
  std::string parent_dir;
  /// The port number in the socket's name (the server listens on a unix
  /// socket in its own directory only, so clusters never collide).
  int port = 5432;
};

/// A PostgreSQL 15 cluster made with initdb in a fresh temporary directory,
/// started with pg_ctl, listening only on a unix socket in that directory
/// (no TCP). Superuser `flow` without password over that socket; other roles
/// authenticate with scram-sha-256 passwords. The destructor stops the server
/// and removes the directory, unless `keep()` was called; a watchdog process
/// does the same if this process dies without running destructors (killed).
class temp_cluster {
public:
  /// Creates and starts a cluster. The error (errc::source_failed) names the
  /// failing step and quotes its log.
  static caf::expected<std::unique_ptr<temp_cluster>>
  start(const cluster_options& opts = {});

  /// Stops the server and removes the directory (unless kept).
  ~temp_cluster();

  temp_cluster(const temp_cluster&) = delete;
  temp_cluster& operator=(const temp_cluster&) = delete;

  /// The temporary directory (holds `data/`, the socket and the logs).
  const std::string& dir() const noexcept {
    return dir_;
  }

  /// The data directory.
  std::string data_dir() const {
    return dir_ + "/data";
  }

  /// The socket's port number.
  int port() const noexcept {
    return port_;
  }

  /// The operating-system user running the server.
  const std::string& os_user() const noexcept {
    return os_user_;
  }

  /// The database superuser (`flow`).
  static const char* superuser() noexcept {
    return "flow";
  }

  /// A libpq connection string for `dbname` as the superuser.
  std::string conninfo(const std::string& dbname = "postgres") const;

  /// Leaves the server running and the directory in place at destruction.
  void keep();

  /// True after `keep()`.
  bool kept() const noexcept {
    return kept_;
  }

  /// A shell command that stops a kept cluster and removes its directory.
  std::string stop_command() const;

  /// Stops the server and removes the directory now (idempotent; also
  /// after `keep()`).
  void stop() noexcept;

  /// Restarts the server (pg_ctl restart -m fast): every connection is cut,
  /// the data stays. For tests of lost connections. Returns false when the
  /// server did not come back.
  bool restart();

private:
  temp_cluster() = default;

  // -- the steps of start(); each returns why it failed, empty on success --

  /// Picks the user the server runs as and hands it the directory.
  std::string choose_os_user(const cluster_options& opts);

  /// Starts the watchdog that removes everything if this process dies.
  std::string start_watchdog();

  /// Runs initdb and writes the server's configuration.
  std::string init_data_dir(const cluster_options& opts);

  /// Starts the server (pg_ctl start).
  std::string start_server(const cluster_options& opts);

  std::string dir_;
  std::string bin_dir_;
  std::string os_user_;
  int port_ = 5432;
  unsigned uid_ = 0;
  unsigned gid_ = 0;
  bool switch_user_ = false;
  bool running_ = false;
  bool kept_ = false;
  int watchdog_fd_ = -1;
  int watchdog_pid_ = -1;
};

} // namespace flow::pg
