// flow-keyed: the tutorial's Example 2, exact. Every list comes from its own
// generator actor, all running at once; the manager holds running sums keyed
// by list size, so lists of equal size add to the same key.
//
//   from_random(list 0) ─┐
//   from_random(list 1) ─┼─batches─▶ reducers: sum_by_label ─▶ manager
//   from_random(list k) ─┘           (key = list size)        {size: sum}
//
// Compared with a sequential C++ loop over the same data. With --input it
// computes a grouped sum of `key value` lines instead.

#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>
#include <iostream>
#include <map>
#include <thread>

#include <caf/actor_system.hpp>

#include "common/app_options.hpp"
#include "common/cli.hpp"
#include "common/json.hpp"
#include "common/keyed_aggs.hpp"
#include "common/cluster.hpp"
#include "common/job_runner.hpp"
#include "common/test_hooks.hpp"
#include "flow/flow.hpp"

namespace {

using namespace flow;
using namespace flow::apps;

constexpr const char* prog = "flow-keyed";

/// The tutorial's three sets of list sizes.
const std::vector<std::vector<std::uint64_t>> presets = {
  {5, 50, 500, 1000, 10000, 10000000, 100000000},
  {10000000, 10000000, 10000000, 10000000, 10000000, 10000000, 10000000},
  {10000, 10000, 10000, 10000, 10000, 10000, 10000, 10000},
};

/// What the sequential reference computes per key.
struct reference_entry {
  aggregate agg;
  std::uint64_t lists = 0;
};

using reference = std::map<flow::key, reference_entry>;

struct set_outcome {
  std::string name;
  reference ref;
  job_result res;
  double sequential_s = 0;
  double flow_s = 0;
};

/// The sequential C++ loop: generates each list (as the tutorial does, inside
/// the timed region) and adds it to a map keyed by list size.
reference sequential_sums(const std::vector<std::uint64_t>& sizes,
                          std::uint64_t seed) {
  reference ref;
  for (std::size_t j = 0; j < sizes.size(); ++j) {
    uniform_ints gen{derive_seed(seed, j), 0, 10000};
    auto& entry = ref[static_cast<std::int64_t>(sizes[j])];
    ++entry.lists;
    for (std::uint64_t i = 0; i < sizes[j]; ++i)
      entry.agg.add(gen(i));
  }
  return ref;
}

/// True when the key's result matches the reference exactly.
bool key_ok(const key_result& k, const reference& ref, bool lists_known) {
  auto i = ref.find(k.key);
  if (i == ref.end())
    return false;
  auto& e = i->second;
  // An empty list adds a key with no values: its aggregate is empty too.
  return k.agg.sum == e.agg.sum && k.agg.count == e.agg.count
         && (k.agg.count == 0
             || (k.agg.min == e.agg.min && k.agg.max == e.agg.max))
         && (!lists_known || k.sources == e.lists);
}

/// Checks the whole result: every reference key present and equal, no extra
/// key, and the accounting balanced.
bool verify(const set_outcome& out, bool lists_known) {
  auto& res = out.res;
  std::uint64_t expected = 0;
  std::size_t nonempty = 0;
  for (auto& [k, e] : out.ref) {
    expected += e.agg.count;
    if (e.agg.count > 0)
      ++nonempty;
  }
  if (!res.final || !res.balanced() || res.dead_lettered != 0
      || res.emitted != expected
      || res.aggregated != expected || res.keys.size() != nonempty)
    return false;
  for (auto& k : res.keys)
    if (!key_ok(k, out.ref, lists_known))
      return false;
  return true;
}

/// Prints one set: a row per key, then the timings.
void print_set(const set_outcome& out, bool lists_known) {
  std::printf("%s\n", out.name.c_str());
  std::printf("%14s %6s %12s %16s %4s\n", "key", "lists", "elements", "sum",
              "ok");
  for (auto& [k, e] : out.ref) {
    auto found = out.res.find(k);
    bool ok = found ? key_ok(*found, out.ref, lists_known) : e.agg.count == 0;
    std::printf("%14s %6llu %12llu %16s %4s\n", to_string(k).c_str(),
                static_cast<unsigned long long>(lists_known ? e.lists : 0),
                static_cast<unsigned long long>(found ? found->agg.count : 0),
                to_string(found ? found->agg.sum : int128{0}).c_str(),
                ok ? "yes" : "NO");
  }
  std::printf("sequential C++ %.6f s, libflow %.6f s (%.2fx), %llu elements "
              "in %llu batches from %llu generators",
              out.sequential_s, out.flow_s,
              out.flow_s > 0 ? out.sequential_s / out.flow_s : 0.0,
              static_cast<unsigned long long>(out.res.aggregated),
              static_cast<unsigned long long>(out.res.batches),
              static_cast<unsigned long long>(out.res.sources));
  if (out.res.remote_batches > 0)
    std::printf(", %llu batches reduced by worker nodes",
                static_cast<unsigned long long>(out.res.remote_batches));
  std::printf("\n\n");
  std::fflush(stdout);
}

/// Prints one JSON object per key of the set.
void print_json(const set_outcome& out, bool lists_known, bool string_keys) {
  for (auto& [k, e] : out.ref) {
    auto found = out.res.find(k);
    bool ok = found ? key_ok(*found, out.ref, lists_known) : e.agg.count == 0;
    json_object obj;
    obj.add("set", out.name);
    if (string_keys)
      obj.add("key", to_string(k));
    else
      obj.add("key", k.as_int());
    obj.add("sum", found ? found->agg.sum : int128{0})
      .add("lists", lists_known ? e.lists : std::uint64_t{0})
      .add("elements", found ? found->agg.count : std::uint64_t{0})
      .add("reference_sum", e.agg.sum)
      .add("ok", ok);
    if (found && found->agg.count > 0)
      obj.add("min", found->agg.min).add("max", found->agg.max);
    obj.add("sequential_s", out.sequential_s)
      .add("libflow_s", out.flow_s)
      .add("batches", out.res.batches)
      .add("remote_batches", out.res.remote_batches);
    std::cout << obj.str() << '\n';
  }
  std::cout.flush();
}

/// Prints the keys of a job stopped by a signal, marked partial (no
/// reference is computed for it).
void print_partial(const set_outcome& out, bool json, bool string_keys) {
  if (!json)
    std::printf("%s (PARTIAL: stopped by a signal)\n%14s %12s %16s\n",
                out.name.c_str(), "key", "elements", "sum");
  for (auto& k : out.res.keys) {
    if (json) {
      json_object obj;
      obj.add("set", out.name);
      if (string_keys)
        obj.add("key", to_string(k.key));
      else
        obj.add("key", k.key.as_int());
      obj.add("sum", k.agg.sum)
        .add("elements", k.agg.count)
        .add("ok", false)
        .add("partial", true);
      std::cout << obj.str() << '\n';
    } else {
      std::printf("%14s %12llu %16s\n", to_string(k.key).c_str(),
                  static_cast<unsigned long long>(k.agg.count),
                  to_string(k.agg.sum).c_str());
    }
  }
  std::cout.flush();
  std::fflush(stdout);
}

/// The programs' job runner, for flow-keyed.
const job_runner runner{prog};

/// After a job: reports dead letters; after a signal, prints the partial
/// result and ends the process.
void after_job(const set_outcome& out, bool json, bool string_keys,
               dead_letter_file& dead) {
  report_dead_letters(prog, out.res, dead.path());
  if (job_runner::stopped(out.res)) {
    if (out.res.partial)
      print_partial(out, json, string_keys);
    runner.exit_stopped(out.res, dead);
  }
}

/// The test hooks around a reducer of integers.
reducer<std::int64_t> hooked(reducer<std::int64_t> fn) {
  return with_test_hooks<std::int64_t>(std::move(fn),
                                       [](std::int64_t x) { return x; });
}

/// How a run's jobs are distributed: the worker nodes (with --listen) and
/// --reducer spin (about 1 µs of work per element, for benchmarks).
struct run_context {
  cluster nodes;
  bool spin = false;
};

/// Runs one set of lists: libflow with one generator per list, then the
/// sequential loop, and verifies.
int run_set(caf::actor_system& sys, const std::string& name,
            const std::vector<std::uint64_t>& sizes, std::uint64_t seed,
            const options& opts, bool json, dead_letter_file& dead,
            const run_context& ctx) {
  auto& nodes = ctx.nodes;
  set_outcome out;
  out.name = name;
  std::uint64_t total = 0;
  pipeline<std::int64_t> p;
  for (std::size_t j = 0; j < sizes.size(); ++j) {
    p.add(from_random(sizes[j], derive_seed(seed, j)),
          static_cast<std::int64_t>(sizes[j]));
    total += sizes[j];
  }
  if (ctx.spin) {
    p.reduce(hooked(cluster::spin_sum_by_label())).with(opts);
    nodes.prepare(p, "spin_sum_by_label");
  } else {
    p.reduce(hooked(sum_by_label())).with(opts);
    nodes.prepare(p, "sum_by_label");
  }
  nodes.wait_for_workers(prog);
  stopwatch sw;
  auto started = p.start(sys);
  if (started)
    nodes.attach(*started);
  auto res = runner.wait(started, total, name);
  out.flow_s = sw.seconds();
  if (!res)
    return runner.job_error(res.error());
  out.res = std::move(*res);
  if (out.res.partial)
    after_job(out, json, false, dead);
  out.sequential_s = time_seconds(
    [&] { out.ref = sequential_sums(sizes, seed); });
  bool ok = verify(out, true);
  if (json)
    print_json(out, true, false);
  else
    print_set(out, true);
  after_job(out, json, false, dead);
  if (out.res.dead_lettered > 0)
    return exit_dead_letters;
  return ok ? exit_ok : exit_mismatch;
}

/// Grouped sum of `key value` lines; the reference is computed as the input
/// is read.
int run_input(caf::actor_system& sys, const std::string& path,
              const options& opts, bool json, dead_letter_file& dead,
              const cluster& nodes) {
  set_outcome out;
  out.name = path == "-" ? "stdin" : path;
  auto src = tap(keyed_from_text_file(path),
                 [&out](const slice<keyed_value>& xs) {
                   out.sequential_s += time_seconds([&] {
                     for (auto& x : xs)
                       out.ref[x.key].agg.add(x.value);
                   });
                 });
  pipeline<keyed_value> p;
  p.add(std::move(src))
    .reduce(with_test_hooks<keyed_value>(
      sum_by_key(), [](const keyed_value& x) { return x.value; }))
    .with(opts);
  nodes.prepare(p, "sum_by_key");
  nodes.wait_for_workers(prog);
  stopwatch sw;
  auto started = p.start(sys);
  if (started)
    nodes.attach(*started);
  auto res = runner.wait(started, 0, out.name);
  out.flow_s = sw.seconds();
  if (!res)
    return runner.job_error(res.error());
  out.res = std::move(*res);
  if (out.res.partial)
    after_job(out, json, true, dead);
  bool ok = verify(out, false);
  if (json)
    print_json(out, false, true);
  else
    print_set(out, false);
  after_job(out, json, true, dead);
  dead.close();
  if (out.res.dead_lettered > 0)
    return exit_dead_letters;
  return ok ? exit_ok : exit_mismatch;
}

// -- --agg and --values ----------------------------------------------------------

/// A job of chosen aggregates: the result and the sequential reference rows.
struct agg_outcome {
  std::string name;
  std::map<flow::key, aggregate> ref;
  std::map<flow::key, std::uint64_t> lists;
  job_result res;
  double sequential_s = 0;
  double flow_s = 0;
};

/// Verifies every key against the reference; sets `bad` to the keys that
/// differ (with what differs).
bool verify_aggs(const agg_outcome& out, const keyed_aggs& aggs,
                 std::map<flow::key, std::string>& bad) {
  auto& res = out.res;
  std::uint64_t expected = 0;
  std::size_t nonempty = 0;
  for (auto& [k, row] : out.ref) {
    auto n = aggs.count(row);
    expected += n;
    if (n > 0 || !row.empty())
      ++nonempty;
  }
  bool ok = res.final && res.balanced() && res.dead_lettered == 0
            && res.emitted == expected && res.aggregated == expected
            && res.keys.size() == nonempty;
  for (auto& [k, row] : out.ref) {
    auto found = res.find(k);
    std::string why;
    if (!found) {
      if (aggs.count(row) > 0 || !row.empty())
        bad[k] = "missing";
    } else if (!aggs.same(found->agg, row, why)) {
      bad[k] = why;
    }
  }
  for (auto& k : res.keys)
    if (out.ref.count(k.key) == 0)
      bad[k.key] = "not in the reference";
  return ok && bad.empty();
}

/// Prints a job of chosen aggregates: a JSON object or a table row per key.
void print_aggs(const agg_outcome& out, const keyed_aggs& aggs, bool json,
                bool string_keys, bool lists_known) {
  std::map<flow::key, std::string> bad;
  bool all_ok = verify_aggs(out, aggs, bad);
  bool legacy = aggs.values() == value_type::int64;
  static const aggregate empty_row;
  if (!json) {
    std::printf("%s\n%14s %12s", out.name.c_str(), "key", "elements");
    for (auto& n : aggs.list().names)
      std::printf(" %24s", n.c_str());
    std::printf(" %4s\n", "ok");
  }
  for (auto& [k, ref_row] : out.ref) {
    auto found = out.res.find(k);
    auto& row = found ? found->agg : empty_row;
    bool ok = all_ok || bad.count(k) == 0;
    if (json) {
      json_object obj;
      obj.add("set", out.name);
      if (string_keys)
        obj.add("key", to_string(k));
      else
        obj.add("key", k.as_int());
      if (legacy) {
        // The fields flow-keyed always printed keep their names and meaning.
        auto i = out.lists.find(k);
        obj.add("sum", row.sum)
          .add("lists", i == out.lists.end() ? std::uint64_t{0} : i->second)
          .add("elements", row.count)
          .add("reference_sum", ref_row.sum)
          .add("ok", ok);
        if (row.count > 0)
          obj.add("min", row.min).add("max", row.max);
        aggs.add_json(obj, row, true);
      } else {
        obj.add("values", name_of(aggs.values()));
        aggs.add_json(obj, row, false);
        obj.add("elements", aggs.count(row));
        if (aggs.list().has("sum"))
          obj.add_raw("reference_sum", aggs.json_value("sum", ref_row));
        obj.add("ok", ok);
      }
      if (!ok)
        obj.add("mismatch", bad[k]);
      obj.add("sequential_s", out.sequential_s)
        .add("libflow_s", out.flow_s)
        .add("batches", out.res.batches)
        .add("remote_batches", out.res.remote_batches);
      std::cout << obj.str() << '\n';
    } else {
      std::printf("%14s %12llu", to_string(k).c_str(),
                  static_cast<unsigned long long>(aggs.count(row)));
      for (auto& c : aggs.cells(row))
        std::printf(" %24s", c.c_str());
      std::printf(" %4s\n", ok ? "yes" : "NO");
    }
  }
  if (json) {
    std::cout.flush();
    return;
  }
  (void) lists_known;
  std::printf("sequential C++ %.6f s, libflow %.6f s, %llu elements in %llu "
              "batches",
              out.sequential_s, out.flow_s,
              static_cast<unsigned long long>(out.res.aggregated),
              static_cast<unsigned long long>(out.res.batches));
  if (out.res.remote_batches > 0)
    std::printf(", %llu batches reduced by worker nodes",
                static_cast<unsigned long long>(out.res.remote_batches));
  std::printf("\n\n");
  std::fflush(stdout);
}

/// Runs a job of chosen aggregates over a pipeline whose sources tap the
/// reference, then prints and verifies it.
template <class T>
int run_agg_job(caf::actor_system& sys, pipeline<T>& p, agg_outcome& out,
                const keyed_aggs& aggs, bool labelled, std::uint64_t total,
                bool json, bool string_keys, dead_letter_file& dead,
                const cluster& nodes,
                const std::function<void()>& reference) {
  p.aggregate_with(aggs.columns());
  auto name = aggs.reducer_name(labelled);
  nodes.prepare(p, name.c_str());
  nodes.wait_for_workers(prog);
  stopwatch sw;
  auto started = p.start(sys);
  if (started)
    nodes.attach(*started);
  auto res = runner.wait(started, total, out.name);
  out.flow_s = sw.seconds();
  if (!res)
    return runner.job_error(res.error());
  out.res = std::move(*res);
  report_dead_letters(prog, out.res, dead.path());
  if (job_runner::stopped(out.res))
    runner.exit_stopped(out.res, dead);
  if (reference)
    out.sequential_s += time_seconds(reference);
  std::map<flow::key, std::string> bad;
  bool ok = verify_aggs(out, aggs, bad);
  print_aggs(out, aggs, json, string_keys, labelled);
  if (out.res.dead_lettered > 0)
    return exit_dead_letters;
  return ok ? exit_ok : exit_mismatch;
}

/// One set of random lists with chosen aggregates (int values).
int run_agg_set(caf::actor_system& sys, const std::string& name,
                const std::vector<std::uint64_t>& sizes, std::uint64_t seed,
                const options& opts, bool json, dead_letter_file& dead,
                const run_context& ctx, const keyed_aggs& aggs) {
  agg_outcome out;
  out.name = name;
  std::uint64_t total = 0;
  pipeline<std::int64_t> p;
  for (std::size_t j = 0; j < sizes.size(); ++j) {
    p.add(from_random(sizes[j], derive_seed(seed, j)),
          static_cast<std::int64_t>(sizes[j]));
    total += sizes[j];
  }
  p.reduce(hooked(aggs.label_reducer())).with(opts);
  auto reference = [&] {
    for (std::size_t j = 0; j < sizes.size(); ++j) {
      uniform_ints gen{derive_seed(seed, j), 0, 10000};
      flow::key k{static_cast<std::int64_t>(sizes[j])};
      auto& row = out.ref[k];
      ++out.lists[k];
      for (std::uint64_t i = 0; i < sizes[j]; ++i)
        aggs.add(row, gen(i));
    }
  };
  return run_agg_job(sys, p, out, aggs, true, total, json, false, dead,
                     ctx.nodes, reference);
}

/// `key value` lines with chosen aggregates and value type; the reference is
/// computed as the input is read.
int run_agg_input(caf::actor_system& sys, const std::string& path,
                  const options& opts, bool json, dead_letter_file& dead,
                  const cluster& nodes, const keyed_aggs& aggs) {
  agg_outcome out;
  out.name = path == "-" ? "stdin" : path;
  auto tap_ref = [&out, &aggs](auto& xs) {
    out.sequential_s += time_seconds([&] {
      for (auto& x : xs)
        aggs.add(out.ref[x.key], x.value);
    });
  };
  int rc = exit_ok;
  switch (aggs.values()) {
    case value_type::int64: {
      pipeline<keyed_value> p;
      p.add(tap(keyed_from_text_file(path),
                [&](const slice<keyed_value>& xs) { tap_ref(xs); }))
        .reduce(with_test_hooks<keyed_value>(
          aggs.int_reducer(), [](const keyed_value& x) { return x.value; }))
        .with(opts);
      rc = run_agg_job(sys, p, out, aggs, false, 0, json, true, dead, nodes,
                       nullptr);
      break;
    }
    case value_type::f64: {
      pipeline<keyed<double>> p;
      p.add(tap(keyed_doubles_from_text_file(path),
                [&](const slice<keyed<double>>& xs) { tap_ref(xs); }))
        .reduce(with_test_hooks<keyed<double>>(
          aggs.double_reducer(),
          [](const keyed<double>& x) -> std::optional<std::int64_t> {
            if (x.value == std::trunc(x.value) && std::fabs(x.value) < 9e18)
              return static_cast<std::int64_t>(x.value);
            return std::nullopt;
          }))
        .describe([](const keyed<double>& x) {
          return to_string(x.key) + " " + shortest(x.value);
        })
        .with(opts);
      rc = run_agg_job(sys, p, out, aggs, false, 0, json, true, dead, nodes,
                       nullptr);
      break;
    }
    case value_type::decimal: {
      pipeline<keyed<decimal>> p;
      p.add(tap(keyed_decimals_from_text_file(path),
                [&](const slice<keyed<decimal>>& xs) { tap_ref(xs); }))
        .reduce(with_test_hooks<keyed<decimal>>(
          aggs.decimal_reducer(),
          [](const keyed<decimal>& x) -> std::optional<std::int64_t> {
            if (x.value.scale() == 0)
              return static_cast<std::int64_t>(x.value.unscaled());
            return std::nullopt;
          }))
        .describe([](const keyed<decimal>& x) {
          return to_string(x.key) + " " + to_string(x.value);
        })
        .with(opts);
      rc = run_agg_job(sys, p, out, aggs, false, 0, json, true, dead, nodes,
                       nullptr);
      break;
    }
  }
  dead.close();
  return rc;
}

/// The sets of lists to run: --sizes, or the --preset's.
std::vector<std::pair<std::string, std::vector<std::uint64_t>>>
read_sets(const arg_parser& args) {
  std::vector<std::pair<std::string, std::vector<std::uint64_t>>> sets;
  if (args.given("sizes")) {
    sets.emplace_back("sizes", parse_size_list("--sizes", args.get("sizes")));
    return sets;
  }
  if (args.given("input"))
    return sets;
  auto& preset = args.get("preset");
  if (preset == "all") {
    for (std::size_t i = 0; i < presets.size(); ++i)
      sets.emplace_back("set " + std::to_string(i + 1), presets[i]);
  } else if (preset == "1" || preset == "2" || preset == "3") {
    auto i = static_cast<std::size_t>(preset[0] - '1');
    sets.emplace_back("set " + preset, presets[i]);
  } else {
    throw usage_error("--preset: " + quote_token(preset)
                      + " is not 1, 2, 3 or all");
  }
  return sets;
}

void declare_options(arg_parser& args) {
  args.value("preset", "SET",
             "the tutorial's set 1, 2 or 3, or 'all' (1: "
             "5,50,...,10^8; 2: 7 x 10^7; 3: 8 x 10^4)",
             "all");
  args.value("sizes", "LIST", "comma-separated list sizes (one set)");
  args.value("seed", "N", "seed of the random data", "42");
  args.value("input", "PATH",
             "grouped sum of 'key value' lines from PATH ('-' reads stdin)");
  args.flag("json", "print one JSON object per key instead of a table");
  args.value("values", "TYPE",
             "with --input: read values as int (int64), double (decimal or "
             "exponent notation, inf, -inf, nan; sums exact and correctly "
             "rounded) or decimal (exact, up to 38 digits)",
             "int");
  args.value("agg", "LIST",
             "the aggregates per key, comma-separated: sum, count, min, max, "
             "mean, stddev, count_distinct, approx_distinct, p50, p90, p95, "
             "p99",
             default_aggs());
  declare_pipeline_options(args);
  declare_dead_letter_option(args);
  if (cluster::available())
    args.value("reducer", "NAME",
               "sum, or spin (about 1 us of CPU work per element before "
               "summing: a stand-in for heavy reducers in benchmarks)",
               "sum");
  cluster::declare_options(args);
}

/// Reads the network options and --reducer.
void read_context(arg_parser& args, run_context& ctx) {
  ctx.nodes.read_options(args, prog);
  if (!cluster::available())
    return;
  if (args.get("reducer") == "spin")
    ctx.spin = true;
  else if (args.get("reducer") != "sum")
    throw usage_error("--reducer: " + quote_token(args.get("reducer"))
                      + " is not sum or spin");
}

int run(int argc, char** argv) {
  arg_parser args{prog,
                  "The tutorial's Example 2, exact: many lists of seeded "
                  "random integers in 0..10000 summed at once, one generator "
                  "per list, into running sums keyed by list size; compared "
                  "with a sequential C++ loop. Exit 0 only when every key is "
                  "verified; 1 when one is not; 2 on bad usage or input; 3 "
                  "when the reducer failed on elements (dead letters); 130 "
                  "or 143 after SIGINT or SIGTERM (the keys printed are then "
                  "marked partial)."};
  declare_options(args);
  if (!args.parse(argc, argv))
    return exit_ok;
  run_context ctx;
  read_context(args, ctx);
  auto opts = read_pipeline_options(args);
  auto seed = args.get_uint("seed");
  bool json = args.is_set("json");
  dead_letter_file dead{args.given("dead-letter") ? args.get("dead-letter")
                                                  : std::string{}};
  dead.attach(opts);
  int modes = args.given("input") + args.given("sizes") + args.given("preset");
  if (modes > 1)
    throw usage_error("--preset, --sizes and --input exclude each other");
  if (args.given("input") && args.get("input").empty())
    throw usage_error("--input: empty path (use '-' for stdin)");
  auto values = read_value_type(args.get("values"));
  auto agg_names = parse_agg_list(args.get("agg"));
  if (values != value_type::int64 && !args.given("input"))
    throw usage_error("--values " + args.get("values") + " needs --input");
  // Without --agg and --values, flow-keyed runs exactly as it always did.
  std::optional<keyed_aggs> aggs;
  if (args.given("agg") || values != value_type::int64) {
    if (ctx.spin)
      throw usage_error("--reducer spin and --agg exclude each other");
    aggs.emplace(values, agg_names);
  }
  auto sets = read_sets(args);
  auto& nodes = ctx.nodes;
  runtime rt{[&](caf::actor_system_config& cfg) { nodes.configure(cfg); }};
  auto& sys = rt.system();
  nodes.listen(sys, prog);
  if (opts.reducers == 0)
    opts.reducers = flow::default_reducers();
  auto body = [&] {
    if (args.given("input") && aggs)
      return run_agg_input(sys, args.get("input"), opts, json, dead, nodes,
                           *aggs);
    if (args.given("input"))
      return run_input(sys, args.get("input"), opts, json, dead, nodes);
    int rc = exit_ok;
    for (auto& [name, sizes] : sets) {
      auto set_rc = aggs ? run_agg_set(sys, name, sizes, seed, opts, json,
                                       dead, ctx, *aggs)
                         : run_set(sys, name, sizes, seed, opts, json, dead,
                                   ctx);
      if (set_rc == exit_usage)
        return set_rc;
      rc = std::max(rc, set_rc);
    }
    dead.close();
    return rc;
  };
  if (!nodes.listening())
    return body();
  // An error with peers connected (too few worker nodes, say) must leave
  // through leave() too: unwinding would wait for CAF's middleman.
  try {
    return nodes.leave(body());
  } catch (const std::exception& e) {
    return nodes.leave(report_usage_error(prog, e.what()));
  }
}

} // namespace

int main(int argc, char** argv) {
  return guarded_main(prog, [&] { return run(argc, argv); });
}
