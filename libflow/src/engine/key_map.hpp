#pragma once

// The keyed running aggregates of general keys (strings, composites, keys
// with aggregator states), as the manager and its shards hold them.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "flow/aggregate.hpp"
#include "flow/key.hpp"
#include "flow/result.hpp"

namespace flow::detail {

/// A map from key to aggregate kept flat: the entries one after the other
/// in a vector, in the order their keys first came, and an open-addressing
/// index of 8-byte slots (a 32-bit piece of the hash and the entry's
/// position). No heap node per key, and the entries are already the
/// result's `key_result`s: the last result takes the vector as it is instead
/// of moving a million nodes out one by one (docs/benchmarks.md, issue 15).
/// Keys are never erased one at a time (a job only adds keys); `take` and
/// `clear` empty the whole map.
class key_map {
public:
  /// The entries, in the order their keys came first.
  using iterator = std::vector<key_result>::iterator;

  /// An empty map.
  key_map() = default;

  /// Number of keys.
  std::size_t size() const noexcept {
    return entries_.size();
  }

  /// True when the map holds no key.
  bool empty() const noexcept {
    return entries_.empty();
  }

  /// Makes room for `n` keys in all (no rehash or move until then).
  void reserve(std::size_t n) {
    entries_.reserve(n);
    if (needs_growth(n))
      rehash(capacity_for(n));
  }

  /// Makes room for `n` entries in all without growing the index: for a
  /// hint that may be too large (unused room is address space only).
  void reserve_entries(std::size_t n) {
    entries_.reserve(n);
  }

  /// The aggregate of `k`, and true when it was made now (empty).
  /// References stay valid until the next key is added.
  std::pair<aggregate*, bool> try_emplace(const key& k) {
    return emplace_impl(k);
  }

  /// As above, moving `k` into the map when it is new.
  std::pair<aggregate*, bool> try_emplace(key&& k) {
    return emplace_impl(std::move(k));
  }

  /// The aggregate of `k`, made empty when the key is new.
  aggregate& operator[](const key& k) {
    return *try_emplace(k).first;
  }

  /// The aggregate of `k`, or nullptr.
  const aggregate* find(const key& k) const noexcept {
    if (index_.empty())
      return nullptr;
    auto h = k.hash();
    auto tag = tag_of(h);
    for (auto i = static_cast<std::size_t>(h) & mask_;; i = (i + 1) & mask_) {
      auto s = index_[i];
      if (s == 0)
        return nullptr;
      if ((s >> 32) == tag) {
        auto& e = entries_[(s & 0xffffffffu) - 1];
        if (e.key == k)
          return &e.agg;
      }
    }
  }

  /// First entry.
  iterator begin() noexcept {
    return entries_.begin();
  }

  /// Past the last entry.
  iterator end() noexcept {
    return entries_.end();
  }

  /// The entries, in the order their keys came first (`sources` is 0).
  const std::vector<key_result>& entries() const noexcept {
    return entries_;
  }

  /// Moves every entry out (in the order their keys came first) and
  /// empties the map, freeing its index.
  std::vector<key_result> take() noexcept {
    auto out = std::move(entries_);
    clear();
    return out;
  }

  /// Empties the map and frees its storage.
  void clear() noexcept {
    entries_ = std::vector<key_result>{};
    index_ = std::vector<std::uint64_t>{};
    mask_ = 0;
  }

private:
  // A slot: 0 when empty, else the hash's upper half (the tag) above the
  // entry's position plus one.
  static std::uint64_t tag_of(std::size_t h) noexcept {
    return static_cast<std::uint64_t>(h) >> 32;
  }

  // At most three quarters of the slots in use: short probe runs, and the
  // index stays at 11-21 bytes a key.
  bool needs_growth(std::size_t n) const noexcept {
    return n * 4 >= index_.size() * 3;
  }

  static std::size_t capacity_for(std::size_t n) {
    std::size_t cap = 16;
    while (n * 4 >= cap * 3)
      cap *= 2;
    return cap;
  }

  void rehash(std::size_t cap) {
    std::vector<std::uint64_t> fresh(cap, 0);
    auto mask = cap - 1;
    for (std::size_t pos = 0; pos < entries_.size(); ++pos) {
      auto h = entries_[pos].key.hash();
      auto i = static_cast<std::size_t>(h) & mask;
      while (fresh[i] != 0)
        i = (i + 1) & mask;
      fresh[i] = (tag_of(h) << 32) | (pos + 1);
    }
    index_ = std::move(fresh);
    mask_ = mask;
  }

  template <class Key>
  std::pair<aggregate*, bool> emplace_impl(Key&& k) {
    // Grown before the lookup, so that nothing after the new entry can
    // throw (a key in the entries and not in the index would be added
    // twice).
    if (needs_growth(entries_.size() + 1))
      rehash(index_.empty() ? 16 : index_.size() * 2);
    auto h = k.hash();
    auto tag = tag_of(h);
    auto i = static_cast<std::size_t>(h) & mask_;
    for (;; i = (i + 1) & mask_) {
      auto s = index_[i];
      if (s == 0)
        break;
      if ((s >> 32) == tag) {
        auto& e = entries_[(s & 0xffffffffu) - 1];
        if (e.key == k)
          return {&e.agg, false};
      }
    }
    // A new key. Positions are 32 bits (plus one for "empty"): checked on
    // every insertion, not only when the index grows.
    if (entries_.size() >= std::numeric_limits<std::uint32_t>::max() - 1)
      throw std::length_error("key_map: more than 2^32 - 2 keys");
    // The entry first: should it throw, the index does not name it.
    entries_.push_back(key_result{std::forward<Key>(k), aggregate{}, 0});
    index_[i] = (tag << 32) | entries_.size();
    return {&entries_.back().agg, true};
  }

  std::vector<key_result> entries_;
  std::vector<std::uint64_t> index_;
  std::size_t mask_ = 0;
};

} // namespace flow::detail
