// flow::net tasks in one process, without worker nodes: a task source runs
// its task here when there is no coordinator or no node, the manager's job
// merges the tasks' keys, the ledger sums their accounting, and a task whose
// result does not account for its elements fails the job.

#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/error.hpp"
#include "flow/net/net.hpp"
#include "flow/pipeline.hpp"

namespace {

/// A task that "reads" payload = "K N": N elements of value 1 under key K,
/// or, for payload "bad", claims more elements than it accounts for.
caf::expected<flow::job_result> fake_task(caf::actor_system&,
                                          const std::string& payload) {
  flow::job_result r;
  r.final = true;
  if (payload == "bad") {
    r.emitted = 10;
    r.aggregated = 9;
    return r;
  }
  auto sp = payload.find(' ');
  std::int64_t key = std::stoll(payload.substr(0, sp));
  auto n = std::stoull(payload.substr(sp + 1));
  flow::aggregate a;
  for (std::uint64_t i = 0; i < n; ++i)
    a.add(1);
  r.keys.push_back({flow::key{key}, a, 0});
  r.emitted = n + 1;
  r.aggregated = n;
  r.rejected = 1;
  r.rejections = {{"odd", 1}};
  return r;
}

struct net_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  net_system() {
    flow::net::security sec;
    sec.insecure = true;
    flow::net::configure(cfg, sec);
    sys = std::make_unique<caf::actor_system>(cfg);
    flow::net::register_task("test.fake", fake_task);
  }
};

} // namespace

TEST_CASE("tasks: with no worker node, task sources run their tasks here "
          "and the manager merges the keys",
          "[net][tasks]") {
  net_system ns;
  auto& sys = *ns.sys;
  flow::net::security sec;
  sec.insecure = true;
  auto coord = flow::net::coordinator::listen(sys, {"127.0.0.1", 0}, sec);
  REQUIRE(coord);
  SECTION("run_task says there is no node") {
    auto r = coord->run_task("test.fake", "1 5");
    REQUIRE(!r);
    CHECK(flow::code_of(r.error()) == flow::errc::no_workers);
    CHECK(flow::net::no_worker_node(r.error()));
    CHECK(!flow::net::no_worker_node(flow::make_error(flow::errc::actor_down,
                                                      "something else")));
  }
  SECTION("task sources fall back to this process") {
    auto ledger = std::make_shared<flow::net::task_ledger>();
    flow::pipeline<flow::key_result> p;
    p.add(flow::net::task_source(sys, &*coord, "test.fake", "7 5", "t1",
                                 ledger));
    p.add(flow::net::task_source(sys, &*coord, "test.fake", "7 3", "t2",
                                 ledger));
    p.add(flow::net::task_source(sys, nullptr, "test.fake", "8 2", "t3",
                                 ledger));
    auto res = p.reduce(flow::net::merge_key_results()).run(sys);
    REQUIRE(res);
    REQUIRE(res->keys.size() == 2);
    CHECK(res->find(flow::key{std::int64_t{7}})->agg.count == 8);
    CHECK(res->find(flow::key{std::int64_t{7}})->agg.sum == 8);
    CHECK(res->find(flow::key{std::int64_t{8}})->agg.count == 2);
    auto totals = ledger->totals();
    CHECK(totals.emitted == 13);
    CHECK(totals.aggregated == 10);
    CHECK(totals.rejected == 3);
    CHECK(totals.balanced());
    CHECK(totals.rejections.size() == 1);
    CHECK(totals.rejections.front().second == 3);
    CHECK(ledger->local_tasks() == 3);
    CHECK(ledger->remote_tasks() == 0);
  }
  SECTION("a task that does not account for its elements fails the job") {
    auto ledger = std::make_shared<flow::net::task_ledger>();
    flow::pipeline<flow::key_result> p;
    p.add(flow::net::task_source(sys, &*coord, "test.fake", "bad", "broken",
                                 ledger));
    auto res = p.reduce(flow::net::merge_key_results()).run(sys);
    REQUIRE(!res);
    CHECK(flow::code_of(res.error()) == flow::errc::accounting_mismatch);
    CHECK(flow::describe(res.error()).find("broken") != std::string::npos);
  }
  SECTION("an unknown task kind is a configuration error") {
    auto r = flow::net::run_task_here(sys, "test.nope", "");
    REQUIRE(!r);
    CHECK(flow::code_of(r.error()) == flow::errc::invalid_config);
    CHECK(flow::describe(r.error()).find("test.nope") != std::string::npos);
  }
}
