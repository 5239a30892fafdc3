// flow::first_by, last_by, top_k and histogram: results that depend only on
// the multiset of inputs (ties broken by the payload), checked against
// sequential references for every split and merge order.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "flow/key.hpp"
#include "flow/ordered.hpp"
#include "merge_orders.hpp"

using namespace flow;

namespace {

using row = std::pair<std::int64_t, std::string>;

/// Rows with few distinct orders and payloads, so ties are everywhere.
std::vector<row> tied_rows(std::uint64_t seed, std::size_t n) {
  std::mt19937_64 rng{seed};
  std::vector<row> xs;
  for (std::size_t i = 0; i < n; ++i)
    xs.emplace_back(static_cast<std::int64_t>(rng() % 40) - 20,
                    std::string(1 + rng() % 3, static_cast<char>('a' + rng() % 5)));
  return xs;
}

template <class S>
S build(const std::vector<row>& xs, std::size_t parts, std::size_t batch,
        std::uint64_t seed, const S& empty) {
  return test::split_and_merge(
    xs, parts, batch, seed, empty,
    [](S& s, const row& x) { s.add(x.first, x.second); },
    [](S& s, const row* p, std::size_t n) {
      for (std::size_t i = 0; i < n; ++i)
        s.add(p[i].first, p[i].second);
    });
}

template <class S>
S sequential(const std::vector<row>& xs, const S& empty) {
  auto s = empty;
  for (const auto& x : xs)
    s.add(x.first, x.second);
  return s;
}

template <class S>
std::vector<char> save(const S& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  if (sink(x))
    throw std::runtime_error("cannot serialise");
  return buf;
}

/// Loads `buf` into `out`; true on success.
template <class S>
bool load(std::vector<char> buf, S& out) {
  caf::binary_deserializer source{nullptr, buf};
  return !source(out);
}

} // namespace

TEST_CASE("first_by/last_by: the extreme order wins with ties by payload for "
          "every split",
          "[ordered]") {
  auto xs = tied_rows(1, 20000);
  // Independent references: the smallest (order, payload) pair and the
  // largest.
  auto lo = *std::min_element(xs.begin(), xs.end());
  auto hi = *std::max_element(xs.begin(), xs.end());
  auto first = sequential(xs, first_by<std::string>{});
  auto last = sequential(xs, last_by<std::string>{});
  REQUIRE(first.has_value());
  CHECK(first.order() == lo.first);
  CHECK(first.payload() == lo.second);
  CHECK(last.order() == hi.first);
  CHECK(last.payload() == hi.second);
  for (auto parts : test::part_counts)
    for (auto batch : test::batch_sizes)
      for (std::uint64_t seed : {1u, 2u}) {
        INFO("parts " << parts << " batch " << batch << " seed " << seed);
        CHECK(build(xs, parts, batch, seed, first_by<std::string>{}) == first);
        CHECK(build(xs, parts, batch, seed, last_by<std::string>{}) == last);
      }
  CHECK(first_by<std::string>::state_name() == "flow.first_by<str>");
  CHECK(last_by<key>::state_name() == "flow.last_by<key>");
  CHECK(last_by<std::int64_t>::state_name() == "flow.last_by<i64>");
}

TEST_CASE("first_by/last_by: empty states merge and serialise", "[ordered]") {
  first_by<std::string> empty;
  CHECK(!empty.has_value());
  first_by<std::string> one;
  one.add(5, "x");
  auto copy = one;
  CHECK(copy.merge(empty));
  CHECK(copy == one);
  CHECK(empty.merge(one));
  CHECK(empty == one);
  last_by<key> k;
  k.add(7, key{"later"});
  k.add(7, key{std::int64_t{3}}); // integers order before strings
  k.add(-1, key{"zzz"});
  last_by<key> k2;
  REQUIRE(load(save(k), k2));
  CHECK(k2 == k);
  CHECK(k2.payload() == key{"later"});
  // An empty state with an order is corrupt: has (1 byte), order (8 bytes).
  auto bytes = save(last_by<std::int64_t>{});
  REQUIRE(bytes.size() == 1 + 8 + 8);
  last_by<std::int64_t> ok_state;
  CHECK(load(bytes, ok_state));
  bytes[8] = 1;
  last_by<std::int64_t> rejected;
  CHECK(!load(bytes, rejected));
}

