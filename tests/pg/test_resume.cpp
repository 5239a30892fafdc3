// flow-etl clean is resumable: output and per-partition checkpoints are
// committed in steps (in the flow_resume schema; the targets change only at
// the end), so a run killed with SIGKILL continues with --resume, and a run
// whose connections are cut (pg_terminate_backend, a server restart) resumes
// by itself. In every case the final tables equal an uninterrupted run's.

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "child_process.hpp"
#include "flow/pg/connection.hpp"
#include "flow/pg/temp_cluster.hpp"
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

std::string digest(const std::string& schema, const std::string& table,
                   const std::string& order) {
  return scalar("SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY "
                + order + "), '')) FROM " + q(schema, table) + " x");
}

/// The digests of the three outputs.
std::vector<std::string> outputs(const std::string& schema) {
  return {digest(schema, "ads_clean", "id"),
          digest(schema, "ads_rejects", "id"),
          digest(schema, "ads_summary", "city")};
}

std::string init_schema(const std::string& hint) {
  // Resume state of an earlier test in this process would be found by
  // wait_for_checkpoint: start clean.
  exec("DROP SCHEMA IF EXISTS flow_resume CASCADE");
  auto schema = fresh_schema(hint);
  auto res = run_program(prog, {"init", "--db", conninfo(), "--schema",
                                schema, "--rows", "100", "--ads", "20000",
                                "--seed", "11"});
  INFO(res.err);
  REQUIRE(res.rc == 0);
  return schema;
}

/// The command line of a `flow-etl clean` on `schema` in small batches
/// (started with a slow reducer, so the run is still going when the test
/// interferes).
std::vector<std::string> clean_args(const std::string& schema,
                                    std::vector<std::string> extra = {}) {
  std::vector<std::string> args{prog,     "clean",    "--db",   conninfo(),
                                "--schema", schema,   "--json", "--batch",
                                "500"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

const std::string slow = "FLOW_TEST_REDUCER_DELAY_MS=100";

/// Waits until the run committed a checkpoint that covers some ads.
bool wait_for_checkpoint() {
  for (int i = 0; i < 600; ++i) {
    auto n = scalar("SELECT count(*) FROM pg_tables WHERE schemaname = "
                    "'flow_resume' AND tablename LIKE '%_checkpoints'");
    if (n != "0" && n != "") {
      auto t = scalar("SELECT tablename FROM pg_tables WHERE schemaname = "
                      "'flow_resume' AND tablename LIKE '%_checkpoints' "
                      "LIMIT 1");
      if (!t.empty()
          && scalar("SELECT coalesce(sum(done), 0) FROM "
                    + q("flow_resume", t))
               != "0")
        return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

} // namespace

TEST_CASE("flow-etl clean --resume after SIGKILL continues from the "
          "checkpoints and ends with the tables of an uninterrupted run",
          "[pg][flow-etl][clean][resume]") {
  auto schema = init_schema("resume");
  auto first = run_program(prog, {"clean", "--db", conninfo(), "--schema",
                                  schema, "--json"});
  REQUIRE(first.rc == 0);
  auto expected = outputs(schema);
  // Change nothing in ads, but drop the outputs: the resumed run must
  // rebuild exactly the same tables.
  exec("DROP TABLE " + q(schema, "ads_clean") + ", " + q(schema, "ads_rejects")
       + ", " + q(schema, "ads_summary"));
  auto tables = scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '"
                       + schema + "'");
  child run{clean_args(schema), "resume-kill", slow};
  REQUIRE(wait_for_checkpoint());
  run.kill_now();
  CHECK(run.wait() == 128 + SIGKILL);
  // Nothing is visible in the job's schema yet.
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema
               + "'")
        == tables);
  auto resumed = run_program(prog, {"clean", "--db", conninfo(), "--schema",
                                    schema, "--json", "--resume"});
  INFO(resumed.err);
  REQUIRE(resumed.rc == 0);
  CHECK(json_field(resumed.out, "ok") == "true");
  auto resumed_ads = std::stoull(json_field(resumed.out, "resumed_ads"));
  CHECK(resumed_ads > 0);
  CHECK(resumed_ads < 20000);
  CHECK(std::stoull(json_field(resumed.out, "emitted")) + resumed_ads
        == 20000);
  CHECK(outputs(schema) == expected);
  // The resume state is gone once the run committed.
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = "
               "'flow_resume'")
        == "0");
}

