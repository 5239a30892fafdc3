#pragma once

/// @file
/// Exact, correctly rounded sums of doubles (and the moments derived from
/// them) whose result does not depend on how the data was split or merged.
///
/// Guarantees
/// - `exact_fsum::value()` is the sum of every finite value added, computed as
///   if with infinite precision and rounded once to the nearest double, ties
///   to even. The result is therefore bit-identical for any worker count,
///   batch size, merge order or number of nodes.
/// - An exact sum beyond the double range rounds to +-inf exactly as IEEE 754
///   rounds an overflowing result (|sum| >= DBL_MAX + ulp(DBL_MAX)/2 gives
///   inf); finite intermediate sums never overflow, e.g. 1e308 + 1e308 - 1e308
///   is 1e308.
/// - Special values follow IEEE 754: any NaN gives NaN, +inf and -inf together
///   give NaN, otherwise an infinity gives that infinity. They are counted
///   apart from the finite sum; the NaN returned is the default quiet NaN
///   (payloads are not propagated).
/// - An exact zero is +0.0 (as IEEE gives for x + -x). Unlike a naive IEEE
///   loop, a sum of nothing but -0.0 values is +0.0 as well.
/// - Exact for up to 2^64 values; merging is exact, associative and
///   commutative.
///
/// Algorithm
/// The state is Radford Neal's "small superaccumulator" (R. M. Neal, "Fast
/// exact summation using small and large superaccumulators",
/// arXiv:1505.05571, 2015): the fixed-point number sum * 2^1074 held in 67
/// signed 64-bit chunks, chunk i weighing 2^(32 i). A double adds its 53-bit
/// mantissa, shifted by the low 5 bits of its exponent, to two neighbouring
/// chunks; each chunk holds 32 value bits plus 31 bits of headroom, so carries
/// are propagated only every 2047 additions ("deferred carry propagation").
/// Normalising (propagating the carries) makes chunks 0..65 digits in
/// [0, 2^32) and chunk 66 a signed top digit: a canonical form, used by `==`,
/// by the serialised state and by the rounding in `value()`.
///
/// The batch path `add(const double*, size_t)` first tries, per block of 1024
/// values, an error-free extraction that vectorises (the technique of Rump,
/// Ogita and Oishi, "Accurate floating-point summation part I", SIAM J. Sci.
/// Comput. 31(1), 2008): with s chosen from the block's largest exponent so
/// that |x| 2^s < 2^50, adding and subtracting 1.5 * 2^(52-s) splits every x
/// exactly into an integer multiple of 2^-s, a multiple of 2^-(s+51) and a
/// remainder. Both integer parts are summed in 64-bit lanes and land in the
/// superaccumulator as two integers per block. When some remainder is not
/// zero (the block spans more than about 100 binary orders of magnitude), or
/// the block holds inf, NaN or values beyond the range where the splitting
/// constants are normal doubles, the block goes through Neal's per-element
/// path instead. Either way the state reached is the same exact number.
///
/// Memory: 67 * 8 bytes of chunks + 5 * 8 bytes of counters = 576 bytes,
/// serialised as 67 + 4 integers (the carry budget is not serialised).
///
/// Moments: `exact_moments` keeps an exact sum of x and an exact sum of x*x
/// (each square split into p + e without error by std::fma, then both added).
/// Mean, variance and standard deviation are computed from the two exact
/// sums and n with exact big-integer arithmetic followed by a few 64-bit
/// mantissa (long double) operations; see `exact_moments` for the bounds.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include "flow/error.hpp"

namespace flow {

/// The exact sum of doubles, mergeable and serialisable, rounded once on
/// request. See the file comment for the guarantees and the algorithm. (The
/// name follows Python's math.fsum: `flow::exact_sum` is already the exact
/// int64 sum of aggregate.hpp.)
///
/// @code
/// flow::exact_fsum s;
/// s.add(1e308);
/// s.add(1.0);
/// s.add(-1e308);
/// assert(s.value() == 1.0);
/// @endcode
class exact_fsum {
public:
  // -- constants --------------------------------------------------------------

  /// Number of 64-bit chunks of the superaccumulator.
  static constexpr std::size_t chunks = 67;

