// Keyed sum with many keys (issue 17, target 2): libflow against a plain
// sequential hash-map loop and a two-thread radix-partitioned aggregation on
// the same in-memory data, in one run. bench/keyed_bench.sh adds DuckDB's
// GROUP BY on the same data (written with --csv).
//
// usage: flow-keyed-bench --keys K --elements N [--seed S] [--runs R]
//                         [--batch B] [--shards S] [--combine C] [--csv FILE]
// The data are flow-keyed --keys's: element i is z = SplitMix64's i-th output
// for the seed, key z mod K, value (z >> 32) mod 10001. Each method's result
// is reduced to flow-keyed's checksum (over keys, key * 1000003 + sum, mod
// 2^64) and all must agree. Output: CSV lines
// workload,size,method,median_s,min_s,max_s,runs,extra (extra: keys).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/flow.hpp"
#include "flow/types.hpp"
#include "measure.hpp"

namespace {

using flow::bench::measure;
using flow::bench::stats;

std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

struct row {
  std::int64_t sum = 0;
  std::uint64_t count = 0;
};

/// The checksum of flow-keyed --summary over a map of key -> sum.
template <class Map>
std::uint64_t checksum_of(const Map& m) {
  std::uint64_t c = 0;
  for (auto& [k, r] : m)
    c += static_cast<std::uint64_t>(k) * 1000003u
         + static_cast<std::uint64_t>(r.sum);
  return c;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "flow-keyed-bench: %s\nusage: flow-keyed-bench --keys K "
                       "--elements N [--seed S] [--runs R] [--batch B] [--shards S] "
                       "[--combine C] [--csv FILE]\n",
               why);
  std::exit(2);
}

} // namespace

