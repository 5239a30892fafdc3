// flow-etl: the tutorial's last part, data in PostgreSQL. `init` stores the
// tutorial's lists as rows (and a table of messy classified ads for the
// cleaning job); `sum` computes the keyed sums per list size from the rows,
// read by N partition generators in one snapshot, and verifies them against
// the server's own GROUP BY; `clean` is the data-cleaning job; `run` runs the
// aggregate jobs of a TOML job file.
//
// The commands, one file each: init.cpp (the demo data), sum.cpp, clean.cpp
// (with the job in clean_job.cpp and its distributed form in
// clean_nodes.cpp), run.cpp (with the job file in job_file.cpp); command.cpp
// holds what they share (the database and the manager of --listen),
// tasks.cpp what worker nodes run.
//
// Without --db and without a PG* environment, a throwaway PostgreSQL cluster
// is started for the run (and `sum` and `clean` fill it with `init` first).

#include <iostream>
#include <string>

#include "common/cli.hpp"
#include "etl/aggregate.hpp"
#include "etl/clean.hpp"
#include "etl/command.hpp"
#include "etl/gc.hpp"
#include "etl/init.hpp"
#include "etl/run.hpp"
#include "etl/sum.hpp"
#include "flow/error.hpp"
#include "flow/parse.hpp"

namespace {

using namespace flow;
using namespace flow::apps;

const char* overview
  = "usage: flow-etl COMMAND [options]\n"
    "The tutorial's data in PostgreSQL, processed by libflow.\n"
    "\n"
    "commands:\n"
    "  init    create the demo tables: elements(list_id, list_size, value),\n"
    "          the tutorial's lists as rows, and ads(id, title, city, price,\n"
    "          posted_at), raw classified ads (deterministic for a seed)\n"
    "  sum     keyed sums per list_size over elements, read by parallel\n"
    "          partitions in one snapshot (or pushed down to the server with\n"
    "          --pushdown), verified against the server's own GROUP BY\n"
    "  clean   the data-cleaning job: ads -> ads_clean, ads_rejects (with\n"
    "          reasons) and ads_summary (per city), replaced atomically\n"
    "  aggregate  GROUP BY any columns of your own table or query: sum,\n"
    "          count, count(distinct), approx_count_distinct, avg, min, max,\n"
    "          stddev, quantile; verified against the server (--verify),\n"
    "          written to a table replaced atomically (--output)\n"
    "  run     the aggregate jobs of a TOML job file (GROUP BY any columns of\n"
    "          your own tables), in order, optionally committed all at once;\n"
    "          run --check FILE checks the file against the database\n"
    "  gc      list and drop the staging tables and checkpoints killed runs\n"
    "          left in flow_resume and flow_dist (never a live run's)\n"
    "\n"
    "The database: --db URI|CONNINFO, else libpq's environment (PGHOST,\n"
    "PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSERVICE, ~/.pgpass). With\n"
    "neither, a throwaway PostgreSQL 15 cluster is started in a temporary\n"
    "directory and removed at exit (--keep keeps it and prints how to\n"
    "connect); `sum` and `clean` then run `init` in it first (`run` finds\n"
    "it empty: give it --db).\n"
    "\n"
    "Run 'flow-etl COMMAND --help' for the options of a command. Exit codes:\n"
    "0 verified, 1 a result did not verify, 2 bad usage, input or database.\n";

int run(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << overview;
    throw usage_error(
      "missing command (init, sum, clean, aggregate, run or gc)");
  }
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << overview;
    return exit_ok;
  }
  if (cmd == "init")
    return cmd_init(argc - 1, argv + 1);
  if (cmd == "sum")
    return cmd_sum(argc - 1, argv + 1);
  if (cmd == "clean")
    return cmd_clean(argc - 1, argv + 1);
  if (cmd == "aggregate")
    return cmd_aggregate(argc - 1, argv + 1);
  if (cmd == "run")
    return cmd_run(argc - 1, argv + 1);
  if (cmd == "gc")
    return cmd_gc(argc - 1, argv + 1);
  throw usage_error("unknown command " + quote_token(cmd)
                    + " (init, sum, clean, aggregate, run or gc; see --help)");
}

} // namespace

int main(int argc, char** argv) {
  pin_malloc_thresholds();
  return guarded_main(etl_prog, [&] { return run(argc, argv); });
}
