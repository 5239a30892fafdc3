// flow-sum: the tutorial's Example 1, exact. For each size it sums the same
// seeded random integers with a plain loop, std::accumulate and a libflow
// pipeline, checks that all three agree and prints a table (or JSON lines).
//
//   from_shared(data) ──batches (views)──▶ reducers: sum_by_label ──▶ manager
//
// With --input it streams a file or stdin instead; the reference sums are
// computed as the input is read, so memory stays bounded.

#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <numeric>
#include <thread>

#include <caf/actor_system.hpp>

#include "common/app_options.hpp"
#include "common/cli.hpp"
#include "common/json.hpp"
#include "common/keyed_aggs.hpp"
#include "common/job_runner.hpp"
#include "common/test_hooks.hpp"
#include "common/watch.hpp"
#include "flow/flow.hpp"

namespace {

using namespace flow;
using namespace flow::apps;

constexpr const char* prog = "flow-sum";

struct row {
  std::uint64_t size = 0;
  int128 loop_sum = 0;
  int128 accumulate_sum = 0;
  int128 flow_sum = 0;
  double loop_s = 0;
  double accumulate_s = 0;
  double flow_s = 0;
  job_result res;
  bool ok = false;
};

/// The tutorial's data: `n` values of randint(0, 10000), element i a pure
/// function of (seed, i). Filled on all cores; not part of any timing.
std::vector<std::int64_t> make_data(std::uint64_t n, std::uint64_t seed) {
  std::vector<std::int64_t> xs(n);
  uniform_ints gen{seed, 0, 10000};
  auto threads = flow::default_reducers();
  if (n < 1'000'000)
    threads = 1;
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    auto lo = n * t / threads;
    auto hi = n * (t + 1) / threads;
    pool.emplace_back([&, lo, hi] { gen.fill(xs.data() + lo, lo, hi - lo); });
  }
  for (auto& th : pool)
    th.join();
  return xs;
}

/// Checks the pipeline's result against the references and its accounting.
bool verify(row& r, std::uint64_t expected_elements) {
  auto& res = r.res;
  r.flow_sum = res.keys.empty() ? 0 : res.keys.front().agg.sum;
  bool keys_ok = expected_elements == 0
                   ? res.keys.empty()
                   : res.keys.size() == 1
                       && res.keys.front().agg.count == expected_elements;
  return res.final && res.balanced() && res.rejected == 0
         && res.dead_lettered == 0
         && res.emitted == expected_elements
         && res.aggregated == expected_elements && keys_ok
         && r.flow_sum == r.loop_sum && r.flow_sum == r.accumulate_sum;
}

std::string json_line(const row& r, std::uint64_t seed, const options& opts,
                      bool input_mode) {
  json_object obj;
  obj.add("size", r.size)
    .add("elements", r.res.emitted)
    .add("sum", r.flow_sum)
    .add("reference_sum", r.loop_sum)
    .add("ok", r.ok)
    .add("loop_s", r.loop_s)
    .add("accumulate_s", r.accumulate_s)
    .add("libflow_s", r.flow_s);
  add_counts(obj, r.res);
  obj.add("partial", r.res.partial)
    .add("abandoned", r.res.abandoned)
    .add("batches", r.res.batches)
    .add("workers", static_cast<std::uint64_t>(opts.reducers))
    .add("batch_size", static_cast<std::uint64_t>(opts.batch_size));
  if (!input_mode)
    obj.add("seed", seed);
  return obj.str();
}

void print_header() {
  std::printf("%12s %16s %12s %12s %12s %8s %4s\n", "size", "sum", "loop s",
              "accumulate s", "libflow s", "batches", "ok");
}

void print_row(const row& r) {
  std::printf("%12llu %16s %12.6f %12.6f %12.6f %8llu %4s\n",
              static_cast<unsigned long long>(r.size),
              to_string(r.flow_sum).c_str(), r.loop_s, r.accumulate_s,
              r.flow_s, static_cast<unsigned long long>(r.res.batches),
              r.res.partial ? "PART" : r.ok ? "yes" : "NO");
  std::fflush(stdout);
}

/// The programs' job runner, for flow-sum.
const job_runner runner{prog};

/// The test hooks around the reducer.
reducer<std::int64_t> hooked(reducer<std::int64_t> fn) {
  return with_test_hooks<std::int64_t>(std::move(fn),
                                       [](std::int64_t x) { return x; });
}

/// After a job's result is printed: reports dead letters and, when a signal
/// stopped the job, that the result was partial, then ends the process.
/// Returns the exit code for the dead letters otherwise.
int after_job(const row& r, dead_letter_file& dead) {
  auto rc = runner.dead_letters(r.res, dead.path());
  if (job_runner::stopped(r.res))
    runner.exit_stopped(r.res, dead);
  return rc;
}

