#include "etl/sum.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include <caf/actor_system.hpp>

#include "common/app_options.hpp"
#include "common/cli.hpp"
#include "common/json.hpp"
#include "common/cluster.hpp"
#include "common/job_runner.hpp"
#include "etl/aggregate.hpp"
#include "etl/command.hpp"
#include "etl/init.hpp"
#include "flow/flow.hpp"
#include "flow/pg/pg.hpp"

namespace flow::apps {

namespace {

// -- results ----------------------------------------------------------------

/// Per list size: the aggregate and the number of lists.
struct size_total {
  aggregate agg;
  std::uint64_t lists = 0;
};

using totals = std::map<std::int64_t, size_total>;

/// The preset's aggregates, in this order after the group columns
/// (list_size, list_id): count(*), sum(value), count(value), min(value),
/// max(value).
constexpr const char* sum_aggs
  = "count(*), sum(value), count(value), min(value), max(value)";

/// The lists folded per list size, and the rows whose value is NULL (which
/// count(*) counts and count(value) does not): sum reports them rejected.
struct folded {
  totals by_size;
  std::uint64_t null_values = 0;
  /// Rows whose list_size or list_id is NULL.
  std::uint64_t null_keys = 0;
};

std::int64_t int_field(const std::optional<std::string>& x) {
  auto v = x ? pg::parse_int64(*x) : std::nullopt;
  if (!v)
    throw usage_error("sum: unexpected value in a group: "
                      + x.value_or("NULL"));
  return *v;
}

/// Folds the groups (list_size, list_id) per list size; a list counts once
/// it has a value that is not NULL (as count(DISTINCT list_id) FILTER
/// (WHERE value IS NOT NULL) does on the server).
folded fold_lists(const agg_preset_result& res) {
  folded result;
  for (auto& g : res.groups) {
    auto rows = static_cast<std::uint64_t>(int_field(g[2]));
    auto values = static_cast<std::uint64_t>(int_field(g[4]));
    if (!g[0] || !g[1]) {
      result.null_keys += rows;
      continue;
    }
    result.null_values += rows - values;
    if (values == 0)
      continue;
    aggregate a;
    auto sum = pg::parse_int128(g[3].value_or(""));
    if (!sum)
      throw usage_error("sum: unexpected sum in a group: "
                        + g[3].value_or("NULL"));
    a.sum = *sum;
    a.count = values;
    a.min = int_field(g[5]);
    a.max = int_field(g[6]);
    auto& t = result.by_size[int_field(g[0])];
    if (!t.agg.merge(a))
      throw usage_error("sum: overflow folding lists");
    ++t.lists;
  }
  return result;
}

/// The server's own answer, in the same snapshot.
struct reference {
  totals by_size;
  std::uint64_t null_values = 0;
  double seconds = 0;
};

reference server_reference(const agg_preset_result& res,
                           const pg::table_name& table) {
  reference ref;
  stopwatch sw;
  auto rows = res.query(
    "SELECT list_size, sum(value), count(value), "
    "count(DISTINCT list_id) FILTER (WHERE value IS NOT NULL), min(value), "
    "max(value) FROM "
    + table.quoted()
    + " WHERE list_size IS NOT NULL AND list_id IS NOT NULL "
      "GROUP BY list_size HAVING count(value) > 0");
  if (!rows)
    fail(rows.error());
  ref.seconds = sw.seconds();
  for (auto& r : *rows) {
    auto key = pg::parse_int64(*r[0]);
    auto sum = pg::parse_int128(*r[1]);
    if (!key || !sum)
      throw usage_error("sum: unexpected reference row");
    auto& t = ref.by_size[*key];
    t.agg.sum = *sum;
    t.agg.count = std::stoull(*r[2]);
    t.lists = std::stoull(*r[3]);
    t.agg.min = std::stoll(*r[4]);
    t.agg.max = std::stoll(*r[5]);
  }
  auto nulls = res.query("SELECT count(*) FROM " + table.quoted()
                          + " WHERE value IS NULL");
  if (!nulls)
    fail(nulls.error());
  ref.null_values = std::stoull(*(*nulls)[0][0]);
  return ref;
}

bool same(const size_total& x, const size_total& y) {
  return x.agg.sum == y.agg.sum && x.agg.count == y.agg.count
         && x.agg.min == y.agg.min && x.agg.max == y.agg.max
         && x.lists == y.lists;
}

// -- the job ----------------------------------------------------------------

struct sum_config {
  pg::table_name table;
  std::string by;
  std::size_t partitions = 0;
  bool pushdown = false;
  bool json = false;
  std::string output;
  options opts;
  /// With --listen: worker nodes read and reduce the partitions.
  const cluster* nodes = nullptr;
};

/// The programs' job runner, for flow-etl sum.
const job_runner runner{etl_prog};

/// True with --listen: partitions are then the work handed to nodes.
bool distributed_sum(const sum_config& cfg) {
  return cfg.nodes != nullptr && cfg.nodes->listening();
}

/// The partitions of the read: --partitions, or with 0 one per core, but 1
/// pushed down and for a table too large for the server's shared buffers.
std::size_t sum_partitions(const std::string& conninfo,
                           const sum_config& cfg) {
  if (cfg.partitions != 0)
    return cfg.partitions;
  auto hw = flow::default_reducers();
  if (cfg.pushdown)
    return 1;
  if (cfg.by != "ctid" || distributed_sum(cfg))
    return hw;
  auto n = pg::ctid_partitions(conninfo, cfg.table, hw);
  if (!n)
    fail(n.error());
  return *n;
}

/// The preset: `aggregate --table T --group-by list_size,list_id --agg
/// '<sum_aggs>'` (pushed down or over worker nodes as asked), whose
/// groups sum folds per list size.
agg_job sum_job(const sum_config& cfg) {
  agg_job job;
  job.name = "sum";
  job.table = cfg.table;
  job.group_by = {"list_size", "list_id"};
  job.aggs = parse_agg_list(sum_aggs, "sum");
  return job;
}

/// sum reads three integer columns: anything else is refused before a row
/// is read (aggregate reads every type).
void check_sum_columns(const std::vector<column_info>& cols,
                       const pg::table_name& table) {
  for (auto* name : {"list_id", "list_size", "value"}) {
    auto c = std::find_if(cols.begin(), cols.end(),
                          [&](auto& x) { return x.name == name; });
    if (c == cols.end())
      throw usage_error("sum: table " + table.display() + " has no column \""
                        + name + "\" (sum reads list_id, list_size and "
                                  "value)");
    if (c->cls != col_class::integer)
      throw usage_error("sum: column \"" + c->name + "\" of "
                        + table.display() + " is " + c->type
                        + "; sum reads integer (smallint, integer or bigint) "
                          "list_id, list_size and value; flow-etl aggregate "
                          "reads other types");
  }
}

// -- printing ---------------------------------------------------------------

/// Stopped by a signal: prints what was merged, marked partial; nothing is
/// verified and no output table is written.
int print_partial(const agg_preset_result& res, const sum_config& cfg) {
  for (auto& [k, t] : fold_lists(res).by_size) {
    if (cfg.json) {
      json_object obj;
      obj.add("key", k)
        .add("sum", t.agg.sum)
        .add("lists", t.lists)
        .add("elements", t.agg.count)
        .add("ok", false)
        .add("partial", true);
      std::cout << obj.str() << '\n';
    } else {
      std::printf("%12lld %12llu %16s PARTIAL\n", static_cast<long long>(k),
                  static_cast<unsigned long long>(t.agg.count),
                  to_string(t.agg.sum).c_str());
    }
  }
  std::cout.flush();
  std::fflush(stdout);
  return runner.stopped_exit_code(*res.res);
}

/// A finished run, as the printing sees it.
struct sum_outcome {
  const char* mode = "rows";
  std::size_t partitions = 0;
  double flow_s = 0;
  /// The rows' own accounting: this job's, or, distributed, the tasks'.
  job_result rows_res;
  bool dist = false;
  std::uint64_t node_tasks = 0;
  std::uint64_t local_tasks = 0;
};

/// One key's line: the job's total `x` against the server's `r` (null when
/// the server has no such key).
void print_key(std::int64_t k, const size_total& x, const size_total* r,
               bool ok, const sum_outcome& out, const reference& ref,
               bool json) {
  if (!json) {
    std::printf("%12lld %6llu %12llu %16s %4s\n", static_cast<long long>(k),
                static_cast<unsigned long long>(x.lists),
                static_cast<unsigned long long>(x.agg.count),
                to_string(x.agg.sum).c_str(), ok ? "yes" : "NO");
    return;
  }
  json_object obj;
  obj.add("key", k)
    .add("sum", x.agg.sum)
    .add("lists", x.lists)
    .add("elements", x.agg.count)
    .add("reference_sum", r != nullptr ? r->agg.sum : int128{0})
    .add("reference_lists", r != nullptr ? r->lists : std::uint64_t{0})
    .add("ok", ok);
  if (x.agg.count > 0)
    obj.add("min", x.agg.min).add("max", x.agg.max);
  obj.add("mode", out.mode)
    .add("partitions", static_cast<std::uint64_t>(out.partitions))
    .add("libflow_s", out.flow_s)
    .add("server_s", ref.seconds);
  if (out.dist)
    obj.add("rows_read", out.rows_res.emitted)
      .add("rows_rejected", out.rows_res.rejected)
      .add("node_tasks", out.node_tasks)
      .add("local_tasks", out.local_tasks)
      .add("speculated", out.rows_res.speculated)
      .add("speculation_won", out.rows_res.speculation_won);
  std::cout << obj.str() << '\n';
}

/// Prints every key of either side; returns true when all are equal.
bool print_keys(const totals& mine, const reference& ref,
                const sum_outcome& out, bool json) {
  std::set<std::int64_t> keys;
  for (auto& [k, t] : mine)
    keys.insert(k);
  for (auto& [k, t] : ref.by_size)
    keys.insert(k);
  if (!json)
    std::printf("%12s %6s %12s %16s %4s\n", "key", "lists", "elements", "sum",
                "ok");
  bool all_ok = true;
  for (auto k : keys) {
    auto m = mine.find(k);
    auto r = ref.by_size.find(k);
    bool ok = m != mine.end() && r != ref.by_size.end()
              && same(m->second, r->second);
    all_ok = all_ok && ok;
    size_total empty;
    print_key(k, m != mine.end() ? m->second : empty,
              r != ref.by_size.end() ? &r->second : nullptr, ok, out, ref,
              json);
  }
  return all_ok;
}

/// The table's last lines: the run and whether it verified.
void print_summary(const totals& mine, const reference& ref,
                   const sum_outcome& out, const sum_config& cfg,
                   bool all_ok) {
  std::uint64_t rows = 0;
  for (auto& [k, t] : mine)
    rows += t.agg.count;
  std::printf("%s: %llu rows of %s in %zu partitions (%s, by %s), "
              "libflow %.3f s, server GROUP BY %.3f s, %s\n",
              out.mode, static_cast<unsigned long long>(rows),
              cfg.table.display().c_str(), out.partitions, out.mode,
              cfg.by.c_str(), out.flow_s, ref.seconds,
              all_ok ? "verified" : "MISMATCH");
  if (out.dist)
    std::printf("distributed: %llu rows read, %llu NULL values rejected; "
                "%llu partitions read by worker nodes, %llu here\n",
                static_cast<unsigned long long>(out.rows_res.emitted),
                static_cast<unsigned long long>(out.rows_res.rejected),
                static_cast<unsigned long long>(out.node_tasks),
                static_cast<unsigned long long>(out.local_tasks));
}

/// --output: the verified sums, replacing the table atomically.
void write_output(const std::string& conninfo, const sum_config& cfg,
                  const totals& mine) {
  job_result out;
  out.final = true;
  for (auto& [k, t] : mine)
    out.keys.push_back({flow::key{k}, t.agg, t.lists});
  out.key_count = out.keys.size();
  if (auto err = pg::write_aggregates(conninfo,
                                      {cfg.table.schema, cfg.output}, out))
    fail(err);
}

/// Verifies a finished job against the server (in the job's snapshot) and
/// prints it; `mine` gets the sums. Returns the exit code.
int verify_sum(const sum_config& cfg, const agg_preset_result& res,
               totals& mine) {
  auto& job_res = *res.res;
  runner.dead_letters(job_res, "");
  auto fold = fold_lists(res);
  if (fold.null_keys > 0)
    throw usage_error("sum: " + std::to_string(fold.null_keys)
                      + " rows of " + cfg.table.display()
                      + " have a NULL list_size or list_id; sum needs both "
                        "(flow-etl aggregate groups them)");
  mine = std::move(fold.by_size);
  auto ref = server_reference(res, cfg.table);
  sum_outcome out;
  out.partitions = res.partitions;
  out.flow_s = res.seconds;
  out.dist = res.distributed;
  out.node_tasks = res.node_tasks;
  out.local_tasks = res.local_tasks;
  // The rows' accounting as sum reports it: a row whose value is NULL is
  // read and counted by count(*), but not summed; sum calls it rejected.
  auto& rows_res = out.rows_res;
  rows_res = *res.rows;
  rows_res.rejected += fold.null_values;
  rows_res.aggregated -= std::min(rows_res.aggregated, fold.null_values);
  // Verify: every key equal, no key missing or extra, every row accounted.
  bool all_ok = job_res.final && job_res.balanced() && res.rows->balanced()
                && rows_res.balanced() && mine.size() == ref.by_size.size()
                && (cfg.pushdown || rows_res.rejected == ref.null_values);
  out.mode = out.dist ? "distributed" : cfg.pushdown ? "push-down" : "rows";
  all_ok = print_keys(mine, ref, out, cfg.json) && all_ok;
  if (!cfg.json)
    print_summary(mine, ref, out, cfg, all_ok);
  std::fflush(stdout);
  if (!all_ok) {
    std::cerr << etl_prog
              << ": sum: the result does not match the server's GROUP BY"
              << std::endl;
    return job_res.dead_lettered > 0 ? exit_dead_letters : exit_mismatch;
  }
  return exit_ok;
}

int run_sum(const std::string& conninfo, const sum_config& cfg,
            caf::actor_system& sys) {
  agg_run_options run;
  run.partitions = sum_partitions(conninfo, cfg);
  run.by = cfg.by;
  run.pushdown = cfg.pushdown;
  run.opts = cfg.opts;
  // sum keeps --batch's rows (16384 by default) in every mode, as before the
  // batches of wide rows were sized by width: its widest rows, pushed down,
  // have seven cells, one past those a row keeps inside itself.
  run.batch_rows = cfg.opts.batch_size;
  run.nodes = cfg.nodes;
  totals mine;
  auto rc = run_aggregate_preset(
    conninfo, sum_job(cfg), run, sys,
    [&](const std::vector<column_info>& cols) {
      check_sum_columns(cols, cfg.table);
    },
    [&](const agg_preset_result& res) {
      if (res.stopped)
        return print_partial(res, cfg);
      return verify_sum(cfg, res, mine);
    });
  // Written once the job's snapshot is released: the verified sums only.
  if (rc == exit_ok && !cfg.output.empty())
    write_output(conninfo, cfg, mine);
  return rc;
}

// -- the command ------------------------------------------------------------

void declare_sum_options(arg_parser& args) {
  declare_common(args);
  args.value("partitions", "P",
             "partition generators (ranges of --by, balanced by quantiles); "
             "0 = one per hardware thread, but 1 for a table larger than a "
             "quarter of the server's shared buffers (read by block ranges "
             "it would churn them) and 1 with --pushdown (the server runs "
             "it with its own parallel workers)",
             "0");
  args.value("by", "COLUMN",
             "integer column whose ranges make the partitions, or ctid: equal "
             "shares of the table's blocks, each partition reading only its "
             "own",
             "ctid");
  args.flag("pushdown",
            "let the server aggregate each partition (GROUP BY in the "
            "snapshot) and merge the partial aggregates");
  args.value("output", "NAME",
             "also write the verified sums to table NAME (replaced "
             "atomically)");
  args.flag("json", "print one JSON object per key instead of a table");
  declare_init_options(args);
  declare_pipeline_options(args, "16384");
  declare_combine_option(args, "8");
  cluster::declare_options(args);
}

sum_config read_sum_options(const arg_parser& args) {
  sum_config cfg;
  cfg.opts = read_pipeline_options(args);
  read_combine_option(args, cfg.opts);
  cfg.table = table_of(args, args.get("table"));
  cfg.by = args.get("by");
  try {
    pg::check_identifier(cfg.by, "--by");
  } catch (const input_error& e) {
    throw usage_error(e.what());
  }
  // 0 is decided in run_sum, once the table is there. Pushed down, a
  // partition is one query the server may run with its own parallel
  // workers, which share the table out block by block as they go; fixed
  // ranges on top of them only add processes (measured: 1 partition 1.3 s,
  // 2 partitions 2.0 s over 10^7 rows on 2 cores).
  cfg.partitions = args.get_uint("partitions", 0, 1024);
  cfg.pushdown = args.is_set("pushdown");
  cfg.json = args.is_set("json");
  return cfg;
}

} // namespace

int cmd_sum(int argc, char** argv) {
  arg_parser args{
    "flow-etl sum",
    "Keyed sums per list_size over the elements table (sum, elements, number "
    "of lists, min, max), read by parallel partitions that share one "
    "snapshot,\nverified against the server's own GROUP BY in that snapshot. "
    "A preset of aggregate: --group-by list_size,list_id with count(*), "
    "sum,\ncount, min and max of value, folded per list_size. "
    "With a throwaway cluster (no --db, no PG* environment) it runs init "
    "first,\nwith --rows/--ads/--seed."};
  declare_sum_options(args);
  if (!args.parse(argc, argv))
    return exit_ok;
  auto cfg = read_sum_options(args);
  cluster nodes;
  nodes.read_options(args, etl_prog);
  if (nodes.listening() && cfg.pushdown)
    throw usage_error("--pushdown and --listen exclude each other (with "
                      "--pushdown the server aggregates every partition)");
  if (args.given("output")) {
    cfg.output = args.get("output");
    table_of(args, cfg.output);
  }
  if (cfg.opts.reducers == 0)
    cfg.opts.reducers = flow::default_reducers();
  auto init = read_init_options(args);
  auto db = open_database(args);
  auto keep = args.is_set("keep");
  fill_throwaway(db, keep, init, "sum");
  if (nodes.listening())
    run_listening(db, keep, nodes, [&](caf::actor_system& sys) {
      cfg.nodes = &nodes;
      return run_sum(db.conninfo, cfg, sys);
    });
  return with_database(db, keep, [&] {
    runtime rt;
    return run_sum(db.conninfo, cfg, rt.system());
  });
}

} // namespace flow::apps
