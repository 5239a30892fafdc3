#pragma once

// Decimal digits of 128-bit magnitudes, shared by libflow's printers of
// int128 and decimal values (flow::append_to, flow::append_scaled). Private
// to libflow and not installed.

#include <cstdint>
#include <limits>

namespace flow::detail {

/// Writes the decimal digits of `mag` so that they end at `end` and returns
/// where they begin: at most 39 digits, the caller's room. Two digits a
/// step, in 64 bits once the magnitude fits (128-bit divisions were a tenth
/// of printing a million groups).
inline char* digits_before(char* end, unsigned __int128 mag) noexcept {
  static constexpr char pairs[] = "00010203040506070809101112131415161718192021"
                                  "22232425262728293031323334353637383940414243"
                                  "44454647484950515253545556575859606162636465"
                                  "66676869707172737475767778798081828384858687"
                                  "8889909192939495969798" "99";
  auto* p = end;
  while (mag > std::numeric_limits<std::uint64_t>::max()) {
    auto d = static_cast<unsigned>(mag % 10);
    mag /= 10;
    *--p = static_cast<char>('0' + d);
  }
  auto m = static_cast<std::uint64_t>(mag);
  while (m >= 100) {
    auto d = static_cast<unsigned>(m % 100) * 2;
    m /= 100;
    *--p = pairs[d + 1];
    *--p = pairs[d];
  }
  if (m >= 10) {
    auto d = static_cast<unsigned>(m) * 2;
    *--p = pairs[d + 1];
    *--p = pairs[d];
  } else {
    *--p = static_cast<char>('0' + m);
  }
  return p;
}

} // namespace flow::detail
