// options::combine_batches: local reducers fold the batches handed to them
// together and answer with one partial for several. The result, the
// accounting per batch, retries, bisection and replacements must be those
// of a job that answers per batch.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include "engine/engine.hpp"
#include "flow/detail/messages.hpp"
#include "support.hpp"

using namespace flow;

namespace {

/// Many keys per batch (x mod 997), a string key per 10th element and an
/// exact double sum per key: the general keyed path with aggregator states.
struct keyed_job {
  aggregators aggs;
  column<exact_fsum> halves = aggs.add("halves", exact_fsum{});

  reducer<std::int64_t> fn() const {
    auto col = halves;
    return per_element<std::int64_t>([col](const std::int64_t& x,
                                           partial& out) {
      flow::key k = x % 10 == 0 ? flow::key{"s" + std::to_string(x % 97)}
                                : flow::key{x % 997};
      out.add(k, x);
      out.add(k, col, static_cast<double>(x) / 2);
    });
  }
};

job_result run_keyed(const std::vector<std::int64_t>& xs, options opts);

/// Every key's built-in aggregate and state, in key order.
void check_same_keys(const job_result& x, const job_result& y) {
  keyed_job job;
  REQUIRE(x.keys.size() == y.keys.size());
  for (std::size_t i = 0; i < x.keys.size(); ++i) {
    CHECK(x.keys[i].key == y.keys[i].key);
    CHECK(x.keys[i].agg.sum == y.keys[i].agg.sum);
    CHECK(x.keys[i].agg.count == y.keys[i].agg.count);
    CHECK(x.keys[i].agg.min == y.keys[i].agg.min);
    CHECK(x.keys[i].agg.max == y.keys[i].agg.max);
    CHECK(job.halves.of(x.keys[i]).value()
          == job.halves.of(y.keys[i]).value());
  }
}

options base_options() {
  options opts;
  opts.reducers = 2;
  opts.batch_size = 1000;
  opts.credits = 16;
  opts.inline_elements = 0;
  // No hold ends by its timer here: a batch the manager forgot to have
  // answered for would hang the job, which the tests' time limits catch.
  opts.combine_hold = std::chrono::hours(1);
  return opts;
}

/// Waits for `j` at most a minute (cancelling it and failing the test
/// otherwise, so that a forgotten batch fails instead of hanging) and
/// returns its outcome.
caf::expected<job_result> finish_within_a_minute(const job& j) {
  auto done = j.wait_for(std::chrono::seconds(60));
  if (!done)
    j.cancel();
  REQUIRE(done);
  return j.wait();
}

/// Runs `p` and fails the test, instead of hanging it, when the job does
/// not end within a minute.
template <class T>
job_result run_bounded(pipeline<T>& p) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto j = p.start(sys);
  REQUIRE(j);
  return test::ok(finish_within_a_minute(*j));
}

job_result run_keyed(const std::vector<std::int64_t>& xs, options opts) {
  keyed_job job;
  auto p = pipeline<std::int64_t>{}
             .add(from_container(xs), "x")
             .aggregate_with(job.aggs)
             .reduce(job.fn())
             .with(opts);
  return run_bounded(p);
}

} // namespace