TEST_CASE("top_k: the k best items for every split and merge order",
          "[ordered]") {
  auto xs = tied_rows(2, 20000);
  for (std::size_t k : {1u, 5u, 100u}) {
    // Independent reference: sort everything.
    auto all = xs;
    std::sort(all.begin(), all.end(), top_k<std::string>::before);
    all.resize(k);
    auto reference = sequential(xs, top_k<std::string>{k});
    CHECK(reference.items() == all);
    CHECK(reference.held() < 2 * k);
    for (auto parts : test::part_counts)
      for (auto batch : test::batch_sizes)
        for (std::uint64_t seed : {1u, 2u}) {
          INFO("k " << k << " parts " << parts << " batch " << batch);
          auto s = build(xs, parts, batch, seed, top_k<std::string>{k});
          CHECK(s == reference);
          CHECK(s.items() == all);
          CHECK(s.held() < 2 * k);
        }
  }
  // Fewer items than k: all of them, in order.
  top_k<std::string> few{3};
  few.add(1, "b");
  few.add(2, "z");
  few.add(1, "a");
  CHECK(few.items()
        == std::vector<row>{{2, "z"}, {1, "a"}, {1, "b"}});
  CHECK((top_k<std::string>::state_name() == "flow.top_k<str,i64>"));
  CHECK((top_k<key, double>::state_name() == "flow.top_k<key,f64>"));
}

TEST_CASE("top_k: parameters are checked and floats are made comparable",
          "[ordered]") {
  CHECK_THROWS_AS(top_k<std::string>{0}, std::invalid_argument);
  top_k<std::string> three{3};
  three.add(1, "a");
  top_k<std::string> four{4};
  four.add(2, "b");
  auto before = three;
  CHECK(!three.merge(four));
  CHECK(three == before);
  CHECK(top_k<std::string>{}.k() == 10);
  top_k<std::int64_t, double> f{2};
  f.add(std::numeric_limits<double>::quiet_NaN(), 1);
  f.add(-0.0, 2);
  f.add(0.0, 1);
  auto items = f.items();
  REQUIRE(items.size() == 2);
  CHECK(items[0].second == 1);
  CHECK(!std::signbit(items[1].first));
}

TEST_CASE("top_k: a CAF binary round trip keeps the state and a corrupted one "
          "is rejected",
          "[ordered][serialization]") {
  auto xs = tied_rows(3, 1000);
  auto s = sequential(xs, top_k<std::string>{4});
  top_k<std::string> loaded;
  REQUIRE(load(save(s), loaded));
  CHECK(loaded == s);
  CHECK(loaded.k() == 4);
  // Equal states serialise to equal bytes, however they were reached.
  CHECK(save(build(xs, 7, 7, 5, top_k<std::string>{4})) == save(s));
  // Items out of order: values are written best first; swap two payloads
  // of a k = 2 state with equal values.
  top_k<std::int64_t> t{2};
  t.add(9, 1);
  t.add(9, 2);
  auto bytes = save(t);
  // k (8), size of values (1), 2 values (16), size of payloads (1), payloads.
  REQUIRE(bytes.size() == 8 + 1 + 16 + 1 + 16);
  top_k<std::int64_t> good;
  CHECK(load(bytes, good));
  std::swap_ranges(bytes.begin() + 26, bytes.begin() + 34, bytes.begin() + 34);
  top_k<std::int64_t> rejected;
  CHECK(!load(bytes, rejected));
  // Doubles travel as bits: infinities and subnormals round-trip.
  top_k<key, double> d{3};
  d.add(std::numeric_limits<double>::infinity(), key{"a"});
  d.add(-std::numeric_limits<double>::infinity(), key{1});
  d.add(5e-324, key{"b"});
  top_k<key, double> d2;
  REQUIRE(load(save(d), d2));
  CHECK(d2 == d);
  first_by<double> fd;
  fd.add(1, -0.0);
  first_by<double> fd2;
  REQUIRE(load(save(fd), fd2));
  CHECK(std::signbit(fd2.payload()));
  auto zero_k = save(t);
  std::fill(zero_k.begin(), zero_k.begin() + 8, char{0});
  CHECK(!load(zero_k, rejected));
}

