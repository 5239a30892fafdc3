#include "flow/parse.hpp"

#include <algorithm>
#include <charconv>

namespace flow {

std::optional<std::int64_t> parse_int64(std::string_view token,
                                        std::string& why) {
  auto first = token.data();
  auto last = first + token.size();
  if (first != last && *first == '+') {
    ++first;
    // "+-5" and "+" are not integers.
    if (first == last || *first == '-') {
      why = "is not an integer";
      return std::nullopt;
    }
  }
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec == std::errc::result_out_of_range) {
    // from_chars reports the range error only for a token made of digits.
    if (ptr == last) {
      why = "is outside the int64 range";
      return std::nullopt;
    }
  }
  if (ec != std::errc{} || ptr != last || first == last) {
    why = "is not an integer";
    return std::nullopt;
  }
  return value;
}

std::optional<double> parse_double(std::string_view token, std::string& why) {
  auto first = token.data();
  auto last = first + token.size();
  if (first != last && *first == '+') {
    ++first;
    if (first == last || *first == '-') {
      why = "is not a number";
      return std::nullopt;
    }
  }
  // Only the spellings the documentation promises: no NaN payloads.
  std::string_view rest{first, static_cast<std::size_t>(last - first)};
  if (!rest.empty() && rest.front() == '-')
    rest.remove_prefix(1);
  if (rest.size() > 3 && (rest[0] == 'n' || rest[0] == 'N')) {
    why = "is not a number";
    return std::nullopt;
  }
  double value = 0;
  auto [ptr, ec] = std::from_chars(first, last, value,
                                   std::chars_format::general);
  if (ec == std::errc::result_out_of_range && ptr == last) {
    // Rounding 1e400 to inf or 1e-400 to 0 would change the data.
    why = "is outside the double range";
    return std::nullopt;
  }
  if (ec != std::errc{} || ptr != last || first == last) {
    why = "is not a number";
    return std::nullopt;
  }
  return value;
}

namespace {

/// Length of the well-formed UTF-8 sequence at `i` (1 to 4), or 0 when the
/// bytes there are not one: stray continuation bytes, overlong forms,
/// surrogates, values above U+10FFFF and truncated sequences.
std::size_t utf8_length(std::string_view x, std::size_t i) {
  auto p = reinterpret_cast<const unsigned char*>(x.data());
  auto c = p[i];
  std::size_t len = c < 0x80                ? 1
                    : c >= 0xc2 && c <= 0xdf ? 2
                    : c >= 0xe0 && c <= 0xef ? 3
                    : c >= 0xf0 && c <= 0xf4 ? 4
                                             : 0;
  if (len == 0 || i + len > x.size())
    return 0;
  for (std::size_t k = 1; k < len; ++k)
    if ((p[i + k] & 0xc0) != 0x80)
      return 0;
  if (len < 3)
    return len;
  // Overlong three- and four-byte forms, surrogates, beyond U+10FFFF.
  auto c1 = p[i + 1];
  if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0)
      || (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90))
    return 0;
  return len;
}

/// True for the sequence of `len` bytes at `i` that encodes a control
/// character: C0, DEL or C1 (U+0080..U+009F, which terminals may obey).
bool is_control(std::string_view x, std::size_t i, std::size_t len) {
  auto c = static_cast<unsigned char>(x[i]);
  if (len == 1)
    return c < 0x20 || c == 0x7f;
  return len == 2 && c == 0xc2 && static_cast<unsigned char>(x[i + 1]) < 0xa0;
}

} // namespace

std::string quote_token(std::string_view token) {
  constexpr std::size_t max_shown = 40;
  static constexpr char hex[] = "0123456789abcdef";
  std::string result = "'";
  std::size_t i = 0;
  while (i < token.size()) {
    auto len = utf8_length(token, i);
    if (len > 0 && !is_control(token, i, len)) {
      // Never cut a character in half.
      if (i + len > max_shown)
        break;
      result.append(token, i, len);
      i += len;
      continue;
    }
    if (i >= max_shown)
      break;
    // Keep the message printable and on one line whatever the input holds:
    // escape the invalid byte, or each byte of a control character.
    for (std::size_t k = 0; k < std::max<std::size_t>(len, 1); ++k) {
      auto c = static_cast<unsigned char>(token[i + k]);
      result += "\\x";
      result += hex[c >> 4];
      result += hex[c & 0xf];
    }
    i += std::max<std::size_t>(len, 1);
  }
  result += "'";
  if (token.size() > max_shown)
    result += " (" + std::to_string(token.size()) + " bytes, shortened)";
  return result;
}

bool check_printable(std::string_view text, std::string& why) {
  bool control = false;
  for (std::size_t i = 0; i < text.size();) {
    auto len = utf8_length(text, i);
    if (len == 0) {
      why = "is not valid UTF-8";
      return false;
    }
    control = control || is_control(text, i, len);
    i += len;
  }
  if (control) {
    why = "contains a control character";
    return false;
  }
  return true;
}

} // namespace flow
