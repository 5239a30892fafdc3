// Distinct-count and quantile states: elements per second per core for each
// `add` path, and bytes of state per key (sizeof + heap, counted through
// operator new with malloc's per-block overhead) at typical sizes.
//
//   hll add              flow::hll (p = 14), integers, one add per element
//   hll add batch        the same through add(const int64_t*, n)
//   hll add string       strings of 8 to 14 bytes
//   distinct add         flow::distinct_count, integers, 10^6 distinct of 10^7
//   distinct add all     integers, all 10^7 distinct (the table keeps growing)
//   distinct add string  strings of 8 to 14 bytes, 10^6 distinct of 10^7
//   kll add              flow::kll (k = 400), lognormal doubles, one add each
//   kll add batch        the same through add(const double*, n)
//
// Rates are per CPU second of this one thread (so other jobs sharing the
// cores do not lower them); the wall time is printed beside. Run:
//   cmake --preset bench
//   cmake --build --preset bench -j2 --target flow-sketch-bench
//   build/bench/bench/flow-sketch-bench

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "flow/distinct.hpp"
#include "flow/quantiles.hpp"

namespace {

constexpr std::size_t n = 10'000'000;

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
  double unit() {
    return (static_cast<double>(next() >> 11) + 0.5) * 0x1p-53;
  }
};

/// Runs `f` once; prints elements per CPU second and the wall time.
template <class F>
void rate(const char* name, std::size_t elements, F&& f) {
  auto c0 = std::clock();
  auto w0 = std::chrono::steady_clock::now();
  f();
  auto cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
  std::chrono::duration<double> wall = std::chrono::steady_clock::now() - w0;
  std::printf("| %-20s | %12zu | %8.1f M/s | %7.3f s | %7.3f s |\n", name,
              elements, double(elements) / cpu / 1e6, cpu, wall.count());
}

/// Bytes held through operator new right now, as malloc counts them: the
/// usable size of each block plus its 8-byte chunk header (glibc, 64-bit).
/// Counted here rather than with mallinfo2, which sees blocks parked in the
/// thread cache as in use.
std::atomic<std::size_t> heap_bytes{0};

std::size_t heap_in_use() {
  return heap_bytes.load();
}

} // namespace

void* operator new(std::size_t size) {
  auto p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr)
    throw std::bad_alloc{};
  heap_bytes += malloc_usable_size(p) + 8;
  return p;
}

namespace {

void release(void* p) noexcept {
  if (p != nullptr)
    heap_bytes -= malloc_usable_size(p) + 8;
  std::free(p);
}

} // namespace

void operator delete(void* p) noexcept {
  release(p);
}

void operator delete(void* p, std::size_t) noexcept {
  release(p);
}

namespace {

/// Bytes of a state built by `build`: sizeof plus the heap it holds.
template <class State, class Build>
std::size_t state_bytes(Build&& build) {
  auto before = heap_in_use();
  auto s = std::make_unique<State>();
  build(*s);
  auto after = heap_in_use();
  // make_unique put the object itself on the heap: that is the sizeof part.
  return after - before;
}

} // namespace

