#pragma once

/// @file
/// Who owns a job's state in the database. Resumable runs keep staging
/// tables and checkpoints in `flow_resume`, distributed runs' worker nodes
/// stage partitions in `flow_dist`; both are named after 16 hex digits
/// (`job_<hex>_...`, `d<hex>_p...`). A live run holds a session-level
/// advisory lock on those digits (as a signed 64-bit key) on a connection
/// of its own for as long as it may touch its tables (`flow-etl aggregate`'s
/// checkpoint is `agg_<hex>` in `flow_resume`). So another run of the
/// same job can tell it is live (and refuses to start rather than drop its
/// tables), and a clean-up (`find_job_tables`, `drop_orphans`, `flow-etl gc`)
/// drops only tables no live run owns. The lock dies with the run's
/// connection: a killed run's tables are orphans at once.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "flow/pg/connection.hpp"

namespace flow::pg {

/// The schema of resumable runs' staging tables and checkpoints.
inline constexpr const char* resume_schema_name = "flow_resume";

/// The schema of distributed runs' per-partition staging tables.
inline constexpr const char* dist_schema_name = "flow_dist";

/// How long a run waits for its job's lock before it concludes that another
/// live run holds it: long enough for the backend of a run that was just
/// killed to notice and for `gc`'s momentary lock, short enough to report a
/// live run promptly.
inline constexpr std::chrono::milliseconds owner_lock_wait{5000};

/// The 16 hex digits that name a job's state after its (first) output
/// table: FNV-1a of "schema.table" (`current_schema` when `output` has
/// none), the same in every process and version.
std::string owner_hex(const table_name& output,
                      const std::string& current_schema);

/// The advisory-lock key of the owner `hex` (16 hex digits, the part of the
/// tables' names that identifies their run). Throws std::invalid_argument
/// for anything else.
std::int64_t owner_lock_key(const std::string& hex);

/// A session-level advisory lock on an owner key, held on a connection of
/// its own until destroyed (or until the connection is lost, which ends
/// the ownership as a killed run would).
class owner_lock {
public:
  /// Takes the lock of `hex`, waiting at most `owner_lock_wait` for a holder
  /// that is going away. Fails with errc::invalid_config naming `what` when
  /// another session still holds it then (a live run of the same job), or
  /// with the connection's error.
  static caf::expected<owner_lock> try_acquire(const std::string& conninfo,
                                               const std::string& hex,
                                               const std::string& what);

  /// Moves a lock.
  owner_lock(owner_lock&&) noexcept;

  /// Moves a lock.
  owner_lock& operator=(owner_lock&&) noexcept;

  /// Releases the lock (explicitly, then closes its connection).
  ~owner_lock();

  /// The connection, defined in the library.
  struct impl;

private:
  explicit owner_lock(std::unique_ptr<impl> p);

  std::unique_ptr<impl> impl_;
};

/// A table in `flow_resume` or `flow_dist` that belongs to a run.
struct job_table {
  /// The table.
  table_name name;
  /// The 16 hex digits of its run.
  std::string owner;
  /// True when a live run holds the owner's lock.
  bool live = false;
};

/// The tables of `flow_resume` and `flow_dist` named after a run (others are
/// not listed and never dropped), ordered by schema and name, each with
/// whether its run is live. `schemas` restricts the search (empty: both).
caf::expected<std::vector<job_table>>
find_job_tables(const std::string& conninfo,
                const std::vector<std::string>& schemas = {});

/// Drops the tables of `find_job_tables` whose run is not live, each
/// owner's under its lock (so a run starting meanwhile waits for nothing
/// and finds its old state gone, as a fresh run would). Returns the tables
/// dropped (`dry_run`: the tables that would be). `only`, when given,
/// restricts it to the owners (16 hex digits) for which it returns true.
caf::expected<std::vector<job_table>>
drop_orphans(const std::string& conninfo, bool dry_run,
             const std::vector<std::string>& schemas = {},
             const std::function<bool(const std::string&)>& only = {});

} // namespace flow::pg
