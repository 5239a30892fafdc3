#include "flow/decimal.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "flow/detail/digits.hpp"

namespace flow {

namespace {

using uint128 = unsigned __int128;

/// 10^0 .. 10^38; 10^38 < 2^127, so all fit a signed 128-bit integer.
constexpr std::array<uint128, 39> make_powers() {
  std::array<uint128, 39> result{};
  uint128 p = 1;
  for (auto& x : result) {
    x = p;
    p *= 10;
  }
  return result;
}

constexpr auto powers = make_powers();

uint128 pow10(int k) noexcept {
  return powers[static_cast<std::size_t>(k)];
}

uint128 magnitude(int128 x) noexcept {
  return x < 0 ? uint128{0} - static_cast<uint128>(x) : static_cast<uint128>(x);
}

/// Digits of `m` (0 for zero).
int digits_of(uint128 m) noexcept {
  // upper_bound counts the powers <= m: 10^0..10^(d-1) for a d-digit m.
  return static_cast<int>(std::upper_bound(powers.begin(), powers.end(), m)
                          - powers.begin());
}

/// True when `x` written at scale `s` (s >= its scale) needs at most 38
/// digits.
bool fits_at(const decimal& x, int s) noexcept {
  return x.digits() + (s - x.scale()) <= decimal::max_digits;
}

// -- 192-bit helpers for decimal_sum -------------------------------------------

using wide = std::array<std::uint64_t, 3>;

wide widen(int128 v) noexcept {
  auto u = static_cast<uint128>(v);
  return {static_cast<std::uint64_t>(u), static_cast<std::uint64_t>(u >> 64),
          v < 0 ? ~std::uint64_t{0} : std::uint64_t{0}};
}

void add_to(wide& x, const wide& y) noexcept {
  uint128 carry = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    auto t = static_cast<uint128>(x[i]) + y[i] + carry;
    x[i] = static_cast<std::uint64_t>(t);
    carry = t >> 64;
  }
}

bool is_negative(const wide& x) noexcept {
  return (x[2] >> 63) != 0;
}

wide negated(const wide& x) noexcept {
  wide r{~x[0], ~x[1], ~x[2]};
  add_to(r, wide{1, 0, 0});
  return r;
}

/// x * 10^k. The callers guarantee the product fits in 192 bits: every input
/// fits at the new scale, so |x 10^k| <= count * 10^38 < 2^191.
wide times_pow10(wide x, int k) noexcept {
  bool negative = is_negative(x);
  if (negative)
    x = negated(x);
  while (k > 0) {
    auto step = std::min(k, 19);
    auto m = static_cast<std::uint64_t>(pow10(step));
    uint128 carry = 0;
    for (auto& limb : x) {
      auto t = static_cast<uint128>(limb) * m + carry;
      limb = static_cast<std::uint64_t>(t);
      carry = t >> 64;
    }
    k -= step;
  }
  return negative ? negated(x) : x;
}

/// The value as a 128-bit integer when it has at most 38 digits.
std::optional<int128> narrow(const wide& x) noexcept {
  auto sign = (x[1] >> 63) != 0 ? ~std::uint64_t{0} : std::uint64_t{0};
  if (x[2] != sign)
    return std::nullopt;
  auto v = static_cast<int128>((static_cast<uint128>(x[1]) << 64) | x[0]);
  if (magnitude(v) >= pow10(38))
    return std::nullopt;
  return v;
}

/// True when `a` should be kept as the minimum over `b`: smaller, or equal
/// with a larger scale (a deterministic choice between 1.5 and 1.50).
bool better_min(const decimal& a, const decimal& b) noexcept {
  auto c = a.compare(b);
  return c < 0 || (c == 0 && a.scale() > b.scale());
}

/// As `better_min` for the maximum.
bool better_max(const decimal& a, const decimal& b) noexcept {
  auto c = a.compare(b);
  return c > 0 || (c == 0 && a.scale() > b.scale());
}

caf::error bad(const char* what) {
  return make_error(errc::bad_input, what);
}

} // namespace

// -- decimal ------------------------------------------------------------------

bool decimal::valid(int128 unscaled, int scale) noexcept {
  return scale >= 0 && scale <= max_scale && magnitude(unscaled) < pow10(38);
}

std::optional<decimal> decimal::make(int128 unscaled, int scale) noexcept {
  if (!valid(unscaled, scale))
    return std::nullopt;
  return decimal{unscaled, scale};
}

decimal decimal::of(std::int64_t x) noexcept {
  return decimal{x, 0};
}

int decimal::digits() const noexcept {
  return digits_of(magnitude(unscaled_));
}

