// flow::decimal and flow::decimal_sum: exact parsing and printing, exact sums
// at the largest input scale, overflow reported instead of wrapped, the same
// state for every split and merge order.

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "flow/decimal.hpp"
#include "merge_orders.hpp"

using namespace flow;

namespace {

decimal dec(const char* text) {
  auto x = parse_decimal(text);
  if (!x)
    throw std::runtime_error(std::string{"bad test literal "} + text);
  return *x;
}

std::string error_of(const char* text) {
  auto x = parse_decimal(text);
  return x ? std::string{"(parsed)"} : describe(x.error());
}

/// Random decimals with scales 0..6 and up to 12 digits, both signs; the
/// exact sum of all of them at scale 6 fits 128 bits easily.
std::vector<decimal> random_decimals(std::uint64_t seed, std::size_t n) {
  std::mt19937_64 rng{seed};
  std::vector<decimal> xs;
  for (std::size_t i = 0; i < n; ++i) {
    auto scale = static_cast<int>(rng() % 7);
    auto u = static_cast<int128>(rng() % 1000000000000u);
    if (rng() % 2 == 0)
      u = -u;
    xs.push_back(*decimal::make(u, scale));
  }
  return xs;
}

decimal_sum sequential(const std::vector<decimal>& xs) {
  decimal_sum s;
  for (const auto& x : xs)
    s.add(x);
  return s;
}

const std::string thirty_eight_nines(38, '9');

} // namespace

TEST_CASE("decimal: parses PostgreSQL output and what users type",
          "[decimal]") {
  std::vector<std::pair<const char*, const char*>> cases{
    {"0", "0"},           {"-12.50", "-12.50"}, {"+7", "7"},
    {"7.", "7"},          {".5", "0.5"},        {"-0.00", "0.00"},
    {"000123.4500", "123.4500"},                {"1.5e3", "1500"},
    {"1.50e1", "15.0"},   {"1.5E-2", "0.015"},  {"-2e+2", "-200"},
    {"0e999999999", "0"}, {"12e-2", "0.12"},    {"0.1e-37", "0.00000000000000000000000000000000000001"},
  };
  for (auto [in, out] : cases) {
    INFO(in);
    auto x = parse_decimal(in);
    REQUIRE(x);
    CHECK(to_string(*x) == out);
  }
  auto x = dec("-12.50");
  CHECK(x.unscaled() == -1250);
  CHECK(x.scale() == 2);
  // 38 significant digits are fine, however many zeros lead or the point
  // moves; 39 are not.
  CHECK(to_string(dec(thirty_eight_nines.c_str())) == thirty_eight_nines);
  CHECK(to_string(dec(("-0000." + thirty_eight_nines).c_str()))
        == "-0." + thirty_eight_nines);
  CHECK(error_of((thirty_eight_nines + "9").c_str())
        == "bad_input: more than 38 significant digits");
  CHECK(error_of(("0." + thirty_eight_nines + "9").c_str())
        == "bad_input: more than 38 significant digits");
  CHECK(error_of("1e38") == "bad_input: more than 38 significant digits");
  CHECK(to_string(dec("1e37")) == "1" + std::string(37, '0'));
  CHECK(error_of("1e-39") == "bad_input: scale above 38");
  CHECK(error_of("1e99999999999999999999")
        == "bad_input: more than 38 significant digits");
  for (auto bad : {"", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "1,5", " 1",
                   "1 ", "nan", "NaN", "inf", "-Infinity", "0x10", "1e5.5",
                   "--1", "1-"}) {
    INFO('"' << bad << '"');
    CHECK(error_of(bad) == "bad_input: not a decimal number");
  }
}

TEST_CASE("decimal: printing and parsing round trip exactly", "[decimal]") {
  for (const auto& x : random_decimals(1, 2000)) {
    auto back = parse_decimal(to_string(x));
    REQUIRE(back);
    CHECK(back->identical(x));
  }
  auto big = *decimal::make(-(int128{1} * 100000000000000000 * 1000000000000000000
                             * 1000 - 1),
                            38);
  CHECK(to_string(big) == "-0." + thirty_eight_nines);
  // Leading zeros of the fraction, and magnitudes around the 19-digit
  // chunks the digits are made in.
  int128 e19 = int128{1000000000} * 10000000000;
  CHECK(to_string(*decimal::make(0, 3)) == "0.000");
  CHECK(to_string(*decimal::make(-5, 2)) == "-0.05");
  CHECK(to_string(*decimal::make(12345, 0)) == "12345");
  CHECK(to_string(*decimal::make(e19, 19)) == "1.0000000000000000000");
  CHECK(to_string(*decimal::make(-(e19 + 5), 1)) == "-1000000000000000000.5");
  CHECK(to_string(*decimal::make(e19 * 7 + 3, 20))
        == "0.70000000000000000003");
  CHECK(parse_decimal(to_string(big))->identical(big));
  CHECK(!decimal::make(int128{1} * 100000000000000000 * 1000000000000000000
                         * 1000,
                       0));
  CHECK(!decimal::make(1, 39));
  CHECK(!decimal::make(1, -1));
}