  /// Value bits per chunk in the canonical form.
  static constexpr int chunk_bits = 32;

  /// Additions a chunk absorbs between two carry propagations: a chunk starts
  /// below 2^32 and each addition adds less than 2^52, so 2047 additions stay
  /// below 2^63.
  static constexpr int carry_budget = 2047;

  /// Chunk array in the order of increasing weight.
  using chunk_array = std::array<std::int64_t, chunks>;

  // -- construction -----------------------------------------------------------

  /// An empty sum (value +0.0, count 0).
  exact_fsum() noexcept = default;

  /// The name the state is registered under (flow/aggregator.hpp).
  static std::string state_name() {
    return "flow.exact_fsum";
  }

  /// The exact sum of `n` values starting at `xs`.
  static exact_fsum of(const double* xs, std::size_t n) noexcept;

  // -- adding -----------------------------------------------------------------

  /// Adds one value (Neal's per-element path).
  void add(double x) noexcept;

  /// Adds `n` values starting at `xs` (the fast, vectorised batch path).
  void add(const double* xs, std::size_t n) noexcept;

  /// Adds the exact sum held by `other`. Exact, associative and commutative.
  void merge(const exact_fsum& other) noexcept;

  /// Adds m * 2^exp2 exactly and counts `values` more values: m is the
  /// integer whose magnitude has the 32-bit digits `digits[0..n)` (least
  /// significant first) and whose sign is `negative`. This is how an exact
  /// partial sum computed elsewhere in integers joins the sum (flow-etl
  /// aggregate --pushdown: the server's sum of doubles, each scaled by a
  /// power of two to an integer). Returns false, and leaves the state
  /// unchanged, when m * 2^exp2 is not a multiple of 2^-1074 or does not fit
  /// the accumulator (beyond about 2^1037).
  bool add_scaled(bool negative, const std::uint32_t* digits, std::size_t n,
                  int exp2, std::uint64_t values) noexcept;

  // -- results ----------------------------------------------------------------

  /// The exact sum rounded to the nearest double, ties to even; inf or NaN as
  /// IEEE 754 prescribes when special values were added.
  double value() const noexcept;

  /// Number of values added, special values included.
  std::uint64_t count() const noexcept {
    return count_;
  }

  /// Number of +inf values added.
  std::uint64_t pos_inf_count() const noexcept {
    return pos_inf_;
  }

  /// Number of -inf values added.
  std::uint64_t neg_inf_count() const noexcept {
    return neg_inf_;
  }

  /// Number of NaN values added.
  std::uint64_t nan_count() const noexcept {
    return nan_;
  }

  /// True when the finite part of the sum is exactly zero.
  bool finite_sum_is_zero() const noexcept;

  /// The canonical chunks: digits 0..65 in [0, 2^32), chunk 66 signed.
  chunk_array canonical_chunks() const noexcept;

  // -- comparison -------------------------------------------------------------

  /// Equal when the exact finite sums, the special-value counts and the
  /// counts are equal, however the two states were reached.
  friend bool operator==(const exact_fsum& x, const exact_fsum& y) noexcept;

  /// Negation of `==`.
  friend bool operator!=(const exact_fsum& x, const exact_fsum& y) noexcept {
    return !(x == y);
  }

  // -- serialisation ----------------------------------------------------------

  /// Inspection: the canonical chunks and the four counters. Loading rejects
  /// chunks that are not canonical, because the carry arithmetic relies on
  /// them.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, exact_fsum& x) {
    // Saving writes a normalised copy, so equal sums serialise to equal bytes
    // and a state shared between readers is never written to.
    auto canonical = x.canonical_chunks();
    auto load = caf::meta::load_callback([&]() -> caf::error {
      if (!is_canonical(canonical))
        return make_error(errc::protocol_violation,
                          "exact_fsum: chunks not in canonical form");
      x.chunks_ = canonical;
      x.budget_ = carry_budget;
      return caf::error{};
    });
    return f(caf::meta::type_name("flow.exact_fsum"), canonical, x.count_,
             x.pos_inf_, x.neg_inf_, x.nan_, load);
  }

private:
  friend class exact_moments;

