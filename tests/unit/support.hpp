#pragma once

// Shared helpers of the unit tests: reference computations written without
// libflow, Catch2 printers for libflow's types, temporary files, and a way to
// unwrap a job's result with a readable failure.

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <caf/expected.hpp>

#include "flow/flow.hpp"

namespace Catch {

template <>
struct StringMaker<__int128> {
  static std::string convert(__int128 x);
};

template <>
struct StringMaker<flow::errc> {
  static std::string convert(flow::errc x);
};

template <>
struct StringMaker<flow::key> {
  static std::string convert(const flow::key& x);
};

} // namespace Catch

namespace test {

/// Decimal rendering of a 128-bit integer by a plain digit loop (the
/// reference for flow::to_string; handles the minimum value).
std::string decimal(flow::int128 x);

/// Sum of `xs` by a naive sequential 128-bit loop.
flow::int128 naive_sum(const std::vector<std::int64_t>& xs);

/// Elements [0, n) of flow::uniform_ints(seed, lo, hi), produced sequentially.
std::vector<std::int64_t> random_values(std::uint64_t n, std::uint64_t seed,
                                        std::int64_t lo = 0,
                                        std::int64_t hi = 10000);

/// Unwraps a job's result; fails the test with the error's description.
flow::job_result ok(caf::expected<flow::job_result> res);

/// Asserts that `res` holds an error and returns it.
caf::error err(caf::expected<flow::job_result> res);

/// Ceiling of n / d.
constexpr std::uint64_t ceil_div(std::uint64_t n, std::uint64_t d) {
  return n / d + (n % d != 0 ? 1 : 0);
}

/// A file in the temporary directory with the given contents, removed when
/// the object dies.
class temp_file {
public:
  explicit temp_file(const std::string& contents);
  ~temp_file();
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;

  const std::string& path() const noexcept {
    return path_;
  }

private:
  std::string path_;
};

/// Pulls every element out of a source, `max` at a time, checking that no
/// slice exceeds `max` and that the source ends.
template <class T>
std::vector<T> drain(flow::source_impl<T>& src, std::size_t max) {
  std::vector<T> result;
  for (std::size_t guard = 0; guard < 10'000'000; ++guard) {
    auto xs = src.next(max);
    REQUIRE(xs.size() <= max);
    result.insert(result.end(), xs.begin(), xs.end());
    if (xs.empty() || src.exhausted())
      return result;
  }
  FAIL("source never ended");
  return result;
}

} // namespace test
