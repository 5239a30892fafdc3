#pragma once

// Values of `flow-etl aggregate`: a row's fields decoded by their column
// class (agg_spec.hpp), dates and timestamps as integers that order like the
// values, and the small aggregator states the library does not have (a row
// count, an int64 range, a text range, and the compact states of pushed-down
// sums, minimums and maximums).

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "etl/agg_spec.hpp"
#include "flow/decimal.hpp"
#include "flow/exact_sum.hpp"
#include "flow/key.hpp"

namespace flow::apps {

/// One decoded field.
struct cell {
  /// SQL NULL.
  bool null = true;
  /// integer, boolean (0/1), date (days since 1970-01-01), timestamp and
  /// timestamptz (microseconds since 1970-01-01 00:00:00 UTC).
  std::int64_t i = 0;
  /// floating, and numeric as the nearest double (for stddev, quantile).
  double d = 0;
  /// numeric.
  decimal n;
  /// text and other types; numeric and floating keys in canonical text.
  std::string s;
};

/// Decodes `text` (a COPY text field, escapes resolved) of class `cls` into
/// `out` (a numeric also as the nearest double when `numeric_double`);
/// returns an empty string, or why it does not decode ("numeric
/// value 1e40 has more than 38 significant digits").
std::string decode_cell(col_class cls, std::string_view text, cell& out,
                        bool numeric_double = true);

/// The group-key part of a decoded cell (NULL for a NULL cell).
key_part key_part_of(col_class cls, const cell& c);

/// Appends the group-key part of a decoded cell to `b` (as `key_part_of`).
void add_key_part(key::builder& b, col_class cls, const cell& c);

/// Days since 1970-01-01 of an ISO date ("2024-02-29", "0044-03-15 BC").
std::optional<std::int64_t> parse_iso_date(std::string_view text);

/// Microseconds since 1970-01-01 00:00:00 (UTC when the text has an offset
/// such as "+05:30") of an ISO timestamp.
std::optional<std::int64_t> parse_iso_timestamp(std::string_view text);

/// The ISO text of a date (`parse_iso_date`'s inverse).
std::string format_date(std::int64_t days);

/// The ISO text of a timestamp; `utc_offset` appends "+00".
std::string format_timestamp(std::int64_t micros, bool utc_offset);

/// The text PostgreSQL accepts back for a double, exactly: the shortest
/// round-trip digits, "Infinity", "-Infinity" or "NaN".
std::string sql_double(double x);

// -- states the library does not have ---------------------------------------

/// A 128-bit integer as the two 64-bit halves its states' inspect
/// functions write, and back.
struct int128_halves {
  /// The high half.
  std::int64_t hi;
  /// The low half.
  std::uint64_t lo;

  /// The halves of `x`.
  explicit int128_halves(int128 x) noexcept
    : hi(static_cast<std::int64_t>(x >> 64)), lo(static_cast<std::uint64_t>(x)) {
    // nop
  }

  /// The integer of the (loaded) halves.
  int128 join() const noexcept {
    return static_cast<int128>(
      (static_cast<unsigned __int128>(static_cast<std::uint64_t>(hi)) << 64)
      | lo);
  }
};

/// sum, avg, min and max of an integer column, exactly: a 128-bit sum never
/// overflows (at most 2^64 values of at most 2^63 each).
struct int_stats {
  /// Values seen.
  std::uint64_t n = 0;
  /// Their exact sum.
  int128 sum = 0;
  /// Smallest value (valid when n > 0).
  std::int64_t lo = 0;
  /// Largest value (valid when n > 0).
  std::int64_t hi = 0;

  /// Registered name.
  static std::string state_name() {
    return "flow-etl.int_stats";
  }

  /// Adds one value.
  void add(std::int64_t x) noexcept {
    if (n == 0 || x < lo)
      lo = x;
    if (n == 0 || x > hi)
      hi = x;
    sum += x;
    ++n;
  }

