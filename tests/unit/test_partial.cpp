// flow::partial: what a reducer builds from one batch.

#include "support.hpp"

#include <cstdint>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

using flow::aggregate;
using flow::key;
using flow::partial;

namespace {

// Looks an entry up by a linear scan (independent of partial's index).
const aggregate* find(const partial& p, const key& k) {
  for (auto& [ek, agg] : p.entries())
    if (ek == k)
      return &agg;
  return nullptr;
}

} // namespace

TEST_CASE("partial: values added under one key are aggregated", "[partial]") {
  partial p;
  std::vector<std::int64_t> xs{5, 0, 7, -3, 0};
  for (auto x : xs)
    p.add(key{"k"}, x);
  REQUIRE(p.entries().size() == 1);
  auto agg = p.entries()[0].second;
  CHECK(agg.sum == test::naive_sum(xs));
  CHECK(agg.count == xs.size());
  CHECK(agg.min == -3);
  CHECK(agg.max == 7);
  CHECK(p.rejected() == 0);
  CHECK_FALSE(p.overflowed());
}

TEST_CASE("partial: entries keep the order of first appearance", "[partial]") {
  partial p;
  p.add(key{"z"}, 1);
  p.add(key{3}, 1);
  p.add(key{"a"}, 1);
  p.add(key{3}, 1);
  p.add(key{"z"}, 1);
  REQUIRE(p.entries().size() == 3);
  CHECK(p.entries()[0].first == key{"z"});
  CHECK(p.entries()[1].first == key{3});
  CHECK(p.entries()[2].first == key{"a"});
  CHECK(p.entries()[0].second.count == 2);
  CHECK(p.entries()[1].second.count == 2);
  CHECK(p.entries()[2].second.count == 1);
}

TEST_CASE("partial: many interleaved keys (beyond the linear-scan limit) stay "
          "separate and exact",
          "[partial]") {
  // Few keys use a linear scan, many a hash index: cross that boundary with
  // keys revisited in an interleaved order, int and string keys together.
  auto nkeys = GENERATE(1, 7, 8, 9, 10, 100, 2000);
  partial p;
  std::map<key, std::pair<flow::int128, std::uint64_t>> ref;
  for (std::int64_t i = 0; i < 20'000; ++i) {
    auto j = (i * 7919) % nkeys;
    key k = (j % 2 == 0) ? key{j} : key{"s" + std::to_string(j)};
    auto v = (i % 5 == 0) ? -i : i * 3;
    p.add(k, v);
    ref[k].first += v;
    ++ref[k].second;
  }
  INFO("keys: " << nkeys);
  REQUIRE(p.entries().size() == ref.size());
  for (auto& [k, r] : ref) {
    auto agg = find(p, k);
    REQUIRE(agg != nullptr);
    CHECK(agg->sum == r.first);
    CHECK(agg->count == r.second);
  }
}

TEST_CASE("partial: keys added after reserve, moved in or copied, are found "
          "again",
          "[partial]") {
  // reserve() may build the index before the linear-scan limit is passed:
  // every later key must still be found through it (no duplicates), with
  // room reserved for fewer, as many or more keys than come.
  auto room = GENERATE(0, 3, 8, 9, 100, 5000);
  auto nkeys = GENERATE(1, 5, 9, 100, 3000);
  INFO("room " << room << ", keys " << nkeys);
  partial p;
  p.reserve(static_cast<std::size_t>(room));
  std::map<key, std::uint64_t> ref;
  for (std::int64_t i = 0; i < 3 * nkeys; ++i) {
    // Reserved again with entries there (a partial that takes several
    // batches).
    if (i == nkeys)
      p.reserve(static_cast<std::size_t>(room));
    auto j = (i * 7919) % nkeys;
    auto make = [&] {
      auto b = key::builder{};
      b.add_int(j);
      b.add_string("a composite key longer than the short-string buffer");
      return b.build();
    };
    if (i % 2 == 0)
      p.row(make()).add(j);
    else
      p.row(static_cast<const key&>(make())).add(j);
    ++ref[make()];
  }
  REQUIRE(p.entries().size() == ref.size());
  for (auto& [k, n] : ref) {
    auto agg = find(p, k);
    REQUIRE(agg != nullptr);
    CHECK(agg->count == n);
  }
}

TEST_CASE("partial: pre-folded aggregates merge under their key", "[partial]") {
  std::vector<std::int64_t> xs{1, -2, 3};
  std::vector<std::int64_t> ys{10, 20};
  partial p;
  p.add(key{1}, aggregate::of(xs.data(), xs.size()));
  p.add(key{1}, aggregate::of(ys.data(), ys.size()));
  p.add(key{2}, aggregate::of(ys.data(), ys.size()));
  REQUIRE(p.entries().size() == 2);
  auto a = find(p, key{1});
  REQUIRE(a);
  CHECK(a->sum == test::naive_sum(xs) + test::naive_sum(ys));
  CHECK(a->count == 5);
  CHECK(a->min == -2);
  CHECK(a->max == 20);
  CHECK_FALSE(p.overflowed());
}

TEST_CASE("partial: merging pre-folded aggregates that overflow sets the flag",
          "[partial][overflow]") {
  aggregate big;
  big.sum = static_cast<flow::int128>(
    (static_cast<unsigned __int128>(1) << 126));
  big.count = 1;
  big.min = big.max = 1;
  partial p;
  p.add(key{"k"}, big);
  CHECK_FALSE(p.overflowed());
  p.add(key{"k"}, big); // 2^127: one past the maximum
  CHECK(p.overflowed());
  // The key's aggregate was left as it was before the failed merge.
  auto a = find(p, key{"k"});
  REQUIRE(a);
  CHECK(a->sum == big.sum);
  CHECK(a->count == 1);
}

