// Manager shards (options::manager_shards): the keyed state split by key
// hash over shard actors that merge in parallel, the manager keeping the
// batches, the accounting and the exactly-once check. Every other unit test
// runs with the default (one shard per hardware thread); these pin the
// number and check what sharding could get wrong: identical results for any
// number, key order, keys of mixed kinds, snapshots consistent with their
// counters, errors raised inside a shard, and flow control towards a shard
// that lags.

#include "support.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/meta/type_name.hpp>

using flow::key;
using namespace std::chrono_literals;

namespace {

/// The shard counts every check runs with (1: the manager holds the keys).
constexpr std::size_t shard_counts[] = {1, 2, 3, 7};

/// Options with `shards` manager shards, on the engine (not folded on the
/// calling thread).
flow::options with_shards(std::size_t shards) {
  flow::options opts;
  opts.manager_shards = shards;
  opts.inline_elements = 0;
  return opts;
}

void check_same(const std::vector<flow::key_result>& got,
                const std::vector<flow::key_result>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    REQUIRE(got[i].key == want[i].key);
    CHECK(got[i].agg == want[i].agg);
    CHECK(got[i].sources == want[i].sources);
  }
}

void check_sorted(const std::vector<flow::key_result>& keys) {
  for (std::size_t i = 1; i < keys.size(); ++i)
    REQUIRE(keys[i - 1].key < keys[i].key);
}

/// The elements the keys count.
std::uint64_t counted(const std::vector<flow::key_result>& keys) {
  std::uint64_t n = 0;
  for (auto& k : keys)
    n += k.agg.count;
  return n;
}

/// Stops `j` and returns its partial result, checked: balanced, and its
/// keys count exactly the elements it says were aggregated.
flow::job_result stop_checked(flow::job& j) {
  j.stop(std::chrono::seconds(10));
  REQUIRE(j.wait_for(std::chrono::seconds(60)));
  auto res = test::ok(j.wait());
  CHECK(res.partial);
  CHECK(res.balanced());
  CHECK(counted(res.keys) == res.aggregated);
  CHECK(res.key_count == res.keys.size());
  return res;
}

/// An aggregator state whose merge waits until `release` is set (user code
/// that runs in a shard).
struct gated_count {
  std::uint64_t n = 0;
  static std::atomic<bool> release;
  static std::atomic<int> merging;
  static std::string state_name() {
    return "test.gated_count";
  }
  void add() {
    ++n;
  }
  bool ok() const {
    return true;
  }
  bool merge(const gated_count& other) {
    ++merging;
    // Bounded: a failing test must not hang the suite.
    for (int i = 0; i < 3000 && !release; ++i)
      std::this_thread::sleep_for(10ms);
    n += other.n;
    return true;
  }
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 gated_count& x) {
    return f(caf::meta::type_name("test.gated_count"), x.n);
  }
};

std::atomic<bool> gated_count::release{false};
std::atomic<int> gated_count::merging{0};

} // namespace

