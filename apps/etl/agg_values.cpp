#include "etl/agg_values.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

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
  // As printf's "%0*lld" (the sign counts in the width), without printf:
  // three of these per date of a million printed groups.
  char buf[24];
  auto mag = x < 0 ? 0 - static_cast<std::uint64_t>(x)
                   : static_cast<std::uint64_t>(x);
  auto len = static_cast<int>(std::to_chars(buf, buf + sizeof(buf), mag).ptr
                              - buf);
  if (x < 0) {
    out += '-';
    --width;
  }
  if (len < width)
    out.append(static_cast<std::size_t>(width - len), '0');
  out.append(buf, static_cast<std::size_t>(len));
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

// -- push-down float sums -----------------------------------------------------

float_sum_part parse_float_sum_part(std::string_view text) {
  auto bad = [&](const char* why) {
    return std::runtime_error("push-down float sum field '"
                              + std::string{text} + "': " + why);
  };
  auto colon = text.find(':');
  if (colon == std::string_view::npos)
    throw bad("no ':'");
  auto bt = text.substr(0, colon);
  auto digits = text.substr(colon + 1);
  float_sum_part out;
  out.negative = !digits.empty() && digits.front() == '-';
  if (out.negative)
    digits.remove_prefix(1);
  if (digits.empty())
    throw bad("no sum");
  for (auto ch : digits)
    if (ch < '0' || ch > '9')
      throw bad("the sum is not an integer");
  // The decimal magnitude in base 2^32, least significant digit first: nine
  // decimal digits a pass over the limbs (10^9 < 2^32), not one (a digit a
  // pass, and the vector's growth, were a third of decoding a pushed-down
  // row). Leading zeros add no limb.
  auto& m = out.digits;
  m.reserve(digits.size() / 9 + 1);
  auto len = digits.size() % 9 == 0 ? std::size_t{9} : digits.size() % 9;
  for (std::size_t pos = 0; pos < digits.size(); pos += len, len = 9) {
    std::uint64_t chunk = 0;
    std::uint64_t scale = 1;
    for (std::size_t i = pos; i < pos + len; ++i) {
      chunk = chunk * 10 + static_cast<std::uint64_t>(digits[i] - '0');
      scale *= 10;
    }
    // d * 10^9 + carry < 2^62: no overflow; the carry stays below 2^32.
    std::uint64_t carry = chunk;
    for (auto& d : m) {
      auto v = std::uint64_t{d} * scale + carry;
      d = static_cast<std::uint32_t>(v);
      carry = v >> 32;
    }
    if (carry != 0)
      m.push_back(static_cast<std::uint32_t>(carry));
  }
  if (bt == "NaN") {
    out.kind = float_sum_part::kind_t::nan;
    return out;
  }
  if (bt == "Infinity") {
    out.kind = float_sum_part::kind_t::inf;
    return out;
  }
  int b = 0;
  auto [bp, bec] = std::from_chars(bt.data(), bt.data() + bt.size(), b);
  if (bec != std::errc{} || bp != bt.data() + bt.size())
    throw bad("the bucket is not an integer");
  out.exp2 = b - 52;
  return out;
}

namespace {

/// Calls `fn` with each ';'-separated part of a float sum field, in order,
/// while it returns true.
template <class F>
void for_each_part(std::string_view field, F fn) {
  for (std::size_t from = 0;;) {
    auto semi = field.find(';', from);
    if (!fn(field.substr(from, semi == std::string_view::npos
                                 ? std::string_view::npos
                                 : semi - from)))
      return;
    if (semi == std::string_view::npos)
      return;
    from = semi + 1;
  }
}

/// Adds one "B:S" part of a float sum field to `s`.
void add_float_sum_part(exact_fsum& s, std::string_view text) {
  auto part = parse_float_sum_part(text);
  auto& m = part.digits;
  // The non-finite buckets: one value of each kind seen is enough for
  // value(); how many there were is count(col)'s, in its own slot.
  if (part.kind == float_sum_part::kind_t::nan) {
    s.add(std::numeric_limits<double>::quiet_NaN());
    return;
  }
  if (part.kind == float_sum_part::kind_t::inf) {
    // Their sum: +inf count + 2^40 * -inf count.
    std::uint64_t pos = 0;
    std::uint64_t neg = 0;
    if (!m.empty())
      pos = m[0];
    if (m.size() > 1) {
      pos |= std::uint64_t{m[1] & 0xFFu} << 32;
      neg = m[1] >> 8;
    }
    if (m.size() > 2)
      neg |= std::uint64_t{m[2]} << 24;
    if (pos != 0)
      s.add(std::numeric_limits<double>::infinity());
    if (neg != 0 || m.size() > 3)
      s.add(-std::numeric_limits<double>::infinity());
    return;
  }
  if (!s.add_scaled(part.negative, m.data(), m.size(), part.exp2, 0))
    throw std::runtime_error("push-down float sum field '" + std::string{text}
                             + "': not a multiple of 2^-1074, or beyond the "
                               "exact float sum's range (2^1037)");
}

} // namespace

