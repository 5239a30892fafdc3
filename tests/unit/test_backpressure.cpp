// Credit-based flow control: a generator never runs ahead of the reducers, so
// memory stays bounded by sources x credits batches whatever the input size.

#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/scheduler/test_coordinator.hpp>

namespace {

// Counts the batch storages alive at any moment and remembers the maximum.
struct live_counter {
  std::atomic<int> live{0};
  std::atomic<int> max_live{0};
  std::atomic<int> created{0};
};

// The storage of one batch: counts itself alive from construction to
// destruction, whichever thread drops the last reference.
struct tracked_storage {
  tracked_storage(std::vector<std::int64_t> xs, live_counter& c)
    : values(std::move(xs)), counter(c) {
    ++counter.created;
    auto now = ++counter.live;
    auto prev = counter.max_live.load();
    while (prev < now && !counter.max_live.compare_exchange_weak(prev, now)) {
      // retry with the updated prev
    }
  }

  ~tracked_storage() {
    --counter.live;
  }

  tracked_storage(const tracked_storage&) = delete;
  tracked_storage& operator=(const tracked_storage&) = delete;

  std::vector<std::int64_t> values;
  live_counter& counter;
};

// The integers offset, offset + 1, ... (n of them), each batch in a storage of
// its own that the slice owns.
class tracked_source final : public flow::source_impl<std::int64_t> {
public:
  tracked_source(std::int64_t offset, std::uint64_t n, live_counter& c)
    : offset_(offset), n_(n), counter_(c) {
    // nop
  }

  flow::slice<std::int64_t> next(std::size_t max) override {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(max, n_ - pos_));
    if (n == 0)
      return {};
    std::vector<std::int64_t> xs(n);
    for (std::size_t k = 0; k < n; ++k)
      xs[k] = offset_ + static_cast<std::int64_t>(pos_ + k);
    pos_ += n;
    auto storage = std::make_shared<const tracked_storage>(std::move(xs),
                                                           counter_);
    auto data = storage->values.data();
    return flow::slice<std::int64_t>{std::move(storage), data, n};
  }

  bool exhausted() const override {
    return pos_ == n_;
  }

  std::string name() const override {
    return "tracked source";
  }

private:
  std::int64_t offset_;
  std::uint64_t n_;
  std::uint64_t pos_ = 0;
  live_counter& counter_;
};

// Sum of offset, ..., offset + n - 1 by a loop.
flow::int128 ref_sum(std::int64_t offset, std::uint64_t n) {
  flow::int128 total = 0;
  for (std::uint64_t i = 0; i < n; ++i)
    total += offset + static_cast<std::int64_t>(i);
  return total;
}

// A reducer that sleeps `delay` per batch, then sums it under its label.
flow::reducer<std::int64_t> slow_sum(std::chrono::microseconds delay) {
  return [delay](const flow::batch_ref<std::int64_t>& b, flow::partial& out) {
    if (delay.count() > 0)
      std::this_thread::sleep_for(delay);
    out.add(b.label, flow::aggregate::of(b.items.data(), b.items.size()));
  };
}

} // namespace

TEST_CASE("backpressure: a slow reducer never has more batches in flight per "
          "source than the credit",
          "[backpressure]") {
  auto credits = GENERATE(1, 2, 4);
  INFO("credits " << credits);
  constexpr std::uint64_t n = 400;
  constexpr std::size_t batch = 4;
  auto res = test::ok(flow::pipeline<std::int64_t>{}
                        .add(flow::from_range(0, n), "a")
                        .add(flow::from_range(1000, 1000 + n), "b")
                        .batch_size(batch)
                        .credits(credits)
                        .reducers(2)
                        .reduce(slow_sum(std::chrono::milliseconds(2)))
                        .run());
  CHECK(res.peak_in_flight <= static_cast<std::uint64_t>(credits));
  // The generator fills its whole credit at once (it sends all granted
  // batches in one go, long before the first 2 ms reduction returns), so the
  // window is used, not just respected.
  CHECK(res.peak_in_flight == static_cast<std::uint64_t>(credits));
  CHECK(res.batches == 2 * test::ceil_div(n, batch));
  REQUIRE(res.keys.size() == 2);
  CHECK(res.keys[0].agg.sum == ref_sum(0, n));
  CHECK(res.keys[1].agg.sum == ref_sum(1000, n));
}

