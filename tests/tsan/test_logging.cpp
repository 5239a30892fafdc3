// libflow's logger under ThreadSanitizer: the first calls may come from
// several actors' threads at once.

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "flow/logging.hpp"
#include "threads.hpp"

using namespace flow;
using namespace flow::test;

TEST_CASE("logger: first calls from many threads create one logger, and "
          "levels set concurrently all take",
          "[tsan][logging]") {
  constexpr std::size_t threads = 8;
  std::vector<spdlog::logger*> seen(threads);
  std::vector<int> accepted(threads);
  const std::vector<std::string> levels{"error", "critical", "off"};
  run_together(threads, [&](std::size_t t) {
    seen[t] = logger().get();
    accepted[t] = set_log_level(levels[t % levels.size()]) ? 1 : 0;
    accepted[t] += set_log_level("no such level") ? 1 : 0;
  });
  REQUIRE(seen[0] != nullptr);
  for (std::size_t t = 0; t < threads; ++t) {
    CHECK(seen[t] == seen[0]);
    CHECK(accepted[t] == 1);
  }
  // The level is one of those set.
  auto level = logger()->level();
  CHECK((level == spdlog::level::err || level == spdlog::level::critical
         || level == spdlog::level::off));
}
