#pragma once

// Builds an aggregator state the way a job would — batches added in a
// shuffled order to one of several partial states (reducers), the partial
// states then merged along a random tree (nodes) — so tests can compare it
// with the state of a sequential reference.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace flow::test {

/// Splits `xs` into batches of `batch` elements, builds a state per batch
/// (`add_one` per element when `batch` is 1, else `add_batch(state, ptr, n)`),
/// merges each, in shuffled order, into one of `parts` partial states picked
/// at random, then merges random pairs of partial states (in random
/// direction) until one is left. Every state starts as a copy of `empty`, so
/// parameters (k, bounds) carry over. Throws when a merge returns false.
template <class S, class T, class AddOne, class AddBatch>
S split_and_merge(const std::vector<T>& xs, std::size_t parts,
                  std::size_t batch, std::uint64_t seed, const S& empty,
                  AddOne add_one, AddBatch add_batch) {
  std::vector<std::size_t> starts;
  for (std::size_t pos = 0; pos < xs.size(); pos += batch)
    starts.push_back(pos);
  std::mt19937_64 rng{seed};
  std::shuffle(starts.begin(), starts.end(), rng);
  std::vector<S> partial(parts, empty);
  for (auto pos : starts) {
    auto n = std::min(batch, xs.size() - pos);
    S s = empty;
    if (batch == 1)
      add_one(s, xs[pos]);
    else
      add_batch(s, xs.data() + pos, n);
    if (!partial[rng() % parts].merge(s))
      throw std::runtime_error("merge of a batch state failed");
  }
  while (partial.size() > 1) {
    std::uniform_int_distribution<std::size_t> pick{0, partial.size() - 1};
    auto i = pick(rng);
    auto j = pick(rng);
    if (i == j)
      continue;
    if (rng() % 2 == 0)
      std::swap(partial[i], partial[j]);
    if (!partial[i].merge(partial[j]))
      throw std::runtime_error("merge of partial states failed");
    partial.erase(partial.begin() + static_cast<std::ptrdiff_t>(j));
  }
  return partial.front();
}

/// Worker counts and batch sizes every built-in state is tested with.
inline const std::vector<std::size_t> part_counts{1, 2, 7};

/// See `part_counts`.
inline const std::vector<std::size_t> batch_sizes{1, 7, 65536};

} // namespace flow::test
