#pragma once

/// @file
/// What the status server (flow/status_server.hpp) serves, as text: the
/// Prometheus exposition format of a job's statistics, the /status JSON and
/// the page. Separate from the server so that it can be tested (and used
/// by an application with an HTTP server of its own). No CAF, no HTTP.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "flow/job_stats.hpp"

namespace flow {

/// A watched job as the status server renders it: its name, its latest
/// statistics and the throughput history the server sampled.
struct status_entry {
  /// The job's name (a label value, e.g. "size 1000").
  std::string name;
  /// The statistics published last.
  job_stats stats;
  /// (elapsed seconds, elements aggregated) samples, oldest first.
  std::vector<std::pair<double, std::uint64_t>> history;
};

/// Removes secrets from text that may hold a connection string: the values
/// of `password` and `sslpassword` in key=value strings and URI query
/// parameters, and the password of a URI's user information, become `***`.
std::string scrub_secrets(const std::string& text);

/// Writes the Prometheus text exposition format 0.0.4: each family once,
/// with its HELP and TYPE lines before its samples; label values escaped.
class prometheus_writer {
public:
  /// A label: name and (unescaped) value.
  using label = std::pair<std::string, std::string>;

  /// Starts the family `name` of `type` ("counter", "gauge", "histogram");
  /// throws std::logic_error when the family was started before, or when
  /// `name` is not a valid metric name.
  void family(const std::string& name, const std::string& type,
              const std::string& help);

  /// Writes one sample of the current family (`suffix` for histograms:
  /// "_bucket", "_sum", "_count"); throws std::logic_error before family().
  void sample(const std::vector<label>& labels, double value,
              const std::string& suffix = {});

  /// The text so far.
  const std::string& str() const noexcept {
    return out_;
  }

  /// Escapes a label value: backslash, double quote and newline.
  static std::string escape_label(const std::string& value);

  /// Escapes a HELP text: backslash and newline.
  static std::string escape_help(const std::string& text);

  /// Formats a sample value: integers exactly, others with 17 digits, and
  /// +Inf, -Inf, NaN as Prometheus spells them.
  static std::string format_value(double value);

private:
  std::string out_;
  std::string current_;
  std::map<std::string, bool> seen_;
};

/// The metrics of `jobs` in the Prometheus text format 0.0.4
/// (docs/observability.md lists them).
std::string render_metrics(const std::vector<status_entry>& jobs);

/// The /status JSON document of `jobs`; `info` adds string fields to its
/// "process" object (the program, a worker node's address, ...).
std::string
render_status_json(const std::vector<status_entry>& jobs,
                   const std::vector<std::pair<std::string, std::string>>& info);

/// The status page (GET /): one self-contained HTML document that polls
/// /status about once a second.
const std::string& status_page();

} // namespace flow
