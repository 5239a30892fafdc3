// libflow's benchmark: the same data, the same run, every alternative.
//
// Workloads (first argument, or "all"):
//   sum       Example 1: sizes 5..10^8; plain loop, std::accumulate, oneTBB
//             parallel_reduce, naive CAF (chunks copied into messages), libflow
//   keyed     Example 2: the tutorial's three sets, list generation inside the
//             timed region; sequential C++ loop, oneTBB, libflow
//   work      a reducer with real per-element work (a hash chain), elements
//             per second per core: sequential loop, oneTBB, libflow
//   overhead  per-batch overhead: the same elements in batches of 1..65536
//   small     latency of a 5-element job in an actor system already running
//
// Every figure is the median of --runs runs (default 5). Output: CSV on
// stdout with the columns workload,size,method,median_s,min_s,max_s,runs,
// extra (extra: a workload-specific figure, e.g. ns per batch).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>

#include "flow/flow.hpp"
#include "flow/types.hpp"
#include "measure.hpp"

namespace {

using flow::bench::measure;
using flow::bench::stats;

/// Appended to "libflow" when the scheduler policy is not the default.
std::string policy_suffix;

void row(const std::string& workload, std::uint64_t size,
         const std::string& method, const stats& s, int runs,
         double extra = 0) {
  auto name = method == "libflow" ? method + policy_suffix : method;
  std::printf("%s,%llu,%s,%.9f,%.9f,%.9f,%d,%.6g\n", workload.c_str(),
              static_cast<unsigned long long>(size), name.c_str(), s.median,
              s.min, s.max, runs, extra);
  std::fflush(stdout);
}

[[noreturn]] void mismatch(const std::string& what) {
  std::cerr << "flow-bench: result mismatch in " << what << '\n';
  std::exit(1);
}

std::vector<std::int64_t> make_data(std::uint64_t n, std::uint64_t seed) {
  std::vector<std::int64_t> xs(n);
  flow::uniform_ints gen{seed, 0, 10000};
  gen.fill(xs.data(), 0, n);
  return xs;
}

flow::int128 tbb_sum(const std::vector<std::int64_t>& xs) {
  return tbb::parallel_reduce(
    tbb::blocked_range<std::size_t>(0, xs.size(), 1 << 16), flow::int128{0},
    [&](const tbb::blocked_range<std::size_t>& r, flow::int128 acc) {
      std::int64_t local = 0; // values are in 0..10000: no overflow per range
      for (auto i = r.begin(); i < r.end(); ++i)
        local += xs[i];
      return acc + local;
    },
    std::plus<flow::int128>{});
}

// The naive CAF version a CAF user would write without libflow: each chunk
// is copied into a message, sums are collected by a scoped actor.
caf::behavior naive_worker(caf::event_based_actor*) {
  return {
    [](const std::vector<std::int64_t>& chunk) -> std::int64_t {
      return std::accumulate(chunk.begin(), chunk.end(), std::int64_t{0});
    },
  };
}

flow::int128 naive_caf_sum(caf::actor_system& sys,
                           const std::vector<caf::actor>& workers,
                           const std::vector<std::int64_t>& xs,
                           std::size_t chunk) {
  caf::scoped_actor self{sys};
  std::size_t pending = 0;
  std::size_t w = 0;
  for (std::size_t pos = 0; pos < xs.size(); pos += chunk) {
    auto end = std::min(xs.size(), pos + chunk);
    std::vector<std::int64_t> part(xs.begin() + pos, xs.begin() + end);
    self->send(workers[w++ % workers.size()], std::move(part));
    ++pending;
  }
  flow::int128 total = 0;
  for (std::size_t i = 0; i < pending; ++i)
    self->receive([&](std::int64_t x) { total += x; });
  return total;
}

int runs_arg = 5;

void bench_sum(caf::actor_system& sys, const std::vector<std::uint64_t>& sizes) {
  auto threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<caf::actor> workers;
  for (unsigned i = 0; i < threads; ++i)
    workers.push_back(sys.spawn(naive_worker));
  for (auto n : sizes) {
    auto data = std::make_shared<const std::vector<std::int64_t>>(
      make_data(n, 42));
    auto& xs = *data;
    flow::int128 ref = 0;
    for (auto x : xs)
      ref += x;
    flow::int128 out = 0;
    auto check = [&](const char* what) {
      if (out != ref)
        mismatch(std::string{"sum/"} + what);
    };
    row("sum", n, "loop", measure(runs_arg, [&] {
          flow::int128 s = 0;
          for (auto x : xs)
            s += x;
          out = s;
        }), runs_arg);
    check("loop");
    row("sum", n, "accumulate", measure(runs_arg, [&] {
          out = std::accumulate(xs.begin(), xs.end(), flow::int128{0});
        }), runs_arg);
    check("accumulate");
    row("sum", n, "tbb", measure(runs_arg, [&] { out = tbb_sum(xs); }),
        runs_arg);
    check("tbb");
    auto chunk = std::max<std::size_t>(65536, n / (4 * threads) + 1);
    row("sum", n, "naive_caf", measure(runs_arg, [&] {
          out = naive_caf_sum(sys, workers, xs, chunk);
        }), runs_arg);
    check("naive_caf");
    row("sum", n, "libflow", measure(runs_arg, [&] {
          auto res = flow::pipeline<std::int64_t>{}
                       .add(flow::from_shared(data), "sum")
                       .reduce(flow::sum_by_label())
                       .run(sys);
          if (!res)
            mismatch(flow::describe(res.error()));
          out = res->keys.empty() ? 0 : res->keys[0].agg.sum;
        }), runs_arg);
    check("libflow");
  }
  for (auto& w : workers)
    caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
}

void bench_keyed(caf::actor_system& sys) {
  const std::vector<std::vector<std::uint64_t>> sets = {
    {5, 50, 500, 1000, 10000, 10000000, 100000000},
    std::vector<std::uint64_t>(7, 10000000),
    std::vector<std::uint64_t>(8, 10000),
  };
  for (std::size_t s = 0; s < sets.size(); ++s) {
    auto& sizes = sets[s];
    std::uint64_t total = 0;
    for (auto n : sizes)
      total += n;
    flow::int128 ref = 0;
    row("keyed", s + 1, "loop", measure(runs_arg, [&] {
          flow::int128 sum = 0;
          for (std::size_t j = 0; j < sizes.size(); ++j) {
            flow::uniform_ints gen{flow::derive_seed(42, j), 0, 10000};
            for (std::uint64_t i = 0; i < sizes[j]; ++i)
              sum += gen(i);
          }
          ref = sum;
        }), runs_arg, static_cast<double>(total));
    flow::int128 out = 0;
    row("keyed", s + 1, "tbb", measure(runs_arg, [&] {
          flow::int128 sum = 0;
          for (std::size_t j = 0; j < sizes.size(); ++j) {
            flow::uniform_ints gen{flow::derive_seed(42, j), 0, 10000};
            sum += tbb::parallel_reduce(
              tbb::blocked_range<std::uint64_t>(0, sizes[j], 1 << 16),
              flow::int128{0},
              [&](const tbb::blocked_range<std::uint64_t>& r,
                  flow::int128 acc) {
                std::int64_t local = 0;
                for (auto i = r.begin(); i < r.end(); ++i)
                  local += gen(i);
                return acc + local;
              },
              std::plus<flow::int128>{});
          }
          out = sum;
        }), runs_arg, static_cast<double>(total));
    if (out != ref)
      mismatch("keyed/tbb");
    row("keyed", s + 1, "libflow", measure(runs_arg, [&] {
          flow::pipeline<std::int64_t> p;
          for (std::size_t j = 0; j < sizes.size(); ++j)
            p.add(flow::from_random(sizes[j], flow::derive_seed(42, j)),
                  static_cast<std::int64_t>(sizes[j]));
          auto res = p.reduce(flow::sum_by_label()).run(sys);
          if (!res)
            mismatch(flow::describe(res.error()));
          flow::int128 sum = 0;
          for (auto& k : res->keys)
            sum += k.agg.sum;
          out = sum;
        }), runs_arg, static_cast<double>(total));
    if (out != ref)
      mismatch("keyed/libflow");
  }
}

// About 64 rounds of a 64-bit mixer per element: real work per element.
inline std::uint64_t work(std::int64_t x) {
  auto h = static_cast<std::uint64_t>(x);
  for (int i = 0; i < 64; ++i)
    h = flow::mix64(h + static_cast<std::uint64_t>(i));
  return h & 0xffff;
}

void bench_work(caf::actor_system& sys) {
  const std::uint64_t n = 4'000'000;
  auto data = std::make_shared<const std::vector<std::int64_t>>(make_data(n, 7));
  auto& xs = *data;
  auto threads = std::max(1u, std::thread::hardware_concurrency());
  flow::int128 ref = 0;
  auto s = measure(runs_arg, [&] {
    flow::int128 sum = 0;
    for (auto x : xs)
      sum += work(x);
    ref = sum;
  });
  row("work", n, "loop", s, runs_arg, n / s.median);
  flow::int128 out = 0;
  s = measure(runs_arg, [&] {
    out = tbb::parallel_reduce(
      tbb::blocked_range<std::size_t>(0, n, 1 << 14), flow::int128{0},
      [&](const tbb::blocked_range<std::size_t>& r, flow::int128 acc) {
        for (auto i = r.begin(); i < r.end(); ++i)
          acc += work(xs[i]);
        return acc;
      },
      std::plus<flow::int128>{});
  });
  if (out != ref)
    mismatch("work/tbb");
  row("work", n, "tbb", s, runs_arg, n / s.median / threads);
  s = measure(runs_arg, [&] {
    auto res = flow::pipeline<std::int64_t>{}
                 .add(flow::from_shared(data), "work")
                 .reduce(flow::per_element<std::int64_t>(
                   [](const std::int64_t& x, flow::partial& out) {
                     out.add("work", static_cast<std::int64_t>(work(x)));
                   }))
                 .batch_size(16384)
                 .run(sys);
    if (!res)
      mismatch(flow::describe(res.error()));
    out = res->keys.at(0).agg.sum;
  });
  if (out != ref)
    mismatch("work/libflow");
  // extra: elements per second per core.
  row("work", n, "libflow", s, runs_arg, n / s.median / threads);
}

void bench_overhead(caf::actor_system& sys) {
  const std::uint64_t n = 1 << 20;
  auto data = std::make_shared<const std::vector<std::int64_t>>(make_data(n, 1));
  double base = 0;
  for (std::size_t batch : {65536, 4096, 256, 64, 16, 4, 1}) {
    auto s = measure(runs_arg, [&] {
      auto res = flow::pipeline<std::int64_t>{}
                   .add(flow::from_shared(data), "x")
                   .reduce(flow::sum_by_label())
                   .batch_size(batch)
                   .credits(16)
                   .run(sys);
      if (!res || res->aggregated != n)
        mismatch("overhead");
    });
    auto batches = static_cast<double>((n + batch - 1) / batch);
    if (batch == 65536)
      base = s.median;
    // extra: wall ns per batch beyond the cost of the work itself.
    row("overhead", batch, "libflow", s, runs_arg,
        batch == 65536 ? 0 : (s.median - base) / batches * 1e9);
  }
}

void bench_small(caf::actor_system& sys) {
  auto data = std::make_shared<const std::vector<std::int64_t>>(make_data(5, 3));
  // Warm up the scheduler threads first.
  for (int i = 0; i < 100; ++i)
    (void) flow::pipeline<std::int64_t>{}
      .add(flow::from_shared(data), 5)
      .reduce(flow::sum_by_label())
      .run(sys);
  int n = 1000;
  auto s = measure(n, [&] {
    auto res = flow::pipeline<std::int64_t>{}
                 .add(flow::from_shared(data), 5)
                 .reduce(flow::sum_by_label())
                 .run(sys);
    if (!res || res->aggregated != 5)
      mismatch("small");
  });
  row("small", 5, "libflow", s, n, s.median * 1e6);
}

} // namespace