void add_float_sum_field(exact_fsum& total, std::string_view all) {
  if (all.find(';') == std::string_view::npos) {
    // One part (a bucket): add_scaled changes nothing when it refuses.
    add_float_sum_part(total, all);
    return;
  }
  // Several parts (limbs) are added to a copy, so that a refused part
  // leaves `total` unchanged.
  exact_fsum s = total;
  for_each_part(all, [&](std::string_view part) {
    add_float_sum_part(s, part);
    return true;
  });
  total = std::move(s);
}

namespace {

using words = std::array<std::uint64_t, 4>;

bool is_negative(const words& x) noexcept {
  return (x[3] >> 63) != 0;
}

bool is_zero(const words& x) noexcept {
  return (x[0] | x[1] | x[2] | x[3]) == 0;
}

void negate(words& x) noexcept {
  unsigned carry = 1;
  for (auto& w : x) {
    w = ~w + carry;
    carry = carry != 0 && w == 0;
  }
}

/// x >> s (0 <= s < 256), arithmetic: the sign fills the top.
words shifted_right(const words& x, int s) noexcept {
  auto fill = is_negative(x) ? ~std::uint64_t{0} : 0;
  auto at = [&](int j) {
    return j < 4 ? x[static_cast<std::size_t>(j)] : fill;
  };
  words r{};
  int wq = s / 64;
  int bq = s % 64;
  for (int i = 0; i < 4; ++i) {
    auto v = at(i + wq) >> bq;
    if (bq != 0)
      v |= at(i + wq + 1) << (64 - bq);
    r[static_cast<std::size_t>(i)] = v;
  }
  return r;
}

/// x << s (0 <= s < 256), or nothing when a bit (or the sign) would be lost.
std::optional<words> shifted_left(const words& x, int s) noexcept {
  if (s == 0)
    return x;
  words y{};
  int wq = s / 64;
  int bq = s % 64;
  for (int i = 3; i >= wq; --i) {
    auto v = x[static_cast<std::size_t>(i - wq)] << bq;
    if (bq != 0 && i - wq - 1 >= 0)
      v |= x[static_cast<std::size_t>(i - wq - 1)] >> (64 - bq);
    y[static_cast<std::size_t>(i)] = v;
  }
  // Shifted back (arithmetically), y must be x again.
  if (shifted_right(y, s) != x)
    return std::nullopt;
  return y;
}

/// x + y, or nothing on overflow.
std::optional<words> sum_of(const words& x, const words& y) noexcept {
  words r{};
  unsigned carry = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    auto s = x[i] + y[i];
    unsigned c1 = s < x[i];
    auto t = s + carry;
    unsigned c2 = t < s;
    r[i] = t;
    carry = c1 | c2;
  }
  if (is_negative(x) == is_negative(y) && is_negative(r) != is_negative(x))
    return std::nullopt;
  return r;
}

/// The number of significant bits of |x| (0 for 0).
int magnitude_bits(words x) noexcept {
  if (is_negative(x))
    negate(x);
  for (int i = 3; i >= 0; --i)
    if (x[static_cast<std::size_t>(i)] != 0)
      return 64 * i + 64
             - __builtin_clzll(x[static_cast<std::size_t>(i)]);
  return 0;
}

} // namespace

part_fsum::part_fsum(const part_fsum& other)
  : m_(other.m_), e_(other.e_),
    full_(other.full_ ? std::make_unique<exact_fsum>(*other.full_) : nullptr) {
}

part_fsum& part_fsum::operator=(const part_fsum& other) {
  if (this != &other) {
    m_ = other.m_;
    e_ = other.e_;
    full_ = other.full_ ? std::make_unique<exact_fsum>(*other.full_) : nullptr;
  }
  return *this;
}

bool part_fsum::add_words(words& m, std::int32_t& e, const words& y,
                          int ey) noexcept {
  if (is_zero(y))
    return true;
  if (is_zero(m)) {
    m = y;
    e = ey;
    return true;
  }
  // Both at the lower exponent.
  auto lo = std::min<int>(e, ey);
  auto dx = static_cast<long>(e) - lo;
  auto dy = static_cast<long>(ey) - lo;
  if (dx > 255 || dy > 255)
    return false;
  auto x = shifted_left(m, static_cast<int>(dx));
  auto z = shifted_left(y, static_cast<int>(dy));
  if (!x || !z)
    return false;
  auto r = sum_of(*x, *z);
  if (!r)
    return false;
  // exact_fsum's range: nothing at or beyond 2^1037 in magnitude, so that
  // the integer always converts (value(), inspect) without a refusal.
  if (!in_range(*r, lo))
    return false;
  m = *r;
  e = lo;
  return true;
}

