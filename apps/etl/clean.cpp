#include "etl/clean.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <thread>

#include "common/app_options.hpp"
#include "common/cli.hpp"
#include "common/json.hpp"
#include "common/cluster.hpp"
#include "common/job_runner.hpp"
#include "etl/clean_job.hpp"
#include "etl/clean_nodes.hpp"
#include "etl/command.hpp"
#include "etl/init.hpp"

namespace flow::apps {

namespace {

// -- printing ---------------------------------------------------------------

/// A clean run's outcome as one JSON object.
void print_clean_json(const clean_report& rep) {
  auto& res = rep.res;
  json_object reasons;
  for (auto& [reason, n] : res.rejections)
    reasons.add(reason, n);
  json_object obj;
  obj.add("ads", rep.ads)
    .add("clean", rep.clean_rows)
    .add("rejected", rep.reject_rows)
    .add("cities", rep.summary_rows)
    .add("emitted", res.emitted)
    .add("aggregated", res.aggregated)
    .add("dead_lettered", res.dead_lettered)
    .add("written", res.written)
    .add("in_both", rep.in_both)
    .add("in_neither", rep.in_neither)
    .add("resumed_ads", rep.resumed_ads)
    .add("resumes", static_cast<std::uint64_t>(rep.resumes))
    .add_raw("reasons", reasons.str())
    .add("ok", rep.ok())
    .add("partitions", static_cast<std::uint64_t>(rep.partitions))
    .add("libflow_s", rep.seconds)
    .add("rows_per_s", rep.seconds > 0 ? rep.ads / rep.seconds : 0.0)
    .add("verify_s", rep.verify_seconds);
  if (rep.node_tasks + rep.local_tasks > 0)
    obj.add("node_tasks", rep.node_tasks)
      .add("local_tasks", rep.local_tasks)
      .add("speculated", res.speculated)
      .add("speculation_won", res.speculation_won);
  std::cout << obj.str() << std::endl;
}

/// A clean run's outcome as a table.
void print_clean_table(const clean_report& rep, const clean_config& cfg) {
  auto& res = rep.res;
  std::printf("%-28s %12s\n", "ads", "rows");
  std::printf("%-28s %12llu\n", cfg.ads.display().c_str(),
              static_cast<unsigned long long>(rep.ads));
  std::printf("%-28s %12llu\n", cfg.clean.display().c_str(),
              static_cast<unsigned long long>(rep.clean_rows));
  std::printf("%-28s %12llu\n", cfg.rejects.display().c_str(),
              static_cast<unsigned long long>(rep.reject_rows));
  std::printf("%-28s %12llu\n", cfg.summary.display().c_str(),
              static_cast<unsigned long long>(rep.summary_rows));
  for (auto& [reason, n] : res.rejections)
    std::printf("  rejected: %-24s %8llu\n", reason.c_str(),
                static_cast<unsigned long long>(n));
  if (rep.resumed_ads > 0)
    std::printf("resumed: %llu ads were committed by an interrupted run "
                "(%zu reconnects in this one)\n",
                static_cast<unsigned long long>(rep.resumed_ads), rep.resumes);
  if (rep.node_tasks + rep.local_tasks > 0)
    std::printf("distributed: %llu partitions cleaned by worker nodes, %llu "
                "here\n",
                static_cast<unsigned long long>(rep.node_tasks),
                static_cast<unsigned long long>(rep.local_tasks));
  if (res.speculated > 0)
    std::printf("speculation: %llu partitions run again on another node, "
                "%llu of them staged first there\n",
                static_cast<unsigned long long>(res.speculated),
                static_cast<unsigned long long>(res.speculation_won));
  std::printf("every ad in exactly one of %s and %s: %s (%llu in both, %llu "
              "in neither); job %.3f s, %.0f rows/s; checked in %.3f s\n",
              cfg.clean.display().c_str(), cfg.rejects.display().c_str(),
              rep.ok() ? "yes" : "NO",
              static_cast<unsigned long long>(rep.in_both),
              static_cast<unsigned long long>(rep.in_neither), rep.seconds,
              rep.seconds > 0 ? rep.ads / rep.seconds : 0.0,
              rep.verify_seconds);
  std::fflush(stdout);
}

/// The programs' job runner, for flow-etl clean.
const job_runner runner{etl_prog};

/// A run stopped by a signal: the sink aborted before the result came back,
/// so no output table changed. Says what the stopped job had covered;
/// returns the exit code.
int clean_stopped(const job_result& res, bool json) {
  if (json) {
    json_object obj;
    obj.add("partial", true).add("committed", !res.partial);
    add_counts(obj, res);
    obj.add("abandoned", res.abandoned).add("ok", false);
    std::cout << obj.str() << std::endl;
  }
  auto rc = runner.stopped_exit_code(res);
  if (res.partial)
    std::cerr << etl_prog << ": clean: nothing was written; the output "
              << "tables are unchanged" << std::endl;
  return rc;
}

/// Prints a clean run's outcome; returns the exit code.
int clean_outcome(caf::expected<clean_report> rep, const clean_config& cfg,
                  bool json) {
  if (!rep)
    fail(rep.error());
  if (job_runner::stopped(rep->res))
    return clean_stopped(rep->res, json);
  if (json)
    print_clean_json(*rep);
  else
    print_clean_table(*rep, cfg);
  auto rc = runner.dead_letters(rep->res, cfg.rejects.display());
  if (!rep->ok()) {
    std::cerr << etl_prog
              << ": clean: the output does not account for every ad"
              << std::endl;
    return exit_mismatch;
  }
  return rc;
}

// -- the command ------------------------------------------------------------

void declare_clean_options(arg_parser& args) {
  declare_common(args, "the raw ads table", "ads");
  args.value("clean", "NAME", "output table of cleaned ads", "ads_clean");
  args.value("rejects", "NAME", "output table of rejected ads",
             "ads_rejects");
  args.value("summary", "NAME", "output table of per-city aggregates",
             "ads_summary");
  args.value("partitions", "P",
             "partition generators (equal shares of the table's blocks); "
             "0 = one per hardware thread, but 1 for a table larger than a "
             "quarter of the server's shared buffers",
             "0");
  args.flag("json", "print one JSON object instead of a table");
  args.flag("resume",
            "continue the run that was interrupted (killed, or its database "
            "connection lost for good) from its checkpoints instead of "
            "starting over; with --listen, from the partitions the killed "
            "manager's nodes had committed");
  args.value("reconnects", "N",
             "when the database connection is lost, resume from the "
             "checkpoints up to N times (backoff 0.5 s doubling to 8 s)",
             "5");
  declare_init_options(args);
  declare_pipeline_options(args, "16384");
  cluster::declare_options(args);
}

clean_config read_clean_options(const arg_parser& args) {
  clean_config cfg;
  cfg.opts = read_pipeline_options(args);
  cfg.ads = table_of(args, args.get("table"));
  cfg.clean = table_of(args, args.get("clean"));
  cfg.rejects = table_of(args, args.get("rejects"));
  cfg.summary = table_of(args, args.get("summary"));
  auto names = std::set<std::string>{cfg.ads.table, cfg.clean.table,
                                     cfg.rejects.table, cfg.summary.table};
  if (names.size() != 4)
    throw usage_error("--table, --clean, --rejects and --summary must name "
                      "four different tables");
  // 0: as many as cores, or 1 for a table larger than a quarter of the
  // server's shared buffers (decided once the table is there).
  cfg.partitions = args.get_uint("partitions", 0, 1024);
  if (cfg.opts.reducers == 0)
    cfg.opts.reducers = flow::default_reducers();
  cfg.resume = args.is_set("resume");
  cfg.reconnects = args.get_uint("reconnects", 0, 1000);
  return cfg;
}

/// Test hook (tests/pg/test_clean.cpp): fail, or pause to be killed, at the
/// last moment before the output would become visible.
void install_commit_hook(clean_config& cfg) {
  auto hook = std::getenv("FLOW_ETL_TEST_BEFORE_COMMIT");
  if (hook == nullptr)
    return;
  std::string what = hook;
  cfg.before_commit = [what] {
    if (what == "fail")
      throw std::runtime_error("test hook: failing before commit");
    if (what == "pause") {
      std::cerr << etl_prog << ": test hook: pausing before commit"
                << std::endl;
      std::this_thread::sleep_for(std::chrono::seconds(60));
    }
  };
}

} // namespace

int cmd_clean(int argc, char** argv) {
  arg_parser args{
    "flow-etl clean",
    "The data-cleaning job: reads the raw ads by parallel partitions (block "
    "ranges, one snapshot); the reducers normalise the city, parse the price "
    "into\ninteger cents and posted_at into a timestamp; writes ads_clean, "
    "ads_rejects (with the reason) and, from the manager's per-city "
    "aggregates,\nads_summary, all three replaced in one transaction. Every "
    "ad lands in exactly one of ads_clean and ads_rejects. With a throwaway "
    "cluster\n(no --db, no PG* environment) it runs init first."};
  declare_clean_options(args);
  if (!args.parse(argc, argv))
    return exit_ok;
  auto cfg = read_clean_options(args);
  bool json = args.is_set("json");
  cluster nodes;
  nodes.read_options(args, etl_prog);
  install_commit_hook(cfg);
  // --table names the ads table here; init's other table keeps its name.
  auto init = read_init_options(args);
  init.elements = table_of(args, "elements");
  init.ads = cfg.ads;
  auto db = open_database(args);
  cfg.conninfo = db.conninfo;
  auto keep = args.is_set("keep");
  fill_throwaway(db, keep, init, "clean");
  if (nodes.listening())
    run_listening(db, keep, nodes, [&](caf::actor_system& sys) {
      return clean_outcome(run_distributed_clean(sys, cfg, nodes), cfg, json);
    });
  return with_database(db, keep, [&] {
    runtime rt;
    return clean_outcome(run_clean(rt.system(), cfg), cfg, json);
  });
}

} // namespace flow::apps