TEST_CASE("combine: batches folded together give the result of one partial "
          "per batch, with fewer partials",
          "[combine][pipeline]") {
  auto xs = test::random_values(200'000, 7);
  auto opts = base_options();
  auto one = run_keyed(xs, opts);
  CHECK(one.partials == one.batches);
  opts.combine_batches = 8;
  auto combined = run_keyed(xs, opts);
  CHECK(combined.batches == 200);
  CHECK(combined.emitted == 200'000);
  CHECK(combined.aggregated == 200'000);
  CHECK(combined.balanced());
  // Each partial covers at least one batch and at most eight.
  CHECK(combined.partials < combined.batches);
  CHECK(combined.partials * 8 >= combined.batches);
  check_same_keys(one, combined);
}

TEST_CASE("combine: with the default credits, combining never stalls the "
          "source",
          "[combine][pipeline]") {
  // 2 reducers x 8 batches exceed 4 credits: the manager must ask the
  // reducers to answer once the source waits. With the hold's timer at an
  // hour (base_options), a missing request hangs the job (run_bounded
  // fails it after a minute).
  auto xs = test::random_values(100'000, 3);
  auto opts = base_options();
  opts.credits = 4;
  auto one = run_keyed(xs, opts);
  opts.combine_batches = 8;
  auto combined = run_keyed(xs, opts);
  CHECK(combined.partials < combined.batches);
  CHECK(combined.batches == 100);
  check_same_keys(one, combined);
}

TEST_CASE("combine: a hold ends at its timer when nothing else asks",
          "[combine][pipeline]") {
  // One slow element at a time: the reducers idle between batches, the
  // source never waits for credit (64 credits), so only the hold's timer
  // (50 ms here) or a full combination ends a hold before the end.
  auto opts = base_options();
  opts.combine_batches = 64;
  opts.credits = 64;
  opts.combine_hold = std::chrono::milliseconds(50);
  opts.batch_size = 10;
  // One reducer: it gets every batch (one per 10 ms), so a hold of 50 ms
  // folds several.
  opts.reducers = 1;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto next = std::make_shared<std::atomic<std::int64_t>>(0);
  auto j = pipeline<std::int64_t>{}
             .add(from_callable([next]() -> std::optional<std::int64_t> {
                    auto i = next->fetch_add(1);
                    if (i >= 600)
                      return std::nullopt;
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                    return i;
                  },
                                true),
                  "x")
             .reduce(per_element<std::int64_t>([](const std::int64_t& x,
                                                  partial& out) {
               out.add(flow::key{x % 7}, x);
             }))
             .with(opts)
             .start(sys);
  REQUIRE(j);
  // Merged before the source ends (it takes at least 600 ms): only the
  // timer can have ended those holds.
  std::uint64_t seen = 0;
  for (int i = 0; i < 4000 && seen == 0 && !j->wait_for(
         std::chrono::milliseconds(0)); ++i) {
    auto snap = j->snapshot();
    if (snap && next->load() < 600)
      seen = snap->aggregated;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(j->wait_for(std::chrono::seconds(60)));
  auto res = test::ok(j->wait());
  CHECK(seen > 0);
  CHECK(res.emitted == 600);
  CHECK(res.aggregated == 600);
  CHECK(res.balanced());
  CHECK(res.partials < res.batches);
}

TEST_CASE("combine: rejections are counted per batch and in total",
          "[combine][pipeline]") {
  auto opts = base_options();
  opts.combine_batches = 8;
  auto p =
    pipeline<std::int64_t>{}
      .add(from_range(0, 100'000), "x")
      .reduce(per_element<std::int64_t>([](const std::int64_t& x,
                                           partial& out) {
        if (x % 7 == 0)
          out.reject(x % 2 == 0 ? "even seventh" : "odd seventh");
        else
          out.add(flow::key{x % 1000}, x);
      }))
      .with(opts);
  auto res = run_bounded(p);
  CHECK(res.emitted == 100'000);
  CHECK(res.rejected == 14'286); // 0, 7, ..., 99995
  CHECK(res.aggregated == 100'000 - 14'286);
  CHECK(res.balanced());
  CHECK(res.partials < res.batches);
  std::map<std::string, std::uint64_t> reasons(res.rejections.begin(),
                                               res.rejections.end());
  CHECK(reasons["even seventh"] == 7143);
  CHECK(reasons["odd seventh"] == 7143);
  CHECK(res.keys.size() == 1000);
}

TEST_CASE("combine: a batch that throws is answered for alone and its "
          "elements are bisected to dead letters",
          "[combine][dead_letters][faults]") {
  // An exception with an empty message is an exception all the same.
  auto empty = GENERATE(false, true);
  INFO("empty message: " << empty);
  auto opts = base_options();
  opts.combine_batches = 8;
  opts.retries = 1;
  auto p =
    pipeline<std::int64_t>{}
      .add(from_range(0, 100'000), "x")
      .reduce(per_element<std::int64_t>([empty](const std::int64_t& x,
                                                partial& out) {
        // After adding the half of its batch before it: the combined
        // partial holds part of the failing batch when it throws.
        if (x % 10'000 == 4321)
          throw std::runtime_error(empty ? ""
                                         : "poison " + std::to_string(x));
        out.add(flow::key{x % 500}, x);
      }))
      .with(opts);
  auto res = run_bounded(p);
  CHECK(res.emitted == 100'000);
  CHECK(res.dead_lettered == 10);
  CHECK(res.aggregated == 100'000 - 10);
  CHECK(res.balanced());
  CHECK(res.retried == 10);
  int128 sum = 0;
  std::uint64_t count = 0;
  for (auto& k : res.keys) {
    sum += k.agg.sum;
    count += k.agg.count;
  }
  int128 expected = int128{99'999} * 100'000 / 2;
  for (int i = 0; i < 10; ++i)
    expected -= i * 10'000 + 4321;
  CHECK(count == 100'000 - 10);
  CHECK(sum == expected);
  for (auto& letter : res.dead_letters)
    CHECK(letter.index % 10'000 == 4321);
}

TEST_CASE("combine: a reducer that dies holding batches is replaced and they "
          "are merged once",
          "[combine][faults][reducer]") {
  auto xs = test::random_values(200'000, 11);
  auto opts = base_options();
  auto one = run_keyed(xs, opts);
  opts.combine_batches = 8;
  auto fired = std::make_shared<std::atomic<int>>(0);
  // Kill whichever reducer gets batch 37 (by then it holds others folded
  // but not answered for), once.
  opts.crash_reducer = [fired](std::uint32_t, std::uint64_t seq) {
    return seq == 37 && fired->fetch_add(1) == 0;
  };
  auto res = run_keyed(xs, opts);
  CHECK(fired->load() >= 1);
  CHECK(res.reducers_replaced == 1);
  CHECK(res.batches == 200);
  CHECK(res.balanced());
  check_same_keys(one, res);
}

namespace {

/// Collects the rows written.
class collecting_sink : public sink_impl<std::int64_t> {
public:
  explicit collecting_sink(std::shared_ptr<std::vector<std::int64_t>> rows)
    : rows_(std::move(rows)) {
  }

  void write(const std::vector<std::int64_t>& rows) override {
    rows_->insert(rows_->end(), rows.begin(), rows.end());
  }

  void commit(const job_result&) override {
    // nop
  }

  void abort() noexcept override {
    // nop
  }

  std::string name() const override {
    return "collect";
  }

private:
  std::shared_ptr<std::vector<std::int64_t>> rows_;
};

} // namespace

TEST_CASE("combine: a job with a sink answers per batch",
          "[combine][sink]") {
  auto opts = base_options();
  opts.combine_batches = 8;
  auto rows = std::make_shared<std::vector<std::int64_t>>();
  auto res = test::ok(
    pipeline<std::int64_t>{}
      .add(from_range(0, 50'000), "x")
      .reduce(per_element<std::int64_t>([](const std::int64_t& x,
                                           partial& out) {
        out.add(flow::key{x % 100}, x);
        if (x % 1000 == 0)
          out.emit(x);
      }))
      .sink(sink<std::int64_t>{std::make_unique<collecting_sink>(rows)})
      .with(opts)
      .run());
  CHECK(res.partials == res.batches);
  CHECK(res.written == 50);
  CHECK(rows->size() == 50);
  CHECK(res.balanced());
}

TEST_CASE("combine: a stopped job drains the batches its reducers hold",
          "[combine][stop]") {
  auto opts = base_options();
  opts.combine_batches = 8;
  opts.credits = 32;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto next = std::make_shared<std::atomic<std::int64_t>>(0);
  // An endless source: only stop() ends the job.
  auto j = pipeline<std::int64_t>{}
             .add(from_callable([next]() -> std::optional<std::int64_t> {
                    return next->fetch_add(1);
                  }),
                  "x")
             .reduce(per_element<std::int64_t>([](const std::int64_t& x,
                                                  partial& out) {
               out.add(flow::key{x % 300}, x);
             }))
             .with(opts)
             .start(sys);
  REQUIRE(j);
  for (int i = 0; i < 2000; ++i) {
    auto snap = j->snapshot();
    if (snap && snap->batches >= 20)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  j->stop(std::chrono::seconds(30));
  REQUIRE(j->wait_for(std::chrono::seconds(60)));
  auto res = test::ok(j->wait());
  CHECK(res.partial);
  CHECK(res.abandoned == 0);
  CHECK(res.emitted >= 20'000);
  CHECK(res.emitted % 1000 == 0);
  CHECK(res.aggregated == res.emitted);
  CHECK(res.balanced());
  CHECK(res.partials < res.batches);
  // The accepted elements are exactly the first `emitted` ones.
  int128 sum = 0;
  std::uint64_t count = 0;
  for (auto& k : res.keys) {
    sum += k.agg.sum;
    count += k.agg.count;
  }
  auto m = static_cast<int128>(res.emitted);
  CHECK(count == res.emitted);
  CHECK(sum == m * (m - 1) / 2);
}

TEST_CASE("combine: a hold of 0 ms is refused at the start",
          "[combine][config]") {
  auto opts = base_options();
  opts.combine_batches = 8;
  opts.combine_hold = std::chrono::milliseconds(0);
  auto err = test::err(pipeline<std::int64_t>{}
                         .add(from_range(0, 1000), "x")
                         .reduce(sum_by_label())
                         .with(opts)
                         .run());
  CHECK(code_of(err) == errc::invalid_config);
  CHECK_THAT(describe(err), Catch::Contains("combine_hold"));
  // Without combining the hold is not used.
  opts.combine_batches = 1;
  auto res = test::ok(pipeline<std::int64_t>{}
                        .add(from_range(0, 1000), "x")
                        .reduce(sum_by_label())
                        .with(opts)
                        .run());
  CHECK(res.emitted == 1000);
}

namespace {

/// How a rogue reducer's combined partial misreports its batches.
enum class rogue_lie { unknown_batch, same_batch_twice };

/// Answers its batches with a combined partial that lies as `lie` says.
caf::behavior rogue_reducer(caf::event_based_actor* self, caf::actor manager,
                            rogue_lie lie) {
  return {
    [=](const detail::batch& b) {
      detail::partial_msg msg;
      msg.source = b.source;
      msg.seq = b.seq;
      msg.size = b.items.size;
      detail::batch_part part{b.source, b.seq + 1'000'000, b.items.size, 0};
      if (lie == rogue_lie::same_batch_twice)
        part.seq = b.seq;
      msg.more.push_back(part);
      self->send(manager, std::move(msg));
    },
  };
}

/// A job with a slow local reducer that a rogue reducer joins (as a worker
/// node's would): the rogue answers its first batch with a partial claiming
/// to cover one more batch (partial_msg::more), lying as `lie` says. The
/// manager must fail the job with accounting_mismatch, never merge it.
caf::error run_with_rogue(rogue_lie lie) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto p = pipeline<std::int64_t>{}
             .add(from_range(0, 100'000))
             .batch_size(100)
             .reducers(1)
             .distribute_as("test.rogue")
             .reduce([](const batch_ref<std::int64_t>& b, partial& out) {
               std::this_thread::sleep_for(std::chrono::milliseconds(1));
               out.add(b.label, aggregate::of(b.items.data(), b.items.size()));
             });
  auto j = p.start(sys);
  REQUIRE(j);
  auto manager = j->state()->manager;
  // Arguments, not captures: CAF 0.17 spawning a function without
  // arguments dereferences a null tuple (UBSan reports it).
  auto rogue = sys.spawn(rogue_reducer, manager, lie);
  caf::anon_send(manager, detail::join_atom::value, rogue,
                 std::string{"rogue"});
  auto res = finish_within_a_minute(*j);
  caf::anon_send_exit(rogue, caf::exit_reason::user_shutdown);
  REQUIRE_FALSE(res);
  return res.error();
}

} // namespace

TEST_CASE("combine: a combined partial naming a batch not in flight at its "
          "reducer, or its own batch twice, fails the job with "
          "accounting_mismatch",
          "[combine][errors]") {
  for (auto lie : {rogue_lie::unknown_batch, rogue_lie::same_batch_twice}) {
    INFO("lie " << static_cast<int>(lie));
    auto e = run_with_rogue(lie);
    CHECK(code_of(e) == errc::accounting_mismatch);
    CHECK_THAT(describe(e), Catch::Contains("a partial of 2 batches names "
                                            "batch"));
  }
}
