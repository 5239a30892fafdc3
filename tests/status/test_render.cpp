// What the status server serves, as text: the Prometheus exposition format
// (escaping, every family once with HELP and TYPE, histograms), the /status
// JSON and the scrubbing of secrets. No server, no actor system.

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "flow/status_render.hpp"

namespace {

/// A job's statistics with a bit of everything.
flow::status_entry sample_entry(const std::string& name,
                                const std::string& source_name) {
  flow::status_entry e;
  e.name = name;
  auto& s = e.stats;
  s.state = flow::job_state::running;
  s.started = std::chrono::system_clock::now() - std::chrono::seconds(3);
  s.elapsed_seconds = 3;
  flow::source_stats src;
  src.name = source_name;
  src.total = 1000;
  src.emitted = 600;
  src.aggregated = 500;
  src.rejected = 40;
  src.dead_lettered = 10;
  src.batches = 6;
  src.merged = 5;
  src.in_flight = 1;
  src.credit = 4;
  src.credit_wait_seconds = 0.25;
  s.sources.push_back(src);
  src.name = source_name + " (2)";
  src.total.reset();
  s.sources.push_back(src);
  s.batches_dispatched = 12;
  s.reducers = 2;
  s.reducers_busy = 1;
  s.keys = 3;
  s.manager_shards = 2;
  s.rejections = {{"bad \"price\"", 30}, {"back\\slash\nnewline", 50}};
  s.reduce_counts = {1, 2, 0, 0, 0, 0, 0, 0, 0, 7};
  s.reduce_seconds = 71.5;
  s.nodes.push_back({"node-a", 2, 0, 1, 4});
  e.history = {{0.5, 100}, {1.0, 300}, {3.0, 1200}};
  return e;
}

/// The metric names of the `# TYPE` lines, in order.
std::vector<std::string> type_lines(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("# TYPE ", 0) == 0)
      result.push_back(line.substr(7, line.find(' ', 7) - 7));
  return result;
}

} // namespace

TEST_CASE("metrics: label values escape backslash and double quote and newline",
          "[status][metrics]") {
  using w = flow::prometheus_writer;
  CHECK(w::escape_label("plain") == "plain");
  CHECK(w::escape_label("a\"b") == "a\\\"b");
  CHECK(w::escape_label("a\\b") == "a\\\\b");
  CHECK(w::escape_label("a\nb") == "a\\nb");
  CHECK(w::escape_label("\\\"\n") == "\\\\\\\"\\n");
  CHECK(w::escape_help("x\\y\nz \"q\"") == "x\\\\y\\nz \"q\"");
  flow::prometheus_writer out;
  out.family("flow_test_total", "counter", "A test.");
  out.sample({{"reason", "say \"hi\"\nback\\slash"}}, 3);
  CHECK(out.str()
        == "# HELP flow_test_total A test.\n"
           "# TYPE flow_test_total counter\n"
           "flow_test_total{reason=\"say \\\"hi\\\"\\nback\\\\slash\"} 3\n");
}

TEST_CASE("metrics: a family cannot be emitted twice and samples need one",
          "[status][metrics]") {
  flow::prometheus_writer out;
  CHECK_THROWS_AS(out.sample({}, 1), std::logic_error);
  out.family("flow_x", "gauge", "x");
  CHECK_THROWS_AS(out.family("flow_x", "gauge", "x again"),
                  std::logic_error);
  CHECK_THROWS_AS(out.family("9flow", "gauge", "bad name"),
                  std::logic_error);
  CHECK_THROWS_AS(out.family("flow-x", "gauge", "bad name"),
                  std::logic_error);
}

TEST_CASE("metrics: values print exactly and special values as Prometheus "
          "spells them",
          "[status][metrics]") {
  using w = flow::prometheus_writer;
  CHECK(w::format_value(0) == "0");
  CHECK(w::format_value(12345678901234.0) == "12345678901234");
  CHECK(w::format_value(0.25) == "0.25");
  CHECK(w::format_value(0.1) == "0.1");
  CHECK(w::format_value(1.0 / 0.0) == "+Inf");
  CHECK(w::format_value(-1.0 / 0.0) == "-Inf");
  CHECK(w::format_value(0.0 / 0.0) == "NaN");
}

