#include "flow/aggregate.hpp"

#include <algorithm>
#include <limits>

#include "flow/detail/digits.hpp"

namespace flow {

void append_to(std::string& out, int128 x) {
  // Into a buffer, then one append: exact sums of millions of groups are
  // printed through here.
  char buf[48];
  auto* end = buf + sizeof(buf);
  // The magnitude as unsigned, so that the minimum value is exact.
  auto mag = x < 0 ? static_cast<unsigned __int128>(0)
                       - static_cast<unsigned __int128>(x)
                   : static_cast<unsigned __int128>(x);
  auto* p = detail::digits_before(end, mag);
  if (x < 0)
    *--p = '-';
  out.append(p, end);
}

std::string to_string(int128 x) {
  std::string result;
  append_to(result, x);
  return result;
}

bool aggregate::merge(const aggregate& other) {
  int128 new_sum;
  std::uint64_t new_count;
  if (__builtin_add_overflow(sum, other.sum, &new_sum)
      || __builtin_add_overflow(count, other.count, &new_count))
    return false;
  if (!other.states.empty() && !states.merge(other.states))
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

namespace {

/// Folds `n` values into `total`, `lo` and `hi` in one pass. Blocks of 1024
/// values are summed in wrapping 64-bit lanes, which vectorise; a block is
/// exact when every value lies in [-2^53, 2^53) (then |block sum| < 2^63),
/// which one OR over the biased values checks. Any other block is summed
/// again in 128 bits. Compiled twice: AVX2 where the CPU has it, SSE2
/// otherwise.
__attribute__((target_clones("avx2", "default"))) void
fold(const std::int64_t* xs, std::size_t n, int128& total, std::int64_t& lo,
     std::int64_t& hi) noexcept {
  constexpr std::size_t block = 1024;
  constexpr std::uint64_t bias = std::uint64_t{1} << 53;
  auto min_v = lo;
  auto max_v = hi;
  for (std::size_t pos = 0; pos < n; pos += block) {
    auto m = std::min(block, n - pos);
    auto p = xs + pos;
    std::uint64_t sum = 0;
    std::uint64_t range = 0;
    for (std::size_t i = 0; i < m; ++i) {
      auto x = p[i];
      sum += static_cast<std::uint64_t>(x);
      range |= static_cast<std::uint64_t>(x) + bias;
      min_v = x < min_v ? x : min_v;
      max_v = x > max_v ? x : max_v;
    }
    if ((range >> 54) == 0) {
      total += static_cast<std::int64_t>(sum);
    } else {
      for (std::size_t i = 0; i < m; ++i)
        total += p[i];
    }
  }
  lo = min_v;
  hi = max_v;
}

} // namespace

int128 exact_sum(const std::int64_t* xs, std::size_t n) noexcept {
  int128 total = 0;
  std::int64_t lo = std::numeric_limits<std::int64_t>::max();
  std::int64_t hi = std::numeric_limits<std::int64_t>::min();
  fold(xs, n, total, lo, hi);
  return total;
}

aggregate aggregate::of(const std::int64_t* xs, std::size_t n) noexcept {
  aggregate result;
  if (n == 0)
    return result;
  fold(xs, n, result.sum, result.min, result.max);
  result.count = n;
  return result;
}

} // namespace flow
