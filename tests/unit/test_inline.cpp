// Small jobs folded on the calling thread (options::inline_elements): the
// same results, statistics and failures as the engine, and the engine takes
// over, batches intact, whenever the fast path would differ.

#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/types.hpp"

using flow::key;

namespace {

/// An actor system for one test case's jobs (start() needs one); called
/// as `system()`.
struct test_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;

  test_system() {
    flow::configure_scheduler(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }

  caf::actor_system& operator()() {
    return *sys;
  }
};

flow::options engine_only() {
  flow::options opts;
  opts.inline_elements = 0;
  return opts;
}

/// Every field of two results that a job's input decides. `same_peak`:
/// false when both ran (part of) the job on the engine with several
/// batches, whose peak in flight depends on how the reducers were scheduled
/// (it is then only checked to lie between 1 and the batches).
void check_same(const flow::job_result& x, const flow::job_result& y,
                bool same_peak = true) {
  CHECK(x.final == y.final);
  CHECK(x.emitted == y.emitted);
  CHECK(x.aggregated == y.aggregated);
  CHECK(x.rejected == y.rejected);
  CHECK(x.dead_lettered == y.dead_lettered);
  CHECK(x.batches == y.batches);
  CHECK(x.sources == y.sources);
  CHECK(x.key_count == y.key_count);
  CHECK(x.rejections == y.rejections);
  CHECK(x.retried == y.retried);
  if (same_peak) {
    CHECK(x.peak_in_flight == y.peak_in_flight);
  } else {
    for (auto* r : {&x, &y}) {
      CHECK(r->peak_in_flight >= 1);
      CHECK(r->peak_in_flight <= r->batches);
    }
  }
  REQUIRE(x.keys.size() == y.keys.size());
  for (std::size_t i = 0; i < x.keys.size(); ++i) {
    CHECK(x.keys[i].key == y.keys[i].key);
    CHECK(x.keys[i].agg == y.keys[i].agg);
    CHECK(x.keys[i].sources == y.keys[i].sources);
  }
  REQUIRE(x.dead_letters.size() == y.dead_letters.size());
  for (std::size_t i = 0; i < x.dead_letters.size(); ++i) {
    CHECK(x.dead_letters[i].source == y.dead_letters[i].source);
    CHECK(x.dead_letters[i].index == y.dead_letters[i].index);
    CHECK(x.dead_letters[i].value == y.dead_letters[i].value);
    CHECK(x.dead_letters[i].error == y.dead_letters[i].error);
  }
}

/// A source that says it holds `hint` elements and then does something
/// else: throws on its first batch, or yields `batches` batches of `hint`.
class lying_source final : public flow::source_impl<std::int64_t> {
public:
  lying_source(std::uint64_t hint, int batches, bool throws)
    : hint_(hint), left_(batches), throws_(throws) {
    // nop
  }

  flow::slice<std::int64_t> next(std::size_t max) override {
    if (throws_)
      throw std::runtime_error("disk on fire");
    --left_;
    std::vector<std::int64_t> xs(std::min<std::uint64_t>(hint_, max), 3);
    return flow::slice<std::int64_t>::owning(std::move(xs));
  }

  bool exhausted() const override {
    return left_ <= 0;
  }

  std::string name() const override {
    return "liar";
  }

  std::optional<std::uint64_t> size_hint() const override {
    return hint_;
  }

private:
  std::uint64_t hint_;
  int left_;
  bool throws_;
};

} // namespace

