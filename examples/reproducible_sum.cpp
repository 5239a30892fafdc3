// Reproducibility: the same ten million doubles summed with 1, 2 and 8
// reducers in batches of 1,000 to 1,000,000 -- a plain parallel double sum
// (each reducer adds its batch in a loop, the manager adds the partial sums
// as they arrive) next to libflow's exact sum (a superaccumulator per key,
// rounded once at the end). The plain sum's bits change with the split and
// the order partials arrive in; the exact sum's never do.
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include <flow/flow.hpp>

namespace {

std::uint64_t bits(double x) {
  std::uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

/// A plain double sum as a state: merging adds the two sums, so the result
/// depends on how the data was split and merged.
struct plain_sum {
  double sum = 0;
  static std::string state_name() {
    return "example.plain_sum";
  }
  void add(const double* xs, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
      sum += xs[i];
  }
  void merge(const plain_sum& other) {
    sum += other.sum;
  }
};

} // namespace

int main() {
  // Values across 40 orders of magnitude with both signs: the rounding of
  // each addition depends on what was added before.
  std::mt19937_64 gen{2024};
  std::vector<double> xs(10'000'000);
  for (auto& x : xs) {
    auto mantissa = static_cast<double>(gen() >> 11);
    auto exponent = static_cast<int>(gen() % 130) - 118;
    x = std::ldexp(mantissa, exponent) * (gen() % 2 ? 1 : -1);
  }
  auto data = std::make_shared<const std::vector<double>>(std::move(xs));
  std::set<std::uint64_t> plain_bits;
  std::set<std::uint64_t> exact_bits;
  std::printf("%9s %10s  %-40s %s\n", "reducers", "batch",
              "plain sum (bits)", "libflow exact sum (bits)");
  for (std::size_t reducers : {1, 2, 8}) {
    for (std::size_t batch : {1000, 65536, 1000000}) {
      flow::aggregators aggs;
      auto plain = aggs.add("plain", plain_sum{});
      auto exact = aggs.add("exact", flow::exact_fsum{});
      auto res = flow::pipeline<double>{}
                   .add(flow::from_shared(data), "all")
                   .aggregate_with(aggs)
                   .reducers(reducers)
                   .batch_size(batch)
                   .reduce([=](const flow::batch_ref<double>& b,
                               flow::partial& out) {
                     auto n = b.items.size();
                     out.state(b.label, plain).add(b.items.data(), n);
                     out.state(b.label, exact).add(b.items.data(), n);
                   })
                   .run();
      if (!res || !res->balanced()) {
        std::fprintf(stderr, "error: %s\n",
                     res ? "unbalanced" : flow::describe(res.error()).c_str());
        return 2;
      }
      auto p = plain.of(res->keys.at(0)).sum;
      auto e = exact.of(res->keys.at(0)).value();
      plain_bits.insert(bits(p));
      exact_bits.insert(bits(e));
      std::printf("%9zu %10zu  %-.17g %016" PRIx64 "  %-.17g %016" PRIx64 "\n",
                  reducers, batch, p, bits(p), e, bits(e));
    }
  }
  std::printf("distinct results: plain %zu, exact %zu\n", plain_bits.size(),
              exact_bits.size());
  return exact_bits.size() == 1 ? 0 : 1;
}