TEST_CASE("metrics: every family once with HELP before TYPE for two jobs",
          "[status][metrics]") {
  auto text = flow::render_metrics(
    {sample_entry("job \"one\"", "src\\1"), sample_entry("job two", "src")});
  auto names = type_lines(text);
  std::set<std::string> unique(names.begin(), names.end());
  CHECK(unique.size() == names.size());
  CHECK(unique.count("flow_elements_emitted_total") == 1);
  CHECK(unique.count("flow_batch_reduce_seconds") == 1);
  CHECK(unique.count("flow_source_credit_wait_seconds_total") == 1);
  CHECK(unique.count("flow_manager_shards") == 1);
  CHECK(text.find("flow_manager_shards{job=\"job two\"} 2\n")
        != std::string::npos);
  // Escaped label values of the job and the rejection reasons.
  CHECK(text.find("job=\"job \\\"one\\\"\"") != std::string::npos);
  CHECK(text.find("source=\"src\\\\1\"") != std::string::npos);
  CHECK(text.find("reason=\"back\\\\slash\\nnewline\"") != std::string::npos);
  // No raw newline inside a sample line: every line is a comment or a
  // sample that starts with flow_.
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line))
    CHECK((line.rfind("# HELP flow_", 0) == 0
           || line.rfind("# TYPE flow_", 0) == 0
           || line.rfind("flow_", 0) == 0));
}

TEST_CASE("metrics: the reduce-time histogram is cumulative and ends with "
          "+Inf equal to its count",
          "[status][metrics]") {
  auto text = flow::render_metrics({sample_entry("j", "s")});
  CHECK(text.find("flow_batch_reduce_seconds_bucket{job=\"j\",le=\"0.001\"} 1\n")
        != std::string::npos);
  CHECK(text.find("flow_batch_reduce_seconds_bucket{job=\"j\",le=\"0.005\"} 3\n")
        != std::string::npos);
  CHECK(text.find("flow_batch_reduce_seconds_bucket{job=\"j\",le=\"+Inf\"} 10\n")
        != std::string::npos);
  CHECK(text.find("flow_batch_reduce_seconds_count{job=\"j\"} 10\n")
        != std::string::npos);
  CHECK(text.find("flow_batch_reduce_seconds_sum{job=\"j\"} 71.5\n")
        != std::string::npos);
}

TEST_CASE("metrics: no job renders every family without samples",
          "[status][metrics]") {
  auto text = flow::render_metrics({});
  CHECK_FALSE(type_lines(text).empty());
  CHECK(text.find("\nflow_") == std::string::npos);
}

TEST_CASE("secrets: passwords in URIs and key=value strings are scrubbed",
          "[status][redact]") {
  CHECK(flow::scrub_secrets("host=db password=hunter2 dbname=x")
        == "host=db password=*** dbname=x");
  CHECK(flow::scrub_secrets("host=db PASSWORD = 'a b\\'c' user=u")
        == "host=db PASSWORD = *** user=u");
  CHECK(flow::scrub_secrets("sslpassword=keypass sslmode=verify-full")
        == "sslpassword=*** sslmode=verify-full");
  CHECK(flow::scrub_secrets("postgresql://u:hunter2@db:5432/app")
        == "postgresql://u:***@db:5432/app");
  CHECK(flow::scrub_secrets("postgres://db/app?user=u&password=hunter2&x=1")
        == "postgres://db/app?user=u&password=***&x=1");
  CHECK(flow::scrub_secrets("postgresql://u@db/app") == "postgresql://u@db/app");
  CHECK(flow::scrub_secrets("no secret here") == "no secret here");
  CHECK(flow::scrub_secrets("mypassword=x") == "mypassword=x");
}

TEST_CASE("status json: the accounting identity and progress and ETA and the "
          "fields the docs list",
          "[status][json]") {
  auto text = flow::render_status_json({sample_entry("j", "s")},
                                       {{"program", "test"}});
  auto doc = nlohmann::json::parse(text);
  CHECK(doc["version"] == 1);
  CHECK(doc["process"]["program"] == "test");
  auto& j = doc["jobs"][0];
  CHECK(j["state"] == "running");
  auto& a = j["accounting"];
  CHECK(a["emitted"].get<std::uint64_t>()
        == a["aggregated"].get<std::uint64_t>()
             + a["rejected"].get<std::uint64_t>()
             + a["dead_lettered"].get<std::uint64_t>()
             + a["in_flight"].get<std::uint64_t>());
  CHECK(a["emitted"] == 1200);
  // One source does not know its total: neither does the job.
  CHECK(j["total"].is_null());
  CHECK(j["sources"][0]["total"] == 1000);
  CHECK(j["sources"][0]["progress"] == 0.6);
  CHECK(j["sources"][0]["eta_seconds"].is_number());
  CHECK(j["sources"][1]["total"].is_null());
  CHECK(j["throughput"]["now_per_second"].get<double>() > 0);
  CHECK(j["rejections"][0]["reason"] == "bad \"price\"");
  CHECK(j["nodes"][0]["name"] == "node-a");
  CHECK(j["reduce_time"]["counts"].size() == 10);
  CHECK(j["result"].is_null());
  CHECK(j["keys"] == 3);
  CHECK(j["manager_shards"] == 2);
  for (auto field : {"name", "started", "elapsed_seconds", "throughput",
                     "progress", "eta_seconds", "batches", "credit",
                     "reducers", "nodes", "keys", "written", "history",
                     "dead_letters", "errors"})
    CHECK(j.contains(field));
}

