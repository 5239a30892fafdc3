#include "etl/command.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "common/watch.hpp"
#include "etl/tasks.hpp"
#include "flow/error.hpp"
#include "flow/pg/pg.hpp"

namespace flow::apps {

database open_database(const arg_parser& args) {
  database db;
  if (args.given("db")) {
    db.conninfo = args.get("db");
    if (db.conninfo.empty())
      throw usage_error("--db: empty connection string");
    return db;
  }
  if (pg::environment_configured())
    return db; // libpq reads PGHOST & co.
  auto cluster = pg::temp_cluster::start();
  if (!cluster)
    throw usage_error(describe(cluster.error()));
  db.cluster = std::move(*cluster);
  db.conninfo = db.cluster->conninfo();
  std::cerr << etl_prog
            << ": no database configured (--db or PGHOST/PGPORT/PGDATABASE/"
               "PGSERVICE/PGUSER): started a throwaway PostgreSQL 15 cluster "
               "in "
            << db.cluster->dir() << " ("
            << (args.is_set("keep") ? "kept at exit" : "removed at exit")
            << ")" << std::endl;
  return db;
}

void finish_database(database& db, bool keep) {
  if (!db.cluster)
    return;
  if (keep) {
    db.cluster->keep();
    std::cerr << etl_prog << ": kept the throwaway cluster; use it with\n  --db '"
              << db.cluster->conninfo() << "'\n  or: psql -h "
              << db.cluster->dir() << " -p " << db.cluster->port() << " -U "
              << pg::temp_cluster::superuser()
              << " postgres\n  stop and remove it with: "
              << db.cluster->stop_command() << std::endl;
  }
  db.cluster.reset();
}

int with_database(database& db, bool keep, const std::function<int()>& body) {
  int rc = exit_ok;
  try {
    rc = body();
  } catch (...) {
    finish_database(db, keep);
    throw;
  }
  finish_database(db, keep);
  return rc;
}

/// Turns a library error into the usual one-line error (exit code 2).
[[noreturn]] void fail(const caf::error& err) {
  throw failure(err);
}

pg::table_name table_of(const arg_parser& args, const std::string& table) {
  pg::table_name result{args.get("schema"), table};
  try {
    if (!result.schema.empty())
      pg::check_identifier(result.schema, "--schema");
    pg::check_identifier(result.table, "--table");
  } catch (const input_error& e) {
    throw usage_error(e.what());
  }
  return result;
}

void declare_common(arg_parser& args, const std::string& table_help,
                    const std::string& table_default) {
  args.value("db", "URI",
             "libpq connection URI or key=value string (default: the PG* "
             "environment, else a throwaway cluster)");
  args.flag("keep",
            "keep the throwaway cluster at exit and print how to connect");
  args.value("schema", "NAME",
             "schema of the tables (default: the search_path)");
  args.value("table", "NAME", table_help, table_default);
}

void run_listening(database& db, bool keep, cluster& nodes,
                   const std::function<int(caf::actor_system&)>& body) {
  int rc = exit_ok;
  try {
    // Never destroyed: the process leaves at once below.
    auto* rt = new runtime{
      [&](caf::actor_system_config& cfg) { nodes.configure(cfg); }};
    // With no node connected the manager reads partitions itself.
    register_etl_tasks(db.conninfo);
    nodes.listen(rt->system(), etl_prog);
    rc = body(rt->system());
  } catch (const std::exception& e) { // usage_error and the rest alike
    rc = report_usage_error(etl_prog, e.what());
  }
  finish_database(db, keep);
  // --status-linger: _Exit skips guarded_main's finish_watch().
  finish_watch();
  // Also when listening failed: the actor system may hold the middleman.
  std::cout.flush();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(rc);
}

} // namespace flow::apps
