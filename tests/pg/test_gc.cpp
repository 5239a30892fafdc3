// Ownership of the state runs keep in the database: a live run holds an
// advisory lock named after its tables in flow_resume and flow_dist, so a
// second run of the same job refuses to start instead of dropping them, and
// `flow-etl gc` drops only tables whose run is gone.

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "flow/error.hpp"
#include "flow/pg/ownership.hpp"
#include "json_fields.hpp"
#include "pg_fixture.hpp"
#include "run_program.hpp"

using namespace flow;
using namespace flow::test;

namespace {

const std::string prog = FLOW_ETL_PATH;

bool exists(const std::string& schema, const std::string& table) {
  return scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema
                + "' AND tablename = '" + table + "'")
         == "1";
}

std::string count_in(const std::string& schema) {
  return scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema
                + "'");
}

/// The last line of `out` (gc's JSON summary).
std::string last_line(const std::string& out) {
  auto ls = lines_of(out);
  return ls.empty() ? std::string{} : ls.back();
}

std::string digest(const std::string& schema, const std::string& table,
                   const std::string& order) {
  return scalar("SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY "
                + order + "), '')) FROM "
                + pg::table_name{schema, table}.quoted() + " x");
}

std::vector<std::string> outputs(const std::string& schema) {
  return {digest(schema, "ads_clean", "id"),
          digest(schema, "ads_rejects", "id"),
          digest(schema, "ads_summary", "city")};
}

