#pragma once

/// @file
/// A flat hash set of 64-bit words, the storage of `flow::distinct_count` for
/// integers and doubles.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace flow::detail {

/// The splitmix64 finaliser (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", 2014) applied to `x` + the golden-ratio
/// increment: a bijection of 64-bit words whose every output bit depends on
/// every input bit. Adding the increment first keeps 0 from hashing to 0.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15u;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
  return x ^ (x >> 31);
}

/// An open-addressing set of 64-bit words with linear probing, at most 70 %
/// full. A slot holding 0 is empty, so the word 0 is kept in a flag beside the
/// table. Costs 8 / load bytes per word (11.4 to 22.9 bytes), about a third
/// of a node-based `std::unordered_set<std::uint64_t>`.
class u64_set {
public:
  /// Inserts `x`; true when it was not in the set yet.
  bool insert(std::uint64_t x) {
    if (x == 0) {
      bool added = !has_zero_;
      has_zero_ = true;
      return added;
    }
    // Grow before probing so the table always keeps an empty slot.
    if ((used_ + 1) * 10 > slots_.size() * 7)
      grow();
    auto mask = slots_.size() - 1;
    for (auto i = mix64(x) & mask;; i = (i + 1) & mask) {
      if (slots_[i] == x)
        return false;
      if (slots_[i] == 0) {
        slots_[i] = x;
        ++used_;
        return true;
      }
    }
  }

  /// True when `x` is in the set.
  bool contains(std::uint64_t x) const noexcept {
    if (x == 0)
      return has_zero_;
    if (slots_.empty())
      return false;
    auto mask = slots_.size() - 1;
    for (auto i = mix64(x) & mask;; i = (i + 1) & mask) {
      if (slots_[i] == x)
        return true;
      if (slots_[i] == 0)
        return false;
    }
  }

  /// Number of words in the set.
  std::size_t size() const noexcept {
    return used_ + (has_zero_ ? 1 : 0);
  }

  /// Makes room for `n` words without rehashing.
  void reserve(std::size_t n) {
    while (n * 10 > slots_.size() * 7)
      grow();
  }

  /// Calls `f(word)` for every word, in no particular order.
  template <class F>
  void for_each(F&& f) const {
    if (has_zero_)
      f(std::uint64_t{0});
    for (auto w : slots_)
      if (w != 0)
        f(w);
  }

  /// Bytes of the table on the heap (its capacity, not its fill).
  std::size_t heap_bytes() const noexcept {
    return slots_.capacity() * sizeof(std::uint64_t);
  }

  /// Equal when both hold the same words, whatever the table layout.
  friend bool operator==(const u64_set& x, const u64_set& y) noexcept {
    if (x.size() != y.size())
      return false;
    bool same = x.has_zero_ == y.has_zero_;
    for (auto w : x.slots_)
      if (same && w != 0)
        same = y.contains(w);
    return same;
  }

private:
  /// Doubles the table (16 slots at first) and reinserts every word.
  void grow() {
    std::vector<std::uint64_t> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, 0);
    auto mask = slots_.size() - 1;
    for (auto w : old) {
      if (w == 0)
        continue;
      auto i = mix64(w) & mask;
      while (slots_[i] != 0)
        i = (i + 1) & mask;
      slots_[i] = w;
    }
  }

  /// The table: a power-of-two number of slots, 0 meaning empty.
  std::vector<std::uint64_t> slots_;
  /// Words in the table (the word 0 excluded).
  std::size_t used_ = 0;
  /// True when the word 0 is in the set.
  bool has_zero_ = false;
};

} // namespace flow::detail
