// Catch2 only declares its listener base classes with external interfaces on.
#define CATCH_CONFIG_EXTERNAL_INTERFACES

#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

namespace Catch {

std::string StringMaker<__int128>::convert(__int128 x) {
  return test::decimal(x);
}

std::string StringMaker<flow::errc>::convert(flow::errc x) {
  return flow::to_string(x);
}

std::string StringMaker<flow::key>::convert(const flow::key& x) {
  return x.is_string() ? "\"" + x.as_string() + "\""
                       : std::to_string(x.as_int());
}

} // namespace Catch

namespace {

// Failing jobs log their error; keep the test output readable unless the
// developer asked for logs through FLOW_LOG_LEVEL.
struct quiet_logs : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testRunStarting(const Catch::TestRunInfo&) override {
    if (std::getenv("FLOW_LOG_LEVEL") == nullptr)
      flow::set_log_level("off");
  }
};

} // namespace

CATCH_REGISTER_LISTENER(quiet_logs)

namespace test {

std::string decimal(flow::int128 x) {
  using u128 = unsigned __int128;
  bool negative = x < 0;
  u128 mag = negative ? u128{0} - static_cast<u128>(x) : static_cast<u128>(x);
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + mag % 10));
    mag /= 10;
  } while (mag != 0);
  return negative ? "-" + digits : digits;
}

flow::int128 naive_sum(const std::vector<std::int64_t>& xs) {
  flow::int128 total = 0;
  for (auto x : xs)
    total += x;
  return total;
}

std::vector<std::int64_t> random_values(std::uint64_t n, std::uint64_t seed,
                                        std::int64_t lo, std::int64_t hi) {
  flow::uniform_ints gen{seed, lo, hi};
  std::vector<std::int64_t> xs;
  xs.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i)
    xs.push_back(gen(i));
  return xs;
}

flow::job_result ok(caf::expected<flow::job_result> res) {
  if (!res)
    FAIL("the job failed: " << flow::describe(res.error()));
  return std::move(*res);
}

caf::error err(caf::expected<flow::job_result> res) {
  if (res)
    FAIL("the job succeeded (" << res->emitted
                               << " elements) but should have failed");
  return std::move(res.error());
}

temp_file::temp_file(const std::string& contents) {
  static std::atomic<int> counter{0};
  auto name = "flow-unit-" + std::to_string(::getpid()) + "-"
              + std::to_string(counter++) + ".txt";
  path_ = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream out{path_, std::ios::binary};
  out << contents;
  REQUIRE(out.good());
}

temp_file::~temp_file() {
  std::remove(path_.c_str());
}

} // namespace test
