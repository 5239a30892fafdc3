// The README's embedding example: sum ten million random integers.
//
//   from_random ──batches──▶ reducer pool (sum_by_label) ──partials──▶ manager
//
#include <cstdint>
#include <iostream>

#include <flow/flow.hpp>

int main() {
  auto result = flow::pipeline<std::int64_t>{}
                  .add(flow::from_random(10'000'000, /*seed=*/42), "total")
                  .reduce(flow::sum_by_label())
                  .run();
  if (!result) {
    std::cerr << "error: " << flow::describe(result.error()) << '\n';
    return 2;
  }
  auto& total = result->keys.at(0);
  std::cout << "sum " << flow::to_string(total.agg.sum) << " of "
            << total.agg.count << " elements, mean " << total.agg.mean()
            << '\n';
  std::cout << "emitted " << result->emitted << ", aggregated "
            << result->aggregated << ", rejected " << result->rejected
            << '\n';
  return result->balanced() ? 0 : 1;
}