int main() {
  splitmix g{1};
  std::vector<std::int64_t> ints(n);
  for (auto& x : ints)
    x = static_cast<std::int64_t>(g.next());
  std::vector<std::int64_t> repeated(n);
  for (auto& x : repeated)
    x = static_cast<std::int64_t>(g.next() % 1'000'000);
  std::vector<double> doubles(n);
  for (auto& x : doubles) {
    auto z = std::sqrt(-2 * std::log(g.unit()))
             * std::cos(6.283185307179586 * g.unit());
    x = std::exp(z);
  }
  std::vector<std::string> strings(n);
  for (auto& s : strings)
    s = "u" + std::to_string(10'000'000 + g.next() % 1'000'000);

  std::printf("Throughput, one thread, %zu elements\n\n", n);
  std::printf("| %-20s | %12s | %12s | %9s | %9s |\n", "state / path",
              "elements", "per CPU sec", "CPU", "wall");
  std::printf("|----------------------|--------------|--------------|"
              "-----------|-----------|\n");
  double sink = 0;
  rate("hll add", n, [&] {
    flow::hll h;
    for (auto x : ints)
      h.add(x);
    sink += h.estimate();
  });
  rate("hll add batch", n, [&] {
    flow::hll h;
    h.add(ints.data(), ints.size());
    sink += h.estimate();
  });
  rate("hll add string", n, [&] {
    flow::hll h;
    for (auto& s : strings)
      h.add(s);
    sink += h.estimate();
  });
  rate("distinct add", n, [&] {
    flow::distinct_count d;
    d.add(repeated.data(), repeated.size());
    sink += double(d.count());
  });
  rate("distinct add all", n, [&] {
    flow::distinct_count d;
    d.add(ints.data(), ints.size());
    sink += double(d.count());
  });
  rate("distinct add string", n, [&] {
    flow::distinct_count d;
    for (auto& s : strings)
      d.add(s);
    sink += double(d.count());
  });
  rate("kll add", n, [&] {
    flow::kll s;
    for (auto x : doubles)
      s.add(x);
    sink += s.quantile(0.5);
  });
  rate("kll add batch", n, [&] {
    flow::kll s;
    s.add(doubles.data(), doubles.size());
    sink += s.quantile(0.5);
  });

  std::printf("\nBytes of state per key (sizeof + heap), by values added (all "
              "distinct)\n\n");
  std::printf("| %-26s | %10s | %10s | %10s | %10s | %10s |\n", "state", "0",
              "10", "1000", "100000", "1000000");
  std::printf("|----------------------------|------------|------------|"
              "------------|------------|------------|\n");
  const std::vector<std::size_t> sizes = {0, 10, 1000, 100'000, 1'000'000};
  auto row = [&](const char* name, auto&& bytes_for) {
    std::printf("| %-26s |", name);
    for (auto k : sizes)
      std::printf(" %10zu |", bytes_for(k));
    std::printf("\n");
  };
  row("hll (p = 14)", [&](std::size_t k) {
    return state_bytes<flow::hll>([&](flow::hll& h) {
      h.add(ints.data(), k);
    });
  });
  row("distinct_count, int64", [&](std::size_t k) {
    return state_bytes<flow::distinct_count>([&](flow::distinct_count& d) {
      d.add(ints.data(), k);
    });
  });
  row("distinct_count, string", [&](std::size_t k) {
    return state_bytes<flow::distinct_count>([&](flow::distinct_count& d) {
      for (std::size_t i = 0; i < k; ++i)
        d.add("u" + std::to_string(10'000'000 + i));
    });
  });
  row("kll (k = 400)", [&](std::size_t k) {
    return state_bytes<flow::kll>([&](flow::kll& s) {
      s.add(doubles.data(), k);
    });
  });
  std::printf("\nsizeof: hll %zu, distinct_count %zu, kll %zu bytes\n",
              sizeof(flow::hll), sizeof(flow::distinct_count),
              sizeof(flow::kll));
  // Per distinct value at 10^6 (the flat table's fill varies from 35 % to
  // 70 % between doublings, so also at 7 * 10^5).
  for (std::size_t k : {700'000, 1'000'000}) {
    auto b = state_bytes<flow::distinct_count>(
      [&](flow::distinct_count& d) { d.add(ints.data(), k); });
    auto s = state_bytes<flow::distinct_count>([&](flow::distinct_count& d) {
      for (std::size_t i = 0; i < k; ++i)
        d.add("u" + std::to_string(10'000'000 + i));
    });
    std::printf("distinct_count at %zu values: %.1f bytes per int64, %.1f "
                "bytes per 9-byte string\n",
                k, double(b) / double(k), double(s) / double(k));
  }
  // The node-based set distinct_count does not use for numbers, for scale.
  auto before = heap_in_use();
  {
    auto set = std::make_unique<std::unordered_set<std::int64_t>>();
    set->insert(ints.begin(), ints.begin() + 1'000'000);
    std::printf("std::unordered_set<std::int64_t> at 1000000 values: %.1f "
                "bytes per int64\n",
                double(heap_in_use() - before) / 1e6);
  }
  return sink == 42 ? 1 : 0;
}