bool part_fsum::add_compact(words& m, std::int32_t& e, bool negative,
                            const std::vector<std::uint32_t>& digits,
                            int exp2) noexcept {
  if (digits.size() > 7 || exp2 < -1074)
    return false;
  words y{};
  for (std::size_t i = 0; i < digits.size(); ++i)
    y[i / 2] |= std::uint64_t{digits[i]} << (32 * (i % 2));
  // A magnitude of 224 bits at most: its sign bit is clear.
  if (negative)
    negate(y);
  return add_words(m, e, y, exp2);
}

void part_fsum::add_integer(exact_fsum& s, const words& m, int e) noexcept {
  if (is_zero(m))
    return;
  auto x = m;
  bool negative = is_negative(x);
  if (negative)
    negate(x);
  std::uint32_t digits[8];
  for (std::size_t i = 0; i < 8; ++i)
    digits[i] = static_cast<std::uint32_t>(x[i / 2] >> (32 * (i % 2)));
  // add_words and loading keep the integer within exact_fsum's range.
  (void) s.add_scaled(negative, digits, 8, e, 0);
}

void part_fsum::spill() {
  if (!full_)
    full_ = std::make_unique<exact_fsum>();
  add_integer(*full_, m_, e_);
  m_ = words{};
  e_ = 0;
}

void part_fsum::add_field(std::string_view field) {
  if (!full_) {
    // Every part into a copy of the integer, or none: a part that does not
    // parse throws with the state unchanged; one that does not fit sends
    // the whole field to the heap sum below (which refuses a part beyond
    // its range).
    auto m = m_;
    auto e = e_;
    bool fits = true;
    for_each_part(field, [&](std::string_view text) {
      auto p = parse_float_sum_part(text);
      fits = p.kind == float_sum_part::kind_t::finite
             && add_compact(m, e, p.negative, p.digits, p.exp2);
      return fits;
    });
    if (fits) {
      m_ = m;
      e_ = e;
      return;
    }
  }
  // The heap sum: the field into a copy, so that a refused part changes
  // nothing (add_float_sum_field's rule), then the integer moved in.
  exact_fsum s = full_ ? *full_ : exact_fsum{};
  add_float_sum_field(s, field);
  add_integer(s, m_, e_);
  full_ = std::make_unique<exact_fsum>(std::move(s));
  m_ = words{};
  e_ = 0;
}

void part_fsum::merge(const part_fsum& other) {
  if (!full_ && !other.full_ && add_words(m_, e_, other.m_, other.e_))
    return;
  spill();
  full_->merge(other.exact());
}

exact_fsum part_fsum::exact() const {
  exact_fsum out = full_ ? *full_ : exact_fsum{};
  add_integer(out, m_, e_);
  return out;
}

double part_fsum::value() const {
  if (full_)
    return exact().value();
  if (is_zero(m_))
    return 0.0;
  auto x = m_;
  bool negative = is_negative(x);
  if (negative)
    negate(x);
  int bits = magnitude_bits(x);
  // The top 64 bits, with every bit below them folded into the lowest
  // (sticky): 11 bits below the 53 kept, so the one conversion to double
  // rounds as the whole number would. The power-of-two scaling after it is
  // exact: a result below 2^-1022 has fewer than 53 bits (m * 2^e is a
  // multiple of 2^-1074, e >= -1074), so it was not rounded, and a result
  // of 2^1024 or more is the infinity IEEE rounding gives.
  std::uint64_t top = 0;
  int shift = bits > 64 ? bits - 64 : 0;
  if (shift == 0) {
    top = x[0];
  } else {
    auto wq = shift / 64;
    auto bq = shift % 64;
    top = x[static_cast<std::size_t>(wq)] >> bq;
    if (bq != 0 && wq + 1 < 4)
      top |= x[static_cast<std::size_t>(wq + 1)] << (64 - bq);
    bool sticky = bq != 0 && (x[static_cast<std::size_t>(wq)]
                              & ((std::uint64_t{1} << bq) - 1))
                               != 0;
    for (int i = 0; i < wq; ++i)
      sticky = sticky || x[static_cast<std::size_t>(i)] != 0;
    top |= sticky ? 1 : 0;
  }
  auto d = std::ldexp(static_cast<double>(top), e_ + shift);
  return negative ? -d : d;
}

bool part_fsum::in_range(const words& m, int e) noexcept {
  return is_zero(m) || (e >= -1074 && e + magnitude_bits(m) <= 1037);
}

void part_fsum::canonicalize(words& m, std::int32_t& e) noexcept {
  if (is_zero(m)) {
    e = 0;
    return;
  }
  // Shift right (arithmetically) by the trailing zeros: m odd.
  int tz = 0;
  for (auto w : m) {
    if (w != 0) {
      tz += __builtin_ctzll(w);
      break;
    }
    tz += 64;
  }
  m = shifted_right(m, tz);
  e += tz;
}

} // namespace flow::apps
