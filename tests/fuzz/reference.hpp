#pragma once

// Plain reference implementations the fuzz targets compare the parsers
// against, and the check that stops a run on a broken property. They are
// written differently from the code under test on purpose (strtoll instead of
// from_chars, code points instead of byte tables), so that one shared mistake
// does not hide in both.

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

/// Stops the run when a property does not hold. A trap rather than assert():
/// it survives NDEBUG, and libFuzzer saves the input that caused it.
#define FLOW_FUZZ_CHECK(cond)                                                  \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__,         \
                   __LINE__, #cond);                                           \
      __builtin_trap();                                                        \
    }                                                                          \
  } while (false)

namespace flow::fuzz {

/// The outcome of the reference integer parser.
enum class int_status { ok, not_integer, out_of_range };

/// A decimal int64 the way the documentation describes it: an optional sign,
/// then one or more ASCII digits, nothing else. Uses strtoll, whose range
/// check is independent of std::from_chars.
inline int_status reference_int64(std::string_view token, std::int64_t& out) {
  std::size_t i = 0;
  if (i < token.size() && (token[i] == '+' || token[i] == '-'))
    ++i;
  if (i == token.size())
    return int_status::not_integer;
  for (std::size_t k = i; k < token.size(); ++k)
    if (token[k] < '0' || token[k] > '9')
      return int_status::not_integer;
  // The shape check above excludes what strtoll would also accept (leading
  // blanks, "0x"), so what remains means the same to both.
  std::string copy{token};
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(copy.c_str(), &end, 10);
  if (errno == ERANGE)
    return int_status::out_of_range;
  if (end != copy.c_str() + copy.size())
    return int_status::not_integer;
  out = v;
  return int_status::ok;
}

/// A decimal integer with an optional all-zero fraction ("12", "-3.00",
/// "7."), as an exact 128-bit integer; nothing when it is not one or does not
/// fit. Works on the magnitude as unsigned, unlike the code under test.
inline std::optional<__int128> reference_int128(std::string_view text) {
  using u128 = unsigned __int128;
  std::size_t i = 0;
  bool neg = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-'))
    neg = text[i++] == '-';
  std::size_t first_digit = i;
  u128 mag = 0;
  const u128 limit = (u128{1} << 127) - (neg ? 0 : 1); // |min| or max
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    auto d = static_cast<unsigned>(text[i] - '0');
    if (mag > (limit - d) / 10)
      return std::nullopt;
    mag = mag * 10 + d;
  }
  if (i == first_digit)
    return std::nullopt;
  if (i < text.size() && text[i] == '.')
    for (++i; i < text.size(); ++i)
      if (text[i] != '0')
        return std::nullopt;
  if (i != text.size())
    return std::nullopt;
  if (!neg)
    return static_cast<__int128>(mag);
  // -(2^127) has no positive counterpart: build it from its two's complement.
  return static_cast<__int128>(u128{0} - mag);
}

/// Decimal text of a 128-bit integer.
inline std::string to_decimal(__int128 x) {
  using u128 = unsigned __int128;
  u128 mag = x < 0 ? u128{0} - static_cast<u128>(x) : static_cast<u128>(x);
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + mag % 10));
    mag /= 10;
  } while (mag != 0);
  return x < 0 ? "-" + digits : digits;
}

/// Valid UTF-8 by decoding code points: no stray or missing continuation
/// bytes, no overlong forms, no surrogates, nothing above U+10FFFF.
inline bool reference_utf8(std::string_view x) {
  std::size_t i = 0;
  while (i < x.size()) {
    auto b = static_cast<unsigned char>(x[i]);
    std::uint32_t cp = 0;
    std::size_t len = 0;
    std::uint32_t min = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xe0) == 0xc0) {
      cp = b & 0x1f;
      len = 2;
      min = 0x80;
    } else if ((b & 0xf0) == 0xe0) {
      cp = b & 0x0f;
      len = 3;
      min = 0x800;
    } else if ((b & 0xf8) == 0xf0) {
      cp = b & 0x07;
      len = 4;
      min = 0x10000;
    } else {
      return false;
    }
    if (x.size() - i < len)
      return false;
    for (std::size_t k = 1; k < len; ++k) {
      auto c = static_cast<unsigned char>(x[i + k]);
      if ((c & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

/// Text that prints as itself: valid UTF-8 without control characters (C0,
/// DEL, or C1: U+0080..U+009F, which terminals may obey). Otherwise false,
/// with `why` set to "is not valid UTF-8" or "contains a control character".
inline bool reference_printable(std::string_view x, std::string& why) {
  if (!reference_utf8(x)) {
    why = "is not valid UTF-8";
    return false;
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    auto b = static_cast<unsigned char>(x[i]);
    // In valid UTF-8, U+0080..U+009F are exactly C2 80..C2 9F.
    bool c1 = b == 0xc2 && i + 1 < x.size()
              && static_cast<unsigned char>(x[i + 1]) < 0xa0;
    if (b < 0x20 || b == 0x7f || c1) {
      why = "contains a control character";
      return false;
    }
  }
  return true;
}

/// The six ASCII white-space characters of the C locale's isspace.
inline bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
         || c == '\f';
}

/// The words of `x` (runs of non-white-space) joined by single spaces.
inline std::string join_words(std::string_view x) {
  std::string result;
  std::size_t i = 0;
  while (i < x.size()) {
    while (i < x.size() && is_ascii_space(x[i]))
      ++i;
    auto start = i;
    while (i < x.size() && !is_ascii_space(x[i]))
      ++i;
    if (i > start) {
      if (!result.empty())
        result += ' ';
      result.append(x.substr(start, i - start));
    }
  }
  return result;
}

/// A white-space separated token of text input and the line it is on.
struct text_token {
  std::string_view text;
  std::uint64_t line;
};

/// The lines of `x` (split at '\n', numbered from 1), each as its tokens.
inline std::vector<std::vector<text_token>> tokens_by_line(std::string_view x) {
  std::vector<std::vector<text_token>> lines(1);
  std::size_t i = 0;
  while (i < x.size()) {
    if (x[i] == '\n') {
      lines.emplace_back();
      ++i;
    } else if (is_ascii_space(x[i])) {
      ++i;
    } else {
      auto start = i;
      while (i < x.size() && !is_ascii_space(x[i]))
        ++i;
      lines.back().push_back({x.substr(start, i - start), lines.size()});
    }
  }
  return lines;
}

} // namespace flow::fuzz
