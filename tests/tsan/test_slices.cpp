// In-memory sources under ThreadSanitizer: batches are views into one shared,
// immutable vector, handed to other threads and read there while the owner
// (the caller, then the source) lets go of the storage.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "flow/aggregate.hpp"
#include "flow/slice.hpp"
#include "flow/source.hpp"
#include "threads.hpp"

using namespace flow;
using namespace flow::test;

namespace {

/// Element i of the test data: distinct values, so a lost, repeated or
/// misplaced element changes the sums.
std::int64_t value_at(std::size_t i) {
  return static_cast<std::int64_t>(i) * 7 - 1000;
}

std::shared_ptr<const std::vector<std::int64_t>> make_data(std::size_t n) {
  auto xs = std::make_shared<std::vector<std::int64_t>>(n);
  for (std::size_t i = 0; i < n; ++i)
    (*xs)[i] = value_at(i);
  return xs;
}

int128 sum_of(std::size_t first, std::size_t n) {
  int128 sum = 0;
  for (std::size_t i = first; i < first + n; ++i)
    sum += value_at(i);
  return sum;
}

/// What a consumer saw: element count, exact sum, and a position-weighted
/// checksum that detects swapped elements.
struct tally {
  std::uint64_t count = 0;
  int128 sum = 0;
  std::uint64_t check = 0;

  void add(const slice<std::int64_t>& xs) {
    count += xs.size();
    sum += exact_sum(xs.data(), xs.size());
    for (auto x : xs)
      check += static_cast<std::uint64_t>(x) * 0x9e3779b97f4a7c15ULL;
  }
};

tally expected_tally(std::size_t n) {
  tally t;
  auto xs = make_data(n);
  t.add(slice<std::int64_t>::of(xs));
  return t;
}

} // namespace

TEST_CASE("slice: views read by many threads keep the storage alive after "
          "every other owner lets go",
          "[tsan][slice]") {
  constexpr std::size_t n = 1 << 17;
  constexpr std::size_t threads = 8;
  auto data = make_data(n);
  std::weak_ptr<const std::vector<std::int64_t>> watch = data;
  auto all = slice<std::int64_t>::of(std::move(data));
  // Each thread gets its own copy of the whole view and of its part.
  std::vector<slice<std::int64_t>> whole(threads, all);
  std::vector<slice<std::int64_t>> parts;
  for (std::size_t t = 0; t < threads; ++t)
    parts.push_back(all.sub(t * (n / threads), n / threads));
  std::vector<int128> whole_sums(threads);
  std::vector<int128> part_sums(threads);
  std::vector<std::size_t> mismatches(threads);
  run_together(
    threads,
    [&](std::size_t t) {
      auto base = t * (n / threads);
      auto mine = std::move(parts[t]);
      auto everything = std::move(whole[t]);
      // Sub-views copy and drop the owner concurrently with other threads;
      // some are kept to the end, so different threads are the last owner
      // in different runs.
      std::vector<std::pair<std::size_t, slice<std::int64_t>>> kept;
      int128 part = 0;
      for (std::size_t off = 0; off < mine.size(); off += 1000) {
        auto len = std::min<std::size_t>(1000, mine.size() - off);
        auto v = mine.sub(off, len);
        part += exact_sum(v.data(), v.size());
        if (off % (1000 * (t + 2)) == 0)
          kept.emplace_back(base + off, v);
      }
      mine = {};
      part_sums[t] = part;
      whole_sums[t] = exact_sum(everything.data(), everything.size());
      everything = {};
      for (auto& [first, v] : kept)
        for (std::size_t i = 0; i < v.size(); ++i)
          if (v[i] != value_at(first + i))
            ++mismatches[t];
    },
    [&] {
      // The caller lets go while the threads read.
      all = {};
    });
  int128 total = 0;
  for (std::size_t t = 0; t < threads; ++t) {
    CHECK(to_string(whole_sums[t]) == to_string(sum_of(0, n)));
    CHECK(to_string(part_sums[t])
          == to_string(sum_of(t * (n / threads), n / threads)));
    CHECK(mismatches[t] == 0);
    total += part_sums[t];
  }
  CHECK(to_string(total) == to_string(sum_of(0, n)));
  // The last view to go freed the storage.
  CHECK(watch.expired());
}

TEST_CASE("from_shared: batches are read on other threads while the source "
          "keeps serving and after it is destroyed",
          "[tsan][source]") {
  constexpr std::size_t n = 300000;
  constexpr std::size_t consumers = 4;
  auto data = make_data(n);
  std::weak_ptr<const std::vector<std::int64_t>> watch = data;
  auto src = from_shared(std::move(data));
  blocking_queue<slice<std::int64_t>> queue;
  std::vector<tally> seen(consumers + 1);
  run_together(consumers + 1, [&](std::size_t t) {
    if (t == consumers) {
      // The generator: batches of an odd size, then the source goes away
      // while consumers still hold views.
      while (!src->exhausted())
        queue.push(src->next(997));
      src.reset();
      queue.close();
      return;
    }
    while (auto xs = queue.pop())
      seen[t].add(*xs);
  });
  tally total;
  for (auto& s : seen) {
    total.count += s.count;
    total.sum += s.sum;
    total.check += s.check;
  }
  auto expected = expected_tally(n);
  CHECK(total.count == expected.count);
  CHECK(to_string(total.sum) == to_string(expected.sum));
  CHECK(total.check == expected.check);
  CHECK(watch.expired());
}

TEST_CASE("from_container: every thread reading the same batches sees the "
          "same elements",
          "[tsan][source]") {
  constexpr std::size_t n = 100000;
  constexpr std::size_t readers = 6;
  std::vector<std::int64_t> xs(n);
  for (std::size_t i = 0; i < n; ++i)
    xs[i] = value_at(i);
  auto src = from_container(std::move(xs));
  std::vector<slice<std::int64_t>> batches;
  while (!src->exhausted())
    batches.push_back(src->next(4096));
  src.reset();
  std::vector<tally> seen(readers);
  run_together(readers, [&](std::size_t t) {
    // Every reader takes its own copies of all views (concurrent reference
    // counting), then reads them from a different start.
    std::vector<slice<std::int64_t>> mine;
    for (std::size_t k = 0; k < batches.size(); ++k)
      mine.push_back(batches[(k + t * 7) % batches.size()]);
    for (auto& b : mine)
      seen[t].add(b);
  });
  auto expected = expected_tally(n);
  for (auto& s : seen) {
    CHECK(s.count == expected.count);
    CHECK(to_string(s.sum) == to_string(expected.sum));
    CHECK(s.check == expected.check);
  }
}