TEST_CASE("status json: secrets in names and errors and dead letters are "
          "scrubbed",
          "[status][redact]") {
  auto e = sample_entry("load postgresql://u:topsecret1@db/app",
                        "table t (host=db password=topsecret2)");
  e.stats.errors.push_back("cannot connect: sslpassword=topsecret3");
  flow::dead_letter d;
  d.value = "password=topsecret4";
  d.error = "x";
  e.stats.dead_letters.push_back(d);
  auto json = flow::render_status_json({e}, {{"db", "password=topsecret5"}});
  auto metrics = flow::render_metrics({e});
  for (auto secret : {"topsecret1", "topsecret2", "topsecret3", "topsecret4",
                      "topsecret5"}) {
    CHECK(json.find(secret) == std::string::npos);
    CHECK(metrics.find(secret) == std::string::npos);
  }
  CHECK(nlohmann::json::parse(json)["jobs"][0]["name"]
        == "load postgresql://u:***@db/app");
}

TEST_CASE("status page: self-contained with nothing fetched from another host",
          "[status][page]") {
  auto& page = flow::status_page();
  CHECK(page.find("<!DOCTYPE html>") == 0);
  CHECK(page.find("http://") == std::string::npos);
  CHECK(page.find("https://") == std::string::npos);
  CHECK(page.find("//cdn") == std::string::npos);
  CHECK(page.find("fetch(\"/status\"") != std::string::npos);
}

TEST_CASE("status json: an estimated total is flagged, its progress stays "
          "below 1 until the source is done, and its ETA is unknown past it",
          "[status][json][estimate]") {
  auto e = sample_entry("j", "partition");
  auto& srcs = e.stats.sources;
  srcs[0].total_is_estimate = true;
  srcs[0].emitted = 1100; // more than the estimate of 1000
  srcs[1].total = 500;
  auto doc = nlohmann::json::parse(flow::render_status_json({e}, {}));
  auto& j = doc["jobs"][0];
  CHECK(j["sources"][0]["total_estimated"] == true);
  CHECK(j["sources"][0]["progress"] == 0.99);
  CHECK(j["sources"][0]["eta_seconds"].is_null());
  CHECK(j["sources"][1]["total_estimated"] == false);
  CHECK(j["sources"][1]["progress"] == 1.0);
  CHECK(j["total"] == 1500);
  CHECK(j["total_estimated"] == true);
  CHECK(j["progress"].get<double>() <= 0.99);
  // Once done, an estimated source is complete.
  srcs[0].done = true;
  doc = nlohmann::json::parse(flow::render_status_json({e}, {}));
  CHECK(doc["jobs"][0]["sources"][0]["progress"] == 1.0);
  CHECK(doc["jobs"][0]["sources"][0]["eta_seconds"] == 0.0);
}

TEST_CASE("metrics and status: a sink with several outputs has one rows "
          "written series and one status entry per output table",
          "[status][metrics][outputs]") {
  auto e = sample_entry("clean", "partition 1/1");
  e.stats.sink = "tables public.c, public.r";
  e.stats.written = 7;
  e.stats.outputs = {{"public.c", 5}, {"public.\"r\"\nx", 2}};
  auto text = flow::render_metrics({e});
  CHECK(text.find("flow_rows_written_total{job=\"clean\",table=\"public.c\"} "
                  "5\n")
        != std::string::npos);
  // Label values escape quotes and newlines.
  CHECK(text.find("flow_rows_written_total{job=\"clean\",table=\"public."
                  "\\\"r\\\"\\nx\"} 2\n")
        != std::string::npos);
  // Not also the sink's combined series.
  CHECK(text.find("table=\"tables public.c, public.r\"") == std::string::npos);
  auto names = type_lines(text);
  CHECK(std::count(names.begin(), names.end(), "flow_rows_written_total")
        == 1);
  auto doc = nlohmann::json::parse(flow::render_status_json({e}, {}));
  auto& outs = doc["jobs"][0]["outputs"];
  REQUIRE(outs.size() == 2);
  CHECK(outs[0]["table"] == "public.c");
  CHECK(outs[0]["written"] == 5);
  CHECK(outs[1]["written"] == 2);
  CHECK(doc["jobs"][0]["written"] == 7);
}

