#pragma once

/// @file
/// Reducers: the user function a stateless reducer actor applies to a batch.

#include <cstdint>
#include <functional>

#include "flow/aggregate.hpp"
#include "flow/key.hpp"
#include "flow/keyed_value.hpp"
#include "flow/partial.hpp"
#include "flow/slice.hpp"

namespace flow {

/// One batch as a reducer sees it.
template <class T>
struct batch_ref {
  /// The elements (a view; valid during the call).
  slice<T> items;
  /// The label of the source that emitted the batch (for example, the size of
  /// the list it comes from).
  const flow::key& label;
  /// Index of the source among the pipeline's sources.
  std::uint32_t source;
  /// Sequence number of the batch within its source (0, 1, ...).
  std::uint64_t seq;
  /// Index of the batch's first element within its source.
  std::uint64_t first;
};

/// A reducer function: folds one batch into a partial keyed aggregate. It may
/// throw; the job then fails with `errc::reducer_failed` naming the batch.
template <class T>
using reducer = std::function<void(const batch_ref<T>&, partial&)>;

/// Sums every batch under its source's label, in one vectorised pass: the
/// tutorial's running sums keyed by list size.
inline reducer<std::int64_t> sum_by_label() {
  return [](const batch_ref<std::int64_t>& b, partial& out) {
    out.add(b.label, aggregate::of(b.items.data(), b.items.size()));
  };
}

/// Sums keyed elements per key: a grouped sum of any (key, value) data.
inline reducer<keyed_value> sum_by_key() {
  return [](const batch_ref<keyed_value>& b, partial& out) {
    for (auto& x : b.items)
      out.add(x.key, x.value);
  };
}

/// Applies `f(const T&, partial&)` to every element of the batch: the easy
/// way to write a per-element reducer.
template <class T, class F>
reducer<T> per_element(F f) {
  return [f = std::move(f)](const batch_ref<T>& b, partial& out) {
    for (auto& x : b.items)
      f(x, out);
  };
}

} // namespace flow
