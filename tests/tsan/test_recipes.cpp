// Recipe batches under ThreadSanitizer: ranges and seeded random streams hand
// out one thread-safe `elements_by_index` function; the generator only skips
// ahead, and several reducer threads materialise their batches from that one
// function at the same time, each into a buffer it reuses.

#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "flow/aggregate.hpp"
#include "flow/detail/job_spec.hpp"
#include "flow/random.hpp"
#include "flow/source.hpp"
#include "threads.hpp"

using namespace flow;
using namespace flow::test;

namespace {

/// One recipe batch: elements [first, first + n) of the source.
struct recipe {
  std::uint64_t first = 0;
  std::size_t n = 0;
};

/// What the reducer threads computed.
struct outcome {
  std::uint64_t count = 0;
  int128 sum = 0;
  /// Elements that differ from the reference at their index.
  std::uint64_t wrong = 0;
};

/// Skips through `src` on one thread and materialises its batches on
/// `reducers` others; `ref(i)` is element i. The source is destroyed while
/// the reducers still use its function.
template <class Ref>
outcome run_recipes(source<std::int64_t> src, std::size_t batch,
                    std::size_t reducers, Ref ref) {
  auto fn = src->elements_by_index();
  REQUIRE(fn);
  blocking_queue<recipe> queue;
  std::vector<outcome> seen(reducers);
  run_together(reducers + 1, [&](std::size_t t) {
    if (t == reducers) {
      for (;;) {
        auto [first, n] = src->skip(batch);
        if (n == 0)
          break;
        queue.push({first, n});
      }
      src.reset();
      queue.close();
      return;
    }
    // A reducer: its own reference to the function, one reused buffer.
    auto my_fn = fn;
    std::vector<std::int64_t> scratch;
    auto& out = seen[t];
    while (auto r = queue.pop()) {
      if (scratch.size() < r->n)
        scratch.resize(r->n);
      (*my_fn)(r->first, r->n, scratch.data());
      out.count += r->n;
      out.sum += exact_sum(scratch.data(), r->n);
      for (std::size_t i = 0; i < r->n; ++i)
        if (scratch[i] != ref(r->first + i))
          ++out.wrong;
    }
  });
  outcome total;
  for (auto& s : seen) {
    total.count += s.count;
    total.sum += s.sum;
    total.wrong += s.wrong;
  }
  return total;
}

} // namespace

TEST_CASE("from_range: one recipe materialised by many threads at once gives "
          "every element exactly once",
          "[tsan][recipe]") {
  constexpr std::int64_t first = -500003;
  constexpr std::int64_t last = 1000000;
  constexpr std::int64_t step = 7;
  int128 expected = 0;
  std::uint64_t count = 0;
  for (int128 x = first; x < last; x += step, ++count)
    expected += x;
  auto res = run_recipes(from_range(first, last, step), 1013, 4,
                         [](std::uint64_t i) {
                           return first + static_cast<std::int64_t>(i) * step;
                         });
  CHECK(res.count == count);
  CHECK(res.wrong == 0);
  CHECK(to_string(res.sum) == to_string(expected));
}

TEST_CASE("from_random: recipes materialised in parallel equal the serial "
          "stream, in the vectorised and the wide-range path",
          "[tsan][recipe]") {
  constexpr std::uint64_t n = 400000;
  // 0..10000 uses the eight-lane fill where the CPU has it; a range wider
  // than 2^32 always takes the scalar loop.
  auto lo = GENERATE(std::int64_t{0}, std::int64_t{-(std::int64_t{1} << 40)});
  auto hi = lo == 0 ? std::int64_t{10000} : std::int64_t{1} << 40;
  uniform_ints gen{99, lo, hi};
  int128 expected = 0;
  for (std::uint64_t i = 0; i < n; ++i)
    expected += gen(i);
  auto res = run_recipes(from_random(n, 99, lo, hi), 4096, 4,
                         [gen](std::uint64_t i) { return gen(i); });
  CHECK(res.count == n);
  CHECK(res.wrong == 0);
  CHECK(to_string(res.sum) == to_string(expected));
}

TEST_CASE("source_adapter: recipe batches as the engine sends them are "
          "materialised by several threads from copies of the batch",
          "[tsan][recipe]") {
  // The type-erased path of the engine: the generator's adapter turns skips
  // into erased slices whose owner is the shared recipe; copies of a batch
  // cross threads and each thread materialises it.
  constexpr std::uint64_t n = 200000;
  constexpr std::size_t readers = 4;
  detail::source_adapter<std::int64_t> adapter{from_random(n, 7)};
  std::vector<detail::erased_slice> batches;
  while (!adapter.exhausted())
    batches.push_back(adapter.next(5000));
  uniform_ints gen{7, 0, 10000};
  int128 expected = 0;
  for (std::uint64_t i = 0; i < n; ++i)
    expected += gen(i);
  std::vector<int128> sums(readers);
  std::vector<std::uint64_t> counts(readers);
  std::vector<std::uint64_t> not_deferred(readers);
  run_together(readers, [&](std::size_t t) {
    std::vector<std::int64_t> scratch;
    // Every reader materialises every batch, from a different start.
    for (std::size_t k = 0; k < batches.size(); ++k) {
      auto b = batches[(k + t * 3) % batches.size()];
      if (!b.deferred()) {
        ++not_deferred[t];
        continue;
      }
      scratch.resize(b.size);
      b.materialize(b.owner.get(), b.first, b.size, scratch.data());
      counts[t] += b.size;
      sums[t] += exact_sum(scratch.data(), b.size);
    }
  });
  for (std::size_t t = 0; t < readers; ++t) {
    CHECK(not_deferred[t] == 0);
    CHECK(counts[t] == n);
    CHECK(to_string(sums[t]) == to_string(expected));
  }
}
