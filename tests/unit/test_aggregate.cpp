// flow::aggregate, flow::exact_sum and flow::to_string(int128).

#include "support.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

using flow::aggregate;
using flow::int128;

namespace {

constexpr auto i64_max = std::numeric_limits<std::int64_t>::max();
constexpr auto i64_min = std::numeric_limits<std::int64_t>::min();
constexpr int128 i128_max = static_cast<int128>(
  (static_cast<unsigned __int128>(1) << 127) - 1);
constexpr int128 i128_min = -i128_max - 1;

// The aggregate of `xs` computed by a plain loop, without aggregate::add.
struct reference {
  int128 sum = 0;
  std::uint64_t count = 0;
  std::int64_t min = i64_max;
  std::int64_t max = i64_min;
};

reference reference_of(const std::vector<std::int64_t>& xs) {
  reference r;
  for (auto x : xs) {
    r.sum += x;
    ++r.count;
    r.min = std::min(r.min, x);
    r.max = std::max(r.max, x);
  }
  return r;
}

void check_equal(const aggregate& a, const reference& r) {
  CHECK(a.sum == r.sum);
  CHECK(a.count == r.count);
  CHECK(a.min == r.min);
  CHECK(a.max == r.max);
}

// Random values over the whole int64 range with the extremes, 0 and -1 mixed
// in at random places.
std::vector<std::int64_t> extreme_values(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng{seed};
  std::uniform_int_distribution<std::int64_t> any{i64_min, i64_max};
  std::uniform_int_distribution<int> pick{0, 9};
  const std::int64_t specials[] = {i64_min, i64_max, 0, -1, 1,
                                   i64_min + 1, i64_max - 1};
  std::vector<std::int64_t> xs;
  xs.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto p = pick(rng);
    if (p < 7)
      xs.push_back(specials[p]);
    else
      xs.push_back(any(rng));
  }
  return xs;
}

} // namespace

// -- add, of, mean -------------------------------------------------------------

TEST_CASE("aggregate: an empty aggregate has count 0, neutral min/max and mean 0",
          "[aggregate]") {
  aggregate a;
  CHECK(a.empty());
  CHECK(a.count == 0);
  CHECK(a.sum == 0);
  CHECK(a.min == i64_max);
  CHECK(a.max == i64_min);
  CHECK(a.mean() == 0);
  CHECK(aggregate::of(nullptr, 0) == aggregate{});
}

TEST_CASE("aggregate: zeros and negative values are summed, not treated as an end",
          "[aggregate]") {
  // The Python tutorial stopped at the first 0; every element counts here.
  std::vector<std::int64_t> xs{5, 0, 7, -3, 0};
  auto ref = reference_of(xs);
  REQUIRE(ref.sum == 9);
  REQUIRE(ref.count == 5);
  aggregate a;
  for (auto x : xs)
    a.add(x);
  check_equal(a, ref);
  check_equal(aggregate::of(xs.data(), xs.size()), ref);
  CHECK_FALSE(a.empty());
}

TEST_CASE("aggregate: a single element is its own min, max and mean",
          "[aggregate]") {
  auto x = GENERATE(i64_min, std::int64_t{-1}, std::int64_t{0},
                    std::int64_t{42}, i64_max);
  aggregate a;
  a.add(x);
  CHECK(a.count == 1);
  CHECK(a.sum == x);
  CHECK(a.min == x);
  CHECK(a.max == x);
  CHECK(a.mean() == static_cast<long double>(x));
  CHECK(aggregate::of(&x, 1) == a);
}

