#include "flow/pg/row.hpp"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>

namespace flow::pg {

namespace {

std::string shown(std::string_view x) {
  constexpr std::size_t limit = 40;
  std::string result = "'";
  for (auto c : x.substr(0, limit)) {
    auto u = static_cast<unsigned char>(c);
    // A NUL would cut the message short (what() is a C string) and an escape
    // sequence would reach the terminal: show control bytes as \xNN.
    if (u < 0x20 || u == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      result += "\\x";
      result += hex[u >> 4];
      result += hex[u & 0xf];
    } else {
      result += c;
    }
  }
  if (x.size() > limit)
    result += "...";
  return result + "'";
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// Resolves COPY text escapes (\t, \n, \\, \NNN octal, \xHH, ...).
void unescape(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '\\' || i + 1 == in.size()) {
      out += c;
      continue;
    }
    char e = in[++i];
    switch (e) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x': {
        int v = 0;
        int digits = 0;
        while (digits < 2 && i + 1 < in.size()
               && hex_digit(in[i + 1]) >= 0) {
          v = v * 16 + hex_digit(in[++i]);
          ++digits;
        }
        out += digits > 0 ? static_cast<char>(v) : 'x';
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          int v = e - '0';
          for (int k = 0; k < 2 && i + 1 < in.size() && in[i + 1] >= '0'
                          && in[i + 1] <= '7';
               ++k)
            v = v * 8 + (in[++i] - '0');
          out += static_cast<char>(v);
        } else {
          out += e;
        }
    }
  }
}

} // namespace

std::optional<std::int64_t> parse_int64(std::string_view text) noexcept {
  if (text.empty())
    return std::nullopt;
  auto first = text.data();
  auto last = first + text.size();
  // Fast path, the common case: an optional '-' and at most 18 digits,
  // which cannot overflow (a seventh of the row path's time went to
  // from_chars). A leading '+' takes the general path below.
  if (*first != '+') {
    auto p = first;
    bool neg = *p == '-';
    if (neg)
      ++p;
    auto n = last - p;
    if (n > 0 && n <= 18) {
      std::uint64_t v = 0;
      for (; p != last; ++p) {
        auto d = static_cast<unsigned>(*p - '0');
        if (d > 9)
          return std::nullopt;
        v = v * 10 + d;
      }
      auto x = static_cast<std::int64_t>(v);
      return neg ? -x : x;
    }
  }
  if (*first == '+') {
    ++first;
    // from_chars reads a '-' of its own: "+-7" would pass as -7.
    if (first != last && *first == '-')
      return std::nullopt;
  }
  std::int64_t result = 0;
  auto [ptr, ec] = std::from_chars(first, last, result);
  if (ec != std::errc{} || ptr != last)
    return std::nullopt;
  return result;
}

std::optional<int128> parse_int128(std::string_view text) noexcept {
  std::size_t i = 0;
  bool neg = false;
  if (i < text.size() && (text[i] == '-' || text[i] == '+'))
    neg = text[i++] == '-';
  if (i == text.size())
    return std::nullopt;
  // Accumulate negatively so that the most negative value fits.
  constexpr int128 min = static_cast<int128>(
    static_cast<unsigned __int128>(1) << 127);
  int128 acc = 0;
  std::size_t digits = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++digits) {
    int d = text[i] - '0';
    if (acc < (min + d) / 10)
      return std::nullopt;
    acc = acc * 10 - d;
  }
  if (digits == 0)
    return std::nullopt;
  if (i < text.size() && text[i] == '.') {
    for (++i; i < text.size(); ++i)
      if (text[i] != '0')
        return std::nullopt;
  }
  if (i != text.size())
    return std::nullopt;
  if (neg)
    return acc;
  if (acc == min)
    return std::nullopt;
  return -acc;
}

void row_view::assign(std::string_view line) {
  line_ = line;
  fields_.clear();
  const char* data = line.data();
  std::size_t n = line.size();
  std::size_t start = 0;
  auto field_to = [&](std::size_t end) {
    if (end - start == 2 && data[start] == '\\' && data[start + 1] == 'N')
      fields_.emplace_back();
    else
      // An empty field keeps a non-null pointer: only NULL has none.
      fields_.emplace_back(data + start, end - start);
    start = end + 1;
  };
  std::size_t pos = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  // Eight bytes a step: the tabs of a word as the high bits of `tabs`, in
  // byte order (exact per byte: the additions cannot carry into the next
  // byte). The byte loop was a sixth of a clean job's generator.
  constexpr std::uint64_t low7 = 0x7f7f7f7f7f7f7f7full;
  constexpr std::uint64_t tab_bytes = 0x0909090909090909ull;
  for (; pos + 8 <= n; pos += 8) {
    std::uint64_t w;
    std::memcpy(&w, data + pos, 8);
    auto x = w ^ tab_bytes; // a tab is a zero byte
    auto tabs = ~(((x & low7) + low7) | x | low7);
    while (tabs != 0) {
      field_to(pos + static_cast<std::size_t>(__builtin_ctzll(tabs) / 8));
      tabs &= tabs - 1;
    }
  }
#endif
  for (; pos < n; ++pos)
    if (data[pos] == '\t')
      field_to(pos);
  field_to(n);
}

std::string_view row_view::raw(std::size_t i) const {
  if (i >= fields_.size())
    throw decode_error(i, "the row has only " + std::to_string(fields_.size())
                            + " fields");
  return fields_[i];
}

std::optional<std::string_view> row_view::opt_text(std::size_t i) const {
  auto x = raw(i);
  if (x.data() == nullptr)
    return std::nullopt;
  if (x.find('\\') == std::string_view::npos)
    return x;
  unescape(x, scratch_);
  return std::string_view{scratch_};
}

std::string_view row_view::text(std::size_t i) const {
  auto x = opt_text(i);
  if (!x)
    throw decode_error(i, "NULL where a value is required");
  return *x;
}

std::optional<std::int64_t> row_view::opt_int64(std::size_t i) const {
  auto x = raw(i);
  if (x.data() == nullptr)
    return std::nullopt;
  if (auto v = parse_int64(x))
    return v;
  if (parse_int128(x))
    throw decode_error(i, shown(x) + " does not fit a 64-bit integer");
  throw decode_error(i, shown(x) + " is not an integer");
}

std::int64_t row_view::int64(std::size_t i) const {
  auto x = opt_int64(i);
  if (!x)
    throw decode_error(i, "NULL where an integer is required");
  return *x;
}

std::optional<std::int32_t> row_view::opt_int32(std::size_t i) const {
  auto x = opt_int64(i);
  if (!x)
    return std::nullopt;
  if (*x < std::numeric_limits<std::int32_t>::min()
      || *x > std::numeric_limits<std::int32_t>::max())
    throw decode_error(i, shown(raw(i)) + " does not fit a 32-bit integer");
  return static_cast<std::int32_t>(*x);
}

std::int32_t row_view::int32(std::size_t i) const {
  auto x = opt_int32(i);
  if (!x)
    throw decode_error(i, "NULL where an integer is required");
  return *x;
}

int128 row_view::int128_value(std::size_t i) const {
  auto x = raw(i);
  if (x.data() == nullptr)
    throw decode_error(i, "NULL where an integer is required");
  if (auto v = parse_int128(x))
    return *v;
  throw decode_error(i, shown(x) + " is not an integer within 128 bits");
}

} // namespace flow::pg
