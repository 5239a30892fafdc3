#include "etl/agg_values.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "flow/parse.hpp"

namespace flow::apps {

namespace {

/// Days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant's
/// days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  auto era = (y >= 0 ? y : y - 399) / 400;
  auto yoe = static_cast<unsigned>(y - era * 400);
  auto doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  auto doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

/// The inverse (H. Hinnant's civil_from_days).
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m,
                     unsigned& d) {
  z += 719468;
  auto era = (z >= 0 ? z : z - 146096) / 146097;
  auto doe = static_cast<unsigned>(z - era * 146097);
  auto yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  auto doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  auto mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool digits(std::string_view text, std::size_t pos, std::size_t n,
            std::int64_t& out) {
  if (pos + n > text.size())
    return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9')
      return false;
    out = out * 10 + (text[i] - '0');
  }
  return true;
}

bool leap(std::int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/// Parses "YYYY-MM-DD" (four or more year digits) at the start of `text`;
/// sets `used` to the characters read.
std::optional<std::int64_t> date_prefix(std::string_view text,
                                        std::size_t& used) {
  std::size_t ylen = 0;
  while (ylen < text.size() && text[ylen] >= '0' && text[ylen] <= '9')
    ++ylen;
  std::int64_t y = 0;
  std::int64_t m = 0;
  std::int64_t d = 0;
  if (ylen < 4 || ylen > 7 || !digits(text, 0, ylen, y)
      || text.size() < ylen + 6 || text[ylen] != '-'
      || !digits(text, ylen + 1, 2, m) || text[ylen + 3] != '-'
      || !digits(text, ylen + 4, 2, d))
    return std::nullopt;
  static constexpr int month_days[] = {31, 28, 31, 30, 31, 30,
                                       31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1
      || d > month_days[m - 1] + (m == 2 && leap(y) ? 1 : 0))
    return std::nullopt;
  used = ylen + 6;
  return days_from_civil(y, static_cast<unsigned>(m),
                         static_cast<unsigned>(d));
}

/// " BC" at the end of `text`: the year is 1 - y (astronomical numbering);
/// removes it and returns true.
bool strip_bc(std::string_view& text) {
  if (text.size() > 3 && text.substr(text.size() - 3) == " BC") {
    text.remove_suffix(3);
    return true;
  }
  return false;
}

/// Days of y-m-d BC given the days of the same digits AD.
std::optional<std::int64_t> bc_days(std::string_view text) {
  std::int64_t y = 0;
  std::size_t ylen = text.find('-');
  if (ylen == std::string_view::npos || !digits(text, 0, ylen, y))
    return std::nullopt;
  std::int64_t m = 0;
  std::int64_t d = 0;
  digits(text, ylen + 1, 2, m);
  digits(text, ylen + 4, 2, d);
  return days_from_civil(1 - y, static_cast<unsigned>(m),
                         static_cast<unsigned>(d));
}

void append_padded(std::string& out, std::int64_t x, int width) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%0*lld", width, static_cast<long long>(x));
  out += buf;
}

} // namespace

std::optional<std::int64_t> parse_iso_date(std::string_view text) {
  bool bc = strip_bc(text);
  std::size_t used = 0;
  auto days = date_prefix(text, used);
  if (!days || used != text.size())
    return std::nullopt;
  return bc ? bc_days(text) : days;
}

std::optional<std::int64_t> parse_iso_timestamp(std::string_view text) {
  bool bc = strip_bc(text);
  std::size_t used = 0;
  auto days = date_prefix(text, used);
  if (!days)
    return std::nullopt;
  if (bc)
    days = bc_days(text.substr(0, used));
  std::int64_t h = 0;
  std::int64_t mi = 0;
  std::int64_t s = 0;
  auto p = used;
  if (p >= text.size() || text[p] != ' ' || !digits(text, p + 1, 2, h)
      || text.size() < p + 9 || text[p + 3] != ':'
      || !digits(text, p + 4, 2, mi) || text[p + 6] != ':'
      || !digits(text, p + 7, 2, s) || h > 24 || mi > 59 || s > 60)
    return std::nullopt;
  p += 9;
  std::int64_t micros = 0;
  if (p < text.size() && text[p] == '.') {
    ++p;
    int n = 0;
    while (p < text.size() && text[p] >= '0' && text[p] <= '9') {
      if (n < 6)
        micros = micros * 10 + (text[p] - '0');
      ++n;
      ++p;
    }
    if (n == 0 || n > 6)
      return std::nullopt;
    for (; n < 6; ++n)
      micros *= 10;
  }
  std::int64_t offset = 0;
  if (p < text.size() && (text[p] == '+' || text[p] == '-')) {
    auto sign = text[p] == '-' ? -1 : 1;
    std::int64_t oh = 0;
    std::int64_t om = 0;
    std::int64_t os = 0;
    if (!digits(text, p + 1, 2, oh))
      return std::nullopt;
    p += 3;
    if (p < text.size() && text[p] == ':') {
      if (!digits(text, p + 1, 2, om))
        return std::nullopt;
      p += 3;
      if (p < text.size() && text[p] == ':') {
        if (!digits(text, p + 1, 2, os))
          return std::nullopt;
        p += 3;
      }
    }
    offset = sign * (oh * 3600 + om * 60 + os);
  }
  if (p != text.size())
    return std::nullopt;
  auto secs = *days * 86400 + h * 3600 + mi * 60 + s - offset;
  return secs * 1000000 + micros;
}

