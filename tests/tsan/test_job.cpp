// The job handle under ThreadSanitizer: the manager (a CAF thread) completes
// the shared job state once while user threads wait, poll and copy handles.
// No actor system runs here: plain threads call `complete` as the manager
// would, which is all of this state's synchronisation that is ours.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "flow/error.hpp"
#include "flow/job.hpp"
#include "flow/result.hpp"
#include "engine/engine.hpp"
#include "threads.hpp"

using namespace flow;
using namespace flow::test;
using namespace std::chrono_literals;

namespace {

job_result make_result(std::uint64_t n, const std::string& label) {
  job_result res;
  res.emitted = n;
  res.aggregated = n;
  res.batches = n / 10;
  res.final = true;
  key_result k;
  k.key = flow::key{label};
  for (std::uint64_t i = 0; i < n; ++i)
    k.agg.add(static_cast<std::int64_t>(i));
  res.keys.push_back(k);
  return res;
}

/// A printable digest of what a thread saw, to compare across threads.
std::string digest(const caf::expected<job_result>& res) {
  if (!res)
    return "error: " + describe(res.error());
  std::string out = std::to_string(res->emitted) + "/"
                    + std::to_string(res->aggregated) + "/"
                    + (res->final ? "final" : "running");
  for (auto& k : res->keys)
    out += " " + to_string(k.key) + "=" + to_string(k.agg.sum) + "#"
           + std::to_string(k.agg.count);
  return out;
}

} // namespace

TEST_CASE("job: threads that wait, poll and copy the handle all see the one "
          "result the first complete sets",
          "[tsan][job]") {
  auto first = digest(make_result(1000, "first"));
  auto second = digest(make_result(2000, "second"));
  // Many rounds: the interleavings differ from round to round.
  for (int round = 0; round < 50; ++round) {
    auto impl = std::make_shared<detail::job_impl>();
    job j{impl};
    constexpr std::size_t threads = 8;
    std::vector<std::string> seen(threads);
    std::vector<int> polls(threads);
    run_together(threads, [&](std::size_t t) {
      switch (t) {
        case 0:
          impl->complete(make_result(1000, "first"));
          break;
        case 1:
          // A second completion (the manager never sends one; complete
          // must ignore it wherever it lands).
          impl->complete(make_result(2000, "second"));
          break;
        case 2:
        case 3: {
          job copy = j;
          seen[t] = digest(copy.wait());
          break;
        }
        case 4:
        case 5:
          while (!j.wait_for(1ms))
            ++polls[t];
          seen[t] = digest(j.wait());
          break;
        default:
          while (!j.done())
            ++polls[t];
          // After the end snapshot answers without asking the manager, and
          // cancel does nothing.
          j.cancel();
          seen[t] = digest(j.snapshot());
      }
    });
    INFO("round " << round);
    auto winner = digest(j.wait());
    CHECK((winner == first || winner == second));
    for (std::size_t t = 2; t < threads; ++t)
      CHECK(seen[t] == winner);
    CHECK(j.done());
  }
}

TEST_CASE("job: an error completes every waiter with that error, and "
          "wait_for times out while the job runs",
          "[tsan][job]") {
  auto impl = std::make_shared<detail::job_impl>();
  job j{impl};
  CHECK_FALSE(j.done());
  CHECK_FALSE(j.wait_for(5ms));
  constexpr std::size_t waiters = 6;
  std::vector<errc> codes(waiters, errc::none);
  run_together(waiters + 1, [&](std::size_t t) {
    if (t == waiters) {
      std::this_thread::sleep_for(20ms);
      impl->complete(make_error(errc::cancelled, "cancelled by the test"));
      return;
    }
    if (t % 2 == 0)
      while (!j.wait_for(1ms))
        continue;
    auto res = j.wait();
    codes[t] = res ? errc::none : code_of(res.error());
  });
  for (std::size_t t = 0; t < waiters; ++t) {
    CHECK(codes[t] == errc::cancelled);
  }
  auto res = j.wait();
  REQUIRE_FALSE(res);
  CHECK(describe(res.error()).find("cancelled by the test")
        != std::string::npos);
}
