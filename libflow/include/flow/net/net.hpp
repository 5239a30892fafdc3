#pragma once

/// @file
/// flow::net: worker nodes lend reducers to jobs of a manager node, over
/// CAF's middleman with mutual TLS (caf_openssl). Batches travel to remote
/// reducers by value and partial aggregates come back, under the same
/// protocol (batch ids, credit, exact accounting) as local reducers.
///
/// @code
/// // manager                                   // worker node
/// flow::net::configure(cfg, sec);              flow::net::configure(cfg, sec);
/// auto coord = flow::net::coordinator::listen( caf::actor_system sys{cfg};
///   sys, {"127.0.0.1", 4242}, sec);            flow::net::serve(sys,
/// auto j = pipeline.distribute_as(               {"10.0.0.1", 4242}, sec, 2,
///   "sum_by_label").start(sys);                  "node-b");
/// coord->attach(*j);
/// @endcode

// The umbrella header: one header per role, all of them here, so that a
// program keeps including just this one.
#include "flow/net/coordinator.hpp"
#include "flow/net/node.hpp"
#include "flow/net/registry.hpp"
#include "flow/net/security.hpp"
#include "flow/net/tasks.hpp"