std::string format_date(std::int64_t days) {
  std::int64_t y = 0;
  unsigned m = 0;
  unsigned d = 0;
  civil_from_days(days, y, m, d);
  std::string out;
  bool bc = y <= 0;
  append_padded(out, bc ? 1 - y : y, 4);
  out += '-';
  append_padded(out, m, 2);
  out += '-';
  append_padded(out, d, 2);
  if (bc)
    out += " BC";
  return out;
}

std::string format_timestamp(std::int64_t micros, bool utc_offset) {
  auto days = micros >= 0 ? micros / 86400000000
                          : -((-micros + 86400000000 - 1) / 86400000000);
  auto rest = micros - days * 86400000000;
  std::int64_t y = 0;
  unsigned m = 0;
  unsigned d = 0;
  civil_from_days(days, y, m, d);
  bool bc = y <= 0;
  std::string out;
  append_padded(out, bc ? 1 - y : y, 4);
  out += '-';
  append_padded(out, m, 2);
  out += '-';
  append_padded(out, d, 2);
  out += ' ';
  append_padded(out, rest / 3600000000, 2);
  out += ':';
  append_padded(out, rest / 60000000 % 60, 2);
  out += ':';
  append_padded(out, rest / 1000000 % 60, 2);
  if (auto frac = rest % 1000000; frac != 0) {
    std::string f;
    append_padded(f, frac, 6);
    while (f.back() == '0')
      f.pop_back();
    out += '.';
    out += f;
  }
  if (utc_offset)
    out += "+00";
  if (bc)
    out += " BC";
  return out;
}

std::string sql_double(double x) {
  if (std::isnan(x))
    return "NaN";
  if (std::isinf(x))
    return x > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
  (void) ec; // 64 bytes hold any double's shortest form
  return std::string(buf, end);
}

std::string decode_cell(col_class cls, std::string_view text, cell& out,
                        bool numeric_double) {
  out.null = false;
  switch (cls) {
    case col_class::integer: {
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(),
                                     out.i);
      if (ec != std::errc{} || p != text.data() + text.size())
        return "is not an integer";
      return {};
    }
    case col_class::numeric: {
      auto x = parse_decimal(text);
      if (!x)
        return "numeric value " + std::string{text}
               + " does not fit (more than 38 significant digits, or "
                 "NaN/Infinity)";
      out.n = *x;
      if (numeric_double) {
        std::string why;
        auto d = parse_double(text, why);
        out.d = d ? *d : std::strtod(std::string{text}.c_str(), nullptr);
      }
      return {};
    }
    case col_class::floating: {
      if (text == "Infinity") {
        out.d = HUGE_VAL;
      } else if (text == "-Infinity") {
        out.d = -HUGE_VAL;
      } else if (text == "NaN") {
        out.d = std::nan("");
      } else {
        std::string why;
        auto d = parse_double(text, why);
        if (!d)
          return "floating-point value " + std::string{text} + " " + why;
        out.d = *d;
      }
      return {};
    }
    case col_class::boolean:
      if (text == "t")
        out.i = 1;
      else if (text == "f")
        out.i = 0;
      else
        return "is not a boolean";
      return {};
    case col_class::date: {
      auto d = parse_iso_date(text);
      if (!d)
        return "date " + std::string{text}
               + " is not an ISO date (infinite dates are not supported)";
      out.i = *d;
      return {};
    }
    case col_class::timestamp:
    case col_class::timestamptz: {
      auto t = parse_iso_timestamp(text);
      if (!t)
        return "timestamp " + std::string{text}
               + " is not an ISO timestamp (infinite timestamps are not "
                 "supported)";
      out.i = *t;
      return {};
    }
    case col_class::text:
    case col_class::other:
      out.s.assign(text.data(), text.size());
      return {};
  }
  return {};
}

void add_key_part(key::builder& b, col_class cls, const cell& c) {
  if (c.null) {
    b.add_null();
    return;
  }
  switch (cls) {
    case col_class::integer:
    case col_class::date:
    case col_class::timestamp:
    case col_class::timestamptz:
      b.add_int(c.i);
      return;
    case col_class::boolean:
      b.add_bool(c.i != 0);
      return;
    case col_class::text:
    case col_class::other:
      b.add_string(c.s);
      return;
    default:
      b.add_string(key_part_of(cls, c).as_string());
  }
}

key_part key_part_of(col_class cls, const cell& c) {
  if (c.null)
    return key_part{};
  switch (cls) {
    case col_class::integer:
    case col_class::date:
    case col_class::timestamp:
    case col_class::timestamptz:
      return key_part{c.i};
    case col_class::boolean:
      return key_part{c.i != 0};
    case col_class::numeric: {
      // Equal values group together whatever their scale (1.5 = 1.50), as
      // in SQL: the canonical text without trailing zeros.
      auto x = c.n;
      for (int s = x.scale(); s > 0; --s) {
        auto y = x.rescaled(s - 1);
        if (!y)
          break;
        x = *y;
      }
      return key_part{to_string(x)};
    }
    case col_class::floating:
      // -0 = 0 and every NaN is one group, as in PostgreSQL.
      if (std::isnan(c.d))
        return key_part{std::string{"NaN"}};
      return key_part{sql_double(c.d == 0 ? 0.0 : c.d)};
    case col_class::text:
    case col_class::other:
      return key_part{c.s};
  }
  return key_part{};
}

} // namespace flow::apps
