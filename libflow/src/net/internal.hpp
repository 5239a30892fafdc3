#pragma once

// What the files of libflow/src/net share and nobody outside them sees: the
// registries' look-ups (registry.cpp) and the engine's private parts that a
// worker node and the coordinator need.

#include <cstdint>
#include <optional>
#include <string>

// The one place flow::net reaches into the engine's private state: the job
// state behind a `job` (coordinator::attach) and detail::spawn_reducer (a
// worker node's reducers). Kept to this line so that moving the engine's
// private header changes one include.
#include "../engine/engine.hpp"

#include "flow/detail/job_spec.hpp"
#include "flow/net/registry.hpp"
#include "flow/net/tasks.hpp"

namespace flow::net {

/// A reducer a worker node can run, as registered under its name.
using registered = registered_reducer;

/// The reducer registered under `name` (the built-ins included). A copy, so
/// that a later register_reducer replacing this name cannot change it while
/// a node uses it.
std::optional<registered> find_reducer(const std::string& name);

/// The task kind registered under `kind`, as a copy.
std::optional<task_fn> find_task(const std::string& kind);

/// True for a kind registered as repeatable (register_task).
bool task_repeatable(const std::string& kind);

/// Connections accepted on `port` from now on get descriptor numbers not
/// used lately (accept_guard.cpp: CAF 0.17 names a connection by its
/// number and forgets a closed one late).
void guard_accepts_on(std::uint16_t port);

/// Undoes guard_accepts_on(port).
void unguard_accepts_on(std::uint16_t port);

/// True when the program's lookup of `symbol` finds flow::net's own
/// definition (tls_watch.cpp, accept_guard.cpp), not the library's it
/// interposes.
bool interposed_here(const char* symbol);

/// True when accept_guard.cpp's accept() is the one the program calls.
bool accept_guard_active();

} // namespace flow::net
