// flow::job: the non-blocking handle (wait, wait_for, done, snapshot, cancel)
// and jobs inside an actor system the application owns.

#include "support.hpp"

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include "engine/engine.hpp"

using namespace std::chrono_literals;

namespace {

// A reducer that sleeps per batch: keeps a job running for a while.
flow::reducer<std::int64_t> sleepy_sum(std::chrono::microseconds delay) {
  return [delay](const flow::batch_ref<std::int64_t>& b, flow::partial& out) {
    std::this_thread::sleep_for(delay);
    out.add(b.label, flow::aggregate::of(b.items.data(), b.items.size()));
  };
}

// A job that would run for hours: 10^12 elements in batches of 100, each
// batch taking a millisecond to reduce.
flow::pipeline<std::int64_t> endless() {
  flow::pipeline<std::int64_t> p;
  p.add(flow::from_random(1'000'000'000'000ull, 3))
    .batch_size(100)
    .reducers(2)
    .reduce(sleepy_sum(1ms));
  return p;
}

// Waits (bounded) for the job to end; cancels it if it does not, so that a
// failing test does not hang the suite.
bool ends_within(const flow::job& j, std::chrono::milliseconds timeout) {
  if (j.wait_for(timeout))
    return true;
  j.cancel();
  return false;
}

} // namespace

TEST_CASE("job: a default handle is invalid and never blocks", "[job]") {
  flow::job j;
  CHECK_FALSE(j);
  CHECK(j.done());
  CHECK(j.wait_for(0ms));
  auto res = j.wait();
  REQUIRE_FALSE(res);
  CHECK(flow::code_of(res.error()) == flow::errc::invalid_config);
  CHECK_FALSE(j.snapshot());
  j.cancel(); // harmless
}

TEST_CASE("job: start() returns at once and wait() delivers the result, "
          "repeatedly",
          "[job]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto xs = test::random_values(100'000, 21, -1000, 1000);
  auto ref = test::naive_sum(xs);
  auto j = flow::pipeline<std::int64_t>{}
             .add(flow::from_container(xs), 7)
             .batch_size(1000)
             .reducers(2)
             .reduce(flow::sum_by_label())
             .start(sys);
  REQUIRE(j);
  CHECK(*j);
  REQUIRE(ends_within(*j, 30s));
  CHECK(j->done());
  auto first = test::ok(j->wait());
  auto second = test::ok(j->wait());
  REQUIRE(first.keys.size() == 1);
  CHECK(first.keys[0].agg.sum == ref);
  CHECK(first.final);
  CHECK(second.keys.size() == first.keys.size());
  CHECK(second.keys[0].agg == first.keys[0].agg);
  CHECK(second.emitted == first.emitted);
  // After the end, snapshot() answers with the final result.
  auto snap = test::ok(j->snapshot());
  CHECK(snap.final);
  CHECK(snap.emitted == xs.size());
  REQUIRE(snap.keys.size() == 1);
  CHECK(snap.keys[0].agg.sum == ref);
  // And cancel() no longer changes anything.
  j->cancel();
  auto third = test::ok(j->wait());
  CHECK(third.keys[0].agg.sum == ref);
}

