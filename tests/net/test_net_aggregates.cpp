// Every built-in aggregator state, fed from elements of a user struct, through
// a worker node: a manager and a node in two actor systems of this process
// talking over loopback (so batches of the struct and the partial states
// really are serialised), compared with a sequential reference.

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/flow.hpp"
#include "flow/net/net.hpp"

namespace {

/// A user struct crossing processes through its inspect function.
struct sale {
  std::string city;
  std::int64_t at = 0;
  std::int64_t cents = 0;
  std::int64_t price_scaled = 0; // cents as a decimal with scale 2
  std::uint64_t ratio_bits = 0;  // a double, sent as its bits (see docs)
  std::string user;

  double ratio() const {
    double x;
    std::memcpy(&x, &ratio_bits, sizeof x);
    return x;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, sale& x) {
    return f(caf::meta::type_name("test.sale"), x.city, x.at, x.cents,
             x.price_scaled, x.ratio_bits, x.user);
  }
};

/// The columns: every built-in state.
struct columns {
  flow::aggregators aggs;
  flow::column<flow::int_moments> moments = aggs.add("moments",
                                                     flow::int_moments{});
  flow::column<flow::double_stats> ratio = aggs.add("ratio",
                                                    flow::double_stats{});
  flow::column<flow::decimal_sum> price = aggs.add("price",
                                                   flow::decimal_sum{});
  flow::column<flow::distinct_count> users = aggs.add("users",
                                                      flow::distinct_count{});
  flow::column<flow::hll> users_approx = aggs.add("users~", flow::hll{});
  flow::column<flow::kll> quantiles = aggs.add("q", flow::kll{});
  flow::column<flow::last_by<std::string>> latest
    = aggs.add("latest", flow::last_by<std::string>{});
  flow::column<flow::first_by<std::string>> first
    = aggs.add("first", flow::first_by<std::string>{});
  flow::column<flow::top_k<std::string>> top = aggs.add(
    "top", flow::top_k<std::string>{3});
  flow::column<flow::histogram> hist = aggs.add(
    "hist", flow::histogram{{-1000, 0, 1000, 100000}});

  void add(flow::aggregate& row, const sale& s) const {
    row.add(s.cents);
    moments.at(row).add(s.cents);
    ratio.at(row).add(s.ratio());
    price.at(row).add(*flow::decimal::make(s.price_scaled, 2));
    users.at(row).add(s.user);
    users_approx.at(row).add(s.user);
    quantiles.at(row).add(s.cents);
    latest.at(row).add(s.at, s.user);
    first.at(row).add(s.at, s.user);
    top.at(row).add(s.cents, s.user);
    hist.at(row).add(s.cents);
  }
};

flow::reducer<sale> reducer_of(std::shared_ptr<const columns> cols,
                               std::chrono::milliseconds delay) {
  return [cols, delay](const flow::batch_ref<sale>& b, flow::partial& out) {
    if (delay.count() > 0)
      std::this_thread::sleep_for(delay);
    for (auto& s : b.items)
      cols->add(out.row(s.city), s);
  };
}

std::vector<sale> make_sales(std::size_t n) {
  std::mt19937_64 gen{17};
  const char* cities[] = {"Graz", "Bern", "Turku"};
  std::vector<sale> xs;
  for (std::size_t i = 0; i < n; ++i) {
    sale s;
    s.city = cities[gen() % 3];
    s.at = static_cast<std::int64_t>(gen() % 1000);
    s.cents = static_cast<std::int64_t>(gen() % 200001) - 100000;
    s.price_scaled = s.cents;
    double r = gen() % 7 == 0 ? -0.0 : std::ldexp(1.0 + (gen() % 100) / 100.0,
                                                 static_cast<int>(gen() % 600) - 300);
    std::memcpy(&s.ratio_bits, &r, sizeof r);
    s.user = "u" + std::to_string(gen() % 500);
    xs.push_back(std::move(s));
  }
  return xs;
}

std::unique_ptr<caf::actor_system> make_system() {
  auto cfg = std::make_unique<caf::actor_system_config>();
  flow::net::security sec;
  sec.insecure = true;
  flow::net::configure(*cfg, sec);
  // The config must outlive the system: keep it alive with it.
  static std::vector<std::unique_ptr<caf::actor_system_config>> configs;
  auto& kept = configs.emplace_back(std::move(cfg));
  return std::make_unique<caf::actor_system>(*kept);
}

} // namespace

TEST_CASE("net aggregates: every built-in state through a worker node equals "
          "the sequential reference",
          "[net][aggregates]") {
  auto cols = std::make_shared<const columns>();
  // The worker node runs the reducer registered under this name; the
  // manager's own reducer is slowed down so that the node gets batches.
  flow::net::register_reducer<sale>("test.all_builtins",
                                    reducer_of(cols, {}));
  auto sales = make_sales(30000);
  std::map<flow::key, flow::aggregate> ref;
  for (auto& s : sales)
    cols->add(ref[s.city], s);
  auto manager_sys = make_system();
  auto node_sys = make_system();
  flow::net::security sec;
  sec.insecure = true;
  auto coord = flow::net::coordinator::listen(*manager_sys,
                                              {"127.0.0.1", 0}, sec);
  REQUIRE(coord);
  std::thread node{[&] {
    flow::net::serve(*node_sys, {"127.0.0.1", coord->port()}, sec, 2, "n1");
  }};
  REQUIRE(coord->wait_for_nodes(1, std::chrono::seconds(30)));
  auto started = flow::pipeline<sale>{}
                   .add(flow::from_container(sales))
                   .aggregate_with(cols->aggs)
                   .distribute_as("test.all_builtins")
                   .reducers(1)
                   .batch_size(100)
                   .reduce(reducer_of(cols, std::chrono::milliseconds(5)))
                   .start(*manager_sys);
  REQUIRE(started);
  coord->attach(*started);
  auto res = started->wait();
  {
    // Destroying the coordinator withdraws the entry: the node stops.
    auto gone = std::move(*coord);
  }
  node.join();
  REQUIRE(res);
  CHECK(res->balanced());
  CHECK(res->remote_batches > 0);
  REQUIRE(res->keys.size() == ref.size());
  for (auto& k : res->keys) {
    auto& r = ref.at(k.key);
    INFO(flow::to_string(k.key));
    CHECK(k.agg.sum == r.sum);
    CHECK(cols->moments.of(k) == cols->moments.of(r));
    CHECK(cols->ratio.of(k) == cols->ratio.of(r));
    CHECK(cols->price.of(k) == cols->price.of(r));
    CHECK(cols->users.of(k) == cols->users.of(r));
    CHECK(cols->users_approx.of(k) == cols->users_approx.of(r));
    CHECK(cols->latest.of(k) == cols->latest.of(r));
    CHECK(cols->first.of(k) == cols->first.of(r));
    CHECK(cols->top.of(k) == cols->top.of(r));
    CHECK(cols->hist.of(k) == cols->hist.of(r));
    // The quantile sketch depends on the merge order: same count, and the
    // median within 2 % in rank of the reference sketch's.
    auto& q = cols->quantiles.of(k);
    auto& rq = cols->quantiles.of(r);
    CHECK(q.count() == rq.count());
    auto rank = rq.rank(q.quantile(0.5));
    CHECK(std::fabs(rank - 0.5) <= 0.02);
  }
}