TEST_CASE("flow-etl clean --resume with nothing to resume is a clear error",
          "[pg][flow-etl][clean][resume]") {
  auto schema = init_schema("noresume");
  auto r = run_program(prog, {"clean", "--db", conninfo(), "--schema", schema,
                              "--resume"});
  CHECK(r.rc == 2);
  CHECK(r.err.find("no interrupted run") != std::string::npos);
  CHECK(lines_of(r.err).size() == 1);
}

TEST_CASE("flow-etl clean: connections cut by pg_terminate_backend are "
          "resumed from the checkpoints with the same result",
          "[pg][flow-etl][clean][resume][connection]") {
  auto schema = init_schema("terminate");
  REQUIRE(run_program(prog, {"clean", "--db", conninfo(), "--schema", schema})
            .rc
          == 0);
  auto expected = outputs(schema);
  child run{clean_args(schema), "resume-terminate", slow};
  REQUIRE(wait_for_checkpoint());
  auto cut = scalar("SELECT count(pg_terminate_backend(pid)) FROM "
                    "pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                    "backend_type = 'client backend'");
  CHECK(cut != "0");
  auto rc = run.wait();
  auto out = slurp(run.out);
  auto err = slurp(run.err);
  INFO(err);
  REQUIRE(rc == 0);
  CHECK(json_field(out, "ok") == "true");
  CHECK(std::stoull(json_field(out, "resumes")) >= 1);
  CHECK(err.find("resuming from the checkpoints") != std::string::npos);
  CHECK(outputs(schema) == expected);
}

TEST_CASE("flow-etl clean: a snapshot whose exporting session the server "
          "ended before the partitions imported it is a lost connection",
          "[pg][flow-etl][clean][resume][connection]") {
  auto schema = init_schema("snaplost");
  // The test hook ends the coordinator's session, which exported the
  // snapshot, right before the partitions import it (the 60-second soak once
  // hit this with pg_terminate_backend: exit 2 with 22023 "invalid snapshot
  // identifier", no resume).
  child run{{prog, "clean", "--db", conninfo(), "--schema", schema,
             "--partitions", "2", "--reconnects", "1"},
            "clean-snap-lost", "FLOW_TEST_END_EXPORTER=1"};
  auto rc = run.wait();
  auto err = slurp(run.err);
  INFO(err);
  CHECK(rc == 2);
  CHECK(err.find("resuming from the checkpoints") != std::string::npos);
  CHECK(err.find("the session that exported the snapshot ended before")
        != std::string::npos);
  CHECK(err.find("22023") == std::string::npos);
  CHECK(err.find("55000") == std::string::npos);
  // Nothing was committed to the targets.
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema
               + "' AND tablename = 'ads_clean'")
        == "0");
}

TEST_CASE("flow-etl clean: a server restart mid-run is resumed with the same "
          "result",
          "[pg][flow-etl][clean][resume][connection]") {
  auto schema = init_schema("restart");
  REQUIRE(run_program(prog, {"clean", "--db", conninfo(), "--schema", schema})
            .rc
          == 0);
  auto expected = outputs(schema);
  child run{clean_args(schema), "resume-restart", slow};
  REQUIRE(wait_for_checkpoint());
  REQUIRE(server().restart());
  auto rc = run.wait();
  auto out = slurp(run.out);
  auto err = slurp(run.err);
  INFO(err);
  REQUIRE(rc == 0);
  CHECK(json_field(out, "ok") == "true");
  CHECK(std::stoull(json_field(out, "resumes")) >= 1);
  CHECK(outputs(schema) == expected);
}

TEST_CASE("flow-etl clean: with no reconnects allowed, a cut connection fails "
          "the run with a clear error and the previous tables stay",
          "[pg][flow-etl][clean][resume][connection]") {
  auto schema = init_schema("noreconnect");
  REQUIRE(run_program(prog, {"clean", "--db", conninfo(), "--schema", schema})
            .rc
          == 0);
  auto before = outputs(schema);
  exec("UPDATE " + q(schema, "ads") + " SET city = 'Elsewhere'");
  child run{clean_args(schema, {"--reconnects", "0"}), "resume-noreconnect",
            slow};
  REQUIRE(wait_for_checkpoint());
  scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
         "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'");
  auto rc = run.wait();
  auto err = slurp(run.err);
  INFO(err);
  CHECK(rc == 2);
  CHECK(err.find("flow-etl: error:") != std::string::npos);
  CHECK(outputs(schema) == before);
}
