#include "flow/partial.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>

namespace flow {

void partial::reject(const std::string& reason, std::uint64_t n) {
  rejected_ += n;
  for (auto& [r, count] : reasons_) {
    if (r == reason) {
      count += n;
      return;
    }
  }
  reasons_.emplace_back(reason, n);
}

void partial::check_seal() {
  auto keys = ints_.indexed();
  auto* window = ints_.begin() + (ints_.size() - keys);
  // Keys of earlier windows came back (a thirty-second of a window's keys
  // found in the sample): the data cycles through a set of keys that an
  // unsealed table holds once, however many values each key gets. A table
  // sealed at every window would send each value as an entry of its own.
  if (sealed_once_ && returned_ * 32 >= keys) {
    seal_at_ = std::numeric_limits<std::size_t>::max();
    return;
  }
  // The values that found their key already, against the keys: with K
  // keys drawn evenly, n keys come with about n^2 / (2K) repeats (the
  // birthday estimate). Sealed only when that estimates K at
  // `seal_min_keys` or more: then a batch's table would barely combine
  // however large it grew (at 5 * 10^5 keys a batch of 262,144 values has
  // 1.3 values a key), and its growth only costs cache misses. With fewer
  // keys, or skewed ones (more repeats), the table grows as before and
  // combines; checked again at twice the keys. The values since the last
  // seal are the window's counts, summed here once a window rather than
  // counted at every value.
  std::uint64_t values = 0;
  for (auto* e = window; e != ints_.end(); ++e)
    values += e->count;
  auto repeats = values > keys ? values - keys : 0;
  if (static_cast<double>(repeats) * 2.0 * seal_min_keys
      > static_cast<double>(keys) * static_cast<double>(keys)) {
    seal_at_ = 2 * keys;
    return;
  }
  constexpr auto none = std::numeric_limits<std::int64_t>::min();
  if (!sealed_once_) {
    sealed_sample_.assign(sample_slots, none);
    sealed_once_ = true;
  }
  // The first key of each slot stays: later windows' keys would push out
  // the earlier ones, which are those a cycle brings back first.
  for (auto* e = window; e != ints_.end(); ++e) {
    auto& s = sealed_sample_[detail::mix64(static_cast<std::uint64_t>(e->key))
                             & (sample_slots - 1)];
    if (s == none)
      s = e->key;
  }
  ints_.seal();
  returned_ = 0;
  seal_at_ = seal_keys;
}

void partial::to_general() const {
  if (general_)
    return;
  if (ints_.indexed() != ints_.size()) {
    // Sealed: one entry per key first (the general entries hold each key
    // once). An overflow here is one the merge downstream would have met.
    detail::int_table once;
    once.reserve(ints_.size());
    for (auto& e : ints_)
      if (!once.merge(e))
        overflow_ = true;
    ints_ = std::move(once);
  }
  if (!ints_.empty()) {
    // Reserved first, so that the copies below cannot throw halfway.
    entries_.reserve(entries_.size() + ints_.size());
    hashes_.reserve(entries_.size() + ints_.size());
    for (auto& e : ints_) {
      entries_.emplace_back(flow::key{e.key}, e.to_aggregate());
      hashes_.push_back(entries_.back().first.hash());
    }
    ints_.clear();
    // The index, if any, misses the moved keys: slot() rebuilds it.
    index_.clear();
    last_ = npos;
  }
  general_ = true;
}

void partial::merge(partial&& other) {
  for (auto& e : other.ints_)
    if (!general_ ? !ints_[e.key].merge(e.sum, e.count, e.min, e.max)
                  : !slot(flow::key{e.key}).merge(e.to_aggregate()))
      overflow_ = true;
  for (auto& [k, agg] : other.entries_)
    add(k, agg);
  for (auto& [reason, n] : other.reasons_)
    reject(reason, n);
  overflow_ = overflow_ || other.overflow_;
  if (other.output_) {
    if (!output_) {
      output_ = std::move(other.output_);
      output_type_ = other.output_type_;
      row_count_ = other.row_count_;
      append_ = other.append_;
    } else if (*output_type_ != *other.output_type_) {
      throw std::logic_error("flow::partial::merge: rows of two types");
    } else {
      append_(output_.get(), other.output_.get());
    }
  }
  other = partial{};
}

namespace {

/// The index slot a hash starts probing at (the hash's high bits after a
/// multiplication: std::hash of a string is well mixed, an integer key's
/// hash is mixed once more here at no cost).
std::size_t home_of(std::size_t h, std::size_t mask) noexcept {
  return static_cast<std::size_t>(
           (static_cast<std::uint64_t>(h) * 0x9e3779b97f4a7c15ULL) >> 32)
         & mask;
}

} // namespace

void partial::reindex(std::size_t room) const {
  auto cap = std::size_t{64};
  while (cap < std::max(room, entries_.size()) * 2 + 2)
    cap *= 2;
  index_.assign(cap, 0);
  auto mask = cap - 1;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    auto pos = home_of(hashes_[i], mask);
    while (index_[pos] != 0)
      pos = (pos + 1) & mask;
    index_[pos] = static_cast<std::uint32_t>(i + 1);
  }
}

void partial::reserve(std::size_t keys) {
  auto n = entries_.size() + keys;
  // Doubling at least: a partial that takes several batches (combined)
  // reserves once per batch, and must not move its entries each time.
  if (n > entries_.capacity())
    entries_.reserve(std::max(n, entries_.capacity() * 2));
  if (n > hashes_.capacity())
    hashes_.reserve(std::max(n, hashes_.capacity() * 2));
  if (n > linear_limit && index_.size() < n * 2 + 2)
    reindex(n);
}

aggregate& partial::slot(const flow::key& k) {
  return slot_impl(k);
}

aggregate& partial::slot(flow::key&& k) {
  return slot_impl(std::move(k));
}

template <class Key>
aggregate& partial::slot_impl(Key&& k) {
  to_general();
  auto h = k.hash();
  auto free = npos;
  // Reducers mostly add runs of the same key: check the last one first.
  if (last_ != npos && hashes_[last_] == h && entries_[last_].first == k)
    return entries_[last_].second;
  // Once there is an index (reserve() may make it early), every key goes
  // through it, so that it never misses one.
  if (entries_.size() <= linear_limit && index_.empty()) {
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      if (hashes_[i] == h && entries_[i].first == k) {
        last_ = i;
        return entries_[i].second;
      }
    }
  } else {
    if (index_.size() < entries_.size() * 2 + 2)
      reindex();
    auto mask = index_.size() - 1;
    auto pos = home_of(h, mask);
    for (; index_[pos] != 0; pos = (pos + 1) & mask) {
      auto i = index_[pos] - 1;
      if (hashes_[i] == h && entries_[i].first == k) {
        last_ = i;
        return entries_[i].second;
      }
    }
    if (entries_.size() >= std::numeric_limits<std::uint32_t>::max() - 1)
      throw std::length_error("flow::partial: more than 2^32 - 2 keys");
    free = pos;
  }
  if (hashes_.size() == hashes_.capacity())
    hashes_.reserve(std::max<std::size_t>(16, hashes_.capacity() * 2));
  entries_.emplace_back(std::forward<Key>(k), aggregate{});
  // After the entry, which may throw: reserved and sized, so these cannot.
  hashes_.push_back(h);
  last_ = entries_.size() - 1;
  if (free != npos)
    index_[free] = static_cast<std::uint32_t>(entries_.size());
  return entries_.back().second;
}

} // namespace flow
