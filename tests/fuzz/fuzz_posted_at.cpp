// Fuzzes flow-etl's date cleaning (flow::apps::parse_posted_at): the fuzz
// input is the raw posting date as scraped.
//
// Properties: an outcome is a value or a reason, never both; a value is
// "YYYY-MM-DD HH:MM:SS" and a real calendar date and time (checked by
// converting to a day number and back, not by month tables); it parses to
// itself; white space around the input changes nothing; and the outcome is
// the one a reference matcher of the four documented formats predicts.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "etl/ads_cleaning.hpp"
#include "reference.hpp"

namespace {

using flow::apps::cleaned;
using flow::apps::parse_posted_at;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// days_from_civil), and back. A date is real when the round trip keeps it.
long long days_from_civil(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long long>(doe) - 719468;
}

void civil_from_days(long long z, long long& y, unsigned& m, unsigned& d) {
  z += 719468;
  const long long era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<long long>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool real_date(int y, int m, int d) {
  if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31)
    return false;
  long long y2 = 0;
  unsigned m2 = 0;
  unsigned d2 = 0;
  civil_from_days(days_from_civil(y, static_cast<unsigned>(m),
                                  static_cast<unsigned>(d)),
                  y2, m2, d2);
  return y2 == y && m2 == static_cast<unsigned>(m)
         && d2 == static_cast<unsigned>(d);
}

/// True when `x` has the shape of `pattern`, where '9' stands for a digit.
bool shaped(std::string_view x, std::string_view pattern) {
  if (x.size() != pattern.size())
    return false;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (pattern[i] == '9' ? (x[i] < '0' || x[i] > '9') : x[i] != pattern[i])
      return false;
  }
  return true;
}

int num(std::string_view x, std::size_t pos, std::size_t n) {
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i)
    v = v * 10 + (x[i] - '0');
  return v;
}

std::string lower(std::string_view x) {
  std::string result{x};
  for (auto& c : result)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return result;
}

/// What the documented formats say about `raw`: a timestamp, "invalid date"
/// for a well-formed impossible one, or nothing when no format matches.
struct prediction {
  bool matched = false;
  bool relative = false;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
};

prediction predict(std::string_view raw) {
  prediction p;
  auto x = flow::fuzz::join_words(raw);
  auto lx = lower(x);
  if (lx == "yesterday" || lx == "today" || lx == "just now"
      || lx.find(" ago") != std::string::npos) {
    p.relative = true;
    return p;
  }
  auto date_at_start = [&] {
    p.y = num(x, 0, 4);
    p.mo = num(x, 5, 2);
    p.d = num(x, 8, 2);
  };
  if (shaped(x, "9999-99-99")) {
    p.matched = true;
    date_at_start();
    return p;
  }
  for (auto sep : {" ", "T"}) {
    auto with_min = "9999-99-99" + std::string{sep} + "99:99";
    if (shaped(x, with_min) || shaped(x, with_min + ":99")) {
      p.matched = true;
      date_at_start();
      p.h = num(x, 11, 2);
      p.mi = num(x, 14, 2);
      p.s = x.size() == 19 ? num(x, 17, 2) : 0;
      return p;
    }
  }
  if (shaped(x, "99/99/9999")) {
    p.matched = true;
    p.d = num(x, 0, 2);
    p.mo = num(x, 3, 2);
    p.y = num(x, 6, 4);
    return p;
  }
  static const char* months[] = {"january", "february", "march",
                                 "april",   "may",      "june",
                                 "july",    "august",   "september",
                                 "october", "november", "december"};
  for (int m = 0; m < 12; ++m) {
    std::string name = months[m];
    for (auto day : {"9", "99"}) {
      auto pattern = name + " " + day + ", 9999";
      if (shaped(lx, pattern)) {
        p.matched = true;
        p.mo = m + 1;
        p.d = num(x, name.size() + 1, std::string_view{day}.size());
        p.y = num(x, x.size() - 4, 4);
        return p;
      }
    }
  }
  return p;
}

bool same(const cleaned<std::string>& x, const cleaned<std::string>& y) {
  return x.value == y.value && x.reason == y.reason;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  std::string raw{reinterpret_cast<const char*>(data), size};
  auto r = parse_posted_at(raw);
  FLOW_FUZZ_CHECK(r.value.has_value() != !r.reason.empty());

  auto null = parse_posted_at(std::nullopt);
  FLOW_FUZZ_CHECK(!null.value && null.reason == "date missing");
  FLOW_FUZZ_CHECK(same(parse_posted_at("\t " + raw + " \r\n"), r));

  auto want = predict(raw);
  if (want.relative) {
    FLOW_FUZZ_CHECK(r.reason == "relative date");
  } else if (!want.matched) {
    FLOW_FUZZ_CHECK(!r.value);
  } else if (!real_date(want.y, want.mo, want.d) || want.h > 23
             || want.mi > 59 || want.s > 59) {
    FLOW_FUZZ_CHECK(r.reason == "invalid date");
  } else {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d", want.y,
                  want.mo, want.d, want.h, want.mi, want.s);
    FLOW_FUZZ_CHECK(r.value && *r.value == buf);
  }

  if (!r.value)
    return 0;
  const auto& v = *r.value;
  FLOW_FUZZ_CHECK(shaped(v, "9999-99-99 99:99:99"));
  FLOW_FUZZ_CHECK(real_date(num(v, 0, 4), num(v, 5, 2), num(v, 8, 2)));
  FLOW_FUZZ_CHECK(num(v, 11, 2) <= 23 && num(v, 14, 2) <= 59
                  && num(v, 17, 2) <= 59);
  // A cleaned date is itself a valid input and cleans to itself.
  auto again = parse_posted_at(v);
  FLOW_FUZZ_CHECK(again.value && *again.value == v);
  return 0;
}
