#pragma once

// How a worker node's partition task reports a failure to open its
// partition, shared by the sum and clean tasks.

#include <caf/error.hpp>

namespace flow::apps {

/// A worker node's error opening its partition, as the manager should see
/// it: a connection that cannot be made is the node's fault
/// (errc::invalid_config: the partition goes to another node), anything
/// else is the data's.
caf::error node_error(caf::error err);

} // namespace flow::apps