/// Waits until a run's checkpoints cover some ads.
bool wait_for_checkpoint() {
  for (int i = 0; i < 600; ++i) {
    auto t = scalar("SELECT coalesce(min(tablename), '') FROM pg_tables "
                    "WHERE schemaname = 'flow_resume' AND tablename LIKE "
                    "'%_checkpoints'");
    if (!t.empty()
        && scalar("SELECT coalesce(sum(done), 0) FROM "
                  + pg::table_name{"flow_resume", t}.quoted())
             != "0")
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

} // namespace

TEST_CASE("flow-etl gc drops orphaned staging tables, never a live run's or "
          "a table not named after a run, and --dry-run drops nothing",
          "[pg][flow-etl][gc]") {
  exec("DROP SCHEMA IF EXISTS flow_resume CASCADE");
  exec("DROP SCHEMA IF EXISTS flow_dist CASCADE");
  exec("CREATE SCHEMA flow_resume");
  exec("CREATE SCHEMA flow_dist");
  // a1, c3: runs that were killed; b2: a live run (this test holds its
  // lock, as a running job's connection would).
  for (auto t : {"job_00000000000000a1_0", "job_00000000000000a1_checkpoints",
                 "job_00000000000000b2_0", "unrelated",
                 "job_0000000000000zz9_0", "agg_00000000000000d4"})
    exec("CREATE TABLE flow_resume.\"" + std::string{t} + "\" (x int)");
  for (auto t : {"d00000000000000c3_p0_c", "d00000000000000c3_p0_r",
                 "d00000000000000b2_p1_r"})
    exec("CREATE TABLE flow_dist.\"" + std::string{t} + "\" (x int)");
  auto live = pg::owner_lock::try_acquire(conninfo(), "00000000000000b2",
                                          "the test's tables");
  REQUIRE(live);
  // A second owner of the same key is refused while the first lives.
  auto second = pg::owner_lock::try_acquire(conninfo(), "00000000000000b2",
                                            "the test's tables");
  REQUIRE_FALSE(second);
  CHECK(code_of(second.error()) == errc::invalid_config);
  CHECK(describe(second.error()).find("in progress") != std::string::npos);

  auto dry = run_program(prog, {"gc", "--db", conninfo(), "--dry-run",
                                "--json"});
  INFO(dry.err);
  REQUIRE(dry.rc == 0);
  auto summary = last_line(dry.out);
  CHECK(json_field(summary, "tables") == "7");
  CHECK(json_field(summary, "orphans") == "5");
  CHECK(json_field(summary, "dropped") == "0");
  CHECK(json_field(summary, "live") == "2");
  CHECK(count_in("flow_resume") == "6");
  CHECK(count_in("flow_dist") == "3");

  auto gc = run_program(prog, {"gc", "--db", conninfo()});
  INFO(gc.err);
  REQUIRE(gc.rc == 0);
  CHECK(gc.out.find("5 orphaned (dropped), 2 live") != std::string::npos);
  CHECK_FALSE(exists("flow_resume", "agg_00000000000000d4"));
  CHECK_FALSE(exists("flow_resume", "job_00000000000000a1_0"));
  CHECK_FALSE(exists("flow_resume", "job_00000000000000a1_checkpoints"));
  CHECK_FALSE(exists("flow_dist", "d00000000000000c3_p0_c"));
  CHECK_FALSE(exists("flow_dist", "d00000000000000c3_p0_r"));
  CHECK(exists("flow_resume", "job_00000000000000b2_0"));
  CHECK(exists("flow_dist", "d00000000000000b2_p1_r"));
  CHECK(exists("flow_resume", "unrelated"));
  CHECK(exists("flow_resume", "job_0000000000000zz9_0"));

  // The run ends (its connection closes): its tables are orphans now.
  live = caf::error{};
  auto after = run_program(prog, {"gc", "--db", conninfo(), "--json"});
  REQUIRE(after.rc == 0);
  CHECK(json_field(last_line(after.out), "dropped") == "2");
  CHECK_FALSE(exists("flow_resume", "job_00000000000000b2_0"));
  CHECK_FALSE(exists("flow_dist", "d00000000000000b2_p1_r"));
  CHECK(count_in("flow_resume") == "2");
}

TEST_CASE("flow-etl gc without a database or with a bad option is a "
          "one-line error",
          "[pg][flow-etl][gc]") {
  auto bad = run_program(prog, {"gc", "--db", conninfo(), "--bogus"});
  CHECK(bad.rc == 2);
  auto unreachable = run_program(
    prog, {"gc", "--db", "postgresql://nobody@127.0.0.1:1/none"});
  CHECK(unreachable.rc == 2);
  CHECK(lines_of(unreachable.err).size() == 1);
  auto empty = run_program(prog, {"gc", "--db", ""});
  CHECK(empty.rc == 2);
  // No --db and no PG* environment: gc does not start a throwaway cluster
  // (it would find nothing to collect).
  auto none = run_program("/usr/bin/env", {"-i", prog, "gc"});
  CHECK(none.rc == 2);
  CHECK(none.err.find("gc needs a database") != std::string::npos);
  CHECK(lines_of(none.err).size() == 1);
}

TEST_CASE("flow-etl clean: a second run of the same job while one is live "
          "is refused and leaves the live run's state alone, gc spares it "
          "and drops it once the run is killed",
          "[pg][flow-etl][gc][resume]") {
  exec("DROP SCHEMA IF EXISTS flow_resume CASCADE");
  auto schema = fresh_schema("owned");
  auto init = run_program(prog, {"init", "--db", conninfo(), "--schema",
                                 schema, "--rows", "100", "--ads", "20000",
                                 "--seed", "11"});
  REQUIRE(init.rc == 0);
  auto reference = run_program(prog, {"clean", "--db", conninfo(), "--schema",
                                      schema, "--json"});
  REQUIRE(reference.rc == 0);
  auto expected = outputs(schema);
  std::vector<std::string> args{prog,     "clean",  "--db",   conninfo(),
                                "--schema", schema, "--json", "--batch",
                                "500"};
  {
    // Slow enough (40 batches at 1 s over 2 reducers) to be live for the
    // three commands below.
    child first{args, "owned-first", "FLOW_TEST_REDUCER_DELAY_MS=1000"};
    REQUIRE(wait_for_checkpoint());
    auto tables = count_in("flow_resume");
    auto second = run_program(prog, {"clean", "--db", conninfo(), "--schema",
                                     schema, "--json"});
    CHECK(second.rc == 2);
    CHECK(second.err.find("another run of this job is in progress")
          != std::string::npos);
    CHECK(lines_of(second.err).size() == 1);
    // --resume is refused the same way (the checkpoints are the live run's).
    auto resume = run_program(prog, {"clean", "--db", conninfo(), "--schema",
                                     schema, "--json", "--resume"});
    CHECK(resume.rc == 2);
    CHECK(resume.err.find("another run of this job is in progress")
          != std::string::npos);
    auto gc = run_program(prog, {"gc", "--db", conninfo(), "--json"});
    REQUIRE(gc.rc == 0);
    CHECK(json_field(last_line(gc.out), "dropped") == "0");
    REQUIRE(first.running());
    CHECK(count_in("flow_resume") == tables);
    // The live run finishes as if alone.
    CHECK(first.wait() == 0);
    CHECK(json_field(slurp(first.out), "ok") == "true");
    CHECK(outputs(schema) == expected);
  }
  // Killed: its state is an orphan; gc drops it, and --resume then has
  // nothing to continue.
  {
    child killed{args, "owned-killed", "FLOW_TEST_REDUCER_DELAY_MS=100"};
    REQUIRE(wait_for_checkpoint());
    killed.kill_now();
    CHECK(killed.wait() == 128 + SIGKILL);
  }
  CHECK(count_in("flow_resume") != "0");
  auto gc = run_program(prog, {"gc", "--db", conninfo(), "--json"});
  REQUIRE(gc.rc == 0);
  CHECK(json_field(last_line(gc.out), "dropped") != "0");
  CHECK(count_in("flow_resume") == "0");
  auto resume = run_program(prog, {"clean", "--db", conninfo(), "--schema",
                                   schema, "--resume"});
  CHECK(resume.rc == 2);
  CHECK(resume.err.find("no interrupted run") != std::string::npos);
  CHECK(outputs(schema) == expected);
}