TEST_CASE("histogram: counts per bucket with exact bounds", "[ordered]") {
  auto inf = std::numeric_limits<double>::infinity();
  histogram h{{-1.0, 0.0, 2.5, 1e10}};
  for (double x : {-inf, -1.5, -1.0, -0.5, -0.0, 0.0, 2.4, 2.5, 1e10, inf,
                   std::numeric_limits<double>::quiet_NaN()})
    h.add(x);
  CHECK(h.counts() == std::vector<std::uint64_t>{2, 2, 3, 1, 2});
  CHECK(h.nan_count() == 1);
  CHECK(h.count() == 11);
  // int64 values compare exactly: 2^63 - 1025 converts to the double
  // 2^63 - 1024, the bound itself, but is below it.
  histogram big{{0x1p63 - 1024, 0x1p63}};
  big.add(std::int64_t{9223372036854774783});
  big.add(std::int64_t{9223372036854774784});
  big.add(std::numeric_limits<std::int64_t>::max());
  CHECK(big.counts() == std::vector<std::uint64_t>{1, 2, 0});
  histogram half{{0.5}};
  half.add(std::int64_t{0});
  half.add(std::int64_t{1});
  half.add(std::numeric_limits<std::int64_t>::min());
  CHECK(half.counts() == std::vector<std::uint64_t>{2, 1});
  histogram none;
  none.add(3.0);
  CHECK(none.counts() == std::vector<std::uint64_t>{1});
  for (auto bad : std::vector<std::vector<double>>{
         {1.0, 1.0}, {2.0, 1.0}, {std::nan("")}, {0.0, inf}, {-inf}})
    CHECK_THROWS_AS(histogram{bad}, std::invalid_argument);
  histogram other{{-1.0, 0.0, 2.5}};
  auto before = h;
  CHECK(!h.merge(other));
  CHECK(h == before);
}

TEST_CASE("histogram: every split and merge order gives the same counts",
          "[ordered]") {
  std::mt19937_64 rng{4};
  std::normal_distribution<double> normal{0.0, 3.0};
  std::vector<double> xs;
  for (int i = 0; i < 100000; ++i)
    xs.push_back(i % 1000 == 0 ? std::nan("") : normal(rng));
  histogram empty{{-5.0, -1.0, 0.0, 0.5, 1.0, 4.0}};
  auto reference = empty;
  for (auto x : xs)
    reference.add(x);
  CHECK(reference.nan_count() == 100);
  for (auto parts : test::part_counts)
    for (auto batch : test::batch_sizes) {
      auto s = test::split_and_merge(
        xs, parts, batch, 7, empty, [](histogram& h, double x) { h.add(x); },
        [](histogram& h, const double* p, std::size_t n) { h.add(p, n); });
      CHECK(s == reference);
    }
}

TEST_CASE("histogram: a CAF binary round trip keeps the state and a corrupted "
          "one is rejected",
          "[ordered][serialization]") {
  histogram h{{1.0, 2.0}};
  h.add(1.5);
  h.add(std::nan(""));
  histogram loaded;
  REQUIRE(load(save(h), loaded));
  CHECK(loaded == h);
  loaded.add(0.0);
  h.add(0.0);
  CHECK(loaded == h);
  histogram tiny{{-1e-310, 5e-324}};
  histogram tiny2;
  REQUIRE(load(save(tiny), tiny2));
  CHECK(tiny2.bounds() == tiny.bounds());
  auto bytes = save(h);
  // size (1), bounds (2 * 8, network order), size (1), 3 counts, NaN, flag.
  REQUIRE(bytes.size() == 1 + 16 + 1 + 24 + 8 + 1);
  auto bad = bytes;
  std::copy(bytes.begin() + 1, bytes.begin() + 9, bad.begin() + 9);
  histogram rejected;
  CHECK(!load(bad, rejected)); // bounds 1, 1
  bad = bytes;
  bad[17] = 2; // two counts for two bounds
  CHECK(!load(bad, rejected));
}