TEST_CASE("partial: reject counts elements per reason", "[partial][reject]") {
  partial p;
  p.reject("negative");
  p.reject("zero", 3);
  p.reject("negative", 2);
  CHECK(p.rejected() == 6);
  REQUIRE(p.reasons().size() == 2);
  CHECK(p.reasons()[0] == std::make_pair(std::string{"negative"},
                                         std::uint64_t{3}));
  CHECK(p.reasons()[1] == std::make_pair(std::string{"zero"},
                                         std::uint64_t{3}));
  CHECK(p.entries().empty());
}

TEST_CASE("partial: take_entries empties it and it can be filled again",
          "[partial]") {
  partial p;
  for (std::int64_t i = 0; i < 50; ++i)
    p.add(key{i}, i);
  auto taken = p.take_entries();
  CHECK(taken.size() == 50);
  CHECK(p.entries().empty());
  // After the take, the old index must not point into the new entries.
  for (std::int64_t i = 0; i < 20; ++i)
    p.add(key{i % 12}, 1);
  REQUIRE(p.entries().size() == 12);
  for (std::int64_t i = 0; i < 12; ++i) {
    auto a = find(p, key{i});
    REQUIRE(a);
    CHECK(a->count == (i < 8 ? 2u : 1u));
  }
}

TEST_CASE("partial: the compact entries taken grouped come in ascending "
          "groups, each entry once, with the ends of the groups",
          "[partial][shards]") {
  for (std::size_t n : {1, 2, 3, 7}) {
    INFO("groups " << n);
    partial p;
    std::map<std::int64_t, std::int64_t> sums;
    for (std::int64_t i = 0; i < 5000; ++i) {
      auto k = (i * 7919) % 1500 - 700;
      p.add(key{k}, i);
      sums[k] += i;
    }
    auto group = [n](std::int64_t k) {
      return static_cast<std::size_t>(static_cast<std::uint64_t>(k) * 31 % n);
    };
    // Stale storage, as a recycled vector comes (int_storage keeps its
    // entries): keys no partial holds, which must not reappear.
    flow::detail::int_entry stale;
    stale.key = 1'000'000'007;
    stale.add(99);
    std::vector<flow::detail::int_entry> xs(9000, stale);
    std::vector<std::uint32_t> ends{42};
    p.take_int_entries(xs, n, group, ends);
    REQUIRE(xs.size() == sums.size());
    REQUIRE(ends.size() == n);
    CHECK(ends.back() == xs.size());
    std::size_t at = 0;
    for (std::size_t g = 0; g < n; ++g) {
      CHECK(ends[g] >= at);
      for (; at < ends[g]; ++at)
        CHECK(group(xs[at].key) == g);
    }
    std::map<std::int64_t, std::int64_t> seen;
    for (auto& e : xs) {
      CHECK(seen.count(e.key) == 0);
      seen[e.key] = static_cast<std::int64_t>(e.sum);
    }
    CHECK(seen == sums);
    // Taken: the partial holds no compact key any more.
    std::vector<flow::detail::int_entry> rest(100, stale);
    p.take_int_entries(rest);
    CHECK(rest.empty());
    std::vector<std::uint32_t> rest_ends;
    p.take_int_entries(rest, n, group, rest_ends);
    CHECK(rest.empty());
  }
}

namespace {

/// An output element standing for `rows` rows, like pg::copy_row's blocks.
struct block_row {
  std::string bytes;
  std::uint64_t rows = 1;

  /// Opts in: a block of rows.
  static bool valid_block(const block_row& b) {
    return b.rows > 0 || b.bytes.empty();
  }
};

/// An output element whose `rows` is not a count (a name): one row each.
struct named_row {
  std::string rows;
};

/// An output element with a count called `rows` that did not opt in: one
/// row each, whatever the count says.
struct counted_row {
  std::uint64_t rows = 0;
};

} // namespace

TEST_CASE("partial: a row type with a member rows counts its rows, others "
          "one per element, through merges",
          "[partial][rows]") {
  partial a;
  CHECK(a.emitted_rows() == 0);
  a.emit(block_row{"a\nb\nc\n", 3});
  a.emit(block_row{"d\n"});
  a.emit(block_row{"", 0});
  CHECK(a.emitted_rows() == 4);
  // The empty block is not kept; a block of 0 rows with bytes is refused.
  CHECK(a.rows<block_row>().size() == 2);
  CHECK_THROWS_AS(a.emit(block_row{"h\n", 0}), std::logic_error);
  CHECK(a.emitted_rows() == 4);
  partial b;
  b.emit(block_row{"e\nf\n", 2});
  a.merge(std::move(b));
  CHECK(a.emitted_rows() == 6);
  partial c;
  c.emit(block_row{"g\n", 1});
  c.merge(std::move(a));
  CHECK(c.emitted_rows() == 7);
  partial n;
  n.emit(named_row{"three"});
  n.emit(named_row{"four"});
  CHECK(n.emitted_rows() == 2);
  partial z;
  z.emit(counted_row{0});
  z.emit(counted_row{7});
  CHECK(z.emitted_rows() == 2);
  partial s;
  s.emit(std::string{"x"});
  CHECK(s.emitted_rows() == 1);
}
