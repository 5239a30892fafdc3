// The exact, correctly rounded double sum (flow::exact_fsum) against plain
// double loops on the same 10^8 values in memory (Google Benchmark).
//
//   plain_loop            sequential `s += x` (strict IEEE order: one chain)
//   exact_batch           exact_fsum::add(xs, n), one thread
//   exact_element         exact_fsum::add(x) per value (Neal's path only)
//   exact_batch_wide      the batch path on values spread over 2000 binades,
//                         where every block falls back to Neal's path
//   tbb_plain             oneTBB parallel_reduce of a plain double sum
//   tbb_exact             parallel_reduce of exact_fsum states, merged
//   libflow_exact         a libflow pipeline: views of the array in batches
//                         of 65,536, --threads reducers, an exact_fsum column
//
// The thread count of the oneTBB runs is --threads (default 2, the target
// machine of the issue). Their CPU column is the whole process's CPU time, so
// that it shows the work done even when other jobs share the cores. Run:
//   build/bench/bench/flow-exact-sum-bench --benchmark_min_time=2

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_reduce.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/flow.hpp"
#include "flow/types.hpp"

namespace {

constexpr std::size_t size = 100'000'000;

int threads = 2;

/// splitmix64, as in the unit tests.
struct splitmix {
  std::uint64_t s;
  std::uint64_t next() {
    s += 0x9E3779B97F4A7C15u;
    auto z = s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
  }
};

/// Random sign and mantissa, biased exponent uniform in [lo, hi].
std::vector<double> generate(std::uint64_t seed, std::size_t n, unsigned lo,
                             unsigned hi) {
  splitmix g{seed};
  std::vector<double> xs(n);
  for (auto& x : xs) {
    auto r1 = g.next();
    auto r2 = g.next();
    std::uint64_t e = lo + r2 % (hi - lo + 1);
    auto u = (r1 & (std::uint64_t{1} << 63)) | (e << 52)
             | (r1 & ((std::uint64_t{1} << 52) - 1));
    std::memcpy(&x, &u, sizeof x);
  }
  return xs;
}

/// Everyday data: magnitudes within 2^+-20 of 1, both signs.
const std::vector<double>& data() {
  static const auto xs = generate(1, size, 1003, 1043);
  return xs;
}

/// Hostile data: subnormals to 1e294.
const std::vector<double>& wide_data() {
  static const auto xs = generate(2, size, 0, 2000);
  return xs;
}

void plain_loop(benchmark::State& state) {
  const auto& xs = data();
  for (auto _ : state) {
    double s = 0;
    for (auto x : xs)
      s += x;
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations() * size);
}

void exact_batch(benchmark::State& state) {
  const auto& xs = data();
  for (auto _ : state)
    benchmark::DoNotOptimize(flow::exact_fsum::of(xs.data(), size).value());
  state.SetItemsProcessed(state.iterations() * size);
}

void exact_element(benchmark::State& state) {
  const auto& xs = data();
  for (auto _ : state) {
    flow::exact_fsum s;
    for (auto x : xs)
      s.add(x);
    benchmark::DoNotOptimize(s.value());
  }
  state.SetItemsProcessed(state.iterations() * size);
}

void exact_batch_wide(benchmark::State& state) {
  const auto& xs = wide_data();
  for (auto _ : state)
    benchmark::DoNotOptimize(flow::exact_fsum::of(xs.data(), size).value());
  state.SetItemsProcessed(state.iterations() * size);
}

void tbb_plain(benchmark::State& state) {
  const auto& xs = data();
  tbb::global_control limit{tbb::global_control::max_allowed_parallelism,
                            static_cast<std::size_t>(threads)};
  for (auto _ : state) {
    auto s = tbb::parallel_reduce(
      tbb::blocked_range<std::size_t>{0, size, 1 << 16}, 0.0,
      [&](const tbb::blocked_range<std::size_t>& r, double acc) {
        for (auto i = r.begin(); i != r.end(); ++i)
          acc += xs[i];
        return acc;
      },
      [](double a, double b) { return a + b; });
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations() * size);
}

void tbb_exact(benchmark::State& state) {
  const auto& xs = data();
  tbb::global_control limit{tbb::global_control::max_allowed_parallelism,
                            static_cast<std::size_t>(threads)};
  for (auto _ : state) {
    auto s = tbb::parallel_reduce(
      tbb::blocked_range<std::size_t>{0, size, 1 << 16}, flow::exact_fsum{},
      [&](const tbb::blocked_range<std::size_t>& r, flow::exact_fsum acc) {
        acc.add(xs.data() + r.begin(), r.size());
        return acc;
      },
      [](flow::exact_fsum a, const flow::exact_fsum& b) {
        a.merge(b);
        return a;
      });
    benchmark::DoNotOptimize(s.value());
  }
  state.SetItemsProcessed(state.iterations() * size);
}

void libflow_exact(benchmark::State& state) {
  // A view of the static array: the pipeline shares it, never copies it.
  std::shared_ptr<const std::vector<double>> xs{&data(),
                                                [](const auto*) {}};
  caf::actor_system_config cfg;
  flow::configure_scheduler(cfg);
  caf::actor_system sys{cfg};
  flow::aggregators aggs;
  auto sum = aggs.add("sum", flow::exact_fsum{});
  for (auto _ : state) {
    auto res = flow::pipeline<double>{}
                 .add(flow::from_shared(xs), "all")
                 .aggregate_with(aggs)
                 .reducers(static_cast<std::size_t>(threads))
                 .batch_size(1 << 16)
                 .reduce([sum](const flow::batch_ref<double>& b,
                               flow::partial& out) {
                   out.state(b.label, sum).add(b.items.data(), b.items.size());
                 })
                 .run(sys);
    if (!res || res->keys.size() != 1) {
      state.SkipWithError("the job failed");
      return;
    }
    benchmark::DoNotOptimize(sum.of(res->keys[0]).value());
  }
  state.SetItemsProcessed(state.iterations() * size);
}

} // namespace

BENCHMARK(plain_loop)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(exact_batch)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(exact_element)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(exact_batch_wide)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(tbb_plain)
  ->Unit(benchmark::kMillisecond)
  ->UseRealTime()
  ->MeasureProcessCPUTime();
BENCHMARK(tbb_exact)
  ->Unit(benchmark::kMillisecond)
  ->UseRealTime()
  ->MeasureProcessCPUTime();
BENCHMARK(libflow_exact)
  ->Unit(benchmark::kMillisecond)
  ->UseRealTime()
  ->MeasureProcessCPUTime();

int main(int argc, char** argv) {
  // Our own flag first; Google Benchmark rejects flags it does not know.
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--threads=", 0) == 0)
      threads = std::stoi(arg.substr(10));
    else
      rest.push_back(argv[i]);
  }
  auto n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data()))
    return 1;
  // Generate outside the timed regions.
  data();
  wide_data();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
