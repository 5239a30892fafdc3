// The embedding benchmark: what an application that links the installed
// libflow gets from pipeline::run() with default options, against oneTBB's
// parallel_reduce, on the same vector of int64 in memory.
//
//   flow-embed-bench METHOD N [SEED]
//
// METHOD is flow, tbb (a 128-bit sum, exact as libflow's) or tbb64 (an
// int64 sum, which would wrap silently on overflow). The process builds N pseudo-random values (not
// timed), then times ONE call, as a program that sums once does: libflow's
// includes starting and stopping its actor system, oneTBB's the start of its
// thread pool. It prints one JSON line: method, n, seconds, sum. bench/embed.sh
// runs the methods alternately in fresh processes and reports the medians.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>

#include <flow/flow.hpp>

namespace {

std::shared_ptr<const std::vector<std::int64_t>> make_values(std::size_t n,
                                                             std::uint64_t s) {
  auto xs = std::make_shared<std::vector<std::int64_t>>(n);
  for (auto& x : *xs) {
    // splitmix64: cheap, and values of every sign and size.
    s += 0x9E3779B97F4A7C15ULL;
    auto z = s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    x = static_cast<std::int64_t>((z ^ (z >> 31)) >> 20);
  }
  return xs;
}

/// oneTBB's parallel_reduce of `xs` into an `Acc` accumulator.
template <class Acc>
flow::int128 tbb_sum(const std::vector<std::int64_t>& xs) {
  return tbb::parallel_reduce(
    tbb::blocked_range<std::size_t>(0, xs.size()), Acc{0},
    [&](const tbb::blocked_range<std::size_t>& r, Acc acc) {
      for (auto i = r.begin(); i != r.end(); ++i)
        acc += xs[i];
      return acc;
    },
    [](Acc a, Acc b) { return a + b; });
}

std::string text(flow::int128 x) {
  return flow::to_string(x);
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: flow-embed-bench flow|tbb|tbb64 N [SEED]\n");
    return 2;
  }
  std::string method = argv[1];
  auto n = static_cast<std::size_t>(std::strtoull(argv[2], nullptr, 10));
  auto seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 42ULL;
  if (n == 0 || (method != "flow" && method != "tbb" && method != "tbb64")) {
    std::fprintf(stderr, "usage: flow-embed-bench flow|tbb|tbb64 N [SEED]\n");
    return 2;
  }
  auto xs = make_values(n, seed);
  using clock_type = std::chrono::steady_clock;
  auto t0 = clock_type::now();
  flow::int128 sum = 0;
  if (method == "flow") {
    auto res = flow::pipeline<std::int64_t>{}
                 .add(flow::from_shared(xs), "x")
                 .reduce(flow::sum_by_label())
                 .run();
    if (!res || res->keys.size() != 1 || !res->balanced()) {
      std::fprintf(stderr, "flow-embed-bench: the job failed\n");
      return 1;
    }
    sum = res->keys[0].agg.sum;
  } else if (method == "tbb64") {
    sum = tbb_sum<std::int64_t>(*xs);
  } else {
    // The reduction as a user would write it: 128-bit, so that it is as
    // exact as libflow's.
    sum = tbb_sum<flow::int128>(*xs);
  }
  auto s = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::printf("{\"method\":\"%s\",\"n\":%zu,\"seconds\":%.6f,\"sum\":\"%s\"}\n",
              method.c_str(), n, s, text(sum).c_str());
  return 0;
}
