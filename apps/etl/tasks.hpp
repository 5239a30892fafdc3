#pragma once

// The task kinds a distributed `flow-etl sum|aggregate|clean --listen` hands to
// `flow-node worker`: one database partition each. The node reads it in the
// manager's snapshot, reduces it locally and returns only the partial
// aggregates.

#include <string>

namespace flow::apps {

/// Registers the flow-etl task kinds with flow::net. `conninfo`: this
/// process's own connection to the database (flow-node's --db); empty: the
/// manager's, without its password, completed by this process's libpq
/// environment (PGPASSWORD, ~/.pgpass).
void register_etl_tasks(const std::string& conninfo);

} // namespace flow::apps
