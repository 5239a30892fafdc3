#pragma once

/// @file
/// The exact running aggregate kept per key: sum (128-bit), count, min, max.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

namespace flow {

/// Signed 128-bit integer: exact for the sum of up to 2^64 int64 values.
using int128 = __int128;

/// Renders a 128-bit integer in decimal.
std::string to_string(int128 x);

/// Sum, count, min and max of int64 values. Sums are exact for every input:
/// they accumulate in 128 bits and merging detects overflow instead of
/// wrapping. The mean is derived from sum and count.
struct aggregate {
  /// Exact sum of the values.
  int128 sum = 0;
  /// Number of values.
  std::uint64_t count = 0;
  /// Smallest value; `int64 max` while empty.
  std::int64_t min = std::numeric_limits<std::int64_t>::max();
  /// Largest value; `int64 min` while empty.
  std::int64_t max = std::numeric_limits<std::int64_t>::min();

  /// Adds one value. Cannot overflow before 2^64 values have been added.
  void add(std::int64_t x) noexcept {
    sum += x;
    ++count;
    if (x < min)
      min = x;
    if (x > max)
      max = x;
  }

  /// Merges `other` into this aggregate. Returns false (and leaves this
  /// aggregate unchanged) when the sum or the count would overflow.
  [[nodiscard]] bool merge(const aggregate& other) noexcept;

  /// True when no value has been added.
  bool empty() const noexcept {
    return count == 0;
  }

  /// The mean, sum / count; 0 for an empty aggregate.
  long double mean() const noexcept;

  /// Aggregates `n` values starting at `xs` in one pass.
  static aggregate of(const std::int64_t* xs, std::size_t n) noexcept;

  /// Inspection (the 128-bit sum travels as two 64-bit halves).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 aggregate& x) {
    auto hi = static_cast<std::int64_t>(x.sum >> 64);
    auto lo = static_cast<std::uint64_t>(x.sum);
    auto join = caf::meta::load_callback([&]() -> caf::error {
      x.sum = (static_cast<int128>(hi) * (int128{1} << 64))
              + static_cast<int128>(lo);
      return caf::error{};
    });
    return f(caf::meta::type_name("flow.aggregate"), hi, lo, x.count, x.min,
             x.max, join);
  }
};

/// @relates aggregate
inline bool operator==(const aggregate& x, const aggregate& y) noexcept {
  return x.sum == y.sum && x.count == y.count && x.min == y.min
         && x.max == y.max;
}

/// @relates aggregate
inline bool operator!=(const aggregate& x, const aggregate& y) noexcept {
  return !(x == y);
}

/// Exact sum of `n` int64 values in one vectorised pass (64-bit lanes per
/// block of values, 128 bits where a block could overflow).
int128 exact_sum(const std::int64_t* xs, std::size_t n) noexcept;

} // namespace flow
