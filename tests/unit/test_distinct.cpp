// flow::distinct_count (exact) and flow::hll (HyperLogLog) against a
// sequential std::set reference, for data split into 1, 2 and 7 parts, added
// in batches of 1, 7 and 65,536 and merged along random trees.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "flow/distinct.hpp"

#include "sketch_support.hpp"

using namespace flow;
using flow::test::splitmix;

namespace {

/// 200,000 integers, about 50,000 distinct, with negative values, 0 and the
/// extremes.
std::vector<std::int64_t> int_data() {
  splitmix g{42};
  std::vector<std::int64_t> xs;
  for (int i = 0; i < 200'000; ++i)
    xs.push_back(static_cast<std::int64_t>(g.next() % 50'000) - 20'000);
  xs.push_back(std::numeric_limits<std::int64_t>::min());
  xs.push_back(std::numeric_limits<std::int64_t>::max());
  xs.push_back(0);
  return xs;
}

double double_of(std::uint64_t u) {
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

/// Doubles with repeats, both zeros and NaNs of several payloads and signs.
std::vector<double> double_data() {
  splitmix g{7};
  std::vector<double> xs;
  for (int i = 0; i < 100'000; ++i)
    xs.push_back(static_cast<double>(g.next() % 20'000) * 0.25 - 1000.0);
  for (int i = 0; i < 100; ++i) {
    xs.push_back(0.0);
    xs.push_back(-0.0);
    xs.push_back(std::numeric_limits<double>::quiet_NaN());
    xs.push_back(-std::numeric_limits<double>::quiet_NaN());
    xs.push_back(double_of(0x7FF0000000000001u + static_cast<unsigned>(i)));
    xs.push_back(std::numeric_limits<double>::infinity());
    xs.push_back(-std::numeric_limits<double>::infinity());
  }
  return xs;
}

/// The reference: doubles by value, all NaNs one.
std::size_t distinct_doubles(const std::vector<double>& xs) {
  std::set<double> seen;
  bool nan = false;
  for (auto x : xs) {
    if (std::isnan(x))
      nan = true;
    else
      seen.insert(x); // 0.0 == -0.0, so the set keeps one
  }
  return seen.size() + (nan ? 1 : 0);
}

/// Strings of 1 to 20 characters, about 30,000 distinct.
std::vector<std::string> string_data() {
  splitmix g{99};
  std::vector<std::string> xs;
  for (int i = 0; i < 60'000; ++i) {
    auto v = g.next() % 30'000;
    xs.push_back(std::string(v % 7, 'x') + "user-" + std::to_string(v));
  }
  return xs;
}

} // namespace

// -- distinct_count -----------------------------------------------------------

TEST_CASE("distinct_count: integers give the std::set count for every split "
          "and batch size and merge order",
          "[distinct]") {
  auto xs = int_data();
  auto expected = std::set<std::int64_t>(xs.begin(), xs.end()).size();
  distinct_count sequential;
  for (auto x : xs)
    sequential.add(x);
  REQUIRE(sequential.count() == expected);
  for (std::size_t parts : {1, 2, 7}) {
    for (std::size_t batch : {1, 7, 65536}) {
      auto states = test::partial_states(distinct_count{}, xs, parts, batch);
      for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        INFO("parts " << parts << " batch " << batch << " seed " << seed);
        distinct_count merged;
        REQUIRE(test::merge_randomly(states, seed, merged));
        CHECK(merged.count() == expected);
        CHECK(merged == sequential);
      }
    }
  }
}

TEST_CASE("distinct_count: doubles by value with one zero and one NaN",
          "[distinct]") {
  auto xs = double_data();
  auto expected = distinct_doubles(xs);
  distinct_count sequential;
  for (auto x : xs)
    sequential.add(x);
  REQUIRE(sequential.count() == expected);
  for (std::size_t parts : {1, 2, 7}) {
    for (std::size_t batch : {1, 7, 65536}) {
      INFO("parts " << parts << " batch " << batch);
      auto states = test::partial_states(distinct_count{}, xs, parts, batch);
      distinct_count merged;
      REQUIRE(test::merge_randomly(states, parts * 31 + batch, merged));
      CHECK(merged.count() == expected);
      CHECK(merged == sequential);
    }
  }
}

TEST_CASE("distinct_count: strings and keys in random merge orders",
          "[distinct]") {
  auto xs = string_data();
  auto expected = std::set<std::string>(xs.begin(), xs.end()).size();
  std::vector<key> keys(xs.begin(), xs.end());
  for (std::size_t parts : {1, 2, 7}) {
    INFO("parts " << parts);
    auto states = test::partial_states(distinct_count{}, xs, parts, 1);
    auto key_states = test::partial_states(distinct_count{}, keys, parts, 1);
    distinct_count merged;
    distinct_count merged_keys;
    REQUIRE(test::merge_randomly(states, parts, merged));
    REQUIRE(test::merge_randomly(key_states, parts + 100, merged_keys));
    CHECK(merged.count() == expected);
    // A string key is the string.
    CHECK(merged_keys == merged);
  }
}

TEST_CASE("distinct_count: kinds are told apart and keys are their values",
          "[distinct]") {
  distinct_count d;
  d.add(std::int64_t{1});
  d.add(1); // int
  d.add(1u);
  d.add(key{1});
  CHECK(d.count() == 1);
  d.add(1.0);
  CHECK(d.count() == 2);
  d.add("1");
  d.add(std::string{"1"});
  d.add(key{"1"});
  d.add(std::string_view{"1"});
  CHECK(d.count() == 3);
  d.add(0.0);
  d.add(-0.0);
  CHECK(d.count() == 4);
  d.add(std::nan("1"));
  d.add(-std::nan("2"));
  CHECK(d.count() == 5);
  d.add(std::int64_t{0}); // the integer 0 is not the double 0.0
  CHECK(d.count() == 6);
  distinct_count e;
  CHECK(e.empty());
  CHECK(e.merge(d));
  CHECK(e == d);
  CHECK(e.merge(e));
  CHECK(e == d);
}

TEST_CASE("distinct_count: a CAF binary round trip keeps the state and "
          "corrupted bytes are rejected",
          "[distinct][serialization]") {
  auto ints = int_data();
  auto doubles = double_data();
  auto strings = string_data();
  distinct_count d;
  d.add(ints.data(), ints.size());
  d.add(doubles.data(), doubles.size());
  for (auto& s : strings)
    d.add(s);
  auto bytes = test::to_bytes(d);
  REQUIRE(!bytes.empty());
  distinct_count loaded;
  REQUIRE(!test::from_bytes(bytes, loaded));
  CHECK(loaded == d);
  CHECK(loaded.count() == d.count());
  // Equal states serialise to equal bytes, however they were built.
  distinct_count other;
  for (auto i = strings.size(); i-- > 0;)
    other.add(strings[i]);
  for (auto i = doubles.size(); i-- > 0;)
    other.add(doubles[i]);
  auto parts = test::partial_states(distinct_count{}, ints, 7, 7);
  distinct_count merged_ints;
  REQUIRE(test::merge_randomly(parts, 5, merged_ints));
  REQUIRE(other.merge(merged_ints));
  CHECK(test::to_bytes(other) == bytes);
  // Two integers {1, 2}: a one-byte length, then two 8-byte words. Writing
  // the first over the second repeats a value, which would count it twice.
  distinct_count small;
  small.add(std::int64_t{1});
  small.add(std::int64_t{2});
  auto sb = test::to_bytes(small);
  REQUIRE(sb.size() >= 17);
  distinct_count probe;
  REQUIRE(!test::from_bytes(sb, probe));
  CHECK(probe == small);
  auto dup = sb;
  std::copy(dup.begin() + 1, dup.begin() + 9, dup.begin() + 9);
  distinct_count rejected;
  auto err = test::from_bytes(dup, rejected);
  REQUIRE(err);
  CHECK(code_of(err) == errc::protocol_violation);
  // Cut short.
  auto cut = sb;
  cut.resize(12);
  CHECK(test::from_bytes(cut, rejected));
  // A double whose bits are -0.0 is not canonical. The sign is the top byte
  // of the word, found from the serialisation of -2.0 (bits 0xC000...).
  distinct_count zero;
  zero.add(0.0);
  distinct_count minus_two;
  minus_two.add(-2.0);
  auto zb = test::to_bytes(zero);
  auto mb = test::to_bytes(minus_two);
  REQUIRE(zb.size() == mb.size());
  auto top = std::find(mb.begin(), mb.end(), static_cast<char>(0xC0))
             - mb.begin();
  REQUIRE(top < static_cast<std::ptrdiff_t>(mb.size()));
  auto neg = zb;
  neg[static_cast<std::size_t>(top)] = static_cast<char>(0x80);
  CHECK(code_of(test::from_bytes(neg, rejected)) == errc::protocol_violation);
  CHECK(!test::from_bytes(mb, rejected));
  CHECK(rejected == minus_two);
}

// -- hll ----------------------------------------------------------------------

TEST_CASE("hll: the state depends only on the set of values, not on the "
          "split or batch size or merge order",
          "[hll]") {
  auto xs = int_data();
  auto exact = static_cast<double>(
    std::set<std::int64_t>(xs.begin(), xs.end()).size());
  hll sequential;
  for (auto x : xs)
    sequential.add(x);
  CHECK(std::abs(sequential.estimate() / exact - 1)
        < 4 * sequential.standard_error());
  for (std::size_t parts : {1, 2, 7}) {
    for (std::size_t batch : {1, 7, 65536}) {
      auto states = test::partial_states(hll{}, xs, parts, batch);
      for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        INFO("parts " << parts << " batch " << batch << " seed " << seed);
        hll merged;
        REQUIRE(test::merge_randomly(states, seed, merged));
        CHECK(merged == sequential);
        CHECK(merged.estimate() == sequential.estimate());
      }
    }
  }
  // Sparse states (few values each) merge to the same state as well.
  std::vector<std::int64_t> few(xs.begin(), xs.begin() + 3000);
  hll few_sequential;
  few_sequential.add(few.data(), few.size());
  for (std::size_t parts : {2, 7}) {
    auto states = test::partial_states(hll{}, few, parts, 7);
    CHECK(states.front().is_sparse());
    hll merged;
    REQUIRE(test::merge_randomly(states, parts, merged));
    CHECK(merged == few_sequential);
  }
}

TEST_CASE("hll: relative error over 200 seeds is within the standard error",
          "[hll]") {
  // Values seed * 2^40 + i: structured inputs, which only a good hash turns
  // into independent registers.
  const double se = hll{}.standard_error();
  REQUIRE(se == Approx(0.0081).epsilon(0.01));
  for (std::int64_t n : {100, 10'000, 40'000, 100'000}) {
    double sum_sq = 0;
    double sum = 0;
    double worst = 0;
    const int seeds = 200;
    for (std::int64_t seed = 1; seed <= seeds; ++seed) {
      hll h;
      for (std::int64_t i = 0; i < n; ++i)
        h.add((seed << 40) + i);
      auto rel = h.estimate() / static_cast<double>(n) - 1;
      sum += rel;
      sum_sq += rel * rel;
      worst = std::max(worst, std::abs(rel));
    }
    auto rms = std::sqrt(sum_sq / seeds);
    auto bias = sum / seeds;
    INFO("n " << n << " rms " << rms << " bias " << bias << " worst "
              << worst);
    CHECK(worst < 4 * se);
    CHECK(std::abs(bias) < 3 * se / std::sqrt(double(seeds)) + 1e-3);
    if (n >= 10'000)
      CHECK(rms < 1.1 * se);
    else // a few collisions, which the estimator corrects on average
      CHECK(worst * static_cast<double>(n) < 3.0);
    WARN("hll p=14 n=" << n << ": rms " << rms << ", bias " << bias
                       << ", worst " << worst);
  }
}

TEST_CASE("hll: strings and doubles are estimated as well as integers",
          "[hll]") {
  const double se = hll{}.standard_error();
  double sum_sq = 0;
  const int seeds = 50;
  for (int seed = 1; seed <= seeds; ++seed) {
    hll strings;
    hll doubles;
    for (int i = 0; i < 20'000; ++i) {
      strings.add("s" + std::to_string(seed) + "-" + std::to_string(i));
      doubles.add(seed * 1e6 + i * 0.5);
    }
    for (auto* h : {&strings, &doubles}) {
      auto rel = h->estimate() / 20'000.0 - 1;
      CHECK(std::abs(rel) < 4 * se);
      sum_sq += rel * rel;
    }
  }
  CHECK(std::sqrt(sum_sq / (2 * seeds)) < 1.2 * se);
}

TEST_CASE("hll: small and extreme precisions and large counts", "[hll]") {
  hll empty;
  CHECK(empty.estimate() == 0.0);
  CHECK(empty.precision() == 14);
  hll one;
  one.add(std::int64_t{0});
  one.add(0);
  CHECK(one.estimate() == Approx(1.0).epsilon(0.01));
  for (int p : {4, 10, 18}) {
    hll h{p};
    const std::int64_t n = 1'000'000;
    for (std::int64_t i = 0; i < n; ++i)
      h.add(i);
    INFO("p " << p << " estimate " << h.estimate());
    CHECK(std::abs(h.estimate() / double(n) - 1) < 4 * h.standard_error());
  }
  CHECK_THROWS_AS(hll{3}, std::invalid_argument);
  CHECK_THROWS_AS(hll{19}, std::invalid_argument);
}

TEST_CASE("hll: states of different precisions do not merge", "[hll]") {
  hll a{12};
  hll b{14};
  a.add(1);
  b.add(2);
  auto before = a;
  CHECK(!a.merge(b));
  CHECK(a == before);
  CHECK(a != b);
}

TEST_CASE("hll: a CAF binary round trip keeps the state and invalid states "
          "are rejected",
          "[hll][serialization]") {
  for (int n : {0, 100, 100'000}) {
    INFO("n " << n);
    hll h;
    for (int i = 0; i < n; ++i)
      h.add(i);
    auto bytes = test::to_bytes(h);
    hll loaded{4};
    REQUIRE(!test::from_bytes(bytes, loaded));
    CHECK(loaded == h);
    CHECK(loaded.estimate() == h.estimate());
    CHECK(test::to_bytes(loaded) == bytes);
  }
  // Precision out of range (the first byte).
  hll h;
  for (int i = 0; i < 100'000; ++i)
    h.add(i);
  REQUIRE(!h.is_sparse());
  auto bytes = test::to_bytes(h);
  hll rejected;
  auto bad_p = bytes;
  bad_p[0] = 19;
  CHECK(code_of(test::from_bytes(bad_p, rejected)) == errc::protocol_violation);
  // A register above 64 - p + 1 = 51 cannot come from a 64-bit hash. The
  // dense registers are the last 2^14 bytes.
  auto bad_reg = bytes;
  bad_reg[bad_reg.size() - 100] = 52;
  CHECK(code_of(test::from_bytes(bad_reg, rejected))
        == errc::protocol_violation);
  auto ok_reg = bytes;
  ok_reg[ok_reg.size() - 100] = 51;
  CHECK(!test::from_bytes(ok_reg, rejected));
  // The same precision byte under a different precision: wrong size.
  auto other_p = bytes;
  other_p[0] = 13;
  CHECK(code_of(test::from_bytes(other_p, rejected))
        == errc::protocol_violation);
  // A failed load leaves an empty state.
  CHECK(rejected == hll{});
}
