#pragma once

/// @file
/// Exact decimal numbers (what PostgreSQL's `numeric` holds, up to 38
/// significant digits) and `decimal_sum`, their exact mergeable sum.
///
/// Guarantees
/// - A `decimal` is the number unscaled * 10^-scale with |unscaled| < 10^38
///   and 0 <= scale <= 38. Nothing in this file ever rounds a decimal:
///   parsing, rescaling and summing are exact or fail.
/// - `decimal_sum` adds exactly at the largest scale of its inputs (1.5 plus
///   2.25 is 3.75, scale 2). Its running total is held in 192 bits, so no
///   intermediate result overflows: whether a sum is representable depends on
///   the data only, never on the split, the batch size or the merge order.
/// - The only rounding is `decimal_sum::mean()`, documented there.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include "flow/aggregate.hpp"
#include "flow/error.hpp"

namespace flow {

/// An exact fixed-point decimal number: unscaled * 10^-scale, at most 38
/// significant digits (|unscaled| < 10^38) and a scale in 0..38. The scale is
/// part of the value as in PostgreSQL (1.50 prints as "1.50"), but comparison
/// is by value (1.5 == 1.50).
///
/// @code
/// auto x = flow::parse_decimal("-12.50");
/// assert(x && x->unscaled() == -1250 && x->scale() == 2);
/// assert(flow::to_string(*x) == "-12.50");
/// @endcode
class decimal {
public:
  // -- constants --------------------------------------------------------------

  /// Largest number of significant digits (of the unscaled integer).
  static constexpr int max_digits = 38;

  /// Largest scale (digits after the decimal point).
  static constexpr int max_scale = 38;

  // -- construction -----------------------------------------------------------

  /// Zero with scale 0.
  decimal() noexcept = default;

  /// unscaled * 10^-scale, or nothing when |unscaled| >= 10^38 or the scale
  /// is outside 0..38.
  static std::optional<decimal> make(int128 unscaled, int scale) noexcept;

  /// The integer `x` (scale 0); always representable.
  static decimal of(std::int64_t x) noexcept;

  /// True when unscaled * 10^-scale is a representable decimal.
  static bool valid(int128 unscaled, int scale) noexcept;

  // -- properties -------------------------------------------------------------

  /// The unscaled integer.
  int128 unscaled() const noexcept {
    return unscaled_;
  }

  /// Digits after the decimal point.
  int scale() const noexcept {
    return scale_;
  }

  /// Number of digits of |unscaled| (0 for zero).
  int digits() const noexcept;

  /// Name used by the state names of templates ("flow.top_k<dec,i64>").
  static std::string payload_name() {
    return "dec";
  }

  // -- arithmetic -------------------------------------------------------------

  /// The same value at `new_scale`, or nothing when that needs more than 38
  /// digits or would drop nonzero digits (never rounds).
  std::optional<decimal> rescaled(int new_scale) const noexcept;

  /// The negated value, same scale (always representable: the range is
  /// symmetric).
  decimal operator-() const noexcept {
    return decimal{-unscaled_, scale_};
  }

  /// Three-way comparison by value: negative, zero or positive.
  int compare(const decimal& other) const noexcept;

  /// True when both the value and the scale are equal (1.5 is not identical
  /// to 1.50, though equal).
  bool identical(const decimal& other) const noexcept {
    return unscaled_ == other.unscaled_ && scale_ == other.scale_;
  }

  // -- serialisation ----------------------------------------------------------

