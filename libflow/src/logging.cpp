#include "flow/logging.hpp"

#include <cstdlib>
#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace flow {

namespace {

std::shared_ptr<spdlog::logger> make_logger() {
  auto result = spdlog::get("flow");
  if (!result)
    result = spdlog::stderr_color_mt("flow");
  result->set_pattern("[%H:%M:%S.%e] [%n] [%l] %v");
  auto level = spdlog::level::warn;
  if (auto env = std::getenv("FLOW_LOG_LEVEL")) {
    auto parsed = spdlog::level::from_str(env);
    // from_str maps unknown names to "off"; only accept real names.
    if (parsed != spdlog::level::off || std::string{env} == "off")
      level = parsed;
  }
  result->set_level(level);
  return result;
}

} // namespace

std::shared_ptr<spdlog::logger> logger() {
  static auto instance = make_logger();
  return instance;
}

bool set_log_level(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off")
    return false;
  logger()->set_level(parsed);
  return true;
}

} // namespace flow