/// The same seeded data summed by a plain loop and std::accumulate (the
/// references) and timed.
std::shared_ptr<const std::vector<std::int64_t>>
reference_sums(row& r, std::uint64_t n, std::uint64_t seed) {
  auto data = make_data(n, seed);
  r.loop_s = time_seconds([&] {
    int128 sum = 0;
    for (auto x : data)
      sum += x;
    r.loop_sum = sum;
  });
  r.accumulate_s = time_seconds([&] {
    r.accumulate_sum = std::accumulate(data.begin(), data.end(), int128{0});
  });
  return std::make_shared<const std::vector<std::int64_t>>(std::move(data));
}

int run_sizes(caf::actor_system& sys, const std::vector<std::uint64_t>& sizes,
              std::uint64_t seed, const options& opts, bool json,
              dead_letter_file& dead) {
  if (!json)
    print_header();
  bool all_ok = true;
  int dead_rc = exit_ok;
  for (auto n : sizes) {
    row r;
    r.size = n;
    auto shared = reference_sums(r, n, seed);
    auto what = "size " + std::to_string(n);
    name_log_job(what);
    stopwatch sw;
    auto started = pipeline<std::int64_t>{}
                     .add(from_shared(shared), static_cast<std::int64_t>(n))
                     .reduce(hooked(sum_by_label()))
                     .with(opts)
                     .start(sys);
    auto res = runner.wait(started, n, what);
    r.flow_s = sw.seconds();
    if (!res)
      return runner.job_error(res.error());
    r.res = std::move(*res);
    r.ok = verify(r, n);
    all_ok = all_ok && r.ok;
    if (json)
      std::cout << json_line(r, seed, opts, false) << std::endl;
    else
      print_row(r);
    dead_rc = std::max(dead_rc, after_job(r, dead));
  }
  dead.close();
  if (dead_rc != exit_ok)
    return dead_rc;
  return all_ok ? exit_ok : exit_mismatch;
}

int run_input(caf::actor_system& sys, const std::string& path,
              const options& opts, bool json, dead_letter_file& dead) {
  row r;
  // The reference sums are computed as the input is read, chunk by chunk, so
  // the input never has to be held in memory.
  auto src = tap(from_text_file(path), [&r](const slice<std::int64_t>& xs) {
    r.loop_s += time_seconds([&] {
      int128 sum = 0;
      for (auto x : xs)
        sum += x;
      r.loop_sum += sum;
    });
    r.accumulate_s += time_seconds([&] {
      r.accumulate_sum = std::accumulate(xs.begin(), xs.end(),
                                         r.accumulate_sum);
    });
    r.size += xs.size();
  });
  name_log_job(path == "-" ? "stdin" : path);
  stopwatch sw;
  auto started = pipeline<std::int64_t>{}
                   .add(std::move(src), "input")
                   .reduce(hooked(sum_by_label()))
                   .with(opts)
                   .start(sys);
  auto res = runner.wait(started, 0, path == "-" ? "stdin" : path);
  r.flow_s = sw.seconds();
  if (!res)
    return runner.job_error(res.error());
  r.res = std::move(*res);
  r.ok = verify(r, r.size);
  if (json) {
    std::cout << json_line(r, 0, opts, true) << std::endl;
  } else {
    print_header();
    print_row(r);
  }
  auto dead_rc = after_job(r, dead);
  dead.close();
  if (dead_rc != exit_ok)
    return dead_rc;
  return r.ok ? exit_ok : exit_mismatch;
}


/// The outcome of summing doubles: libflow's exact sum next to the exact
/// sequential reference and a plain loop (which depends on the order).
struct double_row {
  std::uint64_t size = 0;
  exact_fsum reference;
  double naive = 0;
  double flow_sum = 0;
  double loop_s = 0;
  double flow_s = 0;
  job_result res;
  bool ok = false;
};

/// Same bits: -0.0 differs from +0.0, and a NaN equals a NaN.
bool same_bits(double x, double y) {
  return std::memcmp(&x, &y, sizeof(double)) == 0;
}

