#pragma once

/// @file
/// What a reducer produces from one batch: a partial keyed aggregate.

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "flow/aggregate.hpp"
#include "flow/key.hpp"

namespace flow {

/// The partial keyed aggregate a reducer builds from one batch. Every element
/// of the batch counts as aggregated unless the reducer rejects it, with a
/// reason, through `reject`.
class partial {
public:
  /// One key and its aggregate.
  using entry = std::pair<flow::key, aggregate>;

  /// Adds one value under key `k`.
  void add(const flow::key& k, std::int64_t value) {
    slot(k).add(value);
  }

  /// Merges a pre-folded aggregate under key `k` (the fast path for reducers
  /// that fold a whole batch at once).
  void add(const flow::key& k, const aggregate& a) {
    if (!slot(k).merge(a))
      overflow_ = true;
  }

  /// Marks `n` elements of this batch as rejected for `reason`.
  void reject(const std::string& reason, std::uint64_t n = 1);

  /// The aggregates built so far, in order of first appearance.
  const std::vector<entry>& entries() const noexcept {
    return entries_;
  }

  /// Number of rejected elements.
  std::uint64_t rejected() const noexcept {
    return rejected_;
  }

  /// Rejected elements counted per reason.
  const std::vector<std::pair<std::string, std::uint64_t>>&
  reasons() const noexcept {
    return reasons_;
  }

  /// True when merging pre-folded aggregates overflowed.
  bool overflowed() const noexcept {
    return overflow_;
  }

  /// Moves the entries out (used by the reducer actor).
  std::vector<entry> take_entries() noexcept {
    index_.clear();
    last_ = npos;
    return std::move(entries_);
  }

  /// Moves the rejection reasons out (used by the reducer actor).
  std::vector<std::pair<std::string, std::uint64_t>> take_reasons() noexcept {
    return std::move(reasons_);
  }

private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  // Below this many keys a linear scan beats hashing.
  static constexpr std::size_t linear_limit = 8;

  aggregate& slot(const flow::key& k);

  std::vector<entry> entries_;
  std::unordered_map<flow::key, std::size_t> index_;
  std::size_t last_ = npos;
  std::uint64_t rejected_ = 0;
  std::vector<std::pair<std::string, std::uint64_t>> reasons_;
  bool overflow_ = false;
};

} // namespace flow
