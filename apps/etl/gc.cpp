#include "etl/gc.hpp"

#include <cstdio>
#include <iostream>
#include <string>

#include "common/cli.hpp"
#include "common/json.hpp"
#include "etl/command.hpp"
#include "flow/pg/connection.hpp"
#include "flow/pg/ownership.hpp"

namespace flow::apps {

int cmd_gc(int argc, char** argv) {
  arg_parser args{
    "flow-etl gc",
    "Lists the staging tables and checkpoints that runs keep in the schemas "
    "flow_resume (resumable runs) and flow_dist (worker nodes'\npartitions) "
    "and drops those whose run is gone: a live run holds an advisory lock "
    "on its tables' name, which dies with its connection,\nso a live run's "
    "tables are never touched. Dropping an interrupted run's flow_resume "
    "tables means it can no longer be continued with --resume."};
  args.value("db", "URI",
             "libpq connection URI or key=value string (default: the PG* "
             "environment)");
  args.flag("dry-run", "list what would be dropped; drop nothing");
  args.flag("json", "print one JSON object per table, then a summary");
  if (!args.parse(argc, argv))
    return exit_ok;
  std::string conninfo;
  if (args.given("db")) {
    conninfo = args.get("db");
    if (conninfo.empty())
      throw usage_error("--db: empty connection string");
  } else if (!pg::environment_configured()) {
    throw usage_error("gc needs a database: --db URI, or the PG* "
                      "environment");
  }
  bool dry = args.is_set("dry-run");
  bool json = args.is_set("json");
  auto all = pg::find_job_tables(conninfo);
  if (!all)
    fail(all.error());
  auto gone = pg::drop_orphans(conninfo, dry);
  if (!gone)
    fail(gone.error());
  auto dropped = [&](const pg::job_table& t) {
    for (auto& g : *gone)
      if (g.name.schema == t.name.schema && g.name.table == t.name.table)
        return true;
    return false;
  };
  std::uint64_t live = 0;
  std::uint64_t kept = 0;
  for (auto& t : *all) {
    // "kept": an orphan that became live between the listing and the drop.
    const char* what = dropped(t) ? (dry ? "orphan (would drop)" : "dropped")
                       : t.live   ? "live (in use by a running job)"
                                  : "kept (its job started meanwhile)";
    if (!dropped(t))
      ++(t.live ? live : kept);
    if (json) {
      json_object obj;
      obj.add("table", t.name.display())
        .add("owner", t.owner)
        .add("live", t.live)
        .add("dropped", dropped(t) && !dry)
        .add("orphan", dropped(t));
      std::cout << obj.str() << '\n';
    } else {
      std::printf("%-60s %s\n", t.name.display().c_str(), what);
    }
  }
  if (json) {
    json_object obj;
    obj.add("tables", static_cast<std::uint64_t>(all->size()))
      .add("orphans", static_cast<std::uint64_t>(gone->size()))
      .add("dropped", static_cast<std::uint64_t>(dry ? 0 : gone->size()))
      .add("live", live)
      .add("kept", kept)
      .add("dry_run", dry);
    std::cout << obj.str() << '\n';
  } else {
    std::printf("%zu tables in flow_resume and flow_dist: %zu orphaned (%s), "
                "%llu live\n",
                all->size(), gone->size(), dry ? "dry run: none dropped"
                                               : "dropped",
                static_cast<unsigned long long>(live));
  }
  return exit_ok;
}

} // namespace flow::apps
