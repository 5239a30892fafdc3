// flow::kll against exact quantiles of the sorted data: skewed and
// duplicate-heavy data, split into 1, 2 and 7 parts, added in batches of 1, 7
// and 65,536 and merged along random trees.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "flow/quantiles.hpp"

#include "sketch_support.hpp"

using namespace flow;
using flow::test::splitmix;

namespace {

const std::vector<double> probes = {0,   .01, .05, .1,  .25, .5,
                                    .75, .9,  .95, .99, 1};

/// Exponential (rate 1).
std::vector<double> exponential(std::uint64_t seed, std::size_t n) {
  splitmix g{seed};
  std::vector<double> xs(n);
  for (auto& x : xs)
    x = -std::log(g.unit());
  return xs;
}

/// Lognormal (mu 0, sigma 2), from Box-Muller normals.
std::vector<double> lognormal(std::uint64_t seed, std::size_t n) {
  splitmix g{seed};
  std::vector<double> xs(n);
  for (auto& x : xs) {
    auto z = std::sqrt(-2 * std::log(g.unit()))
             * std::cos(6.283185307179586 * g.unit());
    x = std::exp(2 * z);
  }
  return xs;
}

/// Zipf-like integers: floor of a Pareto(1.1), so 1 is very frequent and the
/// tail is long.
std::vector<double> zipf(std::uint64_t seed, std::size_t n) {
  splitmix g{seed};
  std::vector<double> xs(n);
  for (auto& x : xs)
    x = std::floor(std::pow(g.unit(), -1 / 1.1));
  return xs;
}

/// Ten distinct values, unequally frequent.
std::vector<double> ten_values(std::uint64_t seed, std::size_t n) {
  splitmix g{seed};
  std::vector<double> xs(n);
  for (auto& x : xs) {
    auto u = g.unit();
    x = std::floor(10 * u * u) * 1.5 - 3; // more small values
  }
  return xs;
}

/// Increasing values: the order that most stresses a compactor.
std::vector<double> sorted_input(std::uint64_t, std::size_t n) {
  std::vector<double> xs(n);
  for (std::size_t i = 0; i < n; ++i)
    xs[i] = static_cast<double>(i);
  return xs;
}

/// The distance from q * n to the rank interval of v in the sorted data:
/// [#{x < v}, #{x <= v}], so a value with many duplicates covers all ranks it
/// holds. As a fraction of n.
double rank_error(const std::vector<double>& sorted, double q, double v) {
  auto n = static_cast<double>(sorted.size());
  auto lo = static_cast<double>(
    std::lower_bound(sorted.begin(), sorted.end(), v) - sorted.begin());
  auto hi = static_cast<double>(
    std::upper_bound(sorted.begin(), sorted.end(), v) - sorted.begin());
  auto target = q * n;
  if (target < lo)
    return (lo - target) / n;
  if (target > hi)
    return (target - hi) / n;
  return 0.0;
}

/// Largest rank error of the sketch over the probes, and the rank() error at
/// the exact quantiles; checks the exact parts on the way.
double worst_error(const kll& s, std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  CHECK(s.count() == xs.size());
  CHECK(s.min() == xs.front());
  CHECK(s.max() == xs.back());
  double worst = 0;
  auto qs = s.quantiles(probes);
  for (std::size_t i = 0; i < probes.size(); ++i) {
    CHECK(qs[i] == s.quantile(probes[i]));
    worst = std::max(worst, rank_error(xs, probes[i], qs[i]));
  }
  CHECK(qs.front() == xs.front());
  CHECK(qs.back() == xs.back());
  auto n = static_cast<double>(xs.size());
  for (auto q : probes) {
    auto x = xs[static_cast<std::size_t>(q * (n - 1))];
    auto le = static_cast<double>(
      std::upper_bound(xs.begin(), xs.end(), x) - xs.begin());
    worst = std::max(worst, std::abs(s.rank(x) - le / n));
  }
  return worst;
}

using generator = std::vector<double> (*)(std::uint64_t, std::size_t);

struct dataset {
  const char* name;
  generator make;
};

const std::vector<dataset> datasets = {{"exponential", exponential},
                                       {"lognormal", lognormal},
                                       {"zipf", zipf},
                                       {"ten values", ten_values},
                                       {"sorted", sorted_input}};

} // namespace

