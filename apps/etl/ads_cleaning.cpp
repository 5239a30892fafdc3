#include "ads_cleaning.hpp"

#include <cctype>
#include <cstdio>
#include <vector>

namespace flow::apps {

namespace {

bool is_space(char c) {
  // ' ', or one of '\t' '\n' '\v' '\f' '\r' (9 to 13).
  return c == ' ' || static_cast<unsigned char>(c - '\t') <= '\r' - '\t';
}

} // namespace

std::string_view collapse_spaces(std::string_view x, std::string& buf) {
  // Most values have nothing to collapse: no white space at either end and
  // no space but single ' '. One compare a byte finds those (every white
  // space byte is at most ' '; the rare other bytes there are checked).
  bool plain = true;
  for (std::size_t i = 0; i < x.size() && plain; ++i)
    if (static_cast<unsigned char>(x[i]) <= ' ' && is_space(x[i]))
      plain = x[i] == ' ' && i > 0 && i + 1 < x.size() && x[i - 1] != ' ';
  if (plain)
    return x;
  // Written through a pointer into room for the whole input (the result is
  // never longer: each space written stands for at least one read), then
  // cut: appending a character at a time was an eighth of the clean job's
  // instructions.
  buf.resize(x.size());
  char* begin = buf.data();
  char* out = begin;
  bool pending_space = false;
  for (auto c : x) {
    if (is_space(c)) {
      pending_space = out != begin;
      continue;
    }
    if (pending_space)
      *out++ = ' ';
    pending_space = false;
    *out++ = c;
  }
  buf.resize(static_cast<std::size_t>(out - begin));
  return buf;
}

namespace {

bool is_blank(const std::optional<std::string_view>& raw) {
  if (!raw)
    return true;
  for (auto c : *raw)
    if (!is_space(c))
      return false;
  return true;
}

// ASCII case, without the locale lookups of std::tolower/toupper (4% of the
// clean job's client time went there).
char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
}

char upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - ('a' - 'A')) : c;
}

/// True when `x` is `lower_word` in any ASCII case (`lower_word` in lower
/// case): compared in place, no lower-cased copy of `x`.
bool iequals(std::string_view x, std::string_view lower_word) {
  if (x.size() != lower_word.size())
    return false;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (lower(x[i]) != lower_word[i])
      return false;
  return true;
}

/// True when `x` starts with `lower_word` in any ASCII case.
bool istarts_with(std::string_view x, std::string_view lower_word) {
  return x.size() >= lower_word.size()
         && iequals(x.substr(0, lower_word.size()), lower_word);
}

/// True when `x` contains `lower_word` in any ASCII case.
bool icontains(std::string_view x, std::string_view lower_word) {
  for (std::size_t i = 0; i + lower_word.size() <= x.size(); ++i)
    if (iequals(x.substr(i, lower_word.size()), lower_word))
      return true;
  return false;
}

/// Appends `v` as exactly `n` decimal digits.
void put_digits(char*& out, int v, int n) {
  for (int i = n - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out += n;
}

bool is_leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/// Parses exactly `n` digits at `pos`.
bool digits(std::string_view x, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > x.size())
    return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(x[i])))
      return false;
    v = v * 10 + (x[i] - '0');
  }
  out = v;
  return true;
}

cleaned<posted_time> make_timestamp(int y, int mo, int d, int h, int mi,
                                    int s) {
  if (y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1
      || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59)
    return cleaned<posted_time>::fail("invalid date");
  return cleaned<posted_time>::ok(posted_time{y, mo, d, h, mi, s});
}

} // namespace

bool valid_utf8(std::string_view x) {
  auto p = reinterpret_cast<const unsigned char*>(x.data());
  std::size_t n = x.size();
  for (std::size_t i = 0; i < n;) {
    auto c = p[i];
    std::size_t len = c < 0x80                ? 1
                      : c >= 0xc2 && c <= 0xdf ? 2
                      : c >= 0xe0 && c <= 0xef ? 3
                      : c >= 0xf0 && c <= 0xf4 ? 4
                                               : 0;
    if (len == 0 || i + len > n)
      return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((p[i + k] & 0xc0) != 0x80)
        return false;
    if (len == 3 && ((c == 0xe0 && p[i + 1] < 0xa0)
                     || (c == 0xed && p[i + 1] >= 0xa0)))
      return false;
    if (len == 4 && ((c == 0xf0 && p[i + 1] < 0x90)
                     || (c == 0xf4 && p[i + 1] >= 0x90)))
      return false;
    i += len;
  }
  return true;
}