int main(int argc, char** argv) {
  std::uint64_t keys = 0, n = 0, seed = 42;
  int runs = 5;
  std::size_t batch = 0;
  std::size_t shards = 0;
  std::size_t combine = 0;
  std::string csv;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc)
      usage(("missing value of " + a).c_str());
    std::string v = argv[++i];
    // A bad number is a usage error (exit 2), not an uncaught exception.
    auto number = [&] {
      std::size_t used = 0;
      unsigned long long x = 0;
      try {
        x = std::stoull(v, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != v.size() || v[0] == '-')
        usage(("not a number for " + a + ": '" + v + "'").c_str());
      return static_cast<std::uint64_t>(x);
    };
    if (a == "--keys")
      keys = number();
    else if (a == "--elements")
      n = number();
    else if (a == "--seed")
      seed = number();
    else if (a == "--runs")
      runs = static_cast<int>(std::clamp<std::uint64_t>(number(), 1, 1000000));
    else if (a == "--batch")
      batch = number();
    else if (a == "--shards")
      shards = number();
    else if (a == "--combine")
      combine = number();
    else if (a == "--csv")
      csv = v;
    else
      usage(("unknown option " + a).c_str());
  }
  if (keys == 0 || n == 0)
    usage("--keys and --elements must be at least 1");
  // The data, once, in memory: libflow reads views of it (from_shared).
  auto data = std::make_shared<std::vector<flow::keyed_value>>(n);
  std::vector<std::int64_t> ks(n), vs(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    auto z = mix(seed + (i + 1) * 0x9E3779B97F4A7C15ULL);
    ks[i] = static_cast<std::int64_t>(z % keys);
    vs[i] = static_cast<std::int64_t>((z >> 32) % 10001);
    (*data)[i] = {flow::key{ks[i]}, vs[i]};
  }
  if (!csv.empty()) {
    auto* f = std::fopen(csv.c_str(), "w");
    if (!f)
      usage(("cannot write " + csv).c_str());
    for (std::uint64_t i = 0; i < n; ++i)
      std::fprintf(f, "%lld,%lld\n", static_cast<long long>(ks[i]),
                   static_cast<long long>(vs[i]));
    std::fclose(f);
  }
  std::shared_ptr<const std::vector<flow::keyed_value>> shared = data;
  std::printf("workload,size,method,median_s,min_s,max_s,runs,extra\n");
  auto label = std::to_string(n) + "x" + std::to_string(keys);
  auto report = [&](const char* method, const stats& f, std::size_t k) {
    std::printf("keyed,%s,%s,%.6f,%.6f,%.6f,%d,%zu\n", label.c_str(), method,
                f.median, f.min, f.max, runs, k);
    std::fflush(stdout);
  };
  // Sequential: one std::unordered_map, reserved.
  std::uint64_t seq_check = 0;
  std::size_t seq_keys = 0;
  auto seq = measure(runs, [&] {
    std::unordered_map<std::int64_t, row> m;
    m.reserve(std::min(keys, n));
    for (std::uint64_t i = 0; i < n; ++i) {
      auto& r = m[ks[i]];
      r.sum += vs[i];
      ++r.count;
    }
    seq_check = checksum_of(m);
    seq_keys = m.size();
  });
  report("unordered_map_1thread", seq, seq_keys);
  // Two threads, radix-partitioned: each thread splits half the rows by
  // the top bits of the key's hash, then each aggregates its partitions of
  // both halves into its own map. About where the limit is on 2 cores.
  std::uint64_t radix_check = 0;
  auto radix = measure(runs, [&] {
    constexpr int parts = 64;
    struct kv {
      std::int64_t k, v;
    };
    std::vector<std::vector<kv>> buckets[2];
    auto split = [&](int t) {
      auto& b = buckets[t];
      b.assign(parts, {});
      auto lo = n * t / 2, hi = n * (t + 1) / 2;
      for (auto& x : b)
        x.reserve((hi - lo) / parts * 5 / 4);
      for (auto i = lo; i < hi; ++i)
        b[mix(static_cast<std::uint64_t>(ks[i])) >> 58].push_back(
          {ks[i], vs[i]});
    };
    std::uint64_t checks[2] = {0, 0};
    auto merge = [&](int t) {
      std::unordered_map<std::int64_t, row> m;
      m.reserve(std::min(keys, n) / parts + 16);
      for (int p = t; p < parts; p += 2) {
        m.clear();
        for (auto& x : buckets[0][p]) {
          auto& r = m[x.k];
          r.sum += x.v;
          ++r.count;
        }
        for (auto& x : buckets[1][p]) {
          auto& r = m[x.k];
          r.sum += x.v;
          ++r.count;
        }
        checks[t] += checksum_of(m);
      }
    };
    std::thread a{split, 0};
    split(1);
    a.join();
    std::thread b{merge, 0};
    merge(1);
    b.join();
    radix_check = checks[0] + checks[1];
  });
  report("radix_2threads", radix, seq_keys);
  // libflow: from_shared + sum_by_key, default options, in a running
  // actor system; the keys tallied as they leave (on_result_key).
  caf::actor_system_config cfg;
  flow::add_message_types(cfg);
  flow::configure_scheduler(cfg);
  caf::actor_system sys{cfg};
  std::uint64_t flow_check = 0;
  std::size_t flow_keys = 0;
  bool ok = true;
  auto lib = measure(runs, [&] {
    std::uint64_t c = 0;
    std::size_t k = 0;
    flow::pipeline<flow::keyed_value> p;
    if (combine > 1) {
      // options::combine_batches: credits at least reducers times it.
      flow::options o;
      o.combine_batches = combine;
      o.credits = std::max<std::size_t>(o.credits, 2 * combine);
      p.with(o);
    }
    if (batch > 0)
      p.batch_size(batch);
    if (shards > 0)
      p.manager_shards(shards);
    auto res = p.add(flow::from_shared(shared))
                 .reduce(flow::sum_by_key())
                 .on_result_key([&](const flow::key_result& r) {
                   c += static_cast<std::uint64_t>(r.key.as_int()) * 1000003u
                        + static_cast<std::uint64_t>(r.agg.sum);
                   ++k;
                 })
                 .run(sys);
    ok = ok && res && res->aggregated == n;
    flow_check = c;
    flow_keys = k;
  });
  auto method = batch > 0 ? "libflow_batch" + std::to_string(batch)
                          : std::string{"libflow"};
  if (shards > 0)
    method += "_shards" + std::to_string(shards);
  if (combine > 1)
    method += "_combine" + std::to_string(combine);
  report(method.c_str(), lib, flow_keys);
  if (!ok || flow_check != seq_check || radix_check != seq_check
      || flow_keys != seq_keys) {
    std::fprintf(stderr,
                 "flow-keyed-bench: MISMATCH: checksums %llu (loop), %llu "
                 "(radix), %llu (libflow)\n",
                 static_cast<unsigned long long>(seq_check),
                 static_cast<unsigned long long>(radix_check),
                 static_cast<unsigned long long>(flow_check));
    return 1;
  }
  std::fprintf(stderr, "checksum %llu keys %zu\n",
               static_cast<unsigned long long>(seq_check), seq_keys);
  return 0;
}
