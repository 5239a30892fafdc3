// Sinks: every emitted row is written exactly once, the result is delivered
// only after the commit, and a failure anywhere aborts the sink.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "support.hpp"

using namespace flow;

namespace {

/// What a recording sink saw, shared with the test.
struct sink_log {
  std::mutex mtx;
  std::vector<std::int64_t> rows;
  int opens = 0;
  int writes_before_open = 0;
  bool fail_open = false;
  int writes = 0;
  int commits = 0;
  int aborts = 0;
  int in_write = 0;
  int peak_backlog = 0;
  bool fail_write_at_second = false;
  bool fail_commit = false;
  std::chrono::milliseconds write_delay{0};
  job_result committed_result;
};

class recording_sink : public sink_impl<std::int64_t> {
public:
  explicit recording_sink(std::shared_ptr<sink_log> log)
    : log_(std::move(log)) {
  }

  void open() override {
    std::lock_guard<std::mutex> guard{log_->mtx};
    ++log_->opens;
    if (log_->fail_open)
      throw std::runtime_error("cannot open: no space left on device");
  }

  void write(const std::vector<std::int64_t>& rows) override {
    if (log_->write_delay.count() > 0)
      std::this_thread::sleep_for(log_->write_delay);
    std::lock_guard<std::mutex> guard{log_->mtx};
    ++log_->writes;
    if (log_->opens == 0)
      ++log_->writes_before_open;
    if (log_->fail_write_at_second && log_->writes == 2)
      throw std::runtime_error("disk full");
    log_->rows.insert(log_->rows.end(), rows.begin(), rows.end());
  }

  void commit(const job_result& res) override {
    std::lock_guard<std::mutex> guard{log_->mtx};
    if (log_->fail_commit)
      throw std::runtime_error("serialization failure");
    ++log_->commits;
    log_->committed_result = res;
  }

  void abort() noexcept override {
    std::lock_guard<std::mutex> guard{log_->mtx};
    ++log_->aborts;
  }

  std::string name() const override {
    return "recording sink";
  }

private:
  std::shared_ptr<sink_log> log_;
};

/// Emits every element that is not a multiple of 7 and rejects the rest.
reducer<std::int64_t> emit_non_multiples_of_7() {
  return [](const batch_ref<std::int64_t>& b, partial& out) {
    for (auto x : b.items) {
      if (x % 7 == 0) {
        out.reject("multiple of 7");
      } else {
        out.emit(x);
        out.add("kept", x);
      }
    }
  };
}

} // namespace

TEST_CASE("sink: every emitted row is written exactly once before the result",
          "[sink]") {
  auto log = std::make_shared<sink_log>();
  const std::int64_t n = 100'000;
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, n), "a")
               .add(from_range(n, 2 * n), "b")
               .reduce(emit_non_multiples_of_7())
               .sink(sink<std::int64_t>{std::make_unique<recording_sink>(log)})
               .batch_size(1000)
               .reducers(3)
               .run();
  auto r = test::ok(std::move(res));
  // The result exists, so the commit happened before it.
  CHECK(log->commits == 1);
  CHECK(log->aborts == 0);
  // Opened once, before the first batch reached it.
  CHECK(log->opens == 1);
  CHECK(log->writes_before_open == 0);
  std::vector<std::int64_t> expected;
  for (std::int64_t x = 0; x < 2 * n; ++x)
    if (x % 7 != 0)
      expected.push_back(x);
  auto got = log->rows;
  std::sort(got.begin(), got.end());
  CHECK(got == expected);
  CHECK(r.written == expected.size());
  CHECK(r.aggregated + r.rejected == r.emitted);
  // The sink committed the same final aggregates the caller receives.
  REQUIRE(log->committed_result.keys.size() == 1);
  CHECK(log->committed_result.keys[0].agg == r.keys.at(0).agg);
  CHECK(log->committed_result.final);
  CHECK(r.rejected == static_cast<std::uint64_t>(2 * n) - expected.size());
}

TEST_CASE("sink: a failing write fails the job and aborts the sink",
          "[sink][errors]") {
  auto log = std::make_shared<sink_log>();
  log->fail_write_at_second = true;
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, 50'000), "a")
               .reduce(emit_non_multiples_of_7())
               .sink(sink<std::int64_t>{std::make_unique<recording_sink>(log)})
               .batch_size(1000)
               .run();
  auto e = test::err(std::move(res));
  CHECK(code_of(e) == errc::sink_failed);
  CHECK(describe(e).find("disk full") != std::string::npos);
  CHECK(log->commits == 0);
  CHECK(log->aborts == 1);
}

