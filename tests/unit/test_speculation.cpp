// Speculation (options::speculation): a batch that its reducer holds far
// longer than the others is dispatched again to an idle reducer; the first
// answer is merged and the other dropped, so the result stays exact.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/flow.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using namespace flow;

namespace {

/// A gate that a reducer call waits at (bounded, so that a failing test
/// cannot hang the suite) until the test opens it.
struct gate {
  std::mutex mtx;
  std::condition_variable cv;
  bool open = false;
  void wait(std::chrono::milliseconds at_most) {
    std::unique_lock<std::mutex> guard{mtx};
    cv.wait_for(guard, at_most, [this] { return open; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> guard{mtx};
      open = true;
    }
    cv.notify_all();
  }
};

/// Counts the calls per batch and sends the first call of batch `stuck_seq`
/// to the gate; every call of a batch with seq >= `slow_from` sleeps
/// `slow_for`. With `release_after` set, the first call of another batch
/// made that long after a second call of the stuck batch ended opens the
/// gate: the stuck call then answers late, while the job still runs.
struct script {
  std::uint64_t stuck_seq = 7;
  std::uint64_t slow_from = static_cast<std::uint64_t>(-1);
  std::chrono::milliseconds slow_for{0};
  std::chrono::milliseconds release_after{-1};
  /// How long the stuck call waits at most for the gate.
  std::chrono::milliseconds stuck_for{60s};
  /// The second call of the stuck batch throws, once.
  bool second_throws = false;
  gate g;
  std::atomic<int> stuck_calls{0};
  /// When a second call of the stuck batch ended (steady clock, ns; 0: not
  /// yet).
  std::atomic<std::int64_t> second_ended{0};
  /// Set when the stuck (first) call returned.
  std::atomic<bool> stuck_returned{false};
  std::atomic<bool> threw{false};
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

auto scripted_sum(std::shared_ptr<script> s) {
  return [s](const batch_ref<std::int64_t>& b, partial& out) {
    if (b.seq == s->stuck_seq) {
      auto call = s->stuck_calls.fetch_add(1);
      if (call == 0) {
        s->g.wait(s->stuck_for);
        s->stuck_returned = true;
      } else {
        s->second_ended = now_ns();
        if (s->second_throws && !s->threw.exchange(true))
          throw std::runtime_error("second attempt fails");
      }
    } else if (s->release_after.count() >= 0) {
      auto ended = s->second_ended.load();
      if (ended != 0
          && now_ns() - ended
               > std::chrono::nanoseconds(s->release_after).count())
        s->g.release();
    }
    if (b.seq >= s->slow_from)
      std::this_thread::sleep_for(s->slow_for);
    out.add(b.label, aggregate::of(b.items.data(), b.items.size()));
  };
}

options speculative(std::chrono::milliseconds floor) {
  options opts;
  opts.reducers = 3;
  opts.batch_size = 1000;
  opts.speculation_floor = floor;
  return opts;
}

/// Runs `p` in an actor system of its own with at least 4 scheduler
/// threads (a call held at a gate takes one), and returns the result and
/// the job's final statistics.
std::pair<job_result, job_stats> run_in_own_system(pipeline<std::int64_t>& p) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", std::size_t{4});
  caf::actor_system sys{cfg};
  auto j = p.start(sys);
  REQUIRE(j);
  auto done = j->wait_for(60s);
  if (!done)
    j->cancel();
  REQUIRE(done);
  return {test::ok(j->wait()), j->stats()};
}

flow::int128 range_sum(std::int64_t n) {
  return flow::int128{n} * (n - 1) / 2;
}

} // namespace

TEST_CASE("speculation: a batch stuck for ever in its reducer is dispatched "
          "again, merged once, and the job ends",
          "[speculation][faults]") {
  const std::int64_t n = 50'000;
  auto s = std::make_shared<script>();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    auto j = pipeline<std::int64_t>{}
               .add(from_range(0, n), "x")
               .reduce(scripted_sum(s))
               .with(speculative(100ms))
               .start(sys);
    REQUIRE(j);
    auto done = j->wait_for(30s);
    if (!done)
      j->cancel();
    REQUIRE(done);
    auto res = test::ok(j->wait());
    CHECK(res.speculated >= 1);
    CHECK(res.speculation_won >= 1);
    CHECK(res.speculation_won <= res.speculated);
    CHECK(res.batches == 50);
    CHECK(res.emitted == static_cast<std::uint64_t>(n));
    CHECK(res.aggregated == static_cast<std::uint64_t>(n));
    CHECK(res.balanced());
    REQUIRE(res.keys.size() == 1);
    CHECK(res.keys[0].agg.count == static_cast<std::uint64_t>(n));
    CHECK(res.keys[0].agg.sum == range_sum(n));
    // The stuck call is still inside the reducer: the job did not wait.
    CHECK_FALSE(s->stuck_returned.load());
    CHECK(s->stuck_calls.load() >= 2);
    auto stats = j->stats();
    CHECK(stats.batches_speculated == res.speculated);
    CHECK(stats.speculation_won == res.speculation_won);
  }
  s->g.release(); // lets the actor system end
}