/// Sums the doubles of a file or stdin. The reference is an exact sequential
/// sum rounded once, so libflow's result must have the same bits whatever
/// the reducers and the batch size.
int run_input_doubles(caf::actor_system& sys, const std::string& path,
                      const options& opts, bool json, dead_letter_file& dead) {
  double_row r;
  auto src = tap(doubles_from_text_file(path), [&r](const slice<double>& xs) {
    r.loop_s += time_seconds([&] {
      // Neal's per-element path, one value at a time: the sequential
      // reference, independent of the batch path the reducers take.
      for (auto x : xs)
        r.reference.add(x);
    });
    for (auto x : xs)
      r.naive += x;
    r.size += xs.size();
  });
  aggregators aggs;
  auto sum = aggs.add("sum", exact_fsum{});
  stopwatch sw;
  auto started
    = pipeline<double>{}
        .add(std::move(src), "input")
        .aggregate_with(aggs)
        .reduce(with_test_hooks<double>(
          [sum](const batch_ref<double>& b, partial& out) {
            out.state(b.label, sum).add(b.items.data(), b.items.size());
          },
          [](double x) -> std::optional<std::int64_t> {
            if (x == std::trunc(x) && std::fabs(x) < 9.2e18)
              return static_cast<std::int64_t>(x);
            return std::nullopt;
          }))
        .with(opts)
        .start(sys);
  auto res = runner.wait(started, 0, path == "-" ? "stdin" : path);
  r.flow_s = sw.seconds();
  if (!res)
    return runner.job_error(res.error());
  r.res = std::move(*res);
  auto& out = r.res;
  const exact_fsum* found = out.keys.empty() ? nullptr
                                             : sum.find(out.keys.front().agg);
  r.flow_sum = found ? found->value() : 0.0;
  auto expected = r.reference.value();
  r.ok = out.final && out.balanced() && out.rejected == 0
         && out.dead_lettered == 0 && out.emitted == r.size
         && out.aggregated == r.size
         && (r.size == 0 ? out.keys.empty()
                         : found != nullptr && found->count() == r.size
                             && same_bits(r.flow_sum, expected));
  if (json) {
    json_object obj;
    obj.add("size", r.size)
      .add("elements", out.emitted)
      .add("values", "double")
      .add_exact("sum", r.flow_sum)
      .add_exact("reference_sum", expected)
      .add_exact("naive_sum", r.naive)
      .add("ok", r.ok)
      .add("loop_s", r.loop_s)
      .add("libflow_s", r.flow_s);
    add_counts(obj, out);
    obj.add("partial", out.partial)
      .add("abandoned", out.abandoned)
      .add("batches", out.batches)
      .add("workers", static_cast<std::uint64_t>(opts.reducers))
      .add("batch_size", static_cast<std::uint64_t>(opts.batch_size));
    std::cout << obj.str() << std::endl;
  } else {
    std::printf("%12s %24s %24s %12s %8s %4s\n", "size", "sum",
                "naive loop sum", "libflow s", "batches", "ok");
    std::printf("%12llu %24s %24s %12.6f %8llu %4s\n",
                static_cast<unsigned long long>(r.size),
                shortest(r.flow_sum).c_str(), shortest(r.naive).c_str(),
                r.flow_s, static_cast<unsigned long long>(out.batches),
                out.partial ? "PART" : r.ok ? "yes" : "NO");
    std::fflush(stdout);
  }
  auto dead_rc = runner.dead_letters(out, dead.path());
  if (job_runner::stopped(out))
    runner.exit_stopped(out, dead);
  dead.close();
  if (dead_rc != exit_ok)
    return dead_rc;
  return r.ok ? exit_ok : exit_mismatch;
}