  /// Inspection: the unscaled integer as two 64-bit halves and the scale;
  /// loading rejects values out of range.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, decimal& x) {
    auto hi = static_cast<std::int64_t>(x.unscaled_ >> 64);
    auto lo = static_cast<std::uint64_t>(x.unscaled_);
    auto scale = x.scale_;
    auto load = caf::meta::load_callback([&]() -> caf::error {
      auto u = static_cast<int128>(
        (static_cast<unsigned __int128>(static_cast<std::uint64_t>(hi)) << 64)
        | lo);
      if (!valid(u, scale))
        return make_error(errc::protocol_violation,
                          "decimal: more than 38 digits or scale above 38");
      x.unscaled_ = u;
      x.scale_ = scale;
      return caf::error{};
    });
    return f(caf::meta::type_name("flow.decimal"), hi, lo, scale, load);
  }

private:
  decimal(int128 unscaled, int scale) noexcept
    : unscaled_(unscaled), scale_(static_cast<std::uint8_t>(scale)) {
    // nop
  }

  /// The number is unscaled_ * 10^-scale_.
  int128 unscaled_ = 0;
  /// Digits after the point, 0..38.
  std::uint8_t scale_ = 0;
};

/// Parses a decimal number: an optional sign, digits with an optional '.'
/// (at least one digit on either side), and an optional exponent (`e` or `E`,
/// optional sign, digits). This covers PostgreSQL's numeric text output
/// ("-12.50") and what users type ("1.5e3", ".5", "+7."). The scale is the
/// digits after the point minus the exponent (at least 0): "1.50e1" is 15.0.
/// No whitespace, NaN or infinity. Errors are `errc::bad_input` with the
/// context "not a decimal number", "more than 38 significant digits" or
/// "scale above 38"; the caller adds the line and the token.
caf::expected<decimal> parse_decimal(std::string_view text);

/// The exact text with the scale's digits after the point ("-12.50", "0.001",
/// "7"); zero never has a sign. `parse_decimal(to_string(x))` is identical
/// to x.
std::string to_string(const decimal& x);

/// Appends to_string(x) to `out` without a string of its own: for printing
/// many values into one reused buffer.
void append_to(std::string& out, const decimal& x);

/// Appends unscaled * 10^-scale with `scale` digits after the point, as
/// to_string prints a decimal ("-0.05", "7"), for any 128-bit `unscaled`
/// (not only a decimal's 38 digits: a sum that may outgrow a decimal prints
/// through here). Throws std::invalid_argument for a scale outside 0..38.
void append_scaled(std::string& out, int128 unscaled, int scale);

/// @relates decimal
inline bool operator==(const decimal& x, const decimal& y) noexcept {
  return x.compare(y) == 0;
}

/// @relates decimal
inline bool operator!=(const decimal& x, const decimal& y) noexcept {
  return x.compare(y) != 0;
}

/// @relates decimal
inline bool operator<(const decimal& x, const decimal& y) noexcept {
  return x.compare(y) < 0;
}

/// @relates decimal
inline bool operator>(const decimal& x, const decimal& y) noexcept {
  return x.compare(y) > 0;
}

/// @relates decimal
inline bool operator<=(const decimal& x, const decimal& y) noexcept {
  return x.compare(y) <= 0;
}

/// @relates decimal
inline bool operator>=(const decimal& x, const decimal& y) noexcept {
  return x.compare(y) >= 0;
}

/// Aggregator state: the exact sum, count, min and max of decimals, the sum
/// at the largest scale of the inputs. Never rounds the sum.
///
/// Overflow
/// - An input that would need more than 38 digits at the common scale (the
///   largest scale of all inputs: 10^37 together with 0.1 needs 39) sets a
///   sticky flag: `ok()` stays false, later adds are ignored and `merge`
///   returns false. This only depends on the set of inputs.
/// - The running total is exact in 192 bits (2^64 inputs of 38 digits fit),
///   so it never overflows on the way; `ok()` is also false while the exact
///   total has more than 38 digits. On the final state this depends on the
///   data only; an engine that checks `ok()` after every batch may see a
///   total beyond 38 digits that later values would have cancelled.
///
/// Min and max compare by value; of equal values (1.5, 1.50) the one with the
/// larger scale is kept, so the result does not depend on the order.
///
/// Memory: 24 bytes of sum, 8 of count, 2 * 32 of min and max, 2 of flags:
/// sizeof is 112 bytes; serialised in 68 bytes (3 limbs, count, 2 * 17
/// bytes of min and max, scale, flag).
class decimal_sum {
public:
  /// An empty sum: count 0, sum 0 at scale 0.
  decimal_sum() noexcept = default;