TEST_CASE("speculation: the overtaken attempt's late answer, while the job "
          "still runs, is dropped",
          "[speculation][faults]") {
  const std::int64_t n = 60'000;
  auto s = std::make_shared<script>();
  // Batch 7's first call waits until 50 ms after its second call; every
  // batch from 8 on takes 10 ms, so the job runs for about 0.5 s more and
  // the late answer arrives while it runs.
  s->release_after = 50ms;
  s->stuck_for = 5s; // should the job end before the gate opens
  s->slow_from = 8;
  s->slow_for = 10ms;
  auto opts = speculative(100ms);
  // One credit besides the stuck batch's: the queue empties, so the stuck
  // batch is speculated long before the end.
  opts.credits = 2;
  opts.reducer_queue = 1;
  pipeline<std::int64_t> p;
  p.add(from_range(0, n), "x").reduce(scripted_sum(s)).with(opts);
  auto [res, stats] = run_in_own_system(p);
  CHECK(s->stuck_returned.load());
  CHECK(res.speculated >= 1);
  CHECK(res.speculation_won >= 1);
  // The late answer freed its reducer: none is busy at the end.
  CHECK(stats.reducers_busy == 0);
  CHECK(res.batches == 60);
  CHECK(res.balanced());
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.count == static_cast<std::uint64_t>(n));
  CHECK(res.keys[0].agg.sum == range_sum(n));
}

TEST_CASE("speculation: a second attempt that throws does not fail the "
          "batch while another attempt runs: nothing is retried or lost",
          "[speculation][faults]") {
  const std::int64_t n = 20'000;
  auto s = std::make_shared<script>();
  s->second_throws = true;
  s->release_after = 50ms;
  s->stuck_for = 5s; // should the job end before the gate opens
  s->slow_from = 8;
  s->slow_for = 10ms;
  auto opts = speculative(50ms);
  opts.credits = 2;
  opts.reducer_queue = 1;
  pipeline<std::int64_t> p;
  p.add(from_range(0, n), "x").reduce(scripted_sum(s)).with(opts);
  auto [res, stats] = run_in_own_system(p);
  CHECK(stats.reducers_busy == 0);
  CHECK(s->threw.load());
  CHECK(s->stuck_returned.load());
  CHECK(res.speculated >= 1);
  CHECK(res.retried == 0);
  CHECK(res.dead_lettered == 0);
  CHECK(res.balanced());
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.count == static_cast<std::uint64_t>(n));
  CHECK(res.keys[0].agg.sum == range_sum(n));
}

TEST_CASE("speculation: off, a slow batch holds the job and nothing is "
          "dispatched twice",
          "[speculation][faults]") {
  const std::int64_t n = 20'000;
  auto s = std::make_shared<script>();
  auto opts = speculative(50ms);
  opts.speculation = false;
  std::thread opener([s] {
    std::this_thread::sleep_for(600ms);
    s->g.release();
  });
  auto t0 = std::chrono::steady_clock::now();
  pipeline<std::int64_t> p;
  p.add(from_range(0, n), "x").reduce(scripted_sum(s)).with(opts);
  auto res = run_in_own_system(p).first;
  auto took = std::chrono::steady_clock::now() - t0;
  opener.join();
  CHECK(s->stuck_calls.load() == 1);
  CHECK(res.speculated == 0);
  CHECK(res.speculation_won == 0);
  CHECK(took >= 550ms); // it waited for the slow call
  CHECK(res.keys[0].agg.sum == range_sum(n));
}