TEST_CASE("aggregate: of() and add() agree with a sequential loop on extreme data",
          "[aggregate]") {
  auto n = GENERATE(std::size_t{1}, std::size_t{2}, std::size_t{31},
                    std::size_t{1000}, std::size_t{100'003});
  auto xs = extreme_values(n, 1234 + n);
  auto ref = reference_of(xs);
  aggregate added;
  for (auto x : xs)
    added.add(x);
  check_equal(added, ref);
  check_equal(aggregate::of(xs.data(), xs.size()), ref);
}

TEST_CASE("aggregate: sums of int64 extremes stay exact beyond 64 bits",
          "[aggregate]") {
  std::vector<std::int64_t> maxes(1000, i64_max);
  std::vector<std::int64_t> mins(1000, i64_min);
  auto a = aggregate::of(maxes.data(), maxes.size());
  auto b = aggregate::of(mins.data(), mins.size());
  CHECK(a.sum == test::naive_sum(maxes));
  CHECK(b.sum == test::naive_sum(mins));
  CHECK(a.sum == static_cast<int128>(i64_max) * 1000);
  CHECK(b.sum == static_cast<int128>(i64_min) * 1000);
  CHECK(a.mean() == static_cast<long double>(i64_max));
  CHECK(b.mean() == static_cast<long double>(i64_min));
}

TEST_CASE("aggregate: mean is sum divided by count", "[aggregate]") {
  std::vector<std::int64_t> xs{1, 2, 3, 4};
  auto a = aggregate::of(xs.data(), xs.size());
  CHECK(a.mean() == Approx(2.5));
  std::vector<std::int64_t> ys{-7, 0, 0};
  auto b = aggregate::of(ys.data(), ys.size());
  CHECK(static_cast<double>(b.mean()) == Approx(-7.0 / 3.0));
}

// -- merge ----------------------------------------------------------------------

TEST_CASE("aggregate: merging two halves gives the aggregate of the whole",
          "[aggregate]") {
  auto xs = extreme_values(5000, 99);
  auto ref = reference_of(xs);
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{2500},
                          std::size_t{4999}, std::size_t{5000}}) {
    auto left = aggregate::of(xs.data(), cut);
    auto right = aggregate::of(xs.data() + cut, xs.size() - cut);
    REQUIRE(left.merge(right));
    check_equal(left, ref);
  }
}

TEST_CASE("aggregate: merging an empty aggregate changes nothing",
          "[aggregate]") {
  std::vector<std::int64_t> xs{3, -8, 12};
  auto a = aggregate::of(xs.data(), xs.size());
  auto before = a;
  REQUIRE(a.merge(aggregate{}));
  CHECK(a == before);
  aggregate empty;
  REQUIRE(empty.merge(before));
  CHECK(empty == before);
}

TEST_CASE("aggregate: merge detects positive 128-bit overflow and leaves the "
          "target unchanged",
          "[aggregate][overflow]") {
  aggregate a;
  a.sum = i128_max - 5;
  a.count = 10;
  a.min = -1;
  a.max = 1;
  aggregate b;
  b.sum = 10;
  b.count = 3;
  b.min = -100;
  b.max = 100;
  auto before = a;
  CHECK_FALSE(a.merge(b));
  CHECK(a == before);
  CHECK(a.sum == i128_max - 5);

  // Exactly up to the limit is still representable.
  aggregate c;
  c.sum = 5;
  c.count = 1;
  c.min = c.max = 5;
  REQUIRE(a.merge(c));
  CHECK(a.sum == i128_max);
  CHECK(a.count == 11);
}

TEST_CASE("aggregate: merge detects negative 128-bit overflow and leaves the "
          "target unchanged",
          "[aggregate][overflow]") {
  aggregate a;
  a.sum = i128_min + 5;
  a.count = 2;
  a.min = i64_min;
  a.max = 0;
  aggregate b;
  b.sum = -10;
  b.count = 1;
  b.min = b.max = -10;
  auto before = a;
  CHECK_FALSE(a.merge(b));
  CHECK(a == before);
  aggregate c = before;
  aggregate d;
  d.sum = i128_min + 1;
  d.count = 1;
  CHECK_FALSE(c.merge(d));
  CHECK(c == before);
}

TEST_CASE("aggregate: merge detects a 64-bit count overflow", "[aggregate][overflow]") {
  aggregate a;
  a.count = std::numeric_limits<std::uint64_t>::max();
  a.sum = 1;
  a.min = a.max = 1;
  aggregate b;
  b.add(7);
  auto before = a;
  CHECK_FALSE(a.merge(b));
  CHECK(a == before);
}

// -- exact_sum -------------------------------------------------------------------

