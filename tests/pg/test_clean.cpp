// flow-etl clean: every ad lands in exactly one of ads_clean and ads_rejects,
// the summary equals the clean rows' GROUP BY, a re-run is identical, and a
// run that fails or is killed before its commit leaves the previous output
// untouched.

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child_process.hpp"
#include "flow/pg/connection.hpp"
#include "json_fields.hpp"
#include "pg_fixture.hpp"
#include "run_program.hpp"

using namespace flow;
using namespace flow::test;

namespace {

const std::string prog = FLOW_ETL_PATH;

std::string q(const std::string& schema, const std::string& table) {
  return pg::table_name{schema, table}.quoted();
}

/// A digest of a whole table's content, ordered by `order`.
std::string digest(const std::string& schema, const std::string& table,
                   const std::string& order = "id") {
  return scalar("SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY "
                + order + "), '')) FROM " + q(schema, table) + " x");
}

std::string init_schema(const std::string& hint, const std::string& ads) {
  auto schema = fresh_schema(hint);
  auto res = run_program(prog, {"init", "--db", conninfo(), "--schema",
                                schema, "--rows", "100", "--ads", ads,
                                "--seed", "5"});
  INFO(res.err);
  REQUIRE(res.rc == 0);
  return schema;
}

run_result clean(const std::string& schema,
                 std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"clean", "--db", conninfo(), "--schema",
                                schema, "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_program(prog, args);
}

} // namespace

TEST_CASE("flow-etl clean: every ad lands in exactly one output table",
          "[pg][flow-etl][clean]") {
  auto schema = init_schema("clean", "20000");
  auto res = clean(schema, {"--partitions", "3", "--batch", "1000"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  CHECK(json_field(res.out, "ok") == "true");
  auto ads = q(schema, "ads");
  auto cl = q(schema, "ads_clean");
  auto rj = q(schema, "ads_rejects");
  CHECK(json_field(res.out, "ads") == "20000");
  CHECK(scalar("SELECT (SELECT count(*) FROM " + cl + ") + (SELECT count(*) "
               "FROM " + rj + ")") == "20000");
  CHECK(scalar("SELECT count(*) FROM " + cl + " JOIN " + rj + " USING (id)")
        == "0");
  CHECK(scalar("SELECT count(*) FROM " + ads + " a WHERE NOT EXISTS (SELECT "
               "1 FROM " + cl + " c WHERE c.id = a.id) AND NOT EXISTS "
               "(SELECT 1 FROM " + rj + " r WHERE r.id = a.id)") == "0");
  CHECK(json_field(res.out, "clean")
        == scalar("SELECT count(*) FROM " + cl));
  // The generated data is messy on purpose: both tables are well filled.
  CHECK(std::stoll(scalar("SELECT count(*) FROM " + cl)) > 5000);
  CHECK(std::stoll(scalar("SELECT count(*) FROM " + rj)) > 2000);
  // Rejects keep the raw values and always say why.
  CHECK(scalar("SELECT count(*) FROM " + rj + " r JOIN " + ads
               + " a USING (id) WHERE r.city IS DISTINCT FROM a.city OR "
                 "r.price IS DISTINCT FROM a.price OR r.posted_at IS DISTINCT "
                 "FROM a.posted_at OR r.title IS DISTINCT FROM a.title")
        == "0");
  CHECK(scalar("SELECT count(*) FROM " + rj + " WHERE reason IS NULL OR "
               "reason = ''") == "0");
  CHECK(scalar("SELECT count(DISTINCT reason) >= 5 FROM " + rj) == "t");
  // Clean rows: normalised cities (one spelling per city), cents >= 0.
  CHECK(scalar("SELECT count(*) FROM " + cl + " WHERE city <> trim(city) OR "
               "city LIKE '%  %' OR price_cents < 0") == "0");
  CHECK(scalar("SELECT count(DISTINCT city) = count(DISTINCT lower(city)) "
               "FROM " + cl) == "t");
  // The summary (from the manager) equals the clean rows' GROUP BY.
  CHECK(scalar("SELECT count(*) FROM (SELECT city, count(*) AS ads, "
               "sum(price_cents) AS total_cents, min(price_cents) AS "
               "min_cents, max(price_cents) AS max_cents FROM " + cl
               + " GROUP BY city) g FULL JOIN " + q(schema, "ads_summary")
               + " s USING (city) WHERE g.ads IS DISTINCT FROM s.ads OR "
                 "g.total_cents IS DISTINCT FROM s.total_cents OR "
                 "g.min_cents IS DISTINCT FROM s.min_cents OR g.max_cents "
                 "IS DISTINCT FROM s.max_cents")
        == "0");
  CHECK(scalar("SELECT count(*) FROM " + q(schema, "ads_summary"))
        == json_field(res.out, "cities"));
}

TEST_CASE("flow-etl clean: a re-run produces identical tables",
          "[pg][flow-etl][clean]") {
  auto schema = init_schema("rerun", "3000");
  REQUIRE(clean(schema, {"--partitions", "2"}).rc == 0);
  auto a = digest(schema, "ads_clean");
  auto b = digest(schema, "ads_rejects");
  auto c = digest(schema, "ads_summary", "city");
  REQUIRE(clean(schema, {"--partitions", "4", "--batch", "97", "--workers",
                         "3"})
            .rc
          == 0);
  CHECK(digest(schema, "ads_clean") == a);
  CHECK(digest(schema, "ads_rejects") == b);
  CHECK(digest(schema, "ads_summary", "city") == c);
}

TEST_CASE("flow-etl clean: a run that fails before its commit leaves the "
          "previous output untouched",
          "[pg][flow-etl][clean][atomic]") {
  auto schema = init_schema("fail", "2000");
  REQUIRE(clean(schema).rc == 0);
  auto a = digest(schema, "ads_clean");
  auto b = digest(schema, "ads_rejects");
  // Change the input, so a committed re-run would change the output.
  exec("UPDATE " + q(schema, "ads") + " SET price = '7' WHERE id % 2 = 0");
  auto tables_before = scalar("SELECT count(*) FROM pg_tables WHERE "
                              "schemaname = '" + schema + "'");
  child run{{prog, "clean", "--db", conninfo(), "--schema", schema},
            "clean-fail", "FLOW_ETL_TEST_BEFORE_COMMIT=fail"};
  auto rc = run.wait();
  auto err = slurp(run.err);
  INFO("stderr: " << err);
  CHECK(rc == 2);
  CHECK(err.find("sink_failed") != std::string::npos);
  CHECK(digest(schema, "ads_clean") == a);
  CHECK(digest(schema, "ads_rejects") == b);
  // No staging table was left behind either.
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema
               + "'")
        == tables_before);
}

