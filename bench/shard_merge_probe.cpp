// What one manager shard's merge costs with many keys, and whether
// radix-buffering it would help (issue 17, target 2): N entries of K keys
// (flow-keyed --keys's data: key z mod K of SplitMix64's i-th output) are
// merged into a flow::detail::int_table as a shard merges them, in blocks
// of 32768 (half a batch of 65536 over two shards), then the same entries
// scattered into P sub-tables by hash bits and merged part by part each
// time T entries are buffered, so that a part's table stays in cache while
// it merges. Prints both times; the key counts must agree.
//
// usage: flow-shard-merge-probe K N T P [RUNS]

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "flow/detail/int_table.hpp"

namespace {

using flow::detail::int_entry;
using flow::detail::int_table;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
    .count();
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: flow-shard-merge-probe K N T P [RUNS]\n");
    return 2;
  }
  std::uint64_t keys = std::strtoull(argv[1], nullptr, 10);
  std::uint64_t n = std::strtoull(argv[2], nullptr, 10);
  std::uint64_t buffered = std::strtoull(argv[3], nullptr, 10);
  std::uint64_t parts = std::strtoull(argv[4], nullptr, 10);
  int runs = argc > 5 ? std::atoi(argv[5]) : 3;
  if (keys == 0 || parts == 0 || (parts & (parts - 1)) != 0 || buffered == 0) {
    std::fprintf(stderr, "flow-shard-merge-probe: K and T above 0, P a power "
                         "of two\n");
    return 2;
  }
  std::vector<int_entry> in(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    // SplitMix64's i-th output for seed 42 (mix64 adds the increment).
    auto z = flow::detail::mix64(42 + i * 0x9E3779B97F4A7C15ULL);
    auto k = static_cast<std::int64_t>(z % keys);
    in[i].key = k;
    in[i].add(static_cast<std::int64_t>((z >> 32) % 10001));
  }
  constexpr std::uint64_t block = 32768;
  int shift = 64 - __builtin_ctzll(parts);
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    int_table direct;
    for (std::uint64_t i = 0; i < n; i += block)
      (void) direct.merge_all(in.data() + i, std::min(block, n - i));
    auto direct_s = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    std::vector<int_table> tables(parts);
    std::vector<std::vector<int_entry>> pending(parts);
    for (auto& p : pending)
      p.reserve(buffered / parts * 2);
    std::uint64_t held = 0;
    auto flush = [&] {
      for (std::uint64_t p = 0; p < parts; ++p) {
        (void) tables[p].merge_all(pending[p].data(), pending[p].size());
        pending[p].clear();
      }
      held = 0;
    };
    for (std::uint64_t i = 0; i < n; i += block) {
      auto m = std::min(block, n - i);
      for (auto j = i; j < i + m; ++j) {
        // Bits below the shard's (the top one) pick the part; the tables
        // index by the low bits.
        auto h = flow::detail::mix64(static_cast<std::uint64_t>(in[j].key));
        pending[parts == 1 ? 0 : (h << 1) >> shift].push_back(in[j]);
      }
      held += m;
      if (held >= buffered)
        flush();
    }
    flush();
    auto radix_s = seconds_since(t0);
    std::uint64_t radix_keys = 0;
    for (auto& t : tables)
      radix_keys += t.size();
    std::printf("keys %zu direct_s %.3f radix_s %.3f ratio %.2f%s\n",
                direct.size(), direct_s, radix_s, radix_s / direct_s,
                radix_keys == direct.size() ? "" : " MISMATCH");
    if (radix_keys != direct.size())
      return 1;
  }
  return 0;
}
