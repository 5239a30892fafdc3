#pragma once

// Watching a program's jobs, the options every program shares for it:
// --status HOST:PORT (the status server: GET /, /status, /metrics),
// --status-linger SECONDS, --progress SECONDS (a progress line on stderr
// even when it is not a terminal) and --log-format text|json.

#include <chrono>
#include <optional>
#include <string>

#include "common/cli.hpp"
#include "flow/job.hpp"

namespace flow::apps {

/// Declares --status, --status-linger, --progress and --log-format.
void declare_watch_options(arg_parser& args);

/// Applies the options declared by declare_watch_options: sets the log
/// format, starts the status server (and prints "prog: status page at
/// http://HOST:PORT/" on stderr). Throws usage_error.
void read_watch_options(const arg_parser& args);

/// Shows job `j` as `name` on the status server (when there is one) and
/// names it in JSON log lines.
void watch_job_status(const job& j, const std::string& name);

/// Names the job JSON log lines are about from now on (watch_job_status
/// does too; call this before starting a job to name its first lines).
void name_log_job(const std::string& name);

/// Adds a field to the "process" object of /status (when serving).
void set_status_info(const std::string& key, const std::string& value);

/// --progress: how often to print a progress line; empty when not given
/// (then a line shows on a terminal only).
std::optional<std::chrono::milliseconds> progress_interval();

/// Before the program ends: keeps serving the final status for
/// --status-linger seconds (saying so on stderr, after flushing stdout; a
/// SIGINT or SIGTERM ends the wait, see linger()), then stops the server.
/// Programs that leave through std::_Exit call it first.
void finish_watch();

/// Splits "HOST:PORT" ("[::1]:PORT" for IPv6; an empty host means
/// 127.0.0.1); throws usage_error naming `option`.
std::pair<std::string, std::uint16_t> parse_host_port(const std::string& option,
                                                      const std::string& text);

} // namespace flow::apps
