// Test hooks of flow-etl: environment variables that the tests set to make
// a race certain. Without them, nothing happens.

#pragma once

#include <string>

namespace flow::pg {
class partitioned_read;
} // namespace flow::pg

namespace flow::apps {

/// Test hook, FLOW_TEST_END_EXPORTER=1: ends the session with backend `pid`,
/// which exported a snapshot, from another connection (pg_terminate_backend)
/// and waits until the server has dropped it, as a pg_terminate_backend of
/// every session can; the tests of that race use it. Called right before
/// the readers (or the partition tasks) import the snapshot, on every
/// attempt, and once by `flow-etl run` right after it exported the jobs'
/// shared snapshot. Does nothing without the variable.
void test_end_exporter(const std::string& conninfo, const std::string& pid);

/// True when FLOW_TEST_END_EXPORTER=1 is set (test_end_exporter would act):
/// callers look up the session's backend only then.
bool test_end_exporter_wanted();

/// test_end_exporter for the session of `read`'s coordinator, which
/// exported the snapshot; looks its backend up only with the variable set.
void test_end_exporter(const std::string& conninfo, pg::partitioned_read& read);

} // namespace flow::apps
