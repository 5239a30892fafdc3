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

} // namespace flow
