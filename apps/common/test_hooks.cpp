#include "common/test_hooks.hpp"

#include <atomic>
#include <cstdlib>
#include <thread>

#include <unistd.h>

#include "common/cli.hpp"
#include <spdlog/spdlog.h>

#include "flow/logging.hpp"
#include "flow/parse.hpp"

namespace flow::apps {

std::chrono::milliseconds test_reducer_delay() {
  auto* env = std::getenv("FLOW_TEST_REDUCER_DELAY_MS");
  if (env == nullptr)
    return std::chrono::milliseconds{0};
  std::string why;
  auto x = parse_int64(env, why);
  if (!x || *x < 0)
    throw usage_error("FLOW_TEST_REDUCER_DELAY_MS must be a number of "
                      "milliseconds");
  return std::chrono::milliseconds{*x};
}

std::string test_pause_file() {
  auto* env = std::getenv("FLOW_TEST_PAUSE_FILE");
  return env == nullptr ? std::string{} : std::string{env};
}

void wait_while_exists(const std::string& path) {
  while (::access(path.c_str(), F_OK) == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

std::optional<std::int64_t> test_poison() {
  auto* env = std::getenv("FLOW_TEST_POISON");
  if (env == nullptr)
    return std::nullopt;
  std::string why;
  auto x = parse_int64(env, why);
  if (!x)
    throw usage_error("FLOW_TEST_POISON " + why);
  return x;
}

std::optional<std::uint64_t> test_stuck_seq() {
  auto* env = std::getenv("FLOW_TEST_STUCK_SEQ");
  if (env == nullptr)
    return std::nullopt;
  std::string why;
  auto x = parse_int64(env, why);
  if (!x || *x < 0)
    throw usage_error("FLOW_TEST_STUCK_SEQ must be a batch number");
  return static_cast<std::uint64_t>(*x);
}

void stuck_for_ever(std::uint64_t seq) {
  static std::atomic<bool> said{false};
  if (!said.exchange(true))
    logger()->warn("test hook: stuck on batch {}", seq);
  for (;;)
    std::this_thread::sleep_for(std::chrono::hours(1));
}

} // namespace flow::apps