TEST_CASE("speculation: a job whose batches all take about as long is not "
          "speculated",
          "[speculation]") {
  auto s = std::make_shared<script>();
  s->stuck_seq = static_cast<std::uint64_t>(-2); // nothing stuck
  s->slow_from = 0;
  s->slow_for = 20ms;
  auto opts = speculative(50ms);
  // The floor is below the time a batch may be held (one running ahead of
  // it at its reducer, then its own): the median (x10 here) decides.
  opts.speculation_multiplier = 10;
  auto res = test::ok(pipeline<std::int64_t>{}
                        .add(from_range(0, 30'000), "x")
                        .reduce(scripted_sum(s))
                        .with(opts)
                        .run());
  CHECK(res.batches == 30);
  CHECK(res.speculated == 0);
  CHECK(res.keys[0].agg.sum == range_sum(30'000));
}

TEST_CASE("speculation: the threshold counts a batch's time from when its "
          "reducer could start on it, not from its dispatch: a batch six "
          "times slower than the others is speculated",
          "[speculation]") {
  // Two reducers, each holding up to two batches (options::reducer_queue):
  // every batch but the first two waits 40 ms behind another before its
  // own 40 ms.
  // Timed from dispatch, the median was 80 ms and the threshold (x4) 320 ms,
  // above the last batch's 240 ms (plus its 40 ms wait): it never ran again.
  // Timed from its reducer's previous answer, the median is 40 ms, the
  // threshold 160 ms, and the last batch's first attempt is overtaken.
  const std::int64_t n = 40'000;
  const std::uint64_t last = 39;
  std::atomic<int> last_calls{0};
  auto reduce = [&last_calls, last](const batch_ref<std::int64_t>& b,
                                    partial& out) {
    auto slow = b.seq == last && last_calls.fetch_add(1) == 0;
    std::this_thread::sleep_for(slow ? 240ms : 40ms);
    out.add(b.label, aggregate::of(b.items.data(), b.items.size()));
  };
  // The floor keeps the first batches, held 40-80 ms before any median
  // exists, from running twice.
  auto opts = speculative(100ms);
  opts.reducers = 2;
  REQUIRE(opts.reducer_queue == 2);
  REQUIRE(opts.speculation_multiplier == 4.0);
  pipeline<std::int64_t> p;
  p.add(from_range(0, n), "x").reduce(reduce).with(opts);
  auto [res, stats] = run_in_own_system(p);
  CHECK(res.batches == 40);
  CHECK(res.speculated >= 1);
  CHECK(last_calls.load() >= 2);
  CHECK(res.keys[0].agg.sum == range_sum(n));
}

TEST_CASE("speculation: a batch queued behind others at a healthy reducer "
          "is held from that reducer's last answer, not from its dispatch: "
          "with a deep queue nothing runs twice",
          "[speculation]") {
  // Two reducers holding up to eight batches each, 41 batches of 40 ms: the
  // first reducer gets the 41st and works on it while the second is idle.
  // That batch was dispatched behind seven others, about 280 ms before it
  // started. Timed from its dispatch it was held about 280 ms when the
  // other reducer became idle, above the threshold (4 x 40 ms), and it ran
  // twice; timed from its reducer's last answer it has only just started,
  // 120 ms of slack below the threshold for a loaded machine.
  const std::int64_t n = 41'000;
  std::atomic<int> calls{0};
  auto reduce = [&calls](const batch_ref<std::int64_t>& b, partial& out) {
    ++calls;
    std::this_thread::sleep_for(40ms);
    out.add(b.label, aggregate::of(b.items.data(), b.items.size()));
  };
  auto opts = speculative(50ms);
  opts.reducers = 2;
  opts.reducer_queue = 8;
  opts.credits = 16; // enough batches in flight to fill both queues
  REQUIRE(opts.speculation_multiplier == 4.0);
  pipeline<std::int64_t> p;
  p.add(from_range(0, n), "x").reduce(reduce).with(opts);
  auto [res, stats] = run_in_own_system(p);
  CHECK(res.batches == 41);
  CHECK(res.speculated == 0);
  CHECK(calls.load() == 41);
  CHECK(res.keys[0].agg.sum == range_sum(n));
}

TEST_CASE("speculation: a floor of 0 or a multiplier below 1 is a "
          "configuration error",
          "[speculation]") {
  auto opts = speculative(0ms);
  auto e1 = test::err(pipeline<std::int64_t>{}
                        .add(from_range(0, 10), "x")
                        .reduce(sum_by_label())
                        .with(opts)
                        .run());
  CHECK(code_of(e1) == errc::invalid_config);
  opts = speculative(100ms);
  opts.speculation_multiplier = 0.5;
  auto e2 = test::err(pipeline<std::int64_t>{}
                        .add(from_range(0, 10), "x")
                        .reduce(sum_by_label())
                        .with(opts)
                        .run());
  CHECK(code_of(e2) == errc::invalid_config);
  opts.speculation = false; // not checked when off
  CHECK(test::ok(pipeline<std::int64_t>{}
                   .add(from_range(0, 10), "x")
                   .reduce(sum_by_label())
                   .with(opts)
                   .run())
          .aggregated
        == 10);
}

TEST_CASE("speculation: when the second attempt's reducer dies, the batch "
          "is dispatched once more and the job ends without the stuck first "
          "attempt",
          "[speculation][faults]") {
  const std::int64_t n = 50'000;
  auto s = std::make_shared<script>();
  s->stuck_for = 20s;
  auto opts = speculative(100ms);
  // The reducer that gets the stuck batch's second attempt dies before it
  // folds it (once).
  auto hook_calls = std::make_shared<std::atomic<int>>(0);
  opts.crash_reducer = [s, hook_calls](std::uint32_t, std::uint64_t seq) {
    return seq == s->stuck_seq && hook_calls->fetch_add(1) == 1;
  };
  pipeline<std::int64_t> p;
  p.add(from_range(0, n), "x").reduce(scripted_sum(s)).with(opts);
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", std::size_t{4});
  caf::actor_system sys{cfg};
  auto j = p.start(sys);
  REQUIRE(j);
  auto done = j->wait_for(15s);
  // Checked before the actor system ends: its end waits for the stuck call.
  auto stuck_returned = s->stuck_returned.load();
  s->g.release();
  if (!done)
    j->cancel();
  REQUIRE(done);
  auto res = test::ok(j->wait());
  auto stats = j->stats();
  // The first call was still at its gate: a third attempt did the batch.
  CHECK_FALSE(stuck_returned);
  CHECK(hook_calls->load() >= 3);
  CHECK(s->stuck_calls.load() >= 2);
  CHECK(res.reducers_replaced == 1);
  CHECK(res.speculated >= 2);
  CHECK(res.batches == 50);
  CHECK(res.balanced());
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.count == static_cast<std::uint64_t>(n));
  CHECK(res.keys[0].agg.sum == range_sum(n));
  CHECK(stats.batches_speculated == res.speculated);
}

TEST_CASE("speculation: when the first attempt's reducer dies while the "
          "second runs, the second carries on alone and is merged, not "
          "dispatched again",
          "[speculation][faults]") {
  const std::int64_t n = 50'000;
  const std::uint64_t stuck = 7;
  // The first attempt of batch 7 holds its reducer in the crash hook until
  // the second attempt's call opens the gate, then dies; the second call
  // goes on for 300 ms after that, so the manager sees the death while the
  // second attempt still runs.
  auto g = std::make_shared<gate>();
  auto hook_calls = std::make_shared<std::atomic<int>>(0);
  auto fn_calls = std::make_shared<std::atomic<int>>(0);
  // A floor of 2 s: the 300 ms of the second call never look slow enough
  // for a third attempt, even on a loaded machine.
  auto opts = speculative(2000ms);
  // One batch per reducer: the dying reducer holds nothing but batch 7.
  opts.reducer_queue = 1;
  opts.crash_reducer = [g, hook_calls, stuck](std::uint32_t,
                                              std::uint64_t seq) {
    if (seq != stuck || hook_calls->fetch_add(1) != 0)
      return false;
    g->wait(20s);
    return true;
  };
  pipeline<std::int64_t> p;
  p.add(from_range(0, n), "x")
    .reduce([g, fn_calls, stuck](const batch_ref<std::int64_t>& b,
                                 partial& out) {
      if (b.seq == stuck) {
        fn_calls->fetch_add(1);
        g->release();
        std::this_thread::sleep_for(300ms);
      }
      out.add(b.label, aggregate::of(b.items.data(), b.items.size()));
    })
    .with(opts);
  auto [res, stats] = run_in_own_system(p);
  CHECK(hook_calls->load() == 2);
  // Only the second attempt ever folded batch 7: promoted, not run again.
  CHECK(fn_calls->load() == 1);
  CHECK(res.reducers_replaced == 1);
  // Batch 7 at least (on a loaded machine another batch may be slow too).
  CHECK(res.speculated >= 1);
  CHECK(stats.batches_redispatched == 0);
  CHECK(res.batches == 50);
  CHECK(res.balanced());
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.count == static_cast<std::uint64_t>(n));
  CHECK(res.keys[0].agg.sum == range_sum(n));
}

TEST_CASE("speculation: batches held by a combining local reducer are not "
          "dispatched again, and the job still ends exact",
          "[speculation][combine]") {
  // Batch 7 waits 1.5 s at the gate (stuck_for), over ten times the 100 ms
  // floor: without combining it is dispatched again (the first test); a
  // combining reducer answers for several batches at once, so a second
  // attempt of one of them could not be merged apart, and none is made.
  const std::int64_t n = 50'000;
  auto s = std::make_shared<script>();
  s->stuck_for = 1500ms;
  auto opts = speculative(100ms);
  opts.combine_batches = 4;
  opts.credits = 16;
  opts.inline_elements = 0;
  auto p = pipeline<std::int64_t>{}
             .add(from_range(0, n), "x")
             .reduce(scripted_sum(s))
             .with(opts);
  auto [res, stats] = run_in_own_system(p);
  CHECK(res.speculated == 0);
  CHECK(s->stuck_calls.load() == 1);
  CHECK(s->stuck_returned.load());
  CHECK(res.batches == 50);
  CHECK(res.partials < res.batches);
  CHECK(res.balanced());
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.count == static_cast<std::uint64_t>(n));
  CHECK(res.keys[0].agg.sum == range_sum(n));
}
