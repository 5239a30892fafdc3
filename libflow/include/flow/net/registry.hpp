#pragma once

/// @file
/// flow::net's registries: the reducers and task kinds a worker node runs by
/// name. Only the name crosses the network, so the manager and every node
/// register the same ones.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "flow/detail/job_spec.hpp"
#include "flow/net/tasks.hpp"
#include "flow/reducer.hpp"

namespace flow::net {

/// Registers a reducer worker nodes can run under `name` (both the manager
/// and the workers must register it; the built-ins are always there:
/// "sum_by_label" and "spin_sum_by_label" over int64 elements, the latter
/// doing about 1 µs of work per element, and "sum_by_key" over keyed
/// values).
template <class T>
void register_reducer(const std::string& name, reducer<T> fn);

/// A reducer as a worker node runs it: its elements' type, the function,
/// and how dead letters render its elements.
struct registered_reducer {
  /// The elements' type.
  detail::element_kind kind = detail::element_kind::opaque;
  /// The reducer itself.
  detail::erased_reducer fn;
  /// Renders an element for a dead letter (may be empty).
  detail::erased_formatter format;
};

/// Erases a typed reducer for a registry.
template <class T>
registered_reducer make_registered(reducer<T> fn) {
  return {detail::element_traits<T>::kind,
          detail::erase_reducer<T>(std::move(fn)),
          detail::default_formatter<T>()};
}

/// Makes the reducer for a name under a registered prefix, or nothing for a
/// name it does not know: reducers parameterised by their name (for example
/// "keyed_agg/double/sum,p95", whose columns the name spells out).
using reducer_factory
  = std::function<std::optional<registered_reducer>(const std::string& name)>;

/// Registers a factory asked for every unknown reducer name that starts with
/// `prefix` (the manager and every worker node register the same ones).
void register_reducer_factory(const std::string& prefix, reducer_factory fn);

/// Registers a type-erased reducer (used by register_reducer).
void register_erased(const std::string& name, detail::element_kind kind,
                     detail::erased_reducer fn);

/// A reducer that burns about 1 µs of CPU per element before summing it
/// under the batch's label: a stand-in for CPU-heavy work in benchmarks and
/// tests. The sum is exact and equals sum_by_label's.
reducer<std::int64_t> spin_sum_by_label();

/// Registers a task kind. The manager and every worker node register the
/// same kinds: the manager runs a task itself when no node is connected.
/// `repeatable`: the task only reads and returns its result (no effect
/// elsewhere), so two attempts at once are harmless and the coordinator may
/// run a straggling one again on another node (docs/distribution.md,
/// "Speculation"). A task that writes is repeatable only when two attempts
/// cannot both take effect (flow-etl clean's partitions stage under
/// per-attempt names and the first commit claims the partition).
void register_task(const std::string& kind, task_fn fn,
                   bool repeatable = false);

/// Registers an erased reducer with its dead-letter formatter.
void register_erased(const std::string& name, registered_reducer r);

template <class T>
void register_reducer(const std::string& name, reducer<T> fn) {
  register_erased(name, make_registered<T>(std::move(fn)));
}

} // namespace flow::net
