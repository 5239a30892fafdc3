#include "flow/stats.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#if defined(__SSE2__)
#  include <emmintrin.h>
#endif

namespace flow {

namespace {

/// True when `a` replaces `b` as the minimum: smaller, or -0.0 over +0.0.
bool below(double a, double b) noexcept {
  return a < b || (a == 0 && b == 0 && std::signbit(a) && !std::signbit(b));
}

/// True when `a` replaces `b` as the maximum: larger, or +0.0 over -0.0.
bool above(double a, double b) noexcept {
  return a > b || (a == 0 && b == 0 && !std::signbit(a) && std::signbit(b));
}

/// True when some x in xs[0..n) has exactly the bits of `z` (a signed zero).
bool contains_bits(const double* xs, std::size_t n, double z) noexcept {
  std::uint64_t target;
  std::memcpy(&target, &z, sizeof target);
  bool found = false;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t b;
    std::memcpy(&b, xs + i, sizeof b);
    found |= b == target;
  }
  return found;
}

} // namespace

void double_stats::add(double x) noexcept {
  moments_.add(x);
  if (below(x, min_))
    min_ = x;
  if (above(x, max_))
    max_ = x;
}

void double_stats::add(const double* xs, std::size_t n) noexcept {
  moments_.add(xs, n);
  // `x < lo ? x : lo` is exactly what minpd computes (NaN and equal zeros
  // keep lo), so NaN never enters lo or hi. GCC will not vectorise a
  // floating-point min reduction without -ffinite-math-only and
  // -fno-signed-zeros, so on x86-64 the lanes are written with SSE2 (the
  // baseline): the set of values is the same, hence the minimum (up to the
  // sign of zero, fixed below).
  auto inf = std::numeric_limits<double>::infinity();
  auto lo = inf;
  auto hi = -inf;
  std::size_t i = 0;
#if defined(__SSE2__)
  __m128d lo4[4];
  __m128d hi4[4];
  for (int j = 0; j < 4; ++j) {
    lo4[j] = _mm_set1_pd(inf);
    hi4[j] = _mm_set1_pd(-inf);
  }
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 4; ++j) {
      auto x = _mm_loadu_pd(xs + i + 2 * j);
      lo4[j] = _mm_min_pd(x, lo4[j]);
      hi4[j] = _mm_max_pd(x, hi4[j]);
    }
  for (int j = 0; j < 4; ++j) {
    double l[2];
    double h[2];
    _mm_storeu_pd(l, lo4[j]);
    _mm_storeu_pd(h, hi4[j]);
    for (int k = 0; k < 2; ++k) {
      lo = l[k] < lo ? l[k] : lo;
      hi = h[k] > hi ? h[k] : hi;
    }
  }
#endif
  for (; i < n; ++i) {
    lo = xs[i] < lo ? xs[i] : lo;
    hi = xs[i] > hi ? xs[i] : hi;
  }
  // Which zero came first decided the sign above; decide it by the data.
  if (lo == 0 && contains_bits(xs, n, -0.0))
    lo = -0.0;
  if (hi == 0 && contains_bits(xs, n, 0.0))
    hi = 0.0;
  if (below(lo, min_))
    min_ = lo;
  if (above(hi, max_))
    max_ = hi;
}

bool double_stats::merge(const double_stats& other) noexcept {
  moments_.merge(other.moments_);
  if (below(other.min_, min_))
    min_ = other.min_;
  if (above(other.max_, max_))
    max_ = other.max_;
  return true;
}

double double_stats::min() const noexcept {
  return ordered_count() == 0 ? std::numeric_limits<double>::quiet_NaN()
                              : min_;
}

double double_stats::max() const noexcept {
  return ordered_count() == 0 ? std::numeric_limits<double>::quiet_NaN()
                              : max_;
}

bool operator==(const double_stats& x, const double_stats& y) noexcept {
  std::uint64_t a[2];
  std::uint64_t b[2];
  std::memcpy(&a[0], &x.min_, 8);
  std::memcpy(&a[1], &x.max_, 8);
  std::memcpy(&b[0], &y.min_, 8);
  std::memcpy(&b[1], &y.max_, 8);
  return x.moments_ == y.moments_ && a[0] == b[0] && a[1] == b[1];
}

bool double_stats::consistent() const noexcept {
  const auto& s = moments_.sum();
  const auto& q = moments_.sum_of_squares();
  auto inf = std::numeric_limits<double>::infinity();
  // exact_moments adds each square as two doubles (p and its error e).
  if (q.count() != 2 * s.count() || std::isnan(min_) || std::isnan(max_))
    return false;
  if (ordered_count() == 0)
    return min_ == inf && max_ == -inf && !std::signbit(min_);
  if (min_ > max_)
    return false;
  // An infinity among the values must be the min or the max, and a finite
  // sum of finite values cannot have an infinite min or max.
  if ((s.neg_inf_count() > 0) != (min_ == -inf))
    return false;
  if ((s.pos_inf_count() > 0) != (max_ == inf))
    return false;
  return true;
}

} // namespace flow

// -- int_moments ---------------------------------------------------------------

