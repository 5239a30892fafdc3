#pragma once

// What flow-etl's commands share: the database a run uses (given, from the
// environment, or a throwaway cluster), the options naming it and its
// tables, and the manager side of `sum|clean --listen`.

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <caf/error.hpp>

namespace caf {
class actor_system;
} // namespace caf

#include "common/app_options.hpp"
#include "common/cli.hpp"
#include "common/cluster.hpp"
#include "etl/failure.hpp"
#include "flow/pg/connection.hpp"
#include "flow/pg/temp_cluster.hpp"

namespace flow::apps {

/// The program's name in messages.
inline constexpr const char* etl_prog = "flow-etl";

/// Where this run's database is: given, from the environment, or a
/// throwaway cluster owned by this object.
struct database {
  /// libpq connection string; empty: the environment.
  std::string conninfo;
  /// The throwaway cluster, when the run started one.
  std::unique_ptr<pg::temp_cluster> cluster;

  /// True when the run started its own cluster.
  bool throwaway() const {
    return cluster != nullptr;
  }
};

/// Opens the database --db names, else the environment's, else starts a
/// throwaway cluster (saying so on stderr).
database open_database(const arg_parser& args);

/// Stops and removes a throwaway cluster, or with `keep` keeps it and prints
/// how to connect.
void finish_database(database& db, bool keep);

/// Runs `body` and then finishes the database, also when `body` throws.
int with_database(database& db, bool keep, const std::function<int()>& body);

/// Turns a library error into the usual one-line error (exit code 2):
/// throws `failure`.
[[noreturn]] void fail(const caf::error& err);

/// `table` in --schema, checked as identifiers (throws usage_error).
pg::table_name table_of(const arg_parser& args, const std::string& table);

/// Declares --db, --keep, --schema and --table.
void declare_common(arg_parser& args,
                    const std::string& table_help = "the elements table",
                    const std::string& table_default = "elements");

/// Runs `body` as the manager of a --listen job: in an actor system with
/// CAF's network modules, listening for worker nodes, and running the
/// partitions itself while no node is connected. Once the results are out
/// (or the error is reported, exit code 2) and the database is finished,
/// the process leaves at once: CAF 0.17's middleman does not always shut
/// down while peers are connected; the worker nodes see the connection go
/// and stop.
[[noreturn]] void
run_listening(database& db, bool keep, cluster& nodes,
              const std::function<int(caf::actor_system&)>& body);

} // namespace flow::apps
