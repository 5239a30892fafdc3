// Counter-based random integers: flow::uniform_ints, flow::derive_seed and the
// flow::from_random source.

#include "support.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

namespace {

constexpr auto i64_max = std::numeric_limits<std::int64_t>::max();
constexpr auto i64_min = std::numeric_limits<std::int64_t>::min();

} // namespace

TEST_CASE("uniform_ints: the same seed gives the same stream, another seed "
          "another",
          "[random]") {
  flow::uniform_ints a{42, 0, 10000};
  flow::uniform_ints b{42, 0, 10000};
  flow::uniform_ints c{43, 0, 10000};
  int differ = 0;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    REQUIRE(a(i) == b(i));
    if (a(i) != c(i))
      ++differ;
  }
  CHECK(differ > 900);
}

TEST_CASE("uniform_ints: values stay in [lo, hi] for every range", "[random]") {
  using range = std::pair<std::int64_t, std::int64_t>;
  auto r = GENERATE(values<range>({
    {0, 10000},
    {-5, 5},
    {7, 7},
    {0, 0},
    {i64_min, i64_min},
    {i64_max, i64_max},
    {i64_max - 1, i64_max},
    {i64_min, i64_min + 1},
    {i64_min, 0},
    {-1, i64_max},
    {i64_min, i64_max},
  }));
  auto [lo, hi] = r;
  INFO("range [" << lo << ", " << hi << "]");
  for (std::uint64_t seed : {0ull, 1ull, 0xdeadbeefull}) {
    flow::uniform_ints gen{seed, lo, hi};
    std::uint64_t outside = 0;
    std::int64_t smallest = i64_max;
    std::int64_t largest = i64_min;
    for (std::uint64_t i = 0; i < 20'000; ++i) {
      auto x = gen(i);
      outside += (x < lo || x > hi);
      smallest = std::min(smallest, x);
      largest = std::max(largest, x);
    }
    INFO("seed " << seed);
    CHECK(outside == 0);
    CHECK(smallest >= lo);
    CHECK(largest <= hi);
  }
}

TEST_CASE("uniform_ints: lo == hi always yields lo", "[random]") {
  for (auto v : {i64_min, std::int64_t{-3}, std::int64_t{0}, i64_max}) {
    flow::uniform_ints gen{9, v, v};
    for (std::uint64_t i = 0; i < 1000; ++i)
      REQUIRE(gen(i) == v);
  }
}

TEST_CASE("uniform_ints: a small range is covered and both ends are reached",
          "[random]") {
  flow::uniform_ints gen{3, -4, 5};
  std::set<std::int64_t> seen;
  for (std::uint64_t i = 0; i < 10'000; ++i)
    seen.insert(gen(i));
  CHECK(seen.size() == 10);
  CHECK(*seen.begin() == -4);
  CHECK(*seen.rbegin() == 5);
}

TEST_CASE("uniform_ints: the full int64 range produces negative and positive "
          "values",
          "[random]") {
  flow::uniform_ints gen{11, i64_min, i64_max};
  int negative = 0;
  for (std::uint64_t i = 0; i < 10'000; ++i)
    if (gen(i) < 0)
      ++negative;
  CHECK(negative > 4500);
  CHECK(negative < 5500);
}

TEST_CASE("uniform_ints: the mean of randint(0, 10000) is near 5000", "[random]") {
  auto xs = test::random_values(200'000, 2024);
  auto mean = static_cast<double>(test::naive_sum(xs)) / xs.size();
  CHECK(mean == Approx(5000).margin(50));
}

TEST_CASE("uniform_ints: fill writes the same elements as operator()", "[random]") {
  flow::uniform_ints gen{5, -100, 100};
  std::vector<std::int64_t> xs(777);
  gen.fill(xs.data(), 1000, xs.size());
  for (std::size_t k = 0; k < xs.size(); ++k)
    REQUIRE(xs[k] == gen(1000 + k));
}

TEST_CASE("derive_seed: sub-streams of one seed differ from each other",
          "[random]") {
  std::set<std::uint64_t> seeds;
  for (std::uint64_t j = 0; j < 1000; ++j)
    seeds.insert(flow::derive_seed(42, j));
  CHECK(seeds.size() == 1000);
  CHECK(flow::derive_seed(42, 0) == flow::derive_seed(42, 0));
  CHECK(flow::derive_seed(42, 0) != flow::derive_seed(43, 0));
}

TEST_CASE("from_random: two sources with the same seed produce identical "
          "elements whatever the batch size",
          "[random][sources]") {
  auto a = flow::from_random(10'000, 42);
  auto b = flow::from_random(10'000, 42);
  auto xs = test::drain(*a, 7);
  auto ys = test::drain(*b, 4096);
  REQUIRE(xs.size() == 10'000);
  CHECK(xs == ys);
  // Element i is element i of uniform_ints(seed, lo, hi).
  CHECK(xs == test::random_values(10'000, 42));
  auto c = flow::from_random(10'000, 43);
  CHECK(test::drain(*c, 100) != xs);
}

TEST_CASE("from_random: honours lo and hi, including lo == hi and the full "
          "int64 range",
          "[random][sources]") {
  using range = std::pair<std::int64_t, std::int64_t>;
  auto r = GENERATE(values<range>({{-3, 3}, {9, 9}, {i64_min, i64_max}}));
  auto src = flow::from_random(5000, 1, r.first, r.second);
  auto xs = test::drain(*src, 1000);
  REQUIRE(xs.size() == 5000);
  for (auto x : xs) {
    REQUIRE(x >= r.first);
    REQUIRE(x <= r.second);
  }
  CHECK(xs == test::random_values(5000, 1, r.first, r.second));
}

TEST_CASE("from_random: zero elements is an empty, exhausted source",
          "[random][sources]") {
  auto src = flow::from_random(0, 1);
  CHECK(src->exhausted());
  CHECK(src->next(10).empty());
}

TEST_CASE("from_random: lo > hi is rejected at setup", "[random][sources]") {
  CHECK_THROWS_AS(flow::from_random(10, 1, 5, 4), std::invalid_argument);
}
