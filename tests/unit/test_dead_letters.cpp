// Failure policies: a reducer function that throws is retried, then bisected
// down to the failing elements (dead letters) or skipped as a batch; the
// accounting identity emitted = aggregated + rejected + dead_lettered holds in
// every case. Faults are injected by the data (deterministic), not by timing.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "support.hpp"

using namespace flow;

namespace {

/// Sums by label, throwing on every element that is 999 modulo 1000.
reducer<std::int64_t> sum_failing_on_999() {
  return [](const batch_ref<std::int64_t>& b, partial& out) {
    for (auto x : b.items)
      if (x % 1000 == 999)
        throw std::runtime_error("poison " + std::to_string(x));
    out.add(b.label, aggregate::of(b.items.data(), b.items.size()));
  };
}

int128 sum_range(std::int64_t lo, std::int64_t hi) {
  int128 result = 0;
  for (auto i = lo; i < hi; ++i)
    result += i;
  return result;
}

} // namespace

TEST_CASE("dead letters: failing elements are isolated by bisection and the "
          "rest is merged",
          "[dead_letters][faults]") {
  const std::int64_t n = 100'000;
  auto res = test::ok(pipeline<std::int64_t>{}
                        .add(from_range(0, n), "x")
                        .reduce(sum_failing_on_999())
                        .batch_size(1000)
                        .reducers(3)
                        .run());
  CHECK(res.emitted == static_cast<std::uint64_t>(n));
  CHECK(res.dead_lettered == 100);
  CHECK(res.aggregated == static_cast<std::uint64_t>(n) - 100);
  CHECK(res.rejected == 0);
  CHECK(res.balanced());
  // Each of the 100 failing batches was retried twice (the default).
  CHECK(res.retried == 200);
  REQUIRE(res.dead_letters.size() == 100);
  int128 poisoned = 0;
  for (std::size_t i = 0; i < res.dead_letters.size(); ++i) {
    auto& d = res.dead_letters[i];
    INFO(i);
    CHECK(d.count == 1);
    CHECK(d.source == 0);
    CHECK(d.value == std::to_string(d.index));
    CHECK(d.index % 1000 == 999);
    CHECK(d.error == "poison " + d.value);
    poisoned += static_cast<std::int64_t>(d.index);
  }
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.count == static_cast<std::uint64_t>(n) - 100);
  CHECK(res.keys[0].agg.sum == sum_range(0, n) - poisoned);
}