/// Sums the exact decimals of a file or stdin: the sum is exact at the
/// largest scale of the inputs, and must equal a sequential exact sum.
int run_input_decimals(caf::actor_system& sys, const std::string& path,
                       const options& opts, bool json,
                       dead_letter_file& dead) {
  decimal_sum reference;
  std::uint64_t size = 0;
  double loop_s = 0;
  auto src = tap(decimals_from_text_file(path),
                 [&](const slice<decimal>& xs) {
                   loop_s += time_seconds([&] {
                     for (auto& x : xs)
                       reference.add(x);
                   });
                   size += xs.size();
                 });
  aggregators aggs;
  auto sum = aggs.add("sum", decimal_sum{});
  stopwatch sw;
  pipeline<decimal> p;
  p.add(std::move(src), "input")
        .aggregate_with(aggs)
        .reduce(with_test_hooks<decimal>(
          [sum](const batch_ref<decimal>& b, partial& out) {
            out.state(b.label, sum).add(b.items.data(), b.items.size());
          },
          [](const decimal& x) -> std::optional<std::int64_t> {
            if (x.scale() == 0)
              return static_cast<std::int64_t>(x.unscaled());
            return std::nullopt;
          }))
        .describe([](const decimal& x) { return to_string(x); })
        .with(opts);
  auto started = p.start(sys);
  auto res = runner.wait(started, 0, path == "-" ? "stdin" : path);
  auto flow_s = sw.seconds();
  if (!res)
    return runner.job_error(res.error());
  auto& out = *res;
  const decimal_sum* found = out.keys.empty() ? nullptr
                                              : sum.find(out.keys.front().agg);
  if (!reference.ok()) {
    std::cerr << prog << ": error: overflow: the exact sum needs more than 38 "
                         "digits\n";
    return exit_mismatch;
  }
  auto got = found ? found->sum() : std::optional<decimal>{};
  auto want = reference.sum();
  bool ok = out.final && out.balanced() && out.rejected == 0
            && out.dead_lettered == 0 && out.emitted == size
            && out.aggregated == size
            && (size == 0 ? out.keys.empty()
                          : found != nullptr && *found == reference);
  auto text = [](const std::optional<decimal>& x) {
    return x ? to_string(*x) : std::string{"0"};
  };
  if (json) {
    json_object obj;
    obj.add("size", size)
      .add("elements", out.emitted)
      .add("values", "decimal")
      .add_raw("sum", text(got))
      .add_raw("reference_sum", text(want))
      .add("ok", ok)
      .add("loop_s", loop_s)
      .add("libflow_s", flow_s);
    add_counts(obj, out);
    obj.add("partial", out.partial)
      .add("abandoned", out.abandoned)
      .add("batches", out.batches)
      .add("workers", static_cast<std::uint64_t>(opts.reducers))
      .add("batch_size", static_cast<std::uint64_t>(opts.batch_size));
    std::cout << obj.str() << std::endl;
  } else {
    std::printf("%12s %42s %12s %8s %4s\n", "size", "sum", "libflow s",
                "batches", "ok");
    std::printf("%12llu %42s %12.6f %8llu %4s\n",
                static_cast<unsigned long long>(size), text(got).c_str(),
                flow_s, static_cast<unsigned long long>(out.batches),
                out.partial ? "PART" : ok ? "yes" : "NO");
    std::fflush(stdout);
  }
  auto dead_rc = runner.dead_letters(out, dead.path());
  if (job_runner::stopped(out))
    runner.exit_stopped(out, dead);
  dead.close();
  if (dead_rc != exit_ok)
    return dead_rc;
  return ok ? exit_ok : exit_mismatch;
}

int run(int argc, char** argv) {
  arg_parser args{prog,
                  "The tutorial's Example 1, exact: sums seeded random "
                  "integers in 0..10000 (or a file's integers) with a plain "
                  "loop, std::accumulate and a libflow pipeline, and checks "
                  "that all three agree. Exit 0 only when every result is "
                  "verified; 1 when one is not; 2 on bad usage or input; 3 "
                  "when the reducer failed on elements (dead letters); 130 "
                  "or 143 after SIGINT or SIGTERM (the result printed last "
                  "is then marked partial)."};
  args.value("sizes", "LIST", "comma-separated list sizes",
             "5,50,500,1000,10000,10000000,100000000");
  args.value("seed", "N", "seed of the random data", "42");
  args.value("input", "PATH",
             "sum the whitespace-separated integers of PATH ('-' reads "
             "stdin) instead of random data");
  args.value("values", "TYPE",
             "with --input: read the values as int (int64), double (decimal "
             "or exponent notation, inf, -inf, nan; summed exactly and "
             "rounded once) or decimal (exact, up to 38 digits)",
             "int");
  args.flag("json", "print one JSON object per line instead of a table");
  declare_pipeline_options(args);
  declare_dead_letter_option(args);
  if (!args.parse(argc, argv))
    return exit_ok;
  auto opts = read_pipeline_options(args);
  auto seed = args.get_uint("seed");
  bool json = args.is_set("json");
  dead_letter_file dead{args.given("dead-letter") ? args.get("dead-letter")
                                                  : std::string{}};
  dead.attach(opts);
  if (args.given("input") && args.given("sizes"))
    throw usage_error("--input and --sizes exclude each other");
  if (args.given("input") && args.get("input").empty())
    throw usage_error("--input: empty path (use '-' for stdin)");
  auto values = read_value_type(args.get("values"));
  if (values != value_type::int64 && !args.given("input"))
    throw usage_error("--values " + args.get("values") + " needs --input");
  std::vector<std::uint64_t> sizes;
  if (!args.given("input"))
    sizes = parse_size_list("--sizes", args.get("sizes"));
  runtime rt;
  auto& sys = rt.system();
  if (opts.reducers == 0)
    opts.reducers = flow::default_reducers();
  if (args.given("input") && values == value_type::f64)
    return run_input_doubles(sys, args.get("input"), opts, json, dead);
  if (args.given("input") && values == value_type::decimal)
    return run_input_decimals(sys, args.get("input"), opts, json, dead);
  if (args.given("input"))
    return run_input(sys, args.get("input"), opts, json, dead);
  return run_sizes(sys, sizes, seed, opts, json, dead);
}

} // namespace

int main(int argc, char** argv) {
  return guarded_main(prog, [&] { return run(argc, argv); });
}
