// What sorting a result's entries by key costs (issue 17: a shard sorts its
// keys for the result, an int_table spills a sorted run): N entries of
// `int_entry` (48 bytes) with keys drawn from [0, RANGE) (RANGE 0: any
// int64), sorted by std::sort on the key and by flow::detail::sort_by_key,
// each on its own copy of the same entries, in turn. Prints both times and
// fails (exit 1) when the orders differ.
//
// usage: flow-sort-probe N RANGE [RUNS]

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "flow/detail/int_table.hpp"
#include "measure.hpp"

using flow::bench::measure;
using flow::detail::int_entry;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: flow-sort-probe N RANGE [RUNS]\n");
    return 2;
  }
  auto n = std::strtoull(argv[1], nullptr, 10);
  auto range = std::strtoull(argv[2], nullptr, 10);
  int runs = argc > 3 ? std::atoi(argv[3]) : 3;
  std::mt19937_64 rng{1};
  std::vector<int_entry> base(n);
  for (auto& e : base)
    e.key = static_cast<std::int64_t>(range != 0 ? rng() % range : rng());
  std::printf("entries,range,std_sort_s,sort_by_key_s,std_sort/sort_by_key\n");
  for (int r = 0; r < runs; ++r) {
    // Both copies made (their pages touched) before either clock starts.
    auto a = base;
    auto b = base;
    auto ts = measure(1, [&] {
                std::sort(a.begin(), a.end(),
                          [](const int_entry& x, const int_entry& y) {
                            return x.key < y.key;
                          });
              }).median;
    auto tr = measure(1, [&] {
                flow::detail::sort_by_key(b.data(), b.size());
              }).median;
    for (std::size_t i = 0; i < n; ++i)
      if (a[i].key != b[i].key) {
        std::fprintf(stderr, "flow-sort-probe: orders differ at %zu\n", i);
        return 1;
      }
    std::printf("%llu,%llu,%.4f,%.4f,%.2f\n", static_cast<unsigned long long>(n),
                static_cast<unsigned long long>(range), ts, tr, ts / tr);
  }
  return 0;
}