TEST_CASE("small jobs: finished when start returns, with the engine's result "
          "and statistics",
          "[pipeline][inline]") {
  test_system system;
  auto shared = std::make_shared<const std::vector<std::int64_t>>(
    test::random_values(1000, 5, -50, 50));
  auto empty = std::make_shared<const std::vector<std::int64_t>>();
  auto make = [&] {
    flow::pipeline<std::int64_t> p;
    p.add(flow::from_shared(shared), 1000)
      .add(flow::from_shared(empty), 0)
      .add(flow::from_random(20000, 9), 20000)
      .add(flow::from_range(1, 5), 1000)
      .add(flow::from_range(-3, 3));
    // Rejects negative values with a reason, sums the rest by label.
    p.reduce([](const flow::batch_ref<std::int64_t>& b, flow::partial& out) {
      for (auto x : b.items) {
        if (x < 0)
          out.reject("negative");
        else
          out.add(b.label, x);
      }
    });
    return p;
  };
  auto j = make().start(system());
  REQUIRE(j);
  // Folded on this thread: done before start returned.
  CHECK(j->done());
  auto res = test::ok(j->wait());
  auto engine = test::ok(make().with(engine_only()).run(system()));
  check_same(res, engine);
  CHECK(res.balanced());
  CHECK(res.rejected > 0);
  CHECK(res.batches == 4);
  // The statistics say what the manager's last ones say.
  auto xs = j->stats();
  CHECK(xs.state == flow::job_state::done);
  REQUIRE(xs.sources.size() == 5);
  CHECK(xs.emitted() == res.emitted);
  CHECK(xs.aggregated() == res.aggregated);
  CHECK(xs.rejected() == res.rejected);
  CHECK(xs.sources[1].emitted == 0);
  CHECK(xs.sources[2].emitted == 20000);
  CHECK(xs.sources[2].rejected == 0);
  CHECK(xs.keys == res.keys.size());
  REQUIRE(xs.result);
  CHECK(xs.result->aggregated == res.aggregated);
  // A finished handle: snapshot is the result, stop and cancel change
  // nothing.
  j->stop(std::chrono::milliseconds(0));
  j->cancel();
  check_same(test::ok(j->snapshot()), res);
  check_same(test::ok(j->wait()), res);
}

TEST_CASE("small jobs: run() without an actor system gives the same keyed "
          "result",
          "[pipeline][inline]") {
  test_system system;
  std::vector<flow::keyed_value> xs;
  for (std::int64_t i = 0; i < 500; ++i)
    xs.push_back({i % 3 == 0 ? key{"s" + std::to_string(i % 7)} : key{i % 11},
                  i * 1000});
  auto run = [&](const flow::options& opts) {
    return test::ok(flow::pipeline<flow::keyed_value>{}
                      .with(opts)
                      .add(flow::from_container(xs))
                      .reduce(flow::sum_by_key())
                      .run());
  };
  check_same(run(flow::options{}), run(engine_only()));
}

TEST_CASE("small jobs: a reducer that throws gets the engine's retries and "
          "dead letters, its first try counted",
          "[pipeline][inline][dead_letters]") {
  test_system system;
  for (auto policy : {flow::failure_policy::dead_letter,
                      flow::failure_policy::skip,
                      flow::failure_policy::fail_fast}) {
    INFO("policy " << static_cast<int>(policy));
    std::vector<std::int64_t> xs{1, 2, 13, 4, 5, 13, 7};
    auto run = [&](const flow::options& base, std::atomic<int>& calls) {
      auto opts = base;
      opts.on_failure = policy;
      opts.retries = 2;
      return flow::pipeline<std::int64_t>{}
        .with(opts)
        .add(flow::from_container(xs), 7)
        .reduce([&calls](const flow::batch_ref<std::int64_t>& b,
                         flow::partial& out) {
          ++calls;
          for (auto x : b.items) {
            if (x == 13)
              throw std::runtime_error("unlucky");
            out.add(b.label, x);
          }
        })
        .run(system());
    };
    std::atomic<int> inline_calls{0};
    std::atomic<int> engine_calls{0};
    auto fast = run(flow::options{}, inline_calls);
    auto slow = run(engine_only(), engine_calls);
    CHECK(inline_calls.load() == engine_calls.load());
    if (policy == flow::failure_policy::fail_fast) {
      auto e1 = test::err(fast);
      auto e2 = test::err(slow);
      CHECK(flow::code_of(e1) == flow::errc::reducer_failed);
      CHECK(flow::describe(e1) == flow::describe(e2));
      continue;
    }
    auto x = test::ok(fast);
    check_same(x, test::ok(slow));
    CHECK(x.retried == 2);
    CHECK(x.dead_lettered
          == (policy == flow::failure_policy::dead_letter ? 2u : 7u));
  }
}

