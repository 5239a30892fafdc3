#include "etl/run.hpp"

#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor_system.hpp>

#include "common/app_options.hpp"
#include "common/cli.hpp"
#include "etl/aggregate.hpp"
#include "etl/command.hpp"
#include "etl/job_file.hpp"
#include "flow/error.hpp"
#include "flow/pg/connection.hpp"
#include "flow/source.hpp"

namespace flow::apps {

namespace {

// -- the command line ---------------------------------------------------------

constexpr const char* usage_text = "flow-etl run [--check] FILE [options]";

void declare_run_options(arg_parser& args) {
  args.flag("check",
            "check every job against the database (tables, columns, "
            "aggregates, names) and exit without running any");
  args.value("db", "URI",
             "libpq connection URI or key=value string (default: the PG* "
             "environment, else a throwaway cluster, which is empty)");
  args.flag("keep",
            "keep the throwaway cluster at exit and print how to connect");
  // These override the file's [defaults]; their defaults are the file's.
  args.value("schema", "NAME",
             "schema of the jobs' tables and outputs (default: the file's "
             "[defaults] schema, else the search_path)");
  args.value("partitions", "P",
             "partitions of each table read; 0 = one per hardware thread "
             "(default: the file's [defaults], else 0)");
  args.value("by", "COLUMN",
             "integer column whose ranges make the partitions, or ctid "
             "(default: the file's [defaults], else ctid)");
  args.flag("verify",
            "compare every result with the server's own GROUP BY in the "
            "same snapshot (exit 1 on a difference)");
  args.flag("json", "print JSON lines instead of aligned tables");
  args.value("reconnects", "N",
             "when a job loses its database connection midway, try it again "
             "up to N times (backoff 0.5 s doubling to 8 s) in the jobs' "
             "snapshot, while the connection holding that snapshot lives",
             "5");
  declare_pipeline_options(args, "16384", wide_batch_help);
  declare_combine_option(args, "8");
}

/// The command line without the job file, and the file. arg_parser knows
/// options only, so the file is taken off first: it is the first argument,
/// or the second after --check, as the usage line shows.
struct command_line {
  std::string path;
  bool has_path = false;
  std::vector<char*> rest;
};

command_line split_file(int argc, char** argv) {
  command_line cl;
  cl.rest.push_back(argv[0]);
  int i = 1;
  if (i < argc && std::string_view{argv[i]} == "--check")
    cl.rest.push_back(argv[i++]);
  if (i < argc && std::string_view{argv[i]}.rfind("--", 0) != 0) {
    cl.path = argv[i++];
    cl.has_path = true;
  }
  for (; i < argc; ++i)
    cl.rest.push_back(argv[i]);
  return cl;
}

/// The run-wide options: the command line's where given, else the file's
/// [defaults], else the defaults of `flow-etl aggregate`.
agg_run_options run_options_of(const arg_parser& args, const job_file& file) {
  auto& d = file.defaults;
  agg_run_options run;
  run.opts = read_pipeline_options(args);
  read_combine_option(args, run.opts);
  if (args.given("batch"))
    run.batch_rows = run.opts.batch_size;
  run.partitions = args.given("partitions")
                     ? args.get_uint("partitions", 0, 1024)
                     : d.partitions.value_or(0);
  run.by = args.given("by") ? args.get("by") : d.by.value_or("ctid");
  try {
    pg::check_identifier(run.by, "--by");
  } catch (const input_error& e) {
    throw usage_error(e.what());
  }
  // A flag can only turn an option on: the file's `true` stays.
  run.verify = args.is_set("verify") || d.verify.value_or(false);
  run.json = args.is_set("json") || d.json.value_or(false);
  run.reconnects = args.get_uint("reconnects", 0, 1000);
  return run;
}

std::string schema_of(const arg_parser& args, const job_file& file) {
  if (!args.given("schema"))
    return file.defaults.schema.value_or("");
  auto schema = args.get("schema");
  try {
    pg::check_identifier(schema, "--schema");
  } catch (const input_error& e) {
    throw usage_error(e.what());
  }
  return schema;
}

// -- checking and running -------------------------------------------------------

/// Checks every job against the database before any runs, so that a
/// missing table or column is reported with the file's line and nothing is
/// written. A job that reads an earlier job's output cannot be checked
/// before that job has run (its table may not exist yet); it is checked
/// when it runs. Returns one line per job for --check.
std::vector<std::string> check_jobs(const std::string& conninfo,
                                    const job_file& file,
                                    const std::vector<agg_job>& jobs) {
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    auto& job = jobs[i];
    auto label = "job \"" + job.name + "\"";
    auto earlier = reads_output_of(jobs, i);
    if (earlier != i) {
      lines.push_back(file.path + ": " + label + ": reads the output of job \""
                      + jobs[earlier].name
                      + "\", so it is checked when it runs");
      continue;
    }
    try {
      check_aggregate_job(conninfo, job);
    } catch (const std::exception& e) {
      throw usage_error(file.path + ":" + std::to_string(file.jobs[i].line)
                        + ": " + label + ": " + e.what());
    }
    lines.push_back(file.path + ": " + label + " OK");
  }
  return lines;
}

/// Runs `body`; an error in an empty throwaway cluster says why the tables
/// are missing: there is no demo data to fill it with, unlike `sum`.
int explain_throwaway(const database& db, const std::function<int()>& body) {
  try {
    return body();
  } catch (const usage_error& e) {
    if (!db.throwaway())
      throw;
    throw usage_error(std::string{e.what()}
                      + " (no --db and no PG* environment: this ran in a new, "
                        "empty throwaway cluster; give --db URI or set PGHOST "
                        "& co. to use your tables)");
  }
}

} // namespace

