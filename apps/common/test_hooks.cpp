#include "common/test_hooks.hpp"

#include <cstdlib>

#include "common/cli.hpp"
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

} // namespace flow::apps