TEST_CASE("small jobs: a source that throws fails the job as the engine "
          "does, and a wrong size hint loses nothing",
          "[pipeline][inline]") {
  test_system system;
  auto failing = [&system](const flow::options& opts) {
    return flow::pipeline<std::int64_t>{}
      .with(opts)
      .add(flow::from_range(0, 10))
      .add(std::make_unique<lying_source>(10, 1, true))
      .reduce(flow::sum_by_label())
      .run(system());
  };
  auto e1 = test::err(failing(flow::options{}));
  auto e2 = test::err(failing(engine_only()));
  CHECK(flow::code_of(e1) == flow::errc::source_failed);
  CHECK(flow::describe(e1) == flow::describe(e2));
  CHECK_THAT(flow::describe(e1), Catch::Contains("disk on fire"));
  // Says 10, gives three batches of 10; the sources after it were not read
  // yet when the fast path gave up, the one before it was.
  auto lying = [&system](const flow::options& opts) {
    return test::ok(flow::pipeline<std::int64_t>{}
                      .with(opts)
                      .add(flow::from_range(100, 105), 2)
                      .add(std::make_unique<lying_source>(10, 3, false), 1)
                      .add(flow::from_range(0, 10), 3)
                      .add(flow::from_random(50, 4), 4)
                      .reduce(flow::sum_by_label())
                      .run(system()));
  };
  auto res = lying(flow::options{});
  // Both end on the engine with six batches in flight at most.
  check_same(res, lying(engine_only()), false);
  CHECK(res.emitted == 5 + 30 + 10 + 50);
  CHECK(res.aggregated == res.emitted);
  CHECK(res.batches == 6);
  REQUIRE(res.keys.size() == 4);
  CHECK(res.keys[0].agg.sum == 90);
  CHECK(res.keys[1].agg.sum == 510);
  CHECK(res.keys[2].agg.sum == 45);
}

TEST_CASE("small jobs: too many elements, a sink or a source of unknown "
          "size use the engine",
          "[pipeline][inline]") {
  test_system system;
  auto big = flow::pipeline<std::int64_t>{}
               .add(flow::from_range(0, 200000))
               .reduce(flow::sum_by_label())
               .start(system());
  REQUIRE(big);
  auto res = test::ok(big->wait());
  CHECK(res.aggregated == 200000);
  // The engine's statistics count its reducer actors; the fast path has
  // none.
  CHECK(big->stats().reducers > 0);
  flow::options few;
  few.inline_elements = 99;
  auto over = flow::pipeline<std::int64_t>{}
                .with(few)
                .add(flow::from_range(0, 100))
                .reduce(flow::sum_by_label())
                .start(system());
  REQUIRE(over);
  CHECK(test::ok(over->wait()).aggregated == 100);
  CHECK(over->stats().reducers > 0);
  std::int64_t n = 0;
  auto unknown = flow::pipeline<std::int64_t>{}
                   .add(flow::from_callable(
                     [&n]() -> std::optional<std::int64_t> {
                       if (n >= 3)
                         return std::nullopt;
                       return ++n;
                     }))
                   .reduce(flow::sum_by_label())
                   .start(system());
  REQUIRE(unknown);
  CHECK(test::ok(unknown->wait()).aggregated == 3);
  CHECK(unknown->stats().reducers > 0);
}

TEST_CASE("small jobs: on_result_key gets the keys from the calling thread, "
          "and a throw fails the job either way",
          "[pipeline][inline]") {
  test_system system;
  for (bool fast : {true, false}) {
    INFO("inline: " << fast);
    auto opts = fast ? flow::options{} : engine_only();
    std::vector<key> seen;
    auto res = test::ok(flow::pipeline<flow::keyed_value>{}
                          .with(opts)
                          .add(flow::from_keyed_random(300, 40, 2, 10))
                          .reduce(flow::sum_by_key())
                          .on_result_key([&](const flow::key_result& k) {
                            seen.push_back(k.key);
                          })
                          .run(system()));
    CHECK(res.keys.empty());
    CHECK(res.key_count == seen.size());
    auto kept = test::ok(flow::pipeline<flow::keyed_value>{}
                           .with(opts)
                           .add(flow::from_keyed_random(300, 40, 2, 10))
                           .reduce(flow::sum_by_key())
                           .run(system()));
    REQUIRE(kept.keys.size() == seen.size());
    for (std::size_t i = 0; i < seen.size(); ++i)
      CHECK(kept.keys[i].key == seen[i]);
    CHECK(seen.size() > 30);
    auto bad = flow::pipeline<flow::keyed_value>{}
                 .with(opts)
                 .add(flow::from_keyed_random(300, 40, 2, 10))
                 .reduce(flow::sum_by_key())
                 .on_result_key([](const flow::key_result&) {
                   throw std::runtime_error("no room");
                 })
                 .run(system());
    auto e = test::err(bad);
    CHECK(flow::code_of(e) == flow::errc::sink_failed);
    CHECK_THAT(flow::describe(e), Catch::Contains("no room"));
  }
}
