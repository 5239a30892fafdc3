// Faults injected through options::crash_reducer: a reducer that dies is
// replaced, its batches are dispatched again, and nothing is merged twice.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "support.hpp"

using namespace flow;

TEST_CASE("faults: a reducer that dies mid-job is replaced and the result is "
          "exact",
          "[faults][reducer]") {
  const std::int64_t n = 200'000;
  auto fired = std::make_shared<std::atomic<int>>(0);
  options opts;
  opts.reducers = 3;
  opts.batch_size = 1000;
  opts.credits = 8;
  // Kill whichever reducer gets batch 17, once.
  opts.crash_reducer = [fired](std::uint32_t, std::uint64_t seq) {
    return seq == 17 && fired->fetch_add(1) == 0;
  };
  auto res = test::ok(pipeline<std::int64_t>{}
                        .add(from_range(0, n), "x")
                        .reduce(sum_by_label())
                        .with(opts)
                        .run());
  CHECK(fired->load() >= 1);
  CHECK(res.reducers_replaced == 1);
  CHECK(res.emitted == static_cast<std::uint64_t>(n));
  CHECK(res.aggregated == static_cast<std::uint64_t>(n));
  CHECK(res.batches == 200);
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.count == static_cast<std::uint64_t>(n));
  CHECK(res.keys[0].agg.sum == flow::int128{n} * (n - 1) / 2);
}

TEST_CASE("faults: several reducers dying on several batches still give the "
          "exact result",
          "[faults][reducer]") {
  struct state {
    std::mutex mtx;
    std::set<std::uint64_t> seen;
    int kills = 0;
  };
  auto st = std::make_shared<state>();
  options opts;
  opts.reducers = 2;
  opts.batch_size = 500;
  // The first attempt at every 10th batch of source 1 kills its reducer.
  opts.crash_reducer = [st](std::uint32_t source, std::uint64_t seq) {
    if (source != 1 || seq % 10 != 0)
      return false;
    std::lock_guard<std::mutex> guard{st->mtx};
    if (!st->seen.insert(seq).second)
      return false;
    ++st->kills;
    return true;
  };
  auto a = test::random_values(30'000, 1);
  auto b = test::random_values(30'000, 2);
  auto res = test::ok(pipeline<std::int64_t>{}
                        .add(from_container(a), "same")
                        .add(from_container(b), "same")
                        .reduce(sum_by_label())
                        .with(opts)
                        .run());
  CHECK(res.reducers_replaced == static_cast<std::uint64_t>(st->kills));
  CHECK(res.reducers_replaced == 6); // batches 0, 10, ..., 50 of 60
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.sum == test::naive_sum(a) + test::naive_sum(b));
  CHECK(res.keys[0].agg.count == 60'000);
  CHECK(res.balanced());
}

TEST_CASE("faults: a batch that kills every reducer ends the job with "
          "actor_down instead of looping",
          "[faults][reducer][errors]") {
  options opts;
  opts.reducers = 2;
  opts.batch_size = 100;
  opts.max_replacements = 5;
  opts.crash_reducer = [](std::uint32_t, std::uint64_t seq) {
    return seq == 3;
  };
  auto started = pipeline<std::int64_t>{}
                   .add(from_range(0, 10'000), "x")
                   .reduce(sum_by_label())
                   .with(opts);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto j = started.start(sys);
  REQUIRE(j);
  REQUIRE(j->wait_for(std::chrono::seconds(30)));
  auto res = j->wait();
  REQUIRE_FALSE(res);
  CHECK(code_of(res.error()) == errc::actor_down);
  CHECK(describe(res.error()).find("5 replacements") != std::string::npos);
}
