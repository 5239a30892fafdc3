#pragma once

/// @file
/// Counter-based random integers: element i of a stream is a pure function of
/// (seed, i), so any range of a list can be produced independently and the
/// data are the same whatever the batch size or the number of workers.

#include <cstddef>
#include <cstdint>

namespace flow {

/// SplitMix64's finaliser: a bijective 64-bit mixer.
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// The seed of sub-stream `stream` of `seed` (for example list j of a set).
constexpr std::uint64_t derive_seed(std::uint64_t seed,
                                    std::uint64_t stream) noexcept {
  return mix64(seed ^ mix64(stream + 0x632be59bd9b4e019ULL));
}

/// Uniform integers in [lo, hi] (both inclusive, like Python's randint).
class uniform_ints {
public:
  /// Values in [lo, hi] from stream `seed`. Requires lo <= hi.
  constexpr uniform_ints(std::uint64_t seed, std::int64_t lo,
                         std::int64_t hi) noexcept
    : seed_(seed),
      lo_(lo),
      span_(static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo)
            + 1) {
    // nop
  }

  /// Element `i` of the stream: SplitMix64's i-th output mapped to the range
  /// by a multiply-shift (Lemire's method, without rejection).
  constexpr std::int64_t operator()(std::uint64_t i) const noexcept {
    // SplitMix64's i-th output, mapped to the range by a 128-bit multiply
    // (Lemire). span_ == 0 encodes the full 2^64 range.
    std::uint64_t r = mix64(seed_ + (i + 1) * 0x9e3779b97f4a7c15ULL);
    if (span_ == 0)
      return static_cast<std::int64_t>(r);
    std::uint64_t scaled = 0;
    if (span_ <= (std::uint64_t{1} << 32)) {
      // Ranges of up to 2^32 values (randint(0, 10000) and friends): the
      // high 32 bits times the span, a multiply that vectorises; the bias is
      // below span / 2^32.
      scaled = ((r >> 32) * span_) >> 32;
    } else {
      scaled = static_cast<std::uint64_t>(
        (static_cast<unsigned __int128>(r) * span_) >> 64);
    }
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo_)
                                     + scaled);
  }

  /// The stream's seed.
  constexpr std::uint64_t seed() const noexcept {
    return seed_;
  }

  /// The lower bound.
  constexpr std::int64_t lo() const noexcept {
    return lo_;
  }

  /// The number of values in the range (0 for the full 2^64).
  constexpr std::uint64_t span() const noexcept {
    return span_;
  }

  /// Writes elements [first, first + n) to `out`.
  void fill(std::int64_t* out, std::uint64_t first,
            std::size_t n) const noexcept {
    for (std::size_t k = 0; k < n; ++k)
      out[k] = (*this)(first + k);
  }

private:
  std::uint64_t seed_;
  std::int64_t lo_;
  std::uint64_t span_;
};

} // namespace flow
