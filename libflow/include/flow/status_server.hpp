#pragma once

/// @file
/// A small HTTP server that shows running jobs: `GET /metrics` (Prometheus
/// text format 0.0.4), `GET /status` (JSON) and `GET /` (a page that
/// refreshes itself from /status). Target flow::status; neither CAF nor the
/// HTTP library appear here. docs/observability.md documents what it serves.
///
/// @code
/// flow::status_server server;
/// if (auto err = server.start({"127.0.0.1", 8080}); !err.empty())
///   std::cerr << err << '\n';
/// auto j = pipeline.start(sys);
/// server.watch(*j, "sum");
/// @endcode

#include <cstdint>
#include <memory>
#include <string>

#include "flow/job.hpp"

namespace flow {

/// Serves the statistics of the jobs it watches. The application owns it;
/// it stops serving when destroyed.
class status_server {
public:
  /// Where and how to serve.
  struct settings {
    /// The address to bind; loopback unless told otherwise (the page is
    /// unauthenticated: binding elsewhere logs a warning).
    std::string host = "127.0.0.1";
    /// The port; 0 picks a free one (see port()).
    std::uint16_t port = 0;
    /// The largest request accepted (headers and body), bytes.
    std::size_t max_request_bytes = 8192;
    /// Requests per second one connection may make (a burst of twice as
    /// many); more get 429 Too Many Requests.
    double requests_per_second = 10;
    /// Threads answering requests.
    std::size_t threads = 2;
    /// How often the throughput history is sampled, milliseconds.
    std::uint32_t sample_ms = 500;
  };

  /// A server that does not listen yet.
  status_server();
  /// Stops serving.
  ~status_server();
  /// Not copyable.
  status_server(const status_server&) = delete;
  /// Not copyable.
  status_server& operator=(const status_server&) = delete;

  /// Binds and starts serving in threads of its own; returns an error
  /// message, empty on success.
  std::string start(const settings& cfg);

  /// Stops serving (also done by the destructor).
  void stop();

  /// The port it listens on (0 before start).
  std::uint16_t port() const noexcept;

  /// "host:port" (IPv6 hosts in brackets).
  std::string address() const;

  /// Shows job `j` under `name` (after the jobs watched before; the oldest
  /// ended ones go when more than 32 are watched).
  void watch(const job& j, const std::string& name);

  /// Adds a string field to the "process" object of /status (for example
  /// the program's name); secrets are scrubbed.
  void set_info(const std::string& key, const std::string& value);

  /// What GET /metrics answers now.
  std::string metrics() const;

  /// What GET /status answers now.
  std::string status_json() const;

  /// True for an address only this machine can reach (127.0.0.0/8, ::1,
  /// localhost).
  static bool is_loopback(const std::string& host);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace flow