TEST_CASE("kll: rank error within 1 % on skewed and duplicate-heavy data up "
          "to a million values",
          "[kll]") {
  double overall = 0;
  for (auto& d : datasets) {
    for (std::size_t n : {1000, 100'000, 1'000'000}) {
      for (std::uint64_t seed = 1; seed <= (n < 1'000'000 ? 5u : 1u);
           ++seed) {
        auto xs = d.make(seed, n);
        kll s;
        s.add(xs.data(), xs.size());
        auto err = worst_error(s, xs);
        INFO(d.name << " n " << n << " seed " << seed << " error " << err);
        CHECK(err <= 0.01);
        overall = std::max(overall, err);
      }
    }
  }
  WARN("kll k=400: worst rank error " << overall);
}

TEST_CASE("kll: any split and batch size and merge order stays within 1 %",
          "[kll]") {
  double overall = 0;
  for (auto& d : datasets) {
    auto xs = d.make(11, 200'000);
    for (std::size_t parts : {1, 2, 7}) {
      std::vector<kll> by_batch;
      for (std::size_t batch : {1, 7, 65536}) {
        auto states = test::partial_states(kll{}, xs, parts, batch);
        // The batch path reaches exactly the state of one add per element.
        if (!by_batch.empty())
          CHECK(states == by_batch);
        by_batch = states;
        for (std::uint64_t seed = 1; seed <= 3; ++seed) {
          INFO(d.name << " parts " << parts << " batch " << batch << " seed "
                      << seed);
          kll merged;
          REQUIRE(test::merge_randomly(states, seed, merged));
          auto err = worst_error(merged, xs);
          CHECK(err <= 0.01);
          overall = std::max(overall, err);
        }
      }
    }
  }
  WARN("kll k=400 after merges: worst rank error " << overall);
}

TEST_CASE("kll: seven partial sketches of a million skewed values merged in "
          "random orders",
          "[kll]") {
  auto xs = lognormal(3, 1'000'000);
  auto states = test::partial_states(kll{}, xs, 7, 65536);
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    INFO("seed " << seed);
    kll merged;
    REQUIRE(test::merge_randomly(states, seed, merged));
    CHECK(worst_error(merged, xs) <= 0.01);
    // Memory stays bounded whatever the merges.
    CHECK(merged.retained() < 3 * merged.k() + 8 * merged.levels());
  }
}

TEST_CASE("kll: the same input order gives the same sketch", "[kll]") {
  auto xs = exponential(5, 300'000);
  kll a;
  kll b;
  a.add(xs.data(), xs.size());
  for (auto x : xs)
    b.add(x);
  CHECK(a == b);
  CHECK(a.quantile(0.5) == b.quantile(0.5));
}

TEST_CASE("kll: edge cases", "[kll]") {
  kll s;
  CHECK(s.k() == kll::default_k);
  CHECK(s.empty());
  CHECK(std::isnan(s.quantile(0.5)));
  CHECK(std::isnan(s.min()));
  CHECK(std::isnan(s.rank(1.0)));
  CHECK_THROWS_AS(s.quantile(-0.1), std::invalid_argument);
  CHECK_THROWS_AS(s.quantile(1.5), std::invalid_argument);
  CHECK_THROWS_AS(s.quantile(std::nan("")), std::invalid_argument);
  s.add(std::nan(""));
  CHECK(s.empty());
  CHECK(s.nan_count() == 1);
  s.add(-0.0);
  CHECK(s.count() == 1);
  CHECK(!std::signbit(s.min()));
  s.add(std::int64_t{5});
  s.add(std::numeric_limits<double>::infinity());
  CHECK(s.max() == std::numeric_limits<double>::infinity());
  CHECK(s.quantile(0.5) == 5.0);
  CHECK(s.rank(-1.0) == 0.0);
  CHECK(s.rank(5.0) == Approx(2.0 / 3));
  CHECK(s.rank(std::numeric_limits<double>::infinity()) == 1.0);
  // Small sketches hold every value: exact.
  kll small;
  for (int i = 1; i <= 100; ++i)
    small.add(double(i));
  CHECK(small.quantile(0.5) == 50.0);
  CHECK(small.quantile(0.99) == 99.0);
  CHECK(small.quantile(0.001) == 1.0);
  small.add(7); // an int
  small.add(7u);
  CHECK(small.count() == 102);
  CHECK(small.rank(7.0) == Approx(9.0 / 102));
  // Different k refuse to merge and leave the sketch unchanged.
  kll other{200};
  other.add(1.0);
  auto before = small;
  CHECK(!small.merge(other));
  CHECK(small == before);
  CHECK(small.merge(small));
  CHECK(small.count() == 204);
  CHECK_THROWS_AS(kll{7}, std::invalid_argument);
  CHECK_THROWS_AS(kll{70000}, std::invalid_argument);
}

TEST_CASE("kll: a CAF binary round trip keeps the state and invalid states "
          "are rejected",
          "[kll][serialization]") {
  auto xs = zipf(8, 500'000);
  kll s;
  s.add(xs.data(), xs.size());
  s.add(std::nan(""));
  // Infinities are values, and travel as bit patterns.
  s.add(std::numeric_limits<double>::infinity());
  s.add(-std::numeric_limits<double>::infinity());
  auto bytes = test::to_bytes(s);
  REQUIRE(!bytes.empty());
  kll loaded{8};
  REQUIRE(!test::from_bytes(bytes, loaded));
  CHECK(loaded == s);
  CHECK(loaded.quantiles(probes) == s.quantiles(probes));
  CHECK(test::to_bytes(loaded) == bytes);
  // A loaded sketch keeps evolving exactly as the original.
  auto more = zipf(9, 100'000);
  loaded.add(more.data(), more.size());
  s.add(more.data(), more.size());
  CHECK(loaded == s);
  // Empty sketches round-trip too.
  kll empty;
  kll empty_loaded{8};
  REQUIRE(!test::from_bytes(test::to_bytes(empty), empty_loaded));
  CHECK(empty_loaded == empty);
  // Layout: k (4 bytes), n (8), nan count (8), generator (8), min, max,
  // levels. k = 0x01010101 is out of range.
  kll rejected;
  auto bad_k = bytes;
  std::fill(bad_k.begin(), bad_k.begin() + 4, char{1});
  CHECK(code_of(test::from_bytes(bad_k, rejected)) == errc::protocol_violation);
  // A count the level weights do not add up to.
  auto bad_n = bytes;
  std::fill(bad_n.begin() + 4, bad_n.begin() + 12, char{1});
  CHECK(code_of(test::from_bytes(bad_n, rejected)) == errc::protocol_violation);
  // A maximum (bytes 36..43) of 0.0, below the items.
  auto bad_max = bytes;
  std::fill(bad_max.begin() + 36, bad_max.begin() + 44, char{0});
  CHECK(code_of(test::from_bytes(bad_max, rejected))
        == errc::protocol_violation);
  // Truncated.
  auto cut = bytes;
  cut.resize(cut.size() / 2);
  CHECK(test::from_bytes(cut, rejected));
}
