// Distributed flow-etl on loopback: a manager (flow-etl sum|clean --listen)
// and worker processes (flow-node) over mutual TLS, against this process's
// throwaway PostgreSQL server. Each node reads its own partitions in the
// manager's snapshot and returns only partial aggregates; results and
// tables are compared with the in-process run; faults: a node killed while
// it reads a partition, the manager killed before its commit.

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "etl/clean_nodes.hpp"
#include "etl/clean_rows.hpp"
#include "flow/error.hpp"
#include "flow/pg/connection.hpp"
#include "flow/pg/read.hpp"
#include "json_fields.hpp"
#include "net_support.hpp"
#include "pg_fixture.hpp"
#include "run_program.hpp"

using namespace flow::test;

namespace {

const std::string etl = FLOW_ETL_PATH;
const std::string node = FLOW_NODE_PATH;

std::string q(const std::string& schema, const std::string& table) {
  return flow::pg::table_name{schema, table}.quoted();
}

/// A digest of a whole table's content, ordered by `order`.
std::string digest(const std::string& schema, const std::string& table,
                   const std::string& order = "id") {
  return scalar("SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY "
                + order + "), '')) FROM " + q(schema, table) + " x");
}

/// A schema holding `init`'s tables: `rows` elements (some values NULL are
/// added, so the rows' own accounting is checked too) and `ads` ads.
std::string init_schema(const std::string& hint, const std::string& rows,
                        const std::string& ads) {
  auto schema = fresh_schema(hint);
  auto res = run_program(etl, {"init", "--db", conninfo(), "--schema", schema,
                               "--rows", rows, "--ads", ads, "--seed", "9"});
  INFO(res.err);
  REQUIRE(res.rc == 0);
  exec("INSERT INTO " + q(schema, "elements")
       + " SELECT 900 + g, 7, NULL FROM generate_series(1, 25) g");
  return schema;
}

/// The (key, sum, lists, elements) of flow-etl sum's JSON lines, and
/// whether every line verified.
std::set<std::string> sums_of(const std::string& out, bool& ok) {
  std::set<std::string> result;
  ok = !lines_of(out).empty();
  for (auto& line : lines_of(out)) {
    result.insert(json_field(line, "key") + "=" + json_field(line, "sum") + "/"
                  + json_field(line, "lists") + "/"
                  + json_field(line, "elements"));
    ok = ok && json_field(line, "ok") == "true";
  }
  return result;
}

/// The command line of flow-etl CMD as the manager of worker nodes on a
/// free loopback port, over mutual TLS.
std::vector<std::string> manager_args(const std::string& cmd,
                                      const std::string& schema,
                                      const std::string& partitions,
                                      const std::string& min_workers) {
  return with({etl, cmd, "--db", conninfo(), "--schema", schema,
               "--partitions", partitions, "--json", "--listen",
               "127.0.0.1:0", "--min-workers", min_workers},
              the_certs().tls("manager"));
}

/// The in-process clean of `schema` into c_local, r_local and s_local: what
/// a distributed run must equal.
void clean_locally(const std::string& schema, const std::string& partitions) {
  auto local = run_program(etl, {"clean", "--db", conninfo(), "--schema",
                                 schema, "--partitions", partitions, "--json",
                                 "--clean", "c_local", "--rejects", "r_local",
                                 "--summary", "s_local"});
  INFO(local.err);
  REQUIRE(local.rc == 0);
}

/// The distributed run's three tables equal the in-process run's.
void check_same_as_local(const std::string& schema) {
  CHECK(digest(schema, "ads_clean") == digest(schema, "c_local"));
  CHECK(digest(schema, "ads_rejects") == digest(schema, "r_local"));
  CHECK(digest(schema, "ads_summary", "city")
        == digest(schema, "s_local", "city"));
}

/// A worker node's command line; it runs `reducers` partitions at once.
std::vector<std::string> worker(const std::string& port,
                                const std::string& name,
                                const std::string& reducers = "1") {
  return with({node, "worker", "--connect", "127.0.0.1:" + port, "--name",
               name, "--reducers", reducers},
              the_certs().tls(name == "w2" ? "w2" : "w1"));
}

std::size_t staged_tables() {
  return std::stoull(scalar("SELECT count(*) FROM pg_tables WHERE "
                            "schemaname = 'flow_dist'"));
}

/// A distributed run of flow-etl CMD over `schema`'s 4 partitions with two
/// worker nodes, w2 stuck for ever in its first batch of any partition
/// while it answers heartbeats; w2 is killed once the manager and w1 ended
/// (its stuck calls may hold every thread of its scheduler, so it cannot
/// always exit by itself, docs/distribution.md; it holds nothing of the job
/// any more).
struct stuck_run {
  int rc = -1;
  std::string out;
  std::string err;
  std::string w1_err;
  std::string w2_err;
  int w1_rc = -1;
};

stuck_run run_with_stuck_node(const std::string& cmd,
                              const std::string& schema,
                              const std::string& tag) {
  auto args = manager_args(cmd, schema, "4", "2");
  args.insert(args.end(), {"--speculation-floor", "300", "--log-level",
                           "info"});
  child manager{args, tag + "-manager"};
  auto port = wait_for_port(manager);
  child w1{worker(port, "w1"), tag + "-w1"};
  child w2{worker(port, "w2"), tag + "-w2", "FLOW_TEST_STUCK_SEQ=0"};
  stuck_run r;
  r.rc = manager.wait();
  r.out = slurp(manager.out);
  r.err = slurp(manager.err);
  r.w1_rc = w1.wait();
  r.w1_err = slurp(w1.err);
  r.w2_err = slurp(w2.err);
  w2.kill_now();
  w2.wait();
  return r;
}

} // namespace