TEST_CASE("job: take() moves the keys out once and the figures stay while the "
          "published statistics hold the first 100 keys",
          "[job]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  // Through the actors, and folded on the calling thread (small job).
  flow::options opts;
  opts.inline_elements = GENERATE(std::size_t{0}, std::size_t{1} << 20);
  opts.batch_size = GENERATE(std::size_t{1000}, std::size_t{1} << 16);
  opts.reducers = 2;
  auto j = flow::pipeline<flow::keyed_value>{}
             .with(opts)
             .add(flow::from_keyed_random(50'000, 1'000, 5, 100))
             .reduce(flow::sum_by_key())
             .start(sys);
  REQUIRE(j);
  REQUIRE(ends_within(*j, 30s));
  auto copy = test::ok(j->wait());
  REQUIRE(copy.keys.size() > 900);
  // The statistics' result: every figure, the first keys only.
  auto xs = j->stats();
  REQUIRE(xs.result);
  CHECK(xs.result->emitted == 50'000);
  CHECK(xs.result->balanced());
  CHECK(xs.result->key_count == copy.keys.size());
  REQUIRE(xs.result->keys.size() == flow::job_stats::result_keys);
  for (std::size_t i = 0; i < xs.result->keys.size(); ++i) {
    CHECK(xs.result->keys[i].key == copy.keys[i].key);
    CHECK(xs.result->keys[i].agg == copy.keys[i].agg);
  }
  auto taken = test::ok(j->take());
  REQUIRE(taken.keys.size() == copy.keys.size());
  for (std::size_t i = 0; i < taken.keys.size(); ++i)
    CHECK(taken.keys[i].agg == copy.keys[i].agg);
  CHECK(taken.emitted == copy.emitted);
  CHECK(taken.key_count == copy.keys.size());
  // Taken: later calls give the figures without the keys.
  for (auto later : {test::ok(j->wait()), test::ok(j->take()),
                     test::ok(j->snapshot())}) {
    CHECK(later.keys.empty());
    CHECK(later.key_count == copy.keys.size());
    CHECK(later.emitted == 50'000);
    CHECK(later.aggregated == copy.aggregated);
    CHECK(later.final);
  }
  // An invalid handle.
  CHECK(flow::code_of(test::err(flow::job{}.take()))
        == flow::errc::invalid_config);
}

TEST_CASE("job_result::without_keys copies every figure but the keys",
          "[job]") {
  flow::job_result r;
  r.keys.push_back({flow::key{std::int64_t{1}}, {}, 0});
  r.keys.push_back({flow::key{std::int64_t{2}}, {}, 0});
  r.emitted = 1;
  r.aggregated = 2;
  r.rejected = 3;
  r.dead_lettered = 4;
  r.dead_letters.push_back({});
  r.retried = 5;
  r.batches = 6;
  r.written = 7;
  r.sources = 8;
  r.rejections.push_back({"why", 9});
  r.peak_in_flight = 10;
  r.remote_batches = 11;
  r.reducers_replaced = 12;
  r.final = true;
  r.partial = true;
  r.abandoned = 13;
  r.speculated = 14;
  r.speculation_won = 15;
  auto x = r.without_keys();
  CHECK(x.keys.empty());
  CHECK(x.key_count == 2);
  CHECK(x.emitted == 1);
  CHECK(x.aggregated == 2);
  CHECK(x.rejected == 3);
  CHECK(x.dead_lettered == 4);
  CHECK(x.dead_letters.size() == 1);
  CHECK(x.retried == 5);
  CHECK(x.batches == 6);
  CHECK(x.written == 7);
  CHECK(x.sources == 8);
  REQUIRE(x.rejections.size() == 1);
  CHECK(x.rejections[0].second == 9);
  CHECK(x.peak_in_flight == 10);
  CHECK(x.remote_batches == 11);
  CHECK(x.reducers_replaced == 12);
  CHECK(x.final);
  CHECK(x.partial);
  CHECK(x.abandoned == 13);
  CHECK(x.speculated == 14);
  CHECK(x.speculation_won == 15);
  // The original keeps its keys.
  CHECK(r.keys.size() == 2);
}

TEST_CASE("job: wait_for times out on a running job and reports the end later",
          "[job]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  // About 50 batches of 2 ms on 2 workers: 50 ms or more.
  auto j = flow::pipeline<std::int64_t>{}
             .add(flow::from_range(0, 5000), 1)
             .batch_size(100)
             .reducers(2)
             .reduce(sleepy_sum(2ms))
             .start(sys);
  REQUIRE(j);
  CHECK_FALSE(j->wait_for(1ms));
  CHECK_FALSE(j->done());
  REQUIRE(ends_within(*j, 30s));
  CHECK(j->done());
  auto res = test::ok(j->wait());
  CHECK(res.emitted == 5000);
}

TEST_CASE("job: snapshot() of a running job shows partial, consistent progress",
          "[job][snapshot]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto j = endless().start(sys);
  REQUIRE(j);
  // Wait until something has been merged (bounded).
  flow::job_result snap;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  do {
    std::this_thread::sleep_for(5ms);
    snap = test::ok(j->snapshot());
  } while (snap.aggregated == 0 && std::chrono::steady_clock::now() < deadline);
  CHECK_FALSE(j->done());
  CHECK_FALSE(snap.final);
  CHECK(snap.aggregated > 0);
  CHECK(snap.aggregated <= snap.emitted);
  CHECK(snap.balanced() == (snap.aggregated == snap.emitted));
  CHECK(snap.sources == 1);
  CHECK(snap.peak_in_flight <= 4);
  // The keyed aggregates match the counters of the same instant.
  std::uint64_t counted = 0;
  for (auto& kr : snap.keys)
    counted += kr.agg.count;
  CHECK(counted == snap.aggregated);
  CHECK(snap.batches * 100 == snap.aggregated);
  // Progress only grows.
  std::this_thread::sleep_for(20ms);
  auto later = test::ok(j->snapshot());
  CHECK_FALSE(later.final);
  CHECK(later.aggregated >= snap.aggregated);
  CHECK(later.emitted >= snap.emitted);
  j->cancel();
  REQUIRE(ends_within(*j, 30s));
}

TEST_CASE("job: cancel() ends a running job with errc::cancelled", "[job][cancel]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto j = endless().start(sys);
  REQUIRE(j);
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(j->done());
  j->cancel();
  REQUIRE(ends_within(*j, 30s));
  CHECK(j->done());
  auto e = test::err(j->wait());
  CHECK(flow::code_of(e) == flow::errc::cancelled);
  CHECK_THAT(flow::describe(e), Catch::StartsWith("cancelled"));
  // A snapshot after the end reports the same error.
  auto snap = j->snapshot();
  REQUIRE_FALSE(snap);
  CHECK(flow::code_of(snap.error()) == flow::errc::cancelled);
}

TEST_CASE("job: a manager killed mid-job ends wait() with actor_down, and "
          "its generators and reducers quit so the actor system can stop",
          "[job][faults]") {
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    auto j = endless().start(sys);
    REQUIRE(j);
    std::this_thread::sleep_for(20ms);
    REQUIRE_FALSE(j->done());
    // What an exception escaping a manager handler does too: CAF ends the
    // actor. Before the guard on the manager's exit, wait() blocked for
    // ever.
    caf::anon_send_exit(j->state()->manager, caf::exit_reason::kill);
    REQUIRE(j->wait_for(30s));
    auto e = test::err(j->wait());
    CHECK(flow::code_of(e) == flow::errc::actor_down);
    CHECK_THAT(flow::describe(e),
               Catch::Contains("the job's manager terminated before the end "
                               "of the job"));
    auto snap = j->snapshot();
    REQUIRE_FALSE(snap);
    CHECK(flow::code_of(snap.error()) == flow::errc::actor_down);
    // The statistics (what a status page shows) no longer say running.
    auto xs = j->stats();
    CHECK(xs.state == flow::job_state::failed);
    REQUIRE_FALSE(xs.errors.empty());
    CHECK_THAT(xs.errors.back(),
               Catch::Contains("the job's manager terminated"));
    // Leaving the scope stops the actor system, which waits for every
    // actor: a generator still waiting for credit would hang here (ctest's
    // timeout fails the test then).
  }
  SUCCEED("the actor system stopped");
}

TEST_CASE("job: cancel() right after start() still ends the job as cancelled",
          "[job][cancel]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto j = endless().start(sys);
  REQUIRE(j);
  j->cancel();
  REQUIRE(ends_within(*j, 30s));
  CHECK(flow::code_of(test::err(j->wait())) == flow::errc::cancelled);
}

TEST_CASE("job: copies of a handle refer to the same job", "[job][cancel]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto j = endless().start(sys);
  REQUIRE(j);
  flow::job copy = *j;
  copy.cancel();
  REQUIRE(ends_within(*j, 30s));
  CHECK(copy.done());
  CHECK(flow::code_of(test::err(j->wait())) == flow::errc::cancelled);
}

TEST_CASE("job: several threads may wait for the same job", "[job]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto xs = test::random_values(20'000, 8);
  auto ref = test::naive_sum(xs);
  auto j = flow::pipeline<std::int64_t>{}
             .add(flow::from_container(xs))
             .batch_size(500)
             .reduce(sleepy_sum(200us))
             .start(sys);
  REQUIRE(j);
  std::vector<flow::int128> sums(4, -1);
  std::vector<std::thread> waiters;
  for (std::size_t i = 0; i < sums.size(); ++i)
    waiters.emplace_back([&, i] {
      auto res = j->wait();
      if (res && res->keys.size() == 1)
        sums[i] = res->keys[0].agg.sum;
    });
  for (auto& t : waiters)
    t.join();
  for (auto s : sums)
    CHECK(s == ref);
}

TEST_CASE("job: run(sys) and start(sys) work in an application-owned actor "
          "system, several jobs at once",
          "[job][actor_system]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto a = test::random_values(30'000, 1);
  auto b = test::random_values(30'000, 2, -10, 10);
  auto ja = flow::pipeline<std::int64_t>{}
              .add(flow::from_container(a), "a")
              .batch_size(256)
              .reduce(flow::sum_by_label())
              .start(sys);
  auto jb = flow::pipeline<std::int64_t>{}
              .add(flow::from_container(b), "b")
              .batch_size(100)
              .reduce(flow::sum_by_label())
              .start(sys);
  // A blocking run in the same system while the other two are going.
  auto rc = test::ok(flow::pipeline<std::int64_t>{}
                       .add(flow::from_range(-100, 100), "c")
                       .reduce(flow::sum_by_label())
                       .run(sys));
  REQUIRE(ja);
  REQUIRE(jb);
  REQUIRE(ends_within(*ja, 30s));
  REQUIRE(ends_within(*jb, 30s));
  auto ra = test::ok(ja->wait());
  auto rb = test::ok(jb->wait());
  REQUIRE(ra.keys.size() == 1);
  REQUIRE(rb.keys.size() == 1);
  REQUIRE(rc.keys.size() == 1);
  CHECK(ra.keys[0].key == flow::key{"a"});
  CHECK(ra.keys[0].agg.sum == test::naive_sum(a));
  CHECK(rb.keys[0].agg.sum == test::naive_sum(b));
  CHECK(rc.keys[0].agg.sum == -100);
  CHECK(rc.keys[0].agg.count == 200);
}

TEST_CASE("job: start(sys) returns invalid_config instead of starting a "
          "misconfigured job",
          "[job][config]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto j = flow::pipeline<std::int64_t>{}
             .add(flow::from_range(0, 10))
             .credits(0)
             .reduce(flow::sum_by_label())
             .start(sys);
  REQUIRE_FALSE(j);
  CHECK(flow::code_of(j.error()) == flow::errc::invalid_config);
  auto r = flow::pipeline<std::int64_t>{}.add(flow::from_range(0, 10)).run(sys);
  REQUIRE_FALSE(r);
  CHECK(flow::code_of(r.error()) == flow::errc::invalid_config);
}