  /// Adds another group's values.
  void merge(const int_stats& other) noexcept {
    if (other.n == 0)
      return;
    if (n == 0 || other.lo < lo)
      lo = other.lo;
    if (n == 0 || other.hi > hi)
      hi = other.hi;
    sum += other.sum;
    n += other.n;
  }

  /// Equality (tests).
  friend bool operator==(const int_stats& x, const int_stats& y) noexcept {
    return x.n == y.n && x.sum == y.sum
           && (x.n == 0 || (x.lo == y.lo && x.hi == y.hi));
  }

  /// Inspection: the sum as two 64-bit halves.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, int_stats& x) {
    int128_halves h{x.sum};
    auto load = caf::meta::load_callback([&]() -> caf::error {
      x.sum = h.join();
      return caf::error{};
    });
    return f(caf::meta::type_name("flow-etl.int_stats"), x.n, h.hi, h.lo, x.lo,
             x.hi, load);
  }
};

/// min and max of doubles, ordered as PostgreSQL orders float8: NaN above
/// every number, -0 equal to 0 (the first one seen is kept).
struct double_range {
  /// Values seen.
  std::uint64_t n = 0;
  /// Smallest value (valid when n > 0).
  double lo = 0;
  /// Largest value (valid when n > 0).
  double hi = 0;

  /// Registered name.
  static std::string state_name() {
    return "flow-etl.double_range";
  }

  /// x < y in PostgreSQL's order.
  static bool less(double x, double y) noexcept {
    if (x != x)
      return false;
    if (y != y)
      return true;
    return x < y;
  }

  /// Adds one value.
  void add(double x) noexcept {
    if (n == 0 || less(x, lo))
      lo = x;
    if (n == 0 || less(hi, x))
      hi = x;
    ++n;
  }

  /// Adds another group's range.
  void merge(const double_range& other) noexcept {
    if (other.n == 0)
      return;
    if (n == 0 || less(other.lo, lo))
      lo = other.lo;
    if (n == 0 || less(hi, other.hi))
      hi = other.hi;
    n += other.n;
  }

  /// Equality (tests): bitwise on the bounds.
  friend bool operator==(const double_range& x, const double_range& y) noexcept {
    auto same = [](double a, double b) {
      return (a != a && b != b) || (a == b && std::signbit(a) == std::signbit(b));
    };
    return x.n == y.n && (x.n == 0 || (same(x.lo, y.lo) && same(x.hi, y.hi)));
  }

  /// Inspection: the bounds as their bits (CAF 0.17's float encoding loses
  /// -0, NaN payloads and subnormals).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 double_range& x) {
    std::uint64_t lo_bits = 0;
    std::uint64_t hi_bits = 0;
    std::memcpy(&lo_bits, &x.lo, sizeof(double));
    std::memcpy(&hi_bits, &x.hi, sizeof(double));
    auto load = caf::meta::load_callback([&]() -> caf::error {
      std::memcpy(&x.lo, &lo_bits, sizeof(double));
      std::memcpy(&x.hi, &hi_bits, sizeof(double));
      return caf::error{};
    });
    return f(caf::meta::type_name("flow-etl.double_range"), x.n, lo_bits,
             hi_bits, load);
  }
};

/// count(*) and count(col): how many rows (or non-NULL values) a group has.
struct row_count {
  /// The count.
  std::uint64_t n = 0;

  /// Registered name.
  static std::string state_name() {
    return "flow-etl.count";
  }

  /// Counts one.
  void add() noexcept {
    ++n;
  }

  /// Adds another group's count.
  void merge(const row_count& other) noexcept {
    n += other.n;
  }

  /// Equality (tests).
  friend bool operator==(const row_count& x, const row_count& y) noexcept {
    return x.n == y.n;
  }

  /// Inspection.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, row_count& x) {
    return f(caf::meta::type_name("flow-etl.count"), x.n);
  }
};

