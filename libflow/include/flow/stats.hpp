#pragma once

/// @file
/// `double_stats`: count, exact sum, min, max, mean, variance and standard
/// deviation of doubles, mergeable with results that do not depend on the
/// split.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include "flow/aggregate.hpp"
#include "flow/detail/double_bits.hpp"
#include "flow/error.hpp"
#include "flow/exact_sum.hpp"

namespace flow {

/// Aggregator state of doubles: `exact_moments` (exact sums of x and x*x)
/// plus min and max. Every result is a function of the multiset of values,
/// bit for bit, whatever the split, batch size or merge order.
///
/// Rules
/// - `sum()`: the exact sum rounded once to nearest, ties to even; inf and
///   NaN as IEEE 754 (see exact_sum.hpp).
/// - `mean()`, `variance()`, `stddev()`: from the exact sums, within 1 ulp
///   (see `exact_moments`). `variance()` and `stddev()` are the SAMPLE
///   statistics (divisor n - 1, NaN below two values); the `_population`
///   ones divide by n.
/// - `min()` and `max()` ignore NaN, like std::fmin and std::fmax, and are
///   NaN when no value other than NaN was added (or none at all). -0.0 counts
///   as smaller than +0.0, so the sign of a zero result does not depend on
///   the order either. inf and -inf take part as ordinary values.
///
/// Memory: two exact sums (2 * 576 bytes) and two doubles: sizeof is 1168
/// bytes; serialised as 2 * 71 integers and 2 doubles (1152 bytes).
class double_stats {
public:
  /// An empty state.
  double_stats() noexcept = default;

  /// Registry name of the state type.
  static std::string state_name() {
    return "flow.double_stats";
  }

  // -- adding -----------------------------------------------------------------

  /// Adds one value.
  void add(double x) noexcept;

  /// Adds `n` values starting at `xs`: the exact sums' batch path and one
  /// vectorised pass for min and max.
  void add(const double* xs, std::size_t n) noexcept;

  /// Merges another state. Always succeeds (the exact sums cannot overflow
  /// before 2^64 values); returns true.
  bool merge(const double_stats& other) noexcept;

  // -- results ----------------------------------------------------------------

  /// Number of values, NaN and infinities included.
  std::uint64_t count() const noexcept {
    return moments_.count();
  }

  /// The exact sum rounded once (ties to even).
  double sum() const noexcept {
    return moments_.sum().value();
  }

  /// The smallest value other than NaN; NaN when there is none.
  double min() const noexcept;

  /// The largest value other than NaN; NaN when there is none.
  double max() const noexcept;

  /// sum / n from the exact sum; NaN when empty.
  double mean() const noexcept {
    return moments_.mean();
  }

  /// Sample variance (divisor n - 1); NaN below two values.
  double variance() const noexcept {
    return moments_.variance_sample();
  }

  /// Sample standard deviation (divisor n - 1); NaN below two values.
  double stddev() const noexcept {
    return moments_.stddev_sample();
  }

  /// Population variance (divisor n); NaN when empty.
  double variance_population() const noexcept {
    return moments_.variance_population();
  }

  /// Population standard deviation (divisor n); NaN when empty.
  double stddev_population() const noexcept {
    return moments_.stddev_population();
  }

  /// The exact sums behind the results.
  const exact_moments& moments() const noexcept {
    return moments_;
  }

  // -- comparison -------------------------------------------------------------

  /// Equal when the exact sums are equal and min and max have the same bits.
  friend bool operator==(const double_stats& x, const double_stats& y) noexcept;

  /// Negation of `==`.
  friend bool operator!=(const double_stats& x,
                         const double_stats& y) noexcept {
    return !(x == y);
  }

  // -- serialisation ----------------------------------------------------------

  /// Inspection: the exact moments, then min and max as 64-bit patterns
  /// (see detail/double_bits.hpp). Loading rejects min and max that
  /// contradict the counts (see `consistent`).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 double_stats& x) {
    auto lo = detail::to_bits(x.min_);
    auto hi = detail::to_bits(x.max_);
    auto load = caf::meta::load_callback([&]() -> caf::error {
      x.min_ = detail::from_bits(lo);
      x.max_ = detail::from_bits(hi);
      if (!x.consistent())
        return make_error(errc::protocol_violation,
                          "double_stats: inconsistent state");
      return caf::error{};
    });
    return f(caf::meta::type_name("flow.double_stats"), x.moments_, lo, hi,
             load);
  }

private:
  /// True when min and max agree with the counts of the exact sums.
  bool consistent() const noexcept;

