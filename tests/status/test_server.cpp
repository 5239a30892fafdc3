// The status server over HTTP, in one process: a slowed job, its statistics
// scraped while it runs (counters never go down) and at the end (they equal
// the job's result), secrets never served, requests bounded and
// rate-limited per connection.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/flow.hpp"
#include "flow/status_server.hpp"

using namespace std::chrono_literals;

namespace {

/// Sums, sleeping per batch, and rejects negative values.
flow::reducer<std::int64_t> slow_sum(std::chrono::milliseconds delay) {
  return [delay](const flow::batch_ref<std::int64_t>& b, flow::partial& out) {
    std::this_thread::sleep_for(delay);
    for (auto x : b.items) {
      if (x < 0)
        out.reject("negative \"value\"");
      else
        out.add(b.label, x);
    }
  };
}

/// A source whose name holds a connection string with secrets.
class secret_source final : public flow::source_impl<std::int64_t> {
public:
  explicit secret_source(std::vector<std::int64_t> xs) : xs_(std::move(xs)) {
  }
  flow::slice<std::int64_t> next(std::size_t max) override {
    std::vector<std::int64_t> out;
    while (pos_ < xs_.size() && out.size() < max)
      out.push_back(xs_[pos_++]);
    return flow::slice<std::int64_t>::owning(std::move(out));
  }
  bool exhausted() const override {
    return pos_ == xs_.size();
  }
  std::string name() const override {
    return "postgresql://loader:pw-in-uri@db/app?sslpassword=pw-ssl "
           "host=db password=pw-pair";
  }

private:
  std::vector<std::int64_t> xs_;
  std::size_t pos_ = 0;
};

/// The samples of a metrics text, by "name{labels}".
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> result;
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#')
      continue;
    auto sp = line.rfind(' ');
    result[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return result;
}

/// The value of the sample whose key starts with `prefix`, summed.
double total(const std::map<std::string, double>& xs,
             const std::string& prefix) {
  double sum = 0;
  for (auto& [k, v] : xs)
    if (k.rfind(prefix, 0) == 0)
      sum += v;
  return sum;
}

std::vector<std::int64_t> values(std::size_t n, bool with_negatives) {
  std::vector<std::int64_t> xs(n);
  for (std::size_t i = 0; i < n; ++i)
    xs[i] = with_negatives && i % 7 == 0 ? -1 : static_cast<std::int64_t>(i);
  return xs;
}

} // namespace

TEST_CASE("status server: counters scraped while a job runs never go down "
          "and end equal to its result",
          "[status][server]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  flow::status_server server;
  REQUIRE(server.start({}).empty());
  REQUIRE(server.port() != 0);
  auto xs = std::make_shared<const std::vector<std::int64_t>>(
    values(40000, true));
  flow::options opts;
  opts.stats_interval = 50ms;
  opts.batch_size = 500;
  opts.reducers = 2;
  auto started = flow::pipeline<std::int64_t>{}
                   .add(flow::from_shared(xs), "all")
                   .with(opts)
                   .reduce(slow_sum(20ms))
                   .start(sys);
  REQUIRE(started);
  server.watch(*started, "slow sum");
  httplib::Client client{"127.0.0.1", server.port()};
  std::map<std::string, double> last;
  int scrapes = 0;
  while (!started->done()) {
    auto res = client.Get("/metrics");
    REQUIRE(res);
    REQUIRE(res->status == 200);
    CHECK(res->get_header_value("Content-Type").find("version=0.0.4")
          != std::string::npos);
    auto now = samples(res->body);
    for (auto& [k, v] : now)
      if (k.find("_total") != std::string::npos
          || k.find("_bucket") != std::string::npos
          || k.find("_count") != std::string::npos) {
        auto i = last.find(k);
        if (i != last.end())
          CHECK(v >= i->second);
      }
    last = std::move(now);
    ++scrapes;
    std::this_thread::sleep_for(150ms);
  }
  CHECK(scrapes >= 3);
  auto res = started->wait();
  REQUIRE(res);
  auto final_metrics = samples(client.Get("/metrics")->body);
  CHECK(total(final_metrics, "flow_elements_emitted_total{")
        == static_cast<double>(res->emitted));
  CHECK(total(final_metrics, "flow_elements_aggregated_total{")
        == static_cast<double>(res->aggregated));
  CHECK(total(final_metrics, "flow_elements_rejected_total{")
        == static_cast<double>(res->rejected));
  CHECK(total(final_metrics, "flow_rejections_total{")
        == static_cast<double>(res->rejected));
  CHECK(total(final_metrics, "flow_batches_merged_total{")
        == static_cast<double>(res->batches));
  CHECK(total(final_metrics, "flow_batch_reduce_seconds_count{")
        == static_cast<double>(res->batches));
  CHECK(final_metrics["flow_job_state{job=\"slow sum\",state=\"done\"}"] == 1);
  auto status = nlohmann::json::parse(client.Get("/status")->body);
  auto& j = status["jobs"][0];
  CHECK(j["state"] == "done");
  CHECK(j["accounting"]["emitted"] == res->emitted);
  CHECK(j["result"]["aggregated"] == res->aggregated);
  CHECK(j["result"]["keys"][0]["sum"] == flow::to_string(res->keys[0].agg.sum));
  CHECK(j["progress"] == 1.0);
  // job::stats() says the same.
  auto stats = started->stats();
  CHECK(stats.state == flow::job_state::done);
  CHECK(stats.emitted() == res->emitted);
  REQUIRE(stats.result);
  CHECK(stats.result->aggregated == res->aggregated);
}