std::optional<decimal> decimal::rescaled(int new_scale) const noexcept {
  if (new_scale < 0 || new_scale > max_scale)
    return std::nullopt;
  if (new_scale >= scale_) {
    if (unscaled_ != 0 && !fits_at(*this, new_scale))
      return std::nullopt;
    return decimal{unscaled_ * static_cast<int128>(pow10(new_scale - scale_)),
                   new_scale};
  }
  auto d = static_cast<int128>(pow10(scale_ - new_scale));
  if (unscaled_ % d != 0)
    return std::nullopt;
  return decimal{unscaled_ / d, new_scale};
}

int decimal::compare(const decimal& other) const noexcept {
  // The common case in a sum's min and max: no division needed.
  if (scale_ == other.scale_)
    return unscaled_ < other.unscaled_ ? -1
                                       : (unscaled_ > other.unscaled_ ? 1 : 0);
  auto sign = [](int128 x) { return x < 0 ? -1 : (x > 0 ? 1 : 0); };
  auto sa = sign(unscaled_);
  auto sb = sign(other.unscaled_);
  if (sa != sb)
    return sa < sb ? -1 : 1;
  if (sa == 0)
    return 0;
  // Integer parts first, then the fractions at the common scale: each step
  // stays below 10^38, where rescaling the whole numbers could overflow.
  auto ma = magnitude(unscaled_);
  auto mb = magnitude(other.unscaled_);
  auto ia = ma / pow10(scale_);
  auto ib = mb / pow10(other.scale_);
  int r;
  if (ia != ib) {
    r = ia < ib ? -1 : 1;
  } else {
    auto s = std::max<int>(scale_, other.scale_);
    auto fa = (ma % pow10(scale_)) * pow10(s - scale_);
    auto fb = (mb % pow10(other.scale_)) * pow10(s - other.scale_);
    r = fa < fb ? -1 : (fa > fb ? 1 : 0);
  }
  return sa > 0 ? r : -r;
}

caf::expected<decimal> parse_decimal(std::string_view text) {
  std::size_t i = 0;
  auto n = text.size();
  bool negative = false;
  if (i < n && (text[i] == '+' || text[i] == '-'))
    negative = text[i++] == '-';
  int128 u = 0;
  // 64-bit counters: no input is long enough to overflow them.
  long significant = 0; // digits after the leading zeros
  long fraction = 0;    // digits after the point
  bool any_digit = false;
  auto digits = [&](bool after_point) {
    for (; i < n && text[i] >= '0' && text[i] <= '9'; ++i) {
      any_digit = true;
      if (after_point)
        ++fraction;
      if (significant == 0 && text[i] == '0')
        continue;
      // Count every significant digit but keep only 38: more is an error
      // reported once the syntax is known to be right.
      if (++significant <= decimal::max_digits)
        u = u * 10 + (text[i] - '0');
    }
  };
  digits(false);
  if (i < n && text[i] == '.') {
    ++i;
    digits(true);
  }
  if (!any_digit)
    return bad("not a decimal number");
  long exponent = 0;
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool negative_exponent = false;
    if (i < n && (text[i] == '+' || text[i] == '-'))
      negative_exponent = text[i++] == '-';
    if (i == n || text[i] < '0' || text[i] > '9')
      return bad("not a decimal number");
    for (; i < n && text[i] >= '0' && text[i] <= '9'; ++i)
      // Saturate: any exponent beyond 10^6 is out of range anyway.
      exponent = std::min(exponent * 10 + (text[i] - '0'), 1000000L);
    if (negative_exponent)
      exponent = -exponent;
  }
  if (i != n)
    return bad("not a decimal number");
  if (significant > decimal::max_digits)
    return bad("more than 38 significant digits");
  long scale = fraction - exponent;
  if (scale < 0) {
    // "1.5e3" is 1500 at scale 0; zero stays zero however large the exponent.
    if (u != 0 && significant - scale > decimal::max_digits)
      return bad("more than 38 significant digits");
    if (u != 0)
      u *= static_cast<int128>(pow10(static_cast<int>(-scale)));
    scale = 0;
  }
  if (scale > decimal::max_scale)
    return bad("scale above 38");
  return *decimal::make(negative ? -u : u, static_cast<int>(scale));
}

void append_scaled(std::string& out, int128 unscaled, int scale) {
  if (scale < 0 || scale > decimal::max_scale)
    throw std::invalid_argument(
      "flow::append_scaled: scale " + std::to_string(scale) + " outside 0.."
      + std::to_string(decimal::max_scale));
  // Digits, leading zeros and the point put in place in one buffer, then
  // one append: exact results of millions of groups are printed through
  // here, into one reused string.
  char buf[96];
  auto* end = buf + sizeof(buf);
  auto mag = unscaled < 0 ? static_cast<uint128>(0)
                              - static_cast<uint128>(unscaled)
                          : static_cast<uint128>(unscaled);
  auto* p = detail::digits_before(end, mag);
  // At least one digit before the point.
  while (end - p < scale + 1)
    *--p = '0';
  if (scale > 0) {
    auto whole = static_cast<std::size_t>(end - p - scale);
    std::memmove(p - 1, p, whole);
    --p;
    p[whole] = '.';
  }
  if (unscaled < 0)
    *--p = '-';
  out.append(p, end);
}

