#pragma once

// flow-etl gc: lists and drops what killed runs left in the database, the
// staging tables and checkpoints of flow_resume and flow_dist whose run no
// longer holds their advisory lock (see flow/pg/ownership.hpp).

namespace flow::apps {

/// The `gc` command; returns the exit code.
int cmd_gc(int argc, char** argv);

} // namespace flow::apps