TEST_CASE("net: flow-etl sum --listen, partitions read by two worker nodes, "
          "equals the in-process run",
          "[net][pg]") {
  auto schema = init_schema("netsum", "200000", "10");
  auto local = run_program(etl, {"sum", "--db", conninfo(), "--schema", schema,
                                 "--partitions", "4", "--json"});
  INFO(local.err);
  REQUIRE(local.rc == 0);
  child manager{manager_args("sum", schema, "4", "2"),
                "etl-sum-manager"};
  auto port = wait_for_port(manager);
  child w1{worker(port, "w1"), "etl-sum-w1"};
  child w2{worker(port, "w2"), "etl-sum-w2"};
  auto rc = manager.wait();
  auto out = slurp(manager.out);
  INFO("manager: " << slurp(manager.err) << "\nw1: " << slurp(w1.err)
                   << "\nw2: " << slurp(w2.err));
  CHECK(rc == 0);
  bool ok_local = false;
  bool ok_dist = false;
  CHECK(sums_of(out, ok_dist) == sums_of(local.out, ok_local));
  CHECK(ok_local);
  CHECK(ok_dist);
  auto first = lines_of(out).at(0);
  CHECK(json_field(first, "mode") == "\"distributed\"");
  CHECK(json_field(first, "node_tasks") == "4");
  CHECK(json_field(first, "local_tasks") == "0");
  // Every row read once: the 25 NULL values are the rows' rejections.
  CHECK(json_field(first, "rows_read") == "200025");
  CHECK(json_field(first, "rows_rejected") == "25");
  // Both nodes read partitions (the manager gives each task to the node
  // with the fewest).
  CHECK(slurp(w1.err).find("(etl.aggregate) done") != std::string::npos);
  CHECK(slurp(w2.err).find("(etl.aggregate) done") != std::string::npos);
  CHECK(w1.wait() == 1);
  CHECK(w2.wait() == 1);
}

TEST_CASE("net: flow-etl clean --listen writes the same three tables as the "
          "in-process run",
          "[net][pg]") {
  auto schema = init_schema("netclean", "100", "60000");
  clean_locally(schema, "3");
  auto before = staged_tables();
  child manager{manager_args("clean", schema, "3", "2"),
                "etl-clean-manager"};
  auto port = wait_for_port(manager);
  child w1{worker(port, "w1"), "etl-clean-w1"};
  child w2{worker(port, "w2"), "etl-clean-w2"};
  auto rc = manager.wait();
  auto out = slurp(manager.out);
  INFO("manager: " << slurp(manager.err) << "\nw1: " << slurp(w1.err)
                   << "\nw2: " << slurp(w2.err));
  CHECK(rc == 0);
  CHECK(json_field(out, "ok") == "true");
  CHECK(json_field(out, "ads") == "60000");
  CHECK(json_field(out, "node_tasks") == "3");
  CHECK(json_field(out, "emitted") == "60000");
  check_same_as_local(schema);
  // The nodes' staged partitions were adopted and dropped at the commit.
  CHECK(staged_tables() == before);
}

TEST_CASE("net: a worker node killed while it reads a partition, the "
          "partition goes to another node and the result is exact",
          "[net][pg][faults]") {
  auto schema = init_schema("netkill", "100", "40000");
  clean_locally(schema, "2");
  child manager{manager_args("clean", schema, "2", "1"),
                "etl-kill-manager"};
  auto port = wait_for_port(manager);
  // A slow node (10 s per batch of its partitions) takes both; it is
  // killed once it has started them and the rescuer has joined.
  child doomed{worker(port, "w1", "2"), "etl-doomed",
               "FLOW_TEST_REDUCER_DELAY_MS=10000"};
  REQUIRE(wait_for_text(doomed.err, "task 2 (etl.clean) from the manager"));
  child w2{worker(port, "w2"), "etl-rescuer"};
  REQUIRE(wait_for_text(w2.err, "joined the manager"));
  doomed.kill_now();
  CHECK(doomed.wait() == 128 + SIGKILL);
  auto rc = manager.wait();
  auto err = slurp(manager.err);
  INFO(err << "\nw2: " << slurp(w2.err));
  CHECK(rc == 0);
  auto out = slurp(manager.out);
  CHECK(json_field(out, "ok") == "true");
  CHECK(json_field(out, "emitted") == "40000");
  CHECK(err.find("handing it to another node") != std::string::npos);
  CHECK(slurp(w2.err).find("(etl.clean) done") != std::string::npos);
  check_same_as_local(schema);
}

TEST_CASE("net: a worker node that joins while a distributed job runs gets "
          "a waiting partition at once",
          "[net][pg]") {
  auto schema = init_schema("netlate", "400000", "10");
  child manager{manager_args("sum", schema, "4", "1"),
                "etl-late-manager"};
  auto port = wait_for_port(manager);
  // A slow node running one partition at a time: three partitions wait.
  child w1{worker(port, "w1"), "etl-early", "FLOW_TEST_REDUCER_DELAY_MS=3000"};
  REQUIRE(wait_for_text(w1.err, "task 1 (etl.aggregate) from the manager"));
  child w2{worker(port, "w2"), "etl-late"};
  REQUIRE(wait_for_text(w2.err, "(etl.aggregate) from the manager"));
  // It got one while the first node was still on its first partition.
  CHECK(slurp(w1.err).find("task 1 (etl.aggregate) done") == std::string::npos);
  auto rc = manager.wait();
  INFO(slurp(manager.err) << "\nw1: " << slurp(w1.err) << "\nw2: "
                          << slurp(w2.err));
  CHECK(rc == 0);
  bool ok = false;
  CHECK(!sums_of(slurp(manager.out), ok).empty());
  CHECK(ok);
  CHECK(json_field(lines_of(slurp(manager.out)).at(0), "node_tasks") == "4");
}