TEST_CASE("metrics: rows written are labelled by output table, the estimate "
          "flag is exported, and every family is emitted once",
          "[status][metrics][estimate]") {
  auto one = sample_entry("job one", "partition 1/2");
  one.stats.sources[0].total_is_estimate = true;
  one.stats.sink = "table public.\"out\"";
  one.stats.written = 42;
  auto two = sample_entry("job two", "list");
  auto text = flow::render_metrics({one, two});
  auto names = type_lines(text);
  std::set<std::string> unique(names.begin(), names.end());
  CHECK(unique.size() == names.size());
  CHECK(unique.count("flow_rows_written_total") == 1);
  CHECK(unique.count("flow_source_elements_expected") == 1);
  CHECK(unique.count("flow_source_elements_expected_estimated") == 1);
  CHECK(text.find("flow_rows_written_total{job=\"job one\",table=\"table "
                  "public.\\\"out\\\"\"} 42\n")
        != std::string::npos);
  CHECK(text.find("flow_rows_written_total{job=\"job two\"} 0\n")
        != std::string::npos);
  CHECK(text.find("flow_source_elements_expected_estimated{job=\"job one\","
                  "source=\"partition 1/2\"} 1\n")
        != std::string::npos);
  CHECK(text.find("flow_source_elements_expected_estimated{job=\"job two\","
                  "source=\"list\"} 0\n")
        != std::string::npos);
  // Sources without a total have neither sample.
  CHECK(text.find("flow_source_elements_expected_estimated{job=\"job two\","
                  "source=\"list (2)\"}")
        == std::string::npos);
  // Every sample belongs to the family declared last before it.
  std::istringstream in{text};
  std::string line;
  std::string family;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
    } else if (line.rfind("flow_", 0) == 0) {
      INFO(line);
      CHECK(line.rfind(family, 0) == 0);
    }
  }
}

TEST_CASE("status json: task sources report their rows and node and the job "
          "sums them in rows apart from its elements",
          "[status][json][task]") {
  auto e = sample_entry("j", "partition 1/2");
  auto& srcs = e.stats.sources;
  flow::task_stats done;
  done.state = flow::task_state::done;
  done.node = "node-a";
  done.rows_total = 1000;
  done.rows_total_is_estimate = true;
  done.rows_read = 1100;
  done.rows_aggregated = 1090;
  done.rows_rejected = 10;
  srcs[0].task = done;
  flow::task_stats running;
  running.state = flow::task_state::running;
  running.node = "node-b";
  running.rows_total = 3000;
  running.rows_total_is_estimate = true;
  srcs[1].task = running;
  auto doc = nlohmann::json::parse(flow::render_status_json({e}, {}));
  auto& j = doc["jobs"][0];
  auto& t0 = j["sources"][0]["task"];
  CHECK(t0["state"] == "done");
  CHECK(t0["node"] == "node-a");
  CHECK(t0["local"] == false);
  CHECK(t0["rows_total"] == 1000);
  CHECK(t0["rows_total_estimated"] == true);
  CHECK(t0["rows_read"] == 1100);
  CHECK(t0["rows_rejected"] == 10);
  CHECK(j["sources"][1]["task"]["state"] == "running");
  CHECK(j["sources"][1]["task"]["rows_read"] == 0);
  auto& k = j["tasks"];
  CHECK(k["count"] == 2);
  CHECK(k["done"] == 1);
  CHECK(k["running"] == 1);
  CHECK(k["queued"] == 0);
  CHECK(k["rows_total"] == 4000);
  CHECK(k["rows_total_estimated"] == true);
  CHECK(k["rows_read"] == 1100);
  CHECK(k["progress"] == 1100.0 / 4000.0);
  CHECK(k["eta_seconds"].get<double>() > 0);
  // The elements' fields are untouched by the tasks.
  CHECK(j["total"].is_null());
  CHECK(j["sources"][0]["total"] == 1000);
  CHECK(j["accounting"]["emitted"] == 1200);
  // Every task done: complete, whatever the estimate said.
  srcs[1].task->state = flow::task_state::done;
  srcs[1].task->rows_read = 2000;
  doc = nlohmann::json::parse(flow::render_status_json({e}, {}));
  CHECK(doc["jobs"][0]["tasks"]["progress"] == 1.0);
  CHECK(doc["jobs"][0]["tasks"]["eta_seconds"] == 0.0);
  // No estimate: tasks done over tasks.
  srcs[1].task->state = flow::task_state::queued;
  srcs[1].task->node.clear();
  srcs[1].task->rows_total.reset();
  doc = nlohmann::json::parse(flow::render_status_json({e}, {}));
  CHECK(doc["jobs"][0]["tasks"]["rows_total"].is_null());
  CHECK(doc["jobs"][0]["tasks"]["progress"] == 0.5);
  CHECK(doc["jobs"][0]["sources"][1]["task"]["node"].is_null());
  // A job without task sources has none.
  auto plain = sample_entry("p", "list");
  doc = nlohmann::json::parse(flow::render_status_json({plain}, {}));
  CHECK(doc["jobs"][0]["tasks"].is_null());
  CHECK(doc["jobs"][0]["sources"][0]["task"].is_null());
}