TEST_CASE("flow-etl clean: a run killed (SIGKILL) before its commit leaves "
          "the previous output untouched",
          "[pg][flow-etl][clean][atomic]") {
  auto schema = init_schema("kill", "2000");
  REQUIRE(clean(schema).rc == 0);
  auto a = digest(schema, "ads_clean");
  auto s = digest(schema, "ads_summary", "city");
  exec("UPDATE " + q(schema, "ads") + " SET city = 'Nowhere' WHERE id < 500");
  child run{{prog, "clean", "--db", conninfo(), "--schema", schema},
            "clean-kill", "FLOW_ETL_TEST_BEFORE_COMMIT=pause"};
  // Wait until every row is written and the run is about to commit.
  bool paused = wait_for_text(run.err, "pausing before commit");
  run.kill_now();
  auto rc = run.wait();
  REQUIRE(paused);
  CHECK(rc == 128 + SIGKILL);
  // The killed connection's transaction rolls back: the old output stays.
  for (int i = 0; i < 100; ++i) {
    // The server notices the dead client asynchronously; wait for its locks.
    if (scalar("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in "
               "transaction'")
        == "0")
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(digest(schema, "ads_clean") == a);
  CHECK(digest(schema, "ads_summary", "city") == s);
  CHECK(scalar("SELECT count(*) FROM " + q(schema, "ads_clean")
               + " WHERE city = 'Nowhere'")
        == "0");
}

TEST_CASE("flow-etl clean: output names are quoted, never executed",
          "[pg][flow-etl][clean]") {
  auto schema = init_schema("names", "300");
  std::string evil = "x\"; DROP TABLE ads; --";
  auto res = clean(schema, {"--clean", evil, "--rejects", "rej ects",
                            "--summary", "sum'mary"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  CHECK(scalar("SELECT count(*) FROM " + q(schema, "ads")) == "300");
  CHECK(scalar("SELECT (SELECT count(*) FROM " + q(schema, evil)
               + ") + (SELECT count(*) FROM " + q(schema, "rej ects") + ")")
        == "300");
  CHECK(scalar("SELECT count(*) > 0 FROM " + q(schema, "sum'mary")) == "t");
}

TEST_CASE("flow-etl clean: bad input is a one-line error with exit code 2",
          "[pg][flow-etl][clean]") {
  auto check = [](const run_result& res, const std::string& fragment) {
    INFO("stdout: " << res.out << "\nstderr: " << res.err);
    CHECK(res.rc == 2);
    CHECK(lines_of(res.err).size() == 1);
    CHECK(res.err.find(fragment) != std::string::npos);
    CHECK(res.out.empty());
  };
  auto schema = fresh_schema("cleanbad");
  check(clean(schema), "42P01");
  check(clean(schema, {"--clean", "ads"}), "four different tables");
  check(clean(schema, {"--partitions", "x"}), "--partitions");
  check(run_program(prog, {"clean", "--db", "postgresql://127.0.0.1:1/x",
                           "--json"}),
        "cannot connect");
}

TEST_CASE("flow-etl clean: an ad a cleaning rule throws on is dead-lettered "
          "into ads_rejects, and every ad is still in exactly one table",
          "[pg][flow-etl][clean][dead_letters]") {
  auto schema = init_schema("poison", "2000");
  child run{{prog, "clean", "--db", conninfo(), "--schema", schema},
            "clean-poison", "FLOW_TEST_POISON=77"};
  auto rc = run.wait();
  auto err = slurp(run.err);
  INFO("stderr: " << err);
  CHECK(rc == 3);
  CHECK(err.find("dead-lettered") != std::string::npos);
  CHECK(scalar("SELECT reason FROM " + q(schema, "ads_rejects")
               + " WHERE id = 77")
        == "reducer failed: test hook: poisoned ad 77");
  // The raw values travel with the dead letter.
  CHECK(scalar("SELECT count(*) FROM " + q(schema, "ads_rejects") + " r JOIN "
               + q(schema, "ads")
               + " a USING (id) WHERE id = 77 AND r.title IS NOT DISTINCT "
                 "FROM a.title AND r.city IS NOT DISTINCT FROM a.city AND "
                 "r.price IS NOT DISTINCT FROM a.price AND r.posted_at IS NOT "
                 "DISTINCT FROM a.posted_at")
        == "1");
  CHECK(scalar("SELECT count(*) FROM " + q(schema, "ads_clean")
               + " WHERE id = 77")
        == "0");
  CHECK(scalar("SELECT (SELECT count(*) FROM " + q(schema, "ads_clean")
               + ") + (SELECT count(*) FROM " + q(schema, "ads_rejects") + ")")
        == "2000");
}

TEST_CASE("flow-etl clean: SIGINT stops the job, exits 130 and leaves the "
          "previous output untouched",
          "[pg][flow-etl][clean][interrupt]") {
  auto schema = init_schema("sigint", "2000");
  REQUIRE(clean(schema).rc == 0);
  auto a = digest(schema, "ads_clean");
  auto b = digest(schema, "ads_rejects");
  exec("UPDATE " + q(schema, "ads") + " SET price = '9' WHERE id % 3 = 0");
  // Reducers take 300 ms per batch of 100 ads: the job is still running when
  // the signal arrives, whatever the machine's speed.
  child run{{prog, "clean", "--db", conninfo(), "--schema", schema, "--batch",
             "100"},
            "clean-sigint", "FLOW_TEST_REDUCER_DELAY_MS=300"};
  // The job takes about 3 s (20 batches x 300 ms on two reducers); signal it
  // after one, checking it is still running.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  bool running = run.running();
  run.signal(SIGINT);
  auto rc = run.wait();
  auto err = slurp(run.err);
  INFO("stderr: " << err);
  REQUIRE(running);
  CHECK(rc == 130);
  CHECK(err.find("PARTIAL") != std::string::npos);
  CHECK(err.find("tables are unchanged") != std::string::npos);
  for (int i = 0; i < 100; ++i) {
    if (scalar("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in "
               "transaction'")
        == "0")
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(digest(schema, "ads_clean") == a);
  CHECK(digest(schema, "ads_rejects") == b);
}