TEST_CASE("net: a worker node that cannot reach the database gets no more "
          "partitions, the job completes without it",
          "[net][pg][faults]") {
  auto schema = init_schema("netnodb", "50000", "10");
  child manager{manager_args("sum", schema, "3", "1"),
                "etl-nodb-manager"};
  auto port = wait_for_port(manager);
  // Its own --db names a server that is not there.
  child lost{with(worker(port, "w1", "3"),
                  {"--db", "host=127.0.0.1 port=1 connect_timeout=2"}),
             "etl-nodb"};
  auto rc = manager.wait();
  auto err = slurp(manager.err);
  INFO(err << "\nnode: " << slurp(lost.err));
  CHECK(rc == 0);
  bool ok = false;
  auto out = slurp(manager.out);
  CHECK(!sums_of(out, ok).empty());
  CHECK(ok);
  CHECK(err.find("cannot run task") != std::string::npos);
  CHECK(err.find("cannot connect to the database") != std::string::npos);
  // With no other node, the manager read the partitions itself.
  CHECK(json_field(lines_of(out).at(0), "local_tasks") == "3");
}

TEST_CASE("net: a clean task naming tables other than its staging tables is "
          "refused before anything is read or written",
          "[net][pg][security]") {
  auto schema = init_schema("netforeign", "100", "500");
  REQUIRE(run_program(etl, {"clean", "--db", conninfo(), "--schema", schema})
            .rc
          == 0);
  auto before = digest(schema, "ads_clean");
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  flow::pg::partition_ticket t;
  t.conninfo = conninfo();
  t.table = {schema, "ads"};
  t.columns = {"id", "title", "city", "price", "posted_at"};
  t.partition_column = "ctid";
  t.snapshot = "00000003-00000002-1";
  const std::string good = "d0123456789abcdef_p0_";
  for (auto extra : std::vector<std::vector<std::string>>{
         {schema, good + "c", good + "r"},          // another schema
         {"flow_dist", "ads_clean", good + "r"},    // not a staging name
         {"flow_dist", good + "c", "x"},            // not a staging name
         {"flow_dist", good + "r", good + "c"},     // suffixes swapped
         {"flow_dist", "dXYZ456789abcdef_p0_c", good + "r"},
         {"flow_dist", good + "c"}}) {              // a field missing
    t.extra = extra;
    auto r = flow::apps::run_clean_partition(sys, conninfo(), t.encode());
    REQUIRE(!r);
    CHECK(flow::code_of(r.error()) == flow::errc::bad_input);
  }
  CHECK(digest(schema, "ads_clean") == before);
  // Well-named tables pass the check and fail only at the (made-up)
  // snapshot, which shows the check let them through.
  t.extra = {"flow_dist", good + "c", good + "r"};
  auto r = flow::apps::run_clean_partition(sys, conninfo(), t.encode());
  REQUIRE(!r);
  CHECK(flow::describe(r.error()).find("snapshot") != std::string::npos);
}

TEST_CASE("net: attempts at one clean partition: the first commit claims it, "
          "a later or concurrent attempt discards its rows, and none "
          "publishes once the run's plan is gone",
          "[net][pg][speculation]") {
  auto schema = init_schema("netclaim", "100", "3000");
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  flow::apps::clean_config cc;
  cc.conninfo = conninfo();
  cc.ads = {schema, "ads"};
  auto read = flow::pg::partitioned_read::open(flow::apps::ads_read_spec(cc, 2));
  REQUIRE(read);
  auto tickets = read->tickets();
  REQUIRE(tickets);
  REQUIRE(tickets->size() == 2);
  // A run's tag, its plan (the node only checks that it exists) and the
  // partitions' staging names.
  const std::string tag = "d00c1a1a00c1a1a00";
  exec("CREATE SCHEMA IF NOT EXISTS flow_dist");
  auto plan = q("flow_dist", tag + "_plan");
  auto make_plan = [&] { exec("CREATE TABLE " + plan + " (job text)"); };
  auto payload = [&](std::size_t i) {
    auto t = (*tickets)[i];
    auto p = tag + "_p" + std::to_string(i) + "_";
    t.extra = {"flow_dist", p + "c", p + "r"};
    return t.encode();
  };
  auto tables = [&] {
    return scalar("SELECT coalesce(string_agg(tablename, ',' ORDER BY "
                  "tablename), '') FROM pg_tables WHERE schemaname = "
                  "'flow_dist' AND starts_with(tablename, '"
                  + tag + "')");
  };
  auto rows = [&](std::size_t i) {
    auto p = tag + "_p" + std::to_string(i) + "_";
    return std::stoull(scalar("SELECT (SELECT count(*) FROM "
                              + q("flow_dist", p + "c")
                              + ") + (SELECT count(*) FROM "
                              + q("flow_dist", p + "r") + ")"));
  };
  auto run = [&](std::size_t i) {
    auto r = flow::apps::run_clean_partition(sys, conninfo(), payload(i));
    INFO((r ? std::string{} : flow::describe(r.error())));
    REQUIRE(r);
    return r->emitted;
  };
  auto both = tag + "_p0_c," + tag + "_p0_r," + tag + "_plan";
  make_plan();
  // The first attempt publishes its partition's tables.
  auto n0 = run(0);
  CHECK(n0 > 0);
  CHECK(tables() == both);
  CHECK(rows(0) == n0);
  auto before = scalar("SELECT md5(string_agg(id::text, ',' ORDER BY id)) "
                       "FROM " + q("flow_dist", tag + "_p0_c"));
  // A later attempt finds them and discards its own: one copy, unchanged.
  CHECK(run(0) == n0);
  CHECK(tables() == both);
  CHECK(rows(0) == n0);
  CHECK(scalar("SELECT md5(string_agg(id::text, ',' ORDER BY id)) FROM "
               + q("flow_dist", tag + "_p0_c"))
        == before);
  // Two attempts at once on each partition: exactly one copy of each.
  exec("DROP TABLE " + q("flow_dist", tag + "_p0_c") + ", "
       + q("flow_dist", tag + "_p0_r"));
  std::vector<std::thread> attempts;
  std::vector<caf::expected<flow::job_result>> results(4, flow::job_result{});
  for (std::size_t k = 0; k < 4; ++k)
    attempts.emplace_back([&, k] {
      results[k] = flow::apps::run_clean_partition(sys, conninfo(),
                                                   payload(k / 2));
    });
  for (auto& t : attempts)
    t.join();
  for (auto& r : results)
    REQUIRE(r);
  CHECK(tables()
        == tag + "_p0_c," + tag + "_p0_r," + tag + "_p1_c," + tag + "_p1_r,"
             + tag + "_plan");
  CHECK(rows(0) == n0);
  CHECK(rows(1) == results[2]->emitted);
  // Every ad in exactly one partition's output.
  CHECK(rows(0) + rows(1) == 3000);
  // The run is over (its plan dropped, as the manager's commit does): an
  // attempt that ends now publishes nothing.
  exec("DROP TABLE " + plan + ", " + q("flow_dist", tag + "_p0_c") + ", "
       + q("flow_dist", tag + "_p0_r") + ", " + q("flow_dist", tag + "_p1_c")
       + ", " + q("flow_dist", tag + "_p1_r"));
  CHECK(run(1) > 0);
  CHECK(tables() == "");
}

