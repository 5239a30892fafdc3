#pragma once

/// @file
/// The outcome of a job: keyed aggregates plus the accounting that proves
/// every element was either aggregated or rejected.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "flow/aggregate.hpp"
#include "flow/key.hpp"

namespace flow {

/// The aggregate of one key.
struct key_result {
  /// The key.
  flow::key key;
  /// Sum, count (the key's element count), min and max.
  aggregate agg;
  /// How many sources were added with this key as their label (for example,
  /// how many lists of this size); 0 for a key no source is labelled with.
  std::uint64_t sources = 0;

  /// Inspection for serialisation.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 key_result& x) {
    return f(caf::meta::type_name("flow.key_result"), x.key, x.agg,
             x.sources);
  }
};

/// A job's result (or a snapshot of one in progress).
struct job_result {
  /// Per-key aggregates, ordered by key.
  std::vector<key_result> keys;
  /// Elements the sources emitted.
  std::uint64_t emitted = 0;
  /// Elements merged into the aggregates.
  std::uint64_t aggregated = 0;
  /// Elements the reducers rejected (see `rejections`).
  std::uint64_t rejected = 0;
  /// Batches merged.
  std::uint64_t batches = 0;
  /// Rows the reducers emitted and the sink wrote (0 without a sink).
  std::uint64_t written = 0;
  /// Number of sources (generators).
  std::uint64_t sources = 0;
  /// Rejected elements counted per reason.
  std::vector<std::pair<std::string, std::uint64_t>> rejections;
  /// The most batches any one source had in flight at once (never above the
  /// configured credit).
  std::uint64_t peak_in_flight = 0;
  /// Reducer actors that died and were replaced (their batches were
  /// dispatched again; none was merged twice).
  std::uint64_t reducers_replaced = 0;
  /// True for a completed job; false for a snapshot of a running one.
  bool final = false;

  /// The entry for `k`, or nullptr.
  const key_result* find(const flow::key& k) const noexcept;

  /// True when emitted == aggregated + rejected.
  bool balanced() const noexcept {
    return emitted == aggregated + rejected;
  }

  /// Inspection for serialisation.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 job_result& x) {
    return f(caf::meta::type_name("flow.job_result"), x.keys, x.emitted,
             x.aggregated, x.rejected, x.batches, x.written, x.sources,
             x.rejections, x.peak_in_flight, x.reducers_replaced, x.final);
  }
};

} // namespace flow