TEST_CASE("dead letters: a batch that fails once succeeds on its retry and "
          "nothing is lost",
          "[dead_letters][faults]") {
  auto attempts = std::make_shared<std::atomic<int>>(0);
  auto res = test::ok(pipeline<std::int64_t>{}
                        .add(from_range(0, 10'000), "x")
                        .batch_size(100)
                        .reducers(2)
                        .reduce([attempts](const batch_ref<std::int64_t>& b,
                                           partial& out) {
                          if (b.seq == 42 && attempts->fetch_add(1) == 0)
                            throw std::runtime_error("transient");
                          out.add(b.label, aggregate::of(b.items.data(),
                                                         b.items.size()));
                        })
                        .run());
  CHECK(attempts->load() == 2);
  CHECK(res.retried == 1);
  CHECK(res.dead_lettered == 0);
  CHECK(res.dead_letters.empty());
  CHECK(res.aggregated == 10'000);
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.sum == sum_range(0, 10'000));
}

TEST_CASE("dead letters: the number of retries is configurable",
          "[dead_letters][faults]") {
  auto retries = GENERATE(0u, 1u, 5u);
  INFO("retries " << retries);
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto res = test::ok(pipeline<std::int64_t>{}
                        .add(from_range(0, 64), "x")
                        .batch_size(64)
                        .on_failure(failure_policy::dead_letter, retries)
                        .reduce([calls](const batch_ref<std::int64_t>& b,
                                        partial& out) {
                          if (b.items.size() == 64)
                            calls->fetch_add(1);
                          for (auto x : b.items)
                            if (x == 10)
                              throw std::runtime_error("ten");
                          out.add(b.label, aggregate::of(b.items.data(),
                                                         b.items.size()));
                        })
                        .run());
  // The whole batch ran 1 + retries times; bisection never reruns it whole.
  CHECK(calls->load() == static_cast<int>(1 + retries));
  CHECK(res.retried == retries);
  CHECK(res.dead_lettered == 1);
  REQUIRE(res.dead_letters.size() == 1);
  CHECK(res.dead_letters[0].index == 10);
  CHECK(res.dead_letters[0].value == "10");
  CHECK(res.keys[0].agg.sum == sum_range(0, 64) - 10);
  CHECK(res.balanced());
}

TEST_CASE("dead letters: the skip policy reports whole failing batches",
          "[dead_letters][faults]") {
  const std::int64_t n = 100'000;
  auto res = test::ok(pipeline<std::int64_t>{}
                        .add(from_range(0, n), "x")
                        .reduce(sum_failing_on_999())
                        .batch_size(500)
                        .on_failure(failure_policy::skip)
                        .run());
  // Batches of 500: those holding a value 999 mod 1000 are the odd ones.
  CHECK(res.dead_lettered == static_cast<std::uint64_t>(n) / 2);
  CHECK(res.aggregated == static_cast<std::uint64_t>(n) / 2);
  CHECK(res.balanced());
  REQUIRE(res.dead_letters.size() == 100);
  int128 skipped = 0;
  for (auto& d : res.dead_letters) {
    CHECK(d.count == 500);
    CHECK(d.index % 1000 == 500);
    CHECK(d.value.empty());
    CHECK_THAT(d.error, Catch::StartsWith("poison "));
    skipped += sum_range(static_cast<std::int64_t>(d.index),
                         static_cast<std::int64_t>(d.index + d.count));
  }
  CHECK(res.keys[0].agg.sum == sum_range(0, n) - skipped);
}

TEST_CASE("dead letters: a function that fails on every element dead-letters "
          "them all and merges nothing",
          "[dead_letters][faults]") {
  auto res = test::ok(pipeline<std::int64_t>{}
                        .add(from_range(0, 300), "x")
                        .batch_size(64)
                        .on_failure(failure_policy::dead_letter, 0)
                        .reduce([](const batch_ref<std::int64_t>&, partial&) {
                          throw 7; // not even an exception
                        })
                        .run());
  CHECK(res.emitted == 300);
  CHECK(res.aggregated == 0);
  CHECK(res.dead_lettered == 300);
  CHECK(res.keys.empty());
  CHECK(res.balanced());
  REQUIRE(res.dead_letters.size() == 300);
  CHECK(res.dead_letters.front().error == "unknown exception");
}

TEST_CASE("dead letters: the handler sees every letter, the result keeps at "
          "most max_dead_letters",
          "[dead_letters][faults]") {
  struct seen_t {
    std::mutex mtx;
    std::vector<std::uint64_t> indexes;
  };
  auto seen = std::make_shared<seen_t>();
  options opts;
  opts.batch_size = 1000;
  opts.max_dead_letters = 10;
  opts.dead_letter_handler = [seen](const dead_letter& d) {
    std::lock_guard<std::mutex> guard{seen->mtx};
    seen->indexes.push_back(d.index);
  };
  auto res = test::ok(pipeline<std::int64_t>{}
                        .add(from_range(0, 50'000), "x")
                        .with(opts)
                        .reduce(sum_failing_on_999())
                        .run());
  CHECK(res.dead_lettered == 50);
  CHECK(res.dead_letters.size() == 10);
  std::lock_guard<std::mutex> guard{seen->mtx};
  CHECK(seen->indexes.size() == 50);
  for (auto i : seen->indexes)
    CHECK(i % 1000 == 999);
}

TEST_CASE("dead letters: a handler that throws fails the job instead of "
          "losing letters",
          "[dead_letters][faults]") {
  options opts;
  opts.batch_size = 1000;
  opts.dead_letter_handler = [](const dead_letter&) {
    throw std::runtime_error("disk full");
  };
  auto e = test::err(pipeline<std::int64_t>{}
                       .add(from_range(0, 5'000), "x")
                       .with(opts)
                       .reduce(sum_failing_on_999())
                       .run());
  CHECK(code_of(e) == errc::sink_failed);
  CHECK_THAT(describe(e), Catch::Contains("disk full"));
}

TEST_CASE("dead letters: keyed values are rendered as 'key value', user types "
          "through describe()",
          "[dead_letters][faults]") {
  SECTION("keyed_value") {
    std::vector<keyed_value> xs{{key{"a"}, 1}, {key{"b"}, -5}, {key{"a"}, 3}};
    auto res = test::ok(pipeline<keyed_value>{}
                          .add(from_container(xs))
                          .reduce([](const batch_ref<keyed_value>& b,
                                     partial& out) {
                            for (auto& x : b.items) {
                              if (x.value < 0)
                                throw std::runtime_error("negative");
                              out.add(x.key, x.value);
                            }
                          })
                          .run());
    REQUIRE(res.dead_letters.size() == 1);
    CHECK(res.dead_letters[0].value == "b -5");
    CHECK(res.dead_letters[0].index == 1);
    REQUIRE(res.keys.size() == 1);
    CHECK(res.keys[0].agg.sum == 4);
  }
  SECTION("a user type") {
    struct point {
      int x;
      int y;
    };
    std::vector<point> xs{{1, 2}, {3, -4}, {5, 6}};
    auto run = [&](bool described) {
      pipeline<point> p;
      p.add(from_container(xs)).reduce([](const batch_ref<point>& b,
                                          partial& out) {
        for (auto& pt : b.items) {
          if (pt.y < 0)
            throw std::runtime_error("below the axis");
          out.add(key{}, pt.x);
        }
      });
      if (described)
        p.describe([](const point& pt) {
          return std::to_string(pt.x) + "," + std::to_string(pt.y);
        });
      return test::ok(p.run());
    };
    auto plain = run(false);
    REQUIRE(plain.dead_letters.size() == 1);
    CHECK(plain.dead_letters[0].value.empty());
    auto described = run(true);
    REQUIRE(described.dead_letters.size() == 1);
    CHECK(described.dead_letters[0].value == "3,-4");
    CHECK(described.keys[0].agg.sum == 6);
  }
}

namespace {

struct letter_log {
  std::mutex mtx;
  std::vector<std::int64_t> rows;
  std::vector<dead_letter> letters;
  int commits = 0;
  int aborts = 0;
  job_result committed;
};

class letter_sink final : public sink_impl<std::int64_t> {
public:
  explicit letter_sink(std::shared_ptr<letter_log> log) : log_(std::move(log)) {
  }
  void write(const std::vector<std::int64_t>& rows) override {
    std::lock_guard<std::mutex> guard{log_->mtx};
    staged_rows_.insert(staged_rows_.end(), rows.begin(), rows.end());
  }
  void write_dead_letters(const std::vector<dead_letter>& xs) override {
    staged_letters_.insert(staged_letters_.end(), xs.begin(), xs.end());
  }
  void commit(const job_result& res) override {
    std::lock_guard<std::mutex> guard{log_->mtx};
    log_->rows = std::move(staged_rows_);
    log_->letters = std::move(staged_letters_);
    log_->committed = res;
    ++log_->commits;
  }
  void abort() noexcept override {
    std::lock_guard<std::mutex> guard{log_->mtx};
    ++log_->aborts;
  }
  std::string name() const override {
    return "letter sink";
  }

private:
  std::shared_ptr<letter_log> log_;
  std::vector<std::int64_t> staged_rows_;
  std::vector<dead_letter> staged_letters_;
};

} // namespace

TEST_CASE("dead letters: a sink receives them with the rows and commits both",
          "[dead_letters][faults][sink]") {
  auto log = std::make_shared<letter_log>();
  auto policy = GENERATE(failure_policy::dead_letter, failure_policy::skip);
  INFO("policy " << static_cast<int>(policy));
  auto res = test::ok(
    pipeline<std::int64_t>{}
      .add(from_range(0, 20'000), "x")
      .batch_size(1000)
      .on_failure(policy)
      .reduce([](const batch_ref<std::int64_t>& b, partial& out) {
        for (auto x : b.items)
          if (x % 1000 == 999)
            throw std::runtime_error("poison");
        for (auto x : b.items)
          out.emit(x);
        out.add(b.label, static_cast<std::int64_t>(b.items.size()));
      })
      .sink(sink<std::int64_t>{std::make_unique<letter_sink>(log)})
      .run());
  std::lock_guard<std::mutex> guard{log->mtx};
  CHECK(log->commits == 1);
  CHECK(log->aborts == 0);
  std::uint64_t lettered = 0;
  for (auto& d : log->letters)
    lettered += d.count;
  CHECK(lettered == res.dead_lettered);
  CHECK(log->rows.size() == res.aggregated);
  CHECK(res.aggregated + res.dead_lettered == 20'000);
  if (policy == failure_policy::dead_letter) {
    CHECK(res.dead_lettered == 20);
    CHECK(log->letters.size() == 20);
    CHECK(log->rows.size() == 20'000 - 20);
  } else {
    CHECK(res.dead_lettered == 20'000);
    CHECK(log->rows.empty());
  }
  CHECK(log->committed.dead_lettered == res.dead_lettered);
}

TEST_CASE("dead letters: they survive serialisation in a job result",
          "[dead_letters][messages]") {
  job_result res;
  res.emitted = 3;
  res.aggregated = 2;
  res.dead_lettered = 1;
  res.dead_letters.push_back({4, 17, 1, "x y", "boom"});
  res.retried = 2;
  res.partial = true;
  std::vector<char> buf;
  {
    caf::binary_serializer sink{nullptr, buf};
    REQUIRE(!sink(res));
  }
  job_result back;
  caf::binary_deserializer source{nullptr, buf};
  REQUIRE(!source(back));
  CHECK(back.dead_lettered == 1);
  REQUIRE(back.dead_letters.size() == 1);
  CHECK(back.dead_letters[0].source == 4);
  CHECK(back.dead_letters[0].index == 17);
  CHECK(back.dead_letters[0].value == "x y");
  CHECK(back.dead_letters[0].error == "boom");
  CHECK(back.retried == 2);
  CHECK(back.partial);
  CHECK(back.balanced());
}

// -- stop: drain and a partial result ------------------------------------------

TEST_CASE("stop: an endless job drains and ends with a balanced partial result",
          "[stop][faults]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto next = std::make_shared<std::atomic<std::int64_t>>(0);
  auto j = pipeline<std::int64_t>{}
             .add(from_callable([next]() -> std::optional<std::int64_t> {
                    return next->fetch_add(1);
                  }),
                  "x")
             .batch_size(1000)
             .reduce(sum_by_label())
             .start(sys);
  REQUIRE(j);
  // Let it run until some batches were merged.
  for (int i = 0; i < 500; ++i) {
    auto snap = j->snapshot();
    if (snap && snap->batches >= 5)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  j->stop(std::chrono::seconds(10));
  REQUIRE(j->wait_for(std::chrono::seconds(30)));
  auto res = test::ok(j->wait());
  CHECK(res.partial);
  CHECK_FALSE(res.final);
  CHECK(res.abandoned == 0);
  CHECK(res.balanced());
  CHECK(res.emitted >= 5000);
  CHECK(res.emitted % 1000 == 0);
  REQUIRE(res.keys.size() == 1);
  // The accepted elements are exactly the first `emitted` ones.
  auto m = static_cast<std::int64_t>(res.emitted);
  CHECK(res.keys[0].agg.sum == sum_range(0, m));
}

TEST_CASE("stop: a drain that times out reports the abandoned elements",
          "[stop][faults]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  struct gate_t {
    std::mutex mtx;
    std::condition_variable cv;
    bool open = false;
    int blocked = 0;
  };
  auto gate = std::make_shared<gate_t>();
  auto j = pipeline<std::int64_t>{}
             .add(from_range(0, 1'000'000), "x")
             .batch_size(100)
             .reducers(2)
             .reduce([gate](const batch_ref<std::int64_t>& b, partial& out) {
               if (b.seq >= 3) {
                 // Reducers hang on later batches until the test opens the
                 // gate: the drain cannot finish in time.
                 std::unique_lock<std::mutex> guard{gate->mtx};
                 ++gate->blocked;
                 gate->cv.notify_all();
                 gate->cv.wait(guard, [&] { return gate->open; });
               }
               out.add(b.label,
                       aggregate::of(b.items.data(), b.items.size()));
             })
             .start(sys);
  REQUIRE(j);
  {
    std::unique_lock<std::mutex> guard{gate->mtx};
    REQUIRE(gate->cv.wait_for(guard, std::chrono::seconds(30),
                              [&] { return gate->blocked >= 1; }));
  }
  j->stop(std::chrono::milliseconds(200));
  REQUIRE(j->wait_for(std::chrono::seconds(30)));
  {
    std::lock_guard<std::mutex> guard{gate->mtx};
    gate->open = true;
  }
  gate->cv.notify_all();
  auto res = test::ok(j->wait());
  CHECK(res.partial);
  CHECK(res.abandoned > 0);
  CHECK(res.abandoned % 100 == 0);
  CHECK(res.balanced());
  CHECK(res.aggregated == 300);
}

TEST_CASE("stop: a stopped job's sink is aborted, never committed",
          "[stop][faults][sink]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto log = std::make_shared<letter_log>();
  auto next = std::make_shared<std::atomic<std::int64_t>>(0);
  auto j = pipeline<std::int64_t>{}
             .add(from_callable([next]() -> std::optional<std::int64_t> {
                    return next->fetch_add(1);
                  }),
                  "x")
             .batch_size(100)
             .reduce([](const batch_ref<std::int64_t>& b, partial& out) {
               for (auto x : b.items)
                 out.emit(x);
             })
             .sink(sink<std::int64_t>{std::make_unique<letter_sink>(log)})
             .start(sys);
  REQUIRE(j);
  for (int i = 0; i < 500; ++i) {
    auto snap = j->snapshot();
    if (snap && snap->written >= 500)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  j->stop();
  auto res = test::ok(j->wait());
  CHECK(res.partial);
  CHECK(res.balanced());
  std::lock_guard<std::mutex> guard{log->mtx};
  CHECK(log->commits == 0);
  CHECK(log->aborts == 1);
  CHECK(log->rows.empty());
}

TEST_CASE("stop: stopping a finished job changes nothing",
          "[stop][faults]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto j = pipeline<std::int64_t>{}
             .add(from_range(0, 1000), "x")
             .reduce(sum_by_label())
             .start(sys);
  REQUIRE(j);
  auto res = test::ok(j->wait());
  j->stop();
  auto again = test::ok(j->wait());
  CHECK(again.final);
  CHECK_FALSE(again.partial);
  CHECK(again.keys[0].agg.sum == res.keys[0].agg.sum);
}