TEST_CASE("net: a worker node stuck for ever on a clean partition while it "
          "answers heartbeats: the partition is cleaned again on the other "
          "node, the tables equal the in-process run's and nothing is left "
          "staged",
          "[net][pg][faults][speculation]") {
  auto schema = init_schema("netcleanstuck", "100", "40000");
  clean_locally(schema, "4");
  auto before = staged_tables();
  auto r = run_with_stuck_node("clean", schema, "etl-cstuck");
  INFO("manager: " << r.err << "\nw1: " << r.w1_err << "\nw2: " << r.w2_err);
  CHECK(r.rc == 0);
  CHECK(json_field(r.out, "ok") == "true");
  CHECK(json_field(r.out, "ads") == "40000");
  // Each partition counted once, the one cleaned twice included.
  CHECK(json_field(r.out, "emitted") == "40000");
  CHECK(json_field(r.out, "node_tasks") == "4");
  CHECK(std::stoull(json_field(r.out, "speculated")) >= 1);
  CHECK(std::stoull(json_field(r.out, "speculation_won")) >= 1);
  CHECK(r.w2_err.find("test hook: stuck on batch 0") != std::string::npos);
  CHECK(r.err.find("running it again on w1") != std::string::npos);
  check_same_as_local(schema);
  CHECK(r.w1_rc == 1);
  // The stuck attempts' transactions ended with their node: nothing of
  // them was ever visible, and nothing is left.
  CHECK(staged_tables() == before);
}

TEST_CASE("net: a slow node's clean partitions run again elsewhere: the "
          "tables are exact and no attempt leaves anything staged",
          "[net][pg][speculation]") {
  auto schema = init_schema("netcleanslow", "100", "40000");
  clean_locally(schema, "4");
  auto before = staged_tables();
  auto args = manager_args("clean", schema, "4", "2");
  args.insert(args.end(), {"--speculation-floor", "300"});
  child manager{args, "etl-cslow-manager"};
  auto port = wait_for_port(manager);
  child w1{worker(port, "w1"), "etl-cslow-w1"};
  // 1.5 s per batch: it is overtaken, then finishes its attempts later.
  child w2{worker(port, "w2"), "etl-cslow-w2",
           "FLOW_TEST_REDUCER_DELAY_MS=1500"};
  auto rc = manager.wait();
  auto out = slurp(manager.out);
  INFO("manager: " << slurp(manager.err) << "\nw1: " << slurp(w1.err)
                   << "\nw2: " << slurp(w2.err));
  CHECK(rc == 0);
  CHECK(json_field(out, "ok") == "true");
  CHECK(json_field(out, "emitted") == "40000");
  CHECK(std::stoull(json_field(out, "speculated")) >= 1);
  check_same_as_local(schema);
  w1.wait();
  w2.wait();
  // Whether the slow attempts committed (and discarded their rows, the
  // plan being gone) or ended with their node, nothing is staged. (Which
  // of the two happens is not controlled here: the claim rules themselves
  // are checked by the "attempts at one clean partition" test.)
  CHECK(staged_tables() == before);
}