/// min and max of int64-coded values (dates, timestamps).
struct int_range {
  /// Values seen.
  std::uint64_t n = 0;
  /// Smallest value (valid when n > 0).
  std::int64_t lo = 0;
  /// Largest value (valid when n > 0).
  std::int64_t hi = 0;

  /// Registered name.
  static std::string state_name() {
    return "flow-etl.int_range";
  }

  /// Adds one value.
  void add(std::int64_t x) noexcept {
    if (n == 0 || x < lo)
      lo = x;
    if (n == 0 || x > hi)
      hi = x;
    ++n;
  }

  /// Adds another group's range.
  void merge(const int_range& other) noexcept {
    if (other.n == 0)
      return;
    if (n == 0 || other.lo < lo)
      lo = other.lo;
    if (n == 0 || other.hi > hi)
      hi = other.hi;
    n += other.n;
  }

  /// Equality (tests).
  friend bool operator==(const int_range& x, const int_range& y) noexcept {
    return x.n == y.n && (x.n == 0 || (x.lo == y.lo && x.hi == y.hi));
  }

  /// Inspection.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, int_range& x) {
    return f(caf::meta::type_name("flow-etl.int_range"), x.n, x.lo, x.hi);
  }
};

/// min and max of strings, by bytes (PostgreSQL's "C" collation).
struct text_range {
  /// Values seen.
  std::uint64_t n = 0;
  /// Smallest value (valid when n > 0).
  std::string lo;
  /// Largest value (valid when n > 0).
  std::string hi;

  /// Registered name.
  static std::string state_name() {
    return "flow-etl.text_range";
  }

  /// Adds one value.
  void add(const std::string& x) {
    if (n == 0 || x < lo)
      lo = x;
    if (n == 0 || x > hi)
      hi = x;
    ++n;
  }

  /// Adds another group's range.
  void merge(const text_range& other) {
    if (other.n == 0)
      return;
    if (n == 0 || other.lo < lo)
      lo = other.lo;
    if (n == 0 || other.hi > hi)
      hi = other.hi;
    n += other.n;
  }

  /// Equality (tests).
  friend bool operator==(const text_range& x, const text_range& y) {
    return x.n == y.n && (x.n == 0 || (x.lo == y.lo && x.hi == y.hi));
  }

  /// Inspection.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, text_range& x) {
    return f(caf::meta::type_name("flow-etl.text_range"), x.n, x.lo, x.hi);
  }
};

/// The exact sum of integer partial sums (the server's `sum(bigint)`, a
/// numeric of scale 0): a pushed-down integer sum in 32 bytes instead of a
/// `decimal_sum`'s 112. Not ok() beyond 38 digits (where a decimal_sum is
/// not either) or on a partial sum with a fraction.
struct int_sum {
  /// The sum.
  int128 s = 0;
  /// A partial sum did not fit, or had a fraction.
  bool overflow = false;

  /// Registered name.
  static std::string state_name() {
    return "flow-etl.int_sum";
  }

  /// Adds a partial sum.
  void add(const decimal& x) noexcept {
    if (x.scale() != 0)
      overflow = true;
    else
      add(x.unscaled());
  }

  /// Adds an integer.
  void add(int128 x) noexcept {
    if (__builtin_add_overflow(s, x, &s))
      overflow = true;
  }

  /// Adds another group's sum; false once it could not be added within 128
  /// bits. A total beyond 38 digits that later partial sums bring back is
  /// fine (ok() judges the final total, as the engine does).
  bool merge(const int_sum& other) noexcept {
    if (other.overflow)
      overflow = true;
    else
      add(other.s);
    return !overflow;
  }

  /// False when the sum does not fit 38 digits.
  bool ok() const noexcept {
    return !overflow && decimal::valid(s, 0);
  }

  /// The sum, or nothing when it does not fit.
  std::optional<decimal> sum() const noexcept {
    if (!ok())
      return std::nullopt;
    return decimal::make(s, 0);
  }