  /// Number of values other than NaN.
  std::uint64_t ordered_count() const noexcept {
    return moments_.count() - moments_.sum().nan_count();
  }

  /// Exact sums of x and x*x.
  exact_moments moments_;
  /// Smallest non-NaN value; +inf while there is none.
  double min_ = __builtin_inf();
  /// Largest non-NaN value; -inf while there is none.
  double max_ = -__builtin_inf();
};

/// Aggregator state of int64 values: count, exact sum and exact sum of
/// squares, for the mean, variance and standard deviation of integers (the
/// sum, min and max themselves are `flow::aggregate`'s). Exact for up to
/// 2^64 - 1 values: the sum in 128 bits, the sum of squares in 192;
/// n S2 - S1^2 is formed exactly in 256 bits, so every result depends on the
/// multiset of values only and is bit-identical for every split.
///
/// Rounding: the 256-bit numerator's leading 128 bits go to a long double
/// (64-bit mantissa), then at most three long double operations and one
/// rounding to double: well within 1 ulp of the exact value. `variance()` and
/// `stddev()` are SAMPLE statistics (n - 1; NaN below two values), the
/// `_population` ones divide by n (NaN when empty); `mean()` is NaN when
/// empty.
///
/// Memory: 16 + 24 + 8 = 48 bytes; serialised in 48 bytes.
class int_moments {
public:
  /// An empty state.
  int_moments() noexcept = default;

  /// Registry name of the state type.
  static std::string state_name() {
    return "flow.int_moments";
  }

  /// Adds one value.
  void add(std::int64_t x) noexcept;

  /// Adds `n` values starting at `xs`.
  void add(const std::int64_t* xs, std::size_t n) noexcept;

  /// Merges another state. Returns false, leaving this state unchanged, when
  /// the count would pass 2^64 - 1.
  [[nodiscard]] bool merge(const int_moments& other) noexcept;

  /// Number of values.
  std::uint64_t count() const noexcept {
    return count_;
  }

  /// The exact sum.
  int128 sum() const noexcept {
    return sum_;
  }

  /// sum / n; NaN when empty.
  double mean() const noexcept;

  /// Sample variance (divisor n - 1); NaN below two values.
  double variance() const noexcept;

  /// Sample standard deviation (divisor n - 1); NaN below two values.
  double stddev() const noexcept;

  /// Population variance (divisor n); NaN when empty.
  double variance_population() const noexcept;

  /// Population standard deviation (divisor n); NaN when empty.
  double stddev_population() const noexcept;

  /// Equal when count and both exact sums are equal.
  friend bool operator==(const int_moments& x, const int_moments& y) noexcept {
    return x.sum_ == y.sum_ && x.sumsq_ == y.sumsq_ && x.count_ == y.count_;
  }

  /// Negation of `==`.
  friend bool operator!=(const int_moments& x, const int_moments& y) noexcept {
    return !(x == y);
  }

  /// Inspection: the sum as two 64-bit halves, the three limbs of the sum of
  /// squares, the count. Loading rejects sums no data has (a nonzero sum
  /// without values, or n S2 < S1^2).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 int_moments& x) {
    auto hi = static_cast<std::int64_t>(x.sum_ >> 64);
    auto lo = static_cast<std::uint64_t>(x.sum_);
    auto load = caf::meta::load_callback([&]() -> caf::error {
      x.sum_ = static_cast<int128>(
        (static_cast<unsigned __int128>(static_cast<std::uint64_t>(hi)) << 64)
        | lo);
      if (!x.consistent())
        return make_error(errc::protocol_violation,
                          "int_moments: inconsistent state");
      return caf::error{};
    });
    return f(caf::meta::type_name("flow.int_moments"), hi, lo, x.sumsq_,
             x.count_, load);
  }

private:
  /// True when the sums could come from `count_` values.
  bool consistent() const noexcept;

  /// n S2 - S1^2 rounded to a long double; negative when inconsistent.
  long double numerator() const noexcept;

  /// Exact sum of the values.
  int128 sum_ = 0;
  /// Exact sum of the squares, 192 bits, least significant limb first.
  std::array<std::uint64_t, 3> sumsq_{};
  /// Number of values.
  std::uint64_t count_ = 0;
};

} // namespace flow