cleaned<std::string> normalize_city(const std::optional<std::string_view>& raw) {
  if (is_blank(raw))
    return cleaned<std::string>::fail("city missing");
  if (!valid_utf8(*raw))
    return cleaned<std::string>::fail("city is not valid UTF-8");
  std::string buf;
  std::string x{collapse_spaces(*raw, buf)};
  // No city is this long, and the summary's primary key must fit in a btree
  // index row (at most 2704 bytes): one such ad used to fail the whole job.
  if (x.size() > max_city_bytes)
    return cleaned<std::string>::fail("city too long");
  bool word_start = true;
  for (std::size_t i = 0; i < x.size(); ++i) {
    auto c = static_cast<unsigned char>(x[i]);
    if (c == ' ' || c == '-') {
      word_start = true;
      continue;
    }
    if (c < 0x80) {
      x[i] = word_start ? upper(static_cast<char>(c)) : lower(static_cast<char>(c));
    } else if (c == 0xc3 && i + 1 < x.size()) {
      // Latin-1 letters in UTF-8: C3 80..9E upper, C3 A0..BE lower (x+0x20),
      // except the signs C3 97 (×) and C3 B7 (÷).
      auto& next = reinterpret_cast<unsigned char&>(x[i + 1]);
      if (word_start && next >= 0xa0 && next <= 0xbe && next != 0xb7)
        next = static_cast<unsigned char>(next - 0x20);
      else if (!word_start && next >= 0x80 && next <= 0x9e && next != 0x97)
        next = static_cast<unsigned char>(next + 0x20);
      ++i;
    } else {
      // Other multi-byte letters are kept as they are; skip continuation
      // bytes so they do not count as word starts.
      while (i + 1 < x.size()
             && (static_cast<unsigned char>(x[i + 1]) & 0xc0) == 0x80)
        ++i;
    }
    word_start = false;
  }
  return cleaned<std::string>::ok(std::move(x));
}

cleaned<std::int64_t>
parse_price_cents(const std::optional<std::string_view>& raw) {
  using result = cleaned<std::int64_t>;
  if (is_blank(raw))
    return result::fail("price missing");
  std::string buf;
  auto x = collapse_spaces(*raw, buf);
  // Compared in place, in any case: no lower-cased copy.
  if (iequals(x, "free"))
    return result::ok(0);
  if (iequals(x, "call") || iequals(x, "call for price") || iequals(x, "ask"))
    return result::fail("price on request");
  std::string_view v{x};
  if (!v.empty() && v.front() == '-')
    return result::fail("negative price");
  if (!v.empty() && v.front() == '$') {
    v.remove_prefix(1);
    while (!v.empty() && v.front() == ' ')
      v.remove_prefix(1);
  }
  // A trailing currency code other than USD is another currency.
  if (auto sp = v.rfind(' '); sp != std::string_view::npos) {
    auto code = v.substr(sp + 1);
    bool alpha = !code.empty();
    for (auto c : code)
      alpha = alpha && std::isalpha(static_cast<unsigned char>(c));
    if (alpha) {
      std::string currency{code};
      for (auto& c : currency)
        c = upper(c);
      if (currency != "USD")
        return result::fail("price in " + currency);
      v = v.substr(0, sp);
    }
  }
  if (!v.empty() && v.front() == '-')
    return result::fail("negative price");
  // Whole part: digits, optionally grouped by commas in threes.
  auto dot = v.find('.');
  auto whole = v.substr(0, dot);
  auto frac = dot == std::string_view::npos ? std::string_view{}
                                            : v.substr(dot + 1);
  if (whole.empty())
    return result::fail("unparsable price");
  std::string plain;
  if (whole.find(',') != std::string_view::npos) {
    std::size_t group = 0;
    bool first = true;
    for (std::size_t i = 0; i <= whole.size(); ++i) {
      if (i == whole.size() || whole[i] == ',') {
        if (group == 0 || group > 3 || (!first && group != 3))
          return result::fail("misplaced thousands separator");
        first = false;
        group = 0;
        continue;
      }
      ++group;
      plain += whole[i];
    }
  } else {
    plain = std::string{whole};
  }
  for (auto c : plain)
    if (!std::isdigit(static_cast<unsigned char>(c)))
      return result::fail("unparsable price");
  if (dot != std::string_view::npos) {
    if (frac.empty() || frac.size() > 2)
      return result::fail("unparsable price");
    for (auto c : frac)
      if (!std::isdigit(static_cast<unsigned char>(c)))
        return result::fail("unparsable price");
  }
  std::int64_t cents = 0;
  for (auto c : plain)
    if (__builtin_mul_overflow(cents, 10, &cents)
        || __builtin_add_overflow(cents, c - '0', &cents))
      return result::fail("price out of range");
  int frac_cents = 0;
  if (!frac.empty())
    frac_cents = frac.size() == 1 ? (frac[0] - '0') * 10
                                  : (frac[0] - '0') * 10 + (frac[1] - '0');
  if (__builtin_mul_overflow(cents, 100, &cents)
      || __builtin_add_overflow(cents, frac_cents, &cents))
    return result::fail("price out of range");
  return result::ok(cents);
}