  /// Equality (tests).
  friend bool operator==(const int_sum& x, const int_sum& y) noexcept {
    return x.overflow == y.overflow && (x.overflow || x.s == y.s);
  }

  /// Inspection (the 128-bit sum as two 64-bit halves).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, int_sum& x) {
    int128_halves h{x.s};
    auto join = caf::meta::load_callback([&]() -> caf::error {
      x.s = h.join();
      return caf::error{};
    });
    return f(caf::meta::type_name("flow-etl.int_sum"), h.hi, h.lo, x.overflow,
             join);
  }
};

/// The exact sum of a numeric column's partial sums (the server's
/// `sum(numeric)`) at the largest scale among them, as the server's sum:
/// a pushed-down decimal sum in 32 bytes instead of a `decimal_sum`'s 112.
/// The total is exact whatever the order of the partial sums: a 128-bit
/// sum plus a count of its wraps, so that only the final total must fit 38
/// digits (ok()). A partial sum that cannot be brought to the common scale
/// within 128 bits, or a larger scale arriving while the total is beyond
/// 128 bits, fails it (sticky): the job fails rather than rounds.
struct dec_sum {
  /// The sum modulo 2^128, unscaled at `scale`.
  int128 s = 0;
  /// The sum is s + carry * 2^128.
  std::int64_t carry = 0;
  /// Digits after the point.
  std::int32_t scale = 0;
  /// A partial sum could not be added exactly.
  bool overflow = false;

  /// Registered name.
  static std::string state_name() {
    return "flow-etl.dec_sum";
  }

  /// Adds a partial sum.
  void add(const decimal& x) noexcept {
    add(x.unscaled(), x.scale());
  }

  /// Adds `u` * 10^-`sc`.
  void add(int128 u, int sc) noexcept {
    if (overflow)
      return;
    if (sc < 0 || sc > decimal::max_scale
        || (sc > scale && (carry != 0 || !rescale(s, sc - scale)))
        || (sc < scale && !rescale(u, scale - sc))) {
      overflow = true;
      return;
    }
    scale = std::max(scale, sc);
    if (__builtin_add_overflow(s, u, &s))
      carry += u > 0 ? 1 : -1;
  }

  /// Adds another group's sum. False only when that could not be done
  /// exactly: a total beyond 38 digits that later partial sums bring back
  /// is fine (ok() judges the final total).
  bool merge(const dec_sum& other) noexcept {
    if (other.overflow || (other.carry != 0 && other.scale < scale)) {
      overflow = true;
      return false;
    }
    add(other.s, other.scale);
    if (!overflow)
      carry += other.carry;
    return !overflow;
  }

  /// False when the sum does not fit 38 digits.
  bool ok() const noexcept {
    return !overflow && carry == 0 && decimal::valid(s, scale);
  }

  /// The sum, or nothing when it does not fit.
  std::optional<decimal> sum() const noexcept {
    if (!ok())
      return std::nullopt;
    return decimal::make(s, scale);
  }

  /// Equality (tests).
  friend bool operator==(const dec_sum& x, const dec_sum& y) noexcept {
    return x.overflow == y.overflow
           && (x.overflow
               || (x.s == y.s && x.carry == y.carry && x.scale == y.scale));
  }

  /// Inspection (the 128-bit sum as two 64-bit halves).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, dec_sum& x) {
    int128_halves h{x.s};
    auto join = caf::meta::load_callback([&]() -> caf::error {
      x.s = h.join();
      // A scale no decimal has is an overflow (ok() false), not a sum.
      if (x.scale < 0 || x.scale > decimal::max_scale)
        x.overflow = true;
      return caf::error{};
    });
    return f(caf::meta::type_name("flow-etl.dec_sum"), h.hi, h.lo, x.carry,
             x.scale, x.overflow, join);
  }