TEST_CASE("exact_sum: matches a naive 128-bit loop on random data with extremes",
          "[aggregate][exact_sum]") {
  for (std::size_t n : {0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 1000, 65'537}) {
    auto xs = extreme_values(n, 7 * n + 1);
    INFO("n = " << n);
    CHECK(flow::exact_sum(xs.data(), xs.size()) == test::naive_sum(xs));
    // Unaligned starts (the vectorised loop must not care).
    if (n > 2) {
      std::vector<std::int64_t> tail(xs.begin() + 1, xs.end());
      CHECK(flow::exact_sum(xs.data() + 1, n - 1) == test::naive_sum(tail));
    }
  }
}

TEST_CASE("exact_sum: runs of int64 max and min are exact", "[aggregate][exact_sum]") {
  for (auto x : {i64_max, i64_min, std::int64_t{-1},
                 std::int64_t{0xffffffff}, std::int64_t{-0x100000000}}) {
    std::vector<std::int64_t> xs(200'000, x);
    INFO("value " << x);
    CHECK(flow::exact_sum(xs.data(), xs.size()) == test::naive_sum(xs));
    CHECK(flow::exact_sum(xs.data(), xs.size())
          == static_cast<int128>(x) * 200'000);
  }
}

TEST_CASE("exact_sum: full-range uniform random data", "[aggregate][exact_sum]") {
  auto xs = test::random_values(300'000, 5, i64_min, i64_max);
  CHECK(flow::exact_sum(xs.data(), xs.size()) == test::naive_sum(xs));
}

// -- to_string(int128) -----------------------------------------------------------

TEST_CASE("to_string(int128): renders known values exactly", "[aggregate][to_string]") {
  CHECK(flow::to_string(int128{0}) == "0");
  CHECK(flow::to_string(int128{1}) == "1");
  CHECK(flow::to_string(int128{-1}) == "-1");
  CHECK(flow::to_string(int128{10}) == "10");
  CHECK(flow::to_string(int128{-10}) == "-10");
  CHECK(flow::to_string(static_cast<int128>(i64_max)) == "9223372036854775807");
  CHECK(flow::to_string(static_cast<int128>(i64_min)) == "-9223372036854775808");
  // (2^63 - 1) * 1000 and -2^63 * 1000: the sums of 1000 extremes.
  CHECK(flow::to_string(static_cast<int128>(i64_max) * 1000)
        == "9223372036854775807000");
  CHECK(flow::to_string(static_cast<int128>(i64_min) * 1000)
        == "-9223372036854775808000");
  // Around the 19-digit chunks it is written in.
  int128 e19 = int128{1000000000} * 10000000000;
  CHECK(flow::to_string(e19 - 1) == "9999999999999999999");
  CHECK(flow::to_string(e19) == "10000000000000000000");
  CHECK(flow::to_string(-e19 - 1) == "-10000000000000000001");
  CHECK(flow::to_string(e19 * e19 - 1) == std::string(38, '9'));
  CHECK(flow::to_string(e19 * e19) == "1" + std::string(38, '0'));
  CHECK(flow::to_string(e19 * e19 + 7) == "1" + std::string(37, '0') + "7");
  CHECK(flow::to_string(e19 * 5 + 42) == "50000000000000000042");
  CHECK(flow::to_string(i128_max) == "170141183460469231731687303715884105727");
  CHECK(flow::to_string(i128_min) == "-170141183460469231731687303715884105728");
}

TEST_CASE("to_string(int128): agrees with a digit loop on random values",
          "[aggregate][to_string]") {
  std::mt19937_64 rng{77};
  for (int i = 0; i < 2000; ++i) {
    auto hi = static_cast<std::int64_t>(rng());
    auto lo = rng();
    // Vary the magnitude: sometimes only the low half, sometimes both.
    int128 x = (i % 3 == 0) ? static_cast<int128>(static_cast<std::int64_t>(lo))
                            : static_cast<int128>(hi) * (int128{1} << 64)
                                + static_cast<int128>(lo);
    REQUIRE(flow::to_string(x) == test::decimal(x));
  }
  // Our reference itself on a literal, so that both cannot be wrong alike.
  CHECK(test::decimal(static_cast<int128>(i64_max) * 1000)
        == "9223372036854775807000");
}

TEST_CASE("append_to(int128): appends to_string's text after what the string "
          "holds", "[aggregate][to_string]") {
  std::string out = "x=";
  flow::append_to(out, int128{-42});
  CHECK(out == "x=-42");
  out += ',';
  flow::append_to(out, i128_min);
  CHECK(out == "x=-42,-170141183460469231731687303715884105728");
  // A reused buffer: cleared, it holds only the next value.
  std::mt19937_64 rng{78};
  for (int i = 0; i < 500; ++i) {
    int128 x = static_cast<int128>(static_cast<std::int64_t>(rng()))
               * (i % 2 == 0 ? int128{1} : (int128{1} << 64));
    out.clear();
    flow::append_to(out, x);
    REQUIRE(out == flow::to_string(x));
  }
}

// -- serialisation ----------------------------------------------------------------

TEST_CASE("aggregate: survives a binary round trip with negative 128-bit sums",
          "[aggregate][serialization]") {
  for (int128 sum : {int128{0}, int128{-1}, int128{1},
                     static_cast<int128>(i64_min) * 1000,
                     static_cast<int128>(i64_max) * 1000, i128_min,
                     i128_max}) {
    aggregate a;
    a.sum = sum;
    a.count = 1000;
    a.min = i64_min;
    a.max = 17;
    std::vector<char> buf;
    caf::binary_serializer sink{nullptr, buf};
    REQUIRE(!sink(a));
    aggregate b;
    caf::binary_deserializer source{nullptr, buf};
    REQUIRE(!source(b));
    CHECK(b.sum == sum);
    CHECK(b == a);
  }
}
