// Fuzzes flow-etl's price cleaning (flow::apps::parse_price_cents): the fuzz
// input is the raw price text as scraped.
//
// Properties: an outcome is a value or a reason, never both; a price is not
// negative; a price's cents are the input's digits read as a number with two
// decimals (so no digit is lost, invented or misplaced); white space around
// the input and ASCII case do not change the outcome; the cents, printed in
// each canonical format ("1234.56", "$1,234.56", "$ 1234.56 USD", ...), parse
// back to the same cents.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "etl/ads_cleaning.hpp"
#include "reference.hpp"

namespace {

using flow::apps::cleaned;
using flow::apps::parse_price_cents;

void check_outcome(const cleaned<std::int64_t>& r) {
  FLOW_FUZZ_CHECK(r.value.has_value() != !r.reason.empty());
  if (r.value)
    FLOW_FUZZ_CHECK(*r.value >= 0);
}

bool same(const cleaned<std::int64_t>& x, const cleaned<std::int64_t>& y) {
  return x.value == y.value && x.reason == y.reason;
}

/// "1234567" -> "1,234,567".
std::string grouped(std::string digits) {
  for (auto i = static_cast<std::ptrdiff_t>(digits.size()) - 3; i > 0; i -= 3)
    digits.insert(static_cast<std::size_t>(i), ",");
  return digits;
}

/// The input's digits, in order, as an exact number, with the number of
/// digits after a '.'; nothing when it has more than 38 significant digits.
std::optional<__int128> digits_value(std::string_view x, int& frac_digits) {
  __int128 v = 0;
  int significant = 0;
  bool after_dot = false;
  frac_digits = 0;
  for (auto c : x) {
    if (c == '.')
      after_dot = true;
    if (c < '0' || c > '9')
      continue;
    if (after_dot)
      ++frac_digits;
    if (v == 0 && c == '0')
      continue;
    if (++significant > 38)
      return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

void check_round_trip(std::int64_t cents) {
  auto whole = std::to_string(cents / 100);
  auto frac = std::to_string(cents % 100);
  if (frac.size() == 1)
    frac = "0" + frac;
  const std::string forms[] = {
    whole + "." + frac,
    "$" + whole + "." + frac,
    "$" + grouped(whole) + "." + frac,
    "$ " + grouped(whole) + "." + frac + " USD",
    "  " + whole + "." + frac + " usd\t",
  };
  for (auto& form : forms) {
    auto again = parse_price_cents(form);
    FLOW_FUZZ_CHECK(again.value && *again.value == cents);
  }
  if (cents % 100 == 0) {
    auto again = parse_price_cents("$" + grouped(whole));
    FLOW_FUZZ_CHECK(again.value && *again.value == cents);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  std::string raw{reinterpret_cast<const char*>(data), size};
  auto r = parse_price_cents(raw);
  check_outcome(r);

  // A NULL price is a missing price.
  auto null = parse_price_cents(std::nullopt);
  FLOW_FUZZ_CHECK(!null.value && null.reason == "price missing");

  // Padding and case are not information.
  FLOW_FUZZ_CHECK(same(parse_price_cents(" \t" + raw + "\n "), r));
  std::string upper = raw;
  std::string lower = raw;
  for (auto& c : upper)
    if (c >= 'a' && c <= 'z')
      c = static_cast<char>(c - 'a' + 'A');
  for (auto& c : lower)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  FLOW_FUZZ_CHECK(same(parse_price_cents(upper), r));
  FLOW_FUZZ_CHECK(same(parse_price_cents(lower), r));

  if (!r.value)
    return 0;
  auto cents = *r.value;
  if (flow::fuzz::join_words(lower) == "free") {
    FLOW_FUZZ_CHECK(cents == 0);
  } else {
    int frac_digits = 0;
    auto v = digits_value(raw, frac_digits);
    FLOW_FUZZ_CHECK(v.has_value());
    FLOW_FUZZ_CHECK(*v <= std::numeric_limits<std::int64_t>::max());
    FLOW_FUZZ_CHECK(frac_digits <= 2);
    auto want = *v * (frac_digits == 0 ? 100 : frac_digits == 1 ? 10 : 1);
    FLOW_FUZZ_CHECK(want == cents);
  }
  check_round_trip(cents);
  return 0;
}
