#pragma once

/// @file
/// Doubles on the wire as their 64-bit patterns. CAF 0.17 serialises a
/// double through `detail::pack754`, which loops forever on an infinity,
/// turns -0.0 into +0.0 and mis-encodes NaN and subnormals; aggregator states
/// must round-trip bit for bit, so they send the bits instead.

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace flow::detail {

/// The bit pattern of `x`.
inline std::uint64_t to_bits(double x) noexcept {
  std::uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

/// The double with bit pattern `u`.
inline double from_bits(std::uint64_t u) noexcept {
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

/// How a `T` travels: itself, or its bits for a double.
template <class T>
struct wire {
  /// The serialised type.
  using type = T;

  /// The value to serialise.
  static const T& out(const T& x) noexcept {
    return x;
  }

  /// The value deserialised.
  static T in(T x) noexcept(std::is_nothrow_move_constructible_v<T>) {
    return x;
  }
};

/// Doubles travel as bits.
template <>
struct wire<double> {
  /// The serialised type.
  using type = std::uint64_t;

  /// The bits to serialise.
  static std::uint64_t out(double x) noexcept {
    return to_bits(x);
  }

  /// The double deserialised.
  static double in(std::uint64_t u) noexcept {
    return from_bits(u);
  }
};

} // namespace flow::detail