TEST_CASE("net: the manager of flow-etl clean killed mid-job, workers stop "
          "non-zero and no output becomes visible",
          "[net][pg][faults]") {
  auto schema = init_schema("netmgr", "100", "20000");
  // A previous output, which must survive untouched.
  auto first = run_program(etl, {"clean", "--db", conninfo(), "--schema",
                                 schema, "--json"});
  REQUIRE(first.rc == 0);
  auto a = digest(schema, "ads_clean");
  auto b = digest(schema, "ads_rejects");
  auto c = digest(schema, "ads_summary", "city");
  child manager{manager_args("clean", schema, "2", "1"),
                "etl-dying-manager"};
  auto port = wait_for_port(manager);
  child w1{worker(port, "w1"), "etl-orphan",
           "FLOW_TEST_REDUCER_DELAY_MS=2000"};
  REQUIRE(wait_for_text(w1.err, "(etl.clean) from the manager"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  manager.kill_now();
  manager.wait();
  auto rc = w1.wait();
  INFO(slurp(w1.err));
  CHECK(rc == 1);
  CHECK(slurp(w1.err).find("lost the manager") != std::string::npos);
  CHECK(digest(schema, "ads_clean") == a);
  CHECK(digest(schema, "ads_rejects") == b);
  CHECK(digest(schema, "ads_summary", "city") == c);
}

namespace {

/// True once every clean task a node was given has ended (done or failed).
bool tasks_settled(const child& w) {
  auto err = slurp(w.err);
  return count_of(err, "(etl.clean) from the manager")
         == count_of(err, "(etl.clean) done")
              + count_of(err, "(etl.clean) failed");
}

} // namespace

TEST_CASE("net: the manager of flow-etl clean killed mid-job, --resume with "
          "the nodes joining again equals an uninterrupted run and leaves "
          "nothing staged",
          "[net][pg][faults]") {
  auto schema = init_schema("netresume", "100", "60000");
  clean_locally(schema, "6");
  auto dist_tables = [] {
    return scalar("SELECT string_agg(tablename, ', ' ORDER BY tablename) "
                  "FROM pg_tables WHERE schemaname = 'flow_dist'");
  };
  auto before = dist_tables();
  auto before_count = staged_tables();
  auto args = manager_args("clean", schema, "6", "2");
  child manager{args, "etl-resume-manager"};
  auto port = wait_for_port(manager);
  // Each node reads one partition at a time, slowly (one batch of 10^4 ads
  // per partition, 1.5 s each), and tries to join again for 60 s after
  // losing the manager.
  auto rejoining = [&](const std::string& name) {
    return with(worker(port, name), {"--rejoin", "60"});
  };
  child w1{rejoining("w1"), "etl-resume-w1",
           "FLOW_TEST_REDUCER_DELAY_MS=1500"};
  child w2{rejoining("w2"), "etl-resume-w2",
           "FLOW_TEST_REDUCER_DELAY_MS=1500"};
  REQUIRE(wait_for_text(w1.err, "(etl.clean) done"));
  manager.kill_now();
  CHECK(manager.wait() == 128 + SIGKILL);
  REQUIRE(wait_for_text(w1.err, "trying to join the manager"));
  REQUIRE(wait_for_text(w2.err, "trying to join the manager"));
  // The partitions the nodes were reading when the manager died end, and
  // are committed under the killed run's names.
  for (int i = 0; i < 400 && !(tasks_settled(w1) && tasks_settled(w2)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(tasks_settled(w1));
  REQUIRE(tasks_settled(w2));
  // Its plan and at least the first partition's two tables.
  CHECK(staged_tables() >= before_count + 3);
  CHECK(scalar("SELECT to_regclass('" + q(schema, "ads_clean") + "')")
        .empty());
  // The same job on the same port, resumed: the nodes join it again and
  // read what the killed run had not committed.
  auto again = args;
  std::replace(again.begin(), again.end(), std::string{"127.0.0.1:0"},
               "127.0.0.1:" + port);
  again.push_back("--resume");
  child resumed{again, "etl-resumed-manager"};
  auto rc = resumed.wait();
  auto out = slurp(resumed.out);
  INFO("resumed: " << slurp(resumed.err) << "\nw1: " << slurp(w1.err)
                   << "\nw2: " << slurp(w2.err));
  CHECK(rc == 0);
  CHECK(json_field(out, "ok") == "true");
  CHECK(json_field(out, "ads") == "60000");
  auto taken = std::stoull(json_field(out, "resumed_ads"));
  CHECK(taken >= 10000);
  CHECK(taken < 60000);
  CHECK(std::stoull(json_field(out, "emitted")) + taken == 60000);
  CHECK(std::stoull(json_field(out, "node_tasks")) > 0);
  check_same_as_local(schema);
  // Nothing of either run is left (what other jobs' killed runs left
  // before this test stays for their own --resume).
  CHECK(dist_tables() == before);
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = "
               "'flow_resume'")
        == "0");
}

TEST_CASE("net: the manager of flow-etl clean killed when every partition "
          "was staged, --resume only commits them",
          "[net][pg][faults]") {
  auto schema = init_schema("netresumeall", "100", "20000");
  clean_locally(schema, "2");
  child manager{manager_args("clean", schema, "2", "1"),
                "etl-resumeall-manager", "FLOW_ETL_TEST_BEFORE_COMMIT=pause"};
  auto port = wait_for_port(manager);
  child w1{worker(port, "w1", "2"), "etl-resumeall-w1"};
  REQUIRE(wait_for_text(manager.err, "pausing before commit"));
  manager.kill_now();
  CHECK(manager.wait() == 128 + SIGKILL);
  CHECK(w1.wait() == 1);
  // No node needed: nothing is left to read.
  auto r = run_program(etl, with({"clean", "--db", conninfo(), "--schema",
                                  schema, "--json", "--listen", "127.0.0.1:0",
                                  "--resume"},
                                 the_certs().tls("manager")));
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(json_field(r.out, "ok") == "true");
  CHECK(json_field(r.out, "resumed_ads") == "20000");
  CHECK(json_field(r.out, "emitted") == "0");
  check_same_as_local(schema);
  // Resumed once: a second --resume has nothing left to continue.
  auto again = run_program(etl, with({"clean", "--db", conninfo(), "--schema",
                                      schema, "--listen", "127.0.0.1:0",
                                      "--resume"},
                                     the_certs().tls("manager")));
  CHECK(again.rc == 2);
  CHECK(again.err.find("no interrupted distributed run of") != std::string::npos);
}

TEST_CASE("net: flow-etl --listen with no worker node reads the partitions "
          "itself",
          "[net][pg]") {
  auto schema = init_schema("netalone", "5000", "3000");
  // What a killed manager's nodes left: dropped when the next distributed
  // clean starts (no live run holds its lock).
  exec("CREATE SCHEMA IF NOT EXISTS flow_dist");
  exec("CREATE TABLE flow_dist.d00000000000000f7_p0_c (x int)");
  auto r = run_program(etl, with({"clean", "--db", conninfo(), "--schema",
                                  schema, "--partitions", "2", "--json",
                                  "--listen", "127.0.0.1:0"},
                                 the_certs().tls("manager")));
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = "
               "'flow_dist' AND tablename = 'd00000000000000f7_p0_c'")
        == "0");
  CHECK(r.err.find("staging tables in flow_dist that killed runs left")
        != std::string::npos);
  CHECK(json_field(r.out, "ok") == "true");
  CHECK(json_field(r.out, "node_tasks") == "0");
  CHECK(json_field(r.out, "local_tasks") == "2");
  auto s = run_program(etl, with({"sum", "--db", conninfo(), "--schema",
                                  schema, "--partitions", "3", "--json",
                                  "--listen", "127.0.0.1:0"},
                                 the_certs().tls("manager")));
  INFO(s.err);
  CHECK(s.rc == 0);
  bool ok = false;
  CHECK(!sums_of(s.out, ok).empty());
  CHECK(ok);
  CHECK(json_field(lines_of(s.out).at(0), "local_tasks") == "3");
}

