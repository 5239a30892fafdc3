#pragma once

// Helpers shared by the distinct-count and quantile tests: a fixed generator,
// and building a state from data split into parts, added in batches and
// merged in a random order, as the engine would.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <type_traits>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

namespace flow::test {

/// splitmix64, the generator of the other unit tests.
struct splitmix {
  std::uint64_t s;
  std::uint64_t next() {
    s += 0x9E3779B97F4A7C15u;
    auto z = s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
  }
  /// Uniform in (0, 1).
  double unit() {
    return (static_cast<double>(next() >> 11) + 0.5) * 0x1p-53;
  }
};

/// Adds `xs[begin, end)` to `s` in batches of `batch` (1: one `add` per
/// element, the element path).
template <class State, class T>
void add_batched(State& s, const std::vector<T>& xs, std::size_t begin,
                 std::size_t end, std::size_t batch) {
  // Only numbers have a batch overload.
  if constexpr (std::is_arithmetic_v<T>) {
    if (batch > 1) {
      for (auto i = begin; i < end; i += batch)
        s.add(xs.data() + i, std::min(batch, end - i));
      return;
    }
  }
  for (auto i = begin; i < end; ++i)
    s.add(xs[i]);
}

/// One state per contiguous part of `xs`, each built in batches of `batch`.
template <class State, class T>
std::vector<State> partial_states(const State& empty, const std::vector<T>& xs,
                                  std::size_t parts, std::size_t batch) {
  std::vector<State> states;
  for (std::size_t p = 0; p < parts; ++p) {
    auto s = empty;
    add_batched(s, xs, xs.size() * p / parts, xs.size() * (p + 1) / parts,
                batch);
    states.push_back(std::move(s));
  }
  return states;
}

/// Merges `states` along a random tree: two random states at a time, the
/// second into the first, until one is left. Fails (returns false) if a
/// merge refused.
template <class State>
bool merge_randomly(std::vector<State> states, std::uint64_t seed,
                    State& out) {
  std::mt19937_64 rng{seed};
  while (states.size() > 1) {
    std::uniform_int_distribution<std::size_t> pick{0, states.size() - 1};
    auto i = pick(rng);
    auto j = pick(rng);
    if (i == j)
      continue;
    if (!states[i].merge(states[j]))
      return false;
    states.erase(states.begin() + static_cast<std::ptrdiff_t>(j));
  }
  out = std::move(states.front());
  return true;
}

/// The CAF binary serialisation of `x`.
template <class State>
std::vector<char> to_bytes(State& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  if (auto err = sink(x))
    buf.clear();
  return buf;
}

/// Loads `out` from `buf`; the error of the deserializer (none on success).
template <class State>
caf::error from_bytes(const std::vector<char>& buf, State& out) {
  caf::binary_deserializer source{nullptr, buf};
  return source(out);
}

} // namespace flow::test