TEST_CASE("backpressure: live batch storages stay bounded by credits x sources",
          "[backpressure][memory]") {
  // Who can hold a reference to a batch's storage:
  //  - the generator creates a storage in next() only while it holds credit
  //    and keeps no reference after sending the batch;
  //  - the manager keeps the batch (in its pending table) from receipt until
  //    the reducer's partial is merged, and only then returns one credit;
  //    the copy queued at or being reduced by a reducer belongs to that same
  //    credit.
  //  So per source at most `credits` storages are in flight (in the
  //  manager's mailbox, pending, or at a reducer).
  //  - after the merge, the reducer's own message (its copy of the batch) is
  //    destroyed only once its handler returns, which is after it sent the
  //    partial: each reducer may hold at most one such stale batch while the
  //    generator already creates the next one.
  //  Hence max live <= credits * sources + workers.
  auto delay_us = GENERATE(0, 500);
  constexpr std::size_t credits = 2;
  constexpr std::size_t sources = 3;
  constexpr std::size_t workers = 2;
  constexpr std::uint64_t n = 3000; // per source
  constexpr std::size_t batch = 10;
  INFO("reducer delay " << delay_us << " us");
  live_counter counter;
  {
    flow::pipeline<std::int64_t> p;
    for (std::size_t s = 0; s < sources; ++s)
      p.add(std::make_unique<tracked_source>(
              static_cast<std::int64_t>(s) * 100'000, n, counter),
            static_cast<std::int64_t>(s));
    auto res = test::ok(p.credits(credits)
                          .reducers(workers)
                          .batch_size(batch)
                          .reduce(slow_sum(std::chrono::microseconds(delay_us)))
                          .run());
    REQUIRE(res.keys.size() == sources);
    for (std::size_t s = 0; s < sources; ++s)
      CHECK(res.keys[s].agg.sum
            == ref_sum(static_cast<std::int64_t>(s) * 100'000, n));
    CHECK(res.peak_in_flight <= credits);
    CHECK(res.batches == sources * test::ceil_div(n, batch));
  }
  const int bound = static_cast<int>(credits * sources + workers);
  CHECK(counter.created.load()
        == static_cast<int>(sources * test::ceil_div(n, batch)));
  CHECK(counter.max_live.load() >= 1);
  CHECK(counter.max_live.load() <= bound);
  // Every storage was released once the job (and its actor system) ended.
  CHECK(counter.live.load() == 0);
}

TEST_CASE("backpressure: a long input with a fast reducer keeps memory bounded",
          "[backpressure][memory]") {
  // Same bound as above with one source: credits + workers storages.
  constexpr std::size_t credits = 3;
  constexpr std::size_t workers = 2;
  constexpr std::uint64_t n = 1'000'000;
  constexpr std::size_t batch = 1000;
  live_counter counter;
  {
    auto res = test::ok(flow::pipeline<std::int64_t>{}
                          .add(std::make_unique<tracked_source>(-500'000, n,
                                                                counter),
                               1)
                          .credits(credits)
                          .reducers(workers)
                          .batch_size(batch)
                          .reduce(flow::sum_by_label())
                          .run());
    REQUIRE(res.keys.size() == 1);
    CHECK(res.keys[0].agg.sum == ref_sum(-500'000, n));
    CHECK(res.keys[0].agg.count == n);
    CHECK(res.peak_in_flight <= credits);
  }
  CHECK(counter.created.load() == static_cast<int>(n / batch));
  CHECK(counter.max_live.load() <= static_cast<int>(credits + workers));
  CHECK(counter.live.load() == 0);
}

TEST_CASE("backpressure: under the deterministic scheduler, live storages never "
          "exceed credits x sources",
          "[backpressure][memory][deterministic]") {
  // CAF's test coordinator runs one message at a time, so a reducer's message
  // is destroyed before the manager sees its partial: the stale-reducer slack
  // of the test above disappears and the bound is exactly credits x sources.
  auto credits = GENERATE(1, 2, 3);
  constexpr std::size_t sources = 3;
  constexpr std::uint64_t n = 200;
  constexpr std::size_t batch = 7;
  INFO("credits " << credits);
  live_counter counter;
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.policy", caf::atom("testing"));
    caf::actor_system sys{cfg};
    auto& sched
      = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
    flow::pipeline<std::int64_t> p;
    for (std::size_t s = 0; s < sources; ++s)
      p.add(std::make_unique<tracked_source>(
              static_cast<std::int64_t>(s) * 1000, n, counter),
            static_cast<std::int64_t>(s));
    auto j = p.credits(credits)
               .reducers(2)
               .batch_size(batch)
               .reduce(flow::sum_by_label())
               .start(sys);
    REQUIRE(j);
    // Nothing has run yet: the job cannot have ended.
    CHECK_FALSE(j->done());
    std::size_t steps = 0;
    while (sched.try_run_once()) {
      ++steps;
      REQUIRE(counter.live.load() <= credits * static_cast<int>(sources));
    }
    CHECK(steps > 0);
    REQUIRE(j->done());
    auto res = test::ok(j->wait());
    REQUIRE(res.keys.size() == sources);
    for (std::size_t s = 0; s < sources; ++s)
      CHECK(res.keys[s].agg.sum
            == ref_sum(static_cast<std::int64_t>(s) * 1000, n));
    CHECK(res.peak_in_flight == static_cast<std::uint64_t>(credits));
  }
  CHECK(counter.max_live.load() <= credits * static_cast<int>(sources));
  CHECK(counter.max_live.load() >= credits);
  CHECK(counter.live.load() == 0);
}
