// A job inside an actor system the application already owns, started without
// blocking, watched through snapshots, with a per-element reducer that keys by
// parity and rejects multiples of 1000 (with a reason).
//
//   from_range(0, N) ──▶ reducers: per_element ──▶ manager {even, odd}
//                               └─ reject("multiple of 1000")
//
#include <chrono>
#include <cstdint>
#include <iostream>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <flow/flow.hpp>

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};

  auto parity = [](const std::int64_t& x, flow::partial& out) {
    if (x % 1000 == 0)
      out.reject("multiple of 1000");
    else
      out.add(x % 2 == 0 ? "even" : "odd", x);
  };
  auto started = flow::pipeline<std::int64_t>{}
                   .add(flow::from_range(0, 20'000'000))
                   .reduce(flow::per_element<std::int64_t>(parity))
                   .batch_size(100'000)
                   .start(sys);
  if (!started) {
    std::cerr << flow::describe(started.error()) << '\n';
    return 2;
  }
  // Watch the running aggregates while the job runs.
  while (!started->wait_for(std::chrono::milliseconds(20)))
    if (auto snap = started->snapshot(); snap && !snap->final)
      std::cerr << "running: " << snap->aggregated << " of "
                << snap->emitted << " emitted elements aggregated\n";
  auto res = started->wait();
  if (!res) {
    std::cerr << flow::describe(res.error()) << '\n';
    return 2;
  }
  for (auto& k : res->keys)
    std::cout << flow::to_string(k.key) << ": sum "
              << flow::to_string(k.agg.sum) << ", count " << k.agg.count
              << '\n';
  for (auto& [reason, n] : res->rejections)
    std::cout << "rejected (" << reason << "): " << n << '\n';
  std::cout << "emitted " << res->emitted << " = aggregated "
            << res->aggregated << " + rejected " << res->rejected << '\n';
  return res->balanced() ? 0 : 1;
}
