// The flat map of general keys the manager and its shards keep
// (libflow/src/engine/key_map.hpp), against std::map as the reference.

#include "support.hpp"

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/key_map.hpp"

using flow::key;
using flow::key_part;
using flow::detail::key_map;

namespace {

/// A key of one of the kinds the engine meets: integers (negative too),
/// strings (empty, long, non-ASCII) and composites with NULL parts.
key random_key(std::mt19937_64& rng, std::uint64_t range) {
  auto n = static_cast<std::int64_t>(rng() % range);
  switch (rng() % 4) {
    case 0:
      return key{n - static_cast<std::int64_t>(range / 2)};
    case 1:
      return key{std::string(static_cast<std::size_t>(n % 40), 'x')
                 + "é" + std::to_string(n)};
    case 2:
      return key::composite({key_part{n}, key_part{std::nullopt}});
    default:
      return key::composite({key_part{n % 7 == 0},
                             key_part{"r" + std::to_string(n)}});
  }
}

} // namespace

TEST_CASE("key map: random keys of every kind agree with std::map, in "
          "arrival order",
          "[key_map]") {
  for (std::uint64_t range : {5u, 300u, 100000u}) {
    INFO("range " << range);
    std::mt19937_64 rng{range};
    key_map m;
    std::map<key, flow::int128> ref;
    std::vector<key> arrival;
    for (int i = 0; i < 60000; ++i) {
      auto k = random_key(rng, range);
      auto x = static_cast<std::int64_t>(rng() % 2001) - 1000;
      bool seen = ref.count(k) > 0;
      // Half the inserts move the key in, half copy it.
      auto [agg, fresh] = (i % 2 == 0) ? m.try_emplace(k)
                                       : m.try_emplace(key{k});
      REQUIRE(fresh == !seen);
      if (fresh)
        arrival.push_back(k);
      agg->add(x);
      ref[k] += x;
    }
    REQUIRE(m.size() == ref.size());
    for (auto& [k, sum] : ref) {
      auto* agg = m.find(k);
      REQUIRE(agg != nullptr);
      CHECK(agg->sum == sum);
    }
    // A key never added is not found.
    CHECK(m.find(key{"never added"}) == nullptr);
    // The entries come in the order their keys came first, sources 0.
    auto& entries = m.entries();
    REQUIRE(entries.size() == arrival.size());
    for (std::size_t i = 0; i < arrival.size(); ++i) {
      CHECK(entries[i].key == arrival[i]);
      CHECK(entries[i].sources == 0);
    }
    auto taken = m.take();
    CHECK(taken.size() == ref.size());
    CHECK(m.empty());
    CHECK(m.find(arrival.front()) == nullptr);
    // The map is usable again after take().
    auto [agg, fresh] = m.try_emplace(arrival.front());
    CHECK(fresh);
    agg->add(7);
    CHECK(m[arrival.front()].sum == 7);
    CHECK(m.size() == 1);
  }
}

TEST_CASE("key map: reserve keeps every key, and operator[] makes an empty "
          "aggregate",
          "[key_map]") {
  key_map m;
  m.reserve(1000);
  for (std::int64_t i = 0; i < 5000; ++i)
    m[key{i * 1000003}].add(i);
  REQUIRE(m.size() == 5000);
  for (std::int64_t i = 0; i < 5000; ++i) {
    auto* agg = m.find(key{i * 1000003});
    REQUIRE(agg != nullptr);
    CHECK(agg->sum == i);
    CHECK(agg->count == 1);
  }
  CHECK(m[key{"new"}].empty());
  CHECK(m.size() == 5001);
  m.clear();
  CHECK(m.empty());
  CHECK(m.find(key{0}) == nullptr);
}

TEST_CASE("key map: options::expected_keys too low, exact, too high or "
          "absurd gives the same keyed result",
          "[key_map][pipeline]") {
  // String and composite keys: the manager's general map, which reserves
  // room for the hint (capped: an absurd one must not fail the job).
  std::vector<flow::keyed_value> xs;
  for (std::int64_t i = 0; i < 30000; ++i)
    xs.push_back({i % 2 == 0 ? key{"s" + std::to_string(i % 5003)}
                             : key::composite({key_part{i % 4001},
                                               key_part{std::nullopt}}),
                  i});
  auto run = [&](std::size_t hint) {
    flow::options opts;
    opts.inline_elements = 0; // the engine's manager, not the fast path
    opts.batch_size = 1000;
    opts.expected_keys = hint;
    return test::ok(flow::pipeline<flow::keyed_value>{}
                      .with(opts)
                      .add(flow::from_container(xs))
                      .reduce(flow::sum_by_key())
                      .run());
  };
  auto base = run(0);
  REQUIRE(base.keys.size() == 5003 + 4001);
  CHECK(base.aggregated == xs.size());
  for (std::size_t hint : {std::size_t{10}, base.keys.size(),
                           std::size_t{1} << 40,
                           std::numeric_limits<std::size_t>::max()}) {
    INFO("hint " << hint);
    auto res = run(hint);
    CHECK(res.aggregated == base.aggregated);
    REQUIRE(res.keys.size() == base.keys.size());
    for (std::size_t i = 0; i < res.keys.size(); ++i) {
      CHECK(res.keys[i].key == base.keys[i].key);
      CHECK(res.keys[i].agg == base.keys[i].agg);
    }
  }
}
