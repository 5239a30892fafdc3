#pragma once

/// @file
/// The outcome of a job: keyed aggregates plus the accounting that proves
/// every element was either aggregated or rejected.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/meta/load_callback.hpp>
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

/// An element (or, under `failure_policy::skip`, a run of elements) that the
/// reducer function could not process: it was not merged, and the job says so
/// here instead of losing it.
struct dead_letter {
  /// Index of the source the element came from.
  std::uint32_t source = 0;
  /// Index of the (first) element within its source.
  std::uint64_t index = 0;
  /// Number of elements this letter stands for (1 unless skipped as a batch).
  std::uint64_t count = 1;
  /// The element rendered as text (empty when its type has no formatter or
  /// for a skipped batch).
  std::string value;
  /// What the reducer function threw.
  std::string error;

  /// Inspection for serialisation.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 dead_letter& x) {
    return f(caf::meta::type_name("flow.dead_letter"), x.source, x.index,
             x.count, x.value, x.error);
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
  /// Elements the reducer function failed on after every retry (see
  /// `dead_letters`); they are not in the aggregates.
  std::uint64_t dead_lettered = 0;
  /// The dead letters, in the order they were merged; at most
  /// `options::max_dead_letters` are kept (`dead_lettered` counts them all).
  std::vector<dead_letter> dead_letters;
  /// Batches whose reducer call threw and that were dispatched again.
  std::uint64_t retried = 0;
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
  /// Batches merged from reducers that worker nodes lent (flow::net).
  std::uint64_t remote_batches = 0;
  /// Reducer actors that died and were replaced (their batches were
  /// dispatched again; none was merged twice).
  std::uint64_t reducers_replaced = 0;
  /// True for a completed job; false for a snapshot of a running one and
  /// for the result of a stopped job.
  bool final = false;
  /// True for the result of a job stopped before its end (`job::stop`): it
  /// covers the elements accepted until then. Never committed to a sink.
  bool partial = false;
  /// Elements accepted but neither merged nor rejected when a stopped job's
  /// drain timed out (0 otherwise).
  std::uint64_t abandoned = 0;
  /// Batches dispatched a second time because their reducer held them too
  /// long (options::speculation), and how many of those second attempts
  /// answered first. Counted by the manager of this result (not
  /// serialised, as `key_count`).
  std::uint64_t speculated = 0;
  /// See `speculated`.
  std::uint64_t speculation_won = 0;
  /// Partial aggregates the manager merged: one per batch, fewer when
  /// reducers fold the batches waiting for them together
  /// (options::combine_batches). Counted by the manager of this result (not
  /// serialised, as `key_count`).
  std::uint64_t partials = 0;
  /// Number of keys: `keys.size()`, or how many went to
  /// `options::on_result_key` instead.
  std::uint64_t key_count = 0;

  /// The entry for `k`, or nullptr.
  const key_result* find(const flow::key& k) const noexcept;

  /// A copy of every figure but the keys (`key_count` still counts them):
  /// the accounting of a result of millions of keys without copying them.
  job_result without_keys() const;

  /// True when every emitted element is accounted for: emitted ==
  /// aggregated + rejected + dead_lettered + abandoned.
  bool balanced() const noexcept {
    return emitted == aggregated + rejected + dead_lettered + abandoned;
  }

  /// Inspection for serialisation. `key_count` is not written: a result
  /// that travels or is checkpointed holds its keys (only the last local
  /// result streams them), so loading sets it to `keys.size()`, and results
  /// stored before the field existed still load.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 job_result& x) {
    auto count = caf::meta::load_callback([&]() -> caf::error {
      x.key_count = x.keys.size();
      return caf::error{};
    });
    return f(caf::meta::type_name("flow.job_result"), x.keys, x.emitted,
             x.aggregated, x.rejected, x.batches, x.written, x.sources,
             x.rejections, x.dead_lettered, x.dead_letters, x.retried,
             x.peak_in_flight, x.remote_batches, x.reducers_replaced, x.final,
             x.partial, x.abandoned, count);
  }
};

} // namespace flow
