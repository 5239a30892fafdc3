#pragma once

/// @file
/// flow::net's registries: the reducers and task kinds a worker node runs by
/// name. Only the name crosses the network, so the manager and every node
/// register the same ones.

#include <cstdint>
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

/// Registers a type-erased reducer (used by register_reducer).
void register_erased(const std::string& name, detail::element_kind kind,
                     detail::erased_reducer fn);

/// A reducer that burns about 1 µs of CPU per element before summing it
/// under the batch's label: a stand-in for CPU-heavy work in benchmarks and
/// tests. The sum is exact and equals sum_by_label's.
reducer<std::int64_t> spin_sum_by_label();

/// Registers a task kind. The manager and every worker node register the
/// same kinds: the manager runs a task itself when no node is connected.
void register_task(const std::string& kind, task_fn fn);

template <class T>
void register_reducer(const std::string& name, reducer<T> fn) {
  register_erased(name, detail::element_traits<T>::kind,
                  detail::erase_reducer<T>(std::move(fn)));
}

} // namespace flow::net
