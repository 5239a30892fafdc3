#pragma once

// How a worker node's partition task reports a failure to open its
// partition, shared by the sum and clean tasks; and how the manager tells a
// node's failed import of its snapshot from bad input.

#include <string>

#include <caf/error.hpp>

namespace flow::pg {
class partitioned_read;
} // namespace flow::pg

namespace flow::apps {

/// A worker node's error opening its partition, as the manager should see
/// it: a connection that cannot be made is the node's fault
/// (errc::invalid_config: the partition goes to another node), anything
/// else is the data's.
caf::error node_error(caf::error err);

/// True when `what` (an error's text) has the SQL state of a failed
/// snapshot import (22023 invalid snapshot identifier, 55000 could not
/// import the requested snapshot).
bool import_failed(const std::string& what);

/// True when `what` (an error's text) is a reader's failed import of
/// `coord`'s snapshot (SQLSTATE 22023 or 55000) and the server has ended
/// `coord`'s session (partitioned_read::exporter_lost): the snapshot went
/// with it, so the reader lost its connection, which is not bad input.
bool exporter_lost_in(const std::string& what, pg::partitioned_read& coord);

} // namespace flow::apps