TEST_CASE("decimal: append_to appends to_string's text after what the "
          "string holds", "[decimal]") {
  std::string out = "[";
  append_to(out, *decimal::make(-5, 2));
  CHECK(out == "[-0.05");
  out += "|";
  append_to(out, *decimal::make(7, 0));
  out += "|";
  append_to(out, *decimal::make(123456, 3));
  CHECK(out == "[-0.05|7|123.456");
  for (const auto& x : random_decimals(3, 1000)) {
    out = "prefix ";
    append_to(out, x);
    REQUIRE(out == "prefix " + to_string(x));
  }
}

TEST_CASE("decimal: append_scaled prints any 128-bit unscaled value at a "
          "scale as a decimal's text", "[decimal]") {
  std::string out;
  append_scaled(out, 5, 3);
  CHECK(out == "0.005");
  out.clear();
  append_scaled(out, -12345, 2);
  CHECK(out == "-123.45");
  out.clear();
  append_scaled(out, 0, 0);
  CHECK(out == "0");
  // Beyond a decimal's 38 digits: the largest and smallest int128.
  auto max = static_cast<int128>(~static_cast<unsigned __int128>(0) >> 1);
  out.clear();
  append_scaled(out, max, 38);
  CHECK(out == "1.70141183460469231731687303715884105727");
  out.clear();
  append_scaled(out, -max - 1, 1);
  CHECK(out == "-17014118346046923173168730371588410572.8");
  // Where a decimal exists, exactly its to_string.
  for (const auto& x : random_decimals(4, 1000)) {
    out = "=";
    append_scaled(out, x.unscaled(), x.scale());
    REQUIRE(out == "=" + to_string(x));
  }
  CHECK_THROWS_AS(append_scaled(out, 1, 39), std::invalid_argument);
  CHECK_THROWS_AS(append_scaled(out, 1, -1), std::invalid_argument);
}

TEST_CASE("decimal: compares by value and rescales without rounding",
          "[decimal]") {
  CHECK(dec("1.5") == dec("1.50"));
  CHECK(!dec("1.5").identical(dec("1.50")));
  CHECK(dec("-0.001") < dec("0"));
  CHECK(dec("-2") < dec("-1.999"));
  CHECK(dec("1.0001") > dec("1.0000999"));
  CHECK(dec(thirty_eight_nines.c_str()) > dec(("0." + thirty_eight_nines).c_str()));
  CHECK(dec("10") > dec("9.99999999999999999999999999999999999"));
  CHECK(to_string(*dec("1.5").rescaled(4)) == "1.5000");
  CHECK(to_string(*dec("1.5000").rescaled(1)) == "1.5");
  CHECK(!dec("1.55").rescaled(1));
  CHECK(!dec(thirty_eight_nines.c_str()).rescaled(1));
  CHECK(!dec("1").rescaled(39));
  CHECK(to_string(*dec("0").rescaled(38)) == "0." + std::string(38, '0'));
}

TEST_CASE("decimal_sum: sums exactly at the largest scale of the inputs",
          "[decimal]") {
  decimal_sum s;
  CHECK(s.ok());
  CHECK(!s.min());
  CHECK(!s.mean());
  CHECK(to_string(*s.sum()) == "0");
  s.add(dec("1.5"));
  s.add(dec("2.25"));
  CHECK(to_string(*s.sum()) == "3.75");
  CHECK(s.scale() == 2);
  s.add(dec("-0.750"));
  CHECK(to_string(*s.sum()) == "3.000");
  CHECK(s.count() == 3);
  CHECK(to_string(*s.min()) == "-0.750");
  CHECK(to_string(*s.max()) == "2.25");
  // Mean: scale + 6 digits, half to even.
  CHECK(to_string(*s.mean()) == "1.000000000");
  decimal_sum third;
  for (auto x : {"2", "0", "0"})
    third.add(dec(x));
  CHECK(to_string(*third.mean()) == "0.666667");
  decimal_sum tie;
  tie.add(dec(thirty_eight_nines.c_str()));
  tie.add(dec("0"));
  // 4999..9.5 has no room for a fraction: half to even rounds up.
  CHECK(to_string(*tie.mean()) == "5" + std::string(37, '0'));
  decimal_sum tie2;
  tie2.add(dec(("1" + std::string(36, '0') + "1").c_str()));
  tie2.add(dec("0"));
  // (10^37 + 1) / 2: room for one digit after the point, and it is exact.
  CHECK(to_string(*tie2.mean()) == "5" + std::string(36, '0') + ".5");
  // Of equal values the larger scale is kept, whatever the order.
  decimal_sum ab;
  ab.add(dec("1.5"));
  ab.add(dec("1.50"));
  decimal_sum ba;
  ba.add(dec("1.50"));
  ba.add(dec("1.5"));
  CHECK(ab == ba);
  CHECK(to_string(*ab.min()) == "1.50");
}