private:
  // v * 10^by, false when it does not fit 128 bits.
  static bool rescale(int128& v, int by) noexcept {
    for (int i = 0; i < by; ++i)
      if (__builtin_mul_overflow(v, 10, &v))
        return false;
    return true;
  }
};

/// The smallest (`Max` false) or largest decimal: a pushed-down numeric min
/// or max in 48 bytes instead of a `decimal_sum`'s 112 (which also summed
/// the values, and could overflow doing so). Of equal values (1.0, 1.00)
/// the one with the larger scale, as a decimal_sum keeps.
template <bool Max>
struct decimal_extreme {
  /// Values seen.
  std::uint64_t n = 0;
  /// The extreme (valid when n > 0).
  decimal v;

  /// Registered name.
  static std::string state_name() {
    return Max ? "flow-etl.decimal_max" : "flow-etl.decimal_min";
  }

  /// True when `a` replaces `b`.
  static bool better(const decimal& a, const decimal& b) noexcept {
    auto c = a.compare(b);
    return (Max ? c > 0 : c < 0) || (c == 0 && a.scale() > b.scale());
  }

  /// Adds one value.
  void add(const decimal& x) noexcept {
    if (n == 0 || better(x, v))
      v = x;
    ++n;
  }

  /// Adds another group's extreme.
  void merge(const decimal_extreme& other) noexcept {
    if (other.n == 0)
      return;
    if (n == 0 || better(other.v, v))
      v = other.v;
    n += other.n;
  }

  /// Equality (tests).
  friend bool operator==(const decimal_extreme& x,
                         const decimal_extreme& y) noexcept {
    return x.n == y.n && (x.n == 0 || x.v.identical(y.v));
  }

  /// Inspection.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 decimal_extreme& x) {
    return f(caf::meta::type_name(Max ? "flow-etl.decimal_max"
                                      : "flow-etl.decimal_min"),
             x.n, x.v);
  }
};

/// One "B:S" part of a push-down float sum field (agg_plan.hpp:
/// `float_sum_field`, `float_limbs_sql`), parsed.
struct float_sum_part {
  /// What the part holds.
  enum class kind_t {
    /// S * 2^exp2.
    finite,
    /// The NaN bucket: at least one NaN.
    nan,
    /// The infinities' bucket: S = +inf count + 2^40 * -inf count.
    inf,
  };
  /// The part's kind.
  kind_t kind = kind_t::finite;
  /// S is negative.
  bool negative = false;
  /// |S| in base 2^32, least significant digit first (no leading zeros).
  std::vector<std::uint32_t> digits;
  /// The weight of S's unit: 2^(B - 52).
  int exp2 = 0;
};

/// Parses one part of a float sum field; throws std::runtime_error naming
/// the part when it is not one.
float_sum_part parse_float_sum_part(std::string_view text);

/// Adds a push-down float sum field (agg_plan.hpp: `float_sum_field`,
/// `float_limbs_field`) to `s`: one or more "B:S" parts separated by ';',
/// each adding S * 2^(B - 52). Throws std::runtime_error when the text is
/// not one (the server's own output: never expected) or a partial sum is
/// not a multiple of 2^-1074 or lies beyond what the accumulator holds
/// (|sum| > 2^1037); then `s` is unchanged.
void add_float_sum_field(exact_fsum& s, std::string_view text);

/// The exact sum of a pushed-down float column, from the server's fields
/// (`add_field`): kept as one integer m * 2^e, m of 256 bits, while the
/// parts fit it, so a group costs 48 bytes instead of an `exact_fsum`'s 576
/// (10^6 groups pushed down held about 2 KiB of states each). The limbs of
/// one window fit for up to 2^33 rows a group (2^86 with three limbs or
/// fewer). What does not fit (the exponent buckets, NaN, the infinities,
/// larger sums) moves the sum to an `exact_fsum` on the heap. Either way
/// the value is exact until `value()` rounds it once.
class part_fsum {
public:
  /// An empty sum (0).
  part_fsum() noexcept = default;