TEST_CASE("shards: integer keys sum the same for any shard count, collected "
          "and streamed, in key order",
          "[shards][pipeline]") {
  std::vector<flow::key_result> want;
  for (auto shards : shard_counts) {
    for (std::size_t batch : {997, 65536}) {
      INFO("shards " << shards << ", batch " << batch);
      auto run = [&](flow::options opts) {
        return test::ok(flow::pipeline<flow::keyed_value>{}
                          .with(opts)
                          .add(flow::from_keyed_random(200'000, 5'000, 9))
                          .batch_size(batch)
                          .reducers(3)
                          .reduce(flow::sum_by_key())
                          .run());
      };
      auto res = run(with_shards(shards));
      REQUIRE(res.balanced());
      CHECK(res.aggregated == 200'000);
      CHECK(res.key_count == res.keys.size());
      check_sorted(res.keys);
      if (want.empty())
        want = res.keys;
      else
        check_same(res.keys, want);
      // Streamed to on_result_key: the same keys, one by one, in order.
      std::vector<flow::key_result> streamed;
      auto opts = with_shards(shards);
      opts.on_result_key = [&](const flow::key_result& k) {
        streamed.push_back(k);
      };
      auto res2 = run(opts);
      CHECK(res2.keys.empty());
      CHECK(res2.key_count == want.size());
      check_same(streamed, want);
    }
  }
  CHECK(want.size() == 5'000);
}

TEST_CASE("shards: integer keys at the int64 extremes, a shard left "
          "empty and labelled sources come out of two shards as out of one",
          "[shards][pipeline]") {
  // Two shards take the manager's two-way merge of the shards' sorted
  // keys; one shard (the manager's own keys) is the reference.
  constexpr auto lo = std::numeric_limits<std::int64_t>::min();
  constexpr auto hi = std::numeric_limits<std::int64_t>::max();
  auto keyed = [](std::vector<std::pair<std::int64_t, std::int64_t>> xs) {
    std::vector<flow::keyed_value> v;
    for (auto& [k, x] : xs)
      v.push_back({key{k}, x});
    return flow::from_container(std::move(v));
  };
  for (int shape = 0; shape < 2; ++shape) {
    auto run = [&](std::size_t shards, bool stream) {
      flow::pipeline<flow::keyed_value> p;
      if (shape == 0) {
        // Keys of both signs and both ends, in several batches; two
        // sources labelled with keys that also hold values.
        p.add(keyed({{hi, 1}, {lo, -2}, {0, 3}, {-1, 4}, {1, 5}, {hi, 6},
                     {lo + 1, 7}, {hi - 1, 8}, {lo, 9}}),
              key{hi})
          .add(keyed({{0, 10}, {-1, 11}, {2, 12}}), key{0})
          .add(keyed({{5, 13}, {hi, 14}}));
      } else {
        // One key: one of two shards holds nothing.
        p.add(keyed({{lo, 1}, {lo, 2}, {lo, 3}}), key{lo});
      }
      std::vector<flow::key_result> streamed;
      auto opts = with_shards(shards);
      if (stream)
        opts.on_result_key = [&](const flow::key_result& k) {
          streamed.push_back(k);
        };
      auto res = test::ok(
        p.with(opts).batch_size(2).reduce(flow::sum_by_key()).run());
      CHECK(res.balanced());
      if (!stream)
        return res.keys;
      CHECK(res.keys.empty());
      CHECK(res.key_count == streamed.size());
      return streamed;
    };
    INFO("shape " << shape);
    auto want = run(1, false);
    check_sorted(want);
    REQUIRE(want.size() == (shape == 0 ? 9u : 1u));
    CHECK(want.front().key == key{lo});
    if (shape == 0) {
      CHECK(want.back().key == key{hi});
      // hi: 1 + 6 + 14 over 3 values, the label of one source.
      CHECK(want.back().agg.sum == 21);
      CHECK(want.back().agg.count == 3);
      CHECK(want.back().sources == 1);
    } else {
      CHECK(want.front().agg.sum == 6);
      CHECK(want.front().sources == 1);
    }
    check_same(run(1, true), want);
    check_same(run(2, false), want);
    check_same(run(2, true), want);
    check_same(run(3, true), want);
  }
}

TEST_CASE("shards: string, integer and labelled keys with aggregator states "
          "give the same result for any shard count",
          "[shards][pipeline][aggregators]") {
  // A third of the keys are strings: a shard that receives one moves its
  // keys to the general map, the others may stay compact, and the result
  // merges both kinds in key order.
  std::vector<flow::key_result> want;
  std::vector<flow::exact_moments> want_moments;
  for (auto shards : shard_counts) {
    INFO("shards " << shards);
    flow::aggregators aggs;
    auto m = aggs.add("m", flow::exact_moments{});
    auto res = test::ok(
      flow::pipeline<std::int64_t>{}
        .with(with_shards(shards))
        .add(flow::from_range(0, 60'000))
        .aggregate_with(aggs)
        .batch_size(1000)
        .reducers(2)
        .reduce(flow::per_element<std::int64_t>(
          [=](std::int64_t i, flow::partial& out) {
            if (i % 3 == 0)
              out.add(key{"s" + std::to_string(i % 997)}, m,
                      static_cast<double>(i) / 8);
            else
              out.add(key{i % 1009}, i);
          }))
        .run());
    REQUIRE(res.balanced());
    check_sorted(res.keys);
    std::vector<flow::exact_moments> moments;
    for (auto& k : res.keys)
      if (k.key.is_string())
        moments.push_back(m.of(k));
    if (want.empty()) {
      want = res.keys;
      want_moments = moments;
      continue;
    }
    check_same(res.keys, want);
    REQUIRE(moments.size() == want_moments.size());
    for (std::size_t i = 0; i < moments.size(); ++i)
      CHECK(moments[i] == want_moments[i]);
  }
  CHECK(want.size() == 997 + 1009);
  // Labels: key_result::sources counts the sources of each label, which
  // the manager fills in for keys the shards hold.
  for (auto shards : shard_counts) {
    INFO("shards " << shards);
    auto res = test::ok(flow::pipeline<std::int64_t>{}
                          .with(with_shards(shards))
                          .add(flow::from_range(0, 5), key{std::int64_t{5}})
                          .add(flow::from_range(0, 50), key{std::int64_t{50}})
                          .add(flow::from_range(5, 10), key{std::int64_t{5}})
                          .reduce(flow::sum_by_label())
                          .run());
    REQUIRE(res.keys.size() == 2);
    CHECK(res.keys[0].key == key{std::int64_t{5}});
    CHECK(res.keys[0].sources == 2);
    CHECK(res.keys[0].agg.sum == 45);
    CHECK(res.keys[1].sources == 1);
    CHECK(res.keys[1].agg.sum == 1225);
  }
}

TEST_CASE("shards: a sum that leaves the 128-bit range inside a shard fails "
          "the job with overflow naming the key and the batch",
          "[shards][errors][overflow]") {
  flow::aggregate big;
  big.sum = static_cast<flow::int128>(static_cast<unsigned __int128>(1) << 126);
  big.count = 1;
  big.min = big.max = 1;
  for (auto k : {key{"huge"}, key{std::int64_t{77}}}) {
    INFO(flow::to_string(k));
    auto e = test::err(flow::pipeline<std::int64_t>{}
                         .with(with_shards(3))
                         .add(flow::from_range(0, 8))
                         .batch_size(1)
                         .reduce([big, k](const flow::batch_ref<std::int64_t>&,
                                          flow::partial& out) {
                           out.add(k, big);
                         })
                         .run());
    CHECK(flow::code_of(e) == flow::errc::overflow);
    CHECK_THAT(flow::describe(e), Catch::Contains("'" + flow::to_string(k)
                                                  + "'"));
    CHECK_THAT(flow::describe(e), Catch::Contains("batch"));
  }
}

TEST_CASE("shards: snapshots of a running job hold exactly the keys of the "
          "batches they count, and stop() delivers a consistent partial "
          "result",
          "[shards][job][snapshot]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto j = flow::pipeline<flow::keyed_value>{}
             .with(with_shards(3))
             .add(flow::from_keyed_random(1'000'000'000, 10'000, 4))
             .batch_size(1000)
             .reducers(2)
             .reduce(flow::sum_by_key())
             .start(sys);
  REQUIRE(j);
  std::uint64_t last = 0;
  int taken = 0;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (taken < 20 && std::chrono::steady_clock::now() < deadline) {
    auto snap = test::ok(j->snapshot());
    CHECK_FALSE(snap.final);
    // The keys match the counters of the same instant: every batch counted
    // is in the keys, and no other.
    REQUIRE(counted(snap.keys) == snap.aggregated);
    CHECK(snap.batches * 1000 == snap.aggregated);
    CHECK(snap.key_count == snap.keys.size());
    check_sorted(snap.keys);
    CHECK(snap.aggregated >= last);
    last = snap.aggregated;
    if (snap.aggregated > 0)
      ++taken;
    std::this_thread::sleep_for(5ms);
  }
  CHECK(taken == 20);
  auto res = stop_checked(*j);
  CHECK(res.aggregated >= last);
}

TEST_CASE("shards: a shard that lags holds back the sources' credit, so "
          "keys waiting at shards stay bounded",
          "[shards][backpressure]") {
  caf::actor_system_config cfg;
  // The gated merge below holds one scheduler thread: the manager, the
  // generator and the reducers need others whatever the machine.
  cfg.set("scheduler.max-threads", std::size_t{4});
  caf::actor_system sys{cfg};
  gated_count::release = false;
  gated_count::merging = 0;
  auto pulled = std::make_shared<std::atomic<std::uint64_t>>(0);
  constexpr std::int64_t n = 1'000'000;
  flow::aggregators aggs;
  auto c = aggs.add("c", gated_count{});
  std::int64_t next = 0;
  auto j = flow::pipeline<std::int64_t>{}
             .with(with_shards(3))
             .add(flow::from_callable(
               [pulled, next]() mutable -> std::optional<std::int64_t> {
                 if (next == n)
                   return std::nullopt;
                 ++*pulled;
                 return next++;
               }))
             .aggregate_with(aggs)
             .batch_size(100)
             .reducers(2)
             .reduce(flow::per_element<std::int64_t>(
               [=](std::int64_t, flow::partial& out) {
                 out.state(0, c).add();
               }))
             .start(sys);
  REQUIRE(j);
  // Wait until the shard of key 0 is stuck in a merge, then until the
  // source stops (bounded).
  for (int i = 0; i < 3000 && gated_count::merging == 0; ++i)
    std::this_thread::sleep_for(1ms);
  REQUIRE(gated_count::merging == 1);
  std::uint64_t seen = 0;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(20ms);
    auto now = pulled->load();
    if (i >= 10 && now == seen)
      break;
    seen = now;
  }
  // Credits (4 batches), the shards' window (2 per shard) and what it held
  // back, and the batch being built: a few dozen batches, against all
  // 10,000 without flow control.
  CHECK(pulled->load() <= 30 * 100);
  CHECK_FALSE(j->done());
  gated_count::release = true;
  REQUIRE(j->wait_for(120s));
  auto res = test::ok(j->wait());
  CHECK(res.balanced());
  CHECK(res.aggregated == static_cast<std::uint64_t>(n));
  REQUIRE(res.keys.size() == 1);
  CHECK(c.of(res.keys[0]).n == static_cast<std::uint64_t>(n));
}

TEST_CASE("shards: job statistics count the keys the shards hold",
          "[shards][stats]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto opts = with_shards(4);
  opts.stats_interval = 10ms;
  auto j = flow::pipeline<flow::keyed_value>{}
             .with(opts)
             .add(flow::from_keyed_random(1'000'000'000, 3'000, 5))
             .batch_size(1000)
             .reduce(flow::sum_by_key())
             .start(sys);
  REQUIRE(j);
  // Every key appears within the first few batches; the shards report at
  // each statistics tick.
  std::uint64_t keys = 0;
  for (int i = 0; i < 2000 && keys != 3'000; ++i) {
    std::this_thread::sleep_for(5ms);
    keys = j->stats().keys;
  }
  CHECK(keys == 3'000);
  j->cancel();
  REQUIRE(j->wait_for(60s));
  CHECK(flow::code_of(test::err(j->wait())) == flow::errc::cancelled);
}

TEST_CASE("shards: more than 256 shards are refused at setup, and a bounded "
          "job keeps its keys in the manager with the same result",
          "[shards][errors][spill]") {
  auto e = test::err(flow::pipeline<std::int64_t>{}
                       .with(with_shards(257))
                       .add(flow::from_range(0, 10))
                       .reduce(flow::sum_by_label())
                       .run());
  CHECK(flow::code_of(e) == flow::errc::invalid_config);
  CHECK_THAT(flow::describe(e), Catch::Contains("manager_shards"));
  auto run = [](flow::options opts) {
    return test::ok(flow::pipeline<flow::keyed_value>{}
                      .with(opts)
                      .add(flow::from_keyed_random(100'000, 20'000, 3))
                      .batch_size(2048)
                      .reduce(flow::sum_by_key())
                      .run());
  };
  auto bounded = with_shards(4);
  bounded.max_memory = 1;
  auto a = run(bounded);
  auto b = run(with_shards(4));
  CHECK(a.balanced());
  check_same(a.keys, b.keys);
}

TEST_CASE("shards: by default a job keeps shards for integer keys and stops "
          "them at its first partial of other keys, with the same results",
          "[shards][stats]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  // Endless sources, stopped once the first partial is merged: the
  // statistics then say how many shards hold the keys.
  auto shards_after_first = [&](bool strings, std::size_t asked) {
    flow::options opts;
    opts.manager_shards = asked;
    opts.stats_interval = 5ms;
    auto j = flow::pipeline<std::int64_t>{}
               .with(opts)
               .add(flow::from_range(0, std::int64_t{1} << 60))
               .batch_size(1000)
               .reduce(flow::per_element<std::int64_t>(
                 [strings](std::int64_t i, flow::partial& out) {
                   if (strings)
                     out.add(key{"k" + std::to_string(i % 50)}, i % 7);
                   else
                     out.add(key{i % 50}, i % 7);
                 }))
               .start(sys);
    REQUIRE(j);
    std::uint64_t merged = 0;
    flow::job_stats s;
    for (int i = 0; i < 4000 && merged == 0; ++i) {
      std::this_thread::sleep_for(5ms);
      s = j->stats();
      merged = s.sources.empty() ? 0 : s.sources[0].merged;
    }
    CHECK(merged > 0);
    std::this_thread::sleep_for(20ms);
    s = j->stats();
    auto res = stop_checked(*j);
    CHECK(res.keys.size() == 50);
    return s.manager_shards;
  };
  auto dflt = flow::default_manager_shards();
  CHECK(shards_after_first(false, 0) == (dflt >= 2 ? dflt : 0));
  CHECK(shards_after_first(true, 0) == 0);
  CHECK(shards_after_first(true, 3) == 3);
  CHECK(shards_after_first(false, 1) == 0);
}