TEST_CASE("status server: passwords of connection strings never appear in "
          "/status or /metrics or the page",
          "[status][redact]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  flow::status_server server;
  REQUIRE(server.start({}).empty());
  server.set_info("db", "host=db password=pw-info");
  auto started = flow::pipeline<std::int64_t>{}
                   .add(flow::source<std::int64_t>{
                     std::make_unique<secret_source>(values(1000, false))})
                   .batch_size(100)
                   .reduce(slow_sum(1ms))
                   .start(sys);
  REQUIRE(started);
  server.watch(*started, "load postgresql://u:pw-job@db/app");
  httplib::Client client{"127.0.0.1", server.port()};
  auto check = [&] {
    for (auto path : {"/status", "/metrics", "/"}) {
      auto res = client.Get(path);
      REQUIRE(res);
      for (auto secret : {"pw-in-uri", "pw-ssl", "pw-pair", "pw-info",
                          "pw-job"})
        CHECK(res->body.find(secret) == std::string::npos);
    }
  };
  check();
  REQUIRE(started->wait());
  std::this_thread::sleep_for(50ms);
  check();
  CHECK(client.Get("/status")->body.find("loader:***@db") != std::string::npos);
}

TEST_CASE("status server: oversized requests are refused and one "
          "connection is rate-limited",
          "[status][server]") {
  flow::status_server server;
  flow::status_server::settings cfg;
  cfg.requests_per_second = 5;
  REQUIRE(server.start(cfg).empty());
  httplib::Client client{"127.0.0.1", server.port()};
  client.set_keep_alive(true);
  httplib::Headers big{{"X-Big", std::string(9000, 'x')}};
  auto res = client.Get("/status", big);
  // Refused either by httplib's own header limit (a closed connection) or
  // by the server's bound (431).
  CHECK((!res || res->status == 431 || res->status == 400));
  int limited = 0;
  int passed = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 40; ++i) {
    auto r = client.Get("/metrics");
    REQUIRE(r);
    if (r->status == 429) {
      ++limited;
      CHECK(r->get_header_value("Retry-After") == "1");
    } else {
      ++passed;
    }
  }
  auto elapsed = std::chrono::duration<double>(
                   std::chrono::steady_clock::now() - t0)
                   .count();
  // A burst of 2 x 5, then 5 per second: however slow the machine, no more
  // passed, and (40 requests in less than 6 s) some were refused.
  CHECK(passed <= 10 + 5 * elapsed + 1);
  if (elapsed < 5.5)
    CHECK(limited >= 1);
  // Another connection is not affected by the first one's limit.
  httplib::Client other{"127.0.0.1", server.port()};
  auto r = other.Get("/status");
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("status server: a port in use is an error and not a crash "
          "and loopback is recognised",
          "[status][server]") {
  flow::status_server a;
  REQUIRE(a.start({}).empty());
  flow::status_server b;
  flow::status_server::settings cfg;
  cfg.port = a.port();
  CHECK_FALSE(b.start(cfg).empty());
  CHECK(flow::status_server::is_loopback("127.0.0.1"));
  CHECK(flow::status_server::is_loopback("::1"));
  CHECK(flow::status_server::is_loopback("localhost"));
  CHECK_FALSE(flow::status_server::is_loopback("0.0.0.0"));
  CHECK_FALSE(flow::status_server::is_loopback("192.168.1.2"));
}