TEST_CASE("net: a snapshot whose exporting session the server ended before "
          "the worker nodes imported it is a lost connection, not bad input",
          "[net][pg][faults]") {
  auto schema = init_schema("netsnaplost", "20000", "2000");
  // Earlier cases in this process may have left staging tables.
  auto staged_before = staged_tables();
  // The test hook ends the manager's session holding the exported snapshot
  // right before the nodes' tasks start, as a pg_terminate_backend of every
  // session can: each node's import fails with 22023 (or 55000), which the
  // manager must report as the lost connection it is. Distributed runs are
  // not tried again (docs/etl.md); nothing is written.
  std::vector<std::string> agg{"aggregate", "--table", "elements",
                               "--group-by", "list_size", "--agg",
                               "count(*), sum(value)"};
  for (auto cmd :
       {std::vector<std::string>{"clean"}, agg,
        with(agg, {"--output", "a_dist", "--checkpoint-rows", "5000"})}) {
    auto args = manager_args(cmd[0], schema, "2", "1");
    args.insert(args.end(), cmd.begin() + 1, cmd.end());
    child manager{args, "etl-snaplost-manager", "FLOW_TEST_END_EXPORTER=1"};
    auto port = wait_for_port(manager);
    child w1{worker(port, "w1"), "etl-snaplost-w1"};
    auto rc = manager.wait();
    auto err = slurp(manager.err);
    INFO(cmd.back() << ": " << err << "\nw1: " << slurp(w1.err));
    CHECK(rc == 2);
    CHECK(err.find("source_failed: Lost connection to the database server: "
                   "the session that exported the snapshot ended before a "
                   "partition task")
          != std::string::npos);
    // The output in steps fails where its first step's nodes import.
    if (cmd.back() == "5000")
      CHECK(err.find("a partition task of step 1 imported it")
            != std::string::npos);
    CHECK(err.find("22023") == std::string::npos);
    CHECK(err.find("55000") == std::string::npos);
    CHECK(err.find("bad_input") == std::string::npos);
    // The node did fail its import.
    CHECK(slurp(w1.err).find("snapshot") != std::string::npos);
  }
  CHECK(scalar("SELECT to_regclass('" + q(schema, "ads_clean") + "')")
          .empty());
  CHECK(scalar("SELECT to_regclass('" + q(schema, "a_dist") + "')").empty());
  CHECK(staged_tables() == staged_before);
}

TEST_CASE("net: a distributed clean that times out waiting for worker "
          "nodes leaves no plan in flow_dist",
          "[net][pg]") {
  auto schema = init_schema("netquorum", "100", "2000");
  auto args = manager_args("clean", schema, "2", "2");
  args.insert(args.end(), {"--min-workers-timeout", "2"});
  auto r = run_program(args.front(), {args.begin() + 1, args.end()});
  INFO(r.err);
  CHECK(r.rc == 2);
  CHECK(r.out.empty());
  CHECK(r.err.find("only 0 of 2 worker nodes connected after 2 s")
        != std::string::npos);
  // The run had recorded its plan before the wait; it dropped it, so there
  // is nothing to resume (other tests' runs may hold plans meanwhile: the
  // plan of this job is the one looked for).
  args.push_back("--resume");
  auto again = run_program(args.front(), {args.begin() + 1, args.end()});
  INFO(again.err);
  CHECK(again.rc == 2);
  CHECK(again.err.find("no interrupted distributed run of") != std::string::npos);
  CHECK(scalar("SELECT to_regclass('" + q(schema, "ads_clean") + "')")
        .empty());
}

TEST_CASE("net: flow-etl's network options that exclude each other are "
          "usage errors",
          "[net][pg]") {
  auto tls = the_certs().tls("manager");
  auto r = run_program(etl, with({"sum", "--db", conninfo(), "--pushdown",
                                  "--listen", "127.0.0.1:0"},
                                 tls));
  CHECK(r.rc == 2);
  CHECK(r.err.find("--pushdown and --listen") != std::string::npos);
  // --resume over nodes with nothing to resume: one line, exit 2, before
  // anything listens.
  auto schema = fresh_schema("netnoresume");
  auto s = run_program(etl, with({"clean", "--db", conninfo(), "--schema",
                                  schema, "--resume", "--listen",
                                  "127.0.0.1:0"},
                                 tls));
  CHECK(s.rc == 2);
  CHECK(s.err.find("no interrupted distributed run of") != std::string::npos);
  auto t = run_program(etl, {"sum", "--db", conninfo(), "--listen",
                             "127.0.0.1:0"});
  CHECK(t.rc == 2);
  CHECK(t.err.find("--cert, --key and --ca") != std::string::npos);
}

