#pragma once

/// @file
/// flow::net's worker side: a node joins a coordinator and serves its jobs
/// and tasks until the manager goes away.

#include <cstddef>
#include <functional>
#include <string>

#include <caf/error.hpp>
#include <caf/fwd.hpp>

#include "flow/net/security.hpp"

namespace flow::net {

/// The worker side: connects to the coordinator at `to`, lends `reducers`
/// reducers to each of its jobs, runs up to `reducers` of its tasks at once
/// and serves until the manager goes away. A handshake the manager does not
/// finish in time (a manager swamped by connections) is tried again for up
/// to 30 s.
/// Returns the reason it stopped (an error: a lost or refused connection,
/// or the manager ending). Blocks. `joined` (if given) is called once the
/// manager welcomed the node, before it serves.
caf::error serve(caf::actor_system& sys, const endpoint& to,
                 const security& sec, std::size_t reducers,
                 const std::string& name,
                 const std::function<void()>& joined = {});

} // namespace flow::net
