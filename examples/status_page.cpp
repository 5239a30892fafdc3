// A job an application watches: its live statistics read with job::stats()
// while it runs, and served by a flow::status_server (GET / for people,
// /status as JSON, /metrics for Prometheus) on a free loopback port.
//
//   from_range(0, N) ──▶ reducers: sum by parity ──▶ manager
//                                       ▲
//   status_server (own threads) ── job::stats() ── published every 250 ms
//
#include <chrono>
#include <cstdint>
#include <iostream>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <flow/flow.hpp>
#include <flow/status_server.hpp>

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};

  flow::status_server server; // loopback, port 0: a free port
  if (auto err = server.start({}); !err.empty()) {
    std::cerr << err << '\n';
    return 1;
  }
  std::cout << "status page at http://" << server.address() << "/\n";

  auto parity = [](const std::int64_t& x, flow::partial& out) {
    out.add(x % 2 == 0 ? "even" : "odd", x);
  };
  auto started = flow::pipeline<std::int64_t>{}
                   .add(flow::from_range(0, 20'000'000))
                   .reduce(flow::per_element<std::int64_t>(parity))
                   .batch_size(100'000)
                   .start(sys);
  if (!started)
    return 1;
  server.watch(*started, "parity");
  while (!started->wait_for(std::chrono::milliseconds(200))) {
    auto xs = started->stats(); // never waits for the manager
    std::cout << flow::to_string(xs.state) << ": " << xs.aggregated() << " of "
              << xs.total().value_or(0) << " elements\n";
  }
  auto res = started->wait();
  auto xs = started->stats(); // the last statistics carry the result
  std::cout << flow::to_string(xs.state) << ": emitted " << xs.emitted()
            << ", aggregated " << xs.aggregated() << ", result "
            << (xs.result && xs.result->emitted == res->emitted ? "published"
                                                                : "missing")
            << '\n';
  return res && res->balanced() ? 0 : 1;
}
