#pragma once

/// @file
/// `double_stats`: count, exact sum, min, max, mean, variance and standard
/// deviation of doubles, mergeable with results that do not depend on the
/// split.

#include <cstddef>
#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

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

} // namespace flow