  // -- helpers ----------------------------------------------------------------

  /// Propagates the carries: afterwards the state is canonical.
  void normalize() noexcept;

  /// True when chunks 0..65 are digits and the top chunk is in range.
  static bool is_canonical(const chunk_array& c) noexcept;

  /// Adds the signed integer `v` * 2^`bit` to the chunks (3 chunks touched).
  void add_shifted(std::int64_t v, int bit) noexcept;

  /// Neal's per-element path over `n` values, carries deferred.
  void add_scalar(const double* xs, std::size_t n) noexcept;

  // -- state ------------------------------------------------------------------

  /// sum * 2^1074 = sum over i of chunks_[i] * 2^(32 i).
  chunk_array chunks_{};
  /// Values added, specials included.
  std::uint64_t count_ = 0;
  /// Number of +inf values added.
  std::uint64_t pos_inf_ = 0;
  /// Number of -inf values added.
  std::uint64_t neg_inf_ = 0;
  /// Number of NaN values added.
  std::uint64_t nan_ = 0;
  /// Additions left before the chunks must be normalised.
  std::int64_t budget_ = carry_budget;
};

/// Mean, variance and standard deviation from exact sums of x and x*x.
///
/// Every result depends only on the two exact sums and n, so it is
/// bit-identical however the data was split. Bounds (tested against exact
/// rational arithmetic with an 80-digit square root):
/// - `mean()`: error below 0.501 ulp (within 1 ulp, nearly always the
///   correctly rounded value).
/// - `variance_*()` and `stddev_*()`: n*S2 - S1^2 is computed exactly with
///   big integers, then at most four long double (64-bit mantissa) operations
///   and one rounding to double: error below 0.51 ulp of the exact value of
///   the sums, hence within 1 ulp.
/// - The sum of squares is exact when every nonzero |x| lies in
///   [2^-485, 2^512) (then x*x = p + e exactly with p = x*x and
///   e = fma(x, x, -p)). A smaller |x| loses at most 2^-1074 of its square; a
///   larger one makes the sum of squares +inf and the variance inf or NaN.
/// - Empty: mean NaN; fewer than two values: sample variance NaN. Any inf or
///   NaN among the values: mean as `exact_fsum::value()`, variance NaN.
class exact_moments {
public:
  /// The name the state is registered under (flow/aggregator.hpp).
  static std::string state_name() {
    return "flow.exact_moments";
  }

  /// Adds one value.
  void add(double x) noexcept;

  /// Adds `n` values starting at `xs`.
  void add(const double* xs, std::size_t n) noexcept;

  /// Merges the moments of other data.
  void merge(const exact_moments& other) noexcept;

  /// Number of values.
  std::uint64_t count() const noexcept {
    return sum_.count();
  }

  /// Exact sum of the values.
  const exact_fsum& sum() const noexcept {
    return sum_;
  }

  /// Exact sum of the squares (see the class comment for the range).
  const exact_fsum& sum_of_squares() const noexcept {
    return sumsq_;
  }

  /// Sum / n.
  double mean() const noexcept;

  /// (n S2 - S1^2) / n^2.
  double variance_population() const noexcept;

  /// (n S2 - S1^2) / (n (n - 1)).
  double variance_sample() const noexcept;

  /// Square root of the population variance.
  double stddev_population() const noexcept;

  /// Square root of the sample variance.
  double stddev_sample() const noexcept;

  /// Equal when both exact sums are equal.
  friend bool operator==(const exact_moments& x,
                         const exact_moments& y) noexcept {
    return x.sum_ == y.sum_ && x.sumsq_ == y.sumsq_;
  }

  /// Inspection: the two exact sums.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 exact_moments& x) {
    return f(caf::meta::type_name("flow.exact_moments"), x.sum_, x.sumsq_);
  }

private:
  /// n S2 - S1^2 in units of 2^-2148, as a long double (64-bit mantissa,
  /// rounded to nearest); negative is clamped to 0.
  long double scaled_numerator() const noexcept;

  /// Sum of x.
  exact_fsum sum_;
  /// Sum of x*x, each square split into two doubles without error.
  exact_fsum sumsq_;
};

} // namespace flow