  /// Registry name of the state type.
  static std::string state_name() {
    return "flow.decimal_sum";
  }

  // -- adding -----------------------------------------------------------------

  /// Adds one value (ignored once `ok()` is false because of an input).
  void add(const decimal& x) noexcept;

  /// Adds `n` values starting at `xs`.
  void add(const decimal* xs, std::size_t n) noexcept;

  /// Adds the values of `other`. Returns false, leaving this state unchanged,
  /// when either state has an unrepresentable input or the inputs of both
  /// together would not all fit at their common scale (or the count would
  /// pass 2^64 - 1).
  [[nodiscard]] bool merge(const decimal_sum& other) noexcept;

  // -- results ----------------------------------------------------------------

  /// False when an input could not be represented at the common scale
  /// (sticky) or the exact total has more than 38 digits.
  bool ok() const noexcept;

  /// Number of values added.
  std::uint64_t count() const noexcept {
    return count_;
  }

  /// The largest scale of the inputs (0 when empty).
  int scale() const noexcept {
    return scale_;
  }

  /// The exact sum at `scale()`; nothing when `ok()` is false.
  std::optional<decimal> sum() const noexcept;

  /// The smallest value; nothing when empty.
  std::optional<decimal> min() const noexcept;

  /// The largest value; nothing when empty.
  std::optional<decimal> max() const noexcept;

  /// sum / count rounded half to even to scale() + 6 digits after the point
  /// (at most 38, and fewer when the integer part leaves no room for them
  /// within 38 digits); nothing when empty or when `ok()` is false. Depends
  /// only on the exact sum and the count, so it is the same for every split.
  std::optional<decimal> mean() const noexcept;

  // -- comparison -------------------------------------------------------------

  /// Equal when every field is identical (same exact sum, scale, count,
  /// identical min and max, same overflow flag).
  friend bool operator==(const decimal_sum& x, const decimal_sum& y) noexcept {
    return x.sum_ == y.sum_ && x.count_ == y.count_
           && x.min_.identical(y.min_) && x.max_.identical(y.max_)
           && x.scale_ == y.scale_ && x.overflow_ == y.overflow_;
  }

  /// Negation of `==`.
  friend bool operator!=(const decimal_sum& x, const decimal_sum& y) noexcept {
    return !(x == y);
  }

  // -- serialisation ----------------------------------------------------------

  /// Inspection: the three 64-bit limbs of the total, the count, min, max,
  /// scale and overflow flag. Loading rejects states no sequence of adds
  /// produces (see `consistent`).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 decimal_sum& x) {
    auto load = caf::meta::load_callback([&]() -> caf::error {
      if (!x.consistent())
        return make_error(errc::protocol_violation,
                          "decimal_sum: inconsistent state");
      return caf::error{};
    });
    return f(caf::meta::type_name("flow.decimal_sum"), x.sum_, x.count_,
             x.min_, x.max_, x.scale_, x.overflow_, load);
  }

private:
  /// A 192-bit two's complement integer, least significant limb first.
  using wide = std::array<std::uint64_t, 3>;

  /// True when the fields could come from adds: scale in range, an empty
  /// state canonical, min <= max, both fitting at the scale.
  bool consistent() const noexcept;

  /// The sum = sum_ * 10^-scale_ (exact, 192 bits).
  wide sum_{};
  /// Values added.
  std::uint64_t count_ = 0;
  /// Smallest value (zero while empty).
  decimal min_;
  /// Largest value (zero while empty).
  decimal max_;
  /// Largest scale of the inputs.
  std::uint8_t scale_ = 0;
  /// Sticky: an input did not fit at the common scale, or count overflow.
  bool overflow_ = false;
};

} // namespace flow
