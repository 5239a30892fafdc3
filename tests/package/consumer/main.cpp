// Sums 1..1000 through a libflow pipeline and prints the total.
#include <cstdint>
#include <iostream>

#include <flow/flow.hpp>

int main() {
  auto res = flow::pipeline<std::int64_t>{}
               .add(flow::from_range(1, 1001), "total")
               .reduce(flow::sum_by_label())
               .reducers(2)
               .batch_size(100)
               .run();
  if (!res) {
    std::cerr << flow::describe(res.error()) << '\n';
    return 1;
  }
  std::cout << "consumer sum " << flow::to_string(res->keys.at(0).agg.sum)
            << '\n';
  return res->balanced() ? 0 : 1;
}