  /// Deep copy.
  part_fsum(const part_fsum& other);

  /// Move.
  part_fsum(part_fsum&&) noexcept = default;

  /// Deep copy.
  part_fsum& operator=(const part_fsum& other);

  /// Move.
  part_fsum& operator=(part_fsum&&) noexcept = default;

  /// Registered name.
  static std::string state_name() {
    return "flow-etl.part_fsum";
  }

  /// Adds a float sum field ("B:S" or "B1:S1;B2:S2;..."); throws
  /// std::runtime_error naming the field when it is not one, or when a
  /// part is beyond the exact float sum's range (as `add_float_sum_field`),
  /// and then leaves the value unchanged.
  void add_field(std::string_view field);

  /// Adds another group's sum. Never fails: what does not fit the integer
  /// moves to the heap.
  void merge(const part_fsum& other);

  /// The exact sum as an `exact_fsum`.
  exact_fsum exact() const;

  /// The exact sum rounded once to the nearest double, ties to even (NaN
  /// and the infinities as `exact_fsum::value`, which it equals). The
  /// integer rounds without building an exact_fsum.
  double value() const;

  /// True while the sum is the 256-bit integer (tests).
  bool compact() const noexcept {
    return !full_;
  }

  /// Equal when the exact sums are.
  friend bool operator==(const part_fsum& x, const part_fsum& y) {
    return x.exact() == y.exact();
  }

  /// Inspection: the integer in a canonical form (m odd or zero, so that
  /// equal sums serialise to equal bytes), and the heap sum when there is
  /// one (a list of at most one).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, part_fsum& x) {
    // Saving writes a canonical copy: a state shared between readers is
    // never written to. Loading checks the range (the integer must convert
    // to an exact_fsum without a refusal).
    auto m = x.m_;
    auto e = x.e_;
    canonicalize(m, e);
    std::vector<exact_fsum> full;
    if (x.full_)
      full.push_back(*x.full_);
    auto load = caf::meta::load_callback([&]() -> caf::error {
      if (full.size() > 1 || !in_range(m, e))
        return make_error(errc::protocol_violation,
                          "part_fsum: not a push-down float sum");
      x.m_ = m;
      x.e_ = e;
      if (full.empty())
        x.full_.reset();
      else
        x.full_ = std::make_unique<exact_fsum>(std::move(full.front()));
      return caf::error{};
    });
    return f(caf::meta::type_name("flow-etl.part_fsum"), m, e, full, load);
  }

private:
  /// 256-bit two's complement, least significant word first.
  using words = std::array<std::uint64_t, 4>;

  /// Adds sign * digits * 2^exp2 to the integer m * 2^e; false (nothing
  /// changed) when it does not fit.
  static bool add_compact(words& m, std::int32_t& e, bool negative,
                          const std::vector<std::uint32_t>& digits,
                          int exp2) noexcept;

  /// Adds y * 2^ey to the integer m * 2^e; false (nothing changed) when it
  /// does not fit.
  static bool add_words(words& m, std::int32_t& e, const words& y,
                        int ey) noexcept;

  /// Moves the integer into the heap sum (created when absent).
  void spill();

  /// Adds m * 2^e to `s` (within its range: `in_range`).
  static void add_integer(exact_fsum& s, const words& m, int e) noexcept;

  /// True when m * 2^e is 0, or a multiple of 2^-1074 below 2^1037 in
  /// magnitude (what exact_fsum::add_scaled takes).
  static bool in_range(const words& m, int e) noexcept;

  /// Shifts m right while it is even (zero: e = 0).
  static void canonicalize(words& m, std::int32_t& e) noexcept;

  /// The integer m; the sum is m * 2^e (plus *full_).
  words m_{};
  /// The integer's exponent.
  std::int32_t e_ = 0;
  /// The rest, once something did not fit the integer (then m is 0).
  std::unique_ptr<exact_fsum> full_;
};

} // namespace flow::apps