int cmd_run(int argc, char** argv) {
  arg_parser args{
    "flow-etl run",
    "Runs the aggregate jobs of a TOML job file, in the file's order, each "
    "as `flow-etl aggregate` would;\nwith `atomic = true` in the file every "
    "output table is written in one transaction after the last job.\n"
    "usage: "
      + std::string{usage_text}
      + "\nFILE comes first (after --check). Options given here override the "
        "file's [defaults]. The format: docs/etl.md, \"flow-etl run: job files\"."};
  declare_run_options(args);
  auto cl = split_file(argc, argv);
  bool help = false;
  for (auto* arg : cl.rest) {
    help = help || std::string_view{arg} == "--help";
    // Said plainly rather than as an unknown option: users know --resume
    // from `aggregate`. A job file's jobs take no checkpoints (they share
    // one snapshot, and with atomic = true one output transaction).
    if (std::string_view{arg} == "--resume")
      throw usage_error("run: --resume is not supported for job files (their "
                        "jobs take no checkpoints); run a long job with "
                        "flow-etl aggregate --output NAME to make it "
                        "resumable");
  }
  if (!cl.has_path && !help)
    throw usage_error(std::string{"run: no job file (usage: "} + usage_text
                      + "; the file comes first)");
  if (!args.parse(static_cast<int>(cl.rest.size()), cl.rest.data()))
    return exit_ok;
  if (cl.path.empty())
    throw usage_error("run: empty job file name");
  // Everything the file alone can tell is checked before a database opens.
  auto file = read_job_file(cl.path);
  auto run = run_options_of(args, file);
  auto jobs = resolve_jobs(file, schema_of(args, file));
  prepare_session_environment();
  auto db = open_database(args);
  auto keep = args.is_set("keep");
  return with_database(db, keep, [&] {
    return explain_throwaway(db, [&] {
      auto lines = check_jobs(db.conninfo, file, jobs);
      if (args.is_set("check")) {
        for (auto& line : lines)
          std::cout << line << '\n';
        std::cout << file.path << ": " << jobs.size()
                  << (jobs.size() == 1 ? " job" : " jobs") << " OK"
                  << std::endl;
        return static_cast<int>(exit_ok);
      }
      runtime rt;
      return run_aggregate_jobs(db.conninfo, jobs, run, file.atomic,
                                rt.system());
    });
  });
}

} // namespace flow::apps