int main(int argc, char** argv) {
  std::string what = argc > 1 ? argv[1] : "all";
  std::string policy = "sharing";
  std::vector<std::uint64_t> sizes{5,     50,       500,      1000,
                                   10000, 10000000, 100000000};
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--policy=", 0) == 0)
      policy = arg.substr(9);
    else if (arg.rfind("--runs=", 0) == 0)
      runs_arg = std::max(1, std::stoi(arg.substr(7)));
    else if (arg.rfind("--max-size=", 0) == 0) {
      auto max = std::stoull(arg.substr(11));
      sizes.erase(std::remove_if(sizes.begin(), sizes.end(),
                                 [&](auto n) { return n > max; }),
                  sizes.end());
    }
  }
  caf::actor_system_config cfg;
  flow::configure_scheduler(cfg);
  if (policy == "stealing") {
    cfg.set("scheduler.policy", caf::atom("stealing"));
    policy_suffix = "_stealing";
  }
  caf::actor_system sys{cfg};
  std::printf("workload,size,method,median_s,min_s,max_s,runs,extra\n");
  if (what == "sum" || what == "all")
    bench_sum(sys, sizes);
  if (what == "keyed" || what == "all")
    bench_keyed(sys);
  if (what == "work" || what == "all")
    bench_work(sys);
  if (what == "overhead" || what == "all")
    bench_overhead(sys);
  if (what == "small" || what == "all")
    bench_small(sys);
  return 0;
}