void append_to(std::string& out, const decimal& x) {
  append_scaled(out, x.unscaled(), x.scale());
}

std::string to_string(const decimal& x) {
  std::string result;
  append_to(result, x);
  return result;
}

// -- decimal_sum ----------------------------------------------------------------

void decimal_sum::add(const decimal& x) noexcept {
  if (overflow_)
    return;
  auto s = std::max<int>(scale_, x.scale());
  // min and max bound every earlier input, so checking them checks all; they
  // fit at scale_ already, so only a larger scale needs the check.
  if (count_ == std::numeric_limits<std::uint64_t>::max()
      || magnitude(x.unscaled()) >= pow10(decimal::max_digits - (s - x.scale()))
      || (count_ > 0 && s > scale_
          && (!fits_at(min_, s) || !fits_at(max_, s)))) {
    overflow_ = true;
    return;
  }
  if (s > scale_) {
    sum_ = times_pow10(sum_, s - scale_);
    scale_ = static_cast<std::uint8_t>(s);
  }
  add_to(sum_, widen(x.unscaled()
                     * static_cast<int128>(pow10(s - x.scale()))));
  if (count_ == 0 || better_min(x, min_))
    min_ = x;
  if (count_ == 0 || better_max(x, max_))
    max_ = x;
  ++count_;
}

void decimal_sum::add(const decimal* xs, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i)
    add(xs[i]);
}

bool decimal_sum::merge(const decimal_sum& other) noexcept {
  if (overflow_ || other.overflow_)
    return false;
  if (other.count_ == 0)
    return true;
  if (count_ == 0) {
    *this = other;
    return true;
  }
  if (count_ > std::numeric_limits<std::uint64_t>::max() - other.count_)
    return false;
  auto s = std::max(scale_, other.scale_);
  if (!fits_at(min_, s) || !fits_at(max_, s) || !fits_at(other.min_, s)
      || !fits_at(other.max_, s))
    return false;
  auto total = times_pow10(sum_, s - scale_);
  add_to(total, times_pow10(other.sum_, s - other.scale_));
  sum_ = total;
  scale_ = s;
  count_ += other.count_;
  if (better_min(other.min_, min_))
    min_ = other.min_;
  if (better_max(other.max_, max_))
    max_ = other.max_;
  return true;
}

bool decimal_sum::ok() const noexcept {
  return !overflow_ && narrow(sum_).has_value();
}

std::optional<decimal> decimal_sum::sum() const noexcept {
  if (overflow_)
    return std::nullopt;
  if (auto v = narrow(sum_))
    return decimal::make(*v, scale_);
  return std::nullopt;
}

std::optional<decimal> decimal_sum::min() const noexcept {
  if (count_ == 0)
    return std::nullopt;
  return min_;
}

std::optional<decimal> decimal_sum::max() const noexcept {
  if (count_ == 0)
    return std::nullopt;
  return max_;
}

std::optional<decimal> decimal_sum::mean() const noexcept {
  auto total = sum();
  if (count_ == 0 || !total)
    return std::nullopt;
  auto m = magnitude(total->unscaled());
  // |mean| <= max |x| at the common scale, so the integer part has at most
  // 38 digits; the extra digits take what is left.
  auto extra = std::min(6, decimal::max_scale - scale_);
  for (;; --extra) {
    if (extra < 0)
      return std::nullopt; // unreachable: |mean| < 10^38 - 1/2 at extra 0
    auto q = m / count_;
    auto r = static_cast<std::uint64_t>(m % count_);
    if (digits_of(q) + extra > decimal::max_digits)
      continue;
    // Long division, one digit at a time: r < count < 2^64 keeps r * 10 in
    // 128 bits, where scaling the sum first would need 148.
    for (int i = 0; i < extra; ++i) {
      auto t = static_cast<uint128>(r) * 10;
      q = q * 10 + t / count_;
      r = static_cast<std::uint64_t>(t % count_);
    }
    auto twice = static_cast<uint128>(r) * 2;
    if (twice > count_ || (twice == count_ && (q & 1) != 0))
      ++q;
    if (q >= pow10(38))
      continue; // 99..9 rounded up to 10^38: one digit fewer
    auto v = static_cast<int128>(q);
    return decimal::make(total->unscaled() < 0 ? -v : v, scale_ + extra);
  }
}

bool decimal_sum::consistent() const noexcept {
  if (scale_ > decimal::max_scale)
    return false;
  if (count_ == 0)
    return sum_ == wide{} && scale_ == 0 && !overflow_
           && min_.identical(decimal{}) && max_.identical(decimal{});
  if (min_ > max_ || min_.scale() > scale_ || max_.scale() > scale_)
    return false;
  return overflow_ || (fits_at(min_, scale_) && fits_at(max_, scale_));
}

} // namespace flow