TEST_CASE("net: flow-etl aggregate --listen over two worker nodes equals the "
          "in-process run and verifies",
          "[net][pg]") {
  auto schema = init_schema("netagg", "100000", "10");
  std::vector<std::string> job{
    "--group-by", "list_size", "--where", "value IS NULL OR value > 100",
    "--agg",
    "sum(value), count(*), count(value), avg(value), min(value), "
    "max(value), stddev(value), count(distinct list_id), "
    "approx_count_distinct(value), quantile(value, 0.9)",
    "--verify"};
  auto local_args = std::vector<std::string>{"aggregate", "--db", conninfo(),
                                             "--schema", schema, "--table",
                                             "elements", "--partitions", "4",
                                             "--json", "--output", "a_local"};
  local_args.insert(local_args.end(), job.begin(), job.end());
  auto local = run_program(etl, local_args);
  INFO(local.err);
  REQUIRE(local.rc == 0);
  auto args = manager_args("aggregate", schema, "4", "2");
  args.insert(args.end(), {"--table", "elements", "--output", "a_dist"});
  args.insert(args.end(), job.begin(), job.end());
  child manager{args, "etl-agg-manager"};
  auto port = wait_for_port(manager);
  child w1{worker(port, "w1"), "etl-agg-w1"};
  child w2{worker(port, "w2"), "etl-agg-w2"};
  auto rc = manager.wait();
  auto out = slurp(manager.out);
  INFO("manager: " << slurp(manager.err) << "\nw1: " << slurp(w1.err)
                   << "\nw2: " << slurp(w2.err));
  CHECK(rc == 0);
  auto groups = lines_of(out);
  auto local_groups = lines_of(local.out);
  REQUIRE(groups.size() >= 2);
  REQUIRE(local_groups.size() == groups.size());
  auto summary = groups.back();
  groups.pop_back();
  local_groups.pop_back();
  // Everything but the quantile sketch's estimate, which depends on how the
  // partial sketches were merged (--verify checks it against its bounds).
  auto without_quantile = [](std::vector<std::string> xs) {
    for (auto& x : xs)
      x = x.substr(0, x.find(",\"quantile_value_0.9\""));
    return xs;
  };
  CHECK(without_quantile(groups) == without_quantile(local_groups));
  CHECK(json_field(summary, "mode") == "\"distributed\"");
  CHECK(json_field(summary, "verified") == "true");
  CHECK(json_field(summary, "balanced") == "true");
  CHECK(json_field(summary, "node_tasks") == "4");
  CHECK(json_field(summary, "local_tasks") == "0");
  CHECK(json_field(summary, "rows_read")
        == scalar("SELECT count(*) FROM " + q(schema, "elements")
                  + " WHERE value IS NULL OR value > 100"));
  auto table = [&](const std::string& t) {
    return scalar("SELECT md5(string_agg(concat_ws(',', list_size, sum_value, "
                  "count, avg_value, min_value, max_value, stddev_value, "
                  "count_distinct_list_id), ';' ORDER BY list_size)) FROM "
                  + q(schema, t));
  };
  CHECK(table("a_dist") == table("a_local"));
  CHECK(slurp(w1.err).find("(etl.aggregate) done") != std::string::npos);
  CHECK(slurp(w2.err).find("(etl.aggregate) done") != std::string::npos);
  CHECK(w1.wait() == 1);
  CHECK(w2.wait() == 1);
}

TEST_CASE("net: flow-etl aggregate --listen --output, the manager killed "
          "after its first checkpoint, --resume with the nodes joining again "
          "equals the in-process run",
          "[net][pg][faults]") {
  auto schema = init_schema("netaggresume", "100000", "10");
  std::vector<std::string> job{
    "--table", "elements", "--group-by", "list_size", "--agg",
    "sum(value), count(*), min(value), max(value), count(distinct list_id)",
    "--checkpoint-rows", "20000"};
  auto local_args = std::vector<std::string>{"aggregate", "--db", conninfo(),
                                             "--schema", schema,
                                             "--partitions", "2", "--json",
                                             "--output", "a_local"};
  local_args.insert(local_args.end(), job.begin(), job.end());
  auto local = run_program(etl, local_args);
  INFO(local.err);
  REQUIRE(local.rc == 0);
  auto local_summary = lines_of(local.out).back();
  auto args = manager_args("aggregate", schema, "2", "2");
  args.insert(args.end(), {"--output", "a_dist"});
  args.insert(args.end(), job.begin(), job.end());
  // The test hook kills the manager (SIGKILL) once its first step is
  // committed as a checkpoint.
  child manager{args, "etl-aggres-manager", "FLOW_ETL_TEST_KILL_AFTER_STEP=1"};
  auto port = wait_for_port(manager);
  auto rejoining = [&](const std::string& name) {
    return with(worker(port, name), {"--rejoin", "60"});
  };
  child w1{rejoining("w1"), "etl-aggres-w1"};
  child w2{rejoining("w2"), "etl-aggres-w2"};
  CHECK(manager.wait() == 128 + SIGKILL);
  REQUIRE(wait_for_text(w1.err, "trying to join the manager"));
  REQUIRE(wait_for_text(w2.err, "trying to join the manager"));
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = "
               "'flow_resume' AND tablename LIKE 'agg\\_%'")
        == "1");
  CHECK(scalar("SELECT to_regclass('" + q(schema, "a_dist") + "')").empty());
  auto again = args;
  std::replace(again.begin(), again.end(), std::string{"127.0.0.1:0"},
               "127.0.0.1:" + port);
  again.push_back("--resume");
  child resumed{again, "etl-aggres-resumed"};
  auto rc = resumed.wait();
  auto out = slurp(resumed.out);
  INFO("resumed: " << slurp(resumed.err) << "\nw1: " << slurp(w1.err)
                   << "\nw2: " << slurp(w2.err));
  CHECK(rc == 0);
  auto lines = lines_of(out);
  REQUIRE(!lines.empty());
  auto summary = lines.back();
  CHECK(json_field(summary, "mode") == "\"distributed\"");
  CHECK(json_field(summary, "balanced") == "true");
  CHECK(std::stoull(json_field(summary, "resumed_rows")) > 0);
  CHECK(json_field(summary, "rows_read")
        == json_field(local_summary, "rows_read"));
  CHECK(std::stoull(json_field(summary, "node_tasks")) > 0);
  // The groups printed and the table written equal the in-process run's.
  auto groups = lines;
  groups.pop_back();
  auto local_groups = lines_of(local.out);
  local_groups.pop_back();
  CHECK(groups == local_groups);
  auto except_all = [&](const std::string& x, const std::string& y) {
    return scalar("SELECT count(*) FROM (SELECT * FROM " + q(schema, x)
                  + " EXCEPT ALL SELECT * FROM " + q(schema, y) + ") d");
  };
  CHECK(except_all("a_local", "a_dist") == "0");
  CHECK(except_all("a_dist", "a_local") == "0");
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = "
               "'flow_resume'")
        == "0");
}