TEST_CASE("decimal_sum: every split and batch size and merge order gives the "
          "same state",
          "[decimal]") {
  auto xs = random_decimals(2, 100000);
  auto reference = sequential(xs);
  // An independent exact sum at scale 6.
  int128 at6 = 0;
  for (const auto& x : xs)
    at6 += x.rescaled(6)->unscaled();
  REQUIRE(reference.ok());
  CHECK(reference.sum()->identical(*decimal::make(at6, 6)));
  for (auto parts : test::part_counts)
    for (auto batch : test::batch_sizes)
      for (std::uint64_t seed : {1u, 2u}) {
        INFO("parts " << parts << " batch " << batch << " seed " << seed);
        auto s = test::split_and_merge(
          xs, parts, batch, seed, decimal_sum{},
          [](decimal_sum& st, const decimal& x) { st.add(x); },
          [](decimal_sum& st, const decimal* p, std::size_t n) {
            st.add(p, n);
          });
        CHECK(s == reference);
        CHECK(s.sum()->identical(*reference.sum()));
        CHECK(s.mean()->identical(*reference.mean()));
      }
}

TEST_CASE("decimal_sum: overflow is reported and never wrapped or rounded",
          "[decimal]") {
  auto nines = dec(thirty_eight_nines.c_str());
  // A total beyond 38 digits is not ok, but the exact total survives: a later
  // negative value brings it back, so every order ends in the same state.
  decimal_sum s;
  s.add(nines);
  s.add(nines);
  CHECK(!s.ok());
  CHECK(!s.sum());
  s.add(-nines);
  CHECK(s.ok());
  CHECK(s.sum()->identical(nines));
  decimal_sum t;
  t.add(-nines);
  t.add(nines);
  t.add(nines);
  CHECK(t == s);
  // An input that cannot be written at the common scale: 10^37 and 0.1
  // need 39 digits at scale 1. Sticky, in either order.
  decimal_sum u;
  u.add(dec("1e37"));
  u.add(dec("0.1"));
  CHECK(!u.ok());
  u.add(dec("-1e37"));
  CHECK(!u.ok());
  CHECK(!u.sum());
  decimal_sum v;
  v.add(dec("0.1"));
  v.add(dec("1e37"));
  CHECK(!v.ok());
  // Merging states whose inputs do not fit together fails and changes
  // nothing; so does merging a state that already overflowed.
  decimal_sum big;
  big.add(dec("1e37"));
  decimal_sum small;
  small.add(dec("0.1"));
  auto before = big;
  CHECK(!big.merge(small));
  CHECK(big == before);
  auto before_small = small;
  CHECK(!small.merge(big));
  CHECK(small == before_small);
  decimal_sum fine;
  fine.add(dec("1"));
  auto before_fine = fine;
  CHECK(!fine.merge(u));
  CHECK(fine == before_fine);
  CHECK(!u.merge(fine));
}

TEST_CASE("decimal_sum: a CAF binary round trip keeps the state and a "
          "corrupted one is rejected",
          "[decimal][serialization]") {
  auto xs = random_decimals(3, 1000);
  auto s = sequential(xs);
  std::vector<char> buf;
  {
    caf::binary_serializer sink{nullptr, buf};
    REQUIRE(!sink(s));
  }
  decimal_sum loaded;
  {
    caf::binary_deserializer source{nullptr, buf};
    REQUIRE(!source(loaded));
  }
  CHECK(loaded == s);
  REQUIRE(s.scale() == 6);
  loaded.add(dec("0.0000001"));
  s.add(dec("0.0000001"));
  CHECK(loaded == s);
  // Layout: 3 limbs, count (bytes 24..31), min, max (8 + 8 + 1 each), scale,
  // flag.
  REQUIRE(buf.size() == 24 + 8 + 2 * 17 + 1 + 1);
  auto reject = [](std::vector<char> bytes) {
    decimal_sum rejected;
    caf::binary_deserializer source{nullptr, bytes};
    return static_cast<bool>(source(rejected));
  };
  CHECK(!reject(buf));
  auto bad = buf;
  std::fill(bad.begin() + 24, bad.begin() + 32, char{0}); // count 0, sum not
  CHECK(reject(bad));
  bad = buf;
  bad[24 + 8 + 2 * 17] = 39; // scale 39
  CHECK(reject(bad));
  bad = buf;
  bad[24 + 8 + 16] = 7; // the min's scale above the sum's (6)
  CHECK(reject(bad));
  bad = buf;
  std::fill(bad.begin() + 32, bad.begin() + 40, char{0x7f}); // min's high half
  CHECK(reject(bad));
  // A lone decimal: two halves and the scale.
  std::vector<char> one;
  auto x = dec("-12.50");
  caf::binary_serializer{nullptr, one}(x);
  REQUIRE(one.size() == 17);
  decimal y;
  {
    caf::binary_deserializer source{nullptr, one};
    REQUIRE(!source(y));
  }
  CHECK(y.identical(x));
  one[16] = 40;
  caf::binary_deserializer source{nullptr, one};
  CHECK(source(y));
}
