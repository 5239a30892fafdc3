#pragma once

// libpqxx helpers shared by the pg sources and sinks (not installed).

#include <memory>
#include <string>

#include <pqxx/connection>
#include <pqxx/transaction>

namespace flow::pg::detail {

/// A read-only REPEATABLE READ transaction: the snapshot's isolation.
using snapshot_tx = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;

/// Opens a connection (`conninfo` empty: the standard environment); throws
/// libpqxx exceptions.
std::unique_ptr<pqxx::connection> connect(const std::string& conninfo);

} // namespace flow::pg::detail
