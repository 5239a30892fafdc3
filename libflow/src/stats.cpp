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