TEST_CASE("metrics: task sources export expected and read rows and their "
          "state and node and other sources nothing",
          "[status][metrics][task]") {
  auto e = sample_entry("j", "partition 1/2");
  flow::task_stats t;
  t.state = flow::task_state::done;
  t.node = "node-a";
  t.rows_total = 1000;
  t.rows_total_is_estimate = true;
  t.rows_read = 990;
  t.rows_aggregated = 980;
  t.rows_rejected = 10;
  e.stats.sources[0].task = t;
  auto text = flow::render_metrics({e});
  auto names = type_lines(text);
  std::set<std::string> unique(names.begin(), names.end());
  CHECK(unique.size() == names.size());
  const std::string lbl = "{job=\"j\",source=\"partition 1/2\"}";
  CHECK(text.find("flow_task_rows_expected" + lbl + " 1000\n")
        != std::string::npos);
  CHECK(text.find("flow_task_rows_expected_estimated" + lbl + " 1\n")
        != std::string::npos);
  CHECK(text.find("flow_task_rows_read_total" + lbl + " 990\n")
        != std::string::npos);
  CHECK(text.find("flow_task_rows_aggregated_total" + lbl + " 980\n")
        != std::string::npos);
  CHECK(text.find("flow_task_rows_rejected_total" + lbl + " 10\n")
        != std::string::npos);
  CHECK(text.find("flow_task_state{job=\"j\",source=\"partition 1/2\","
                  "state=\"done\"} 1\n")
        != std::string::npos);
  CHECK(text.find("flow_task_state{job=\"j\",source=\"partition 1/2\","
                  "state=\"running\"} 0\n")
        != std::string::npos);
  CHECK(text.find("flow_task_node{job=\"j\",source=\"partition 1/2\","
                  "node=\"node-a\"} 1\n")
        != std::string::npos);
  // The second source is no task: no task sample names it.
  CHECK(text.find("source=\"partition 1/2 (2)\"}", text.find("flow_task_"))
          > text.find("# TYPE flow_job_state"));
}

TEST_CASE("status json: a result's keys_total counts every key, also those "
          "it does not hold",
          "[status][json]") {
  auto e = sample_entry("j", "s");
  e.stats.state = flow::job_state::done;
  flow::job_result r;
  for (std::int64_t i = 0; i < 3; ++i)
    r.keys.push_back({flow::key{i}, {}, 0});
  // The statistics' result holds the first keys; key_count counts all
  // (or the keys went to on_result_key).
  r.key_count = 2'000'000;
  e.stats.result = r;
  auto doc = nlohmann::json::parse(flow::render_status_json({e}, {}));
  auto& res = doc["jobs"][0]["result"];
  CHECK(res["keys_total"] == 2'000'000);
  CHECK(res["keys"].size() == 3);
  // A result built by hand, without key_count.
  r.key_count = 0;
  e.stats.result = r;
  doc = nlohmann::json::parse(flow::render_status_json({e}, {}));
  CHECK(doc["jobs"][0]["result"]["keys_total"] == 3);
}