std::string posted_time::text() const {
  // "YYYY-MM-DD HH:MM:SS" by hand: snprintf was about 9% of the clean
  // job's client time.
  std::string result(19, ' ');
  auto* out = result.data();
  put_digits(out, year, 4);
  *out++ = '-';
  put_digits(out, month, 2);
  *out++ = '-';
  put_digits(out, day, 2);
  ++out;
  put_digits(out, hour, 2);
  *out++ = ':';
  put_digits(out, minute, 2);
  *out++ = ':';
  put_digits(out, second, 2);
  return result;
}

cleaned<std::string> parse_posted_at(const std::optional<std::string_view>& raw) {
  auto t = parse_posted_time(raw);
  if (!t.value)
    return cleaned<std::string>::fail(std::move(t.reason));
  return cleaned<std::string>::ok(t.value->text());
}

cleaned<posted_time>
parse_posted_time(const std::optional<std::string_view>& raw) {
  using result = cleaned<posted_time>;
  if (is_blank(raw))
    return result::fail("date missing");
  std::string buf;
  auto x = collapse_spaces(*raw, buf);
  if (iequals(x, "yesterday") || iequals(x, "today") || iequals(x, "just now")
      || icontains(x, " ago"))
    return result::fail("relative date");
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  // ISO: YYYY-MM-DD[ HH:MM[:SS]]
  if (x.size() >= 10 && x[4] == '-' && x[7] == '-' && digits(x, 0, 4, y)
      && digits(x, 5, 2, mo) && digits(x, 8, 2, d)) {
    if (x.size() == 10)
      return make_timestamp(y, mo, d, 0, 0, 0);
    if ((x.size() == 16 || x.size() == 19) && (x[10] == ' ' || x[10] == 'T')
        && digits(x, 11, 2, h) && x[13] == ':' && digits(x, 14, 2, mi)
        && (x.size() == 16 || (x[16] == ':' && digits(x, 17, 2, s))))
      return make_timestamp(y, mo, d, h, mi, s);
    return result::fail("unrecognised date");
  }
  // Day first: DD/MM/YYYY
  if (x.size() == 10 && x[2] == '/' && x[5] == '/' && digits(x, 0, 2, d)
      && digits(x, 3, 2, mo) && digits(x, 6, 4, y))
    return make_timestamp(y, mo, d, 0, 0, 0);
  // Month D, YYYY
  static constexpr std::string_view months[] = {
    "january", "february", "march",     "april",   "may",      "june",
    "july",    "august",   "september", "october", "november", "december"};
  for (int m = 0; m < 12; ++m) {
    // Compared in place: a string per month and ad was a twentieth of the
    // clean job's instructions.
    std::string_view name = months[m];
    if (x.size() <= name.size() || x[name.size()] != ' '
        || !istarts_with(x, name))
      continue;
    auto rest = x.substr(name.size() + 1);
    auto comma = rest.find(", ");
    if (comma == std::string_view::npos || comma == 0 || comma > 2)
      break;
    if (!digits(rest, 0, comma, d) || rest.size() != comma + 6
        || !digits(rest, comma + 2, 4, y))
      break;
    return make_timestamp(y, m + 1, d, 0, 0, 0);
  }
  return result::fail("unrecognised date");
}

std::optional<std::string> clean_title(const std::optional<std::string_view>& raw) {
  if (!raw)
    return std::nullopt;
  std::string buf;
  return std::string{collapse_spaces(*raw, buf)};
}

} // namespace flow::apps
