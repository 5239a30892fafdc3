// flow-keyed: the tutorial's Example 2, exact. Every list comes from its own
// generator actor, all running at once; the manager holds running sums keyed
// by list size, so lists of equal size add to the same key.
//
//   from_random(list 0) ─┐
//   from_random(list 1) ─┼─batches─▶ reducers: sum_by_label ─▶ manager
//   from_random(list k) ─┘           (key = list size)        {size: sum}
//
// Compared with a sequential C++ loop over the same data. With --input it
// computes a grouped sum of `key value` lines instead; with --keys and
// --elements, a grouped sum of keyed data one generator makes from the
// element's index (flow::from_keyed_random), for benchmarks and checks at any
// size (--summary: one line with a checksum instead of a line per key).

#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>
#include <iostream>
#include <limits>
#include <map>
#include <thread>
#include <unordered_map>

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
      .add("remote_batches", out.res.remote_batches)
        .add("speculated", out.res.speculated)
        .add("speculation_won", out.res.speculation_won);
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

/// Prints a verified set (`ok`: it verified) and then its dead letters;
/// returns the exit code.
int report_set(const set_outcome& out, bool ok, bool lists_known,
               bool string_keys, bool json, dead_letter_file& dead) {
  if (json)
    print_json(out, lists_known, string_keys);
  else
    print_set(out, lists_known);
  after_job(out, json, string_keys, dead);
  if (out.res.dead_lettered > 0)
    return exit_dead_letters;
  return ok ? exit_ok : exit_mismatch;
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
  return report_set(out, verify(out, true), true, false, json, dead);
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
  auto rc = report_set(out, verify(out, false), false, true, json, dead);
  dead.close();
  return rc;
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
        .add("remote_batches", out.res.remote_batches)
        .add("speculated", out.res.speculated)
        .add("speculation_won", out.res.speculation_won);
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

// -- --keys: generated keyed data ----------------------------------------------

/// What --keys, --elements, --seed, --summary and --no-verify ask for.
struct keys_spec {
  std::uint64_t keys = 1;
  std::uint64_t elements = 0;
  std::uint64_t seed = 42;
  bool summary = false;
  bool verify = true;
};

/// The default batch of --keys: with up to one key per element, a partial
/// holds about 48 bytes per element of its batch until the manager merged
/// it; 65536 elements keep the partials in flight at a few MiB (at 10^7
/// keys, 262144 cost 14 bytes per key of peak memory and were slower).
constexpr std::size_t keys_batch = 65536;

/// The default credits of --keys: 2 batches in flight took the same time
/// as 4 at 10^6 and 10^7 keys and 10-20 MB less peak memory at 10^7 keys
/// (docs/benchmarks.md, "Speed with many keys").
constexpr std::size_t keys_credits = 2;

/// The value range of the generated data: randint(0, 10000), as the sets.
constexpr std::uint64_t keys_values = 10001;

/// The sequential reference for --keys: the formula written out in a
/// plain loop into a hash map. It does not call the library's source, so a
/// fault in either shows as a mismatch.
std::unordered_map<std::int64_t, aggregate>
keys_reference(const keys_spec& spec, const keyed_aggs* aggs) {
  std::unordered_map<std::int64_t, aggregate> ref;
  ref.reserve(static_cast<std::size_t>(std::min(spec.keys, spec.elements)));
  for (std::uint64_t i = 0; i < spec.elements; ++i) {
    std::uint64_t z = spec.seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z = z ^ (z >> 31);
    auto& row = ref[static_cast<std::int64_t>(z % spec.keys)];
    auto value = static_cast<std::int64_t>((z >> 32) % keys_values);
    if (aggs)
      aggs->add(row, value);
    else
      row.add(value);
  }
  return ref;
}

/// What the summary needs of the keys, gathered from a result's keys or key
/// by key as the manager hands them out (options::on_result_key), so that
/// 10^7 keys are never held twice.
struct keys_tally {
  std::uint64_t keys = 0;
  /// The keys' counts added up.
  std::uint64_t counted = 0;
  /// Over keys, (key * 1000003 + (sum mod 2^64)) mod 2^64, added mod 2^64
  /// (unsigned arithmetic wraps exactly so).
  std::uint64_t checksum = 0;

  void add(const key_result& k) {
    ++keys;
    counted += k.agg.count;
    checksum += static_cast<std::uint64_t>(k.key.as_int()) * 1000003u
                + static_cast<std::uint64_t>(k.agg.sum);
  }
};

/// The tally of the keys a result holds.
keys_tally tally_of(const job_result& res) {
  keys_tally t;
  for (auto& k : res.keys)
    t.add(k);
  return t;
}

/// libflow's own accounting, all that --no-verify checks: the job completed,
/// every one of the N elements emitted was aggregated or rejected, none was
/// dead-lettered, and the keys' counts add up to the elements aggregated.
bool keys_accounted(const job_result& res, const keys_tally& t,
                    std::uint64_t elements) {
  return res.final && res.balanced() && res.dead_lettered == 0
         && res.emitted == elements && t.counted == res.aggregated
         && t.keys == res.key_count;
}

/// keys_accounted for a result that holds its keys.
bool keys_accounted(const job_result& res, std::uint64_t elements) {
  return keys_accounted(res, tally_of(res), elements);
}

/// The pipeline of a --keys job: one generator of keyed integers, reduced by
/// the plain keyed sum or by the --agg columns.
pipeline<keyed_value> keys_pipeline(const keys_spec& spec, const options& opts,
                                    const cluster& nodes,
                                    const keyed_aggs* aggs) {
  pipeline<keyed_value> p;
  p.add(from_keyed_random(spec.elements, spec.keys, spec.seed, keys_values));
  auto value_of = [](const keyed_value& x) { return x.value; };
  if (aggs) {
    p.reduce(with_test_hooks<keyed_value>(aggs->int_reducer(), value_of))
      .with(opts);
    p.aggregate_with(aggs->columns());
    nodes.prepare(p, aggs->reducer_name(false).c_str());
  } else {
    p.reduce(with_test_hooks<keyed_value>(sum_by_key(), value_of)).with(opts);
    nodes.prepare(p, "sum_by_key");
  }
  return p;
}

/// Prints the --summary line: a JSON object, or `name value` pairs.
void print_keys_summary(const job_result& res, const keys_tally& t,
                        double flow_s, double sequential_s, bool verified,
                        bool ok, bool json) {
  if (json) {
    json_object obj;
    obj.add("keys", t.keys)
      .add("elements", res.aggregated)
      .add("checksum", t.checksum)
      .add("libflow_s", flow_s)
      .add("sequential_s", sequential_s)
      .add("batches", res.batches)
      .add("remote_batches", res.remote_batches)
      .add("speculated", res.speculated)
      .add("speculation_won", res.speculation_won)
      .add("verified", verified);
    if (res.partial)
      obj.add("partial", true);
    obj.add("ok", ok);
    std::cout << obj.str() << '\n';
    std::cout.flush();
    return;
  }
  std::printf("keys %llu elements %llu checksum %llu libflow_s %.6f "
              "sequential_s %.6f batches %llu verified %s ok %s%s\n",
              static_cast<unsigned long long>(t.keys),
              static_cast<unsigned long long>(res.aggregated),
              static_cast<unsigned long long>(t.checksum), flow_s,
              sequential_s, static_cast<unsigned long long>(res.batches),
              verified ? "yes" : "no", ok ? "yes" : "NO",
              res.partial ? " (PARTIAL: stopped by a signal)" : "");
  std::fflush(stdout);
}

/// --keys with --summary: the reference in a hash map (unless --no-verify),
/// the job, whose keys go one by one to the tally and the comparison (never
/// into a second table), then one line.
int run_keys_summary(caf::actor_system& sys, const keys_spec& spec,
                     const options& opts, bool json, dead_letter_file& dead,
                     const cluster& nodes, const keyed_aggs* aggs) {
  std::unordered_map<std::int64_t, aggregate> ref;
  double sequential_s = 0;
  if (spec.verify)
    sequential_s = time_seconds([&] { ref = keys_reference(spec, aggs); });
  keys_tally tally;
  std::uint64_t matched = 0;
  auto job_opts = opts;
  job_opts.on_result_key = [&](const key_result& k) {
    tally.add(k);
    if (!spec.verify)
      return;
    auto found = ref.find(k.key.as_int());
    std::string why;
    if (k.key.is_int() && found != ref.end()
        && (aggs ? aggs->same(k.agg, found->second, why)
                 : k.agg.sum == found->second.sum
                     && k.agg.count == found->second.count
                     && k.agg.min == found->second.min
                     && k.agg.max == found->second.max))
      ++matched;
  };
  auto p = keys_pipeline(spec, job_opts, nodes, aggs);
  nodes.wait_for_workers(prog);
  stopwatch sw;
  auto started = p.start(sys);
  if (started)
    nodes.attach(*started);
  auto res = runner.wait(started, spec.elements, "keys");
  auto flow_s = sw.seconds();
  if (!res)
    return runner.job_error(res.error());
  report_dead_letters(prog, *res, dead.path());
  if (job_runner::stopped(*res)) {
    // A stopped job's partial result holds its keys.
    if (res->partial)
      print_keys_summary(*res, tally_of(*res), flow_s, 0, false, false,
                         json);
    runner.exit_stopped(*res, dead);
  }
  bool ok = keys_accounted(*res, tally, spec.elements);
  if (spec.verify)
    ok = ok && res->aggregated == spec.elements && tally.keys == ref.size()
         && matched == ref.size();
  print_keys_summary(*res, tally, flow_s, sequential_s, spec.verify, ok,
                     json);
  dead.close();
  if (res->dead_lettered > 0)
    return exit_dead_letters;
  return ok ? exit_ok : exit_mismatch;
}

/// --keys with chosen aggregates, a line per key as --agg prints them.
int run_keys_aggs(caf::actor_system& sys, const keys_spec& spec,
                  const options& opts, bool json, dead_letter_file& dead,
                  const cluster& nodes, const keyed_aggs& aggs) {
  agg_outcome out;
  out.name = "keys";
  auto p = keys_pipeline(spec, opts, nodes, &aggs);
  auto reference = [&] {
    if (spec.verify) {
      for (auto& [k, row] : keys_reference(spec, &aggs))
        out.ref.emplace(flow::key{k}, std::move(row));
      return;
    }
    // Without the reference each row is compared with itself: what remains
    // is the accounting (emitted, aggregated, keys' counts).
    for (auto& k : out.res.keys)
      out.ref.emplace(k.key, k.agg);
  };
  auto rc = run_agg_job(sys, p, out, aggs, false, spec.elements, json, false,
                        dead, nodes, reference);
  dead.close();
  if (rc == exit_ok && !keys_accounted(out.res, spec.elements))
    rc = exit_mismatch;
  return rc;
}

/// --keys: a line per key as the sets print them, verified against the
/// sequential reference (or, with --no-verify, the accounting only).
int run_keys(caf::actor_system& sys, const keys_spec& spec,
             const options& opts, bool json, dead_letter_file& dead,
             const cluster& nodes, const keyed_aggs* aggs) {
  if (spec.summary)
    return run_keys_summary(sys, spec, opts, json, dead, nodes, aggs);
  if (aggs)
    return run_keys_aggs(sys, spec, opts, json, dead, nodes, *aggs);
  set_outcome out;
  out.name = "keys";
  auto p = keys_pipeline(spec, opts, nodes, nullptr);
  nodes.wait_for_workers(prog);
  stopwatch sw;
  auto started = p.start(sys);
  if (started)
    nodes.attach(*started);
  auto res = runner.wait(started, spec.elements, out.name);
  out.flow_s = sw.seconds();
  if (!res)
    return runner.job_error(res.error());
  out.res = std::move(*res);
  if (out.res.partial)
    after_job(out, json, false, dead);
  if (spec.verify) {
    out.sequential_s = time_seconds([&] {
      for (auto& [k, row] : keys_reference(spec, nullptr))
        out.ref[flow::key{k}].agg = std::move(row);
    });
  } else {
    // As in run_keys_aggs: each key against itself, the accounting remains.
    for (auto& k : out.res.keys)
      out.ref[k.key].agg = k.agg;
  }
  bool ok = verify(out, false) && keys_accounted(out.res, spec.elements);
  auto rc = report_set(out, ok, false, false, json, dead);
  dead.close();
  return rc;
}

/// Reads --keys, --elements, --seed, --summary and --no-verify; throws
/// usage_error when they are combined wrongly.
std::optional<keys_spec> read_keys(const arg_parser& args) {
  bool keys = args.given("keys");
  bool elements = args.given("elements");
  if (!keys && !elements) {
    if (args.is_set("summary") || args.is_set("no-verify"))
      throw usage_error(std::string{"--"}
                        + (args.is_set("summary") ? "summary" : "no-verify")
                        + " needs --keys and --elements");
    return std::nullopt;
  }
  if (keys != elements)
    throw usage_error(keys ? "--keys needs --elements"
                           : "--elements needs --keys");
  if (args.given("preset") || args.given("sizes") || args.given("input"))
    throw usage_error("--keys and --elements exclude --preset, --sizes and "
                      "--input");
  keys_spec spec;
  spec.keys = args.get_uint(
    "keys", 1,
    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
  spec.elements = args.get_uint(
    "elements", 0,
    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
  spec.seed = args.get_uint("seed");
  spec.summary = args.is_set("summary");
  spec.verify = !args.is_set("no-verify");
  return spec;
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

/// Refuses (usage_error) a --spill-dir, or default spill directory, that
/// cannot hold a file: the job would refuse it only once started.
void check_spill_dir(const options& opts) {
  if (auto err = spill_dir_error(opts); !err.empty())
    throw usage_error((opts.spill_dir.empty()
                         ? "--max-memory: the spill directory "
                         : "--spill-dir: ")
                      + quote_token(spill_directory(opts))
                      + " cannot hold a file: " + err);
}

void declare_options(arg_parser& args) {
  args.value("preset", "SET",
             "the tutorial's set 1, 2 or 3, or 'all' (1: "
             "5,50,...,10^8; 2: 7 x 10^7; 3: 8 x 10^4)",
             "all");
  args.value("sizes", "LIST", "comma-separated list sizes (one set)");
  args.value("seed", "N", "seed of the random data (sets and --keys)", "42");
  args.value("input", "PATH",
             "grouped sum of 'key value' lines from PATH ('-' reads stdin)");
  args.value("keys", "K",
             "generate keyed data in process instead of lists: K keys "
             "(1 or more), with --elements; element i is z = SplitMix64's "
             "i-th output for --seed, key z mod K, value (z >> 32) mod 10001; "
             "--batch defaults to 65536 and --credits to 2 here (a batch's "
             "partial holds up to one key per element, so smaller batches, "
             "and fewer in flight, hold less memory with many keys)");
  args.value("elements", "N",
             "with --keys: the number of elements (0 or more), made batch by "
             "batch from their index (the same data for any --batch and "
             "--reducers; never held in memory at once)");
  args.flag("summary",
            "with --keys: one line (one JSON object with --json) instead of "
            "a line per key: keys (distinct keys seen), elements, checksum "
            "(the sum over keys of key*1000003 + sum, mod 2^64, unsigned), "
            "libflow_s and ok");
  args.flag("no-verify",
            "with --keys: skip the sequential reference (a hash map of every "
            "key), so that memory measures libflow alone; ok then checks "
            "only libflow's accounting (all N elements emitted, each "
            "aggregated or rejected, none dead-lettered)");
  args.value("max-memory", "BYTES",
             "bound libflow's keyed state to BYTES (K, M, G: powers of 1024): "
             "beyond it, integer keys of the default sum are spilled as "
             "sorted runs to unlinked files in --spill-dir and merged at the "
             "end, with identical results (peak memory: BYTES plus the "
             "process's baseline and the batches in flight; string keys and "
             "--agg are not spilled, a warning says so); use with "
             "--summary --no-verify to bound the whole process (a partial "
             "result after a signal is gathered in memory)");
  args.value("spill-dir", "DIR",
             "where --max-memory's runs go (default $TMPDIR, else /tmp)");
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
  if (args.given("keys") && !args.given("batch"))
    opts.batch_size = keys_batch;
  if (args.given("keys") && !args.given("credits"))
    opts.credits = keys_credits;
  if (args.given("max-memory"))
    opts.max_memory = parse_bytes("--max-memory", args.get("max-memory"));
  if (args.given("spill-dir")) {
    if (!args.given("max-memory"))
      throw usage_error("--spill-dir needs --max-memory");
    opts.spill_dir = args.get("spill-dir");
  }
  if (opts.max_memory > 0)
    check_spill_dir(opts);
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
  auto keys = read_keys(args);
  if (keys && ctx.spin)
    throw usage_error("--reducer spin and --keys exclude each other");
  auto sets = keys ? decltype(read_sets(args)){} : read_sets(args);
  auto& nodes = ctx.nodes;
  runtime rt{[&](caf::actor_system_config& cfg) { nodes.configure(cfg); }};
  auto& sys = rt.system();
  nodes.listen(sys, prog);
  if (opts.reducers == 0)
    opts.reducers = flow::default_reducers();
  auto body = [&] {
    if (keys)
      return run_keys(sys, *keys, opts, json, dead, nodes,
                      aggs ? &*aggs : nullptr);
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