namespace flow {

namespace {

using uint128 = unsigned __int128;
using limbs4 = std::array<std::uint64_t, 4>;

/// x += y (same number of limbs; the callers bound the result).
template <std::size_t N, std::size_t M>
void add_limbs(std::array<std::uint64_t, N>& x,
               const std::array<std::uint64_t, M>& y) noexcept {
  uint128 carry = 0;
  for (std::size_t i = 0; i < N; ++i) {
    auto t = static_cast<uint128>(x[i]) + (i < M ? y[i] : 0) + carry;
    x[i] = static_cast<std::uint64_t>(t);
    carry = t >> 64;
  }
}

/// The 256-bit product of two 128-bit numbers.
limbs4 square(uint128 a) noexcept {
  auto lo = static_cast<std::uint64_t>(a);
  auto hi = static_cast<std::uint64_t>(a >> 64);
  auto ll = static_cast<uint128>(lo) * lo;
  auto lh = static_cast<uint128>(lo) * hi;
  auto hh = static_cast<uint128>(hi) * hi;
  limbs4 r{static_cast<std::uint64_t>(ll), static_cast<std::uint64_t>(ll >> 64),
           static_cast<std::uint64_t>(hh), static_cast<std::uint64_t>(hh >> 64)};
  // + 2 lh 2^64
  for (int k = 0; k < 2; ++k)
    add_limbs(r, std::array<std::uint64_t, 4>{
                   0, static_cast<std::uint64_t>(lh),
                   static_cast<std::uint64_t>(lh >> 64), 0});
  return r;
}

/// x * m for a 192-bit x: 256 bits.
limbs4 times(const std::array<std::uint64_t, 3>& x, std::uint64_t m) noexcept {
  limbs4 r{};
  uint128 carry = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    auto t = static_cast<uint128>(x[i]) * m + carry;
    r[i] = static_cast<std::uint64_t>(t);
    carry = t >> 64;
  }
  r[3] = static_cast<std::uint64_t>(carry);
  return r;
}

/// x - y; the sign of the result (false when x < y).
bool subtract(limbs4& x, const limbs4& y) noexcept {
  std::uint64_t borrow = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    auto t = static_cast<uint128>(x[i]) - y[i] - borrow;
    x[i] = static_cast<std::uint64_t>(t);
    borrow = static_cast<std::uint64_t>(t >> 64) & 1;
  }
  return borrow == 0;
}

/// The value rounded to a long double from its leading 128 bits (the limbs
/// below weigh less than 2^-64 of it).
long double to_long_double(const limbs4& x) noexcept {
  int top = 3;
  while (top > 0 && x[static_cast<std::size_t>(top)] == 0)
    --top;
  if (top == 0)
    return static_cast<long double>(x[0]);
  auto lead = (static_cast<uint128>(x[static_cast<std::size_t>(top)]) << 64)
              | x[static_cast<std::size_t>(top - 1)];
  return std::ldexp(static_cast<long double>(lead), 64 * (top - 1));
}

} // namespace

void int_moments::add(std::int64_t x) noexcept {
  sum_ += x;
  auto sq = static_cast<uint128>(static_cast<int128>(x) * x);
  add_limbs(sumsq_, std::array<std::uint64_t, 2>{
                      static_cast<std::uint64_t>(sq),
                      static_cast<std::uint64_t>(sq >> 64)});
  ++count_;
}

void int_moments::add(const std::int64_t* xs, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i)
    add(xs[i]);
}

bool int_moments::merge(const int_moments& other) noexcept {
  if (count_ > std::numeric_limits<std::uint64_t>::max() - other.count_)
    return false;
  sum_ += other.sum_;
  add_limbs(sumsq_, other.sumsq_);
  count_ += other.count_;
  return true;
}

long double int_moments::numerator() const noexcept {
  auto s1 = sum_ < 0 ? uint128{0} - static_cast<uint128>(sum_)
                     : static_cast<uint128>(sum_);
  auto d = times(sumsq_, count_);
  if (!subtract(d, square(s1)))
    return -1;
  return to_long_double(d);
}

bool int_moments::consistent() const noexcept {
  if (count_ == 0)
    return sum_ == 0 && sumsq_ == std::array<std::uint64_t, 3>{};
  return numerator() >= 0;
}

double int_moments::mean() const noexcept {
  if (count_ == 0)
    return std::numeric_limits<double>::quiet_NaN();
  // |sum| < 2^127: the long double keeps its leading 64 bits.
  return static_cast<double>(static_cast<long double>(sum_)
                             / static_cast<long double>(count_));
}

double int_moments::variance_population() const noexcept {
  if (count_ == 0)
    return std::numeric_limits<double>::quiet_NaN();
  auto n = static_cast<long double>(count_);
  return static_cast<double>(numerator() / (n * n));
}

double int_moments::variance() const noexcept {
  if (count_ < 2)
    return std::numeric_limits<double>::quiet_NaN();
  auto n = static_cast<long double>(count_);
  return static_cast<double>(numerator() / (n * (n - 1)));
}

double int_moments::stddev_population() const noexcept {
  if (count_ == 0)
    return std::numeric_limits<double>::quiet_NaN();
  auto n = static_cast<long double>(count_);
  return static_cast<double>(std::sqrt(numerator()) / n);
}

double int_moments::stddev() const noexcept {
  if (count_ < 2)
    return std::numeric_limits<double>::quiet_NaN();
  auto n = static_cast<long double>(count_);
  return static_cast<double>(std::sqrt(numerator() / (n * (n - 1))));
}

} // namespace flow
