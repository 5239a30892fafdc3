#pragma once

/// @file
/// Registration of libflow's message types with CAF.

#include <caf/fwd.hpp>

namespace flow {

/// Registers every libflow message type (and the containers they hold) with
/// `cfg`, so that libflow actors can talk across processes. Call it on the
/// configuration of every node before creating the actor system. Local jobs
/// do not need it.
void add_message_types(caf::actor_system_config& cfg);

/// Applies the scheduler settings libflow is tuned for: one scheduler thread
/// per hardware thread and the `sharing` policy (one shared job queue: an idle
/// thread picks up a batch at once, and idle threads sleep instead of
/// polling). Measured in docs/benchmarks.md. Call it before creating the
/// actor system; `pipeline::run()` without a system uses it.
void configure_scheduler(caf::actor_system_config& cfg);

} // namespace flow
