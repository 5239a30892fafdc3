// Distinct counts and quantiles per key: the number of distinct users per day
// and the 50th, 95th and 99th percentile latency per endpoint, exact and
// approximate side by side, in one job over composite keys.
//
//   from_container(requests) ──▶ reducers ──▶ manager
//   row per (endpoint, day): exact distinct users, HyperLogLog, KLL quantiles
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <flow/flow.hpp>

struct request {
  std::string endpoint;
  std::int64_t day = 0;
  std::int64_t user = 0;
  double latency_ms = 0;
};

int main() {
  const char* endpoints[] = {"/search", "/cart", "/login"};
  std::mt19937_64 gen{7};
  std::lognormal_distribution<double> latency{3.0, 0.8};
  std::vector<request> requests;
  for (int i = 0; i < 600000; ++i)
    requests.push_back({endpoints[gen() % 3], static_cast<std::int64_t>(gen() % 2),
                        static_cast<std::int64_t>(gen() % 50000), latency(gen)});
  // The exact answers, computed plainly, to show the sketches' error.
  std::map<flow::key, std::pair<std::set<std::int64_t>, std::vector<double>>>
    truth;
  for (auto& r : requests) {
    auto& t = truth[flow::key::composite({r.endpoint, r.day})];
    t.first.insert(r.user);
    t.second.push_back(r.latency_ms);
  }
  flow::aggregators aggs;
  auto exact_users = aggs.add("users", flow::distinct_count{});
  auto approx_users = aggs.add("users~", flow::hll{});
  auto latency_q = aggs.add("latency", flow::kll{});
  auto res = flow::pipeline<request>{}
               .add(flow::from_container(std::move(requests)))
               .aggregate_with(aggs)
               .reduce([=](const flow::batch_ref<request>& b,
                           flow::partial& out) {
                 for (auto& r : b.items) {
                   auto& row = out.row(flow::key::composite({r.endpoint, r.day}));
                   exact_users.at(row).add(r.user);
                   approx_users.at(row).add(r.user);
                   latency_q.at(row).add(r.latency_ms);
                 }
               })
               .run();
  if (!res) {
    std::fprintf(stderr, "error: %s\n", flow::describe(res.error()).c_str());
    return 2;
  }
  std::printf("%-14s %8s %9s %7s %8s %8s %8s %8s\n", "(endpoint, day)",
              "users", "~users", "err %", "p50 ms", "p95 ms", "p99 ms",
              "max rank err %");
  double worst = 0;
  for (auto& k : res->keys) {
    auto& t = truth.at(k.key);
    auto xs = t.second;
    std::sort(xs.begin(), xs.end());
    auto n = static_cast<double>(xs.size());
    auto& q = latency_q.of(k);
    double rank_err = 0;
    for (double p : {0.5, 0.95, 0.99}) {
      auto v = q.quantile(p);
      auto lo = std::lower_bound(xs.begin(), xs.end(), v) - xs.begin();
      auto hi = std::upper_bound(xs.begin(), xs.end(), v) - xs.begin();
      auto err = std::max({0.0, static_cast<double>(lo) - p * n,
                           p * n - static_cast<double>(hi)});
      rank_err = std::max(rank_err, 100 * err / n);
    }
    worst = std::max(worst, rank_err);
    auto exact = exact_users.of(k).count();
    auto approx = approx_users.of(k).estimate();
    std::printf("%-14s %8llu %9.0f %7.2f %8.2f %8.2f %8.2f %8.3f\n",
                flow::to_string(k.key).c_str(),
                static_cast<unsigned long long>(exact), approx,
                100 * (approx - exact) / exact, q.quantile(0.5),
                q.quantile(0.95), q.quantile(0.99), rank_err);
  }
  std::printf("exact distinct counts match: %s; worst quantile rank error "
              "%.3f %% (bound 1 %%)\n",
              [&] {
                for (auto& k : res->keys)
                  if (exact_users.of(k).count() != truth.at(k.key).first.size())
                    return "no";
                return "yes";
              }(),
              worst);
  return res->balanced() && worst <= 1.0 ? 0 : 1;
}
