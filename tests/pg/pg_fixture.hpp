#pragma once

// The throwaway PostgreSQL server shared by the test cases of one process,
// and small helpers to run SQL in it.

#include <cstdint>
#include <string>

#include "flow/pg/temp_cluster.hpp"

namespace flow::test {

/// The server of this test process: started on first use, stopped (and its
/// directory removed) by a static destructor at exit, or by its watchdog if
/// the process is killed.
pg::temp_cluster& server();

/// Connection string for the server's superuser.
std::string conninfo();

/// A new schema, unique to this process and call, created in the server;
/// its name contains `hint`.
std::string fresh_schema(const std::string& hint);

/// Runs `sql` in its own transaction.
void exec(const std::string& sql);

/// The first field of the first row of `sql` as text ("" for NULL or none).
std::string scalar(const std::string& sql);

/// A login role with a password (created once per name).
void make_role(const std::string& name, const std::string& password);

} // namespace flow::test
