#include "flow/aggregate.hpp"

#include <algorithm>

namespace flow {

std::string to_string(int128 x) {
  if (x == 0)
    return "0";
  bool negative = x < 0;
  // Work on the magnitude as unsigned so that the minimum value is exact.
  auto mag = negative ? static_cast<unsigned __int128>(0)
                          - static_cast<unsigned __int128>(x)
                      : static_cast<unsigned __int128>(x);
  std::string digits;
  while (mag > 0) {
    digits.push_back(static_cast<char>('0' + static_cast<int>(mag % 10)));
    mag /= 10;
  }
  if (negative)
    digits.push_back('-');
  std::reverse(digits.begin(), digits.end());
  return digits;
}

bool aggregate::merge(const aggregate& other) noexcept {
  int128 new_sum;
  std::uint64_t new_count;
  if (__builtin_add_overflow(sum, other.sum, &new_sum)
      || __builtin_add_overflow(count, other.count, &new_count))
    return false;
  sum = new_sum;
  count = new_count;
  min = std::min(min, other.min);
  max = std::max(max, other.max);
  return true;
}

long double aggregate::mean() const noexcept {
  if (count == 0)
    return 0;
  return static_cast<long double>(sum) / static_cast<long double>(count);
}

int128 exact_sum(const std::int64_t* xs, std::size_t n) noexcept {
  // Each 32-bit half fits 2^32 times into a 64-bit lane, so summing blocks of
  // at most 2^32 elements this way cannot overflow; the loop vectorises.
  constexpr std::size_t block = std::size_t{1} << 32;
  int128 total = 0;
  while (n > 0) {
    auto m = std::min(n, block);
    std::int64_t hi = 0;
    std::uint64_t lo = 0;
    for (std::size_t i = 0; i < m; ++i) {
      hi += xs[i] >> 32;
      lo += static_cast<std::uint32_t>(xs[i]);
    }
    total += static_cast<int128>(hi) * (int128{1} << 32)
             + static_cast<int128>(lo);
    xs += m;
    n -= m;
  }
  return total;
}

aggregate aggregate::of(const std::int64_t* xs, std::size_t n) noexcept {
  aggregate result;
  if (n == 0)
    return result;
  result.sum = exact_sum(xs, n);
  result.count = n;
  auto lo = xs[0];
  auto hi = xs[0];
  for (std::size_t i = 1; i < n; ++i) {
    lo = std::min(lo, xs[i]);
    hi = std::max(hi, xs[i]);
  }
  result.min = lo;
  result.max = hi;
  return result;
}

} // namespace flow