TEST_CASE("net: a worker node stuck for ever on a partition while it answers "
          "heartbeats: the partition is read again on the other node and "
          "the sums are exact",
          "[net][pg][faults][speculation]") {
  auto schema = init_schema("netstuck", "200000", "10");
  auto local = run_program(etl, {"sum", "--db", conninfo(), "--schema", schema,
                                 "--partitions", "4", "--json"});
  INFO(local.err);
  REQUIRE(local.rc == 0);
  auto r = run_with_stuck_node("sum", schema, "etl-stuck");
  INFO("manager: " << r.err << "\nw1: " << r.w1_err << "\nw2: " << r.w2_err);
  CHECK(r.rc == 0);
  bool ok_local = false;
  bool ok_dist = false;
  CHECK(sums_of(r.out, ok_dist) == sums_of(local.out, ok_local));
  CHECK(ok_dist);
  auto first = lines_of(r.out).at(0);
  CHECK(json_field(first, "node_tasks") == "4");
  // Each partition counted once, the one read twice included.
  CHECK(json_field(first, "rows_read") == "200025");
  CHECK(std::stoull(json_field(first, "speculated")) >= 1);
  CHECK(std::stoull(json_field(first, "speculation_won")) >= 1);
  CHECK(r.w2_err.find("test hook: stuck on batch 0") != std::string::npos);
  CHECK(r.err.find("running it again on w1") != std::string::npos);
  CHECK(r.w1_rc == 1);
}

TEST_CASE("net: a worker node of two reducers overtaken on a partition runs "
          "one task at a time from then on, and the sums are exact",
          "[net][pg][speculation]") {
  auto schema = init_schema("netovertaken", "300000", "10");
  auto local = run_program(etl, {"sum", "--db", conninfo(), "--schema", schema,
                                 "--partitions", "6", "--json"});
  INFO(local.err);
  REQUIRE(local.rc == 0);
  auto args = manager_args("sum", schema, "6", "2");
  args.insert(args.end(), {"--speculation-floor", "300", "--log-level",
                           "info"});
  child manager{args, "etl-overtaken-manager"};
  auto port = wait_for_port(manager);
  child w1{worker(port, "w1"), "etl-overtaken-w1"};
  // Two partitions at once, each batch 1 s: overtaken by w1.
  child w2{worker(port, "w2", "2"), "etl-overtaken-w2",
           "FLOW_TEST_REDUCER_DELAY_MS=1000"};
  auto rc = manager.wait();
  auto out = slurp(manager.out);
  auto err = slurp(manager.err);
  INFO("manager: " << err << "\nw2: " << slurp(w2.err));
  CHECK(rc == 0);
  bool ok_local = false;
  bool ok_dist = false;
  CHECK(sums_of(out, ok_dist) == sums_of(local.out, ok_local));
  CHECK(ok_dist);
  auto first = lines_of(out).at(0);
  CHECK(std::stoull(json_field(first, "speculation_won")) >= 1);
  CHECK(err.find("worker node w2 was overtaken: one task at a time from "
                 "now on (instead of 2)")
        != std::string::npos);
  // Only once.
  CHECK(err.find("worker node w2 was overtaken")
        == err.rfind("worker node w2 was overtaken"));
  CHECK(err.find("worker node w1 was overtaken") == std::string::npos);
  w1.wait();
  w2.wait();
}

TEST_CASE("net: with --no-speculation, a partition is never read twice",
          "[net][pg][speculation]") {
  auto schema = init_schema("netnospec", "100000", "10");
  auto args = manager_args("sum", schema, "4", "2");
  args.insert(args.end(), {"--no-speculation", "--speculation-floor", "1"});
  child manager{args, "etl-nospec-manager"};
  auto port = wait_for_port(manager);
  child w1{worker(port, "w1"), "etl-nospec-w1"};
  // Slow partitions (400 ms per batch) that a 1 ms floor would speculate.
  child w2{worker(port, "w2"), "etl-nospec-w2",
           "FLOW_TEST_REDUCER_DELAY_MS=400"};
  auto rc = manager.wait();
  auto out = slurp(manager.out);
  INFO("manager: " << slurp(manager.err));
  CHECK(rc == 0);
  bool ok = false;
  sums_of(out, ok);
  CHECK(ok);
  auto first = lines_of(out).at(0);
  CHECK(json_field(first, "speculated") == "0");
  CHECK(json_field(first, "rows_read") == "100025");
  w1.wait();
  w2.wait();
}
