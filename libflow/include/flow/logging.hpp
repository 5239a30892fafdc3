#pragma once

/// @file
/// libflow's logger: spdlog, to standard error.

#include <memory>
#include <string>

namespace spdlog {
class logger;
} // namespace spdlog

namespace flow {

/// The logger libflow writes to (named "flow", on standard error).
std::shared_ptr<spdlog::logger> logger();

/// Sets the level: trace, debug, info, warn, error, critical or off. Returns
/// false (and changes nothing) for an unknown name. The default is `warn`, or
/// the value of the environment variable FLOW_LOG_LEVEL.
bool set_log_level(const std::string& level);

} // namespace flow