TEST_CASE("sink: a failing commit fails the job and aborts the sink",
          "[sink][errors]") {
  auto log = std::make_shared<sink_log>();
  log->fail_commit = true;
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, 5'000), "a")
               .reduce(emit_non_multiples_of_7())
               .sink(sink<std::int64_t>{std::make_unique<recording_sink>(log)})
               .run();
  auto e = test::err(std::move(res));
  CHECK(code_of(e) == errc::sink_failed);
  CHECK(describe(e).find("commit failed") != std::string::npos);
  CHECK(log->commits == 0);
  CHECK(log->aborts == 1);
}

TEST_CASE("sink: a reducer that throws under fail_fast aborts the sink and "
          "commits nothing",
          "[sink][errors]") {
  auto log = std::make_shared<sink_log>();
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, 20'000), "a")
               .on_failure(failure_policy::fail_fast)
               .reduce([](const batch_ref<std::int64_t>& b, partial& out) {
                 if (b.seq == 5)
                   throw std::runtime_error("bad row");
                 for (auto x : b.items)
                   out.emit(x);
               })
               .sink(sink<std::int64_t>{std::make_unique<recording_sink>(log)})
               .batch_size(1000)
               .run();
  auto e = test::err(std::move(res));
  CHECK(code_of(e) == errc::reducer_failed);
  // The error is delivered only after the sink has aborted.
  std::lock_guard<std::mutex> guard{log->mtx};
  CHECK(log->aborts == 1);
  CHECK(log->commits == 0);
}

TEST_CASE("sink: rows without a sink are a configuration error, not lost",
          "[sink][errors]") {
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, 10), "a")
               .reduce([](const batch_ref<std::int64_t>& b, partial& out) {
                 for (auto x : b.items)
                   out.emit(x);
               })
               .run();
  auto e = test::err(std::move(res));
  CHECK(code_of(e) == errc::invalid_config);
  CHECK(describe(e).find("no sink") != std::string::npos);
}

TEST_CASE("sink: rows of another type than the sink takes are refused",
          "[sink][errors]") {
  auto log = std::make_shared<sink_log>();
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, 10), "a")
               .reduce([](const batch_ref<std::int64_t>& b, partial& out) {
                 for (auto x : b.items)
                   out.emit(std::to_string(x));
               })
               .sink(sink<std::int64_t>{std::make_unique<recording_sink>(log)})
               .run();
  auto e = test::err(std::move(res));
  CHECK(code_of(e) == errc::invalid_config);
  CHECK(log->rows.empty());
}

TEST_CASE("sink: a slow sink holds back the generators (credit returns only "
          "after a write)",
          "[sink][backpressure]") {
  auto log = std::make_shared<sink_log>();
  log->write_delay = std::chrono::milliseconds(2);
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, 40'000), "a")
               .reduce(emit_non_multiples_of_7())
               .sink(sink<std::int64_t>{std::make_unique<recording_sink>(log)})
               .batch_size(500)
               .credits(3)
               .run();
  auto r = test::ok(std::move(res));
  CHECK(r.peak_in_flight <= 3);
  CHECK(log->writes == 80);
  CHECK(r.written == log->rows.size());
}

TEST_CASE("sink: a sink that cannot open fails the job before it writes",
          "[sink]") {
  auto log = std::make_shared<sink_log>();
  log->fail_open = true;
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, 1'000'000), "a")
               .reduce(emit_non_multiples_of_7())
               .sink(sink<std::int64_t>{std::make_unique<recording_sink>(log)})
               .batch_size(1000)
               .run();
  REQUIRE_FALSE(res);
  CHECK(code_of(res.error()) == errc::sink_failed);
  CHECK_THAT(describe(res.error()),
             Catch::Contains("recording sink: cannot open: no space left"));
  std::lock_guard<std::mutex> guard{log->mtx};
  CHECK(log->opens == 1);
  CHECK(log->writes == 0);
  CHECK(log->commits == 0);
  CHECK(log->aborts == 1);
}
