#include "flow/parse.hpp"

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

std::string quote_token(std::string_view token) {
  constexpr std::size_t max_shown = 40;
  std::string result = "'";
  for (std::size_t i = 0; i < token.size() && i < max_shown; ++i) {
    auto c = static_cast<unsigned char>(token[i]);
    // Keep the message on one line and printable whatever the input holds.
    if (c < 0x20 || c == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      result += "\\x";
      result += hex[c >> 4];
      result += hex[c & 0xf];
    } else {
      result += static_cast<char>(c);
    }
  }
  result += "'";
  if (token.size() > max_shown)
    result += " (" + std::to_string(token.size()) + " bytes, shortened)";
  return result;
}

} // namespace flow
